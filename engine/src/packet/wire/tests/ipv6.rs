//! The IPv6 view: fields of written-out packets, the extension-header walk, every refusal,
//! and property tests (no panic on any bytes, agreement with etherparse).

#![allow(clippy::unwrap_used)]

use std::net::Ipv6Addr;

use etherparse::{Ipv6HeaderSlice, Ipv6Slice, PacketBuilder};
use proptest::prelude::*;

use crate::packet::checksum::l4_verify_sum_v6;
use crate::packet::wire::ip_proto;
use crate::packet::wire::ipv6::{self, FragmentHeader, Ipv6Packet, UpperLayer};
use crate::packet::wire::Error;

/// 2001:db8::1, the host.
pub(super) const HOST: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
];
/// 2001:db8::2, its peer.
pub(super) const PEER: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02,
];
/// 2001:db8::fe, a router.
pub(super) const ROUTER: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xfe,
];

/// A TCP SYN from 2001:db8::1 port 49152 to 2001:db8::2 port 80.
#[rustfmt::skip]
pub(super) static TCP_SYN: [u8; 60] = [
    // IPv6: version 6, traffic class 0xab, flow label 0x12345; payload length 20,
    // next header TCP, hop limit 64
    0x6a, 0xb1, 0x23, 0x45, 0x00, 0x14, 0x06, 0x40,
    // source 2001:db8::1
    0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
    // destination 2001:db8::2
    0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
    // TCP: ports 49152 -> 80, sequence 1, ack 0, data offset 5, SYN, window 65535,
    // checksum 0x941c, urgent pointer 0
    0xc0, 0x00, 0x00, 0x50, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
    0x50, 0x02, 0xff, 0xff, 0x94, 0x1c, 0x00, 0x00,
];

/// A UDP datagram from 2001:db8::1 port 5353 to 2001:db8::2 port 53 with 4 bytes of data,
/// followed by 6 bytes that are not the packet's (a link layer's padding).
#[rustfmt::skip]
static UDP_PADDED: [u8; 58] = [
    // IPv6: payload length 12, next header UDP, hop limit 64
    0x60, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x11, 0x40,
    0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
    0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
    // UDP: ports 5353 -> 53, length 12, checksum 0x8b3d; data 01 02 03 04
    0x14, 0xe9, 0x00, 0x35, 0x00, 0x0c, 0x8b, 0x3d, 0x01, 0x02, 0x03, 0x04,
    // padding
    0xee, 0xee, 0xee, 0xee, 0xee, 0xee,
];

/// Hop-by-hop options, destination options and a routing header before a UDP datagram.
#[rustfmt::skip]
static EXT_CHAIN: [u8; 92] = [
    // IPv6: payload length 52, next header hop-by-hop, hop limit 64
    0x60, 0x00, 0x00, 0x00, 0x00, 0x34, 0x00, 0x40,
    0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
    0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
    // 40: hop-by-hop: next header destination options, length 0 (8 bytes), PadN of 4
    0x3c, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00,
    // 48: destination options: next header routing, length 0 (8 bytes), PadN of 4
    0x2b, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00,
    // 56: routing: next header UDP, length 2 (24 bytes), type 2, segments left 1, reserved,
    // home address 2001:db8::fe
    0x11, 0x02, 0x02, 0x01, 0x00, 0x00, 0x00, 0x00,
    0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xfe,
    // 80: UDP: ports 5353 -> 53, length 12, checksum not filled in; data 01 02 03 04
    0x14, 0xe9, 0x00, 0x35, 0x00, 0x0c, 0x00, 0x00, 0x01, 0x02, 0x03, 0x04,
];

/// The first fragment of a UDP datagram: offset 0, more to come, identification 0x12345678.
#[rustfmt::skip]
static FIRST_FRAGMENT: [u8; 64] = [
    // IPv6: payload length 24, next header fragment, hop limit 64
    0x60, 0x00, 0x00, 0x00, 0x00, 0x18, 0x2c, 0x40,
    0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
    0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
    // 40: fragment: next header UDP, reserved, offset 0 with M set, identification
    0x11, 0x00, 0x00, 0x01, 0x12, 0x34, 0x56, 0x78,
    // 48: UDP: ports 5353 -> 53, length 24 (the whole datagram), checksum 0x1234; 8 bytes of
    // the datagram's 16
    0x14, 0xe9, 0x00, 0x35, 0x00, 0x18, 0x12, 0x34,
    0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
];

/// The next fragment of the same datagram: offset 2 (16 bytes), the last. It carries data
/// only: no UDP header.
#[rustfmt::skip]
static LATER_FRAGMENT: [u8; 56] = [
    // IPv6: payload length 16, next header fragment, hop limit 64
    0x60, 0x00, 0x00, 0x00, 0x00, 0x10, 0x2c, 0x40,
    0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
    0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
    // 40: fragment: next header UDP, reserved 0xff (ignored), offset 2 (0x0010 >> 3), M clear,
    // identification
    0x11, 0xff, 0x00, 0x10, 0x12, 0x34, 0x56, 0x78,
    // 48: the datagram's bytes 16..24
    0xb0, 0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7,
];

/// An authentication header (RFC 4302) before a UDP datagram.
#[rustfmt::skip]
static AUTH: [u8; 72] = [
    // IPv6: payload length 32, next header AH, hop limit 64
    0x60, 0x00, 0x00, 0x00, 0x00, 0x20, 0x33, 0x40,
    0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
    0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
    // 40: AH: next header UDP, payload length 4 ((4 + 2) * 4 = 24 bytes), reserved, SPI 0x100,
    // sequence number 1, 12 bytes of ICV
    0x11, 0x04, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x01,
    0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xcb,
    // 64: UDP: ports 5353 -> 53, length 8, checksum not filled in
    0x14, 0xe9, 0x00, 0x35, 0x00, 0x08, 0x00, 0x00,
];

/// Hop-by-hop options in second place, after destination options: not allowed.
#[rustfmt::skip]
static HOP_BY_HOP_SECOND: [u8; 64] = [
    // IPv6: payload length 24, next header destination options, hop limit 64
    0x60, 0x00, 0x00, 0x00, 0x00, 0x18, 0x3c, 0x40,
    0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
    0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
    // 40: destination options: next header hop-by-hop, 8 bytes, PadN of 4
    0x00, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00,
    // 48: hop-by-hop: next header UDP, 8 bytes, PadN of 4
    0x11, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00,
    // 56: UDP: ports 5353 -> 53, length 8, checksum not filled in
    0x14, 0xe9, 0x00, 0x35, 0x00, 0x08, 0x00, 0x00,
];

/// Nine destination options headers of 8 bytes each before a UDP datagram: one more than
/// the walk goes through.
#[rustfmt::skip]
static NINE_HEADERS: [u8; 120] = [
    // IPv6: payload length 80, next header destination options, hop limit 64
    0x60, 0x00, 0x00, 0x00, 0x00, 0x50, 0x3c, 0x40,
    0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
    0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
    // 40, 48, ..., 96: destination options, each next header destination options, 8 bytes,
    // PadN of 4
    0x3c, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00,
    0x3c, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00,
    0x3c, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00,
    0x3c, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00,
    0x3c, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00,
    0x3c, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00,
    0x3c, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00,
    0x3c, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00,
    // 104: the ninth, next header UDP
    0x11, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00,
    // 112: UDP: ports 5353 -> 53, length 8, checksum not filled in
    0x14, 0xe9, 0x00, 0x35, 0x00, 0x08, 0x00, 0x00,
];

/// Every written-out packet here, for the property tests to mutate.
fn samples() -> [&'static [u8]; 8] {
    [
        &TCP_SYN,
        &UDP_PADDED,
        &EXT_CHAIN,
        &FIRST_FRAGMENT,
        &LATER_FRAGMENT,
        &AUTH,
        &HOP_BY_HOP_SECOND,
        &NINE_HEADERS,
    ]
}

fn upper(packet: &[u8]) -> Result<UpperLayer, Error> {
    Ipv6Packet::new_checked(packet)?.upper_layer()
}

/// A copy of `packet` with the payload length set to `len`.
fn with_payload_len(packet: &[u8], len: u16) -> Vec<u8> {
    let mut v = packet.to_vec();
    v[ipv6::PAYLOAD_LEN..ipv6::PAYLOAD_LEN + 2].copy_from_slice(&len.to_be_bytes());
    v
}

#[test]
fn tcp_syn_fields() {
    let p = Ipv6Packet::new_checked(&TCP_SYN[..]).unwrap();
    assert_eq!(p.traffic_class(), 0xab);
    assert_eq!(p.flow_label(), 0x12345);
    assert_eq!(p.payload_len(), 20);
    assert_eq!(p.next_header(), ip_proto::TCP);
    assert_eq!(p.hop_limit(), 64);
    assert_eq!(p.src(), Ipv6Addr::from(HOST));
    assert_eq!(p.dst(), Ipv6Addr::from(PEER));
    assert_eq!(p.total_len(), 60);
    assert_eq!(p.header(), &TCP_SYN[..40]);
    assert_eq!(p.payload(), &TCP_SYN[40..]);
    assert_eq!(
        p.upper_layer(),
        Ok(UpperLayer {
            protocol: ip_proto::TCP,
            offset: 40,
            fragment: None
        })
    );
    assert_eq!(p.into_inner(), &TCP_SYN[..]);
}

/// The TCP checksum written out above (0x941c, computed by hand) is etherparse's, and
/// `l4_verify_sum_v6` finds it correct.
#[test]
fn tcp_syn_checksum_golden() {
    let builder = PacketBuilder::ipv6(HOST, PEER, 64)
        .tcp(49152, 80, 1, 0xffff)
        .syn();
    let mut built = Vec::new();
    builder.write(&mut built, &[]).unwrap();
    // etherparse writes traffic class and flow label 0: the rest is the same, bit for bit.
    assert_eq!(built[4..], TCP_SYN[4..]);
    assert_eq!(u16::from_be_bytes([built[56], built[57]]), 0x941c);
    assert_eq!(
        l4_verify_sum_v6(HOST, PEER, ip_proto::TCP, &TCP_SYN[40..]),
        0
    );
    // The function computes the checksum to store when the field is zero.
    let mut zeroed = TCP_SYN[40..].to_vec();
    zeroed[16..18].fill(0);
    assert_eq!(l4_verify_sum_v6(HOST, PEER, ip_proto::TCP, &zeroed), 0x941c);
    // Another next header or address gives another sum.
    assert_ne!(
        l4_verify_sum_v6(HOST, PEER, ip_proto::UDP, &TCP_SYN[40..]),
        0
    );
    assert_ne!(
        l4_verify_sum_v6(HOST, ROUTER, ip_proto::TCP, &TCP_SYN[40..]),
        0
    );
}

#[test]
fn udp_padding_is_not_the_packets() {
    let p = Ipv6Packet::new_checked(&UDP_PADDED[..]).unwrap();
    assert_eq!(p.payload_len(), 12);
    assert_eq!(p.total_len(), 52);
    assert_eq!(p.payload(), &UDP_PADDED[40..52]);
    assert_eq!(p.traffic_class(), 0);
    assert_eq!(p.flow_label(), 0);
    assert_eq!(
        p.upper_layer(),
        Ok(UpperLayer {
            protocol: ip_proto::UDP,
            offset: 40,
            fragment: None
        })
    );
    // The UDP checksum (0x8b3d, computed by hand) is etherparse's.
    let mut built = Vec::new();
    PacketBuilder::ipv6(HOST, PEER, 64)
        .udp(5353, 53)
        .write(&mut built, &[1, 2, 3, 4])
        .unwrap();
    assert_eq!(built[..], UDP_PADDED[..52]);
    assert_eq!(l4_verify_sum_v6(HOST, PEER, ip_proto::UDP, p.payload()), 0);
}

#[test]
fn extension_chain_to_udp() {
    assert_eq!(
        upper(&EXT_CHAIN),
        Ok(UpperLayer {
            protocol: ip_proto::UDP,
            offset: 80,
            fragment: None
        })
    );
    // etherparse walks it to the same place.
    let slice = Ipv6Slice::from_slice(&EXT_CHAIN).unwrap();
    assert_eq!(slice.payload().ip_number.0, ip_proto::UDP);
    assert_eq!(slice.payload().payload, &EXT_CHAIN[80..]);
}

#[test]
fn first_fragment_reaches_the_upper_layer() {
    assert_eq!(
        upper(&FIRST_FRAGMENT),
        Ok(UpperLayer {
            protocol: ip_proto::UDP,
            offset: 48,
            fragment: Some(FragmentHeader {
                offset: 0,
                more: true,
                ident: 0x1234_5678,
                at: 40
            })
        })
    );
}

#[test]
fn later_fragment_stops_after_the_fragment_header() {
    let expect = |protocol| {
        Ok(UpperLayer {
            protocol,
            offset: 48,
            fragment: Some(FragmentHeader {
                offset: 2,
                more: false,
                ident: 0x1234_5678,
                at: 40,
            }),
        })
    };
    assert_eq!(upper(&LATER_FRAGMENT), expect(ip_proto::UDP));
    // The fragment's data is not read as headers, even when the next header names one.
    let mut v = LATER_FRAGMENT.to_vec();
    v[40] = ip_proto::IPV6_DEST_OPTS;
    v[49] = 0xff; // a destination options header here would be 2048 bytes long
    assert_eq!(upper(&v), expect(ip_proto::IPV6_DEST_OPTS));
}

#[test]
fn atomic_fragment_is_walked_through() {
    // Offset 0 and no more fragments (RFC 6946): the upper layer follows.
    let mut v = FIRST_FRAGMENT.to_vec();
    v[43] = 0x00;
    let u = upper(&v).unwrap();
    assert_eq!((u.protocol, u.offset), (ip_proto::UDP, 48));
    assert_eq!(
        u.fragment,
        Some(FragmentHeader {
            offset: 0,
            more: false,
            ident: 0x1234_5678,
            at: 40
        })
    );
}

#[test]
fn a_second_fragment_header_is_malformed() {
    // The first fragment's fragment header names another fragment header after it.
    let mut v = FIRST_FRAGMENT.to_vec();
    v[40] = ip_proto::IPV6_FRAGMENT;
    v[48..56].copy_from_slice(&[0x11, 0x00, 0x00, 0x01, 0x12, 0x34, 0x56, 0x79]);
    assert_eq!(upper(&v), Err(Error::Malformed));
}

#[test]
fn authentication_header_is_walked_through() {
    assert_eq!(
        upper(&AUTH),
        Ok(UpperLayer {
            protocol: ip_proto::UDP,
            offset: 64,
            fragment: None
        })
    );
    let slice = Ipv6Slice::from_slice(&AUTH).unwrap();
    assert_eq!(slice.payload().ip_number.0, ip_proto::UDP);
    assert_eq!(slice.payload().payload, &AUTH[64..]);
    // A length of 0 leaves no room for the SPI and sequence number.
    let mut v = AUTH.to_vec();
    v[41] = 0;
    assert_eq!(upper(&v), Err(Error::Malformed));
}

#[test]
fn hop_by_hop_only_first() {
    assert_eq!(upper(&HOP_BY_HOP_SECOND), Err(Error::Malformed));
    // First, it is walked through.
    let mut v = HOP_BY_HOP_SECOND.to_vec();
    v[ipv6::NEXT_HEADER] = ip_proto::HOP_BY_HOP;
    v[40] = ip_proto::IPV6_DEST_OPTS;
    v[48] = ip_proto::UDP;
    assert_eq!(
        upper(&v),
        Ok(UpperLayer {
            protocol: ip_proto::UDP,
            offset: 56,
            fragment: None
        })
    );
}

#[test]
fn at_most_eight_extension_headers() {
    assert!(Ipv6Packet::new_checked(&NINE_HEADERS[..]).is_ok());
    assert_eq!(upper(&NINE_HEADERS), Err(Error::Malformed));
    // The eighth names UDP: the ninth is then the UDP datagram's first bytes.
    let mut v = NINE_HEADERS.to_vec();
    v[96] = ip_proto::UDP;
    assert_eq!(
        upper(&v),
        Ok(UpperLayer {
            protocol: ip_proto::UDP,
            offset: 104,
            fragment: None
        })
    );
}

#[test]
fn upper_protocols_end_the_walk() {
    for protocol in [
        ip_proto::TCP,
        ip_proto::UDP,
        ip_proto::ICMPV6,
        ip_proto::ESP,
        ip_proto::IPV6_NO_NEXT,
        ip_proto::ICMP,
        253,
    ] {
        let mut v = EXT_CHAIN.to_vec();
        v[48] = protocol; // the destination options header's next header
        assert_eq!(
            upper(&v),
            Ok(UpperLayer {
                protocol,
                offset: 56,
                fragment: None
            })
        );
    }
}

#[test]
fn refused_headers() {
    // Not version 6.
    let mut v = TCP_SYN.to_vec();
    v[0] = 0x4a;
    assert_eq!(Ipv6Packet::new_checked(&v[..]), Err(Error::Malformed));
    // A jumbogram: payload length 0 before a hop-by-hop header.
    let v = with_payload_len(&EXT_CHAIN, 0);
    assert_eq!(Ipv6Packet::new_checked(&v[..]), Err(Error::Malformed));
    assert_eq!(
        Ipv6Packet::new_unchecked(&v[..]).upper_layer(),
        Err(Error::Malformed)
    );
}

#[test]
fn an_empty_payload_is_allowed() {
    let v = with_payload_len(&TCP_SYN, 0);
    let p = Ipv6Packet::new_checked(&v[..]).unwrap();
    assert_eq!(p.total_len(), 40);
    assert_eq!(p.payload(), &[] as &[u8]);
    assert_eq!(
        p.upper_layer(),
        Ok(UpperLayer {
            protocol: ip_proto::TCP,
            offset: 40,
            fragment: None
        })
    );
    // No payload before a destination options header: it does not fit.
    let mut v = with_payload_len(&NINE_HEADERS, 0);
    v.truncate(40);
    assert_eq!(upper(&v), Err(Error::Truncated));
}

#[test]
fn truncations() {
    // The fixed header.
    for len in [0, 1, 39] {
        assert_eq!(
            Ipv6Packet::new_checked(&TCP_SYN[..len]),
            Err(Error::Truncated)
        );
    }
    // The payload length.
    assert_eq!(
        Ipv6Packet::new_checked(&TCP_SYN[..59]),
        Err(Error::Truncated)
    );
    assert!(Ipv6Packet::new_checked(&UDP_PADDED[..52]).is_ok());
    assert_eq!(
        Ipv6Packet::new_checked(&UDP_PADDED[..51]),
        Err(Error::Truncated)
    );
    // Each extension header, cut by the payload length while the buffer goes on: its
    // length byte missing, then its last byte missing.
    let cases: [(&[u8], usize, usize); 6] = [
        (&EXT_CHAIN, 40, 8),  // hop-by-hop
        (&EXT_CHAIN, 48, 8),  // destination options
        (&EXT_CHAIN, 56, 24), // routing
        (&FIRST_FRAGMENT, 40, 8),
        (&AUTH, 40, 24),
        (&NINE_HEADERS, 96, 8), // the eighth
    ];
    for (packet, at, len) in cases {
        for payload_len in [at + 1 - 40, at + len - 1 - 40] {
            let v = with_payload_len(packet, payload_len as u16);
            assert_eq!(upper(&v), Err(Error::Truncated), "{at} {payload_len}");
        }
    }
}

#[test]
fn a_quote_cut_short_is_checked_as_a_quote_only() {
    let cut = &TCP_SYN[..48];
    assert_eq!(Ipv6Packet::new_checked(cut).err(), Some(Error::Truncated));
    let quote = Ipv6Packet::new_checked_quote(cut).unwrap();
    assert_eq!(quote.payload(), &TCP_SYN[40..48]);
    assert_eq!(quote.src(), Ipv6Addr::from(HOST));
    assert_eq!(
        Ipv6Packet::new_checked_quote(&TCP_SYN[..39]).err(),
        Some(Error::Truncated)
    );
    let mut v4 = TCP_SYN;
    v4[0] = 0x45;
    assert_eq!(
        Ipv6Packet::new_checked_quote(&v4[..]).err(),
        Some(Error::Malformed)
    );
}

#[test]
fn unchecked_short_buffers_read_zeros() {
    let p = Ipv6Packet::new_unchecked(&TCP_SYN[..30]);
    assert_eq!(p.payload_len(), 20);
    assert_eq!(p.next_header(), ip_proto::TCP);
    assert_eq!(p.dst(), Ipv6Addr::UNSPECIFIED);
    assert_eq!(p.header(), &TCP_SYN[..30]);
    assert_eq!(p.payload(), &[] as &[u8]);
    assert_eq!(p.upper_layer(), Err(Error::Truncated));
    let p = Ipv6Packet::new_unchecked(&[0u8; 0][..]);
    assert_eq!(p.traffic_class(), 0);
    assert_eq!(p.flow_label(), 0);
    assert_eq!(p.hop_limit(), 0);
    assert_eq!(p.src(), Ipv6Addr::UNSPECIFIED);
    assert_eq!(p.total_len(), 40);
}

#[test]
fn setters_write_in_place() {
    let mut buf = TCP_SYN;
    let mut p = Ipv6Packet::new_checked(&mut buf[..]).unwrap();
    p.set_src(Ipv6Addr::from(ROUTER));
    p.set_dst(Ipv6Addr::from(HOST));
    p.set_hop_limit(1);
    p.payload_mut()[0] = 0xaa;
    assert_eq!(p.src(), Ipv6Addr::from(ROUTER));
    assert_eq!(p.dst(), Ipv6Addr::from(HOST));
    assert_eq!(p.hop_limit(), 1);
    assert_eq!(buf[ipv6::SRC..ipv6::SRC + 16], ROUTER);
    assert_eq!(buf[ipv6::DST..ipv6::DST + 16], HOST);
    assert_eq!(buf[ipv6::HOP_LIMIT], 1);
    assert_eq!(buf[40], 0xaa);
    // Fields other than those written are left alone.
    assert_eq!(buf[..8], [0x6a, 0xb1, 0x23, 0x45, 0x00, 0x14, 0x06, 0x01]);
    assert_eq!(buf[41..], TCP_SYN[41..]);
    // Nothing is written outside a short buffer, and its payload is empty.
    let mut short = [0u8; 30];
    let mut p = Ipv6Packet::new_unchecked(&mut short[..]);
    p.set_dst(Ipv6Addr::from(HOST));
    p.set_src(Ipv6Addr::from(HOST));
    p.set_hop_limit(9);
    assert!(p.payload_mut().is_empty());
    assert_eq!(short[..7], [0; 7]);
    assert_eq!(short[7], 9);
    assert_eq!(short[8..24], HOST);
    assert_eq!(short[24..], [0; 6]);
}

/// Reads every field and walks the headers: none of it may panic.
fn read_everything(p: &Ipv6Packet<&[u8]>) {
    let _ = (p.traffic_class(), p.flow_label(), p.payload_len());
    let _ = (p.next_header(), p.hop_limit(), p.src(), p.dst());
    let _ = (p.header(), p.payload(), p.total_len());
    if let Ok(u) = p.upper_layer() {
        assert!(u.offset >= ipv6::HEADER_LEN && u.offset <= p.total_len());
        if let Some(f) = u.fragment {
            assert!(f.at + 8 <= u.offset);
        }
    }
}

/// A packet with extension headers chosen at random (valid in shape, maybe not in order),
/// then maybe some bytes changed, cut short or padded.
fn chained() -> impl Strategy<Value = Vec<u8>> {
    let header = (0usize..5, 0u8..4, any::<bool>(), any::<u16>(), any::<u32>());
    let upper = prop_oneof![
        Just(ip_proto::TCP),
        Just(ip_proto::UDP),
        Just(ip_proto::ICMPV6),
        Just(ip_proto::ESP),
        Just(ip_proto::IPV6_NO_NEXT),
        any::<u8>(),
    ];
    (
        proptest::collection::vec(header, 0..11),
        upper,
        proptest::collection::vec(any::<u8>(), 0..24),
        any::<[u8; 4]>(),
        proptest::collection::vec((any::<usize>(), any::<u8>()), 0..3),
        prop_oneof![Just(0isize), -8isize..8],
    )
        .prop_map(|(headers, upper, tail, first, mutations, resize)| {
            let kinds = [
                ip_proto::HOP_BY_HOP,
                ip_proto::IPV6_DEST_OPTS,
                ip_proto::IPV6_ROUTING,
                ip_proto::IPV6_FRAGMENT,
                ip_proto::AH,
            ];
            let protocols: Vec<u8> = headers.iter().map(|h| kinds[h.0]).collect();
            let mut body = Vec::new();
            for (i, &(_, len, first_fragment, word, ident)) in headers.iter().enumerate() {
                let next = protocols.get(i + 1).copied().unwrap_or(upper);
                match protocols[i] {
                    ip_proto::IPV6_FRAGMENT => {
                        let word = if first_fragment { word & 1 } else { word };
                        body.push(next);
                        body.push(0);
                        body.extend_from_slice(&word.to_be_bytes());
                        body.extend_from_slice(&ident.to_be_bytes());
                    }
                    ip_proto::AH => {
                        let size = (usize::from(len) + 2) * 4;
                        body.extend_from_slice(&[next, len]);
                        body.extend((2..size).map(|b| b as u8));
                    }
                    _ => {
                        let size = (usize::from(len) + 1) * 8;
                        body.extend_from_slice(&[next, len]);
                        body.extend((2..size).map(|b| b as u8));
                    }
                }
            }
            body.extend_from_slice(&tail);
            let first_protocol = protocols.first().copied().unwrap_or(upper);
            let mut v = vec![0x60 | (first[0] & 0x0f), first[1], first[2], first[3]];
            v.extend_from_slice(&(body.len() as u16).to_be_bytes());
            v.extend_from_slice(&[first_protocol, 64]);
            v.extend_from_slice(&HOST);
            v.extend_from_slice(&PEER);
            v.extend_from_slice(&body);
            for (at, value) in mutations {
                let i = at % v.len();
                v[i] = value;
            }
            let len = v.len().saturating_add_signed(resize);
            v.resize(len, 0xee);
            v
        })
}

/// One of the written-out packets with some bytes changed, maybe cut short.
fn mutated_sample() -> impl Strategy<Value = Vec<u8>> {
    (
        0usize..8,
        proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        any::<prop::sample::Index>(),
        any::<bool>(),
    )
        .prop_map(|(which, mutations, cut, do_cut)| {
            let mut v = samples()[which].to_vec();
            for (at, value) in mutations {
                let i = at % v.len();
                v[i] = value;
            }
            if do_cut {
                v.truncate(cut.index(v.len() + 1));
            }
            v
        })
}

fn any_packet() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        chained(),
        mutated_sample(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Nothing panics, on any bytes, checked or not.
    #[test]
    fn never_panics(bytes in any_packet()) {
        let unchecked = Ipv6Packet::new_unchecked(&bytes[..]);
        read_everything(&unchecked);
        if let Ok(p) = Ipv6Packet::new_checked(&bytes[..]) {
            prop_assert!(p.total_len() <= bytes.len());
            prop_assert_eq!(p.payload().len(), p.payload_len());
            read_everything(&p);
        }
        let mut copy = bytes.clone();
        let mut p = Ipv6Packet::new_unchecked(&mut copy[..]);
        p.set_src(Ipv6Addr::LOCALHOST);
        p.set_dst(Ipv6Addr::LOCALHOST);
        p.set_hop_limit(0);
        let _ = p.payload_mut();
        prop_assert_eq!(copy.len(), bytes.len());
    }

    /// Where etherparse reads a header, our accessors read the same fields; we accept what
    /// etherparse's header check accepts, less a payload longer than the buffer and
    /// jumbograms; where both walks succeed and no fragment header is on the way, they end
    /// at the same upper layer.
    #[test]
    fn agrees_with_etherparse(bytes in prop_oneof![chained(), mutated_sample()]) {
        let ours = Ipv6Packet::new_checked(&bytes[..]);
        let Ok(theirs) = Ipv6HeaderSlice::from_slice(&bytes) else {
            prop_assert!(ours.is_err());
            return Ok(());
        };
        let fits = 40 + usize::from(theirs.payload_length()) <= bytes.len();
        let jumbo = theirs.payload_length() == 0 && theirs.next_header().0 == ip_proto::HOP_BY_HOP;
        prop_assert_eq!(ours.is_ok(), fits && !jumbo);
        let p = Ipv6Packet::new_unchecked(&bytes[..]);
        prop_assert_eq!(p.traffic_class(), theirs.traffic_class());
        prop_assert_eq!(p.flow_label(), theirs.flow_label().value());
        prop_assert_eq!(p.payload_len(), usize::from(theirs.payload_length()));
        prop_assert_eq!(p.next_header(), theirs.next_header().0);
        prop_assert_eq!(p.hop_limit(), theirs.hop_limit());
        prop_assert_eq!(p.src(), theirs.source_addr());
        prop_assert_eq!(p.dst(), theirs.destination_addr());
        let Ok(p) = ours else { return Ok(()) };
        let walked = p.upper_layer();
        match Ipv6Slice::from_slice(&bytes) {
            Ok(slice) => {
                if let Ok(u) = walked {
                    if u.fragment.is_none() {
                        let payload = slice.payload();
                        let at = payload.payload.as_ptr() as usize - bytes.as_ptr() as usize;
                        prop_assert_eq!(u.protocol, payload.ip_number.0);
                        prop_assert_eq!(u.offset, at);
                    }
                }
            }
            // Where etherparse finds a header that does not fit, so do we, unless we stopped
            // at a fragment before it or gave up on too many headers.
            Err(etherparse::err::ipv6::SliceError::Len(_)) => match walked {
                Ok(u) => prop_assert!(u.fragment.is_some_and(|f| !f.is_first())),
                Err(e) => prop_assert!(e == Error::Truncated || e == Error::Malformed),
            },
            Err(_) => {}
        }
        // Truncated for us is truncated for etherparse: it walks the same headers (a payload
        // length of 0 aside, which it reads as "to the end of the buffer").
        if walked == Err(Error::Truncated) && p.payload_len() > 0 {
            prop_assert!(Ipv6Slice::from_slice(&bytes).is_err());
        }
    }

    /// TCP and UDP over IPv6 built by etherparse sum to 0 under `l4_verify_sum_v6`, and
    /// not after one byte of the segment changes.
    #[test]
    fn l4_sum_v6_matches_etherparse(src in any::<[u8; 16]>(), dst in any::<[u8; 16]>(),
                                    udp in any::<bool>(),
                                    data in proptest::collection::vec(any::<u8>(), 0..64),
                                    flip in any::<prop::sample::Index>(), xor in 1u8..) {
        let mut built = Vec::new();
        let builder = PacketBuilder::ipv6(src, dst, 64);
        let protocol = if udp {
            builder.udp(1000, 2000).write(&mut built, &data).unwrap();
            ip_proto::UDP
        } else {
            builder.tcp(1000, 2000, 7, 512).ack(9).write(&mut built, &data).unwrap();
            ip_proto::TCP
        };
        let segment = &mut built[40..];
        prop_assert_eq!(l4_verify_sum_v6(src, dst, protocol, segment), 0);
        let i = flip.index(segment.len());
        segment[i] ^= xor;
        prop_assert_ne!(l4_verify_sum_v6(src, dst, protocol, segment), 0);
    }
}
