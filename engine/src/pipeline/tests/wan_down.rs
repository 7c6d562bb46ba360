//! Flows pinned to a WAN that goes down (`[health] on_wan_down`): UDP and ICMP continue on a
//! live WAN (`migrate`) or get an ICMP host unreachable (`reset`), TCP connections get a reset
//! towards the LAN client, and `keep` leaves everything where it was; once a better tier is
//! back, UDP flows left on the backup tier return to it.

use balancer::LinkState;
use etherparse::{NetSlice, SlicedPacket, TransportSlice};

use super::harness::*;
use super::packets::*;
use crate::packet::Medium;
use crate::pipeline::{DropReason, Event, Verdict};

/// The router of the harness with `on_wan_down` set (`None`: the default).
fn router(on_wan_down: Option<&str>) -> Router {
    let toml = match on_wan_down {
        Some(mode) => format!("{TOPOLOGY}\n[health]\non_wan_down = \"{mode}\"\n"),
        None => TOPOLOGY.to_owned(),
    };
    Router::with_config(Medium::Ip, &toml)
}

/// (src, dst, sport, dport, seq, ack, flags rst/ack) of a TCP packet.
fn tcp_fields(bytes: &[u8]) -> ([u8; 4], [u8; 4], u16, u16, u32, u32, bool, bool) {
    let p = SlicedPacket::from_ip(bytes).unwrap();
    let Some(NetSlice::Ipv4(ip)) = p.net else {
        panic!("not IPv4")
    };
    let Some(TransportSlice::Tcp(t)) = p.transport else {
        panic!("not TCP")
    };
    (
        ip.header().source(),
        ip.header().destination(),
        t.source_port(),
        t.destination_port(),
        t.sequence_number(),
        t.acknowledgment_number(),
        t.rst(),
        t.ack(),
    )
}

/// A TCP segment from HOST_A:`sport` to SERVER:443 with ACK number `ack`.
fn client_ack(sport: u16, ack: u32) -> Vec<u8> {
    let mut b = etherparse::PacketBuilder::ipv4(HOST_A.octets(), SERVER.octets(), 64)
        .tcp(sport, 443, 5000, 64240)
        .ack(ack);
    b = b.psh();
    let mut out = Vec::new();
    b.write(&mut out, b"more data").unwrap();
    out
}

#[test]
fn udp_and_icmp_flows_migrate_to_a_live_wan() {
    let mut r = router(None);
    // a port inside both WANs' NAT ranges, so port preservation applies
    let flow = udp((HOST_A, 24000), (SERVER, 9)).bytes();
    let ping = echo_request(HOST_A, SERVER, 77).bytes();
    let (first, _) = r.forward(LAN, &flow);
    let (ping_first, _) = r.forward(LAN, &ping);
    assert_eq!(
        (first, ping_first),
        (ISP1, ISP1),
        "weights 3:1 start on isp1"
    );
    r.set_link(0, LinkState::Down);
    let (egress, out) = r.forward(LAN, &flow);
    assert_eq!(egress, ISP2, "the next packet leaves by the live WAN");
    assert_eq!(
        &out[12..16],
        &ISP2_ADDR.octets(),
        "translated to isp2's address"
    );
    assert_eq!(&out[20..22], &24000u16.to_be_bytes(), "keeping its port");
    let (egress, _) = r.forward(LAN, &ping);
    assert_eq!(egress, ISP2);
    assert_eq!(r.counters.events(Event::FlowsMigrated), 2);
    assert_eq!(r.dp.tables.conntrack.stats().ended_by_wan_down, 2);
    // and it stays there: no flapping back per packet
    r.set_link(0, LinkState::Up);
    assert_eq!(r.forward(LAN, &flow).0, ISP2);
    // replies to the new mapping come back through isp2
    let reply = udp((SERVER, 9), (ISP2_ADDR, 24000)).bytes();
    assert_eq!(r.forward(ISP2, &reply).0, LAN);
}

#[test]
fn a_tcp_connection_on_a_down_wan_is_reset_towards_the_client() {
    let mut r = router(None);
    let syn = tcp((HOST_A, 40000), (SERVER, 443), SYN).bytes();
    assert_eq!(r.forward(LAN, &syn).0, ISP1);
    r.set_link(0, LinkState::Down);
    let (verdict, out) = r.send(LAN, &client_ack(40000, 123_456));
    assert_eq!(
        verdict,
        Verdict::Forward(LAN),
        "the reset goes back to the LAN"
    );
    assert_eq!(
        tcp_fields(&out),
        (
            SERVER.octets(),
            HOST_A.octets(),
            443,
            40000,
            123_456,
            0,
            true,
            false
        ),
        "from the server, at exactly the sequence number the client acknowledged"
    );
    assert_checksums_valid(&out);
    assert_eq!(r.counters.drops(DropReason::WanDown), 1);
    assert_eq!(r.counters.events(Event::TcpResetsSent), 1);
    assert_eq!(r.dp.tables.conntrack.len(), 0, "the session is gone");
    // the client's reconnection is a new flow on the live WAN
    assert_eq!(r.forward(LAN, &syn).0, ISP2);
}

/// The reset can reach the client after data that was already on its way when the WAN went
/// down: the client's next expected sequence number has moved past the reset's, so it sends a
/// challenge ACK instead of closing (RFC 5961). With the session gone, that ACK gets a reset
/// at exactly its own number; a reset from the client is never answered.
#[test]
fn a_challenge_ack_after_a_stale_reset_gets_a_reset_at_its_own_number() {
    let mut r = router(None);
    let syn = tcp((HOST_A, 40002), (SERVER, 443), SYN).bytes();
    assert_eq!(r.forward(LAN, &syn).0, ISP1);
    r.set_link(0, LinkState::Down);
    let (_, first) = r.send(LAN, &client_ack(40002, 123_456));
    assert_eq!(tcp_fields(&first).4, 123_456);
    // meanwhile 20,000 more bytes reached the client: its challenge ACK
    let (verdict, out) = r.send(LAN, &client_ack(40002, 143_456));
    assert_eq!(verdict, Verdict::Forward(LAN));
    assert_eq!(
        tcp_fields(&out),
        (
            SERVER.octets(),
            HOST_A.octets(),
            443,
            40002,
            143_456,
            0,
            true,
            false
        )
    );
    assert_checksums_valid(&out);
    assert_eq!(r.counters.drops(DropReason::WanDown), 1);
    assert_eq!(r.counters.drops(DropReason::TcpNotSyn), 1);
    assert_eq!(r.counters.events(Event::TcpResetsSent), 2);
    let client_reset = tcp((HOST_A, 40002), (SERVER, 443), RST).bytes();
    r.expect_drop(LAN, &client_reset, DropReason::TcpNotSyn);
    assert_eq!(r.counters.events(Event::TcpResetsSent), 2);
    assert_eq!(r.dp.tables.conntrack.len(), 0, "no session was opened");
}

#[test]
fn a_retransmitted_syn_starts_over_on_a_live_wan() {
    let mut r = router(None);
    let syn = tcp((HOST_A, 40001), (SERVER, 443), SYN).bytes();
    assert_eq!(r.forward(LAN, &syn).0, ISP1);
    r.set_link(0, LinkState::Down);
    assert_eq!(
        r.forward(LAN, &syn).0,
        ISP2,
        "nothing was established: no reset"
    );
    assert_eq!(r.counters.events(Event::TcpResetsSent), 0);
}

#[test]
fn reset_mode_answers_udp_with_host_unreachable() {
    let mut r = router(Some("reset"));
    let flow = udp((HOST_A, 4100), (SERVER, 9)).bytes();
    assert_eq!(r.forward(LAN, &flow).0, ISP1);
    r.set_link(0, LinkState::Down);
    let (verdict, out) = r.send(LAN, &flow);
    assert_eq!(verdict, Verdict::Forward(LAN));
    assert_eq!((out[9], out[20], out[21]), (1, 3, 1), "ICMP type 3 code 1");
    assert_eq!(&out[16..20], &HOST_A.octets());
    assert_eq!(r.counters.drops(DropReason::WanDown), 1);
    // the next packet is a new flow on the live WAN
    assert_eq!(r.forward(LAN, &flow).0, ISP2);
}

#[test]
fn keep_mode_leaves_flows_on_their_wan() {
    let mut r = router(Some("keep"));
    let flow = udp((HOST_A, 4200), (SERVER, 9)).bytes();
    let syn = tcp((HOST_A, 40002), (SERVER, 443), SYN).bytes();
    assert_eq!(r.forward(LAN, &flow).0, ISP1);
    assert_eq!(r.forward(LAN, &syn).0, ISP1);
    r.set_link(0, LinkState::Down);
    assert_eq!(r.forward(LAN, &flow).0, ISP1);
    assert_eq!(r.forward(LAN, &client_ack(40002, 1)).0, ISP1);
    // new flows still avoid it
    assert_eq!(
        r.forward(LAN, &udp((HOST_A, 4201), (SERVER, 9)).bytes()).0,
        ISP2
    );
    assert_eq!(r.counters.drops(DropReason::WanDown), 0);
}

#[test]
fn replies_on_a_down_wan_still_reach_the_client_and_a_degraded_wan_ends_nothing() {
    let mut r = router(None);
    let flow = udp((HOST_A, 24300), (SERVER, 9)).bytes();
    assert_eq!(r.forward(LAN, &flow).0, ISP1);
    r.set_link(0, LinkState::Down);
    // a straggler reply through the old WAN is still delivered (the session lives until the
    // client's next packet)
    let reply = udp((SERVER, 9), (ISP1_ADDR, 24300)).bytes();
    assert_eq!(r.forward(ISP1, &reply).0, LAN);
    r.set_link(0, LinkState::Degraded);
    assert_eq!(r.forward(LAN, &flow).0, ISP1, "degraded is not down");
}

#[test]
fn udp_flows_return_from_the_backup_tier_and_tcp_connections_stay() {
    let mut r = router(None);
    let flow = udp((HOST_A, 24400), (SERVER, 9)).bytes();
    assert_eq!(r.forward(LAN, &flow).0, ISP1);
    r.set_link(0, LinkState::Down);
    r.set_link(1, LinkState::Down);
    assert_eq!(
        r.forward(LAN, &flow).0,
        LTE,
        "the backup tier takes it over"
    );
    let syn = tcp((HOST_A, 40010), (SERVER, 443), SYN).bytes();
    assert_eq!(
        r.forward(LAN, &syn).0,
        LTE,
        "a connection opened during the outage"
    );
    // the backup tier is the active one: nothing is recalled yet
    assert_eq!(r.forward(LAN, &flow).0, LTE);
    r.set_link(0, LinkState::Up);
    assert_eq!(
        r.forward(LAN, &flow).0,
        ISP1,
        "the UDP flow comes back at its next packet"
    );
    assert_eq!(r.counters.events(Event::FlowsRecalled), 1);
    assert_eq!(r.dp.tables.conntrack.stats().recalled, 1);
    assert_eq!(r.forward(LAN, &flow).0, ISP1, "and stays");
    assert_eq!(
        r.forward(LAN, &client_ack(40010, 1)).0,
        LTE,
        "the TCP connection keeps its address: moving it would break it"
    );
}

#[test]
fn keep_mode_recalls_nothing() {
    let mut r = router(Some("keep"));
    let flow = udp((HOST_A, 24500), (SERVER, 9)).bytes();
    r.set_link(0, LinkState::Down);
    r.set_link(1, LinkState::Down);
    assert_eq!(r.forward(LAN, &flow).0, LTE);
    r.set_link(0, LinkState::Up);
    assert_eq!(r.forward(LAN, &flow).0, LTE);
    assert_eq!(r.counters.events(Event::FlowsRecalled), 0);
}

#[test]
fn a_new_connection_on_the_tuple_of_a_closed_or_expired_one_is_not_reset() {
    let mut r = router(None);
    let syn = tcp((HOST_A, 40020), (SERVER, 443), SYN).bytes();
    assert_eq!(r.forward(LAN, &syn).0, ISP1);
    // the connection is torn down by a reset from the client: Closed
    r.forward(LAN, &tcp((HOST_A, 40020), (SERVER, 443), RST).bytes());
    r.set_link(0, LinkState::Down);
    assert_eq!(
        r.forward(LAN, &syn).0,
        ISP2,
        "the new connection goes out, no reset"
    );
    assert_eq!(r.counters.events(Event::TcpResetsSent), 0);

    // a UDP flow whose session expired on the dead WAN is a new flow, also under `reset`
    let mut r = router(Some("reset"));
    let flow = udp((HOST_A, 24600), (SERVER, 9)).bytes();
    assert_eq!(r.forward(LAN, &flow).0, ISP1);
    r.set_link(0, LinkState::Down);
    r.advance(std::time::Duration::from_secs(301));
    assert_eq!(
        r.forward(LAN, &flow).0,
        ISP2,
        "no ICMP unreachable for an expired flow"
    );
    assert_eq!(r.dp.tables.conntrack.stats().ended_by_wan_down, 0);
    assert_eq!(r.dp.tables.conntrack.stats().expired, 1);
}
