//! The packet layer against static bytes: packets and their expected rewrites were generated
//! once by an independent implementation (full checksums computed from scratch) and frozen
//! here, so these tests pin the wire format, not just agreement with etherparse.

#![allow(clippy::unwrap_used)]

use std::net::Ipv4Addr;

use crate::packet::checksum;
use crate::packet::parse::{parse_ipv4, Fragment, Transport};
use crate::packet::rewrite::{rewrite_flow, rewrite_icmp_error, Endpoint};

const A: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);
const S: Ipv4Addr = Ipv4Addr::new(8, 8, 4, 4);
const W: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
const R: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);

fn ep(ip: Ipv4Addr, port: u16) -> Endpoint {
    Endpoint { ip, port }
}

const SYN_IN: [u8; 40] = [
    0x45, 0x00, 0x00, 0x28, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x06, 0x50, 0xcc, 0xc0, 0xa8, 0x01, 0x0a,
    0x08, 0x08, 0x04, 0x04, 0x9c, 0x40, 0x01, 0xbb, 0x01, 0x02, 0x03, 0x04, 0x00, 0x00, 0x00, 0x00,
    0x50, 0x02, 0xfa, 0xf0, 0x45, 0x32, 0x00, 0x00,
];

const SYN_OUT: [u8; 40] = [
    0x45, 0x00, 0x00, 0x28, 0x1c, 0x46, 0x40, 0x00, 0x3f, 0x06, 0xe9, 0x48, 0xc6, 0x33, 0x64, 0x02,
    0x08, 0x08, 0x04, 0x04, 0x4e, 0x20, 0x01, 0xbb, 0x01, 0x02, 0x03, 0x04, 0x00, 0x00, 0x00, 0x00,
    0x50, 0x02, 0xfa, 0xf0, 0x2a, 0xcf, 0x00, 0x00,
];

const UDP_IN: [u8; 38] = [
    0x45, 0x00, 0x00, 0x26, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x11, 0xe8, 0x3f, 0x08, 0x08, 0x04, 0x04,
    0xc6, 0x33, 0x64, 0x02, 0x00, 0x35, 0x4e, 0x21, 0x00, 0x12, 0x69, 0x4b, 0x64, 0x6e, 0x73, 0x20,
    0x61, 0x6e, 0x73, 0x77, 0x65, 0x72,
];

const UDP_OUT: [u8; 38] = [
    0x45, 0x00, 0x00, 0x26, 0x1c, 0x46, 0x40, 0x00, 0x3f, 0x11, 0x51, 0xc3, 0x08, 0x08, 0x04, 0x04,
    0xc0, 0xa8, 0x01, 0x0a, 0x00, 0x35, 0x9c, 0x41, 0x00, 0x12, 0x83, 0xae, 0x64, 0x6e, 0x73, 0x20,
    0x61, 0x6e, 0x73, 0x77, 0x65, 0x72,
];

const ECHO_IN: [u8; 36] = [
    0x45, 0x00, 0x00, 0x24, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x01, 0x50, 0xd5, 0xc0, 0xa8, 0x01, 0x0a,
    0x08, 0x08, 0x04, 0x04, 0x08, 0x00, 0x54, 0x35, 0x12, 0x34, 0x00, 0x01, 0x61, 0x62, 0x63, 0x64,
    0x65, 0x66, 0x67, 0x68,
];

const ECHO_OUT: [u8; 36] = [
    0x45, 0x00, 0x00, 0x24, 0x1c, 0x46, 0x40, 0x00, 0x3f, 0x01, 0xe9, 0x51, 0xc6, 0x33, 0x64, 0x02,
    0x08, 0x08, 0x04, 0x04, 0x08, 0x00, 0x18, 0x47, 0x4e, 0x22, 0x00, 0x01, 0x61, 0x62, 0x63, 0x64,
    0x65, 0x66, 0x67, 0x68,
];

const TIME_EXCEEDED_IN: [u8; 61] = [
    0x45, 0x00, 0x00, 0x3d, 0x00, 0x07, 0x00, 0x00, 0x40, 0x01, 0x26, 0x4f, 0xc6, 0x33, 0x64, 0x01,
    0xc6, 0x33, 0x64, 0x02, 0x0b, 0x00, 0x2b, 0x60, 0x00, 0x00, 0x00, 0x00, 0x45, 0x00, 0x00, 0x21,
    0x1c, 0x46, 0x40, 0x00, 0x01, 0x11, 0x27, 0x45, 0xc6, 0x33, 0x64, 0x02, 0x08, 0x08, 0x04, 0x04,
    0x4e, 0x21, 0x00, 0x35, 0x00, 0x0d, 0x2b, 0x54, 0x71, 0x75, 0x65, 0x72, 0x79,
];

const TIME_EXCEEDED_OUT: [u8; 61] = [
    0x45, 0x00, 0x00, 0x3d, 0x00, 0x07, 0x00, 0x00, 0x3f, 0x01, 0x8f, 0xd2, 0xc6, 0x33, 0x64, 0x01,
    0xc0, 0xa8, 0x01, 0x0a, 0x0b, 0x00, 0xc2, 0xdc, 0x00, 0x00, 0x00, 0x00, 0x45, 0x00, 0x00, 0x21,
    0x1c, 0x46, 0x40, 0x00, 0x01, 0x11, 0x8f, 0xc8, 0xc0, 0xa8, 0x01, 0x0a, 0x08, 0x08, 0x04, 0x04,
    0x9c, 0x41, 0x00, 0x35, 0x00, 0x0d, 0x45, 0xb7, 0x71, 0x75, 0x65, 0x72, 0x79,
];

#[test]
fn parse_tcp_syn() {
    let pkt = parse_ipv4(&SYN_IN, 0).unwrap();
    assert_eq!((pkt.src, pkt.dst, pkt.ttl, pkt.proto), (A, S, 64, 6));
    assert_eq!(
        (pkt.l3(), pkt.header_len(), pkt.total_len(), pkt.l4()),
        (0, 20, 40, 20)
    );
    assert_eq!(pkt.fragment, Fragment::Whole);
    assert_eq!(
        pkt.transport,
        Transport::Tcp {
            src_port: 40000,
            dst_port: 443,
            flags: 0x02
        }
    );
}

#[test]
fn rewrite_tcp_syn_out() {
    let mut frame = SYN_IN;
    let pkt = parse_ipv4(&frame, 0).unwrap();
    rewrite_flow(&mut frame, &pkt, ep(W, 20000), ep(S, 443));
    assert_eq!(frame, SYN_OUT);
}

#[test]
fn rewrite_udp_reply_in() {
    let mut frame = UDP_IN;
    let pkt = parse_ipv4(&frame, 0).unwrap();
    assert_eq!(
        pkt.transport,
        Transport::Udp {
            src_port: 53,
            dst_port: 20001
        }
    );
    rewrite_flow(&mut frame, &pkt, ep(S, 53), ep(A, 40001));
    assert_eq!(frame, UDP_OUT);
}

#[test]
fn rewrite_echo_request_identifier() {
    let mut frame = ECHO_IN;
    let pkt = parse_ipv4(&frame, 0).unwrap();
    assert_eq!(
        pkt.transport,
        Transport::IcmpEcho {
            id: 0x1234,
            request: true
        }
    );
    rewrite_flow(&mut frame, &pkt, ep(W, 20002), ep(S, 0));
    assert_eq!(frame, ECHO_OUT);
}

#[test]
fn rewrite_time_exceeded_about_udp() {
    let mut frame = TIME_EXCEEDED_IN;
    let pkt = parse_ipv4(&frame, 0).unwrap();
    assert_eq!(pkt.transport, Transport::IcmpError);
    let emb = pkt.embedded(&frame).unwrap();
    assert_eq!(
        (emb.src, emb.src_port, emb.dst, emb.dst_port, emb.proto),
        (W, 20001, S, 53, 17)
    );
    assert_eq!((emb.l3, emb.header_len, emb.l4_len), (28, 20, 13));
    rewrite_icmp_error(&mut frame, &pkt, &emb, (R, A), ep(A, 40001), ep(S, 53));
    assert_eq!(frame, TIME_EXCEEDED_OUT);
}

#[test]
fn frozen_packets_have_valid_checksums() {
    for p in [
        &SYN_IN[..],
        &SYN_OUT,
        &UDP_IN,
        &UDP_OUT,
        &ECHO_IN,
        &ECHO_OUT,
        &TIME_EXCEEDED_IN,
        &TIME_EXCEEDED_OUT,
    ] {
        assert_eq!(checksum::full(&p[..20]), 0);
    }
    let l4 = |p: &[u8]| {
        checksum::l4_verify_sum(
            p[12..16].try_into().unwrap(),
            p[16..20].try_into().unwrap(),
            p[9],
            &p[20..],
        )
    };
    assert_eq!(l4(&SYN_OUT), 0);
    assert_eq!(l4(&UDP_OUT), 0);
    assert_eq!(checksum::full(&ECHO_OUT[20..]), 0);
    assert_eq!(checksum::full(&TIME_EXCEEDED_OUT[20..]), 0);
}

/// An ICMP error grows in place: with headroom its headers go in front of the quote (only
/// the link header moves), without it the quote moves back; both give the same bytes.
#[test]
fn icmp_error_with_and_without_headroom() {
    use crate::packet::icmp_error::{build_icmp_error, IcmpErrorKind, HEADERS_AHEAD};
    use crate::packet::parse::{l3_offset, Medium};
    let mut ethernet = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
    ethernet.extend_from_slice(&SYN_IN);
    for (medium, packet) in [(Medium::Ip, &SYN_IN[..]), (Medium::Ethernet, &ethernet[..])] {
        let mut errors = Vec::new();
        for at in [0, HEADERS_AHEAD - 1, HEADERS_AHEAD, 64] {
            let mut buf = [0u8; 256];
            buf[at..at + packet.len()].copy_from_slice(packet);
            let l3 = l3_offset(medium, packet).unwrap();
            let pkt = parse_ipv4(&buf[at..at + packet.len()], l3).unwrap();
            let (start, len) =
                build_icmp_error(&mut buf, at, medium, &pkt, IcmpErrorKind::TimeExceeded, R)
                    .unwrap();
            if at >= HEADERS_AHEAD {
                assert_eq!(start, at - HEADERS_AHEAD, "in front");
            } else {
                assert_eq!(start, at, "in place");
            }
            let error = buf[start..start + len].to_vec();
            assert_eq!(error.len(), l3 + 28 + SYN_IN.len());
            assert_eq!(&error[l3 + 28..], &SYN_IN[..], "the quote is the packet");
            assert_eq!(checksum::full(&error[l3..l3 + 20]), 0, "IP header checksum");
            assert_eq!(checksum::full(&error[l3 + 20..]), 0, "ICMP checksum");
            assert_eq!(&error[l3 + 12..l3 + 16], &R.octets(), "from the router");
            assert_eq!(&error[l3 + 16..l3 + 20], &A.octets(), "to the sender");
            if medium == Medium::Ethernet {
                assert_eq!(&error[..6], &packet[6..12], "back to the sending neighbour");
                assert_eq!(&error[6..12], &packet[..6]);
            }
            errors.push(error);
        }
        assert!(errors.windows(2).all(|w| w[0] == w[1]), "{medium:?}");
        // no room at either end: refused, nothing written past the buffer
        let mut tight = packet.to_vec();
        let l3 = l3_offset(medium, packet).unwrap();
        let pkt = parse_ipv4(&tight, l3).unwrap();
        assert!(
            build_icmp_error(&mut tight, 0, medium, &pkt, IcmpErrorKind::TimeExceeded, R).is_none()
        );
    }
}
