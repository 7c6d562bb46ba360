//! `[[rule]]` tables.

use std::time::Duration;

use super::{assert_error, assert_has, errors, line_of, ok, with};
use crate::config::RuleAction;

/// Two WANs, a group "g" and a second LAN "lab", then `rules`.
fn rules(rules: &str) -> String {
    with(&format!(
        "[[lan]]\nname = \"lab\"\ninterface = \"eth5\"\naddress = \"10.9.0.1/16\"\n\
         [[group]]\nname = \"g\"\nmembers = [{{ wan = \"isp1\" }}, {{ wan = \"isp2\" }}]\n{rules}"
    ))
}

#[test]
fn full_rule_reaches_the_model() {
    let c = ok(&rules(
        "[[rule]]\nname = \"r\"\nproto = \"tcp\"\nsrc = [\"192.168.1.0/24\", \"10.9.1.2\"]\n\
         dst = [\"0.0.0.0/0\"]\nsrc_ports = [\"1024-65535\"]\ndst_ports = [80, \"443\", \"8000-8080\"]\n\
         ingress = [\"lab\", \"lan\", \"lab\"]\ngroup = \"g\"\nsticky = 600\n",
    ));
    let r = &c.rules[0];
    assert_eq!(r.name, "r");
    assert_eq!(r.proto, Some(6));
    assert_eq!(
        r.src,
        vec![
            "192.168.1.0/24".parse().unwrap(),
            "10.9.1.2/32".parse().unwrap()
        ]
    );
    assert_eq!(r.dst, vec!["0.0.0.0/0".parse().unwrap()]);
    assert_eq!(r.src_ports, vec![1024..=65535]);
    assert_eq!(r.dst_ports, vec![80..=80, 443..=443, 8000..=8080]);
    assert_eq!(r.ingress, vec![1, 0], "deduplicated, in order");
    assert_eq!(r.action, RuleAction::Group(0));
    assert_eq!(r.sticky, Some(Duration::from_secs(600)));
}

#[test]
fn minimal_rules_and_actions() {
    let c = ok(&rules(
        "[[rule]]\nname = \"a\"\nwan = \"isp2\"\n[[rule]]\nname = \"b\"\naction = \"main\"\n\
         [[rule]]\nname = \"c\"\naction = \"blackhole\"\n[[rule]]\nname = \"d\"\naction = \"unreachable\"\n\
         [[rule]]\nname = \"e\"\nproto = 47\naction = \"main\"\n[[rule]]\nname = \"f\"\nproto = \"udp\"\n\
         dst_ports = [\"53\"]\nwan = \"isp1\"\n",
    ));
    let actions: Vec<_> = c.rules.iter().map(|r| r.action).collect();
    assert_eq!(
        actions,
        vec![
            RuleAction::Wan(1),
            RuleAction::MainTable,
            RuleAction::Blackhole,
            RuleAction::Unreachable,
            RuleAction::MainTable,
            RuleAction::Wan(0),
        ]
    );
    let a = &c.rules[0];
    assert_eq!(a.proto, None);
    assert!(a.src.is_empty() && a.dst.is_empty() && a.ingress.is_empty());
    assert!(a.src_ports.is_empty() && a.dst_ports.is_empty());
    assert_eq!(a.sticky, None);
    assert_eq!(c.rules[4].proto, Some(47));
}

#[test]
fn unknown_references() {
    let text = rules("[[rule]]\nname = \"r\"\ngroup = \"nope\"\n");
    assert_error(
        &text,
        "\"nope\"",
        "rule \"r\".group",
        "unknown group \"nope\"; defined: \"g\"",
    );
    let text = rules("[[rule]]\nname = \"r\"\nwan = \"isp3\"\n");
    assert_error(
        &text,
        "\"isp3\"",
        "rule \"r\".wan",
        "unknown WAN \"isp3\"; defined: \"isp1\", \"isp2\"",
    );
    let text = rules("[[rule]]\nname = \"r\"\ningress = [\"lan\", \"dmz\"]\naction = \"main\"\n");
    assert_error(
        &text,
        "ingress",
        "rule \"r\".ingress[1]",
        "unknown LAN \"dmz\"; defined: \"lan\", \"lab\"",
    );
    let text = with("[[rule]]\nname = \"r\"\ngroup = \"g\"\n");
    assert_error(
        &text,
        "group = \"g\"",
        "rule \"r\".group",
        "no group is defined",
    );
}

#[test]
fn exactly_one_action() {
    let text = rules("[[rule]] # r\nname = \"r\"\nproto = \"tcp\"\n");
    assert_error(
        &text,
        "# r",
        "rule \"r\"",
        "no action: give exactly one of group",
    );
    let text = rules("[[rule]]\nname = \"r\"\ngroup = \"g\"\nwan = \"isp1\"\naction = \"main\"\n");
    let errs = errors(&text);
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert_has(
        &errs,
        Some(line_of(&text, "wan = \"isp1\"\naction")),
        "rule \"r\".wan",
        "several actions (group, wan, action): give exactly one of group, wan or action",
    );
    assert_has(
        &errs,
        Some(line_of(&text, "action = \"main\"")),
        "rule \"r\".action",
        "several actions",
    );
}

#[test]
fn unknown_action_lists_the_allowed_values() {
    let text = rules("[[rule]]\nname = \"r\"\naction = \"drop\"\n");
    assert_error(
        &text,
        "\"drop\"",
        "rule \"r\".action",
        "unknown value \"drop\"; expected one of \"main\", \"blackhole\", \"unreachable\"",
    );
}

#[test]
fn sticky_only_with_group_or_wan() {
    let text = rules("[[rule]]\nname = \"r\"\naction = \"main\"\nsticky = \"10m\"\n");
    assert_error(
        &text,
        "\"10m\"",
        "rule \"r\".sticky",
        "sticky is only allowed with group or wan (this rule's action is \"main\")",
    );
    let text = rules("[[rule]]\nname = \"r\"\nwan = \"isp1\"\nsticky = \"0s\"\n");
    assert_error(
        &text,
        "\"0s\"",
        "rule \"r\".sticky",
        "must be greater than zero",
    );
    let c = ok(&rules(
        "[[rule]]\nname = \"r\"\nwan = \"isp1\"\nsticky = \"2h4m\"\n",
    ));
    assert_eq!(c.rules[0].sticky, Some(Duration::from_secs(7440)));
}

#[test]
fn ports_need_tcp_or_udp() {
    let text = rules("[[rule]]\nname = \"r\"\ndst_ports = [53]\nwan = \"isp1\"\n");
    assert_error(
        &text,
        "[53]",
        "rule \"r\".dst_ports",
        "ports need proto = \"tcp\" or \"udp\" (this rule's proto is any)",
    );
    let text =
        rules("[[rule]]\nname = \"r\"\nproto = \"icmp\"\nsrc_ports = [\"1-2\"]\nwan = \"isp1\"\n");
    assert_error(
        &text,
        "[\"1-2\"]",
        "rule \"r\".src_ports",
        "(this rule's proto is icmp)",
    );
    let text = rules("[[rule]]\nname = \"r\"\nproto = \"any\"\nsrc_ports = [1]\nwan = \"isp1\"\n");
    assert_error(
        &text,
        "[1]",
        "rule \"r\".src_ports",
        "(this rule's proto is any)",
    );
    ok(&rules(
        "[[rule]]\nname = \"r\"\nproto = 6\nsrc_ports = [1]\nwan = \"isp1\"\n",
    ));
}

#[test]
fn bad_port_ranges() {
    let text = rules(
        "[[rule]]\nname = \"r\"\nproto = \"tcp\"\ndst_ports = [\n  80,\n  \"90-85\",\n  70000,\n]\n\
         wan = \"isp1\"\n",
    );
    let errs = errors(&text);
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert_has(
        &errs,
        Some(line_of(&text, "\"90-85\"")),
        "rule \"r\".dst_ports[1]",
        "first port 90 is greater than last port 85",
    );
    assert_has(
        &errs,
        Some(line_of(&text, "70000")),
        "rule \"r\".dst_ports[2]",
        "port 70000 is out of range 0-65535",
    );
}

#[test]
fn bad_protocols() {
    let text = rules("[[rule]]\nname = \"r\"\nproto = \"sctp\"\nwan = \"isp1\"\n");
    assert_error(
        &text,
        "\"sctp\"",
        "rule \"r\".proto",
        "unknown protocol \"sctp\"; expected one of \"tcp\", \"udp\", \"icmp\", \"any\" or a number 0-255",
    );
    let text = rules("[[rule]]\nname = \"r\"\nproto = 256\nwan = \"isp1\"\n");
    assert_error(
        &text,
        "256",
        "rule \"r\".proto",
        "protocol number 256 is out of range 0-255",
    );
}

#[test]
fn bad_subnets_and_empty_lists() {
    let text = rules("[[rule]]\nname = \"r\"\ndst = [\"1.2.3.4/40\"]\nwan = \"isp1\"\n");
    assert_error(
        &text,
        "1.2.3.4/40",
        "rule \"r\".dst[0]",
        "is not an IPv4 subnet",
    );
    let text = rules("[[rule]]\nname = \"r\"\nsrc = []\nwan = \"isp1\"\n");
    assert_error(
        &text,
        "src = []",
        "rule \"r\".src",
        "empty list; leave the key out to match anything",
    );
}

#[test]
fn rule_names_required_valid_and_unique() {
    let text = rules("[[rule]] # r\naction = \"main\"\n");
    assert_error(&text, "# r", "rule[0].name", "missing (required)");
    let text = rules(
        "[[rule]]\nname = \"r\"\naction = \"main\"\n[[rule]]\nname = \"r\" # 2\naction = \"main\"\n",
    );
    let first = line_of(&text, "name = \"r\"\naction = \"main\"\n[[rule]]");
    assert_error(
        &text,
        "# 2",
        "rule \"r\".name",
        &format!("duplicate rule name \"r\" (already used by rule \"r\" on line {first})"),
    );
}
