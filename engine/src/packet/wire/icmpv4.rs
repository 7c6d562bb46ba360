//! The ICMP header (RFC 792) as a checked view: type, code, checksum and the four bytes
//! after them (an echo's identifier and sequence number, a "fragmentation needed" error's
//! next-hop MTU), then the data (an error's quoted packet).
//!
//! `new_checked` holds a buffer to the 8-byte header; the buffer is the whole message.

use super::{get16, get8, set16, Error};
use crate::packet::checksum;

pub const HEADER_LEN: usize = 8;
/// Offset of the checksum field.
pub const CHECKSUM: usize = 2;
/// Offset of an echo's identifier.
pub const ECHO_IDENT: usize = 4;

/// Message types fwd tells apart.
pub mod msg_type {
    pub const ECHO_REPLY: u8 = 0;
    pub const DST_UNREACHABLE: u8 = 3;
    pub const ECHO_REQUEST: u8 = 8;
    pub const TIME_EXCEEDED: u8 = 11;
    pub const PARAM_PROBLEM: u8 = 12;
}

const TYPE: usize = 0;
const CODE: usize = 1;
const ECHO_SEQ: usize = 6;
const NEXT_HOP_MTU: usize = 6;

/// An ICMP message at the start of a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Icmpv4Message<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv4Message<T> {
    /// The view over `buffer`, which must hold the 8-byte header.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Icmpv4Message<T>, Error> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Icmpv4Message { buffer })
    }

    /// The view over `buffer` without a check, for a buffer an earlier check covered.
    #[inline(always)]
    pub fn new_unchecked(buffer: T) -> Icmpv4Message<T> {
        Icmpv4Message { buffer }
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn msg_type(&self) -> u8 {
        get8(self.buffer.as_ref(), TYPE)
    }

    #[inline]
    pub fn code(&self) -> u8 {
        get8(self.buffer.as_ref(), CODE)
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        get16(self.buffer.as_ref(), CHECKSUM)
    }

    /// An echo request's or reply's identifier.
    #[inline]
    pub fn echo_ident(&self) -> u16 {
        get16(self.buffer.as_ref(), ECHO_IDENT)
    }

    #[inline]
    pub fn echo_seq(&self) -> u16 {
        get16(self.buffer.as_ref(), ECHO_SEQ)
    }

    /// A "fragmentation needed" error's next-hop MTU (RFC 1191).
    #[inline]
    pub fn next_hop_mtu(&self) -> u16 {
        get16(self.buffer.as_ref(), NEXT_HOP_MTU)
    }

    /// Whether this is an echo request or reply with code 0.
    #[inline]
    pub fn is_echo(&self) -> bool {
        matches!(
            self.msg_type(),
            msg_type::ECHO_REQUEST | msg_type::ECHO_REPLY
        ) && self.code() == 0
    }

    /// Whether this is an error that quotes a packet fwd can translate: destination
    /// unreachable, time exceeded, parameter problem.
    #[inline]
    pub fn is_error(&self) -> bool {
        matches!(
            self.msg_type(),
            msg_type::DST_UNREACHABLE | msg_type::TIME_EXCEEDED | msg_type::PARAM_PROBLEM
        )
    }

    /// The bytes after the header: an error's quoted packet, an echo's data.
    #[inline]
    pub fn data(&self) -> &[u8] {
        self.buffer.as_ref().get(HEADER_LEN..).unwrap_or_default()
    }

    /// Whether the checksum over the whole message is right.
    pub fn verify_checksum(&self) -> bool {
        checksum::full(self.buffer.as_ref()) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv4Message<T> {
    #[inline]
    pub fn set_echo_ident(&mut self, ident: u16) {
        set16(self.buffer.as_mut(), ECHO_IDENT, ident);
    }

    #[inline]
    pub fn set_checksum(&mut self, sum: u16) {
        set16(self.buffer.as_mut(), CHECKSUM, sum);
    }

    /// Computes the checksum over the whole message afresh and stores it.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = checksum::full(self.buffer.as_ref());
        self.set_checksum(sum);
    }

    /// The bytes after the header.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        self.buffer
            .as_mut()
            .get_mut(HEADER_LEN..)
            .unwrap_or_default()
    }
}
