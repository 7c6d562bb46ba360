//! A session's place in its shard's slab: the 64 bytes of a [`Session`] held as atomics, so
//! that a fast-path hit can read a session without its shard's lock (see `shard.rs`, "Hits
//! without the lock") while the lock's holder may be changing it.
//!
//! Every word is read and written with relaxed ordering, which compiles to plain loads and
//! stores: a cell costs nothing over a plain struct. Consistency comes from elsewhere: the
//! holder of the shard's lock is the only writer of every word except `last_seen` and the
//! counters, and marks each change of a slot's identity (insertion, removal) with the shard's
//! sequence number, which lock-free readers check after reading (a seqlock). Lock-free writers
//! store only `last_seen` and the counters of their packet's direction; a hit under the lock
//! writes only those and the TCP byte, never the whole cell, so neither undoes the other.
//!
//! Word layout (`repr(C, align(64))`, one cache line, no padding):
//! - `ep`: `src_ip << 32 | src_port << 16 | tcp << 8 | proto`: the internal endpoint's word
//!   (`key.rs`, `endpoint_word`), with the TCP tracking byte in its free byte;
//! - `remote`: `ext_port << 48 | dst_ip << 16 | dst_port`: the remote endpoint's word
//!   (`remote_word`), with the external port in its free bits (so a probe compares the cell
//!   with the very words the key was hashed from);
//! - `last_seen`;
//! - `meta`: `wan_hp << 56 | lan_iface << 48 | rule << 32 | created_s`;
//! - `packets_out`, `packets_in` (u32 each), `bytes_out`, `in_word`;
//! - `prev`, `next`: class-list links (or the free list's), u32 each.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

use crate::key::{endpoint_word, remote_word, Endpoint, Proto};
use crate::lru::Node;
use crate::session::{Glance, Packed, Session};
use crate::tcp::TcpTrack;
use crate::timeouts::second_start;

/// The TCP tracking byte's bits in the `ep` word.
pub(crate) const TCP_BITS: u64 = 0xff00;
/// The endpoint word of a free cell: protocol byte 0, which no tracked protocol has (a key's
/// endpoint word ends in 1, 6 or 17), so [`SessionCell::is_key`] is false for every key.
pub(crate) const VACANT_EP: u64 = 0;
/// The external port's bits in the `remote` word.
pub(crate) const EXT_PORT_BITS: u64 = 0xffff << 48;

/// One slot of a session slab.
#[derive(Debug)]
#[repr(C, align(64))]
pub(crate) struct SessionCell {
    ep: AtomicU64,
    remote: AtomicU64,
    last_seen: AtomicU64,
    meta: AtomicU64,
    packets_out: AtomicU32,
    packets_in: AtomicU32,
    bytes_out: AtomicU64,
    in_word: AtomicU64,
    prev: AtomicU32,
    next: AtomicU32,
}

impl SessionCell {
    /// A cell holding `s`.
    pub(crate) fn new(s: &Session) -> SessionCell {
        let p = s.pack();
        SessionCell {
            ep: AtomicU64::new(p.ep),
            remote: AtomicU64::new(p.remote),
            last_seen: AtomicU64::new(p.last_seen),
            meta: AtomicU64::new(p.meta),
            packets_out: AtomicU32::new(p.packets_out),
            packets_in: AtomicU32::new(p.packets_in),
            bytes_out: AtomicU64::new(p.bytes_out),
            in_word: AtomicU64::new(p.in_word),
            prev: AtomicU32::new(p.prev),
            next: AtomicU32::new(p.next),
        }
    }

    /// A free slot whose free-list successor is `next` (see [`SessionCell::vacate`]).
    pub(crate) fn vacant(next: u32) -> SessionCell {
        let cell = SessionCell::new(&Session::vacant(next));
        cell.ep.store(VACANT_EP, Relaxed);
        cell
    }

    /// Frees the slot: stores a vacant session whose free-list successor is `next`, with
    /// the endpoint word [`VACANT_EP`], which no flow has (its protocol byte is 0), so that
    /// no key matches a free cell: a lookup may then try a slot it was told of without the
    /// index (see `Shard::peek`). Lock holder only.
    pub(crate) fn vacate(&self, next: u32) {
        self.store(&Session::vacant(next));
        self.ep.store(VACANT_EP, Relaxed);
    }

    /// The session held (links included).
    #[inline]
    pub(crate) fn load(&self) -> Session {
        Session::unpack(Packed {
            ep: self.ep.load(Relaxed),
            remote: self.remote.load(Relaxed),
            last_seen: self.last_seen.load(Relaxed),
            meta: self.meta.load(Relaxed),
            packets_out: self.packets_out.load(Relaxed),
            packets_in: self.packets_in.load(Relaxed),
            bytes_out: self.bytes_out.load(Relaxed),
            in_word: self.in_word.load(Relaxed),
            prev: self.prev.load(Relaxed),
            next: self.next.load(Relaxed),
        })
    }

    /// What a lock-free hit reads of the session of protocol `proto` held (see [`Glance`]).
    #[inline]
    pub(crate) fn glance(&self, proto: Proto) -> Glance {
        Glance {
            proto,
            ep: self.ep.load(Relaxed),
            remote: self.remote.load(Relaxed),
            last_seen: self.last_seen.load(Relaxed),
            meta: self.meta.load(Relaxed),
            in_word: self.in_word.load(Relaxed),
        }
    }

    /// Stores `s`, links included (a slot taken or freed). Lock holder only.
    pub(crate) fn store(&self, s: &Session) {
        let p = s.pack();
        self.ep.store(p.ep, Relaxed);
        self.remote.store(p.remote, Relaxed);
        self.last_seen.store(p.last_seen, Relaxed);
        self.meta.store(p.meta, Relaxed);
        self.packets_out.store(p.packets_out, Relaxed);
        self.packets_in.store(p.packets_in, Relaxed);
        self.bytes_out.store(p.bytes_out, Relaxed);
        self.in_word.store(p.in_word, Relaxed);
        self.prev.store(p.prev, Relaxed);
        self.next.store(p.next, Relaxed);
    }

    /// Whether the cell holds the session of canonical key (proto, internal, remote).
    #[inline]
    pub(crate) fn is(&self, proto: Proto, internal: Endpoint, remote: Endpoint) -> bool {
        self.is_key(endpoint_word(proto, internal), remote_word(remote))
    }

    /// Whether the cell holds the session whose internal endpoint word is `ep` and remote
    /// word `remote` (`key.rs`): two loads, masks and compares.
    #[inline]
    pub(crate) fn is_key(&self, ep: u64, remote: u64) -> bool {
        self.ep.load(Relaxed) & !TCP_BITS == ep
            && self.remote.load(Relaxed) & !EXT_PORT_BITS == remote
    }

    /// The lock-free part of a hit (see `shard.rs`, "Hits without the lock"): moves
    /// `last_seen` on to `now` if that stays in the second of its current value (a locked hit
    /// may have moved it into a later one meanwhile: it is not moved back across that), and
    /// counts one packet of `len` bytes in the original (`out`) or reply direction.
    /// `seen_in_word` is the reply byte counter of the caller's snapshot: the reply count is a
    /// compare-and-swap from it (and the reply packet count follows only if that succeeds), so
    /// a write that comes late, after the session was removed and its slot taken, never lands
    /// on a hairpin session, whose `in_word` is its rewrite (see `Session`); it fails, and the
    /// packet goes uncounted, if another packet was counted meanwhile. Original-direction
    /// counters are plain loads and stores: two threads counting that direction of one flow at
    /// the same instant can lose a count, and a late write can count one packet on the slot's
    /// next occupant (statistics only).
    #[inline]
    pub(crate) fn record(&self, out: bool, len: u32, now: u64, seen_in_word: u64) {
        let last = self.last_seen.load(Relaxed);
        if now > last && last >= second_start(now) {
            self.last_seen.store(now, Relaxed);
        }
        if out {
            self.count_out(len);
        } else if self
            .in_word
            .compare_exchange(
                seen_in_word,
                seen_in_word.wrapping_add(u64::from(len)),
                Relaxed,
                Relaxed,
            )
            .is_ok()
        {
            let n = self.packets_in.load(Relaxed);
            self.packets_in.store(n.saturating_add(1), Relaxed);
        }
    }

    /// A hit under the shard's lock: counts one packet as [`Session::count`] does and moves
    /// `last_seen` on to `now` (never back). Writes only those words, so that lock-free hits
    /// on other words are not undone.
    #[inline]
    pub(crate) fn record_locked(&self, out: bool, len: u32, now: u64, hairpin: bool) {
        if now > self.last_seen.load(Relaxed) {
            self.last_seen.store(now, Relaxed);
        }
        if out {
            self.count_out(len);
        } else if !hairpin {
            let n = self.packets_in.load(Relaxed);
            self.packets_in.store(n.saturating_add(1), Relaxed);
            let b = self.in_word.load(Relaxed);
            self.in_word.store(b.wrapping_add(u64::from(len)), Relaxed);
        }
    }

    #[inline]
    fn count_out(&self, len: u32) {
        let n = self.packets_out.load(Relaxed);
        self.packets_out.store(n.saturating_add(1), Relaxed);
        let b = self.bytes_out.load(Relaxed);
        self.bytes_out
            .store(b.wrapping_add(u64::from(len)), Relaxed);
    }

    /// Sets the TCP tracking byte. Lock holder only (lock-free hits never write `ep`).
    #[inline]
    pub(crate) fn set_tcp(&self, track: TcpTrack) {
        let ep = self.ep.load(Relaxed);
        self.ep
            .store((ep & !TCP_BITS) | u64::from(track.bits()) << 8, Relaxed);
    }
}

impl Node for SessionCell {
    #[inline]
    fn prev(&self) -> u32 {
        self.prev.load(Relaxed)
    }
    #[inline]
    fn next(&self) -> u32 {
        self.next.load(Relaxed)
    }
    #[inline]
    fn set_prev(&self, i: u32) {
        self.prev.store(i, Relaxed);
    }
    #[inline]
    fn set_next(&self, i: u32) {
        self.next.store(i, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::session::{Hairpin, NewSession};
    use crate::tcp::TCP_SYN;
    use crate::timeouts::SECOND;
    use crate::FlowKey;

    fn session(hairpin: bool) -> Session {
        let key = FlowKey::new(
            Proto::Tcp,
            Endpoint::new(Ipv4Addr::new(10, 0, 0, 7), 40_001),
            Endpoint::new(Ipv4Addr::new(192, 0, 2, 9), 443),
        );
        let new = NewSession {
            key,
            wan: 5,
            eligible: u64::MAX,
            lan_iface: 3,
            hairpin: hairpin.then(|| Hairpin {
                target: Endpoint::new(Ipv4Addr::new(10, 0, 0, 8), 8080),
                egress: 2,
            }),
            rule: 513,
        };
        let mut s = Session::create(&new, 5, 61_000, TCP_SYN, 7_123_456_789);
        s.count(true, 60);
        s.count(false, 1500);
        s
    }

    #[test]
    fn is_one_cache_line() {
        assert_eq!(std::mem::size_of::<SessionCell>(), 64);
        assert_eq!(std::mem::align_of::<SessionCell>(), 64);
        assert_eq!(crate::SESSION_SIZE, 64);
    }

    #[test]
    fn holds_a_session_exactly() {
        for hairpin in [false, true] {
            let s = session(hairpin);
            let c = SessionCell::new(&s);
            assert_eq!(format!("{:?}", c.load()), format!("{s:?}"));
            let k = s.key();
            assert!(c.is(k.proto, k.src, k.dst));
            assert!(!c.is(Proto::Udp, k.src, k.dst));
            assert!(!c.is(k.proto, k.dst, k.src));
            let other = Endpoint::new(k.dst.ip, k.dst.port + 1);
            assert!(!c.is(k.proto, k.src, other));
        }
    }

    #[test]
    fn a_free_cell_matches_no_key() {
        let zero = Endpoint::new(Ipv4Addr::UNSPECIFIED, 0);
        let s = session(false);
        let live = SessionCell::new(&s);
        assert!(live.is(s.proto, s.internal(), s.remote()));
        live.vacate(3);
        for cell in [SessionCell::vacant(3), live] {
            assert_eq!(cell.next(), 3);
            for proto in [Proto::Udp, Proto::Tcp, Proto::Icmp] {
                // the flow whose words a vacant session would have, and the one it held
                assert!(!cell.is(proto, zero, zero), "{proto:?}");
                assert!(!cell.is(proto, s.internal(), s.remote()), "{proto:?}");
            }
        }
    }

    #[test]
    fn store_writes_every_word_links_included() {
        let c = SessionCell::new(&Session::vacant(9));
        c.set_prev(4);
        let s = session(false);
        c.store(&s);
        assert_eq!((c.prev(), c.next()), (s.pack().prev, s.pack().next));
        assert_eq!(format!("{:?}", c.load()), format!("{s:?}"));
    }

    #[test]
    fn record_counts_like_a_locked_hit() {
        for hairpin in [false, true] {
            let mut s = session(hairpin);
            let c = SessionCell::new(&s);
            let now = s.last_seen + 1000;
            c.record(true, 52, now, s.in_word());
            s.count(true, 52);
            s.refresh(now);
            if !hairpin {
                c.record(false, 1400, now, s.in_word());
                s.count(false, 1400);
            }
            c.record_locked(true, 7, now + 1, hairpin);
            c.record_locked(false, 9, now + 1, hairpin);
            s.count(true, 7);
            s.count(false, 9);
            s.refresh(now + 1);
            assert_eq!(format!("{:?}", c.load()), format!("{s:?}"));
            // never moves last_seen back
            c.record(true, 1, now - 5, s.in_word());
            c.record_locked(true, 1, now - 5, hairpin);
            assert_eq!(c.load().last_seen, now + 1);
        }
    }

    #[test]
    fn a_late_reply_count_never_lands_on_a_hairpin_session() {
        // a reply packet of a session was looked up; the session was removed and a hairpin
        // session took its slot before the lock-free count came
        let old = session(false);
        let c = SessionCell::new(&old);
        let hairpin = session(true);
        c.store(&hairpin);
        c.record(false, 1500, old.last_seen + 1, old.in_word());
        assert_eq!(
            format!("{:?}", c.load()),
            format!("{:?}", hairpin_after(&hairpin, old.last_seen + 1))
        );
    }

    /// `s` after `last_seen` moved to `now` (what a late record may still do).
    fn hairpin_after(s: &Session, now: u64) -> Session {
        let mut s = *s;
        s.refresh(now);
        s
    }

    #[test]
    fn last_seen_is_not_moved_back_across_a_second() {
        let s = session(false);
        let c = SessionCell::new(&s);
        // a locked hit moved it into the next second meanwhile
        let next = (s.last_seen / SECOND + 1) * SECOND + 5;
        c.record_locked(true, 1, next, false);
        c.record(true, 1, s.last_seen + 10, s.in_word());
        assert_eq!(c.load().last_seen, next);
    }

    #[test]
    fn set_tcp_changes_only_the_tcp_byte() {
        let s = session(false);
        let c = SessionCell::new(&s);
        let track = TcpTrack::from_bits(0x42);
        c.set_tcp(track);
        let mut expected = s;
        expected.tcp = track;
        assert_eq!(format!("{:?}", c.load()), format!("{expected:?}"));
    }
}
