//! Serde structs mirroring the TOML file, one per table kind.
//!
//! Everything is optional and loosely typed (integers as `i64`, names as strings) so that
//! validation, not serde, judges the values: serde stops at its first error, validation
//! collects them all. Unknown keys are rejected here (`deny_unknown_fields`). Every value
//! keeps its byte span so errors can name its line.

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::fmt;
use toml::Spanned;

/// A spanned list of spanned values.
pub(crate) type List<T> = Spanned<Vec<Spanned<T>>>;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    #[serde(default)]
    pub lan: Vec<Spanned<RawLan>>,
    #[serde(default)]
    pub wan: Vec<Spanned<RawWan>>,
    #[serde(default)]
    pub group: Vec<Spanned<RawGroup>>,
    #[serde(default)]
    pub rule: Vec<Spanned<RawRule>>,
    #[serde(default)]
    pub forward: Vec<Spanned<RawForward>>,
    pub conntrack: Option<Spanned<RawConntrack>>,
    pub health: Option<Spanned<RawHealth>>,
    pub dataplane: Option<Spanned<RawDataplane>>,
    pub control: Option<Spanned<RawControl>>,
}

/// `[[lan]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLan {
    pub name: Option<Spanned<String>>,
    pub interface: Option<Spanned<String>>,
    pub address: Option<Spanned<String>>,
    pub extra_subnets: Option<List<String>>,
    pub inbound: Option<Spanned<String>>,
}

/// `[[wan]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWan {
    pub name: Option<Spanned<String>>,
    pub interface: Option<Spanned<String>>,
    pub address: Option<Spanned<String>>,
    pub gateway: Option<Spanned<String>>,
    pub weight: Option<Spanned<i64>>,
    pub tier: Option<Spanned<i64>>,
    pub nat_ports: Option<Spanned<IntOrStr>>,
    pub probe: Option<Spanned<RawProbe>>,
}

/// `[[group]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGroup {
    pub name: Option<Spanned<String>>,
    pub last_resort: Option<Spanned<String>>,
    pub members: Option<List<RawMember>>,
}

/// One entry of `group.members`: `{ wan = "isp1", weight = 2, tier = 1 }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMember {
    pub wan: Option<Spanned<String>>,
    pub weight: Option<Spanned<i64>>,
    pub tier: Option<Spanned<i64>>,
}

/// `[[rule]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    pub name: Option<Spanned<String>>,
    pub proto: Option<Spanned<IntOrStr>>,
    pub src: Option<List<String>>,
    pub dst: Option<List<String>>,
    pub src_ports: Option<List<IntOrStr>>,
    pub dst_ports: Option<List<IntOrStr>>,
    pub ingress: Option<List<String>>,
    pub group: Option<Spanned<String>>,
    pub wan: Option<Spanned<String>>,
    pub action: Option<Spanned<String>>,
    pub sticky: Option<Spanned<IntOrStr>>,
}

/// `[[forward]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawForward {
    pub name: Option<Spanned<String>>,
    pub wan: Option<Spanned<String>>,
    pub wans: Option<List<String>>,
    pub group: Option<Spanned<String>>,
    pub proto: Option<Spanned<String>>,
    pub port: Option<Spanned<IntOrStr>>,
    pub to: Option<Spanned<String>>,
    pub to_port: Option<Spanned<i64>>,
}

/// `[conntrack]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConntrack {
    pub max_sessions: Option<Spanned<i64>>,
    pub shards: Option<Spanned<i64>>,
    pub on_full: Option<Spanned<String>>,
    pub max_fragments: Option<Spanned<i64>>,
    pub fragment_timeout: Option<Spanned<IntOrStr>>,
    pub sticky_max: Option<Spanned<i64>>,
    pub max_sessions_per_host: Option<Spanned<i64>>,
    pub max_ports_per_host: Option<Spanned<i64>>,
    pub timeouts: Option<Spanned<RawTimeouts>>,
}

/// `[control]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawControl {
    pub group: Option<Spanned<String>>,
    pub admin_group: Option<Spanned<String>>,
}

/// `[dataplane]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDataplane {
    pub backend: Option<Spanned<String>>,
    pub xdp_mode: Option<Spanned<String>>,
    pub umem_frames: Option<Spanned<i64>>,
}

/// `[health]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHealth {
    pub on_wan_down: Option<Spanned<String>>,
    pub hook: Option<Spanned<String>>,
    pub probe: Option<Spanned<RawProbe>>,
}

/// `[health.probe]` (defaults for every WAN) and `[wan.probe]` (one WAN's, key by key over
/// the defaults).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProbe {
    pub targets: Option<List<String>>,
    pub method: Option<Spanned<String>>,
    pub port: Option<Spanned<i64>>,
    pub path: Option<Spanned<String>>,
    pub expect_status: Option<Spanned<i64>>,
    pub query: Option<Spanned<String>>,
    pub reliability: Option<Spanned<i64>>,
    pub interval: Option<Spanned<IntOrStr>>,
    pub timeout: Option<Spanned<IntOrStr>>,
    pub fail_interval: Option<Spanned<IntOrStr>>,
    pub recover_interval: Option<Spanned<IntOrStr>>,
    pub down_after: Option<Spanned<i64>>,
    pub up_after: Option<Spanned<i64>>,
    pub initial: Option<Spanned<String>>,
    pub window: Option<Spanned<i64>>,
    pub latency_degraded: Option<Spanned<IntOrStr>>,
    pub latency_down: Option<Spanned<IntOrStr>>,
    pub loss_degraded: Option<Spanned<i64>>,
    pub loss_down: Option<Spanned<i64>>,
}

/// `[conntrack.timeouts]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTimeouts {
    pub udp: Option<Spanned<IntOrStr>>,
    pub icmp: Option<Spanned<IntOrStr>>,
    pub tcp_established: Option<Spanned<IntOrStr>>,
    pub tcp_transitory: Option<Spanned<IntOrStr>>,
    pub tcp_closed: Option<Spanned<IntOrStr>>,
}

/// A value written either as an integer or as a string: ports (`53`, `"1024-65535"`),
/// protocols (`6`, `"tcp"`) and durations (`300`, `"5m"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IntOrStr {
    Int(i64),
    Str(String),
}

impl<'de> Deserialize<'de> for IntOrStr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(IntOrStrVisitor)
    }
}

struct IntOrStrVisitor;

impl Visitor<'_> for IntOrStrVisitor {
    type Value = IntOrStr;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer or a string")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<IntOrStr, E> {
        Ok(IntOrStr::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<IntOrStr, E> {
        i64::try_from(v)
            .map(IntOrStr::Int)
            .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<IntOrStr, E> {
        Ok(IntOrStr::Str(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<IntOrStr, E> {
        Ok(IntOrStr::Str(v))
    }
}
