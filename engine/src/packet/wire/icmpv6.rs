//! The ICMPv6 message (RFC 4443) as a checked view.
//!
//! `new_checked` holds a buffer to the 8 bytes every message starts with: type, code,
//! checksum and four bytes whose meaning the type gives (echo identifier and sequence number,
//! the MTU of Packet Too Big, the pointer of Parameter Problem, unused elsewhere). The buffer
//! is the whole message, up to the end of the IPv6 payload: the checksum covers all of it,
//! with the IPv6 pseudo-header (RFC 8200 8.1), and is verified on request
//! ([`Icmpv6Message::verify_checksum`]).

use std::net::Ipv6Addr;

use super::{get16, get32, get8, ip_proto, set16, Error};
use crate::packet::checksum;

/// The length of the part every message has; the data follows it.
pub const HEADER_LEN: usize = 8;

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const ECHO_IDENT: usize = 4;
    pub const ECHO_SEQ: usize = 6;
    pub const MTU: usize = 4;
    pub const POINTER: usize = 4;
}

/// Offsets of the message's fields, for code that computes checksum deltas over them.
pub use field::{CHECKSUM, ECHO_IDENT};

/// ICMPv6 message types (RFC 4443, and RFC 4861 for neighbor discovery) fwd tells apart.
pub mod msg_type {
    pub const DST_UNREACHABLE: u8 = 1;
    pub const PACKET_TOO_BIG: u8 = 2;
    pub const TIME_EXCEEDED: u8 = 3;
    pub const PARAM_PROBLEM: u8 = 4;
    pub const ECHO_REQUEST: u8 = 128;
    pub const ECHO_REPLY: u8 = 129;
    pub const ROUTER_SOLICIT: u8 = 133;
    pub const ROUTER_ADVERT: u8 = 134;
    pub const NEIGHBOR_SOLICIT: u8 = 135;
    pub const NEIGHBOR_ADVERT: u8 = 136;
    pub const REDIRECT: u8 = 137;

    /// Whether `t` is one of neighbor discovery's messages (RFC 4861: router solicitation
    /// and advertisement, neighbor solicitation and advertisement, redirect), which are
    /// link-local and never forwarded.
    #[inline]
    pub fn is_neighbor_discovery(t: u8) -> bool {
        (ROUTER_SOLICIT..=REDIRECT).contains(&t)
    }
}

/// An ICMPv6 message filling a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Icmpv6Message<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv6Message<T> {
    /// The view over `buffer`, checked as the module describes.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Icmpv6Message<T>, Error> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Icmpv6Message { buffer })
    }

    /// The view over `buffer` without a check, for a buffer an earlier check covered.
    /// Accessors stay panic-free; on a buffer too short they read zeros.
    #[inline(always)]
    pub fn new_unchecked(buffer: T) -> Icmpv6Message<T> {
        Icmpv6Message { buffer }
    }

    #[inline(always)]
    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The message type (see [`msg_type`]).
    #[inline]
    pub fn msg_type(&self) -> u8 {
        get8(self.b(), field::TYPE)
    }

    #[inline]
    pub fn code(&self) -> u8 {
        get8(self.b(), field::CODE)
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        get16(self.b(), field::CHECKSUM)
    }

    /// The identifier of an echo request or reply.
    #[inline]
    pub fn echo_ident(&self) -> u16 {
        get16(self.b(), field::ECHO_IDENT)
    }

    /// The sequence number of an echo request or reply.
    #[inline]
    pub fn echo_seq(&self) -> u16 {
        get16(self.b(), field::ECHO_SEQ)
    }

    /// The MTU of the next hop, in a Packet Too Big message.
    #[inline]
    pub fn mtu(&self) -> u32 {
        get32(self.b(), field::MTU)
    }

    /// The offset in the quoted packet of the field in error, in a Parameter Problem
    /// message.
    #[inline]
    pub fn pointer(&self) -> u32 {
        get32(self.b(), field::POINTER)
    }

    /// Whether this is an error message (types 0 to 127), whose data quotes the packet that
    /// caused it; the others (128 to 255) are informational.
    #[inline]
    pub fn is_error(&self) -> bool {
        self.msg_type() < 128
    }

    /// The bytes after the first eight: for an error, as much of the packet that caused it
    /// as fits; for an echo, its data.
    #[inline]
    pub fn data(&self) -> &[u8] {
        self.b().get(HEADER_LEN..).unwrap_or_default()
    }

    /// Whether the checksum is right for a message sent from `src` to `dst`, over the
    /// pseudo-header and the whole buffer.
    #[inline]
    pub fn verify_checksum(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        checksum::l4_verify_sum_v6(src.octets(), dst.octets(), ip_proto::ICMPV6, self.b()) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv6Message<T> {
    #[inline(always)]
    fn b_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    #[inline]
    pub fn set_echo_ident(&mut self, ident: u16) {
        set16(self.b_mut(), field::ECHO_IDENT, ident);
    }

    #[inline]
    pub fn set_checksum(&mut self, sum: u16) {
        set16(self.b_mut(), field::CHECKSUM, sum);
    }

    /// Computes the checksum afresh for a message sent from `src` to `dst` and stores it.
    pub fn fill_checksum(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        self.set_checksum(0);
        let sum =
            checksum::l4_verify_sum_v6(src.octets(), dst.octets(), ip_proto::ICMPV6, self.b());
        self.set_checksum(sum);
    }

    /// The bytes after the first eight.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        self.b_mut().get_mut(HEADER_LEN..).unwrap_or_default()
    }
}
