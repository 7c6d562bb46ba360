//! Packets on the wire: checked views of each format ([`wire`]), parsing and validation
//! ([`parse`]), checksum arithmetic ([`checksum`]), in-place NAT rewriting ([`rewrite`]),
//! router-originated ICMP errors ([`icmp_error`]), TCP resets ([`tcp_reset`]) and NPTv6
//! address translation ([`nptv6`], RFC 6296). Pure functions over byte slices and addresses:
//! no state, no I/O, no allocation.
//!
//! Every read of a received packet's bytes, and every change to them, goes through a
//! [`wire`] view; the headers of a packet the router builds itself (an ICMP error, a reset)
//! are emitted with etherparse's header types, which compute their checksums.

pub mod checksum;
pub mod icmp_error;
pub mod nptv6;
pub mod parse;
pub mod rewrite;
pub mod tcp_reset;
pub mod wire;

pub use parse::{
    Embedded, Embedded6, Fragment, Ipv4Packet, Ipv6Packet, Medium, ParseError, Transport,
};

#[cfg(test)]
mod tests;
