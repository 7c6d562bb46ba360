//! The IPv4 header (RFC 791) as a checked view.
//!
//! `new_checked` holds a buffer to: version 4, a header length of at least 20 bytes that the
//! buffer holds, a total length of at least the header's that the buffer holds (bytes past
//! it, an Ethernet frame's padding, are not the packet's: [`Ipv4Packet::payload`] ends at the
//! total length). The header checksum is verified on request ([`Ipv4Packet::verify_checksum`]).

use std::net::Ipv4Addr;

use super::{get16, get8, get_bytes, set16, set8, set_bytes, Error};
use crate::packet::checksum;

/// The fixed header's length; options may follow it, up to 60 bytes in all.
pub const MIN_HEADER_LEN: usize = 20;

mod field {
    pub const VERSION_IHL: usize = 0;
    pub const TOTAL_LEN: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLAGS_FRAG: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC: usize = 12;
    pub const DST: usize = 16;
}

/// Offsets of the header's fields, for code that computes checksum deltas over them.
pub use field::{CHECKSUM, DST, SRC, TTL};

const DONT_FRAGMENT: u16 = 0x4000;
const MORE_FRAGMENTS: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// An IPv4 packet at the start of a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Packet<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// The view over `buffer`, checked as the module describes.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Ipv4Packet<T>, Error> {
        let b = buffer.as_ref();
        let Some(fixed) = b.first_chunk::<MIN_HEADER_LEN>() else {
            return Err(Error::Truncated);
        };
        if fixed[field::VERSION_IHL] >> 4 != 4 {
            return Err(Error::Malformed);
        }
        let header_len = usize::from(fixed[field::VERSION_IHL] & 0x0f) * 4;
        let total_len = usize::from(u16::from_be_bytes([
            fixed[field::TOTAL_LEN],
            fixed[field::TOTAL_LEN + 1],
        ]));
        if header_len < MIN_HEADER_LEN || total_len < header_len {
            return Err(Error::Malformed);
        }
        if total_len > b.len() {
            return Err(Error::Truncated);
        }
        Ok(Ipv4Packet { buffer })
    }

    /// The view over the head of a packet as an ICMP error quotes it: version 4 and the whole
    /// header, which the buffer holds; the total length is not held to the buffer (the quote
    /// ends where the error's sender cut it), and [`payload`](Self::payload) ends at
    /// whichever comes first.
    #[inline]
    pub fn new_checked_quote(buffer: T) -> Result<Ipv4Packet<T>, Error> {
        let b = buffer.as_ref();
        let Some(&first) = b.first() else {
            return Err(Error::Truncated);
        };
        let header_len = usize::from(first & 0x0f) * 4;
        if first >> 4 != 4 || header_len < MIN_HEADER_LEN {
            return Err(Error::Malformed);
        }
        if header_len > b.len() {
            return Err(Error::Truncated);
        }
        Ok(Ipv4Packet { buffer })
    }

    /// The view over `buffer` without a check, for a buffer an earlier check covered (the
    /// rewrite of a parsed packet). Accessors stay panic-free; on a buffer too short they
    /// read zeros.
    #[inline(always)]
    pub fn new_unchecked(buffer: T) -> Ipv4Packet<T> {
        Ipv4Packet { buffer }
    }

    #[inline(always)]
    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The version field (4 in a checked view).
    #[inline]
    pub fn version(&self) -> u8 {
        get8(self.b(), field::VERSION_IHL) >> 4
    }

    /// Header length in bytes (20 to 60).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(get8(self.b(), field::VERSION_IHL) & 0x0f) * 4
    }

    /// Total length: header and payload, without any padding after it.
    #[inline]
    pub fn total_len(&self) -> usize {
        usize::from(get16(self.b(), field::TOTAL_LEN))
    }

    #[inline]
    pub fn ident(&self) -> u16 {
        get16(self.b(), field::IDENT)
    }

    #[inline]
    pub fn dont_fragment(&self) -> bool {
        get16(self.b(), field::FLAGS_FRAG) & DONT_FRAGMENT != 0
    }

    #[inline]
    pub fn more_fragments(&self) -> bool {
        get16(self.b(), field::FLAGS_FRAG) & MORE_FRAGMENTS != 0
    }

    /// The fragment offset in 8-byte units.
    #[inline]
    pub fn fragment_offset(&self) -> u16 {
        get16(self.b(), field::FLAGS_FRAG) & OFFSET_MASK
    }

    /// Whether this is a fragment of a larger datagram (an offset, or more to come).
    #[inline]
    pub fn is_fragment(&self) -> bool {
        get16(self.b(), field::FLAGS_FRAG) & (MORE_FRAGMENTS | OFFSET_MASK) != 0
    }

    #[inline]
    pub fn ttl(&self) -> u8 {
        get8(self.b(), field::TTL)
    }

    #[inline]
    pub fn protocol(&self) -> u8 {
        get8(self.b(), field::PROTOCOL)
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        get16(self.b(), field::CHECKSUM)
    }

    #[inline]
    pub fn src(&self) -> Ipv4Addr {
        Ipv4Addr::from(get_bytes::<4>(self.b(), field::SRC))
    }

    #[inline]
    pub fn dst(&self) -> Ipv4Addr {
        Ipv4Addr::from(get_bytes::<4>(self.b(), field::DST))
    }

    /// The header, options included.
    #[inline]
    pub fn header(&self) -> &[u8] {
        let b = self.b();
        b.get(..self.header_len()).unwrap_or(b)
    }

    /// The bytes between the header and the total length (or the end of a quote).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let b = self.b();
        b.get(self.header_len()..self.total_len().min(b.len()))
            .unwrap_or_default()
    }

    /// Whether the header checksum is right.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::ipv4_header_is_valid(self.header())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    #[inline(always)]
    fn b_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    #[inline]
    pub fn set_ttl(&mut self, ttl: u8) {
        set8(self.b_mut(), field::TTL, ttl);
    }

    #[inline]
    pub fn set_checksum(&mut self, sum: u16) {
        set16(self.b_mut(), field::CHECKSUM, sum);
    }

    #[inline]
    pub fn set_src(&mut self, addr: Ipv4Addr) {
        set_bytes(self.b_mut(), field::SRC, addr.octets());
    }

    #[inline]
    pub fn set_dst(&mut self, addr: Ipv4Addr) {
        set_bytes(self.b_mut(), field::DST, addr.octets());
    }

    /// Computes the header checksum afresh and stores it.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = checksum::full(self.header());
        self.set_checksum(sum);
    }

    /// The fixed header's 20 bytes, for a rewrite that changes several fields and their
    /// checksum at once (`None` where the buffer is shorter, which a checked one is not).
    #[inline(always)]
    pub fn fixed_header_mut(&mut self) -> Option<&mut [u8; MIN_HEADER_LEN]> {
        self.b_mut().first_chunk_mut::<MIN_HEADER_LEN>()
    }

    /// The bytes between the header and the total length.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = self.header_len()..self.total_len();
        self.b_mut().get_mut(range).unwrap_or_default()
    }
}
