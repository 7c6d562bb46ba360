//! Intrusive doubly linked lists over slab indices.
//!
//! A node's links live inside the slab element (`prev`, `next` as `u32` slot numbers, [`NIL`]
//! for none), so a list is just a head, a tail and a length, and moving an element costs a few
//! stores and never allocates. Elements enter at the head, so the head is the most recently
//! (re)inserted element and the tail the least; when an element is moved is the caller's
//! business (the session shards move a session at most once per second: see `shard.rs`). A
//! node is in at most one list; callers unlink before re-linking. Links are set through `&self`
//! (the session slab is shared with the lock-free readers of `shard.rs`, which never read
//! links): only the holder of the slab's lock may change them.

/// "No node".
pub(crate) const NIL: u32 = u32::MAX;

/// An element of a slab that can be linked into a [`List`].
pub(crate) trait Node {
    fn prev(&self) -> u32;
    fn next(&self) -> u32;
    fn set_prev(&self, i: u32);
    fn set_next(&self, i: u32);
}

/// A list of slab slots, most recently inserted first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct List {
    head: u32,
    tail: u32,
    len: u32,
}

impl Default for List {
    fn default() -> List {
        List::new()
    }
}

impl List {
    pub(crate) const fn new() -> List {
        List {
            head: NIL,
            tail: NIL,
            len: 0,
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> u32 {
        self.len
    }

    #[cfg(test)]
    pub(crate) fn head(&self) -> Option<u32> {
        (self.head != NIL).then_some(self.head)
    }

    /// The least recently inserted element.
    pub(crate) fn tail(&self) -> Option<u32> {
        (self.tail != NIL).then_some(self.tail)
    }

    /// Links slot `i` (currently in no list) at the head.
    pub(crate) fn push_front<N: Node>(&mut self, nodes: &[N], i: u32) {
        let old = self.head;
        if let Some(n) = nodes.get(i as usize) {
            n.set_prev(NIL);
            n.set_next(old);
        } else {
            return;
        }
        match nodes.get(old as usize) {
            Some(h) => h.set_prev(i),
            None => self.tail = i,
        }
        self.head = i;
        self.len += 1;
    }

    /// Unlinks slot `i`, which must be in this list.
    pub(crate) fn unlink<N: Node>(&mut self, nodes: &[N], i: u32) {
        let (prev, next) = match nodes.get(i as usize) {
            Some(n) => (n.prev(), n.next()),
            None => return,
        };
        match nodes.get(prev as usize) {
            Some(p) => p.set_next(next),
            None => self.head = next,
        }
        match nodes.get(next as usize) {
            Some(n) => n.set_prev(prev),
            None => self.tail = prev,
        }
        if let Some(n) = nodes.get(i as usize) {
            n.set_prev(NIL);
            n.set_next(NIL);
        }
        self.len = self.len.saturating_sub(1);
    }

    /// Moves slot `i`, which must be in this list, to the head. Writes nothing when it is
    /// already there; otherwise `i`, its neighbours and the old head.
    pub(crate) fn move_to_front<N: Node>(&mut self, nodes: &[N], i: u32) {
        if self.head == i {
            return;
        }
        self.unlink(nodes, i);
        self.push_front(nodes, i);
    }

    /// Iterates from tail (least recent) to head.
    pub(crate) fn iter_from_tail<'a, N: Node>(&self, nodes: &'a [N]) -> Iter<'a, N> {
        Iter {
            nodes,
            cur: self.tail,
            left: self.len,
            back: true,
        }
    }

    /// Iterates from head (most recent) to tail.
    pub(crate) fn iter<'a, N: Node>(&self, nodes: &'a [N]) -> Iter<'a, N> {
        Iter {
            nodes,
            cur: self.head,
            left: self.len,
            back: false,
        }
    }
}

/// Iterator over a list's slots, head first (or tail first: `back`).
#[derive(Debug)]
pub(crate) struct Iter<'a, N> {
    nodes: &'a [N],
    cur: u32,
    left: u32,
    back: bool,
}

impl<N: Node> Iterator for Iter<'_, N> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        // `left` bounds the walk even if links were ever corrupted.
        if self.left == 0 {
            return None;
        }
        let i = self.cur;
        let n = self.nodes.get(i as usize)?;
        self.cur = if self.back { n.prev() } else { n.next() };
        self.left -= 1;
        Some(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::cell::Cell;

    #[derive(Clone, Debug)]
    struct N {
        p: Cell<u32>,
        n: Cell<u32>,
    }

    impl Node for N {
        fn prev(&self) -> u32 {
            self.p.get()
        }
        fn next(&self) -> u32 {
            self.n.get()
        }
        fn set_prev(&self, i: u32) {
            self.p.set(i);
        }
        fn set_next(&self, i: u32) {
            self.n.set(i);
        }
    }

    fn nodes(k: usize) -> Vec<N> {
        vec![
            N {
                p: Cell::new(NIL),
                n: Cell::new(NIL)
            };
            k
        ]
    }

    fn items(l: &List, ns: &[N]) -> Vec<u32> {
        l.iter(ns).collect()
    }

    #[test]
    fn push_front_orders_most_recent_first() {
        let ns = nodes(4);
        let mut l = List::new();
        assert_eq!(l.tail(), None);
        for i in 0..4 {
            l.push_front(&ns, i);
        }
        assert_eq!(items(&l, &ns), [3, 2, 1, 0]);
        assert_eq!(l.tail(), Some(0));
        assert_eq!(l.head(), Some(3));
        assert_eq!(l.len(), 4);
        assert_eq!(l.iter_from_tail(&ns).collect::<Vec<_>>(), [0, 1, 2, 3]);
        assert_eq!(l.iter_from_tail(&ns).take(2).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(List::new().iter_from_tail(&ns).next(), None);
    }

    #[test]
    fn unlink_head_middle_tail_and_move_to_front() {
        let ns = nodes(5);
        let mut l = List::new();
        for i in 0..5 {
            l.push_front(&ns, i);
        }
        l.unlink(&ns, 2); // middle
        assert_eq!(items(&l, &ns), [4, 3, 1, 0]);
        l.unlink(&ns, 4); // head
        assert_eq!(items(&l, &ns), [3, 1, 0]);
        l.unlink(&ns, 0); // tail
        assert_eq!(items(&l, &ns), [3, 1]);
        assert_eq!(l.tail(), Some(1));
        l.unlink(&ns, 1); // move tail to front
        l.push_front(&ns, 1);
        assert_eq!(items(&l, &ns), [1, 3]);
        assert_eq!(l.tail(), Some(3));
        l.unlink(&ns, 1);
        l.unlink(&ns, 3);
        assert_eq!(l, List::new());
        assert!(items(&l, &ns).is_empty());
    }

    #[test]
    fn move_to_front_from_the_tail_the_middle_and_the_head() {
        let ns = nodes(4);
        let mut l = List::new();
        for i in 0..4 {
            l.push_front(&ns, i);
        }
        assert_eq!(items(&l, &ns), [3, 2, 1, 0]);
        l.move_to_front(&ns, 0); // tail
        assert_eq!(items(&l, &ns), [0, 3, 2, 1]);
        assert_eq!((l.head(), l.tail(), l.len()), (Some(0), Some(1), 4));
        l.move_to_front(&ns, 2); // middle
        assert_eq!(items(&l, &ns), [2, 0, 3, 1]);
        let before = format!("{ns:?}");
        l.move_to_front(&ns, 2); // head: nothing written
        assert_eq!(format!("{ns:?}"), before);
        assert_eq!(items(&l, &ns), [2, 0, 3, 1]);
        let mut one = List::new();
        let ms = nodes(1);
        one.push_front(&ms, 0);
        one.move_to_front(&ms, 0);
        assert_eq!((one.head(), one.tail(), one.len()), (Some(0), Some(0), 1));
    }

    #[test]
    fn two_lists_share_one_slab() {
        let ns = nodes(4);
        let mut a = List::new();
        let mut b = List::new();
        a.push_front(&ns, 0);
        b.push_front(&ns, 1);
        a.push_front(&ns, 2);
        b.push_front(&ns, 3);
        a.unlink(&ns, 0);
        b.push_front(&ns, 0);
        assert_eq!(items(&a, &ns), [2]);
        assert_eq!(items(&b, &ns), [0, 3, 1]);
    }
}
