//! The state every worker of the data plane shares, built from one validated config: the
//! [`Plan`] (what the config says), the [`Tables`] (what traffic has set up) and the
//! [`HealthBoard`] (what the links are doing). Workers read it through an `Arc`.
//!
//! A reload builds a new `DataPlane` around the same tables and board
//! ([`DataPlane::reloaded`]): the plan (rules, groups, weights) changes, every session, NAT
//! mapping and link state survives. What the tables were sized and keyed from (interfaces,
//! WAN addresses, NAT port ranges, conntrack limits) cannot change without a restart;
//! [`reload_blockers`] lists such differences.

use std::collections::BTreeSet;
use std::sync::Arc;

use balancer::{LinkState, PolicyError};
use conntrack::{Proto, TableConfigError};

use crate::config::Config;
use crate::health::HealthBoard;
use crate::plan::Plan;
use crate::tables::Tables;

#[derive(Debug)]
pub struct DataPlane {
    pub plan: Plan,
    pub tables: Arc<Tables>,
    pub health: Arc<HealthBoard>,
}

/// Why a config could not be turned into a data plane (after validation this means a limit
/// the tables cannot meet, such as memory).
#[derive(Debug, thiserror::Error)]
pub enum DataPlaneError {
    #[error("policy: {0}")]
    Policy(#[from] PolicyError),
    #[error("tables: {0}")]
    Tables(#[from] TableConfigError),
}

impl DataPlane {
    /// Compiles the plan, preallocates the tables (hashes keyed by `hash_seed`) and starts
    /// every link in `initial` state.
    pub fn new(
        config: &Config,
        hash_seed: u64,
        initial: LinkState,
    ) -> Result<DataPlane, DataPlaneError> {
        let plan = Plan::from_config(config)?;
        let tables = Tables::new(config, &plan, hash_seed)?;
        let health = HealthBoard::new(plan.wans.len(), initial);
        let dataplane = DataPlane {
            plan,
            tables: Arc::new(tables),
            health: Arc::new(health),
        };
        // the table is empty: no NAT mapping holds a port yet, every reservation succeeds
        dataplane.sync_forwards(&BTreeSet::new());
        Ok(dataplane)
    }

    /// Every (WAN, protocol, external port) the plan forwards.
    pub fn forwarded_ports(&self) -> BTreeSet<(u8, u8, u16)> {
        self.plan
            .forwards
            .each_port()
            .map(|(wan, proto, port)| (u8::try_from(wan).unwrap_or(u8::MAX), proto as u8, port))
            .collect()
    }

    /// Brings the connection table's reserved ports from `before` (what the plan before a
    /// reload forwarded) to this plan's forwards: a port no longer forwarded loses its
    /// sessions (connections through a removed forward end) and its reservation; a newly
    /// forwarded one inside its WAN's NAT range is reserved, so dynamic NAT never hands it
    /// out. Returns one line per port that could not be reserved because a NAT mapping holds
    /// it: connections to it are refused (`forward_conflict`) until a later reload (which
    /// tries again) finds that mapping ended.
    pub fn sync_forwards(&self, before: &BTreeSet<(u8, u8, u16)>) -> Vec<String> {
        let now = self.forwarded_ports();
        let table = &self.tables.conntrack;
        for &(wan, proto, port) in before.difference(&now) {
            if let Some(proto) = Proto::from_ip_number(proto) {
                table.remove_forwarded(wan, proto, port);
                table.release_port(wan, proto, port);
            }
        }
        let mut held = Vec::new();
        // every forwarded port, not only the new ones: one a mapping held at an earlier
        // reload may be free now (reserving a reserved port changes nothing)
        for &(wan, proto, port) in &now {
            if let Some(p) = Proto::from_ip_number(proto) {
                if !table.reserve_port(wan, p, port) {
                    held.push(format!(
                        "{} port {port} of WAN #{wan} is held by a NAT mapping",
                        p.name()
                    ));
                }
            }
        }
        held
    }

    /// The data plane of `config` around this one's tables and link states. The caller has
    /// checked [`reload_blockers`] is empty.
    pub fn reloaded(&self, config: &Config) -> Result<DataPlane, DataPlaneError> {
        Ok(DataPlane {
            plan: Plan::from_config(config)?,
            tables: Arc::clone(&self.tables),
            health: Arc::clone(&self.health),
        })
    }
}

/// What differs between `old` and `new` that a reload cannot apply (the tables were built
/// from it): one line per difference; empty when `new` can be reloaded.
pub fn reload_blockers(old: &Config, new: &Config) -> Vec<String> {
    let mut out = Vec::new();
    let lan_key = |c: &Config| -> Vec<(String, String)> {
        c.lans
            .iter()
            .map(|l| (l.name.clone(), l.interface.clone()))
            .collect()
    };
    if lan_key(old) != lan_key(new) {
        out.push("the LANs (names, interfaces or order) changed".to_string());
    } else {
        // the kernel steering and the XDP program's destinations are built from these
        for (o, n) in old.lans.iter().zip(&new.lans) {
            if (o.address, o.subnet, &o.extra_subnets) != (n.address, n.subnet, &n.extra_subnets) {
                out.push(format!("LAN '{}': address or subnets changed", o.name));
            } else if o.inbound != n.inbound {
                out.push(format!("LAN '{}': inbound changed", o.name));
            }
        }
    }
    if old.wans.len() != new.wans.len() {
        out.push(format!(
            "the number of WANs changed ({} -> {})",
            old.wans.len(),
            new.wans.len()
        ));
    }
    for (o, n) in old.wans.iter().zip(&new.wans) {
        if (&o.name, &o.interface) != (&n.name, &n.interface) {
            out.push(format!(
                "WAN '{}' ({}) became '{}' ({})",
                o.name, o.interface, n.name, n.interface
            ));
        } else if o.address != n.address || o.subnet != n.subnet || o.gateway != n.gateway {
            out.push(format!("WAN '{}': address or gateway changed", o.name));
        } else if o.nat_ports != n.nat_ports {
            out.push(format!("WAN '{}': nat_ports changed", o.name));
        }
    }
    if old.conntrack != new.conntrack {
        out.push("the [conntrack] section changed".to_string());
    }
    if old.dataplane != new.dataplane {
        out.push("the [dataplane] section changed".to_string());
    }
    if old.control != new.control {
        out.push("the [control] section changed".to_string());
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[[lan]]
name = "lan"
interface = "lan0"
address = "192.168.1.1/24"

[[wan]]
name = "isp1"
interface = "wan0"
address = "10.1.0.2/24"
gateway = "10.1.0.1"

[[wan]]
name = "isp2"
interface = "wan1"
address = "10.2.0.2/24"
gateway = "10.2.0.1"

[[group]]
name = "both"
members = [{ wan = "isp1" }, { wan = "isp2" }]

[[rule]]
name = "all"
group = "both"
"#;

    fn config(text: &str) -> Config {
        Config::from_toml_str(text).unwrap()
    }

    #[test]
    fn policy_changes_reload_and_keep_the_tables() {
        let old = config(BASE);
        let new = config(&BASE.replace(
            "members = [{ wan = \"isp1\" }, { wan = \"isp2\" }]",
            "members = [{ wan = \"isp1\", weight = 3 }, { wan = \"isp2\", tier = 2 }]",
        ));
        assert!(reload_blockers(&old, &new).is_empty());
        // the hook too: the prober takes the new one
        let hooked = config(&format!(
            "{BASE}\n[health]\nhook = \"/usr/local/bin/wan-event\"\n"
        ));
        assert!(reload_blockers(&old, &hooked).is_empty());
        let dp = DataPlane::new(&old, 1, LinkState::Up).unwrap();
        let reloaded = dp.reloaded(&new).unwrap();
        assert!(Arc::ptr_eq(&dp.tables, &reloaded.tables));
        assert!(Arc::ptr_eq(&dp.health, &reloaded.health));
    }

    #[test]
    fn changes_the_tables_depend_on_are_named() {
        let old = config(BASE);
        let cases = [
            (
                BASE.replace("10.2.0.2/24", "10.2.0.3/24"),
                "WAN 'isp2': address",
            ),
            (
                BASE.replace("interface = \"wan1\"", "interface = \"wan9\""),
                "WAN 'isp2' (wan1) became 'isp2' (wan9)",
            ),
            (
                BASE.replace("interface = \"lan0\"", "interface = \"lan1\""),
                "the LANs",
            ),
            (
                BASE.replace(
                    "gateway = \"10.1.0.1\"",
                    "gateway = \"10.1.0.1\"\nnat_ports = \"30000-30999\"",
                ),
                "WAN 'isp1': nat_ports",
            ),
            (
                format!("{BASE}\n[conntrack]\nmax_sessions = 1000\n"),
                "[conntrack]",
            ),
            (
                BASE.replace(
                    "address = \"192.168.1.1/24\"",
                    "address = \"192.168.1.1/24\"\ninbound = \"allow\"",
                ),
                "LAN 'lan': inbound",
            ),
            (
                BASE.replace(
                    "address = \"192.168.1.1/24\"",
                    "address = \"192.168.1.1/24\"\nextra_subnets = [\"10.9.0.0/16\"]",
                ),
                "LAN 'lan': address or subnets",
            ),
        ];
        for (text, expected) in cases {
            let blockers = reload_blockers(&old, &config(&text));
            assert_eq!(blockers.len(), 1, "{blockers:?}");
            assert!(
                blockers[0].contains(expected),
                "{blockers:?} lacks {expected}"
            );
        }
    }
}
