//! One shard of the connection table: the sessions and mappings of the internal endpoints that
//! hash to it. Always used under its mutex (see `table.rs`).
//!
//! Holds a preallocated slab of [`Session`]s with a free list, a `HashTable<u32>` index of slot
//! numbers keyed by the canonical flow (the key is compared against the slab), the shard's
//! [`Mappings`], and one LRU list per timeout class. Invariants, at every unlock:
//! - a slot is either free (on the free list) or live (in the index, and in exactly the LRU list
//!   of its current class);
//! - every live session holds one reference to the mapping of (proto, internal, wan), and every
//!   mapping's external port is bound to its internal endpoint in its WAN's port table;
//! - `len` = live slots = index entries; mappings ≤ live sessions;
//! - the indexes never reallocate: they are rebuilt in place when out of room (`index.rs`).

use std::sync::atomic::Ordering;

use hashbrown::HashTable;

use crate::index::{out_of_room, slack_capacity};
use crate::key::{endpoint_word, Endpoint, KeyHasher, Proto};
use crate::lru::{List, NIL};
use crate::mapping::Mappings;
use crate::session::{NewSession, PacketInfo, Session};
use crate::stats::{add, bump};
use crate::table::{CreateError, Shared};
use crate::tcp::{Dir, Step};
use crate::timeouts::{Class, CLASS_COUNT};

/// Sessions and mappings of one shard.
#[derive(Debug)]
pub(crate) struct Shard {
    sessions: Vec<Session>,
    free: u32,
    len: u32,
    index: HashTable<u32>,
    lists: [List; CLASS_COUNT],
    mappings: Mappings,
}

fn session_hash(sessions: &[Session], hasher: &KeyHasher, slot: u32) -> u64 {
    sessions
        .get(slot as usize)
        .map_or(0, |s| hasher.flow(s.endpoint_word(), s.remote_word()))
}

impl Shard {
    /// A shard for `cap` sessions, everything preallocated. `None` if memory is unavailable.
    pub(crate) fn new(cap: u32, hasher: &KeyHasher) -> Option<Shard> {
        let mut sessions = Vec::new();
        sessions.try_reserve_exact(cap as usize).ok()?;
        sessions.extend((0..cap).map(|i| Session::vacant(if i + 1 < cap { i + 1 } else { NIL })));
        let mut index = HashTable::new();
        index
            .try_reserve(slack_capacity(cap as usize), |&s: &u32| {
                session_hash(&sessions, hasher, s)
            })
            .ok()?;
        Some(Shard {
            sessions,
            free: if cap > 0 { 0 } else { NIL },
            len: 0,
            index,
            lists: [List::new(); CLASS_COUNT],
            mappings: Mappings::new(cap, hasher)?,
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
        self.index
            .find(h, |&s| {
                sessions
                    .get(s as usize)
                    .is_some_and(|x| x.is(proto, internal, remote))
            })
            .copied()
    }

    /// Applies one packet travelling in `dir` to live session `slot` (flow hash `h`): expiry
    /// check, TCP state, counters, refresh, LRU move. Returns `false` when the session is gone
    /// instead (it was expired, or recycled by a SYN) and has been removed.
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
        if now > s.last_seen {
            s.last_seen = now;
        }
        let new_class = s.class();
        if new_class != class || self.lists[class.index()].head() != Some(slot) {
            self.lists[class.index()].unlink(&mut self.sessions, slot);
            self.lists[new_class.index()].push_front(&mut self.sessions, slot);
        }
        true
    }

    /// Removes live session `slot` (flow hash `h`): index, LRU list, mapping reference (and the
    /// port binding with the last one), slot to the free list, live counters.
    pub(crate) fn remove(&mut self, sh: &Shared, slot: u32, h: u64) {
        let Some(s) = self.sessions.get(slot as usize).copied() else {
            return;
        };
        self.lists[s.class().index()].unlink(&mut self.sessions, slot);
        if let Ok(e) = self.index.find_entry(h, |&x| x == slot) {
            e.remove();
        }
        let internal = s.internal();
        let mh = sh.hasher.mapping(s.endpoint_word(), s.wan);
        if let Some(port) = self.mappings.release(mh, s.proto, internal, s.wan) {
            if let Some(w) = sh.wans.get(usize::from(s.wan)) {
                w.ports.release(s.proto, port, internal);
            }
        }
        if let Some(v) = self.sessions.get_mut(slot as usize) {
            *v = Session::vacant(self.free);
        }
        self.free = slot;
        self.len = self.len.saturating_sub(1);
        sh.live.fetch_sub(1, Ordering::Relaxed);
        if let Some(c) = sh.wan_sessions.get(usize::from(s.wan)) {
            c.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Removes up to `budget` expired sessions by popping class tails; returns how many.
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

    /// Evicts the longest-idle session (the oldest of the class tails). Returns whether one was.
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

    /// Inserts a session for `new` (flow hash `h`) created by `pkt`, on the WAN
    /// [`choose_wan`](Self::choose_wan) picks: reuses the internal endpoint's mapping there or
    /// allocates a port and a mapping on `new.wan`. The caller has made room and checked that
    /// no session with this key exists.
    pub(crate) fn insert(
        &mut self,
        sh: &Shared,
        new: &NewSession,
        h: u64,
        pkt: PacketInfo,
        now: u64,
    ) -> Result<u32, CreateError> {
        let slot = self.free;
        let next_free = match self.sessions.get(slot as usize) {
            Some(s) => s.next,
            None => return Err(CreateError::TableFull),
        };
        if usize::from(new.wan) >= sh.wans.len() {
            return Err(CreateError::UnknownWan);
        }
        let proto = new.key.proto;
        let internal = new.key.src;
        let (wan_index, mh, mapping) = self.choose_wan(sh, new);
        let wan = sh
            .wans
            .get(usize::from(wan_index))
            .ok_or(CreateError::UnknownWan)?;
        let ext_port = match mapping {
            Some(m) => self.mappings.acquire(m).ok_or(CreateError::TableFull)?,
            None => {
                let port = wan
                    .ports
                    .allocate(proto, internal.port, internal)
                    .ok_or(CreateError::PortsExhausted)?;
                match self
                    .mappings
                    .insert(&sh.hasher, mh, proto, internal, wan_index, port)
                {
                    Some((_, rebuilt)) => {
                        if rebuilt {
                            bump(&sh.stats.index_rebuilds);
                        }
                    }
                    None => {
                        // unreachable while mappings <= sessions < capacity
                        wan.ports.release(proto, port, internal);
                        return Err(CreateError::TableFull);
                    }
                }
                port
            }
        };
        let egress = new.hairpin.map_or(wan.iface, |hp| hp.egress);
        let mut s = Session::create(new, wan_index, egress, ext_port, pkt.tcp_flags, now);
        if !pkt.icmp_error {
            s.count(true, pkt.len);
        }
        let class = s.class();
        if let Some(v) = self.sessions.get_mut(slot as usize) {
            *v = s;
        }
        self.free = next_free;
        if out_of_room(&self.index) {
            self.rebuild_index(&sh.hasher);
            bump(&sh.stats.index_rebuilds);
        }
        let Shard {
            sessions, index, ..
        } = self;
        index.insert_unique(h, slot, |&x| session_hash(sessions, &sh.hasher, x));
        self.lists[class.index()].push_front(&mut self.sessions, slot);
        self.len += 1;
        sh.live.fetch_add(1, Ordering::Relaxed);
        if let Some(c) = sh.wan_sessions.get(usize::from(wan_index)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        bump(&sh.stats.created);
        Ok(slot)
    }

    /// The WAN a new session of `new` uses, with the mapping hash of its internal endpoint
    /// there and the mapping itself if it exists. Endpoint-independent mapping across WANs
    /// (RFC 4787 REQ-1): the endpoint's mapping on `new.wan` if it has one; else its mapping on
    /// the lowest other WAN of `new.eligible` (not for hairpin sessions, which stay on
    /// `new.wan`); else `new.wan`, without a mapping. Probes one mapping per candidate WAN and
    /// stops at the first found.
    fn choose_wan(&self, sh: &Shared, new: &NewSession) -> (u8, u64, Option<u32>) {
        let proto = new.key.proto;
        let internal = new.key.src;
        let ep = endpoint_word(proto, internal);
        let mh = sh.hasher.mapping(ep, new.wan);
        if let Some(m) = self.mappings.find(mh, proto, internal, new.wan) {
            return (new.wan, mh, Some(m));
        }
        if new.hairpin.is_none() {
            let configured = match u32::try_from(sh.wans.len()) {
                Ok(n) if n < u64::BITS => (1u64 << n) - 1,
                _ => u64::MAX,
            };
            let preferred = 1u64.checked_shl(u32::from(new.wan)).unwrap_or(0);
            let mut rest = new.eligible & configured & !preferred;
            while rest != 0 {
                // below 64
                let w = rest.trailing_zeros() as u8;
                rest &= rest - 1;
                let h = sh.hasher.mapping(ep, w);
                if let Some(m) = self.mappings.find(h, proto, internal, w) {
                    return (w, h, Some(m));
                }
            }
        }
        (new.wan, mh, None)
    }

    /// Refills the index from the LRU lists (every live session), dropping tombstones. Keeps
    /// the index's memory (see `index.rs`).
    fn rebuild_index(&mut self, hasher: &KeyHasher) {
        let Shard {
            sessions,
            index,
            lists,
            ..
        } = self;
        index.clear();
        for l in lists.iter() {
            for slot in l.iter(sessions) {
                let h = session_hash(sessions, hasher, slot);
                index.insert_unique(h, slot, |&x| session_hash(sessions, hasher, x));
            }
        }
    }

    /// Whether `internal` has a mapping on `wan`.
    #[cfg(test)]
    pub(crate) fn has_mapping(
        &self,
        sh: &Shared,
        proto: Proto,
        internal: Endpoint,
        wan: u8,
    ) -> bool {
        let mh = sh.hasher.mapping(endpoint_word(proto, internal), wan);
        self.mappings.find(mh, proto, internal, wan).is_some()
    }

    /// Calls `f` on every live session, class by class, most recent first.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&Session)) {
        for l in &self.lists {
            for slot in l.iter(&self.sessions) {
                if let Some(s) = self.sessions.get(slot as usize) {
                    f(s);
                }
            }
        }
    }

    pub(crate) fn mapping_count(&self) -> u32 {
        self.mappings.len()
    }

    /// Heap bytes.
    pub(crate) fn memory(&self) -> usize {
        self.sessions.capacity() * std::mem::size_of::<Session>()
            + self.index.allocation_size()
            + self.mappings.memory()
    }

    /// Bucket counts of the session and mapping indexes (to check they never grow).
    #[cfg(test)]
    pub(crate) fn index_buckets(&self) -> (usize, usize) {
        (self.index.num_buckets(), self.mappings.index_buckets())
    }

    /// Checks the shard's structural invariants; returns a description of the first violation.
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
                let w = sh.wans.get(usize::from(s.wan)).ok_or("bad wan")?;
                if w.ports.owner(s.proto, s.ext_port) != Some(s.internal()) {
                    return Err(format!("slot {slot}: port {} not bound", s.ext_port));
                }
                if !self.has_mapping(sh, s.proto, s.internal(), s.wan) {
                    return Err(format!("slot {slot}: no mapping"));
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
        if listed != self.len || self.index.len() != self.len as usize {
            return Err(format!(
                "len {} listed {listed} indexed {}",
                self.len,
                self.index.len()
            ));
        }
        if listed + free != self.sessions.len() as u32 {
            return Err(format!("listed {listed} + free {free} != slots"));
        }
        if self.mappings.len() > self.len {
            return Err("more mappings than sessions".into());
        }
        Ok(())
    }
}
