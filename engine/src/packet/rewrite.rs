//! In-place rewriting of forwarded packets: addresses, ports (or the ICMP echo identifier),
//! TTL, and every checksum that covers them, updated incrementally (RFC 1624). ICMP errors
//! also get their embedded header translated (RFC 5508 REQ-3) and the ICMP checksum adjusted
//! for every quoted byte that changed.
//!
//! All functions take a packet already validated by [`super::parse`], so every offset they
//! touch lies inside the frame; they never allocate.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::checksum::Delta;
use super::nptv6::Nptv6Map;
use super::parse::{
    Embedded, Embedded6, Ipv4Packet, Ipv6Packet, Medium, Transport, IPPROTO_ICMP, IPPROTO_TCP,
    IPPROTO_UDP,
};
use super::wire::{
    ethernet, ip_proto, tcp, udp, EthernetFrame, Icmpv4Message, Icmpv6Message,
    Ipv4Packet as Ipv4View, Ipv6Packet as Ipv6View, TcpSegment, UdpDatagram,
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
    // the view over the fixed header alone: its length a constant, every field's bounds
    // test is decided when this compiles
    let Some(header) = frame.get_mut(l3..).and_then(<[u8]>::first_chunk_mut::<20>) else {
        return Delta::ZERO;
    };
    let mut ip = Ipv4View::new_unchecked(&mut header[..]);
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

/// How an echo's checksum relates to the addresses: ICMP's covers the message alone,
/// ICMPv6's an IPv6 pseudo-header too (RFC 4443 2.3).
#[derive(Clone, Copy, PartialEq, Eq)]
enum EchoSum {
    MessageOnly,
    WithPseudoHeader,
}

/// Sets a TCP or UDP header's ports, or an echo's identifier (the requester's side, `src`
/// for a request, carries it), at the start of `transport`, and adjusts its checksum for
/// that change and for `pseudo` (the addresses' change, which every TCP and UDP checksum
/// and an ICMPv6 one covers). Returns the delta of every byte it changed, the checksum
/// included, for a checksum that covers them all (an ICMP error's around a quote).
/// A checksum outside `transport` (an ICMP error's quote, cut where the error's sender cut
/// it) is left alone.
#[inline(always)]
fn rewrite_transport(
    transport: &mut [u8],
    kind: Transport,
    (src, dst): (u16, u16),
    pseudo: Delta,
    echo_sum: EchoSum,
) -> Delta {
    let len = transport.len();
    let ports = |old_src: u16, old_dst: u16| {
        Delta::ZERO.words(
            u32::from(old_src) << 16 | u32::from(old_dst),
            u32::from(src) << 16 | u32::from(dst),
        )
    };
    match kind {
        Transport::Tcp { .. } => {
            let mut seg = TcpSegment::new_unchecked(transport);
            let ports = ports(seg.src_port(), seg.dst_port());
            seg.set_ports(src, dst);
            if len < tcp::CHECKSUM + 2 {
                return ports;
            }
            let old = seg.checksum();
            seg.set_checksum((pseudo + ports).apply(old));
            ports + Delta::of_checksum_change(old, seg.checksum())
        }
        Transport::Udp { .. } => {
            let mut datagram = UdpDatagram::new_unchecked(transport);
            let ports = ports(datagram.src_port(), datagram.dst_port());
            datagram.set_ports(src, dst);
            if len < udp::CHECKSUM + 2 {
                return ports;
            }
            let old = datagram.checksum();
            datagram.set_checksum((pseudo + ports).apply_udp(old));
            ports + Delta::of_checksum_change(old, datagram.checksum())
        }
        Transport::IcmpEcho { request, .. } => {
            let id = if request { src } else { dst };
            // ICMPv4 and ICMPv6 echoes share their layout
            let mut echo = Icmpv4Message::new_unchecked(transport);
            let id_delta = Delta::ZERO.word(echo.echo_ident(), id);
            echo.set_echo_ident(id);
            let covered = match echo_sum {
                EchoSum::MessageOnly => id_delta,
                EchoSum::WithPseudoHeader => pseudo + id_delta,
            };
            let old = echo.checksum();
            echo.set_checksum(covered.apply(old));
            id_delta + Delta::of_checksum_change(old, echo.checksum())
        }
        _ => Delta::ZERO,
    }
}

/// Forwards a whole datagram or first fragment as `src` → `dst`: addresses, TCP/UDP ports or
/// the ICMP echo identifier (the requester's side carries it), TTL - 1, all checksums.
#[inline(always)]
pub fn rewrite_flow(frame: &mut [u8], pkt: &Ipv4Packet, src: Endpoint, dst: Endpoint) {
    let l4 = pkt.l4();
    let pseudo = rewrite_ip_header(frame, pkt.l3(), src.ip, dst.ip);
    if let Some(transport) = frame.get_mut(l4..) {
        let ports = (src.port, dst.port);
        rewrite_transport(
            transport,
            pkt.transport,
            ports,
            pseudo,
            EchoSum::MessageOnly,
        );
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
    let Some(kind) = quoted_transport(emb.proto, src.port != 0) else {
        return quoted;
    };
    quoted = quoted
        + rewrite_transport(
            transport,
            kind,
            (src.port, dst.port),
            addrs,
            EchoSum::MessageOnly,
        );
    quoted
}

/// An IPv6 address and port (or ICMPv6 echo identifier) a packet is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint6 {
    pub ip: Ipv6Addr,
    pub port: u16,
}

/// The delta of an IPv6 address change, for every checksum whose pseudo-header covers it.
#[inline(always)]
fn addr6_delta(old: Ipv6Addr, new: Ipv6Addr) -> Delta {
    let (old, new) = (old.octets(), new.octets());
    (0..4).fold(Delta::ZERO, |delta, i| {
        let word =
            |a: &[u8; 16]| u32::from_be_bytes([a[4 * i], a[4 * i + 1], a[4 * i + 2], a[4 * i + 3]]);
        delta.words(word(&old), word(&new))
    })
}

/// Rewrites the IPv6 addresses and decrements the hop limit (IPv6 has no header checksum).
/// Returns the pseudo-header delta for the upper-layer checksum.
#[inline(always)]
fn rewrite_ipv6_header(frame: &mut [u8], l3: usize, src: Ipv6Addr, dst: Ipv6Addr) -> Delta {
    let Some(bytes) = frame.get_mut(l3..) else {
        return Delta::ZERO;
    };
    let mut ip = Ipv6View::new_unchecked(bytes);
    let pseudo = addr6_delta(ip.src(), src) + addr6_delta(ip.dst(), dst);
    ip.set_src(src);
    ip.set_dst(dst);
    ip.set_hop_limit(ip.hop_limit().wrapping_sub(1));
    pseudo
}

/// Forwards a whole IPv6 datagram or first fragment as `src` → `dst` (NAT66): addresses,
/// TCP/UDP ports or the ICMPv6 echo identifier, hop limit - 1, the upper-layer checksum
/// (whose pseudo-header covers the addresses, ICMPv6's too).
pub fn rewrite_flow_v6(frame: &mut [u8], pkt: &Ipv6Packet, src: Endpoint6, dst: Endpoint6) {
    let pseudo = rewrite_ipv6_header(frame, pkt.l3(), src.ip, dst.ip);
    if let Some(transport) = frame.get_mut(pkt.l4()..pkt.end()) {
        let ports = (src.port, dst.port);
        rewrite_transport(
            transport,
            pkt.transport,
            ports,
            pseudo,
            EchoSum::WithPseudoHeader,
        );
    }
}

/// Forwards a later IPv6 fragment: addresses and hop limit only (its datagram's checksum was
/// fixed in the first fragment).
pub fn rewrite_fragment_v6(frame: &mut [u8], pkt: &Ipv6Packet, src: Ipv6Addr, dst: Ipv6Addr) {
    rewrite_ipv6_header(frame, pkt.l3(), src, dst);
}

/// Forwards an ICMPv6 error: the outer header becomes `outer` (source, destination; hop
/// limit - 1), the quoted packet becomes `inner_src` → `inner_dst` with its upper-layer
/// checksum fixed where it is quoted; the ICMPv6 checksum absorbs the outer pseudo-header's
/// change and every change inside the quote (RFC 4443 2.3: it covers both).
pub fn rewrite_icmpv6_error(
    frame: &mut [u8],
    pkt: &Ipv6Packet,
    emb: &Embedded6,
    outer: (Ipv6Addr, Ipv6Addr),
    inner_src: Endpoint6,
    inner_dst: Endpoint6,
) {
    let quoted = rewrite_embedded_v6(frame, emb, inner_src, inner_dst);
    let pseudo = rewrite_ipv6_header(frame, pkt.l3(), outer.0, outer.1);
    if let Some(bytes) = frame.get_mut(pkt.l4()..pkt.end()) {
        let mut icmp = Icmpv6Message::new_unchecked(bytes);
        icmp.set_checksum((pseudo + quoted).apply(icmp.checksum()));
    }
}

/// Rewrites a quoted IPv6 packet (no hop limit change: it is a copy). Returns the delta of
/// all quoted bytes that changed, for the enclosing ICMPv6 checksum.
fn rewrite_embedded_v6(frame: &mut [u8], emb: &Embedded6, src: Endpoint6, dst: Endpoint6) -> Delta {
    let Some(quote) = frame.get_mut(emb.l3..emb.l4 + emb.l4_len) else {
        return Delta::ZERO;
    };
    let (header, transport) = quote.split_at_mut((emb.l4 - emb.l3).min(quote.len()));
    let mut ip = Ipv6View::new_unchecked(header);
    let addrs = addr6_delta(ip.src(), src.ip) + addr6_delta(ip.dst(), dst.ip);
    ip.set_src(src.ip);
    ip.set_dst(dst.ip);
    let Some(kind) = quoted_transport(emb.proto, src.port != 0) else {
        return addrs;
    };
    let ports = (src.port, dst.port);
    addrs + rewrite_transport(transport, kind, ports, addrs, EchoSum::WithPseudoHeader)
}

/// Which way a packet crosses an NPTv6 WAN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrefixWay {
    /// Leaving by the WAN: the source moves from the internal prefix to the external one.
    Out,
    /// Arriving from the WAN: the destination moves from the external prefix back.
    In,
}

/// Forwards an IPv6 packet across an NPTv6 WAN (RFC 6296): the address on the LAN side of
/// the crossing (the source going out, the destination coming in) is translated by `map`,
/// the hop limit drops by one. An ICMPv6 error also has the host's address in its quote
/// translated (the quote crossed the other way: its destination going out, its source
/// coming in), so that the host the error reaches recognises its own packet. The translation is
/// checksum-neutral, so no checksum changes, the ICMPv6 one around a quote included.
/// Returns false, with nothing changed, when an address to translate is outside its prefix
/// or has no word the translation may adjust (RFC 6296 3.7: the packet is dropped).
pub fn rewrite_prefix(frame: &mut [u8], pkt: &Ipv6Packet, map: &Nptv6Map, way: PrefixWay) -> bool {
    let translate = |addr: Ipv6Addr, way: PrefixWay| match way {
        PrefixWay::Out => map.to_external(addr),
        PrefixWay::In => map.to_internal(addr),
    };
    let outer = match way {
        PrefixWay::Out => pkt.src,
        PrefixWay::In => pkt.dst,
    };
    let Some(outer) = translate(outer, way) else {
        return false;
    };
    // The quote crossed the other way, so the same host's address is on its other side:
    // going out, an error from a LAN host quotes a packet it received, to its internal
    // address (which becomes external again); coming in, an error quotes a packet the host
    // sent, from its external address (which becomes internal again).
    let quoted = match pkt.embedded(frame) {
        Some(emb) => {
            let addr = match way {
                PrefixWay::Out => emb.dst,
                PrefixWay::In => emb.src,
            };
            match translate(addr, way) {
                Some(addr) => Some((emb.l3, addr)),
                None => return false,
            }
        }
        None => None,
    };
    if let Some((l3, addr)) = quoted {
        let mut quote = Ipv6View::new_unchecked(frame.get_mut(l3..).unwrap_or_default());
        match way {
            PrefixWay::Out => quote.set_dst(addr),
            PrefixWay::In => quote.set_src(addr),
        }
    }
    let Some(bytes) = frame.get_mut(pkt.l3()..) else {
        return false;
    };
    let mut ip = Ipv6View::new_unchecked(bytes);
    match way {
        PrefixWay::Out => ip.set_src(outer),
        PrefixWay::In => ip.set_dst(outer),
    }
    ip.set_hop_limit(ip.hop_limit().wrapping_sub(1));
    true
}

/// The transport of a quoted packet of protocol `proto` as [`rewrite_transport`] takes it;
/// for an echo, `request`: whether the identifier sits with the quote's source (a quoted
/// request, whose sender is the quote's source).
#[inline]
fn quoted_transport(proto: u8, request: bool) -> Option<Transport> {
    let (src_port, dst_port) = (0, 0);
    match proto {
        IPPROTO_TCP => Some(Transport::Tcp {
            src_port,
            dst_port,
            flags: 0,
        }),
        IPPROTO_UDP => Some(Transport::Udp { src_port, dst_port }),
        IPPROTO_ICMP | ip_proto::ICMPV6 => Some(Transport::IcmpEcho { id: 0, request }),
        _ => None,
    }
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
