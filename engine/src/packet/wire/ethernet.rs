//! The Ethernet II header as a checked view: destination and source MAC, EtherType. No
//! VLAN tags: a tagged frame shows its tag's EtherType (0x8100) and fwd leaves it alone.

use super::{get16, get_bytes, set_bytes, Error};

pub const HEADER_LEN: usize = 14;

/// EtherTypes fwd tells apart.
pub mod ether_type {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const IPV6: u16 = 0x86dd;
}

const DST: usize = 0;
const SRC: usize = 6;
const ETHER_TYPE: usize = 12;

/// An Ethernet II frame at the start of a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EthernetFrame<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// The view over `buffer`, which must hold the 14-byte header.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<EthernetFrame<T>, Error> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(EthernetFrame { buffer })
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn dst_mac(&self) -> [u8; 6] {
        get_bytes(self.buffer.as_ref(), DST)
    }

    #[inline]
    pub fn src_mac(&self) -> [u8; 6] {
        get_bytes(self.buffer.as_ref(), SRC)
    }

    #[inline]
    pub fn ether_type(&self) -> u16 {
        get16(self.buffer.as_ref(), ETHER_TYPE)
    }

    /// The bytes after the header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(HEADER_LEN..).unwrap_or_default()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    #[inline]
    pub fn set_dst_mac(&mut self, mac: [u8; 6]) {
        set_bytes(self.buffer.as_mut(), DST, mac);
    }

    #[inline]
    pub fn set_src_mac(&mut self, mac: [u8; 6]) {
        set_bytes(self.buffer.as_mut(), SRC, mac);
    }

    /// Points the frame back at the neighbour that sent it: swaps the two addresses.
    #[inline]
    pub fn swap_macs(&mut self) {
        let (dst, src) = (self.dst_mac(), self.src_mac());
        self.set_dst_mac(src);
        self.set_src_mac(dst);
    }
}
