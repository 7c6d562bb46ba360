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
use prober::core::{Method, ProbeConfig, PublishedState};
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
                icmp_ident: PROBE_ICMP_IDENT_BASE + u16::try_from(i).unwrap_or(0),
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
    dataplane.health.set(wan, link);
    if link != LinkState::Down || dataplane.plan.on_wan_down == OnWanDown::Keep {
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
            log::info!(
                "wan {wan}: nudged {sent} of {} TCP connections towards a reset (clients {:?})",
                conns.len(),
                tcp_nudge::clients(&conns)
            );
        });
    if let Err(e) = spawned {
        log::warn!("wan {wan}: cannot start the TCP nudge: {e}");
    }
}
