//! Flows left on a worse tier: when a preferred tier of a group comes back, the flows that
//! went to a backup tier while it was gone no longer sit where their rule would put them.
//! The engine recalls such UDP and ICMP flows (they start over on the preferred tier with
//! their next packet); these two questions tell it which.

use crate::ids::{GroupId, RuleId, WanId, WanSet};
use crate::policy::{Action, Policy};
use crate::LinkState;

impl Policy {
    /// The WANs that are a member of some group in a tier worse than that group's active
    /// tier under `health`: only flows on these can be outranked (empty when every group
    /// has its best tier usable and no member in a worse tier, the usual case apart from
    /// backup tiers).
    pub fn outranked_wans(&self, health: &[LinkState]) -> WanSet {
        let mut out = WanSet::EMPTY;
        for i in 0..self.groups().len() {
            let Some((group, layout)) = u16::try_from(i).ok().and_then(|i| self.layout(GroupId(i)))
            else {
                continue;
            };
            let Some(active) = layout.active_tier(group, health) else {
                continue;
            };
            for m in &group.members {
                if m.tier > active.tier {
                    out.insert(m.wan);
                }
            }
        }
        out
    }

    /// Whether a flow of rule `rule` on `wan` would now go to a better tier of the rule's
    /// group (false for rules without a group, and for a `wan` outside the group).
    pub fn outranks(&self, rule: RuleId, wan: WanId, health: &[LinkState]) -> bool {
        let Some(Action::Group(group_id)) = self.rule(rule).map(|r| r.action) else {
            return false;
        };
        let Some((group, layout)) = self.layout(group_id) else {
            return false;
        };
        let Some(member) = group.members.iter().find(|m| m.wan == wan) else {
            return false;
        };
        layout
            .active_tier(group, health)
            .is_some_and(|active| active.tier < member.tier)
    }
}

#[cfg(test)]
mod tests {
    use crate::group::LastResort;
    use crate::ids::{RuleId, WanId, WanSet};
    use crate::selector::tests::group_policy;
    use crate::LinkState::{Degraded, Down, Up};

    #[test]
    fn a_backup_tier_flow_is_outranked_once_the_primary_tier_is_back() {
        // wan0 and wan1 in tier 1, wan2 in tier 2
        let p = group_policy(
            3,
            &[(0, 1, 1), (1, 1, 1), (2, 2, 1)],
            LastResort::Unreachable,
            None,
        );
        let rule = RuleId(0);
        // everything up: tier 1 active; wan2 is outranked, and a flow on it is
        assert_eq!(p.outranked_wans(&[Up, Up, Up]), WanSet::single(WanId(2)));
        assert!(p.outranks(rule, WanId(2), &[Up, Up, Up]));
        assert!(
            !p.outranks(rule, WanId(1), &[Up, Up, Up]),
            "same tier as the active one"
        );
        // tier 1 gone: wan2 is the active tier, nothing outranked
        assert_eq!(p.outranked_wans(&[Down, Down, Up]), WanSet::EMPTY);
        assert!(!p.outranks(rule, WanId(2), &[Down, Down, Up]));
        // a degraded primary is still a usable better tier
        assert!(p.outranks(rule, WanId(2), &[Degraded, Down, Up]));
        // unknown WAN or rule: never
        assert!(!p.outranks(rule, WanId(7), &[Up, Up, Up]));
        assert!(!p.outranks(RuleId(5), WanId(2), &[Up, Up, Up]));
    }
}
