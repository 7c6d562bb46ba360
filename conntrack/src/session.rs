//! One tracked flow: its canonical key, translation, TCP state, counters and class-list links,
//! which pack into one 64-byte cache line (stored as a `SessionCell`, see `cell.rs`); plus the
//! public types that describe sessions to callers.
//!
//! The canonical key is the flow as it arrives from the LAN: source = internal endpoint,
//! destination = remote endpoint. The external address is not stored (it is the WAN's
//! address); the external port is.
//!
//! A port forward's session ([`NewForwarded`]) has a canonical key of the same shape: source =
//! the forward's target on the LAN, destination = the Internet client that opened it; its
//! external port is the forward's. A hairpin through a port forward (a LAN host reaching a
//! forward's port on a WAN address) gives the target a session of both kinds at once, see
//! [`ConnTable::create_forwarded_hairpin`](crate::ConnTable::create_forwarded_hairpin):
//! source = the target, destination = the LAN client's external endpoint (its mapping on the
//! WAN), external port the forward's, rewritten to the LAN client.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::key::{endpoint_word, remote_word, Endpoint, FlowKey, Proto};
use crate::lru::NIL;
use crate::tcp::{TcpState, TcpTrack};
use crate::timeouts::{duration, second_start, Class, SECOND};
use crate::window::Segment;

/// What a packet of this flow becomes: its new source and destination and the interface it
/// leaves by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rewrite {
    /// New source endpoint.
    pub src: Endpoint,
    /// New destination endpoint.
    pub dst: Endpoint,
    /// Interface id the packet leaves by.
    pub egress: u8,
}

/// What the table needs to know about a packet besides its key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketInfo {
    /// Raw TCP flags byte (FIN=0x01, SYN=0x02, RST=0x04, PSH=0x08, ACK=0x10); 0 for non-TCP.
    pub tcp_flags: u8,
    /// IP total length, for byte counters.
    pub len: u32,
    /// This is an ICMP error about the flow: no TCP state change, no counters, no refresh.
    pub icmp_error: bool,
    /// For TCP, the segment's sequence numbers and window (see [`Segment`]); ignored for
    /// other protocols and for ICMP errors.
    pub seg: Segment,
}

/// A session to create (see [`ConnTable::create`](crate::ConnTable::create)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewSession {
    /// Canonical key: as seen arriving from the LAN (src = internal endpoint).
    pub key: FlowKey,
    /// Preferred WAN (the balancer's pick): the source is translated to its address and port
    /// range unless the internal endpoint already has a mapping on another WAN of `eligible`
    /// (see [`ConnTable::create`](crate::ConnTable::create)). A hairpin session always uses it.
    pub wan: u8,
    /// WANs the flow may use, bit w = WAN w. Ignored for hairpin sessions.
    pub eligible: u64,
    /// Interface id reply-direction packets leave by (the LAN the flow came from).
    pub lan_iface: u8,
    /// Hairpin: the destination is replaced by a LAN endpoint, reached through its LAN.
    pub hairpin: Option<Hairpin>,
    /// Rule index that created it (for display).
    pub rule: u16,
}

/// A session of a port forward to create (see
/// [`ConnTable::create_forwarded`](crate::ConnTable::create_forwarded)): a connection from an
/// Internet client to WAN `wan`'s address and external port `ext_port`, forwarded to a LAN
/// endpoint (the target).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewForwarded {
    /// Canonical key: src = the target (the internal endpoint), dst = the Internet client (the
    /// remote endpoint).
    pub key: FlowKey,
    /// The WAN the connection came in on: the target's packets leave by it, from its address
    /// and `ext_port`.
    pub wan: u8,
    /// The forward's external port on the WAN.
    pub ext_port: u16,
    /// Interface id of the target's LAN: the client's packets leave by it.
    pub lan_iface: u8,
    /// The forward's id (for display, as [`SessionInfo::rule`]).
    pub forward: u16,
}

/// Where a hairpin session (a LAN host addressing another LAN host's external endpoint) goes
/// instead of out of its WAN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hairpin {
    /// The internal endpoint owning the addressed external port: it replaces the destination.
    pub target: Endpoint,
    /// Interface id of the target's LAN: original-direction packets leave by it.
    pub egress: u8,
}

/// A snapshot of one session, for display.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    /// Canonical key (src = internal endpoint, dst = remote).
    pub key: FlowKey,
    /// External (translated) source endpoint: WAN address and port.
    pub external: Endpoint,
    /// WAN index.
    pub wan: u8,
    /// Interface original-direction packets leave by.
    pub egress: u8,
    /// Interface reply-direction packets leave by.
    pub lan_iface: u8,
    /// Hairpin destination, if any.
    pub dst_rewrite: Option<Endpoint>,
    /// TCP state; `None` for UDP and ICMP.
    pub tcp_state: Option<TcpState>,
    /// Rule that created the session; for a forwarded session, the forward's id.
    pub rule: u16,
    /// A session of a port forward: opened from the Internet to `external`, its target is the
    /// internal endpoint (`key.src`). With `dst_rewrite`, the target's side of a hairpin
    /// through the forward (opened by a LAN host to `external`; see
    /// [`ConnTable::create_forwarded_hairpin`](crate::ConnTable::create_forwarded_hairpin)).
    pub forwarded: bool,
    /// Time since creation (whole-second resolution).
    pub age: Duration,
    /// Time since the last packet.
    pub idle: Duration,
    /// When the session was created (since the caller's origin; whole seconds).
    pub created: Duration,
    /// When the last packet was seen (since the caller's origin).
    pub last_seen: Duration,
    /// Packets from the LAN side. Counted in 32 bits per session: stops at 4,294,967,295.
    pub packets_out: u64,
    /// Packets to the LAN side. Counted in 32 bits per session: stops at 4,294,967,295.
    pub packets_in: u64,
    /// Bytes from the LAN side.
    pub bytes_out: u64,
    /// Bytes to the LAN side.
    pub bytes_in: u64,
}

/// Bit of [`Session::wan_hp`]: the session is a hairpin (its destination is rewritten to a
/// LAN endpoint kept in `in_word`). WAN indices are below [`MAX_WANS`](crate::MAX_WANS) = 64,
/// so they never reach this bit.
const HAIRPIN: u8 = 0x80;

/// Bit of [`Session::wan_hp`]: the session is a port forward's (opened from the Internet, or
/// with [`HAIRPIN`] the target's side of a hairpin through the forward; its external port is
/// the forward's, held by no mapping). Above every WAN index too.
const FORWARDED: u8 = 0x40;

/// The WAN index's bits of [`Session::wan_hp`].
const WAN_BITS: u8 = 0x3f;

/// One tracked flow, as the shard's code reads and changes it; a slab slot holds it packed
/// into a 64-byte `SessionCell` (`cell.rs`). Free slots chain through `next`.
///
/// 64 bytes: every session fills exactly one cache line, so a fast-path hit (key, TCP byte,
/// external port, `last_seen`, WAN, counters of one direction) touches one line whatever its
/// slot. Links, rule and creation time, used off the per-packet path, share it. What fits in
/// 64 bytes and why:
/// - the egress interface is not stored: it is the WAN's interface
///   ([`WanNat::iface`](crate::WanNat::iface), fixed for the table's life) for an ordinary
///   session, and kept with the hairpin target for a hairpin one;
/// - a hairpin session never sees a reply-direction packet (it never matches inbound: the
///   target's replies make the target's own hairpin session), so its reply byte counter's
///   word (`in_word`) holds its destination rewrite and egress instead; the `HAIRPIN` bit of
///   `wan_hp` says which. The rewrite is stored, not looked up again in the port table at
///   each packet, so that the port being released and claimed by another host cannot
///   redirect an established hairpin flow;
/// - a port forward's session (the `FORWARDED` bit of `wan_hp`, 0x40; WAN indices are below
///   64 and use the low six bits) stores nothing more: its external port is the forward's, in
///   `ext_port` as a mapping's would be, and its target is the internal endpoint of its
///   canonical key. Its opener is the reply side (the Internet client), which `shard.rs`
///   accounts for when it tracks TCP;
/// - the target's side of a hairpin through a port forward has both bits: `FORWARDED` (the
///   forward's external port, no mapping, counted apart per host) and `HAIRPIN` (its
///   rewrite to the LAN client in `in_word`, never matched inbound). It sees the target's
///   packets only, so its opener, for TCP tracking, is the LAN side as for any hairpin
///   session ([`Session::opened_by_reply`]);
/// - packet counters are `u32` and saturate (they are statistics for display); byte counters
///   stay `u64`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Session {
    src_ip: u32,
    dst_ip: u32,
    src_port: u16,
    dst_port: u16,
    pub(crate) proto: Proto,
    pub(crate) tcp: TcpTrack,
    pub(crate) ext_port: u16,
    /// Last packet, table time units. Its whole second is also the second the session last
    /// moved to its class list's head (see `shard.rs`): no separate stamp is needed.
    pub(crate) last_seen: u64,
    /// WAN index (below 64, bits `WAN_BITS`), plus `HAIRPIN`, `FORWARDED` or both.
    wan_hp: u8,
    lan_iface: u8,
    pub(crate) rule: u16,
    /// Packets from the LAN side (saturating).
    packets_out: u32,
    bytes_out: u64,
    /// Packets to the LAN side (saturating; always 0 for a hairpin session).
    packets_in: u32,
    /// Creation time, whole seconds (saturating).
    created_s: u32,
    /// Bytes to the LAN side; for a hairpin session instead its destination rewrite and egress:
    /// `ip << 32 | port << 16 | egress` (see [`hairpin_word`]).
    in_word: u64,
    prev: u32,
    pub(crate) next: u32,
}

/// `in_word` of a hairpin session to `target`, leaving by `egress`.
fn hairpin_word(target: Endpoint, egress: u8) -> u64 {
    u64::from(u32::from(target.ip)) << 32 | u64::from(target.port) << 16 | u64::from(egress)
}

/// The hairpin target and egress that `in_word` holds (see [`hairpin_word`]).
#[inline]
fn hairpin_of(w: u64) -> (Endpoint, u8) {
    // truncations pick the packed fields
    let target = Endpoint::new(Ipv4Addr::from((w >> 32) as u32), (w >> 16) as u16);
    (target, w as u8)
}

/// The `wan_hp` byte of a session an inbound packet from WAN `wan` may reach: an ordinary
/// session's (no flag), or with `forwarded` a port forward's (only [`FORWARDED`]). A hairpin
/// session's never matches.
#[inline]
fn inbound_wan_hp(wan: u8, forwarded: bool) -> u8 {
    if forwarded {
        wan | FORWARDED
    } else {
        wan
    }
}

/// Whether a session with `wan_hp` byte `wan_hp` was opened from the reply side: a port
/// forward's session, not a hairpin (see [`Session::opened_by_reply`]).
#[inline]
fn opened_by_reply(wan_hp: u8) -> bool {
    wan_hp & (FORWARDED | HAIRPIN) == FORWARDED
}

/// The timeout class of a session of `proto` with TCP tracker `tcp`.
#[inline]
fn class_of(proto: Proto, tcp: TcpTrack) -> Class {
    match proto {
        Proto::Udp => Class::Udp,
        Proto::Icmp => Class::Icmp,
        Proto::Tcp => tcp.state().class(),
    }
}

/// The original-direction rewrite of a session translated to `src`: to its hairpin target and
/// that target's LAN if it has one, else to `remote` out of its WAN's interface `wan_iface`.
#[inline]
fn original_rewrite(
    src: Endpoint,
    hairpin: Option<(Endpoint, u8)>,
    remote: Endpoint,
    wan_iface: u8,
) -> Rewrite {
    match hairpin {
        Some((dst, egress)) => Rewrite { src, dst, egress },
        None => Rewrite {
            src,
            dst: remote,
            egress: wan_iface,
        },
    }
}

/// What a lock-free hit reads of a session: a `SessionCell`'s `ep`, `remote`, `last_seen`,
/// `meta` and `in_word` words, as they were (see `SessionCell::glance`; layout in `cell.rs`),
/// and the protocol the probe compared. No unpacking of the fields the hit does not use.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Glance {
    pub(crate) proto: Proto,
    pub(crate) ep: u64,
    pub(crate) remote: u64,
    pub(crate) last_seen: u64,
    pub(crate) meta: u64,
    pub(crate) in_word: u64,
}

impl Glance {
    #[inline]
    pub(crate) fn tcp(&self) -> TcpTrack {
        TcpTrack::from_bits((self.ep >> 8) as u8)
    }

    #[inline]
    pub(crate) fn ext_port(&self) -> u16 {
        (self.remote >> 48) as u16
    }

    #[inline]
    fn wan_hp(&self) -> u8 {
        (self.meta >> 56) as u8
    }

    /// The session's WAN index.
    #[inline]
    pub(crate) fn wan(&self) -> u8 {
        self.wan_hp() & WAN_BITS
    }

    #[inline]
    pub(crate) fn is_hairpin(&self) -> bool {
        self.wan_hp() & HAIRPIN != 0
    }

    /// As [`Session::opened_by_reply`].
    #[inline]
    pub(crate) fn opened_by_reply(&self) -> bool {
        opened_by_reply(self.wan_hp())
    }

    /// Whether a packet from WAN `wan` to its external port `ext_port` may reach this session:
    /// it is on that WAN and port, not a hairpin, and a forwarded session exactly when
    /// `forwarded` (see [`inbound_wan_hp`]).
    #[inline]
    pub(crate) fn reached_by(&self, wan: u8, ext_port: u16, forwarded: bool) -> bool {
        self.wan_hp() == inbound_wan_hp(wan, forwarded) && self.ext_port() == ext_port
    }

    /// Timeout class (as [`Session::class`]).
    #[inline]
    pub(crate) fn class(&self) -> Class {
        class_of(self.proto, self.tcp())
    }

    /// Original-direction rewrite (as [`Session::rewrite_out`]) of the session whose remote
    /// endpoint is `remote`.
    #[inline]
    pub(crate) fn rewrite_out(&self, wan_ip: Ipv4Addr, wan_iface: u8, remote: Endpoint) -> Rewrite {
        let hairpin = self.is_hairpin().then(|| hairpin_of(self.in_word));
        let src = Endpoint::new(wan_ip, self.ext_port());
        original_rewrite(src, hairpin, remote, wan_iface)
    }

    /// Reply-direction rewrite (as [`Session::rewrite_in`]) of the session of `internal` and
    /// `remote`.
    #[inline]
    pub(crate) fn rewrite_in(&self, internal: Endpoint, remote: Endpoint) -> Rewrite {
        Rewrite {
            src: remote,
            dst: internal,
            egress: (self.meta >> 48) as u8,
        }
    }
}

/// A session's words as a `SessionCell` stores them (layout in `cell.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Packed {
    pub(crate) ep: u64,
    pub(crate) remote: u64,
    pub(crate) last_seen: u64,
    pub(crate) meta: u64,
    pub(crate) packets_out: u32,
    pub(crate) packets_in: u32,
    pub(crate) bytes_out: u64,
    pub(crate) in_word: u64,
    pub(crate) prev: u32,
    pub(crate) next: u32,
}

impl Session {
    /// The words a `SessionCell` holds for this session.
    #[inline]
    pub(crate) fn pack(&self) -> Packed {
        Packed {
            ep: self.endpoint_word() | u64::from(self.tcp.bits()) << 8,
            remote: self.remote_word() | u64::from(self.ext_port) << 48,
            last_seen: self.last_seen,
            meta: u64::from(self.wan_hp) << 56
                | u64::from(self.lan_iface) << 48
                | u64::from(self.rule) << 32
                | u64::from(self.created_s),
            packets_out: self.packets_out,
            packets_in: self.packets_in,
            bytes_out: self.bytes_out,
            in_word: self.in_word,
            prev: self.prev,
            next: self.next,
        }
    }

    /// The session whose packed words are `p` (truncating casts pick the packed fields; an
    /// unknown protocol byte, which no cell holds, reads as UDP).
    #[inline]
    pub(crate) fn unpack(p: Packed) -> Session {
        Session {
            src_ip: (p.ep >> 32) as u32,
            src_port: (p.ep >> 16) as u16,
            tcp: TcpTrack::from_bits((p.ep >> 8) as u8),
            proto: Proto::from_ip_number(p.ep as u8).unwrap_or(Proto::Udp),
            dst_ip: (p.remote >> 16) as u32,
            dst_port: p.remote as u16,
            ext_port: (p.remote >> 48) as u16,
            last_seen: p.last_seen,
            wan_hp: (p.meta >> 56) as u8,
            lan_iface: (p.meta >> 48) as u8,
            rule: (p.meta >> 32) as u16,
            packets_out: p.packets_out,
            bytes_out: p.bytes_out,
            packets_in: p.packets_in,
            created_s: p.meta as u32,
            in_word: p.in_word,
            prev: p.prev,
            next: p.next,
        }
    }

    /// The reply byte counter's word (a hairpin session's rewrite instead).
    #[cfg(test)]
    pub(crate) fn in_word(&self) -> u64 {
        self.in_word
    }

    /// Free-list successor (of a free slot).
    #[inline]
    pub(crate) fn next(&self) -> u32 {
        self.next
    }

    /// A free slot whose free-list successor is `next`.
    pub(crate) fn vacant(next: u32) -> Session {
        Session {
            src_ip: 0,
            dst_ip: 0,
            src_port: 0,
            dst_port: 0,
            proto: Proto::Udp,
            tcp: TcpTrack::default(),
            ext_port: 0,
            last_seen: 0,
            wan_hp: 0,
            lan_iface: 0,
            rule: 0,
            packets_out: 0,
            bytes_out: 0,
            packets_in: 0,
            created_s: 0,
            in_word: 0,
            prev: NIL,
            next,
        }
    }

    /// A live session for `new` on WAN `wan` (below [`MAX_WANS`](crate::MAX_WANS)),
    /// translated to `ext_port`, created at `now` by a packet with TCP flags `tcp_flags`.
    /// Links and counters are left for the caller.
    pub(crate) fn create(
        new: &NewSession,
        wan: u8,
        ext_port: u16,
        tcp_flags: u8,
        now: u64,
    ) -> Session {
        debug_assert!(usize::from(wan) < crate::MAX_WANS);
        let (hairpin, in_word) = match new.hairpin {
            Some(hp) => (HAIRPIN, hairpin_word(hp.target, hp.egress)),
            None => (0, 0),
        };
        Session {
            last_seen: now,
            created_s: u32::try_from(now / SECOND).unwrap_or(u32::MAX),
            src_ip: new.key.src.ip.into(),
            src_port: new.key.src.port,
            dst_ip: new.key.dst.ip.into(),
            dst_port: new.key.dst.port,
            ext_port,
            rule: new.rule,
            proto: new.key.proto,
            wan_hp: (wan & WAN_BITS) | hairpin,
            lan_iface: new.lan_iface,
            tcp: TcpTrack::initial(tcp_flags),
            in_word,
            ..Session::vacant(NIL)
        }
    }

    /// A live session for the port forward connection `new`, created at `now` by a packet
    /// with TCP flags `tcp_flags`: the client's, or with `hairpin` (the target's side of a
    /// hairpin through the forward, rewritten to the LAN client) the target's. Links and
    /// counters are left for the caller.
    pub(crate) fn forwarded(
        new: &NewForwarded,
        hairpin: Option<Hairpin>,
        tcp_flags: u8,
        now: u64,
    ) -> Session {
        debug_assert!(usize::from(new.wan) < crate::MAX_WANS);
        let opened = NewSession {
            key: new.key,
            wan: new.wan,
            eligible: 0,
            lan_iface: new.lan_iface,
            hairpin,
            rule: new.forward,
        };
        let mut s = Session::create(&opened, new.wan, new.ext_port, tcp_flags, now);
        s.wan_hp |= FORWARDED;
        s
    }

    /// The session's WAN index.
    #[inline]
    pub(crate) fn wan(&self) -> u8 {
        self.wan_hp & WAN_BITS
    }

    /// Whether the session is a port forward's (see [`NewForwarded`]).
    #[inline]
    pub(crate) fn is_forwarded(&self) -> bool {
        self.wan_hp & FORWARDED != 0
    }

    /// Whether the session was opened from the reply side: a port forward's, opened by an
    /// Internet client (not the target's side of a hairpin through a forward, which sees the
    /// target's packets only, as any hairpin session sees its opener's). The TCP state
    /// machine and the window tracker see such a session's directions swapped
    /// ([`Dir::tracked`](crate::tcp::Dir::tracked)), and its first packet is a reply's.
    #[inline]
    pub(crate) fn opened_by_reply(&self) -> bool {
        opened_by_reply(self.wan_hp)
    }

    /// As [`Glance::reached_by`].
    #[inline]
    pub(crate) fn reached_by(&self, wan: u8, ext_port: u16, forwarded: bool) -> bool {
        self.wan_hp == inbound_wan_hp(wan, forwarded) && self.ext_port == ext_port
    }

    /// Whether this is a session of the port forward on WAN `wan` and external port
    /// `ext_port`: one opened from the Internet, or with `hairpin` the target's side of a
    /// hairpin through it.
    #[inline]
    pub(crate) fn of_forward(&self, wan: u8, ext_port: u16, hairpin: bool) -> bool {
        let hp = if hairpin { HAIRPIN } else { 0 };
        self.wan_hp == wan | FORWARDED | hp && self.ext_port == ext_port
    }

    #[inline]
    pub(crate) fn internal(&self) -> Endpoint {
        Endpoint::new(Ipv4Addr::from(self.src_ip), self.src_port)
    }

    #[inline]
    pub(crate) fn remote(&self) -> Endpoint {
        Endpoint::new(Ipv4Addr::from(self.dst_ip), self.dst_port)
    }

    /// Endpoint word of the internal endpoint.
    #[inline]
    pub(crate) fn endpoint_word(&self) -> u64 {
        endpoint_word(self.proto, self.internal())
    }

    /// Remote word.
    #[inline]
    pub(crate) fn remote_word(&self) -> u64 {
        remote_word(self.remote())
    }

    pub(crate) fn key(&self) -> FlowKey {
        FlowKey::new(self.proto, self.internal(), self.remote())
    }

    /// A hairpin session's destination (the LAN endpoint it is sent to) and egress interface.
    #[inline]
    fn hairpin(&self) -> Option<(Endpoint, u8)> {
        self.is_hairpin().then(|| hairpin_of(self.in_word))
    }

    #[inline]
    pub(crate) fn dst_rewrite(&self) -> Option<Endpoint> {
        self.hairpin().map(|(target, _)| target)
    }

    #[inline]
    pub(crate) fn is_hairpin(&self) -> bool {
        self.wan_hp & HAIRPIN != 0
    }

    /// Interface original-direction packets leave by: the hairpin target's LAN, or the
    /// interface `wan_iface` of the session's WAN.
    #[inline]
    fn egress(&self, wan_iface: u8) -> u8 {
        self.hairpin().map_or(wan_iface, |(_, egress)| egress)
    }

    /// Bytes to the LAN side (none for a hairpin session, whose `in_word` is its rewrite).
    #[inline]
    fn bytes_in(&self) -> u64 {
        if self.is_hairpin() {
            0
        } else {
            self.in_word
        }
    }

    pub(crate) fn tcp_state(&self) -> Option<TcpState> {
        (self.proto == Proto::Tcp).then(|| self.tcp.state())
    }

    /// The timeout class this session is filed under.
    #[inline]
    pub(crate) fn class(&self) -> Class {
        class_of(self.proto, self.tcp)
    }

    /// Original-direction rewrite; `wan_ip` and `wan_iface` are the address and interface of
    /// the session's WAN.
    #[inline]
    pub(crate) fn rewrite_out(&self, wan_ip: Ipv4Addr, wan_iface: u8) -> Rewrite {
        let src = Endpoint::new(wan_ip, self.ext_port);
        original_rewrite(src, self.hairpin(), self.remote(), wan_iface)
    }

    /// Reply-direction rewrite.
    #[inline]
    pub(crate) fn rewrite_in(&self) -> Rewrite {
        Rewrite {
            src: self.remote(),
            dst: self.internal(),
            egress: self.lan_iface,
        }
    }

    /// Records a packet seen at `now`: moves `last_seen` on (never back). Returns whether the
    /// session is due to move to its class list's head: `now` is in a later whole second than
    /// the previous packet. So a session moves at most once per second, at the first packet
    /// of that second, and every packet after a move falls within the second of the move.
    /// Writes this session only.
    #[inline]
    pub(crate) fn refresh(&mut self, now: u64) -> bool {
        if now <= self.last_seen {
            return false;
        }
        // `last_seen < now`: in `now`'s second exactly when not before its start
        let due = self.last_seen < second_start(now);
        self.last_seen = now;
        due
    }

    /// Counts one packet of `len` bytes in the original (`out`) or reply direction. Packet
    /// counts saturate at `u32::MAX`. A hairpin session counts no reply-direction packet (it
    /// never has one: it never matches inbound), so its `in_word` keeps its rewrite.
    #[inline]
    pub(crate) fn count(&mut self, out: bool, len: u32) {
        if out {
            self.packets_out = self.packets_out.saturating_add(1);
            self.bytes_out = self.bytes_out.wrapping_add(u64::from(len));
        } else if !self.is_hairpin() {
            self.packets_in = self.packets_in.saturating_add(1);
            self.in_word = self.in_word.wrapping_add(u64::from(len));
        }
    }

    /// A snapshot; `wan_ip` and `wan_iface` are the address and interface of the session's WAN.
    pub(crate) fn info(&self, wan_ip: Ipv4Addr, wan_iface: u8, now: u64) -> SessionInfo {
        let created = Duration::from_secs(u64::from(self.created_s));
        let now_d = duration(now);
        SessionInfo {
            key: self.key(),
            external: Endpoint::new(wan_ip, self.ext_port),
            wan: self.wan(),
            egress: self.egress(wan_iface),
            lan_iface: self.lan_iface,
            dst_rewrite: self.dst_rewrite(),
            tcp_state: self.tcp_state(),
            rule: self.rule,
            forwarded: self.is_forwarded(),
            age: now_d.saturating_sub(created),
            idle: duration(now.saturating_sub(self.last_seen)),
            created,
            last_seen: duration(self.last_seen),
            packets_out: u64::from(self.packets_out),
            packets_in: u64::from(self.packets_in),
            bytes_out: self.bytes_out,
            bytes_in: self.bytes_in(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::TCP_SYN;

    fn ep(a: u8, b: u8, port: u16) -> Endpoint {
        Endpoint::new(Ipv4Addr::new(10, 0, a, b), port)
    }

    fn new(rw: Option<Endpoint>) -> NewSession {
        NewSession {
            key: FlowKey::new(Proto::Tcp, ep(0, 1, 1234), ep(9, 9, 443)),
            wan: 2,
            eligible: 0b100,
            lan_iface: 1,
            hairpin: rw.map(|target| Hairpin { target, egress: 1 }),
            rule: 17,
        }
    }

    /// `Session::create` on the new session's WAN.
    fn create(new: &NewSession, ext_port: u16, tcp_flags: u8, now: u64) -> Session {
        Session::create(new, new.wan, ext_port, tcp_flags, now)
    }

    #[test]
    fn packs_and_unpacks_every_field() {
        let mut s = create(&new(Some(ep(0, 9, 8080))), 40000, TCP_SYN, 5_000_000_000);
        s.count(true, 60);
        s.prev = 17;
        s.next = 23;
        let back = Session::unpack(s.pack());
        assert_eq!(format!("{back:?}"), format!("{s:?}"));
        assert_eq!(back.pack(), s.pack());
    }

    #[test]
    fn rewrites_in_both_directions() {
        let s = create(&new(None), 40000, TCP_SYN, 5_000_000_000);
        let wan_ip = Ipv4Addr::new(203, 0, 113, 1);
        assert_eq!(s.wan(), 2);
        assert_eq!(
            s.rewrite_out(wan_ip, 5),
            Rewrite {
                src: Endpoint::new(wan_ip, 40000),
                dst: ep(9, 9, 443),
                egress: 5
            }
        );
        assert_eq!(
            s.rewrite_in(),
            Rewrite {
                src: ep(9, 9, 443),
                dst: ep(0, 1, 1234),
                egress: 1
            }
        );
        assert!(!s.is_hairpin());
        assert_eq!(s.tcp_state(), Some(TcpState::SynSent));
        assert_eq!(s.class(), Class::TcpTransitory);
    }

    #[test]
    fn hairpin_rewrites_the_destination() {
        let b = Endpoint::new(Ipv4Addr::new(192, 168, 255, 254), 65535);
        let mut n = new(Some(b));
        n.wan = 63;
        n.hairpin = Some(Hairpin {
            target: b,
            egress: 0xfe,
        });
        let mut s = create(&n, 40000, 0, 0);
        assert!(s.is_hairpin());
        assert_eq!(s.wan(), 63);
        assert_eq!(s.dst_rewrite(), Some(b));
        let rw = s.rewrite_out(Ipv4Addr::LOCALHOST, 5);
        assert_eq!(
            (rw.src, rw.dst, rw.egress),
            (Endpoint::new(Ipv4Addr::LOCALHOST, 40000), b, 0xfe)
        );
        assert_eq!(s.class(), Class::TcpEstablished);
        // counting leaves the rewrite alone; the reply direction is never counted for it
        s.count(true, 1500);
        s.count(false, 1500);
        assert_eq!(s.dst_rewrite(), Some(b));
        let i = s.info(Ipv4Addr::LOCALHOST, 5, 0);
        assert_eq!((i.egress, i.dst_rewrite, i.wan), (0xfe, Some(b), 63));
        assert_eq!(
            (i.packets_out, i.bytes_out, i.packets_in, i.bytes_in),
            (1, 1500, 0, 0)
        );
    }

    #[test]
    fn packet_counts_saturate() {
        let mut s = create(&new(None), 7, 0, 0);
        s.packets_out = u32::MAX - 1;
        s.packets_in = u32::MAX;
        s.count(true, 10);
        s.count(true, 10);
        s.count(false, 10);
        let i = s.info(Ipv4Addr::LOCALHOST, 5, 0);
        assert_eq!(
            (i.packets_out, i.packets_in),
            (u64::from(u32::MAX), u64::from(u32::MAX))
        );
        assert_eq!((i.bytes_out, i.bytes_in), (20, 10));
        assert_eq!(i.egress, 5);
    }

    #[test]
    fn matches_only_its_key() {
        let n = new(None);
        let s = create(&n, 1, 0, 0);
        let c = crate::cell::SessionCell::new(&s);
        assert!(c.is(Proto::Tcp, n.key.src, n.key.dst));
        assert!(!c.is(Proto::Udp, n.key.src, n.key.dst));
        assert!(!c.is(Proto::Tcp, n.key.dst, n.key.src));
        assert!(!c.is(Proto::Tcp, n.key.src, ep(9, 9, 444)));
        assert_eq!(s.key(), n.key);
    }

    #[test]
    fn refresh_moves_last_seen_on_and_says_when_a_move_is_due() {
        let sec = |x: f64| (x * SECOND as f64) as u64;
        let mut s = create(&new(None), 7, 0, sec(5.2));
        assert!(!s.refresh(sec(5.2)), "no later packet");
        assert!(!s.refresh(sec(4.0)), "an earlier packet");
        assert_eq!(s.last_seen, sec(5.2));
        // later packets in the second of the last one: no move
        assert!(!s.refresh(sec(5.5)));
        assert!(!s.refresh(sec(5.999_999_999)));
        assert_eq!(s.last_seen, sec(5.999_999_999));
        // the first packet of a later second: due, once
        assert!(s.refresh(sec(6.0)));
        assert!(!s.refresh(sec(6.9)));
        assert!(s.refresh(sec(9.1)));
        // a second 2^16 (or 2^32) seconds later is still a later second: no wrap
        assert!(s.refresh(sec(9.1) + 65_536 * SECOND));
        assert!(s.refresh(sec(9.2) + (65_536 + (1 << 32)) * SECOND));
        assert_eq!(s.last_seen, sec(9.2) + (65_536 + (1 << 32)) * SECOND);
    }

    #[test]
    fn info_reports_counters_and_times() {
        let mut s = create(&new(None), 7, 0, 2_500_000_000);
        s.count(true, 100);
        s.count(false, 60);
        s.count(false, 40);
        let i = s.info(Ipv4Addr::new(1, 2, 3, 4), 5, 4_500_000_000);
        assert_eq!(
            (i.packets_out, i.bytes_out, i.packets_in, i.bytes_in),
            (1, 100, 2, 100)
        );
        assert_eq!(i.idle, Duration::from_secs(2));
        assert_eq!(i.created, Duration::from_secs(2));
        assert_eq!(i.age, Duration::from_millis(2500));
        assert_eq!(i.external, Endpoint::new(Ipv4Addr::new(1, 2, 3, 4), 7));
        assert_eq!(i.rule, 17);
    }
}
