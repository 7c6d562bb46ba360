//! From a parsed packet to the connection table's vocabulary: flow keys (for ICMP errors,
//! the key of the flow the quoted packet belongs to) and per-packet facts.

use conntrack::{Endpoint, FlowKey, FragmentKey, PacketInfo, Proto};

use crate::packet::{Embedded, Ipv4Packet, Transport};

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

/// What the connection table needs to know about a packet besides its key.
#[inline]
pub fn packet_info(pkt: &Ipv4Packet) -> PacketInfo {
    let tcp_flags = match pkt.transport {
        Transport::Tcp { flags, .. } => flags,
        _ => 0,
    };
    PacketInfo {
        tcp_flags,
        len: pkt.total_len() as u32,
        icmp_error: false,
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
