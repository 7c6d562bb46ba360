//! The engine's I/O boundary: a [`Device`] lends received frames to the engine and takes
//! them back, sent, handed to the kernel, or released. Backends (TUN, AF_XDP) implement it;
//! [`memory::MemoryDevice`] implements it in memory for tests.
//!
//! Layer: I/O. Ownership: a backend owns its frame buffers (a [`frame::FramePool`] over a
//! [`frame::FrameMemory`]); the engine holds a [`Frame`] only between the device's `recv` and
//! one of `send`, `to_kernel` or `release`, each of which consumes it. Frames carry the
//! lifetime of their memory, so no frame outlives it. Nothing on this path allocates: batches
//! are preallocated ([`Batch::new`]) and frames are reused chunk by chunk.

pub mod afxdp;
pub mod frame;
pub mod huge_pages;
pub mod memory;
pub mod prefetch;
pub mod tun;

use std::io;
use std::time::Duration;

pub use crate::packet::Medium;
pub use frame::{Batch, Frame, FrameMemory, FramePool, CHUNK_SIZE, HEADROOM};

/// What a device carries and how it likes to be driven.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// The framing of the frames it delivers and accepts.
    pub medium: Medium,
    /// Largest IP packet it carries.
    pub mtu: usize,
    /// Free bytes in front of every received frame (room to grow an ICMP error in place).
    pub headroom: usize,
    /// Most frames one `recv` delivers.
    pub batch_size: usize,
}

/// One counter of one queue of a device (an AF_XDP socket's `received`, say), for
/// `fwdctl counters`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueCounter {
    /// The plan's interface id.
    pub iface: u8,
    pub queue: u32,
    pub name: &'static str,
    pub value: u64,
}

/// A source and sink of frames whose buffers live in memory `'m`.
pub trait Device<'m> {
    fn capabilities(&self) -> Capabilities;

    /// Receives up to `rx.spare()` frames into `rx`. Returns the number received (0 when
    /// none is waiting).
    fn recv(&mut self, rx: &mut Batch<'m>) -> io::Result<usize>;

    /// Sends every frame of `frames` out of its `iface`, leaving `frames` empty: what the
    /// queue takes is sent, the rest goes back to the device's pool. Returns how many were
    /// sent; the caller counts the others as dropped on a full queue.
    fn send(&mut self, frames: &mut Batch<'m>) -> io::Result<usize>;

    /// The kernel sink: hands every frame of `frames` to the kernel's own stack, as if it had
    /// arrived on its `iface` (traffic for the box itself, main-table routing), leaving
    /// `frames` empty. Returns how many the kernel took; the caller counts the others.
    fn to_kernel(&mut self, frames: &mut Batch<'m>) -> usize;

    /// Takes back frames the engine is done with (dropped ones), leaving `frames` empty.
    fn release(&mut self, frames: &mut Batch<'m>);

    /// Sleeps until a frame may be waiting or `timeout` passes. Call it only after a `recv`
    /// that found nothing to take (readiness may be edge-triggered).
    fn wait(&mut self, timeout: Duration) -> io::Result<()>;

    /// The largest IP packet interface `iface` carries, where the device knows and fwd must
    /// check it (None: no limit in fwd; over TUN the kernel checks as it forwards).
    fn interface_mtu(&self, _iface: u8) -> Option<u16> {
        None
    }

    /// Appends the device's own counters per queue (none by default). Called about once a
    /// second, off the packet path: it may make system calls.
    fn queue_counters(&self, _out: &mut Vec<QueueCounter>) {}
}
