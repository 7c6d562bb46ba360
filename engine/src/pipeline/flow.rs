//! From a parsed packet to the connection table's vocabulary: flow keys (for ICMP errors,
//! the key of the flow the quoted packet belongs to) and per-packet facts; and, for the
//! look-ahead, a flow key peeked from a frame's bytes before it is parsed.

use conntrack::{Endpoint, FlowKey, FragmentKey, PacketInfo, Proto, Segment};

use crate::packet::parse::{ETHERNET_HEADER_LEN, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP};
use crate::packet::wire::ethernet::ether_type;
use crate::packet::wire::{
    icmpv4, EthernetFrame, Icmpv4Message, Ipv4Packet as Ipv4View, TcpSegment, UdpDatagram,
};
use crate::packet::{Embedded, Fragment, Ipv4Packet, Medium, Transport};

/// The key of a TCP, UDP or ICMP echo packet as it is on the wire. The echo identifier is the
/// port of the side that sends requests.
#[inline]
pub fn flow_key(pkt: &Ipv4Packet) -> Option<FlowKey> {
    let (proto, src_port, dst_port) = match pkt.transport {
        Transport::Tcp {
            src_port, dst_port, ..
        } => (Proto::Tcp, src_port, dst_port),
        Transport::Udp { src_port, dst_port } => (Proto::Udp, src_port, dst_port),
        Transport::IcmpEcho { id, request: true } => (Proto::Icmp, id, 0),
        Transport::IcmpEcho { id, request: false } => (Proto::Icmp, 0, id),
        _ => return None,
    };
    Some(FlowKey {
        proto,
        src: Endpoint {
            ip: pkt.src,
            port: src_port,
        },
        dst: Endpoint {
            ip: pkt.dst,
            port: dst_port,
        },
    })
}

/// The key [`flow_key`] gives a frame's packet, read straight from the frame's bytes, for the
/// look-ahead: `None` for anything but a whole TCP, UDP or ICMP echo packet with a 20-byte IP
/// header. Validates nothing (parsing the frame does): it reads the fields through unchecked
/// views, which read zeros past the end of a short frame.
#[inline]
pub fn peek_flow_key(medium: Medium, frame: &[u8]) -> Option<FlowKey> {
    let l3 = match medium {
        Medium::Ethernet => {
            let eth = EthernetFrame::new_checked(frame).ok()?;
            if eth.ether_type() != ether_type::IPV4 {
                return None;
            }
            ETHERNET_HEADER_LEN
        }
        Medium::Ip => 0,
    };
    // the 20-byte header and the 8 transport bytes a key is read from
    let bytes = frame.get(l3..).filter(|b| b.len() >= 28)?;
    let ip = Ipv4View::new_unchecked(bytes);
    // version 4, IHL 5; neither more fragments nor an offset
    if ip.version() != 4 || ip.header_len() != 20 || ip.is_fragment() {
        return None;
    }
    let l4 = bytes.get(20..)?;
    let (proto, src_port, dst_port) = match ip.protocol() {
        IPPROTO_TCP => {
            let tcp = TcpSegment::new_unchecked(l4);
            (Proto::Tcp, tcp.src_port(), tcp.dst_port())
        }
        IPPROTO_UDP => {
            let udp = UdpDatagram::new_unchecked(l4);
            (Proto::Udp, udp.src_port(), udp.dst_port())
        }
        IPPROTO_ICMP => {
            let icmp = Icmpv4Message::new_unchecked(l4);
            match (icmp.msg_type(), icmp.code()) {
                (icmpv4::msg_type::ECHO_REQUEST, 0) => (Proto::Icmp, icmp.echo_ident(), 0),
                (icmpv4::msg_type::ECHO_REPLY, 0) => (Proto::Icmp, 0, icmp.echo_ident()),
                _ => return None,
            }
        }
        _ => return None,
    };
    Some(FlowKey {
        proto,
        src: Endpoint {
            ip: ip.src(),
            port: src_port,
        },
        dst: Endpoint {
            ip: ip.dst(),
            port: dst_port,
        },
    })
}

/// The key of the flow an ICMP error is about, in the direction opposite to the quoted packet
/// (the quote is a packet that went the other way).
#[inline]
pub fn error_flow_key(emb: &Embedded) -> Option<FlowKey> {
    Some(FlowKey {
        proto: Proto::from_ip_number(emb.proto)?,
        src: Endpoint {
            ip: emb.dst,
            port: emb.dst_port,
        },
        dst: Endpoint {
            ip: emb.src,
            port: emb.src_port,
        },
    })
}

/// What the connection table needs to know about a packet besides its key; `frame` is the
/// frame `pkt` was parsed from (a TCP segment's sequence numbers and window are read from it).
#[inline]
pub fn packet_info(pkt: &Ipv4Packet, frame: &[u8]) -> PacketInfo {
    let (tcp_flags, seg) = match pkt.transport {
        Transport::Tcp { flags, .. } => (flags, tcp_segment(pkt, frame, flags)),
        _ => (0, Segment::default()),
    };
    PacketInfo {
        tcp_flags,
        len: pkt.total_len() as u32,
        icmp_error: false,
        seg,
    }
}

/// A TCP packet's sequence number, acknowledgement, window and payload length, and for a SYN
/// its window scale option. Parsing checked that the whole header is in the frame; a frame
/// that is not the packet's gives zeros.
#[inline]
fn tcp_segment(pkt: &Ipv4Packet, frame: &[u8], flags: u8) -> Segment {
    let Some(bytes) = frame.get(pkt.l4()..pkt.end()) else {
        return Segment::default();
    };
    let tcp = TcpSegment::new_unchecked(bytes);
    Segment {
        seq: tcp.seq(),
        ack: tcp.ack(),
        window: tcp.window(),
        // at most 65535: an IP packet's total length is 16 bits
        payload: bytes.len().saturating_sub(tcp.header_len()) as u16,
        wscale: if flags & TCP_SYN != 0 {
            tcp.window_scale()
        } else {
            None
        },
        truncated: pkt.fragment == Fragment::First,
    }
}

/// The fragment-table key of a packet's datagram as on the wire.
#[inline]
pub fn fragment_key(pkt: &Ipv4Packet) -> FragmentKey {
    FragmentKey {
        src: pkt.src,
        dst: pkt.dst,
        proto: pkt.proto,
        id: pkt.id,
    }
}

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_ACK: u8 = 0x10;

/// Whether a packet that matches no session may open one: TCP only with a bare SYN, ICMP
/// only with an echo request; UDP always.
#[inline]
pub fn may_open_session(pkt: &Ipv4Packet) -> bool {
    match pkt.transport {
        Transport::Tcp { flags, .. } => flags & (TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN) == TCP_SYN,
        Transport::Udp { .. } => true,
        Transport::IcmpEcho { request, .. } => request,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::packet::checksum;
    use crate::packet::parse::{l3_offset, parse_ipv4};

    /// An IPv4 packet as bytes: `options` 4-byte words of IP options, the fragment word, the
    /// protocol, then 8 transport bytes (ports, or ICMP type, code, checksum, identifier) and
    /// `payload` more (at least 12, so a TCP header fits); the header checksum right unless
    /// `bad_checksum`. TCP gets a 20-byte header (data offset 5), UDP a length that fits.
    fn packet(
        options: usize,
        fragment: u16,
        proto: u8,
        l4: [u8; 8],
        payload: usize,
        bad_checksum: bool,
    ) -> Vec<u8> {
        let header_len = 20 + 4 * options;
        let total = header_len + 8 + payload.max(12);
        let mut p = vec![0u8; total];
        p[0] = 0x40 | (header_len / 4) as u8;
        p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        p[6..8].copy_from_slice(&fragment.to_be_bytes());
        p[8] = 64;
        p[9] = proto;
        p[12..16].copy_from_slice(&[192, 168, 1, 10]);
        p[16..20].copy_from_slice(&[8, 8, 4, 4]);
        let sum = checksum::full(&p[..header_len]) ^ u16::from(bad_checksum);
        p[10..12].copy_from_slice(&sum.to_be_bytes());
        p[header_len..header_len + 8].copy_from_slice(&l4);
        if proto == IPPROTO_UDP {
            let udp_len = (total - header_len) as u16;
            p[header_len + 4..header_len + 6].copy_from_slice(&udp_len.to_be_bytes());
        }
        if proto == IPPROTO_TCP {
            p[header_len + 12] = 0x50;
        }
        p
    }

    /// The property below means something only if the generator's unmutated packets parse:
    /// a TCP, a UDP and an echo packet, with and without options.
    #[test]
    fn generated_packets_parse_and_peek() {
        for (proto, l4) in [
            (IPPROTO_TCP, [0, 80, 1, 187, 0, 0, 0, 0]),
            (IPPROTO_UDP, [0, 53, 1, 187, 0, 0, 0, 0]),
            (IPPROTO_ICMP, [8, 0, 0, 0, 0, 7, 0, 0]),
        ] {
            for options in [0, 2] {
                let ip = packet(options, 0x4000, proto, l4, 20, false);
                let pkt = parse_ipv4(&ip, 0).expect("the generator's packet parses");
                let key = flow_key(&pkt).expect("a flow packet");
                let peeked = peek_flow_key(Medium::Ip, &ip);
                assert_eq!(peeked, (options == 0).then_some(key), "proto {proto}");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

        /// The look-ahead's key is the parsed packet's: the express lane looks a packet up by
        /// it without building the key again. Where parsing gives a whole TCP, UDP or echo
        /// packet with a 20-byte header, the peek gives its key; where the peek gives a key,
        /// parsing fails or gives that very key.
        #[test]
        fn peek_flow_key_is_the_parsed_key(
            options in prop_oneof![Just(0usize), 0usize..3],
            fragment in prop_oneof![Just(0u16), Just(0x4000), Just(0x2000), Just(0x6000), any::<u16>()],
            proto in prop_oneof![Just(IPPROTO_TCP), Just(IPPROTO_UDP), Just(IPPROTO_ICMP), any::<u8>()],
            icmp in prop_oneof![Just((8u8, 0u8)), Just((0, 0)), Just((3, 1)), Just((11, 0)), Just((8, 1)), any::<(u8, u8)>()],
            ports in any::<[u8; 4]>(),
            payload in 12usize..40,
            padding in prop_oneof![Just(0usize), 0usize..8],
            ethernet in any::<bool>(),
            mutate in proptest::option::of((0usize..48, any::<u8>())),
            bad_checksum in prop_oneof![Just(false), any::<bool>()],
        ) {
            let l4 = if proto == IPPROTO_ICMP {
                [icmp.0, icmp.1, 0, 0, ports[0], ports[1], ports[2], ports[3]]
            } else {
                [ports[0], ports[1], ports[2], ports[3], 0, 0, 0, 0]
            };
            let mut ip = packet(options, fragment, proto, l4, payload, bad_checksum);
            // bytes past the IP total length, as an Ethernet frame's padding
            ip.resize(ip.len() + padding, 0);
            let (medium, mut frame) = if ethernet {
                let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
                f.extend_from_slice(&ip);
                (Medium::Ethernet, f)
            } else {
                (Medium::Ip, ip)
            };
            if let Some((at, value)) = mutate {
                let at = at % frame.len();
                frame[at] = value;
            }
            let peeked = peek_flow_key(medium, &frame);
            let parsed = l3_offset(medium, &frame).and_then(|l3| parse_ipv4(&frame, l3));
            if let Some(key) = peeked {
                if let Ok(pkt) = &parsed {
                    prop_assert_eq!(pkt.fragment, crate::packet::Fragment::Whole);
                    prop_assert_eq!(flow_key(pkt), Some(key));
                }
            }
            if let Ok(pkt) = &parsed {
                if pkt.fragment == crate::packet::Fragment::Whole && pkt.header_len() == 20 {
                    prop_assert_eq!(peeked, flow_key(pkt));
                }
            }
        }
    }
}
