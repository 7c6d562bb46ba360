//! Rewrites for non-first IPv4 fragments, which carry no ports: the engine records the rewrite
//! of a datagram's first fragment under (src, dst, proto, id) and later fragments follow it.
//!
//! Sharded by key hash; each shard is a preallocated ring of slots in order of first insert
//! plus a `HashTable<u32>` of slot numbers. Inserting first drops expired entries and
//! tombstones from the front; re-inserting a key updates its slot in place (new rewrite, and
//! it lives `timeout` from then on). A source never holds more than a quarter of a shard
//! ([`per_source_cap`]): past that its own oldest entry gives its slot to the new one; and a
//! full shard makes room by evicting the entry at the front of its ring (the earliest
//! stored, unless a capped source reused that slot) rather than refusing the new one, so
//! one source's fragment flood cannot lock the others out. Evictions are counted
//! ([`FragmentTable::evicted`]). Nothing allocates
//! after construction.

use std::fmt;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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
    /// The shard's insert count when this entry was stored: the lower, the older.
    seq: u64,
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
    seq: 0,
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
    /// Entries stored so far (the next one's `seq`).
    stored: u64,
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
            stored: 0,
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

/// The most entries one source address may hold in a shard of `capacity`: a quarter.
pub fn per_source_cap(capacity: usize) -> usize {
    (capacity / 4).max(1)
}

impl Shard {
    /// The slot of the oldest live entry from `src` (by first store), and how many live
    /// entries `src` has.
    fn source_entries(&self, src: Ipv4Addr) -> (Option<u32>, usize) {
        let (mut oldest, mut n): (Option<(u64, u32)>, usize) = (None, 0);
        for i in 0..self.used {
            let pos = (self.head + i) % self.ring.len();
            if let Some(x) = self.ring.get(pos).filter(|x| x.live && x.key.src == src) {
                if oldest.is_none_or(|(seq, _)| x.seq < seq) {
                    oldest = Some((x.seq, pos as u32));
                }
                n += 1;
            }
        }
        (oldest.map(|(_, pos)| pos), n)
    }

    /// Frees the front position: evicts its entry if it is live. Returns whether it was.
    fn pop_front(&mut self, hasher: &KeyHasher) -> bool {
        let Some(front) = self.ring.get(self.head).copied() else {
            return false;
        };
        if front.live {
            self.retire(key_hash(hasher, &front.key), self.head as u32);
        }
        self.head = (self.head + 1) % self.ring.len();
        self.used -= 1;
        front.live
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
    evicted: AtomicU64,
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
            evicted: AtomicU64::new(0),
        }
    }

    fn lock(&self, h: u64) -> MutexGuard<'_, Shard> {
        self.shards[(h >> 32) as usize & self.mask]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Records `rewrite` for datagram `key`: in place if it has an entry, else in a new one,
    /// making room by evicting the source's oldest entry when it holds its
    /// [`per_source_cap`], or the shard's oldest when the shard is full. Returns `false`
    /// only for a table without room at all (capacity 0).
    pub fn insert(&self, key: FragmentKey, rewrite: Rewrite, now: Duration) -> bool {
        let now = nanos(now);
        let h = key_hash(&self.hasher, &key);
        let mut s = self.lock(h);
        let mut removed = s.trim(&self.hasher, self.timeout, now);
        if let Some(slot) = s.find(h, &key) {
            if let Some(x) = s.ring.get_mut(slot as usize) {
                x.rewrite = rewrite;
                x.inserted = now;
            }
            self.live.fetch_sub(removed, Ordering::Relaxed);
            return true;
        }
        let mut evicted = 0u64;
        let mut at = None;
        if let (Some(oldest), n) = s.source_entries(key.src) {
            if n >= per_source_cap(s.ring.len()) {
                // the source's oldest entry gives its slot (and place in the ring) to the new
                // one: a source at its cap takes no further room
                let oh = s
                    .ring
                    .get(oldest as usize)
                    .map_or(0, |x| key_hash(&self.hasher, &x.key));
                s.retire(oh, oldest);
                removed += 1;
                evicted += 1;
                at = Some(oldest as usize);
            }
        }
        while at.is_none() && s.used >= s.ring.len() && s.used > 0 {
            if s.pop_front(&self.hasher) {
                removed += 1;
                evicted += 1;
            }
        }
        self.live.fetch_sub(removed, Ordering::Relaxed);
        self.evicted.fetch_add(evicted, Ordering::Relaxed);
        let pos = match at {
            Some(pos) => pos,
            None if s.used >= s.ring.len() => return false,
            None => {
                s.used += 1;
                (s.head + s.used - 1) % s.ring.len()
            }
        };
        let seq = s.stored;
        s.stored += 1;
        if let Some(x) = s.ring.get_mut(pos) {
            *x = Slot {
                key,
                rewrite,
                inserted: now,
                seq,
                live: true,
            };
        }
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

    /// Live entries evicted to make room for others (a full shard, or a source at its cap).
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
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

    /// A key from source 10.0.0.`host`.
    fn from(host: u8, id: u16) -> FragmentKey {
        FragmentKey {
            src: Ipv4Addr::new(10, 0, 0, host),
            ..key(id)
        }
    }

    #[test]
    fn a_full_shard_evicts_its_oldest_entry() {
        let t = FragmentTable::new(4, 1, secs(30), 1);
        for i in 0..4u8 {
            assert!(t.insert(from(i, 1), rw(u16::from(i)), secs(u64::from(i))));
        }
        assert!(t.insert(from(9, 1), rw(9), secs(5)));
        assert_eq!(t.len(), 4);
        assert_eq!(t.evicted(), 1);
        assert_eq!(t.lookup(&from(0, 1), secs(5)), None, "the oldest went");
        for i in 1..4u8 {
            assert_eq!(t.lookup(&from(i, 1), secs(5)), Some(rw(u16::from(i))));
        }
        assert_eq!(t.lookup(&from(9, 1), secs(5)), Some(rw(9)));
        // expired entries go first, without counting as evicted
        assert!(t.insert(from(10, 1), rw(10), secs(40)));
        assert_eq!(t.evicted(), 1);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn one_source_holds_a_quarter_of_a_shard_at_most() {
        let t = FragmentTable::new(16, 1, secs(30), 1);
        for i in 0..8u8 {
            assert!(t.insert(from(i, 1), rw(1), secs(0)));
        }
        // source 100 floods: it keeps its 4 newest datagrams, the others keep theirs
        for id in 0..1000u16 {
            assert!(t.insert(from(100, id), rw(id), secs(1)));
        }
        assert_eq!(per_source_cap(16), 4);
        assert_eq!(t.len(), 8 + 4);
        for i in 0..8u8 {
            assert_eq!(t.lookup(&from(i, 1), secs(2)), Some(rw(1)), "host {i}");
        }
        for id in 996..1000u16 {
            assert_eq!(t.lookup(&from(100, id), secs(2)), Some(rw(id)));
        }
        assert_eq!(t.lookup(&from(100, 995), secs(2)), None);
    }

    #[test]
    fn the_same_key_is_updated_in_place() {
        let t = FragmentTable::new(4, 1, secs(30), 1);
        for i in 0..3u8 {
            assert!(t.insert(from(i, 1), rw(1), secs(0)));
        }
        for n in 0..100u16 {
            assert!(t.insert(from(9, 7), rw(n), secs(1)));
        }
        assert_eq!((t.len(), t.evicted()), (4, 0), "no slot taken twice");
        assert_eq!(t.lookup(&from(9, 7), secs(2)), Some(rw(99)));
        for i in 0..3u8 {
            assert_eq!(t.lookup(&from(i, 1), secs(2)), Some(rw(1)));
        }
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
            let host = (step % 97) as u8;
            if t.insert(from(host, id), rw(id), Duration::from_millis(step)) {
                accepted += 1;
            }
            assert!(t.len() <= 64);
        }
        // every insert is taken; the shards keep 16 entries each, evicting the oldest
        assert_eq!(accepted, 10_000);
        assert!(t.evicted() > 0);
        // once everything expired there is room again, and the latest insert wins
        let later = Duration::from_millis(12_000);
        assert!(t.insert(key(7), rw(1), later));
        assert!(t.insert(key(7), rw(2), later));
        assert_eq!(t.lookup(&key(7), later), Some(rw(2)));
    }
}
