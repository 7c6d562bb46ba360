//! The long-lived shared state of the data plane: connection table (sessions, NAT mappings,
//! port tables), fragment table and sticky table. Shared by all workers through an `Arc`;
//! survives config reloads (a reload that changes WAN addresses, port ranges or interface
//! numbering rebuilds it).

use conntrack::{ConnTable, FragmentTable, OnFull, TableConfig, TableConfigError, WanNat};

use balancer::StickyTable;

use crate::config::{self, Config};
use crate::plan::Plan;

#[derive(Debug)]
pub struct Tables {
    pub conntrack: ConnTable,
    pub fragments: FragmentTable,
    pub sticky: StickyTable,
}

impl Tables {
    /// Preallocates every table from the config's limits; the WANs (address, NAT ports,
    /// interface id) come from the plan compiled from the same config. `hash_seed` keys the
    /// table hashes (random in the daemon, so remote hosts cannot aim for one bucket; fixed in
    /// tests).
    pub fn new(cfg: &Config, plan: &Plan, hash_seed: u64) -> Result<Tables, TableConfigError> {
        let ct = &cfg.conntrack;
        let table_config = TableConfig {
            max_sessions: ct.max_sessions,
            shards: ct.shards,
            timeouts: ct.timeouts,
            on_full: match ct.on_full {
                config::OnFull::Evict => OnFull::EvictOldest,
                config::OnFull::Refuse => OnFull::Refuse,
            },
            hash_seed,
            max_sessions_per_host: ct.max_sessions_per_host,
            max_ports_per_host: ct.max_ports_per_host,
        };
        let wans: Vec<WanNat> = plan
            .wans
            .iter()
            .map(|w| WanNat {
                address: w.address,
                ports: w.nat_ports.clone(),
                iface: w.iface,
            })
            .collect();
        let conntrack = ConnTable::new(&table_config, &wans)?;
        let huge = crate::device::huge_pages::back_with_huge_pages(&conntrack.memory_regions());
        log::debug!("connection table: {} MiB on huge pages", huge >> 20);
        Ok(Tables {
            conntrack,
            fragments: FragmentTable::new(
                ct.max_fragments,
                ct.shards.min(64),
                ct.fragment_timeout,
                hash_seed ^ 0x5bd1_e995,
            ),
            sticky: StickyTable::new(ct.sticky_max, ct.shards.min(64), hash_seed ^ 0x9e37_79b9),
        })
    }
}
