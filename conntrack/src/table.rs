//! The connection table: session shards keyed by canonical flow, mapping shards keyed by
//! internal endpoint, and the per-WAN port tables that resolve reply packets (see
//! `docs/ARCHITECTURE.md`, "The connection table").
//!
//! Every packet goes to exactly one session shard, the one its canonical flow hashes to:
//! outbound packets hash their key as it is; inbound packets first read the port table of their
//! WAN (one atomic load) to learn the internal endpoint and so the canonical key. A hit that
//! changes nothing but `last_seen` and counters takes no lock (`shard.rs`, "Hits without the
//! lock"); any other packet takes that shard's mutex, and only that one. Mapping
//! shards are locked only by `create` and by session removal, always while holding the
//! session shard's mutex and never the other way round (lock order: session shard, then
//! mapping shard), so no two threads can wait on each other. Host shards (per-host counts,
//! `hosts.rs`) come last in that order: taken by `create` and session removal for a few
//! reads and writes, with nothing locked under them. No global lock exists; table-wide
//! numbers are relaxed atomics: event statistics, and per-shard counts of live, per-WAN and
//! created sessions (`len`, `wan_sessions` and `stats` sum them), which only the holder of
//! the shard's lock writes, with a load and a store rather than a locked read-modify-write.

use std::fmt;
use std::net::Ipv4Addr;
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::hosts::Hosts;
use crate::index::SlotIndex;
use crate::key::{endpoint_word, remote_word, shard_index, Endpoint, FlowKey, KeyHasher, Proto};
use crate::mapping::{self, Mappings};
use crate::ports::PortTable;
use crate::session::{
    Hairpin, NewForwarded, NewSession, PacketInfo, Rewrite, Session, SessionInfo,
};
use crate::shard::{HomeSession, Locked, Peek, Shard, Touch};
use crate::stats::{bump, Counters, ShardCounts, TableStats};
use crate::tcp::{Dir, TcpState};
use crate::timeouts::{nanos, Timeouts, TimeoutsNs};

/// The slot where the look-ahead found a flow's session
/// ([`ConnTable::prefetch_sessions`]), for the lookup to try before the index; `NONE` when
/// it found none. A hint that went stale (the session removed, the slot reused) costs the
/// lookup nothing but its index probe: a lookup takes the hinted cell only if it holds the
/// flow's key, and no free cell matches a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotHint(u32);

impl SlotHint {
    pub const NONE: SlotHint = SlotHint(u32::MAX);
}

/// Most WANs a table supports ([`NewSession::eligible`] is a 64-bit mask).
pub const MAX_WANS: usize = 64;

/// Most flows one [`ConnTable::prefetch_sessions`] call takes (its result has a bit each).
pub const PREFETCH_BATCH: usize = u64::BITS as usize;

/// Expired sessions a full shard reaps before applying [`OnFull`].
const REAP_ON_FULL: usize = 16;

/// What `create` does when the session's shard is full (after reaping expired sessions).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum OnFull {
    /// Fail with [`CreateError::TableFull`].
    Refuse,
    /// Evict a session of the shard: of the [`EVICTION_CANDIDATES`] longest-idle sessions of
    /// each class list, the one whose internal host has the most live sessions in the table,
    /// and of those the longest-idle (to within one second: the lists are kept in order of
    /// last packet at whole-second resolution, see `shard.rs`). So a host that opens flows
    /// without limit gives up its own sessions first; when every candidate belongs to one
    /// host (or to hosts with as many sessions) this is the shard's longest-idle session,
    /// close to the table's (sessions are spread uniformly over the shards).
    #[default]
    EvictOldest,
}

/// Sessions eviction weighs from the tail of each class list of a full shard (see
/// [`OnFull::EvictOldest`]): at most this many per class, so an eviction reads at most
/// `5 × EVICTION_CANDIDATES` sessions and as many hosts' counts.
pub const EVICTION_CANDIDATES: usize = 4;

/// Default of [`TableConfig::max_sessions_per_host`]. A busy household or office host (a
/// browser with many tabs, a game, a BitTorrent client) holds hundreds to a few thousand
/// sessions; 16,384 is several times that, and a sixteenth of the default table of 262,144.
pub const DEFAULT_MAX_SESSIONS_PER_HOST: u32 = 16_384;

/// Default of [`TableConfig::max_ports_per_host`]. A host holds one NAT port per internal
/// endpoint in use (not per connection: RFC 4787 endpoint-independent mappings), so 8,192
/// ports on one WAN is thousands of source ports open at once; an eighth of a WAN's ports
/// of one protocol with the default range 1024-65535.
pub const DEFAULT_MAX_PORTS_PER_HOST: u32 = 8_192;

/// Sizing and behaviour of a [`ConnTable`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableConfig {
    /// Sessions the table holds (rounded up to a multiple of `shards`). At least 1.
    pub max_sessions: u32,
    /// Number of session shards, and of mapping shards: a power of two, at least 1.
    pub shards: u16,
    /// Idle timeouts (all non-zero).
    pub timeouts: Timeouts,
    /// Behaviour of a full shard.
    pub on_full: OnFull,
    /// Seed for the hashes that place sessions.
    pub hash_seed: u64,
    /// Most live sessions of one internal host (IPv4 address), on all WANs together; at
    /// least 1. A new flow of a host at the cap is refused ([`CreateError::HostSessionLimit`])
    /// before eviction is considered, so such a host never takes another's session.
    pub max_sessions_per_host: u32,
    /// Most NAT ports (endpoint-independent mappings, all protocols together) one internal
    /// host holds on one WAN; at least 1. A flow that needs a new mapping on a WAN where its
    /// host is at the cap is refused ([`CreateError::HostPortLimit`]); a flow that reuses a
    /// mapping its endpoint has is not.
    pub max_ports_per_host: u32,
}

/// NAT parameters of one WAN. Its index in the slice given to [`ConnTable::new`] is its WAN
/// index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WanNat {
    /// The WAN's address: sources are translated to it.
    pub address: Ipv4Addr,
    /// External ports (and ICMP identifiers) the table may use on it. Must not contain 0.
    pub ports: RangeInclusive<u16>,
    /// Interface id packets leave this WAN by (the egress of its sessions' rewrites).
    pub iface: u8,
}

/// The hash that places a flow in the table, with the words it was computed from (see
/// [`ConnTable::outbound_hash`]). A lookup given one checks the words against its key and
/// computes the hash afresh when they differ, so a hint for another flow (or, inbound, from
/// before the port changed hands) only costs a hash. A hint from another table (another hash
/// seed) is not detected and makes the lookup miss: hints are for the table that made them.
///
/// It is also the flow itself, prepared: [`ConnTable::hit_outbound`] and
/// [`ConnTable::hit_inbound`] take one instead of a key, and look up the flow its words name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowHash {
    h: u64,
    ep: u64,
    remote: u64,
}

impl FlowHash {
    /// The flow's protocol, internal endpoint and remote endpoint, from its words (`None` for
    /// a protocol byte no key has, which no table makes).
    #[inline]
    fn endpoints(&self) -> Option<(Proto, Endpoint, Endpoint)> {
        let proto = Proto::from_ip_number(self.ep as u8)?;
        // truncations pick the fields of the words (`key.rs`)
        let internal = Endpoint::new(
            Ipv4Addr::from((self.ep >> 32) as u32),
            (self.ep >> 16) as u16,
        );
        let remote = Endpoint::new(
            Ipv4Addr::from((self.remote >> 16) as u32),
            self.remote as u16,
        );
        Some((proto, internal, remote))
    }

    /// Whether this is the hash of a flow of `proto` with remote endpoint `remote`: what an
    /// inbound packet's hint must be whoever owns its destination port now (for a caller's
    /// debug checks).
    #[inline]
    pub fn is_with(&self, proto: Proto, remote: Endpoint) -> bool {
        self.ep as u8 == proto as u8 && self.remote == remote_word(remote)
    }
}

/// What the lock-free part of an outbound lookup found.
enum Quick {
    /// A hit, recorded: apply this rewrite.
    Hit(Rewrite),
    /// No session has the key.
    Miss,
    /// Only the shard's lock can tell (or apply) the rest.
    Locked,
}

/// What the lock-free part of an inbound lookup found.
enum QuickIn {
    Hit(Rewrite),
    Miss,
    /// The session of `internal` (flow hash `h`) needs the shard's lock.
    Locked {
        internal: Endpoint,
        h: u64,
    },
}

/// Result of a fast-path lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// A live session: apply this rewrite.
    Hit(Rewrite),
    /// No live session (take the slow path, or drop).
    Miss,
    /// The flow's session was pinned to a WAN of the `ended` set given to the lookup (a WAN
    /// that went down): the session is gone (its port and mapping reference released); the
    /// caller decides what the packet becomes (a new flow on a live WAN, a TCP reset, an
    /// ICMP unreachable). `tcp` is the session's TCP state (`None` for UDP and ICMP).
    Ended { wan: u8, tcp: Option<TcpState> },
    /// The flow's UDP or ICMP session was on a WAN its rule no longer prefers (a better tier
    /// came back; see [`Liveness`]): the session is gone, the caller starts the flow over.
    Recalled { wan: u8 },
    /// A TCP segment outside its session's sequence window (see `window.rs`): the session
    /// is unchanged (not even refreshed); the caller drops the packet.
    OutOfWindow,
}

/// What an outbound lookup needs to know about the WANs, for the batch at hand.
#[derive(Clone, Copy)]
pub struct Liveness<'a> {
    /// WANs whose sessions end on their next outbound packet (down, and flows do not stay).
    pub ended: WanSet,
    /// WANs some of whose sessions may belong on a better WAN now; for a UDP or ICMP session
    /// on one of them, `recall(wan, rule)` decides.
    pub outranked: WanSet,
    pub recall: &'a dyn Fn(u8, u16) -> bool,
}

impl Liveness<'_> {
    /// Nothing ends, nothing is recalled.
    pub const ALL_LIVE: Liveness<'static> = Liveness {
        ended: WanSet::EMPTY,
        outranked: WanSet::EMPTY,
        recall: &|_, _| false,
    };
}

impl fmt::Debug for Liveness<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Liveness")
            .field("ended", &self.ended)
            .field("outranked", &self.outranked)
            .finish_non_exhaustive()
    }
}

/// A set of WAN indices (bit `i` = WAN `i`; WANs 64 and above are never members).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct WanSet(u64);

impl WanSet {
    /// No WAN.
    pub const EMPTY: WanSet = WanSet(0);

    /// Whether WAN `wan` is in the set.
    #[inline]
    pub fn contains(self, wan: u8) -> bool {
        wan < 64 && self.0 & (1u64 << wan) != 0
    }

    /// The set plus WAN `wan` (unchanged for `wan` ≥ 64).
    #[must_use]
    pub fn with(self, wan: usize) -> WanSet {
        if wan < 64 {
            WanSet(self.0 | (1u64 << wan))
        } else {
            self
        }
    }

    /// Whether the set is empty.
    #[inline]
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The WANs of either set.
    #[inline]
    pub fn union(self, other: WanSet) -> WanSet {
        WanSet(self.0 | other.0)
    }
}

/// Why `create` failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CreateError {
    /// The session's shard is full and `on_full` is `Refuse`; or (far less likely, see
    /// `mapping.rs`) the internal endpoint needs a new mapping and its mapping shard is full.
    TableFull,
    /// The WAN has no free external port for this protocol.
    PortsExhausted,
    /// `wan` is not a configured WAN index.
    UnknownWan,
    /// The flow's session already exists (another worker created it meanwhile) and the
    /// packet is a TCP segment outside its window: nothing changed.
    OutOfWindow,
    /// The internal host has [`TableConfig::max_sessions_per_host`] live sessions.
    HostSessionLimit,
    /// The flow needs a new mapping on the WAN and its internal host holds
    /// [`TableConfig::max_ports_per_host`] ports there (another WAN may have room).
    HostPortLimit,
    /// A port forward's session ([`ConnTable::create_forwarded`]) cannot be made: the flow's
    /// key is another session's, or a mapping of dynamic NAT holds the forward's port.
    Conflict,
}

impl fmt::Display for CreateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CreateError::TableFull => "connection table full",
            CreateError::PortsExhausted => "no free NAT port on the WAN",
            CreateError::UnknownWan => "unknown WAN index",
            CreateError::OutOfWindow => "TCP segment out of its session's window",
            CreateError::HostSessionLimit => "the LAN host is at its session limit",
            CreateError::HostPortLimit => "the LAN host is at its NAT port limit on the WAN",
            CreateError::Conflict => "the flow or the forward's port is another session's",
        })
    }
}

impl std::error::Error for CreateError {}

/// Why a [`TableConfig`] was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TableConfigError {
    /// `max_sessions` is 0.
    NoSessions,
    /// `shards` is not a power of two ≥ 1.
    BadShardCount(u16),
    /// More than [`MAX_WANS`] WANs.
    TooManyWans(usize),
    /// A WAN's port range is empty.
    EmptyPortRange {
        /// WAN index.
        wan: u8,
    },
    /// A WAN's port range contains port 0.
    PortZero {
        /// WAN index.
        wan: u8,
    },
    /// A timeout is zero.
    ZeroTimeout,
    /// `max_sessions_per_host` or `max_ports_per_host` is 0.
    ZeroHostLimit,
    /// The preallocation failed.
    OutOfMemory,
}

impl fmt::Display for TableConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TableConfigError::NoSessions => f.write_str("max_sessions must be at least 1"),
            TableConfigError::BadShardCount(n) => {
                write!(f, "shards must be a power of two >= 1, got {n}")
            }
            TableConfigError::TooManyWans(n) => {
                write!(f, "at most {MAX_WANS} WANs are supported, got {n}")
            }
            TableConfigError::EmptyPortRange { wan } => {
                write!(f, "WAN {wan}: the NAT port range is empty")
            }
            TableConfigError::PortZero { wan } => {
                write!(f, "WAN {wan}: the NAT port range must not contain port 0")
            }
            TableConfigError::ZeroTimeout => f.write_str("timeouts must be non-zero"),
            TableConfigError::ZeroHostLimit => {
                f.write_str("max_sessions_per_host and max_ports_per_host must be at least 1")
            }
            TableConfigError::OutOfMemory => {
                f.write_str("not enough memory to preallocate the connection table")
            }
        }
    }
}

impl std::error::Error for TableConfigError {}

/// One WAN: its address, interface and port table.
#[derive(Debug)]
pub(crate) struct Wan {
    pub(crate) address: Ipv4Addr,
    pub(crate) iface: u8,
    pub(crate) ports: PortTable,
}

/// The parts of the table every session-shard operation needs: immutable or atomic, plus the
/// mapping shards and the host shards (each behind its own mutex, taken after the session
/// shard's; a host shard's after a mapping shard's).
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) hasher: KeyHasher,
    /// Mapping shards, picked by the hash of (proto, internal endpoint).
    mappings: Box<[MappingCell]>,
    /// Shard count - 1 (session and mapping shards alike).
    mask: usize,
    pub(crate) timeouts: TimeoutsNs,
    pub(crate) wans: Box<[Wan]>,
    pub(crate) stats: Counters,
    /// Live, per-WAN and created session counts of each session shard (by shard index).
    pub(crate) counts: Box<[ShardCounts]>,
    /// Per-host session and port counts, and the per-host caps.
    pub(crate) hosts: Hosts,
}

impl Shared {
    /// Address and interface of WAN `wan` (unspecified and 0 for an unknown index, which a
    /// session never has).
    #[inline]
    fn wan_nat(&self, wan: u8) -> (Ipv4Addr, u8) {
        self.wans
            .get(usize::from(wan))
            .map_or((Ipv4Addr::UNSPECIFIED, 0), |w| (w.address, w.iface))
    }

    /// Locks the mapping shard of the internal endpoint with endpoint word `ep_word`. The
    /// caller may hold a session shard's lock, never another mapping shard's.
    #[inline]
    pub(crate) fn mappings_of(&self, ep_word: u64) -> MutexGuard<'_, Mappings> {
        self.lock_mappings(shard_index(self.hasher.endpoint(ep_word), self.mask))
    }

    /// The address of the index entry where the mappings of the internal endpoint with
    /// endpoint word `ep_word` begin (for a prefetch).
    #[inline]
    fn mapping_line(&self, ep_word: u64) -> *const u8 {
        self.mapping_cell(ep_word)
            .map_or(std::ptr::null(), |(cell, h)| cell.1.home_entry(h))
    }

    /// The address of the mapping the first index entry of the endpoint with endpoint word
    /// `ep_word` names, if its tag matches (for a prefetch; reads that entry).
    #[inline]
    fn mapping_slot_line(&self, ep_word: u64) -> Option<*const u8> {
        let (cell, h) = self.mapping_cell(ep_word)?;
        let slot = cell.1.home_slot(h)?;
        let offset = (slot as usize).checked_mul(mapping::MAPPING_SIZE)?;
        Some(std::ptr::without_provenance::<u8>(
            cell.2.wrapping_add(offset),
        ))
    }

    /// The mapping cell of the endpoint with endpoint word `ep_word`, and the endpoint's hash.
    #[inline]
    fn mapping_cell(&self, ep_word: u64) -> Option<(&MappingCell, u64)> {
        let h = self.hasher.endpoint(ep_word);
        Some((self.mappings.get(shard_index(h, self.mask))?, h))
    }

    fn lock_mappings(&self, i: usize) -> MutexGuard<'_, Mappings> {
        // As for session shards, poison is ignored: every operation checks its slots.
        self.mappings[i & self.mask]
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// A session shard on its own cache lines.
#[derive(Debug)]
#[repr(align(64))]
struct ShardCell(Shard);

/// A mapping shard's mutex on its own cache lines, and its index and slab address for
/// lock-free prefetches.
#[derive(Debug)]
#[repr(align(64))]
struct MappingCell(Mutex<Mappings>, Arc<SlotIndex>, usize);

/// The connection table. `Send + Sync`; share it between workers with an `Arc`.
pub struct ConnTable {
    shared: Shared,
    shards: Box<[ShardCell]>,
    shard_cap: u32,
    on_full: OnFull,
    /// Shard where the next `expire` starts.
    cursor: AtomicUsize,
    /// Latest `now` given to `expire` (the clock of `for_each_session`).
    clock: AtomicU64,
}

impl fmt::Debug for ConnTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnTable")
            .field("shards", &self.shards.len())
            .field("capacity", &self.capacity())
            .field("len", &self.len())
            .field("wans", &self.shared.wans.len())
            .field("on_full", &self.on_full)
            .finish_non_exhaustive()
    }
}

impl ConnTable {
    /// Builds a table with every session, mapping, index and port table preallocated: `shards`
    /// session shards of `ceil(max_sessions / shards)` sessions, and as many mapping shards
    /// and host shards of that size plus headroom (see `mapping.rs`, `hosts.rs`).
    pub fn new(config: &TableConfig, wans: &[WanNat]) -> Result<ConnTable, TableConfigError> {
        if config.max_sessions == 0 {
            return Err(TableConfigError::NoSessions);
        }
        if !config.shards.is_power_of_two() {
            return Err(TableConfigError::BadShardCount(config.shards));
        }
        if wans.len() > MAX_WANS {
            return Err(TableConfigError::TooManyWans(wans.len()));
        }
        let t = &config.timeouts;
        if [
            t.udp,
            t.icmp,
            t.tcp_established,
            t.tcp_transitory,
            t.tcp_closed,
        ]
        .iter()
        .any(Duration::is_zero)
        {
            return Err(TableConfigError::ZeroTimeout);
        }
        if config.max_sessions_per_host == 0 || config.max_ports_per_host == 0 {
            return Err(TableConfigError::ZeroHostLimit);
        }
        let mut ws = Vec::with_capacity(wans.len());
        for (i, w) in wans.iter().enumerate() {
            // i < MAX_WANS
            let wan = i as u8;
            if w.ports.is_empty() {
                return Err(TableConfigError::EmptyPortRange { wan });
            }
            if *w.ports.start() == 0 {
                return Err(TableConfigError::PortZero { wan });
            }
            let ports = PortTable::new(*w.ports.start(), *w.ports.end())
                .ok_or(TableConfigError::OutOfMemory)?;
            ws.push(Wan {
                address: w.address,
                iface: w.iface,
                ports,
            });
        }
        let nshards = usize::from(config.shards);
        let shard_cap = config.max_sessions.div_ceil(u32::from(config.shards));
        let hasher = KeyHasher::new(config.hash_seed);
        let mut shards = Vec::with_capacity(nshards);
        for _ in 0..nshards {
            let shard = Shard::new(shards.len(), shard_cap).ok_or(TableConfigError::OutOfMemory)?;
            shards.push(ShardCell(shard));
        }
        let mapping_cap = mapping::shard_capacity(shard_cap, u32::from(config.shards));
        let mut mappings = Vec::with_capacity(nshards);
        for _ in 0..nshards {
            let m = Mappings::new(mapping_cap).ok_or(TableConfigError::OutOfMemory)?;
            let (index, slab) = (m.index(), m.slab_address());
            mappings.push(MappingCell(Mutex::new(m), index, slab));
        }
        // (host, WAN) pairs never outnumber sessions; placed by host, they get a mapping
        // shard's headroom (`hosts.rs`)
        let hosts = Hosts::new(
            nshards,
            mapping_cap,
            hasher.clone(),
            config.max_sessions_per_host,
            config.max_ports_per_host,
        )
        .ok_or(TableConfigError::OutOfMemory)?;
        Ok(ConnTable {
            shared: Shared {
                hasher,
                mappings: mappings.into_boxed_slice(),
                mask: nshards - 1,
                timeouts: TimeoutsNs::new(&config.timeouts),
                counts: (0..nshards).map(|_| ShardCounts::new(ws.len())).collect(),
                wans: ws.into_boxed_slice(),
                stats: Counters::default(),
                hosts,
            },
            shards: shards.into_boxed_slice(),
            shard_cap,
            on_full: config.on_full,
            cursor: AtomicUsize::new(0),
            clock: AtomicU64::new(0),
        })
    }

    /// The flow hash of (`ep`, `remote`): `hint`'s if it was computed from those words.
    #[inline]
    fn hash_of(&self, ep: u64, remote: u64, hint: Option<FlowHash>) -> u64 {
        match hint {
            Some(f) if f.ep == ep && f.remote == remote => f.h,
            _ => self.shared.hasher.flow(ep, remote),
        }
    }

    /// The session shard of the canonical flow with hash `h`.
    #[inline]
    fn shard_of(&self, h: u64) -> &Shard {
        &self.shards[shard_index(h, self.shared.mask)].0
    }

    /// Locks the session shard of the canonical flow with hash `h`.
    #[inline]
    fn lock_flow(&self, h: u64) -> Locked<'_> {
        self.shard_of(h).lock()
    }

    #[inline]
    fn lock(&self, i: usize) -> Locked<'_> {
        self.shards[i & self.shared.mask].0.lock()
    }

    /// Packet that arrived from a LAN (its key is the canonical key). Hit: refresh, TCP state
    /// update, counters, and a move to the head of its class list if it is the session's first
    /// packet in a later second or changes its timeout class (otherwise the hit writes that
    /// session only); returns the original-direction rewrite (src → external endpoint; dst
    /// unchanged, or the hairpin target). Takes the flow's session-shard lock (and, if the
    /// packet ends the session, its mapping shard's).
    #[inline]
    pub fn lookup_outbound(&self, key: &FlowKey, pkt: PacketInfo, now: Duration) -> Lookup {
        self.lookup_outbound_live(key, pkt, now, &Liveness::ALL_LIVE)
    }

    /// [`lookup_outbound`](Self::lookup_outbound), except that a session pinned to a WAN of
    /// `live.ended` is removed instead of used ([`Lookup::Ended`]; counted in
    /// [`TableStats::ended_by_wan_down`]), and so is a UDP or ICMP session on a WAN of
    /// `live.outranked` that `live.recall` calls back ([`Lookup::Recalled`]; counted in
    /// [`TableStats::recalled`]). An ICMP error about such a flow (`pkt.icmp_error`) leaves
    /// it alone (a hit). Hairpin sessions never leave by their WAN and are left alone.
    #[inline]
    pub fn lookup_outbound_live(
        &self,
        key: &FlowKey,
        pkt: PacketInfo,
        now: Duration,
        live: &Liveness<'_>,
    ) -> Lookup {
        self.lookup_outbound_hinted(key, None, pkt, now, live)
    }

    /// [`lookup_outbound_live`](Self::lookup_outbound_live) with the flow's hash from
    /// [`outbound_hash`](Self::outbound_hash), computed earlier (for its prefetch): saves
    /// hashing the key again.
    #[inline(always)]
    pub fn lookup_outbound_hinted(
        &self,
        key: &FlowKey,
        hint: Option<FlowHash>,
        pkt: PacketInfo,
        now: Duration,
        live: &Liveness<'_>,
    ) -> Lookup {
        let now = nanos(now);
        let words = (endpoint_word(key.proto, key.src), remote_word(key.dst));
        let h = self.hash_of(words.0, words.1, hint);
        let watched = live.ended.union(live.outranked);
        match self.quick_outbound(
            key.proto,
            words,
            key.dst,
            h,
            pkt,
            now,
            watched,
            SlotHint::NONE,
        ) {
            Quick::Hit(rw) => Lookup::Hit(rw),
            Quick::Miss => Lookup::Miss,
            Quick::Locked => self.lookup_outbound_locked(key, h, pkt, now, live),
        }
    }

    /// The lock-free hit of [`lookup_outbound_hinted`](Self::lookup_outbound_hinted) alone,
    /// for a caller with a path of its own for the common case, given the flow prepared by
    /// [`outbound_hash`](Self::outbound_hash) (which must be the packet's own: its words, not
    /// a key, say which session): the rewrite, if the packet is a hit that changes nothing but
    /// the session's `last_seen` and counters (which it records), with no WAN of `watched` to
    /// check (the union of [`Liveness::ended`] and [`Liveness::outranked`]). `None` changes
    /// nothing: the caller then takes the full lookup, which decides (a miss, a hit under the
    /// lock, an ended session...). `slot`: where the look-ahead found the session, tried
    /// before the index ([`SlotHint`]; any value is safe).
    ///
    /// # Correctness
    /// The flow is trusted to be the packet's: given another flow's hash, this returns (and
    /// counts a packet on) that flow's session. The pipeline prepares each frame's flow from
    /// its own parse, in the same chunk, and checks it in debug builds.
    #[inline(always)]
    pub fn hit_outbound(
        &self,
        flow: &FlowHash,
        slot: SlotHint,
        pkt: PacketInfo,
        now: Duration,
        watched: WanSet,
    ) -> Option<Rewrite> {
        let (proto, _, remote) = flow.endpoints()?;
        let words = (flow.ep, flow.remote);
        match self.quick_outbound(proto, words, remote, flow.h, pkt, nanos(now), watched, slot) {
            Quick::Hit(rw) => Some(rw),
            Quick::Miss | Quick::Locked => None,
        }
    }

    /// The lock-free part of an outbound lookup of the flow of protocol `proto` whose
    /// endpoint and remote words are `words` (`dst`: the remote endpoint), flow hash `h`: a
    /// hit when the session needs nothing but `last_seen` and its counters, and its WAN is not
    /// one of `watched` (a hairpin session's never is).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn quick_outbound(
        &self,
        proto: Proto,
        (ep, remote): (u64, u64),
        dst: Endpoint,
        h: u64,
        pkt: PacketInfo,
        now: u64,
        watched: WanSet,
        slot: SlotHint,
    ) -> Quick {
        match self.shard_of(h).peek(h, proto, ep, remote, slot.0) {
            Peek::Absent => Quick::Miss,
            Peek::Found(found, s)
                if !(!watched.is_empty() && !pkt.icmp_error && !s.is_hairpin())
                    && Shard::try_hit(&self.shared, &found, &s, Dir::Original, pkt, now) =>
            {
                let (ip, iface) = self.shared.wan_nat(s.wan());
                Quick::Hit(s.rewrite_out(ip, iface, dst))
            }
            Peek::Found(..) | Peek::Busy => Quick::Locked,
        }
    }

    /// The part of [`lookup_outbound_hinted`](Self::lookup_outbound_hinted) under the shard's
    /// lock (flow hash `h`, time in table units): out of line, to keep the lock-free part
    /// small where it is inlined.
    #[inline(never)]
    fn lookup_outbound_locked(
        &self,
        key: &FlowKey,
        h: u64,
        pkt: PacketInfo,
        now: u64,
        live: &Liveness<'_>,
    ) -> Lookup {
        let anything_to_check = !live.ended.is_empty() || !live.outranked.is_empty();
        let mut shard = self.shard_of(h).lock();
        let Some(slot) = shard.find(h, key.proto, key.src, key.dst) else {
            return Lookup::Miss;
        };
        if anything_to_check && !pkt.icmp_error {
            if let Some(s) = shard.session(slot).filter(|s| !s.is_hairpin()) {
                let (wan, tcp) = (s.wan(), (s.proto == Proto::Tcp).then(|| s.tcp.state()));
                if self.shared.timeouts.expired(s.class(), s.last_seen, now) {
                    // Gone anyway: a new flow, not the end of a live one.
                    shard.remove(&self.shared, slot, h);
                    bump(&self.shared.stats.expired);
                    return Lookup::Miss;
                }
                if live.ended.contains(wan) {
                    shard.remove(&self.shared, slot, h);
                    bump(&self.shared.stats.ended_by_wan_down);
                    return Lookup::Ended { wan, tcp };
                }
                if tcp.is_none()
                    && !s.is_forwarded()
                    && live.outranked.contains(wan)
                    && (live.recall)(wan, s.rule)
                {
                    shard.remove(&self.shared, slot, h);
                    bump(&self.shared.stats.recalled);
                    return Lookup::Recalled { wan };
                }
            }
        }
        match shard.touch(&self.shared, slot, h, Dir::Original, pkt, now) {
            Touch::Live | Touch::Unchanged => {}
            Touch::Gone => return Lookup::Miss,
            Touch::OutOfWindow => return Lookup::OutOfWindow,
        }
        match shard.session(slot) {
            Some(s) => {
                let (ip, iface) = self.shared.wan_nat(s.wan());
                Lookup::Hit(s.rewrite_out(ip, iface))
            }
            None => Lookup::Miss,
        }
    }

    /// Packet that arrived on WAN `wan` (dst = that WAN's address : external port). Resolves
    /// the internal endpoint through the port table (one atomic load), then looks up the
    /// canonical key (proto, internal, remote = key.src) in the session shard it hashes to.
    /// Hit returns the reply-direction rewrite (dst → internal endpoint, src unchanged,
    /// egress = lan_iface).
    ///
    /// Filtering is address-and-port dependent: only the remote endpoint of a session may
    /// reach its internal endpoint, and only on the session's WAN and external port. Hairpin
    /// sessions never match inbound.
    #[inline]
    pub fn lookup_inbound(&self, wan: u8, key: &FlowKey, pkt: PacketInfo, now: Duration) -> Lookup {
        self.lookup_inbound_hinted(wan, key, None, pkt, now)
    }

    /// [`lookup_inbound`](Self::lookup_inbound) with the flow's hash from
    /// [`inbound_hash`](Self::inbound_hash), computed earlier (for its prefetch): saves
    /// hashing again unless the port changed hands meanwhile.
    #[inline(always)]
    pub fn lookup_inbound_hinted(
        &self,
        wan: u8,
        key: &FlowKey,
        hint: Option<FlowHash>,
        pkt: PacketInfo,
        now: Duration,
    ) -> Lookup {
        let now = nanos(now);
        match self.quick_inbound(wan, key, hint, pkt, now) {
            QuickIn::Hit(rw) => Lookup::Hit(rw),
            QuickIn::Miss => Lookup::Miss,
            QuickIn::Locked { internal, h } => {
                self.lookup_inbound_locked((wan, false), key, internal, h, pkt, now)
            }
        }
    }

    /// The lock-free hit of [`lookup_inbound_hinted`](Self::lookup_inbound_hinted) alone (as
    /// [`hit_outbound`](Self::hit_outbound)), for a packet from WAN `wan` to `dst` (the WAN's
    /// address and an external port), given its flow prepared by
    /// [`inbound_hash`](Self::inbound_hash): the rewrite, if the packet is a hit on the
    /// session of that WAN and port that changes nothing but `last_seen` and counters
    /// (recorded); `None` changes nothing. (Were the port to change hands after the flow was
    /// prepared, the flow's session would be gone: a port is released with its last session.)
    /// `slot` as for `hit_outbound`.
    #[inline(always)]
    pub fn hit_inbound(
        &self,
        wan: u8,
        dst: Endpoint,
        flow: &FlowHash,
        slot: SlotHint,
        pkt: PacketInfo,
        now: Duration,
    ) -> Option<Rewrite> {
        let w = self.shared.wans.get(usize::from(wan))?;
        if dst.ip != w.address {
            return None;
        }
        let (proto, internal, remote) = flow.endpoints()?;
        let words = (flow.ep, flow.remote);
        let found = (internal, remote, words, flow.h);
        match self.quick_inbound_peek((wan, dst.port, false), proto, found, slot, pkt, nanos(now)) {
            QuickIn::Hit(rw) => Some(rw),
            QuickIn::Miss | QuickIn::Locked { .. } => None,
        }
    }

    /// The lock-free part of an inbound lookup: the port table, then a peek.
    #[inline(always)]
    fn quick_inbound(
        &self,
        wan: u8,
        key: &FlowKey,
        hint: Option<FlowHash>,
        pkt: PacketInfo,
        now: u64,
    ) -> QuickIn {
        let Some(w) = self.shared.wans.get(usize::from(wan)) else {
            return QuickIn::Miss;
        };
        if key.dst.ip != w.address {
            return QuickIn::Miss;
        }
        let Some(internal) = w.ports.owner(key.proto, key.dst.port) else {
            return QuickIn::Miss;
        };
        let words = (endpoint_word(key.proto, internal), remote_word(key.src));
        let h = self.hash_of(words.0, words.1, hint);
        let found = (internal, key.src, words, h);
        self.quick_inbound_peek(
            (wan, key.dst.port, false),
            key.proto,
            found,
            SlotHint::NONE,
            pkt,
            now,
        )
    }

    /// The peek of [`quick_inbound`](Self::quick_inbound), once the internal endpoint owning
    /// `wan`'s port `ext_port` is known (or of [`lookup_forwarded`](Self::lookup_forwarded),
    /// with `forwarded`: a port forward's session is looked for, and only that):
    /// `(internal, remote, words, h)` are the flow's endpoints, their words and its hash,
    /// `slot` where the look-ahead found its session.
    #[inline(always)]
    fn quick_inbound_peek(
        &self,
        (wan, ext_port, forwarded): (u8, u16, bool),
        proto: Proto,
        (internal, remote, (ep_word, remote_word), h): (Endpoint, Endpoint, (u64, u64), u64),
        slot: SlotHint,
        pkt: PacketInfo,
        now: u64,
    ) -> QuickIn {
        match self
            .shard_of(h)
            .peek(h, proto, ep_word, remote_word, slot.0)
        {
            Peek::Absent => QuickIn::Miss,
            Peek::Found(_, s) if !s.reached_by(wan, ext_port, forwarded) => QuickIn::Miss,
            Peek::Found(found, s)
                if Shard::try_hit(&self.shared, &found, &s, Dir::Reply, pkt, now) =>
            {
                QuickIn::Hit(s.rewrite_in(internal, remote))
            }
            Peek::Found(..) | Peek::Busy => QuickIn::Locked { internal, h },
        }
    }

    /// The part of [`lookup_inbound_hinted`](Self::lookup_inbound_hinted) under the shard's
    /// lock (`internal`: the endpoint owning the port; flow hash `h`; time in table units), or
    /// with `forwarded` of [`lookup_forwarded`](Self::lookup_forwarded) (`internal`: the
    /// forward's target).
    #[inline(never)]
    fn lookup_inbound_locked(
        &self,
        (wan, forwarded): (u8, bool),
        key: &FlowKey,
        internal: Endpoint,
        h: u64,
        pkt: PacketInfo,
        now: u64,
    ) -> Lookup {
        let mut shard = self.shard_of(h).lock();
        let Some(slot) = shard.find(h, key.proto, internal, key.src) else {
            return Lookup::Miss;
        };
        match shard.session(slot) {
            Some(s) if s.reached_by(wan, key.dst.port, forwarded) => {}
            _ => return Lookup::Miss,
        }
        match shard.touch(&self.shared, slot, h, Dir::Reply, pkt, now) {
            Touch::Live | Touch::Unchanged => {}
            Touch::Gone => return Lookup::Miss,
            Touch::OutOfWindow => return Lookup::OutOfWindow,
        }
        match shard.session(slot) {
            Some(s) => Lookup::Hit(s.rewrite_in()),
            None => Lookup::Miss,
        }
    }

    /// Packet that arrived on WAN `wan` for a port forward (dst = that WAN's address : the
    /// forward's external port; the engine, which owns the forwards, found the forward and its
    /// target): looks up the canonical key (proto, `target`, remote = `key.src`) and hits only
    /// a port forward's session ([`create_forwarded`](Self::create_forwarded)) on that WAN and
    /// external port. As [`lookup_inbound`](Self::lookup_inbound) otherwise: a hit that
    /// changes nothing but `last_seen` and counters takes no lock; a hit returns the
    /// reply-direction rewrite (dst → `target`, egress = the target's LAN interface);
    /// [`Lookup::OutOfWindow`] for a TCP segment outside the window; a miss for no session, or
    /// one that ended on this packet (expired, or recycled by the client's SYN: the engine
    /// then creates a fresh one).
    #[inline]
    pub fn lookup_forwarded(
        &self,
        wan: u8,
        key: &FlowKey,
        target: Endpoint,
        pkt: PacketInfo,
        now: Duration,
    ) -> Lookup {
        if self.wan_address(wan) != Some(key.dst.ip) {
            return Lookup::Miss;
        }
        let now = nanos(now);
        let words = (endpoint_word(key.proto, target), remote_word(key.src));
        let h = self.shared.hasher.flow(words.0, words.1);
        let found = (target, key.src, words, h);
        let at = (wan, key.dst.port, true);
        match self.quick_inbound_peek(at, key.proto, found, SlotHint::NONE, pkt, now) {
            QuickIn::Hit(rw) => Lookup::Hit(rw),
            QuickIn::Miss => Lookup::Miss,
            QuickIn::Locked { internal, h } => {
                self.lookup_inbound_locked((wan, true), key, internal, h, pkt, now)
            }
        }
    }

    /// The hash under which [`lookup_outbound`](Self::lookup_outbound) will look `key` up,
    /// for [`prefetch_sessions`](Self::prefetch_sessions) and as a hint to the lookup.
    #[inline]
    pub fn outbound_hash(&self, key: &FlowKey) -> FlowHash {
        let (ep, remote) = (endpoint_word(key.proto, key.src), remote_word(key.dst));
        let h = self.shared.hasher.flow(ep, remote);
        FlowHash { h, ep, remote }
    }

    /// The hash under which [`lookup_inbound`](Self::lookup_inbound) will look up `key`, a
    /// packet from WAN `wan` (reads the WAN's port table); `None` if no internal endpoint owns
    /// its destination port.
    #[inline]
    pub fn inbound_hash(&self, wan: u8, key: &FlowKey) -> Option<FlowHash> {
        let internal = self.binding(wan, key.proto, key.dst.port)?;
        let (ep, remote) = (endpoint_word(key.proto, internal), remote_word(key.src));
        let h = self.shared.hasher.flow(ep, remote);
        Some(FlowHash { h, ep, remote })
    }

    /// Hands `prefetch` the address of the session a lookup under each of `hashes` (up to
    /// [`PREFETCH_BATCH`]; the rest are ignored) most likely reads: the one its home index
    /// entry names. This lets a caller start the cache misses of a whole batch of lookups
    /// at once, so that they overlap instead of stalling one packet at a time. Three loops:
    /// the first locates every flow's home entry (shard, entry address, tag: arithmetic on
    /// lines already cached); the second prefetches every entry's line, so that all those
    /// misses are under way before anything waits for one; the third reads the entries and
    /// prefetches the sessions they name, a loop of little but independent loads (a single
    /// loop that did everything measured 10–20% slower with 1M sessions; the second loop
    /// made flows that miss the cache 12% faster, the others no slower). Where an entry
    /// names no session the lookup will miss and (for a packet from a LAN)
    /// [`create`](Self::create) will look up the internal endpoint's mappings: the address
    /// of their index entry instead, in a last loop. Sets `slots[i]` to the slot where it
    /// found flow `i`'s session, for the lookup to try first ([`SlotHint`]), or to
    /// `SlotHint::NONE`. Returns the flows without a session as a bit mask (bit `i` for
    /// `hashes[i]`). `prefetch` must only hint the cache (an address of this table is never
    /// dereferenced through it); the table changes nothing and takes no lock.
    #[inline]
    pub fn prefetch_sessions(
        &self,
        hashes: &[Option<FlowHash>],
        slots: &mut [SlotHint],
        prefetch: fn(*const u8),
    ) -> u64 {
        let mut homes: [Option<HomeSession<'_>>; PREFETCH_BATCH] = [None; PREFETCH_BATCH];
        for (h, home) in hashes.iter().zip(homes.iter_mut()) {
            *home = h.and_then(|h| self.shard_of(h.h).locate_home(h.h));
        }
        for home in homes.iter().take(hashes.len()).flatten() {
            prefetch(home.entry_address());
        }
        let mut absent = 0u64;
        for (i, (home, slot)) in homes
            .iter()
            .zip(slots.iter_mut())
            .take(hashes.len())
            .enumerate()
        {
            *slot = SlotHint::NONE;
            match home.and_then(HomeSession::line) {
                Some((line, found)) => {
                    prefetch(line);
                    *slot = SlotHint(found);
                    let tcp = hashes
                        .get(i)
                        .copied()
                        .flatten()
                        .is_some_and(|h| h.ep as u8 == Proto::Tcp as u8);
                    if let Some(window) = home.filter(|_| tcp).and_then(|h| h.window_line(found)) {
                        prefetch(window);
                    }
                }
                None if home.is_some() => absent |= 1 << i,
                None => {}
            }
        }
        let mut pending = absent;
        while pending != 0 {
            let i = pending.trailing_zeros() as usize;
            pending &= pending - 1;
            if let Some(Some(h)) = hashes.get(i) {
                prefetch(self.shared.mapping_line(h.ep));
            }
        }
        absent
    }

    /// For a flow [`prefetch_sessions`](Self::prefetch_sessions) found no session for, once its
    /// mapping index entry has arrived: hands `prefetch` the addresses that
    /// [`create`](Self::create) will write or read next: the slot its session will take, and
    /// the internal endpoint's first mapping if it has one.
    #[inline]
    pub fn prefetch_create(&self, h: FlowHash, prefetch: fn(*const u8)) {
        if let Some(line) = self.shard_of(h.h).free_line() {
            prefetch(line);
        }
        if let Some(line) = self.shared.mapping_slot_line(h.ep) {
            prefetch(line);
        }
    }

    /// Lock-free read of the port table: which internal endpoint owns `wan`'s external port
    /// (for hairpin detection).
    #[inline]
    pub fn binding(&self, wan: u8, proto: Proto, ext_port: u16) -> Option<Endpoint> {
        self.shared
            .wans
            .get(usize::from(wan))?
            .ports
            .owner(proto, ext_port)
    }

    /// Keeps external port `port` of `proto` on WAN `wan` from dynamic NAT: the port of a
    /// port forward ([`create_forwarded`](Self::create_forwarded)). A reserved port has no
    /// owner ([`binding`](Self::binding) is `None`) and no allocation hands it out, so no
    /// mapping ever shares it with the forward. `true` when the port is reserved now (or was
    /// already), and for a port outside the WAN's NAT range (dynamic NAT never uses it: there
    /// is nothing to reserve). `false`, changing nothing, for an unknown WAN, and when a
    /// mapping holds the port: that mapping's flows keep it, and the port can be reserved once
    /// they have ended (the engine tries again later; meanwhile `create_forwarded` refuses
    /// sessions on the port, [`CreateError::Conflict`]). Lock-free (one compare-and-swap);
    /// reservations are independent of each other, so a reload reserves its new forwards'
    /// ports and releases its removed forwards' ones.
    pub fn reserve_port(&self, wan: u8, proto: Proto, port: u16) -> bool {
        self.shared
            .wans
            .get(usize::from(wan))
            .is_some_and(|w| w.ports.reserve(proto, port))
    }

    /// Ends the reservation of `port` of `proto` on WAN `wan` ([`reserve_port`]): dynamic NAT
    /// may hand it out again. Returns whether it was reserved. The forward's live sessions are
    /// not touched: end them first with [`remove_forwarded`](Self::remove_forwarded), else a
    /// mapping may get the port while they still use it.
    ///
    /// [`reserve_port`]: Self::reserve_port
    pub fn release_port(&self, wan: u8, proto: Proto, port: u16) -> bool {
        self.shared
            .wans
            .get(usize::from(wan))
            .is_some_and(|w| w.ports.unreserve(proto, port))
    }

    /// Removes every port forward session on WAN `wan` with protocol `proto` and external
    /// port `port` (a forward that was removed or changed); returns how many. Locks one
    /// session shard at a time and visits its every session: for the control plane, not the
    /// packet path.
    pub fn remove_forwarded(&self, wan: u8, proto: Proto, port: u16) -> usize {
        let mut n = 0;
        for i in 0..self.shards.len() {
            n += self.lock(i).remove_where(&self.shared, |s| {
                s.is_forwarded() && s.wan() == wan && s.proto == proto && s.ext_port == port
            });
        }
        n
    }

    /// The address of WAN `wan`.
    pub fn wan_address(&self, wan: u8) -> Option<Ipv4Addr> {
        self.shared.wans.get(usize::from(wan)).map(|w| w.address)
    }

    /// Slow path. Takes the flow's session-shard lock, then, under it, the internal endpoint's
    /// mapping-shard lock. Under the session shard's lock: if a live session for `new.key`
    /// exists (another worker raced us), the packet is applied to it as a hit and its rewrite
    /// returned. Otherwise the WAN is chosen for endpoint-independent mapping across WANs
    /// (RFC 4787 REQ-1 / RFC 5382), so peers see one external endpoint:
    /// 1. the internal endpoint's mapping on `new.wan`, if it has one;
    /// 2. else its mapping on the lowest other WAN in `new.eligible`, if any (not for hairpin
    ///    sessions: they always use `new.wan`);
    /// 3. else a new mapping on `new.wan`, with an external port allocated there: the internal
    ///    port if it lies in the WAN's range and is free (port preservation), else the next
    ///    free port from a rotating per-WAN cursor.
    ///
    /// Then the session is inserted on the chosen WAN and its original-direction rewrite
    /// returned: its egress is the hairpin's LAN interface for a hairpin session, else the
    /// chosen WAN's [`WanNat::iface`] (which tells the caller the WAN chosen).
    ///
    /// A full session shard first reaps expired sessions, then refuses a flow whose internal
    /// host is at its session cap ([`CreateError::HostSessionLimit`]), then applies
    /// [`OnFull`]. The claim of the mapping counts the session against its host's cap
    /// ([`CreateError::HostSessionLimit`]) and a new mapping against the host's port cap on
    /// its WAN ([`CreateError::HostPortLimit`]; an existing mapping is reused whatever the
    /// host holds), under the host shard's lock. A TCP session created by a SYN without ACK
    /// starts in SynSent; by any other packet, in Established.
    pub fn create(
        &self,
        new: NewSession,
        pkt: PacketInfo,
        now: Duration,
    ) -> Result<Rewrite, CreateError> {
        if usize::from(new.wan) >= self.shared.wans.len() {
            return Err(CreateError::UnknownWan);
        }
        let now = nanos(now);
        let key = new.key;
        let ep = endpoint_word(key.proto, key.src);
        let h = self.shared.hasher.flow(ep, remote_word(key.dst));
        let mut shard = self.lock_flow(h);
        if let Some(slot) = shard.find(h, key.proto, key.src, key.dst) {
            match shard.touch(&self.shared, slot, h, Dir::Original, pkt, now) {
                Touch::Live | Touch::Unchanged => {
                    if let Some(s) = shard.session(slot) {
                        let (ip, iface) = self.shared.wan_nat(s.wan());
                        return Ok(s.rewrite_out(ip, iface));
                    }
                }
                Touch::Gone => {}
                Touch::OutOfWindow => return Err(CreateError::OutOfWindow),
            }
        }
        // (With room in the shard, the claim below checks the host's cap.)
        self.make_room(&mut shard, now, Some(key.src.ip))?;
        // lock order: the mapping shard is taken (and released) under the session shard's lock
        let claimed = self.shared.mappings_of(ep).claim(&self.shared, &new);
        let (wan, ext_port) = match claimed {
            Ok(c) => c,
            Err(e) => {
                let stats = &self.shared.stats;
                match e {
                    CreateError::PortsExhausted => bump(&stats.ports_exhausted),
                    CreateError::TableFull => bump(&stats.refused_full),
                    CreateError::HostSessionLimit => bump(&stats.host_session_limit),
                    CreateError::HostPortLimit => bump(&stats.host_port_limit),
                    CreateError::UnknownWan | CreateError::OutOfWindow | CreateError::Conflict => {}
                }
                return Err(e);
            }
        };
        let session = Session::create(&new, wan, ext_port, pkt.tcp_flags, now);
        let Some(slot) = shard.insert(&self.shared, session, h, pkt) else {
            // unreachable: the shard has a free slot. Give the mapping reference and the host's
            // counts back.
            let released = self
                .shared
                .mappings_of(ep)
                .unref(&self.shared, key.proto, key.src, wan);
            self.shared.hosts.release(key.src.ip, wan, released);
            bump(&self.shared.stats.refused_full);
            return Err(CreateError::TableFull);
        };
        match shard.session(slot) {
            Some(s) => {
                let (ip, iface) = self.shared.wan_nat(s.wan());
                Ok(s.rewrite_out(ip, iface))
            }
            None => Err(CreateError::TableFull),
        }
    }

    /// Makes room for a new session in `shard` if it is full: reaps expired sessions; if it is
    /// still full, refuses the flow of a host at its session cap (`capped`, the internal host
    /// of a flow that counts against the caps: a host at its cap takes no other host's
    /// session), then applies [`OnFull`].
    fn make_room(
        &self,
        shard: &mut Locked<'_>,
        now: u64,
        capped: Option<Ipv4Addr>,
    ) -> Result<(), CreateError> {
        if shard.is_full() {
            shard.expire(&self.shared, now, REAP_ON_FULL);
        }
        if shard.is_full() {
            if capped.is_some_and(|ip| self.shared.hosts.at_session_cap(ip)) {
                bump(&self.shared.stats.host_session_limit);
                return Err(CreateError::HostSessionLimit);
            }
            match self.on_full {
                OnFull::Refuse => {
                    bump(&self.shared.stats.refused_full);
                    return Err(CreateError::TableFull);
                }
                OnFull::EvictOldest => {
                    shard.evict(&self.shared);
                }
            }
        }
        if shard.is_full() {
            // unreachable: a shard has at least one slot, and eviction freed one
            bump(&self.shared.stats.refused_full);
            return Err(CreateError::TableFull);
        }
        Ok(())
    }

    /// Slow path of a port forward: the session of a connection from an Internet client to
    /// WAN `new.wan`'s address and the forward's external port `new.ext_port`, forwarded to
    /// the target `new.key.src` on the LAN (the engine decides that the packet matches a
    /// forward: it owns the forwards). `pkt` is the client's packet, travelling in the reply
    /// direction; the returned rewrite is that direction's (dst → the target, egress =
    /// `new.lan_iface`). Takes the flow's session-shard lock, then its host shard's.
    ///
    /// The session ([`SessionInfo::forwarded`]) is the canonical key's like any other:
    /// [`lookup_outbound`](Self::lookup_outbound) finds it for the target's packets and
    /// rewrites their source to the WAN's address and `new.ext_port`, out of the WAN's
    /// interface, whatever WAN the balancer would pick (and ends it as any other when its WAN
    /// is in [`Liveness::ended`]; it is never recalled, its WAN being the forward's);
    /// [`lookup_forwarded`](Self::lookup_forwarded) finds it for the client's. It holds no
    /// mapping and no port of the port table: the engine keeps the forward's port from dynamic
    /// NAT with [`reserve_port`](Self::reserve_port). Its TCP state is tracked with the client
    /// as the opener: a SYN without ACK creates it in SynSent, the target's SYN-ACK moves it
    /// on, and the client's SYN on a TimeWait or Closed session recycles it.
    ///
    /// Not held to the target's per-host caps ([`TableConfig::max_sessions_per_host`],
    /// [`TableConfig::max_ports_per_host`]): the target does not open these sessions, the
    /// Internet does, and a forward's visitors must not use up the host's own flows (nor a
    /// flood of them lock it out). They are counted apart for eviction, which weighs a
    /// forward's sessions by their target's forwarded sessions (`hosts.rs`). A full shard
    /// reaps, then applies [`OnFull`] as [`create`](Self::create) does.
    ///
    /// If the flow's session exists (another worker created it meanwhile, or a connection was
    /// recycled) and is this forward's, on `new.wan` and `new.ext_port`, the packet is applied
    /// to it as a hit. Errors: [`CreateError::UnknownWan`]; [`CreateError::Conflict`] when the
    /// flow's session is another (an ordinary session of the target with the same client
    /// endpoint, or another forward's), or when a mapping holds `new.ext_port` on the WAN's
    /// port table (a port the engine could not reserve); [`CreateError::OutOfWindow`] and
    /// [`CreateError::TableFull`] as for `create`. Each changes nothing.
    pub fn create_forwarded(
        &self,
        new: NewForwarded,
        pkt: PacketInfo,
        now: Duration,
    ) -> Result<Rewrite, CreateError> {
        self.forward_session(new, None, pkt, now)
    }

    /// Slow path of a hairpin through a port forward, the target's side: a LAN host C
    /// connected to WAN `new.wan`'s address and the forward's external port `new.ext_port`
    /// (its own hairpin session, made by [`create`](Self::create) with the forward's target
    /// as [`Hairpin::target`], translates C to its mapping on the
    /// WAN, m), and the target's answer (`pkt`, travelling from the LAN: the original
    /// direction) found no session. The session made is keyed `new.key` = (proto, the target,
    /// remote = the WAN's address : m), and rewrites the target's packets to src = the WAN's
    /// address : `new.ext_port` (the forward's port, where C sent its packets: else C's stack
    /// would not take the answers as its connection's) and dst = `hairpin.target` (C), out
    /// of `hairpin.egress` (C's LAN); the returned rewrite is that one. `new.lan_iface` is
    /// the target's LAN (shown as the session's; no packet goes that way through it).
    ///
    /// The session ([`SessionInfo::forwarded`] with a [`SessionInfo::dst_rewrite`]) is a port
    /// forward's: it holds no mapping and no port of the port table, is not held to the
    /// target's per-host caps and is counted apart per host, and goes with the forward
    /// ([`remove_forwarded`](Self::remove_forwarded)). It is a hairpin session too: it never
    /// matches inbound (nor [`lookup_forwarded`](Self::lookup_forwarded)), never ends with its
    /// WAN (it does not leave by it) and sees the target's packets only, so its TCP state is
    /// tracked from that one side, as any hairpin session's: created by the target's SYN-ACK
    /// or data it is Established, the target's FIN moves it to FinWait, a RST closes it (its
    /// class then times it out), and the window tracker, with one side, checks nothing.
    ///
    /// If the flow's session exists (a racing worker) and is the same (a hairpin session of
    /// this forward, on `new.wan` and `new.ext_port`) the packet is applied to it as a hit;
    /// errors as for [`create_forwarded`](Self::create_forwarded) (a flow whose session is
    /// another, an ordinary hairpin session of the target say, is a
    /// [`CreateError::Conflict`]). Takes the flow's session-shard lock, then its host shard's.
    pub fn create_forwarded_hairpin(
        &self,
        new: NewForwarded,
        hairpin: Hairpin,
        pkt: PacketInfo,
        now: Duration,
    ) -> Result<Rewrite, CreateError> {
        self.forward_session(new, Some(hairpin), pkt, now)
    }

    /// [`create_forwarded`](Self::create_forwarded), or with `hairpin`
    /// [`create_forwarded_hairpin`](Self::create_forwarded_hairpin): `pkt` travels in the
    /// reply direction (the client's) without, in the original one (the target's) with.
    fn forward_session(
        &self,
        new: NewForwarded,
        hairpin: Option<Hairpin>,
        pkt: PacketInfo,
        now: Duration,
    ) -> Result<Rewrite, CreateError> {
        let w = self
            .shared
            .wans
            .get(usize::from(new.wan))
            .ok_or(CreateError::UnknownWan)?;
        let key = new.key;
        if w.ports.owner(key.proto, new.ext_port).is_some() {
            return Err(CreateError::Conflict);
        }
        let now = nanos(now);
        let dir = if hairpin.is_some() {
            Dir::Original
        } else {
            Dir::Reply
        };
        let rewrite = |s: &Session| match dir {
            Dir::Original => s.rewrite_out(w.address, w.iface),
            Dir::Reply => s.rewrite_in(),
        };
        let h = self
            .shared
            .hasher
            .flow(endpoint_word(key.proto, key.src), remote_word(key.dst));
        let mut shard = self.lock_flow(h);
        if let Some(slot) = shard.find(h, key.proto, key.src, key.dst) {
            match shard.session(slot) {
                Some(s) if s.of_forward(new.wan, new.ext_port, hairpin.is_some()) => {}
                _ => return Err(CreateError::Conflict),
            }
            match shard.touch(&self.shared, slot, h, dir, pkt, now) {
                Touch::Live | Touch::Unchanged => {
                    if let Some(s) = shard.session(slot) {
                        return Ok(rewrite(&s));
                    }
                }
                Touch::Gone => {}
                Touch::OutOfWindow => return Err(CreateError::OutOfWindow),
            }
        }
        self.make_room(&mut shard, now, None)?;
        if let Err(e) = self.shared.hosts.admit_forwarded(key.src.ip, new.wan) {
            bump(&self.shared.stats.refused_full);
            return Err(e);
        }
        let session = Session::forwarded(&new, hairpin, pkt.tcp_flags, now);
        let Some(slot) = shard.insert(&self.shared, session, h, pkt) else {
            // unreachable: the shard has a free slot
            self.shared.hosts.release_forwarded(key.src.ip, new.wan);
            bump(&self.shared.stats.refused_full);
            return Err(CreateError::TableFull);
        };
        shard
            .session(slot)
            .map(|s| rewrite(&s))
            .ok_or(CreateError::TableFull)
    }

    /// Removes expired sessions, at most `budget` of them; returns how many. Pops the tails of
    /// each class list while they are expired (never scans), shard by shard round-robin from
    /// where the previous call stopped (taking each session's mapping-shard lock under its
    /// session shard's to give its mapping reference back). Nothing is removed before its
    /// timeout; a pass over a shard with budget enough removes every session of it more than
    /// one second past its deadline (so with a pass every second, sessions go less than two
    /// seconds after their deadlines: see `shard.rs`). Also advances the clock of
    /// [`for_each_session`](Self::for_each_session).
    pub fn expire(&self, now: Duration, budget: usize) -> usize {
        let now = nanos(now);
        self.clock.fetch_max(now, Ordering::Relaxed);
        if budget == 0 {
            return 0;
        }
        let mask = self.shared.mask;
        let start = self.cursor.load(Ordering::Relaxed) & mask;
        let mut done = 0;
        for i in 0..self.shards.len() {
            let idx = (start + i) & mask;
            done += self.lock(idx).expire(&self.shared, now, budget - done);
            if done >= budget {
                self.cursor.store(idx, Ordering::Relaxed);
                return done;
            }
        }
        self.cursor.store((start + 1) & mask, Ordering::Relaxed);
        done
    }

    /// Live sessions (a sum over the shards' counts).
    pub fn len(&self) -> usize {
        let live: u64 = self.shared.counts.iter().map(ShardCounts::live).sum();
        usize::try_from(live).unwrap_or(usize::MAX)
    }

    /// Whether no session is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sessions the table can hold: `ceil(max_sessions / shards) * shards`.
    pub fn capacity(&self) -> usize {
        self.shard_cap as usize * self.shards.len()
    }

    /// Number of session shards (there are as many mapping shards).
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Live sessions on WAN `wan` (a sum over the shards' counts).
    pub fn wan_sessions(&self, wan: u8) -> u64 {
        self.shared.counts.iter().map(|c| c.wan(wan)).sum()
    }

    /// Calls `f` with a snapshot of every session, locking one shard at a time; `age` and
    /// `idle` are measured at the latest `now` given to [`expire`](Self::expire) (use
    /// [`for_each_session_at`](Self::for_each_session_at) to give the time). `f` runs under the
    /// shard lock and must not call back into the table.
    pub fn for_each_session(&self, f: impl FnMut(&SessionInfo)) {
        let now = self.clock.load(Ordering::Relaxed);
        self.visit(now, f);
    }

    /// [`for_each_session`](Self::for_each_session) with `age` and `idle` measured at `now`.
    pub fn for_each_session_at(&self, now: Duration, f: impl FnMut(&SessionInfo)) {
        self.visit(nanos(now), f);
    }

    fn visit(&self, now: u64, mut f: impl FnMut(&SessionInfo)) {
        for i in 0..self.shards.len() {
            let shard = self.lock(i);
            shard.for_each(|s| {
                let (ip, iface) = self.shared.wan_nat(s.wan());
                f(&s.info(ip, iface, now));
            });
        }
    }

    /// A snapshot of the event counters.
    pub fn stats(&self) -> TableStats {
        let created = self.shared.counts.iter().map(ShardCounts::created).sum();
        self.shared.stats.snapshot(created)
    }

    /// Live endpoint-independent mappings (locks every mapping shard in turn; diagnostics).
    pub fn mapping_count(&self) -> usize {
        (0..self.shared.mappings.len())
            .map(|i| self.shared.lock_mappings(i).len() as usize)
            .sum()
    }

    /// Bound entries over all port tables (scans them; diagnostics).
    pub fn bound_ports(&self) -> usize {
        self.shared.wans.iter().map(|w| w.ports.bound()).sum()
    }

    /// Heap bytes preallocated by the table: `(sessions, port tables)`. The first part is
    /// proportional to the capacity (sessions and their index in the session shards; mappings
    /// and their index in the mapping shards; per-host entries and their index in the host
    /// shards); the second is fixed per WAN (8 bytes per port
    /// and protocol).
    pub fn memory_bytes(&self) -> (usize, usize) {
        let sessions: usize = self.shards.iter().map(|c| c.0.memory()).sum();
        let mappings: usize = (0..self.shared.mappings.len())
            .map(|i| self.shared.lock_mappings(i).memory())
            .sum();
        let sessions = sessions + mappings + self.shared.hosts.memory();
        let ports = self.shared.wans.iter().map(|w| w.ports.memory()).sum();
        (sessions, ports)
    }

    /// Address and length of every large preallocated region: each shard's session slab and
    /// index, each mapping shard's slab and index (not the port tables). For the engine to
    /// ask the kernel for huge pages behind them: their accesses are spread over the whole
    /// table, and with 4 KiB pages nearly every one misses the TLB.
    pub fn memory_regions(&self) -> Vec<(usize, usize)> {
        let sessions = self.shards.iter().flat_map(|c| c.0.regions());
        let mappings: Vec<(usize, usize)> = (0..self.shared.mappings.len())
            .flat_map(|i| self.shared.lock_mappings(i).regions())
            .collect();
        sessions.chain(mappings).collect()
    }

    /// Checks the table's invariants (tests; needs a quiescent table): each session shard's
    /// structure; every session in the shard its canonical flow hashes to; each mapping shard's
    /// structure, with every mapping in the shard its endpoint hashes to; every mapping's
    /// reference count equal to the sessions of its (proto, endpoint, WAN), and every session's
    /// external port equal to its mapping's (port forward sessions hold no mapping, and their
    /// external port is bound to none: see `Shard::check`); each host shard's structure, with
    /// one entry per (host, WAN) that has sessions it opened, counting exactly those and its
    /// mappings, and one per (host, WAN) that has port forward sessions, counting exactly
    /// those.
    #[cfg(test)]
    pub(crate) fn check(&self) -> Result<(), String> {
        use std::collections::HashMap;
        let mut n = 0;
        let mut refs: HashMap<(Proto, Endpoint, u8), (u32, u16)> = HashMap::new();
        // per (target host, WAN): port forward sessions
        let mut forwarded: HashMap<(Ipv4Addr, u8), u32> = HashMap::new();
        for i in 0..self.shards.len() {
            let s = self.lock(i);
            s.check(&self.shared)?;
            n += s.len() as usize;
            let mut err = None;
            s.for_each(|x| {
                let h = self.shared.hasher.flow(x.endpoint_word(), x.remote_word());
                if shard_index(h, self.shared.mask) != i {
                    err = Some(format!("{:?} in session shard {i}", x.key()));
                }
                if x.is_forwarded() {
                    *forwarded.entry((x.internal().ip, x.wan())).or_default() += 1;
                    return;
                }
                let r = refs
                    .entry((x.proto, x.internal(), x.wan()))
                    .or_insert((0, x.ext_port));
                r.0 += 1;
                if r.1 != x.ext_port {
                    err = Some(format!("{:?}: two external ports on one WAN", x.key()));
                }
            });
            if let Some(e) = err {
                return Err(e);
            }
        }
        if n != self.len() {
            return Err(format!("shards hold {n}, len() says {}", self.len()));
        }
        let mut mapped = 0;
        for i in 0..self.shared.mappings.len() {
            let m = self.shared.lock_mappings(i);
            m.check(&self.shared)?;
            let mut err = None;
            m.for_each(|proto, internal, wan, ext_port, count| {
                mapped += 1;
                let h = self.shared.hasher.endpoint(endpoint_word(proto, internal));
                if shard_index(h, self.shared.mask) != i {
                    err = Some(format!("mapping of {internal} in mapping shard {i}"));
                }
                if refs.get(&(proto, internal, wan)) != Some(&(count, ext_port)) {
                    err = Some(format!(
                        "mapping of {proto:?} {internal} on {wan}: port {ext_port}, {count} \
                         references; sessions: {:?}",
                        refs.get(&(proto, internal, wan))
                    ));
                }
            });
            if let Some(e) = err {
                return Err(e);
            }
        }
        if mapped != refs.len() {
            return Err(format!("{mapped} mappings for {} endpoints", refs.len()));
        }
        // per (host, WAN, forwarded): sessions, and mappings (one per endpoint with references)
        let mut hosts: HashMap<(Ipv4Addr, u8, bool), (u32, u32)> = HashMap::new();
        for (&(_, internal, wan), &(count, _)) in &refs {
            let e = hosts.entry((internal.ip, wan, false)).or_default();
            e.0 += count;
            e.1 += 1;
        }
        for (&(ip, wan), &count) in &forwarded {
            hosts.insert((ip, wan, true), (count, 0));
        }
        self.shared.hosts.check()?;
        let mut err = None;
        let mut entries = 0;
        self.shared.hosts.for_each(|ip, wan, fwd, sessions, ports| {
            entries += 1;
            if hosts.get(&(ip, wan, fwd)) != Some(&(sessions, ports)) {
                err = Some(format!(
                    "host {ip} on {wan} (forwarded: {fwd}): {sessions} sessions, {ports} \
                     ports counted; the table has {:?}",
                    hosts.get(&(ip, wan, fwd))
                ));
            }
        });
        if let Some(e) = err {
            return Err(e);
        }
        if entries != hosts.len() {
            return Err(format!("{entries} host entries for {} pairs", hosts.len()));
        }
        Ok(())
    }

    /// Live sessions of internal host `ip` as its host shard counts them (tests).
    #[cfg(test)]
    pub(crate) fn host_sessions(&self, ip: Ipv4Addr) -> u32 {
        self.shared.hosts.sessions(ip, false)
    }

    /// Slots of each host shard (tests).
    #[cfg(test)]
    pub(crate) fn host_shard_capacity(&self) -> usize {
        self.shared.hosts.shard_capacity()
    }

    /// Whether `internal` has a mapping for `proto` on `wan` (tests).
    #[cfg(test)]
    pub(crate) fn has_mapping(&self, proto: Proto, internal: Endpoint, wan: u8) -> bool {
        self.shared.mappings_of(endpoint_word(proto, internal)).has(
            &self.shared.hasher,
            proto,
            internal,
            wan,
        )
    }

    /// Index bucket counts of every session shard and every mapping shard (tests: they must
    /// never grow).
    #[cfg(test)]
    pub(crate) fn index_buckets(&self) -> Vec<usize> {
        let sessions = (0..self.shards.len()).map(|i| self.lock(i).index_buckets());
        let mappings =
            (0..self.shared.mappings.len()).map(|i| self.shared.lock_mappings(i).index_buckets());
        sessions.chain(mappings).collect()
    }

    /// Session shard `i`'s class lists, head first, as keys (tests).
    #[cfg(test)]
    pub(crate) fn class_lists(&self, i: usize) -> Vec<Vec<FlowKey>> {
        let shard = self.lock(i);
        shard
            .class_lists()
            .iter()
            .map(|l| {
                l.iter()
                    .filter_map(|&slot| shard.session(slot).map(|s| s.key()))
                    .collect()
            })
            .collect()
    }

    /// Session shard `i`'s raw slots and lists (tests: see `Shard::raw`).
    #[cfg(test)]
    pub(crate) fn raw_shard(&self, i: usize) -> (Vec<String>, String) {
        self.lock(i).raw()
    }

    /// Slot of `key` in its session shard, with the shard's index (tests).
    #[cfg(test)]
    pub(crate) fn slot_of(&self, key: &FlowKey) -> Option<(usize, u32)> {
        let h = self
            .shared
            .hasher
            .flow(endpoint_word(key.proto, key.src), remote_word(key.dst));
        let i = shard_index(h, self.shared.mask);
        let slot = self.lock(i).find(h, key.proto, key.src, key.dst)?;
        Some((i, slot))
    }

    /// Slots of each mapping shard (tests).
    #[cfg(test)]
    pub(crate) fn mapping_shard_capacity(&self) -> usize {
        self.shared.lock_mappings(0).capacity()
    }
}

#[cfg(test)]
mod tests;
