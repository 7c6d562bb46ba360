//! Endpoint-independent mappings: (proto, internal endpoint, WAN) → external port, in their
//! own shards keyed by the hash of (proto, internal endpoint), so that all the mappings of an
//! endpoint (one per WAN) share a shard whichever session shards its sessions live in.
//!
//! Every session holds one reference to the mapping of its internal endpoint on its WAN, so
//! all sessions of an endpoint on a WAN share one external port (RFC 4787 REQ-1, RFC 5382
//! REQ-1). The last reference to go removes the mapping and releases the port in the WAN's
//! port table. A mapping shard is only touched under its mutex, which is always taken after
//! the session shard's (lock order: session shard, then mapping shard, then host shard): by
//! `create` ([`Mappings::claim`], which takes the host shard's lock to count the session and
//! any new mapping against the host's caps) and by session removal ([`Mappings::unref`]).
//!
//! Storage is a preallocated slab with a free list (threaded through the reference-count
//! field) and a [`SlotIndex`] of slot numbers (see `index.rs`): nothing here allocates after
//! construction. A shard is sized by
//! [`shard_capacity`]: mappings never outnumber sessions table-wide, but they are placed by
//! endpoint while sessions are placed by flow, so a mapping shard's share of them varies around
//! the session shard size and gets some headroom above it.

use std::sync::Arc;

use crate::index::SlotIndex;
use crate::key::{endpoint_word, Endpoint, KeyHasher, Proto};
use crate::lru::NIL;
use crate::session::NewSession;
use crate::table::{CreateError, Shared};

/// Mappings one mapping shard holds, for `shards` mapping shards beside as many session shards
/// of `shard_cap` sessions each: the session shard size plus `8 √shard_cap + 8`, but never more
/// than the whole table's sessions.
///
/// Why the headroom: with every session on its own internal endpoint (the common case: clients
/// pick a fresh source port per connection) a full table has one mapping per session, placed by
/// the endpoint's hash; a mapping shard then holds a binomial share with mean `shard_cap` and
/// standard deviation below `√shard_cap`, so at exactly `shard_cap` half of the mapping shards
/// would turn creations away while the table had room. Eight standard deviations keep a
/// mapping shard from filling before the session shards (which are placed uniformly by flow
/// and fill first) in all but astronomically rare cases; small tables simply get the whole
/// capacity per mapping shard. It costs 16 bytes per extra slot (plus its index share): 1 to 2
/// bytes per session of capacity for shards of 4096 to 16384 sessions.
pub(crate) fn shard_capacity(shard_cap: u32, shards: u32) -> u32 {
    let total = u64::from(shard_cap) * u64::from(shards);
    let extra = 8 * u64::from(shard_cap.isqrt()) + 8;
    let cap = (u64::from(shard_cap) + extra).min(total);
    // slot numbers stay below NIL
    u32::try_from(cap).unwrap_or(NIL - 1).min(NIL - 1)
}

/// Bytes of a [`Mapping`].
pub(crate) const MAPPING_SIZE: usize = std::mem::size_of::<Mapping>();

/// `wan` of a free slot (WAN indexes are below 64).
const FREE_WAN: u8 = u8::MAX;

/// One mapping (16 bytes: [`MAPPING_SIZE`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mapping {
    ip: u32,
    /// Reference count while in use; next free slot while free.
    refs: u32,
    port: u16,
    pub(crate) ext_port: u16,
    proto: Proto,
    wan: u8,
}

impl Mapping {
    fn internal(&self) -> Endpoint {
        Endpoint::new(self.ip.into(), self.port)
    }

    fn word(&self) -> u64 {
        endpoint_word(self.proto, self.internal())
    }

    fn is(&self, proto: Proto, internal: Endpoint, wan: u8) -> bool {
        self.ip == u32::from(internal.ip)
            && self.port == internal.port
            && self.wan == wan
            && self.proto == proto
    }
}

/// The mappings of one mapping shard.
#[derive(Debug)]
pub(crate) struct Mappings {
    slab: Vec<Mapping>,
    free: u32,
    len: u32,
    /// Shared with the table's mapping cell, which reads it without the lock to prefetch.
    index: Arc<SlotIndex>,
}

impl Mappings {
    /// Room for `cap` mappings, all preallocated. `None` if memory is unavailable.
    pub(crate) fn new(cap: u32) -> Option<Mappings> {
        let n = cap as usize;
        let mut slab = Vec::new();
        slab.try_reserve_exact(n).ok()?;
        slab.extend((0..cap).map(|i| Mapping {
            ip: 0,
            refs: if i + 1 < cap { i + 1 } else { NIL },
            port: 0,
            ext_port: 0,
            proto: Proto::Udp,
            wan: FREE_WAN,
        }));
        let index = Arc::new(SlotIndex::new(cap)?);
        Some(Mappings {
            slab,
            free: if cap > 0 { 0 } else { NIL },
            len: 0,
            index,
        })
    }

    pub(crate) fn len(&self) -> u32 {
        self.len
    }

    /// The index, for lock-free prefetching (only the lock holder changes it).
    pub(crate) fn index(&self) -> Arc<SlotIndex> {
        Arc::clone(&self.index)
    }

    /// The slab's address (fixed: the slab never reallocates), for lock-free prefetching.
    pub(crate) fn slab_address(&self) -> usize {
        self.slab.as_ptr() as usize
    }

    /// Address and length of the slab and of the index entries.
    pub(crate) fn regions(&self) -> [(usize, usize); 2] {
        let slab = self.slab.capacity() * MAPPING_SIZE;
        [(self.slab_address(), slab), self.index.region()]
    }

    /// The mapping of `internal` on `wan`; `h` = `hasher.endpoint(..)` of the endpoint (all of
    /// an endpoint's mappings, one per WAN, share its hash, so they lie in one probe run: one
    /// cache line answers "which WANs is this endpoint mapped on").
    #[inline]
    pub(crate) fn find(&self, h: u64, proto: Proto, internal: Endpoint, wan: u8) -> Option<u32> {
        let slab = &self.slab;
        self.index.find(h, |s| {
            slab.get(s as usize)
                .is_some_and(|m| m.is(proto, internal, wan))
        })
    }

    /// Adds a reference to mapping `slot`; returns its external port.
    pub(crate) fn acquire(&mut self, slot: u32) -> Option<u16> {
        let m = self.slab.get_mut(slot as usize)?;
        m.refs = m.refs.saturating_add(1);
        Some(m.ext_port)
    }

    /// Inserts a new mapping (hash `h`) with one reference; returns its slot. `None` when the
    /// slab is full.
    pub(crate) fn insert(
        &mut self,
        h: u64,
        proto: Proto,
        internal: Endpoint,
        wan: u8,
        ext_port: u16,
    ) -> Option<u32> {
        let slot = self.free;
        let m = self.slab.get_mut(slot as usize)?;
        self.free = m.refs;
        *m = Mapping {
            ip: internal.ip.into(),
            refs: 1,
            port: internal.port,
            ext_port,
            proto,
            wan,
        };
        // The index has room for every slot of the slab.
        self.index.insert(h, slot);
        self.len += 1;
        Some(slot)
    }

    /// Drops one reference to the mapping of `internal` on `wan`. When it was the last one the
    /// mapping is removed and its external port returned, for the caller to release.
    pub(crate) fn release(
        &mut self,
        hasher: &KeyHasher,
        h: u64,
        proto: Proto,
        internal: Endpoint,
        wan: u8,
    ) -> Option<u16> {
        let slot = self.find(h, proto, internal, wan)?;
        let m = self.slab.get_mut(slot as usize)?;
        m.refs = m.refs.saturating_sub(1);
        if m.refs > 0 {
            return None;
        }
        let port = m.ext_port;
        let Mappings { slab, index, .. } = self;
        // before the slot is freed: the slab gives the hashes of the entries that move back
        index.remove(h, slot, |x| slot_hash(slab, hasher, x));
        if let Some(m) = self.slab.get_mut(slot as usize) {
            m.refs = self.free;
            m.wan = FREE_WAN;
        }
        self.free = slot;
        self.len -= 1;
        Some(port)
    }

    /// The WAN and external port of a new session of `new`, with the reference to its mapping
    /// taken (the caller holds the session shard's lock and inserts the session, or gives the
    /// reference back with [`unref`](Self::unref)). Endpoint-independent mapping across WANs
    /// (RFC 4787 REQ-1), in this order:
    /// 1. the internal endpoint's mapping on `new.wan`, if it has one;
    /// 2. else its mapping on the lowest other WAN of `new.eligible`, if any (not for hairpin
    ///    sessions, which stay on `new.wan`);
    /// 3. else a new mapping on `new.wan`, with a port allocated in its port table (the
    ///    internal port if free, else the next free one).
    ///
    /// Probes one mapping per candidate WAN and stops at the first found. The session is
    /// counted for its host on the chosen WAN (`hosts.rs`), with the new mapping if one is
    /// made: [`CreateError::HostSessionLimit`] or [`CreateError::HostPortLimit`] when the
    /// host's caps forbid it, taking nothing.
    pub(crate) fn claim(
        &mut self,
        sh: &Shared,
        new: &NewSession,
    ) -> Result<(u8, u16), CreateError> {
        let proto = new.key.proto;
        let internal = new.key.src;
        let wan = sh
            .wans
            .get(usize::from(new.wan))
            .ok_or(CreateError::UnknownWan)?;
        let ep = endpoint_word(proto, internal);
        let mh = sh.hasher.endpoint(ep);
        if let Some(m) = self.find(mh, proto, internal, new.wan) {
            return self.reuse(sh, m, internal, new.wan);
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
                if let Some(m) = self.find(mh, proto, internal, w) {
                    return self.reuse(sh, m, internal, w);
                }
            }
        }
        if self.free == NIL {
            // the shard's share of mappings is far above its mean (see `shard_capacity`)
            return Err(CreateError::TableFull);
        }
        // lock order: the host shard is taken (and released) under the mapping shard's lock
        sh.hosts.admit(internal.ip, new.wan, true)?;
        let Some(port) = wan.ports.allocate(proto, internal.port, internal) else {
            sh.hosts.release(internal.ip, new.wan, true);
            return Err(CreateError::PortsExhausted);
        };
        match self.insert(mh, proto, internal, new.wan, port) {
            Some(_) => Ok((new.wan, port)),
            None => {
                // unreachable: a free slot was checked above
                wan.ports.release(proto, port, internal);
                sh.hosts.release(internal.ip, new.wan, true);
                Err(CreateError::TableFull)
            }
        }
    }

    /// A new session's reference to existing mapping `slot` of `internal` on `wan`, counted
    /// against its host's session cap (not its port cap: the port is the mapping's already).
    fn reuse(
        &mut self,
        sh: &Shared,
        slot: u32,
        internal: Endpoint,
        wan: u8,
    ) -> Result<(u8, u16), CreateError> {
        sh.hosts.admit(internal.ip, wan, false)?;
        match self.acquire(slot) {
            Some(port) => Ok((wan, port)),
            None => {
                // unreachable: `slot` was found in the slab
                sh.hosts.release(internal.ip, wan, false);
                Err(CreateError::TableFull)
            }
        }
    }

    /// Gives back one reference to the mapping of (`proto`, `internal`) on `wan` (a session of
    /// it is being removed). With the last one the mapping is removed and its external port
    /// released in the WAN's port table; returns whether it was (for the caller to take the
    /// port off its host's count, `hosts.rs`, once this shard's lock is released).
    pub(crate) fn unref(&mut self, sh: &Shared, proto: Proto, internal: Endpoint, wan: u8) -> bool {
        let mh = sh.hasher.endpoint(endpoint_word(proto, internal));
        let Some(port) = self.release(&sh.hasher, mh, proto, internal, wan) else {
            return false;
        };
        if let Some(w) = sh.wans.get(usize::from(wan)) {
            w.ports.release(proto, port, internal);
        }
        true
    }

    /// Heap bytes.
    pub(crate) fn memory(&self) -> usize {
        self.slab.capacity() * std::mem::size_of::<Mapping>() + self.index.memory()
    }

    /// Slots in the slab.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.slab.len()
    }

    /// Whether (`proto`, `internal`) has a mapping on `wan`.
    #[cfg(test)]
    pub(crate) fn has(
        &self,
        hasher: &KeyHasher,
        proto: Proto,
        internal: Endpoint,
        wan: u8,
    ) -> bool {
        let h = hasher.endpoint(endpoint_word(proto, internal));
        self.find(h, proto, internal, wan).is_some()
    }

    /// Calls `f(proto, internal, wan, ext_port, refs)` on every live mapping.
    #[cfg(test)]
    pub(crate) fn for_each(&self, mut f: impl FnMut(Proto, Endpoint, u8, u16, u32)) {
        for m in self.slab.iter().filter(|m| m.wan != FREE_WAN) {
            f(m.proto, m.internal(), m.wan, m.ext_port, m.refs);
        }
    }

    /// Checks the slab's structure: free list, index, counts; every live mapping indexed, with
    /// references, and its port bound to its endpoint in its WAN's port table.
    #[cfg(test)]
    pub(crate) fn check(&self, sh: &Shared) -> Result<(), String> {
        let mut live = 0u32;
        for (i, m) in self.slab.iter().enumerate() {
            if m.wan == FREE_WAN {
                continue;
            }
            live += 1;
            let h = sh.hasher.endpoint(m.word());
            if self.find(h, m.proto, m.internal(), m.wan) != Some(i as u32) {
                return Err(format!("mapping {i} not indexed"));
            }
            if m.refs == 0 {
                return Err(format!("mapping {i} has no reference"));
            }
            let w = sh
                .wans
                .get(usize::from(m.wan))
                .ok_or("mapping on a bad wan")?;
            if w.ports.owner(m.proto, m.ext_port) != Some(m.internal()) {
                return Err(format!("mapping {i}: port {} not bound", m.ext_port));
            }
        }
        self.index.check(|x| slot_hash(&self.slab, &sh.hasher, x))?;
        let next = |m: &Mapping| (m.wan == FREE_WAN).then_some(m.refs);
        self.index
            .check_slab("mappings", &self.slab, (self.free, next), live, self.len)
    }

    #[cfg(test)]
    pub(crate) fn index_buckets(&self) -> usize {
        self.index.buckets()
    }

    #[cfg(test)]
    pub(crate) fn refs(&self, slot: u32) -> u32 {
        self.slab.get(slot as usize).map_or(0, |m| m.refs)
    }
}

fn slot_hash(slab: &[Mapping], hasher: &KeyHasher, s: u32) -> u64 {
    slab.get(s as usize)
        .map_or(0, |m| hasher.endpoint(m.word()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ep(a: u8, port: u16) -> Endpoint {
        Endpoint::new(Ipv4Addr::new(10, 1, 1, a), port)
    }

    fn h(k: &KeyHasher, proto: Proto, e: Endpoint, _wan: u8) -> u64 {
        k.endpoint(endpoint_word(proto, e))
    }

    #[test]
    fn shard_capacity_adds_headroom_up_to_the_table() {
        assert_eq!(shard_capacity(4096, 16), 4096 + 8 * 64 + 8);
        assert_eq!(shard_capacity(179, 2), 179 + 8 * 13 + 8);
        // small tables: every mapping shard can hold the whole table's worth
        assert_eq!(shard_capacity(16, 4), 16 + 32 + 8);
        assert_eq!(shard_capacity(7, 4), 28);
        assert_eq!(shard_capacity(1, 1), 1);
        assert_eq!(shard_capacity(u32::MAX, 1), NIL - 1);
        assert_eq!(shard_capacity(0, 4), 0);
    }

    #[test]
    fn refcounted_insert_find_release() {
        let k = KeyHasher::new(7);
        let mut m = Mappings::new(4).expect("alloc");
        let e = ep(1, 5000);
        let hh = h(&k, Proto::Udp, e, 0);
        assert_eq!(m.find(hh, Proto::Udp, e, 0), None);
        let s = m.insert(hh, Proto::Udp, e, 0, 6000).expect("room");
        assert_eq!(m.find(hh, Proto::Udp, e, 0), Some(s));
        assert_eq!(m.find(h(&k, Proto::Tcp, e, 0), Proto::Tcp, e, 0), None);
        assert_eq!(m.find(h(&k, Proto::Udp, e, 1), Proto::Udp, e, 1), None);
        assert_eq!(m.acquire(s), Some(6000));
        assert_eq!(m.refs(s), 2);
        assert_eq!(m.release(&k, hh, Proto::Udp, e, 0), None);
        assert_eq!(m.len(), 1);
        assert_eq!(m.release(&k, hh, Proto::Udp, e, 0), Some(6000));
        assert_eq!(m.len(), 0);
        assert_eq!(m.find(hh, Proto::Udp, e, 0), None);
        assert_eq!(m.release(&k, hh, Proto::Udp, e, 0), None);
    }

    #[test]
    fn slab_full_then_reused() {
        let k = KeyHasher::new(7);
        let mut m = Mappings::new(2).expect("alloc");
        let hs: Vec<_> = (0..3).map(|i| h(&k, Proto::Tcp, ep(i, 1), 0)).collect();
        assert!(m.insert(hs[0], Proto::Tcp, ep(0, 1), 0, 1).is_some());
        assert!(m.insert(hs[1], Proto::Tcp, ep(1, 1), 0, 2).is_some());
        assert!(m.insert(hs[2], Proto::Tcp, ep(2, 1), 0, 3).is_none());
        assert_eq!(m.release(&k, hs[0], Proto::Tcp, ep(0, 1), 0), Some(1));
        assert!(m.insert(hs[2], Proto::Tcp, ep(2, 1), 0, 3).is_some());
        assert_eq!(m.len(), 2);
        let empty = Mappings::new(0).expect("alloc");
        assert_eq!(empty.len(), 0);
    }

    #[test]
    fn churn_never_grows_the_index_and_finds_stay_correct() {
        let k = KeyHasher::new(3);
        let cap = 179u32;
        let mut m = Mappings::new(cap).expect("alloc");
        let buckets = m.index_buckets();
        let e = |i: u32| Endpoint::new(Ipv4Addr::from(i), 1);
        // keep the slab full, replacing the oldest mapping at each step
        for i in 0..cap {
            m.insert(h(&k, Proto::Udp, e(i), 0), Proto::Udp, e(i), 0, 1)
                .expect("room");
        }
        for i in cap..30_000 {
            let old = e(i - cap);
            assert_eq!(
                m.release(&k, h(&k, Proto::Udp, old, 0), Proto::Udp, old, 0),
                Some(1)
            );
            m.insert(h(&k, Proto::Udp, e(i), 0), Proto::Udp, e(i), 0, 1)
                .expect("room");
        }
        assert_eq!(m.index_buckets(), buckets, "the index grew");
        for i in 30_000 - cap..30_000 {
            let hh = h(&k, Proto::Udp, e(i), 0);
            assert!(m.find(hh, Proto::Udp, e(i), 0).is_some(), "{i} lost");
        }
        assert_eq!(m.len(), cap);
        m.index
            .check(|x| slot_hash(&m.slab, &k, x))
            .expect("probing invariant");
    }
}
