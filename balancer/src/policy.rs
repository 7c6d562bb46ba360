//! The policy: WAN names, groups and ordered rules, validated once and
//! immutable afterwards (workers share it through an `Arc`).

use crate::error::PolicyError;
use crate::group::{Group, GroupLayout};
use crate::ids::{GroupId, RuleId, WanId, WanSet, MAX_WANS};
use crate::matcher::{FlowInfo, Match};
use std::time::Duration;

/// What a matching rule does with a new flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Balance over a group.
    Group(GroupId),
    /// Use one WAN (unreachable when it is down).
    Wan(WanId),
    /// Hand the flow to the kernel's main routing table.
    MainTable,
    /// Drop silently.
    Blackhole,
    /// Reject.
    Unreachable,
}

/// One policy rule. Rules are tried in order; the first match wins.
#[derive(Clone, Debug)]
pub struct Rule {
    /// Name, for messages.
    pub name: String,
    /// What the rule matches.
    pub matches: Match,
    /// What it does.
    pub action: Action,
    /// Keep a source address on the WAN it was given for this long after
    /// its last new flow. Only meaningful for `Action::Group` (an
    /// `Action::Wan` rule always answers its one WAN anyway).
    pub sticky: Option<Duration>,
}

/// Validated, immutable policy.
#[derive(Clone, Debug)]
pub struct Policy {
    wan_names: Vec<String>,
    groups: Vec<Group>,
    rules: Vec<Rule>,
    layouts: Vec<GroupLayout>,
    member_count: usize,
}

/// Largest number of rules (`RuleId` is a `u16`).
pub const MAX_RULES: usize = u16::MAX as usize;
/// Largest number of groups (`GroupId` is a `u16`).
pub const MAX_GROUPS: usize = u16::MAX as usize + 1;

impl Policy {
    /// Validates and builds a policy.
    ///
    /// Refuses: more than 64 WANs, more than 65,535 rules or 65,536 groups,
    /// empty groups, members naming unknown WANs, zero weights, a WAN twice in
    /// one group, rule actions naming unknown groups or WANs, and port ranges
    /// whose first port is above the last.
    pub fn new(
        wan_names: Vec<String>,
        groups: Vec<Group>,
        rules: Vec<Rule>,
    ) -> Result<Policy, PolicyError> {
        if wan_names.len() > MAX_WANS {
            return Err(PolicyError::TooManyWans {
                count: wan_names.len(),
            });
        }
        if groups.len() > MAX_GROUPS {
            return Err(PolicyError::TooManyGroups {
                count: groups.len(),
            });
        }
        if rules.len() > MAX_RULES {
            return Err(PolicyError::TooManyRules { count: rules.len() });
        }
        let wan_name = |w: WanId| -> String {
            wan_names
                .get(usize::from(w.0))
                .cloned()
                .unwrap_or_else(|| format!("wan{}", w.0))
        };
        for (gi, g) in groups.iter().enumerate() {
            if g.members.is_empty() {
                return Err(PolicyError::EmptyGroup {
                    group: gi,
                    name: g.name.clone(),
                });
            }
            let mut seen = WanSet::EMPTY;
            for (mi, m) in g.members.iter().enumerate() {
                if usize::from(m.wan.0) >= wan_names.len() {
                    return Err(PolicyError::UnknownMemberWan {
                        group: gi,
                        name: g.name.clone(),
                        member: mi,
                        wan: m.wan.0,
                        wan_count: wan_names.len(),
                    });
                }
                if m.weight == 0 {
                    return Err(PolicyError::ZeroWeight {
                        group: gi,
                        name: g.name.clone(),
                        member: mi,
                        wan: wan_name(m.wan),
                    });
                }
                if seen.contains(m.wan) {
                    return Err(PolicyError::DuplicateMember {
                        group: gi,
                        name: g.name.clone(),
                        wan: wan_name(m.wan),
                    });
                }
                seen.insert(m.wan);
            }
        }
        for (ri, r) in rules.iter().enumerate() {
            match r.action {
                Action::Group(g) if usize::from(g.0) >= groups.len() => {
                    return Err(PolicyError::UnknownGroup {
                        rule: ri,
                        name: r.name.clone(),
                        group: g.0,
                        group_count: groups.len(),
                    });
                }
                Action::Wan(w) if usize::from(w.0) >= wan_names.len() => {
                    return Err(PolicyError::UnknownRuleWan {
                        rule: ri,
                        name: r.name.clone(),
                        wan: w.0,
                        wan_count: wan_names.len(),
                    });
                }
                _ => {}
            }
            let mut ports = r.matches.src_ports.iter().chain(&r.matches.dst_ports);
            if let Some(p) = ports.find(|p| p.first > p.last) {
                return Err(PolicyError::BadPortRange {
                    rule: ri,
                    name: r.name.clone(),
                    first: p.first,
                    last: p.last,
                });
            }
        }

        let mut layouts = Vec::with_capacity(groups.len());
        let mut offset = 0usize;
        for g in &groups {
            layouts.push(GroupLayout::build(g, offset));
            offset += g.members.len();
        }
        Ok(Policy {
            wan_names,
            groups,
            rules,
            layouts,
            member_count: offset,
        })
    }

    /// The rules, in match order; `RuleId(i)` is `rules()[i]`.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The groups; `GroupId(i)` is `groups()[i]`.
    pub fn groups(&self) -> &[Group] {
        &self.groups
    }

    /// The WAN names; `WanId(i)` is `wan_names()[i]`.
    pub fn wan_names(&self) -> &[String] {
        &self.wan_names
    }

    /// The rule `id`, if it exists.
    pub fn rule(&self, id: RuleId) -> Option<&Rule> {
        self.rules.get(usize::from(id.0))
    }

    /// The group `id`, if it exists.
    pub fn group(&self, id: GroupId) -> Option<&Group> {
        self.groups.get(usize::from(id.0))
    }

    /// The name of `wan`, if it exists.
    pub fn wan_name(&self, wan: WanId) -> Option<&str> {
        self.wan_names.get(usize::from(wan.0)).map(String::as_str)
    }

    /// The first rule matching `flow`.
    pub fn match_rule(&self, flow: &FlowInfo) -> Option<RuleId> {
        self.rules
            .iter()
            .position(|r| r.matches.matches(flow))
            .and_then(|i| u16::try_from(i).ok())
            .map(RuleId)
    }

    /// Total members over all groups (round-robin counters a `Selector`
    /// keeps).
    pub(crate) fn member_count(&self) -> usize {
        self.member_count
    }

    pub(crate) fn layout(&self, id: GroupId) -> Option<(&Group, &GroupLayout)> {
        let i = usize::from(id.0);
        Some((self.groups.get(i)?, self.layouts.get(i)?))
    }

    /// Display name of `wan` (its configured name, or `wanN`).
    pub(crate) fn wan_label(&self, wan: WanId) -> String {
        match self.wan_name(wan) {
            Some(n) => n.to_owned(),
            None => format!("wan{}", wan.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::{LastResort, Member};
    use crate::matcher::{PortRange, PROTO_TCP, PROTO_UDP};
    use std::net::Ipv4Addr;

    fn wans(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("isp{i}")).collect()
    }

    fn member(wan: u8, weight: u32) -> Member {
        Member {
            wan: WanId(wan),
            tier: 1,
            weight,
        }
    }

    fn group(name: &str, members: Vec<Member>) -> Group {
        Group {
            name: name.into(),
            members,
            last_resort: LastResort::Unreachable,
        }
    }

    fn rule(name: &str, matches: Match, action: Action) -> Rule {
        Rule {
            name: name.into(),
            matches,
            action,
            sticky: None,
        }
    }

    fn flow() -> FlowInfo {
        FlowInfo {
            src: Ipv4Addr::new(10, 0, 0, 1),
            dst: Ipv4Addr::new(1, 1, 1, 1),
            proto: PROTO_TCP,
            src_port: 1234,
            dst_port: 443,
            ingress: 0,
        }
    }

    #[test]
    fn accepts_valid_policy() {
        let p = Policy::new(
            wans(2),
            vec![group("all", vec![member(0, 1), member(1, 3)])],
            vec![rule("default", Match::default(), Action::Group(GroupId(0)))],
        )
        .unwrap();
        assert_eq!(p.rules().len(), 1);
        assert_eq!(p.groups().len(), 1);
        assert_eq!(p.wan_names(), &["isp0".to_string(), "isp1".to_string()]);
        assert_eq!(p.member_count(), 2);
        assert_eq!(p.wan_name(WanId(1)), Some("isp1"));
        assert_eq!(p.wan_name(WanId(2)), None);
    }

    #[test]
    fn rejects_zero_weight_naming_group_and_wan() {
        let e = Policy::new(
            wans(2),
            vec![group("fast", vec![member(0, 1), member(1, 0)])],
            vec![],
        )
        .unwrap_err();
        assert!(matches!(e, PolicyError::ZeroWeight { member: 1, .. }));
        let msg = e.to_string();
        assert!(
            msg.contains("'fast'") && msg.contains("'isp1'") && msg.contains("weight 0"),
            "{msg}"
        );
    }

    #[test]
    fn rejects_member_wan_out_of_range() {
        let e = Policy::new(wans(2), vec![group("g", vec![member(2, 1)])], vec![]).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("'g'") && msg.contains("WAN 2"), "{msg}");
    }

    #[test]
    fn rejects_empty_group() {
        let e = Policy::new(wans(1), vec![group("nobody", vec![])], vec![]).unwrap_err();
        assert!(e.to_string().contains("'nobody'"), "{e}");
    }

    #[test]
    fn rejects_duplicate_member() {
        let e = Policy::new(
            wans(1),
            vec![group("twice", vec![member(0, 1), member(0, 2)])],
            vec![],
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("'twice'") && e.to_string().contains("'isp0'"),
            "{e}"
        );
    }

    #[test]
    fn rejects_rule_group_out_of_range() {
        let e = Policy::new(
            wans(1),
            vec![group("g", vec![member(0, 1)])],
            vec![
                rule("ok", Match::default(), Action::Group(GroupId(0))),
                rule("video", Match::default(), Action::Group(GroupId(1))),
            ],
        )
        .unwrap_err();
        assert!(matches!(
            e,
            PolicyError::UnknownGroup {
                rule: 1,
                group: 1,
                ..
            }
        ));
        assert!(e.to_string().contains("rule 1 'video'"), "{e}");
    }

    #[test]
    fn rejects_rule_wan_out_of_range() {
        let e = Policy::new(
            wans(1),
            vec![],
            vec![rule("pin", Match::default(), Action::Wan(WanId(5)))],
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("rule 0 'pin'") && e.to_string().contains("WAN 5"),
            "{e}"
        );
    }

    #[test]
    fn rejects_reversed_port_range() {
        let m = Match {
            dst_ports: vec![PortRange {
                first: 90,
                last: 80,
            }],
            ..Match::default()
        };
        let e = Policy::new(wans(1), vec![], vec![rule("web", m, Action::MainTable)]).unwrap_err();
        assert!(
            e.to_string().contains("'web'") && e.to_string().contains("90-80"),
            "{e}"
        );
    }

    #[test]
    fn rejects_too_many_wans_and_rules() {
        assert!(matches!(
            Policy::new(wans(65), vec![], vec![]),
            Err(PolicyError::TooManyWans { count: 65 })
        ));
        assert!(Policy::new(wans(64), vec![], vec![]).is_ok());
        let many = vec![rule("r", Match::default(), Action::MainTable); MAX_RULES + 1];
        assert!(matches!(
            Policy::new(wans(1), vec![], many),
            Err(PolicyError::TooManyRules { .. })
        ));
    }

    #[test]
    fn first_match_wins_and_no_match_is_none() {
        let udp = Match {
            proto: Some(PROTO_UDP),
            ..Match::default()
        };
        let tcp443 = Match {
            proto: Some(PROTO_TCP),
            dst_ports: vec![PortRange::single(443)],
            ..Match::default()
        };
        let tcp = Match {
            proto: Some(PROTO_TCP),
            ..Match::default()
        };
        let p = Policy::new(
            wans(1),
            vec![],
            vec![
                rule("udp", udp, Action::Blackhole),
                rule("https", tcp443, Action::MainTable),
                rule("tcp", tcp, Action::Unreachable),
            ],
        )
        .unwrap();
        assert_eq!(p.match_rule(&flow()), Some(RuleId(1)));
        assert_eq!(
            p.match_rule(&FlowInfo {
                dst_port: 80,
                ..flow()
            }),
            Some(RuleId(2))
        );
        assert_eq!(
            p.match_rule(&FlowInfo {
                proto: PROTO_UDP,
                ..flow()
            }),
            Some(RuleId(0))
        );
        assert_eq!(p.match_rule(&FlowInfo { proto: 1, ..flow() }), None);
    }
}
