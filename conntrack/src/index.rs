//! Sizing and upkeep of the `hashbrown::HashTable<u32>` slot indexes, so that they never
//! allocate after construction.
//!
//! hashbrown removes entries either by emptying their bucket or, inside a run of 16 occupied
//! buckets, by leaving a tombstone that keeps counting against the table's remaining room. When
//! the room (`capacity() - len()`) runs out, its next insert into an empty bucket rehashes in
//! place only if the table is at most half full, and otherwise *grows* (allocates).
//!
//! The session and mapping indexes therefore take a different route that keeps them small:
//! they are sized for [`slack_capacity`]`(n)` ≥ 1.25 n entries, and before each insert the owner
//! checks [`out_of_room`]; if so it clears the index (which keeps its memory) and re-inserts its
//! live slots, which clears every tombstone. Since fewer than `n` slots are live before an
//! insert, a rebuild leaves room for at least `n / 4` more inserts, so rebuilding costs at most
//! four re-inserts per insert amortised, and never allocates. Each index costs 7 to 15 bytes
//! per slot (5 bytes per bucket, 1.43 n to 2.86 n buckets depending on rounding to a power of
//! two).
//!
//! The fragment table, which is small, instead sizes its index at [`in_place_capacity`]`(n)` =
//! 2 n, where hashbrown's own in-place rehash always suffices.

use hashbrown::HashTable;

/// Capacity to request for an index holding at most `n` live entries that is rebuilt when
/// [`out_of_room`].
pub(crate) fn slack_capacity(n: usize) -> usize {
    n.saturating_add(n / 4).saturating_add(1)
}

/// Capacity to request for an index holding at most `n` entries that relies on hashbrown's
/// in-place rehash alone (it rehashes in place while the entries fit in half the table).
pub(crate) fn in_place_capacity(n: usize) -> usize {
    n.saturating_mul(2).max(1)
}

/// Whether the next insert could make hashbrown grow the index (no room left besides
/// tombstones): the owner must rebuild it first.
#[inline]
pub(crate) fn out_of_room(index: &HashTable<u32>) -> bool {
    index.len() >= index.capacity()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_capacity_gives_a_quarter_more_room() {
        for n in [0usize, 1, 7, 179, 4096, 65_536, 100_000] {
            let t: HashTable<u32> = HashTable::with_capacity(slack_capacity(n));
            assert!(t.capacity() >= n + n / 4, "{n}: {}", t.capacity());
            // at most 2.86 buckets per slot
            if n >= 1024 {
                assert!(
                    t.num_buckets() * 7 <= n * 20,
                    "{n}: {} buckets",
                    t.num_buckets()
                );
            }
        }
    }

    #[test]
    fn tombstones_exhaust_the_room_and_clear_restores_it_in_place() {
        // Full-ish table with churn: hashbrown leaves tombstones and room runs out.
        let n = 179usize;
        let mut t: HashTable<u32> = HashTable::with_capacity(slack_capacity(n));
        let buckets = t.num_buckets();
        let k = crate::key::KeyHasher::new(11);
        let h = |x: &u32| k.any(*x);
        let mut live: std::collections::VecDeque<u32> = (0..n as u32 - 1).collect();
        for &x in &live {
            t.insert_unique(h(&x), x, h);
        }
        let mut rebuilds = 0;
        for next in n as u32..20_000 {
            let old = live.pop_front().expect("live");
            if let Ok(e) = t.find_entry(h(&old), |&y| y == old) {
                e.remove();
            }
            if out_of_room(&t) {
                rebuilds += 1;
                t.clear();
                for &x in &live {
                    t.insert_unique(h(&x), x, h);
                }
                assert!(!out_of_room(&t));
            }
            t.insert_unique(h(&next), next, h);
            live.push_back(next);
        }
        assert_eq!(t.num_buckets(), buckets, "the index grew");
        assert!(
            rebuilds > 0,
            "the churn never ran out of room: test is vacuous"
        );
        assert!(rebuilds <= 20_000 / (n / 4), "{rebuilds} rebuilds");
        assert!(live.iter().all(|&x| t.find(h(&x), |&y| y == x).is_some()));
    }
}
