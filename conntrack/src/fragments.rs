//! Rewrites for non-first IPv4 fragments, which carry no ports: the engine records the rewrite
//! of a datagram's first fragment under (src, dst, proto, id) and later fragments follow it.
//!
//! Sharded by key hash; each shard is a preallocated ring of slots in insertion order (all
//! entries share one timeout, so the oldest is always at the front) plus a `HashTable<u32>` of
//! slot numbers. Inserting first drops expired entries from the front; re-inserting a key
//! retires its old slot (a tombstone that leaves the ring when it reaches the front) and
//! appends a fresh one, so every entry lives `timeout` after its latest insert. Nothing
//! allocates after construction.

use std::fmt;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use hashbrown::HashTable;

use crate::index::in_place_capacity;
use crate::key::{Endpoint, KeyHasher};
use crate::session::Rewrite;
use crate::timeouts::nanos;

/// Identity of a fragmented datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FragmentKey {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// IP protocol number.
    pub proto: u8,
    /// IP identification.
    pub id: u16,
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    key: FragmentKey,
    rewrite: Rewrite,
    inserted: u64,
    live: bool,
}

const VACANT: Slot = Slot {
    key: FragmentKey {
        src: Ipv4Addr::UNSPECIFIED,
        dst: Ipv4Addr::UNSPECIFIED,
        proto: 0,
        id: 0,
    },
    rewrite: Rewrite {
        src: Endpoint::new(Ipv4Addr::UNSPECIFIED, 0),
        dst: Endpoint::new(Ipv4Addr::UNSPECIFIED, 0),
        egress: 0,
    },
    inserted: 0,
    live: false,
};

#[derive(Debug)]
struct Shard {
    ring: Vec<Slot>,
    /// Position of the oldest slot.
    head: usize,
    /// Occupied positions (live entries and tombstones).
    used: usize,
    index: HashTable<u32>,
}

fn key_hash(hasher: &KeyHasher, k: &FragmentKey) -> u64 {
    hasher.any((
        (u64::from(u32::from(k.src)) << 32) | u64::from(u32::from(k.dst)),
        (u32::from(k.proto) << 16) | u32::from(k.id),
    ))
}

impl Shard {
    fn new(cap: usize) -> Shard {
        let mut index = HashTable::new();
        // On failure the index grows on demand instead; it cannot fail later for lack of room.
        let _ = index.try_reserve(in_place_capacity(cap), |_: &u32| 0);
        Shard {
            ring: vec![VACANT; cap],
            head: 0,
            used: 0,
            index,
        }
    }

    fn find(&self, h: u64, key: &FragmentKey) -> Option<u32> {
        let ring = &self.ring;
        self.index
            .find(h, |&s| ring.get(s as usize).is_some_and(|x| x.key == *key))
            .copied()
    }

    /// Retires slot `s` (flow hash `h`): out of the index, left as a tombstone.
    fn retire(&mut self, h: u64, s: u32) {
        if let Ok(e) = self.index.find_entry(h, |&x| x == s) {
            e.remove();
        }
        if let Some(x) = self.ring.get_mut(s as usize) {
            x.live = false;
        }
    }

    /// Drops tombstones and expired entries from the front.
    fn trim(&mut self, hasher: &KeyHasher, timeout: u64, now: u64) -> usize {
        let mut dropped = 0;
        while self.used > 0 {
            let Some(front) = self.ring.get(self.head).copied() else {
                break;
            };
            if front.live {
                if front.inserted.saturating_add(timeout) > now {
                    break;
                }
                let h = key_hash(hasher, &front.key);
                self.retire(h, self.head as u32);
                dropped += 1;
            }
            self.head = (self.head + 1) % self.ring.len();
            self.used -= 1;
        }
        dropped
    }
}

/// Rewrites of fragmented datagrams, keyed by [`FragmentKey`]. `Send + Sync`; bounded and
/// preallocated; entries live `timeout` after their insert.
pub struct FragmentTable {
    hasher: KeyHasher,
    timeout: u64,
    mask: usize,
    shards: Box<[Mutex<Shard>]>,
    live: AtomicUsize,
}

impl fmt::Debug for FragmentTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FragmentTable")
            .field("shards", &self.shards.len())
            .field("len", &self.len())
            .field("timeout_ns", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl FragmentTable {
    /// A table for `max_entries` entries (rounded up to a multiple of the shard count) in
    /// `shards` shards (rounded up to a power of two, at least 1).
    pub fn new(max_entries: u32, shards: u16, timeout: Duration, hash_seed: u64) -> FragmentTable {
        let n = usize::from(shards.max(1)).next_power_of_two();
        let cap = (max_entries as usize).div_ceil(n);
        FragmentTable {
            hasher: KeyHasher::new(hash_seed ^ 0x9e37_79b9_7f4a_7c15),
            timeout: nanos(timeout),
            mask: n - 1,
            shards: (0..n).map(|_| Mutex::new(Shard::new(cap))).collect(),
            live: AtomicUsize::new(0),
        }
    }

    fn lock(&self, h: u64) -> MutexGuard<'_, Shard> {
        self.shards[(h >> 32) as usize & self.mask]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Records `rewrite` for datagram `key` (replacing any previous entry for it). Returns
    /// `false` when the shard is full of live entries.
    pub fn insert(&self, key: FragmentKey, rewrite: Rewrite, now: Duration) -> bool {
        let now = nanos(now);
        let h = key_hash(&self.hasher, &key);
        let mut s = self.lock(h);
        let mut removed = s.trim(&self.hasher, self.timeout, now);
        if let Some(old) = s.find(h, &key) {
            s.retire(h, old);
            removed += 1;
        }
        self.live.fetch_sub(removed, Ordering::Relaxed);
        if s.used >= s.ring.len() {
            return false;
        }
        let pos = (s.head + s.used) % s.ring.len();
        if let Some(x) = s.ring.get_mut(pos) {
            *x = Slot {
                key,
                rewrite,
                inserted: now,
                live: true,
            };
        }
        s.used += 1;
        let Shard { ring, index, .. } = &mut *s;
        let hasher = &self.hasher;
        index.insert_unique(h, pos as u32, |&x| {
            ring.get(x as usize).map_or(0, |e| key_hash(hasher, &e.key))
        });
        self.live.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// The rewrite recorded for `key`, unless it is absent or expired.
    pub fn lookup(&self, key: &FragmentKey, now: Duration) -> Option<Rewrite> {
        let now = nanos(now);
        let h = key_hash(&self.hasher, key);
        let mut s = self.lock(h);
        let slot = s.find(h, key)?;
        let e = s.ring.get(slot as usize).copied()?;
        if e.inserted.saturating_add(self.timeout) <= now {
            s.retire(h, slot);
            self.live.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(e.rewrite)
    }

    /// Live entries (expired ones count until an insert or lookup drops them).
    pub fn len(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u16) -> FragmentKey {
        FragmentKey {
            src: Ipv4Addr::new(10, 0, 0, 1),
            dst: Ipv4Addr::new(8, 8, 8, 8),
            proto: 17,
            id,
        }
    }

    fn rw(port: u16) -> Rewrite {
        Rewrite {
            src: Endpoint::new(Ipv4Addr::new(203, 0, 113, 1), port),
            dst: Endpoint::new(Ipv4Addr::new(8, 8, 8, 8), 53),
            egress: 1,
        }
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn insert_then_lookup() {
        let t = FragmentTable::new(16, 2, secs(30), 1);
        assert!(t.is_empty());
        assert!(t.insert(key(1), rw(1000), secs(0)));
        assert!(t.insert(key(2), rw(2000), secs(0)));
        assert_eq!(t.lookup(&key(1), secs(1)), Some(rw(1000)));
        assert_eq!(t.lookup(&key(2), secs(1)), Some(rw(2000)));
        assert_eq!(t.lookup(&key(3), secs(1)), None);
        let other_src = FragmentKey {
            src: Ipv4Addr::new(10, 0, 0, 2),
            ..key(1)
        };
        assert_eq!(t.lookup(&other_src, secs(1)), None);
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn entries_expire_exactly_at_the_timeout() {
        let t = FragmentTable::new(16, 1, secs(30), 1);
        assert!(t.insert(key(1), rw(1), secs(10)));
        assert_eq!(
            t.lookup(&key(1), secs(40) - Duration::from_nanos(1)),
            Some(rw(1))
        );
        assert_eq!(t.lookup(&key(1), secs(40)), None);
        assert_eq!(t.len(), 0);
        assert_eq!(t.lookup(&key(1), secs(41)), None);
    }

    #[test]
    fn overwrite_replaces_the_rewrite_and_restarts_the_timeout() {
        let t = FragmentTable::new(16, 1, secs(30), 1);
        assert!(t.insert(key(1), rw(1), secs(0)));
        assert!(t.insert(key(1), rw(2), secs(20)));
        assert_eq!(t.len(), 1);
        assert_eq!(t.lookup(&key(1), secs(35)), Some(rw(2)));
        assert_eq!(t.lookup(&key(1), secs(50)), None);
    }

    #[test]
    fn full_until_entries_expire() {
        let t = FragmentTable::new(4, 1, secs(30), 1);
        for i in 0..4 {
            assert!(t.insert(key(i), rw(i), secs(u64::from(i))));
        }
        assert!(!t.insert(key(9), rw(9), secs(5)));
        assert_eq!(t.len(), 4);
        assert_eq!(t.lookup(&key(9), secs(5)), None);
        // at 30 s the first entry has expired: room for one
        assert!(t.insert(key(9), rw(9), secs(30)));
        assert!(!t.insert(key(10), rw(10), secs(30)));
        assert_eq!(t.lookup(&key(0), secs(30)), None);
        assert_eq!(t.lookup(&key(9), secs(30)), Some(rw(9)));
        assert_eq!(t.len(), 4);
        // everything but key 9 is gone at 33 s
        assert!(t.insert(key(10), rw(10), secs(33)));
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn zero_capacity_and_odd_shard_counts_are_tolerated() {
        let t = FragmentTable::new(0, 0, secs(1), 1);
        assert!(!t.insert(key(1), rw(1), secs(0)));
        assert_eq!(t.lookup(&key(1), secs(0)), None);
        let t = FragmentTable::new(10, 3, secs(1), 1);
        assert!(t.insert(key(1), rw(1), secs(0)));
        assert_eq!(t.lookup(&key(1), secs(0)), Some(rw(1)));
    }

    #[test]
    fn churn_is_bounded_and_consistent() {
        let t = FragmentTable::new(64, 4, secs(2), 5);
        let mut accepted = 0;
        for step in 0..10_000u64 {
            let id = (step % 5000) as u16;
            if t.insert(key(id), rw(id), Duration::from_millis(step)) {
                accepted += 1;
            }
            assert!(t.len() <= 64);
        }
        // each shard holds 16 entries of a 2 s window of 2000 inserts: most were refused
        assert!((64..10_000).contains(&accepted), "{accepted}");
        // once everything expired there is room again, and the latest insert wins
        let later = Duration::from_millis(12_000);
        assert!(t.insert(key(7), rw(1), later));
        assert!(t.insert(key(7), rw(2), later));
        assert_eq!(t.lookup(&key(7), later), Some(rw(2)));
    }
}
