//! CPU cache prefetch: the one hardware hint the pipeline gives, kept in the I/O layer because
//! issuing it takes `unsafe`.
//!
//! The pipeline parses a chunk of frames, then asks the connection table for the addresses its
//! lookups will read (`ConnTable::prefetch_sessions`, `ConnTable::prefetch_create`) and hands
//! them to [`prefetch`], so that the cache misses of a whole chunk overlap. A plain load would
//! do the same only a few packets deep: a load holds up retirement until its data arrives,
//! a prefetch does not. (The index entries that name the sessions are plain loads in a short
//! loop, which the CPU overlaps by itself; prefetching them first measured slower.)

/// Asks the CPU to bring the cache line holding `address` into its caches. A hint only: any
/// address, even dangling or null, is allowed; nothing is read into the program and nothing
/// can fault. A no-op on other architectures than x86_64.
#[inline]
#[allow(unsafe_code)]
pub fn prefetch(address: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` is `unsafe` only for its target feature, SSE, which every x86_64
    // CPU has (it is in the x86_64 baseline the crate is built for). PREFETCHT0 never faults
    // and never reads or writes memory as far as the program can tell, whatever the address
    // (Intel SDM, PREFETCHh: "does not affect program behavior"), so no address is unsafe.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(address.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}
