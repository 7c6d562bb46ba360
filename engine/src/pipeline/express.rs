//! The express lane: the common packet, handled without the general path's branches. A
//! whole TCP, UDP or ICMP echo packet with TTL > 1, from a LAN to beyond the box or
//! from a WAN to its address, whose session's lock-free hit changes nothing but the session's
//! `last_seen` and counters (`ConnTable::hit_outbound`, `ConnTable::hit_inbound`): looked up,
//! rewritten, counted, done. Anything else it leaves untouched, for the general path
//! ([`Pipeline::process_parsed`]).
//!
//! What it finishes, the general path would have finished the same way: the same checks
//! (`lan_packet`, `wan_packet`, `Pipeline::outbound`/`inbound`; the TTL first, which changes
//! no fate), the same lock-free hit, the same rewrite ([`fast_path::apply`]) and counters.
//! The pipeline tests send every frame through [`Pipeline::process`] (so through here), and a
//! differential property test holds the two paths to the same verdicts, bytes and counters.

use conntrack::{FlowHash, SlotHint, TCP_FIN, TCP_RST, TCP_SYN};

use super::fast_path;
use super::flow::{flow_key, packet_info};
use super::{Context, Pipeline, Verdict};
use crate::device::Frame;
use crate::packet::parse::ParseError;
use crate::packet::{Fragment, Ipv4Packet, Transport};
use crate::plan::{Destination, Role};

impl Pipeline {
    /// Forwards the frame if it takes the express lane (see the module docs) and returns its
    /// verdict; `None`, with nothing changed, if it does not.
    #[inline(always)]
    pub(super) fn express(
        &mut self,
        ctx: &Context<'_>,
        frame: &mut Frame<'_>,
        parsed: &Result<Ipv4Packet, ParseError>,
        hint: Option<FlowHash>,
        slot: SlotHint,
    ) -> Option<Verdict> {
        let pkt = parsed.as_ref().ok()?;
        // TCP, UDP and ICMP echo only (the others have no flow hash)
        let flow = hint?;
        if pkt.ttl <= 1
            || pkt.fragment != Fragment::Whole
            || pkt.total_len() > usize::from(self.smallest_mtu)
        {
            return None;
        }
        // a segment that opens or closes a connection takes the lock (and its checksum is
        // verified first): the general path's
        if let Transport::Tcp { flags, .. } = pkt.transport {
            if flags & (TCP_SYN | TCP_FIN | TCP_RST) != 0 {
                return None;
            }
        }
        let table = &ctx.tables.conntrack;
        let info = packet_info(pkt, frame.data());
        let rewrite = match ctx.plan.interface(frame.iface)?.role {
            Role::Lan(_) => {
                if matches!(
                    ctx.plan.destination(pkt.dst),
                    Destination::Router | Destination::Lan(_)
                ) || pkt.dst.is_broadcast()
                    || pkt.dst.is_multicast()
                {
                    return None;
                }
                debug_assert_eq!(flow_key(pkt).map(|k| table.outbound_hash(&k)), hint);
                table.hit_outbound(&flow, slot, info, ctx.now, self.watched)?
            }
            Role::Wan(wan) => {
                if ctx.plan.wans.get(wan)?.address != pkt.dst {
                    return None;
                }
                let wan_u8 = u8::try_from(wan).ok()?;
                let key = flow_key(pkt)?;
                // The hint is this packet's flow as far as the packet alone tells (protocol and
                // remote endpoint). No check that its internal endpoint is still what
                // `inbound_hash` says: an earlier frame of the chunk may have ended the port's
                // last session (the port then has another owner or none), and the flow's
                // session is gone with it, so the hit declines and the general path looks the
                // port up afresh.
                debug_assert!(flow.is_with(key.proto, key.src), "{flow:?} for {key:?}");
                let rewrite = table.hit_inbound(wan_u8, key.dst, &flow, slot, info, ctx.now)?;
                self.counters.wan_rx(wan, pkt.total_len());
                rewrite
            }
        };
        let fate = fast_path::apply(ctx, &self.counters, frame, pkt, rewrite);
        Some(self.settle(ctx, frame, fate))
    }
}
