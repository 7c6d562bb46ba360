//! The four AF_XDP rings (fill, completion, RX, TX): single-producer single-consumer queues
//! in memory shared with the kernel, mapped from the socket (`mmap` at the ring's page
//! offset), as `Documentation/networking/af_xdp.rst` describes.
//!
//! Each ring has a producer and a consumer index (free-running `u32`s), a flags word (the
//! kernel's `XDP_RING_NEED_WAKEUP`) and a power-of-two array of entries. fwd produces on the
//! fill and TX rings and consumes the RX and completion rings; the kernel does the opposite.
//! An index is published with a release store after the entries it covers are written, and
//! the other side's index is read with an acquire load before the entries it covers are
//! read: that is the whole protocol. Each side caches the other's index and reads it again
//! only when the cached one says the ring is full (producer) or empty (consumer).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

/// A mapped ring of entries `T` (`u64` addresses for fill and completion, `xdp_desc` for RX
/// and TX). Unmapped when dropped.
#[derive(Debug)]
pub struct Ring<T> {
    map: NonNull<u8>,
    map_len: usize,
    producer: NonNull<AtomicU32>,
    consumer: NonNull<AtomicU32>,
    flags: NonNull<AtomicU32>,
    entries: NonNull<T>,
    mask: u32,
    size: u32,
    /// Producer rings: our producer index (published by `submit`) and the kernel's consumer
    /// index as last read. Consumer rings: the kernel's producer index as last read and our
    /// consumer index (published by `release`).
    cached_producer: u32,
    cached_consumer: u32,
}

// SAFETY: the ring is memory shared with the kernel, accessed through raw pointers with
// atomic indices; nothing ties it to the thread that mapped it. It is not `Sync`: one thread
// drives each side.
#[allow(unsafe_code)]
unsafe impl<T: Send> Send for Ring<T> {}

/// Where the parts of one ring lie in its mapping (from `XDP_MMAP_OFFSETS`).
#[derive(Clone, Copy, Debug)]
pub struct Offsets {
    pub producer: u64,
    pub consumer: u64,
    pub desc: u64,
    pub flags: u64,
}

impl From<libc::xdp_ring_offset> for Offsets {
    fn from(o: libc::xdp_ring_offset) -> Offsets {
        Offsets {
            producer: o.producer,
            consumer: o.consumer,
            desc: o.desc,
            flags: o.flags,
        }
    }
}

impl<T: Copy> Ring<T> {
    /// Maps the ring of `size` entries (a power of two, as set with its setsockopt) that the
    /// socket `fd` offers at page offset `page_offset`.
    #[allow(unsafe_code)]
    pub fn map(
        fd: BorrowedFd<'_>,
        page_offset: u64,
        size: u32,
        offsets: Offsets,
    ) -> io::Result<Ring<T>> {
        if !size.is_power_of_two() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("ring size {size} is not a power of two"),
            ));
        }
        let map_len = usize::try_from(offsets.desc).unwrap_or(usize::MAX)
            + size as usize * std::mem::size_of::<T>();
        let word = |offset: u64| usize::try_from(offset).ok().filter(|&o| o + 4 <= map_len);
        let (Some(producer), Some(consumer), Some(flags)) = (
            word(offsets.producer),
            word(offsets.consumer),
            word(offsets.flags),
        ) else {
            return Err(io::Error::other("ring offsets outside the ring"));
        };
        let offset = libc::off_t::try_from(page_offset)
            .map_err(|_| io::Error::other("ring page offset out of range"))?;
        // SAFETY: a shared mapping of the socket's ring at the kernel's documented offset;
        // the kernel checks the length against the ring it set up. No existing memory is
        // touched.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                offset,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = map.cast::<u8>();
        // SAFETY: every offset was checked to lie inside the mapping (the entries end at
        // `map_len` by construction); the kernel aligns the indices and entries.
        let at = |offset: usize| unsafe { NonNull::new_unchecked(base.add(offset)) };
        let desc = usize::try_from(offsets.desc).unwrap_or(0);
        let mut ring = Ring {
            map: at(0),
            map_len,
            producer: at(producer).cast(),
            consumer: at(consumer).cast(),
            flags: at(flags).cast(),
            entries: at(desc).cast(),
            mask: size - 1,
            size,
            cached_producer: 0,
            cached_consumer: 0,
        };
        ring.cached_producer = ring.producer().load(Ordering::Acquire);
        ring.cached_consumer = ring.consumer().load(Ordering::Acquire);
        Ok(ring)
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: the index lies inside the live mapping (checked in `map`), is 4-aligned,
        // and is only ever accessed atomically, by us and by the kernel.
        #[allow(unsafe_code)]
        unsafe {
            self.producer.as_ref()
        }
    }

    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as for `producer`.
        #[allow(unsafe_code)]
        unsafe {
            self.consumer.as_ref()
        }
    }

    /// Whether the kernel asks to be woken (`XDP_RING_NEED_WAKEUP`) to process this ring.
    pub fn needs_wakeup(&self) -> bool {
        // SAFETY: as for `producer`.
        #[allow(unsafe_code)]
        let flags = unsafe { self.flags.as_ref() };
        flags.load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }

    pub fn size(&self) -> u32 {
        self.size
    }

    // --- producer side (fill, TX) ---

    /// Free entries, reading the kernel's consumer index again only if fewer than `wanted`
    /// seem free.
    pub fn free(&mut self, wanted: u32) -> u32 {
        let free = self.size - self.cached_producer.wrapping_sub(self.cached_consumer);
        if free >= wanted {
            return free;
        }
        self.cached_consumer = self.consumer().load(Ordering::Acquire);
        self.size - self.cached_producer.wrapping_sub(self.cached_consumer)
    }

    /// Writes `entry` at the next free slot without publishing it; false when the ring is
    /// full (check [`free`](Self::free) first for a batch).
    #[allow(unsafe_code)]
    pub fn push(&mut self, entry: T) -> bool {
        if self.free(1) == 0 {
            return false;
        }
        let slot = (self.cached_producer & self.mask) as usize;
        // SAFETY: `slot < size`, so the entry lies inside the mapped array; the slot is free
        // (between the kernel's consumer and our producer index), so the kernel does not read
        // it until `submit` publishes it.
        unsafe { self.entries.as_ptr().add(slot).write_volatile(entry) };
        self.cached_producer = self.cached_producer.wrapping_add(1);
        true
    }

    /// Publishes every entry pushed so far to the kernel.
    pub fn submit(&mut self) {
        self.producer()
            .store(self.cached_producer, Ordering::Release);
    }

    /// Entries published and not yet consumed by the kernel (producer side).
    pub fn in_flight(&mut self) -> u32 {
        self.cached_consumer = self.consumer().load(Ordering::Acquire);
        self.cached_producer.wrapping_sub(self.cached_consumer)
    }

    // --- consumer side (RX, completion) ---

    /// Entries ready to read, reading the kernel's producer index again if none seem ready.
    pub fn ready(&mut self) -> u32 {
        let ready = self.cached_producer.wrapping_sub(self.cached_consumer);
        if ready > 0 {
            return ready;
        }
        self.cached_producer = self.producer().load(Ordering::Acquire);
        self.cached_producer.wrapping_sub(self.cached_consumer)
    }

    /// Reads the next ready entry (not yet given back to the kernel), if any.
    #[allow(unsafe_code)]
    pub fn pop(&mut self) -> Option<T> {
        if self.ready() == 0 {
            return None;
        }
        let slot = (self.cached_consumer & self.mask) as usize;
        // SAFETY: `slot < size`; the entry is between our consumer and the kernel's producer
        // index, so the kernel wrote it before publishing (acquire load in `ready`) and does
        // not write it again until `release` gives the slot back.
        let entry = unsafe { self.entries.as_ptr().add(slot).read_volatile() };
        self.cached_consumer = self.cached_consumer.wrapping_add(1);
        Some(entry)
    }

    /// Gives the slots of every entry popped so far back to the kernel.
    pub fn release(&mut self) {
        self.consumer()
            .store(self.cached_consumer, Ordering::Release);
    }
}

impl<T> Drop for Ring<T> {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // SAFETY: the mapping was made in `map` with this length and nothing borrows it past
        // the ring.
        unsafe {
            libc::munmap(self.map.as_ptr().cast(), self.map_len);
        }
    }
}
