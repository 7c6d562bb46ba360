//! What the balancer tells the engine to do with a new flow.

use crate::group::LastResort;
use crate::ids::{RuleId, WanId, WanSet};

/// The answer for one new flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Use this WAN. `eligible` = every WAN this flow could have been given
    /// right now (the usable members of the active tier): the engine reuses
    /// an existing endpoint-independent mapping on any WAN in this set.
    Wan {
        wan: WanId,
        eligible: WanSet,
        rule: RuleId,
    },
    /// Hand the flow to the kernel's main routing table. `rule: None` when
    /// no rule matched.
    MainTable { rule: Option<RuleId> },
    /// Drop silently. `last_resort`: the rule's group (or WAN) had no usable
    /// member, rather than the rule asking for it.
    Blackhole { rule: RuleId, last_resort: bool },
    /// Reject. `last_resort` as for `Blackhole`.
    Unreachable { rule: RuleId, last_resort: bool },
}

/// The variant of a [`Decision`] without its data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecisionKind {
    Wan,
    MainTable,
    Blackhole,
    Unreachable,
}

impl Decision {
    /// The variant.
    pub fn kind(&self) -> DecisionKind {
        match self {
            Decision::Wan { .. } => DecisionKind::Wan,
            Decision::MainTable { .. } => DecisionKind::MainTable,
            Decision::Blackhole { .. } => DecisionKind::Blackhole,
            Decision::Unreachable { .. } => DecisionKind::Unreachable,
        }
    }

    /// The rule that decided, if any.
    pub fn rule(&self) -> Option<RuleId> {
        match *self {
            Decision::Wan { rule, .. }
            | Decision::Blackhole { rule, .. }
            | Decision::Unreachable { rule, .. } => Some(rule),
            Decision::MainTable { rule } => rule,
        }
    }

    /// The WAN, for `Decision::Wan`.
    pub fn wan(&self) -> Option<WanId> {
        match *self {
            Decision::Wan { wan, .. } => Some(wan),
            _ => None,
        }
    }

    /// The eligible set, for `Decision::Wan`; empty otherwise.
    pub fn eligible(&self) -> WanSet {
        match *self {
            Decision::Wan { eligible, .. } => eligible,
            _ => WanSet::EMPTY,
        }
    }

    /// The decision for a group (or pinned WAN) with no usable member.
    pub(crate) fn last_resort(lr: LastResort, rule: RuleId) -> Decision {
        match lr {
            LastResort::Unreachable => Decision::Unreachable {
                rule,
                last_resort: true,
            },
            LastResort::Blackhole => Decision::Blackhole {
                rule,
                last_resort: true,
            },
            LastResort::MainTable => Decision::MainTable { rule: Some(rule) },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accessors() {
        let d = Decision::Wan {
            wan: WanId(2),
            eligible: WanSet::single(WanId(2)),
            rule: RuleId(1),
        };
        assert_eq!(
            (d.kind(), d.rule(), d.wan()),
            (DecisionKind::Wan, Some(RuleId(1)), Some(WanId(2)))
        );
        let d = Decision::MainTable { rule: None };
        assert_eq!(
            (d.kind(), d.rule(), d.wan()),
            (DecisionKind::MainTable, None, None)
        );
        assert_eq!(
            Decision::last_resort(LastResort::Blackhole, RuleId(3)),
            Decision::Blackhole {
                rule: RuleId(3),
                last_resort: true
            }
        );
    }
}
