//! `fwdctl` as a user runs it: the built binary against no daemon, and against a
//! `ControlServer` polled by a thread of this test with a canned handler.
#![allow(clippy::unwrap_used)]

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ctl::render::{render_event_batch, render_events, render_status, render_wans};
use ctl::{
    ControlServer, EventList, EventRecord, ExplainReply, Reply, Request, Response, StatusReply,
    Totals, WanAdminResult, WanHealth, WanStatus,
};

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

fn wans() -> Vec<WanHealth> {
    vec![
        WanHealth {
            name: "isp0".into(),
            state: "up".into(),
            tier: 0,
            weight: 1,
            probed: true,
            method: Some("icmp".into()),
            targets: vec![Ipv4Addr::new(192, 0, 2, 1)],
            latency_ms: Some(8.04),
            jitter_ms: Some(0.5),
            loss_pct: Some(0.0),
            in_state_secs: 75.2,
            reason: "probes answered".into(),
            carrier: Some(true),
            flows: 3,
        },
        WanHealth {
            name: "isp1".into(),
            state: "disabled".into(),
            tier: 1,
            weight: 1,
            probed: false,
            method: None,
            targets: vec![],
            latency_ms: None,
            jitter_ms: None,
            loss_pct: None,
            in_state_secs: 0.4,
            reason: String::new(),
            carrier: None,
            flows: 0,
        },
    ]
}

/// An event on `wan` at second `seq` of 2026-12-01 03:14.
fn event(seq: u64, wan: &str, old: &str, new: &str) -> EventRecord {
    EventRecord {
        seq,
        unix_ms: 1_796_094_840_000 + seq * 1000,
        wan: wan.into(),
        old: old.into(),
        new: new.into(),
        reason: format!("event {seq}"),
        latency_ms: Some(10.0),
        jitter_ms: None,
        loss_pct: Some(50.0),
    }
}

/// The daemon's ring: events 1 to 5, of which 1 and 2 were dropped.
fn ring(after: u64) -> EventList {
    let events: Vec<EventRecord> = (3..=5)
        .filter(|&seq| seq > after)
        .map(|seq| event(seq, "isp0", "up", "down"))
        .collect();
    EventList {
        events,
        last_seq: 5,
        missed: 2u64.saturating_sub(after),
    }
}

fn handler(request: Request) -> Response {
    match request {
        Request::Status => Response::Ok(Reply::Status(status())),
        Request::Wans => Response::Ok(Reply::Wans(wans())),
        Request::WanAdmin { wan, enabled } => match wans().into_iter().find(|w| w.name == wan) {
            None => Response::error(format!("unknown WAN `{wan}`")),
            Some(w) => Response::Ok(Reply::WanAdmin(WanAdminResult {
                changed: (w.state == "disabled") == enabled,
                state: if enabled { "up" } else { "disabled" }.into(),
                wan,
            })),
        },
        Request::Events { after } => Response::Ok(Reply::Events(ring(after))),
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
        &["wan", "bogus"],
        &["wan", "disable"],
        &["wan", "enable", "isp0", "isp1"],
        &["wan", "--follow"],
        &["events", "--after", "-1"],
        &["events", "--after", "soon"],
        &["events", "--after"],
        &["events", "isp0"],
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

#[test]
fn wan_health_and_admin() {
    with_daemon("wan", |sock| {
        let out = run(&mut fwdctl(&["--socket", sock, "wan"]));
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout), render_wans(&wans()));
        assert_eq!(
            text(&out.stdout),
            "\
WAN   STATE     TIER  WEIGHT  LATENCY  JITTER  LOSS  IN-STATE  CARRIER  FLOWS  REASON
isp0  up           0       1    8.0ms   0.5ms  0.0%     1m15s  yes          3  probes answered
isp1  disabled     1       1        -       -     -      0.4s  -            0  not probed
"
        );

        let out = run(&mut fwdctl(&["--socket", sock, "wan", "--json"]));
        assert_eq!(out.status.code(), Some(0));
        let reply: Reply = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(reply, Reply::Wans(wans()));

        let out = run(&mut fwdctl(&["--socket", sock, "wan", "disable", "isp0"]));
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "isp0 disabled (state: disabled)\n");

        let out = run(&mut fwdctl(&["--socket", sock, "wan", "enable", "isp0"]));
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(text(&out.stdout), "isp0 was already enabled (state: up)\n");

        let out = run(&mut fwdctl(&[
            "--json", "--socket", sock, "wan", "enable", "isp1",
        ]));
        assert_eq!(out.status.code(), Some(0));
        let reply: Reply = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            reply,
            Reply::WanAdmin(WanAdminResult {
                wan: "isp1".into(),
                changed: true,
                state: "up".into(),
            })
        );

        let out = run(&mut fwdctl(&["--socket", sock, "wan", "disable", "isp9"]));
        assert_eq!(out.status.code(), Some(1));
        assert!(out.stdout.is_empty());
        assert_eq!(text(&out.stderr), "fwdctl: unknown WAN `isp9`\n");
    });
}

#[test]
fn events_once() {
    with_daemon("events", |sock| {
        let out = run(&mut fwdctl(&["--socket", sock, "events"]));
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout), render_events(&ring(0)));
        assert_eq!(
            text(&out.stdout),
            "(2 older events were dropped)\n\
             2026-12-01 03:14:03.000Z #3 isp0 up -> down (event 3); latency 10.0ms, jitter -, loss 50.0%\n\
             2026-12-01 03:14:04.000Z #4 isp0 up -> down (event 4); latency 10.0ms, jitter -, loss 50.0%\n\
             2026-12-01 03:14:05.000Z #5 isp0 up -> down (event 5); latency 10.0ms, jitter -, loss 50.0%\n"
        );

        let out = run(&mut fwdctl(&["--socket", sock, "events", "--after", "4"]));
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(
            text(&out.stdout),
            "2026-12-01 03:14:05.000Z #5 isp0 up -> down (event 5); latency 10.0ms, jitter -, loss 50.0%\n"
        );

        let out = run(&mut fwdctl(&["--socket", sock, "events", "--after", "5"]));
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(text(&out.stdout), "no events\n");

        let out = run(&mut fwdctl(&[
            "--socket",
            sock,
            "events",
            "--after=3",
            "--json",
        ]));
        assert_eq!(out.status.code(), Some(0));
        let reply: Reply = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(reply, Reply::Events(ring(3)));
    });
}

/// Runs `fwdctl events --follow` (plus `extra`) against a daemon that hands out two batches
/// of events, then answers the next poll and goes away.
fn follow_until_daemon_leaves(name: &str, extra: &[&str]) -> (Output, [EventList; 2]) {
    let batches = [
        EventList {
            events: vec![
                event(7, "isp0", "up", "degraded"),
                event(8, "isp1", "up", "down"),
            ],
            last_seq: 8,
            missed: 0,
        },
        EventList {
            events: vec![event(9, "isp0", "degraded", "down")],
            last_seq: 9,
            missed: 0,
        },
    ];
    let dir = TempDir::new(name);
    let mut server = ControlServer::bind(&dir.sock()).unwrap();
    let served = batches.clone();
    let leave = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&leave);
    let thread = std::thread::spawn(move || {
        let mut polls_after_8 = 0;
        let mut handler = |request: Request| {
            let after = match request {
                Request::Events { after } => after,
                other => return Response::error(format!("{} unexpected", other.name())),
            };
            let nothing_new = |last_seq| {
                Response::Ok(Reply::Events(EventList {
                    events: vec![],
                    last_seq,
                    missed: 0,
                }))
            };
            match after {
                6 => Response::Ok(Reply::Events(served[0].clone())),
                // One empty poll before the second batch: nothing is printed for it.
                8 if polls_after_8 == 0 => {
                    polls_after_8 += 1;
                    nothing_new(8)
                }
                8 => Response::Ok(Reply::Events(served[1].clone())),
                9 => {
                    flag.store(true, Ordering::Relaxed);
                    nothing_new(9)
                }
                _ => Response::error(format!("unexpected after {after}")),
            }
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !flag.load(Ordering::Relaxed) && Instant::now() < deadline {
            server
                .poll(Duration::from_millis(10), &mut handler)
                .unwrap();
        }
        // Dropping the server closes the socket and every connection.
    });
    let sock = dir.sock();
    let mut args = vec!["--socket", sock.to_str().unwrap(), "events", "--after", "6"];
    args.push("--follow");
    args.extend_from_slice(extra);
    let out = run(&mut fwdctl(&args));
    thread.join().unwrap();
    assert!(
        leave.load(Ordering::Relaxed),
        "the daemon never served the last poll"
    );
    (out, batches)
}

#[test]
fn events_follow_prints_batches_until_the_daemon_leaves() {
    let (out, batches) = follow_until_daemon_leaves("follow", &[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        render_event_batch(&batches[0]) + &render_event_batch(&batches[1])
    );
    assert_eq!(text(&out.stdout).lines().count(), 3);
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("fwdctl: fwd went away, stopped following events: "),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    let (out, batches) = follow_until_daemon_leaves("follow-json", &["--json"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let printed: Vec<EventRecord> = text(&out.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let expected: Vec<EventRecord> = batches.into_iter().flat_map(|b| b.events).collect();
    assert_eq!(printed, expected);
    assert!(text(&out.stderr).starts_with("fwdctl: fwd went away, stopped following events: "));
}

#[test]
fn follow_without_daemon_exits_3() {
    let dir = TempDir::new("follow-none");
    let sock = dir.sock();
    let out = run(&mut fwdctl(&[
        "--socket",
        sock.to_str().unwrap(),
        "events",
        "--follow",
    ]));
    assert_eq!(out.status.code(), Some(3));
    assert!(out.stdout.is_empty());
    assert!(text(&out.stderr).starts_with("fwdctl: fwd is not running"));
}
