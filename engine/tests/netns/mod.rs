//! What the engine's namespace tests share: each test runs in a throwaway network namespace
//! (deleted by a guard, also on failure), inside a re-execution of its own test binary.
//!
//! Needs root and iproute2's `ip`; otherwise a test prints one "skipped" line and passes,
//! unless `FWD_REQUIRE_NETNS=1`, which turns a skip into a failure. The outer run creates the
//! namespace (`fwdst-<pid>-<n>`) and re-executes the binary inside it (`ip netns exec`) with
//! `FWD_NETNS_INNER` set, filtered to that one test: the inner run does the work; the outer
//! one waits (at most [`CHILD_TIMEOUT`]) and reports.

#![allow(dead_code, clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const INNER: &str = "FWD_NETNS_INNER";
pub const REQUIRE: &str = "FWD_REQUIRE_NETNS";
pub const CHILD_TIMEOUT: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------------------
// Outer side: namespaces and re-execution.

/// Deletes the namespace when dropped.
pub struct Netns {
    pub name: String,
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

pub fn skip_reason() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1).map(String::from));
    if euid.as_deref() != Some("0") {
        return Some("not running as root".into());
    }
    match Command::new("ip").arg("-V").output() {
        Ok(o) if o.status.success() => None,
        _ => Some("no working `ip` command (iproute2)".into()),
    }
}

pub fn skip(test: &str, why: &str) {
    if std::env::var(REQUIRE).as_deref() == Ok("1") {
        panic!("{test}: cannot run ({why}) and {REQUIRE}=1");
    }
    println!("skipped {test}: {why}");
}

/// Runs `body` inside a fresh namespace (see the file's documentation).
pub fn in_netns(test: &str, body: fn()) {
    if std::env::var_os(INNER).is_some() {
        body();
        return;
    }
    if let Some(why) = skip_reason() {
        return skip(test, &why);
    }
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    let name = format!(
        "fwdst-{}-{}",
        std::process::id(),
        COUNT.fetch_add(1, Ordering::SeqCst)
    );
    let added = Command::new("ip").args(["netns", "add", &name]).output();
    match added {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            return skip(
                test,
                &format!(
                    "ip netns add: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                ),
            )
        }
        Err(e) => return skip(test, &format!("ip netns add: {e}")),
    }
    let ns = Netns { name };
    let out_path = std::env::temp_dir().join(format!("{}.out", ns.name));
    let output = run_child(&ns.name, test, &[], &out_path);
    let _ = std::fs::remove_file(&out_path);
    print!("{output}");
    assert!(
        output.contains("test result: ok. 1 passed"),
        "{test} failed inside namespace {}",
        ns.name
    );
}

/// Runs this test binary, filtered to `test`, inside namespace `ns` (or in the current
/// namespace if `ns` is empty), with `env` added; returns its stdout and stderr. Panics if it
/// runs longer than [`CHILD_TIMEOUT`].
pub fn run_child(ns: &str, test: &str, env: &[(&str, &str)], out_path: &PathBuf) -> String {
    let exe = std::env::current_exe().unwrap();
    let out = std::fs::File::create(out_path).unwrap();
    let err = out.try_clone().unwrap();
    let mut cmd = if ns.is_empty() {
        Command::new(&exe)
    } else {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).arg(&exe);
        c
    };
    cmd.args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(INNER, "1")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > CHILD_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{test}: timed out after {CHILD_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::read_to_string(out_path).unwrap_or_default()
}

pub fn ip(args: &str) -> String {
    let out = Command::new("ip")
        .args(args.split_whitespace())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ip {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The index of interface `name` in this namespace.
pub fn ifindex(name: &str) -> u32 {
    std::fs::read_to_string(format!("/sys/class/net/{name}/ifindex"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}
