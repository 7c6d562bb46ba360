//! The fast path: packets of flows the connection table knows. One lookup (which refreshes
//! the session and advances its TCP state), then the session's rewrite applied in place.
//! Where the lookup answers otherwise (no session, or a session it ended), the packet goes
//! on from here to the slow path, the WAN-down handling or the no-session cases, so that
//! every stage returns the packet's [`Fate`].

use balancer::{RuleId, WanId};
use conntrack::{FlowHash, Liveness, Lookup, PacketInfo, Rewrite, Segment};

use super::flow::{error_flow_key, flow_key, fragment_key, packet_info};
use super::{Context, Counters, DropReason, Event, Fate, Pipeline};
use crate::device::Frame;
use crate::packet::rewrite::{rewrite_flow, rewrite_fragment, rewrite_icmp_error};
use crate::packet::{Embedded, Fragment, Ipv4Packet, Transport};
use crate::plan::{Destination, Role};

const ERROR_INFO: PacketInfo = PacketInfo {
    tcp_flags: 0,
    len: 0,
    icmp_error: true,
    seg: Segment {
        seq: 0,
        ack: 0,
        window: 0,
        payload: 0,
        wscale: None,
        truncated: false,
    },
};

impl Pipeline {
    /// A packet from a LAN to beyond the box, of LAN interface `ingress`, going to
    /// `destination`. Sessions on a WAN of `ended` (down, and flows do not stay) end here,
    /// and so do UDP and ICMP sessions on a WAN of `outranked` whose rule now prefers a
    /// better tier; the packet then starts over ([`Pipeline::new_flow`]) or meets
    /// [`Pipeline::wan_down`]. A packet without a session goes to the slow path. `hint`: the
    /// flow's table hash, if the batch's look-ahead computed it.
    #[inline]
    pub(super) fn outbound(
        &mut self,
        ctx: &Context<'_>,
        frame: &mut Frame<'_>,
        pkt: &Ipv4Packet,
        destination: Destination,
        ingress: u8,
        hint: Option<FlowHash>,
    ) -> Fate {
        let table = &ctx.tables.conntrack;
        let counters = &*self.counters;
        match pkt.transport {
            Transport::None => match ctx.tables.fragments.lookup(&fragment_key(pkt), ctx.now) {
                Some(rw) => {
                    rewrite_fragment(frame.data_mut(), pkt, rw.src.ip, rw.dst.ip);
                    account_tx(ctx, counters, rw.egress, pkt.total_len());
                    Fate::Forward { egress: rw.egress }
                }
                None => Fate::Drop(DropReason::FragmentWithoutFirst),
            },
            Transport::IcmpError => outbound_error(ctx, counters, frame, pkt),
            Transport::IcmpOther => Fate::Drop(DropReason::UnsupportedIcmp),
            Transport::OtherProtocol => Fate::Drop(DropReason::UnsupportedProtocol),
            Transport::Tcp { .. } | Transport::Udp { .. } | Transport::IcmpEcho { .. } => {
                let Some(key) = flow_key(pkt) else {
                    return self.new_flow(ctx, frame, pkt, destination, ingress);
                };
                let recall = |wan: u8, rule: u16| {
                    ctx.plan
                        .policy
                        .outranks(RuleId(rule), WanId(wan), ctx.health)
                };
                let live = Liveness {
                    ended: self.ended,
                    outranked: self.outranked,
                    recall: &recall,
                };
                let info = packet_info(pkt, frame.data());
                match table.lookup_outbound_hinted(&key, hint, info, ctx.now, &live) {
                    Lookup::Hit(rw) => apply(ctx, counters, frame, pkt, rw),
                    Lookup::OutOfWindow => Fate::Drop(DropReason::TcpOutOfWindow),
                    Lookup::Miss => self.new_flow(ctx, frame, pkt, destination, ingress),
                    Lookup::Ended { tcp, .. } => {
                        self.wan_down(ctx, frame, pkt, destination, ingress, tcp)
                    }
                    Lookup::Recalled { .. } => {
                        self.counters.event(Event::FlowsRecalled);
                        self.new_flow(ctx, frame, pkt, destination, ingress)
                    }
                }
            }
        }
    }

    /// A packet from WAN `wan` (interface `ingress`) addressed to that WAN's address: the
    /// reply of a session, or else [`Pipeline::no_session`]'s.
    #[inline]
    pub(super) fn inbound(
        &mut self,
        ctx: &Context<'_>,
        frame: &mut Frame<'_>,
        pkt: &Ipv4Packet,
        wan: usize,
        ingress: u8,
        hint: Option<FlowHash>,
    ) -> Fate {
        let table = &ctx.tables.conntrack;
        let counters = &*self.counters;
        let wan_u8 = u8::try_from(wan).unwrap_or(u8::MAX);
        let expired = pkt.ttl <= 1;
        match pkt.transport {
            Transport::None => match ctx.tables.fragments.lookup(&fragment_key(pkt), ctx.now) {
                Some(_) if expired => self.time_exceeded(ctx, frame, pkt, ingress),
                Some(rw) => {
                    rewrite_fragment(frame.data_mut(), pkt, rw.src.ip, rw.dst.ip);
                    counters.wan_rx(wan, pkt.total_len());
                    Fate::Forward { egress: rw.egress }
                }
                None => self.no_session(ctx, frame, pkt, wan, ingress),
            },
            Transport::IcmpError => self.inbound_error(ctx, frame, pkt, wan, ingress),
            Transport::Tcp { .. } | Transport::Udp { .. } | Transport::IcmpEcho { .. } => {
                let Some(key) = flow_key(pkt) else {
                    return self.no_session(ctx, frame, pkt, wan, ingress);
                };
                let info = packet_info(pkt, frame.data());
                match table.lookup_inbound_hinted(wan_u8, &key, hint, info, ctx.now) {
                    Lookup::OutOfWindow => Fate::Drop(DropReason::TcpOutOfWindow),
                    Lookup::Hit(_) if expired => self.time_exceeded(ctx, frame, pkt, ingress),
                    Lookup::Hit(rw) => {
                        counters.wan_rx(wan, pkt.total_len());
                        apply(ctx, counters, frame, pkt, rw)
                    }
                    Lookup::Miss | Lookup::Ended { .. } | Lookup::Recalled { .. } => {
                        self.no_session(ctx, frame, pkt, wan, ingress)
                    }
                }
            }
            Transport::IcmpOther | Transport::OtherProtocol => {
                self.no_session(ctx, frame, pkt, wan, ingress)
            }
        }
    }

    /// An ICMP error from the Internet about a flow: the quoted packet is one fwd sent out.
    fn inbound_error(
        &mut self,
        ctx: &Context<'_>,
        frame: &mut Frame<'_>,
        pkt: &Ipv4Packet,
        wan: usize,
        ingress: u8,
    ) -> Fate {
        let Some((emb, key)) = quoted_flow(frame, pkt) else {
            return self.no_session(ctx, frame, pkt, wan, ingress);
        };
        let wan_u8 = u8::try_from(wan).unwrap_or(u8::MAX);
        match ctx
            .tables
            .conntrack
            .lookup_inbound(wan_u8, &key, ERROR_INFO, ctx.now)
        {
            Lookup::Hit(_) if pkt.ttl <= 1 => self.time_exceeded(ctx, frame, pkt, ingress),
            Lookup::Hit(rw) => {
                rewrite_icmp_error(
                    frame.data_mut(),
                    pkt,
                    &emb,
                    (pkt.src, rw.dst.ip),
                    rw.dst,
                    rw.src,
                );
                self.counters.wan_rx(wan, pkt.total_len());
                Fate::Forward { egress: rw.egress }
            }
            Lookup::Miss | Lookup::Ended { .. } | Lookup::Recalled { .. } | Lookup::OutOfWindow => {
                self.no_session(ctx, frame, pkt, wan, ingress)
            }
        }
    }
}

/// An ICMP error from a LAN host about a flow: the quoted packet is a reply it received.
fn outbound_error(
    ctx: &Context<'_>,
    counters: &Counters,
    frame: &mut Frame<'_>,
    pkt: &Ipv4Packet,
) -> Fate {
    let Some((emb, key)) = quoted_flow(frame, pkt) else {
        return Fate::Drop(DropReason::MalformedIcmpError);
    };
    match ctx
        .tables
        .conntrack
        .lookup_outbound(&key, ERROR_INFO, ctx.now)
    {
        Lookup::Hit(rw) => {
            rewrite_icmp_error(
                frame.data_mut(),
                pkt,
                &emb,
                (rw.src.ip, pkt.dst),
                rw.dst,
                rw.src,
            );
            account_tx(ctx, counters, rw.egress, pkt.total_len());
            Fate::Forward { egress: rw.egress }
        }
        Lookup::Miss | Lookup::Ended { .. } | Lookup::Recalled { .. } | Lookup::OutOfWindow => {
            Fate::Drop(DropReason::IcmpErrorNoSession)
        }
    }
}

/// The quoted packet of an ICMP error and the key of the flow it belongs to.
fn quoted_flow(frame: &Frame<'_>, pkt: &Ipv4Packet) -> Option<(Embedded, conntrack::FlowKey)> {
    let emb = pkt.embedded(frame.data())?;
    Some((emb, error_flow_key(&emb)?))
}

/// Applies a session's rewrite to a whole packet or first fragment (remembering the
/// translation for the fragments that follow); a packet larger than the egress MTU is left
/// as it is and said to be too big.
#[inline(always)]
pub(super) fn apply(
    ctx: &Context<'_>,
    counters: &Counters,
    frame: &mut Frame<'_>,
    pkt: &Ipv4Packet,
    rw: Rewrite,
) -> Fate {
    if let Some(&mtu) = ctx.mtus.get(usize::from(rw.egress)) {
        if pkt.total_len() > usize::from(mtu) {
            return Fate::TooBig { mtu };
        }
    }
    rewrite_flow(frame.data_mut(), pkt, rw.src, rw.dst);
    if pkt.fragment == Fragment::First
        && !ctx.tables.fragments.insert(fragment_key(pkt), rw, ctx.now)
    {
        return Fate::Drop(DropReason::FragmentTableFull);
    }
    account_tx(ctx, counters, rw.egress, pkt.total_len());
    Fate::Forward { egress: rw.egress }
}

/// Counts traffic leaving by a WAN.
#[inline]
fn account_tx(ctx: &Context<'_>, counters: &Counters, egress: u8, len: usize) {
    if let Some(Role::Wan(w)) = ctx.plan.interface(egress).map(|i| i.role) {
        counters.wan_tx(w, len);
    }
}
