//! The engine's I/O boundary: a [`Device`] moves batches of frames in and out. Backends
//! (TUN, AF_XDP) implement it; [`memory::MemoryDevice`] implements it in memory for tests.
//!
//! Frames are preallocated once per worker ([`Batch::new`]) and reused for every batch: the
//! packet path never allocates.

pub mod huge_pages;
pub mod memory;
pub mod prefetch;
pub mod tun;

use std::io;

pub use crate::packet::Medium;

/// Room per frame: a 1500-byte MTU packet plus link header, with space for an ICMP error
/// quoting it (which grows the packet by 28 bytes).
pub const FRAME_CAPACITY: usize = 2048;

/// One received or to-be-sent frame: a fixed buffer, the bytes in use, and the interface it
/// arrived on (an index into the plan's interfaces).
#[derive(Debug)]
pub struct Frame {
    buf: Box<[u8]>,
    len: usize,
    /// Interface the frame arrived on.
    pub iface: u8,
}

impl Frame {
    pub fn new(capacity: usize) -> Frame {
        Frame {
            buf: vec![0u8; capacity].into_boxed_slice(),
            len: 0,
            iface: 0,
        }
    }

    /// The frame's bytes.
    pub fn data(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The frame's bytes, mutable.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[..self.len]
    }

    /// The whole buffer (for building a larger packet in place) and the length in use.
    pub fn buffer_mut(&mut self) -> (&mut [u8], usize) {
        (&mut self.buf, self.len)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Sets the length in use, clamped to the capacity.
    pub fn set_len(&mut self, len: usize) {
        self.len = len.min(self.buf.len());
    }

    /// Copies `bytes` in; false (and the frame unchanged) if they do not fit.
    pub fn fill(&mut self, bytes: &[u8], iface: u8) -> bool {
        let Some(dst) = self.buf.get_mut(..bytes.len()) else {
            return false;
        };
        dst.copy_from_slice(bytes);
        self.len = bytes.len();
        self.iface = iface;
        true
    }
}

/// A fixed set of frames; `len` of them hold received data.
#[derive(Debug)]
pub struct Batch {
    frames: Vec<Frame>,
    len: usize,
}

impl Batch {
    pub fn new(size: usize, frame_capacity: usize) -> Batch {
        Batch {
            frames: (0..size).map(|_| Frame::new(frame_capacity)).collect(),
            len: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.frames.len()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Marks the first `len` frames as holding data (clamped to the capacity).
    pub fn set_len(&mut self, len: usize) {
        self.len = len.min(self.frames.len());
    }

    /// The frames in use.
    pub fn frames(&self) -> &[Frame] {
        &self.frames[..self.len]
    }

    pub fn frames_mut(&mut self) -> &mut [Frame] {
        &mut self.frames[..self.len]
    }

    /// Every frame buffer, for a device to receive into.
    pub fn all_frames_mut(&mut self) -> &mut [Frame] {
        &mut self.frames
    }
}

/// A source and sink of frames.
pub trait Device {
    /// The framing of the frames this device delivers and accepts.
    fn medium(&self) -> Medium;
    /// Largest IP packet the device carries.
    fn mtu(&self) -> usize;
    /// Receives up to `batch.capacity()` frames into `batch` and sets its length. Returns the
    /// number received (0 when none is waiting).
    fn recv(&mut self, batch: &mut Batch) -> io::Result<usize>;
    /// Sends the frames of `batch` at `indices`. Returns how many were accepted; the caller
    /// counts the rest as dropped on a full queue.
    fn send(&mut self, batch: &Batch, indices: &[u16]) -> io::Result<usize>;
}
