//! The TCP header (RFC 9293) as a checked view.
//!
//! `new_checked` holds a buffer to the 20-byte fixed header and a data offset of at least
//! five words that the buffer holds (options included). The buffer is the segment: its bytes
//! after the header are the payload.

use etherparse::{TcpOptionElement, TcpOptionsIterator};

use super::{get16, get32, get8, set16, set32, Error};

pub const MIN_HEADER_LEN: usize = 20;
/// Offset of the checksum field.
pub const CHECKSUM: usize = 16;

/// Flag bits of the flags byte.
pub mod flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
}

const SRC_PORT: usize = 0;
const DST_PORT: usize = 2;
const SEQ: usize = 4;
const ACK: usize = 8;
const DATA_OFFSET: usize = 12;
const FLAGS: usize = 13;
const WINDOW: usize = 14;

/// A TCP segment at the start of a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpSegment<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpSegment<T> {
    /// The view over `buffer`, checked as the module describes.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<TcpSegment<T>, Error> {
        let b = buffer.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        let header_len = usize::from(get8(b, DATA_OFFSET) >> 4) * 4;
        if header_len < MIN_HEADER_LEN {
            return Err(Error::Malformed);
        }
        if header_len > b.len() {
            return Err(Error::Truncated);
        }
        Ok(TcpSegment { buffer })
    }

    /// The view over `buffer` without a check, for a buffer an earlier check covered.
    #[inline(always)]
    pub fn new_unchecked(buffer: T) -> TcpSegment<T> {
        TcpSegment { buffer }
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline(always)]
    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    #[inline]
    pub fn src_port(&self) -> u16 {
        get16(self.b(), SRC_PORT)
    }

    #[inline]
    pub fn dst_port(&self) -> u16 {
        get16(self.b(), DST_PORT)
    }

    #[inline]
    pub fn seq(&self) -> u32 {
        get32(self.b(), SEQ)
    }

    #[inline]
    pub fn ack(&self) -> u32 {
        get32(self.b(), ACK)
    }

    /// Header length in bytes, options included (20 to 60).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(get8(self.b(), DATA_OFFSET) >> 4) * 4
    }

    /// The flags byte (CWR, ECE, URG, ACK, PSH, RST, SYN, FIN; see [`flags`]).
    #[inline]
    pub fn flags(&self) -> u8 {
        get8(self.b(), FLAGS)
    }

    #[inline]
    pub fn window(&self) -> u16 {
        get16(self.b(), WINDOW)
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        get16(self.b(), CHECKSUM)
    }

    /// The options: the header's bytes after the fixed 20.
    #[inline]
    pub fn options(&self) -> &[u8] {
        self.b()
            .get(MIN_HEADER_LEN..self.header_len())
            .unwrap_or_default()
    }

    /// The bytes after the header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        self.b().get(self.header_len()..).unwrap_or_default()
    }

    /// The window scale option's shift count (RFC 7323), if the options carry a well-formed
    /// one (read with etherparse's option iterator, which stops at a malformed option).
    pub fn window_scale(&self) -> Option<u8> {
        TcpOptionsIterator::from_slice(self.options()).find_map(|o| match o {
            Ok(TcpOptionElement::WindowScale(shift)) => Some(shift),
            _ => None,
        })
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpSegment<T> {
    /// Sets both ports at once (source, destination).
    #[inline]
    pub fn set_ports(&mut self, src: u16, dst: u16) {
        set32(
            self.buffer.as_mut(),
            SRC_PORT,
            u32::from(src) << 16 | u32::from(dst),
        );
    }

    #[inline]
    pub fn set_checksum(&mut self, sum: u16) {
        set16(self.buffer.as_mut(), CHECKSUM, sum);
    }
}
