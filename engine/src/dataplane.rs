//! The state every worker of the data plane shares, built from one validated config: the
//! [`Plan`] (what the config says), the [`Tables`] (what traffic has set up) and the
//! [`HealthBoard`] (what the links are doing). Workers read it through an `Arc`.

use balancer::{LinkState, PolicyError};
use conntrack::TableConfigError;

use crate::config::Config;
use crate::health::HealthBoard;
use crate::plan::Plan;
use crate::tables::Tables;

#[derive(Debug)]
pub struct DataPlane {
    pub plan: Plan,
    pub tables: Tables,
    pub health: HealthBoard,
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
        Ok(DataPlane {
            plan,
            tables,
            health,
        })
    }
}
