//! Table-wide event counters: relaxed `AtomicU64`s bumped on the slow path and on rare
//! packet-path events (expiry on hit, RST, recycling), read as a [`TableStats`] snapshot.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of the table's event counters (monotonic since creation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableStats {
    /// Sessions created.
    pub created: u64,
    /// Sessions removed because their idle timeout passed (by `expire`, or found expired by a
    /// lookup or `create`).
    pub expired: u64,
    /// Sessions evicted to make room (`OnFull::EvictOldest`).
    pub evicted: u64,
    /// Creations refused because the session's shard was full (`OnFull::Refuse`), or, far less
    /// likely, because the internal endpoint needed a new mapping and its mapping shard was
    /// full.
    pub refused_full: u64,
    /// Creations refused because the WAN had no free port.
    pub ports_exhausted: u64,
    /// TCP sessions moved to Closed by a RST.
    pub closed_by_rst: u64,
    /// TCP sessions in TimeWait/Closed removed by a new SYN so that a fresh one is created.
    pub recycled: u64,
    /// In-place rebuilds of a session shard's or a mapping shard's index (clearing hashbrown
    /// tombstones; each costs one pass over the shard, on the slow path).
    pub index_rebuilds: u64,
}

/// The live counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) created: AtomicU64,
    pub(crate) expired: AtomicU64,
    pub(crate) evicted: AtomicU64,
    pub(crate) refused_full: AtomicU64,
    pub(crate) ports_exhausted: AtomicU64,
    pub(crate) closed_by_rst: AtomicU64,
    pub(crate) recycled: AtomicU64,
    pub(crate) index_rebuilds: AtomicU64,
}

/// Adds one to a counter.
#[inline]
pub(crate) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Adds `n` to a counter.
#[inline]
pub(crate) fn add(c: &AtomicU64, n: u64) {
    if n > 0 {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

impl Counters {
    pub(crate) fn snapshot(&self) -> TableStats {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        TableStats {
            created: r(&self.created),
            expired: r(&self.expired),
            evicted: r(&self.evicted),
            refused_full: r(&self.refused_full),
            ports_exhausted: r(&self.ports_exhausted),
            closed_by_rst: r(&self.closed_by_rst),
            recycled: r(&self.recycled),
            index_rebuilds: r(&self.index_rebuilds),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_reads_each_counter() {
        let c = Counters::default();
        bump(&c.created);
        add(&c.expired, 3);
        add(&c.evicted, 0);
        bump(&c.refused_full);
        bump(&c.ports_exhausted);
        bump(&c.ports_exhausted);
        bump(&c.closed_by_rst);
        bump(&c.recycled);
        add(&c.index_rebuilds, 2);
        assert_eq!(
            c.snapshot(),
            TableStats {
                created: 1,
                expired: 3,
                evicted: 0,
                refused_full: 1,
                ports_exhausted: 2,
                closed_by_rst: 1,
                recycled: 1,
                index_rebuilds: 2,
            }
        );
    }
}
