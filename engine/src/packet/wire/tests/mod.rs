//! Tests of the wire views: static packets per format, and property tests that no view
//! panics on any bytes and that each reads what etherparse reads.

mod icmpv6;
mod ipv4;
mod ipv6;
mod props;
