//! One session shard of the connection table: the sessions whose canonical flow hashes to it.
//! Always used under its mutex (see `table.rs`); session removal also takes the mutex of the
//! session's mapping shard, after this one (lock order: session shard, then mapping shard).
//!
//! Holds a preallocated slab of [`Session`]s with a free list, a [`SlotIndex`] of slot numbers
//! keyed by the hash of the canonical flow (the key is compared against the slab), and one list
//! per timeout class. Invariants, at every unlock:
//! - a slot is either free (on the free list) or live (in the index, and in exactly the list
//!   of its current class);
//! - every live session holds one reference to the mapping of (proto, internal, wan) in that
//!   endpoint's mapping shard; a removed session has given its reference back;
//! - `len` = live slots = index entries;
//! - the index never reallocates, and never needs a rebuild (`index.rs`).
//!
//! # Class lists: in order of last packet, to within one second
//!
//! A lookup hit moves its session to the head of its class list only when the packet is in a
//! later whole second (of the caller's time) than the session's previous packet, or when it
//! changes the session's timeout class (SynSent → Established and the like: the session then
//! moves to the head of its new class's list). Any other hit writes the session alone
//! (`last_seen`, counters, TCP state). So a session moves at most once per second: a flow of
//! many packets a second pays the list writes (its neighbours' links and the old head's, cold
//! cache lines in a large table) once a second rather than per packet, and a flow whose packets
//! are a second or more apart moves at each, as under exact LRU.
//!
//! Invariant: each class list is in order of (re)insertion at its head (creation or a move),
//! and every session's last packet is in the whole second of its last (re)insertion, at or
//! after it. So for sessions A ahead of B (nearer the tail) in a class list, with last packets
//! `L_A` and `L_B`: `L_A < L_B + 1 s` (A was (re)inserted no later than B, B's last packet is
//! no earlier than B's (re)insertion, and A's is less than a second after A's). The list is in
//! LRU order to within one second; anything ahead of a session has its deadline (`last_seen` +
//! class timeout) less than a second after the session's own. No "moved at" stamp is stored:
//! the second of the last move is the second of `last_seen`, and `u64` nanoseconds do not wrap.
//! (Workers' clocks are not quite in step; their skew adds to the second.)
//!
//! `expire` pops the class tails that are expired and stops a class at the first tail that is
//! not: no scan, no work on the sessions that stay. With `D` a session's deadline:
//! - nothing is removed before its deadline: every removal, by `expire` or by a lookup hit,
//!   checks the session's own deadline;
//! - whatever the other sessions do, a session is removed by the first `expire` pass over its
//!   shard (with budget enough to reach it) at or after `D + 1 s`, since everything ahead of it
//!   has expired by then; so with a pass every second it goes less than 2 s after `D`.
//!
//! `evict_oldest` evicts the longest-idle of the class tails: the shard's longest-idle session
//! to within one second (a session behind a tail went idle at most a second before it).
//!
//! Why hits move sessions themselves rather than flag them for a sweep to re-queue (second
//! chance, CLOCK): a flagged session's list position can be much older than its last packet,
//! and a sweep that stops at an idle tail re-queues the flagged sessions behind it only when it
//! gets past it, up to a timeout later, behind everything created meanwhile. A flow answered
//! right after creation but queued behind an unanswered one then lived almost twice its
//! timeout, holding its slot and its NAT port.

use crate::index::SlotIndex;
use crate::key::{Endpoint, KeyHasher, Proto};
use crate::lru::{List, NIL};
use crate::session::{NewSession, PacketInfo, Session};
use crate::stats::{add, bump};
use crate::table::Shared;
use crate::tcp::{Dir, Step};
use crate::timeouts::{Class, CLASS_COUNT};

/// Lines between the first free slots of consecutive shards (see `Shard::new`): 64 shards
/// cover a 4 KiB page's 64 lines once, with a few sessions each before they overlap.
const STAGGER: u64 = 5;

/// The sessions of one shard.
#[derive(Debug)]
pub(crate) struct Shard {
    /// Index of this shard in the table (of its [`ShardCounts`](crate::stats::ShardCounts)).
    id: usize,
    sessions: Vec<Session>,
    free: u32,
    len: u32,
    index: SlotIndex,
    lists: [List; CLASS_COUNT],
}

fn session_hash(sessions: &[Session], hasher: &KeyHasher, slot: u32) -> u64 {
    sessions
        .get(slot as usize)
        .map_or(0, |s| hasher.flow(s.endpoint_word(), s.remote_word()))
}

impl Shard {
    /// Shard number `id` of its table, for `cap` sessions, everything preallocated. `None` if
    /// memory is unavailable.
    pub(crate) fn new(id: usize, cap: u32) -> Option<Shard> {
        let mut sessions = Vec::new();
        sessions.try_reserve_exact(cap as usize).ok()?;
        // The free list runs from `start` round the slab. Slabs are usually a power of two of
        // 64-byte lines, so slot k of every shard sits at the same page offset: had every shard
        // started at slot 0, a table of few sessions would crowd them all into the same few
        // cache sets. Shard `id` starts `STAGGER * id` lines in.
        let start = (id as u64 * STAGGER % u64::from(cap.max(1))) as u32;
        sessions.extend((0..cap).map(|i| {
            let next = if i + 1 < cap { i + 1 } else { 0 };
            Session::vacant(if next == start { NIL } else { next })
        }));
        let index = SlotIndex::new(cap)?;
        Some(Shard {
            id,
            sessions,
            free: if cap > 0 { start } else { NIL },
            len: 0,
            index,
            lists: [List::new(); CLASS_COUNT],
        })
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> u32 {
        self.len
    }

    pub(crate) fn is_full(&self) -> bool {
        self.free == NIL
    }

    pub(crate) fn session(&self, slot: u32) -> Option<&Session> {
        self.sessions.get(slot as usize)
    }

    /// Slot of the session with canonical key (proto, internal, remote); `h` is its flow hash.
    #[inline]
    pub(crate) fn find(
        &self,
        h: u64,
        proto: Proto,
        internal: Endpoint,
        remote: Endpoint,
    ) -> Option<u32> {
        let sessions = &self.sessions;
        self.index.find(h, |s| {
            sessions
                .get(s as usize)
                .is_some_and(|x| x.is(proto, internal, remote))
        })
    }

    /// Applies one packet travelling in `dir` to live session `slot` (flow hash `h`): expiry
    /// check, TCP state, counters, refresh. Writes this session only, unless the packet is the
    /// first of a later second than the session's previous one (the session then moves to its
    /// list's head) or changes its timeout class (it then moves to the head of its new class's
    /// list): see the module docs. Returns `false` when the session is gone instead (it was
    /// expired, or recycled by a SYN) and has been removed.
    #[inline]
    pub(crate) fn touch(
        &mut self,
        sh: &Shared,
        slot: u32,
        h: u64,
        dir: Dir,
        pkt: PacketInfo,
        now: u64,
    ) -> bool {
        let Some(s) = self.sessions.get_mut(slot as usize) else {
            return false;
        };
        let class = s.class();
        if sh.timeouts.expired(class, s.last_seen, now) {
            self.remove(sh, slot, h);
            bump(&sh.stats.expired);
            return false;
        }
        if pkt.icmp_error {
            return true;
        }
        if s.proto == Proto::Tcp {
            match s.tcp.step(dir, pkt.tcp_flags) {
                Step::Recycle => {
                    self.remove(sh, slot, h);
                    bump(&sh.stats.recycled);
                    return false;
                }
                Step::Keep { track, reset } => {
                    s.tcp = track;
                    if reset {
                        bump(&sh.stats.closed_by_rst);
                    }
                }
            }
        }
        s.count(dir == Dir::Original, pkt.len);
        let due = s.refresh(now);
        let new_class = s.class();
        if new_class != class {
            self.lists[class.index()].unlink(&mut self.sessions, slot);
            self.lists[new_class.index()].push_front(&mut self.sessions, slot);
        } else if due {
            self.lists[class.index()].move_to_front(&mut self.sessions, slot);
        }
        true
    }

    /// Removes live session `slot` (flow hash `h`): index, class list, mapping reference (taking
    /// the mapping shard's lock; the mapping and its port binding go with the last reference),
    /// slot to the free list, live counters.
    pub(crate) fn remove(&mut self, sh: &Shared, slot: u32, h: u64) {
        let Some(s) = self.sessions.get(slot as usize).copied() else {
            return;
        };
        self.lists[s.class().index()].unlink(&mut self.sessions, slot);
        let Shard {
            sessions, index, ..
        } = self;
        index.remove(h, slot, |x| session_hash(sessions, &sh.hasher, x));
        sh.mappings_of(s.endpoint_word())
            .unref(sh, s.proto, s.internal(), s.wan());
        if let Some(v) = self.sessions.get_mut(slot as usize) {
            *v = Session::vacant(self.free);
        }
        self.free = slot;
        self.len = self.len.saturating_sub(1);
        if let Some(c) = sh.counts.get(self.id) {
            c.removed(s.wan());
        }
    }

    /// Removes up to `budget` expired sessions by popping class tails, stopping each class at
    /// its first tail that is not expired (see the module docs); returns how many.
    pub(crate) fn expire(&mut self, sh: &Shared, now: u64, budget: usize) -> usize {
        let mut n = 0;
        for c in Class::ALL {
            while n < budget {
                let Some(t) = self.lists[c.index()].tail() else {
                    break;
                };
                let Some(s) = self.sessions.get(t as usize) else {
                    break;
                };
                if !sh.timeouts.expired(c, s.last_seen, now) {
                    break;
                }
                let h = sh.hasher.flow(s.endpoint_word(), s.remote_word());
                self.remove(sh, t, h);
                n += 1;
            }
        }
        add(&sh.stats.expired, n as u64);
        n
    }

    /// Evicts the longest-idle of the class tails: the shard's longest-idle session to within
    /// one second (see the module docs). Returns whether a session was evicted.
    pub(crate) fn evict_oldest(&mut self, sh: &Shared) -> bool {
        let mut oldest: Option<(u64, u32)> = None;
        for l in &self.lists {
            if let Some(t) = l.tail() {
                if let Some(s) = self.sessions.get(t as usize) {
                    if oldest.is_none_or(|(ls, _)| s.last_seen < ls) {
                        oldest = Some((s.last_seen, t));
                    }
                }
            }
        }
        let Some((_, t)) = oldest else {
            return false;
        };
        let h = session_hash(&self.sessions, &sh.hasher, t);
        self.remove(sh, t, h);
        bump(&sh.stats.evicted);
        true
    }

    /// Inserts a session for `new` (flow hash `h`) created by `pkt`, on WAN `wan` with external
    /// port `ext_port` (the caller has taken its mapping reference, made room and checked that
    /// no session with this key exists). Returns its slot; `None`, changing nothing, when the
    /// shard has no free slot.
    pub(crate) fn insert(
        &mut self,
        sh: &Shared,
        new: &NewSession,
        h: u64,
        (wan, ext_port): (u8, u16),
        pkt: PacketInfo,
        now: u64,
    ) -> Option<u32> {
        let slot = self.free;
        let next_free = self.sessions.get(slot as usize)?.next;
        sh.wans.get(usize::from(wan))?;
        let mut s = Session::create(new, wan, ext_port, pkt.tcp_flags, now);
        if !pkt.icmp_error {
            s.count(true, pkt.len);
        }
        let class = s.class();
        if let Some(v) = self.sessions.get_mut(slot as usize) {
            *v = s;
        }
        self.free = next_free;
        // The index has room for every slot of the slab.
        self.index.insert(h, slot);
        self.lists[class.index()].push_front(&mut self.sessions, slot);
        self.len += 1;
        if let Some(c) = sh.counts.get(self.id) {
            c.inserted(wan);
        }
        Some(slot)
    }

    /// Calls `f` on every live session, class by class, most recently (re)inserted first.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&Session)) {
        for l in &self.lists {
            for slot in l.iter(&self.sessions) {
                if let Some(s) = self.sessions.get(slot as usize) {
                    f(s);
                }
            }
        }
    }

    /// Heap bytes.
    pub(crate) fn memory(&self) -> usize {
        self.sessions.capacity() * std::mem::size_of::<Session>() + self.index.memory()
    }

    /// Slots of each class list, head first (tests).
    #[cfg(test)]
    pub(crate) fn class_lists(&self) -> Vec<Vec<u32>> {
        self.lists
            .iter()
            .map(|l| l.iter(&self.sessions).collect())
            .collect()
    }

    /// Every slot of the slab, live or free, as its `Debug` text (links and all),
    /// and the lists' heads, tails and lengths (tests: to see what an operation wrote).
    #[cfg(test)]
    pub(crate) fn raw(&self) -> (Vec<String>, String) {
        let slots = self.sessions.iter().map(|s| format!("{s:?}")).collect();
        (slots, format!("{:?} free {}", self.lists, self.free))
    }

    /// Bucket count of the session index (to check it never grows).
    #[cfg(test)]
    pub(crate) fn index_buckets(&self) -> usize {
        self.index.buckets()
    }

    /// Checks the shard's structural invariants; returns a description of the first violation.
    /// (Mapping references are checked table-wide, see `ConnTable::check`.)
    #[cfg(test)]
    pub(crate) fn check(&self, sh: &Shared) -> Result<(), String> {
        let mut listed = 0u32;
        for (ci, l) in self.lists.iter().enumerate() {
            for slot in l.iter(&self.sessions) {
                let s = self.sessions.get(slot as usize).ok_or("bad slot")?;
                if s.class().index() != ci {
                    return Err(format!(
                        "slot {slot} in list {ci} has class {:?}",
                        s.class()
                    ));
                }
                let h = session_hash(&self.sessions, &sh.hasher, slot);
                if self.find(h, s.proto, s.internal(), s.remote()) != Some(slot) {
                    return Err(format!("slot {slot} not indexed"));
                }
                let w = sh.wans.get(usize::from(s.wan())).ok_or("bad wan")?;
                if w.ports.owner(s.proto, s.ext_port) != Some(s.internal()) {
                    return Err(format!("slot {slot}: port {} not bound", s.ext_port));
                }
                listed += 1;
            }
        }
        let mut free = 0u32;
        let mut f = self.free;
        while f != NIL {
            free += 1;
            f = self.sessions.get(f as usize).ok_or("bad free slot")?.next;
            if free > self.sessions.len() as u32 {
                return Err("free list cycle".into());
            }
        }
        self.index
            .check(|x| session_hash(&self.sessions, &sh.hasher, x))?;
        if listed != self.len || self.index.len() != self.len {
            return Err(format!(
                "len {} listed {listed} indexed {}",
                self.len,
                self.index.len()
            ));
        }
        if listed + free != self.sessions.len() as u32 {
            return Err(format!("listed {listed} + free {free} != slots"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_lists_start_staggered_and_cover_the_slab() {
        for (id, cap) in [(0, 8u32), (1, 8), (2, 8), (7, 3), (3, 1), (100, 8192)] {
            let shard = Shard::new(id, cap).unwrap();
            assert_eq!(u64::from(shard.free), id as u64 * STAGGER % u64::from(cap));
            let mut seen = vec![false; cap as usize];
            let mut f = shard.free;
            while f != NIL {
                let s = seen.get_mut(f as usize).unwrap();
                assert!(!*s, "slot {f} twice");
                *s = true;
                f = shard.session(f).unwrap().next;
            }
            assert!(seen.iter().all(|&s| s), "id {id} cap {cap}");
        }
    }
}
