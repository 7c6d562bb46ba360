//! `[[rule]]` tables: match conditions, references to LANs, WANs and groups, the action.

use std::ops::RangeInclusive;

use ipnet::Ipv4Net;
use toml::Spanned;

use super::{check, named_path, unknown, Lookup};
use crate::config::duration::parse_duration;
use crate::config::model::{Rule, RuleAction};
use crate::config::raw::{IntOrStr, List, RawRule};
use crate::config::source::Report;
use crate::config::values::{self, TCP, UDP};

/// The names a rule can refer to.
#[derive(Debug)]
pub(super) struct Refs<'a, 'r> {
    pub lans: &'a Lookup<'r>,
    pub wans: &'a Lookup<'r>,
    pub groups: &'a Lookup<'r>,
}

const ACTIONS: [(&str, RuleAction); 3] = [
    ("main", RuleAction::MainTable),
    ("blackhole", RuleAction::Blackhole),
    ("unreachable", RuleAction::Unreachable),
];

/// The key path of rule `index`: `rule "name"` or `rule[index]`.
pub(super) fn path(index: usize, raw: &Spanned<RawRule>) -> String {
    named_path("rule", index, raw.get_ref().name.as_ref())
}

pub(super) fn validate(
    index: usize,
    raw: &Spanned<RawRule>,
    refs: &Refs<'_, '_>,
    report: &mut Report<'_>,
) -> Option<Rule> {
    let header = raw.span();
    let r = raw.get_ref();
    let path = path(index, raw);
    let name = super::name(r.name.as_ref(), &header, &path, report);
    let proto = match &r.proto {
        None => Some(None),
        Some(p) => check(
            values::parse_proto(p.get_ref()),
            &p.span(),
            format_args!("{path}.proto"),
            report,
        ),
    };
    let subnet = |s: &String| -> Result<Ipv4Net, String> { values::parse_subnet(s) };
    let src = list(r.src.as_ref(), &path, "src", subnet, report);
    let dst = list(r.dst.as_ref(), &path, "dst", subnet, report);
    let src_ports = ports(r.src_ports.as_ref(), proto, &path, "src_ports", report);
    let dst_ports = ports(r.dst_ports.as_ref(), proto, &path, "dst_ports", report);
    let ingress = list(
        r.ingress.as_ref(),
        &path,
        "ingress",
        |lan: &String| {
            refs.lans
                .get(lan.as_str())
                .copied()
                .ok_or_else(|| unknown("LAN", lan, refs.lans))
        },
        report,
    )
    .map(|mut lans| {
        let mut seen = Vec::with_capacity(lans.len());
        lans.retain(|l| {
            let new = !seen.contains(l);
            seen.push(*l);
            new
        });
        lans
    });
    let action = action(r, &header, &path, refs, report);
    let sticky = sticky(r, &path, report);
    Some(Rule {
        name: name?.get_ref().clone(),
        proto: proto?,
        src: src?,
        dst: dst?,
        src_ports: src_ports?,
        dst_ports: dst_ports?,
        ingress: ingress?,
        action: action?,
        sticky: sticky?,
    })
}

/// An optional match list: absent → empty (match anything); present → non-empty, every
/// element parsed by `parse`.
fn list<T, U>(
    raw: Option<&List<T>>,
    path: &str,
    key: &str,
    parse: impl Fn(&T) -> Result<U, String>,
    report: &mut Report<'_>,
) -> Option<Vec<U>> {
    let Some(raw) = raw else {
        return Some(Vec::new());
    };
    if raw.get_ref().is_empty() {
        report.at(
            &raw.span(),
            format_args!("{path}.{key}"),
            "empty list; leave the key out to match anything",
        );
        return None;
    }
    let mut ok = true;
    let mut out = Vec::with_capacity(raw.get_ref().len());
    for (j, item) in raw.get_ref().iter().enumerate() {
        match check(
            parse(item.get_ref()),
            &item.span(),
            format_args!("{path}.{key}[{j}]"),
            report,
        ) {
            Some(v) => out.push(v),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

/// A port list; only allowed when the rule's protocol is known to be TCP or UDP.
fn ports(
    raw: Option<&List<IntOrStr>>,
    proto: Option<Option<u8>>,
    path: &str,
    key: &str,
    report: &mut Report<'_>,
) -> Option<Vec<RangeInclusive<u16>>> {
    let ranges = list(raw, path, key, values::parse_port_range, report)?;
    let Some(raw) = raw else {
        return Some(ranges);
    };
    let proto_desc = match proto {
        Some(Some(TCP | UDP)) | None => return Some(ranges),
        Some(None) => "any".to_owned(),
        Some(Some(1)) => "icmp".to_owned(),
        Some(Some(n)) => n.to_string(),
    };
    report.at(
        &raw.span(),
        format_args!("{path}.{key}"),
        format!("ports need proto = \"tcp\" or \"udp\" (this rule's proto is {proto_desc})"),
    );
    None
}

/// Exactly one of `group`, `wan`, `action`.
fn action(
    r: &RawRule,
    header: &std::ops::Range<usize>,
    path: &str,
    refs: &Refs<'_, '_>,
    report: &mut Report<'_>,
) -> Option<RuleAction> {
    let given: Vec<(&str, &Spanned<String>)> = [
        ("group", r.group.as_ref()),
        ("wan", r.wan.as_ref()),
        ("action", r.action.as_ref()),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k, v)))
    .collect();
    match given.as_slice() {
        [] => {
            report.at(
                header,
                path,
                "no action: give exactly one of group = NAME, wan = NAME or \
                 action = \"main\" | \"blackhole\" | \"unreachable\"",
            );
            None
        }
        [(key, value)] => {
            let result = match *key {
                "group" => refs
                    .groups
                    .get(value.get_ref().as_str())
                    .map(|&i| RuleAction::Group(i))
                    .ok_or_else(|| unknown("group", value.get_ref(), refs.groups)),
                "wan" => refs
                    .wans
                    .get(value.get_ref().as_str())
                    .map(|&i| RuleAction::Wan(i))
                    .ok_or_else(|| unknown("WAN", value.get_ref(), refs.wans)),
                _ => values::keyword(value.get_ref(), &ACTIONS),
            };
            check(result, &value.span(), format_args!("{path}.{key}"), report)
        }
        [_, rest @ ..] => {
            let keys: Vec<&str> = given.iter().map(|(k, _)| *k).collect();
            for (key, value) in rest {
                report.at(
                    &value.span(),
                    format_args!("{path}.{key}"),
                    format!(
                        "several actions ({}): give exactly one of group, wan or action",
                        keys.join(", ")
                    ),
                );
            }
            None
        }
    }
}

/// `sticky`: a duration, only with a `group` or `wan` action. `Some(None)` when absent.
fn sticky(r: &RawRule, path: &str, report: &mut Report<'_>) -> Option<Option<std::time::Duration>> {
    let Some(raw) = &r.sticky else {
        return Some(None);
    };
    let key = format!("{path}.sticky");
    let d = check(parse_duration(raw.get_ref()), &raw.span(), &key, report)?;
    if let (None, None, Some(action)) = (&r.group, &r.wan, &r.action) {
        report.at(
            &raw.span(),
            key,
            format!(
                "sticky is only allowed with group or wan (this rule's action is {:?})",
                action.get_ref()
            ),
        );
        return None;
    }
    Some(Some(d))
}
