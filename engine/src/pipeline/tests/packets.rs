//! Test packets described by their fields and built by etherparse's `PacketBuilder` (full
//! checksums computed independently of fwd's incremental ones): the expected output of a
//! rewrite is the same description with the translated fields, built from scratch.

use std::net::Ipv4Addr;

use etherparse::{Icmpv4Type, PacketBuilder};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L4 {
    /// `client`: sent by the side that opened the connection (see [`Pkt::bytes`]).
    Tcp {
        sport: u16,
        dport: u16,
        flags: u8,
        client: bool,
    },
    Udp {
        sport: u16,
        dport: u16,
    },
    EchoRequest {
        id: u16,
        seq: u16,
    },
    EchoReply {
        id: u16,
        seq: u16,
    },
}

pub const SYN: u8 = 0x02;
pub const SYN_ACK: u8 = 0x12;
pub const ACK: u8 = 0x10;
pub const PSH_ACK: u8 = 0x18;
pub const FIN_ACK: u8 = 0x11;
pub const RST: u8 = 0x04;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pkt {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub ttl: u8,
    pub l4: L4,
    pub payload: &'static [u8],
}

pub fn tcp(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), flags: u8) -> Pkt {
    Pkt {
        src: src.0,
        dst: dst.0,
        ttl: 64,
        l4: L4::Tcp {
            sport: src.1,
            dport: dst.1,
            flags,
            // the client's port is the ephemeral one, above the service's
            client: src.1 >= dst.1,
        },
        payload: b"",
    }
}

pub fn udp(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16)) -> Pkt {
    Pkt {
        src: src.0,
        dst: dst.0,
        ttl: 64,
        l4: L4::Udp {
            sport: src.1,
            dport: dst.1,
        },
        payload: b"hello, world",
    }
}

pub fn echo_request(src: Ipv4Addr, dst: Ipv4Addr, id: u16) -> Pkt {
    Pkt {
        src,
        dst,
        ttl: 64,
        l4: L4::EchoRequest { id, seq: 7 },
        payload: b"ping payload",
    }
}

pub fn echo_reply(src: Ipv4Addr, dst: Ipv4Addr, id: u16) -> Pkt {
    Pkt {
        src,
        dst,
        ttl: 64,
        l4: L4::EchoReply { id, seq: 7 },
        payload: b"ping payload",
    }
}

impl Pkt {
    pub fn ttl(mut self, ttl: u8) -> Pkt {
        self.ttl = ttl;
        self
    }

    pub fn payload(mut self, payload: &'static [u8]) -> Pkt {
        self.payload = payload;
        self
    }

    /// A TCP packet sent by the side that opened the connection (`true`) or the other; by
    /// default, the side whose port is the higher.
    pub fn client(mut self, is_client: bool) -> Pkt {
        if let L4::Tcp { client, .. } = &mut self.l4 {
            *client = is_client;
        }
        self
    }

    /// The same packet after a router: TTL one less, new addresses and ports (or echo id).
    pub fn translated(mut self, src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16)) -> Pkt {
        self.src = src.0;
        self.dst = dst.0;
        self.ttl -= 1;
        self.l4 = match self.l4 {
            L4::Tcp { flags, client, .. } => L4::Tcp {
                sport: src.1,
                dport: dst.1,
                flags,
                client,
            },
            L4::Udp { .. } => L4::Udp {
                sport: src.1,
                dport: dst.1,
            },
            L4::EchoRequest { seq, .. } => L4::EchoRequest { id: src.1, seq },
            L4::EchoReply { seq, .. } => L4::EchoReply { id: dst.1, seq },
        };
        self
    }

    /// The IP packet's bytes.
    pub fn bytes(&self) -> Vec<u8> {
        let ip = PacketBuilder::ipv4(self.src.octets(), self.dst.octets(), self.ttl);
        let mut out = Vec::new();
        let written = match self.l4 {
            L4::Tcp {
                sport,
                dport,
                flags,
                client,
            } => {
                // One connection's numbers: the client's initial sequence number is 1000, the
                // server's 5000; a SYN carries the initial one, anything else the next (so the
                // segments are in the window of a connection opened by these SYNs).
                let (mine, theirs) = if client { (1000, 5000) } else { (5000, 1000) };
                let seq = if flags & 0x02 != 0 { mine } else { mine + 1 };
                let mut b = ip.tcp(sport, dport, seq, 64240);
                if flags & 0x02 != 0 {
                    b = b.syn();
                }
                if flags & 0x10 != 0 {
                    b = b.ack(theirs + 1);
                }
                if flags & 0x01 != 0 {
                    b = b.fin();
                }
                if flags & 0x04 != 0 {
                    b = b.rst();
                }
                if flags & 0x08 != 0 {
                    b = b.psh();
                }
                b.write_to_vec(&mut out, self.payload)
            }
            L4::Udp { sport, dport } => ip.udp(sport, dport).write_to_vec(&mut out, self.payload),
            L4::EchoRequest { id, seq } => ip
                .icmpv4_echo_request(id, seq)
                .write_to_vec(&mut out, self.payload),
            L4::EchoReply { id, seq } => ip
                .icmpv4_echo_reply(id, seq)
                .write_to_vec(&mut out, self.payload),
        };
        written.expect("test packet builds");
        out
    }

    /// The packet in an Ethernet frame.
    pub fn frame(&self, src_mac: [u8; 6], dst_mac: [u8; 6]) -> Vec<u8> {
        let mut out = Vec::with_capacity(14 + 1500);
        out.extend_from_slice(&dst_mac);
        out.extend_from_slice(&src_mac);
        out.extend_from_slice(&[0x08, 0x00]);
        out.extend_from_slice(&self.bytes());
        out
    }
}

/// An ICMP error from `src` to `dst` quoting the first `quote_len` bytes of `quoted`.
pub fn icmp_error(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ttl: u8,
    kind: Icmpv4Type,
    quoted: &[u8],
    quote_len: usize,
) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ipv4(src.octets(), dst.octets(), ttl)
        .icmpv4(kind)
        .write_to_vec(&mut out, &quoted[..quote_len.min(quoted.len())])
        .expect("icmp error builds");
    out
}

/// Splits an IPv4 packet (20-byte header) into two fragments: the first carries `first_len`
/// bytes of payload (a multiple of 8).
pub fn fragments(packet: &[u8], first_len: usize) -> (Vec<u8>, Vec<u8>) {
    let header = &packet[..20];
    let payload = &packet[20..];
    let make = |offset_units: u16, more: bool, body: &[u8]| {
        let mut h = header.to_vec();
        let total = u16::try_from(20 + body.len()).expect("fits");
        h[2..4].copy_from_slice(&total.to_be_bytes());
        let flags_offset = offset_units | if more { 0x2000 } else { 0 };
        h[6..8].copy_from_slice(&flags_offset.to_be_bytes());
        h[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
        h[10..12].copy_from_slice(&[0, 0]);
        let sum = crate::packet::checksum::full(&h);
        h[10..12].copy_from_slice(&sum.to_be_bytes());
        h.extend_from_slice(body);
        h
    };
    let first = make(0, true, &payload[..first_len]);
    let second = make(
        u16::try_from(first_len / 8).expect("fits"),
        false,
        &payload[first_len..],
    );
    (first, second)
}

/// Checks every checksum of an IPv4 packet by full recomputation: the IP header, and the
/// TCP/UDP/ICMP checksum over the whole (unfragmented) packet.
pub fn assert_checksums_valid(packet: &[u8]) {
    let ihl = usize::from(packet[0] & 0x0f) * 4;
    assert_eq!(
        crate::packet::checksum::full(&packet[..ihl]),
        0,
        "IP header checksum"
    );
    let src: [u8; 4] = packet[12..16].try_into().expect("4 bytes");
    let dst: [u8; 4] = packet[16..20].try_into().expect("4 bytes");
    let proto = packet[9];
    let l4 = &packet[ihl..];
    match proto {
        6 => assert_eq!(
            crate::packet::checksum::l4_verify_sum(src, dst, 6, l4),
            0,
            "TCP checksum"
        ),
        // A zero UDP checksum means "none".
        17 if l4[6..8] != [0, 0] => assert_eq!(
            crate::packet::checksum::l4_verify_sum(src, dst, 17, l4),
            0,
            "UDP checksum"
        ),
        1 => assert_eq!(crate::packet::checksum::full(l4), 0, "ICMP checksum"),
        _ => {}
    }
}
