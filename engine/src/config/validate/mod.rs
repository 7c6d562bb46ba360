//! Raw → model: checks every value and every cross-reference, reporting all problems.
//!
//! Each table kind has its own file; `topology` holds the checks across LANs and WANs.
//! Validation first builds per-table drafts (each field `None` when it was wrong, with the
//! error already reported), then runs cross-checks on whatever is known, and builds the
//! [`Config`] only if no error was reported at all.

mod conntrack;
mod control;
mod dataplane;
mod forward;
mod group;
mod health;
mod interface;
mod lan;
mod rule;
mod topology;
mod wan;

use std::collections::HashMap;
use std::fmt::Display;
use std::ops::Range;

use toml::Spanned;

use super::model::Config;
use super::raw::RawConfig;
use super::source::Report;
use super::values;

/// Validates a parsed file. Returns `Some` only if nothing was reported.
pub(crate) fn validate(raw: &RawConfig, report: &mut Report<'_>) -> Option<Config> {
    let lans: Vec<_> = raw
        .lan
        .iter()
        .enumerate()
        .map(|(i, l)| lan::draft(i, l, report))
        .collect();
    let probe_defaults = raw
        .health
        .as_ref()
        .and_then(|h| h.get_ref().probe.as_ref())
        .map(Spanned::get_ref);
    let health = health::validate(raw.health.as_ref(), report);
    let wans: Vec<_> = raw
        .wan
        .iter()
        .enumerate()
        .map(|(i, w)| wan::draft(i, w, probe_defaults, report))
        .collect();
    topology::check(&lans, &wans, report);

    let lan_names = lookup(lans.iter().map(|l| l.common.name));
    let wan_names = lookup(wans.iter().map(|w| w.common.name));
    let groups = group::validate_all(&raw.group, &wan_names, &wans, report);
    let group_names = lookup(groups.iter().map(|g| g.name));
    let refs = rule::Refs {
        lans: &lan_names,
        wans: &wan_names,
        groups: &group_names,
    };
    let rules: Vec<_> = raw
        .rule
        .iter()
        .enumerate()
        .map(|(i, r)| rule::validate(i, r, &refs, report))
        .collect();
    let rule_names: Vec<_> = raw.rule.iter().map(|r| r.get_ref().name.as_ref()).collect();
    unique_names("rule", &rule_names, |i| rule::path(i, &raw.rule[i]), report);
    let group_models: Vec<_> = groups.iter().map(|g| g.group.as_ref()).collect();
    let forward_refs = forward::Refs {
        wans: &wan_names,
        wan_count: wans.len(),
        groups: &group_names,
        group_members: &group_models,
        lans: &lans,
    };
    let forwards: Vec<_> = raw
        .forward
        .iter()
        .enumerate()
        .map(|(i, f)| forward::validate(i, f, &forward_refs, report))
        .collect();
    let forward_names: Vec<_> = raw
        .forward
        .iter()
        .map(|f| f.get_ref().name.as_ref())
        .collect();
    unique_names(
        "forward",
        &forward_names,
        |i| forward::path(i, &raw.forward[i]),
        report,
    );
    let wan_labels: Vec<String> = wans
        .iter()
        .map(|w| {
            w.common
                .name
                .map_or_else(String::new, |n| n.get_ref().clone())
        })
        .collect();
    forward::check_overlaps(&forwards, &raw.forward, &wan_labels, report);
    forward::check_total(&forwards, &raw.forward, report);
    let conntrack = conntrack::validate(raw.conntrack.as_ref(), report);
    let dataplane = dataplane::validate(raw.dataplane.as_ref(), report);
    let control = control::validate(raw.control.as_ref(), report);

    if !report.is_empty() {
        return None;
    }
    let built = (|| {
        Some(Config {
            lans: lans
                .iter()
                .map(lan::LanDraft::build)
                .collect::<Option<_>>()?,
            wans: wans
                .iter()
                .map(wan::WanDraft::build)
                .collect::<Option<_>>()?,
            groups: groups.into_iter().map(|g| g.group).collect::<Option<_>>()?,
            rules: rules.into_iter().collect::<Option<_>>()?,
            forwards: forwards.into_iter().collect::<Option<_>>()?,
            conntrack: conntrack?,
            health: health?,
            dataplane: dataplane?,
            control: control?,
        })
    })();
    if built.is_none() {
        // Every `None` above comes with a reported error; this is a safety net.
        report.global("", "internal error: validation incomplete");
    }
    built
}

/// Name → index of the first table with that name (names that failed `check_name` too, so
/// that a bad name does not also cause "unknown name" errors where it is referenced).
pub(super) type Lookup<'r> = HashMap<&'r str, usize>;

fn lookup<'r>(names: impl Iterator<Item = Option<&'r Spanned<String>>>) -> Lookup<'r> {
    let mut map = HashMap::new();
    for (i, name) in names.enumerate() {
        if let Some(name) = name {
            map.entry(name.get_ref().as_str()).or_insert(i);
        }
    }
    map
}

/// The key path of a named table: `rule "dns"`, or `rule[3]` when it has no name.
pub(super) fn named_path(kind: &str, index: usize, name: Option<&Spanned<String>>) -> String {
    match name {
        Some(n) => format!("{kind} {:?}", n.get_ref()),
        None => format!("{kind}[{index}]"),
    }
}

/// Reports a missing required key at the table's header; passes a present one through.
pub(super) fn required<'r, T>(
    value: Option<&'r Spanned<T>>,
    table: &Range<usize>,
    path: &str,
    key: &str,
    report: &mut Report<'_>,
) -> Option<&'r Spanned<T>> {
    if value.is_none() {
        report.at(table, format_args!("{path}.{key}"), "missing (required)");
    }
    value
}

/// Reports `result`'s error at `span` under `path`; passes a value through.
pub(super) fn check<T>(
    result: Result<T, String>,
    span: &Range<usize>,
    path: impl Display,
    report: &mut Report<'_>,
) -> Option<T> {
    match result {
        Ok(v) => Some(v),
        Err(message) => {
            report.at(span, path, message);
            None
        }
    }
}

/// Validates a `name` key (required, well-formed) and passes it through even if malformed.
pub(super) fn name<'r>(
    value: Option<&'r Spanned<String>>,
    table: &Range<usize>,
    path: &str,
    report: &mut Report<'_>,
) -> Option<&'r Spanned<String>> {
    let name = required(value, table, path, "name", report)?;
    check(
        values::check_name(name.get_ref()),
        &name.span(),
        format_args!("{path}.name"),
        report,
    );
    Some(name)
}

/// Reports every name used by an earlier table of the same kind(s) (`names` in file order).
pub(super) fn unique_names(
    kind: &str,
    names: &[Option<&Spanned<String>>],
    path_of: impl Fn(usize) -> String,
    report: &mut Report<'_>,
) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, name) in names.iter().enumerate() {
        let Some(name) = name else { continue };
        match seen.get(name.get_ref().as_str()) {
            Some(&first) => {
                let line = names[first].map_or(0, |n| report.line(&n.span()));
                report.at(
                    &name.span(),
                    format_args!("{}.name", path_of(i)),
                    format!(
                        "duplicate {kind} name {:?} (already used by {} on line {line})",
                        name.get_ref(),
                        path_of(first)
                    ),
                );
            }
            None => {
                seen.insert(name.get_ref(), i);
            }
        }
    }
}

/// The message for a reference to an undefined table, listing what is defined.
pub(super) fn unknown(kind: &str, name: &str, defined: &Lookup<'_>) -> String {
    if defined.is_empty() {
        return format!("unknown {kind} {name:?}: no {kind} is defined");
    }
    let mut names: Vec<(&str, usize)> = defined.iter().map(|(&n, &i)| (n, i)).collect();
    names.sort_by_key(|&(_, i)| i);
    let list: Vec<String> = names
        .iter()
        .take(10)
        .map(|(n, _)| format!("{n:?}"))
        .collect();
    let more = if names.len() > 10 { ", ..." } else { "" };
    format!(
        "unknown {kind} {name:?}; defined: {}{more}",
        list.join(", ")
    )
}
