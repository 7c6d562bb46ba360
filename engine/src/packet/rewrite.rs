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
    Embedded, Ipv4Packet, Medium, Transport, ETHERNET_HEADER_LEN, IPPROTO_ICMP, IPPROTO_TCP,
    IPPROTO_UDP,
};

/// An address and port (or ICMP identifier) a packet is given.
pub use conntrack::Endpoint;

const IP_TTL: usize = 8;
const IP_CHECKSUM: usize = 10;
const IP_SRC: usize = 12;
const IP_DST: usize = 16;
const TCP_CHECKSUM: usize = 16;
const UDP_CHECKSUM: usize = 6;
const ICMP_CHECKSUM: usize = 2;
const ICMP_ECHO_ID: usize = 4;

#[inline]
fn read16(frame: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([frame[at], frame[at + 1]])
}

#[inline]
fn write16(frame: &mut [u8], at: usize, value: u16) {
    frame[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

/// Writes a 16-bit field and returns the checksum delta of that change.
#[inline]
fn set16(frame: &mut [u8], at: usize, value: u16) -> Delta {
    let old = read16(frame, at);
    write16(frame, at, value);
    Delta::ZERO.word(old, value)
}

/// Writes a 32-bit address and returns the checksum delta of that change.
#[inline]
fn set_addr(frame: &mut [u8], at: usize, value: Ipv4Addr) -> Delta {
    let mut old = [0u8; 4];
    old.copy_from_slice(&frame[at..at + 4]);
    let new = value.octets();
    frame[at..at + 4].copy_from_slice(&new);
    Delta::ZERO.addr(old, new)
}

/// Applies `delta` to the 16-bit checksum at `at`; returns the delta the checksum field's own
/// change causes in any checksum that covers it.
#[inline]
fn adjust_checksum(frame: &mut [u8], at: usize, delta: Delta, udp: bool) -> Delta {
    let old = read16(frame, at);
    let new = if udp {
        delta.apply_udp(old)
    } else {
        delta.apply(old)
    };
    write16(frame, at, new);
    Delta::of_checksum_change(old, new)
}

/// Rewrites the IPv4 addresses, decrements the TTL and fixes the header checksum. Returns the
/// pseudo-header delta (address changes only) for the transport checksum. Does nothing
/// (returning no change) if the frame is too short for a header at `l3`, which a parsed
/// packet's frame never is.
#[inline]
fn rewrite_ip_header(frame: &mut [u8], l3: usize, src: Ipv4Addr, dst: Ipv4Addr) -> Delta {
    let Some(header) = frame.get_mut(l3..).and_then(|h| h.first_chunk_mut::<20>()) else {
        return Delta::ZERO;
    };
    let old_src = u32::from_be_bytes([header[12], header[13], header[14], header[15]]);
    let old_dst = u32::from_be_bytes([header[16], header[17], header[18], header[19]]);
    header[IP_SRC..IP_SRC + 4].copy_from_slice(&src.octets());
    header[IP_DST..IP_DST + 4].copy_from_slice(&dst.octets());
    let addrs = Delta::ZERO
        .words(old_src, u32::from(src))
        .words(old_dst, u32::from(dst));
    // TTL - 1: the TTL/protocol word drops by 0x0100 (the callers forward only TTL > 1).
    let ttl_word = u16::from_be_bytes([header[IP_TTL], header[IP_TTL + 1]]);
    header[IP_TTL] = header[IP_TTL].wrapping_sub(1);
    let sum = u16::from_be_bytes([header[IP_CHECKSUM], header[IP_CHECKSUM + 1]]);
    let sum = (addrs.word(ttl_word, ttl_word.wrapping_sub(0x0100))).apply(sum);
    header[IP_CHECKSUM..IP_CHECKSUM + 2].copy_from_slice(&sum.to_be_bytes());
    addrs
}

/// Sets the port pair (source, destination) at the start of a TCP or UDP header and adjusts
/// the checksum at `checksum_at` for it and for `pseudo` (the addresses' change). `N` is the
/// header bytes that must be present (through the checksum field).
#[inline]
fn rewrite_ports<const N: usize>(
    transport: &mut [u8],
    checksum_at: usize,
    (src, dst): (u16, u16),
    pseudo: Delta,
    udp: bool,
) {
    let Some(header) = transport.first_chunk_mut::<N>() else {
        return;
    };
    let old = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    let new = u32::from(src) << 16 | u32::from(dst);
    header[..4].copy_from_slice(&new.to_be_bytes());
    let delta = pseudo.words(old, new);
    if let Some(field) = header.get_mut(checksum_at..checksum_at + 2) {
        let old_sum = u16::from_be_bytes([field[0], field[1]]);
        let new_sum = if udp {
            delta.apply_udp(old_sum)
        } else {
            delta.apply(old_sum)
        };
        field.copy_from_slice(&new_sum.to_be_bytes());
    }
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
    match pkt.transport {
        Transport::Tcp { .. } => {
            rewrite_ports::<20>(transport, TCP_CHECKSUM, (src.port, dst.port), pseudo, false);
        }
        Transport::Udp { .. } => {
            rewrite_ports::<8>(transport, UDP_CHECKSUM, (src.port, dst.port), pseudo, true);
        }
        Transport::IcmpEcho { request, .. } => {
            let id = if request { src.port } else { dst.port };
            let delta = set16(transport, ICMP_ECHO_ID, id);
            adjust_checksum(transport, ICMP_CHECKSUM, delta, false);
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
    adjust_checksum(frame, pkt.l4() + ICMP_CHECKSUM, icmp_delta, false);
}

/// Rewrites a quoted packet (no TTL change: it is a copy, not a forwarded packet). Returns the
/// delta of all quoted bytes that changed, for the enclosing ICMP checksum.
fn rewrite_embedded(frame: &mut [u8], emb: &Embedded, src: Endpoint, dst: Endpoint) -> Delta {
    let (l3, l4) = (emb.l3, emb.l4());
    let addrs = set_addr(frame, l3 + IP_SRC, src.ip) + set_addr(frame, l3 + IP_DST, dst.ip);
    let header_sum = adjust_checksum(frame, l3 + IP_CHECKSUM, addrs, false);
    let mut quoted = addrs + header_sum;
    match emb.proto {
        IPPROTO_TCP | IPPROTO_UDP => {
            let ports = set16(frame, l4, src.port) + set16(frame, l4 + 2, dst.port);
            quoted = quoted + ports;
            let (at, udp) = if emb.proto == IPPROTO_UDP {
                (UDP_CHECKSUM, true)
            } else {
                (TCP_CHECKSUM, false)
            };
            // The quoted transport checksum is fixed when it was quoted at all.
            if emb.l4_len >= at + 2 {
                quoted = quoted + adjust_checksum(frame, l4 + at, addrs + ports, udp);
            }
        }
        IPPROTO_ICMP => {
            // The quoted echo's identifier sits with the side that sent the echo.
            let id = if src.port != 0 { src.port } else { dst.port };
            let id_delta = set16(frame, l4 + ICMP_ECHO_ID, id);
            let echo_sum = adjust_checksum(frame, l4 + ICMP_CHECKSUM, id_delta, false);
            quoted = quoted + id_delta + echo_sum;
        }
        _ => {}
    }
    quoted
}

/// Points an Ethernet frame back at the neighbour that sent it (swaps the destination and
/// source MAC addresses), for a reply built in the frame of the packet it answers. IP frames
/// (TUN) have no link header and are left alone.
pub fn reply_link_header(frame: &mut [u8], medium: Medium, l3: usize) {
    if medium != Medium::Ethernet || l3 < ETHERNET_HEADER_LEN {
        return;
    }
    if let Some(macs) = frame.get_mut(..12) {
        let (dst, src) = macs.split_at_mut(6);
        dst.swap_with_slice(src);
    }
}

/// Moves the TTL of a raw IPv4 packet (no link header) one step up (`up`) or down, fixing
/// the header checksum incrementally. Does nothing, and returns false, when the bytes are not
/// an IPv4 header or the TTL is already at the end of its range (255 up, 0 down).
///
/// The TUN backend uses it to undo the kernel's extra TTL decrements: a packet routed into a
/// TUN and back out is forwarded twice by the kernel, so without it every packet through fwd
/// would lose two hops instead of one.
pub fn step_ttl(packet: &mut [u8], up: bool) -> bool {
    if packet.len() < 20 || packet[0] >> 4 != 4 {
        return false;
    }
    let ttl = packet[IP_TTL];
    let Some(new_ttl) = (if up {
        ttl.checked_add(1)
    } else {
        ttl.checked_sub(1)
    }) else {
        return false;
    };
    let old_word = read16(packet, IP_TTL);
    packet[IP_TTL] = new_ttl;
    let new_word = read16(packet, IP_TTL);
    adjust_checksum(
        packet,
        IP_CHECKSUM,
        Delta::ZERO.word(old_word, new_word),
        false,
    );
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
