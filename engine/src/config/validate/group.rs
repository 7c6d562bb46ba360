//! `[[group]]` tables: members refer to WANs by name and inherit their weight and tier.

use toml::Spanned;

use super::wan::{tier, weight, WanDraft};
use super::{check, named_path, unique_names, unknown, Lookup};
use crate::config::model::{Group, GroupMember, LastResort};
use crate::config::raw::{RawGroup, RawMember};
use crate::config::source::Report;
use crate::config::values;

/// A group as validated: its name (for lookups) and the group if it is complete.
#[derive(Debug)]
pub(super) struct GroupDraft<'r> {
    pub name: Option<&'r Spanned<String>>,
    pub group: Option<Group>,
}

const LAST_RESORT: [(&str, LastResort); 3] = [
    ("unreachable", LastResort::Unreachable),
    ("blackhole", LastResort::Blackhole),
    ("main", LastResort::MainTable),
];

pub(super) fn validate_all<'r>(
    raw: &'r [Spanned<RawGroup>],
    wan_names: &Lookup<'_>,
    wans: &[WanDraft<'_>],
    report: &mut Report<'_>,
) -> Vec<GroupDraft<'r>> {
    let drafts: Vec<_> = raw
        .iter()
        .enumerate()
        .map(|(i, g)| validate(i, g, wan_names, wans, report))
        .collect();
    let names: Vec<_> = drafts.iter().map(|d| d.name).collect();
    unique_names(
        "group",
        &names,
        |i| named_path("group", i, names[i]),
        report,
    );
    drafts
}

fn validate<'r>(
    index: usize,
    raw: &'r Spanned<RawGroup>,
    wan_names: &Lookup<'_>,
    wans: &[WanDraft<'_>],
    report: &mut Report<'_>,
) -> GroupDraft<'r> {
    let header = raw.span();
    let g = raw.get_ref();
    let path = named_path("group", index, g.name.as_ref());
    let name = super::name(g.name.as_ref(), &header, &path, report);
    let last_resort = match &g.last_resort {
        None => Some(LastResort::Unreachable),
        Some(l) => check(
            values::keyword(l.get_ref(), &LAST_RESORT),
            &l.span(),
            format_args!("{path}.last_resort"),
            report,
        ),
    };

    let mut members = match &g.members {
        None => {
            report.at(
                &header,
                format_args!("{path}.members"),
                "missing (required): a group needs at least one member",
            );
            None
        }
        Some(list) if list.get_ref().is_empty() => {
            report.at(
                &list.span(),
                format_args!("{path}.members"),
                "empty group: a group needs at least one member",
            );
            None
        }
        Some(_) => Some(Vec::new()),
    };
    let mut seen: Vec<(usize, usize)> = Vec::new(); // (wan index, member index)
    for (j, m) in g.members.iter().flat_map(|l| l.get_ref()).enumerate() {
        let mpath = format!("{path}.members[{j}]");
        let member = member(&mpath, m, wan_names, wans, report);
        if let Some(member) = &member {
            if let Some(&(_, first)) = seen.iter().find(|(w, _)| *w == member.wan) {
                let wan_span = m
                    .get_ref()
                    .wan
                    .as_ref()
                    .map_or_else(|| m.span(), |w| w.span());
                report.at(
                    &wan_span,
                    format_args!("{mpath}.wan"),
                    format!("duplicate member: this WAN is already {path}.members[{first}]"),
                );
            }
            seen.push((member.wan, j));
        }
        match (&mut members, member) {
            (Some(list), Some(member)) => list.push(member),
            _ => members = None,
        }
    }
    let group = match (name, members, last_resort) {
        (Some(name), Some(members), Some(last_resort)) => Some(Group {
            name: name.get_ref().clone(),
            members,
            last_resort,
        }),
        _ => None,
    };
    GroupDraft { name, group }
}

fn member(
    path: &str,
    raw: &Spanned<RawMember>,
    wan_names: &Lookup<'_>,
    wans: &[WanDraft<'_>],
    report: &mut Report<'_>,
) -> Option<GroupMember> {
    let m = raw.get_ref();
    let w = super::required(m.wan.as_ref(), &raw.span(), path, "wan", report)?;
    let wan = check(
        wan_names
            .get(w.get_ref().as_str())
            .copied()
            .ok_or_else(|| unknown("WAN", w.get_ref(), wan_names)),
        &w.span(),
        format_args!("{path}.wan"),
        report,
    );
    let draft = wan.and_then(|i| wans.get(i));
    let weight = match &m.weight {
        None => draft.and_then(|d| d.weight),
        Some(raw) => weight(raw, format_args!("{path}.weight"), report),
    };
    let tier = match &m.tier {
        None => draft.and_then(|d| d.tier),
        Some(raw) => tier(raw, format_args!("{path}.tier"), report),
    };
    Some(GroupMember {
        wan: wan?,
        weight: weight?,
        tier: tier?,
    })
}
