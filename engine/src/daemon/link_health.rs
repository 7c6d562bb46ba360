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

/// Where the probes' ICMP echo identifiers start when no random number can be had.
const FALLBACK_IDENT_SEED: u16 = 0x0300;

/// Where this run's probe identifiers start: drawn once per process, so a reload keeps them
/// (and the prober its sockets) and an off-path forger cannot know them in advance.
fn ident_seed() -> u16 {
    static SEED: std::sync::OnceLock<u16> = std::sync::OnceLock::new();
    *SEED.get_or_init(|| getrandom::u32().map_or(FALLBACK_IDENT_SEED, |r| r as u16))
}

/// Each WAN's ICMP echo identifier, from `seed` on: distinct, never 0, and outside every
/// WAN's `nat_ports` (fwd claims the echo replies whose identifier is in them). The NAT
/// ports start at 1024 or above, so 1 to 1023 are always free and the search ends.
pub fn probe_idents(config: &Config, seed: u16) -> Vec<u16> {
    let taken = |id: u16| id == 0 || config.wans.iter().any(|w| w.nat_ports.contains(&id));
    let mut idents: Vec<u16> = Vec::with_capacity(config.wans.len());
    let mut id = seed;
    for _ in &config.wans {
        while taken(id) || idents.contains(&id) {
            id = id.wrapping_add(1);
        }
        idents.push(id);
    }
    idents
}

/// What the prober is given for every WAN of `config`, in WAN order.
pub fn probe_specs(config: &Config) -> Vec<ProbeSpec> {
    let idents = probe_idents(config, ident_seed());
    config
        .wans
        .iter()
        .zip(idents)
        .enumerate()
        .map(|(i, (wan, icmp_ident))| ProbeSpec {
            config: probe_config(wan),
            link: WanLink {
                device: wan.interface.clone(),
                source: wan.address,
                icmp_ident,
                // the plan numbers interfaces LANs first
                reply_devices: vec![super::tuns::tun_name(config.lans.len() + i, &wan.interface)],
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn config(nat_ports: &str) -> Config {
        let wan = |i: u8| {
            format!(
                "[[wan]]\nname = \"isp{i}\"\ninterface = \"wan{i}\"\naddress = \"10.{i}.0.2/24\"\ngateway = \"10.{i}.0.1\"\nnat_ports = \"{nat_ports}\"\n"
            )
        };
        Config::from_toml_str(&format!(
            "[[lan]]\nname = \"lan\"\ninterface = \"lan0\"\naddress = \"192.168.1.1/24\"\n{}{}{}",
            wan(1),
            wan(2),
            wan(3)
        ))
        .unwrap()
    }

    #[test]
    fn probe_identifiers_are_distinct_and_never_in_the_nat_ports() {
        let c = config("20000-59999");
        assert_eq!(probe_idents(&c, 100), [100, 101, 102]);
        assert_eq!(probe_idents(&c, 19999), [19999, 60000, 60001]);
        assert_eq!(probe_idents(&c, 30000), [60000, 60001, 60002]);
        assert_eq!(
            probe_idents(&c, 65534),
            [65534, 65535, 1],
            "past 65535, 0 skipped"
        );
        let full = config("1024-65535");
        assert_eq!(probe_idents(&full, 5000), [1, 2, 3]);
        for seed in [0, 1, 1023, 1024, 40000, u16::MAX] {
            for c in [&c, &full] {
                let ids = probe_idents(c, seed);
                for (i, id) in ids.iter().enumerate() {
                    assert!(*id != 0 && !ids[..i].contains(id), "{ids:?}");
                    assert!(c.wans.iter().all(|w| !w.nat_ports.contains(id)), "{ids:?}");
                }
            }
        }
    }
}
