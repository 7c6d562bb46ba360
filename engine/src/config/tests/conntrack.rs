//! `[conntrack]` and `[conntrack.timeouts]`.

use std::time::Duration;

use super::{assert_error, assert_has, errors, line_of, ok, with};
use crate::config::{ConntrackConfig, OnFull, Timeouts};

#[test]
fn defaults_when_absent_or_empty() {
    assert_eq!(ok(&with("")).conntrack, ConntrackConfig::default());
    assert_eq!(
        ok(&with("[conntrack]\n")).conntrack,
        ConntrackConfig::default()
    );
    assert_eq!(
        ok(&with("[conntrack.timeouts]\n")).conntrack,
        ConntrackConfig::default()
    );
    let d = ConntrackConfig::default();
    assert_eq!(d.max_sessions, 262_144);
    assert_eq!(d.shards, 64);
    assert_eq!(d.on_full, OnFull::Evict);
    assert_eq!(d.max_fragments, 4096);
    assert_eq!(d.fragment_timeout, Duration::from_secs(30));
    assert_eq!(d.sticky_max, 65_536);
    assert_eq!(d.max_sessions_per_host, 16_384);
    assert_eq!(d.max_ports_per_host, 8192);
    assert_eq!(
        d.timeouts,
        Timeouts {
            udp: Duration::from_secs(300),
            icmp: Duration::from_secs(60),
            tcp_established: Duration::from_secs(7440),
            tcp_transitory: Duration::from_secs(240),
            tcp_closed: Duration::from_secs(240),
        }
    );
}

#[test]
fn values_and_duration_forms() {
    let c = ok(&with(
        "[conntrack]\nmax_sessions = 1000\nshards = 1\non_full = \"refuse\"\nmax_fragments = 7\n\
         fragment_timeout = 5\nsticky_max = 9\nmax_sessions_per_host = 100\n\
         max_ports_per_host = 20\n[conntrack.timeouts]\nudp = \"5m\"\nicmp = 300\n\
         tcp_established = \"2h4m\"\ntcp_transitory = \"300s\"\ntcp_closed = \"1500ms\"\n",
    ))
    .conntrack;
    assert_eq!(c.max_sessions, 1000);
    assert_eq!(c.shards, 1);
    assert_eq!(c.on_full, OnFull::Refuse);
    assert_eq!(c.max_fragments, 7);
    assert_eq!(c.fragment_timeout, Duration::from_secs(5));
    assert_eq!(c.sticky_max, 9);
    assert_eq!(c.max_sessions_per_host, 100);
    assert_eq!(c.max_ports_per_host, 20);
    assert_eq!(c.timeouts.udp, Duration::from_secs(300));
    assert_eq!(c.timeouts.icmp, Duration::from_secs(300));
    assert_eq!(c.timeouts.tcp_established, Duration::from_secs(7440));
    assert_eq!(c.timeouts.tcp_transitory, Duration::from_secs(300));
    assert_eq!(c.timeouts.tcp_closed, Duration::from_millis(1500));
}

#[test]
fn shards_power_of_two_in_range() {
    for (value, message) in [
        ("3", "3 is not a power of two (1, 2, 4, ... 4096)"),
        ("0", "must be at least 1"),
        ("8192", "must be at most 4096"),
        ("-64", "must be at least 1"),
    ] {
        let text = with(&format!("[conntrack]\nshards = {value}\n"));
        assert_error(&text, "shards =", "conntrack.shards", message);
    }
    assert_eq!(
        ok(&with("[conntrack]\nshards = 4096\n")).conntrack.shards,
        4096
    );
}

#[test]
fn max_sessions_bounds() {
    let text = with("[conntrack]\nmax_sessions = 0\n");
    assert_error(
        &text,
        "max_sessions",
        "conntrack.max_sessions",
        "must be at least 1",
    );
    let text = with("[conntrack]\nmax_sessions = 5000000000\n");
    assert_error(
        &text,
        "max_sessions",
        "conntrack.max_sessions",
        "must be at most 4294967295",
    );
    let text = with("[conntrack]\nmax_sessions = 32\n");
    assert_error(
        &text,
        "max_sessions",
        "conntrack.max_sessions",
        "must be at least conntrack.shards (64)",
    );
    ok(&with("[conntrack]\nmax_sessions = 32\nshards = 32\n"));
}

#[test]
fn other_counts_at_least_one() {
    for key in [
        "max_fragments",
        "sticky_max",
        "max_sessions_per_host",
        "max_ports_per_host",
    ] {
        let text = with(&format!("[conntrack]\n{key} = 0\n"));
        assert_error(
            &text,
            key,
            &format!("conntrack.{key}"),
            "must be at least 1",
        );
    }
}

#[test]
fn unknown_on_full_lists_the_allowed_values() {
    let text = with("[conntrack]\non_full = \"drop\"\n");
    assert_error(
        &text,
        "\"drop\"",
        "conntrack.on_full",
        "unknown value \"drop\"; expected one of \"evict\", \"refuse\"",
    );
}

#[test]
fn zero_and_bad_durations() {
    let text = with("[conntrack]\nfragment_timeout = \"0s\"\n");
    assert_error(
        &text,
        "\"0s\"",
        "conntrack.fragment_timeout",
        "must be greater than zero",
    );
    let text = with(
        "[conntrack.timeouts]\nudp = 0\nicmp = \"ten\"\ntcp_established = -1\n\
         tcp_transitory = \"400d\"\ntcp_closed = \"0\"\n",
    );
    let errs = errors(&text);
    assert_eq!(errs.len(), 5, "{errs:#?}");
    let zero = "must be greater than zero";
    assert_has(
        &errs,
        Some(line_of(&text, "udp")),
        "conntrack.timeouts.udp",
        zero,
    );
    assert_has(
        &errs,
        Some(line_of(&text, "icmp")),
        "conntrack.timeouts.icmp",
        "invalid duration \"ten\"",
    );
    assert_has(
        &errs,
        Some(line_of(&text, "tcp_established")),
        "conntrack.timeouts.tcp_established",
        zero,
    );
    assert_has(
        &errs,
        Some(line_of(&text, "tcp_transitory")),
        "conntrack.timeouts.tcp_transitory",
        "must be at most 365 days",
    );
    assert_has(
        &errs,
        Some(line_of(&text, "tcp_closed")),
        "conntrack.timeouts.tcp_closed",
        zero,
    );
}

#[test]
fn per_host_caps_bounds_and_types() {
    for key in ["max_sessions_per_host", "max_ports_per_host"] {
        let text = with(&format!("[conntrack]\n{key} = 5000000000\n"));
        assert_error(
            &text,
            key,
            &format!("conntrack.{key}"),
            "must be at most 4294967295",
        );
        let text = with(&format!("[conntrack]\n{key} = -3\n"));
        assert_error(
            &text,
            key,
            &format!("conntrack.{key}"),
            "must be at least 1",
        );
        let c = ok(&with(&format!("[conntrack]\n{key} = 1\n"))).conntrack;
        assert_eq!(
            (c.max_sessions_per_host, c.max_ports_per_host),
            if key == "max_sessions_per_host" {
                (1, 8192)
            } else {
                (16_384, 1)
            }
        );
    }
}
