//! Huge pages behind the connection table: a request to the kernel, kept in the I/O layer
//! because it is a system call.
//!
//! The table's slabs and indexes are tens to hundreds of MiB read at random: with 4 KiB pages
//! nearly every access misses the TLB as well as the cache. [`back_with_huge_pages`] asks the
//! kernel to back them with 2 MiB pages (`MADV_HUGEPAGE`, for pages faulted in later, then
//! `MADV_COLLAPSE`, which replaces the pages already there, synchronously). It needs
//! transparent huge pages set to `always` or `madvise` (`/sys/kernel/mm/transparent_hugepage/
//! enabled`); otherwise, or on kernels without `MADV_COLLAPSE` (before 6.1), the table simply
//! stays on small pages. Nothing depends on the outcome. The collapse copies the table's pages
//! once, when the table is built: 0.1 to 1.5 s for the benches' 2M-session table on this VM,
//! depending on how much memory the kernel has to compact first (the daemon builds its table
//! once, before its workers start; a reload keeps it).

/// 2 MiB: the huge page size on x86_64 and aarch64 (4 KiB base pages).
const HUGE_PAGE: usize = 2 << 20;

/// `MADV_COLLAPSE` (Linux 6.1), which the `libc` crate may not name on every target.
const MADV_COLLAPSE: libc::c_int = 25;

/// Asks for huge pages behind `regions` (address, length): regions less than a huge page
/// apart are merged into one span (whatever lies between them is this process's memory too,
/// and the request never changes contents), and each span's whole huge pages are advised.
/// Returns the bytes for which the kernel accepted the collapse (0 where it is unsupported).
pub fn back_with_huge_pages(regions: &[(usize, usize)]) -> usize {
    let mut spans: Vec<(usize, usize)> = regions
        .iter()
        .filter(|&&(_, len)| len > 0)
        .map(|&(start, len)| (start, start.saturating_add(len)))
        .collect();
    spans.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::with_capacity(spans.len());
    for (start, end) in spans {
        match merged.last_mut() {
            Some(last) if start <= last.1.saturating_add(HUGE_PAGE) => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    merged
        .into_iter()
        .map(|(start, end)| {
            // whole huge pages inside the span
            let first = start.div_ceil(HUGE_PAGE).saturating_mul(HUGE_PAGE);
            let last = end / HUGE_PAGE * HUGE_PAGE;
            if last > first {
                advise(first, last - first)
            } else {
                0
            }
        })
        .sum()
}

/// `madvise(MADV_HUGEPAGE)` then `madvise(MADV_COLLAPSE)` on `[start, start + len)`, both
/// huge-page aligned. Returns `len` if the collapse was accepted, else 0.
#[allow(unsafe_code)]
fn advise(start: usize, len: usize) -> usize {
    let address = std::ptr::without_provenance_mut::<libc::c_void>(start);
    // SAFETY: MADV_HUGEPAGE and MADV_COLLAPSE only change how the kernel backs the pages of
    // the range (small or huge pages); they never change contents, protection or mapping, so
    // no memory the program can reach changes. Any range is allowed: unmapped parts make the
    // call fail with ENOMEM, which is ignored (the advice is a hint).
    let hinted = unsafe { libc::madvise(address, len, libc::MADV_HUGEPAGE) };
    // SAFETY: as above.
    let collapsed = unsafe { libc::madvise(address, len, MADV_COLLAPSE) };
    if hinted == 0 && collapsed == 0 {
        len
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advises_whole_huge_pages_of_merged_spans_and_survives_refusals() {
        // 8 MiB of our own memory, in two regions with a small gap: one span
        let buffer = vec![7u8; 8 << 20];
        let base = buffer.as_ptr() as usize;
        let regions = [(base, 3 << 20), (base + (3 << 20) + 4096, (5 << 20) - 4096)];
        let advised = back_with_huge_pages(&regions);
        // what the kernel accepts depends on its settings; never more than the whole pages
        assert!(advised <= 8 << 20, "{advised}");
        assert_eq!(advised % HUGE_PAGE, 0);
        // contents untouched
        assert!(buffer.iter().all(|&b| b == 7));
        // nothing to advise
        assert_eq!(back_with_huge_pages(&[]), 0);
        assert_eq!(back_with_huge_pages(&[(base, 4096)]), 0);
    }
}
