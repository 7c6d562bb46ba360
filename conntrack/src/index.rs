//! The slot index of a session shard or a mapping shard: an open-addressing table of 4-byte
//! entries that maps a hash to the slab slots whose key may have it, sized once and never
//! grown, with no tombstones.
//!
//! Why not `hashbrown::HashTable<u32>` (which the table used before): hashbrown keeps its
//! control bytes and its values in separate arrays, so a lookup in a large table misses the
//! cache twice before it reaches the slab (control group, then the value), and a table with
//! churn fills with tombstones that must be cleared by a rehash of the whole shard, under its
//! lock (a pause of milliseconds for a shard of 100,000 sessions). Here an entry holds both the
//! slot and a tag from its hash, so a probe reads one cache line of 16 entries (a miss, then
//! the slab), and removal shifts the entries behind it back (linear probing's backward-shift
//! deletion), so the table never degrades and never needs a rebuild.
//!
//! Layout: `entries.len()` is a power of two of at least 1.6 times the most slots the owner
//! holds, so the load factor stays at or below 0.625 and every probe sequence ends at an empty
//! entry (an unsuccessful search reads 4 entries on average at the highest load, a successful
//! one 2). An entry is 0 when empty, else `tag | (slot + 1)`: the low `slot_bits` bits hold
//! `slot + 1` (enough bits for every slot of the slab), the high bits a tag taken from a
//! remix of the hash, so a probe compares keys in the slab only when the tags agree (1 in
//! 2^18 false matches for shards of 8,192 sessions). A key's home entry is its hash's low bits
//! (the shard was picked by bits 40 and up, see `key.rs`).
//!
//! Invariant (linear probing): every entry lies at or after its key's home with no empty entry
//! in between (cyclically). Insertion keeps it by taking the first empty entry from the home;
//! removal keeps it by moving back, into the hole, each later entry of the run whose home is
//! not between the hole and itself. Removal therefore needs the hash of the keys it passes:
//! the owner gives it a function from slot to hash (it reads the slab).
//!
//! Entries are `AtomicU32`s read and written with relaxed ordering (plain moves on x86), so
//! that the lock-free readers of a session shard (`shard.rs`) may probe the index while the
//! holder of the shard's lock changes it; such a reader can see a run half shifted, and relies
//! on the shard's sequence number to notice. Only the holder of the owner's lock calls
//! [`SlotIndex::insert`] and [`SlotIndex::remove`] (they take `&self` for that reason).
//!
//! Costs 4 bytes per entry: 6.4 to 12.8 bytes per slot of the slab.

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

/// An open-addressing index of slab slots (see the module docs). No loop runs more than one
/// round of the table, whatever its contents.
#[derive(Debug)]
pub(crate) struct SlotIndex {
    entries: Box<[AtomicU32]>,
    /// `entries.len() - 1`.
    mask: usize,
    /// The bits of an entry that hold `slot + 1` (the low ones; the rest is the tag).
    slot_mask: u32,
    /// Entries in use (written under the owner's lock).
    len: AtomicU32,
}

/// Multiplier that remixes a hash into the tag (so the tag does not repeat the bits that
/// picked the shard or the home entry).
const TAG_MIX: u64 = 0x9E37_79B9_7F4A_7C15;

/// A key's home entry, located (its address, and the tag and slot mask to read it with) but
/// not read: locating the home entries of a batch of keys first and reading them in a second
/// loop leaves that loop nothing but the loads, so more of them are in flight at once.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HomeEntry<'a> {
    entry: &'a AtomicU32,
    tag: u32,
    slot_mask: u32,
}

impl HomeEntry<'_> {
    /// The entry's address, for a prefetch.
    #[inline]
    pub(crate) fn address(self) -> *const u8 {
        std::ptr::from_ref(self.entry).cast()
    }

    /// Reads the entry: the slot it names if its tag is the key's.
    #[inline]
    pub(crate) fn slot(self) -> Option<u32> {
        let e = self.entry.load(Relaxed);
        if e == 0 || e & !self.slot_mask != self.tag {
            return None;
        }
        (e & self.slot_mask).checked_sub(1)
    }
}

impl SlotIndex {
    /// An index for slots `0..max_slots`, preallocated. `None` if memory is unavailable.
    pub(crate) fn new(max_slots: u32) -> Option<SlotIndex> {
        let wanted = (u64::from(max_slots) * 8).div_ceil(5).max(8);
        let len = usize::try_from(wanted.checked_next_power_of_two()?).ok()?;
        let mut entries = Vec::new();
        entries.try_reserve_exact(len).ok()?;
        entries.extend((0..len).map(|_| AtomicU32::new(0)));
        // slot + 1 ranges over 1..=max_slots
        let slot_bits = u32::BITS - max_slots.leading_zeros();
        let slot_mask = u32::MAX.checked_shr(u32::BITS - slot_bits).unwrap_or(0);
        Some(SlotIndex {
            entries: entries.into_boxed_slice(),
            mask: len - 1,
            slot_mask,
            len: AtomicU32::new(0),
        })
    }

    /// Entries in use.
    #[cfg(test)]
    pub(crate) fn len(&self) -> u32 {
        self.len.load(Relaxed)
    }

    /// Number of entries (4 bytes each).
    #[cfg(test)]
    pub(crate) fn buckets(&self) -> usize {
        self.entries.len()
    }

    /// Address and length of the entries.
    pub(crate) fn region(&self) -> (usize, usize) {
        (self.entries.as_ptr() as usize, self.memory())
    }

    /// Heap bytes.
    pub(crate) fn memory(&self) -> usize {
        self.entries.len() * std::mem::size_of::<AtomicU32>()
    }

    #[inline]
    fn slot_mask(&self) -> u32 {
        self.slot_mask
    }

    #[inline]
    fn tag(&self, h: u64) -> u32 {
        let mixed = (h.wrapping_mul(TAG_MIX) >> 32) as u32;
        mixed & !self.slot_mask()
    }

    #[inline]
    fn home(&self, h: u64) -> usize {
        h as usize & self.mask
    }

    #[inline]
    fn entry(&self, i: usize) -> u32 {
        self.entries
            .get(i & self.mask)
            .map_or(0, |e| e.load(Relaxed))
    }

    /// The slot of the key with hash `h`: the first slot with `h`'s tag for which `is_key`
    /// holds. `None` if there is none.
    #[inline]
    pub(crate) fn find(&self, h: u64, mut is_key: impl FnMut(u32) -> bool) -> Option<u32> {
        let (tag, slot_mask) = (self.tag(h), self.slot_mask());
        let mut i = self.home(h);
        for _ in 0..self.entries.len() {
            let e = self.entry(i);
            if e == 0 {
                return None;
            }
            if e & !slot_mask == tag {
                let slot = (e & slot_mask) - 1;
                if is_key(slot) {
                    return Some(slot);
                }
            }
            i = (i + 1) & self.mask;
        }
        None
    }

    /// The address of `h`'s home entry (for a prefetch: creating it reads nothing).
    #[inline]
    pub(crate) fn home_entry(&self, h: u64) -> *const u8 {
        self.entries
            .get(self.home(h))
            .map_or(std::ptr::null(), |e| std::ptr::from_ref(e).cast())
    }

    /// The slot named by `h`'s home entry if its tag is `h`'s (the slot a lookup of `h` most
    /// likely compares first), without comparing keys. Lock-free; for warming caches.
    #[inline]
    pub(crate) fn home_slot(&self, h: u64) -> Option<u32> {
        self.locate_home(h)?.slot()
    }

    /// `h`'s home entry, located but not read yet (see [`HomeEntry`]).
    #[inline]
    pub(crate) fn locate_home(&self, h: u64) -> Option<HomeEntry<'_>> {
        Some(HomeEntry {
            entry: self.entries.get(self.home(h))?,
            tag: self.tag(h),
            slot_mask: self.slot_mask(),
        })
    }

    /// Adds `slot` under hash `h` (the caller has checked that its key is not indexed yet).
    /// Returns `false`, changing nothing, if the slot number does not fit or the index is
    /// full: neither happens to an owner that stays within the `max_slots` it was built for.
    pub(crate) fn insert(&self, h: u64, slot: u32) -> bool {
        let slot_mask = self.slot_mask();
        let len = self.len.load(Relaxed);
        if slot >= slot_mask || len as usize >= self.mask {
            return false;
        }
        let value = self.tag(h) | (slot + 1);
        let mut i = self.home(h);
        for _ in 0..self.entries.len() {
            if let Some(e) = self.entries.get(i) {
                if e.load(Relaxed) == 0 {
                    e.store(value, Relaxed);
                    self.len.store(len + 1, Relaxed);
                    return true;
                }
            }
            i = (i + 1) & self.mask;
        }
        false
    }

    /// Removes `slot`, indexed under hash `h`; `hash_of` gives the hash of any other indexed
    /// slot (the entries after it in its run may move back). Returns whether it was found.
    pub(crate) fn remove(&self, h: u64, slot: u32, hash_of: impl Fn(u32) -> u64) -> bool {
        let slot_mask = self.slot_mask();
        let value = self.tag(h) | (slot.wrapping_add(1) & slot_mask);
        let mut hole = self.home(h);
        let mut found = false;
        for _ in 0..self.entries.len() {
            let e = self.entry(hole);
            if e == 0 {
                return false;
            }
            if e == value {
                found = true;
                break;
            }
            hole = (hole + 1) & self.mask;
        }
        if !found {
            return false;
        }
        // Backward shift: each later entry of the run whose home is not cyclically in
        // (hole, j] moves into the hole, leaving its own place as the next hole.
        let mut j = hole;
        for _ in 0..self.entries.len() {
            j = (j + 1) & self.mask;
            let e = self.entry(j);
            if e == 0 {
                break;
            }
            let home = self.home(hash_of((e & slot_mask).wrapping_sub(1)));
            if (j.wrapping_sub(home) & self.mask) >= (j.wrapping_sub(hole) & self.mask) {
                if let Some(x) = self.entries.get(hole) {
                    x.store(e, Relaxed);
                }
                hole = j;
            }
        }
        if let Some(x) = self.entries.get(hole) {
            x.store(0, Relaxed);
        }
        self.len
            .store(self.len.load(Relaxed).saturating_sub(1), Relaxed);
        true
    }

    /// Checks a slab this index indexes (tests), `live` of its slots in use and `len` by its
    /// owner's count: its free list from `free` (`next` gives a free slot's successor, `None`
    /// for a slot in use) holds no slot in use and no cycle; `live`, `len` and the entries in
    /// use agree; and live and free slots make up the slab. `what` names the slab in errors.
    #[cfg(test)]
    pub(crate) fn check_slab<T>(
        &self,
        what: &str,
        slab: &[T],
        (free, next): (u32, impl Fn(&T) -> Option<u32>),
        live: u32,
        len: u32,
    ) -> Result<(), String> {
        let mut n = 0u32;
        let mut f = free;
        while f != crate::lru::NIL {
            let e = slab
                .get(f as usize)
                .ok_or(format!("{what}: bad free slot"))?;
            f = next(e).ok_or(format!("{what}: slot {f} in use on the free list"))?;
            n += 1;
            if n > slab.len() as u32 {
                return Err(format!("{what}: free list cycle"));
            }
        }
        if live != len || self.len() != len {
            return Err(format!(
                "{what}: len {len} live {live} indexed {}",
                self.len()
            ));
        }
        if live + n != slab.len() as u32 {
            return Err(format!("{what}: live {live} + free {n} != slots"));
        }
        Ok(())
    }

    /// Checks the linear-probing invariant and the count against `hash_of` (tests): every
    /// entry is reachable from its home without crossing an empty entry.
    #[cfg(test)]
    pub(crate) fn check(&self, hash_of: impl Fn(u32) -> u64) -> Result<(), String> {
        let slot_mask = self.slot_mask();
        let mut used = 0;
        for (i, e) in self.entries.iter().enumerate() {
            let e = e.load(Relaxed);
            if e == 0 {
                continue;
            }
            used += 1;
            let slot = (e & slot_mask) - 1;
            let h = hash_of(slot);
            if e & !slot_mask != self.tag(h) {
                return Err(format!("entry {i}: slot {slot} has a wrong tag"));
            }
            let mut k = self.home(h);
            while k != i {
                if self.entry(k) == 0 {
                    return Err(format!("entry {i}: slot {slot} cut off from its home"));
                }
                k = (k + 1) & self.mask;
            }
        }
        if used != self.len() {
            return Err(format!("{used} entries used, len {}", self.len()));
        }
        Ok(())
    }
}

/// Capacity to request from hashbrown for an index holding at most `n` entries that relies on
/// its in-place rehash alone (it rehashes in place while the entries fit in half the table):
/// the fragment table's.
pub(crate) fn in_place_capacity(n: usize) -> usize {
    n.saturating_mul(2).max(1)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    /// Hash of slot `s` under a seed: a poor hash on purpose for some seeds (many equal homes).
    fn hash(seed: u64, s: u32) -> u64 {
        match seed % 3 {
            0 => u64::from(s % 7),
            1 => u64::from(s).wrapping_mul(0x2545_F491_4F6C_DD1D) ^ seed,
            _ => (u64::from(s) << 40) | u64::from(s % 5),
        }
    }

    #[test]
    fn sizes_for_a_load_of_at_most_five_eighths() {
        for n in [0u32, 1, 7, 179, 4096, 10_240, 10_241, 65_536] {
            let ix = SlotIndex::new(n).unwrap();
            assert!(ix.buckets().is_power_of_two());
            assert!(ix.buckets() as u64 * 5 >= u64::from(n) * 8, "{n}");
            assert!(ix.buckets() as u64 * 5 < u64::from(n.max(5)) * 16, "{n}");
            assert!(ix.slot_mask() >= n, "{n}: slot + 1 must fit");
        }
    }

    #[test]
    fn a_full_slab_fits_and_every_slot_is_found() {
        for seed in 0..3 {
            let n = 1000;
            let ix = SlotIndex::new(n).unwrap();
            for s in 0..n {
                assert!(ix.insert(hash(seed, s), s));
            }
            assert_eq!(ix.len(), n);
            for s in 0..n {
                assert_eq!(ix.find(hash(seed, s), |x| x == s), Some(s));
            }
            assert_eq!(ix.find(hash(seed, n + 5), |x| x == n + 5), None);
            ix.check(|s| hash(seed, s)).unwrap();
        }
    }

    #[test]
    fn refuses_slots_beyond_its_size() {
        let ix = SlotIndex::new(8).unwrap();
        assert!(!ix.insert(1, ix.slot_mask()));
        assert_eq!(ix.len(), 0);
    }

    proptest! {
        /// Random inserts and removals against a model: finds agree, the probing invariant
        /// holds after every step, and the table never needs more room than it started with.
        #[test]
        fn behaves_like_a_map(
            seed in 0u64..6,
            ops in prop::collection::vec((any::<bool>(), 0u32..64), 1..400),
        ) {
            let ix = SlotIndex::new(64).unwrap();
            let buckets = ix.buckets();
            let mut live: HashMap<u32, ()> = HashMap::new();
            for (add, s) in ops {
                let h = hash(seed, s);
                if add && !live.contains_key(&s) {
                    prop_assert!(ix.insert(h, s));
                    live.insert(s, ());
                } else if !add {
                    prop_assert_eq!(ix.remove(h, s, |x| hash(seed, x)), live.remove(&s).is_some());
                }
                ix.check(|x| hash(seed, x)).map_err(TestCaseError::fail)?;
            }
            for s in 0..64 {
                let found = ix.find(hash(seed, s), |x| x == s);
                prop_assert_eq!(found.is_some(), live.contains_key(&s));
            }
            prop_assert_eq!(ix.len() as usize, live.len());
            prop_assert_eq!(ix.buckets(), buckets);
        }
    }
}
