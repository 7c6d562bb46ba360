//! The IPv6 header (RFC 8200) as a checked view, and the walk over its extension headers to
//! the upper layer.
//!
//! `new_checked` holds a buffer to: the 40-byte fixed header, version 6, and a payload length
//! that the buffer holds after the header (bytes past it, an Ethernet frame's padding, are not
//! the packet's: [`Ipv6Packet::payload`] ends at the payload length). A payload length of 0
//! before a hop-by-hop header marks a jumbogram (RFC 2675), which fwd does not forward: the
//! check refuses it as malformed. The extension headers are walked on request
//! ([`Ipv6Packet::upper_layer`]).
//!
//! The walk is written here rather than taken from etherparse's `Ipv6ExtensionsSlice`, which
//! goes on past a fragment header whose offset is not zero (reading fragment data as headers),
//! puts no bound on the number of headers, and does not tell where the fragment header is.

use std::net::Ipv6Addr;

use super::{get16, get32, get8, get_bytes, ip_proto, set8, set_bytes, Error};

/// The fixed header's length; extension headers, if any, follow it inside the payload.
pub const HEADER_LEN: usize = 40;

/// The most extension headers [`Ipv6Packet::upper_layer`] walks before it gives up on a packet
/// as malformed, so that the walk is bounded.
pub const MAX_EXTENSION_HEADERS: usize = 8;

mod field {
    pub const VERSION_TC_FLOW: usize = 0;
    pub const PAYLOAD_LEN: usize = 4;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: usize = 8;
    pub const DST: usize = 24;
}

/// Offsets of the header's fields, for code that computes checksum deltas over them or
/// rewrites them in place.
pub use field::{DST, HOP_LIMIT, NEXT_HEADER, PAYLOAD_LEN, SRC};

/// The fragment header's length (RFC 8200 4.5); it has no length field.
const FRAGMENT_HEADER_LEN: usize = 8;
const FRAGMENT_OFFSET_SHIFT: u32 = 3;
const MORE_FRAGMENTS: u16 = 0x0001;

/// An IPv6 packet at the start of a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Packet<T> {
    buffer: T,
}

/// A fragment header (RFC 8200 4.5) met on the way to the upper layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragmentHeader {
    /// The fragment's offset in the original packet's fragmentable part, in 8-byte units.
    pub offset: u16,
    /// Whether more fragments follow (the M flag).
    pub more: bool,
    /// The identification shared by the original packet's fragments.
    pub ident: u32,
    /// Where the fragment header starts, counted from the start of the IPv6 packet.
    pub at: usize,
}

/// Where the extension headers end: the first header that is not one of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpperLayer {
    /// Its protocol number: TCP, UDP, ICMPv6, ESP, No Next Header, or any other that is not
    /// an extension header fwd walks over; after a fragment header with a non-zero offset, the
    /// fragment header's next header.
    pub protocol: u8,
    /// Where it starts, counted from the start of the IPv6 packet. After a fragment header
    /// with a non-zero offset, where the fragment's data starts: no upper-layer header is
    /// there.
    pub offset: usize,
    /// The fragment header on the way, if there was one.
    pub fragment: Option<FragmentHeader>,
}

impl FragmentHeader {
    /// Whether the packet holds the start of the original packet, and so its upper-layer
    /// header (offset 0; with or without more fragments to come).
    #[inline]
    pub fn is_first(&self) -> bool {
        self.offset == 0
    }
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// The view over `buffer`, checked as the module describes.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Ipv6Packet<T>, Error> {
        let b = buffer.as_ref();
        let Some(fixed) = b.first_chunk::<HEADER_LEN>() else {
            return Err(Error::Truncated);
        };
        if fixed[field::VERSION_TC_FLOW] >> 4 != 6 {
            return Err(Error::Malformed);
        }
        let payload_len = usize::from(u16::from_be_bytes([
            fixed[field::PAYLOAD_LEN],
            fixed[field::PAYLOAD_LEN + 1],
        ]));
        if payload_len == 0 && fixed[field::NEXT_HEADER] == ip_proto::HOP_BY_HOP {
            return Err(Error::Malformed);
        }
        if HEADER_LEN + payload_len > b.len() {
            return Err(Error::Truncated);
        }
        Ok(Ipv6Packet { buffer })
    }

    /// The view over the head of a packet as an ICMPv6 error quotes it: version 6 and the
    /// fixed header, which the buffer holds; the payload length is not held to the buffer
    /// (the quote ends where the error's sender cut it, RFC 4443 2.4 (c)), and
    /// [`payload`](Self::payload) ends at whichever comes first.
    #[inline]
    pub fn new_checked_quote(buffer: T) -> Result<Ipv6Packet<T>, Error> {
        let b = buffer.as_ref();
        let Some(fixed) = b.first_chunk::<HEADER_LEN>() else {
            return Err(Error::Truncated);
        };
        if fixed[field::VERSION_TC_FLOW] >> 4 != 6 {
            return Err(Error::Malformed);
        }
        Ok(Ipv6Packet { buffer })
    }

    /// The view over `buffer` without a check, for a buffer an earlier check covered (the
    /// rewrite of a parsed packet). Accessors stay panic-free; on a buffer too short they
    /// read zeros.
    #[inline(always)]
    pub fn new_unchecked(buffer: T) -> Ipv6Packet<T> {
        Ipv6Packet { buffer }
    }

    #[inline(always)]
    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The traffic class: DSCP in the top six bits, ECN in the bottom two.
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        (get32(self.b(), field::VERSION_TC_FLOW) >> 20) as u8
    }

    /// The 20-bit flow label.
    #[inline]
    pub fn flow_label(&self) -> u32 {
        get32(self.b(), field::VERSION_TC_FLOW) & 0x000f_ffff
    }

    /// The payload length: the bytes after the fixed header, extension headers included.
    #[inline]
    pub fn payload_len(&self) -> usize {
        usize::from(get16(self.b(), field::PAYLOAD_LEN))
    }

    /// The header that follows the fixed one: an extension header or the upper layer's.
    #[inline]
    pub fn next_header(&self) -> u8 {
        get8(self.b(), field::NEXT_HEADER)
    }

    #[inline]
    pub fn hop_limit(&self) -> u8 {
        get8(self.b(), field::HOP_LIMIT)
    }

    #[inline]
    pub fn src(&self) -> Ipv6Addr {
        Ipv6Addr::from(get_bytes::<16>(self.b(), field::SRC))
    }

    #[inline]
    pub fn dst(&self) -> Ipv6Addr {
        Ipv6Addr::from(get_bytes::<16>(self.b(), field::DST))
    }

    /// Total length: the fixed header and the payload, without any padding after it.
    #[inline]
    pub fn total_len(&self) -> usize {
        HEADER_LEN + self.payload_len()
    }

    /// The fixed header's 40 bytes.
    #[inline]
    pub fn header(&self) -> &[u8] {
        let b = self.b();
        b.get(..HEADER_LEN).unwrap_or(b)
    }

    /// The bytes between the fixed header and the total length (or the end of a quote):
    /// extension headers, then the upper layer.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let b = self.b();
        b.get(HEADER_LEN..self.total_len().min(b.len()))
            .unwrap_or_default()
    }

    /// Walks the extension headers from the fixed header to the upper layer.
    ///
    /// Walked over: hop-by-hop options (only as the first header: Malformed elsewhere),
    /// routing and destination options (these three `(len + 1) * 8` bytes), fragment (8 bytes,
    /// its reserved bits ignored; a second one is Malformed) and authentication
    /// (`(len + 2) * 4` bytes, RFC 4302; a length of 0, too short for its fixed fields, is
    /// Malformed). Any other header is the upper layer. After a fragment header with a
    /// non-zero offset the walk stops there, as [`UpperLayer`] describes. A header that does
    /// not fit the payload (or, in a quote, what the quote holds of it) is Truncated; more
    /// than [`MAX_EXTENSION_HEADERS`] extension headers, Malformed.
    pub fn upper_layer(&self) -> Result<UpperLayer, Error> {
        // a checked packet holds its total length; a quote (`new_checked_quote`) is walked as
        // far as it goes
        let b = self.b();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let packet = b.get(..self.total_len().min(b.len())).unwrap_or(b);
        let mut protocol = self.next_header();
        if protocol == ip_proto::HOP_BY_HOP && self.payload_len() == 0 {
            return Err(Error::Malformed);
        }
        let mut offset = HEADER_LEN;
        let mut fragment = None;
        let mut count = 0;
        loop {
            let len = match protocol {
                ip_proto::HOP_BY_HOP if count > 0 => return Err(Error::Malformed),
                ip_proto::HOP_BY_HOP | ip_proto::IPV6_ROUTING | ip_proto::IPV6_DEST_OPTS => {
                    (usize::from(get8(packet, offset + 1)) + 1) * 8
                }
                ip_proto::IPV6_FRAGMENT => FRAGMENT_HEADER_LEN,
                ip_proto::AH => match get8(packet, offset + 1) {
                    // Past the end of the packet the length reads 0: truncated, not malformed.
                    0 if offset + 2 <= packet.len() => return Err(Error::Malformed),
                    len => (usize::from(len) + 2) * 4,
                },
                _ => {
                    return Ok(UpperLayer {
                        protocol,
                        offset,
                        fragment,
                    })
                }
            };
            if count == MAX_EXTENSION_HEADERS {
                return Err(Error::Malformed);
            }
            if offset + len > packet.len() {
                return Err(Error::Truncated);
            }
            count += 1;
            let next = get8(packet, offset);
            if protocol == ip_proto::IPV6_FRAGMENT {
                if fragment.is_some() {
                    return Err(Error::Malformed);
                }
                let word = get16(packet, offset + 2);
                let header = FragmentHeader {
                    offset: word >> FRAGMENT_OFFSET_SHIFT,
                    more: word & MORE_FRAGMENTS != 0,
                    ident: get32(packet, offset + 4),
                    at: offset,
                };
                fragment = Some(header);
                if !header.is_first() {
                    return Ok(UpperLayer {
                        protocol: next,
                        offset: offset + len,
                        fragment,
                    });
                }
            }
            protocol = next;
            offset += len;
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    #[inline(always)]
    fn b_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    #[inline]
    pub fn set_hop_limit(&mut self, hop_limit: u8) {
        set8(self.b_mut(), field::HOP_LIMIT, hop_limit);
    }

    #[inline]
    pub fn set_src(&mut self, addr: Ipv6Addr) {
        set_bytes(self.b_mut(), field::SRC, addr.octets());
    }

    #[inline]
    pub fn set_dst(&mut self, addr: Ipv6Addr) {
        set_bytes(self.b_mut(), field::DST, addr.octets());
    }

    /// The bytes between the fixed header and the total length.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = HEADER_LEN..self.total_len();
        let b = self.b_mut();
        if b.get(range.clone()).is_none() {
            return &mut [];
        }
        &mut b[range]
    }
}
