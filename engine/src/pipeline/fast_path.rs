//! The fast path: packets of flows the connection table knows. One lookup (which refreshes
//! the session and advances its TCP state), then the session's rewrite applied in place.

use balancer::{RuleId, WanId};
use conntrack::{FlowHash, Liveness, Lookup, PacketInfo, Rewrite, Segment, TcpState, WanSet};

use super::flow::{error_flow_key, flow_key, fragment_key, packet_info};
use super::{Context, Counters, DropReason, Outcome};
use crate::device::Frame;
use crate::packet::rewrite::{rewrite_flow, rewrite_fragment, rewrite_icmp_error};
use crate::packet::{Embedded, Fragment, Ipv4Packet, Transport};
use crate::plan::Role;

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

/// What the fast path made of a packet from a LAN.
pub(super) enum Outbound {
    Done(Outcome),
    /// No session: the slow path decides.
    Miss,
    /// Its session was pinned to a WAN of the `ended` set and is gone; `tcp` is its TCP state
    /// (`None` for UDP and ICMP).
    WanDown {
        tcp: Option<TcpState>,
    },
    /// Its UDP or ICMP session was on a WAN its rule no longer prefers and is gone: the flow
    /// starts over.
    Recalled,
}

/// A packet from a LAN. Sessions on a WAN of `ended` (down, and flows do not stay) end here,
/// and so do UDP and ICMP sessions on a WAN of `outranked` whose rule now prefers a better
/// tier. `hint`: the flow's table hash, if the batch's prefetch pass computed it.
#[inline]
pub(super) fn outbound(
    ctx: &Context<'_>,
    counters: &Counters,
    frame: &mut Frame<'_>,
    pkt: &Ipv4Packet,
    (ended, outranked): (WanSet, WanSet),
    hint: Option<FlowHash>,
) -> Outbound {
    let table = &ctx.tables.conntrack;
    Outbound::Done(match pkt.transport {
        Transport::None => match ctx.tables.fragments.lookup(&fragment_key(pkt), ctx.now) {
            Some(rw) => {
                rewrite_fragment(frame.data_mut(), pkt, rw.src.ip, rw.dst.ip);
                account_tx(ctx, counters, rw.egress, pkt.total_len());
                Outcome::Forward { egress: rw.egress }
            }
            None => Outcome::Drop(DropReason::FragmentWithoutFirst),
        },
        Transport::IcmpError => outbound_error(ctx, counters, frame, pkt),
        Transport::IcmpOther => Outcome::Drop(DropReason::UnsupportedIcmp),
        Transport::OtherProtocol => Outcome::Drop(DropReason::UnsupportedProtocol),
        Transport::Tcp { .. } | Transport::Udp { .. } | Transport::IcmpEcho { .. } => {
            let Some(key) = flow_key(pkt) else {
                return Outbound::Miss;
            };
            let recall = |wan: u8, rule: u16| {
                ctx.plan
                    .policy
                    .outranks(RuleId(rule), WanId(wan), ctx.health)
            };
            let live = Liveness {
                ended,
                outranked,
                recall: &recall,
            };
            let info = packet_info(pkt, frame.data());
            match table.lookup_outbound_hinted(&key, hint, info, ctx.now, &live) {
                Lookup::Hit(rw) => apply(ctx, counters, frame, pkt, rw),
                Lookup::OutOfWindow => Outcome::Drop(DropReason::TcpOutOfWindow),
                Lookup::Miss => return Outbound::Miss,
                Lookup::Ended { tcp, .. } => return Outbound::WanDown { tcp },
                Lookup::Recalled { .. } => return Outbound::Recalled,
            }
        }
    })
}

/// What the fast path made of a packet from a WAN.
pub(super) enum Inbound {
    Forward(Outcome),
    /// It belongs to a session but its TTL ran out here.
    TtlExpired,
    /// No session: the box's own traffic, or unsolicited.
    NoSession,
}

/// A packet from WAN `wan` addressed to that WAN's address.
#[inline]
pub(super) fn inbound(
    ctx: &Context<'_>,
    counters: &Counters,
    frame: &mut Frame<'_>,
    pkt: &Ipv4Packet,
    wan: usize,
    hint: Option<FlowHash>,
) -> Inbound {
    let table = &ctx.tables.conntrack;
    let wan_u8 = u8::try_from(wan).unwrap_or(u8::MAX);
    let expired = pkt.ttl <= 1;
    match pkt.transport {
        Transport::None => match ctx.tables.fragments.lookup(&fragment_key(pkt), ctx.now) {
            Some(_) if expired => Inbound::TtlExpired,
            Some(rw) => {
                rewrite_fragment(frame.data_mut(), pkt, rw.src.ip, rw.dst.ip);
                counters.wan_rx(wan, pkt.total_len());
                Inbound::Forward(Outcome::Forward { egress: rw.egress })
            }
            None => Inbound::NoSession,
        },
        Transport::IcmpError => inbound_error(ctx, counters, frame, pkt, wan),
        Transport::Tcp { .. } | Transport::Udp { .. } | Transport::IcmpEcho { .. } => {
            let Some(key) = flow_key(pkt) else {
                return Inbound::NoSession;
            };
            let info = packet_info(pkt, frame.data());
            match table.lookup_inbound_hinted(wan_u8, &key, hint, info, ctx.now) {
                Lookup::OutOfWindow => Inbound::Forward(Outcome::Drop(DropReason::TcpOutOfWindow)),
                Lookup::Hit(_) if expired => Inbound::TtlExpired,
                Lookup::Hit(rw) => {
                    counters.wan_rx(wan, pkt.total_len());
                    Inbound::Forward(apply(ctx, counters, frame, pkt, rw))
                }
                Lookup::Miss | Lookup::Ended { .. } | Lookup::Recalled { .. } => Inbound::NoSession,
            }
        }
        Transport::IcmpOther | Transport::OtherProtocol => Inbound::NoSession,
    }
}

/// An ICMP error from a LAN host about a flow: the quoted packet is a reply it received.
fn outbound_error(
    ctx: &Context<'_>,
    counters: &Counters,
    frame: &mut Frame<'_>,
    pkt: &Ipv4Packet,
) -> Outcome {
    let Some((emb, key)) = quoted_flow(frame, pkt) else {
        return Outcome::Drop(DropReason::MalformedIcmpError);
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
            Outcome::Forward { egress: rw.egress }
        }
        Lookup::Miss | Lookup::Ended { .. } | Lookup::Recalled { .. } | Lookup::OutOfWindow => {
            Outcome::Drop(DropReason::IcmpErrorNoSession)
        }
    }
}

/// An ICMP error from the Internet about a flow: the quoted packet is one fwd sent out.
fn inbound_error(
    ctx: &Context<'_>,
    counters: &Counters,
    frame: &mut Frame<'_>,
    pkt: &Ipv4Packet,
    wan: usize,
) -> Inbound {
    let Some((emb, key)) = quoted_flow(frame, pkt) else {
        return Inbound::NoSession;
    };
    let wan_u8 = u8::try_from(wan).unwrap_or(u8::MAX);
    match ctx
        .tables
        .conntrack
        .lookup_inbound(wan_u8, &key, ERROR_INFO, ctx.now)
    {
        Lookup::Hit(_) if pkt.ttl <= 1 => Inbound::TtlExpired,
        Lookup::Hit(rw) => {
            rewrite_icmp_error(
                frame.data_mut(),
                pkt,
                &emb,
                (pkt.src, rw.dst.ip),
                rw.dst,
                rw.src,
            );
            counters.wan_rx(wan, pkt.total_len());
            Inbound::Forward(Outcome::Forward { egress: rw.egress })
        }
        Lookup::Miss | Lookup::Ended { .. } | Lookup::Recalled { .. } | Lookup::OutOfWindow => {
            Inbound::NoSession
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
) -> Outcome {
    if let Some(&mtu) = ctx.mtus.get(usize::from(rw.egress)) {
        if pkt.total_len() > usize::from(mtu) {
            return Outcome::TooBig { mtu };
        }
    }
    rewrite_flow(frame.data_mut(), pkt, rw.src, rw.dst);
    if pkt.fragment == Fragment::First
        && !ctx.tables.fragments.insert(fragment_key(pkt), rw, ctx.now)
    {
        return Outcome::Drop(DropReason::FragmentTableFull);
    }
    account_tx(ctx, counters, rw.egress, pkt.total_len());
    Outcome::Forward { egress: rw.egress }
}

/// Counts traffic leaving by a WAN.
#[inline]
fn account_tx(ctx: &Context<'_>, counters: &Counters, egress: u8, len: usize) {
    if let Some(Role::Wan(w)) = ctx.plan.interface(egress).map(|i| i.role) {
        counters.wan_tx(w, len);
    }
}
