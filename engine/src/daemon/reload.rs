//! Config reload (SIGHUP or `fwdctl reload`): read and validate the file again, check that
//! nothing the tables were built from changed, and publish a new data plane around the same
//! tables. Anything wrong leaves the running config in place and says why.

use std::sync::PoisonError;

use crate::config::{Config, LoadError};
use crate::dataplane::reload_blockers;

use super::afxdp::forward_keys;
use super::shared::Shared;

/// Reloads `shared.config_path`. Ok: a summary of what is now running; Err: why the running
/// config stays.
pub fn reload(shared: &Shared) -> Result<String, String> {
    let _one_at_a_time = shared.reload_guard();
    let path = shared.config_path.display().to_string();
    let new = match Config::load(&shared.config_path) {
        Ok(c) => c,
        Err(LoadError::Invalid(errors)) => {
            let lines: Vec<String> = errors.iter().map(|e| format!("{path}: {e}")).collect();
            return Err(format!(
                "reload refused, the running config stays:\n{}",
                lines.join("\n")
            ));
        }
        Err(e) => return Err(format!("reload refused, the running config stays: {e}")),
    };
    let old = shared.config();
    let blockers = reload_blockers(&old, &new);
    if !blockers.is_empty() {
        return Err(format!(
            "reload refused, the running config stays (these changes need a restart): {}",
            blockers.join("; ")
        ));
    }
    let (current, _) = shared.dataplane();
    let dataplane = current
        .reloaded(&new)
        .map_err(|e| format!("reload refused, the running config stays: {e}"))?;
    let summary = format!(
        "reloaded {path}: {} WANs, {} groups, {} rules, {} forwards; {} sessions kept",
        new.wans.len(),
        new.groups.len(),
        new.rules.len(),
        new.forwards.len(),
        dataplane.tables.conntrack.len()
    );
    let specs = super::link_health::probe_specs(&new);
    let hook = new.health.hook.clone();
    let forwarded_before = current.forwarded_ports();
    shared.publish(dataplane, new);
    let (published, _) = shared.dataplane();
    let held = published.sync_forwards(&forwarded_before);
    let summary = if held.is_empty() {
        summary
    } else {
        let held = held.join(", ");
        log::warn!("reload: forwarded ports not yet free: {held}");
        format!("{summary}; not yet forwarded (reload again once free): {held}")
    };
    if let Some(program) = &shared.xdp_program {
        let forwards = forward_keys(&published.plan);
        let mut program = program.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(e) = program.set_forwards(&forwards) {
            log::error!("reload: the XDP program's forwarded ports: {e}");
            return Ok(format!("{summary}; forwarded ports not updated: {e}"));
        }
    }
    // Probing (and the hook) follow the new config; WANs whose probe did not change keep
    // their state.
    if let Some(Err(e)) = shared.with_link_health(|p| p.reconfigure(specs, hook)) {
        log::error!("reload: link health keeps its old probes and hook: {e}");
        return Ok(format!(
            "{summary}; link health keeps its old probes and hook: {e}"
        ));
    }
    Ok(summary)
}
