//! Endpoint-independent mappings of one shard: (proto, internal endpoint, WAN) → external port.
//!
//! Every session holds one reference to the mapping of its internal endpoint on its WAN, so
//! all sessions of an endpoint on a WAN share one external port (RFC 4787 REQ-1, RFC 5382
//! REQ-1). The last reference to go removes the mapping; the caller then releases the port in
//! the WAN's port table. Storage is a preallocated slab with a free list (threaded through the
//! reference-count field) and a `HashTable<u32>` of slot numbers, rebuilt in place when it runs
//! out of room (see `index.rs`): nothing here allocates after construction.

use hashbrown::HashTable;

use crate::index::{out_of_room, slack_capacity};
use crate::key::{endpoint_word, Endpoint, KeyHasher, Proto};
use crate::lru::NIL;

/// `wan` of a free slot (WAN indexes are below 64).
const FREE_WAN: u8 = u8::MAX;

/// One mapping (16 bytes).
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

/// The mappings of one shard.
#[derive(Debug)]
pub(crate) struct Mappings {
    slab: Vec<Mapping>,
    free: u32,
    len: u32,
    index: HashTable<u32>,
}

impl Mappings {
    /// Room for `cap` mappings, all preallocated. `None` if memory is unavailable.
    pub(crate) fn new(cap: u32, hasher: &KeyHasher) -> Option<Mappings> {
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
        let mut index = HashTable::new();
        index
            .try_reserve(slack_capacity(n), |&s: &u32| slot_hash(&slab, hasher, s))
            .ok()?;
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

    /// The mapping of `internal` on `wan`; `h` = `hasher.mapping(..)` of it.
    #[inline]
    pub(crate) fn find(&self, h: u64, proto: Proto, internal: Endpoint, wan: u8) -> Option<u32> {
        let slab = &self.slab;
        self.index
            .find(h, |&s| {
                slab.get(s as usize)
                    .is_some_and(|m| m.is(proto, internal, wan))
            })
            .copied()
    }

    /// Adds a reference to mapping `slot`; returns its external port.
    pub(crate) fn acquire(&mut self, slot: u32) -> Option<u16> {
        let m = self.slab.get_mut(slot as usize)?;
        m.refs = m.refs.saturating_add(1);
        Some(m.ext_port)
    }

    /// Inserts a new mapping with one reference; returns its slot and whether the index had to
    /// be rebuilt first. `None` when the slab is full.
    pub(crate) fn insert(
        &mut self,
        hasher: &KeyHasher,
        h: u64,
        proto: Proto,
        internal: Endpoint,
        wan: u8,
        ext_port: u16,
    ) -> Option<(u32, bool)> {
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
        let rebuilt = out_of_room(&self.index);
        if rebuilt {
            self.rebuild(hasher, slot);
        }
        let Mappings { slab, index, .. } = self;
        index.insert_unique(h, slot, |&s| slot_hash(slab, hasher, s));
        self.len += 1;
        Some((slot, rebuilt))
    }

    /// Refills the index from the slab (all live mappings but `except`), dropping tombstones.
    fn rebuild(&mut self, hasher: &KeyHasher, except: u32) {
        let Mappings { slab, index, .. } = self;
        index.clear();
        for (i, m) in slab.iter().enumerate() {
            // slab length fits u32 (capacity is a u32)
            let s = i as u32;
            if m.wan != FREE_WAN && s != except {
                index.insert_unique(hasher.mapping(m.word(), m.wan), s, |&x| {
                    slot_hash(slab, hasher, x)
                });
            }
        }
    }

    /// Drops one reference to the mapping of `internal` on `wan`. When it was the last one the
    /// mapping is removed and its external port returned, for the caller to release.
    pub(crate) fn release(
        &mut self,
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
        m.refs = self.free;
        m.wan = FREE_WAN;
        self.free = slot;
        self.len -= 1;
        if let Ok(e) = self.index.find_entry(h, |&s| s == slot) {
            e.remove();
        }
        Some(port)
    }

    /// Heap bytes.
    pub(crate) fn memory(&self) -> usize {
        self.slab.capacity() * std::mem::size_of::<Mapping>() + self.index.allocation_size()
    }

    #[cfg(test)]
    pub(crate) fn index_buckets(&self) -> usize {
        self.index.num_buckets()
    }

    #[cfg(test)]
    pub(crate) fn refs(&self, slot: u32) -> u32 {
        self.slab.get(slot as usize).map_or(0, |m| m.refs)
    }
}

fn slot_hash(slab: &[Mapping], hasher: &KeyHasher, s: u32) -> u64 {
    slab.get(s as usize)
        .map_or(0, |m| hasher.mapping(m.word(), m.wan))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ep(a: u8, port: u16) -> Endpoint {
        Endpoint::new(Ipv4Addr::new(10, 1, 1, a), port)
    }

    fn h(k: &KeyHasher, proto: Proto, e: Endpoint, wan: u8) -> u64 {
        k.mapping(endpoint_word(proto, e), wan)
    }

    #[test]
    fn refcounted_insert_find_release() {
        let k = KeyHasher::new(7);
        let mut m = Mappings::new(4, &k).expect("alloc");
        let e = ep(1, 5000);
        let hh = h(&k, Proto::Udp, e, 0);
        assert_eq!(m.find(hh, Proto::Udp, e, 0), None);
        let (s, _) = m.insert(&k, hh, Proto::Udp, e, 0, 6000).expect("room");
        assert_eq!(m.find(hh, Proto::Udp, e, 0), Some(s));
        assert_eq!(m.find(h(&k, Proto::Tcp, e, 0), Proto::Tcp, e, 0), None);
        assert_eq!(m.find(h(&k, Proto::Udp, e, 1), Proto::Udp, e, 1), None);
        assert_eq!(m.acquire(s), Some(6000));
        assert_eq!(m.refs(s), 2);
        assert_eq!(m.release(hh, Proto::Udp, e, 0), None);
        assert_eq!(m.len(), 1);
        assert_eq!(m.release(hh, Proto::Udp, e, 0), Some(6000));
        assert_eq!(m.len(), 0);
        assert_eq!(m.find(hh, Proto::Udp, e, 0), None);
        assert_eq!(m.release(hh, Proto::Udp, e, 0), None);
    }

    #[test]
    fn slab_full_then_reused() {
        let k = KeyHasher::new(7);
        let mut m = Mappings::new(2, &k).expect("alloc");
        let hs: Vec<_> = (0..3).map(|i| h(&k, Proto::Tcp, ep(i, 1), 0)).collect();
        assert!(m.insert(&k, hs[0], Proto::Tcp, ep(0, 1), 0, 1).is_some());
        assert!(m.insert(&k, hs[1], Proto::Tcp, ep(1, 1), 0, 2).is_some());
        assert!(m.insert(&k, hs[2], Proto::Tcp, ep(2, 1), 0, 3).is_none());
        assert_eq!(m.release(hs[0], Proto::Tcp, ep(0, 1), 0), Some(1));
        assert!(m.insert(&k, hs[2], Proto::Tcp, ep(2, 1), 0, 3).is_some());
        assert_eq!(m.len(), 2);
        let empty = Mappings::new(0, &k).expect("alloc");
        assert_eq!(empty.len(), 0);
    }

    #[test]
    fn churn_never_grows_the_index_and_rebuilds_stay_correct() {
        let k = KeyHasher::new(3);
        // 179 slots: 1.25 * 179 fills the capacity of 256 buckets exactly (the tightest sizing)
        let cap = 179u32;
        let mut m = Mappings::new(cap, &k).expect("alloc");
        let buckets = m.index_buckets();
        let e = |i: u32| Endpoint::new(Ipv4Addr::from(i), 1);
        let mut rebuilds = 0;
        // keep the slab full, replacing the oldest mapping at each step
        for i in 0..cap {
            m.insert(&k, h(&k, Proto::Udp, e(i), 0), Proto::Udp, e(i), 0, 1)
                .expect("room");
        }
        for i in cap..30_000 {
            let old = e(i - cap);
            assert_eq!(
                m.release(h(&k, Proto::Udp, old, 0), Proto::Udp, old, 0),
                Some(1)
            );
            let (_, rebuilt) = m
                .insert(&k, h(&k, Proto::Udp, e(i), 0), Proto::Udp, e(i), 0, 1)
                .expect("room");
            rebuilds += usize::from(rebuilt);
        }
        assert_eq!(m.index_buckets(), buckets, "the index grew");
        assert!(
            rebuilds > 0,
            "never rebuilt: the test does not exercise rebuilds"
        );
        for i in 30_000 - cap..30_000 {
            let hh = h(&k, Proto::Udp, e(i), 0);
            assert!(m.find(hh, Proto::Udp, e(i), 0).is_some(), "{i} lost");
        }
        assert_eq!(m.len(), cap);
    }
}
