//! Packets on the wire: parsing and validation ([`parse`]), checksum arithmetic
//! ([`checksum`]), in-place NAT rewriting ([`rewrite`]) and router-originated ICMP errors
//! ([`icmp_error`]). Pure functions over byte slices: no state, no I/O, no allocation.

pub mod checksum;
pub mod icmp_error;
pub mod parse;
pub mod rewrite;

pub use parse::{Embedded, Fragment, Ipv4Packet, Medium, ParseError, Transport};

#[cfg(test)]
mod tests;
