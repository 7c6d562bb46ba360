//! `[conntrack]` and `[conntrack.timeouts]`: limits and timeouts, all optional.

use std::time::Duration;

use toml::Spanned;

use super::check;
use crate::config::duration::parse_duration;
use crate::config::model::{ConntrackConfig, OnFull, Timeouts};
use crate::config::raw::{IntOrStr, RawConntrack, RawTimeouts};
use crate::config::source::Report;
use crate::config::values;

const ON_FULL: [(&str, OnFull); 2] = [("evict", OnFull::Evict), ("refuse", OnFull::Refuse)];

/// Most shards.
pub(crate) const MAX_SHARDS: u16 = 4096;

pub(super) fn validate(
    raw: Option<&Spanned<RawConntrack>>,
    report: &mut Report<'_>,
) -> Option<ConntrackConfig> {
    let defaults = ConntrackConfig::default();
    let Some(raw) = raw else {
        return Some(defaults);
    };
    let c = raw.get_ref();
    let max_sessions = count(
        c.max_sessions.as_ref(),
        defaults.max_sessions,
        "max_sessions",
        report,
    );
    let shards = match &c.shards {
        None => Some(defaults.shards),
        Some(s) => check(shards(*s.get_ref()), &s.span(), "conntrack.shards", report),
    };
    if let (Some(max), Some(shards), Some(raw_max)) = (max_sessions, shards, &c.max_sessions) {
        if max < u32::from(shards) {
            report.at(
                &raw_max.span(),
                "conntrack.max_sessions",
                format!("must be at least conntrack.shards ({shards})"),
            );
        }
    }
    let on_full = match &c.on_full {
        None => Some(defaults.on_full),
        Some(o) => check(
            values::keyword(o.get_ref(), &ON_FULL),
            &o.span(),
            "conntrack.on_full",
            report,
        ),
    };
    let fragment_timeout = duration(
        c.fragment_timeout.as_ref(),
        defaults.fragment_timeout,
        "conntrack.fragment_timeout",
        report,
    );
    let [max_fragments, sticky_max, max_sessions_per_host, max_ports_per_host] = [
        (&c.max_fragments, defaults.max_fragments, "max_fragments"),
        (&c.sticky_max, defaults.sticky_max, "sticky_max"),
        (
            &c.max_sessions_per_host,
            defaults.max_sessions_per_host,
            "max_sessions_per_host",
        ),
        (
            &c.max_ports_per_host,
            defaults.max_ports_per_host,
            "max_ports_per_host",
        ),
    ]
    .map(|(raw, default, key)| count(raw.as_ref(), default, key, report));
    let timeouts = timeouts(c.timeouts.as_ref().map(Spanned::get_ref), report);
    Some(ConntrackConfig {
        max_sessions: max_sessions?,
        shards: shards?,
        on_full: on_full?,
        max_fragments: max_fragments?,
        fragment_timeout: fragment_timeout?,
        sticky_max: sticky_max?,
        max_sessions_per_host: max_sessions_per_host?,
        max_ports_per_host: max_ports_per_host?,
        timeouts: timeouts?,
    })
}

fn timeouts(raw: Option<&RawTimeouts>, report: &mut Report<'_>) -> Option<Timeouts> {
    let d = Timeouts::default();
    let Some(t) = raw else {
        return Some(d);
    };
    let udp = duration(t.udp.as_ref(), d.udp, "conntrack.timeouts.udp", report);
    let icmp = duration(t.icmp.as_ref(), d.icmp, "conntrack.timeouts.icmp", report);
    let tcp_established = duration(
        t.tcp_established.as_ref(),
        d.tcp_established,
        "conntrack.timeouts.tcp_established",
        report,
    );
    let tcp_transitory = duration(
        t.tcp_transitory.as_ref(),
        d.tcp_transitory,
        "conntrack.timeouts.tcp_transitory",
        report,
    );
    let tcp_closed = duration(
        t.tcp_closed.as_ref(),
        d.tcp_closed,
        "conntrack.timeouts.tcp_closed",
        report,
    );
    Some(Timeouts {
        udp: udp?,
        icmp: icmp?,
        tcp_established: tcp_established?,
        tcp_transitory: tcp_transitory?,
        tcp_closed: tcp_closed?,
    })
}

/// A count in 1..=u32::MAX, or the default.
fn count(
    raw: Option<&Spanned<i64>>,
    default: u32,
    key: &str,
    report: &mut Report<'_>,
) -> Option<u32> {
    let Some(raw) = raw else {
        return Some(default);
    };
    check(
        values::int_in(*raw.get_ref(), 1, i64::from(u32::MAX)),
        &raw.span(),
        format_args!("conntrack.{key}"),
        report,
    )
    .and_then(|v| u32::try_from(v).ok())
}

/// A power of two in 1..=4096.
fn shards(value: i64) -> Result<u16, String> {
    let n = values::int_in(value, 1, i64::from(MAX_SHARDS))?;
    match u16::try_from(n) {
        Ok(n) if n.is_power_of_two() => Ok(n),
        _ => Err(format!(
            "{value} is not a power of two (1, 2, 4, ... {MAX_SHARDS})"
        )),
    }
}

fn duration(
    raw: Option<&Spanned<IntOrStr>>,
    default: Duration,
    path: &str,
    report: &mut Report<'_>,
) -> Option<Duration> {
    match raw {
        None => Some(default),
        Some(raw) => check(parse_duration(raw.get_ref()), &raw.span(), path, report),
    }
}
