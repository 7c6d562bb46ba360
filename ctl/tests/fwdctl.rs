//! `fwdctl` as a user runs it: the built binary against no daemon, and against a
//! `ControlServer` polled by a thread of this test with a canned handler.
#![allow(clippy::unwrap_used)]

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ctl::render::render_status;
use ctl::{ControlServer, ExplainReply, Reply, Request, Response, StatusReply, Totals, WanStatus};

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "fwdctl-it-{}-{}-{}",
            std::process::id(),
            name,
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn sock(&self) -> PathBuf {
        self.0.join("fwd.sock")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn fwdctl(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fwdctl"));
    cmd.args(args).env_remove("FWD_SOCKET");
    cmd
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn status() -> StatusReply {
    StatusReply {
        uptime_secs: 42,
        workers: 2,
        backend: "tun".into(),
        wans: vec![WanStatus {
            name: "isp1".into(),
            interface: "eth1".into(),
            address: Ipv4Addr::new(198, 51, 100, 2),
            state: "up".into(),
            tier: 0,
            weight: 1,
            flows: 3,
            tx_packets: 10,
            tx_bytes: 12_345,
            rx_packets: 9,
            rx_bytes: 999,
        }],
        totals: Totals {
            flows: 3,
            max_flows: 1024,
            forwarded: 19,
            to_kernel: 0,
            dropped: 0,
            sessions_created: 3,
        },
    }
}

fn handler(request: Request) -> Response {
    match request {
        Request::Status => Response::Ok(Reply::Status(status())),
        Request::Explain {
            proto, dport: None, ..
        } => Response::Ok(Reply::Explain(ExplainReply {
            rule: None,
            group: None,
            wan: None,
            decision: format!("main table ({proto})"),
            reasons: vec![],
        })),
        Request::Reload => Response::error("config line 3: unknown group `nope`; old config kept"),
        other => Response::error(format!("{} unsupported", other.name())),
    }
}

/// Runs `f` while a server answers on a fresh socket.
fn with_daemon(name: &str, f: impl FnOnce(&str)) {
    let dir = TempDir::new(name);
    let mut server = ControlServer::bind(&dir.sock()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let thread = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !flag.load(Ordering::Relaxed) && Instant::now() < deadline {
            server
                .poll(Duration::from_millis(10), &mut handler)
                .unwrap();
        }
    });
    f(dir.sock().to_str().unwrap());
    stop.store(true, Ordering::Relaxed);
    thread.join().unwrap();
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap()
}

#[test]
fn no_daemon_exits_3_with_one_line() {
    let dir = TempDir::new("none");
    let sock = dir.sock();
    let out = run(&mut fwdctl(&["--socket", sock.to_str().unwrap(), "status"]));
    assert_eq!(out.status.code(), Some(3));
    assert!(out.stdout.is_empty());
    assert_eq!(
        text(&out.stderr),
        format!(
            "fwdctl: fwd is not running (no control socket at {})\n",
            sock.display()
        )
    );
    // The environment names the socket too.
    let out = run(fwdctl(&["flows"]).env("FWD_SOCKET", &sock));
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stderr).contains(sock.to_str().unwrap()));
}

#[test]
fn bad_usage_exits_2() {
    for args in [
        &[][..],
        &["nope"],
        &["flows", "--limit", "many"],
        &["explain", "--src", "10.0.0.1", "--dst", "8.8.8.8"],
        &[
            "explain", "--src", "10.0.0.1", "--dst", "8.8.8.8", "--proto", "sctp",
        ],
    ] {
        let out = run(&mut fwdctl(args));
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn answers_are_printed_and_errors_exit_1() {
    with_daemon("live", |sock| {
        let out = run(&mut fwdctl(&["--socket", sock, "status"]));
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout), render_status(&status()));

        let out = run(&mut fwdctl(&["status", "--json", "--socket", sock]));
        assert_eq!(out.status.code(), Some(0));
        let reply: Reply = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(reply, Reply::Status(status()));

        let out = run(&mut fwdctl(&[
            "--socket", sock, "explain", "--src", "10.0.0.1", "--dst", "8.8.8.8", "--proto", "17",
        ]));
        assert_eq!(out.status.code(), Some(0));
        assert!(text(&out.stdout).starts_with("decision  main table (udp)\n"));

        let out = run(&mut fwdctl(&["--socket", sock, "reload"]));
        assert_eq!(out.status.code(), Some(1));
        assert!(out.stdout.is_empty());
        assert_eq!(
            text(&out.stderr),
            "fwdctl: config line 3: unknown group `nope`; old config kept\n"
        );
    });
}
