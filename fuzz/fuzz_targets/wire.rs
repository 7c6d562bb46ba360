//! The checked wire views and the parser built on them: whatever the bytes, construction
//! either refuses them or gives a view whose every accessor and setter runs without a panic;
//! parsing gives a packet or a reason. The first byte picks the medium and an offset, so the
//! views also meet buffers that start anywhere in a frame.
#![no_main]

use engine::packet::parse::{l3_offset, parse_ipv4, parse_ipv6};
use engine::packet::wire::{
    EthernetFrame, Icmpv4Message, Icmpv6Message, Ipv4Packet, Ipv6Packet, TcpSegment, UdpDatagram,
};
use engine::packet::Medium;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let medium = if first & 1 == 0 {
        Medium::Ip
    } else {
        Medium::Ethernet
    };
    match l3_offset(medium, rest) {
        Ok(l3) => drop(parse_ipv4(rest, l3)),
        Err(_) => drop(parse_ipv6(rest, usize::from(first >> 1 & 1) * 14)),
    }
    let mut buf = rest
        .get(usize::from(first >> 4)..)
        .unwrap_or_default()
        .to_vec();

    if let Ok(mut ip) = Ipv4Packet::new_checked(&mut buf[..]) {
        let _ = (
            ip.src(),
            ip.dst(),
            ip.ttl(),
            ip.ident(),
            ip.fragment_offset(),
        );
        let _ = (ip.verify_checksum(), ip.header().len(), ip.payload().len());
        ip.set_ttl(ip.ttl().wrapping_sub(1));
        ip.fill_checksum();
        let payload = ip.payload_mut();
        if let Ok(mut tcp) = TcpSegment::new_checked(&mut *payload) {
            let _ = (
                tcp.seq(),
                tcp.ack(),
                tcp.flags(),
                tcp.window_scale(),
                tcp.payload().len(),
            );
            tcp.set_ports(tcp.dst_port(), tcp.src_port());
        }
        if let Ok(udp) = UdpDatagram::new_checked(&*payload) {
            let _ = (udp.src_port(), udp.length(), udp.is_whole(), udp.checksum());
        }
        if let Ok(icmp) = Icmpv4Message::new_checked(&*payload) {
            let _ = (
                icmp.is_echo(),
                icmp.is_error(),
                icmp.echo_ident(),
                icmp.verify_checksum(),
            );
            if let Ok(quote) = Ipv4Packet::new_checked_quote(icmp.data()) {
                let _ = (quote.src(), quote.payload().len());
            }
        }
    }
    if let Ok(mut ip) = Ipv6Packet::new_checked(&mut buf[..]) {
        let _ = (
            ip.src(),
            ip.dst(),
            ip.hop_limit(),
            ip.flow_label(),
            ip.payload().len(),
        );
        if let Ok(upper) = ip.upper_layer() {
            let at = upper.offset;
            let (src, dst) = (ip.src(), ip.dst());
            ip.set_hop_limit(1);
            let l4 = ip.into_inner().get(at..).unwrap_or_default();
            if let Ok(icmp) = Icmpv6Message::new_checked(l4) {
                let _ = (icmp.is_error(), icmp.mtu(), icmp.data().len());
                let _ = icmp.verify_checksum(src, dst);
                if let Ok(quote) = Ipv6Packet::new_checked_quote(icmp.data()) {
                    let _ = (quote.dst(), quote.payload().len(), quote.upper_layer());
                }
            }
        }
    }
    if let Ok(mut eth) = EthernetFrame::new_checked(&mut buf[..]) {
        eth.swap_macs();
        let _ = (eth.ether_type(), eth.payload().len());
    }
});
