//! Port forwards through fwd: an iperf3 server on a LAN host, reached from the internet
//! namespace through each WAN's address and forwarded port, sees the real client, and its
//! answers leave by the WAN the connection came in on (while the balancer prefers the
//! other WAN for new flows). Each test builds its own topology and removes it, also on
//! failure.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ctl::protocol::{Reply, Request};
use netns_tests::plan::{self, SERVER};
use netns_tests::{parse_iperf3_tcp, parse_iperf3_udp, require_tools_or_skip, Fwd, Topology};

const TOOLS: &[&str] = &["iperf3"];
const FORWARDED: u16 = 8080;
const SERVER_PORT: u16 = 5301;

/// Runs `iperf3 -s -1 -J` on LAN host 0, then `client_args` from the internet namespace
/// (bound to the internet server's address) against WAN `wan`'s forwarded port: the
/// client's JSON and the server's.
fn through(topo: &Topology, wan: usize, client_args: &[&str]) -> (String, String) {
    through_port(topo, None, wan, FORWARDED, client_args)
}

/// [`through`] to external port `forwarded`, the client in the internet namespace (`None`)
/// or on LAN host `k` (`Some(k)`: a hairpin through the forward).
fn through_port(
    topo: &Topology,
    from: Option<usize>,
    wan: usize,
    forwarded: u16,
    client_args: &[&str],
) -> (String, String) {
    static RUN: AtomicUsize = AtomicUsize::new(0);
    let run = RUN.fetch_add(1, Ordering::Relaxed);
    let log = topo.workdir().join(format!("server-{run}.json"));
    let port = SERVER_PORT.to_string();
    let server = topo
        .host(0)
        .spawn(&["iperf3", "-s", "-1", "-J", "-p", &port], &log)
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let (addr, fport, bind) = (
        plan::wan_router(wan).to_string(),
        forwarded.to_string(),
        SERVER.to_string(),
    );
    let mut args = vec!["iperf3", "-J", "-c", &addr, "-p", &fport];
    if from.is_none() {
        args.extend_from_slice(&["-B", &bind]);
    }
    args.extend_from_slice(&["-t", "1", "--connect-timeout", "3000"]);
    args.extend_from_slice(client_args);
    let client_ns = from.map_or_else(|| topo.internet(), |k| topo.host(k));
    let client = client_ns
        .exec_timeout(&args, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("through isp{wan}: {e}"));
    topo.host(0).wait_exit(server, Duration::from_secs(10));
    (client, std::fs::read_to_string(&log).unwrap())
}

/// The client address the iperf3 server saw (its JSON `start.connected[0].remote_host`).
fn remote_host(server_json: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(server_json).unwrap();
    v["start"]["connected"][0]["remote_host"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn a_port_forward_is_reached_through_each_wan_and_answers_by_it() {
    if !require_tools_or_skip(
        "a_port_forward_is_reached_through_each_wan_and_answers_by_it",
        TOOLS,
    ) {
        return;
    }
    let topo = Topology::builder().wans(2).hosts(2).build().unwrap();
    // isp0 weighs 100: the balancer sends nearly every new LAN flow there
    let config = format!(
        "{}\n[[forward]]\nname = \"iperf\"\nproto = \"both\"\nport = {FORWARDED}\nto = \"{}\"\n\
         to_port = {SERVER_PORT}\n",
        plan::fwd_config_with(&[100, 1], ""),
        plan::lan_host(0)
    );
    let fwd = Fwd::start(&topo, &config).unwrap();
    for wan in [1, 0] {
        let (client, server) = through(&topo, wan, &[]);
        let mbps = parse_iperf3_tcp(&client).unwrap_or_else(|e| panic!("isp{wan}: {e}\n{client}"));
        assert!(mbps > 1.0, "isp{wan}: {mbps} Mbit/s");
        assert_eq!(
            remote_host(&server),
            SERVER.to_string(),
            "the server sees the real client"
        );
        let (client, _) = through(&topo, wan, &["-u", "-b", "5M", "-l", "1200"]);
        let udp = parse_iperf3_udp(&client).unwrap_or_else(|e| panic!("isp{wan}: {e}\n{client}"));
        assert!(
            udp.mbps > 1.0 && udp.loss_percent < 50.0,
            "isp{wan}: {udp:?}"
        );
    }
    // fwd's view: each connection on the WAN it came in on, named by its forward
    let Reply::Rules(rules) = fwd.request(&Request::Rules).unwrap() else {
        panic!("rules");
    };
    let hits = rules.forwards[0].hits;
    // iperf3 opens a control and a data connection (UDP: a control connection and a flow)
    assert!(hits >= 8, "{:?}", rules.forwards);
    let unforwarded = topo.internet().exec_timeout(
        &[
            "iperf3",
            "-c",
            &plan::wan_router(0).to_string(),
            "-p",
            "8081",
            "-t",
            "1",
            "--connect-timeout",
            "1000",
        ],
        Duration::from_secs(10),
    );
    assert!(
        unforwarded.is_err(),
        "port 8081 is not forwarded: {unforwarded:?}"
    );

    // a reload moves the forward to port 8081 of isp1 alone: the old port closes, the new
    // one opens (the kernel's rules or the XDP program's map follow)
    fwd.write_config(&config.replace(
        &format!("port = {FORWARDED}"),
        "port = 8081\nwan = \"isp1\"",
    ))
    .unwrap();
    let out = fwd.fwdctl(&["reload"]).unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // the daemon's main loop applies the steering within 50 ms of the reload
    std::thread::sleep(Duration::from_millis(500));
    let (client, _) = through_port(&topo, None, 1, 8081, &[]);
    let mbps = parse_iperf3_tcp(&client).unwrap_or_else(|e| panic!("after reload: {e}\n{client}"));
    assert!(mbps > 1.0, "after reload: {mbps} Mbit/s");
    let closed = topo.internet().exec_timeout(
        &[
            "iperf3",
            "-c",
            &plan::wan_router(1).to_string(),
            "-p",
            &FORWARDED.to_string(),
            "-t",
            "1",
            "--connect-timeout",
            "1000",
        ],
        Duration::from_secs(10),
    );
    assert!(closed.is_err(), "the old port is closed: {closed:?}");
    // hairpin: LAN host 1 reaches the server through isp1's address and forwarded port,
    // the server seeing it at isp1's address
    let (client, server) = through_port(&topo, Some(1), 1, 8081, &[]);
    let mbps = parse_iperf3_tcp(&client).unwrap_or_else(|e| panic!("hairpin: {e}\n{client}"));
    assert!(mbps > 1.0, "hairpin: {mbps} Mbit/s");
    assert_eq!(remote_host(&server), plan::wan_router(1).to_string());
    fwd.stop().unwrap();
}
