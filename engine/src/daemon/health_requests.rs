//! The control requests about link health (`fwdctl wan`, `wan enable|disable`, `events`),
//! answered from the prober's status and event ring and the current config and tables.

use std::time::{SystemTime, UNIX_EPOCH};

use ctl::protocol::{EventList, EventRecord, WanAdminResult, WanHealth};
use prober::core::Logged;

use crate::config::Config;

use super::shared::Shared;

const NOT_RUNNING: &str = "link health is not running (fwd is starting or stopping)";

/// Every WAN's health, in config order.
pub fn wans(shared: &Shared) -> Result<Vec<WanHealth>, String> {
    let statuses = shared
        .with_link_health(|p| p.status())
        .ok_or_else(|| NOT_RUNNING.to_owned())?;
    let (dp, _) = shared.dataplane();
    let config = shared.config();
    Ok(config
        .wans
        .iter()
        .enumerate()
        .map(|(i, wan)| {
            let status = statuses.iter().find(|s| s.name == wan.name);
            let probed = wan.probe.is_some();
            let figures = status.map(|s| s.figures).filter(|_| probed);
            WanHealth {
                name: wan.name.clone(),
                state: status.map_or_else(
                    || dp.health.get(i).as_str().to_owned(),
                    |s| s.state.as_str().to_owned(),
                ),
                tier: wan.tier,
                weight: wan.weight,
                probed,
                method: wan.probe.as_ref().map(|p| p.method.kind().to_owned()),
                targets: wan
                    .probe
                    .as_ref()
                    .map_or_else(Vec::new, |p| p.targets.clone()),
                latency_ms: figures
                    .and_then(|f| f.latency)
                    .map(|d| d.as_secs_f64() * 1000.0),
                jitter_ms: figures
                    .and_then(|f| f.jitter)
                    .map(|d| d.as_secs_f64() * 1000.0),
                loss_pct: figures.filter(|f| f.samples > 0).map(|f| f.loss_pct),
                in_state_secs: status.map_or(0.0, |s| s.in_state.as_secs_f64()),
                reason: status.map_or_else(String::new, |s| s.reason.clone()),
                carrier: status.map(|s| s.carrier),
                flows: u8::try_from(i).map_or(0, |w| dp.tables.conntrack.wan_sessions(w)),
            }
        })
        .collect())
}

/// `fwdctl wan enable|disable NAME`.
pub fn wan_admin(shared: &Shared, wan: &str, enabled: bool) -> Result<WanAdminResult, String> {
    let config: std::sync::Arc<Config> = shared.config();
    if !config.wans.iter().any(|w| w.name == wan) {
        return Err(format!("no WAN named '{wan}'"));
    }
    let changed = shared
        .with_link_health(|p| p.set_enabled(wan, enabled))
        .ok_or_else(|| NOT_RUNNING.to_owned())?
        .map_err(|e| e.to_string())?;
    let state = shared
        .with_link_health(|p| p.status())
        .unwrap_or_default()
        .into_iter()
        .find(|s| s.name == wan)
        .map_or_else(|| "unknown".to_owned(), |s| s.state.as_str().to_owned());
    log::info!(
        "fwdctl: wan {wan} {} ({})",
        if enabled { "enabled" } else { "disabled" },
        if changed { "changed" } else { "already so" }
    );
    Ok(WanAdminResult {
        wan: wan.to_owned(),
        changed,
        state,
    })
}

/// `fwdctl events`: the events after `after`.
pub fn events(shared: &Shared, after: u64) -> Result<EventList, String> {
    let (logged, missed, last_seq) = shared
        .with_link_health(|p| p.events_and_last_seq(after))
        .ok_or_else(|| NOT_RUNNING.to_owned())?;
    Ok(EventList {
        events: logged.iter().map(|(l, at)| record(l, *at)).collect(),
        last_seq,
        missed,
    })
}

fn record(logged: &Logged, at: SystemTime) -> EventRecord {
    let e = &logged.event;
    EventRecord {
        seq: logged.seq,
        unix_ms: at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        wan: e.wan_name.clone(),
        old: e.old.as_str().to_owned(),
        new: e.new.as_str().to_owned(),
        reason: e.reason.clone(),
        latency_ms: e.latency.map(|d| d.as_secs_f64() * 1000.0),
        jitter_ms: e.jitter.map(|d| d.as_secs_f64() * 1000.0),
        loss_pct: Some(e.loss_pct),
    }
}
