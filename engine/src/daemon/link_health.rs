//! The daemon's side of link health: the prober thread (`prober` crate) probes every WAN from
//! the WAN itself, and each state change it reports is published to the workers through the
//! [`HealthBoard`](crate::health::HealthBoard) (one atomic store; the workers read it once
//! per batch, so no lock sits on the packet path). When a WAN goes down (or is disabled) and
//! flows do not stay (`on_wan_down` is not `keep`), the TCP clients of its connections are
//! nudged (see [`tcp_nudge`](super::tcp_nudge)) so that they get their reset at once.
//!
//! Every WAN is handed to the prober, also one without probe targets: that one is never
//! probed and stays up, but its carrier and the administrative switch still apply.

use std::sync::{Arc, Weak};

use balancer::LinkState;
use prober::core::{Initial, Method, ProbeConfig, PublishedState};
use prober::run::{ProbeSpec, ProberHandle, StartError, WanLink};

use crate::config::{Config, OnWanDown, Wan};

use super::shared::Shared;
use super::tcp_nudge::{self, NudgeSender};

/// First ICMP echo identifier of the probes (WAN i uses this + i). Below 1024, so never in a
/// WAN's `nat_ports` (which start at 1024 or above): fwd's NAT never claims a probe's reply.
pub const PROBE_ICMP_IDENT_BASE: u16 = 0x0300;

/// What the prober is given for every WAN of `config`, in WAN order.
pub fn probe_specs(config: &Config) -> Vec<ProbeSpec> {
    config
        .wans
        .iter()
        .enumerate()
        .map(|(i, wan)| ProbeSpec {
            config: probe_config(wan),
            link: WanLink {
                device: wan.interface.clone(),
                source: wan.address,
                // i < 64 (at most 64 WANs): never past 0x033f.
                icmp_ident: u16::try_from(i)
                    .ok()
                    .and_then(|i| PROBE_ICMP_IDENT_BASE.checked_add(i))
                    .unwrap_or(PROBE_ICMP_IDENT_BASE),
            },
        })
        .collect()
}

/// The prober's configuration of one WAN; no targets when the WAN is not probed.
pub fn probe_config(wan: &Wan) -> ProbeConfig {
    wan.probe
        .clone()
        .unwrap_or_else(|| ProbeConfig::new(wan.name.clone(), Vec::new(), Method::Icmp))
}

/// Each WAN's state before the prober's first word: down if its probe says it starts down.
pub fn seed_health(config: &Config, board: &crate::health::HealthBoard) {
    for (i, wan) in config.wans.iter().enumerate() {
        if wan
            .probe
            .as_ref()
            .is_some_and(|p| p.initial == Initial::Down)
        {
            board.set(i, LinkState::Down);
        }
    }
}

/// Starts the prober for the current config of `shared`. State changes go to the current
/// data plane's health board, and trigger the nudges.
pub fn start(shared: &Arc<Shared>) -> Result<ProberHandle, StartError> {
    let config = shared.config();
    let nudger = match NudgeSender::new() {
        Ok(n) => Some(Arc::new(n)),
        Err(e) => {
            log::warn!(
                "no raw socket for TCP nudges ({e}): receiving-only TCP clients of a failed \
                 WAN get their reset only when they next send"
            );
            None
        }
    };
    let weak = Arc::downgrade(shared);
    ProberHandle::spawn(
        probe_specs(&config),
        config.health.hook.clone(),
        Box::new(move |wan, state| on_change(&weak, nudger.as_ref(), wan, state)),
    )
}

/// One state change of WAN `wan`.
fn on_change(
    shared: &Weak<Shared>,
    nudger: Option<&Arc<NudgeSender>>,
    wan: usize,
    state: PublishedState,
) {
    let Some(shared) = shared.upgrade() else {
        return;
    };
    let (dataplane, _) = shared.dataplane();
    let link = state.link_state();
    let was = dataplane.health.get(wan);
    dataplane.health.set(wan, link);
    // Only a WAN that just went down is nudged (the prober announces every WAN again after a
    // reload, and a disabled WAN that goes down in its probes changes nothing here).
    if link != LinkState::Down
        || was == LinkState::Down
        || dataplane.plan.on_wan_down == OnWanDown::Keep
    {
        return;
    }
    let (Some(nudger), Ok(wan_u8)) = (nudger, u8::try_from(wan)) else {
        return;
    };
    let nudger = Arc::clone(nudger);
    // The walk over the table must not delay the next probe round.
    let spawned = std::thread::Builder::new()
        .name("fwd-nudge".into())
        .spawn(move || {
            let conns = tcp_nudge::stranded(&dataplane.tables.conntrack, wan_u8);
            if conns.is_empty() {
                return;
            }
            let sent = nudger.nudge(&conns, tcp_nudge::seed());
            let (clients, more) = tcp_nudge::clients(&conns);
            log::info!(
                "wan {wan}: nudged {sent} of {} TCP connections towards a reset (clients {clients:?}{})",
                conns.len(),
                if more > 0 { format!(" and {more} more") } else { String::new() }
            );
        });
    if let Err(e) = spawned {
        log::warn!("wan {wan}: cannot start the TCP nudge: {e}");
    }
}
