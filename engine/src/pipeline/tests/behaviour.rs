//! Pipeline behaviour over many flows: weights, tiers, last resort, sticky, endpoint-
//! independent mapping, port exhaustion, table full, Ethernet egress (next hops from the
//! neighbour and route tables).

use std::collections::HashMap;
use std::time::Duration;

use balancer::LinkState;

use super::harness::*;
use super::packets::*;
use crate::neighbors::Mac;
use crate::packet::Medium;
use crate::pipeline::{DropReason, Event, Verdict};

fn big_router() -> Router {
    Router::with_config(
        Medium::Ip,
        &TOPOLOGY.replace("max_sessions = 4096", "max_sessions = 65536"),
    )
}

/// Sends `n` new TCP flows from distinct source ports and counts them per egress.
fn spread(router: &mut Router, n: u16, dst: std::net::Ipv4Addr) -> HashMap<u8, u32> {
    let mut per_egress = HashMap::new();
    for i in 0..n {
        let (egress, _) = router.forward(LAN, &tcp((HOST_A, 1024 + i), (dst, 443), SYN).bytes());
        *per_egress.entry(egress).or_insert(0) += 1;
    }
    per_egress
}

#[test]
fn weights_3_to_1_over_10000_flows() {
    let mut router = big_router();
    let per_egress = spread(&mut router, 10_000, SERVER);
    assert_eq!(per_egress.get(&ISP1), Some(&7_500));
    assert_eq!(per_egress.get(&ISP2), Some(&2_500));
    assert_eq!(
        per_egress.get(&LTE),
        None,
        "tier 2 unused while tier 1 is up"
    );
    assert_eq!(router.dp.tables.conntrack.len(), 10_000);
    assert_eq!(
        router.dp.plan.rule_hits(5),
        10_000,
        "the default rule counted every flow"
    );
}

#[test]
fn tier_failover_and_last_resort() {
    let mut router = big_router();
    router.set_link(0, LinkState::Down);
    let per_egress = spread(&mut router, 100, SERVER);
    assert_eq!(
        per_egress.get(&ISP2),
        Some(&100),
        "the surviving tier-1 member takes all"
    );

    router.set_link(1, LinkState::Down);
    let (egress, out) = router.forward(LAN, &tcp((HOST_A, 5000), (SERVER, 443), SYN).bytes());
    assert_eq!(egress, LTE, "tier 2 takes over when tier 1 is empty");
    assert_eq!(&out[12..16], &LTE_ADDR.octets());

    router.set_link(2, LinkState::Down);
    let input = tcp((HOST_A, 5001), (SERVER, 443), SYN).bytes();
    let (verdict, out) = router.send(LAN, &input);
    assert_eq!(
        verdict,
        Verdict::Forward(LAN),
        "an ICMP host unreachable goes back"
    );
    assert_eq!(router.counters.drops(DropReason::Unreachable), 1);
    assert_eq!(&out[12..16], &LAN_ADDR.octets());
    assert_eq!(&out[16..20], &HOST_A.octets());
    assert_eq!((out[20], out[21]), (3, 1), "type 3 code 1");
    assert_eq!(
        &out[28..28 + input.len()],
        &input[..],
        "the whole original is quoted"
    );
    assert_checksums_valid(&out);

    // Recovery: new flows go back to tier 1 at once.
    router.set_link(0, LinkState::Up);
    let (egress, _) = router.forward(LAN, &tcp((HOST_A, 5002), (SERVER, 443), SYN).bytes());
    assert_eq!(egress, ISP1);
}

/// A TCP connection the main table routes opens no session: its later segments go to the
/// kernel as its SYN did, and do not count as strays. A segment of a blackholed destination
/// is dropped silently, one of an unreachable destination answered as unreachable, and one
/// with no session that would leave by a WAN gets a reset; none of them opens a session or
/// moves the round robin.
#[test]
fn segments_without_a_session_go_where_their_flow_goes() {
    let mut router = Router::new(Medium::Ip);
    let main = (std::net::Ipv4Addr::new(10, 97, 1, 1), 80);
    for flags in [SYN, ACK, PSH_ACK, FIN_ACK, RST] {
        assert_eq!(
            router
                .send(LAN, &tcp((HOST_A, 5100), main, flags).bytes())
                .0,
            Verdict::Kernel,
            "flags {flags:#x}"
        );
    }
    let blackholed = (std::net::Ipv4Addr::new(10, 99, 1, 1), 80);
    router.expect_drop(
        LAN,
        &tcp((HOST_A, 5101), blackholed, ACK).bytes(),
        DropReason::Blackhole,
    );
    let unreachable = (std::net::Ipv4Addr::new(10, 98, 1, 1), 80);
    let (verdict, out) = router.send(LAN, &tcp((HOST_A, 5102), unreachable, ACK).bytes());
    assert_eq!(verdict, Verdict::Forward(LAN));
    assert_eq!(
        (out[9], out[20], out[21]),
        (1, 3, 1),
        "ICMP host unreachable"
    );
    let (verdict, out) = router.send(LAN, &tcp((HOST_A, 5103), (SERVER, 443), ACK).bytes());
    assert_eq!(verdict, Verdict::Forward(LAN));
    assert_eq!((out[9], out[33] & 0x04), (6, 0x04), "a TCP reset");
    assert_eq!(router.counters.drops(DropReason::TcpNotSyn), 1);
    assert_eq!(router.dp.tables.conntrack.len(), 0);
    // the round robin did not move: weights 3:1 still go isp1, isp1, isp2 (one step taken
    // would make it isp1, isp2)
    let egresses: Vec<u8> = (5104..5107)
        .map(|port| {
            let syn = tcp((HOST_A, port), (SERVER, 443), SYN).bytes();
            router.forward(LAN, &syn).0
        })
        .collect();
    assert_eq!(egresses, [ISP1, ISP1, ISP2]);
}

#[test]
fn rule_actions() {
    let mut router = Router::new(Medium::Ip);
    let dns = udp((HOST_A, 3333), (SERVER, 53)).bytes();
    for _ in 0..3 {
        let (egress, _) = router.forward(LAN, &dns);
        assert_eq!(egress, ISP2, "the dns rule pins isp2");
    }
    let to = |ip: [u8; 4]| udp((HOST_A, 3334), (std::net::Ipv4Addr::from(ip), 9)).bytes();
    router.expect_drop(LAN, &to([10, 99, 1, 1]), DropReason::Blackhole);
    assert_eq!(
        router.send(LAN, &to([10, 97, 1, 1])).0,
        Verdict::Kernel,
        "main table"
    );
    let (verdict, _) = router.send(LAN, &to([10, 98, 1, 1]));
    assert_eq!(verdict, Verdict::Forward(LAN));
    assert_eq!(router.counters.drops(DropReason::Unreachable), 1);

    // A pinned WAN that is down: unreachable, never another WAN.
    router.set_link(1, LinkState::Down);
    let (verdict, out) = router.send(LAN, &udp((HOST_A, 3335), (SERVER, 53)).bytes());
    assert_eq!(verdict, Verdict::Forward(LAN));
    assert_eq!(out[20], 3);
}

#[test]
fn sticky_keeps_a_source_on_one_wan() {
    let mut router = big_router();
    let bank = std::net::Ipv4Addr::new(100, 64, 1, 1);
    for host in 10..30u8 {
        let src = std::net::Ipv4Addr::new(192, 168, 1, host);
        let mut seen = Vec::new();
        for port in 0..10u16 {
            let (egress, _) =
                router.forward(LAN, &tcp((src, 30000 + port), (bank, 443), SYN).bytes());
            seen.push(egress);
        }
        assert!(
            seen.iter().all(|&e| e == seen[0]),
            "host .{host} moved: {seen:?}"
        );
    }
    // Different sources still spread over both WANs.
    let mut wans = std::collections::HashSet::new();
    for host in 10..30u8 {
        let src = std::net::Ipv4Addr::new(192, 168, 1, host);
        wans.insert(
            router
                .forward(LAN, &tcp((src, 31000), (bank, 443), SYN).bytes())
                .0,
        );
    }
    assert_eq!(wans.len(), 2);
}

#[test]
fn endpoint_independent_mapping_on_one_wan() {
    let mut router = big_router();
    // The same internal endpoint to many destinations: one external address and port, even
    // though the weighted round robin alone would have spread these flows.
    let mut externals = Vec::new();
    for i in 0..8u8 {
        let dst = std::net::Ipv4Addr::new(8, 8, 8, i + 1);
        let (egress, out) = router.forward(LAN, &udp((HOST_A, 4500), (dst, 3478)).bytes());
        externals.push((egress, out[12..16].to_vec(), out[20..22].to_vec()));
    }
    assert!(
        externals.iter().all(|e| *e == externals[0]),
        "{externals:?}"
    );
    // Replies from every one of those destinations reach the host.
    let (wan_iface, ext_ip, ext_port) = externals[0].clone();
    let ext = (
        std::net::Ipv4Addr::new(ext_ip[0], ext_ip[1], ext_ip[2], ext_ip[3]),
        u16::from_be_bytes([ext_port[0], ext_port[1]]),
    );
    for i in 0..8u8 {
        let dst = std::net::Ipv4Addr::new(8, 8, 8, i + 1);
        let (egress, out) = router.forward(wan_iface, &udp((dst, 3478), ext).bytes());
        assert_eq!(egress, LAN);
        assert_eq!(out, udp((dst, 3478), (HOST_A, 4500)).ttl(63).bytes());
    }
}

#[test]
fn endpoint_independent_mapping_follows_health() {
    let mut router = big_router();
    let (first, _) = router.forward(LAN, &udp((HOST_A, 4600), (SERVER, 3478)).bytes());
    // The mapped WAN goes down: a new flow of the same endpoint takes the other WAN.
    router.set_link(usize::from(first - 1), LinkState::Down);
    let (second, _) = router.forward(LAN, &udp((HOST_A, 4600), (SERVER2, 3478)).bytes());
    assert_ne!(first, second);
    assert_ne!(second, LTE);
}

#[test]
fn two_hosts_same_port_get_distinct_external_ports() {
    let mut router = big_router();
    router.set_link(1, LinkState::Down); // everything out isp1
    let (_, a) = router.forward(LAN, &udp((HOST_A, 25050), (SERVER, 9)).bytes());
    let (_, b) = router.forward(LAN, &udp((HOST_B, 25050), (SERVER, 9)).bytes());
    assert_eq!(&a[20..22], &25050u16.to_be_bytes(), "first keeps its port");
    assert_ne!(&b[20..22], &a[20..22], "second gets another");
    let port = u16::from_be_bytes([b[20], b[21]]);
    assert!((20000..=29999).contains(&port));
}

#[test]
fn port_exhaustion_is_counted() {
    let mut router = big_router();
    router.set_link(0, LinkState::Down);
    router.set_link(1, LinkState::Down);
    // lte owns three ports.
    for i in 0..3u16 {
        let (egress, _) = router.forward(LAN, &udp((HOST_A, 7000 + i), (SERVER, 9)).bytes());
        assert_eq!(egress, LTE);
    }
    router.expect_drop(
        LAN,
        &udp((HOST_A, 7003), (SERVER, 9)).bytes(),
        DropReason::PortsExhausted,
    );
    // After the UDP timeout the ports come back.
    router.advance(Duration::from_secs(301));
    router.dp.tables.conntrack.expire(router.now, usize::MAX);
    let (egress, _) = router.forward(LAN, &udp((HOST_A, 7003), (SERVER, 9)).bytes());
    assert_eq!(egress, LTE);
}

#[test]
fn table_full_refuses_and_keeps_existing_flows() {
    let toml = TOPOLOGY.replace(
        "max_sessions = 4096\nshards = 4",
        "max_sessions = 4\nshards = 1\non_full = \"refuse\"",
    );
    let mut router = Router::with_config(Medium::Ip, &toml);
    for i in 0..4u16 {
        router.forward(LAN, &udp((HOST_A, 8000 + i), (SERVER, 9)).bytes());
    }
    router.expect_drop(
        LAN,
        &udp((HOST_A, 8004), (SERVER, 9)).bytes(),
        DropReason::TableFull,
    );
    // Existing flows still pass.
    router.forward(LAN, &udp((HOST_A, 8000), (SERVER, 9)).bytes());
    assert_eq!(router.dp.tables.conntrack.len(), 4);
}

#[test]
fn table_full_evicts_the_longest_idle() {
    let toml = TOPOLOGY.replace(
        "max_sessions = 4096\nshards = 4",
        "max_sessions = 4\nshards = 1\non_full = \"evict\"",
    );
    let mut router = Router::with_config(Medium::Ip, &toml);
    for i in 0..4u16 {
        router.forward(LAN, &udp((HOST_A, 8000 + i), (SERVER, 9)).bytes());
        router.advance(Duration::from_secs(1));
    }
    // Refresh the oldest; 8001 is now the longest idle.
    router.forward(LAN, &udp((HOST_A, 8000), (SERVER, 9)).bytes());
    router.forward(LAN, &udp((HOST_A, 8004), (SERVER, 9)).bytes());
    assert_eq!(router.dp.tables.conntrack.len(), 4);
    let mut ports = Vec::new();
    router
        .dp
        .tables
        .conntrack
        .for_each_session(|s| ports.push(s.key.src.port));
    ports.sort_unstable();
    assert_eq!(ports, vec![8000, 8002, 8003, 8004]);
}

const HOST_MAC: Mac = [2, 0, 0, 0, 0, 0x10];
const LAN_MAC: Mac = [2, 0, 0, 0, 1, 0];
const ISP1_MAC: Mac = [2, 0, 0, 0, 1, 1];
const GW1_MAC: Mac = [2, 0, 0, 0, 2, 1];

/// Has `router` know its own MACs on the LAN and on isp1, and isp1's gateway's.
fn know_lan_and_isp1(router: &mut Router) {
    router.neighbors.set_interface(LAN, LAN_MAC);
    router.neighbors.set_interface(ISP1, ISP1_MAC);
    router
        .neighbors
        .set_host(ISP1, std::net::Ipv4Addr::new(198, 51, 100, 1), GW1_MAC);
}

#[test]
fn ethernet_egress_gets_next_hop_macs() {
    let mut router = Router::new(Medium::Ethernet);
    let (host_mac, lan_mac, isp1_mac, gw1_mac) = (HOST_MAC, LAN_MAC, ISP1_MAC, GW1_MAC);
    let input = tcp((HOST_A, 25000), (SERVER, 443), SYN).frame(host_mac, lan_mac);
    // no MACs known: the translated frame goes to the kernel, which resolves the next hop
    let (verdict, out) = router.send(LAN, &input);
    assert_eq!(verdict, Verdict::Kernel);
    assert_eq!(router.counters.events(Event::NoNeighbor), 1);
    assert_eq!(&out[14 + 12..14 + 16], &ISP1_ADDR.octets(), "translated");

    know_lan_and_isp1(&mut router);
    router.neighbors.set_host(LAN, HOST_A, host_mac);
    let (egress, out) = router.forward(LAN, &input);
    assert_eq!(egress, ISP1);
    assert_eq!(
        out,
        tcp((ISP1_ADDR, 25000), (SERVER, 443), SYN)
            .ttl(63)
            .frame(isp1_mac, gw1_mac)
    );
    let reply = tcp((SERVER, 443), (ISP1_ADDR, 25000), SYN_ACK).frame(gw1_mac, isp1_mac);
    let (egress, out) = router.forward(ISP1, &reply);
    assert_eq!(egress, LAN);
    assert_eq!(
        out,
        tcp((SERVER, 443), (HOST_A, 25000), SYN_ACK)
            .ttl(63)
            .frame(lan_mac, host_mac)
    );

    // ARP goes to the kernel; a runt frame is malformed.
    let mut arp = vec![0xff; 6];
    arp.extend_from_slice(&host_mac);
    arp.extend_from_slice(&[0x08, 0x06]);
    arp.extend_from_slice(&[0; 28]);
    assert_eq!(router.send(LAN, &arp).0, Verdict::Kernel);
    router.expect_drop(LAN, &[0u8; 10], DropReason::MalformedL2);
}

/// A host in a LAN's extra subnet sits behind another router on that LAN: its replies go to
/// that router's MAC, as the route table says, not to the kernel for want of the host's own.
#[test]
fn a_reply_to_an_extra_subnet_goes_to_the_lan_router_of_its_route() {
    use std::net::Ipv4Addr;
    let mut router = Router::with_config(
        Medium::Ethernet,
        &TOPOLOGY.replace(
            "address = \"192.168.1.1/24\"\n",
            "address = \"192.168.1.1/24\"\nextra_subnets = [\"10.20.0.0/16\"]\n",
        ),
    );
    let far_host = Ipv4Addr::new(10, 20, 3, 4);
    let lan_router = Ipv4Addr::new(192, 168, 1, 254);
    let lan_router_mac = [2, 0, 0, 0, 0, 0xfe];
    let (lan_mac, isp1_mac, gw1_mac) = (LAN_MAC, ISP1_MAC, GW1_MAC);
    know_lan_and_isp1(&mut router);
    router.neighbors.set_host(LAN, lan_router, lan_router_mac);
    router
        .neighbors
        .set_route(LAN, "192.168.1.0/24".parse().unwrap(), None);
    // a route out of a WAN does not change that WAN's next hop (its configured gateway)
    router.neighbors.set_route(
        ISP1,
        "0.0.0.0/0".parse().unwrap(),
        Some(Ipv4Addr::new(198, 51, 100, 9)),
    );

    let out = tcp((far_host, 25000), (SERVER, 443), SYN).frame(lan_router_mac, lan_mac);
    let (egress, sent) = router.forward(LAN, &out);
    assert_eq!(egress, ISP1);
    assert_eq!(
        &sent[0..6],
        &gw1_mac,
        "a WAN's next hop is its configured gateway"
    );
    let reply = tcp((SERVER, 443), (ISP1_ADDR, 25000), SYN_ACK).frame(gw1_mac, isp1_mac);

    // no route to the extra subnet: its host is looked up on-link, missed, and the frame
    // goes (translated) to the kernel
    let (verdict, _) = router.send(ISP1, &reply);
    assert_eq!(verdict, Verdict::Kernel);
    assert_eq!(router.counters.events(Event::NoNeighbor), 1);

    // the kernel's route names the LAN router: the reply goes to it
    router
        .neighbors
        .set_route(LAN, "10.20.0.0/16".parse().unwrap(), Some(lan_router));
    let (egress, sent) = router.forward(ISP1, &reply);
    assert_eq!(egress, LAN);
    assert_eq!(
        sent,
        tcp((SERVER, 443), (far_host, 25000), SYN_ACK)
            .ttl(63)
            .frame(lan_mac, lan_router_mac)
    );
    assert_eq!(router.counters.events(Event::NoNeighbor), 1, "no new miss");
    // a LAN host on-link is still its own next hop
    router.neighbors.set_host(LAN, HOST_A, HOST_MAC);
    router.forward(
        LAN,
        &tcp((HOST_A, 25001), (SERVER, 443), SYN).frame(HOST_MAC, lan_mac),
    );
    let (egress, sent) = router.forward(
        ISP1,
        &tcp((SERVER, 443), (ISP1_ADDR, 25001), SYN_ACK).frame(gw1_mac, isp1_mac),
    );
    assert_eq!((egress, &sent[0..6]), (LAN, &HOST_MAC[..]));
}

#[test]
fn ttl_expiry_on_ethernet_swaps_macs() {
    let mut router = Router::new(Medium::Ethernet);
    let host_mac = [2, 0, 0, 0, 0, 0x10];
    let lan_mac = [2, 0, 0, 0, 1, 0];
    let input = udp((HOST_A, 33434), (SERVER, 33434))
        .ttl(1)
        .frame(host_mac, lan_mac);
    let (egress, out) = router.forward(LAN, &input);
    assert_eq!(egress, LAN);
    assert_eq!(&out[0..6], &host_mac);
    assert_eq!(&out[6..12], &lan_mac);
    assert_eq!(out[14 + 20], 11, "time exceeded");
    assert_checksums_valid(&out[14..]);
}

#[test]
fn icmp_errors_are_rate_limited() {
    let mut router = Router::new(Medium::Ip);
    let expired = udp((HOST_A, 33434), (SERVER, 33434)).ttl(1).bytes();
    let sent = (0..200)
        .filter(|_| matches!(router.send(LAN, &expired).0, Verdict::Forward(_)))
        .count();
    assert_eq!(sent, 50, "the burst, then nothing until time passes");
    assert_eq!(router.counters.drops(DropReason::TtlExpired), 200);
    router.advance(Duration::from_millis(10));
    let sent = (0..200)
        .filter(|_| matches!(router.send(LAN, &expired).0, Verdict::Forward(_)))
        .count();
    assert_eq!(sent, 10);
}

#[test]
fn a_wan_out_of_ports_passes_new_flows_to_the_next_eligible_one() {
    // isp2 has two ports; the round robin would give it a quarter of the flows
    let topology = TOPOLOGY.replacen(
        "address = \"203.0.113.2/30\"\ngateway = \"203.0.113.1\"\nnat_ports = \"20000-29999\"",
        "address = \"203.0.113.2/30\"\ngateway = \"203.0.113.1\"\nnat_ports = \"20000-20001\"",
        1,
    );
    assert_ne!(topology, TOPOLOGY);
    let mut router = Router::with_config(Medium::Ip, &topology);
    let mut by_wan: HashMap<u8, usize> = HashMap::new();
    for port in 5000..5020 {
        let syn = tcp((HOST_A, port), (SERVER, 443), SYN).bytes();
        *by_wan.entry(router.forward(LAN, &syn).0).or_default() += 1;
    }
    assert_eq!(router.counters.drops(DropReason::PortsExhausted), 0);
    assert_eq!(by_wan.get(&ISP2), Some(&2), "{by_wan:?}");
    assert_eq!(by_wan.get(&ISP1), Some(&18), "{by_wan:?}");
}

#[test]
fn lan_sources_outside_the_lans_subnets_are_not_forwarded() {
    let mut router = Router::new(Medium::Ip);
    let spoofed = std::net::Ipv4Addr::new(10, 66, 0, 5);
    router.expect_drop(
        LAN,
        &tcp((spoofed, 5100), (SERVER, 443), SYN).bytes(),
        DropReason::LanSourceInvalid,
    );
    router.expect_drop(
        LAN,
        &udp((spoofed, 5100), (SERVER, 53)).bytes(),
        DropReason::LanSourceInvalid,
    );
    assert_eq!(router.dp.tables.conntrack.len(), 0, "no session");
    // traffic for the router itself is the kernel's to judge
    let (verdict, _) = router.send(LAN, &udp((spoofed, 5100), (LAN_ADDR, 53)).bytes());
    assert_eq!(verdict, Verdict::Kernel);
    // the LAN's own hosts pass
    router.forward(LAN, &tcp((HOST_A, 5100), (SERVER, 443), SYN).bytes());
}

#[test]
fn tcp_resets_share_the_rate_limit_of_icmp_errors() {
    let mut router = Router::new(Medium::Ip);
    // stray resets get no reset and take no token
    let stray_reset = tcp((HOST_A, 5100), (SERVER, 443), RST).bytes();
    for _ in 0..100 {
        router.expect_drop(LAN, &stray_reset, DropReason::TcpNotSyn);
    }
    assert_eq!(router.counters.events(Event::TcpResetsSuppressed), 0);
    let stray = tcp((HOST_A, 5100), (SERVER, 443), ACK).bytes();
    let sent = (0..40)
        .filter(|_| matches!(router.send(LAN, &stray).0, Verdict::Forward(_)))
        .count();
    assert_eq!(sent, 40);
    let expired = udp((HOST_A, 33434), (SERVER, 33434)).ttl(1).bytes();
    let sent = (0..20)
        .filter(|_| matches!(router.send(LAN, &expired).0, Verdict::Forward(_)))
        .count();
    assert_eq!(sent, 10, "what the resets left of the burst");
    let sent = (0..20)
        .filter(|_| matches!(router.send(LAN, &stray).0, Verdict::Forward(_)))
        .count();
    assert_eq!(sent, 0);
    assert_eq!(router.counters.events(Event::TcpResetsSent), 40);
    assert_eq!(router.counters.events(Event::TcpResetsSuppressed), 20);
    assert_eq!(router.counters.drops(DropReason::TcpNotSyn), 160);
    router.advance(Duration::from_millis(10));
    assert!(matches!(router.send(LAN, &stray).0, Verdict::Forward(_)));
}

/// `packet` with DF set (`df`) or cleared, and its header checksum made right again.
fn set_df(mut packet: Vec<u8>, df: bool) -> Vec<u8> {
    packet[6] = if df {
        packet[6] | 0x40
    } else {
        packet[6] & !0x40
    };
    packet[10..12].copy_from_slice(&[0, 0]);
    let sum = crate::packet::checksum::full(&packet[..20]);
    packet[10..12].copy_from_slice(&sum.to_be_bytes());
    packet
}

#[test]
fn packets_larger_than_the_egress_mtu_get_fragmentation_needed_or_are_dropped() {
    static PAYLOAD: [u8; 1300] = [7; 1300];
    for path in [Path::Batch, Path::General] {
        let mut router = Router::new(Medium::Ip);
        router.path = path;
        router.mtus = vec![1500, 1280, 1280, 1280];
        let big = tcp((HOST_A, 26000), (SERVER, 443), SYN).payload(&PAYLOAD);
        let df = set_df(big.bytes(), true);
        assert_eq!(df.len(), 1340);
        // DF: the host hears the WAN's MTU from the router, quoting its packet as it sent it
        let (egress, out) = router.forward(LAN, &df);
        assert_eq!(egress, LAN, "{path:?}");
        assert_eq!((out[20], out[21]), (3, 4), "fragmentation needed");
        assert_eq!(u16::from_be_bytes([out[26], out[27]]), 1280, "next-hop MTU");
        assert_eq!(&out[12..16], &LAN_ADDR.octets());
        assert_eq!(&out[16..20], &HOST_A.octets());
        assert_eq!(&out[28..48], &df[..20], "the quote is untranslated");
        assert_checksums_valid(&out);
        assert_eq!(router.counters.drops(DropReason::TooBig), 1);
        // without DF: dropped (fwd does not fragment)
        router.expect_drop(LAN, &set_df(big.bytes(), false), DropReason::TooBig);
        // a packet that fits leaves, and a later too-big one of its flow is answered too
        let fits = tcp((HOST_A, 26001), (SERVER, 443), SYN).payload(&PAYLOAD[..1200]);
        let (egress, _) = router.forward(LAN, &fits.bytes());
        assert_ne!(egress, LAN);
        let later = tcp((HOST_A, 26001), (SERVER, 443), ACK).payload(&PAYLOAD);
        let later = set_df(later.bytes(), true);
        let (egress, out) = router.forward(LAN, &later);
        assert_eq!((egress, out[20], out[21]), (LAN, 3, 4), "{path:?}");
        assert_eq!(router.counters.drops(DropReason::TooBig), 3);
    }
}
