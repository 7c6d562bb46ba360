//! Packets on the wire: parsing and validation ([`parse`]), checksum arithmetic
//! ([`checksum`]), in-place NAT rewriting ([`rewrite`]), router-originated ICMP errors
//! ([`icmp_error`]) and TCP resets ([`tcp_reset`]). Pure functions over byte slices: no state, no I/O, no allocation.

pub mod checksum;
pub mod icmp_error;
pub mod parse;
pub mod rewrite;
pub mod tcp_reset;

pub use parse::{Embedded, Fragment, Ipv4Packet, Medium, ParseError, Transport};

#[cfg(test)]
mod tests;
