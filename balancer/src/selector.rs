//! Per-worker decisions: rule → action → tier → weighted pick (→ sticky).
//!
//! A `Selector` holds one smooth-weighted-round-robin counter per group
//! member (so, per (group, tier)), allocated in [`Selector::new`]. `decide`
//! allocates nothing and takes no lock but the one sticky-table shard of a
//! sticky rule.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::decision::Decision;
use crate::group::{ActiveTier, Group, GroupLayout};
use crate::health::{state_of, LinkState};
use crate::ids::{RuleId, WanId, WanSet};
use crate::matcher::FlowInfo;
use crate::policy::{Action, Policy, Rule};
use crate::sticky::{Sticky, StickyTable};
use crate::swrr;

/// Round-robin state of one worker. `Send`; not shared.
#[derive(Clone, Debug)]
pub struct Selector {
    /// One counter per member, groups laid out by `GroupLayout::offset`.
    pub(crate) current: Vec<i64>,
}

/// The part of a decision that does not depend on round-robin or sticky
/// state.
#[derive(Debug)]
pub(crate) enum Plan<'p> {
    /// Settled without picking a member.
    Done(Decision),
    /// Pick a member of `active`.
    Pick(GroupPick<'p>),
}

#[derive(Debug)]
pub(crate) struct GroupPick<'p> {
    pub(crate) rule_id: RuleId,
    pub(crate) rule: &'p Rule,
    pub(crate) group: &'p Group,
    pub(crate) layout: &'p GroupLayout,
    pub(crate) active: ActiveTier,
}

impl<'p> GroupPick<'p> {
    fn wan(&self, wan: WanId) -> Decision {
        Decision::Wan {
            wan,
            eligible: self.active.eligible,
            rule: self.rule_id,
        }
    }

    fn no_pick(&self) -> Decision {
        Decision::last_resort(self.group.last_resort, self.rule_id)
    }

    fn state_range(&self) -> std::ops::Range<usize> {
        self.layout.offset..self.layout.offset + self.group.members.len()
    }

    /// Candidates as (member index, weight), in tie-break order.
    fn weights<'a>(&'a self, health: &'a [LinkState]) -> impl Iterator<Item = (usize, u32)> + 'a {
        self.layout
            .candidates(self.group, health, &self.active)
            .map(|(i, m)| (i, m.weight))
    }

    fn member_wan(&self, member: usize) -> Option<WanId> {
        self.group.members.get(member).map(|m| m.wan)
    }

    /// The member `swrr::step` would pick next, without stepping.
    pub(crate) fn peek(&self, current: &[i64], health: &[LinkState]) -> Option<WanId> {
        let state = current.get(self.state_range()).unwrap_or(&[]);
        swrr::peek(state, self.weights(health)).and_then(|i| self.member_wan(i))
    }

    fn step(&self, current: &mut [i64], health: &[LinkState]) -> Option<WanId> {
        let state = current.get_mut(self.state_range())?;
        swrr::step(state, self.weights(health)).and_then(|i| self.member_wan(i))
    }
}

/// Everything up to the weighted pick: pure in `policy`, `health`, `flow`.
pub(crate) fn plan<'p>(policy: &'p Policy, health: &[LinkState], flow: &FlowInfo) -> Plan<'p> {
    let Some((rule_id, rule)) = policy
        .match_rule(flow)
        .and_then(|id| Some((id, policy.rule(id)?)))
    else {
        return Plan::Done(Decision::MainTable { rule: None });
    };
    let decision = match rule.action {
        Action::MainTable => Decision::MainTable {
            rule: Some(rule_id),
        },
        Action::Blackhole => Decision::Blackhole {
            rule: rule_id,
            last_resort: false,
        },
        Action::Unreachable => Decision::Unreachable {
            rule: rule_id,
            last_resort: false,
        },
        Action::Wan(wan) if state_of(health, wan).is_usable() => Decision::Wan {
            wan,
            eligible: WanSet::single(wan),
            rule: rule_id,
        },
        Action::Wan(_) => Decision::Unreachable {
            rule: rule_id,
            last_resort: true,
        },
        Action::Group(group_id) => {
            let Some((group, layout)) = policy.layout(group_id) else {
                // Policy::new rejects unknown groups; answer safely anyway.
                return Plan::Done(Decision::Unreachable {
                    rule: rule_id,
                    last_resort: true,
                });
            };
            match layout.active_tier(group, health) {
                Some(active) => {
                    return Plan::Pick(GroupPick {
                        rule_id,
                        rule,
                        group,
                        layout,
                        active,
                    })
                }
                None => Decision::last_resort(group.last_resort, rule_id),
            }
        }
    };
    Plan::Done(decision)
}

impl Policy {
    /// The decision for `flow` when it takes no weighted or sticky pick: a main-table,
    /// blackhole or unreachable rule (or no rule: the main table), a pinned WAN, a group with
    /// no usable member (its last resort). `None` when a member of a group would be picked
    /// ([`Selector::decide`] makes that pick). Changes no round-robin or sticky state: for a
    /// packet that asks where its flow belongs without opening one.
    pub fn decision_without_pick(&self, health: &[LinkState], flow: &FlowInfo) -> Option<Decision> {
        match plan(self, health, flow) {
            Plan::Done(decision) => Some(decision),
            Plan::Pick(_) => None,
        }
    }
}

impl Selector {
    /// Zeroed round-robin state for every member of every group of `policy`.
    pub fn new(policy: &Policy) -> Selector {
        Selector {
            current: vec![0; policy.member_count()],
        }
    }

    /// Zeroes the round-robin state and sizes it for `policy` (for a new
    /// policy after a reload; allocates only if `policy` has more members).
    pub fn reset(&mut self, policy: &Policy) {
        self.current.clear();
        self.current.resize(policy.member_count(), 0);
    }

    /// Decides where a new flow goes and advances the round robin (or the
    /// sticky binding) accordingly.
    ///
    /// `policy` should be the one this selector was built for; given another
    /// with a different member count, the state is reset first (see
    /// [`Selector::reset`]), and one with the same count keeps the counters.
    /// `health` is indexed by `WanId.0`; missing entries are `Down`.
    pub fn decide(
        &mut self,
        policy: &Policy,
        health: &[LinkState],
        sticky: &StickyTable,
        flow: &FlowInfo,
        now: Duration,
    ) -> Decision {
        let pick = match plan(policy, health, flow) {
            Plan::Done(d) => return d,
            Plan::Pick(p) => p,
        };
        if self.current.len() != policy.member_count() {
            self.reset(policy);
        }
        let current = &mut self.current;
        let wan = match pick.rule.sticky {
            None => pick.step(current, health),
            Some(timeout) => sticky_pick(sticky, &pick, flow.src, now, timeout, || {
                pick.step(current, health)
            }),
        };
        match wan {
            Some(wan) => pick.wan(wan),
            None => pick.no_pick(),
        }
    }
}

fn sticky_pick(
    sticky: &StickyTable,
    pick: &GroupPick<'_>,
    src: Ipv4Addr,
    now: Duration,
    timeout: Duration,
    step: impl FnOnce() -> Option<WanId>,
) -> Option<WanId> {
    match sticky.lookup_or_pick(pick.rule_id, src, now, timeout, pick.active.eligible, step) {
        Sticky::Reused(wan) | Sticky::Picked { wan, .. } => Some(wan),
        Sticky::NoPick => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::group::{LastResort, Member};
    use crate::ids::GroupId;
    use crate::matcher::{Match, PROTO_ICMP, PROTO_UDP};
    use LinkState::{Degraded, Down, Up};

    pub(crate) const S: Duration = Duration::from_secs(1);

    pub(crate) fn flow(src: u32) -> FlowInfo {
        FlowInfo {
            src: Ipv4Addr::from(0x0a00_0000 + src),
            dst: Ipv4Addr::new(1, 1, 1, 1),
            proto: PROTO_UDP,
            src_port: 5000,
            dst_port: 53,
            ingress: 0,
        }
    }

    /// `members`: (wan, tier, weight). One catch-all rule to group 0.
    pub(crate) fn group_policy(
        n_wans: usize,
        members: &[(u8, u8, u32)],
        last_resort: LastResort,
        sticky: Option<Duration>,
    ) -> Policy {
        let group = Group {
            name: "main".into(),
            members: members
                .iter()
                .map(|&(wan, tier, weight)| Member {
                    wan: WanId(wan),
                    tier,
                    weight,
                })
                .collect(),
            last_resort,
        };
        let rule = Rule {
            name: "default".into(),
            matches: Match::default(),
            action: Action::Group(GroupId(0)),
            sticky,
        };
        let names = (0..n_wans).map(|i| format!("wan{i}")).collect();
        Policy::new(names, vec![group], vec![rule]).unwrap()
    }

    fn table() -> StickyTable {
        StickyTable::new(1024, 4, 42)
    }

    /// Runs `n` decisions with fresh sources and counts picks per WAN.
    fn counts(sel: &mut Selector, p: &Policy, health: &[LinkState], n: u32) -> Vec<u32> {
        let t = table();
        let mut c = vec![0u32; p.wan_names().len()];
        for i in 0..n {
            match sel.decide(p, health, &t, &flow(i), S) {
                Decision::Wan { wan, eligible, .. } => {
                    assert!(eligible.contains(wan));
                    c[usize::from(wan.0)] += 1;
                }
                d => panic!("unexpected {d:?}"),
            }
        }
        c
    }

    #[test]
    fn decision_without_pick_settles_only_what_needs_no_pick_and_moves_nothing() {
        let p = group_policy(2, &[(0, 1, 3), (1, 1, 1)], LastResort::MainTable, None);
        let mut sel = Selector::new(&p);
        let picked: Vec<Decision> = (0..4)
            .map(|i| {
                assert_eq!(p.decision_without_pick(&[Up, Up], &flow(i)), None);
                sel.decide(&p, &[Up, Up], &table(), &flow(i), S)
            })
            .collect();
        // the same picks as without the calls in between
        let mut fresh = Selector::new(&p);
        let again: Vec<Decision> = (0..4)
            .map(|i| fresh.decide(&p, &[Up, Up], &table(), &flow(i), S))
            .collect();
        assert_eq!(picked, again);
        assert_eq!(
            p.decision_without_pick(&[Down, Down], &flow(1)),
            Some(Decision::MainTable {
                rule: Some(RuleId(0))
            }),
            "no usable member: the last resort"
        );
        // no rule matches a flow of another protocol than the rule's: the main table
        let mut rules = p.rules().to_vec();
        rules[0].matches.proto = Some(PROTO_UDP);
        let only_udp = Policy::new(p.wan_names().to_vec(), p.groups().to_vec(), rules).unwrap();
        let tcp = FlowInfo {
            proto: 6,
            ..flow(1)
        };
        assert_eq!(
            only_udp.decision_without_pick(&[Up, Up], &tcp),
            Some(Decision::MainTable { rule: None })
        );
    }

    #[test]
    fn three_to_one_exact_over_10000() {
        let p = group_policy(2, &[(0, 1, 3), (1, 1, 1)], LastResort::Unreachable, None);
        let mut sel = Selector::new(&p);
        assert_eq!(counts(&mut sel, &p, &[Up, Up], 10_000), vec![7_500, 2_500]);
    }

    #[test]
    fn one_one_two_exact_over_4000() {
        let p = group_policy(
            3,
            &[(0, 1, 1), (1, 1, 1), (2, 1, 2)],
            LastResort::Unreachable,
            None,
        );
        let mut sel = Selector::new(&p);
        assert_eq!(
            counts(&mut sel, &p, &[Up, Up, Up], 4_000),
            vec![1_000, 1_000, 2_000]
        );
    }

    #[test]
    fn down_member_never_picked_rest_exact() {
        let p = group_policy(
            4,
            &[(0, 1, 1), (1, 1, 5), (2, 1, 2), (3, 1, 3)],
            LastResort::Unreachable,
            None,
        );
        let mut sel = Selector::new(&p);
        // Weights of the rest: 1, 2, 3 → total 6.
        assert_eq!(
            counts(&mut sel, &p, &[Up, Down, Up, Up], 6_000),
            vec![1_000, 0, 2_000, 3_000]
        );
        // A missing health entry is Down as well.
        let mut sel = Selector::new(&p);
        assert_eq!(counts(&mut sel, &p, &[Up, Up, Up], 6_000)[3], 0);
    }

    #[test]
    fn eligible_is_the_candidate_set() {
        let p = group_policy(
            3,
            &[(0, 1, 1), (1, 1, 1), (2, 2, 1)],
            LastResort::Unreachable,
            None,
        );
        let mut sel = Selector::new(&p);
        let d = sel.decide(&p, &[Up, Down, Up], &table(), &flow(1), S);
        assert_eq!(
            d,
            Decision::Wan {
                wan: WanId(0),
                eligible: WanSet::single(WanId(0)),
                rule: RuleId(0)
            }
        );
        let d = sel.decide(&p, &[Up, Up, Up], &table(), &flow(1), S);
        assert_eq!(
            d.eligible(),
            [WanId(0), WanId(1)].into_iter().collect::<WanSet>()
        );
    }

    #[test]
    fn tier_failover_and_immediate_recovery() {
        let p = group_policy(
            4,
            &[(0, 1, 1), (1, 1, 1), (2, 2, 1), (3, 2, 1)],
            LastResort::Unreachable,
            None,
        );
        let mut sel = Selector::new(&p);
        let t = table();
        let up = [Up, Up, Up, Up];
        let tier1_down = [Down, Down, Up, Up];
        for i in 0..100 {
            let w = sel.decide(&p, &up, &t, &flow(i), S).wan().unwrap();
            assert!(w.0 < 2, "tier 1 preferred, got {w:?}");
        }
        let mut seen = WanSet::EMPTY;
        for i in 0..100 {
            let w = sel.decide(&p, &tier1_down, &t, &flow(i), S).wan().unwrap();
            assert!(w.0 >= 2, "tier 2 while tier 1 is down, got {w:?}");
            seen.insert(w);
        }
        assert_eq!(seen.len(), 2, "both tier-2 members used");
        // Recovery: the very next decision is back on tier 1.
        let w = sel.decide(&p, &up, &t, &flow(500), S).wan().unwrap();
        assert!(w.0 < 2);
        // One tier-1 member suffices to keep tier 1 active.
        for i in 0..20 {
            let w = sel
                .decide(&p, &[Down, Up, Up, Up], &t, &flow(i), S)
                .wan()
                .unwrap();
            assert_eq!(w, WanId(1));
        }
    }

    #[test]
    fn up_preferred_over_degraded_degraded_used_when_no_up() {
        let p = group_policy(
            3,
            &[(0, 1, 1), (1, 1, 1), (2, 2, 1)],
            LastResort::Unreachable,
            None,
        );
        let mut sel = Selector::new(&p);
        let t = table();
        for i in 0..50 {
            let d = sel.decide(&p, &[Degraded, Up, Up], &t, &flow(i), S);
            assert_eq!(d.wan(), Some(WanId(1)));
        }
        // No Up in tier 1: both Degraded tier-1 members, before a healthy tier 2.
        let c = counts(&mut Selector::new(&p), &p, &[Degraded, Degraded, Up], 100);
        assert_eq!(c, vec![50, 50, 0]);
        // Degraded in tier 1 beats Down in tier 1 and nothing else.
        let c = counts(&mut Selector::new(&p), &p, &[Degraded, Down, Down], 10);
        assert_eq!(c, vec![10, 0, 0]);
    }

    #[test]
    fn non_candidates_keep_state_across_health_changes() {
        // wan1 weight 3, wan0 weight 1: sequence from zero is 1,1,0,1 …
        let p = group_policy(2, &[(0, 1, 1), (1, 1, 3)], LastResort::Unreachable, None);
        let mut sel = Selector::new(&p);
        let t = table();
        assert_eq!(
            sel.decide(&p, &[Up, Up], &t, &flow(0), S).wan(),
            Some(WanId(1))
        );
        let before = sel.current.clone();
        // While wan1 is down only wan0 is a candidate; wan1's counter is kept.
        for i in 0..5 {
            assert_eq!(
                sel.decide(&p, &[Up, Down], &t, &flow(i), S).wan(),
                Some(WanId(0))
            );
        }
        assert_eq!(sel.current[1], before[1]);
    }

    #[test]
    fn last_resort_each_kind() {
        let down = [Down, Down];
        let t = table();
        for (lr, want) in [
            (
                LastResort::Unreachable,
                Decision::Unreachable {
                    rule: RuleId(0),
                    last_resort: true,
                },
            ),
            (
                LastResort::Blackhole,
                Decision::Blackhole {
                    rule: RuleId(0),
                    last_resort: true,
                },
            ),
            (
                LastResort::MainTable,
                Decision::MainTable {
                    rule: Some(RuleId(0)),
                },
            ),
        ] {
            let p = group_policy(2, &[(0, 1, 1), (1, 2, 1)], lr, None);
            let mut sel = Selector::new(&p);
            assert_eq!(sel.decide(&p, &down, &t, &flow(1), S), want);
            assert_eq!(sel.decide(&p, &[], &t, &flow(1), S), want);
            // Sticky rules fall back the same way and record nothing.
            let p = group_policy(2, &[(0, 1, 1), (1, 2, 1)], lr, Some(S));
            assert_eq!(Selector::new(&p).decide(&p, &down, &t, &flow(1), S), want);
            assert!(t.is_empty());
        }
    }

    fn action_policy(action: Action) -> Policy {
        let rules = vec![
            Rule {
                name: "icmp".into(),
                matches: Match {
                    proto: Some(PROTO_ICMP),
                    ..Match::default()
                },
                action: Action::Blackhole,
                sticky: None,
            },
            Rule {
                name: "it".into(),
                matches: Match {
                    proto: Some(PROTO_UDP),
                    ..Match::default()
                },
                action,
                sticky: None,
            },
        ];
        Policy::new(vec!["a".into(), "b".into()], vec![], rules).unwrap()
    }

    #[test]
    fn action_wan_up_and_down() {
        let p = action_policy(Action::Wan(WanId(1)));
        let mut sel = Selector::new(&p);
        let t = table();
        assert_eq!(
            sel.decide(&p, &[Down, Up], &t, &flow(1), S),
            Decision::Wan {
                wan: WanId(1),
                eligible: WanSet::single(WanId(1)),
                rule: RuleId(1)
            }
        );
        assert_eq!(
            sel.decide(&p, &[Down, Degraded], &t, &flow(1), S).wan(),
            Some(WanId(1))
        );
        assert_eq!(
            sel.decide(&p, &[Up, Down], &t, &flow(1), S),
            Decision::Unreachable {
                rule: RuleId(1),
                last_resort: true
            }
        );
        assert_eq!(
            sel.decide(&p, &[Up], &t, &flow(1), S),
            Decision::Unreachable {
                rule: RuleId(1),
                last_resort: true
            }
        );
    }

    #[test]
    fn plain_actions_and_no_match() {
        let t = table();
        let h = [Up, Up];
        let p = action_policy(Action::MainTable);
        let mut sel = Selector::new(&p);
        assert_eq!(
            sel.decide(&p, &h, &t, &flow(1), S),
            Decision::MainTable {
                rule: Some(RuleId(1))
            }
        );
        let icmp = FlowInfo {
            proto: PROTO_ICMP,
            ..flow(1)
        };
        assert_eq!(
            sel.decide(&p, &h, &t, &icmp, S),
            Decision::Blackhole {
                rule: RuleId(0),
                last_resort: false
            }
        );
        let tcp = FlowInfo {
            proto: 6,
            ..flow(1)
        };
        assert_eq!(
            sel.decide(&p, &h, &t, &tcp, S),
            Decision::MainTable { rule: None }
        );
        let p = action_policy(Action::Unreachable);
        assert_eq!(
            Selector::new(&p).decide(&p, &h, &t, &flow(1), S),
            Decision::Unreachable {
                rule: RuleId(1),
                last_resort: false
            }
        );
        let empty = Policy::new(vec![], vec![], vec![]).unwrap();
        assert_eq!(
            Selector::new(&empty).decide(&empty, &[], &t, &flow(1), S),
            Decision::MainTable { rule: None }
        );
    }

    #[test]
    fn rule_order_first_match_wins_into_groups() {
        let groups = vec![
            Group {
                name: "g0".into(),
                members: vec![Member {
                    wan: WanId(0),
                    tier: 1,
                    weight: 1,
                }],
                last_resort: LastResort::Unreachable,
            },
            Group {
                name: "g1".into(),
                members: vec![Member {
                    wan: WanId(1),
                    tier: 1,
                    weight: 1,
                }],
                last_resort: LastResort::Unreachable,
            },
        ];
        let rule = |name: &str, matches: Match, g: u16| Rule {
            name: name.into(),
            matches,
            action: Action::Group(GroupId(g)),
            sticky: None,
        };
        let dns = Match {
            dst_ports: vec![crate::matcher::PortRange::single(53)],
            ..Match::default()
        };
        let p = Policy::new(
            vec!["a".into(), "b".into()],
            groups,
            vec![rule("dns", dns, 1), rule("all", Match::default(), 0)],
        )
        .unwrap();
        let mut sel = Selector::new(&p);
        let t = table();
        let d = sel.decide(&p, &[Up, Up], &t, &flow(1), S);
        assert_eq!((d.wan(), d.rule()), (Some(WanId(1)), Some(RuleId(0))));
        let web = FlowInfo {
            dst_port: 443,
            ..flow(1)
        };
        let d = sel.decide(&p, &[Up, Up], &t, &web, S);
        assert_eq!((d.wan(), d.rule()), (Some(WanId(0)), Some(RuleId(1))));
    }

    #[test]
    fn non_sticky_rules_never_touch_the_table() {
        let p = group_policy(2, &[(0, 1, 1), (1, 1, 1)], LastResort::Unreachable, None);
        let mut sel = Selector::new(&p);
        let t = table();
        for i in 0..10 {
            sel.decide(&p, &[Up, Up], &t, &flow(i), S);
        }
        assert!(t.is_empty());
    }

    #[test]
    fn sticky_source_keeps_wan_sources_spread() {
        let p = group_policy(
            3,
            &[(0, 1, 1), (1, 1, 1), (2, 1, 1)],
            LastResort::Unreachable,
            Some(60 * S),
        );
        let mut sel = Selector::new(&p);
        let t = table();
        let h = [Up, Up, Up];
        let first: Vec<WanId> = (0..30)
            .map(|src| sel.decide(&p, &h, &t, &flow(src), S).wan().unwrap())
            .collect();
        let spread: WanSet = first.iter().copied().collect();
        assert_eq!(spread.len(), 3, "different sources spread over all WANs");
        let per_wan = |w: u8| first.iter().filter(|x| x.0 == w).count();
        assert_eq!((per_wan(0), per_wan(1), per_wan(2)), (10, 10, 10));
        // Many more flows from each source (other ports, other destinations)
        // keep its WAN.
        for round in 0..20u16 {
            for src in 0..30 {
                let f = FlowInfo {
                    src_port: 1000 + round,
                    dst: Ipv4Addr::new(9, 9, 9, round as u8),
                    ..flow(src)
                };
                let now = S + Duration::from_secs(u64::from(round));
                assert_eq!(
                    sel.decide(&p, &h, &t, &f, now).wan(),
                    Some(first[src as usize])
                );
            }
        }
        assert_eq!(t.len(), 30);
    }

    #[test]
    fn sticky_entry_expires_after_timeout() {
        let p = group_policy(
            2,
            &[(0, 1, 1), (1, 1, 1)],
            LastResort::Unreachable,
            Some(10 * S),
        );
        let mut sel = Selector::new(&p);
        let t = table();
        let h = [Up, Up];
        let w0 = sel.decide(&p, &h, &t, &flow(7), S).wan().unwrap();
        // Reuse at 10 s refreshes: deadline becomes 20 s.
        assert_eq!(sel.decide(&p, &h, &t, &flow(7), 10 * S).wan(), Some(w0));
        assert_eq!(sel.decide(&p, &h, &t, &flow(7), 19 * S).wan(), Some(w0));
        // Nothing for 10 s: 19 + 10 = 29 is the deadline, so at 29 s it is gone
        // and the round robin (whose next pick is the other WAN) decides.
        let next = sel.decide(&p, &h, &t, &flow(7), 29 * S).wan().unwrap();
        assert_ne!(next, w0);
        // And expire() removes dead bindings.
        assert_eq!(t.expire(100 * S, 100), 1);
        assert!(t.is_empty());
    }

    #[test]
    fn sticky_repicks_when_its_wan_goes_down() {
        let p = group_policy(
            2,
            &[(0, 1, 1), (1, 1, 1)],
            LastResort::Unreachable,
            Some(600 * S),
        );
        let mut sel = Selector::new(&p);
        let t = table();
        let w = sel.decide(&p, &[Up, Up], &t, &flow(3), S).wan().unwrap();
        let mut h = [Up, Up];
        h[usize::from(w.0)] = Down;
        let other = sel.decide(&p, &h, &t, &flow(3), 2 * S).wan().unwrap();
        assert_ne!(other, w);
        // The binding moved: with both up again it stays on the new WAN.
        for i in 0..5 {
            assert_eq!(
                sel.decide(&p, &[Up, Up], &t, &flow(3), (3 + i) * S).wan(),
                Some(other)
            );
        }
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn sticky_follows_a_recovered_better_tier() {
        let p = group_policy(
            2,
            &[(0, 1, 1), (1, 2, 1)],
            LastResort::Unreachable,
            Some(600 * S),
        );
        let mut sel = Selector::new(&p);
        let t = table();
        assert_eq!(
            sel.decide(&p, &[Down, Up], &t, &flow(3), S).wan(),
            Some(WanId(1))
        );
        assert_eq!(
            sel.decide(&p, &[Down, Up], &t, &flow(3), 2 * S).wan(),
            Some(WanId(1))
        );
        // Tier 1 back: the backup binding is not eligible any more.
        assert_eq!(
            sel.decide(&p, &[Up, Up], &t, &flow(3), 3 * S).wan(),
            Some(WanId(0))
        );
        assert_eq!(
            sel.decide(&p, &[Up, Up], &t, &flow(3), 4 * S).wan(),
            Some(WanId(0))
        );
        // Up members of the tier take over from a Degraded binding too.
        let p = group_policy(
            2,
            &[(0, 1, 1), (1, 1, 1)],
            LastResort::Unreachable,
            Some(600 * S),
        );
        let mut sel = Selector::new(&p);
        assert_eq!(
            sel.decide(&p, &[Down, Degraded], &t, &flow(4), S).wan(),
            Some(WanId(1))
        );
        assert_eq!(
            sel.decide(&p, &[Up, Degraded], &t, &flow(4), 2 * S).wan(),
            Some(WanId(0))
        );
    }

    #[test]
    fn sticky_full_table_decides_and_counts() {
        let p = group_policy(
            2,
            &[(0, 1, 3), (1, 1, 1)],
            LastResort::Unreachable,
            Some(60 * S),
        );
        let mut sel = Selector::new(&p);
        let t = StickyTable::new(2, 1, 0);
        let mut c = [0u32; 2];
        for i in 0..400 {
            let w = sel.decide(&p, &[Up, Up], &t, &flow(i), S).wan().unwrap();
            c[usize::from(w.0)] += 1;
        }
        assert_eq!(c, [300, 100], "round robin still decides exactly");
        assert_eq!(t.len(), 2);
        assert_eq!(t.full_refusals(), 398);
        // Recorded sources still stick.
        let w = t.get(RuleId(0), flow(0).src, S).unwrap().wan;
        assert_eq!(sel.decide(&p, &[Up, Up], &t, &flow(0), S).wan(), Some(w));
    }

    #[test]
    fn policy_with_other_shape_resets_state() {
        let p1 = group_policy(2, &[(0, 1, 1), (1, 1, 1)], LastResort::Unreachable, None);
        let p2 = group_policy(
            3,
            &[(0, 1, 1), (1, 1, 1), (2, 1, 2)],
            LastResort::Unreachable,
            None,
        );
        let mut sel = Selector::new(&p1);
        sel.decide(&p1, &[Up, Up], &table(), &flow(0), S);
        assert_eq!(
            counts(&mut sel, &p2, &[Up, Up, Up], 400),
            vec![100, 100, 200]
        );
    }

    #[test]
    fn selector_is_send() {
        fn check<T: Send>() {}
        check::<Selector>();
    }
}
