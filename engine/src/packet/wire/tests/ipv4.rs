//! IPv4, TCP, UDP, ICMP and Ethernet views over static packets.

#![allow(clippy::unwrap_used)]

use std::net::Ipv4Addr;

use crate::packet::wire::{
    ethernet, tcp, Error, EthernetFrame, Icmpv4Message, Ipv4Packet, TcpSegment, UdpDatagram,
};

/// 192.168.1.10:40000 → 203.0.113.10:443, SYN, seq 1000, window 64240, options MSS 1460,
/// SACK permitted, timestamps, NOP, window scale 7; DF, TTL 64, both checksums right.
const TCP_SYN: [u8; 60] = [
    0x45, 0x00, 0x00, 0x3c, 0x12, 0x34, 0x40, 0x00, 0x40, 0x06, 0x2a, 0xcb, 0xc0, 0xa8, 0x01, 0x0a,
    0xcb, 0x00, 0x71, 0x0a, 0x9c, 0x40, 0x01, 0xbb, 0x00, 0x00, 0x03, 0xe8, 0x00, 0x00, 0x00, 0x00,
    0xa0, 0x02, 0xfa, 0xf0, 0xad, 0x6d, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x07,
];

/// 192.168.1.10:5353 → 203.0.113.10:53, "abcd", TTL 63, then 6 bytes of padding.
const UDP_PADDED: [u8; 38] = [
    0x45, 0x00, 0x00, 0x20, 0x00, 0x01, 0x00, 0x00, 0x3f, 0x11, 0x7e, 0x0f, 0xc0, 0xa8, 0x01, 0x0a,
    0xcb, 0x00, 0x71, 0x0a, 0x14, 0xe9, 0x00, 0x35, 0x00, 0x0c, 0x28, 0x34, 0x61, 0x62, 0x63, 0x64,
    0, 0, 0, 0, 0, 0,
];

/// Echo request 192.168.1.10 → 203.0.113.10, identifier 0x0777, sequence 1, "ping".
const ECHO: [u8; 32] = [
    0x45, 0x00, 0x00, 0x20, 0x00, 0x02, 0x00, 0x00, 0x40, 0x01, 0x7d, 0x1e, 0xc0, 0xa8, 0x01, 0x0a,
    0xcb, 0x00, 0x71, 0x0a, 0x08, 0x00, 0x11, 0xb7, 0x07, 0x77, 0x00, 0x01, 0x70, 0x69, 0x6e, 0x67,
];

#[test]
fn a_tcp_syn_reads_field_by_field() {
    let ip = Ipv4Packet::new_checked(&TCP_SYN[..]).unwrap();
    assert_eq!((ip.header_len(), ip.total_len()), (20, 60));
    assert_eq!((ip.ident(), ip.ttl(), ip.protocol()), (0x1234, 64, 6));
    assert!(ip.dont_fragment() && !ip.more_fragments() && !ip.is_fragment());
    assert_eq!(ip.src(), Ipv4Addr::new(192, 168, 1, 10));
    assert_eq!(ip.dst(), Ipv4Addr::new(203, 0, 113, 10));
    assert!(ip.verify_checksum());
    let seg = TcpSegment::new_checked(ip.payload()).unwrap();
    assert_eq!((seg.src_port(), seg.dst_port()), (40000, 443));
    assert_eq!((seg.seq(), seg.ack(), seg.window()), (1000, 0, 64240));
    assert_eq!((seg.header_len(), seg.flags()), (40, tcp::flags::SYN));
    assert_eq!(seg.window_scale(), Some(7));
    assert!(seg.payload().is_empty());
}

#[test]
fn padding_past_the_total_length_is_not_payload() {
    let ip = Ipv4Packet::new_checked(&UDP_PADDED[..]).unwrap();
    assert_eq!(ip.payload().len(), 12);
    let udp = UdpDatagram::new_checked(ip.payload()).unwrap();
    assert_eq!(
        (udp.src_port(), udp.dst_port(), udp.length()),
        (5353, 53, 12)
    );
    assert!(udp.is_whole());
    assert_eq!(udp.checksum(), 0x2834);
}

#[test]
fn an_echo_request_reads_its_identifier() {
    let ip = Ipv4Packet::new_checked(&ECHO[..]).unwrap();
    let icmp = Icmpv4Message::new_checked(ip.payload()).unwrap();
    assert!(icmp.is_echo() && !icmp.is_error());
    assert_eq!((icmp.echo_ident(), icmp.echo_seq()), (0x0777, 1));
    assert_eq!(icmp.data(), b"ping");
    assert!(icmp.verify_checksum());
}

#[test]
fn setters_write_the_fields_and_fill_checksum_makes_the_header_valid() {
    let mut bytes = TCP_SYN;
    let mut ip = Ipv4Packet::new_checked(&mut bytes[..]).unwrap();
    ip.set_src(Ipv4Addr::new(198, 51, 100, 2));
    ip.set_dst(Ipv4Addr::new(10, 0, 0, 1));
    ip.set_ttl(9);
    assert!(!ip.verify_checksum());
    ip.fill_checksum();
    assert!(ip.verify_checksum());
    let mut seg = TcpSegment::new_checked(ip.payload_mut()).unwrap();
    seg.set_ports(1, 2);
    assert_eq!((seg.src_port(), seg.dst_port()), (1, 2));
    assert_eq!(ip.ttl(), 9);
    assert_eq!(ip.src(), Ipv4Addr::new(198, 51, 100, 2));
}

#[test]
fn the_checks_refuse_what_is_not_a_packet() {
    let err = |b: &[u8]| Ipv4Packet::new_checked(b).err();
    assert_eq!(err(&TCP_SYN[..19]), Some(Error::Truncated));
    assert_eq!(
        err(&TCP_SYN[..59]),
        Some(Error::Truncated),
        "total length past the end"
    );
    let mut v6 = TCP_SYN;
    v6[0] = 0x65;
    assert_eq!(err(&v6), Some(Error::Malformed));
    let mut short_ihl = TCP_SYN;
    short_ihl[0] = 0x44;
    assert_eq!(err(&short_ihl), Some(Error::Malformed));
    let mut long_ihl = TCP_SYN;
    long_ihl[0] = 0x4f; // 60-byte header in a 60-byte packet: no room for TCP, still IPv4
    assert!(err(&long_ihl).is_none());
    let mut total_below_header = TCP_SYN;
    total_below_header[2..4].copy_from_slice(&19u16.to_be_bytes());
    assert_eq!(err(&total_below_header), Some(Error::Malformed));

    assert_eq!(
        TcpSegment::new_checked(&TCP_SYN[20..39]).err(),
        Some(Error::Truncated)
    );
    assert_eq!(
        TcpSegment::new_checked(&TCP_SYN[20..59]).err(),
        Some(Error::Truncated),
        "options past the end"
    );
    let mut offset4 = TCP_SYN;
    offset4[32] = 0x40;
    assert_eq!(
        TcpSegment::new_checked(&offset4[20..]).err(),
        Some(Error::Malformed)
    );

    assert_eq!(
        UdpDatagram::new_checked(&UDP_PADDED[20..27]).err(),
        Some(Error::Truncated)
    );
    let mut udp_len7 = UDP_PADDED;
    udp_len7[25] = 7;
    assert_eq!(
        UdpDatagram::new_checked(&udp_len7[20..]).err(),
        Some(Error::Malformed)
    );
    // a first fragment's UDP length covers more than the buffer: checked, not whole
    let first = UdpDatagram::new_checked(&UDP_PADDED[20..30]).unwrap();
    assert!(!first.is_whole());

    assert_eq!(
        Icmpv4Message::new_checked(&ECHO[20..27]).err(),
        Some(Error::Truncated)
    );
}

#[test]
fn unchecked_views_of_short_buffers_read_zeros_and_write_nothing() {
    let mut short = [0x45u8, 0, 0, 60];
    let mut ip = Ipv4Packet::new_unchecked(&mut short[..]);
    assert_eq!(
        (ip.ttl(), ip.src(), ip.total_len()),
        (0, Ipv4Addr::UNSPECIFIED, 60)
    );
    assert!(ip.payload().is_empty());
    ip.set_dst(Ipv4Addr::BROADCAST);
    ip.set_ttl(1);
    assert!(ip.payload_mut().is_empty());
    assert_eq!(short, [0x45, 0, 0, 60]);
    let seg = TcpSegment::new_unchecked(&[0u8; 3][..]);
    assert_eq!((seg.seq(), seg.window_scale()), (0, None));
}

#[test]
fn window_scale_reads_past_other_options_and_stops_at_the_end_option() {
    let with = |options: &[u8]| {
        let mut seg = vec![0u8; 20];
        seg[12] = (((20 + options.len()) / 4) << 4) as u8;
        seg.extend_from_slice(options);
        TcpSegment::new_checked(seg).unwrap().window_scale()
    };
    assert_eq!(with(&[1, 1, 1, 3, 3, 14, 0, 0]), Some(14));
    assert_eq!(with(&[2, 4, 5, 0xb4, 3, 3, 2, 0]), Some(2));
    assert_eq!(with(&[0, 0, 0, 0, 3, 3, 2, 0]), None);
    assert_eq!(
        with(&[3, 2, 7, 0]),
        None,
        "a window scale option of the wrong length"
    );
    assert_eq!(with(&[]), None);
}

#[test]
fn an_ethernet_frame_reads_and_swaps_its_addresses() {
    let mut frame = [0u8; 20];
    frame[..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    frame[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
    frame[12..14].copy_from_slice(&[0x86, 0xdd]);
    let mut eth = EthernetFrame::new_checked(&mut frame[..]).unwrap();
    assert_eq!(eth.ether_type(), ethernet::ether_type::IPV6);
    assert_eq!(eth.payload().len(), 6);
    eth.swap_macs();
    assert_eq!(eth.dst_mac(), [2, 0, 0, 0, 0, 2]);
    assert_eq!(eth.src_mac(), [2, 0, 0, 0, 0, 1]);
    assert_eq!(
        EthernetFrame::new_checked(&frame[..13]).err(),
        Some(Error::Truncated)
    );
}
