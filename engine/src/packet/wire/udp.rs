//! The UDP header (RFC 768) as a checked view.
//!
//! `new_checked` holds a buffer to the 8-byte header and a length field of at least 8. The
//! length may exceed the buffer: in the first fragment of a datagram it covers fragments
//! still to come, so whether the whole datagram is here ([`UdpDatagram::is_whole`]) is the
//! caller's question.

use super::{get16, set16, set32, Error};

pub const HEADER_LEN: usize = 8;
/// Offset of the checksum field.
pub const CHECKSUM: usize = 6;

const SRC_PORT: usize = 0;
const DST_PORT: usize = 2;
const LENGTH: usize = 4;

/// A UDP header (and what follows of its datagram) at the start of a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpDatagram<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpDatagram<T> {
    /// The view over `buffer`, checked as the module describes.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<UdpDatagram<T>, Error> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if usize::from(get16(b, LENGTH)) < HEADER_LEN {
            return Err(Error::Malformed);
        }
        Ok(UdpDatagram { buffer })
    }

    /// The view over `buffer` without a check, for a buffer an earlier check covered.
    #[inline(always)]
    pub fn new_unchecked(buffer: T) -> UdpDatagram<T> {
        UdpDatagram { buffer }
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn src_port(&self) -> u16 {
        get16(self.buffer.as_ref(), SRC_PORT)
    }

    #[inline]
    pub fn dst_port(&self) -> u16 {
        get16(self.buffer.as_ref(), DST_PORT)
    }

    /// The length field: header and data of the whole datagram.
    #[inline]
    pub fn length(&self) -> usize {
        usize::from(get16(self.buffer.as_ref(), LENGTH))
    }

    /// Whether the buffer holds the datagram the length field describes.
    #[inline]
    pub fn is_whole(&self) -> bool {
        self.length() <= self.buffer.as_ref().len()
    }

    /// The checksum field; 0 means none was computed (IPv4 only).
    #[inline]
    pub fn checksum(&self) -> u16 {
        get16(self.buffer.as_ref(), CHECKSUM)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpDatagram<T> {
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
