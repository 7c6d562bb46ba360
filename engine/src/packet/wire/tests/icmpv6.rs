//! The ICMPv6 view: fields of written-out messages, the checksum against etherparse's, and
//! property tests (no panic on any bytes, the checksum found right and then wrong).

#![allow(clippy::unwrap_used)]

use std::net::Ipv6Addr;

use etherparse::{Icmpv6Type, PacketBuilder};
use proptest::prelude::*;

use super::ipv6::{HOST, PEER, ROUTER, TCP_SYN};
use crate::packet::wire::icmpv6::{self, msg_type, Icmpv6Message};
use crate::packet::wire::ip_proto;
use crate::packet::wire::ipv6::{Ipv6Packet, UpperLayer};
use crate::packet::wire::Error;

/// An echo request from 2001:db8::1 to 2001:db8::2, identifier 0x1234, sequence number 1,
/// with 4 bytes of data.
#[rustfmt::skip]
static ECHO_REQUEST: [u8; 52] = [
    // IPv6: payload length 12, next header ICMPv6, hop limit 64
    0x60, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x3a, 0x40,
    0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
    0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
    // ICMPv6: type 128, code 0, checksum 0x7471, identifier 0x1234, sequence number 1
    0x80, 0x00, 0x74, 0x71, 0x12, 0x34, 0x00, 0x01,
    // data
    0xde, 0xad, 0xbe, 0xef,
];

/// A Packet Too Big from the router 2001:db8::fe to 2001:db8::1, MTU 1280, quoting the
/// whole TCP SYN of the IPv6 tests.
#[rustfmt::skip]
static PACKET_TOO_BIG: [u8; 108] = [
    // IPv6: payload length 68, next header ICMPv6, hop limit 64
    0x60, 0x00, 0x00, 0x00, 0x00, 0x44, 0x3a, 0x40,
    // source 2001:db8::fe
    0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xfe,
    // destination 2001:db8::1
    0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
    // 40: ICMPv6: type 2, code 0, checksum 0x07e0, MTU 1280
    0x02, 0x00, 0x07, 0xe0, 0x00, 0x00, 0x05, 0x00,
    // 48: the quoted packet: IPv6, traffic class 0xab, flow label 0x12345, payload length
    // 20, TCP, hop limit 64, 2001:db8::1 -> 2001:db8::2
    0x6a, 0xb1, 0x23, 0x45, 0x00, 0x14, 0x06, 0x40,
    0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
    0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
    // 88: its TCP SYN, 49152 -> 80
    0xc0, 0x00, 0x00, 0x50, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
    0x50, 0x02, 0xff, 0xff, 0x94, 0x1c, 0x00, 0x00,
];

fn addr(octets: [u8; 16]) -> Ipv6Addr {
    Ipv6Addr::from(octets)
}

#[test]
fn echo_request_fields() {
    let m = Icmpv6Message::new_checked(&ECHO_REQUEST[40..]).unwrap();
    assert_eq!(m.msg_type(), msg_type::ECHO_REQUEST);
    assert_eq!(m.code(), 0);
    assert_eq!(m.checksum(), 0x7471);
    assert_eq!(m.echo_ident(), 0x1234);
    assert_eq!(m.echo_seq(), 1);
    assert!(!m.is_error());
    assert_eq!(m.data(), &[0xde, 0xad, 0xbe, 0xef]);
    assert!(m.verify_checksum(addr(HOST), addr(PEER)));
    // The pseudo-header counts: another address, and the sum is wrong.
    assert!(!m.verify_checksum(addr(HOST), addr(ROUTER)));
    assert_eq!(m.into_inner(), &ECHO_REQUEST[40..]);
}

/// The checksum written out above (0x7471, computed by hand) is etherparse's: its builder
/// writes the same packet, bit for bit.
#[test]
fn echo_request_checksum_golden() {
    let mut built = Vec::new();
    PacketBuilder::ipv6(HOST, PEER, 64)
        .icmpv6_echo_request(0x1234, 1)
        .write(&mut built, &[0xde, 0xad, 0xbe, 0xef])
        .unwrap();
    assert_eq!(built[..], ECHO_REQUEST[..]);
}

#[test]
fn packet_too_big_quotes_the_packet() {
    let ip = Ipv6Packet::new_checked(&PACKET_TOO_BIG[..]).unwrap();
    assert_eq!(
        ip.upper_layer(),
        Ok(UpperLayer {
            protocol: ip_proto::ICMPV6,
            offset: 40,
            fragment: None
        })
    );
    let m = Icmpv6Message::new_checked(ip.payload()).unwrap();
    assert_eq!(m.msg_type(), msg_type::PACKET_TOO_BIG);
    assert_eq!(m.code(), 0);
    assert_eq!(m.checksum(), 0x07e0);
    assert_eq!(m.mtu(), 1280);
    assert!(m.is_error());
    assert_eq!(m.data(), &TCP_SYN[..]);
    assert!(m.verify_checksum(ip.src(), ip.dst()));
    let quoted = Ipv6Packet::new_checked(m.data()).unwrap();
    assert_eq!(quoted.src(), addr(HOST));
    assert_eq!(quoted.dst(), addr(PEER));
    assert_eq!(quoted.upper_layer().unwrap().protocol, ip_proto::TCP);
}

/// The checksum written out above (0x07e0, computed by hand) is etherparse's.
#[test]
fn packet_too_big_checksum_golden() {
    let mut built = Vec::new();
    PacketBuilder::ipv6(ROUTER, HOST, 64)
        .icmpv6(Icmpv6Type::PacketTooBig { mtu: 1280 })
        .write(&mut built, &TCP_SYN)
        .unwrap();
    assert_eq!(built[..], PACKET_TOO_BIG[..]);
}

#[test]
fn parameter_problem_pointer() {
    // Type 4, code 0 (erroneous header field), checksum not filled in, pointer 7 (the
    // quoted packet's hop limit), then the quoted packet's first bytes.
    let message = [4, 0, 0, 0, 0, 0, 0, 7, 0x60, 0, 0, 0];
    let m = Icmpv6Message::new_checked(&message[..]).unwrap();
    assert_eq!(m.msg_type(), msg_type::PARAM_PROBLEM);
    assert_eq!(m.pointer(), 7);
    assert!(m.is_error());
    assert_eq!(m.data(), &[0x60, 0, 0, 0]);
}

#[test]
fn errors_and_informational_messages() {
    for t in [
        msg_type::DST_UNREACHABLE,
        msg_type::PACKET_TOO_BIG,
        msg_type::TIME_EXCEEDED,
        msg_type::PARAM_PROBLEM,
        0,
        127,
    ] {
        assert!(Icmpv6Message::new_checked(&[t, 0, 0, 0, 0, 0, 0, 0][..])
            .unwrap()
            .is_error());
    }
    for t in [msg_type::ECHO_REQUEST, msg_type::ECHO_REPLY, 133, 255] {
        assert!(!Icmpv6Message::new_checked(&[t, 0, 0, 0, 0, 0, 0, 0][..])
            .unwrap()
            .is_error());
    }
}

#[test]
fn neighbor_discovery_types() {
    for t in [
        msg_type::ROUTER_SOLICIT,
        msg_type::ROUTER_ADVERT,
        msg_type::NEIGHBOR_SOLICIT,
        msg_type::NEIGHBOR_ADVERT,
        msg_type::REDIRECT,
    ] {
        assert!(msg_type::is_neighbor_discovery(t), "{t}");
    }
    for t in [
        0,
        msg_type::ECHO_REQUEST,
        msg_type::ECHO_REPLY,
        132,
        138,
        255,
    ] {
        assert!(!msg_type::is_neighbor_discovery(t), "{t}");
    }
}

#[test]
fn truncated_and_short() {
    for len in 0..icmpv6::HEADER_LEN {
        assert_eq!(
            Icmpv6Message::new_checked(&ECHO_REQUEST[40..40 + len]),
            Err(Error::Truncated)
        );
    }
    let m = Icmpv6Message::new_checked(&ECHO_REQUEST[40..48]).unwrap();
    assert_eq!(m.data(), &[] as &[u8]);
    // Unchecked, a short buffer reads zeros.
    let m = Icmpv6Message::new_unchecked(&ECHO_REQUEST[40..45]);
    assert_eq!(m.msg_type(), msg_type::ECHO_REQUEST);
    assert_eq!(m.checksum(), 0x7471);
    assert_eq!(m.echo_ident(), 0);
    assert_eq!(m.echo_seq(), 0);
    assert_eq!(m.mtu(), 0);
    assert_eq!(m.data(), &[] as &[u8]);
    let m = Icmpv6Message::new_unchecked(&[0u8; 0][..]);
    assert_eq!((m.msg_type(), m.code(), m.pointer()), (0, 0, 0));
}

#[test]
fn setters_and_fill_checksum() {
    let mut buf = ECHO_REQUEST;
    let mut m = Icmpv6Message::new_checked(&mut buf[40..]).unwrap();
    m.set_echo_ident(0xbeef);
    assert_eq!(m.echo_ident(), 0xbeef);
    assert!(!m.verify_checksum(addr(HOST), addr(PEER)));
    m.fill_checksum(addr(HOST), addr(PEER));
    assert!(m.verify_checksum(addr(HOST), addr(PEER)));
    m.data_mut()[0] = 0;
    assert!(!m.verify_checksum(addr(HOST), addr(PEER)));
    m.fill_checksum(addr(HOST), addr(PEER));
    assert!(m.verify_checksum(addr(HOST), addr(PEER)));
    let sum = m.checksum();
    m.set_checksum(0);
    assert_eq!(m.checksum(), 0);
    assert_eq!(
        buf[40 + icmpv6::CHECKSUM..40 + icmpv6::CHECKSUM + 2],
        [0, 0]
    );
    assert_eq!(
        buf[40 + icmpv6::ECHO_IDENT..40 + icmpv6::ECHO_IDENT + 2],
        [0xbe, 0xef]
    );
    assert_eq!(buf[48..], [0x00, 0xad, 0xbe, 0xef]);
    // The same as etherparse's for the rewritten message.
    let mut built = Vec::new();
    PacketBuilder::ipv6(HOST, PEER, 64)
        .icmpv6_echo_request(0xbeef, 1)
        .write(&mut built, &[0x00, 0xad, 0xbe, 0xef])
        .unwrap();
    assert_eq!(u16::from_be_bytes([built[42], built[43]]), sum);
    // Writes outside a short buffer do nothing.
    let mut short = [0u8; 3];
    let mut m = Icmpv6Message::new_unchecked(&mut short[..]);
    m.set_echo_ident(1);
    m.set_checksum(0xffff);
    assert!(m.data_mut().is_empty());
    assert_eq!(short, [0, 0, 0]);
}

/// An ICMPv6 message built by etherparse: any type, code and second word, and data.
fn built_message() -> impl Strategy<Value = ([u8; 16], [u8; 16], Vec<u8>)> {
    (
        any::<[u8; 16]>(),
        any::<[u8; 16]>(),
        any::<u8>(),
        any::<u8>(),
        any::<[u8; 4]>(),
        proptest::collection::vec(any::<u8>(), 0..128),
    )
        .prop_map(|(src, dst, t, code, word, data)| {
            let mut built = Vec::new();
            PacketBuilder::ipv6(src, dst, 64)
                .icmpv6_raw(t, code, word)
                .write(&mut built, &data)
                .unwrap();
            (src, dst, built.split_off(40))
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Nothing panics, on any bytes, checked or not.
    #[test]
    fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200),
                    src in any::<[u8; 16]>(), dst in any::<[u8; 16]>()) {
        let checked = Icmpv6Message::new_checked(&bytes[..]);
        prop_assert_eq!(checked.is_ok(), bytes.len() >= icmpv6::HEADER_LEN);
        let m = Icmpv6Message::new_unchecked(&bytes[..]);
        let _ = (m.msg_type(), m.code(), m.checksum(), m.echo_ident(), m.echo_seq());
        let _ = (m.mtu(), m.pointer(), m.is_error(), m.data());
        let _ = m.verify_checksum(addr(src), addr(dst));
        let mut copy = bytes.clone();
        let mut m = Icmpv6Message::new_unchecked(&mut copy[..]);
        m.set_echo_ident(7);
        let _ = m.data_mut();
        m.fill_checksum(addr(src), addr(dst));
        if bytes.len() >= 4 {
            prop_assert!(m.verify_checksum(addr(src), addr(dst)));
        }
    }

    /// etherparse's checksum is right by ours, and wrong after any one byte changes; ours,
    /// filled in afresh, is etherparse's.
    #[test]
    fn checksum_matches_etherparse((src, dst, message) in built_message(),
                                   flip in any::<prop::sample::Index>(), xor in 1u8..) {
        let m = Icmpv6Message::new_checked(&message[..]).unwrap();
        prop_assert!(m.verify_checksum(addr(src), addr(dst)));
        let theirs = m.checksum();

        let mut copy = message.clone();
        let mut m = Icmpv6Message::new_checked(&mut copy[..]).unwrap();
        m.fill_checksum(addr(src), addr(dst));
        prop_assert_eq!(m.checksum(), theirs);

        let mut flipped = message.clone();
        flipped[flip.index(message.len())] ^= xor;
        let m = Icmpv6Message::new_checked(&flipped[..]).unwrap();
        prop_assert!(!m.verify_checksum(addr(src), addr(dst)));
    }
}
