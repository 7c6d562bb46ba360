//! ICMP errors the router itself sends (time exceeded when a TTL runs out, so traceroute works
//! through fwd; host unreachable for the `unreachable` action), built in place in the frame of
//! the packet they are about: no allocation; with the frame's headroom, the error's headers go
//! in front of the quote and only the link header moves.
//!
//! RFC 1812 4.3.2: quote as much of the original as fits in 576 bytes; never answer an ICMP
//! error, a later fragment, or a packet from/to a broadcast, multicast or unspecified address.
//!
//! ICMPv6 errors (RFC 4443: hop limit exceeded, address unreachable, packet too big) are
//! built the same way: as much of the packet as keeps the error within 1280 bytes, never
//! about an ICMPv6 error or from a source that names no single node, nor about a packet to
//! a multicast group unless it is too big.

use std::net::{Ipv4Addr, Ipv6Addr};

use etherparse::{
    icmpv4::{DestUnreachableHeader, TimeExceededCode},
    icmpv6, Icmpv4Header, Icmpv4Type, Icmpv6Header, Icmpv6Type, IpNumber, Ipv4Header, Ipv6Header,
};

use super::parse::{Fragment, Ipv4Packet, Ipv6Packet, Medium, Transport};
use super::rewrite::reply_link_header;

/// Which error to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcmpErrorKind {
    /// Type 11 code 0: TTL exceeded in transit.
    TimeExceeded,
    /// Type 3 code 1: host unreachable (what Linux sends for an `unreachable` route).
    HostUnreachable,
    /// Type 3 code 4: fragmentation needed and DF set, with the next hop's MTU (RFC 1191).
    FragmentationNeeded { mtu: u16 },
}

/// Largest ICMP error datagram (RFC 1812 4.3.2.3).
const MAX_ERROR_DATAGRAM: usize = 576;
const IP_AND_ICMP_HEADERS: usize = 20 + 8;

/// Headroom an error takes in front of the packet it quotes: its IP and ICMP headers.
pub const HEADERS_AHEAD: usize = IP_AND_ICMP_HEADERS;
const ERROR_TTL: u8 = 64;

/// Whether RFC 1812 allows an ICMP error about this packet.
pub fn may_answer(pkt: &Ipv4Packet) -> bool {
    let special = |a: Ipv4Addr| a.is_broadcast() || a.is_multicast() || a.is_unspecified();
    pkt.transport != Transport::IcmpError
        && pkt.fragment != Fragment::Later
        && !special(pkt.src)
        && !special(pkt.dst)
}

/// Replaces the packet at `buf[at..]` with an ICMP error about it, from `from` to the
/// packet's source. Ethernet frames get their MAC addresses swapped so the error goes back to
/// the neighbour that sent the packet. Returns where the error lies in `buf` (start, length),
/// or `None` when RFC 1812 forbids an answer or `buf` has no room for it.
///
/// With [`HEADERS_AHEAD`] bytes of headroom before `at`, the error's IP and ICMP headers are
/// written in front of the quote, which stays where it is (only the link header moves);
/// without, the quote moves back to make room.
pub fn build_icmp_error(
    buf: &mut [u8],
    at: usize,
    medium: Medium,
    pkt: &Ipv4Packet,
    kind: IcmpErrorKind,
    from: Ipv4Addr,
) -> Option<(usize, usize)> {
    if !may_answer(pkt) {
        return None;
    }
    let quote_len = pkt
        .total_len()
        .min(MAX_ERROR_DATAGRAM - IP_AND_ICMP_HEADERS);
    let l3 = pkt.l3();
    let start = make_room(buf, at, l3, quote_len, HEADERS_AHEAD)?;
    let frame = buf.get_mut(start..start + l3 + IP_AND_ICMP_HEADERS + quote_len)?;
    let icmp_at = l3 + 20;
    let quote_at = icmp_at + 8;

    let icmp_type = match kind {
        IcmpErrorKind::TimeExceeded => {
            Icmpv4Type::TimeExceeded(TimeExceededCode::TtlExceededInTransit)
        }
        IcmpErrorKind::HostUnreachable => {
            Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::Host)
        }
        IcmpErrorKind::FragmentationNeeded { mtu } => {
            Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::FragmentationNeeded {
                next_hop_mtu: mtu,
            })
        }
    };
    let icmp = Icmpv4Header::with_checksum(icmp_type, &frame[quote_at..]);
    let payload_len = u16::try_from(8 + quote_len).ok()?;
    let mut ip = Ipv4Header::new(
        payload_len,
        ERROR_TTL,
        IpNumber::ICMP,
        from.octets(),
        pkt.src.octets(),
    )
    .ok()?;
    ip.header_checksum = ip.calc_header_checksum();
    frame[l3..icmp_at].copy_from_slice(&ip.to_bytes());
    frame[icmp_at..quote_at].copy_from_slice(&icmp.to_bytes());

    reply_link_header(frame, medium, l3);
    Some((start, frame.len()))
}

/// Makes room for `headers` bytes of an error's headers in front of the quote of a packet at
/// `buf[at + l3..]` (`quote_len` bytes of it), after its link header (`l3` bytes at `at`):
/// with that much headroom before `at` the link header moves into it, without the quote
/// moves back. Returns where the error's frame now starts, or `None` when `buf` has no room.
fn make_room(
    buf: &mut [u8],
    at: usize,
    l3: usize,
    quote_len: usize,
    headers: usize,
) -> Option<usize> {
    let quote = at.checked_add(l3)?..at.checked_add(l3 + quote_len)?;
    match at.checked_sub(headers) {
        Some(start) => {
            buf.get(..quote.end)?;
            buf.copy_within(at..at + l3, start);
            Some(start)
        }
        None => {
            buf.get(..quote.end + headers)?;
            buf.copy_within(quote.clone(), quote.start + headers);
            Some(at)
        }
    }
}

/// Which ICMPv6 error to send (RFC 4443).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Icmpv6ErrorKind {
    /// Type 3 code 0: hop limit exceeded in transit.
    TimeExceeded,
    /// Type 1 code 3: address unreachable.
    AddressUnreachable,
    /// Type 2: packet too big, with the next hop's MTU (RFC 8201 path MTU discovery).
    PacketTooBig { mtu: u32 },
}

/// An ICMPv6 error may carry as much of the packet as keeps it within the minimum IPv6 MTU
/// (RFC 4443 2.4 (c)).
const MIN_IPV6_MTU: usize = 1280;
const IPV6_AND_ICMPV6_HEADERS: usize = 40 + 8;

/// Headroom an ICMPv6 error takes in front of the packet it quotes.
pub const HEADERS_AHEAD_V6: usize = IPV6_AND_ICMPV6_HEADERS;

/// Whether RFC 4443 2.4 (e) allows an ICMPv6 error of `kind` about this packet: never about
/// an ICMPv6 error, nor from a source that names no single node (unspecified, multicast),
/// nor about a packet to a multicast address unless it is too big (path MTU discovery for
/// multicast).
pub fn may_answer_v6(pkt: &Ipv6Packet, kind: Icmpv6ErrorKind) -> bool {
    let too_big = matches!(kind, Icmpv6ErrorKind::PacketTooBig { .. });
    pkt.transport != Transport::IcmpError
        && !pkt.src.is_unspecified()
        && !pkt.src.is_multicast()
        && (!pkt.dst.is_multicast() || too_big)
}

/// As [`build_icmp_error`], for IPv6: replaces the packet at `buf[at..]` with an ICMPv6
/// error about it, from `from` to the packet's source, quoting as much of it as keeps the
/// error within 1280 bytes. Returns where the error lies in `buf`, or `None` when RFC 4443
/// forbids an answer or `buf` has no room for it.
pub fn build_icmpv6_error(
    buf: &mut [u8],
    at: usize,
    medium: Medium,
    pkt: &Ipv6Packet,
    kind: Icmpv6ErrorKind,
    from: Ipv6Addr,
) -> Option<(usize, usize)> {
    if !may_answer_v6(pkt, kind) {
        return None;
    }
    let l3 = pkt.l3();
    let quote_len = (pkt.end() - l3).min(MIN_IPV6_MTU - IPV6_AND_ICMPV6_HEADERS);
    let start = make_room(buf, at, l3, quote_len, HEADERS_AHEAD_V6)?;
    let frame = buf.get_mut(start..start + l3 + IPV6_AND_ICMPV6_HEADERS + quote_len)?;
    let icmp_at = l3 + 40;
    let quote_at = icmp_at + 8;
    let icmp_type = match kind {
        Icmpv6ErrorKind::TimeExceeded => {
            Icmpv6Type::TimeExceeded(icmpv6::TimeExceededCode::HopLimitExceeded)
        }
        Icmpv6ErrorKind::AddressUnreachable => {
            Icmpv6Type::DestinationUnreachable(icmpv6::DestUnreachableCode::Address)
        }
        Icmpv6ErrorKind::PacketTooBig { mtu } => Icmpv6Type::PacketTooBig { mtu },
    };
    let to = pkt.src.octets();
    let icmp =
        Icmpv6Header::with_checksum(icmp_type, from.octets(), to, &frame[quote_at..]).ok()?;
    let ip = Ipv6Header {
        traffic_class: 0,
        flow_label: Default::default(),
        payload_length: u16::try_from(8 + quote_len).ok()?,
        next_header: IpNumber::IPV6_ICMP,
        hop_limit: ERROR_TTL,
        source: from.octets(),
        destination: to,
    };
    frame[l3..icmp_at].copy_from_slice(&ip.to_bytes());
    frame[icmp_at..quote_at].copy_from_slice(&icmp.to_bytes());
    reply_link_header(frame, medium, l3);
    Some((start, frame.len()))
}
