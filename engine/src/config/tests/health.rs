//! `[health]`, `[health.probe]` and each WAN's `[wan.probe]`.

use std::net::Ipv4Addr;
use std::time::Duration;

use super::{errors, line_of, ok, with, LAN, WAN};
use prober::core::{Method, ProbeConfig};

use crate::config::{ConfigError, Health, OnWanDown};

/// An error at `path` whose message contains `message` (any line).
fn assert_has(errs: &[ConfigError], path: &str, message: &str) {
    assert!(
        errs.iter()
            .any(|e| e.path == path && e.message.contains(message)),
        "no error at {path:?} containing {message:?} in {errs:#?}"
    );
}

fn ip(a: u8, b: u8, c: u8, d: u8) -> Ipv4Addr {
    Ipv4Addr::new(a, b, c, d)
}

#[test]
fn defaults_when_absent() {
    let c = ok(&with(""));
    assert_eq!(c.health, Health::default());
    assert_eq!(c.health.on_wan_down, OnWanDown::Migrate);
    assert!(
        c.wans.iter().all(|w| w.probe.is_none()),
        "no targets: not probed"
    );
}

#[test]
fn probe_defaults_apply_to_every_wan_and_a_wan_overrides_key_by_key() {
    let text = format!(
        "{LAN}{WAN}[wan.probe]\nmethod = \"tcp\"\nport = 443\ndown_after = 2\n\
         [[wan]]\nname = \"isp2\"\ninterface = \"eth2\"\naddress = \"203.0.113.10/24\"\n\
         gateway = \"203.0.113.1\"\n\
         [health]\non_wan_down = \"reset\"\nhook = \"/etc/fwd/hook\"\n\
         [health.probe]\ntargets = [\"1.1.1.1\", \"8.8.8.8\"]\nreliability = 2\n\
         interval = \"250ms\"\nlatency_degraded = \"150ms\"\nloss_down = 40\n"
    );
    let c = ok(&text);
    assert_eq!(c.health.on_wan_down, OnWanDown::Reset);
    assert_eq!(
        c.health.hook.as_deref(),
        Some(std::path::Path::new("/etc/fwd/hook"))
    );
    let isp1 = c.wans[0].probe.clone().unwrap();
    let isp2 = c.wans[1].probe.clone().unwrap();
    let mut expected_isp2 =
        ProbeConfig::new("isp2", vec![ip(1, 1, 1, 1), ip(8, 8, 8, 8)], Method::Icmp);
    expected_isp2.reliability = 2;
    expected_isp2.interval = Duration::from_millis(250);
    expected_isp2.latency_degraded = Some(Duration::from_millis(150));
    expected_isp2.loss_down_pct = Some(40.0);
    assert_eq!(isp2, expected_isp2);
    assert_eq!(
        isp1,
        ProbeConfig {
            name: "isp1".into(),
            method: Method::Tcp { port: 443 },
            down_after: 2,
            ..expected_isp2
        }
    );
}

#[test]
fn http_and_dns_methods_have_their_defaults() {
    let c = ok(&with(
        "[health.probe]\ntargets = [\"192.0.2.1\"]\nmethod = \"http\"\nexpect_status = 204\n",
    ));
    assert_eq!(
        c.wans[0].probe.as_ref().unwrap().method,
        Method::Http {
            port: 80,
            path: "/".into(),
            expect_status: 204
        }
    );
    let c = ok(&with(
        "[health.probe]\ntargets = [\"192.0.2.1\"]\nmethod = \"dns\"\nquery = \"example.com.\"\n",
    ));
    assert_eq!(
        c.wans[1].probe.as_ref().unwrap().method,
        Method::Dns {
            port: 53,
            name: "example.com".into()
        }
    );
}

#[test]
fn bad_values_are_reported_with_their_keys() {
    let e = errors(&with(
        "[health]\non_wan_down = \"flush\"\n[health.probe]\n\
         targets = [\"1.1.1.1\", \"1.1.1.1\", \"224.0.0.1\"]\nmethod = \"smtp\"\n\
         interval = \"1ms\"\ndown_after = 0\nloss_degraded = 50\nloss_down = 20\ninitial = \"maybe\"\n",
    ));
    assert_has(&e, "health.on_wan_down", "unknown value \"flush\"");
    let line = line_of(&with("[health]\non_wan_down = \"flush\""), "flush");
    assert!(e
        .iter()
        .any(|x| x.path == "health.on_wan_down" && x.line == Some(line)));
    assert_has(&e, "wan[0].probe.targets", "1.1.1.1 is listed twice");
    assert_has(&e, "wan[0].probe.targets", "224.0.0.1 cannot be probed");
    assert_has(&e, "wan[0].probe.method", "unknown value \"smtp\"");
    assert_has(&e, "wan[0].probe.interval", "not between 10ms and 1h");
    assert_has(&e, "wan[0].probe.down_after", "must be at least 1");
    assert_has(
        &e,
        "wan[0].probe.loss_down",
        "must not be below loss_degraded",
    );
    assert_has(&e, "wan[0].probe.initial", "unknown value \"maybe\"");
}

#[test]
fn a_wan_probe_without_targets_or_a_method_without_its_keys_is_an_error() {
    let e = errors(&format!("{LAN}{WAN}[wan.probe]\ninterval = \"1s\"\n"));
    assert_has(&e, "wan[0].probe.targets", "needs at least one target");
    let e = errors(&format!(
        "{LAN}{WAN}[wan.probe]\ntargets = [\"192.0.2.1\"]\nmethod = \"tcp\"\n"
    ));
    assert_has(&e, "wan[0].probe.port", "needs a port");
    let e = errors(&format!(
        "{LAN}{WAN}[wan.probe]\ntargets = [\"192.0.2.1\"]\nmethod = \"dns\"\nreliability = 2\n"
    ));
    assert_has(&e, "wan[0].probe.query", "needs a query name");
    assert_has(&e, "wan[0].probe.reliability", "must be at most 1");
}
