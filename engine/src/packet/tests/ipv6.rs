//! IPv6 rewrites (NAT66) against static bytes: the packets and their translations were
//! generated once by an independent implementation (full checksums from scratch) and frozen
//! here; and property tests that a translation keeps every checksum valid and that
//! translating back gives the packet again.

#![allow(clippy::unwrap_used)]

use std::net::Ipv6Addr;

use proptest::prelude::*;

use crate::packet::checksum::l4_verify_sum_v6;
use crate::packet::icmp_error::{build_icmpv6_error, Icmpv6ErrorKind, HEADERS_AHEAD_V6};
use crate::packet::nptv6::Nptv6Map;
use crate::packet::parse::{parse_ipv6, Fragment, Transport};
use crate::packet::rewrite::{
    rewrite_flow_v6, rewrite_icmpv6_error, rewrite_prefix, Endpoint6, PrefixWay,
};
use crate::packet::tcp_reset::build_tcp_reset_v6;
use crate::packet::wire::{icmpv6, Icmpv6Message, Ipv6Packet as Ipv6View, TcpSegment};
use crate::packet::Medium;

const HOST: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x10);
const SERVER: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 1);
const WAN: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2);
const ROUTER: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);

fn ep(ip: Ipv6Addr, port: u16) -> Endpoint6 {
    Endpoint6 { ip, port }
}

/// SYN fd00::10:40000 -> 2001:db8:ffff::1:443, hop limit 64.
const SYN_IN: [u8; 60] = [
    0x60, 0x00, 0x00, 0x00, 0x00, 0x14, 0x06, 0x40, 0xfd, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x9c, 0x40, 0x01, 0xbb, 0x00, 0x00, 0x03, 0xe8,
    0x00, 0x00, 0x00, 0x00, 0x50, 0x02, 0xfa, 0xf0, 0xe8, 0x43, 0x00, 0x00,
];

/// The SYN through NAT66: from 2001:db8:1::2:20000, hop limit 63.
const SYN_OUT: [u8; 60] = [
    0x60, 0x00, 0x00, 0x00, 0x00, 0x14, 0x06, 0x3f, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x4e, 0x20, 0x01, 0xbb, 0x00, 0x00, 0x03, 0xe8,
    0x00, 0x00, 0x00, 0x00, 0x50, 0x02, 0xfa, 0xf0, 0x05, 0xb9, 0x00, 0x00,
];

/// DNS answer 2001:db8:ffff::1:53 -> 2001:db8:1::2:20001.
const UDP_IN: [u8; 54] = [
    0x60, 0x00, 0x00, 0x00, 0x00, 0x0e, 0x11, 0x3c, 0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x35, 0x4e, 0x21, 0x00, 0x0e, 0x1b, 0xae,
    0x61, 0x6e, 0x73, 0x77, 0x65, 0x72,
];

/// The answer translated back: -> fd00::10:40001, hop limit 59.
const UDP_OUT: [u8; 54] = [
    0x60, 0x00, 0x00, 0x00, 0x00, 0x0e, 0x11, 0x3b, 0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0xfd, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x35, 0x9c, 0x41, 0x00, 0x0e, 0xfe, 0x38,
    0x61, 0x6e, 0x73, 0x77, 0x65, 0x72,
];

/// Echo request fd00::10 -> 2001:db8:ffff::1, identifier 0x1234.
const ECHO_IN: [u8; 56] = [
    0x60, 0x00, 0x00, 0x00, 0x00, 0x10, 0x3a, 0x40, 0xfd, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x80, 0x00, 0xb1, 0x1f, 0x12, 0x34, 0x00, 0x01,
    0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
];

/// The echo through NAT66: from 2001:db8:1::2, identifier 20002.
const ECHO_OUT: [u8; 56] = [
    0x60, 0x00, 0x00, 0x00, 0x00, 0x10, 0x3a, 0x3f, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x80, 0x00, 0x44, 0x86, 0x4e, 0x22, 0x00, 0x01,
    0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
];

/// Time exceeded from 2001:db8:1::1 to 2001:db8:1::2, quoting the query
/// 2001:db8:1::2:20001 -> 2001:db8:ffff::1:53.
const TIME_EXCEEDED_IN: [u8; 101] = [
    0x60, 0x00, 0x00, 0x00, 0x00, 0x3d, 0x3a, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0x00, 0x30, 0x21, 0x00, 0x00, 0x00, 0x00,
    0x60, 0x00, 0x00, 0x00, 0x00, 0x0d, 0x11, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x4e, 0x21, 0x00, 0x35, 0x00, 0x0d, 0x06, 0x20,
    0x71, 0x75, 0x65, 0x72, 0x79,
];

/// The error translated for the LAN host: to fd00::10, the quote from fd00::10:40001.
const TIME_EXCEEDED_OUT: [u8; 101] = [
    0x60, 0x00, 0x00, 0x00, 0x00, 0x3d, 0x3a, 0x3f, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0xfd, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x03, 0x00, 0x60, 0xcc, 0x00, 0x00, 0x00, 0x00,
    0x60, 0x00, 0x00, 0x00, 0x00, 0x0d, 0x11, 0x01, 0xfd, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x9c, 0x41, 0x00, 0x35, 0x00, 0x0d, 0xe8, 0xaa,
    0x71, 0x75, 0x65, 0x72, 0x79,
];

/// Rewrites a copy of `packet` as `src` -> `dst` and returns it.
fn translated(packet: &[u8], src: Endpoint6, dst: Endpoint6) -> Vec<u8> {
    let mut out = packet.to_vec();
    let pkt = parse_ipv6(&out, 0).unwrap();
    rewrite_flow_v6(&mut out, &pkt, src, dst);
    out
}

#[test]
fn a_syn_an_answer_and_an_echo_take_their_golden_translations() {
    assert_eq!(
        translated(&SYN_IN, ep(WAN, 20000), ep(SERVER, 443)),
        SYN_OUT
    );
    assert_eq!(
        translated(&UDP_IN, ep(SERVER, 53), ep(HOST, 40001)),
        UDP_OUT
    );
    assert_eq!(
        translated(&ECHO_IN, ep(WAN, 20002), ep(SERVER, 0)),
        ECHO_OUT
    );
}

#[test]
fn an_icmpv6_error_is_translated_with_its_quote() {
    let mut frame = TIME_EXCEEDED_IN.to_vec();
    let pkt = parse_ipv6(&frame, 0).unwrap();
    assert_eq!(pkt.transport, Transport::IcmpError);
    let emb = pkt.embedded(&frame).unwrap();
    assert_eq!((emb.src, emb.dst), (WAN, SERVER));
    assert_eq!((emb.src_port, emb.dst_port, emb.proto), (20001, 53, 17));
    assert_eq!((emb.l3, emb.l4), (48, 88));
    // the quote is a packet that went out: its source becomes the LAN host's endpoint
    rewrite_icmpv6_error(
        &mut frame,
        &pkt,
        &emb,
        (ROUTER, HOST),
        ep(HOST, 40001),
        ep(SERVER, 53),
    );
    assert_eq!(frame, TIME_EXCEEDED_OUT);
}

/// The router's ICMPv6 error about `packet`, built in a buffer with `at` bytes of headroom;
/// `None` if refused.
fn error_about(packet: &[u8], at: usize, kind: Icmpv6ErrorKind) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; at + packet.len() + HEADERS_AHEAD_V6];
    buf[at..at + packet.len()].copy_from_slice(packet);
    let pkt = parse_ipv6(packet, 0).unwrap();
    let (start, len) = build_icmpv6_error(&mut buf, at, Medium::Ip, &pkt, kind, ROUTER)?;
    Some(buf[start..start + len].to_vec())
}

#[test]
fn an_icmpv6_error_quotes_the_packet_from_the_router_with_or_without_headroom() {
    for kind in [
        Icmpv6ErrorKind::TimeExceeded,
        Icmpv6ErrorKind::AddressUnreachable,
        Icmpv6ErrorKind::PacketTooBig { mtu: 1280 },
    ] {
        let ahead = error_about(&SYN_IN, HEADERS_AHEAD_V6, kind).unwrap();
        let behind = error_about(&SYN_IN, 0, kind).unwrap();
        assert_eq!(ahead, behind, "{kind:?}");
        let ip = Ipv6View::new_checked(&ahead[..]).unwrap();
        assert_eq!((ip.src(), ip.dst(), ip.hop_limit()), (ROUTER, HOST, 64));
        let icmp = Icmpv6Message::new_checked(ip.payload()).unwrap();
        assert!(icmp.verify_checksum(ROUTER, HOST));
        assert_eq!(icmp.data(), SYN_IN, "the whole packet quoted");
        let (kind_type, code) = match kind {
            Icmpv6ErrorKind::TimeExceeded => (icmpv6::msg_type::TIME_EXCEEDED, 0),
            Icmpv6ErrorKind::AddressUnreachable => (icmpv6::msg_type::DST_UNREACHABLE, 3),
            Icmpv6ErrorKind::PacketTooBig { .. } => (icmpv6::msg_type::PACKET_TOO_BIG, 0),
        };
        assert_eq!((icmp.msg_type(), icmp.code()), (kind_type, code));
        if let Icmpv6ErrorKind::PacketTooBig { mtu } = kind {
            assert_eq!(icmp.mtu(), mtu);
        }
        // the error parses as one, about the flow of the packet it quotes
        let parsed = parse_ipv6(&ahead, 0).unwrap();
        let emb = parsed.embedded(&ahead).unwrap();
        assert_eq!(
            (emb.src, emb.dst, emb.src_port, emb.dst_port),
            (HOST, SERVER, 40000, 443)
        );
    }
}

#[test]
fn an_icmpv6_error_stays_within_1280_bytes() {
    let big = packet(1, ep(HOST, 5000), ep(SERVER, 53), &[7; 1400], 64);
    let error = error_about(&big, 64, Icmpv6ErrorKind::TimeExceeded).unwrap();
    assert_eq!(error.len(), 1280);
    assert_eq!(&error[48..], &big[..1232]);
}

#[test]
fn no_error_about_an_error_a_multicast_group_or_a_nameless_source() {
    let kind = Icmpv6ErrorKind::TimeExceeded;
    assert!(error_about(&TIME_EXCEEDED_IN, 64, kind).is_none());
    let group = Ipv6Addr::new(0xff0e, 0, 0, 0, 0, 0, 0, 0x101);
    let to_group = packet(1, ep(HOST, 5000), ep(group, 123), b"ntp", 64);
    assert!(error_about(&to_group, 64, kind).is_none());
    let too_big = Icmpv6ErrorKind::PacketTooBig { mtu: 1280 };
    assert!(
        error_about(&to_group, 64, too_big).is_some(),
        "path MTU discovery for groups"
    );
    let nameless = packet(1, ep(Ipv6Addr::UNSPECIFIED, 546), ep(SERVER, 547), b"x", 64);
    assert!(error_about(&nameless, 64, kind).is_none());
}

#[test]
fn a_segment_over_ipv6_gets_its_reset_from_its_destination() {
    let mut frame = SYN_IN.to_vec();
    let pkt = parse_ipv6(&frame, 0).unwrap();
    let len = build_tcp_reset_v6(&mut frame, Medium::Ip, &pkt).unwrap();
    let reset = &frame[..len];
    assert_eq!(len, 60);
    assert!(checksum_ok(reset));
    let ip = Ipv6View::new_checked(reset).unwrap();
    assert_eq!((ip.src(), ip.dst()), (SERVER, HOST));
    let tcp = TcpSegment::new_checked(ip.payload()).unwrap();
    assert_eq!((tcp.src_port(), tcp.dst_port()), (443, 40000));
    // a SYN without ACK: RST|ACK acknowledging it (seq 1000 + 1)
    assert_eq!((tcp.flags(), tcp.seq(), tcp.ack()), (0x14, 0, 1001));

    let mut with_ack = packet(0, ep(HOST, 40000), ep(SERVER, 443), b"data", 64);
    with_ack[40 + 8..40 + 12].copy_from_slice(&77_000u32.to_be_bytes());
    let pkt = parse_ipv6(&with_ack, 0).unwrap();
    let len = build_tcp_reset_v6(&mut with_ack, Medium::Ip, &pkt).unwrap();
    let tcp = TcpSegment::new_checked(&with_ack[40..len]).unwrap();
    assert_eq!(
        (tcp.flags(), tcp.seq()),
        (0x04, 77_000),
        "RST at the segment's ACK"
    );

    // a reset is never answered (`frame` holds the SYN's reset, 60 bytes)
    let pkt = parse_ipv6(&frame[..60], 0).unwrap();
    assert!(build_tcp_reset_v6(&mut frame, Medium::Ip, &pkt).is_none());
}

/// RFC 6296 3.6's mapping: fd01:203:405::/48 inside, 2001:db8:1::/48 outside.
fn rfc6296_map() -> Nptv6Map {
    Nptv6Map::new(
        "fd01:203:405::/48".parse().unwrap(),
        "2001:db8:1::/48".parse().unwrap(),
    )
    .unwrap()
}

const INSIDE: Ipv6Addr = Ipv6Addr::new(0xfd01, 0x203, 0x405, 1, 0, 0, 0, 0x1234);
const OUTSIDE: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0xd550, 0, 0, 0, 0x1234);

/// `packet` with every `from` address (outer and quoted) replaced by `to`; checksums left.
fn readdressed(packet: &[u8], from: Ipv6Addr, to: Ipv6Addr) -> Vec<u8> {
    let mut out = packet.to_vec();
    for at in (0..out.len().saturating_sub(15)).rev() {
        if out[at..at + 16] == from.octets() {
            out[at..at + 16].copy_from_slice(&to.octets());
        }
    }
    out
}

#[test]
fn nptv6_translates_the_hosts_address_both_ways_and_keeps_every_checksum() {
    let map = rfc6296_map();
    // out: the SYN from the inside address, checksummed for it
    let syn = packet(0, ep(INSIDE, 40000), ep(SERVER, 443), b"", 64);
    let mut out = syn.clone();
    let pkt = parse_ipv6(&out, 0).unwrap();
    assert!(rewrite_prefix(&mut out, &pkt, &map, PrefixWay::Out));
    let mut expected = readdressed(&syn, INSIDE, OUTSIDE);
    expected[7] = 63;
    assert_eq!(out, expected, "the source and hop limit only");
    assert!(checksum_ok(&out), "checksum-neutral");
    // in: the answer to the outside address goes to the inside one
    let answer = packet(1, ep(SERVER, 53), ep(OUTSIDE, 40001), b"answer", 60);
    let mut back = answer.clone();
    let pkt = parse_ipv6(&back, 0).unwrap();
    assert!(rewrite_prefix(&mut back, &pkt, &map, PrefixWay::In));
    let mut expected = readdressed(&answer, OUTSIDE, INSIDE);
    expected[7] = 59;
    assert_eq!(back, expected);
    assert!(checksum_ok(&back));
}

#[test]
fn nptv6_translates_an_errors_quote_so_the_host_knows_its_packet() {
    let map = rfc6296_map();
    // a router on the path answers the SYN as it left (from the outside address)
    let sent = packet(0, ep(OUTSIDE, 40000), ep(SERVER, 443), b"", 3);
    let pkt = parse_ipv6(&sent, 0).unwrap();
    let mut error = vec![0u8; 64 + sent.len() + HEADERS_AHEAD_V6];
    error[64..64 + sent.len()].copy_from_slice(&sent);
    let (start, len) = build_icmpv6_error(
        &mut error,
        64,
        Medium::Ip,
        &pkt,
        Icmpv6ErrorKind::TimeExceeded,
        ROUTER,
    )
    .unwrap();
    let error = error[start..start + len].to_vec();
    assert!(checksum_ok(&error));
    let mut inside = error.clone();
    let pkt = parse_ipv6(&inside, 0).unwrap();
    assert!(rewrite_prefix(&mut inside, &pkt, &map, PrefixWay::In));
    let mut expected = readdressed(&error, OUTSIDE, INSIDE);
    expected[7] = 63;
    assert_eq!(inside, expected, "outer destination and quoted source");
    assert!(checksum_ok(&inside));
    let emb = parse_ipv6(&inside, 0).unwrap().embedded(&inside).unwrap();
    assert_eq!((emb.src, emb.src_port), (INSIDE, 40000));
}

#[test]
fn nptv6_refuses_an_address_outside_its_prefix_and_changes_nothing() {
    let map = rfc6296_map();
    for (packet, way) in [
        (
            packet(1, ep(HOST, 1), ep(SERVER, 53), b"q", 64),
            PrefixWay::Out,
        ),
        (
            // the WAN's own address lies in the external prefix; this one does not
            packet(
                1,
                ep(SERVER, 53),
                ep(Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 1), 1),
                b"a",
                64,
            ),
            PrefixWay::In,
        ),
        // a /48 subnet of 0xffff has no word to adjust (RFC 6296 3.7)
        (
            packet(
                1,
                ep(Ipv6Addr::new(0xfd01, 0x203, 0x405, 0xffff, 0, 0, 0, 1), 1),
                ep(SERVER, 53),
                b"q",
                64,
            ),
            PrefixWay::Out,
        ),
    ] {
        let mut frame = packet.clone();
        let pkt = parse_ipv6(&frame, 0).unwrap();
        assert!(!rewrite_prefix(&mut frame, &pkt, &map, way));
        assert_eq!(frame, packet);
    }
}

/// A parsed IPv6 packet's upper-layer checksum is right.
fn checksum_ok(packet: &[u8]) -> bool {
    let pkt = parse_ipv6(packet, 0).unwrap();
    let l4 = &packet[pkt.l4()..pkt.end()];
    l4_verify_sum_v6(pkt.src.octets(), pkt.dst.octets(), pkt.proto, l4) == 0
}

#[test]
fn the_golden_packets_carry_valid_checksums() {
    for p in [
        &SYN_IN[..],
        &SYN_OUT,
        &UDP_IN,
        &UDP_OUT,
        &ECHO_IN,
        &ECHO_OUT,
    ] {
        assert!(checksum_ok(p));
    }
    assert!(checksum_ok(&TIME_EXCEEDED_IN) && checksum_ok(&TIME_EXCEEDED_OUT));
}

/// A TCP, UDP or echo packet from `src` to `dst` with `payload`, its checksum right.
fn packet(kind: u8, src: Endpoint6, dst: Endpoint6, payload: &[u8], hop: u8) -> Vec<u8> {
    let (next, mut l4) = match kind % 3 {
        0 => {
            let mut t = vec![0u8; 20];
            t[..2].copy_from_slice(&src.port.to_be_bytes());
            t[2..4].copy_from_slice(&dst.port.to_be_bytes());
            t[12] = 0x50;
            t[13] = 0x18;
            (6u8, t)
        }
        1 => {
            let mut u = vec![0u8; 8];
            u[..2].copy_from_slice(&src.port.to_be_bytes());
            u[2..4].copy_from_slice(&dst.port.to_be_bytes());
            u[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
            (17, u)
        }
        _ => {
            let mut e = vec![128u8, 0, 0, 0, 0, 0, 0, 1];
            e[4..6].copy_from_slice(&src.port.to_be_bytes());
            (58, e)
        }
    };
    l4.extend_from_slice(payload);
    let at = match next {
        6 => 16,
        17 => 6,
        _ => 2,
    };
    // with the checksum field 0, the verifying sum is the checksum to store
    let sum = l4_verify_sum_v6(src.ip.octets(), dst.ip.octets(), next, &l4);
    let sum = if next == 17 && sum == 0 { 0xffff } else { sum };
    l4[at..at + 2].copy_from_slice(&sum.to_be_bytes());
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(l4.len() as u16).to_be_bytes());
    p.extend_from_slice(&[next, hop]);
    p.extend_from_slice(&src.ip.octets());
    p.extend_from_slice(&dst.ip.octets());
    p.extend_from_slice(&l4);
    p
}

fn endpoint() -> impl Strategy<Value = Endpoint6> {
    (any::<u128>(), any::<u16>()).prop_map(|(ip, port)| ep(Ipv6Addr::from(ip), port))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    /// A translation keeps the checksum valid, lowers the hop limit by one, and translating
    /// back (with the hop limit put back) gives the original bytes.
    #[test]
    fn translating_keeps_checksums_and_reverses(
        kind in 0u8..3,
        (src, dst) in (endpoint(), endpoint()),
        (new_src, new_dst) in (endpoint(), endpoint()),
        payload in proptest::collection::vec(any::<u8>(), 0..64),
        hop in 2u8..=255,
    ) {
        // an echo's identifier is its requester's: the destination "port" stays 0
        let (dst, new_dst) = if kind % 3 == 2 {
            (ep(dst.ip, 0), ep(new_dst.ip, 0))
        } else {
            (dst, new_dst)
        };
        let original = packet(kind, src, dst, &payload, hop);
        prop_assert!(checksum_ok(&original));
        let pkt = parse_ipv6(&original, 0).unwrap();
        prop_assert_eq!(pkt.fragment, Fragment::Whole);
        let there = translated(&original, new_src, new_dst);
        prop_assert!(checksum_ok(&there));
        prop_assert_eq!(there[7], hop - 1);
        let mut back = translated(&there, src, dst);
        prop_assert_eq!(back[7], hop - 2);
        back[7] = hop;
        prop_assert_eq!(back, original);
    }
}
