//! Property tests over the public API.

#![allow(clippy::unwrap_used)]

use std::net::Ipv4Addr;
use std::time::Duration;

use balancer::{
    Action, Decision, FlowInfo, Group, GroupId, LastResort, LinkState, Match, Member, Policy, Rule,
    Selector, StickyTable, WanId, PROTO_UDP,
};
use proptest::prelude::*;

fn flow(src: u32) -> FlowInfo {
    FlowInfo {
        src: Ipv4Addr::from(0x0a00_0000 + src),
        dst: Ipv4Addr::new(1, 1, 1, 1),
        proto: PROTO_UDP,
        src_port: 4000,
        dst_port: 53,
        ingress: 0,
    }
}

fn policy(members: Vec<Member>, n_wans: usize, sticky: Option<Duration>) -> Policy {
    let group = Group {
        name: "g".into(),
        members,
        last_resort: LastResort::Unreachable,
    };
    let rule = Rule {
        name: "all".into(),
        matches: Match::default(),
        action: Action::Group(GroupId(0)),
        sticky,
    };
    let names = (0..n_wans).map(|i| format!("wan{i}")).collect();
    Policy::new(names, vec![group], vec![rule]).unwrap()
}

fn link_state() -> impl Strategy<Value = LinkState> {
    prop_oneof![
        Just(LinkState::Up),
        Just(LinkState::Degraded),
        Just(LinkState::Down)
    ]
}

proptest! {
    #[test]
    fn exact_proportions(weights in prop::collection::vec(1u32..=20, 1..=6), k in 1u32..=4) {
        let n = weights.len();
        let members = weights
            .iter()
            .enumerate()
            .map(|(i, &weight)| Member { wan: WanId(i as u8), tier: 1, weight })
            .collect();
        let p = policy(members, n, None);
        let mut sel = Selector::new(&p);
        let t = StickyTable::new(0, 1, 0);
        let health = vec![LinkState::Up; n];
        let total: u32 = weights.iter().sum();
        let mut counts = vec![0u32; n];
        for i in 0..total * k {
            let wan = sel.decide(&p, &health, &t, &flow(i), Duration::ZERO).wan().unwrap();
            counts[usize::from(wan.0)] += 1;
        }
        let want: Vec<u32> = weights.iter().map(|w| w * k).collect();
        prop_assert_eq!(counts, want);
    }

    #[test]
    fn never_a_down_wan(
        members in prop::collection::vec((1u8..=3, 1u32..=5), 1..=8),
        healths in prop::collection::vec(prop::collection::vec(link_state(), 0..=8), 1..=20),
        sticky in any::<bool>(),
        sources in 1u32..=5,
    ) {
        let n = members.len();
        let members: Vec<Member> = members
            .into_iter()
            .enumerate()
            .map(|(i, (tier, weight))| Member { wan: WanId(i as u8), tier, weight })
            .collect();
        let p = policy(members.clone(), n, sticky.then_some(Duration::from_secs(30)));
        let mut sel = Selector::new(&p);
        let t = StickyTable::new(3, 2, 1);
        for (step, health) in healths.iter().enumerate() {
            let state = |w: WanId| health.get(usize::from(w.0)).copied().unwrap_or(LinkState::Down);
            let usable: Vec<&Member> = members.iter().filter(|m| state(m.wan) != LinkState::Down).collect();
            let best_tier = usable.iter().map(|m| m.tier).min();
            for s in 0..sources * 3 {
                let now = Duration::from_secs(step as u64);
                let f = flow(s % sources);
                let explained = sel.explain(&p, health, &t, &f, now);
                let d = sel.decide(&p, health, &t, &f, now);
                prop_assert_eq!(explained.decision, d);
                match d {
                    Decision::Wan { wan, eligible, .. } => {
                        prop_assert!(state(wan) != LinkState::Down, "picked down {:?}", wan);
                        prop_assert!(eligible.contains(wan));
                        let m = members.iter().find(|m| m.wan == wan).unwrap();
                        prop_assert_eq!(Some(m.tier), best_tier, "not the active tier");
                        for e in eligible {
                            prop_assert_eq!(state(e), state(wan), "mixed states in eligible");
                        }
                        let tier_has_up = usable.iter().any(|m| Some(m.tier) == best_tier && state(m.wan) == LinkState::Up);
                        if tier_has_up {
                            prop_assert_eq!(state(wan), LinkState::Up);
                        }
                    }
                    other => {
                        prop_assert!(usable.is_empty(), "{:?} with usable members", other);
                        prop_assert_eq!(other, Decision::Unreachable { rule: balancer::RuleId(0), last_resort: true });
                    }
                }
            }
        }
    }

    #[test]
    fn policy_new_never_panics(
        n_wans in 0usize..=70,
        groups in prop::collection::vec(prop::collection::vec((0u8..=70, any::<u8>(), 0u32..=3), 0..=4), 0..=3),
        actions in prop::collection::vec((0u8..=5, 0u16..=4), 0..=5),
        first in any::<u16>(),
        last in any::<u16>(),
    ) {
        let groups: Vec<Group> = groups
            .into_iter()
            .map(|ms| Group {
                name: "g".into(),
                members: ms.into_iter().map(|(w, tier, weight)| Member { wan: WanId(w), tier, weight }).collect(),
                last_resort: LastResort::MainTable,
            })
            .collect();
        let rules: Vec<Rule> = actions
            .into_iter()
            .map(|(kind, idx)| Rule {
                name: "r".into(),
                matches: Match { dst_ports: vec![balancer::PortRange { first, last }], ..Match::default() },
                action: match kind {
                    0 => Action::Group(GroupId(idx)),
                    1 => Action::Wan(WanId(idx as u8)),
                    2 => Action::MainTable,
                    3 => Action::Blackhole,
                    _ => Action::Unreachable,
                },
                sticky: Some(Duration::from_secs(1)),
            })
            .collect();
        let names = (0..n_wans).map(|i| format!("wan{i}")).collect();
        if let Ok(p) = Policy::new(names, groups, rules) {
            let mut sel = Selector::new(&p);
            let t = StickyTable::new(4, 1, 0);
            let health = vec![LinkState::Up; n_wans];
            for i in 0..4 {
                let f = FlowInfo { dst_port: first, ..flow(i) };
                let d = sel.decide(&p, &health, &t, &f, Duration::ZERO);
                prop_assert_eq!(sel.explain(&p, &health, &t, &f, Duration::ZERO).decision.kind(), d.kind());
            }
        }
    }
}
