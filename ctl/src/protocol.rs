//! The wire types of the control protocol: one [`Request`] per line from the client, one
//! [`Response`] per line from the daemon, both JSON.
//!
//! Wire format, pinned by the tests below:
//! - a request is a JSON object internally tagged by `cmd`: `{"cmd":"status"}`,
//!   `{"cmd":"flows","wan":"isp1","limit":5}`, `{"cmd":"wan_admin","wan":"isp0","enabled":false}`,
//!   `{"cmd":"events","after":12}`; optional fields may be left out (`null` is accepted too),
//!   unknown fields are an error. Parse requests with [`Request::from_json`]:
//!   the derived `Deserialize` alone checks unknown fields only for the variants with fields
//!   (`deny_unknown_fields` does not reach internally tagged unit variants) and also takes
//!   serde's array form (`["status"]`); `from_json` refuses both;
//! - a response is externally tagged: `{"ok":{"kind":"status",...}}` or
//!   `{"error":{"message":"..."}}`; the reply inside `ok` is tagged by `kind`. Replies accept
//!   unknown fields, so a client keeps working against a daemon that reports more.
//!
//! Addresses are strings (`"192.0.2.1"`, `"192.0.2.1:4000"`), as serde writes them for JSON.
//! Measurements (latency, jitter, loss) are JSON numbers or `null` when unknown; replies that
//! carry them ([`WanHealth`], [`EventRecord`]) are `PartialEq` only, so [`Reply`] and
//! [`Response`] are too.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How many flows `flows` returns when the request gives no `limit` (applied by the server).
pub const DEFAULT_FLOW_LIMIT: u32 = 100;
/// The most flows one `flows` reply carries, whatever the `limit`: the rest comes in pages
/// (`offset`).
pub const MAX_FLOW_PAGE: u32 = 10_000;

/// Longest request line the server reads, in bytes, without its newline. A longer line is
/// answered with an error and its connection is closed.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// Where the daemon listens unless told otherwise.
pub const DEFAULT_SOCKET_PATH: &str = "/run/fwd/fwd.sock";

/// A command sent to the daemon: one JSON object per line, tagged by `cmd`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Uptime, workers, backend, every WAN with its state and traffic, global totals.
    Status,
    /// Tracked flows, optionally only those on one WAN, at most `limit` of them
    /// ([`DEFAULT_FLOW_LIMIT`] when absent, never more than [`MAX_FLOW_PAGE`]; see
    /// [`Request::flow_limit`]), after skipping the first `offset` that match.
    Flows {
        /// Only flows leaving by this WAN (by name).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        wan: Option<String>,
        /// At most this many flows in the reply; `total` still counts every match.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
        /// Matches to skip first: the reply is the page from there.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        offset: Option<u64>,
    },
    /// The policy rules in order, with their hit counts.
    Rules,
    /// Named drop and event counters.
    Counters,
    /// What the daemon would decide for a new flow with this 5-tuple, and why.
    Explain {
        /// Source address (a LAN host).
        src: Ipv4Addr,
        /// Destination address.
        dst: Ipv4Addr,
        /// Transport protocol.
        proto: Proto,
        /// Source port (TCP, UDP).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sport: Option<u16>,
        /// Destination port (TCP, UDP).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dport: Option<u16>,
    },
    /// Read the configuration file again and swap it in if it is valid.
    Reload,
    /// Link health of every WAN as the prober measures it.
    Wans,
    /// Disable a WAN (no new flows, whatever its probes say) or enable it again.
    WanAdmin {
        /// The WAN, by name.
        wan: String,
        /// `false` disables it, `true` enables it.
        enabled: bool,
    },
    /// WAN state changes from the daemon's event ring, those with `seq > after`, oldest
    /// first.
    Events {
        /// Sequence number of the last event already seen (0, the default, for all).
        #[serde(default, deserialize_with = "zero_if_null")]
        after: u64,
    },
}

/// Deserializes an optional counter: absent (with `#[serde(default)]`) or `null` is 0.
fn zero_if_null<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    Option::<u64>::deserialize(deserializer).map(Option::unwrap_or_default)
}

impl Request {
    /// Parses one request line (without its newline). The strict parser the server uses:
    /// the line must be one JSON object with a known `cmd`, the fields of that command with
    /// the right types, and no other field.
    pub fn from_json(line: &[u8]) -> Result<Request, serde_json::Error> {
        use serde::de::Error as _;
        let value: serde_json::Value = serde_json::from_slice(line)?;
        let Some(object) = value.as_object() else {
            return Err(serde_json::Error::custom(
                "expected a JSON object such as {\"cmd\":\"status\"}",
            ));
        };
        let request = Request::deserialize(&value)?;
        if let Some(extra) = object.keys().find(|k| !request.has_field(k)) {
            return Err(serde_json::Error::custom(format!(
                "unknown field `{extra}` for cmd `{}`",
                request.name()
            )));
        }
        Ok(request)
    }

    /// Whether `key` is a field of this request on the wire (`cmd` included).
    fn has_field(&self, key: &str) -> bool {
        let fields: &[&str] = match self {
            Request::Status
            | Request::Rules
            | Request::Counters
            | Request::Reload
            | Request::Wans => &[],
            Request::Flows { .. } => &["wan", "limit", "offset"],
            Request::Explain { .. } => &["src", "dst", "proto", "sport", "dport"],
            Request::WanAdmin { .. } => &["wan", "enabled"],
            Request::Events { .. } => &["after"],
        };
        key == "cmd" || fields.contains(&key)
    }

    /// Whether the request changes the daemon (reload, WAN admin): only root and the
    /// admin group may send it; everything else only reads.
    pub fn changes_state(&self) -> bool {
        matches!(self, Request::Reload | Request::WanAdmin { .. })
    }

    /// The `cmd` name of this request, as on the wire (for logs).
    pub fn name(&self) -> &'static str {
        match self {
            Request::Status => "status",
            Request::Flows { .. } => "flows",
            Request::Rules => "rules",
            Request::Counters => "counters",
            Request::Explain { .. } => "explain",
            Request::Reload => "reload",
            Request::Wans => "wans",
            Request::WanAdmin { .. } => "wan_admin",
            Request::Events { .. } => "events",
        }
    }

    /// The number of flows a `flows` request gets at most: its `limit`, or
    /// [`DEFAULT_FLOW_LIMIT`], capped at [`MAX_FLOW_PAGE`].
    pub fn flow_limit(limit: Option<u32>) -> u32 {
        limit.unwrap_or(DEFAULT_FLOW_LIMIT).min(MAX_FLOW_PAGE)
    }
}

/// Transport protocol of an `explain` request. JSON: `"tcp"`, `"udp"`, `"icmp"`; parsed from
/// the command line as those names (any case) or as IP protocol numbers 6, 17, 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// TCP (6).
    Tcp,
    /// UDP (17).
    Udp,
    /// ICMP (1).
    Icmp,
}

impl Proto {
    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
            Proto::Icmp => 1,
        }
    }

    /// The lowercase name, as on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Icmp => "icmp",
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A protocol name that is none of tcp, udp, icmp, 6, 17, 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown protocol {0:?} (expected tcp, udp, icmp, or 6, 17, 1)")]
pub struct ParseProtoError(pub String);

impl FromStr for Proto {
    type Err = ParseProtoError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "tcp" | "6" => Ok(Proto::Tcp),
            "udp" | "17" => Ok(Proto::Udp),
            "icmp" | "1" => Ok(Proto::Icmp),
            _ => Err(ParseProtoError(s.to_owned())),
        }
    }
}

/// The daemon's answer to one request: `{"ok":{...}}` or `{"error":{"message":"..."}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    /// The request succeeded.
    Ok(Reply),
    /// The request was malformed or failed; `message` is for a human.
    Error {
        /// What went wrong, one line.
        message: String,
    },
}

impl Response {
    /// An error response with this message.
    pub fn error(message: impl Into<String>) -> Response {
        Response::Error {
            message: message.into(),
        }
    }
}

/// The payload of a successful response, tagged by `kind` (the name of the request).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reply {
    /// Answer to [`Request::Status`].
    Status(StatusReply),
    /// Answer to [`Request::Flows`].
    Flows(FlowsReply),
    /// Answer to [`Request::Rules`].
    Rules(RulesReply),
    /// Answer to [`Request::Counters`].
    Counters(CountersReply),
    /// Answer to [`Request::Explain`].
    Explain(ExplainReply),
    /// Answer to [`Request::Reload`].
    Reload(ReloadReply),
    /// Answer to [`Request::Wans`]: every configured WAN, in configuration order. On the wire
    /// the list is the field `wans`, `{"kind":"wans","wans":[...]}` (an internally tagged
    /// variant cannot hold a bare array).
    #[serde(with = "wans_field")]
    Wans(Vec<WanHealth>),
    /// Answer to [`Request::WanAdmin`].
    WanAdmin(WanAdminResult),
    /// Answer to [`Request::Events`].
    Events(EventList),
}

/// The JSON form of [`Reply::Wans`]'s list: an object with one field `wans`.
mod wans_field {
    use super::WanHealth;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize)]
    struct Wans<'a> {
        wans: &'a [WanHealth],
    }

    #[derive(Deserialize)]
    struct OwnedWans {
        wans: Vec<WanHealth>,
    }

    pub(super) fn serialize<S: Serializer>(
        wans: &[WanHealth],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        Wans { wans }.serialize(serializer)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<WanHealth>, D::Error> {
        OwnedWans::deserialize(deserializer).map(|w| w.wans)
    }
}

/// The daemon at a glance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReply {
    /// Seconds since the daemon started.
    pub uptime_secs: u64,
    /// Number of packet workers.
    pub workers: u32,
    /// I/O backend in use (e.g. `tun`).
    pub backend: String,
    /// Every configured WAN, in configuration order.
    pub wans: Vec<WanStatus>,
    /// Totals over all workers.
    pub totals: Totals,
}

/// One WAN uplink: identity, health, policy weight and traffic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WanStatus {
    /// Configured name (e.g. `isp1`).
    pub name: String,
    /// Network interface it leaves by.
    pub interface: String,
    /// Its address: the NAT source of flows leaving by it.
    pub address: Ipv4Addr,
    /// Health: `"up"`, `"degraded"` or `"down"`.
    pub state: String,
    /// Tier in its group (lower is preferred).
    pub tier: u8,
    /// Weight among the WANs of its tier.
    pub weight: u32,
    /// Flows currently leaving by it.
    pub flows: u64,
    /// Packets sent out of it.
    pub tx_packets: u64,
    /// Bytes sent out of it.
    pub tx_bytes: u64,
    /// Packets received on it for tracked flows.
    pub rx_packets: u64,
    /// Bytes received on it for tracked flows.
    pub rx_bytes: u64,
}

/// Global counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Flows in the connection table.
    pub flows: u64,
    /// Capacity of the connection table.
    pub max_flows: u64,
    /// Packets forwarded.
    pub forwarded: u64,
    /// Packets handed to the kernel.
    pub to_kernel: u64,
    /// Packets dropped (see `counters` for the reasons).
    pub dropped: u64,
    /// Sessions created since start.
    pub sessions_created: u64,
}

/// Flows matching a `flows` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowsReply {
    /// Number of flows that matched (may exceed `flows.len()`).
    pub total: u64,
    /// Matches skipped before the first of `flows` (the request's `offset`).
    #[serde(default)]
    pub offset: u64,
    /// The flows that matched from `offset` on, at most the request's limit.
    pub flows: Vec<Flow>,
}

/// One tracked flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flow {
    /// `tcp`, `udp` or `icmp`.
    pub proto: String,
    /// The LAN endpoint.
    pub internal: SocketAddrV4,
    /// The NAT endpoint on the WAN (WAN address and mapped port).
    pub external: SocketAddrV4,
    /// The remote endpoint.
    pub remote: SocketAddrV4,
    /// The WAN the flow leaves by.
    pub wan: String,
    /// TCP state name (e.g. `established`), or `-` for other protocols.
    pub state: String,
    /// The rule that placed the flow.
    pub rule: String,
    /// Seconds since the flow was created.
    pub age_secs: u64,
    /// Seconds since its last packet.
    pub idle_secs: u64,
    /// Packets LAN → WAN.
    pub packets_out: u64,
    /// Packets WAN → LAN.
    pub packets_in: u64,
    /// Bytes LAN → WAN.
    pub bytes_out: u64,
    /// Bytes WAN → LAN.
    pub bytes_in: u64,
}

/// The policy rules, in evaluation order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RulesReply {
    /// Rules in file order (first match wins).
    pub rules: Vec<RuleEntry>,
    /// Port forwards in file order.
    #[serde(default)]
    pub forwards: Vec<ForwardEntry>,
}

/// One port forward.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardEntry {
    /// Configured name.
    pub name: String,
    /// The WANs it takes connections on.
    pub wans: Vec<String>,
    /// `tcp`, `udp` or `tcp+udp`.
    pub proto: String,
    /// External port or range, e.g. `8080` or `6881-6889`.
    pub ports: String,
    /// The server, e.g. `192.168.1.10:80` or `192.168.1.20:6881-6889`.
    pub to: String,
    /// Connections it has taken.
    pub hits: u64,
}

/// One policy rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleEntry {
    /// Position, from 0 or 1 as the daemon numbers them.
    pub index: u32,
    /// Configured name.
    pub name: String,
    /// Human summary of what it matches, e.g. `proto udp dport 53`, or `any`.
    pub matches: String,
    /// Human summary of what it does, e.g. `group balanced`, `wan isp1`, `blackhole`.
    pub action: String,
    /// Stickiness window, if the rule is sticky.
    pub sticky_secs: Option<u64>,
    /// New flows placed by it.
    pub hits: u64,
}

/// Named counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountersReply {
    /// Drop reasons and how many packets each dropped.
    pub drops: Vec<Counter>,
    /// Other events (sessions created, evictions, WAN state changes...).
    pub events: Vec<Counter>,
    /// The backend's own counters: per AF_XDP socket (`<interface>.q<queue>.<name>`) and
    /// per decision of fwd's XDP program (`xdp.<name>`); empty over TUN.
    #[serde(default)]
    pub device: Vec<Counter>,
}

/// One named counter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counter {
    /// Stable name, e.g. `ttl_expired`.
    pub name: String,
    /// Its value.
    pub value: u64,
}

/// The decision the daemon would take for a new flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExplainReply {
    /// The rule that matched, if any.
    pub rule: Option<String>,
    /// The WAN group it points to, if any.
    pub group: Option<String>,
    /// The WAN that would be picked, if any.
    pub wan: Option<String>,
    /// One-line summary, e.g. `nat via isp1`, `main table`, `blackhole`.
    pub decision: String,
    /// The steps that led there, in order.
    pub reasons: Vec<String>,
}

/// Outcome of a reload that succeeded (a refused configuration is a [`Response::Error`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadReply {
    /// What changed, for a human.
    pub message: String,
}

/// The health of one WAN: its published state and what the prober last measured (see
/// [`Reply::Wans`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WanHealth {
    /// Configured name (e.g. `isp0`).
    pub name: String,
    /// Published state: `"up"`, `"degraded"`, `"down"` or `"disabled"` (by an operator).
    pub state: String,
    /// Tier in its group (lower is preferred).
    pub tier: u8,
    /// Weight among the WANs of its tier.
    pub weight: u32,
    /// Whether it has probe targets; a WAN without any is never probed and always up.
    pub probed: bool,
    /// Probe method: `"icmp"`, `"tcp"`, `"http"` or `"dns"`; `None` when not probed.
    pub method: Option<String>,
    /// Probe targets.
    pub targets: Vec<Ipv4Addr>,
    /// Mean round-trip time over the probe window, in milliseconds.
    pub latency_ms: Option<f64>,
    /// Mean variation between consecutive round-trip times, in milliseconds.
    pub jitter_ms: Option<f64>,
    /// Probes lost over the window, in percent (0 to 100).
    pub loss_pct: Option<f64>,
    /// Seconds since it entered its current state.
    pub in_state_secs: f64,
    /// Why it last changed state, for a human; `""` if it never changed.
    pub reason: String,
    /// Carrier of its interface, when known.
    pub carrier: Option<bool>,
    /// Flows currently leaving by it.
    pub flows: u64,
}

/// Outcome of a `wan_admin` request (an unknown WAN is a [`Response::Error`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WanAdminResult {
    /// The WAN, by name.
    pub wan: String,
    /// False when the WAN was already disabled (or enabled) as asked.
    pub changed: bool,
    /// Its published state afterwards (`"disabled"` after a disable).
    pub state: String,
}

/// A slice of the daemon's ring of WAN state changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventList {
    /// The events with `seq` greater than the request's `after`, oldest first.
    pub events: Vec<EventRecord>,
    /// Sequence number of the newest event the daemon has recorded (0 if none): the `after`
    /// of the next request to see only newer ones.
    pub last_seq: u64,
    /// Events after `after` that had already left the ring before they could be read.
    pub missed: u64,
}

/// One WAN state change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// Sequence number, from 1, increasing by one per event.
    pub seq: u64,
    /// When it happened, in milliseconds since the Unix epoch (UTC).
    pub unix_ms: u64,
    /// The WAN, by name.
    pub wan: String,
    /// State before.
    pub old: String,
    /// State after.
    pub new: String,
    /// Why, for a human.
    pub reason: String,
    /// Latency measured when it changed, in milliseconds.
    pub latency_ms: Option<f64>,
    /// Jitter measured when it changed, in milliseconds.
    pub jitter_ms: Option<f64>,
    /// Loss measured when it changed, in percent.
    pub loss_pct: Option<f64>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample_status() -> StatusReply {
        StatusReply {
            uptime_secs: 3725,
            workers: 4,
            backend: "tun".into(),
            wans: vec![
                WanStatus {
                    name: "isp1".into(),
                    interface: "eth1".into(),
                    address: Ipv4Addr::new(198, 51, 100, 2),
                    state: "up".into(),
                    tier: 0,
                    weight: 2,
                    flows: 812,
                    tx_packets: 120_345,
                    tx_bytes: 1_234_567,
                    rx_packets: 230_001,
                    rx_bytes: 2_345_678_901,
                },
                WanStatus {
                    name: "isp2-backup".into(),
                    interface: "ppp0".into(),
                    address: Ipv4Addr::new(203, 0, 113, 77),
                    state: "down".into(),
                    tier: 1,
                    weight: 1,
                    flows: 0,
                    tx_packets: 0,
                    tx_bytes: 0,
                    rx_packets: 3,
                    rx_bytes: 999,
                },
            ],
            totals: Totals {
                flows: 812,
                max_flows: 262_144,
                forwarded: 350_346,
                to_kernel: 42,
                dropped: 7,
                sessions_created: 1_900,
            },
        }
    }

    pub(crate) fn sample_forward() -> ForwardEntry {
        ForwardEntry {
            name: "web".into(),
            wans: vec!["isp1".into(), "isp2".into()],
            proto: "tcp".into(),
            ports: "8080".into(),
            to: "192.168.1.10:80".into(),
            hits: 42,
        }
    }

    pub(crate) fn sample_flow() -> Flow {
        Flow {
            proto: "tcp".into(),
            internal: "192.168.1.10:51000".parse().unwrap(),
            external: "198.51.100.2:40001".parse().unwrap(),
            remote: "93.184.216.34:443".parse().unwrap(),
            wan: "isp1".into(),
            state: "established".into(),
            rule: "web".into(),
            age_secs: 65,
            idle_secs: 2,
            packets_out: 10,
            packets_in: 12,
            bytes_out: 1500,
            bytes_in: 64_000,
        }
    }

    pub(crate) fn sample_wans() -> Vec<WanHealth> {
        vec![
            WanHealth {
                name: "isp0".into(),
                state: "up".into(),
                tier: 0,
                weight: 2,
                probed: true,
                method: Some("icmp".into()),
                targets: vec![Ipv4Addr::new(1, 1, 1, 1), Ipv4Addr::new(8, 8, 8, 8)],
                latency_ms: Some(12.34),
                jitter_ms: Some(1.25),
                loss_pct: Some(0.0),
                in_state_secs: 4.2,
                reason: "recovered: 0% loss over 10 probes".into(),
                carrier: Some(true),
                flows: 812,
            },
            WanHealth {
                name: "isp1-lte".into(),
                state: "degraded".into(),
                tier: 1,
                weight: 1,
                probed: true,
                method: Some("tcp".into()),
                targets: vec![Ipv4Addr::new(9, 9, 9, 9)],
                latency_ms: Some(187.0),
                jitter_ms: None,
                loss_pct: Some(35.5),
                in_state_secs: 192.9,
                reason: String::new(),
                carrier: Some(false),
                flows: 3,
            },
            WanHealth {
                name: "dsl".into(),
                state: "disabled".into(),
                tier: 0,
                weight: 10,
                probed: false,
                method: None,
                targets: vec![],
                latency_ms: Some(5.0),
                jitter_ms: None,
                loss_pct: None,
                in_state_secs: 7530.0,
                reason: String::new(),
                carrier: None,
                flows: 0,
            },
        ]
    }

    pub(crate) fn sample_events() -> EventList {
        EventList {
            events: vec![
                EventRecord {
                    seq: 13,
                    unix_ms: 1_796_094_847_123,
                    wan: "isp0".into(),
                    old: "up".into(),
                    new: "down".into(),
                    reason: "loss 100% over 5 probes".into(),
                    latency_ms: None,
                    jitter_ms: None,
                    loss_pct: Some(100.0),
                },
                EventRecord {
                    seq: 14,
                    unix_ms: 1_796_094_912_000,
                    wan: "isp0".into(),
                    old: "down".into(),
                    new: "up".into(),
                    reason: "recovered".into(),
                    latency_ms: Some(12.34),
                    jitter_ms: Some(0.96),
                    loss_pct: Some(0.0),
                },
            ],
            last_seq: 14,
            missed: 2,
        }
    }

    fn all_requests() -> Vec<Request> {
        vec![
            Request::Status,
            Request::Flows {
                wan: None,
                limit: None,
                offset: None,
            },
            Request::Flows {
                wan: Some("isp1".into()),
                limit: Some(5),
                offset: Some(200),
            },
            Request::Rules,
            Request::Counters,
            Request::Explain {
                src: Ipv4Addr::new(192, 168, 1, 10),
                dst: Ipv4Addr::new(8, 8, 8, 8),
                proto: Proto::Udp,
                sport: Some(5353),
                dport: Some(53),
            },
            Request::Explain {
                src: Ipv4Addr::new(192, 168, 1, 10),
                dst: Ipv4Addr::new(1, 1, 1, 1),
                proto: Proto::Icmp,
                sport: None,
                dport: None,
            },
            Request::Reload,
            Request::Wans,
            Request::WanAdmin {
                wan: "isp0".into(),
                enabled: false,
            },
            Request::WanAdmin {
                wan: "isp1".into(),
                enabled: true,
            },
            Request::Events { after: 0 },
            Request::Events { after: u64::MAX },
        ]
    }

    fn all_responses() -> Vec<Response> {
        vec![
            Response::Ok(Reply::Status(sample_status())),
            Response::Ok(Reply::Flows(FlowsReply {
                total: 3,
                offset: 0,
                flows: vec![sample_flow()],
            })),
            Response::Ok(Reply::Rules(RulesReply {
                rules: vec![RuleEntry {
                    index: 1,
                    name: "dns".into(),
                    matches: "proto udp dport 53".into(),
                    action: "group balanced".into(),
                    sticky_secs: Some(300),
                    hits: 9,
                }],
                forwards: vec![sample_forward()],
            })),
            Response::Ok(Reply::Counters(CountersReply {
                drops: vec![Counter {
                    name: "ttl_expired".into(),
                    value: 3,
                }],
                events: vec![],
                device: vec![],
            })),
            Response::Ok(Reply::Explain(ExplainReply {
                rule: Some("dns".into()),
                group: None,
                wan: Some("isp1".into()),
                decision: "nat via isp1".into(),
                reasons: vec!["rule dns matched".into()],
            })),
            Response::Ok(Reply::Reload(ReloadReply {
                message: "reloaded".into(),
            })),
            Response::Ok(Reply::Wans(sample_wans())),
            Response::Ok(Reply::Wans(vec![])),
            Response::Ok(Reply::WanAdmin(WanAdminResult {
                wan: "isp0".into(),
                changed: true,
                state: "disabled".into(),
            })),
            Response::Ok(Reply::Events(sample_events())),
            Response::Ok(Reply::Events(EventList {
                events: vec![],
                last_seq: 0,
                missed: 0,
            })),
            Response::error("boom"),
        ]
    }

    #[test]
    fn every_request_round_trips() {
        for req in all_requests() {
            let line = serde_json::to_string(&req).unwrap();
            assert!(!line.contains('\n'));
            let back: Request = serde_json::from_str(&line).unwrap();
            assert_eq!(back, req, "{line}");
        }
    }

    #[test]
    fn every_response_round_trips() {
        for resp in all_responses() {
            let line = serde_json::to_string(&resp).unwrap();
            assert!(!line.contains('\n'));
            let back: Response = serde_json::from_str(&line).unwrap();
            assert_eq!(back, resp, "{line}");
        }
    }

    #[test]
    fn request_wire_format_is_pinned() {
        let cases = [
            (Request::Status, r#"{"cmd":"status"}"#),
            (
                Request::Flows {
                    wan: Some("isp1".into()),
                    limit: Some(5),
                    offset: None,
                },
                r#"{"cmd":"flows","wan":"isp1","limit":5}"#,
            ),
            (
                Request::Flows {
                    wan: None,
                    limit: Some(100),
                    offset: Some(300),
                },
                r#"{"cmd":"flows","limit":100,"offset":300}"#,
            ),
            (
                Request::Flows {
                    wan: None,
                    limit: None,
                    offset: None,
                },
                r#"{"cmd":"flows"}"#,
            ),
            (
                Request::Explain {
                    src: Ipv4Addr::new(10, 0, 0, 1),
                    dst: Ipv4Addr::new(8, 8, 8, 8),
                    proto: Proto::Tcp,
                    sport: None,
                    dport: Some(443),
                },
                r#"{"cmd":"explain","src":"10.0.0.1","dst":"8.8.8.8","proto":"tcp","dport":443}"#,
            ),
            (Request::Reload, r#"{"cmd":"reload"}"#),
            (Request::Wans, r#"{"cmd":"wans"}"#),
            (
                Request::WanAdmin {
                    wan: "isp0".into(),
                    enabled: false,
                },
                r#"{"cmd":"wan_admin","wan":"isp0","enabled":false}"#,
            ),
            (
                Request::Events { after: 12 },
                r#"{"cmd":"events","after":12}"#,
            ),
            (
                Request::Events { after: 0 },
                r#"{"cmd":"events","after":0}"#,
            ),
        ];
        for (req, json) in cases {
            assert_eq!(serde_json::to_string(&req).unwrap(), json);
            assert_eq!(serde_json::from_str::<Request>(json).unwrap(), req);
        }
        // `after` may be left out or null: 0, all events.
        for json in [r#"{"cmd":"events"}"#, r#"{"cmd":"events","after":null}"#] {
            assert_eq!(
                Request::from_json(json.as_bytes()).unwrap(),
                Request::Events { after: 0 },
                "{json}"
            );
        }
        // Explicit nulls are accepted for optional fields.
        assert_eq!(
            serde_json::from_str::<Request>(r#"{"cmd":"flows","wan":null,"limit":null}"#).unwrap(),
            Request::Flows {
                wan: None,
                limit: None,
                offset: None
            }
        );
    }

    #[test]
    fn response_wire_format_is_pinned() {
        assert_eq!(
            serde_json::to_string(&Response::error("bad")).unwrap(),
            r#"{"error":{"message":"bad"}}"#
        );
        let reload = Response::Ok(Reply::Reload(ReloadReply {
            message: "done".into(),
        }));
        assert_eq!(
            serde_json::to_string(&reload).unwrap(),
            r#"{"ok":{"kind":"reload","message":"done"}}"#
        );
        let counters = Response::Ok(Reply::Counters(CountersReply {
            drops: vec![Counter {
                name: "ttl_expired".into(),
                value: 2,
            }],
            events: vec![],
            device: vec![],
        }));
        assert_eq!(
            serde_json::to_string(&counters).unwrap(),
            r#"{"ok":{"kind":"counters","drops":[{"name":"ttl_expired","value":2}],"events":[],"device":[]}}"#
        );
    }

    #[test]
    fn link_health_reply_wire_format_is_pinned() {
        let wans = Response::Ok(Reply::Wans(vec![
            WanHealth {
                name: "isp0".into(),
                state: "up".into(),
                tier: 0,
                weight: 2,
                probed: true,
                method: Some("icmp".into()),
                targets: vec![Ipv4Addr::new(1, 1, 1, 1)],
                latency_ms: Some(12.5),
                jitter_ms: Some(0.25),
                loss_pct: Some(0.0),
                in_state_secs: 4.5,
                reason: "probes answered".into(),
                carrier: Some(true),
                flows: 7,
            },
            WanHealth {
                name: "isp1".into(),
                state: "up".into(),
                tier: 1,
                weight: 1,
                probed: false,
                method: None,
                targets: vec![],
                latency_ms: None,
                jitter_ms: None,
                loss_pct: None,
                in_state_secs: 60.0,
                reason: String::new(),
                carrier: None,
                flows: 0,
            },
        ]));
        let json = concat!(
            r#"{"ok":{"kind":"wans","wans":["#,
            r#"{"name":"isp0","state":"up","tier":0,"weight":2,"probed":true,"method":"icmp","#,
            r#""targets":["1.1.1.1"],"latency_ms":12.5,"jitter_ms":0.25,"loss_pct":0.0,"#,
            r#""in_state_secs":4.5,"reason":"probes answered","carrier":true,"flows":7},"#,
            r#"{"name":"isp1","state":"up","tier":1,"weight":1,"probed":false,"method":null,"#,
            r#""targets":[],"latency_ms":null,"jitter_ms":null,"loss_pct":null,"#,
            r#""in_state_secs":60.0,"reason":"","carrier":null,"flows":0}]}}"#
        );
        assert_eq!(serde_json::to_string(&wans).unwrap(), json);
        assert_eq!(serde_json::from_str::<Response>(json).unwrap(), wans);

        let admin = Response::Ok(Reply::WanAdmin(WanAdminResult {
            wan: "isp0".into(),
            changed: false,
            state: "disabled".into(),
        }));
        let json = r#"{"ok":{"kind":"wan_admin","wan":"isp0","changed":false,"state":"disabled"}}"#;
        assert_eq!(serde_json::to_string(&admin).unwrap(), json);
        assert_eq!(serde_json::from_str::<Response>(json).unwrap(), admin);

        let events = Response::Ok(Reply::Events(EventList {
            events: vec![EventRecord {
                seq: 13,
                unix_ms: 1_796_094_847_123,
                wan: "isp0".into(),
                old: "up".into(),
                new: "down".into(),
                reason: "loss 100%".into(),
                latency_ms: None,
                jitter_ms: None,
                loss_pct: Some(100.0),
            }],
            last_seq: 13,
            missed: 1,
        }));
        let json = concat!(
            r#"{"ok":{"kind":"events","events":[{"seq":13,"unix_ms":1796094847123,"wan":"isp0","#,
            r#""old":"up","new":"down","reason":"loss 100%","latency_ms":null,"jitter_ms":null,"#,
            r#""loss_pct":100.0}],"last_seq":13,"missed":1}}"#
        );
        assert_eq!(serde_json::to_string(&events).unwrap(), json);
        assert_eq!(serde_json::from_str::<Response>(json).unwrap(), events);
    }

    #[test]
    fn link_health_replies_tolerate_more_and_refuse_wrong() {
        // A newer daemon may report more; absent measurements are unknown.
        let json = concat!(
            r#"{"ok":{"kind":"wans","wans":[{"name":"isp0","state":"down","tier":0,"weight":1,"#,
            r#""probed":true,"targets":["8.8.8.8"],"in_state_secs":1.5,"reason":"","#,
            r#""flows":0,"mtu":1500}],"probe_interval_ms":500}}"#
        );
        let Response::Ok(Reply::Wans(wans)) = serde_json::from_str::<Response>(json).unwrap()
        else {
            panic!("not a wans reply");
        };
        assert_eq!(wans.len(), 1);
        assert_eq!(
            (wans[0].method.as_deref(), wans[0].latency_ms),
            (None, None)
        );
        for bad in [
            r#"{"ok":{"kind":"wans"}}"#,
            r#"{"ok":{"kind":"wans","wans":{}}}"#,
            r#"{"ok":{"kind":"wans","wans":[{"name":"isp0"}]}}"#,
            r#"{"ok":{"kind":"wan_admin","wan":"isp0","changed":"yes","state":"up"}}"#,
            r#"{"ok":{"kind":"events","events":[],"last_seq":-1,"missed":0}}"#,
            r#"{"ok":{"kind":"events","events":[{"seq":1}],"last_seq":1,"missed":0}}"#,
        ] {
            assert!(
                serde_json::from_str::<Response>(bad).is_err(),
                "accepted: {bad}"
            );
        }
    }

    #[test]
    fn malformed_requests_are_errors() {
        let bad = [
            "",
            "{}",
            r#"{"cmd":"nope"}"#,
            "not json",
            r#"{"cmd":"flows","limit":"5"}"#,
            r#"{"cmd":"flows","limit":-1}"#,
            r#"{"cmd":"flows","wan":7}"#,
            r#"{"cmd":"flows","bogus":1}"#,
            r#"{"cmd":"explain","src":"10.0.0.1","dst":"8.8.8.8"}"#,
            r#"{"cmd":"explain","src":"10.0.0.300","dst":"8.8.8.8","proto":"tcp"}"#,
            r#"{"cmd":"explain","src":"10.0.0.1","dst":"8.8.8.8","proto":"sctp"}"#,
            r#"{"cmd":"explain","src":"10.0.0.1","dst":"8.8.8.8","proto":"tcp","dport":70000}"#,
            r#"["status"]"#,
            r#"{"cmd":5}"#,
            r#"{"cmd":"status"} trailing"#,
            r#"{"cmd":"status","verbose":true}"#,
            r#"{"cmd":"reload","force":1}"#,
            r#"{"cmd":"wans","wan":"isp0"}"#,
            r#"{"cmd":"wan_admin","enabled":false}"#,
            r#"{"cmd":"wan_admin","wan":"isp0"}"#,
            r#"{"cmd":"wan_admin","wan":"isp0","enabled":"false"}"#,
            r#"{"cmd":"wan_admin","wan":"isp0","enabled":0}"#,
            r#"{"cmd":"wan_admin","wan":7,"enabled":true}"#,
            r#"{"cmd":"wan_admin","wan":null,"enabled":true}"#,
            r#"{"cmd":"wan_admin","wan":"isp0","enabled":true,"force":true}"#,
            r#"{"cmd":"events","after":-1}"#,
            r#"{"cmd":"events","after":"12"}"#,
            r#"{"cmd":"events","after":1.5}"#,
            r#"{"cmd":"events","since":3}"#,
            "\"status\"",
            "null",
        ];
        for line in bad {
            assert!(
                Request::from_json(line.as_bytes()).is_err(),
                "accepted: {line}"
            );
        }
        for good in [
            r#"{"cmd":"status"}"#,
            r#" {"cmd":"flows","limit":3} "#,
            r#"{"cmd":"explain","src":"10.0.0.1","dst":"8.8.8.8","proto":"icmp","sport":null}"#,
        ] {
            assert!(
                Request::from_json(good.as_bytes()).is_ok(),
                "refused: {good}"
            );
        }
        let err = Request::from_json(br#"{"cmd":"nope"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown variant `nope`"), "{err}");
    }

    #[test]
    fn proto_parses_names_and_numbers() {
        for (s, p) in [
            ("tcp", Proto::Tcp),
            ("TCP", Proto::Tcp),
            ("6", Proto::Tcp),
            ("udp", Proto::Udp),
            ("17", Proto::Udp),
            ("icmp", Proto::Icmp),
            ("1", Proto::Icmp),
        ] {
            assert_eq!(s.parse::<Proto>().unwrap(), p);
        }
        assert!("sctp".parse::<Proto>().is_err());
        assert!("132".parse::<Proto>().is_err());
        assert_eq!(Proto::Udp.number(), 17);
        assert_eq!(Proto::Icmp.to_string(), "icmp");
    }

    #[test]
    fn flow_limit_defaults() {
        assert_eq!(Request::flow_limit(None), DEFAULT_FLOW_LIMIT);
        assert_eq!(Request::flow_limit(Some(3)), 3);
        assert_eq!(Request::flow_limit(Some(u32::MAX)), MAX_FLOW_PAGE);
        assert_eq!(Request::Rules.name(), "rules");
        assert_eq!(Request::Events { after: 1 }.name(), "events");
        assert_eq!(
            Request::WanAdmin {
                wan: "x".into(),
                enabled: true
            }
            .name(),
            "wan_admin"
        );
    }
}
