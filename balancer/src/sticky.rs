//! The sticky table: which WAN a source address was given under a sticky
//! rule, and until when that choice holds.
//!
//! Keyed by (rule, source address). Sharded by key hash, one
//! `std::sync::Mutex` per shard; every shard's slab and index are allocated
//! in [`StickyTable::new`] and never grow, so the table holds at most
//! `capacity` entries and inserting never allocates. A full shard refuses
//! new entries (counted in [`StickyTable::full_refusals`]).
//!
//! An entry is live while `deadline > now`; each reuse moves the deadline
//! to `now + timeout`. Dead entries are ignored by lookups, overwritten in
//! place when their key is seen again, and removed by [`StickyTable::expire`],
//! which the engine calls periodically with a work budget. Deadlines are
//! kept as `u64` nanoseconds; times past ~584 years saturate.

use std::fmt;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use hashbrown::HashTable;

use crate::ids::{RuleId, WanId, WanSet};

/// One live sticky binding, as reported by [`StickyTable::get`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StickyEntry {
    /// The WAN the source is bound to.
    pub wan: WanId,
    /// The binding holds while `now < expires_at`.
    pub expires_at: Duration,
}

/// 16 bytes per entry.
#[derive(Clone, Copy, Debug)]
struct Entry {
    deadline_ns: u64,
    src: u32,
    rule: u16,
    wan: WanId,
}

#[derive(Debug)]
struct Shard {
    /// Dense: live and dead entries in `0..len`, removal swaps the last in.
    entries: Vec<Entry>,
    /// Slot numbers into `entries`, hashed by key. Allocated for twice the
    /// shard capacity so that hashbrown can always rehash in place.
    index: HashTable<u32>,
    cap: usize,
    /// Where the next `expire` pass resumes.
    cursor: usize,
}

/// Cache-line padding so that shards' locks do not share a line.
#[derive(Debug)]
#[repr(align(128))]
struct Padded(Mutex<Shard>);

/// Outcome of [`StickyTable::lookup_or_pick`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sticky {
    /// A live entry on an eligible WAN was reused (and refreshed).
    Reused(WanId),
    /// `pick` was called; `recorded` is false when the table was full.
    Picked { wan: WanId, recorded: bool },
    /// `pick` returned nothing.
    NoPick,
}

/// Bounded, sharded, preallocated map (rule, source address) → WAN.
/// `Send + Sync`; shared by all workers.
pub struct StickyTable {
    shards: Box<[Padded]>,
    hasher: ahash::RandomState,
    capacity: u32,
    refusals: AtomicU64,
    next_shard: AtomicUsize,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn lock(m: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // Nothing panics while a shard is locked; should a lock be poisoned
    // anyway, the shard's data is still consistent.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn key_hash(hasher: &ahash::RandomState, rule: u16, src: u32) -> u64 {
    hasher.hash_one((rule, src))
}

impl Shard {
    fn new(cap: usize) -> Shard {
        Shard {
            entries: Vec::with_capacity(cap),
            index: HashTable::with_capacity(cap.saturating_mul(2)),
            cap,
            cursor: 0,
        }
    }

    fn find(&self, hash: u64, rule: u16, src: u32) -> Option<usize> {
        let entries = &self.entries;
        self.index
            .find(hash, |&slot| {
                entries
                    .get(slot as usize)
                    .is_some_and(|e| e.rule == rule && e.src == src)
            })
            .map(|&slot| slot as usize)
    }

    /// Appends `e`; false when the shard is full.
    fn insert(&mut self, hasher: &ahash::RandomState, hash: u64, e: Entry) -> bool {
        let Ok(slot) = u32::try_from(self.entries.len()) else {
            return false;
        };
        if self.entries.len() >= self.cap {
            return false;
        }
        self.entries.push(e);
        let entries = &self.entries;
        self.index.insert_unique(hash, slot, |&s| {
            entries
                .get(s as usize)
                .map_or(0, |e| key_hash(hasher, e.rule, e.src))
        });
        true
    }

    fn remove_at(&mut self, hasher: &ahash::RandomState, slot: usize) {
        let Some(e) = self.entries.get(slot) else {
            return;
        };
        let h = key_hash(hasher, e.rule, e.src);
        if let Ok(found) = self.index.find_entry(h, |&s| s as usize == slot) {
            found.remove();
        }
        let last = self.entries.len() - 1;
        if slot != last {
            if let Some(l) = self.entries.get(last) {
                let lh = key_hash(hasher, l.rule, l.src);
                if let Some(s) = self.index.find_mut(lh, |&s| s as usize == last) {
                    // slot < last ≤ u32::MAX, so this fits.
                    *s = slot as u32;
                }
            }
        }
        self.entries.swap_remove(slot);
    }

    /// Examines up to `budget` entries from the cursor, removing dead ones.
    /// Returns (examined, removed).
    fn expire(
        &mut self,
        hasher: &ahash::RandomState,
        now_ns: u64,
        budget: usize,
    ) -> (usize, usize) {
        let todo = budget.min(self.entries.len());
        let (mut examined, mut removed) = (0, 0);
        let mut i = self.cursor;
        while examined < todo && !self.entries.is_empty() {
            if i >= self.entries.len() {
                i = 0;
            }
            examined += 1;
            match self.entries.get(i) {
                Some(e) if e.deadline_ns <= now_ns => {
                    // The last entry moves into `i`; look at `i` again.
                    self.remove_at(hasher, i);
                    removed += 1;
                }
                _ => i += 1,
            }
        }
        self.cursor = i;
        (examined, removed)
    }
}

impl StickyTable {
    /// A table holding at most `capacity` entries over `shards` shards
    /// (0 is taken as 1). Allocates everything up front: 16 bytes per entry
    /// plus an index of about 10 bytes per entry.
    pub fn new(capacity: u32, shards: u16, hash_seed: u64) -> StickyTable {
        let n = u32::from(shards.max(1));
        let (base, extra) = (capacity / n, capacity % n);
        let shards: Box<[Padded]> = (0..n)
            .map(|i| {
                let cap = base + u32::from(i < extra);
                Padded(Mutex::new(Shard::new(cap as usize)))
            })
            .collect();
        StickyTable {
            shards,
            hasher: ahash::RandomState::with_seeds(
                hash_seed,
                hash_seed ^ 0x243f_6a88_85a3_08d3,
                hash_seed.rotate_left(17) ^ 0x1319_8a2e_0370_7344,
                hash_seed.rotate_left(41) ^ 0xa409_3822_299f_31d0,
            ),
            capacity,
            refusals: AtomicU64::new(0),
            next_shard: AtomicUsize::new(0),
        }
    }

    fn shard(&self, hash: u64) -> Option<&Mutex<Shard>> {
        // Multiply-shift on bits 20..52: hashbrown uses the low bits for the
        // bucket and the top 7 for the tag, so shard choice stays independent.
        let n = self.shards.len() as u64;
        let i = ((hash >> 20) & 0xffff_ffff).wrapping_mul(n) >> 32;
        self.shards.get(i as usize).map(|p| &p.0)
    }

    /// Removes dead entries (`deadline ≤ now`), examining at most `budget`
    /// entries in total; successive calls resume where the last stopped and
    /// rotate over the shards. Returns how many entries were removed.
    pub fn expire(&self, now: Duration, budget: usize) -> usize {
        let n = self.shards.len();
        if budget == 0 || n == 0 {
            return 0;
        }
        let now_ns = nanos(now);
        let start = self.next_shard.fetch_add(1, Ordering::Relaxed) % n;
        let (mut left, mut removed) = (budget, 0);
        for k in 0..n {
            if left == 0 {
                break;
            }
            let Some(p) = self.shards.get((start + k) % n) else {
                continue;
            };
            let (ex, rm) = lock(&p.0).expire(&self.hasher, now_ns, left);
            left -= ex;
            removed += rm;
        }
        removed
    }

    /// Entries held, live or not yet expired away. Locks each shard in turn.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|p| lock(&p.0).entries.len()).sum()
    }

    /// Whether the table holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most entries the table can hold.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// How many times a binding could not be recorded because its shard was
    /// full.
    pub fn full_refusals(&self) -> u64 {
        self.refusals.load(Ordering::Relaxed)
    }

    /// Drops every entry (for instance after the rules changed, since keys
    /// hold rule ids). Keeps the allocations.
    pub fn clear(&self) {
        for p in self.shards.iter() {
            let mut s = lock(&p.0);
            s.entries.clear();
            s.index.clear();
            s.cursor = 0;
        }
    }

    /// The live binding of `src` under `rule` at `now`, without refreshing it.
    pub fn get(&self, rule: RuleId, src: Ipv4Addr, now: Duration) -> Option<StickyEntry> {
        let (rule, src) = (rule.0, u32::from(src));
        let h = key_hash(&self.hasher, rule, src);
        let s = lock(self.shard(h)?);
        let e = s.entries.get(s.find(h, rule, src)?)?;
        (e.deadline_ns > nanos(now)).then_some(StickyEntry {
            wan: e.wan,
            expires_at: Duration::from_nanos(e.deadline_ns),
        })
    }

    /// Under one shard lock: reuse the live binding of (`rule`, `src`) if
    /// its WAN is in `eligible` (moving its deadline to `now + timeout`),
    /// else call `pick` and record its answer (overwriting a stale binding,
    /// or inserting; a full shard is counted and records nothing).
    pub(crate) fn lookup_or_pick(
        &self,
        rule: RuleId,
        src: Ipv4Addr,
        now: Duration,
        timeout: Duration,
        eligible: WanSet,
        pick: impl FnOnce() -> Option<WanId>,
    ) -> Sticky {
        let (rule, src) = (rule.0, u32::from(src));
        let h = key_hash(&self.hasher, rule, src);
        let Some(m) = self.shard(h) else {
            return pick().map_or(Sticky::NoPick, |wan| Sticky::Picked {
                wan,
                recorded: false,
            });
        };
        let mut s = lock(m);
        let now_ns = nanos(now);
        let deadline_ns = nanos(now.saturating_add(timeout));
        if let Some(slot) = s.find(h, rule, src) {
            if let Some(e) = s.entries.get_mut(slot) {
                if e.deadline_ns > now_ns && eligible.contains(e.wan) {
                    e.deadline_ns = deadline_ns;
                    return Sticky::Reused(e.wan);
                }
                let Some(wan) = pick() else {
                    return Sticky::NoPick;
                };
                e.wan = wan;
                e.deadline_ns = deadline_ns;
                return Sticky::Picked {
                    wan,
                    recorded: true,
                };
            }
        }
        let Some(wan) = pick() else {
            return Sticky::NoPick;
        };
        let entry = Entry {
            deadline_ns,
            src,
            rule,
            wan,
        };
        let recorded = s.insert(&self.hasher, h, entry);
        if !recorded {
            self.refusals.fetch_add(1, Ordering::Relaxed);
        }
        Sticky::Picked { wan, recorded }
    }
}

impl fmt::Debug for StickyTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StickyTable")
            .field("shards", &self.shards.len())
            .field("capacity", &self.capacity)
            .field("full_refusals", &self.full_refusals())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn ip(i: u32) -> Ipv4Addr {
        Ipv4Addr::from(0x0a00_0000 + i)
    }

    fn all() -> WanSet {
        WanSet(u64::MAX)
    }

    fn bind(t: &StickyTable, i: u32, wan: u8, now: Duration, timeout: Duration) -> Sticky {
        t.lookup_or_pick(RuleId(0), ip(i), now, timeout, all(), || Some(WanId(wan)))
    }

    #[test]
    fn is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<StickyTable>();
    }

    #[test]
    fn records_reuses_and_refreshes() {
        let t = StickyTable::new(16, 4, 1);
        assert_eq!(
            bind(&t, 1, 3, S, 10 * S),
            Sticky::Picked {
                wan: WanId(3),
                recorded: true
            }
        );
        // A later lookup reuses it and never calls pick.
        let r = t.lookup_or_pick(RuleId(0), ip(1), 5 * S, 10 * S, all(), || panic!("picked"));
        assert_eq!(r, Sticky::Reused(WanId(3)));
        assert_eq!(
            t.get(RuleId(0), ip(1), 5 * S),
            Some(StickyEntry {
                wan: WanId(3),
                expires_at: 15 * S
            })
        );
        // Different rule, same source: a different key.
        assert_eq!(t.get(RuleId(1), ip(1), 5 * S), None);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn dead_or_ineligible_entry_is_overwritten_in_place() {
        let t = StickyTable::new(1, 1, 1);
        bind(&t, 1, 3, S, 2 * S);
        // At 3 s the entry (deadline 3 s) is dead.
        assert_eq!(t.get(RuleId(0), ip(1), 3 * S), None);
        assert_eq!(
            bind(&t, 1, 4, 3 * S, 2 * S),
            Sticky::Picked {
                wan: WanId(4),
                recorded: true
            }
        );
        // Not eligible: re-picked, still one entry, no refusal.
        let r = t.lookup_or_pick(
            RuleId(0),
            ip(1),
            3 * S,
            2 * S,
            WanSet::single(WanId(5)),
            || Some(WanId(5)),
        );
        assert_eq!(
            r,
            Sticky::Picked {
                wan: WanId(5),
                recorded: true
            }
        );
        assert_eq!(t.len(), 1);
        assert_eq!(t.full_refusals(), 0);
    }

    #[test]
    fn full_table_refuses_and_counts() {
        let t = StickyTable::new(3, 1, 7);
        for i in 0..3 {
            assert_eq!(
                bind(&t, i, 0, S, S),
                Sticky::Picked {
                    wan: WanId(0),
                    recorded: true
                }
            );
        }
        assert_eq!(
            bind(&t, 99, 1, S, S),
            Sticky::Picked {
                wan: WanId(1),
                recorded: false
            }
        );
        assert_eq!(t.full_refusals(), 1);
        assert_eq!(t.len(), 3);
        let zero = StickyTable::new(0, 8, 7);
        assert_eq!(
            bind(&zero, 1, 1, S, S),
            Sticky::Picked {
                wan: WanId(1),
                recorded: false
            }
        );
        assert_eq!(zero.full_refusals(), 1);
    }

    #[test]
    fn capacity_split_over_shards_is_exact() {
        let t = StickyTable::new(10, 3, 0);
        let caps: Vec<usize> = t.shards.iter().map(|p| lock(&p.0).cap).collect();
        assert_eq!(caps, vec![4, 3, 3]);
        // Filling far past capacity never exceeds it.
        for i in 0..1000 {
            bind(&t, i, 0, S, S);
        }
        assert_eq!(t.len(), 10);
        assert_eq!(t.full_refusals(), 990);
        let one = StickyTable::new(5, 0, 0);
        assert_eq!(one.shards.len(), 1);
    }

    #[test]
    fn expire_removes_only_dead_within_budget() {
        let t = StickyTable::new(1000, 4, 3);
        for i in 0..100 {
            // Even sources live to 11 s, odd ones to 101 s.
            let timeout = if i % 2 == 0 { 10 * S } else { 100 * S };
            bind(&t, i, 0, S, timeout);
        }
        assert_eq!(t.expire(20 * S, 0), 0);
        // A budget smaller than the table examines at most that many.
        let first = t.expire(20 * S, 10);
        assert!(first <= 10);
        let mut removed = first;
        for _ in 0..100 {
            removed += t.expire(20 * S, 10);
        }
        assert_eq!(removed, 50);
        assert_eq!(t.len(), 50);
        for i in 0..100 {
            assert_eq!(
                t.get(RuleId(0), ip(i), 20 * S).is_some(),
                i % 2 == 1,
                "src {i}"
            );
        }
        assert_eq!(t.expire(200 * S, usize::MAX), 50);
        assert!(t.is_empty());
    }

    #[test]
    fn removal_keeps_index_consistent() {
        let t = StickyTable::new(64, 1, 9);
        for i in 0..64 {
            bind(&t, i, (i % 7) as u8, S, (i % 3 + 1) * S);
        }
        t.expire(Duration::from_millis(2500), usize::MAX);
        for i in 0..64 {
            let live = i % 3 + 1 >= 2;
            let got = t.get(RuleId(0), ip(i), Duration::from_millis(2500));
            assert_eq!(
                got.map(|e| e.wan),
                live.then_some(WanId((i % 7) as u8)),
                "src {i}"
            );
        }
        // Freed slots are reusable.
        for i in 100..200 {
            bind(&t, i, 1, 3 * S, S);
        }
        assert_eq!(t.len(), 64);
    }

    #[test]
    fn clear_empties() {
        let t = StickyTable::new(8, 2, 0);
        bind(&t, 1, 0, S, S);
        t.clear();
        assert!(t.is_empty());
        assert_eq!(t.get(RuleId(0), ip(1), S), None);
    }

    #[test]
    fn huge_timeout_saturates() {
        let t = StickyTable::new(8, 2, 0);
        bind(&t, 1, 0, S, Duration::MAX);
        assert!(t
            .get(RuleId(0), ip(1), Duration::from_secs(1 << 33))
            .is_some());
    }
}
