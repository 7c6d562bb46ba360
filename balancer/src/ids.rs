//! Small identifier types: WANs, groups, rules, and sets of WANs.

use std::fmt;

/// A WAN uplink, by its index in [`Policy::wan_names`](crate::Policy::wan_names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WanId(pub u8);

/// A WAN group, by its index in [`Policy::groups`](crate::Policy::groups).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GroupId(pub u16);

/// A rule, by its index in [`Policy::rules`](crate::Policy::rules).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RuleId(pub u16);

/// The largest number of WANs a policy may name (the width of [`WanSet`]).
pub const MAX_WANS: usize = 64;

/// A set of WANs as a bitmask (bit w = `WanId(w)`); at most 64 WANs.
///
/// Operations on a WAN id ≥ 64 are ignored (`insert`, `remove`) or answer
/// `false` (`contains`); they never panic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct WanSet(pub u64);

impl WanSet {
    /// The empty set.
    pub const EMPTY: WanSet = WanSet(0);

    /// The set holding just `wan` (empty if `wan` is out of range).
    pub fn single(wan: WanId) -> WanSet {
        let mut s = WanSet::EMPTY;
        s.insert(wan);
        s
    }

    fn bit(wan: WanId) -> u64 {
        1u64.checked_shl(u32::from(wan.0)).unwrap_or(0)
    }

    /// Whether `wan` is in the set.
    pub fn contains(&self, wan: WanId) -> bool {
        self.0 & Self::bit(wan) != 0
    }

    /// Adds `wan` to the set.
    pub fn insert(&mut self, wan: WanId) {
        self.0 |= Self::bit(wan);
    }

    /// Removes `wan` from the set.
    pub fn remove(&mut self, wan: WanId) {
        self.0 &= !Self::bit(wan);
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }

    /// Number of WANs in the set.
    pub fn len(&self) -> usize {
        self.0.count_ones() as usize
    }

    /// Whether every WAN of `self` is also in `other`.
    pub fn is_subset(&self, other: WanSet) -> bool {
        self.0 & !other.0 == 0
    }

    /// The WANs in ascending order.
    pub fn iter(&self) -> WanSetIter {
        WanSetIter(self.0)
    }
}

impl IntoIterator for WanSet {
    type Item = WanId;
    type IntoIter = WanSetIter;
    fn into_iter(self) -> WanSetIter {
        self.iter()
    }
}

impl FromIterator<WanId> for WanSet {
    fn from_iter<I: IntoIterator<Item = WanId>>(iter: I) -> WanSet {
        let mut s = WanSet::EMPTY;
        for w in iter {
            s.insert(w);
        }
        s
    }
}

/// Iterator over a [`WanSet`], ascending.
#[derive(Clone, Debug)]
pub struct WanSetIter(u64);

impl Iterator for WanSetIter {
    type Item = WanId;
    fn next(&mut self) -> Option<WanId> {
        if self.0 == 0 {
            return None;
        }
        let w = self.0.trailing_zeros();
        self.0 &= self.0 - 1;
        // trailing_zeros of a non-zero u64 is < 64, so it fits a u8.
        Some(WanId(w as u8))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.0.count_ones() as usize;
        (n, Some(n))
    }
}

impl ExactSizeIterator for WanSetIter {}

impl fmt::Display for WanSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, w) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "wan{}", w.0)?;
        }
        f.write_str("}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_contains_remove() {
        let mut s = WanSet::default();
        assert!(s.is_empty());
        s.insert(WanId(0));
        s.insert(WanId(63));
        s.insert(WanId(5));
        assert!(s.contains(WanId(0)) && s.contains(WanId(5)) && s.contains(WanId(63)));
        assert!(!s.contains(WanId(1)));
        assert_eq!(s.len(), 3);
        assert_eq!(
            s.iter().collect::<Vec<_>>(),
            vec![WanId(0), WanId(5), WanId(63)]
        );
        s.remove(WanId(5));
        assert!(!s.contains(WanId(5)));
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn out_of_range_ids_are_ignored() {
        let mut s = WanSet::EMPTY;
        s.insert(WanId(64));
        s.insert(WanId(255));
        assert!(s.is_empty());
        assert!(!s.contains(WanId(64)));
        assert!(WanSet::single(WanId(200)).is_empty());
    }

    #[test]
    fn subset_and_display() {
        let a: WanSet = [WanId(1), WanId(2)].into_iter().collect();
        let b: WanSet = [WanId(1), WanId(2), WanId(3)].into_iter().collect();
        assert!(a.is_subset(b));
        assert!(!b.is_subset(a));
        assert_eq!(a.to_string(), "{wan1, wan2}");
    }
}
