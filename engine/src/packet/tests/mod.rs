//! The packet layer's parsing and rewrites against static bytes and properties, by family.

mod ipv4;
mod ipv6;
