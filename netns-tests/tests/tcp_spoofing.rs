//! Off-path attacks on connections through fwd: resets and FINs with the right addresses and
//! ports but sequence numbers outside the window, sent from the internet namespace while a
//! download runs, are dropped by fwd (`tcp_out_of_window`) and leave the download and fwd's
//! view of its connections untouched. Each test builds its own topology and removes it, also
//! on failure.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddrV4;
use std::time::Duration;

use netns_tests::plan::{self, IPERF_PORT, SERVER};
use netns_tests::{parse_iperf3_tcp, require_tools_or_skip, Fwd, Topology};

const TOOLS: &[&str] = &["iperf3"];

fn spoof_bin() -> &'static str {
    env!("CARGO_BIN_EXE_tcp-spoof")
}

#[test]
fn spoofed_resets_and_fins_leave_a_running_download_untouched() {
    let test = "spoofed_resets_and_fins_leave_a_running_download_untouched";
    if !require_tools_or_skip(test, TOOLS) {
        return;
    }
    let topo = Topology::builder().wans(2).build().unwrap();
    topo.start_iperf3().unwrap();
    let fwd = Fwd::start(&topo, &plan::fwd_config_toml(2)).unwrap();
    let log = topo.workdir().join("download.json");
    let (server, port) = (SERVER.to_string(), IPERF_PORT.to_string());
    let args = [
        "iperf3",
        "-J",
        "-R",
        "-c",
        &server,
        "-p",
        &port,
        "-t",
        "5",
        "--connect-timeout",
        "3000",
    ];
    let pid = topo.host(0).spawn(&args, &log).unwrap();
    std::thread::sleep(Duration::from_millis(1500));

    // the attacker sits beside the server: it sees the connections' segments arrive, and
    // sends each client resets and FINs at least 2^30 from the sequence numbers in use
    let local = SocketAddrV4::new(SERVER, IPERF_PORT);
    let report = topo
        .internet()
        .exec(&[
            spoof_bin(),
            "--local",
            &local.to_string(),
            "--listen-ms",
            "500",
        ])
        .unwrap();
    let report: serde_json::Value = serde_json::from_str(report.trim()).unwrap();
    let (peers, sent) = (
        report["peers"].as_u64().unwrap(),
        report["sent"].as_u64().unwrap(),
    );
    // the data connection at least (iperf3's control connection is quiet meanwhile)
    assert!(peers >= 1, "{report}");
    assert_eq!(sent, peers * 6, "{report}");

    // fwd still tracks both as established...
    let flows = fwd.flows(None, None).unwrap().flows;
    let states: Vec<&str> = flows
        .iter()
        .filter(|f| f.remote == local)
        .map(|f| f.state.as_str())
        .collect();
    assert!(
        states.len() >= 2 && states.iter().all(|s| *s == "established"),
        "{flows:?}"
    );
    // ...and the download runs to its end
    let status = topo.host(0).wait_exit(pid, Duration::from_secs(15));
    let json = std::fs::read_to_string(&log).unwrap();
    assert!(status.is_some_and(|s| s.success()), "{status:?}\n{json}");
    let mbps = parse_iperf3_tcp(&json).unwrap();
    assert!(mbps > 1.0, "{mbps} Mbit/s");
    let dropped = fwd.counter("tcp_out_of_window").unwrap();
    assert!(
        dropped >= sent,
        "{dropped} of {sent} spoofed segments counted"
    );
    println!("download {mbps:.0} Mbit/s; {sent} spoofed segments, {dropped} out of the window");
    fwd.stop().unwrap();
}
