//! WAN groups: members, tiers, last resort, and picking the active tier.
//!
//! A member is usable when its link is `Up` or `Degraded`. The active tier is
//! the lowest-numbered tier with a usable member; within it, the candidates
//! are the `Up` members, or the `Degraded` ones when none is `Up`.

use crate::health::{state_of, LinkState};
use crate::ids::{WanId, WanSet};

/// One WAN in a group.
#[derive(Clone, Copy, Debug)]
pub struct Member {
    /// The WAN.
    pub wan: WanId,
    /// Preference tier: lower is preferred.
    pub tier: u8,
    /// Share of new flows within its tier (≥ 1).
    pub weight: u32,
}

/// What a group answers when no member of any tier is usable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LastResort {
    /// Reject the flow (ICMP unreachable / TCP reset, as the engine does it).
    Unreachable,
    /// Drop the flow silently.
    Blackhole,
    /// Hand the flow to the kernel's main routing table.
    MainTable,
}

impl LastResort {
    /// Lower-case name for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            LastResort::Unreachable => "unreachable",
            LastResort::Blackhole => "blackhole",
            LastResort::MainTable => "main table",
        }
    }
}

/// A set of WANs flows are balanced over.
#[derive(Clone, Debug)]
pub struct Group {
    /// Name, for messages.
    pub name: String,
    /// Members; their order breaks ties in round robin (lower index first).
    pub members: Vec<Member>,
    /// Answer when no member is usable.
    pub last_resort: LastResort,
}

/// The members of one tier of a group, precomputed by `Policy::new`.
#[derive(Clone, Debug)]
pub(crate) struct TierSpan {
    pub(crate) tier: u8,
    /// Indices into `Group::members`, ascending.
    pub(crate) members: Vec<u8>,
}

/// A group's tiers in ascending order plus where its round-robin state
/// lives in a `Selector`.
#[derive(Clone, Debug)]
pub(crate) struct GroupLayout {
    /// Index of member 0's round-robin counter in the selector's state.
    pub(crate) offset: usize,
    pub(crate) tiers: Vec<TierSpan>,
}

/// The tier new flows of a group go to right now.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ActiveTier {
    /// Index into `GroupLayout::tiers`.
    pub(crate) span: usize,
    /// The tier number.
    pub(crate) tier: u8,
    /// Candidates are the members of the tier in exactly this state.
    pub(crate) want: LinkState,
    /// The candidates' WANs.
    pub(crate) eligible: WanSet,
}

impl GroupLayout {
    /// Builds the layout; `members.len()` must fit in a `u8` (checked by
    /// `Policy::new`, since members are distinct WANs and there are ≤ 64).
    pub(crate) fn build(group: &Group, offset: usize) -> GroupLayout {
        let mut order: Vec<(u8, u8)> = group
            .members
            .iter()
            .enumerate()
            .filter_map(|(i, m)| u8::try_from(i).ok().map(|i| (m.tier, i)))
            .collect();
        order.sort_unstable();
        let mut tiers: Vec<TierSpan> = Vec::new();
        for (tier, idx) in order {
            match tiers.last_mut() {
                Some(t) if t.tier == tier => t.members.push(idx),
                _ => tiers.push(TierSpan {
                    tier,
                    members: vec![idx],
                }),
            }
        }
        GroupLayout { offset, tiers }
    }

    /// The active tier under `health`, or `None` if no member is usable.
    pub(crate) fn active_tier(&self, group: &Group, health: &[LinkState]) -> Option<ActiveTier> {
        for (span, t) in self.tiers.iter().enumerate() {
            let mut up = WanSet::EMPTY;
            let mut degraded = WanSet::EMPTY;
            for &i in &t.members {
                let Some(m) = group.members.get(usize::from(i)) else {
                    continue;
                };
                match state_of(health, m.wan) {
                    LinkState::Up => up.insert(m.wan),
                    LinkState::Degraded => degraded.insert(m.wan),
                    LinkState::Down => {}
                }
            }
            let (want, eligible) = if !up.is_empty() {
                (LinkState::Up, up)
            } else if !degraded.is_empty() {
                (LinkState::Degraded, degraded)
            } else {
                continue;
            };
            return Some(ActiveTier {
                span,
                tier: t.tier,
                want,
                eligible,
            });
        }
        None
    }

    /// The candidates of `active`: (member index, member), ascending index.
    pub(crate) fn candidates<'a>(
        &'a self,
        group: &'a Group,
        health: &'a [LinkState],
        active: &ActiveTier,
    ) -> impl Iterator<Item = (usize, &'a Member)> + 'a {
        let want = active.want;
        self.tiers
            .get(active.span)
            .map(|t| t.members.as_slice())
            .unwrap_or(&[])
            .iter()
            .filter_map(move |&i| {
                let i = usize::from(i);
                group
                    .members
                    .get(i)
                    .filter(|m| state_of(health, m.wan) == want)
                    .map(|m| (i, m))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use LinkState::{Degraded, Down, Up};

    fn group(members: &[(u8, u8, u32)]) -> Group {
        Group {
            name: "g".into(),
            members: members
                .iter()
                .map(|&(wan, tier, weight)| Member {
                    wan: WanId(wan),
                    tier,
                    weight,
                })
                .collect(),
            last_resort: LastResort::Unreachable,
        }
    }

    #[test]
    fn tiers_sorted_ascending_members_by_index() {
        let g = group(&[(0, 2, 1), (1, 1, 1), (2, 2, 1), (3, 1, 1)]);
        let l = GroupLayout::build(&g, 7);
        assert_eq!(l.offset, 7);
        let tiers: Vec<(u8, Vec<u8>)> = l
            .tiers
            .iter()
            .map(|t| (t.tier, t.members.clone()))
            .collect();
        assert_eq!(tiers, vec![(1, vec![1, 3]), (2, vec![0, 2])]);
    }

    #[test]
    fn active_tier_prefers_lowest_then_up_over_degraded() {
        let g = group(&[(0, 1, 1), (1, 1, 1), (2, 2, 1)]);
        let l = GroupLayout::build(&g, 0);

        let a = l.active_tier(&g, &[Up, Degraded, Up]).unwrap();
        assert_eq!((a.tier, a.want), (1, Up));
        assert_eq!(a.eligible, WanSet::single(WanId(0)));

        let a = l.active_tier(&g, &[Degraded, Degraded, Up]).unwrap();
        assert_eq!((a.tier, a.want), (1, Degraded));
        assert_eq!(a.eligible.len(), 2);
        let c: Vec<usize> = l
            .candidates(&g, &[Degraded, Degraded, Up], &a)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(c, vec![0, 1]);

        let a = l.active_tier(&g, &[Down, Down, Degraded]).unwrap();
        assert_eq!((a.tier, a.want), (2, Degraded));

        assert!(l.active_tier(&g, &[Down, Down, Down]).is_none());
        assert!(l.active_tier(&g, &[]).is_none());
    }
}
