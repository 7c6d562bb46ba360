//! In-place rewriting of forwarded packets: addresses, ports (or the ICMP echo identifier),
//! TTL, and every checksum that covers them, updated incrementally (RFC 1624). ICMP errors
//! also get their embedded header translated (RFC 5508 REQ-3) and the ICMP checksum adjusted
//! for every quoted byte that changed.
//!
//! All functions take a packet already validated by [`super::parse`], so every offset they
//! touch lies inside the frame; they never allocate.

use std::net::Ipv4Addr;

use super::checksum::Delta;
use super::parse::{
    Embedded, Ipv4Packet, Medium, Transport, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP,
};
use super::wire::{
    ethernet, tcp, udp, EthernetFrame, Icmpv4Message, Ipv4Packet as Ipv4View, TcpSegment,
    UdpDatagram,
};

/// An address and port (or ICMP identifier) a packet is given.
pub use conntrack::Endpoint;

/// The delta of an address change, for every checksum that covers the address.
#[inline(always)]
fn addr_delta(old: Ipv4Addr, new: Ipv4Addr) -> Delta {
    Delta::ZERO.words(u32::from(old), u32::from(new))
}

/// The delta of the TTL/protocol word when the TTL moves from `old` to `new`.
#[inline(always)]
fn ttl_delta(protocol: u8, old: u8, new: u8) -> Delta {
    Delta::ZERO.word(
        u16::from_be_bytes([old, protocol]),
        u16::from_be_bytes([new, protocol]),
    )
}

/// Rewrites the IPv4 addresses, decrements the TTL and fixes the header checksum. Returns the
/// pseudo-header delta (address changes only) for the transport checksum. A frame too short
/// for a header at `l3`, which a parsed packet's frame never is, is left alone.
#[inline(always)]
fn rewrite_ip_header(frame: &mut [u8], l3: usize, src: Ipv4Addr, dst: Ipv4Addr) -> Delta {
    let Some(bytes) = frame.get_mut(l3..) else {
        return Delta::ZERO;
    };
    let mut ip = Ipv4View::new_unchecked(bytes);
    let addrs = addr_delta(ip.src(), src) + addr_delta(ip.dst(), dst);
    ip.set_src(src);
    ip.set_dst(dst);
    // TTL - 1 (the callers forward only TTL > 1)
    let ttl = ip.ttl();
    let ttl_change = ttl_delta(ip.protocol(), ttl, ttl.wrapping_sub(1));
    ip.set_ttl(ttl.wrapping_sub(1));
    let sum = (addrs + ttl_change).apply(ip.checksum());
    ip.set_checksum(sum);
    addrs
}

/// Forwards a whole datagram or first fragment as `src` → `dst`: addresses, TCP/UDP ports or
/// the ICMP echo identifier (the requester's side carries it), TTL - 1, all checksums.
#[inline(always)]
pub fn rewrite_flow(frame: &mut [u8], pkt: &Ipv4Packet, src: Endpoint, dst: Endpoint) {
    let l4 = pkt.l4();
    let pseudo = rewrite_ip_header(frame, pkt.l3(), src.ip, dst.ip);
    let Some(transport) = frame.get_mut(l4..) else {
        return;
    };
    let ports = |old_src: u16, old_dst: u16| {
        pseudo.words(
            u32::from(old_src) << 16 | u32::from(old_dst),
            u32::from(src.port) << 16 | u32::from(dst.port),
        )
    };
    match pkt.transport {
        Transport::Tcp { .. } => {
            let mut seg = TcpSegment::new_unchecked(transport);
            let delta = ports(seg.src_port(), seg.dst_port());
            seg.set_ports(src.port, dst.port);
            seg.set_checksum(delta.apply(seg.checksum()));
        }
        Transport::Udp { .. } => {
            let mut datagram = UdpDatagram::new_unchecked(transport);
            let delta = ports(datagram.src_port(), datagram.dst_port());
            datagram.set_ports(src.port, dst.port);
            datagram.set_checksum(delta.apply_udp(datagram.checksum()));
        }
        Transport::IcmpEcho { request, .. } => {
            let id = if request { src.port } else { dst.port };
            let mut echo = Icmpv4Message::new_unchecked(transport);
            let delta = Delta::ZERO.word(echo.echo_ident(), id);
            echo.set_echo_ident(id);
            echo.set_checksum(delta.apply(echo.checksum()));
        }
        _ => {}
    }
}

/// Forwards a later fragment: addresses and TTL only (its datagram's transport checksum was
/// fixed in the first fragment, which carries it).
pub fn rewrite_fragment(frame: &mut [u8], pkt: &Ipv4Packet, src: Ipv4Addr, dst: Ipv4Addr) {
    rewrite_ip_header(frame, pkt.l3(), src, dst);
}

/// Forwards an ICMP error: the outer header becomes `outer_src` → `outer_dst` (TTL - 1), and
/// the embedded packet becomes `inner_src` → `inner_dst` with its own checksums fixed as far as
/// they are quoted; the ICMP checksum absorbs every change inside it.
pub fn rewrite_icmp_error(
    frame: &mut [u8],
    pkt: &Ipv4Packet,
    emb: &Embedded,
    outer: (Ipv4Addr, Ipv4Addr),
    inner_src: Endpoint,
    inner_dst: Endpoint,
) {
    let icmp_delta = rewrite_embedded(frame, emb, inner_src, inner_dst);
    rewrite_ip_header(frame, pkt.l3(), outer.0, outer.1);
    if let Some(bytes) = frame.get_mut(pkt.l4()..pkt.end()) {
        let mut icmp = Icmpv4Message::new_unchecked(bytes);
        icmp.set_checksum(icmp_delta.apply(icmp.checksum()));
    }
}

/// Rewrites a quoted packet (no TTL change: it is a copy, not a forwarded packet). Returns the
/// delta of all quoted bytes that changed, for the enclosing ICMP checksum.
fn rewrite_embedded(frame: &mut [u8], emb: &Embedded, src: Endpoint, dst: Endpoint) -> Delta {
    let Some(quote) = frame.get_mut(emb.l3..emb.l4() + emb.l4_len) else {
        return Delta::ZERO;
    };
    let (header, transport) = quote.split_at_mut(emb.header_len.min(quote.len()));
    let mut ip = Ipv4View::new_unchecked(header);
    let addrs = addr_delta(ip.src(), src.ip) + addr_delta(ip.dst(), dst.ip);
    ip.set_src(src.ip);
    ip.set_dst(dst.ip);
    let old_sum = ip.checksum();
    ip.set_checksum(addrs.apply(old_sum));
    let mut quoted = addrs + Delta::of_checksum_change(old_sum, ip.checksum());
    // The quoted transport checksum is fixed where it was quoted at all.
    let quotes_checksum = |at: usize| transport.len() >= at + 2;
    let ports = |(old_src, old_dst): (u16, u16)| {
        Delta::ZERO.word(old_src, src.port).word(old_dst, dst.port)
    };
    match emb.proto {
        IPPROTO_TCP => {
            let with_checksum = quotes_checksum(tcp::CHECKSUM);
            let mut seg = TcpSegment::new_unchecked(transport);
            let ports = ports((seg.src_port(), seg.dst_port()));
            seg.set_ports(src.port, dst.port);
            quoted = quoted + ports;
            if with_checksum {
                let old = seg.checksum();
                seg.set_checksum((addrs + ports).apply(old));
                quoted = quoted + Delta::of_checksum_change(old, seg.checksum());
            }
        }
        IPPROTO_UDP => {
            let with_checksum = quotes_checksum(udp::CHECKSUM);
            let mut datagram = UdpDatagram::new_unchecked(transport);
            let ports = ports((datagram.src_port(), datagram.dst_port()));
            datagram.set_ports(src.port, dst.port);
            quoted = quoted + ports;
            if with_checksum {
                let old = datagram.checksum();
                datagram.set_checksum((addrs + ports).apply_udp(old));
                quoted = quoted + Delta::of_checksum_change(old, datagram.checksum());
            }
        }
        IPPROTO_ICMP => {
            // The quoted echo's identifier sits with the side that sent the echo.
            let id = if src.port != 0 { src.port } else { dst.port };
            let mut echo = Icmpv4Message::new_unchecked(transport);
            let id_delta = Delta::ZERO.word(echo.echo_ident(), id);
            echo.set_echo_ident(id);
            let old = echo.checksum();
            echo.set_checksum(id_delta.apply(old));
            quoted = quoted + id_delta + Delta::of_checksum_change(old, echo.checksum());
        }
        _ => {}
    }
    quoted
}

/// Points an Ethernet frame back at the neighbour that sent it (swaps the destination and
/// source MAC addresses), for a reply built in the frame of the packet it answers. IP frames
/// (TUN) have no link header and are left alone.
pub fn reply_link_header(frame: &mut [u8], medium: Medium, l3: usize) {
    if medium != Medium::Ethernet || l3 < ethernet::HEADER_LEN {
        return;
    }
    if let Ok(mut eth) = EthernetFrame::new_checked(frame) {
        eth.swap_macs();
    }
}

/// Moves the TTL of a raw IPv4 packet (no link header) one step up (`up`) or down, fixing
/// the header checksum incrementally. Does nothing, and returns false, when the bytes are not
/// an IPv4 packet or the TTL is already at the end of its range (255 up, 0 down).
///
/// The TUN backend uses it to undo the kernel's extra TTL decrements: a packet routed into a
/// TUN and back out is forwarded twice by the kernel, so without it every packet through fwd
/// would lose two hops instead of one.
pub fn step_ttl(packet: &mut [u8], up: bool) -> bool {
    let Ok(mut ip) = Ipv4View::new_checked(packet) else {
        return false;
    };
    let ttl = ip.ttl();
    let Some(new_ttl) = (if up {
        ttl.checked_add(1)
    } else {
        ttl.checked_sub(1)
    }) else {
        return false;
    };
    let sum = ttl_delta(ip.protocol(), ttl, new_ttl).apply(ip.checksum());
    ip.set_ttl(new_ttl);
    ip.set_checksum(sum);
    true
}

#[cfg(test)]
mod step_ttl_tests {
    use super::*;
    use crate::packet::checksum;

    /// A 20-byte IPv4 header (UDP, 192.168.1.10 → 203.0.113.10) with TTL `ttl` and a valid
    /// checksum.
    fn header(ttl: u8) -> [u8; 20] {
        let mut h: [u8; 20] = [
            0x45, 0, 0, 20, 0x12, 0x34, 0x40, 0, ttl, 17, 0, 0, 192, 168, 1, 10, 203, 0, 113, 10,
        ];
        let sum = checksum::full(&h);
        h[10..12].copy_from_slice(&sum.to_be_bytes());
        h
    }

    #[test]
    fn each_step_matches_a_full_recomputation() {
        for ttl in [1u8, 2, 63, 64, 128, 254] {
            let mut h = header(ttl);
            assert!(step_ttl(&mut h, true));
            assert_eq!(h, header(ttl + 1), "up from {ttl}");
            assert!(step_ttl(&mut h, false));
            assert_eq!(h, header(ttl), "down to {ttl}");
        }
    }

    #[test]
    fn ends_of_the_range_and_non_ipv4_are_left_alone() {
        let mut top = header(255);
        assert!(!step_ttl(&mut top, true));
        assert_eq!(top, header(255));
        let mut bottom = header(0);
        assert!(!step_ttl(&mut bottom, false));
        let mut v6 = [0x60u8; 40];
        assert!(!step_ttl(&mut v6, true));
        assert_eq!(v6, [0x60u8; 40]);
        assert!(!step_ttl(&mut [0x45u8; 10], true));
    }
}
