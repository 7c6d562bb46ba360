//! Port forwards (`[[forward]]`): a connection from the Internet to a WAN address's forwarded
//! port reaches the LAN server, unchanged but for the destination; the server's answers
//! leave by the WAN the connection came in on, whatever the balancer would pick; ports a
//! forward takes inside a NAT range are never handed out to LAN flows.

use std::net::Ipv4Addr;

use super::harness::*;
use super::packets::*;
use crate::packet::Medium;
use crate::pipeline::{DropReason, Event};

const CLIENT: Ipv4Addr = Ipv4Addr::new(9, 9, 9, 9);

/// The harness's router with these forwards.
fn router(forwards: &str) -> Router {
    Router::with_config(Medium::Ip, &format!("{TOPOLOGY}\n{forwards}"))
}

const WEB: &str = "[[forward]]\nname = \"web\"\nwans = [\"isp1\", \"isp2\"]\nproto = \"tcp\"\n\
                   port = 8080\nto = \"192.168.1.10\"\nto_port = 80\n";

#[test]
fn a_forwarded_connection_reaches_the_server_and_answers_by_its_wan() {
    let mut r = router(WEB);
    // through isp2, which the balancer (isp1 weighs 3) picks least
    for (wan, addr, port) in [(ISP2, ISP2_ADDR, 40000), (ISP1, ISP1_ADDR, 40100)] {
        let syn = tcp((CLIENT, port), (addr, 8080), SYN);
        let (egress, out) = r.forward(wan, &syn.bytes());
        assert_eq!(egress, LAN);
        assert_eq!(out, syn.translated((CLIENT, port), (HOST_A, 80)).bytes());
        let syn_ack = tcp((HOST_A, 80), (CLIENT, port), SYN_ACK);
        let (egress, out) = r.forward(LAN, &syn_ack.bytes());
        assert_eq!(
            egress, wan,
            "the answer leaves by the WAN the connection came in on"
        );
        assert_eq!(
            out,
            syn_ack.translated((addr, 8080), (CLIENT, port)).bytes()
        );
        let ack = tcp((CLIENT, port), (addr, 8080), ACK);
        assert_eq!(r.forward(wan, &ack.bytes()).0, LAN);
        let data = tcp((HOST_A, 80), (CLIENT, port), PSH_ACK).payload(b"HTTP/1.1 200 OK\r\n");
        assert_eq!(r.forward(LAN, &data.bytes()).0, wan);
        // the connection's session is on the WAN it came in on, with the forwarded port
        let mut found = None;
        r.dp.tables.conntrack.for_each_session(|s| {
            if s.forwarded && s.wan == wan - 1 {
                found = Some((s.external.port, s.tcp_state));
            }
        });
        assert_eq!(
            found,
            Some((8080, Some(conntrack::TcpState::Established))),
            "{wan}"
        );
    }
    assert_eq!(r.dp.plan.forwards.hits(0), 2);
    assert_eq!(r.counters.events(Event::SessionsCreated), 2);
    // the server cannot hold the same flow through both WANs at once
    let again = tcp((CLIENT, 40000), (ISP1_ADDR, 8080), SYN).bytes();
    r.expect_drop(ISP1, &again, DropReason::ForwardConflict);
}

#[test]
fn only_a_bare_syn_or_a_datagram_opens_a_forwarded_connection() {
    let mut r = router(WEB);
    for flags in [ACK, PSH_ACK, FIN_ACK, RST, SYN_ACK] {
        let stray = tcp((CLIENT, 40001), (ISP1_ADDR, 8080), flags).bytes();
        r.expect_drop(ISP1, &stray, DropReason::NoSessionInbound);
    }
    assert_eq!(r.dp.plan.forwards.hits(0), 0);
    // not forwarded on lte, nor for UDP
    let elsewhere = tcp((CLIENT, 40001), (LTE_ADDR, 8080), SYN).bytes();
    assert_ne!(
        r.send(LTE, &elsewhere).0,
        crate::pipeline::Verdict::Forward(LAN)
    );
    let udp_too = udp((CLIENT, 40001), (ISP1_ADDR, 8080)).bytes();
    assert_ne!(
        r.send(ISP1, &udp_too).0,
        crate::pipeline::Verdict::Forward(LAN)
    );
}

#[test]
fn a_udp_port_range_maps_port_for_port() {
    let mut r = router(
        "[[forward]]\nname = \"game\"\nwan = \"isp2\"\nproto = \"udp\"\nport = \"27015-27020\"\n\
         to = \"192.168.1.20\"\nto_port = 37015\n",
    );
    let ask = udp((CLIENT, 5000), (ISP2_ADDR, 27017));
    let (egress, out) = r.forward(ISP2, &ask.bytes());
    assert_eq!(egress, LAN);
    assert_eq!(out, ask.translated((CLIENT, 5000), (HOST_B, 37017)).bytes());
    let answer = udp((HOST_B, 37017), (CLIENT, 5000));
    let (egress, out) = r.forward(LAN, &answer.bytes());
    assert_eq!(egress, ISP2);
    assert_eq!(
        out,
        answer
            .translated((ISP2_ADDR, 27017), (CLIENT, 5000))
            .bytes()
    );
    // and again, on the same session
    assert_eq!(r.forward(ISP2, &ask.bytes()).0, LAN);
    assert_eq!(r.dp.plan.forwards.hits(0), 1);
}

#[test]
fn a_port_forwarded_inside_the_nat_range_is_never_handed_to_lan_flows() {
    let mut r = router(
        "[[forward]]\nname = \"in-range\"\nwan = \"isp1\"\nproto = \"udp\"\nport = 20500\n\
         to = \"192.168.1.20\"\n",
    );
    // a LAN flow from port 20500 would keep its port (port preservation): not this one
    for i in 0..8u8 {
        let dst = Ipv4Addr::new(198, 18, 0, i);
        let (egress, out) = r.forward(LAN, &udp((HOST_A, 20500), (dst, 53)).bytes());
        if egress == ISP1 {
            assert_ne!(u16::from_be_bytes([out[20], out[21]]), 20500);
        }
    }
    let ask = udp((CLIENT, 5000), (ISP1_ADDR, 20500));
    let (egress, out) = r.forward(ISP1, &ask.bytes());
    assert_eq!(egress, LAN);
    assert_eq!(out, ask.translated((CLIENT, 5000), (HOST_B, 20500)).bytes());
}

#[test]
fn a_spoofed_reset_on_a_forwarded_connection_changes_nothing() {
    let mut r = router(WEB);
    r.forward(ISP1, &tcp((CLIENT, 40002), (ISP1_ADDR, 8080), SYN).bytes());
    r.forward(LAN, &tcp((HOST_A, 80), (CLIENT, 40002), SYN_ACK).bytes());
    r.forward(ISP1, &tcp((CLIENT, 40002), (ISP1_ADDR, 8080), ACK).bytes());
    let mut spoofed = etherparse::PacketBuilder::ipv4(CLIENT.octets(), ISP1_ADDR.octets(), 64)
        .tcp(40002, 8080, 0x8000_0000, 0)
        .rst();
    spoofed = spoofed.ack(5001);
    let mut bytes = Vec::new();
    spoofed.write(&mut bytes, &[]).unwrap();
    r.expect_drop(ISP1, &bytes, DropReason::TcpOutOfWindow);
    let data = tcp((HOST_A, 80), (CLIENT, 40002), PSH_ACK).payload(b"still here");
    assert_eq!(r.forward(LAN, &data.bytes()).0, ISP1);
}

#[test]
fn a_corrupt_syn_to_a_forwarded_port_opens_nothing() {
    let mut r = router(WEB);
    let mut syn = tcp((CLIENT, 40003), (ISP1_ADDR, 8080), SYN).bytes();
    // the TCP checksum is at offset 20 + 16
    syn[36] ^= 0x55;
    r.expect_drop(ISP1, &syn, DropReason::TcpBadChecksum);
    assert_eq!(r.dp.plan.forwards.hits(0), 0);
    assert!(r.dp.tables.conntrack.is_empty());
}
