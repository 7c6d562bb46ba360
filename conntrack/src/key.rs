//! Flow identity: protocols, endpoints, flow keys, and the seeded hashes that place them.
//!
//! Everything the table hashes is first packed into `u64` words so that hashing and
//! comparing are a few integer operations:
//! - an *endpoint word* `ip << 32 | port << 16 | proto` names an internal endpoint of one
//!   protocol (its hash picks the endpoint's mapping shard and, there, the index entries of
//!   its mappings, one per WAN);
//! - a *remote word* `ip << 16 | port` names the other end of a flow; with an endpoint word it
//!   names a canonical flow, whose hash picks the session shard and indexes it there.
//!
//! A shard is picked by bits 40 to 55 of a hash ([`shard_index`]): a shard's index takes the
//! home entry from the low bits and its tag from a remix of all of them (`index.rs`), so the
//! sessions of one shard do not all share bits their index relies on.

use std::fmt;
use std::net::Ipv4Addr;

/// Transport protocols the table tracks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Proto {
    /// ICMP echo (the identifier plays the part of the internal port).
    Icmp = 1,
    /// TCP, with a state machine (see [`TcpState`](crate::TcpState)).
    Tcp = 6,
    /// UDP.
    Udp = 17,
}

/// Number of protocols (size of per-protocol arrays).
pub(crate) const PROTO_COUNT: usize = 3;

impl Proto {
    /// The protocol with IP protocol number `n`, if tracked.
    pub fn from_ip_number(n: u8) -> Option<Proto> {
        match n {
            1 => Some(Proto::Icmp),
            6 => Some(Proto::Tcp),
            17 => Some(Proto::Udp),
            _ => None,
        }
    }

    /// The IP protocol number.
    pub fn ip_number(self) -> u8 {
        self as u8
    }

    /// Lower-case name: "icmp", "tcp", "udp".
    pub fn name(self) -> &'static str {
        match self {
            Proto::Icmp => "icmp",
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }

    /// Dense index 0..PROTO_COUNT for per-protocol arrays.
    #[inline]
    pub(crate) fn index(self) -> usize {
        match self {
            Proto::Icmp => 0,
            Proto::Tcp => 1,
            Proto::Udp => 2,
        }
    }
}

/// An IPv4 address and a port (or ICMP echo identifier).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// Address.
    pub ip: Ipv4Addr,
    /// Port, or ICMP echo identifier.
    pub port: u16,
}

impl Endpoint {
    /// `ip:port`.
    pub const fn new(ip: Ipv4Addr, port: u16) -> Endpoint {
        Endpoint { ip, port }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.ip, self.port)
    }
}

/// A flow as seen on the wire in one direction. For ICMP echo the identifier is the port of the
/// host side (request: src.port = id, dst.port = 0; reply: src.port = 0, dst.port = id).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// Protocol.
    pub proto: Proto,
    /// Source endpoint.
    pub src: Endpoint,
    /// Destination endpoint.
    pub dst: Endpoint,
}

impl FlowKey {
    /// A key from its parts.
    pub const fn new(proto: Proto, src: Endpoint, dst: Endpoint) -> FlowKey {
        FlowKey { proto, src, dst }
    }

    /// The same flow seen in the other direction (source and destination swapped).
    pub fn reversed(&self) -> FlowKey {
        FlowKey {
            proto: self.proto,
            src: self.dst,
            dst: self.src,
        }
    }
}

/// Endpoint word: `ip << 32 | port << 16 | proto`.
#[inline]
pub(crate) fn endpoint_word(proto: Proto, ep: Endpoint) -> u64 {
    (u64::from(u32::from(ep.ip)) << 32) | (u64::from(ep.port) << 16) | u64::from(proto as u8)
}

/// Remote word: `ip << 16 | port`.
#[inline]
pub(crate) fn remote_word(ep: Endpoint) -> u64 {
    (u64::from(u32::from(ep.ip)) << 16) | u64::from(ep.port)
}

/// The shard (`0..=mask`, `mask` = shard count - 1 < 2^16) that hash `h` picks.
#[inline]
pub(crate) fn shard_index(h: u64, mask: usize) -> usize {
    (h >> 40) as usize & mask
}

/// Seeded hashes of the packed words (ahash with fixed keys derived from one seed).
#[derive(Clone, Debug)]
pub(crate) struct KeyHasher(ahash::RandomState);

impl KeyHasher {
    pub(crate) fn new(seed: u64) -> KeyHasher {
        KeyHasher(ahash::RandomState::with_seeds(
            seed,
            seed.rotate_left(17) ^ 0x243f_6a88_85a3_08d3,
            seed.rotate_left(31) ^ 0x1319_8a2e_0370_7344,
            !seed,
        ))
    }

    /// Hash of an internal endpoint (picks its mapping shard).
    #[inline]
    pub(crate) fn endpoint(&self, ep_word: u64) -> u64 {
        self.0.hash_one(ep_word)
    }

    /// Hash of a canonical flow (picks its session shard, and indexes it there).
    #[inline]
    pub(crate) fn flow(&self, ep_word: u64, remote_word: u64) -> u64 {
        self.0.hash_one((ep_word, remote_word))
    }

    /// Hash of an internal host's address (picks its host shard, and indexes its entries
    /// there: see `hosts.rs`).
    #[inline]
    pub(crate) fn host(&self, ip: Ipv4Addr) -> u64 {
        self.0.hash_one(u32::from(ip))
    }

    /// Hash of any value (fragment keys).
    #[inline]
    pub(crate) fn any<T: std::hash::Hash>(&self, value: T) -> u64 {
        self.0.hash_one(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(a: u8, port: u16) -> Endpoint {
        Endpoint::new(Ipv4Addr::new(10, 0, 0, a), port)
    }

    #[test]
    fn reversal_swaps_endpoints_and_is_an_involution() {
        let k = FlowKey::new(Proto::Udp, ep(1, 1000), ep(2, 53));
        let r = k.reversed();
        assert_eq!(r.src, ep(2, 53));
        assert_eq!(r.dst, ep(1, 1000));
        assert_eq!(r.proto, Proto::Udp);
        assert_ne!(r, k);
        assert_eq!(r.reversed(), k);
    }

    #[test]
    fn proto_numbers_round_trip() {
        for p in [Proto::Icmp, Proto::Tcp, Proto::Udp] {
            assert_eq!(Proto::from_ip_number(p.ip_number()), Some(p));
        }
        assert_eq!(Proto::from_ip_number(58), None);
        assert_eq!(Proto::from_ip_number(0), None);
    }

    #[test]
    fn words_are_injective_on_their_fields() {
        let a = endpoint_word(Proto::Tcp, ep(1, 80));
        assert_ne!(a, endpoint_word(Proto::Udp, ep(1, 80)));
        assert_ne!(a, endpoint_word(Proto::Tcp, ep(2, 80)));
        assert_ne!(a, endpoint_word(Proto::Tcp, ep(1, 81)));
        assert_ne!(remote_word(ep(1, 80)), remote_word(ep(1, 81)));
        assert_ne!(remote_word(ep(1, 80)), remote_word(ep(2, 80)));
    }

    #[test]
    fn hashes_depend_on_the_seed() {
        let w = endpoint_word(Proto::Tcp, ep(1, 80));
        assert_eq!(KeyHasher::new(1).endpoint(w), KeyHasher::new(1).endpoint(w));
        assert_ne!(KeyHasher::new(1).endpoint(w), KeyHasher::new(2).endpoint(w));
    }
}
