//! The packet pipeline of one worker: a batch of frames in, verdicts and per-egress lists out.
//!
//! ```text
//! frame → parse → express lane (a lock-free session hit: rewrite, count, done) or
//!       → from a LAN: local? kernel : fast path (session hit) | slow path (new flow)
//!       → from a WAN: fast path (reply of a session) | a port forward's session (found, or
//!                     opened by a bare SYN or a datagram) | kernel (the box's own traffic)
//!       → rewrite in place (NAT, TTL, checksums) → Ethernet header → verdict
//! ```
//! The express lane ([`express`]) takes the common packet without the general path's layers;
//! the fast path ([`fast_path`]) is a table lookup and a rewrite; only the slow path
//! ([`slow_path`]) consults the policy and creates sessions. Neither allocates, logs or takes a
//! global lock; every frame that is not forwarded gets a named [`DropReason`].

pub mod counters;
mod express;
mod fast_path;
pub mod flow;
pub mod rate_limit;
mod slow_path;
pub mod verdict;

use std::sync::Arc;
use std::time::Duration;

use balancer::{LinkState, Selector};
use conntrack::{
    FlowHash, Lookup, NewForwarded, SlotHint, TcpState, WanSet, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN,
};

use crate::config::{Inbound, OnWanDown};
use crate::device::prefetch::prefetch;
use crate::device::Frame;
use crate::neighbors::Neighbors;
use crate::packet::checksum;
use crate::packet::icmp_error::{build_icmp_error, IcmpErrorKind};
use crate::packet::parse::{self, ParseError};
use crate::packet::tcp_reset::build_tcp_reset;
use crate::packet::wire::{EthernetFrame, Ipv4Packet as Ipv4View, UdpDatagram};
use crate::packet::{Ipv4Packet, Medium};
use crate::plan::{Destination, Plan, Role};
use crate::tables::Tables;

pub use counters::{Counters, DropReason, Event};
use verdict::Fate;
pub use verdict::{Output, Verdict};

/// Everything a batch is processed against. Built once per batch by the worker.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    pub plan: &'a Plan,
    pub tables: &'a Tables,
    /// Link state per WAN index.
    pub health: &'a [LinkState],
    pub neighbors: &'a dyn Neighbors,
    pub now: Duration,
    /// The largest IP packet each interface carries, by interface id; an interface without
    /// an entry (all of them over TUN, where the kernel checks) has no limit here.
    pub mtus: &'a [u16],
}

impl std::fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

/// Why a TCP segment that could open or close a connection (SYN, FIN or RST) may not reach
/// the connection table: its checksum is wrong (`tcp_bad_checksum`), or it is a fragment
/// whose checksum cannot be verified (`tcp_control_fragment`). `None` for every other packet
/// (segments without those flags are not verified: a bad checksum stays bad through the
/// incremental rewrite, and the receiving host drops it).
fn unverified_control_segment(frame: &[u8], pkt: &Ipv4Packet) -> Option<DropReason> {
    let crate::packet::Transport::Tcp { flags, .. } = pkt.transport else {
        return None;
    };
    if flags & (TCP_SYN | TCP_FIN | TCP_RST) == 0 {
        return None;
    }
    if pkt.fragment != crate::packet::Fragment::Whole {
        return Some(DropReason::TcpControlFragment);
    }
    let segment = frame.get(pkt.l4()..pkt.end())?;
    (!l4_checksum_ok(pkt, parse::IPPROTO_TCP, segment)).then_some(DropReason::TcpBadChecksum)
}

/// Whether the TCP or UDP checksum (protocol `proto`) of a whole datagram's transport part
/// `l4` is right.
fn l4_checksum_ok(pkt: &Ipv4Packet, proto: u8, l4: &[u8]) -> bool {
    checksum::l4_verify_sum(pkt.src.octets(), pkt.dst.octets(), proto, l4) == 0
}

/// Whether a UDP datagram that would open a session carries a wrong checksum
/// (`udp_bad_checksum`). A checksum of 0 (none: RFC 768) and a fragment (its checksum covers
/// the whole datagram) are not verified.
fn bad_new_datagram(frame: &[u8], pkt: &Ipv4Packet) -> Option<DropReason> {
    if !matches!(pkt.transport, crate::packet::Transport::Udp { .. })
        || pkt.fragment != crate::packet::Fragment::Whole
    {
        return None;
    }
    let datagram = frame.get(pkt.l4()..pkt.end())?;
    if UdpDatagram::new_checked(datagram).ok()?.checksum() == 0 {
        return None;
    }
    (!l4_checksum_ok(pkt, parse::IPPROTO_UDP, datagram)).then_some(DropReason::UdpBadChecksum)
}

/// Frames whose flows are hashed, and their table reads prefetched, ahead of their processing
/// (see [`Pipeline::process`]).
const AHEAD: usize = 64;
// a chunk is one `prefetch_sessions` batch: the prefetch passes keep a bit per frame in a u64
const _: () = assert!(AHEAD <= conntrack::PREFETCH_BATCH);

/// Packets of its own (ICMP errors and TCP resets, together) per second a worker may
/// generate, and its burst: a flood that provokes them cannot turn fwd into an amplifier.
const GENERATED_PER_SECOND: u64 = 1000;
const GENERATED_BURST: u64 = 50;

/// One worker's pipeline state: the medium, its balancer selector, its counters.
#[derive(Debug)]
pub struct Pipeline {
    medium: Medium,
    selector: Selector,
    counters: Arc<Counters>,
    /// Tokens for the ICMP errors and TCP resets this worker sends.
    generated: rate_limit::TokenBucket,
    /// WANs whose flows end on their next outbound packet, for the batch in progress: the
    /// WANs that are down, unless the plan says `on_wan_down = keep`.
    ended: WanSet,
    /// WANs in a tier worse than their group's active one, for the batch in progress (empty
    /// with `on_wan_down = keep`): their UDP and ICMP flows may be recalled.
    outranked: WanSet,
    /// Both: the WANs whose sessions' hits need the locked lookup's checks.
    watched: WanSet,
    /// The smallest MTU of the batch's context: larger packets skip the express lane.
    smallest_mtu: u16,
    /// The flows' hashes in the connection table of the frames of the chunk in progress,
    /// where they have one (see [`Pipeline::process`]).
    hashes: [Option<FlowHash>; AHEAD],
    /// Where the look-ahead found each of those flows' session, if it did.
    slots: [SlotHint; AHEAD],
}

impl Pipeline {
    pub fn new(medium: Medium, plan: &Plan, counters: Arc<Counters>) -> Pipeline {
        Pipeline {
            medium,
            selector: Selector::new(&plan.policy),
            counters,
            generated: rate_limit::TokenBucket::new(GENERATED_PER_SECOND, GENERATED_BURST),
            ended: WanSet::EMPTY,
            outranked: WanSet::EMPTY,
            watched: WanSet::EMPTY,
            smallest_mtu: u16::MAX,
            hashes: [None; AHEAD],
            slots: [SlotHint::NONE; AHEAD],
        }
    }

    /// Rebuilds the per-plan state after a reload.
    pub fn set_plan(&mut self, plan: &Plan) {
        self.selector = Selector::new(&plan.policy);
    }

    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// Processes every frame of `batch` in place and records its verdict in `out` (cleared
    /// first). A forwarded frame's `iface` is set to its egress interface.
    ///
    /// Frames go in chunks of up to 64: [`look_ahead`](Self::look_ahead) hashes their flows and
    /// prefetches what their table lookups will read, then they are parsed and processed in
    /// order, each by the express lane ([`express`]) if it takes it, else by the general path.
    pub fn process(&mut self, ctx: &Context<'_>, frames: &mut [Frame<'_>], out: &mut Output) {
        out.clear();
        self.begin_batch(ctx);
        for chunk in frames.chunks_mut(AHEAD) {
            self.look_ahead(ctx, chunk);
            for (frame, i) in chunk.iter_mut().zip(0..AHEAD) {
                let parsed = parse_frame(self.medium, frame.data());
                let hint = self.hashes.get(i).copied().flatten();
                let slot = self.slots.get(i).copied().unwrap_or(SlotHint::NONE);
                let verdict = match self.express(ctx, frame, &parsed, hint, slot) {
                    Some(verdict) => verdict,
                    None => self.process_parsed(ctx, frame, parsed, hint),
                };
                // An output sized for another plan turns a forward to an unknown interface
                // into a drop.
                if !out.push(verdict) {
                    self.counters.count_drop(DropReason::UnknownInterface);
                }
            }
        }
    }

    /// The passes over a chunk (at most [`AHEAD`] frames) before it is processed: the first
    /// reads each frame's flow key straight from its bytes ([`flow::peek_flow_key`], which
    /// gives the key that parsing the frame will, or nothing) and hashes it; the second
    /// ([`ConnTable::prefetch_sessions`](conntrack::ConnTable::prefetch_sessions)) prefetches
    /// every flow's connection-table index entry, then reads each and prefetches the session it
    /// names, or for a frame whose entry names none (a new flow, most likely) its internal
    /// endpoint's mapping index entry; the third, for those new flows, the slot their session
    /// will take and their endpoint's mapping. A lookup in a large table misses the cache on
    /// the index and on the session; started for the whole chunk at once, those misses overlap
    /// instead of stalling one packet at a time.
    /// (The entries are prefetched in the second pass, right before they are read: prefetching
    /// them in the first pass, which then parsed each frame in full, measured slower, 64 -> 61
    /// ns a packet with 1M sessions; in a loop of their own in the second pass they made cold
    /// lookups 12% faster and the others no slower. Parsing the frames in full here and
    /// keeping the results for their processing cost ~37 instructions a packet more than this
    /// peek, which only reads the bytes a key is made of; the frames are parsed when
    /// processed.) Fills `hashes`, and `slots` with where the second pass found each flow's
    /// session, for its lookup to try before the index.
    fn look_ahead(&mut self, ctx: &Context<'_>, chunk: &[Frame<'_>]) {
        let table = &ctx.tables.conntrack;
        for (frame, hash) in chunk.iter().zip(self.hashes.iter_mut()) {
            *hash = flow::peek_flow_key(self.medium, frame.data())
                .and_then(|key| flow_hash(ctx, frame.iface, &key));
        }
        // frames whose session is (most likely) not in the table: new flows
        let hashes = self.hashes.get(..chunk.len()).unwrap_or(&self.hashes);
        let mut absent = table.prefetch_sessions(hashes, &mut self.slots, prefetch);
        while absent != 0 {
            let i = absent.trailing_zeros() as usize;
            absent &= absent - 1;
            if let Some(Some(h)) = self.hashes.get(i) {
                table.prefetch_create(*h, prefetch);
            }
        }
    }

    /// Reads what holds for a whole batch from `ctx` (which WANs' flows end). [`process`]
    /// calls it; a caller of [`process_frame`] calls it once per batch first.
    ///
    /// [`process`]: Self::process
    /// [`process_frame`]: Self::process_frame
    pub fn begin_batch(&mut self, ctx: &Context<'_>) {
        self.ended = ended_wans(ctx);
        self.outranked = outranked_wans(ctx);
        self.watched = self.ended.union(self.outranked);
        self.smallest_mtu = ctx.mtus.iter().copied().min().unwrap_or(u16::MAX);
    }

    /// Processes one frame in place (after [`begin_batch`](Self::begin_batch)).
    pub fn process_frame(&mut self, ctx: &Context<'_>, frame: &mut Frame<'_>) -> Verdict {
        let parsed = parse_frame(self.medium, frame.data());
        self.process_parsed(ctx, frame, parsed, None)
    }

    /// Processes one frame in place, given what parsing it gave and its flow's hash in the
    /// connection table if known.
    #[inline(never)]
    fn process_parsed(
        &mut self,
        ctx: &Context<'_>,
        frame: &mut Frame<'_>,
        parsed: Result<Ipv4Packet, ParseError>,
        hint: Option<FlowHash>,
    ) -> Verdict {
        let fate = self.handle(ctx, frame, parsed, hint);
        self.settle(ctx, frame, fate)
    }

    /// Turns a frame's fate into its verdict: fills in the link header of a forward, sets
    /// the frame's egress, counts.
    #[inline(always)]
    fn settle(&mut self, ctx: &Context<'_>, frame: &mut Frame<'_>, fate: Fate) -> Verdict {
        let verdict = match fate {
            Fate::Forward { egress } => self.finish_forward(ctx, frame, egress),
            Fate::Reply { egress, dropped } => {
                // The packet is dropped; the frame now carries the router's own ICMP error.
                self.counters.count_drop(dropped);
                self.counters.event(Event::IcmpErrorsSent);
                frame.iface = egress;
                return Verdict::Forward(egress);
            }
            Fate::Reset { egress, dropped } => {
                self.counters.count_drop(dropped);
                self.counters.event(Event::TcpResetsSent);
                frame.iface = egress;
                return Verdict::Forward(egress);
            }
            Fate::Kernel => Verdict::Kernel,
            Fate::Drop(reason) => Verdict::Drop(reason),
            // `handle` answers these; one reaching here is dropped
            Fate::TooBig { .. } => Verdict::Drop(DropReason::TooBig),
        };
        match verdict {
            Verdict::Forward(egress) => {
                frame.iface = egress;
                self.counters.event(Event::Forwarded);
            }
            Verdict::Kernel => self.counters.event(Event::ToKernel),
            Verdict::Drop(reason) => self.counters.count_drop(reason),
        }
        verdict
    }

    fn handle(
        &mut self,
        ctx: &Context<'_>,
        frame: &mut Frame<'_>,
        parsed: Result<Ipv4Packet, ParseError>,
        hint: Option<FlowHash>,
    ) -> Fate {
        let ingress = frame.iface;
        let Some(role) = ctx.plan.interface(ingress).map(|i| i.role) else {
            return Fate::Drop(DropReason::UnknownInterface);
        };
        let pkt = match parsed {
            Ok(pkt) => pkt,
            Err(ParseError::Ipv6) => return self.ipv6(frame),
            Err(e) => return parse_fate(e),
        };
        let fate = match role {
            Role::Lan(_) => self.lan_packet(ctx, frame, &pkt, ingress, hint),
            Role::Wan(wan) => self.wan_packet(ctx, frame, &pkt, wan, ingress, hint),
        };
        match fate {
            Fate::TooBig { mtu } => self.too_big(ctx, frame, &pkt, ingress, mtu),
            other => other,
        }
    }

    /// An IPv6 packet: parsed in full (header, extension headers, upper-layer header);
    /// neighbour discovery and link-scoped traffic (link-local or multicast destination:
    /// DHCPv6, MLD) go to the kernel, a malformed packet is dropped (`malformed_ipv6`), and
    /// the rest is counted as not forwarded (`unsupported_ipv6`): fwd forwards IPv4 only yet.
    fn ipv6(&self, frame: &Frame<'_>) -> Fate {
        let l3 = match self.medium {
            Medium::Ethernet => parse::ETHERNET_HEADER_LEN,
            Medium::Ip => 0,
        };
        match parse::parse_ipv6(frame.data(), l3) {
            Ok(pkt) if pkt.is_neighbor_discovery() || pkt.is_link_scoped() => Fate::Kernel,
            Ok(_) => Fate::Drop(DropReason::UnsupportedIpv6),
            Err(e) => parse_fate(e),
        }
    }

    /// A packet larger than its egress MTU: with DF set, the sender gets ICMP fragmentation
    /// needed with that MTU (so path MTU discovery works through fwd); without, it is
    /// dropped (fwd does not fragment). Either way it counts as `too_big`.
    fn too_big(
        &mut self,
        ctx: &Context<'_>,
        frame: &mut Frame<'_>,
        pkt: &Ipv4Packet,
        ingress: u8,
        mtu: u16,
    ) -> Fate {
        let header = frame.data().get(pkt.l3()..).unwrap_or_default();
        if !Ipv4View::new_unchecked(header).dont_fragment() {
            return Fate::Drop(DropReason::TooBig);
        }
        self.icmp_error(
            ctx,
            frame,
            pkt,
            IcmpErrorKind::FragmentationNeeded { mtu },
            ingress,
            DropReason::TooBig,
        )
    }

    /// A packet from a LAN: the box's own and LAN-to-LAN traffic goes to the kernel; the rest
    /// is a flow out through a WAN (or hairpinned back to the LAN), if its source lies in the
    /// LAN's subnets (`lan_source_invalid` otherwise: a spoofed or misconfigured sender).
    fn lan_packet(
        &mut self,
        ctx: &Context<'_>,
        frame: &mut Frame<'_>,
        pkt: &Ipv4Packet,
        ingress: u8,
        hint: Option<FlowHash>,
    ) -> Fate {
        let destination = ctx.plan.destination(pkt.dst);
        match destination {
            Destination::Router | Destination::Lan(_) => return Fate::Kernel,
            _ if pkt.dst.is_broadcast() || pkt.dst.is_multicast() => return Fate::Kernel,
            // A packet for the box's WAN address is delivered locally, whatever its TTL.
            Destination::WanAddress(_) if pkt.ttl <= 1 => return Fate::Kernel,
            _ if pkt.ttl <= 1 => return self.time_exceeded(ctx, frame, pkt, ingress),
            _ => {}
        }
        if !ctx.plan.lan_source_ok(ingress, pkt.src) {
            return Fate::Drop(DropReason::LanSourceInvalid);
        }
        if let Some(reason) = unverified_control_segment(frame.data(), pkt) {
            return Fate::Drop(reason);
        }
        self.outbound(ctx, frame, pkt, destination, ingress, hint)
    }

    /// A packet whose session was pinned to a WAN that went down (the session is gone). A
    /// TCP connection cannot change address: the client gets a reset, unless this is a SYN
    /// (a retransmitted opening, or a new connection reusing the tuple of a closed one: it
    /// simply starts over on a live WAN). UDP and ICMP flows start over on a live WAN
    /// (`migrate`) or are told the host is unreachable (`reset`).
    fn wan_down(
        &mut self,
        ctx: &Context<'_>,
        frame: &mut Frame<'_>,
        pkt: &Ipv4Packet,
        destination: Destination,
        ingress: u8,
        tcp: Option<TcpState>,
    ) -> Fate {
        let syn_only = matches!(
            pkt.transport,
            crate::packet::Transport::Tcp { flags, .. } if flags & (TCP_SYN | TCP_ACK) == TCP_SYN
        );
        // A bare SYN opens a connection (or retransmits the opening of one that never got
        // an answer): there is nothing to reset, it simply goes out by a live WAN.
        let start_over = match tcp {
            Some(_) => syn_only,
            None => ctx.plan.on_wan_down == OnWanDown::Migrate,
        };
        if start_over {
            self.counters.event(Event::FlowsMigrated);
            return self.new_flow(ctx, frame, pkt, destination, ingress);
        }
        if tcp.is_none() {
            return self.host_unreachable(ctx, frame, pkt, ingress, DropReason::WanDown);
        }
        self.tcp_reset(ctx, frame, pkt, ingress, DropReason::WanDown)
    }

    /// Answers a TCP segment with a reset from its destination (built in its frame, back out
    /// of `ingress`); a segment that must not be answered (a reset, a fragment), or one past
    /// the rate limit (`tcp_resets_suppressed`), is dropped. Either way the segment counts as
    /// dropped for `dropped`.
    fn tcp_reset(
        &mut self,
        ctx: &Context<'_>,
        frame: &mut Frame<'_>,
        pkt: &Ipv4Packet,
        ingress: u8,
        dropped: DropReason,
    ) -> Fate {
        // a segment that gets no reset anyway takes no token
        if !crate::packet::tcp_reset::may_reset(pkt) {
            return Fate::Drop(dropped);
        }
        if !self.generated.take(ctx.now) {
            self.counters.event(Event::TcpResetsSuppressed);
            return Fate::Drop(dropped);
        }
        match build_tcp_reset(frame.data_mut(), self.medium, pkt) {
            Some(len) => {
                frame.set_len(len);
                Fate::Reset {
                    egress: ingress,
                    dropped,
                }
            }
            None => Fate::Drop(dropped),
        }
    }

    /// A packet from WAN `wan`: replies of sessions go to the LAN; a packet addressed into a
    /// LAN's subnets is dropped (`inbound_to_lan`); everything else is the box's own traffic
    /// (the kernel decides) or, on a NAT port, an unsolicited packet (dropped).
    fn wan_packet(
        &mut self,
        ctx: &Context<'_>,
        frame: &mut Frame<'_>,
        pkt: &Ipv4Packet,
        wan: usize,
        ingress: u8,
        hint: Option<FlowHash>,
    ) -> Fate {
        match ctx.plan.wans.get(wan) {
            Some(w) if w.address == pkt.dst => {}
            _ => {
                if let Destination::Lan(l) = ctx.plan.destination(pkt.dst) {
                    if ctx.plan.lans.get(l).map(|l| l.inbound) == Some(Inbound::Drop) {
                        return Fate::Drop(DropReason::InboundToLan);
                    }
                }
                return Fate::Kernel;
            }
        }
        if let Some(reason) = unverified_control_segment(frame.data(), pkt) {
            // only for fwd's ports (NAT and forwarded): the box's own connections are the
            // kernel's to check
            let key = flow::flow_key(pkt);
            let ours = key.is_some_and(|k| {
                ctx.plan
                    .wans
                    .get(wan)
                    .is_some_and(|w| w.nat_ports.contains(&k.dst.port))
                    || ctx.plan.forwards.find(wan, k.proto, k.dst.port).is_some()
            });
            if ours {
                return Fate::Drop(reason);
            }
        }
        self.inbound(ctx, frame, pkt, wan, ingress, hint)
    }

    /// A packet from WAN `wan` to its address that no session takes: a port forward's (see
    /// [`forwarded`](Self::forwarded)), else dropped on a NAT port (`no_session_inbound`),
    /// else the box's own traffic, for the kernel.
    fn no_session(
        &mut self,
        ctx: &Context<'_>,
        frame: &mut Frame<'_>,
        pkt: &Ipv4Packet,
        wan: usize,
        ingress: u8,
    ) -> Fate {
        if let Some(fate) = self.forwarded(ctx, frame, pkt, wan, ingress) {
            return fate;
        }
        let nat_port = flow::flow_key(pkt)
            .filter(|k| k.proto != conntrack::Proto::Icmp)
            .map(|k| k.dst.port);
        match (nat_port, ctx.plan.wans.get(wan)) {
            (Some(port), Some(w)) if w.nat_ports.contains(&port) => {
                Fate::Drop(DropReason::NoSessionInbound)
            }
            _ => Fate::Kernel,
        }
    }

    /// A packet from WAN `wan` to its address that no NAT session took: if a port forward
    /// takes its port, the forward's session carries it to the server, found or (for a bare
    /// SYN or a UDP datagram) opened; `None` when no forward takes it. The server's answers
    /// then hit that session from the LAN, and leave by `wan` whatever the balancer picks.
    fn forwarded(
        &mut self,
        ctx: &Context<'_>,
        frame: &mut Frame<'_>,
        pkt: &Ipv4Packet,
        wan: usize,
        ingress: u8,
    ) -> Option<Fate> {
        if ctx.plan.forwards.is_empty() {
            return None;
        }
        let key = flow::flow_key(pkt)?;
        let fw = ctx.plan.forwards.find(wan, key.proto, key.dst.port)?;
        if pkt.ttl <= 1 {
            return Some(self.time_exceeded(ctx, frame, pkt, ingress));
        }
        let wan_u8 = u8::try_from(wan).ok()?;
        let table = &ctx.tables.conntrack;
        let info = flow::packet_info(pkt, frame.data());
        let rw = match table.lookup_forwarded(wan_u8, &key, fw.target, info, ctx.now) {
            Lookup::Hit(rw) => rw,
            Lookup::OutOfWindow => return Some(Fate::Drop(DropReason::TcpOutOfWindow)),
            Lookup::Miss | Lookup::Ended { .. } | Lookup::Recalled { .. } => {
                if !flow::may_open_session(pkt) {
                    return Some(Fate::Drop(DropReason::NoSessionInbound));
                }
                if let Some(reason) = bad_new_datagram(frame.data(), pkt) {
                    return Some(Fate::Drop(reason));
                }
                let Some(lan) = ctx.plan.lans.get(fw.lan) else {
                    return Some(Fate::Drop(DropReason::UnknownInterface));
                };
                let new = NewForwarded {
                    key: conntrack::FlowKey::new(key.proto, fw.target, key.src),
                    wan: wan_u8,
                    ext_port: key.dst.port,
                    lan_iface: lan.iface,
                    forward: fw.forward,
                };
                match table.create_forwarded(new, info, ctx.now) {
                    Ok(rw) => {
                        ctx.plan.forwards.count_hit(fw.forward);
                        self.counters.event(Event::SessionsCreated);
                        rw
                    }
                    Err(e) => return Some(Fate::Drop(slow_path::create_drop(e))),
                }
            }
        };
        self.counters.wan_rx(wan, pkt.total_len());
        Some(fast_path::apply(ctx, &self.counters, frame, pkt, rw))
    }

    /// The TTL ran out here: the packet is dropped and a time exceeded goes back.
    fn time_exceeded(
        &mut self,
        ctx: &Context<'_>,
        frame: &mut Frame<'_>,
        pkt: &Ipv4Packet,
        ingress: u8,
    ) -> Fate {
        self.icmp_error(
            ctx,
            frame,
            pkt,
            IcmpErrorKind::TimeExceeded,
            ingress,
            DropReason::TtlExpired,
        )
    }

    /// [`icmp_error`](Self::icmp_error) of kind host unreachable.
    fn host_unreachable(
        &mut self,
        ctx: &Context<'_>,
        frame: &mut Frame<'_>,
        pkt: &Ipv4Packet,
        ingress: u8,
        dropped: DropReason,
    ) -> Fate {
        self.icmp_error(
            ctx,
            frame,
            pkt,
            IcmpErrorKind::HostUnreachable,
            ingress,
            dropped,
        )
    }

    /// Turns the frame into an ICMP error back to the sender, from the router's address on
    /// the interface the packet came in on, if RFC 1812 and the rate limit allow.
    fn icmp_error(
        &mut self,
        ctx: &Context<'_>,
        frame: &mut Frame<'_>,
        pkt: &Ipv4Packet,
        kind: IcmpErrorKind,
        ingress: u8,
        dropped: DropReason,
    ) -> Fate {
        let Some(from) = ctx.plan.interface(ingress).map(|i| i.address) else {
            return Fate::Drop(dropped);
        };
        if !crate::packet::icmp_error::may_answer(pkt) || !self.generated.take(ctx.now) {
            self.counters.event(Event::IcmpErrorsSuppressed);
            return Fate::Drop(dropped);
        }
        let (buf, at, _) = frame.room_mut();
        match build_icmp_error(buf, at, self.medium, pkt, kind, from) {
            Some((start, len)) if frame.set_span(start, len) => Fate::Reply {
                egress: ingress,
                dropped,
            },
            _ => {
                self.counters.event(Event::IcmpErrorsSuppressed);
                Fate::Drop(dropped)
            }
        }
    }

    /// Fills in the Ethernet header of a forwarded frame: our MAC on the egress interface and
    /// the next hop's (the WAN gateway, or the LAN destination). Without them the frame,
    /// already translated, goes to the kernel (`no_neighbor`): it resolves the next hop,
    /// queues the packet meanwhile and sends it.
    fn finish_forward(&self, ctx: &Context<'_>, frame: &mut Frame<'_>, egress: u8) -> Verdict {
        if self.medium != Medium::Ethernet {
            return Verdict::Forward(egress);
        }
        let Ok(mut eth) = EthernetFrame::new_checked(frame.data_mut()) else {
            return Verdict::Drop(DropReason::MalformedL2);
        };
        // the packet was parsed: its header is there
        let dst = Ipv4View::new_unchecked(eth.payload()).dst();
        let macs = ctx
            .plan
            .next_hop(egress, dst, ctx.neighbors)
            .and_then(|hop| {
                Some((
                    ctx.neighbors.resolve(egress, hop)?,
                    ctx.neighbors.interface_mac(egress)?,
                ))
            });
        match macs {
            Some((next_hop, own)) => {
                eth.set_dst_mac(next_hop);
                eth.set_src_mac(own);
                Verdict::Forward(egress)
            }
            None => {
                self.counters.event(Event::NoNeighbor);
                Verdict::Kernel
            }
        }
    }
}

/// The WANs whose flows end on their next outbound packet: those that are down (or disabled),
/// unless the plan keeps flows where they are.
fn ended_wans(ctx: &Context<'_>) -> WanSet {
    if ctx.plan.on_wan_down == OnWanDown::Keep {
        return WanSet::EMPTY;
    }
    ctx.health
        .iter()
        .take(ctx.plan.wans.len())
        .enumerate()
        .filter(|(_, &state)| state == LinkState::Down)
        .fold(WanSet::EMPTY, |set, (wan, _)| set.with(wan))
}

/// The WANs whose UDP and ICMP flows may be recalled to a better tier: members of a group in a
/// tier worse than its active one; none when flows stay where they are (`keep`).
fn outranked_wans(ctx: &Context<'_>) -> WanSet {
    if ctx.plan.on_wan_down == OnWanDown::Keep {
        return WanSet::EMPTY;
    }
    ctx.plan
        .policy
        .outranked_wans(ctx.health)
        .iter()
        .fold(WanSet::EMPTY, |set, wan| set.with(usize::from(wan.0)))
}

/// Parses a frame of `medium`.
#[inline]
fn parse_frame(medium: Medium, data: &[u8]) -> Result<Ipv4Packet, ParseError> {
    parse::l3_offset(medium, data).and_then(|l3| parse::parse_ipv4(data, l3))
}

/// The connection-table hash under which the fast path will look up `pkt`, arrived on `iface`
/// (for prefetching; `None` for packets without a flow key, and for packets from a WAN whose
/// port no internal endpoint owns).
#[inline]
fn flow_hash(ctx: &Context<'_>, iface: u8, key: &conntrack::FlowKey) -> Option<FlowHash> {
    let table = &ctx.tables.conntrack;
    match ctx.plan.interface(iface)?.role {
        Role::Lan(_) => Some(table.outbound_hash(key)),
        Role::Wan(w) => table.inbound_hash(u8::try_from(w).ok()?, key),
    }
}

fn parse_fate(error: ParseError) -> Fate {
    Fate::Drop(match error {
        ParseError::Arp => return Fate::Kernel,
        ParseError::TruncatedL2 => DropReason::MalformedL2,
        ParseError::Ipv6 => DropReason::UnsupportedIpv6,
        ParseError::OtherEtherType => DropReason::UnsupportedEtherType,
        ParseError::BadIpv4Header => DropReason::MalformedIpv4,
        ParseError::BadIpv4Checksum => DropReason::BadIpChecksum,
        ParseError::BadTransport => DropReason::MalformedTransport,
        ParseError::BadIcmpError => DropReason::MalformedIcmpError,
        ParseError::BadIpv6 => DropReason::MalformedIpv6,
    })
}

#[cfg(test)]
mod tests;
