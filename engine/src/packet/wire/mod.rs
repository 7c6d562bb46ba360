//! Checked views of the wire formats fwd reads and rewrites: Ethernet II, IPv4, IPv6 with its
//! extension headers, TCP, UDP, ICMP and ICMPv6. The bottom of the packet layer; everything
//! above it (parsing, the look-ahead's key peek, rewriting, the ICMP error and TCP reset
//! builders) reads and writes packets through these views.
//!
//! Each view wraps a byte buffer `T: AsRef<[u8]>` (in fwd, a slice of a frame) as smoltcp's
//! `wire` module does:
//! - `new_checked(buffer)` verifies that the buffer holds the whole fixed header, that the
//!   header's own length fields are consistent with each other and with the buffer, and the
//!   version where the format has one; it copies nothing;
//! - accessors read fields by offset. They cannot panic: every read goes through [`get16`]
//!   and its kin, which give 0 for bytes outside the buffer, so after the check they read the
//!   packet's fields and without it (`new_unchecked`, for a buffer an earlier check already
//!   covered) they read zeros where the buffer is short, never out of bounds;
//! - where `T: AsMut<[u8]>` too, setters write fields in place (a write outside the buffer
//!   does nothing) and `payload_mut` lends the bytes after the header.
//!
//! What the views do not do: verify checksums on construction (`verify_checksum`-style calls
//! do that on request, through [`crate::packet::checksum`]), follow a protocol's state, or
//! allocate.

pub mod ethernet;
pub mod icmpv4;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod udp;

#[cfg(test)]
mod tests;

pub use ethernet::EthernetFrame;
pub use icmpv4::Icmpv4Message;
pub use icmpv6::Icmpv6Message;
pub use ipv4::Ipv4Packet;
pub use ipv6::Ipv6Packet;
pub use tcp::TcpSegment;
pub use udp::UdpDatagram;

/// Why a buffer is not a valid instance of a view's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The buffer ends before the fixed header, or before a length the header states.
    #[error("truncated")]
    Truncated,
    /// A field holds a value the format forbids: a wrong version, a header length below
    /// the minimum, a length field shorter than its header, extension headers out of order.
    #[error("malformed")]
    Malformed,
}

/// IP protocol numbers (IPv4's protocol, IPv6's next header) fwd tells apart.
pub mod ip_proto {
    pub const HOP_BY_HOP: u8 = 0;
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const IPV6_ROUTING: u8 = 43;
    pub const IPV6_FRAGMENT: u8 = 44;
    pub const ESP: u8 = 50;
    pub const AH: u8 = 51;
    pub const ICMPV6: u8 = 58;
    pub const IPV6_NO_NEXT: u8 = 59;
    pub const IPV6_DEST_OPTS: u8 = 60;
}

// Each helper tests the buffer's length once against the field's end and then indexes: with
// `at` a constant and the view's check in sight, the compiler folds the tests into the check
// that dominates them (one test of a fixed header's length serves all its fields).

/// The byte at `at`, or 0 past the end of `b`.
#[inline(always)]
pub(crate) fn get8(b: &[u8], at: usize) -> u8 {
    if at < b.len() {
        b[at]
    } else {
        0
    }
}

/// The big-endian 16-bit field at `at`, or 0 where `b` is too short for it.
#[inline(always)]
pub(crate) fn get16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes(get_bytes(b, at))
}

/// The big-endian 32-bit field at `at`, or 0 where `b` is too short for it.
#[inline(always)]
pub(crate) fn get32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(get_bytes(b, at))
}

/// The `N` bytes at `at`, or zeros where `b` is too short for them.
#[inline(always)]
pub(crate) fn get_bytes<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    match at.checked_add(N) {
        Some(end) if end <= b.len() => <[u8; N]>::try_from(&b[at..end]).unwrap_or([0; N]),
        _ => [0; N],
    }
}

/// Writes the byte at `at`; nothing past the end of `b`.
#[inline(always)]
pub(crate) fn set8(b: &mut [u8], at: usize, value: u8) {
    if at < b.len() {
        b[at] = value;
    }
}

/// Writes the big-endian 16-bit field at `at`; nothing where `b` is too short for it.
#[inline(always)]
pub(crate) fn set16(b: &mut [u8], at: usize, value: u16) {
    set_bytes(b, at, value.to_be_bytes());
}

/// Writes the big-endian 32-bit field at `at`; nothing where `b` is too short for it.
#[inline(always)]
pub(crate) fn set32(b: &mut [u8], at: usize, value: u32) {
    set_bytes(b, at, value.to_be_bytes());
}

/// Writes `N` bytes at `at`; nothing where `b` is too short for them.
#[inline(always)]
pub(crate) fn set_bytes<const N: usize>(b: &mut [u8], at: usize, value: [u8; N]) {
    if let Some(end) = at.checked_add(N).filter(|&end| end <= b.len()) {
        b[at..end].copy_from_slice(&value);
    }
}
