//! The slow path: the first packet of a flow. Hairpin check (to the LAN endpoint owning the
//! addressed external port, or a port forward's target, answered from the forward's port),
//! policy rules, WAN choice, session creation (where the connection table keeps an endpoint
//! on an eligible WAN it is already mapped on, under the same shard lock), then the fast
//! path's rewrite. Also a packet without a session that may not open one: it goes where the
//! rules send its flow, or gets a reset. Allocates nothing: the connection table is
//! preallocated.

use balancer::{Decision, FlowInfo};
use conntrack::{CreateError, Hairpin, NewForwarded, NewSession};

use super::fast_path::apply;
use super::flow::{flow_key, may_open_session, packet_info};
use super::{Context, DropReason, Event, Fate, Pipeline};
use crate::device::Frame;
use crate::packet::{Ipv4Packet, Transport};
use crate::plan::{Destination, HAIRPIN_RULE};

impl Pipeline {
    /// A LAN packet that matched no session; `destination` is where its destination lies
    /// (already classified by the caller).
    pub(super) fn new_flow(
        &mut self,
        ctx: &Context<'_>,
        frame: &mut Frame<'_>,
        pkt: &Ipv4Packet,
        destination: Destination,
        ingress: u8,
    ) -> Fate {
        let Some(key) = flow_key(pkt) else {
            return Fate::Drop(DropReason::NoSessionOutbound);
        };
        if let Some(reason) = super::bad_new_datagram(frame.data(), pkt) {
            return Fate::Drop(reason);
        }
        // Hairpin first: the answering host's packets (a SYN-ACK, say) start its own hairpin
        // session, so any packet to a LAN endpoint's external port may open one.
        if let Destination::WanAddress(wan) = destination {
            return self.hairpin(ctx, frame, pkt, key, wan, ingress);
        }
        let flow = FlowInfo {
            src: pkt.src,
            dst: pkt.dst,
            proto: pkt.proto,
            src_port: key.src.port,
            dst_port: key.dst.port,
            ingress,
        };
        if !may_open_session(pkt) {
            return self.stray(ctx, frame, pkt, &flow, ingress);
        }
        match self.selector.decide(
            &ctx.plan.policy,
            ctx.health,
            &ctx.tables.sticky,
            &flow,
            ctx.now,
        ) {
            Decision::Wan {
                wan,
                eligible,
                rule,
            } => {
                ctx.plan.count_rule_hit(rule.0);
                // Endpoint-independent mapping across WANs: `create` keeps an internal endpoint
                // that already has a mapping on an eligible WAN there, so peers see one
                // address; the rewrite's egress is the chosen WAN's interface. A WAN with no
                // free port, or where the LAN host holds as many ports as a host may, passes
                // the flow on to the next eligible one.
                let mut new = NewSession {
                    key,
                    wan: wan.0,
                    eligible: eligible.0,
                    lan_iface: ingress,
                    hairpin: None,
                    rule: rule.0,
                };
                let mut others = eligible.0 & !1u64.checked_shl(u32::from(wan.0)).unwrap_or(0);
                loop {
                    match ctx
                        .tables
                        .conntrack
                        .create(new, packet_info(pkt, frame.data()), ctx.now)
                    {
                        Err(CreateError::PortsExhausted | CreateError::HostPortLimit)
                            if others != 0 =>
                        {
                            // below 64: a bit of a u64
                            new.wan = others.trailing_zeros() as u8;
                            others &= others - 1;
                        }
                        created => return self.created(ctx, frame, pkt, created),
                    }
                }
            }
            Decision::MainTable { rule } => {
                if let Some(rule) = rule {
                    ctx.plan.count_rule_hit(rule.0);
                }
                Fate::Kernel
            }
            Decision::Blackhole { rule, .. } => {
                ctx.plan.count_rule_hit(rule.0);
                Fate::Drop(DropReason::Blackhole)
            }
            Decision::Unreachable { rule, .. } => {
                ctx.plan.count_rule_hit(rule.0);
                self.host_unreachable(ctx, frame, pkt, ingress, DropReason::Unreachable)
            }
        }
    }

    /// A LAN packet that matched no session and may not open one (TCP other than a bare SYN,
    /// an ICMP echo reply). It goes where the rules send its flow, as its first packet did:
    /// a flow the main table routes (by a rule, by no rule matching, or as a group's last
    /// resort) is the kernel's in all its packets, not only in its first; a blackholed one
    /// is dropped silently, and an unreachable one answered as unreachable. A flow that would
    /// leave by a WAN has lost its session there (ended, expired, or opened before fwd
    /// started): a TCP segment gets a reset, as a host answers a segment of no connection
    /// (RFC 9293 3.10.7.1), so the client learns at once that its connection is gone. This
    /// also completes a dead WAN's reset: when the reset reaches the client after data that
    /// was already on its way, the client's next expected sequence number has moved past the
    /// reset's, and it answers with a challenge ACK (RFC 5961) instead of closing; that ACK
    /// lands here and gets a reset at exactly its own number. Other packets are dropped.
    /// Decides without advancing the round robin or sticky bindings.
    fn stray(
        &mut self,
        ctx: &Context<'_>,
        frame: &mut Frame<'_>,
        pkt: &Ipv4Packet,
        flow: &FlowInfo,
        ingress: u8,
    ) -> Fate {
        match ctx.plan.policy.decision_without_pick(ctx.health, flow) {
            Some(Decision::MainTable { .. }) => Fate::Kernel,
            Some(Decision::Blackhole { .. }) => Fate::Drop(DropReason::Blackhole),
            Some(Decision::Unreachable { .. }) => {
                self.host_unreachable(ctx, frame, pkt, ingress, DropReason::Unreachable)
            }
            Some(Decision::Wan { .. }) | None => match pkt.transport {
                Transport::Tcp { .. } => {
                    self.tcp_reset(ctx, frame, pkt, ingress, DropReason::TcpNotSyn)
                }
                _ => Fate::Drop(DropReason::NoSessionOutbound),
            },
        }
    }

    /// A LAN host addressing a WAN address: if a LAN endpoint owns that external port, the
    /// packet is turned around to it (with the sender translated to its own mapping on that
    /// WAN, so the receiver answers through fwd); if a port forward takes the port (reserved
    /// from dynamic NAT, it has no owner), to the forward's target, the same way (a hit on
    /// the forward); otherwise it is for the box itself.
    ///
    /// A sender that is a port forward's target on that WAN is translated to the forward's
    /// port instead of a mapping of its own ([`ConnTable::create_forwarded_hairpin`]): a
    /// hairpin through a forward. C reaches w:E, forwarded to S, and S receives from C's
    /// mapping w:m; S's answers to w:m find C as the owner of m and leave from w:E, where C
    /// sent its packets (else C's stack would not take them as its connection's). So a
    /// forward's target is seen on the LAN at the forward's port, as from the Internet (also
    /// when it opens a hairpin itself, whose answers then come back through the forward);
    /// where several ports of the WAN are forwarded to it, at the lowest
    /// ([`Forwards::port_of`]).
    ///
    /// [`ConnTable::create_forwarded_hairpin`]: conntrack::ConnTable::create_forwarded_hairpin
    /// [`Forwards::port_of`]: crate::forwards::Forwards::port_of
    fn hairpin(
        &mut self,
        ctx: &Context<'_>,
        frame: &mut Frame<'_>,
        pkt: &Ipv4Packet,
        key: conntrack::FlowKey,
        wan: usize,
        ingress: u8,
    ) -> Fate {
        let wan_u8 = u8::try_from(wan).unwrap_or(u8::MAX);
        let table = &ctx.tables.conntrack;
        let forwards = &ctx.plan.forwards;
        // where the packet goes, and the forward that took it if one did
        let (target, lan, reached) = match table.binding(wan_u8, key.proto, key.dst.port) {
            Some(target) => (target, ctx.plan.lan_for(target.ip), None),
            None => match forwards.find(wan, key.proto, key.dst.port) {
                Some(fw) => (fw.target, ctx.plan.lans.get(fw.lan), Some(fw.forward)),
                None => return Fate::Kernel,
            },
        };
        let Some(lan) = lan else {
            return Fate::Kernel;
        };
        let hairpin = Hairpin {
            target,
            egress: lan.iface,
        };
        let info = packet_info(pkt, frame.data());
        let sender_forwarded = forwards
            .port_of(wan, key.proto, key.src)
            .and_then(|port| Some((port, forwards.find(wan, key.proto, port)?.forward)));
        let created = match sender_forwarded {
            Some((ext_port, forward)) => {
                let new = NewForwarded {
                    key,
                    wan: wan_u8,
                    ext_port,
                    lan_iface: ingress,
                    forward,
                };
                table.create_forwarded_hairpin(new, hairpin, info, ctx.now)
            }
            None => {
                let new = NewSession {
                    key,
                    wan: wan_u8,
                    eligible: 0,
                    lan_iface: ingress,
                    hairpin: Some(hairpin),
                    rule: HAIRPIN_RULE,
                };
                table.create(new, info, ctx.now)
            }
        };
        if let (Ok(_), Some(forward)) = (&created, reached) {
            forwards.count_hit(forward);
        }
        self.created(ctx, frame, pkt, created)
    }

    /// The fate of a session's creation: the new session's rewrite applied, or the drop.
    fn created(
        &mut self,
        ctx: &Context<'_>,
        frame: &mut Frame<'_>,
        pkt: &Ipv4Packet,
        created: Result<conntrack::Rewrite, CreateError>,
    ) -> Fate {
        match created {
            Ok(rw) => {
                self.counters.event(Event::SessionsCreated);
                apply(ctx, &self.counters, frame, pkt, rw)
            }
            Err(e) => Fate::Drop(create_drop(e)),
        }
    }
}

/// The drop reason of a session that could not be created.
pub(super) fn create_drop(e: CreateError) -> DropReason {
    match e {
        CreateError::TableFull => DropReason::TableFull,
        CreateError::PortsExhausted => DropReason::PortsExhausted,
        CreateError::HostSessionLimit => DropReason::HostSessionLimit,
        CreateError::HostPortLimit => DropReason::HostPortLimit,
        CreateError::UnknownWan => DropReason::UnknownInterface,
        CreateError::OutOfWindow => DropReason::TcpOutOfWindow,
        CreateError::Conflict => DropReason::ForwardConflict,
    }
}
