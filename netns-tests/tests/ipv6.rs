//! IPv6 while fwd forwards IPv4 only: on either backend the box's IPv6 stays the kernel's
//! (fwd's XDP program passes it; the TUN steering routes IPv4 only), so neighbour discovery
//! and the router's own IPv6 keep working beside fwd, and fwd counts no IPv6 packet.
//! Each test builds its own topology and removes it, also on failure.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use netns_tests::plan::{self, HOST_IF, LAN_IF};
use netns_tests::{require_tools_or_skip, Fwd, Topology};

const ROUTER_V6: &str = "fd00:1::1";
const HOST_V6: &str = "fd00:1::10";

#[test]
fn neighbour_discovery_and_the_routers_ipv6_work_beside_fwd() {
    if !require_tools_or_skip(
        "neighbour_discovery_and_the_routers_ipv6_work_beside_fwd",
        &["ping"],
    ) {
        return;
    }
    let topo = Topology::builder().wans(2).hosts(1).build().unwrap();
    // IPv6 on the one LAN link only (the topology turns it off everywhere)
    for (ns, iface, addr) in [
        (topo.router(), LAN_IF, ROUTER_V6),
        (topo.host(0), HOST_IF, HOST_V6),
    ] {
        let key = format!("net.ipv6.conf.{iface}.disable_ipv6");
        ns.sysctl(&[(&key, "0")]).unwrap();
        ns.exec(&[
            "ip",
            "-6",
            "addr",
            "add",
            &format!("{addr}/64"),
            "dev",
            iface,
            "nodad",
        ])
        .unwrap();
    }
    let fwd = Fwd::start(&topo, &plan::fwd_config_toml(2)).unwrap();
    // the host must resolve the router's address by neighbour discovery, through fwd's
    // XDP program on AF_XDP, then reach the router's own stack
    let out = topo
        .host(0)
        .exec_timeout(
            &["ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", ROUTER_V6],
            Duration::from_secs(15),
        )
        .unwrap();
    assert!(out.contains(" 0% packet loss"), "{out}");
    let neighbours = topo
        .router()
        .exec(&["ip", "-6", "neigh", "show", "dev", LAN_IF])
        .unwrap();
    assert!(
        neighbours.contains(HOST_V6),
        "the router learned the host: {neighbours}"
    );
    for reason in ["unsupported_ipv6", "malformed_ipv6"] {
        assert_eq!(
            fwd.counter(reason).unwrap(),
            0,
            "{reason}: IPv6 is the kernel's"
        );
    }
    // IPv4 through fwd is unaffected
    assert!(topo.host(0).reachable(plan::SERVER));
}
