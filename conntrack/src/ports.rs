//! The NAT port table of one WAN: external port → internal endpoint, per protocol, lock-free.
//!
//! One `AtomicU64` per port of the WAN's range and protocol. `0` is free; a bound entry holds
//! `VALID | ip << 16 | port` of the internal endpoint that owns the port; a reserved entry (the
//! external port of a port forward, see [`PortTable::reserve`]) holds [`RESERVED`], which is
//! neither: it has no owner, and no claim takes it. Entries are claimed
//! with `compare_exchange(0, owner)` (so two mapping shards can never bind the same port) and
//! released with `compare_exchange(owner, 0)`, both by the mapping shard that holds the
//! mapping, under its lock. Readers (`lookup_inbound`, `binding`) do one atomic load and take
//! no lock; a reader that sees a binding which is released a moment later finds no matching
//! session and misses.
//!
//! Allocation prefers the internal port (port preservation) and otherwise scans from a
//! rotating per-protocol cursor, at most [`MAX_PORT_PROBES`] ports a call (the next call
//! goes on from there), so a nearly full range cannot make each new flow scan it whole.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::key::{Endpoint, Proto, PROTO_COUNT};

const VALID: u64 = 1 << 63;

/// A reserved entry: non-zero, so `compare_exchange(0, ..)` never claims it, and without
/// [`VALID`], so it has no owner.
const RESERVED: u64 = 1;

/// Ports one allocation looks at, at most. In a range 99% bound, a free port is found in
/// 100 probes on average, and missed in 4096 with a probability of about 10^-18.
pub const MAX_PORT_PROBES: u32 = 4096;

#[inline]
fn pack(owner: Endpoint) -> u64 {
    VALID | (u64::from(u32::from(owner.ip)) << 16) | u64::from(owner.port)
}

#[inline]
fn unpack(v: u64) -> Option<Endpoint> {
    if v & VALID == 0 {
        return None;
    }
    // Truncations keep exactly the packed fields.
    let ip = Ipv4Addr::from((v >> 16) as u32);
    Some(Endpoint::new(ip, v as u16))
}

/// Port bindings of one WAN for every protocol.
#[derive(Debug)]
pub(crate) struct PortTable {
    first: u16,
    /// Ports in the range (1..=65536).
    size: u32,
    /// `PROTO_COUNT * size` entries, protocol-major.
    slots: Box<[AtomicU64]>,
    cursors: [AtomicU32; PROTO_COUNT],
}

impl PortTable {
    /// A table for ports `first..=last` (`first <= last`). `None` if memory is unavailable.
    pub(crate) fn new(first: u16, last: u16) -> Option<PortTable> {
        let size = u32::from(last).checked_sub(u32::from(first))? + 1;
        let n = PROTO_COUNT * size as usize;
        let mut v: Vec<AtomicU64> = Vec::new();
        v.try_reserve_exact(n).ok()?;
        v.resize_with(n, || AtomicU64::new(0));
        Some(PortTable {
            first,
            size,
            slots: v.into_boxed_slice(),
            cursors: [AtomicU32::new(0), AtomicU32::new(0), AtomicU32::new(0)],
        })
    }

    /// Whether `port` lies in the range.
    #[cfg(test)]
    pub(crate) fn contains(&self, port: u16) -> bool {
        u32::from(port.wrapping_sub(self.first)) < self.size
    }

    #[inline]
    fn slot(&self, proto: Proto, port: u16) -> Option<&AtomicU64> {
        let off = u32::from(port.wrapping_sub(self.first));
        if off >= self.size {
            return None;
        }
        self.slots
            .get(proto.index() * self.size as usize + off as usize)
    }

    /// The internal endpoint bound to `port`, if any (one atomic load).
    #[inline]
    pub(crate) fn owner(&self, proto: Proto, port: u16) -> Option<Endpoint> {
        unpack(self.slot(proto, port)?.load(Ordering::Acquire))
    }

    /// Binds `port` to `owner` if it is in range and free.
    pub(crate) fn try_claim(&self, proto: Proto, port: u16, owner: Endpoint) -> bool {
        self.slot(proto, port).is_some_and(|s| {
            s.compare_exchange(0, pack(owner), Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        })
    }

    /// Binds a free port to `owner`: `preferred` if it is in range and free, else the next free
    /// one after the rotating cursor, looking at [`MAX_PORT_PROBES`] ports at most (so a
    /// nearly full range costs a new flow a bounded search, under its shard's lock; the next
    /// search goes on where this one stopped). `None` when no free port was found.
    pub(crate) fn allocate(&self, proto: Proto, preferred: u16, owner: Endpoint) -> Option<u16> {
        if self.try_claim(proto, preferred, owner) {
            return Some(preferred);
        }
        let packed = pack(owner);
        let base = proto.index() * self.size as usize;
        let cursor = &self.cursors[proto.index()];
        let probes = self.size.min(MAX_PORT_PROBES);
        let start = cursor.fetch_add(probes, Ordering::Relaxed) % self.size;
        for i in 0..probes {
            let mut off = start + i;
            if off >= self.size {
                off -= self.size;
            }
            let Some(s) = self.slots.get(base + off as usize) else {
                continue;
            };
            if s.load(Ordering::Relaxed) == 0
                && s.compare_exchange(0, packed, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            {
                cursor.store(off + 1, Ordering::Relaxed);
                // off < size <= 65536 and first + off <= last <= 65535
                return Some(self.first.wrapping_add(off as u16));
            }
        }
        None
    }

    /// Frees `port` if it is bound to `owner`. Returns whether it was.
    pub(crate) fn release(&self, proto: Proto, port: u16, owner: Endpoint) -> bool {
        self.slot(proto, port).is_some_and(|s| {
            s.compare_exchange(pack(owner), 0, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        })
    }

    /// Keeps `port` of `proto` from dynamic NAT (the external port of a port forward): a free
    /// entry becomes [`RESERVED`], which no allocation or claim takes. `true` when the port is
    /// reserved now (or was already), and when it lies outside the range (no allocation ever
    /// hands it out); `false`, changing nothing, when a mapping holds it: the port can be
    /// reserved once that mapping ends (with its last session).
    pub(crate) fn reserve(&self, proto: Proto, port: u16) -> bool {
        let Some(s) = self.slot(proto, port) else {
            return true;
        };
        match s.compare_exchange(0, RESERVED, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => true,
            Err(v) => v == RESERVED,
        }
    }

    /// Ends the reservation of `port` of `proto` (dynamic NAT may hand it out again). Returns
    /// whether it was reserved.
    pub(crate) fn unreserve(&self, proto: Proto, port: u16) -> bool {
        self.slot(proto, port).is_some_and(|s| {
            s.compare_exchange(RESERVED, 0, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        })
    }

    /// Whether `port` of `proto` is reserved.
    #[cfg(test)]
    pub(crate) fn is_reserved(&self, proto: Proto, port: u16) -> bool {
        self.slot(proto, port)
            .is_some_and(|s| s.load(Ordering::Acquire) == RESERVED)
    }

    /// Number of bound ports over all protocols, reserved ones not included (scans the table;
    /// diagnostics only).
    pub(crate) fn bound(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.load(Ordering::Relaxed) & VALID != 0)
            .count()
    }

    /// Heap bytes.
    pub(crate) fn memory(&self) -> usize {
        std::mem::size_of_val(&*self.slots)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(a: u8, port: u16) -> Endpoint {
        Endpoint::new(Ipv4Addr::new(192, 168, 1, a), port)
    }

    #[test]
    fn pack_round_trips_including_zero_endpoint() {
        for e in [
            ep(1, 1),
            Endpoint::new(Ipv4Addr::UNSPECIFIED, 0),
            Endpoint::new(Ipv4Addr::BROADCAST, u16::MAX),
        ] {
            assert_ne!(pack(e), 0);
            assert_eq!(unpack(pack(e)), Some(e));
        }
        assert_eq!(unpack(0), None);
    }

    #[test]
    fn preferred_port_is_kept_when_free() {
        let t = PortTable::new(1000, 1999).expect("alloc");
        assert_eq!(t.allocate(Proto::Udp, 1500, ep(1, 1500)), Some(1500));
        assert_eq!(t.owner(Proto::Udp, 1500), Some(ep(1, 1500)));
        // other protocols are independent
        assert_eq!(t.owner(Proto::Tcp, 1500), None);
        assert_eq!(t.allocate(Proto::Tcp, 1500, ep(2, 1500)), Some(1500));
    }

    #[test]
    fn taken_or_out_of_range_preferred_port_falls_back_to_the_scan() {
        let t = PortTable::new(1000, 1999).expect("alloc");
        assert_eq!(t.allocate(Proto::Udp, 1500, ep(1, 1500)), Some(1500));
        let p = t.allocate(Proto::Udp, 1500, ep(2, 1500)).expect("a port");
        assert_ne!(p, 1500);
        assert!(t.contains(p));
        let q = t.allocate(Proto::Udp, 80, ep(3, 80)).expect("a port");
        assert!(t.contains(q));
        assert_ne!(q, p);
        assert!(!t.contains(80));
        assert_eq!(t.owner(Proto::Udp, 80), None);
        assert!(!t.try_claim(Proto::Udp, 80, ep(3, 80)));
    }

    #[test]
    fn exhaustion_and_release() {
        let t = PortTable::new(65533, 65535).expect("alloc");
        let mut got = Vec::new();
        for i in 0..3 {
            got.push(t.allocate(Proto::Tcp, 1, ep(i, 1)).expect("a port"));
        }
        got.sort_unstable();
        assert_eq!(got, [65533, 65534, 65535]);
        assert_eq!(t.allocate(Proto::Tcp, 1, ep(9, 1)), None);
        assert_eq!(t.bound(), 3);
        // only the owner releases
        assert!(!t.release(Proto::Tcp, 65534, ep(9, 1)));
        let owner = t.owner(Proto::Tcp, 65534).expect("bound");
        assert!(t.release(Proto::Tcp, 65534, owner));
        assert_eq!(t.allocate(Proto::Tcp, 1, ep(9, 1)), Some(65534));
    }

    #[test]
    fn a_search_is_bounded_and_the_next_goes_on_from_there() {
        let t = PortTable::new(0, 65535).expect("alloc");
        let owner = ep(9, 9);
        // every port bound but one, far from where the cursor starts
        for port in 0..=65535u16 {
            if port != 40000 {
                assert!(t.try_claim(Proto::Tcp, port, owner));
            }
        }
        let mut calls = 0;
        let got = loop {
            calls += 1;
            if let Some(p) = t.allocate(Proto::Tcp, 1, ep(1, 1)) {
                break p;
            }
            assert!(calls <= 65536 / MAX_PORT_PROBES + 1, "never found");
        };
        assert_eq!(got, 40000);
        assert!(
            calls > 1,
            "one call looks at {MAX_PORT_PROBES} ports, not all"
        );
    }

    #[test]
    fn a_reserved_port_is_never_allocated_and_has_no_owner() {
        let t = PortTable::new(100, 102).expect("alloc");
        assert!(t.reserve(Proto::Tcp, 101));
        assert!(t.reserve(Proto::Tcp, 101), "reserving twice is fine");
        assert!(t.is_reserved(Proto::Tcp, 101));
        assert!(!t.is_reserved(Proto::Udp, 101));
        assert_eq!(t.owner(Proto::Tcp, 101), None);
        assert!(!t.try_claim(Proto::Tcp, 101, ep(1, 101)));
        // neither port preservation nor the scan takes it
        let mut got = Vec::new();
        for i in 0..3 {
            got.extend(t.allocate(Proto::Tcp, 101, ep(i, 101)));
        }
        got.sort_unstable();
        assert_eq!(got, [100, 102]);
        assert_eq!(t.bound(), 2);
        // only the reservation's end frees it; an owner's release does not
        assert!(!t.release(Proto::Tcp, 101, ep(1, 101)));
        assert!(t.unreserve(Proto::Tcp, 101));
        assert!(!t.unreserve(Proto::Tcp, 101));
        assert_eq!(t.allocate(Proto::Tcp, 1, ep(9, 1)), Some(101));
        // a bound port is not reserved; ports outside the range need no reservation
        assert!(!t.reserve(Proto::Tcp, 101));
        assert_eq!(t.owner(Proto::Tcp, 101), Some(ep(9, 1)));
        assert!(t.reserve(Proto::Tcp, 80));
        assert!(!t.is_reserved(Proto::Tcp, 80));
        assert!(!t.unreserve(Proto::Tcp, 80));
    }

    #[test]
    fn full_port_range() {
        let t = PortTable::new(0, 65535).expect("alloc");
        assert!(t.contains(0) && t.contains(65535));
        assert_eq!(t.allocate(Proto::Icmp, 65535, ep(1, 65535)), Some(65535));
        assert_eq!(t.owner(Proto::Icmp, 65535), Some(ep(1, 65535)));
    }

    #[test]
    fn concurrent_claims_never_share_a_port() {
        let t = PortTable::new(2000, 2099).expect("alloc");
        let got: Vec<Vec<u16>> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..2u8)
                .map(|th| {
                    let t = &t;
                    s.spawn(move || {
                        (0..60)
                            .filter_map(|i| t.allocate(Proto::Udp, 2000, ep(th * 100 + i, 7)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().expect("join")).collect()
        });
        let mut all: Vec<u16> = got.concat();
        assert_eq!(all.len(), 100);
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 100);
    }
}
