//! One session shard of the connection table: the sessions whose canonical flow hashes to it.
//! Changed only under its mutex ([`Shard::lock`], see `table.rs`); session removal also takes
//! the mutex of the session's mapping shard, after this one (lock order: session shard, then
//! mapping shard). Most hits take no lock at all (see "Hits without the lock" below).
//!
//! Holds a preallocated slab of sessions (`SessionCell`s, see `cell.rs`) with a free list, a
//! [`SlotIndex`] of slot numbers keyed by the hash of the canonical flow (the key is compared
//! against the slab), and one list per timeout class. Invariants, at every unlock:
//! - a slot is either free (on the free list) or live (in the index, and in exactly the list
//!   of its current class);
//! - every live session but a port forward's holds one reference to the mapping of (proto,
//!   internal, wan) in that endpoint's mapping shard; a removed session has given its
//!   reference back. A port forward's session holds none: its external port is the
//!   forward's, which no mapping holds;
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
//! `evict` weighs the [`EVICTION_CANDIDATES`] longest-idle sessions of each class list and
//! evicts the one whose internal host has the most live sessions (`hosts.rs`), the
//! longest-idle of those: a host that floods the table gives up its own sessions first. When
//! the candidates' hosts have as many sessions each (one host, say), that is the longest-idle
//! of the class tails, the shard's longest-idle session to within one second (a session behind
//! a tail went idle at most a second before it).
//!
//! Why hits move sessions themselves rather than flag them for a sweep to re-queue (second
//! chance, CLOCK): a flagged session's list position can be much older than its last packet,
//! and a sweep that stops at an idle tail re-queues the flagged sessions behind it only when it
//! gets past it, up to a timeout later, behind everything created meanwhile. A flow answered
//! right after creation but queued behind an unanswered one then lived almost twice its
//! timeout, holding its slot and its NAT port.
//!
//! # Port forwards' sessions
//!
//! A port forward's session (`Session::is_forwarded`) was opened from the reply side (an
//! Internet client). Its counters keep the table's directions (out: from the LAN side), but
//! the TCP state machine and the window tracker see its directions swapped
//! ([`Dir::tracked`]): in `touch`, in lock-free hits and in `insert` (whose packet, the
//! client's, is the opener's), so the client's SYN opens it, the target's SYN-ACK answers,
//! and the client's SYN on a TimeWait or Closed session recycles it, as for any other
//! session (`Session::opened_by_reply`). It holds no mapping reference, and its host counts it
//! apart (`hosts.rs`). The target's side of a hairpin through a port forward is a port
//! forward's session too (no mapping reference, counted apart) but sees the target's packets
//! only: its directions are not swapped, and it is tracked as any hairpin session is, from
//! its one side (the target's SYN-ACK or data creates it Established, the target's FIN moves
//! it to FinWait, a RST closes it; the window tracker, with one side only, checks nothing).
//!
//! # Hits without the lock
//!
//! A fast-path packet first tries [`Shard::peek`]: it reads the shard's sequence number, probes
//! the index, reads the session's cell, and reads the sequence number again (a seqlock). The
//! lock holder makes the number odd before it changes a slot's identity or the index (insert,
//! remove) and even again after; so equal even numbers mean the peek saw one consistent
//! state, and anything else sends the packet to the locked path. A valid peek that needs no
//! change but `last_seen` and the counters (not expired, no list move due, no TCP state
//! change, no WAN check to act on) then stores those with [`Shard::record`]: plain stores
//! (and for a reply packet one compare-and-swap on the session's own line), no lock.
//! Everything else (a move to the list head once a second, a TCP state change, expiry, a WAN
//! that went down) takes the lock and runs as before; a hit under the lock writes only the
//! words it changes, so the two kinds never undo each other's counts. What the store after a
//! valid peek can still race:
//! - another hit on the same direction of the flow (two workers at the same instant): one
//!   count can be lost (statistics only);
//! - a locked hit moving `last_seen` into a later second: the lock-free store is skipped if the
//!   value it reads is in a later second than its `now`, but a locked store landing between
//!   that read and the store is set back, by the skew between the two workers' clocks (the
//!   lists are in order to within one second plus that skew; see above);
//! - the session's removal and its slot's reuse: the store then lands on the slot's next
//!   occupant, created at about the same `now`: its `last_seen` moves by at most the skew
//!   between the workers' clocks, and an original-direction packet is counted on it. A reply
//!   count is a compare-and-swap from the value the peek saw (`SessionCell::record`), so it
//!   never lands on a hairpin session's rewrite, which shares the reply counter's word.
//!
//! Lists, free list and index are never written without the lock.

use std::net::Ipv4Addr;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::cell::SessionCell;
use crate::index::{HomeEntry, SlotIndex};
use crate::key::Proto::Tcp;
use crate::key::{Endpoint, KeyHasher, Proto};
use crate::lru::{List, NIL};
use crate::session::{Glance, PacketInfo, Session};
use crate::stats::{add, bump};
use crate::table::{Shared, EVICTION_CANDIDATES};
use crate::tcp::{Dir, Step, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN};
use crate::timeouts::{second_start, Class, CLASS_COUNT};
use crate::window::{Window, WindowCell};

/// Lines between the first free slots of consecutive shards (see `Shard::new`): 64 shards
/// cover a 4 KiB page's 64 lines once, with a few sessions each before they overlap.
const STAGGER: u64 = 5;

/// The sessions of one shard: slab, index and sequence number, read without the lock; free
/// list, count and class lists behind it.
#[derive(Debug)]
pub(crate) struct Shard {
    sessions: Box<[SessionCell]>,
    /// The TCP window state of the session in the same slot (`window.rs`).
    windows: Box<[WindowCell]>,
    index: SlotIndex,
    /// Even while no slot changes identity; odd while the lock holder inserts or removes a
    /// session (see the module docs).
    seq: AtomicU64,
    /// The first free slot, as the lock holder last set it (`NIL`: none); read without the
    /// lock only to prefetch the slot a new session will take.
    free_hint: AtomicU32,
    state: Padded<Mutex<State>>,
}

/// The mutex on a cache line of its own: lockers' writes do not disturb lock-free readers of
/// the shard's other fields.
#[derive(Debug)]
#[repr(align(64))]
struct Padded<T>(T);

/// What only the lock holder reads and writes.
#[derive(Debug)]
struct State {
    /// Index of this shard in the table (of its [`ShardCounts`](crate::stats::ShardCounts)).
    id: usize,
    free: u32,
    len: u32,
    lists: [List; CLASS_COUNT],
}

/// What a lock-free [`Shard::peek`] saw.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Peek<'a> {
    /// The live session in these cells, as it was (the words a hit needs).
    Found(Found<'a>, Glance),
    /// No session has the key.
    Absent,
    /// The lock holder was changing the shard: ask again under the lock.
    Busy,
}

/// The cells of a session a [`Shard::peek`] found, and its TCP window words as read with
/// the session (zeros for other protocols).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Found<'a> {
    pub(crate) cell: &'a SessionCell,
    window: &'a WindowCell,
    window_words: [u64; 4],
}

/// A flow's home index entry in its shard, located but not read, and the slab it names slots
/// of: the first step of a prefetch of the session a lookup of the flow will most likely read
/// (see `ConnTable::prefetch_sessions`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct HomeSession<'a> {
    entry: HomeEntry<'a>,
    sessions: &'a [SessionCell],
    windows: &'a [WindowCell],
}

impl HomeSession<'_> {
    /// The address of the home index entry, for a prefetch.
    #[inline]
    pub(crate) fn entry_address(self) -> *const u8 {
        self.entry.address()
    }

    /// Reads the entry: the address and slot of the session it names if its tag is the
    /// flow's.
    #[inline]
    pub(crate) fn line(self) -> Option<(*const u8, u32)> {
        let slot = self.entry.slot()?;
        let cell = self.sessions.get(slot as usize)?;
        Some((std::ptr::from_ref(cell).cast(), slot))
    }

    /// The address of the TCP window cell of slot `slot` (for a prefetch: a TCP hit reads
    /// it with the session).
    #[inline]
    pub(crate) fn window_line(self, slot: u32) -> Option<*const u8> {
        let cell = self.windows.get(slot as usize)?;
        Some(std::ptr::from_ref(cell).cast())
    }
}

fn session_hash(sessions: &[SessionCell], hasher: &KeyHasher, slot: u32) -> u64 {
    sessions.get(slot as usize).map_or(0, |c| {
        let s = c.load();
        hasher.flow(s.endpoint_word(), s.remote_word())
    })
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
            SessionCell::vacant(if next == start { NIL } else { next })
        }));
        let mut windows = Vec::new();
        windows.try_reserve_exact(cap as usize).ok()?;
        windows.extend((0..cap).map(|_| WindowCell::default()));
        let index = SlotIndex::new(cap)?;
        Some(Shard {
            sessions: sessions.into_boxed_slice(),
            windows: windows.into_boxed_slice(),
            index,
            seq: AtomicU64::new(0),
            free_hint: AtomicU32::new(if cap > 0 { start } else { NIL }),
            state: Padded(Mutex::new(State {
                id,
                free: if cap > 0 { start } else { NIL },
                len: 0,
                lists: [List::new(); CLASS_COUNT],
            })),
        })
    }

    /// Takes the shard's lock.
    #[inline]
    pub(crate) fn lock(&self) -> Locked<'_> {
        // A panic while holding the lock cannot leave the shard half-updated in a way later
        // operations would trip over (every operation checks its slots), so poison is ignored.
        let st = self.state.0.lock().unwrap_or_else(PoisonError::into_inner);
        Locked { shard: self, st }
    }

    /// Lock-free read of the session of protocol `proto` whose internal endpoint word is `ep`
    /// and remote word `remote` (`key.rs`), flow hash `h` (see the module docs). The cell in
    /// slot `hint` (if there is one) is tried first, then the index: a cell that holds the
    /// key holds the key's live session, however the slot was found (a key has one session,
    /// and a free cell matches no key, `SessionCell::vacate`); the sequence number covers
    /// both ways alike.
    #[inline(always)]
    pub(crate) fn peek(&self, h: u64, proto: Proto, ep: u64, remote: u64, hint: u32) -> Peek<'_> {
        let before = self.seq.load(Ordering::Acquire);
        if before & 1 != 0 {
            return Peek::Busy;
        }
        let sessions = &self.sessions;
        let is_key = |slot: u32| {
            sessions
                .get(slot as usize)
                .is_some_and(|c| c.is_key(ep, remote))
        };
        let slot = if is_key(hint) {
            Some(hint)
        } else {
            self.index.find(h, is_key)
        };
        let seen = slot.and_then(|slot| {
            let cell = sessions.get(slot as usize)?;
            let window = self.windows.get(slot as usize)?;
            let window_words = if proto == Tcp { window.words() } else { [0; 4] };
            let found = Found {
                cell,
                window,
                window_words,
            };
            Some((found, cell.glance(proto)))
        });
        fence(Ordering::Acquire);
        if self.seq.load(Ordering::Relaxed) != before {
            return Peek::Busy;
        }
        match seen {
            Some((cell, s)) => Peek::Found(cell, s),
            None => Peek::Absent,
        }
    }

    /// `h`'s home index entry, located but not read yet, with the slab it names slots of (see
    /// [`HomeSession`]).
    #[inline]
    pub(crate) fn locate_home(&self, h: u64) -> Option<HomeSession<'_>> {
        Some(HomeSession {
            entry: self.index.locate_home(h)?,
            sessions: &self.sessions,
            windows: &self.windows,
        })
    }

    /// The address of the slot the next session inserted here will take (for a prefetch).
    #[inline]
    pub(crate) fn free_line(&self) -> Option<*const u8> {
        let slot = self.free_hint.load(Ordering::Relaxed);
        let cell = self.sessions.get(slot as usize)?;
        Some(std::ptr::from_ref(cell).cast())
    }

    /// Whether a packet travelling in `dir` can be applied to `s` (a session [`peek`]ed at
    /// `now`) by [`record`](Self::record) alone: the session has not expired, no move to its
    /// list's head is due (the packet is in the same whole second as the session's last one,
    /// or earlier), and the packet changes no TCP state. Otherwise the locked path applies it.
    ///
    /// [`peek`]: Self::peek
    #[inline]
    pub(crate) fn lock_free_hit(
        sh: &Shared,
        s: &Glance,
        dir: Dir,
        pkt: PacketInfo,
        now: u64,
    ) -> bool {
        if sh.timeouts.expired(s.class(), s.last_seen, now) {
            return false;
        }
        if pkt.icmp_error {
            return true;
        }
        // a packet in a later second than the session's last (a list move is due)
        if s.last_seen < second_start(now) {
            return false;
        }
        s.proto != Proto::Tcp
            || (pkt.tcp_flags & (TCP_SYN | TCP_FIN | TCP_RST) == 0
                && s.tcp()
                    .unchanged_by(dir.tracked(s.opened_by_reply()), pkt.tcp_flags))
    }

    /// A hit without the lock on the session `s` that [`peek`](Self::peek) found in `found`,
    /// if [`lock_free_hit`](Self::lock_free_hit) allows it and (for TCP) the segment is in the
    /// window and its window words could be stored ([`WindowCell::step_lock_free`]): stores
    /// `last_seen` and the counters of the packet's direction, and says yes. `false` stores
    /// nothing: the locked path decides.
    #[inline(always)]
    pub(crate) fn try_hit(
        sh: &Shared,
        found: &Found<'_>,
        s: &Glance,
        dir: Dir,
        pkt: PacketInfo,
        now: u64,
    ) -> bool {
        if !Self::lock_free_hit(sh, s, dir, pkt, now) {
            return false;
        }
        if pkt.icmp_error {
            return true;
        }
        if s.proto == Proto::Tcp
            && !found.window.step_lock_free(
                found.window_words,
                dir.tracked(s.opened_by_reply()),
                pkt.tcp_flags,
                &pkt.seg,
                s.tcp().state(),
            )
        {
            return false;
        }
        found
            .cell
            .record(dir == Dir::Original, pkt.len, now, s.in_word);
        true
    }

    /// Heap bytes.
    pub(crate) fn memory(&self) -> usize {
        self.sessions.len() * std::mem::size_of::<SessionCell>()
            + self.windows.len() * std::mem::size_of::<WindowCell>()
            + self.index.memory()
    }

    /// Address and length of the slab, of the window slab and of the index entries.
    pub(crate) fn regions(&self) -> [(usize, usize); 3] {
        let slab = self.sessions.len() * std::mem::size_of::<SessionCell>();
        let windows = self.windows.len() * std::mem::size_of::<WindowCell>();
        [
            (self.sessions.as_ptr() as usize, slab),
            (self.windows.as_ptr() as usize, windows),
            self.index.region(),
        ]
    }
}

/// What [`Locked::touch`] made of a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Touch {
    /// Applied to the live session.
    Live,
    /// The session is gone (expired, or recycled by a SYN) and has been removed.
    Gone,
    /// A TCP segment outside the session's window (`window.rs`): nothing changed.
    OutOfWindow,
    /// A SYN from the LAN side outside the window of the session's connection: the host has
    /// lost that connection (it restarted, or reused the port). Nothing changed, and the
    /// packet goes on, so that the server's challenge ACK (RFC 5961 4) draws from the host the
    /// reset that closes the session in the window; the host's next SYN then recycles it.
    Unchanged,
}

/// A SYN alone: neither ACK, RST nor FIN.
fn lost_connection(flags: u8) -> bool {
    flags & (TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN) == TCP_SYN
}

/// A shard under its lock.
pub(crate) struct Locked<'a> {
    shard: &'a Shard,
    st: MutexGuard<'a, State>,
}

impl Locked<'_> {
    /// Marks the start of a change of slot identity or index (sequence number odd).
    #[inline]
    fn write_begin(&self) {
        let seq = &self.shard.seq;
        seq.store(
            seq.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
        fence(Ordering::Release);
    }

    /// Marks its end (sequence number even again).
    #[inline]
    fn write_end(&self) {
        let seq = &self.shard.seq;
        seq.store(
            seq.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Release,
        );
    }

    /// Sets the first free slot (and its lock-free hint).
    #[inline]
    fn set_free(&mut self, slot: u32) {
        self.st.free = slot;
        self.shard.free_hint.store(slot, Ordering::Relaxed);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> u32 {
        self.st.len
    }

    pub(crate) fn is_full(&self) -> bool {
        self.st.free == NIL
    }

    pub(crate) fn session(&self, slot: u32) -> Option<Session> {
        self.shard
            .sessions
            .get(slot as usize)
            .map(SessionCell::load)
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
        let sessions = &self.shard.sessions;
        self.shard.index.find(h, |s| {
            sessions
                .get(s as usize)
                .is_some_and(|c| c.is(proto, internal, remote))
        })
    }

    /// Applies one packet travelling in `dir` to live session `slot` (flow hash `h`): expiry
    /// check, TCP window and state (in the direction the tracker sees, [`Dir::tracked`]),
    /// counters, refresh. Writes this session only, unless the
    /// packet is the first of a later second than the session's previous one (the session then
    /// moves to its list's head) or changes its timeout class (it then moves to the head of its
    /// new class's list): see the module docs. The session may be gone instead (expired, or
    /// recycled by a SYN: removed), or the segment out of its window (nothing changed): see
    /// [`Touch`].
    #[inline]
    pub(crate) fn touch(
        &mut self,
        sh: &Shared,
        slot: u32,
        h: u64,
        dir: Dir,
        pkt: PacketInfo,
        now: u64,
    ) -> Touch {
        let Some(mut s) = self.session(slot) else {
            return Touch::Gone;
        };
        let class = s.class();
        if sh.timeouts.expired(class, s.last_seen, now) {
            self.remove(sh, slot, h);
            bump(&sh.stats.expired);
            return Touch::Gone;
        }
        if pkt.icmp_error {
            return Touch::Live;
        }
        let Some(cell) = self.shard.sessions.get(slot as usize) else {
            return Touch::Gone;
        };
        if s.proto == Proto::Tcp {
            let tracked = dir.tracked(s.opened_by_reply());
            match s.tcp.step(tracked, pkt.tcp_flags) {
                Step::Recycle => {
                    self.remove(sh, slot, h);
                    bump(&sh.stats.recycled);
                    return Touch::Gone;
                }
                Step::Keep { track, reset } => {
                    if let Some(w) = self.shard.windows.get(slot as usize) {
                        let mut window = w.load();
                        let state = s.tcp.state();
                        if !window.segment(tracked, pkt.tcp_flags, &pkt.seg, state) {
                            return if tracked == Dir::Original && lost_connection(pkt.tcp_flags) {
                                Touch::Unchanged
                            } else {
                                Touch::OutOfWindow
                            };
                        }
                        w.store(&window);
                    }
                    if track != s.tcp {
                        s.tcp = track;
                        cell.set_tcp(track);
                    }
                    if reset {
                        bump(&sh.stats.closed_by_rst);
                    }
                }
            }
        }
        // only the words this hit changes: lock-free hits may be counting meanwhile
        cell.record_locked(dir == Dir::Original, pkt.len, now, s.is_hairpin());
        let due = s.refresh(now);
        let new_class = s.class();
        let sessions = &self.shard.sessions;
        let lists = &mut self.st.lists;
        if new_class != class {
            lists[class.index()].unlink(sessions, slot);
            lists[new_class.index()].push_front(sessions, slot);
        } else if due {
            lists[class.index()].move_to_front(sessions, slot);
        }
        Touch::Live
    }

    /// Removes live session `slot` (flow hash `h`): index, class list, mapping reference (taking
    /// the mapping shard's lock; the mapping and its port binding go with the last reference;
    /// a port forward's session holds none), its host's counts (then taking the host shard's
    /// lock), slot to the free list, live counters.
    pub(crate) fn remove(&mut self, sh: &Shared, slot: u32, h: u64) {
        let Some(s) = self.session(slot) else {
            return;
        };
        let sessions = &self.shard.sessions;
        self.st.lists[s.class().index()].unlink(sessions, slot);
        self.write_begin();
        self.shard
            .index
            .remove(h, slot, |x| session_hash(sessions, &sh.hasher, x));
        if let Some(c) = sessions.get(slot as usize) {
            c.vacate(self.st.free);
        }
        self.write_end();
        if s.is_forwarded() {
            sh.hosts.release_forwarded(s.internal().ip, s.wan());
        } else {
            let released =
                sh.mappings_of(s.endpoint_word())
                    .unref(sh, s.proto, s.internal(), s.wan());
            sh.hosts.release(s.internal().ip, s.wan(), released);
        }
        self.set_free(slot);
        self.st.len = self.st.len.saturating_sub(1);
        if let Some(c) = sh.counts.get(self.st.id) {
            c.removed(s.wan());
        }
    }

    /// Removes up to `budget` expired sessions by popping class tails, stopping each class at
    /// its first tail that is not expired (see the module docs); returns how many.
    pub(crate) fn expire(&mut self, sh: &Shared, now: u64, budget: usize) -> usize {
        let mut n = 0;
        for c in Class::ALL {
            while n < budget {
                let Some(t) = self.st.lists[c.index()].tail() else {
                    break;
                };
                let Some(s) = self.session(t) else {
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

    /// Evicts one session: of the [`EVICTION_CANDIDATES`] longest-idle sessions of each class
    /// list, the one whose host has the most live sessions of its kind (a port forward's
    /// session is weighed by its target's forwarded sessions, any other by the sessions its
    /// host opened), and of those the longest-idle (see `OnFull::EvictOldest`). Reads each
    /// candidate host's count under its host shard's lock (once per run of candidates of one
    /// host and kind). Returns whether a session was evicted.
    pub(crate) fn evict(&mut self, sh: &Shared) -> bool {
        let sessions = &self.shard.sessions;
        // (host's sessions, last packet, slot) of the best victim so far
        let mut victim: Option<(u32, u64, u32)> = None;
        let mut host: Option<(Ipv4Addr, bool, u32)> = None;
        for l in &self.st.lists {
            for t in l.iter_from_tail(sessions).take(EVICTION_CANDIDATES) {
                let Some(s) = sessions.get(t as usize).map(SessionCell::load) else {
                    continue;
                };
                let (ip, fwd) = (s.internal().ip, s.is_forwarded());
                let n = match host {
                    Some((last, f, n)) if last == ip && f == fwd => n,
                    _ => {
                        let n = sh.hosts.sessions(ip, fwd);
                        host = Some((ip, fwd, n));
                        n
                    }
                };
                if victim.is_none_or(|(vn, ls, _)| n > vn || (n == vn && s.last_seen < ls)) {
                    victim = Some((n, s.last_seen, t));
                }
            }
        }
        let Some((_, _, t)) = victim else {
            return false;
        };
        let h = session_hash(&self.shard.sessions, &sh.hasher, t);
        self.remove(sh, t, h);
        bump(&sh.stats.evicted);
        true
    }

    /// Inserts session `s` (links and counters unset; flow hash `h`), created by `pkt` (from
    /// the LAN side, or for a session opened by the reply side from the Internet client) at `now` (the
    /// caller has taken its mapping reference if it needs one, made room and checked that no
    /// session with this key exists). Returns its slot; `None`, changing nothing, when the
    /// shard has no free slot.
    pub(crate) fn insert(
        &mut self,
        sh: &Shared,
        mut s: Session,
        h: u64,
        pkt: PacketInfo,
    ) -> Option<u32> {
        let slot = self.st.free;
        let next_free = self.session(slot)?.next();
        let wan = s.wan();
        sh.wans.get(usize::from(wan))?;
        if !pkt.icmp_error {
            s.count(!s.opened_by_reply(), pkt.len);
        }
        let class = s.class();
        self.set_free(next_free);
        let sessions = &self.shard.sessions;
        self.write_begin();
        if let Some(c) = sessions.get(slot as usize) {
            c.store(&s);
        }
        if let Some(w) = self.shard.windows.get(slot as usize) {
            let mut window = Window::default();
            if s.proto == Proto::Tcp && !pkt.icmp_error {
                // the first segment, the opener's, is always in the window: it sets up its side
                window.segment(Dir::Original, pkt.tcp_flags, &pkt.seg, s.tcp.state());
            }
            w.store(&window);
        }
        // The index has room for every slot of the slab.
        self.shard.index.insert(h, slot);
        self.write_end();
        self.st.lists[class.index()].push_front(sessions, slot);
        self.st.len += 1;
        if let Some(c) = sh.counts.get(self.st.id) {
            c.inserted(wan);
        }
        Some(slot)
    }

    /// Removes every live session for which `f` is true; returns how many (control plane:
    /// visits every session, and collects the slots to remove).
    pub(crate) fn remove_where(
        &mut self,
        sh: &Shared,
        mut f: impl FnMut(&Session) -> bool,
    ) -> usize {
        let sessions = &self.shard.sessions;
        let mut doomed = Vec::new();
        for l in &self.st.lists {
            for slot in l.iter(sessions) {
                if sessions.get(slot as usize).is_some_and(|c| f(&c.load())) {
                    doomed.push(slot);
                }
            }
        }
        for &slot in &doomed {
            let h = session_hash(&self.shard.sessions, &sh.hasher, slot);
            self.remove(sh, slot, h);
        }
        doomed.len()
    }

    /// Calls `f` on every live session, class by class, most recently (re)inserted first.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&Session)) {
        let sessions = &self.shard.sessions;
        for l in &self.st.lists {
            for slot in l.iter(sessions) {
                if let Some(c) = sessions.get(slot as usize) {
                    f(&c.load());
                }
            }
        }
    }

    /// Slots of each class list, head first (tests).
    #[cfg(test)]
    pub(crate) fn class_lists(&self) -> Vec<Vec<u32>> {
        self.st
            .lists
            .iter()
            .map(|l| l.iter(&self.shard.sessions).collect())
            .collect()
    }

    /// Every slot of the slab, live or free, as its `Debug` text (links and all),
    /// and the lists' heads, tails and lengths (tests: to see what an operation wrote).
    #[cfg(test)]
    pub(crate) fn raw(&self) -> (Vec<String>, String) {
        let slots = self
            .shard
            .sessions
            .iter()
            .map(|c| format!("{:?}", c.load()))
            .collect();
        (slots, format!("{:?} free {}", self.st.lists, self.st.free))
    }

    /// Bucket count of the session index (to check it never grows).
    #[cfg(test)]
    pub(crate) fn index_buckets(&self) -> usize {
        self.shard.index.buckets()
    }

    /// Checks the shard's structural invariants; returns a description of the first violation.
    /// (Mapping references are checked table-wide, see `ConnTable::check`.)
    #[cfg(test)]
    pub(crate) fn check(&self, sh: &Shared) -> Result<(), String> {
        let sessions = &self.shard.sessions;
        if self.shard.seq.load(Ordering::Relaxed) & 1 != 0 {
            return Err("sequence number odd at rest".into());
        }
        let mut listed = 0u32;
        for (ci, l) in self.st.lists.iter().enumerate() {
            for slot in l.iter(sessions) {
                let s = self.session(slot).ok_or("bad slot")?;
                if s.class().index() != ci {
                    return Err(format!(
                        "slot {slot} in list {ci} has class {:?}",
                        s.class()
                    ));
                }
                let h = session_hash(sessions, &sh.hasher, slot);
                if self.find(h, s.proto, s.internal(), s.remote()) != Some(slot) {
                    return Err(format!("slot {slot} not indexed"));
                }
                let w = sh.wans.get(usize::from(s.wan())).ok_or("bad wan")?;
                let owner = w.ports.owner(s.proto, s.ext_port);
                if s.is_forwarded() {
                    if owner.is_some() {
                        return Err(format!("slot {slot}: forwarded, port {owner:?}"));
                    }
                } else if owner != Some(s.internal()) {
                    return Err(format!("slot {slot}: port {} not bound", s.ext_port));
                }
                listed += 1;
            }
        }
        let mut free = 0u32;
        let mut f = self.st.free;
        while f != NIL {
            free += 1;
            f = self.session(f).ok_or("bad free slot")?.next();
            if free > sessions.len() as u32 {
                return Err("free list cycle".into());
            }
        }
        self.shard
            .index
            .check(|x| session_hash(sessions, &sh.hasher, x))?;
        if listed != self.st.len || self.shard.index.len() != self.st.len {
            return Err(format!(
                "len {} listed {listed} indexed {}",
                self.st.len,
                self.shard.index.len()
            ));
        }
        if listed + free != sessions.len() as u32 {
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
            let locked = shard.lock();
            assert_eq!(
                u64::from(locked.st.free),
                id as u64 * STAGGER % u64::from(cap)
            );
            let mut seen = vec![false; cap as usize];
            let mut f = locked.st.free;
            while f != NIL {
                let s = seen.get_mut(f as usize).unwrap();
                assert!(!*s, "slot {f} twice");
                *s = true;
                f = locked.session(f).unwrap().next();
            }
            assert!(seen.iter().all(|&s| s), "id {id} cap {cap}");
        }
    }
}
