//! Per-LAN-host caps (`[conntrack] max_sessions_per_host`, `max_ports_per_host`): the drops
//! they count, and a flow refused a port on one WAN going to the next eligible one.

use std::collections::HashMap;

use super::harness::*;
use super::packets::*;
use crate::packet::Medium;
use crate::pipeline::DropReason;

fn capped(caps: &str) -> Router {
    let toml = TOPOLOGY.replace(
        "max_sessions = 4096\nshards = 4",
        &format!("max_sessions = 4096\nshards = 4\n{caps}"),
    );
    assert_ne!(toml, TOPOLOGY);
    Router::with_config(Medium::Ip, &toml)
}

#[test]
fn a_host_at_its_session_cap_is_dropped_and_other_hosts_are_not() {
    let mut router = capped("max_sessions_per_host = 3");
    for port in 6000..6003 {
        router.forward(LAN, &udp((HOST_A, port), (SERVER, 9)).bytes());
    }
    router.expect_drop(
        LAN,
        &udp((HOST_A, 6003), (SERVER, 9)).bytes(),
        DropReason::HostSessionLimit,
    );
    // the same endpoint to another server is a new session too
    router.expect_drop(
        LAN,
        &udp((HOST_A, 6000), (SERVER2, 9)).bytes(),
        DropReason::HostSessionLimit,
    );
    // its sessions still pass, and another host opens flows
    router.forward(LAN, &udp((HOST_A, 6000), (SERVER, 9)).bytes());
    router.forward(LAN, &udp((HOST_B, 6003), (SERVER, 9)).bytes());
    let stats = router.dp.tables.conntrack.stats();
    assert_eq!(stats.host_session_limit, 2);
    assert_eq!(router.counters.drops(DropReason::HostPortLimit), 0);
}

#[test]
fn a_host_at_its_port_cap_on_its_only_wan_is_dropped() {
    // DNS leaves by isp2 alone
    let mut router = capped("max_ports_per_host = 2");
    for port in 6000..6002 {
        let (egress, _) = router.forward(LAN, &udp((HOST_A, port), (SERVER, 53)).bytes());
        assert_eq!(egress, ISP2);
    }
    router.expect_drop(
        LAN,
        &udp((HOST_A, 6002), (SERVER, 53)).bytes(),
        DropReason::HostPortLimit,
    );
    // an endpoint with a port there reuses it; another host has its own ports
    let (egress, _) = router.forward(LAN, &udp((HOST_A, 6001), (SERVER2, 53)).bytes());
    assert_eq!(egress, ISP2);
    let (egress, _) = router.forward(LAN, &udp((HOST_B, 6002), (SERVER, 53)).bytes());
    assert_eq!(egress, ISP2);
    assert_eq!(router.counters.drops(DropReason::HostPortLimit), 1);
    assert_eq!(router.dp.tables.conntrack.stats().host_port_limit, 1);
}

#[test]
fn a_host_at_its_port_cap_on_one_wan_goes_to_the_next_eligible_one() {
    // balanced: isp1 (weight 3) and isp2 (weight 1) in tier 1; each takes two of host A's
    // endpoints, and the flows beyond that are dropped
    let mut router = capped("max_ports_per_host = 2");
    let mut by_wan: HashMap<u8, usize> = HashMap::new();
    let mut dropped = 0;
    for port in 5000..5010 {
        let syn = tcp((HOST_A, port), (SERVER, 443), SYN).bytes();
        match router.send(LAN, &syn).0 {
            crate::pipeline::Verdict::Forward(egress) => *by_wan.entry(egress).or_default() += 1,
            _ => dropped += 1,
        }
    }
    assert_eq!(by_wan.get(&ISP1), Some(&2), "{by_wan:?}");
    assert_eq!(by_wan.get(&ISP2), Some(&2), "{by_wan:?}");
    assert!(by_wan.values().all(|&n| n <= 2), "{by_wan:?}");
    let forwarded: usize = by_wan.values().sum();
    assert_eq!(forwarded + dropped, 10);
    assert_eq!(
        router.counters.drops(DropReason::HostPortLimit),
        dropped as u64
    );
    assert!(dropped > 0);
    assert_eq!(router.counters.drops(DropReason::PortsExhausted), 0);
}
