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
//! Design (see `docs/ARCHITECTURE.md`, "The connection table"): the table is sharded by the
//! flow's *internal endpoint* (protocol, LAN address, LAN port). Outbound packets hash their
//! source; inbound packets read the external port's owner from their WAN's lock-free port
//! table and then look up the canonical key in that endpoint's shard. So each session has one
//! index entry, and every packet takes exactly one shard mutex.
//!
//! Invariants:
//! - the per-packet path ([`ConnTable::lookup_outbound`], [`ConnTable::lookup_inbound`]) never
//!   allocates, logs or takes more than one lock; creating sessions never allocates either:
//!   slabs, indexes (rebuilt in place, never grown: see `index.rs`) and port tables are
//!   preallocated by the constructors;
//! - every live session references the mapping of its internal endpoint on its WAN; a mapping
//!   lives exactly as long as it has sessions, and its external port is bound to its internal
//!   endpoint in the WAN's port table exactly as long as the mapping lives;
//! - an external port of a WAN and protocol is bound to at most one internal endpoint;
//! - within a shard each timeout class keeps its sessions in LRU order, so expiry pops tails
//!   and never scans;
//! - no input panics: failures are typed errors ([`CreateError`], [`TableConfigError`]) or
//!   counted events ([`TableStats`]); there is no `unsafe`.
//!
//! Memory: everything is sized from `max_sessions` up front; per session of capacity that is
//! the 80-byte session, a 16-byte mapping slot and the two 4-byte-entry indexes, 110 to 125
//! bytes in all (`ConnTable::memory_bytes`); port tables add 8 bytes per port, protocol and
//! WAN.
//!
//! Modules: `key` (flow identity and hashing), `timeouts` (timeouts and classes), `tcp` (TCP
//! state machine), `session` (the 80-byte session and its public views), `lru` (intrusive
//! per-class lists), `ports` (lock-free port tables), `mapping` (endpoint-independent
//! mappings), `index` (sizing and in-place upkeep of the slot indexes), `shard` (one shard's
//! storage and operations), `table` (the public table), `fragments` (fragment rewrites),
//! `stats` (event counters).

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod fragments;
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

pub use fragments::{FragmentKey, FragmentTable};
pub use key::{Endpoint, FlowKey, Proto};
pub use session::{Hairpin, NewSession, PacketInfo, Rewrite, SessionInfo};
pub use stats::TableStats;
pub use table::{
    ConnTable, CreateError, Lookup, OnFull, TableConfig, TableConfigError, WanNat, MAX_WANS,
};
pub use tcp::{TcpState, TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN};
pub use timeouts::Timeouts;

/// Bytes of one session in a shard's slab. A session of capacity costs more in all (its index
/// entries and mapping): see [`ConnTable::memory_bytes`].
pub const SESSION_SIZE: usize = std::mem::size_of::<session::Session>();
