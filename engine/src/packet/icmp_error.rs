//! ICMP errors the router itself sends (time exceeded when a TTL runs out, so traceroute works
//! through fwd; host unreachable for the `unreachable` action), built in place in the frame of
//! the packet they are about: no allocation; with the frame's headroom, the error's headers go
//! in front of the quote and only the link header moves.
//!
//! RFC 1812 4.3.2: quote as much of the original as fits in 576 bytes; never answer an ICMP
//! error, a later fragment, or a packet from/to a broadcast, multicast or unspecified address.

use std::net::Ipv4Addr;

use etherparse::{
    icmpv4::{DestUnreachableHeader, TimeExceededCode},
    Icmpv4Header, Icmpv4Type, IpNumber, Ipv4Header,
};

use super::parse::{Fragment, Ipv4Packet, Medium, Transport};
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
    let quote = at.checked_add(l3)?..at.checked_add(l3 + quote_len)?;
    // where the error starts in `buf`
    let start = match at.checked_sub(HEADERS_AHEAD) {
        Some(start) => {
            buf.get(..quote.end)?;
            buf.copy_within(at..at + l3, start);
            start
        }
        None => {
            buf.get(..quote.end + HEADERS_AHEAD)?;
            buf.copy_within(quote.clone(), quote.start + HEADERS_AHEAD);
            at
        }
    };
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
