//! Property tests: no view panics on any bytes, and where a view accepts a buffer it reads
//! the fields etherparse reads.

use etherparse::{Ipv4HeaderSlice, TcpHeaderSlice, UdpHeaderSlice};
use proptest::prelude::*;

use crate::packet::wire::{EthernetFrame, Icmpv4Message, Ipv4Packet, TcpSegment, UdpDatagram};

/// Bytes that are often close to a valid IPv4 packet: a plausible header with random fields,
/// or anything at all.
fn ipv4ish() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..100),
        (
            5u8..16,
            0usize..80,
            any::<[u8; 20]>(),
            proptest::collection::vec(any::<u8>(), 0..80)
        )
            .prop_map(|(ihl, total, mut header, rest)| {
                header[0] = 0x40 | ihl;
                header[2..4].copy_from_slice(&(total as u16).to_be_bytes());
                let mut p = header.to_vec();
                p.extend(rest);
                p
            }),
    ]
}

/// Reads every accessor of every view over `b`, checked and unchecked.
fn read_everything(b: &[u8]) {
    let ip = Ipv4Packet::new_unchecked(b);
    let _ = (
        ip.header_len(),
        ip.total_len(),
        ip.ident(),
        ip.ttl(),
        ip.protocol(),
    );
    let _ = (
        ip.src(),
        ip.dst(),
        ip.checksum(),
        ip.fragment_offset(),
        ip.is_fragment(),
    );
    let _ = (ip.header(), ip.payload(), ip.verify_checksum());
    let seg = TcpSegment::new_unchecked(b);
    let _ = (
        seg.src_port(),
        seg.dst_port(),
        seg.seq(),
        seg.ack(),
        seg.flags(),
    );
    let _ = (
        seg.window(),
        seg.options(),
        seg.payload(),
        seg.window_scale(),
    );
    let udp = UdpDatagram::new_unchecked(b);
    let _ = (udp.src_port(), udp.length(), udp.is_whole(), udp.checksum());
    let icmp = Icmpv4Message::new_unchecked(b);
    let _ = (
        icmp.msg_type(),
        icmp.echo_ident(),
        icmp.data(),
        icmp.verify_checksum(),
    );
    if let Ok(eth) = EthernetFrame::new_checked(b) {
        let _ = (eth.dst_mac(), eth.ether_type(), eth.payload());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn no_view_panics(bytes in ipv4ish()) {
        read_everything(&bytes);
        let mut copy = bytes.clone();
        let mut ip = Ipv4Packet::new_unchecked(&mut copy[..]);
        ip.set_ttl(1);
        ip.set_src(std::net::Ipv4Addr::LOCALHOST);
        ip.fill_checksum();
        let _ = ip.payload_mut();
        let mut seg = TcpSegment::new_unchecked(&mut copy[..]);
        seg.set_ports(1, 2);
        seg.set_checksum(3);
    }

    #[test]
    fn ipv4_reads_what_etherparse_reads(bytes in ipv4ish()) {
        let ours = Ipv4Packet::new_checked(&bytes[..]);
        let theirs = Ipv4HeaderSlice::from_slice(&bytes);
        match (&ours, &theirs) {
            (Ok(ip), Ok(h)) => {
                prop_assert_eq!(ip.header_len(), usize::from(h.ihl()) * 4);
                prop_assert_eq!(ip.total_len(), usize::from(h.total_len()));
                prop_assert_eq!(ip.ident(), h.identification());
                prop_assert_eq!(ip.dont_fragment(), h.dont_fragment());
                prop_assert_eq!(ip.more_fragments(), h.more_fragments());
                prop_assert_eq!(ip.fragment_offset(), h.fragments_offset().value());
                prop_assert_eq!(ip.ttl(), h.ttl());
                prop_assert_eq!(ip.protocol(), h.protocol().0);
                prop_assert_eq!(ip.checksum(), h.header_checksum());
                prop_assert_eq!(ip.src(), h.source_addr());
                prop_assert_eq!(ip.dst(), h.destination_addr());
                let header = h.to_header();
                prop_assert_eq!(ip.verify_checksum(), header.calc_header_checksum() == h.header_checksum());
            }
            (Ok(_), Err(e)) => prop_assert!(false, "we accept what etherparse refuses: {e:?}"),
            // we also refuse a total length shorter than the header or past the buffer,
            // which a header slice allows
            (Err(_), Ok(h)) => {
                let total = usize::from(h.total_len());
                prop_assert!(total > bytes.len() || total < usize::from(h.ihl()) * 4);
            }
            (Err(_), Err(_)) => {}
        }
    }

    #[test]
    fn tcp_and_udp_read_what_etherparse_reads(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
        match (TcpSegment::new_checked(&bytes[..]), TcpHeaderSlice::from_slice(&bytes)) {
            (Ok(seg), Ok(h)) => {
                prop_assert_eq!((seg.src_port(), seg.dst_port()), (h.source_port(), h.destination_port()));
                prop_assert_eq!((seg.seq(), seg.ack()), (h.sequence_number(), h.acknowledgment_number()));
                prop_assert_eq!(seg.header_len(), h.slice().len());
                prop_assert_eq!((seg.window(), seg.checksum()), (h.window_size(), h.checksum()));
                prop_assert_eq!(seg.options(), h.options());
                prop_assert_eq!(seg.flags() & 0x3f, u8::from(h.fin()) | u8::from(h.syn()) << 1
                    | u8::from(h.rst()) << 2 | u8::from(h.psh()) << 3 | u8::from(h.ack()) << 4
                    | u8::from(h.urg()) << 5);
            }
            (ours, theirs) => prop_assert_eq!(ours.is_ok(), theirs.is_ok()),
        }
        if let (Ok(udp), Ok(h)) = (UdpDatagram::new_checked(&bytes[..]), UdpHeaderSlice::from_slice(&bytes)) {
            prop_assert_eq!((udp.src_port(), udp.dst_port()), (h.source_port(), h.destination_port()));
            prop_assert_eq!((udp.length(), udp.checksum()), (usize::from(h.length()), h.checksum()));
        }
    }
}
