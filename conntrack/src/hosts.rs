//! Per-LAN-host accounting: how many live sessions each internal host (IPv4 address) has on
//! each WAN, and how many NAT ports (mappings) it holds there, for the per-host caps of
//! `ConnTable::create` ([`TableConfig::max_sessions_per_host`],
//! [`TableConfig::max_ports_per_host`]) and for eviction's choice of victim (the host with the
//! most sessions gives one up first, see `shard.rs`).
//!
//! One entry per live (host, WAN) pair: the host's sessions on that WAN and its mappings
//! there. A host that is the target of port forwards has a second entry per WAN for the
//! forwarded sessions it serves there (its WAN byte marked [`FORWARDED`], no ports): those are
//! opened from the Internet, not by the host, so they count against no cap of the host's (a
//! busy server would otherwise lose its own outbound flows to its visitors, and a flood of
//! connections to a forward would lock the host out); they are counted all the same, so that
//! eviction weighs them (a forward flooded with connections gives up its own sessions first,
//! `shard.rs`). An entry exists exactly while its session count is above zero (every mapping of the
//! host on the WAN has a session there, so its port count is zero by then too); its slot is
//! then free again. A host's session count is the sum over its entries: the entries of a host
//! are indexed under the hash of its address alone (the WAN is compared in the slab), so they
//! lie in one probe run of one shard, and one run answers "how many sessions has this host".
//!
//! Shards: picked by the hash of the address, as many as the session shards, each a
//! preallocated slab of 12-byte entries with a free list and a [`SlotIndex`] behind its own
//! mutex; nothing here allocates after construction. Lock order: a host shard is taken last
//! (after a session shard and a mapping shard, see `lib.rs`), held for a few reads and writes,
//! and never while taking another lock.
//!
//! Room: live (host, WAN) pairs never outnumber live sessions, so the table's capacity is
//! enough in all; entries are placed by host where sessions are placed by flow, so each shard
//! gets the headroom of a mapping shard (`mapping::shard_capacity`). A shard that is full all
//! the same refuses the creation ([`CreateError::TableFull`], as a full mapping shard does).
//!
//! [`TableConfig::max_sessions_per_host`]: crate::TableConfig::max_sessions_per_host
//! [`TableConfig::max_ports_per_host`]: crate::TableConfig::max_ports_per_host

use std::net::Ipv4Addr;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::index::SlotIndex;
use crate::key::{shard_index, KeyHasher};
use crate::lru::NIL;
use crate::table::CreateError;

/// `wan` of a free slot (WAN indexes are below 64).
const FREE_WAN: u8 = u8::MAX;

/// Bit of an entry's `wan`: the entry counts the host's port forward sessions on the WAN
/// (opened from the Internet), apart from the sessions the host opened (WAN indexes are below
/// 64, so they never reach it).
pub(crate) const FORWARDED: u8 = 0x40;

/// The `wan` of the entry counting a host's sessions on WAN `wan`: those it opened, or with
/// `forwarded` its port forward sessions.
#[inline]
fn entry_wan(wan: u8, forwarded: bool) -> u8 {
    if forwarded {
        wan | FORWARDED
    } else {
        wan
    }
}

/// Most ports one entry counts (24 bits). A host holds at most one port per port number,
/// protocol and WAN (three protocols of 65,535 ports each), far below it.
const MAX_PORT_COUNT: u32 = (1 << 24) - 1;

/// One (host, WAN) pair: 12 bytes.
#[derive(Clone, Copy, Debug)]
struct Entry {
    ip: u32,
    /// Live sessions of the host on the WAN while in use; next free slot while free.
    sessions: u32,
    /// Mappings (NAT ports) of the host on the WAN in the high 24 bits, the WAN in the low 8
    /// ([`FREE_WAN`] while free).
    ports_wan: u32,
}

impl Entry {
    fn wan(&self) -> u8 {
        // the low byte
        self.ports_wan as u8
    }

    fn ports(&self) -> u32 {
        self.ports_wan >> 8
    }

    fn set_ports(&mut self, ports: u32) {
        self.ports_wan = (ports.min(MAX_PORT_COUNT) << 8) | u32::from(self.wan());
    }

    fn is(&self, ip: u32, wan: u8) -> bool {
        self.ip == ip && self.wan() == wan
    }
}

/// The entries of one host shard.
#[derive(Debug)]
struct HostShard {
    slab: Vec<Entry>,
    free: u32,
    len: u32,
    index: SlotIndex,
}

impl HostShard {
    fn new(cap: u32) -> Option<HostShard> {
        let mut slab = Vec::new();
        slab.try_reserve_exact(cap as usize).ok()?;
        slab.extend((0..cap).map(|i| Entry {
            ip: 0,
            sessions: if i + 1 < cap { i + 1 } else { NIL },
            ports_wan: u32::from(FREE_WAN),
        }));
        Some(HostShard {
            slab,
            free: if cap > 0 { 0 } else { NIL },
            len: 0,
            index: SlotIndex::new(cap)?,
        })
    }

    /// The entry of (`ip`, `wan`); `h` is the hash of `ip`.
    fn find(&self, h: u64, ip: u32, wan: u8) -> Option<u32> {
        let slab = &self.slab;
        self.index
            .find(h, |s| slab.get(s as usize).is_some_and(|e| e.is(ip, wan)))
    }

    /// Live sessions of `ip` on every WAN, those it opened or with `forwarded` its port
    /// forward sessions: a walk over the probe run of `h`, its hash.
    fn sessions(&self, h: u64, ip: u32, forwarded: bool) -> u32 {
        let slab = &self.slab;
        let mut n = 0u32;
        self.index.find(h, |s| {
            let of = |e: &&Entry| e.ip == ip && (e.wan() & FORWARDED != 0) == forwarded;
            if let Some(e) = slab.get(s as usize).filter(of) {
                n = n.saturating_add(e.sessions);
            }
            false
        });
        n
    }

    /// A new entry for (`ip`, `wan`) with one session and `ports` ports. `None` when the slab
    /// is full.
    fn insert(&mut self, h: u64, ip: u32, wan: u8, ports: u32) -> Option<()> {
        let slot = self.free;
        let e = self.slab.get_mut(slot as usize)?;
        self.free = e.sessions;
        *e = Entry {
            ip,
            sessions: 1,
            ports_wan: (ports.min(MAX_PORT_COUNT) << 8) | u32::from(wan),
        };
        // The index has room for every slot of the slab.
        self.index.insert(h, slot);
        self.len += 1;
        Some(())
    }

    /// Frees entry `slot` (hash `h`).
    fn remove(&mut self, hasher: &KeyHasher, h: u64, slot: u32) {
        let HostShard { slab, index, .. } = self;
        // before the slot is freed: the slab gives the hashes of the entries that move back
        index.remove(h, slot, |x| entry_hash(slab, hasher, x));
        if let Some(e) = self.slab.get_mut(slot as usize) {
            e.sessions = self.free;
            e.ports_wan = u32::from(FREE_WAN);
        }
        self.free = slot;
        self.len = self.len.saturating_sub(1);
    }
}

fn entry_hash(slab: &[Entry], hasher: &KeyHasher, slot: u32) -> u64 {
    slab.get(slot as usize)
        .map_or(0, |e| hasher.host(Ipv4Addr::from(e.ip)))
}

/// A host shard's mutex on its own cache lines.
#[derive(Debug)]
#[repr(align(64))]
struct HostCell(Mutex<HostShard>);

/// The per-host counts of a table, and its per-host caps.
#[derive(Debug)]
pub(crate) struct Hosts {
    shards: Box<[HostCell]>,
    /// Shard count - 1.
    mask: usize,
    hasher: KeyHasher,
    max_sessions: u32,
    max_ports: u32,
}

impl Hosts {
    /// `shards` (a power of two) shards of `cap` entries each, everything preallocated, for
    /// hosts capped at `max_sessions` sessions and `max_ports` ports per WAN. `None` if memory
    /// is unavailable.
    pub(crate) fn new(
        shards: usize,
        cap: u32,
        hasher: KeyHasher,
        max_sessions: u32,
        max_ports: u32,
    ) -> Option<Hosts> {
        let mut v = Vec::new();
        v.try_reserve_exact(shards).ok()?;
        for _ in 0..shards {
            v.push(HostCell(Mutex::new(HostShard::new(cap)?)));
        }
        Some(Hosts {
            shards: v.into_boxed_slice(),
            mask: shards.saturating_sub(1),
            hasher,
            max_sessions,
            max_ports,
        })
    }

    /// Locks the shard of the host whose address hashes to `h`.
    fn lock(&self, h: u64) -> MutexGuard<'_, HostShard> {
        self.lock_shard(shard_index(h, self.mask))
    }

    fn lock_shard(&self, i: usize) -> MutexGuard<'_, HostShard> {
        // As for the other shards, poison is ignored: every operation checks its slots.
        self.shards[i & self.mask]
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `ip` has opened as many live sessions as a host may (takes its shard's lock).
    pub(crate) fn at_session_cap(&self, ip: Ipv4Addr) -> bool {
        self.sessions(ip, false) >= self.max_sessions
    }

    /// Live sessions of `ip` on every WAN: those it opened, or with `forwarded` its port
    /// forward sessions (takes its shard's lock).
    pub(crate) fn sessions(&self, ip: Ipv4Addr, forwarded: bool) -> u32 {
        let h = self.hasher.host(ip);
        self.lock(h).sessions(h, u32::from(ip), forwarded)
    }

    /// Counts a new session of `ip` on `wan`, and with `new_port` the new mapping (NAT port) it
    /// takes there, if the caps allow: [`CreateError::HostSessionLimit`] when the host has
    /// as many sessions as a host may, [`CreateError::HostPortLimit`] when `new_port` and it
    /// has as many ports on `wan` as a host may, [`CreateError::TableFull`] when the pair
    /// needs an entry and its shard has none free; each changing nothing.
    pub(crate) fn admit(&self, ip: Ipv4Addr, wan: u8, new_port: bool) -> Result<(), CreateError> {
        self.admit_entry(ip, entry_wan(wan, false), new_port)
    }

    /// Counts a new port forward session of target `ip` on `wan`, whatever the caps (see
    /// `ConnTable::create_forwarded`): [`CreateError::TableFull`], changing nothing, when the
    /// pair needs an entry and its shard has none free.
    pub(crate) fn admit_forwarded(&self, ip: Ipv4Addr, wan: u8) -> Result<(), CreateError> {
        self.admit_entry(ip, entry_wan(wan, true), false)
    }

    /// [`admit`](Self::admit) to the entry (`ip`, `wan`), `wan` as entries hold it: the caps
    /// apply to the host's own sessions, not to its port forward sessions.
    fn admit_entry(&self, ip: Ipv4Addr, wan: u8, new_port: bool) -> Result<(), CreateError> {
        let h = self.hasher.host(ip);
        let ip = u32::from(ip);
        let mut shard = self.lock(h);
        let capped = wan & FORWARDED == 0;
        if capped && shard.sessions(h, ip, false) >= self.max_sessions {
            return Err(CreateError::HostSessionLimit);
        }
        let add = u32::from(new_port);
        match shard.find(h, ip, wan) {
            Some(slot) => {
                let e = shard
                    .slab
                    .get_mut(slot as usize)
                    .ok_or(CreateError::TableFull)?;
                if new_port && e.ports() >= self.max_ports {
                    return Err(CreateError::HostPortLimit);
                }
                e.sessions = e.sessions.saturating_add(1);
                e.set_ports(e.ports() + add);
                Ok(())
            }
            None if new_port && self.max_ports == 0 => Err(CreateError::HostPortLimit),
            None => shard.insert(h, ip, wan, add).ok_or(CreateError::TableFull),
        }
    }

    /// Takes back one port forward session of target `ip` on `wan` (see
    /// [`admit_forwarded`](Self::admit_forwarded)); the entry goes with its last session.
    pub(crate) fn release_forwarded(&self, ip: Ipv4Addr, wan: u8) {
        self.release_entry(ip, entry_wan(wan, true), false);
    }

    /// Takes back one session of `ip` on `wan` (removed, or admitted and then not created),
    /// and with `port` one mapping there; the entry goes with its last session.
    pub(crate) fn release(&self, ip: Ipv4Addr, wan: u8, port: bool) {
        self.release_entry(ip, entry_wan(wan, false), port);
    }

    /// [`release`](Self::release) of the entry (`ip`, `wan`), `wan` as entries hold it.
    fn release_entry(&self, ip: Ipv4Addr, wan: u8, port: bool) {
        let h = self.hasher.host(ip);
        let ip = u32::from(ip);
        let mut shard = self.lock(h);
        let Some(slot) = shard.find(h, ip, wan) else {
            return;
        };
        let Some(e) = shard.slab.get_mut(slot as usize) else {
            return;
        };
        e.sessions = e.sessions.saturating_sub(1);
        e.set_ports(e.ports().saturating_sub(u32::from(port)));
        if e.sessions == 0 {
            shard.remove(&self.hasher, h, slot);
        }
    }

    /// Heap bytes.
    pub(crate) fn memory(&self) -> usize {
        (0..self.shards.len())
            .map(|i| {
                let s = self.lock_shard(i);
                s.slab.capacity() * std::mem::size_of::<Entry>() + s.index.memory()
            })
            .sum()
    }

    /// Slots of each shard (tests).
    #[cfg(test)]
    pub(crate) fn shard_capacity(&self) -> usize {
        self.lock_shard(0).slab.len()
    }

    /// Calls `f(ip, wan, forwarded, sessions, ports)` on every entry (tests).
    #[cfg(test)]
    pub(crate) fn for_each(&self, mut f: impl FnMut(Ipv4Addr, u8, bool, u32, u32)) {
        for i in 0..self.shards.len() {
            let s = self.lock_shard(i);
            for e in s.slab.iter().filter(|e| e.wan() != FREE_WAN) {
                let (wan, forwarded) = (e.wan() & !FORWARDED, e.wan() & FORWARDED != 0);
                f(Ipv4Addr::from(e.ip), wan, forwarded, e.sessions, e.ports());
            }
        }
    }

    /// Checks every shard's structure (tests): free list, index, counts; every entry indexed,
    /// in the shard its host hashes to, with sessions.
    #[cfg(test)]
    pub(crate) fn check(&self) -> Result<(), String> {
        for i in 0..self.shards.len() {
            let s = self.lock_shard(i);
            let mut live = 0u32;
            for (slot, e) in s.slab.iter().enumerate() {
                if e.wan() == FREE_WAN {
                    continue;
                }
                live += 1;
                let h = self.hasher.host(Ipv4Addr::from(e.ip));
                if shard_index(h, self.mask) != i {
                    return Err(format!("host entry {slot} in host shard {i}"));
                }
                if s.find(h, e.ip, e.wan()) != Some(slot as u32) {
                    return Err(format!("host entry {slot} not indexed"));
                }
                if e.sessions == 0 {
                    return Err(format!("host entry {slot} has no session"));
                }
            }
            s.index.check(|x| entry_hash(&s.slab, &self.hasher, x))?;
            let next = |e: &Entry| (e.wan() == FREE_WAN).then_some(e.sessions);
            s.index
                .check_slab("hosts", &s.slab, (s.free, next), live, s.len)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(cap: u32, max_sessions: u32, max_ports: u32) -> Hosts {
        Hosts::new(2, cap, KeyHasher::new(9), max_sessions, max_ports).unwrap()
    }

    fn ip(a: u8) -> Ipv4Addr {
        Ipv4Addr::new(192, 168, 1, a)
    }

    #[test]
    fn entry_is_twelve_bytes() {
        assert_eq!(std::mem::size_of::<Entry>(), 12);
    }

    #[test]
    fn sessions_sum_over_wans_and_entries_go_with_their_last_session() {
        let h = hosts(8, 100, 100);
        h.admit(ip(1), 0, true).unwrap();
        h.admit(ip(1), 0, false).unwrap();
        h.admit(ip(1), 3, true).unwrap();
        h.admit(ip(2), 0, true).unwrap();
        assert_eq!((h.sessions(ip(1), false), h.sessions(ip(2), false)), (3, 1));
        let mut seen = Vec::new();
        h.for_each(|a, w, _, s, p| seen.push((a, w, s, p)));
        seen.sort();
        assert_eq!(seen, [(ip(1), 0, 2, 1), (ip(1), 3, 1, 1), (ip(2), 0, 1, 1)]);
        h.release(ip(1), 0, false);
        h.release(ip(1), 0, true);
        h.release(ip(1), 3, true);
        assert_eq!(h.sessions(ip(1), false), 0);
        h.check().unwrap();
        let mut n = 0;
        h.for_each(|_, _, _, _, _| n += 1);
        assert_eq!(n, 1);
        // unknown pairs are ignored
        h.release(ip(9), 0, true);
        h.check().unwrap();
    }

    #[test]
    fn caps_refuse_without_changing_anything() {
        let h = hosts(8, 3, 2);
        h.admit(ip(1), 0, true).unwrap();
        h.admit(ip(1), 0, true).unwrap();
        assert_eq!(h.admit(ip(1), 0, true), Err(CreateError::HostPortLimit));
        // an existing mapping, or another WAN, is fine
        h.admit(ip(1), 1, true).unwrap();
        assert_eq!(h.admit(ip(1), 0, false), Err(CreateError::HostSessionLimit));
        assert_eq!(h.admit(ip(1), 2, true), Err(CreateError::HostSessionLimit));
        assert!(h.at_session_cap(ip(1)));
        assert!(!h.at_session_cap(ip(2)));
        h.admit(ip(2), 0, true).unwrap();
        h.check().unwrap();
        let zero = hosts(8, 3, 0);
        assert_eq!(zero.admit(ip(1), 0, true), Err(CreateError::HostPortLimit));
        zero.check().unwrap();
    }

    #[test]
    fn a_full_shard_refuses_new_pairs() {
        let h = Hosts::new(1, 2, KeyHasher::new(1), 10, 10).unwrap();
        h.admit(ip(1), 0, true).unwrap();
        h.admit(ip(2), 0, true).unwrap();
        assert_eq!(h.admit(ip(3), 0, true), Err(CreateError::TableFull));
        h.admit(ip(2), 0, false).unwrap();
        h.release(ip(1), 0, true);
        h.admit(ip(3), 0, true).unwrap();
        h.check().unwrap();
    }

    #[test]
    fn forwarded_sessions_are_counted_apart_and_never_capped() {
        let h = hosts(8, 2, 1);
        h.admit(ip(1), 0, true).unwrap();
        h.admit(ip(1), 0, false).unwrap();
        for _ in 0..3 {
            h.admit_forwarded(ip(1), 0).unwrap();
        }
        h.admit_forwarded(ip(1), 1).unwrap();
        assert_eq!((h.sessions(ip(1), false), h.sessions(ip(1), true)), (2, 4));
        // the host's own cap counts what it opened only, and holds
        assert!(h.at_session_cap(ip(1)));
        assert_eq!(h.admit(ip(1), 1, true), Err(CreateError::HostSessionLimit));
        let mut seen = Vec::new();
        h.for_each(|a, w, f, s, p| seen.push((a, w, f, s, p)));
        seen.sort();
        assert_eq!(
            seen,
            [
                (ip(1), 0, false, 2, 1),
                (ip(1), 0, true, 3, 0),
                (ip(1), 1, true, 1, 0)
            ]
        );
        h.release_forwarded(ip(1), 0);
        h.release_forwarded(ip(1), 1);
        h.release(ip(1), 0, false);
        assert_eq!((h.sessions(ip(1), false), h.sessions(ip(1), true)), (1, 2));
        assert!(!h.at_session_cap(ip(1)));
        h.check().unwrap();
    }

    #[test]
    fn port_counts_saturate_at_24_bits() {
        let mut e = Entry {
            ip: 1,
            sessions: 1,
            ports_wan: 5,
        };
        e.set_ports(u32::MAX);
        assert_eq!((e.ports(), e.wan()), (MAX_PORT_COUNT, 5));
    }
}
