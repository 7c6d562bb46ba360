//! `[[forward]]` tables: port forwards from WAN addresses to internal servers.

use std::net::Ipv4Addr;
use std::ops::RangeInclusive;

use toml::Spanned;

use super::lan::LanDraft;
use super::{check, named_path, required, unknown, Lookup};
use crate::config::model::{Forward, Group};
use crate::config::raw::RawForward;
use crate::config::source::Report;
use crate::config::values::{self, TCP, UDP};

/// The names and LANs a forward refers to.
#[derive(Debug)]
pub(super) struct Refs<'a, 'r> {
    pub wans: &'a Lookup<'r>,
    pub wan_count: usize,
    pub groups: &'a Lookup<'r>,
    pub group_members: &'a [Option<&'a Group>],
    pub lans: &'a [LanDraft<'r>],
}

const PROTOS: [(&str, &[u8]); 3] = [("tcp", &[TCP]), ("udp", &[UDP]), ("both", &[TCP, UDP])];

/// The key path of forward `index`: `forward "name"` or `forward[index]`.
pub(super) fn path(index: usize, raw: &Spanned<RawForward>) -> String {
    named_path("forward", index, raw.get_ref().name.as_ref())
}

pub(super) fn validate(
    index: usize,
    raw: &Spanned<RawForward>,
    refs: &Refs<'_, '_>,
    report: &mut Report<'_>,
) -> Option<Forward> {
    let header = raw.span();
    let f = raw.get_ref();
    let path = path(index, raw);
    let name = super::name(f.name.as_ref(), &header, &path, report);
    let wans = wans(f, &header, &path, refs, report);
    let protos = required(f.proto.as_ref(), &header, &path, "proto", report).and_then(|p| {
        check(
            values::keyword(p.get_ref(), &PROTOS),
            &p.span(),
            format_args!("{path}.proto"),
            report,
        )
    });
    let ports = match required(f.port.as_ref(), &header, &path, "port", report) {
        None => None,
        Some(p) => check(
            values::parse_port_range(p.get_ref()).and_then(|r| {
                if *r.start() == 0 {
                    Err("port 0 cannot be forwarded".to_owned())
                } else {
                    Ok(r)
                }
            }),
            &p.span(),
            format_args!("{path}.port"),
            report,
        ),
    };
    let to = target(f, &header, &path, refs.lans, report);
    let to_port = match (&f.to_port, &ports) {
        (None, Some(ports)) => Some(*ports.start()),
        (None, None) => None,
        (Some(p), ports) => check(
            to_port(*p.get_ref(), ports.as_ref()),
            &p.span(),
            format_args!("{path}.to_port"),
            report,
        ),
    };
    let (to, lan) = to?;
    Some(Forward {
        name: name?.get_ref().clone(),
        wans: wans?,
        protos: protos?.to_vec(),
        ports: ports?,
        to,
        to_port: to_port?,
        lan,
    })
}

/// The WANs of a forward: `wan`, `wans` or `group` (at most one of them), or every WAN.
fn wans(
    f: &RawForward,
    header: &std::ops::Range<usize>,
    path: &str,
    refs: &Refs<'_, '_>,
    report: &mut Report<'_>,
) -> Option<Vec<usize>> {
    let given = [f.wan.is_some(), f.wans.is_some(), f.group.is_some()];
    if given.iter().filter(|g| **g).count() > 1 {
        report.at(
            header,
            path,
            "give at most one of `wan`, `wans` and `group` (none: every WAN)",
        );
        return None;
    }
    let wan = |name: &Spanned<String>, key: &str, report: &mut Report<'_>| {
        named("WAN", refs.wans, name, &format!("{path}.{key}"), report)
    };
    if let Some(w) = &f.wan {
        return wan(w, "wan", report).map(|w| vec![w]);
    }
    if let Some(list) = &f.wans {
        if list.get_ref().is_empty() {
            report.at(
                &list.span(),
                format_args!("{path}.wans"),
                "empty list; leave the key out to forward on every WAN",
            );
            return None;
        }
        let mut out = Vec::new();
        let mut ok = true;
        for (j, name) in list.get_ref().iter().enumerate() {
            match wan(name, &format!("wans[{j}]"), report) {
                Some(w) if !out.contains(&w) => out.push(w),
                Some(_) => {}
                None => ok = false,
            }
        }
        return ok.then_some(out);
    }
    if let Some(g) = &f.group {
        let index = named("group", refs.groups, g, &format!("{path}.group"), report)?;
        // a group that failed validation has been reported already
        let group = refs.group_members.get(index).copied().flatten()?;
        return Some(group.members.iter().map(|m| m.wan).collect());
    }
    Some((0..refs.wan_count).collect())
}

/// The index of the `kind` named `name` in `defined` (an error at `path` if there is none).
fn named(
    kind: &str,
    defined: &Lookup<'_>,
    name: &Spanned<String>,
    path: &str,
    report: &mut Report<'_>,
) -> Option<usize> {
    let found = defined
        .get(name.get_ref().as_str())
        .copied()
        .ok_or_else(|| unknown(kind, name.get_ref(), defined));
    check(found, &name.span(), path, report)
}

/// The internal server's address and the index of the LAN whose subnets hold it.
fn target(
    f: &RawForward,
    header: &std::ops::Range<usize>,
    path: &str,
    lans: &[LanDraft<'_>],
    report: &mut Report<'_>,
) -> Option<(Ipv4Addr, usize)> {
    let to = required(f.to.as_ref(), header, path, "to", report)?;
    let addr = check(
        values::parse_ipv4(to.get_ref()),
        &to.span(),
        format_args!("{path}.to"),
        report,
    )?;
    let lan = lans.iter().position(|l| {
        l.common.address.is_some_and(|(_, net)| net.contains(&addr))
            || l.extra.iter().any(|(_, net, _)| net.contains(&addr))
    });
    let own = lans
        .iter()
        .any(|l| l.common.address.is_some_and(|(a, _)| a == addr));
    let found = match lan {
        _ if own => Err(format!("{addr} is the router's own LAN address")),
        Some(l) => Ok((addr, l)),
        None => Err(format!(
            "{addr} is in no LAN's subnets (`address` and `extra_subnets` of a [[lan]])"
        )),
    };
    check(found, &to.span(), format_args!("{path}.to"), report)
}

/// `to_port`: the internal port of the first external port; the range must fit.
fn to_port(value: i64, ports: Option<&RangeInclusive<u16>>) -> Result<u16, String> {
    let first = u16::try_from(value)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("port {value} is out of range 1-65535"))?;
    let span = ports.map_or(0, |p| p.end() - p.start());
    if u32::from(first) + u32::from(span) > 65535 {
        return Err(format!(
            "the range of {} ports from {first} goes past 65535",
            u32::from(span) + 1
        ));
    }
    Ok(first)
}

/// Most (WAN, protocol, port)s the forwards may take together: what fwd's XDP program holds.
pub(crate) const MAX_FORWARDED_PORTS: usize = 65536;

/// The forwards together take at most [`MAX_FORWARDED_PORTS`] (WAN, protocol, port)s; the
/// forward that goes past is the error.
pub(super) fn check_total(
    forwards: &[Option<Forward>],
    raw: &[Spanned<RawForward>],
    report: &mut Report<'_>,
) {
    let mut total = 0usize;
    for (i, f) in forwards.iter().enumerate() {
        let Some(f) = f else { continue };
        let ports = usize::from(f.ports.end() - f.ports.start()) + 1;
        total += f.wans.len() * f.protos.len() * ports;
        if total > MAX_FORWARDED_PORTS {
            report.at(
                &raw[i].span(),
                path(i, &raw[i]),
                format!(
                    "the forwards up to this one take {total} (WAN, protocol, port)s; at most \
                     {MAX_FORWARDED_PORTS} can be forwarded"
                ),
            );
            return;
        }
    }
}

/// Two forwards on one WAN, protocol and port: the second is an error (naming the first).
pub(super) fn check_overlaps(
    forwards: &[Option<Forward>],
    raw: &[Spanned<RawForward>],
    wan_names: &[String],
    report: &mut Report<'_>,
) {
    for (i, a) in forwards.iter().enumerate() {
        let Some(a) = a else { continue };
        for (j, b) in forwards.iter().enumerate().skip(i + 1) {
            let Some(b) = b else { continue };
            let wan = a.wans.iter().find(|w| b.wans.contains(w));
            let proto = a.protos.iter().find(|p| b.protos.contains(p));
            let overlap = a.ports.start() <= b.ports.end() && b.ports.start() <= a.ports.end();
            if let (Some(&wan), Some(_), true) = (wan, proto, overlap) {
                let wan = wan_names.get(wan).map_or("?", String::as_str);
                report.at(
                    &raw[j].span(),
                    path(j, &raw[j]),
                    format!(
                        "its ports overlap those of {} on WAN {wan}",
                        path(i, &raw[i])
                    ),
                );
            }
        }
    }
}
