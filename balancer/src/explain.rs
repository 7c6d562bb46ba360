//! `fwdctl explain`: the reasoning of `Selector::decide` for one flow, in
//! data and in human lines, without changing any state.

use std::fmt;
use std::time::Duration;

use crate::decision::{Decision, DecisionKind};
use crate::health::{state_of, LinkState};
use crate::ids::{GroupId, RuleId, WanId, WanSet};
use crate::matcher::{FlowInfo, PROTO_ICMP, PROTO_TCP, PROTO_UDP};
use crate::policy::{Action, Policy};
use crate::selector::{plan, Plan, Selector};
use crate::sticky::StickyTable;

/// What `decide` would do with a flow right now, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    /// The matching rule.
    pub rule: Option<RuleId>,
    /// The rule's group, when its action is a group.
    pub group: Option<GroupId>,
    /// The group's active tier, if any member is usable.
    pub tier: Option<u8>,
    /// The candidates (as in `Decision::Wan::eligible`).
    pub eligible: WanSet,
    /// The live sticky binding that would be reused.
    pub sticky_wan: Option<WanId>,
    /// The round robin's next pick among the candidates.
    pub would_pick: Option<WanId>,
    /// The variant of `decision`.
    pub decision_kind: DecisionKind,
    /// Exactly what `decide` would return now.
    pub decision: Decision,
    /// Human-readable lines, in order: "rule 2 'dns' matched", "tier 1: wan1
    /// down, wan2 up (weight 1)", …, "decision: …".
    pub reasons: Vec<String>,
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.reasons.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            f.write_str(r)?;
        }
        Ok(())
    }
}

struct FlowLabel<'a>(&'a FlowInfo);

impl fmt::Display for FlowLabel<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fl = self.0;
        match fl.proto {
            PROTO_TCP | PROTO_UDP => write!(
                f,
                "{} {}:{} -> {}:{}",
                if fl.proto == PROTO_TCP { "tcp" } else { "udp" },
                fl.src,
                fl.src_port,
                fl.dst,
                fl.dst_port
            )?,
            PROTO_ICMP => write!(f, "icmp {} -> {}", fl.src, fl.dst)?,
            p => write!(f, "proto {p} {} -> {}", fl.src, fl.dst)?,
        }
        write!(f, " from ingress {}", fl.ingress)
    }
}

fn set_label(policy: &Policy, set: WanSet) -> String {
    let names: Vec<String> = set.iter().map(|w| policy.wan_label(w)).collect();
    names.join(", ")
}

fn decision_label(policy: &Policy, d: &Decision) -> String {
    let lr = |last_resort: bool| if last_resort { " (last resort)" } else { "" };
    match *d {
        Decision::Wan { wan, eligible, .. } => format!(
            "use {} (eligible: {})",
            policy.wan_label(wan),
            set_label(policy, eligible)
        ),
        Decision::MainTable { .. } => "main table".to_owned(),
        Decision::Blackhole { last_resort, .. } => format!("blackhole{}", lr(last_resort)),
        Decision::Unreachable { last_resort, .. } => format!("unreachable{}", lr(last_resort)),
    }
}

impl Selector {
    /// The same reasoning as [`Selector::decide`] without changing any state
    /// (no round-robin step, no sticky insert or refresh): for `fwdctl
    /// explain`. Takes the sticky shard lock of a sticky rule to read it.
    pub fn explain(
        &self,
        policy: &Policy,
        health: &[LinkState],
        sticky: &StickyTable,
        flow: &FlowInfo,
        now: Duration,
    ) -> Explanation {
        let mut reasons = Vec::new();
        let rule_id = policy.match_rule(flow);
        let rule = rule_id.and_then(|id| Some((id, policy.rule(id)?)));
        match rule {
            None => reasons.push(format!("no rule matched {}", FlowLabel(flow))),
            Some((id, r)) => {
                reasons.push(format!(
                    "rule {} '{}' matched {}",
                    id.0,
                    r.name,
                    FlowLabel(flow)
                ));
                reasons.push(match r.action {
                    Action::Group(g) => format!(
                        "action: group {} '{}'",
                        g.0,
                        policy.group(g).map_or("?", |g| g.name.as_str())
                    ),
                    Action::Wan(w) => format!(
                        "action: wan {} ({})",
                        policy.wan_label(w),
                        state_of(health, w).as_str()
                    ),
                    Action::MainTable => "action: main table".to_owned(),
                    Action::Blackhole => "action: blackhole".to_owned(),
                    Action::Unreachable => "action: unreachable".to_owned(),
                });
            }
        }
        let group = rule.and_then(|(_, r)| match r.action {
            Action::Group(g) => Some(g),
            _ => None,
        });
        if let Some((g, layout)) = group.and_then(|g| policy.layout(g)) {
            for t in &layout.tiers {
                let members: Vec<String> = t
                    .members
                    .iter()
                    .filter_map(|&i| g.members.get(usize::from(i)))
                    .map(|m| {
                        format!(
                            "{} {} (weight {})",
                            policy.wan_label(m.wan),
                            state_of(health, m.wan).as_str(),
                            m.weight
                        )
                    })
                    .collect();
                reasons.push(format!("tier {}: {}", t.tier, members.join(", ")));
            }
        }

        let mut ex = Explanation {
            rule: rule_id,
            group,
            tier: None,
            eligible: WanSet::EMPTY,
            sticky_wan: None,
            would_pick: None,
            decision_kind: DecisionKind::MainTable,
            decision: Decision::MainTable { rule: None },
            reasons: Vec::new(),
        };
        let decision = match plan(policy, health, flow) {
            Plan::Done(d) => {
                if let (Some(g), Some(lr)) = (group, group.and_then(|g| policy.group(g))) {
                    reasons.push(format!(
                        "group {} '{}': no usable member in any tier, last resort: {}",
                        g.0,
                        lr.name,
                        lr.last_resort.as_str()
                    ));
                }
                d
            }
            Plan::Pick(p) => {
                ex.tier = Some(p.active.tier);
                ex.eligible = p.active.eligible;
                let which = if p.active.want == LinkState::Up {
                    "up members"
                } else {
                    "no member up, degraded members"
                };
                reasons.push(format!(
                    "tier {} active: candidates {} ({which})",
                    p.active.tier,
                    set_label(policy, p.active.eligible)
                ));
                let state: &[i64] = if self.current.len() == policy.member_count() {
                    &self.current
                } else {
                    &[]
                };
                ex.would_pick = p.peek(state, health);
                if let Some(w) = ex.would_pick {
                    reasons.push(format!("round robin next pick: {}", policy.wan_label(w)));
                }
                let mut wan = ex.would_pick;
                if let Some(timeout) = p.rule.sticky {
                    match sticky.get(p.rule_id, flow.src, now) {
                        Some(e) if p.active.eligible.contains(e.wan) => {
                            ex.sticky_wan = Some(e.wan);
                            wan = Some(e.wan);
                            reasons.push(format!(
                                "sticky: {} is bound to {} until {:?}: reused, held until {:?}",
                                flow.src,
                                policy.wan_label(e.wan),
                                e.expires_at,
                                now.saturating_add(timeout)
                            ));
                        }
                        Some(e) => reasons.push(format!(
                            "sticky: {} is bound to {}, which is not a candidate now: re-pick and rebind",
                            flow.src,
                            policy.wan_label(e.wan)
                        )),
                        None => reasons.push(format!(
                            "sticky: no live binding for {}: the pick is recorded for {timeout:?}",
                            flow.src
                        )),
                    }
                }
                match wan {
                    Some(w) => Decision::Wan {
                        wan: w,
                        eligible: p.active.eligible,
                        rule: p.rule_id,
                    },
                    None => Decision::last_resort(p.group.last_resort, p.rule_id),
                }
            }
        };
        reasons.push(format!("decision: {}", decision_label(policy, &decision)));
        ex.decision = decision;
        ex.decision_kind = decision.kind();
        ex.eligible = decision.eligible();
        ex.reasons = reasons;
        ex
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::LastResort;
    use crate::selector::tests::{flow, group_policy, S};
    use LinkState::{Degraded, Down, Up};

    #[test]
    fn explain_changes_no_state() {
        let p = group_policy(
            3,
            &[(0, 1, 3), (1, 1, 1), (2, 2, 1)],
            LastResort::Unreachable,
            None,
        );
        let t = StickyTable::new(64, 2, 0);
        let h = [Up, Up, Up];
        let mut plain = Selector::new(&p);
        let mut explained = Selector::new(&p);
        for i in 0..50 {
            let e = explained.explain(&p, &h, &t, &flow(i), S);
            let e2 = explained.explain(&p, &h, &t, &flow(i), S);
            assert_eq!(e, e2, "explain twice, same answer");
            let a = plain.decide(&p, &h, &t, &flow(i), S);
            let b = explained.decide(&p, &h, &t, &flow(i), S);
            assert_eq!(a, b);
            assert_eq!(e.decision, b, "explain predicts decide");
            assert_eq!(e.would_pick, b.wan());
        }
    }

    #[test]
    fn explain_does_not_touch_sticky_bindings() {
        let p = group_policy(
            2,
            &[(0, 1, 1), (1, 1, 1)],
            LastResort::Unreachable,
            Some(10 * S),
        );
        let t = StickyTable::new(64, 2, 0);
        let h = [Up, Up];
        let mut sel = Selector::new(&p);
        // No binding yet: explain records nothing.
        let e = sel.explain(&p, &h, &t, &flow(1), S);
        assert!(t.is_empty());
        assert_eq!(e.sticky_wan, None);
        let w = sel.decide(&p, &h, &t, &flow(1), S).wan().unwrap();
        assert_eq!(Some(w), e.would_pick);
        let before = t.get(crate::ids::RuleId(0), flow(1).src, S);
        // A live binding is reported, not refreshed.
        let e = sel.explain(&p, &h, &t, &flow(1), 5 * S);
        assert_eq!(e.sticky_wan, Some(w));
        assert_eq!(e.decision.wan(), Some(w));
        assert_ne!(e.would_pick, Some(w), "round robin would have moved on");
        assert_eq!(t.get(crate::ids::RuleId(0), flow(1).src, S), before);
        assert!(
            e.reasons
                .iter()
                .any(|r| r.starts_with("sticky: 10.0.0.1 is bound to wan")),
            "{e}"
        );
        // So it still expires at 11 s.
        assert_ne!(sel.decide(&p, &h, &t, &flow(1), 11 * S).wan(), Some(w));
    }

    #[test]
    fn explain_names_rule_tiers_and_decision() {
        let p = group_policy(
            3,
            &[(0, 1, 1), (1, 1, 1), (2, 2, 1)],
            LastResort::Blackhole,
            None,
        );
        let t = StickyTable::new(8, 1, 0);
        let sel = Selector::new(&p);
        let e = sel.explain(&p, &[Down, Up, Degraded], &t, &flow(1), S);
        assert_eq!(e.rule, Some(RuleId(0)));
        assert_eq!(e.group, Some(GroupId(0)));
        assert_eq!(e.tier, Some(1));
        assert_eq!(e.eligible, WanSet::single(WanId(1)));
        assert_eq!(e.decision_kind, DecisionKind::Wan);
        assert_eq!(
            e.reasons,
            vec![
                "rule 0 'default' matched udp 10.0.0.1:5000 -> 1.1.1.1:53 from ingress 0",
                "action: group 0 'main'",
                "tier 1: wan0 down (weight 1), wan1 up (weight 1)",
                "tier 2: wan2 degraded (weight 1)",
                "tier 1 active: candidates wan1 (up members)",
                "round robin next pick: wan1",
                "decision: use wan1 (eligible: wan1)",
            ]
        );
        let e = sel.explain(&p, &[Down, Down, Degraded], &t, &flow(1), S);
        assert_eq!(e.tier, Some(2));
        assert!(e.reasons.contains(
            &"tier 2 active: candidates wan2 (no member up, degraded members)".to_owned()
        ));
        let e = sel.explain(&p, &[Down, Down, Down], &t, &flow(1), S);
        assert_eq!(e.tier, None);
        assert_eq!(e.decision_kind, DecisionKind::Blackhole);
        assert!(e.eligible.is_empty());
        assert_eq!(
            e.reasons.last().map(String::as_str),
            Some("decision: blackhole (last resort)")
        );
        assert!(e
            .to_string()
            .contains("no usable member in any tier, last resort: blackhole"));
    }

    #[test]
    fn explain_without_match() {
        let p = Policy::new(vec![], vec![], vec![]).unwrap();
        let e = Selector::new(&p).explain(&p, &[], &StickyTable::new(0, 1, 0), &flow(1), S);
        assert_eq!(e.rule, None);
        assert_eq!(e.decision, Decision::MainTable { rule: None });
        assert!(e.reasons[0].starts_with("no rule matched udp 10.0.0.1:5000"));
    }

    #[test]
    fn explain_agrees_with_decide_under_changing_health() {
        let p = group_policy(
            4,
            &[(0, 1, 2), (1, 1, 1), (2, 2, 1), (3, 3, 5)],
            LastResort::MainTable,
            Some(30 * S),
        );
        let t = StickyTable::new(16, 2, 5);
        let mut sel = Selector::new(&p);
        let states = [Up, Degraded, Down];
        for i in 0..400u32 {
            let h: Vec<LinkState> = (0..4)
                .map(|k| states[((i / 7 + k * (i % 5)) % 3) as usize])
                .collect();
            let f = flow(i % 23);
            let now = Duration::from_millis(u64::from(i) * 300);
            let e = sel.explain(&p, &h, &t, &f, now);
            let d = sel.decide(&p, &h, &t, &f, now);
            assert_eq!(e.decision, d, "step {i} health {h:?}\n{e}");
        }
    }
}
