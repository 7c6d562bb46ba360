//! Unit tests of the pure parts: message building, descriptions, sysctl values, the plan,
//! validation and the conflict checks. The live tests are in `engine/tests/steering_netns.rs`.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteMessage, RouteProtocol, RouteScope,
};
use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleMessage, RulePortRange};
use netlink_packet_route::{IpProtocol, RouteNetlinkMessage};

use super::plan::{self, Observed, Step};
use super::routes::RouteSpec;
use super::rules::{self, Proto, RuleSpec, TABLE_LOCAL, TABLE_MAIN};
use super::sysctl::{self, Key};
use super::*;

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn spec() -> SteeringSpec {
    SteeringSpec {
        lans: vec![LanSteer {
            device: "lan0".into(),
            tun: "fwdl0".into(),
            closed: vec!["192.168.1.0/24".parse().unwrap()],
        }],
        wans: vec![
            WanSteer {
                device: "wan0".into(),
                tun: "fwdw0".into(),
                address: ip("10.0.0.2"),
                gateway: ip("10.0.0.1"),
                nat_ports: 20000..=29999,
                forwards: Vec::new(),
            },
            WanSteer {
                device: "wan1".into(),
                tun: "fwdw1".into(),
                address: ip("10.1.0.2"),
                gateway: ip("10.1.0.1"),
                nat_ports: 30000..=39999,
                forwards: Vec::new(),
            },
        ],
        ..SteeringSpec::default()
    }
}

/// A fresh router: forwarding off, strict `all.rp_filter` (wan0 loose on its own, the
/// others off), two reserved entries, TUNs down.
fn pristine(spec: &SteeringSpec) -> Observed {
    let mut sysctls = BTreeMap::new();
    for key in plan::sysctl_keys(spec) {
        sysctls.insert(key, "0".to_string());
    }
    sysctls.insert(Key::conf("all", "rp_filter"), "1".into());
    sysctls.insert(Key::reserved_ports(), "1024,8080-8090".into());
    for dev in ["fwdl0", "fwdw0", "fwdw1", "wan0"] {
        sysctls.insert(Key::conf(dev, "rp_filter"), "2".into());
    }
    Observed {
        sysctls,
        up: Default::default(),
        local_at_zero: true,
    }
}

fn lines(steps: &[Step]) -> Vec<String> {
    steps.iter().map(ToString::to_string).collect()
}

/// Serializes and parses back a message, as the kernel would read it.
fn round_trip(inner: RouteNetlinkMessage) -> RouteNetlinkMessage {
    let mut msg = NetlinkMessage::new(
        NetlinkHeader::default(),
        NetlinkPayload::InnerMessage(inner),
    );
    msg.finalize();
    let mut buf = vec![0; msg.buffer_len()];
    msg.serialize(&mut buf);
    match NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf)
        .unwrap()
        .payload
    {
        NetlinkPayload::InnerMessage(m) => m,
        other => panic!("unexpected payload {other:?}"),
    }
}

#[test]
fn plan_for_one_lan_two_wans() {
    let spec = spec();
    plan::validate(&spec).unwrap();
    let expected = [
        "link fwdl0 up",
        "link fwdw0 up",
        "link fwdw1 up",
        "sysctl net.ipv4.ip_forward = 1 (was 0)",
        "sysctl net.ipv4.conf.lan0.rp_filter = 1 (was 0)",
        "sysctl net.ipv4.conf.wan1.rp_filter = 1 (was 0)",
        "sysctl net.ipv4.conf.all.rp_filter = 0 (was 1)",
        "sysctl net.ipv4.conf.fwdl0.rp_filter = 0 (was 2)",
        "sysctl net.ipv4.conf.fwdl0.accept_local = 1 (was 0)",
        "sysctl net.ipv4.conf.fwdw0.rp_filter = 0 (was 2)",
        "sysctl net.ipv4.conf.fwdw0.accept_local = 1 (was 0)",
        "sysctl net.ipv4.conf.fwdw1.rp_filter = 0 (was 2)",
        "sysctl net.ipv4.conf.fwdw1.accept_local = 1 (was 0)",
        "sysctl net.ipv4.ip_local_reserved_ports = 1024,8080-8090,20000-29999,30000-39999 \
         (was 1024,8080-8090)",
        "route table 4200 default dev fwdl0 scope link",
        "route table 4201 default via 10.0.0.1 dev wan0 onlink",
        "route table 4300 default dev fwdw0 scope link",
        "route table 4202 default via 10.1.0.1 dev wan1 onlink",
        "route table 4301 default dev fwdw1 scope link",
        "rule pref 300 lookup local",
        "delete rule pref 0 lookup local",
        "rule pref 100 to 10.0.0.2/32 dport 1-19999 lookup local",
        "rule pref 101 to 10.0.0.2/32 dport 30000-65534 lookup local",
        "rule pref 102 iif wan0 to 10.0.0.2/32 ipproto tcp lookup 4300",
        "rule pref 103 iif wan0 to 10.0.0.2/32 ipproto udp lookup 4300",
        "rule pref 104 iif wan0 to 10.0.0.2/32 ipproto icmp lookup 4300",
        "rule pref 105 to 10.1.0.2/32 dport 1-29999 lookup local",
        "rule pref 106 to 10.1.0.2/32 dport 40000-65534 lookup local",
        "rule pref 107 iif wan1 to 10.1.0.2/32 ipproto tcp lookup 4301",
        "rule pref 108 iif wan1 to 10.1.0.2/32 ipproto udp lookup 4301",
        "rule pref 109 iif wan1 to 10.1.0.2/32 ipproto icmp lookup 4301",
        "rule pref 110 iif lan0 to 10.0.0.2/32 ipproto tcp lookup 4200",
        "rule pref 111 iif lan0 to 10.0.0.2/32 ipproto udp lookup 4200",
        "rule pref 112 iif lan0 to 10.0.0.2/32 ipproto icmp lookup 4200",
        "rule pref 113 iif lan0 to 10.1.0.2/32 ipproto tcp lookup 4200",
        "rule pref 114 iif lan0 to 10.1.0.2/32 ipproto udp lookup 4200",
        "rule pref 115 iif lan0 to 10.1.0.2/32 ipproto icmp lookup 4200",
        "rule pref 1000 iif lan0 lookup main suppress_prefixlength 0",
        "rule pref 1001 iif lan0 lookup 4200",
        "rule pref 1002 iif wan0 to 192.168.1.0/24 lookup 4300",
        "rule pref 1003 iif wan0 to 192.168.1.0/24 blackhole",
        "rule pref 1004 iif fwdw0 lookup 4201",
        "rule pref 1005 from 10.0.0.2/32 lookup main suppress_prefixlength 0",
        "rule pref 1006 from 10.0.0.2/32 lookup 4201",
        "rule pref 1007 iif wan1 to 192.168.1.0/24 lookup 4301",
        "rule pref 1008 iif wan1 to 192.168.1.0/24 blackhole",
        "rule pref 1009 iif fwdw1 lookup 4202",
        "rule pref 1010 from 10.1.0.2/32 lookup main suppress_prefixlength 0",
        "rule pref 1011 from 10.1.0.2/32 lookup 4202",
    ];
    assert_eq!(lines(&plan::plan(&spec, &pristine(&spec))), expected);
}

#[test]
fn the_kernel_keeps_the_ports_around_each_nat_range_up_to_65534() {
    // A rule's port range cannot end at 65535: a NAT range up to the top leaves the kernel
    // the ports below it only; one ending at 65533 leaves it 65534 as well.
    let mut spec = spec();
    spec.wans[0].nat_ports = 1024..=65535;
    spec.wans[1].nat_ports = 30000..=65533;
    plan::validate(&spec).unwrap();
    let local: Vec<String> = lines(&plan::plan(&spec, &pristine(&spec)))
        .into_iter()
        .filter(|l| l.contains("dport"))
        .collect();
    assert_eq!(
        local,
        [
            "rule pref 100 to 10.0.0.2/32 dport 1-1023 lookup local",
            "rule pref 104 to 10.1.0.2/32 dport 1-29999 lookup local",
            "rule pref 105 to 10.1.0.2/32 dport 65534-65534 lookup local",
        ]
    );
}

#[test]
fn forwarded_ports_go_to_fwd_from_the_wan_and_the_lans_before_the_kernels_ports() {
    let mut spec = spec();
    spec.wans[0].forwards = vec![(Proto::Tcp, 80..=80), (Proto::Udp, 65000..=65535)];
    plan::validate(&spec).unwrap();
    let rules: Vec<String> = plan::forward_rules(&spec)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        rules,
        [
            "rule pref 99 iif wan0 to 10.0.0.2/32 ipproto tcp dport 80-80 lookup 4300",
            "rule pref 99 iif lan0 to 10.0.0.2/32 ipproto tcp dport 80-80 lookup 4200",
            "rule pref 99 iif wan0 to 10.0.0.2/32 ipproto udp dport 65000-65534 lookup 4300",
            "rule pref 99 iif lan0 to 10.0.0.2/32 ipproto udp dport 65000-65534 lookup 4200",
        ]
    );
    // the plan's own rules are those of a spec without forwards
    let mut bare = spec.clone();
    bare.wans[0].forwards.clear();
    assert_eq!(
        lines(&plan::plan(&spec, &pristine(&spec))),
        lines(&plan::plan(&bare, &pristine(&bare)))
    );
    // none with AF_XDP: the program's map takes the forwarded ports
    spec.xdp = true;
    assert!(plan::forward_rules(&spec).is_empty());
}

#[test]
fn ten_wans_and_five_lans_fit_the_default_prefs() {
    let mut spec = spec();
    spec.lans = (0..5)
        .map(|i| LanSteer {
            device: format!("lan{i}"),
            tun: format!("fwdl{i}"),
            closed: Vec::new(),
        })
        .collect();
    spec.wans = (0..10u8)
        .map(|j| WanSteer {
            device: format!("wan{j}"),
            tun: format!("fwdw{j}"),
            address: Ipv4Addr::new(10, j, 0, 2),
            gateway: Ipv4Addr::new(10, j, 0, 1),
            nat_ports: 20000..=29999,
            forwards: Vec::new(),
        })
        .collect();
    plan::validate(&spec).unwrap();
    let early = lines(&plan::plan(&spec, &pristine(&spec)))
        .iter()
        .filter_map(|l| {
            l.strip_prefix("rule pref ")?
                .split(' ')
                .next()?
                .parse::<u32>()
                .ok()
        })
        .filter(|pref| (DEFAULT_EARLY_PREF..DEFAULT_LOCAL_PREF).contains(pref))
        .count();
    assert_eq!(early, 10 * 5 + 5 * 10 * 3, "early rules");
    spec.lans.push(LanSteer {
        device: "lan5".into(),
        tun: "fwdl5".into(),
        closed: Vec::new(),
    });
    match plan::validate(&spec) {
        Err(SteeringError::Spec(m)) => assert!(m.contains("early rules"), "{m}"),
        other => panic!("a sixth LAN overflows the early prefs: {other:?}"),
    }
}

#[test]
fn plan_skips_what_is_already_so() {
    let spec = spec();
    let mut observed = pristine(&spec);
    observed.local_at_zero = false;
    observed.up = ["fwdl0", "fwdw0", "fwdw1"].map(String::from).into();
    for (key, value) in observed.sysctls.iter_mut() {
        *value = match key.to_string().as_str() {
            "net.ipv4.ip_forward" => "1",
            "net.ipv4.conf.all.rp_filter" => "0",
            "net.ipv4.ip_local_reserved_ports" => "20000-39999",
            k if k.ends_with("accept_local") => "1",
            _ => "0",
        }
        .to_string();
    }
    let steps = plan::plan(&spec, &observed);
    let text = lines(&steps);
    assert!(
        text.iter()
            .all(|l| !l.starts_with("link") && !l.starts_with("sysctl")),
        "{text:?}"
    );
    assert!(!steps.contains(&Step::DeleteLocalAtZero));
    assert!(
        !text.iter().any(|l| l == "rule pref 300 lookup local"),
        "{text:?}"
    );
    assert_eq!(text.len(), 5 + 16 + 12);
}

#[test]
fn all_rp_filter_goes_to_zero_after_raising_devices_below_it() {
    let devices = [("lan0", "0"), ("wan0", "2"), ("wan1", "1"), ("wan2", "")];
    assert_eq!(
        sysctl::rp_filter_handover("1", &devices),
        (vec!["lan0", "wan2"], 1)
    );
    assert_eq!(
        sysctl::rp_filter_handover("2\n", &devices),
        (vec!["lan0", "wan1", "wan2"], 2)
    );
    assert_eq!(sysctl::rp_filter_handover("0", &devices), (vec![], 0));
}

#[test]
fn reserved_ports_merge_keeps_entries_and_adds_what_is_missing() {
    let merge = sysctl::merge_reserved_ports;
    assert_eq!(
        merge("1024,8080-8090", &[20000..=29999]),
        "1024,8080-8090,20000-29999"
    );
    assert_eq!(
        merge("", &[20000..=29999, 30000..=39999]),
        "20000-29999,30000-39999"
    );
    // Already covered, by one entry or by several adjacent ones: unchanged.
    assert_eq!(merge("10000-40000", &[20000..=29999]), "10000-40000");
    assert_eq!(
        merge("20000-24999,25000-29999", &[20000..=29999]),
        "20000-24999,25000-29999"
    );
    // Partly covered: the whole range is added (the kernel merges overlaps).
    assert_eq!(
        merge("20000-21000", &[20000..=29999]),
        "20000-21000,20000-29999"
    );
    // The same range twice in the spec is added once; single ports print bare.
    assert_eq!(merge("", &[5000..=5000, 5000..=5000]), "5000");
    // Unparsable entries are kept verbatim.
    assert_eq!(merge("junk", &[1..=2]), "junk,1-2");
}

#[test]
fn reserved_ports_coverage() {
    let r = sysctl::parse_port_list("1024, 8080-8090,9000-9010,bad,5-3");
    assert_eq!(r, vec![(1024, 1024), (8080, 8090), (9000, 9010)]);
    assert!(sysctl::is_covered(&r, 8085, 8090));
    assert!(!sysctl::is_covered(&r, 8085, 8091));
    assert!(sysctl::is_covered(&[(1, 10), (11, 20)], 5, 15));
    assert!(!sysctl::is_covered(&[(1, 10), (12, 20)], 5, 15));
    assert!(sysctl::is_covered(&[(0, 65535)], 65535, 65535));
    assert!(!sysctl::is_covered(&[], 1, 1));
}

#[test]
fn sysctl_names_keep_dotted_devices_whole() {
    assert_eq!(
        Key::conf("eth0.100", "rp_filter").to_string(),
        "net.ipv4.conf.eth0/100.rp_filter"
    );
    assert_eq!(Key::ip_forward().to_string(), "net.ipv4.ip_forward");
}

fn attr<T>(msg: &RuleMessage, f: impl Fn(&RuleAttribute) -> Option<T>) -> Option<T> {
    msg.attributes.iter().find_map(f)
}

#[test]
fn inbound_rule_message() {
    let rule = RuleSpec {
        pref: 100,
        iif: Some("wan0".into()),
        to: Some(Ipv4Net::from(ip("10.0.0.2"))),
        proto: Some(Proto::Tcp),
        dports: Some(20000..=29999),
        ..RuleSpec::lookup(0, 4300)
    };
    let msg = rule.message();
    assert_eq!(msg.header.dst_len, 32);
    assert_eq!(msg.header.src_len, 0);
    assert_eq!(
        msg.header.table, 0,
        "a table above 255 goes in the attribute only"
    );
    let expected = [
        RuleAttribute::Priority(100),
        RuleAttribute::Table(4300),
        RuleAttribute::Protocol(RouteProtocol::Other(FWD_PROTO)),
        RuleAttribute::Iifname("wan0".into()),
        RuleAttribute::Destination(IpAddr::V4(ip("10.0.0.2"))),
        RuleAttribute::IpProtocol(IpProtocol::Tcp),
        RuleAttribute::DestinationPortRange(RulePortRange {
            start: 20000,
            end: 29999,
        }),
    ];
    assert_eq!(msg.attributes, expected);
    assert!(rules::is_ours(&msg));
    assert!(!rules::is_local_lookup(&msg));
    assert_eq!(rules::priority(&msg), 100);
    assert_eq!(rules::table(&msg), 4300);
    assert_eq!(
        round_trip(RouteNetlinkMessage::NewRule(msg.clone())),
        RouteNetlinkMessage::NewRule(msg)
    );
}

#[test]
fn closed_lan_blackhole_rule_message() {
    let rule = RuleSpec {
        pref: 1003,
        iif: Some("wan0".into()),
        to: Some("192.168.1.0/24".parse().unwrap()),
        action: rules::Action::Blackhole,
        ..RuleSpec::lookup(0, 0)
    };
    assert_eq!(
        rule.to_string(),
        "rule pref 1003 iif wan0 to 192.168.1.0/24 blackhole"
    );
    let msg = rule.message();
    assert_eq!(msg.header.action, RuleAction::Blackhole);
    assert_eq!(msg.header.dst_len, 24);
    let expected = [
        RuleAttribute::Priority(1003),
        RuleAttribute::Protocol(RouteProtocol::Other(FWD_PROTO)),
        RuleAttribute::Iifname("wan0".into()),
        RuleAttribute::Destination(IpAddr::V4(ip("192.168.1.0"))),
    ];
    assert_eq!(msg.attributes, expected, "no table");
    assert!(rules::is_ours(&msg));
    assert_eq!(
        rules::describe_dumped(&msg),
        "pref 1003 iif wan0 to 192.168.1.0/24 blackhole proto 245"
    );
    assert_eq!(
        round_trip(RouteNetlinkMessage::NewRule(msg.clone())),
        RouteNetlinkMessage::NewRule(msg)
    );
}

#[test]
fn icmp_suppress_and_source_rule_messages() {
    let icmp = RuleSpec {
        proto: Some(Proto::Icmp),
        to: Some(Ipv4Net::from(ip("10.0.0.2"))),
        ..RuleSpec::lookup(102, 4300)
    }
    .message();
    assert_eq!(
        attr(&icmp, |a| match a {
            RuleAttribute::IpProtocol(p) => Some(*p),
            _ => None,
        }),
        Some(IpProtocol::Icmp)
    );
    assert!(attr(&icmp, |a| matches!(
        a,
        RuleAttribute::DestinationPortRange(_)
    )
    .then_some(()))
    .is_none());

    let suppress = RuleSpec {
        iif: Some("lan0".into()),
        suppress_prefixlength: Some(0),
        ..RuleSpec::lookup(1000, TABLE_MAIN)
    }
    .message();
    assert_eq!(suppress.header.table, 254);
    assert_eq!(
        attr(&suppress, |a| match a {
            RuleAttribute::SuppressPrefixLen(n) => Some(*n),
            _ => None,
        }),
        Some(0)
    );

    let from = RuleSpec {
        from: Some(ip("10.1.0.2")),
        ..RuleSpec::lookup(1004, 4202)
    }
    .message();
    assert_eq!((from.header.src_len, from.header.dst_len), (32, 0));
    assert_eq!(
        attr(&from, |a| match a {
            RuleAttribute::Source(s) => Some(*s),
            _ => None,
        }),
        Some(IpAddr::V4(ip("10.1.0.2")))
    );

    let local = RuleSpec::lookup(200, TABLE_LOCAL).message();
    assert!(rules::is_local_lookup(&local));
    assert_eq!(local.header.table, 255);
    for msg in [icmp, suppress, from, local] {
        assert_eq!(
            round_trip(RouteNetlinkMessage::NewRule(msg.clone())),
            RouteNetlinkMessage::NewRule(msg)
        );
    }
}

#[test]
fn kernel_local_rule_restores_priority_zero() {
    let msg = kernel_local_rule();
    assert!(rules::is_local_lookup(&msg));
    assert!(!rules::is_ours(&msg));
    assert!(msg.attributes.contains(&RuleAttribute::Priority(0)));
    // A dumped pref-0 rule has no priority attribute; with_priority adds one, once.
    let mut dumped = msg.clone();
    dumped
        .attributes
        .retain(|a| !matches!(a, RuleAttribute::Priority(_)));
    let fixed = with_priority(with_priority(dumped, 0), 0);
    let count = fixed
        .attributes
        .iter()
        .filter(|a| matches!(a, RuleAttribute::Priority(_)))
        .count();
    assert_eq!(count, 1);
}

#[test]
fn route_messages() {
    let tun = RouteSpec {
        table: 4200,
        dev: "fwdl0".into(),
        via: None,
    };
    let msg = tun.message(7);
    assert_eq!(msg.header.scope, RouteScope::Link);
    assert_eq!(msg.header.table, 0);
    assert_eq!(msg.header.destination_prefix_length, 0);
    assert_eq!(u8::from(msg.header.protocol), FWD_PROTO);
    assert_eq!(
        msg.attributes,
        [RouteAttribute::Table(4200), RouteAttribute::Oif(7)]
    );
    assert!(routes::is_ours(&msg));
    assert_eq!(routes::table(&msg), 4200);
    assert_eq!(
        tun.to_string(),
        "route table 4200 default dev fwdl0 scope link"
    );

    let gw = RouteSpec {
        table: 4201,
        dev: "wan0".into(),
        via: Some(ip("10.0.0.1")),
    };
    let msg = gw.message(3);
    assert_eq!(msg.header.scope, RouteScope::Universe);
    assert!(msg.header.flags.contains(RouteFlags::Onlink));
    assert_eq!(
        msg.attributes,
        [
            RouteAttribute::Table(4201),
            RouteAttribute::Gateway(RouteAddress::Inet(ip("10.0.0.1"))),
            RouteAttribute::Oif(3),
        ]
    );
    assert_eq!(
        routes::describe_dumped(&msg),
        "route table 4201 default via 10.0.0.1 dev #3 proto 245"
    );
    for m in [tun.message(7), msg] {
        assert_eq!(
            round_trip(RouteNetlinkMessage::NewRoute(m.clone())),
            RouteNetlinkMessage::NewRoute(m)
        );
    }
}

#[test]
fn validation() {
    plan::validate(&SteeringSpec::default()).unwrap();
    let bad = |f: &dyn Fn(&mut SteeringSpec)| {
        let mut s = spec();
        f(&mut s);
        match plan::validate(&s) {
            Err(SteeringError::Spec(m)) => m,
            other => panic!("expected a spec error, got {other:?}"),
        }
    };
    assert!(bad(&|s| s.wans[1].tun = "fwdl0".into()).contains("fwdl0 appears twice"));
    assert!(bad(&|s| s.lans[0].device = "a-very-long-name0".into()).contains("bad interface"));
    assert!(bad(&|s| s.lans[0].device = "lan/0".into()).contains("bad interface"));
    assert!(bad(&|s| s.wans[1].address = ip("10.0.0.2")).contains("appears twice"));
    #[allow(clippy::reversed_empty_ranges)]
    let m = bad(&|s| s.wans[0].nat_ports = 30000..=20000);
    assert!(m.contains("NAT port range"));
    assert!(bad(&|s| s.table_base = 253).contains("reserved by the kernel"));
    assert!(bad(&|s| s.table_base = u32::MAX - 10).contains("too large"));
    // 16 early rules from 290 end past local_pref 300.
    assert!(bad(&|s| s.early_pref = 290).contains("early rules"));
    assert!(bad(&|s| s.early_pref = 285).contains("early rules"));
    assert!(bad(&|s| s.early_pref = 0).contains("early rules"));
    assert!(bad(&|s| s.late_pref = 150).contains("late rules"));
    assert!(bad(&|s| s.late_pref = 32760).contains("late rules"));
    let mut ok = spec();
    ok.early_pref = 284; // 284..=299
    plan::validate(&ok).unwrap();
}

fn dumped_rule(pref: u32, table: u32) -> RuleMessage {
    let mut msg = RuleSpec::lookup(pref, table).message();
    msg.attributes
        .retain(|a| !matches!(a, RuleAttribute::Protocol(_)));
    msg.attributes
        .push(RuleAttribute::Protocol(RouteProtocol::Kernel));
    msg
}

fn system_rules() -> Vec<RuleMessage> {
    vec![
        dumped_rule(0, TABLE_LOCAL),
        dumped_rule(32766, TABLE_MAIN),
        dumped_rule(32767, 253),
    ]
}

fn conflict(result: Result<(), SteeringError>) -> String {
    match result {
        Err(SteeringError::Conflict(m)) => m,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

#[test]
fn existing_rules_and_routes_in_the_way() {
    let spec = spec();
    plan::check_existing(&spec, &system_rules(), &[], true).unwrap();

    let mut rules = system_rules();
    rules.push(dumped_rule(105, 77));
    let m = conflict(plan::check_existing(&spec, &rules, &[], true));
    assert!(
        m.contains("pref 105 is taken by `pref 105 lookup 77 proto kernel`"),
        "{m}"
    );

    let mut rules = system_rules();
    rules.push(dumped_rule(300, 77));
    assert!(conflict(plan::check_existing(&spec, &rules, &[], true)).contains("pref 300"));
    // Pref 300 is free to others when fwd does not move the local rule.
    let mut rules = vec![dumped_rule(150, TABLE_LOCAL), dumped_rule(300, 77)];
    rules.push(dumped_rule(32766, TABLE_MAIN));
    plan::check_existing(&spec, &rules, &[], false).unwrap();

    let mut rules = system_rules();
    rules.push(dumped_rule(5000, 4301));
    assert!(conflict(plan::check_existing(&spec, &rules, &[], true)).contains("uses table 4301"));

    let mut route: RouteMessage = RouteSpec {
        table: 4202,
        dev: "x".into(),
        via: None,
    }
    .message(9);
    route.header.protocol = RouteProtocol::Static;
    let m = conflict(plan::check_existing(&spec, &system_rules(), &[route], true));
    assert!(m.contains("table 4202 is not empty"), "{m}");
}

#[test]
fn a_local_rule_moved_by_someone_else_must_sit_between_early_and_late_rules() {
    let spec = spec();
    let with_local_at = |pref| {
        vec![
            dumped_rule(pref, TABLE_LOCAL),
            dumped_rule(32766, TABLE_MAIN),
        ]
    };
    plan::check_existing(&spec, &with_local_at(116), &[], false).unwrap();
    plan::check_existing(&spec, &with_local_at(999), &[], false).unwrap();
    assert!(
        conflict(plan::check_existing(&spec, &with_local_at(50), &[], false))
            .contains("looked up at pref 50")
    );
    assert!(
        conflict(plan::check_existing(&spec, &with_local_at(115), &[], false)).contains("pref 115")
    );
    assert!(conflict(plan::check_existing(
        &spec,
        &with_local_at(1000),
        &[],
        false
    ))
    .contains("pref 1000"));
    assert!(conflict(plan::check_existing(
        &spec,
        &[dumped_rule(32766, TABLE_MAIN)],
        &[],
        false
    ))
    .contains("no IPv4 rule looks up the local table"));
}

#[test]
fn dumped_rule_description() {
    let msg = RuleSpec {
        iif: Some("lan0".into()),
        from: Some(ip("10.0.0.2")),
        proto: Some(Proto::Udp),
        dports: Some(1..=2),
        suppress_prefixlength: Some(0),
        ..RuleSpec::lookup(7, TABLE_MAIN)
    }
    .message();
    assert_eq!(
        rules::describe_dumped(&msg),
        "pref 7 iif lan0 from 10.0.0.2/32 ipproto udp dport 1-2 lookup main \
         suppress_prefixlength 0 proto 245"
    );
}

#[test]
fn extended_ack_reason() {
    use netlink_packet_core::{NLM_F_ACK_TLVS, NLM_F_CAPPED};
    // Capped: the request's 16-byte header, then NLMSGERR_ATTR_MSG.
    let mut payload = vec![0u8; 16];
    let text = b"Nexthop device is not up\0";
    let len = u16::try_from(4 + text.len()).unwrap();
    payload.extend_from_slice(&len.to_ne_bytes());
    payload.extend_from_slice(&1u16.to_ne_bytes());
    payload.extend_from_slice(text);
    let reason = netlink::ext_ack_reason(NLM_F_ACK_TLVS | NLM_F_CAPPED, &payload);
    assert_eq!(reason.as_deref(), Some("Nexthop device is not up"));
    assert_eq!(netlink::ext_ack_reason(NLM_F_CAPPED, &payload), None);
    // Not capped: the whole request (its length in its header) comes first.
    let mut uncapped = vec![0u8; 20];
    uncapped[..4].copy_from_slice(&20u32.to_ne_bytes());
    uncapped.extend_from_slice(&payload[16..]);
    let reason = netlink::ext_ack_reason(NLM_F_ACK_TLVS, &uncapped);
    assert_eq!(reason.as_deref(), Some("Nexthop device is not up"));
    // Truncated attributes are ignored, not read past.
    assert_eq!(
        netlink::ext_ack_reason(NLM_F_ACK_TLVS | NLM_F_CAPPED, &payload[..24]),
        None
    );
}

#[test]
fn errors_name_the_object_and_the_os_error() {
    let e = SteeringError::Netlink {
        what: "add route table 4200 default dev fwdw0 scope link".into(),
        source: io::Error::from_raw_os_error(libc::ENODEV).into(),
    };
    assert_eq!(
        e.to_string(),
        "add route table 4200 default dev fwdw0 scope link: No such device (os error 19)"
    );
    let e = SteeringError::Interface {
        role: "WAN device",
        name: "wan9".into(),
        source: io::Error::from_raw_os_error(libc::ENODEV).into(),
    };
    assert_eq!(
        e.to_string(),
        "WAN device wan9: No such device (os error 19)"
    );
}

/// With the AF_XDP backend the XDP program steers: only the sysctls, the kernel sinks up,
/// each WAN's table and the rules for traffic from its address; the local rule stays.
#[test]
fn plan_for_the_xdp_backend() {
    let spec = SteeringSpec {
        xdp: true,
        ..spec()
    };
    plan::validate(&spec).unwrap();
    let steps = plan::plan(&spec, &pristine(&spec));
    let all = lines(&steps);
    let routes_and_rules: Vec<&str> = all
        .iter()
        .map(String::as_str)
        .filter(|l| l.starts_with("route") || l.contains("rule"))
        .collect();
    assert_eq!(
        routes_and_rules,
        [
            "route table 4201 default via 10.0.0.1 dev wan0 onlink",
            "route table 4202 default via 10.1.0.1 dev wan1 onlink",
            "rule pref 1000 iif wan0 to 192.168.1.0/24 blackhole",
            "rule pref 1001 from 10.0.0.2/32 lookup main suppress_prefixlength 0",
            "rule pref 1002 from 10.0.0.2/32 lookup 4201",
            "rule pref 1003 iif wan1 to 192.168.1.0/24 blackhole",
            "rule pref 1004 from 10.1.0.2/32 lookup main suppress_prefixlength 0",
            "rule pref 1005 from 10.1.0.2/32 lookup 4202",
        ]
    );
    for wanted in [
        "link fwdl0 up",
        "sysctl net.ipv4.conf.fwdw1.rp_filter = 0 (was 2)",
        "sysctl net.ipv4.ip_local_reserved_ports = 1024,8080-8090,20000-29999,30000-39999 (was 1024,8080-8090)",
    ] {
        assert!(all.iter().any(|l| l == wanted), "{wanted} in {all:#?}");
    }
    // nothing of fwd's sits at the TUN steering's early prefs, so those stay free
    assert!(plan::check_existing(&spec, &[], &[], true).is_ok());
}
