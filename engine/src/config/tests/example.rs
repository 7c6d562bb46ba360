//! The shipped example parses, and what it says arrives in the model.

use std::net::Ipv4Addr;
use std::time::Duration;

use super::ok;
use crate::config::{ConntrackConfig, GroupMember, LastResort, OnFull, RuleAction, Timeouts};

const EXAMPLE: &str = include_str!("../../../../examples/fwd.toml");

#[test]
fn example_parses_with_expected_counts() {
    let c = ok(EXAMPLE);
    assert_eq!(c.lans.len(), 2);
    assert_eq!(c.wans.len(), 3);
    assert_eq!(c.groups.len(), 2);
    assert_eq!(c.rules.len(), 6);
}

#[test]
fn example_values_reach_the_model() {
    let c = ok(EXAMPLE);
    let lan = &c.lans[0];
    assert_eq!(lan.name, "lan");
    assert_eq!(lan.interface, "veth-lan");
    assert_eq!(lan.address, Ipv4Addr::new(192, 168, 1, 1));
    assert_eq!(lan.subnet, "192.168.1.0/24".parse().unwrap());
    assert_eq!(lan.extra_subnets, vec!["10.20.0.0/16".parse().unwrap()]);

    let isp1 = &c.wans[0];
    assert_eq!(isp1.gateway, Ipv4Addr::new(198, 51, 100, 1));
    assert_eq!(isp1.subnet, "198.51.100.0/30".parse().unwrap());
    assert_eq!((isp1.weight, isp1.tier), (3, 1));
    assert_eq!(isp1.nat_ports, 20000..=59999);
    let lte = &c.wans[2];
    assert_eq!((lte.weight, lte.tier), (1, 2));
    assert_eq!(lte.nat_ports, 32768..=49151);
    // link health: the defaults for isp1, the LTE modem's own HTTP probe over them
    assert_eq!(c.health.on_wan_down, crate::config::OnWanDown::Migrate);
    let isp1_probe = isp1.probe.as_ref().unwrap();
    assert_eq!((isp1_probe.targets.len(), isp1_probe.reliability), (3, 2));
    assert_eq!(isp1_probe.loss_down_pct, Some(50.0));
    let lte_probe = lte.probe.as_ref().unwrap();
    assert_eq!(
        lte_probe.method,
        prober::core::Method::Http {
            port: 80,
            path: "/generate_204".into(),
            expect_status: 204
        }
    );
    assert_eq!(
        (lte_probe.reliability, lte_probe.interval),
        (1, Duration::from_secs(1))
    );
    assert_eq!(
        lte_probe.latency_degraded, isp1_probe.latency_degraded,
        "inherited"
    );

    let balanced = &c.groups[0];
    assert_eq!(balanced.last_resort, LastResort::Unreachable);
    assert_eq!(
        balanced.members,
        vec![
            GroupMember {
                wan: 0,
                weight: 3,
                tier: 1
            },
            GroupMember {
                wan: 1,
                weight: 1,
                tier: 1
            },
            GroupMember {
                wan: 2,
                weight: 1,
                tier: 2
            },
        ]
    );
    assert_eq!(c.groups[1].last_resort, LastResort::MainTable);
    assert_eq!(
        c.groups[1].members[1],
        GroupMember {
            wan: 0,
            weight: 3,
            tier: 2
        }
    );

    let actions: Vec<RuleAction> = c.rules.iter().map(|r| r.action).collect();
    assert_eq!(
        actions,
        vec![
            RuleAction::MainTable,
            RuleAction::Blackhole,
            RuleAction::Group(1),
            RuleAction::Group(1),
            RuleAction::Wan(0),
            RuleAction::Group(0),
        ]
    );
    let dns = &c.rules[2];
    assert_eq!(dns.name, "dns-via-isp2");
    assert_eq!(dns.proto, Some(17));
    assert_eq!(dns.src_ports, vec![1024..=65535]);
    assert_eq!(dns.dst_ports, vec![53..=53, 853..=853]);
    assert_eq!(dns.ingress, vec![0]);
    assert_eq!(dns.sticky, None);
    assert_eq!(c.rules[1].dst_ports, vec![445..=445, 137..=139]);
    assert_eq!(
        c.rules[3].src,
        vec![
            "192.168.1.20/32".parse().unwrap(),
            "192.168.1.21/32".parse().unwrap()
        ]
    );
    assert_eq!(c.rules[3].sticky, Some(Duration::from_secs(7200)));
    assert_eq!(c.rules[4].ingress, vec![1]);
    assert_eq!(c.rules[5].sticky, Some(Duration::from_secs(600)));
    assert_eq!(c.rules[5].proto, None);
    let [nas] = &c.forwards[..] else {
        panic!("{:?}", c.forwards);
    };
    assert_eq!(
        (nas.name.as_str(), &nas.wans, &nas.protos),
        ("nas-https", &vec![0, 1], &vec![6])
    );
    assert_eq!(
        (nas.ports.clone(), nas.to_port, nas.lan),
        (8443..=8443, 443, 0)
    );
}

#[test]
fn example_conntrack_section_spells_out_the_defaults() {
    let c = ok(EXAMPLE);
    assert_eq!(c.conntrack, ConntrackConfig::default());
    assert_eq!(
        c.conntrack,
        ConntrackConfig {
            max_sessions: 262_144,
            shards: 64,
            on_full: OnFull::Evict,
            max_fragments: 4096,
            fragment_timeout: Duration::from_secs(30),
            sticky_max: 65_536,
            max_sessions_per_host: 16_384,
            max_ports_per_host: 8192,
            timeouts: Timeouts {
                udp: Duration::from_secs(300),
                icmp: Duration::from_secs(60),
                tcp_established: Duration::from_secs(7440),
                tcp_transitory: Duration::from_secs(240),
                tcp_closed: Duration::from_secs(240),
            },
        }
    );
}

#[test]
fn lan_for_and_wan_by_address() {
    let c = ok(EXAMPLE);
    assert_eq!(c.lan_for(Ipv4Addr::new(192, 168, 1, 77)), Some(0));
    assert_eq!(
        c.lan_for(Ipv4Addr::new(10, 20, 3, 4)),
        Some(0),
        "extra subnet"
    );
    assert_eq!(c.lan_for(Ipv4Addr::new(192, 168, 50, 9)), Some(1));
    assert_eq!(c.lan_for(Ipv4Addr::new(192, 168, 2, 1)), None);
    assert_eq!(c.lan_for(Ipv4Addr::new(198, 51, 100, 2)), None);
    assert_eq!(c.wan_by_address(Ipv4Addr::new(198, 51, 100, 2)), Some(0));
    assert_eq!(c.wan_by_address(Ipv4Addr::new(203, 0, 113, 10)), Some(1));
    assert_eq!(c.wan_by_address(Ipv4Addr::new(100, 64, 7, 21)), Some(2));
    assert_eq!(
        c.wan_by_address(Ipv4Addr::new(198, 51, 100, 1)),
        None,
        "gateway"
    );
}
