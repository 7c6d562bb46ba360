//! ICMP echo on the wire: building an echo request and reading an echo reply out of what a
//! raw IPv4 socket delivers (the IP header, then the ICMP message).
//!
//! Invariants: the reply parser takes untrusted bytes and never panics; it accepts only a
//! well-formed, unfragmented IPv4 packet carrying an ICMP echo reply (type 0, code 0) whose
//! ICMP checksum is right; everything else is `None`.

use std::net::Ipv4Addr;

const ECHO_REQUEST: u8 = 8;
const ECHO_REPLY: u8 = 0;
const PROTO_ICMP: u8 = 1;
/// ICMP echo header: type, code, checksum, identifier, sequence.
const ECHO_HEADER_LEN: usize = 8;

/// The fields of an echo reply that matter to the prober.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EchoReply<'a> {
    /// Who sent the reply (the IP source).
    pub source: Ipv4Addr,
    /// The echo identifier.
    pub ident: u16,
    /// The echo sequence number.
    pub seq: u16,
    /// The data after the echo header (what the request carried, if the reply is genuine).
    pub payload: &'a [u8],
}

/// An ICMP echo request (no IP header: the kernel adds it) with `payload`.
pub fn echo_request(ident: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(ECHO_HEADER_LEN + payload.len());
    msg.extend_from_slice(&[ECHO_REQUEST, 0, 0, 0]);
    msg.extend_from_slice(&ident.to_be_bytes());
    msg.extend_from_slice(&seq.to_be_bytes());
    msg.extend_from_slice(payload);
    let sum = checksum(&msg).to_be_bytes();
    msg[2] = sum[0];
    msg[3] = sum[1];
    msg
}

/// The echo reply in `packet` (IPv4 header + ICMP), if it is one.
pub fn parse_echo_reply(packet: &[u8]) -> Option<EchoReply<'_>> {
    let version_ihl = *packet.first()?;
    if version_ihl >> 4 != 4 {
        return None;
    }
    let header_len = usize::from(version_ihl & 0x0f) * 4;
    let total_len = usize::from(u16::from_be_bytes([*packet.get(2)?, *packet.get(3)?]));
    if header_len < 20 || total_len < header_len || total_len > packet.len() {
        return None;
    }
    // More-fragments flag or a fragment offset: not a whole message.
    let frag = u16::from_be_bytes([*packet.get(6)?, *packet.get(7)?]);
    if frag & 0x3fff != 0 || *packet.get(9)? != PROTO_ICMP {
        return None;
    }
    let source = Ipv4Addr::new(
        *packet.get(12)?,
        *packet.get(13)?,
        *packet.get(14)?,
        *packet.get(15)?,
    );
    let icmp = packet.get(header_len..total_len)?;
    if icmp.len() < ECHO_HEADER_LEN || icmp.first() != Some(&ECHO_REPLY) || icmp.get(1) != Some(&0)
    {
        return None;
    }
    if checksum(icmp) != 0 {
        return None;
    }
    Some(EchoReply {
        source,
        ident: u16::from_be_bytes([*icmp.get(4)?, *icmp.get(5)?]),
        seq: u16::from_be_bytes([*icmp.get(6)?, *icmp.get(7)?]),
        payload: icmp.get(ECHO_HEADER_LEN..)?,
    })
}

/// The Internet checksum (RFC 1071) of `data`: 0 over a message that includes its own
/// correct checksum.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for pair in &mut chunks {
        sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A reply as a raw socket shows it: 20-byte IPv4 header from 192.0.2.7, ICMP echo reply
    /// id 0x1234 seq 7 with payload "abc".
    fn reply_bytes() -> Vec<u8> {
        let mut icmp = echo_request(0x1234, 7, b"abc");
        icmp[0] = ECHO_REPLY;
        icmp[2] = 0;
        icmp[3] = 0;
        let sum = checksum(&icmp).to_be_bytes();
        icmp[2] = sum[0];
        icmp[3] = sum[1];
        let total = (20 + icmp.len()) as u16;
        let mut p = vec![
            0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, PROTO_ICMP, 0, 0, 192, 0, 2, 7, 192, 0, 2, 1,
        ];
        p[2..4].copy_from_slice(&total.to_be_bytes());
        let sum = checksum(&p).to_be_bytes();
        p[10] = sum[0];
        p[11] = sum[1];
        p.extend_from_slice(&icmp);
        p
    }

    #[test]
    fn request_layout_and_checksum() {
        let m = echo_request(0xbeef, 0x0102, &[1, 2, 3]);
        assert_eq!(&m[..2], &[8, 0]);
        assert_eq!(&m[4..8], &[0xbe, 0xef, 0x01, 0x02]);
        assert_eq!(&m[8..], &[1, 2, 3]);
        assert_eq!(checksum(&m), 0);
        // RFC 1071's example words.
        assert_eq!(
            checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            !0xddf2
        );
    }

    #[test]
    fn parses_a_reply() {
        let p = reply_bytes();
        assert_eq!(
            parse_echo_reply(&p),
            Some(EchoReply {
                source: Ipv4Addr::new(192, 0, 2, 7),
                ident: 0x1234,
                seq: 7,
                payload: b"abc",
            })
        );
        // Trailing bytes past the IP total length (padding) are ignored.
        let mut padded = p.clone();
        padded.extend_from_slice(&[0; 6]);
        assert!(parse_echo_reply(&padded).is_some());
    }

    #[test]
    fn refuses_what_is_not_a_good_reply() {
        let p = reply_bytes();
        let with = |i: usize, v: u8| {
            let mut q = p.clone();
            q[i] = v;
            parse_echo_reply(&q).is_some()
        };
        assert!(!with(0, 0x65)); // IPv6 version
        assert!(!with(0, 0x44)); // IHL 16 bytes
        assert!(!with(9, 17)); // UDP
        assert!(!with(6, 0x20)); // more fragments
        assert!(!with(20, ECHO_REQUEST)); // an echo request
        assert!(!with(21, 1)); // code 1
        assert!(!with(30, b'x')); // payload changed: bad checksum
        assert!(!with(3, 200)); // total length beyond the buffer
        for len in 0..p.len() {
            assert_eq!(parse_echo_reply(&p[..len]), None, "{len}");
        }
        assert_eq!(parse_echo_reply(&[]), None);
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = parse_echo_reply(&bytes);
        }

        #[test]
        fn mutated_replies_never_panic(i in 0usize..31, v in any::<u8>()) {
            let mut p = reply_bytes();
            p[i] = v;
            let _ = parse_echo_reply(&p);
        }
    }
}
