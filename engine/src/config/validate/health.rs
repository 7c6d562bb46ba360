//! `[health]` (what happens to flows of a WAN that goes down, the event hook, probe defaults)
//! and each WAN's probe: `[wan.probe]` keys over `[health.probe]` keys, one by one. An error
//! is reported at the key that supplied the value, under the WAN's path.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use prober::core::config::{
    check_dns_name, DEFAULT_DOWN_AFTER, DEFAULT_UP_AFTER, DEFAULT_WINDOW, MAX_PERIOD, MAX_TARGETS,
    MAX_WINDOW,
};
use prober::core::{Initial, Method, ProbeConfig};

use super::check;
use crate::config::duration::parse_duration;
use crate::config::model::{Health, OnWanDown};
use crate::config::raw::{IntOrStr, RawHealth, RawProbe};
use crate::config::source::Report;
use crate::config::values;

const ON_WAN_DOWN: [(&str, OnWanDown); 3] = [
    ("migrate", OnWanDown::Migrate),
    ("reset", OnWanDown::Reset),
    ("keep", OnWanDown::Keep),
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum MethodKind {
    Icmp,
    Tcp,
    Http,
    Dns,
}

const METHODS: [(&str, MethodKind); 4] = [
    ("icmp", MethodKind::Icmp),
    ("tcp", MethodKind::Tcp),
    ("http", MethodKind::Http),
    ("dns", MethodKind::Dns),
];

const INITIAL: [(&str, Initial); 2] = [("up", Initial::Up), ("down", Initial::Down)];

/// Most rounds `down_after` / `up_after` may ask for.
const MAX_ROUNDS: i64 = 1000;
/// Shortest probe interval or timeout the config accepts (the prober itself takes 1 ms: a
/// config asking for less than 10 ms is more likely a unit mistake).
const MIN_PERIOD: Duration = Duration::from_millis(10);

/// `[health]` without its probe defaults (see [`probe`]).
pub(super) fn validate(
    raw: Option<&Spanned<RawHealth>>,
    report: &mut Report<'_>,
) -> Option<Health> {
    let Some(raw) = raw else {
        return Some(Health::default());
    };
    let h = raw.get_ref();
    let on_wan_down = match &h.on_wan_down {
        None => Some(OnWanDown::default()),
        Some(o) => check(
            values::keyword(o.get_ref(), &ON_WAN_DOWN),
            &o.span(),
            "health.on_wan_down",
            report,
        ),
    };
    let hook = match &h.hook {
        None => Some(None),
        Some(p) if p.get_ref().trim().is_empty() => {
            report.at(&p.span(), "health.hook", "must not be empty");
            None
        }
        Some(p) => Some(Some(PathBuf::from(p.get_ref()))),
    };
    Some(Health {
        on_wan_down: on_wan_down?,
        hook: hook?,
    })
}

/// The probe of the WAN `name` at `path`: its own `probe` table's keys over `defaults`.
/// `Some(None)`: no targets anywhere, the WAN is not probed. `None`: an error was reported.
pub(super) fn probe(
    name: &str,
    path: &str,
    own: Option<&Spanned<RawProbe>>,
    defaults: Option<&RawProbe>,
    report: &mut Report<'_>,
) -> Option<Option<ProbeConfig>> {
    let empty = RawProbe::default();
    let mine = own.map_or(&empty, Spanned::get_ref);
    let base = defaults.unwrap_or(&empty);
    let key = |k: &str| format!("{path}.probe.{k}");

    let Some(targets_raw) = either(&mine.targets, &base.targets) else {
        if let Some(own) = own {
            report.at(
                &own.span(),
                key("targets"),
                "missing: a probe needs at least one target (here or in [health.probe])",
            );
            return None;
        }
        return Some(None);
    };
    let targets = targets(targets_raw, &key("targets"), report);

    let method = match either(&mine.method, &base.method) {
        None => Some(MethodKind::Icmp),
        Some(m) => check(
            values::keyword(m.get_ref(), &METHODS),
            &m.span(),
            key("method"),
            report,
        ),
    };
    let method = method.and_then(|m| self::method(m, path, own, mine, base, report));

    let count_of = |v: Option<&Spanned<i64>>,
                    default: i64,
                    min: i64,
                    max: i64,
                    k: &str,
                    report: &mut Report<'_>| {
        match v {
            None => Some(default),
            Some(v) => check(
                values::int_in(*v.get_ref(), min, max),
                &v.span(),
                key(k),
                report,
            ),
        }
        .and_then(|n| u32::try_from(n).ok())
    };
    let n_targets = targets.as_ref().map_or(1, Vec::len);
    let reliability = count_of(
        either(&mine.reliability, &base.reliability),
        1,
        1,
        i64::try_from(n_targets).unwrap_or(1),
        "reliability",
        report,
    );
    let period = |v: Option<&Spanned<IntOrStr>>, k: &str, report: &mut Report<'_>| match v {
        None => Some(None),
        Some(v) => check(probe_period(v.get_ref()), &v.span(), key(k), report).map(Some),
    };
    let interval = period(either(&mine.interval, &base.interval), "interval", report);
    let timeout = period(either(&mine.timeout, &base.timeout), "timeout", report);
    let fail_interval = period(
        either(&mine.fail_interval, &base.fail_interval),
        "fail_interval",
        report,
    );
    let recover_interval = period(
        either(&mine.recover_interval, &base.recover_interval),
        "recover_interval",
        report,
    );
    let down_after = count_of(
        either(&mine.down_after, &base.down_after),
        i64::from(DEFAULT_DOWN_AFTER),
        1,
        MAX_ROUNDS,
        "down_after",
        report,
    );
    let up_after = count_of(
        either(&mine.up_after, &base.up_after),
        i64::from(DEFAULT_UP_AFTER),
        1,
        MAX_ROUNDS,
        "up_after",
        report,
    );
    let window = count_of(
        either(&mine.window, &base.window),
        i64::try_from(DEFAULT_WINDOW).unwrap_or(20),
        1,
        i64::try_from(MAX_WINDOW).unwrap_or(i64::MAX),
        "window",
        report,
    );
    let initial = match either(&mine.initial, &base.initial) {
        None => Some(Initial::Up),
        Some(i) => check(
            values::keyword(i.get_ref(), &INITIAL),
            &i.span(),
            key("initial"),
            report,
        ),
    };
    let latency_degraded = period(
        either(&mine.latency_degraded, &base.latency_degraded),
        "latency_degraded",
        report,
    );
    let latency_down_raw = either(&mine.latency_down, &base.latency_down);
    let latency_down = period(latency_down_raw, "latency_down", report);
    let loss = |v: Option<&Spanned<i64>>, k: &str, report: &mut Report<'_>| match v {
        None => Some(None),
        Some(v) => check(
            values::int_in(*v.get_ref(), 0, 99),
            &v.span(),
            key(k),
            report,
        )
        .and_then(|n| u8::try_from(n).ok())
        .map(Some),
    };
    let loss_degraded = loss(
        either(&mine.loss_degraded, &base.loss_degraded),
        "loss_degraded",
        report,
    );
    let loss_down_raw = either(&mine.loss_down, &base.loss_down);
    let loss_down = loss(loss_down_raw, "loss_down", report);
    if let (Some(Some(d)), Some(Some(x)), Some(raw)) =
        (latency_degraded, latency_down, latency_down_raw)
    {
        if d > x {
            report.at(
                &raw.span(),
                key("latency_down"),
                "must not be below latency_degraded",
            );
        }
    }
    if let (Some(Some(d)), Some(Some(x)), Some(raw)) = (loss_degraded, loss_down, loss_down_raw) {
        if d > x {
            report.at(
                &raw.span(),
                key("loss_down"),
                "must not be below loss_degraded",
            );
        }
    }
    let mut c = ProbeConfig::new(name, targets?, method?);
    c.reliability = usize::try_from(reliability?).ok()?;
    if let Some(interval) = interval? {
        c.interval = interval;
    }
    if let Some(timeout) = timeout? {
        c.timeout = timeout;
    }
    c.fail_interval = fail_interval?;
    c.recover_interval = recover_interval?;
    c.down_after = down_after?;
    c.up_after = up_after?;
    c.initial = initial?;
    c.window = usize::try_from(window?).ok()?;
    c.latency_degraded = latency_degraded?;
    c.latency_down = latency_down?;
    c.loss_degraded_pct = loss_degraded?.map(f64::from);
    c.loss_down_pct = loss_down?.map(f64::from);
    // Every value was checked above with its line; the prober's own check is a safety net.
    if let Err(e) = c.validate() {
        report.global(format!("{path}.probe.{}", e.field), e.message);
        return None;
    }
    Some(Some(c))
}

/// The WAN's own value of a key if it has one, else the `[health.probe]` default.
fn either<'a, T>(own: &'a Option<T>, default: &'a Option<T>) -> Option<&'a T> {
    own.as_ref().or(default.as_ref())
}

/// Probe targets: 1..=64 distinct unicast addresses.
fn targets(
    raw: &Spanned<Vec<Spanned<String>>>,
    key: &str,
    report: &mut Report<'_>,
) -> Option<Vec<Ipv4Addr>> {
    let list = raw.get_ref();
    if list.is_empty() || list.len() > MAX_TARGETS {
        report.at(
            &raw.span(),
            key,
            format!("{} targets; give 1 to {MAX_TARGETS}", list.len()),
        );
        return None;
    }
    let mut out = Vec::with_capacity(list.len());
    let mut ok = true;
    for t in list {
        let parsed = values::parse_ipv4(t.get_ref()).and_then(|a| {
            if a.is_unspecified() || a.is_broadcast() || a.is_multicast() || a.is_loopback() {
                Err(format!("{a} cannot be probed"))
            } else if out.contains(&a) {
                Err(format!("{a} is listed twice"))
            } else {
                Ok(a)
            }
        });
        match check(parsed, &t.span(), key, report) {
            Some(a) => out.push(a),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

/// The method's own keys: `port` (tcp: required; http 80, dns 53 by default), `path` and
/// `expect_status` (http; `/` and 200 by default), `query` (dns: required).
fn method(
    kind: MethodKind,
    path: &str,
    own: Option<&Spanned<RawProbe>>,
    mine: &RawProbe,
    base: &RawProbe,
    report: &mut Report<'_>,
) -> Option<Method> {
    let key = |k: &str| format!("{path}.probe.{k}");
    let port_raw = either(&mine.port, &base.port);
    let port = |default: Option<u16>, report: &mut Report<'_>| match (port_raw, default) {
        (Some(p), _) => check(
            values::int_in(*p.get_ref(), 1, 65535),
            &p.span(),
            key("port"),
            report,
        )
        .and_then(|p| u16::try_from(p).ok()),
        (None, Some(d)) => Some(d),
        (None, None) => {
            report_missing(own, &key("port"), "the tcp method needs a port", report);
            None
        }
    };
    match kind {
        MethodKind::Icmp => Some(Method::Icmp),
        MethodKind::Tcp => Some(Method::Tcp {
            port: port(None, report)?,
        }),
        MethodKind::Http => {
            let port = port(Some(80), report);
            let url_path = match either(&mine.path, &base.path) {
                None => Some("/".to_owned()),
                Some(p) => check(http_path(p.get_ref()), &p.span(), key("path"), report),
            };
            let status = match either(&mine.expect_status, &base.expect_status) {
                None => Some(200),
                Some(s) => check(
                    values::int_in(*s.get_ref(), 100, 599),
                    &s.span(),
                    key("expect_status"),
                    report,
                )
                .and_then(|s| u16::try_from(s).ok()),
            };
            Some(Method::Http {
                port: port?,
                path: url_path?,
                expect_status: status?,
            })
        }
        MethodKind::Dns => {
            let port = port(Some(53), report);
            let query = match either(&mine.query, &base.query) {
                None => {
                    report_missing(
                        own,
                        &key("query"),
                        "the dns method needs a query name",
                        report,
                    );
                    None
                }
                Some(q) => check(
                    check_dns_name(q.get_ref())
                        .map(|()| q.get_ref().trim_end_matches('.').to_owned()),
                    &q.span(),
                    key("query"),
                    report,
                ),
            };
            Some(Method::Dns {
                port: port?,
                name: query?,
            })
        }
    }
}

fn report_missing(
    own: Option<&Spanned<RawProbe>>,
    key: &str,
    message: &str,
    report: &mut Report<'_>,
) {
    match own {
        Some(own) => report.at(&own.span(), key, format!("missing: {message}")),
        None => report.global(key, format!("missing: {message}")),
    }
}

/// A probe interval, timeout or latency threshold: 10 ms to 1 h.
fn probe_period(raw: &IntOrStr) -> Result<Duration, String> {
    let d = parse_duration(raw)?;
    if d < MIN_PERIOD || d > MAX_PERIOD {
        return Err(format!("{d:?} is not between 10ms and 1h"));
    }
    Ok(d)
}

/// An HTTP path: starts with `/`, printable ASCII without spaces, at most 1024 bytes.
fn http_path(path: &str) -> Result<String, String> {
    if path.starts_with('/') && path.len() <= 1024 && path.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(path.to_owned())
    } else {
        Err(format!(
            "\"{path}\" must start with '/' and hold at most 1024 printable characters without spaces"
        ))
    }
}
