//! Table-wide event counters: relaxed `AtomicU64`s bumped on the slow path and on rare
//! packet-path events (expiry on hit, RST, recycling), read as a [`TableStats`] snapshot; and
//! the per-shard counts of live and created sessions ([`ShardCounts`]), which change with every
//! session created or removed and so are kept per shard, written without a locked instruction.

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
    /// Creations refused because the internal host had as many sessions as a host may
    /// ([`TableConfig::max_sessions_per_host`](crate::TableConfig::max_sessions_per_host)).
    pub host_session_limit: u64,
    /// Creations refused because the internal host needed another NAT port on the WAN and had
    /// as many there as a host may
    /// ([`TableConfig::max_ports_per_host`](crate::TableConfig::max_ports_per_host)).
    pub host_port_limit: u64,
    /// TCP sessions moved to Closed by a RST.
    pub closed_by_rst: u64,
    /// TCP sessions in TimeWait/Closed removed by a new SYN so that a fresh one is created.
    pub recycled: u64,
    /// Sessions removed by an outbound packet because their WAN went down
    /// ([`Lookup::Ended`](crate::Lookup::Ended)).
    pub ended_by_wan_down: u64,
    /// UDP and ICMP sessions removed by an outbound packet because a better WAN for their
    /// rule came back ([`Lookup::Recalled`](crate::Lookup::Recalled)).
    pub recalled: u64,
}

/// The live counters (sessions created are counted per shard: [`ShardCounts`]).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) expired: AtomicU64,
    pub(crate) evicted: AtomicU64,
    pub(crate) refused_full: AtomicU64,
    pub(crate) ports_exhausted: AtomicU64,
    pub(crate) host_session_limit: AtomicU64,
    pub(crate) host_port_limit: AtomicU64,
    pub(crate) closed_by_rst: AtomicU64,
    pub(crate) recycled: AtomicU64,
    pub(crate) ended_by_wan_down: AtomicU64,
    pub(crate) recalled: AtomicU64,
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

/// Adds `n` (wrapping) to a counter that only one thread at a time writes: a relaxed load and
/// store, no read-modify-write (no `lock`-prefixed instruction, which on x86 also waits for
/// every earlier store of the thread to drain).
#[inline]
fn single_writer_add(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

/// Counts of one session shard: live sessions, in all and per WAN, and sessions created. Written
/// only by the holder of that shard's lock (so a load and a store suffice), read by anyone
/// without the lock (table-wide figures are sums over the shards). On its own cache lines, so
/// workers writing different shards do not share them.
#[derive(Debug)]
#[repr(align(64))]
pub(crate) struct ShardCounts {
    live: AtomicU64,
    created: AtomicU64,
    /// Live sessions per WAN index.
    wans: Box<[AtomicU64]>,
}

impl ShardCounts {
    /// Zero counts for a table with `wans` WANs.
    pub(crate) fn new(wans: usize) -> ShardCounts {
        ShardCounts {
            live: AtomicU64::new(0),
            created: AtomicU64::new(0),
            wans: (0..wans).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// A session on `wan` was created. The caller holds the shard's lock.
    #[inline]
    pub(crate) fn inserted(&self, wan: u8) {
        single_writer_add(&self.live, 1);
        single_writer_add(&self.created, 1);
        if let Some(c) = self.wans.get(usize::from(wan)) {
            single_writer_add(c, 1);
        }
    }

    /// A session on `wan` was removed. The caller holds the shard's lock.
    #[inline]
    pub(crate) fn removed(&self, wan: u8) {
        single_writer_add(&self.live, u64::MAX);
        if let Some(c) = self.wans.get(usize::from(wan)) {
            single_writer_add(c, u64::MAX);
        }
    }

    /// Live sessions.
    pub(crate) fn live(&self) -> u64 {
        self.live.load(Ordering::Relaxed)
    }

    /// Sessions created.
    pub(crate) fn created(&self) -> u64 {
        self.created.load(Ordering::Relaxed)
    }

    /// Live sessions on WAN `wan`.
    pub(crate) fn wan(&self, wan: u8) -> u64 {
        self.wans
            .get(usize::from(wan))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

impl Counters {
    /// A snapshot, with `created` summed from the shards' [`ShardCounts`] by the caller.
    pub(crate) fn snapshot(&self, created: u64) -> TableStats {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        TableStats {
            created,
            expired: r(&self.expired),
            evicted: r(&self.evicted),
            refused_full: r(&self.refused_full),
            ports_exhausted: r(&self.ports_exhausted),
            host_session_limit: r(&self.host_session_limit),
            host_port_limit: r(&self.host_port_limit),
            closed_by_rst: r(&self.closed_by_rst),
            recycled: r(&self.recycled),
            ended_by_wan_down: r(&self.ended_by_wan_down),
            recalled: r(&self.recalled),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_counts_follow_inserts_and_removals() {
        let c = ShardCounts::new(2);
        c.inserted(1);
        c.inserted(1);
        c.inserted(0);
        c.removed(1);
        c.inserted(7); // unknown WAN: counted in all, not per WAN
        assert_eq!(
            (c.live(), c.created(), c.wan(0), c.wan(1), c.wan(7)),
            (3, 4, 1, 1, 0)
        );
    }

    #[test]
    fn snapshot_reads_each_counter() {
        let c = Counters::default();
        add(&c.expired, 3);
        add(&c.evicted, 0);
        bump(&c.refused_full);
        bump(&c.ports_exhausted);
        bump(&c.ports_exhausted);
        bump(&c.closed_by_rst);
        bump(&c.recycled);
        bump(&c.host_session_limit);
        add(&c.host_port_limit, 4);
        assert_eq!(
            c.snapshot(1),
            TableStats {
                created: 1,
                expired: 3,
                evicted: 0,
                refused_full: 1,
                ports_exhausted: 2,
                host_session_limit: 1,
                host_port_limit: 4,
                closed_by_rst: 1,
                recycled: 1,
                ended_by_wan_down: 0,
                recalled: 0,
            }
        );
    }
}
