//! # conntrack — flow state for fwd (layer: flow state, sans-I/O)
//!
//! Owns the state that makes every packet after the first of a flow a lookup: sessions (one
//! per flow, keyed by its canonical key as seen from the LAN), TCP connection tracking, idle
//! timeouts and expiry, the NAT port table of every WAN, endpoint-independent mappings, and the
//! table that lets non-first IPv4 fragments follow their datagram's rewrite. It parses nothing,
//! performs no I/O, reads no clock (time is the `now: Duration` argument, from an origin the
//! caller picks) and makes no policy decision (the engine passes its preferred WAN and the set
//! of eligible WANs to [`ConnTable::create`], which only keeps an endpoint on a WAN where it is
//! already mapped).
//!
//! Design (see `docs/ARCHITECTURE.md`, "The connection table"): every session has one
//! *canonical key* (protocol, internal address:port, remote address:port — the flow as seen
//! from the LAN), and the table is two sets of shards with the same count:
//! - *session shards*, picked by the hash of the canonical key, so sessions spread uniformly
//!   however they cluster by endpoint (one internal endpoint talking to thousands of peers does
//!   not fill one shard). Outbound packets carry the canonical key and hash it; inbound packets
//!   read the internal endpoint that owns their external port from their WAN's lock-free port
//!   table (one atomic load), rebuild the canonical key and hash it. So each session has one
//!   index entry, and every packet takes exactly one session-shard mutex;
//! - *mapping shards*, picked by the hash of (protocol, internal endpoint), holding the
//!   endpoint-independent mappings (RFC 4787 REQ-1): (proto, internal endpoint, WAN) → external
//!   port and reference count. Only `create` and session removal (expiry, eviction, SYN
//!   recycling) touch them;
//! - *host shards*, picked by the hash of the internal host's address, counting each LAN
//!   host's live sessions and mappings (NAT ports) per WAN (`hosts.rs`) for the per-host caps
//!   of `create` and for eviction, which takes a session of the host with the most. Only
//!   `create`, eviction and session removal touch them.
//!
//! Port forwards: the engine owns the forwards (WAN w, protocol, external port E → LAN target
//! T) and decides that a packet from the Internet matches one; the table keeps their sessions
//! ([`ConnTable::create_forwarded`]). A forwarded session has the canonical key (proto, T,
//! client) like any other, so the target's packets are outbound lookups that leave by w from
//! w's address:E; the client's packets are looked up by [`ConnTable::lookup_forwarded`], which
//! is told T (the port table does not hold forwards). Such a session is flagged (bit 0x40 of
//! its WAN byte, `session.rs`), holds no mapping, counts against no per-host cap (its target
//! did not open it) but is counted apart per host for eviction (`hosts.rs`), and has its TCP
//! tracked with the client as the opener (`shard.rs`). E, when it lies in w's NAT range, is
//! kept from dynamic NAT by a reserved entry in w's port table ([`ConnTable::reserve_port`]):
//! no allocation hands it out, and no endpoint owns it.
//!
//! Hairpin through a port forward: a LAN host C reaching w's address:E. C's packets make an
//! ordinary hairpin session ([`ConnTable::create`] with the forward's target T as
//! [`Hairpin::target`]): C is translated to its own mapping w:m and T receives from w:m.
//! T's answers to w:m make T's side ([`ConnTable::create_forwarded_hairpin`]): a session
//! keyed (proto, T, w:m) that is a port forward's (bit 0x40: external port E, no mapping,
//! counted apart per host, no per-host cap, removed with the forward) and a hairpin (bit
//! 0x80: rewritten to C, out of C's LAN, never matched inbound), so that C sees the answers
//! come from w:E, where it sent its packets. It sees T's packets only, and is TCP-tracked
//! from that one side like any hairpin session.
//!
//! Lock order: a session shard, then a mapping shard, then a host shard, never the other way
//! round and never two of a kind at once; a host shard's lock is held for a few reads and
//! writes and nothing is locked under it. `create` locks the flow's session shard (race check,
//! reaping; when the shard is full, the host's count, then eviction), then the endpoint's
//! mapping shard to reuse or create the mapping, counting the session (and a new mapping)
//! against the host's caps under its host shard's lock, then inserts the session; removing a
//! session under its session shard's lock takes its mapping shard's lock to drop the reference
//! (and, with the last one, the mapping and its port binding), then its host shard's to
//! count it off.
//!
//! Invariants:
//! - the per-packet path ([`ConnTable::lookup_outbound`], [`ConnTable::lookup_inbound`]) never
//!   allocates or logs; a hit that changes nothing but the session's `last_seen` and counters
//!   (most packets) takes no lock and no atomic read-modify-write: it reads the session under
//!   its shard's sequence number (a seqlock, see `shard.rs`). Any other packet takes one
//!   session-shard lock (plus, when the packet ends its session — expired, or recycled by a
//!   SYN — that session's mapping-shard lock); creating sessions
//!   never allocates either: slabs, indexes (sized once, never grown: see `index.rs`) and
//!   port tables are preallocated by the constructors;
//! - a session lives in the session shard its canonical key hashes to, a mapping in the
//!   mapping shard its (proto, internal endpoint) hashes to, a host's counts in the host shard
//!   its address hashes to;
//! - each (internal host, WAN) with live sessions it opened has one host entry, counting
//!   exactly those sessions and its mappings there; each (host, WAN) with live port forward
//!   sessions has one more, counting exactly those (no ports); no other entry exists. No host
//!   holds more than [`TableConfig::max_sessions_per_host`] sessions it opened, nor more than
//!   [`TableConfig::max_ports_per_host`] mappings on a WAN; port forward sessions are held
//!   to no cap;
//! - every live session but a port forward's holds one reference to the mapping of its
//!   internal endpoint on its WAN and has that mapping's external port; a mapping lives exactly
//!   as long as it has references, and its external port is bound to its internal endpoint in
//!   the WAN's port table exactly as long as the mapping lives. A port forward's session (one
//!   opened from the Internet, or the target's side of a hairpin through the forward) holds
//!   no reference, and its external port is bound to no endpoint (reserved, or outside the NAT
//!   range, while the engine keeps the forward: see [`ConnTable::release_port`]);
//! - an external port of a WAN and protocol is bound to at most one internal endpoint, and a
//!   reserved one to none;
//! - within a session shard each timeout class keeps its sessions in a list in order of last
//!   packet to within one second: a lookup hit moves its session to the list's head only at
//!   its first packet in a later second (or on a change of timeout class), so a busy flow
//!   writes other sessions' links once a second, not per packet. Expiry pops class tails,
//!   never scans, never removes a session before its timeout, and removes every session more
//!   than one second past its deadline in a pass over its shard; eviction weighs a bounded
//!   number of sessions from the class tails ([`EVICTION_CANDIDATES`] each) and takes one of
//!   the host with the most live sessions of the candidate's kind (opened by the host, or
//!   forwarded to it), the longest-idle of those (see `shard.rs`);
//! - `ConnTable::check` (tests) verifies all of the above that a quiescent table shows: each
//!   shard's structure and placement, mapping reference counts against the sessions, every
//!   session's port binding (none for a port forward's), and every host entry's counts;
//! - no input panics: failures are typed errors ([`CreateError`], [`TableConfigError`]) or
//!   counted events ([`TableStats`]); there is no `unsafe`.
//!
//! Memory: everything is sized from `max_sessions` up front. A session shard holds
//! `c = ceil(max_sessions / shards)` sessions: the 64-byte session (one cache line, aligned to
//! one), its 32-byte TCP window state (`window.rs`, in a slab beside the sessions') and its
//! 4-byte index entry (6.4 to 12.8 bytes per slot with the index's slack, see
//! `index.rs`). A mapping shard holds `c + 8 √c + 8` mappings (at most the table's capacity;
//! the headroom is explained in `mapping.rs`): a 16-byte slot and its index entry (6.4 to 12.8
//! bytes) each; a host shard as many host entries (12 bytes and an index entry each). Per
//! session of capacity that is about 150 to 160 bytes in all for shards of 4096 sessions or
//! more (`ConnTable::memory_bytes`); port tables add 8 bytes per port, protocol and WAN.
//!
//! Modules: `key` (flow identity and hashing), `timeouts` (timeouts and classes), `tcp` (TCP
//! state machine), `window` (TCP sequence windows), `session` (the 64-byte session and its public views), `cell` (a
//! session's atomic storage in the slab, read by lock-free hits), `lru` (intrusive
//! per-class lists), `ports` (lock-free port tables), `mapping` (one mapping shard:
//! endpoint-independent mappings), `hosts` (per-host counts and caps), `index` (the slot indexes: open addressing, never rebuilt),
//! `shard` (one session shard's storage and operations), `table` (the public table),
//! `fragments` (fragment rewrites), `stats` (event counters).

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod cell;
mod fragments;
mod hosts;
mod index;
mod key;
mod lru;
mod mapping;
mod ports;
mod session;
mod shard;
mod stats;
mod table;
mod tcp;
mod timeouts;
mod window;

pub use fragments::{FragmentKey, FragmentTable};
pub use key::{Endpoint, FlowKey, Proto};
pub use session::{Hairpin, NewForwarded, NewSession, PacketInfo, Rewrite, SessionInfo};
pub use stats::TableStats;
pub use table::{
    ConnTable, CreateError, FlowHash, Liveness, Lookup, OnFull, SlotHint, TableConfig,
    TableConfigError, WanNat, WanSet, DEFAULT_MAX_PORTS_PER_HOST, DEFAULT_MAX_SESSIONS_PER_HOST,
    EVICTION_CANDIDATES, MAX_WANS, PREFETCH_BATCH,
};
pub use tcp::{TcpState, TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN};
pub use timeouts::Timeouts;
pub use window::Segment;

/// Bytes of one session in a session shard's slab. A session of capacity costs more in all (its
/// index entry, and its share of the mapping shards): see [`ConnTable::memory_bytes`].
pub const SESSION_SIZE: usize = std::mem::size_of::<cell::SessionCell>();
