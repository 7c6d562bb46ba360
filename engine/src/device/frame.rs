//! Frame buffers: memory a backend owns and lends to the engine one frame at a time.
//!
//! Layer: the I/O layer (this file holds the `unsafe` that hands out chunk slices).
//!
//! - [`FrameMemory`] is one page-aligned anonymous mapping cut into equal chunks (a UMEM, for
//!   AF_XDP: the kernel copies frames into it and out of it). It never moves and is unmapped
//!   when dropped, after every frame borrowed from it (frames carry its lifetime).
//! - [`Frame`] is the handle of one chunk: while the engine holds it, nobody else reads or
//!   writes that chunk. It is not `Clone`; it is created only by the one owner of the memory
//!   (a [`FramePool`]) and goes back to it by value. Its data sits after some headroom, so a
//!   frame can grow at its front (an ICMP error in front of the packet it quotes) without
//!   moving the packet.
//! - [`FramePool`] is the owner: it claims a memory once (a second claim is refused), keeps
//!   the free chunks, and turns chunks into frames and back. A backend keeps its pool; the
//!   AF_XDP backend also lends chunks to the kernel (fill and TX rings) through
//!   [`FramePool::to_kernel`] and takes them back through [`FramePool::from_kernel`].
//! - [`Batch`] is a fixed-capacity list of frames: it never grows past the capacity it was
//!   made with, so filling it never allocates.
//!
//! A frame's life: taken from its pool (or received from the kernel) into a receive batch,
//! rewritten in place by the pipeline, then moved into a transmit batch and consumed by the
//! device's `send` (sent, or put back into its pool when the queue is full); a dropped frame
//! goes back through the device's `release`. A frame dropped on the floor instead is lost to
//! its pool until the pool is rebuilt (not unsafe, only a leak): the engine never does that,
//! and the tests check that every frame of a poll comes back.

use std::fmt;
use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};

/// Bytes kept free in front of a received packet: room for a frame to grow at its front. An
/// ICMP error needs 28 (its IP and ICMP headers go before the quoted packet).
pub const HEADROOM: usize = 64;

/// Chunk size: a 1500-byte MTU packet with its Ethernet header after [`HEADROOM`], and room
/// to spare (AF_XDP takes chunks of 2048 or 4096 bytes).
pub const CHUNK_SIZE: usize = 2048;

/// Page-aligned memory cut into `chunks` chunks of `chunk_size` bytes.
pub struct FrameMemory {
    base: NonNull<u8>,
    chunk_size: usize,
    chunks: usize,
    headroom: usize,
    claimed: AtomicBool,
}

// SAFETY: the memory is plain bytes; every access goes through a `Frame` (one chunk, owned by
// one holder) or through the kernel (chunks it was given). Nothing ties it to a thread.
#[allow(unsafe_code)]
unsafe impl Send for FrameMemory {}
// SAFETY: `&FrameMemory` only gives out frames through the pool that claimed it (the claim is
// atomic), and reads its own immutable fields.
#[allow(unsafe_code)]
unsafe impl Sync for FrameMemory {}

impl fmt::Debug for FrameMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameMemory")
            .field("chunks", &self.chunks)
            .field("chunk_size", &self.chunk_size)
            .field("headroom", &self.headroom)
            .finish_non_exhaustive()
    }
}

impl FrameMemory {
    /// Maps `chunks` chunks of `chunk_size` bytes (a power of two from 2048 to 4096, as
    /// AF_XDP's aligned mode takes), each frame's data starting after `headroom` bytes.
    pub fn new(chunks: usize, chunk_size: usize, headroom: usize) -> io::Result<FrameMemory> {
        let bad = |what: String| Err(io::Error::new(io::ErrorKind::InvalidInput, what));
        if !(2048..=4096).contains(&chunk_size) || !chunk_size.is_power_of_two() {
            return bad(format!("chunk size {chunk_size}: 2048 or 4096"));
        }
        if chunks == 0 || chunks > u32::MAX as usize {
            return bad(format!("{chunks} chunks"));
        }
        if headroom > chunk_size / 2 {
            return bad(format!("headroom {headroom} in a {chunk_size}-byte chunk"));
        }
        let Some(len) = chunks.checked_mul(chunk_size) else {
            return bad(format!("{chunks} chunks of {chunk_size} bytes"));
        };
        Ok(FrameMemory {
            base: map_anonymous(len)?,
            chunk_size,
            chunks,
            headroom,
            claimed: AtomicBool::new(false),
        })
    }

    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    pub fn chunks(&self) -> usize {
        self.chunks
    }

    pub fn headroom(&self) -> usize {
        self.headroom
    }

    /// Bytes mapped.
    pub fn len(&self) -> usize {
        self.chunks * self.chunk_size
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The mapping's start, for registering it with the kernel (`XDP_UMEM_REG`).
    pub fn base(&self) -> *mut u8 {
        self.base.as_ptr()
    }

    /// The offset of `frame`'s chunk in this memory, if the frame is of this memory.
    fn chunk_of(&self, frame: &Frame<'_>) -> Option<usize> {
        let offset = (frame.chunk.as_ptr() as usize).checked_sub(self.base.as_ptr() as usize)?;
        let index = offset / self.chunk_size;
        (index < self.chunks && offset % self.chunk_size == 0).then_some(index)
    }

    /// The frame of chunk `index`, its data at `start..start + len` of the chunk.
    ///
    /// # Safety
    /// The caller owns chunk `index` exclusively: no other frame of it exists, and the kernel
    /// does not hold it (it is on no fill or TX ring). `index < self.chunks`.
    #[allow(unsafe_code)]
    unsafe fn frame(&self, index: usize, start: usize, len: usize, iface: u8) -> Frame<'_> {
        // SAFETY: `index < chunks` (caller), so the chunk lies inside the mapping, which lives
        // as long as `&self`; the caller owns the chunk exclusively, so this is the only
        // reference to its bytes.
        let chunk = unsafe {
            std::slice::from_raw_parts_mut(
                self.base.as_ptr().add(index * self.chunk_size),
                self.chunk_size,
            )
        };
        let mut frame = Frame {
            chunk,
            start: 0,
            len: 0,
            home: self.headroom as u16,
            iface,
        };
        if !frame.set_span(start, len) {
            frame.set_span(self.headroom, 0);
        }
        frame
    }
}

impl Drop for FrameMemory {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // SAFETY: the mapping was made by `map_anonymous` with this length; every frame
        // and every pool borrows `self`, so none is alive, nor any device that owned a pool
        // (an AF_XDP device closes its sockets when dropped; pages the kernel still pins
        // stay its own until it releases them, whatever becomes of the mapping).
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.len());
        }
    }
}

/// An anonymous private read-write mapping of `len` bytes, zero-filled.
#[allow(unsafe_code)]
fn map_anonymous(len: usize) -> io::Result<NonNull<u8>> {
    // SAFETY: a fresh anonymous mapping at an address of the kernel's choice touches no
    // existing memory.
    let address = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if address == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    NonNull::new(address.cast()).ok_or_else(|| io::Error::other("mmap returned null"))
}

/// One chunk of a [`FrameMemory`], lent to whoever holds this handle: the frame's bytes,
/// where they start in the chunk, and the interface the frame arrived on or leaves by.
pub struct Frame<'m> {
    chunk: &'m mut [u8],
    start: u16,
    len: u16,
    /// Where received data starts (the memory's headroom).
    home: u16,
    /// Interface the frame arrived on (an index into the plan's interfaces); set to the
    /// egress interface when the frame is forwarded.
    pub iface: u8,
}

impl fmt::Debug for Frame<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Frame")
            .field("iface", &self.iface)
            .field("start", &self.start)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl<'m> Frame<'m> {
    /// The frame's bytes.
    #[inline]
    pub fn data(&self) -> &[u8] {
        let start = usize::from(self.start);
        self.chunk
            .get(start..start + usize::from(self.len))
            .unwrap_or(&[])
    }

    /// The frame's bytes, mutable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        let start = usize::from(self.start);
        self.chunk
            .get_mut(start..start + usize::from(self.len))
            .unwrap_or(&mut [])
    }

    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Free bytes in front of the data.
    pub fn headroom(&self) -> usize {
        usize::from(self.start)
    }

    /// The whole chunk and where the data lies in it (start, length): for building a packet
    /// in place that grows at either end. Apply the new extent with
    /// [`set_span`](Self::set_span).
    pub fn room_mut(&mut self) -> (&mut [u8], usize, usize) {
        (
            &mut *self.chunk,
            usize::from(self.start),
            usize::from(self.len),
        )
    }

    /// Sets where the data lies in the chunk; false (and the frame unchanged) if that is not
    /// inside the chunk.
    pub fn set_span(&mut self, start: usize, len: usize) -> bool {
        match (u16::try_from(start), u16::try_from(len)) {
            (Ok(s), Ok(l)) if start.saturating_add(len) <= self.chunk.len() => {
                self.start = s;
                self.len = l;
                true
            }
            _ => false,
        }
    }

    /// Sets the length in use, clamped to the room after the start.
    pub fn set_len(&mut self, len: usize) {
        let room = self.chunk.len() - usize::from(self.start);
        self.len = len.min(room) as u16;
    }

    /// The room for receiving a frame: the data moves back to the headroom, and the bytes
    /// from there to the chunk's end are returned (set the length received with
    /// [`set_len`](Self::set_len)).
    pub fn receive_room(&mut self) -> &mut [u8] {
        self.start = self.home;
        self.len = 0;
        self.chunk
            .get_mut(usize::from(self.home)..)
            .unwrap_or(&mut [])
    }

    /// Copies `bytes` in after the headroom, as received on `iface`; false (and the frame
    /// unchanged) if they do not fit.
    pub fn fill(&mut self, bytes: &[u8], iface: u8) -> bool {
        let home = usize::from(self.home);
        let Some(dst) = self.chunk.get_mut(home..home + bytes.len()) else {
            return false;
        };
        dst.copy_from_slice(bytes);
        self.start = self.home;
        self.len = bytes.len() as u16;
        self.iface = iface;
        true
    }
}

/// The one owner of a [`FrameMemory`]'s chunks: the free ones, and the conversions between
/// chunks and frames.
pub struct FramePool<'m> {
    memory: &'m FrameMemory,
    free: Vec<u32>,
}

impl fmt::Debug for FramePool<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FramePool")
            .field("memory", self.memory)
            .field("free", &self.free.len())
            .finish()
    }
}

impl<'m> FramePool<'m> {
    /// Claims `memory`, every chunk free. Refused if the memory was claimed before: one
    /// memory has one owner, which is what makes each frame the only handle of its chunk.
    pub fn new(memory: &'m FrameMemory) -> io::Result<FramePool<'m>> {
        if memory.claimed.swap(true, Ordering::AcqRel) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "frame memory already has an owner",
            ));
        }
        Ok(FramePool {
            memory,
            free: (0..memory.chunks as u32).rev().collect(),
        })
    }

    pub fn memory(&self) -> &'m FrameMemory {
        self.memory
    }

    /// Free chunks.
    pub fn available(&self) -> usize {
        self.free.len()
    }

    /// Chunks out of the pool: held as frames, or lent to the kernel.
    pub fn outstanding(&self) -> usize {
        self.memory.chunks - self.free.len()
    }

    /// A free chunk as an empty frame (data at the headroom), if any is free.
    #[inline]
    #[allow(unsafe_code)]
    pub fn take(&mut self) -> Option<Frame<'m>> {
        let index = self.free.pop()? as usize;
        // SAFETY: the index was on the free list, so no frame of it exists and the kernel
        // does not hold it; it came from `0..chunks`.
        Some(unsafe { self.memory.frame(index, self.memory.headroom, 0, 0) })
    }

    /// Takes a frame back. A frame of another memory is refused and returned.
    #[inline]
    pub fn put(&mut self, frame: Frame<'m>) -> Result<(), Frame<'m>> {
        match self.memory.chunk_of(&frame) {
            Some(index) => {
                self.free.push(index as u32);
                Ok(())
            }
            None => Err(frame),
        }
    }

    /// Lends a frame's chunk to the kernel: returns its data's address as an offset into the
    /// memory and its length (an AF_XDP descriptor). The chunk stays out of the pool until it
    /// comes back through [`from_kernel`](Self::from_kernel). A frame of another memory is
    /// refused and returned.
    pub fn to_kernel(&self, frame: Frame<'m>) -> Result<(u64, u32), Frame<'m>> {
        match self.memory.chunk_of(&frame) {
            Some(index) => Ok((
                (index * self.memory.chunk_size + frame.headroom()) as u64,
                u32::from(frame.len),
            )),
            None => Err(frame),
        }
    }

    /// A free chunk lent to the kernel as an empty buffer (for a fill ring): its address.
    pub fn lend_free(&mut self) -> Option<u64> {
        let index = self.free.pop()? as u64;
        Some(index * self.memory.chunk_size as u64)
    }

    /// Takes back a chunk the kernel returns (an RX or completion descriptor: `address` is an
    /// offset into the memory, possibly past the chunk's start) as a frame of `len` bytes at
    /// that address, received on `iface`. `None` for an address outside the memory or an
    /// extent past its chunk.
    ///
    /// # Safety
    /// The kernel held this chunk (it was lent with [`to_kernel`](Self::to_kernel) or
    /// [`lend_free`](Self::lend_free)) and has returned it: it is nobody else's now.
    #[allow(unsafe_code)]
    pub unsafe fn from_kernel(&self, address: u64, len: u32, iface: u8) -> Option<Frame<'m>> {
        let address = usize::try_from(address).ok()?;
        let index = address / self.memory.chunk_size;
        let start = address % self.memory.chunk_size;
        if index >= self.memory.chunks || start + len as usize > self.memory.chunk_size {
            return None;
        }
        // SAFETY: `index < chunks`; the caller guarantees the kernel gave the chunk back and
        // nothing else holds it.
        Some(unsafe { self.memory.frame(index, start, len as usize, iface) })
    }

    /// Returns a chunk the kernel gave back, as a free chunk.
    ///
    /// # Safety
    /// As for [`from_kernel`](Self::from_kernel).
    #[allow(unsafe_code)]
    pub unsafe fn free_from_kernel(&mut self, address: u64) -> bool {
        let index = address / self.memory.chunk_size as u64;
        if index >= self.memory.chunks as u64 {
            return false;
        }
        self.free.push(index as u32);
        true
    }
}

/// Frames of one memory in a list that never grows past the capacity it was made with.
#[derive(Debug)]
pub struct Batch<'m> {
    frames: Vec<Frame<'m>>,
}

impl<'m> Batch<'m> {
    pub fn new(capacity: usize) -> Batch<'m> {
        Batch {
            frames: Vec::with_capacity(capacity),
        }
    }

    pub fn capacity(&self) -> usize {
        self.frames.capacity()
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Room for this many more frames.
    pub fn spare(&self) -> usize {
        self.frames.capacity() - self.frames.len()
    }

    /// Adds a frame; a full batch gives it back.
    #[inline]
    pub fn push(&mut self, frame: Frame<'m>) -> Result<(), Frame<'m>> {
        if self.frames.len() == self.frames.capacity() {
            return Err(frame);
        }
        self.frames.push(frame);
        Ok(())
    }

    /// Takes the last frame out.
    pub fn pop(&mut self) -> Option<Frame<'m>> {
        self.frames.pop()
    }

    pub fn frames(&self) -> &[Frame<'m>] {
        &self.frames
    }

    pub fn frames_mut(&mut self) -> &mut [Frame<'m>] {
        &mut self.frames
    }

    /// Takes every frame out, in order.
    pub fn drain(&mut self) -> std::vec::Drain<'_, Frame<'m>> {
        self.frames.drain(..)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_lends_each_chunk_once_and_takes_it_back() {
        let memory = FrameMemory::new(4, CHUNK_SIZE, HEADROOM).unwrap();
        let mut pool = FramePool::new(&memory).unwrap();
        assert!(FramePool::new(&memory).is_err(), "one owner");
        let mut frames: Vec<Frame<'_>> = std::iter::from_fn(|| pool.take()).collect();
        assert_eq!(frames.len(), 4);
        assert_eq!(pool.outstanding(), 4);
        // distinct chunks: writing one leaves the others alone
        for (i, f) in frames.iter_mut().enumerate() {
            assert!(f.fill(&[i as u8; 100], 1));
        }
        for (i, f) in frames.iter().enumerate() {
            assert!(f.data().iter().all(|&b| b == i as u8));
            assert_eq!((f.headroom(), f.len(), f.iface), (HEADROOM, 100, 1));
        }
        for f in frames {
            pool.put(f).unwrap();
        }
        assert_eq!(pool.available(), 4);
    }

    #[test]
    fn a_foreign_frame_is_refused() {
        let a = FrameMemory::new(1, CHUNK_SIZE, HEADROOM).unwrap();
        let b = FrameMemory::new(1, CHUNK_SIZE, HEADROOM).unwrap();
        let mut pa = FramePool::new(&a).unwrap();
        let mut pb = FramePool::new(&b).unwrap();
        let fa = pa.take().unwrap();
        let fa = pb.put(fa).unwrap_err();
        assert!(pb.to_kernel(fa).is_err());
    }

    #[test]
    fn spans_stay_inside_the_chunk() {
        let memory = FrameMemory::new(1, CHUNK_SIZE, HEADROOM).unwrap();
        let mut pool = FramePool::new(&memory).unwrap();
        let mut f = pool.take().unwrap();
        assert!(!f.fill(&[0; CHUNK_SIZE], 0), "past the chunk's end");
        assert!(f.fill(&[9; 40], 2));
        assert!(f.set_span(HEADROOM - 28, 68), "grows into the headroom");
        assert_eq!(f.data()[28..], [9; 40]);
        assert!(!f.set_span(CHUNK_SIZE - 10, 11));
        assert_eq!(f.len(), 68, "unchanged");
        f.set_len(usize::MAX);
        assert_eq!(f.len(), CHUNK_SIZE - (HEADROOM - 28));
        let room = f.receive_room();
        assert_eq!(room.len(), CHUNK_SIZE - HEADROOM);
        assert_eq!((f.headroom(), f.len()), (HEADROOM, 0));
    }

    #[test]
    fn kernel_descriptors_round_trip() {
        let memory = FrameMemory::new(2, CHUNK_SIZE, HEADROOM).unwrap();
        let mut pool = FramePool::new(&memory).unwrap();
        let mut f = pool.take().unwrap();
        assert!(f.fill(&[7; 60], 3));
        let (address, len) = pool.to_kernel(f).unwrap();
        assert_eq!(len, 60);
        assert_eq!(address as usize % CHUNK_SIZE, HEADROOM);
        // SAFETY: the chunk was lent above and nothing else holds it.
        #[allow(unsafe_code)]
        let back = unsafe { pool.from_kernel(address, len, 4) }.unwrap();
        assert_eq!((back.data(), back.iface), (&[7u8; 60][..], 4));
        // SAFETY: an address outside the memory is refused before any chunk is touched.
        #[allow(unsafe_code)]
        let outside = unsafe { pool.from_kernel(2 * CHUNK_SIZE as u64, 1, 0) };
        assert!(outside.is_none());
        pool.put(back).unwrap();
        assert_eq!(pool.available(), 2);
    }

    #[test]
    fn a_batch_never_grows() {
        let memory = FrameMemory::new(3, CHUNK_SIZE, HEADROOM).unwrap();
        let mut pool = FramePool::new(&memory).unwrap();
        let mut batch = Batch::new(2);
        assert!(batch.push(pool.take().unwrap()).is_ok());
        assert!(batch.push(pool.take().unwrap()).is_ok());
        let third = batch.push(pool.take().unwrap()).unwrap_err();
        assert_eq!((batch.len(), batch.spare()), (2, 0));
        pool.put(third).unwrap();
        pool.put(batch.pop().unwrap()).unwrap();
        assert_eq!((batch.len(), pool.available()), (1, 2));
        for f in batch.drain() {
            pool.put(f).unwrap();
        }
        assert_eq!(pool.available(), 3);
    }
}
