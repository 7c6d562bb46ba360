//! TCP resets the router sends to a LAN client on behalf of the remote end, when the WAN its
//! connection was pinned to went down, or its segment has no session at all: the client's
//! application learns at once that the connection is gone (and reconnects, through a live
//! WAN) instead of waiting for its own timeouts. Built in place in the frame of the client's segment: no allocation.
//!
//! RFC 9293 3.10.7.1 (a segment for a connection that does not exist): if the segment has
//! ACK, the reset is `<SEQ=SEG.ACK><CTL=RST>`; otherwise `<SEQ=0><ACK=SEG.SEQ+SEG.LEN>
//! <CTL=RST,ACK>`, where SYN and FIN count in SEG.LEN. A reset is never answered with one.
//! With `SEQ=SEG.ACK` the reset carries exactly the sequence number the client expects next
//! (its RCV.NXT), so even an RFC 5961 stack accepts it without a challenge ACK.

use conntrack::{TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN};
use etherparse::{IpNumber, Ipv4Header, Ipv6Header, TcpHeader};

use super::parse::{Fragment, Ipv4Packet, Ipv6Packet, Medium, Transport};
use super::rewrite::reply_link_header;
use super::wire::TcpSegment;

const RESET_TTL: u8 = 64;
const TCP_HEADER_LEN: usize = 20;

/// Whether `pkt` may be answered with a reset at all: a whole TCP segment that is not
/// itself a reset.
pub fn may_reset(pkt: &Ipv4Packet) -> bool {
    matches!(pkt.transport, Transport::Tcp { flags, .. } if flags & TCP_RST == 0)
        && pkt.fragment == Fragment::Whole
}

/// The reset's TCP header for `segment` (the whole segment, header and data) of `transport`
/// (as parsed; `None` if not TCP), by RFC 9293 3.10.7.1 (see the module docs); its checksum
/// not yet set.
fn reset_for(segment: &[u8], transport: Transport) -> Option<TcpHeader> {
    let Transport::Tcp {
        src_port,
        dst_port,
        flags,
    } = transport
    else {
        return None;
    };
    let seg = TcpSegment::new_checked(segment).ok()?;
    let seg_len = u32::try_from(seg.payload().len()).ok()?
        + u32::from(flags & TCP_SYN != 0)
        + u32::from(flags & TCP_FIN != 0);
    let mut tcp = TcpHeader::new(dst_port, src_port, 0, 0);
    tcp.rst = true;
    if flags & TCP_ACK != 0 {
        tcp.sequence_number = seg.ack();
    } else {
        tcp.ack = true;
        tcp.acknowledgment_number = seg.seq().wrapping_add(seg_len);
    }
    Some(tcp)
}

/// Replaces the TCP segment in `buf` with a reset from its destination to its source.
/// Ethernet frames get their MAC addresses swapped so the reset goes back to the neighbour that
/// sent the segment. Returns the new frame length, or `None` for a segment that must not be
/// answered (a reset, a fragment, not TCP: see [`may_reset`]) or a `buf` too small.
pub fn build_tcp_reset(buf: &mut [u8], medium: Medium, pkt: &Ipv4Packet) -> Option<usize> {
    if !may_reset(pkt) {
        return None;
    }
    let mut tcp = reset_for(buf.get(pkt.l4()..pkt.end())?, pkt.transport)?;
    let mut ip = Ipv4Header::new(
        u16::try_from(TCP_HEADER_LEN).ok()?,
        RESET_TTL,
        IpNumber::TCP,
        pkt.dst.octets(),
        pkt.src.octets(),
    )
    .ok()?;
    ip.dont_fragment = true;
    ip.header_checksum = ip.calc_header_checksum();
    tcp.checksum = tcp.calc_checksum_ipv4(&ip, &[]).ok()?;

    write_reset(buf, medium, pkt.l3(), &ip.to_bytes(), &tcp)
}

/// Writes a reset's IP header `ip` and TCP header over the segment's packet at `l3` and
/// points an Ethernet frame back at its sender; returns the frame's new length.
fn write_reset(
    buf: &mut [u8],
    medium: Medium,
    l3: usize,
    ip: &[u8],
    tcp: &TcpHeader,
) -> Option<usize> {
    let end = l3 + ip.len() + TCP_HEADER_LEN;
    let out = buf.get_mut(l3..end)?;
    let (ip_out, tcp_out) = out.split_at_mut(ip.len());
    ip_out.copy_from_slice(ip);
    tcp_out.copy_from_slice(&tcp.to_bytes());
    reply_link_header(buf, medium, l3);
    Some(end)
}

/// Whether a segment may be answered with a reset (as [`may_reset`], for IPv6).
pub fn may_reset_v6(pkt: &Ipv6Packet) -> bool {
    matches!(pkt.transport, Transport::Tcp { flags, .. } if flags & TCP_RST == 0)
        && pkt.fragment == Fragment::Whole
}

/// As [`build_tcp_reset`], for a segment over IPv6: the reset replaces it in `buf`, from its
/// destination to its source (no extension headers), and the frame's length is returned.
pub fn build_tcp_reset_v6(buf: &mut [u8], medium: Medium, pkt: &Ipv6Packet) -> Option<usize> {
    if !may_reset_v6(pkt) {
        return None;
    }
    let mut tcp = reset_for(buf.get(pkt.l4()..pkt.end())?, pkt.transport)?;
    let (from, to) = (pkt.dst.octets(), pkt.src.octets());
    tcp.checksum = tcp.calc_checksum_ipv6_raw(from, to, &[]).ok()?;
    let ip = Ipv6Header {
        traffic_class: 0,
        flow_label: Default::default(),
        payload_length: u16::try_from(TCP_HEADER_LEN).ok()?,
        next_header: IpNumber::TCP,
        hop_limit: RESET_TTL,
        source: from,
        destination: to,
    };
    write_reset(buf, medium, pkt.l3(), &ip.to_bytes(), &tcp)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::packet::parse::{parse_ipv4, ETHERNET_HEADER_LEN};
    use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};

    const CLIENT: [u8; 4] = [192, 168, 1, 10];
    const SERVER: [u8; 4] = [203, 0, 113, 10];

    /// A client segment: TCP from CLIENT:40000 to SERVER:443 with the given flags.
    fn segment(syn: bool, ack: Option<u32>, fin: bool, payload: &[u8]) -> Vec<u8> {
        let mut b = PacketBuilder::ipv4(CLIENT, SERVER, 63).tcp(40000, 443, 1000, 64240);
        if syn {
            b = b.syn();
        }
        if let Some(a) = ack {
            b = b.ack(a);
        }
        if fin {
            b = b.fin();
        }
        let mut out = Vec::new();
        b.write(&mut out, payload).unwrap();
        out
    }

    /// Builds the reset of `seg` and returns (seq, ack, rst, ack flag, length) after checking
    /// addresses, ports and both checksums against full recomputation.
    fn reset_of(mut seg: Vec<u8>) -> Option<(u32, u32, bool, bool, usize)> {
        let pkt = parse_ipv4(&seg, 0).unwrap();
        let len = build_tcp_reset(&mut seg, Medium::Ip, &pkt)?;
        let sliced = SlicedPacket::from_ip(&seg[..len]).unwrap();
        let ip = match sliced.net.unwrap() {
            etherparse::NetSlice::Ipv4(ip) => ip,
            _ => panic!("not IPv4"),
        };
        let header = ip.header().to_header();
        assert_eq!(header.header_checksum, header.calc_header_checksum());
        assert_eq!((header.source, header.destination), (SERVER, CLIENT));
        assert_eq!(header.time_to_live, RESET_TTL);
        let TransportSlice::Tcp(tcp) = sliced.transport.unwrap() else {
            panic!("not TCP")
        };
        assert_eq!((tcp.source_port(), tcp.destination_port()), (443, 40000));
        assert_eq!(
            tcp.checksum(),
            tcp.to_header().calc_checksum_ipv4(&header, &[]).unwrap()
        );
        // the rewritten packet parses as what the pipeline accepts
        parse_ipv4(&seg[..len], 0).unwrap();
        Some((
            tcp.sequence_number(),
            tcp.acknowledgment_number(),
            tcp.rst(),
            tcp.ack(),
            len,
        ))
    }

    #[test]
    fn a_segment_with_ack_gets_a_reset_at_its_ack_number() {
        let r = reset_of(segment(false, Some(77_000), false, b"hello")).unwrap();
        assert_eq!(r, (77_000, 0, true, false, 40));
    }

    #[test]
    fn a_syn_gets_a_reset_acking_it() {
        let r = reset_of(segment(true, None, false, &[])).unwrap();
        assert_eq!(r, (0, 1001, true, true, 40));
    }

    #[test]
    fn data_and_fin_without_ack_count_in_the_ack_number() {
        let r = reset_of(segment(false, None, true, b"abc")).unwrap();
        assert_eq!(r, (0, 1004, true, true, 40));
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut seg = segment(false, None, false, b"xy");
        // sequence number 0xffff_ffff: the ack wraps to 1
        seg[24..28].copy_from_slice(&u32::MAX.to_be_bytes());
        let mut tcp = TcpHeader::from_slice(&seg[20..]).unwrap().0;
        let ip = Ipv4Header::from_slice(&seg).unwrap().0;
        tcp.checksum = tcp.calc_checksum_ipv4(&ip, b"xy").unwrap();
        seg[20..40].copy_from_slice(&tcp.to_bytes());
        assert_eq!(reset_of(seg).unwrap().1, 1);
    }

    #[test]
    fn a_reset_is_never_answered() {
        let mut seg = segment(false, Some(5), false, &[]);
        seg[33] |= TCP_RST; // flags byte
        let mut tcp = TcpHeader::from_slice(&seg[20..]).unwrap().0;
        let ip = Ipv4Header::from_slice(&seg).unwrap().0;
        tcp.checksum = tcp.calc_checksum_ipv4(&ip, &[]).unwrap();
        seg[20..40].copy_from_slice(&tcp.to_bytes());
        assert_eq!(reset_of(seg), None);
    }

    #[test]
    fn ethernet_frames_swap_their_macs() {
        let mut frame = vec![1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 0x08, 0x00];
        frame.extend(segment(false, Some(9), false, b"data"));
        let pkt = parse_ipv4(&frame, ETHERNET_HEADER_LEN).unwrap();
        let len = build_tcp_reset(&mut frame, Medium::Ethernet, &pkt).unwrap();
        assert_eq!(len, ETHERNET_HEADER_LEN + 40);
        assert_eq!(&frame[0..12], &[2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1]);
    }
}
