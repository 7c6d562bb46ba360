//! Per-WAN probe configuration: targets, method, timing, hysteresis, window and quality
//! thresholds, with defaults and validation.

use std::net::Ipv4Addr;
use std::time::Duration;

/// Default time between two rounds.
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(100);
/// Default time a probe may take before it counts as lost.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(300);
/// Default number of consecutive failed rounds that take a link down.
pub const DEFAULT_DOWN_AFTER: u32 = 3;
/// Default number of consecutive good rounds that bring a link back.
pub const DEFAULT_UP_AFTER: u32 = 5;
/// Default number of probe results kept for latency, jitter and loss.
pub const DEFAULT_WINDOW: usize = 20;

/// Bounds checked by [`ProbeConfig::validate`].
pub const MAX_TARGETS: usize = 64;
/// Largest window accepted (figures are recomputed over the window after each round).
pub const MAX_WINDOW: usize = 10_000;
/// Longest interval or timeout accepted.
pub const MAX_PERIOD: Duration = Duration::from_secs(3600);

/// How a target is probed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// ICMP echo request; answered by a matching echo reply.
    Icmp,
    /// TCP connect to `port`; answered by a completed handshake or a reset (either proves
    /// the path to the target works).
    Tcp {
        /// The target's port.
        port: u16,
    },
    /// `GET path` over HTTP/1.0 on `port`; answered only by a status line with
    /// `expect_status` (any other status, a reset or a closed connection is a failure).
    Http {
        /// The server's port.
        port: u16,
        /// The path requested (starts with `/`).
        path: String,
        /// The only status that counts as an answer.
        expect_status: u16,
    },
    /// A DNS `A` query for `name` over UDP to `port`; answered by a response with the
    /// query's id, QR set, RCODE 0 and at least one answer record.
    Dns {
        /// The server's port.
        port: u16,
        /// The name queried.
        name: String,
    },
}

impl Method {
    /// Short name for messages: `icmp`, `tcp`, `http`, `dns`.
    pub fn kind(&self) -> &'static str {
        match self {
            Method::Icmp => "icmp",
            Method::Tcp { .. } => "tcp",
            Method::Http { .. } => "http",
            Method::Dns { .. } => "dns",
        }
    }
}

/// The state a WAN starts in, before any round has closed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Initial {
    /// Usable at once; goes down after `down_after` failed rounds.
    #[default]
    Up,
    /// Unusable until `up_after` good rounds.
    Down,
}

/// Probing of one WAN. Build with [`ProbeConfig::new`] (defaults) and adjust fields.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeConfig {
    /// The WAN's name (events and the hook carry it).
    pub name: String,
    /// Probe destinations; every round sends one probe to each.
    pub targets: Vec<Ipv4Addr>,
    /// How each target is probed.
    pub method: Method,
    /// How many targets must answer for a round to be good (1 ..= targets).
    pub reliability: usize,
    /// Time between round starts while the link is up (or degraded) and not failing.
    pub interval: Duration,
    /// How long a probe may take; later answers count as lost.
    pub timeout: Duration,
    /// Time between rounds while failing (a failed round since the last good one) or down
    /// with no good round yet. `None`: `interval`.
    pub fail_interval: Option<Duration>,
    /// Time between rounds while down and recovering (at least one good round). `None`:
    /// `interval`.
    pub recover_interval: Option<Duration>,
    /// Consecutive failed rounds that take the link down.
    pub down_after: u32,
    /// Consecutive good rounds that bring the link back up (or from degraded to up).
    pub up_after: u32,
    /// The state before any round has closed.
    pub initial: Initial,
    /// Probe results (of all targets together) kept for latency, jitter and loss.
    pub window: usize,
    /// Average latency above this: degraded.
    pub latency_degraded: Option<Duration>,
    /// Average latency above this: down.
    pub latency_down: Option<Duration>,
    /// Loss above this percentage: degraded.
    pub loss_degraded_pct: Option<f64>,
    /// Loss above this percentage: down.
    pub loss_down_pct: Option<f64>,
}

impl ProbeConfig {
    /// A configuration with every default: reliability 1, interval 100 ms, timeout 300 ms,
    /// fail and recover intervals = interval, down after 3, up after 5, initially up,
    /// window 20, no quality thresholds.
    pub fn new(name: impl Into<String>, targets: Vec<Ipv4Addr>, method: Method) -> ProbeConfig {
        ProbeConfig {
            name: name.into(),
            targets,
            method,
            reliability: 1,
            interval: DEFAULT_INTERVAL,
            timeout: DEFAULT_TIMEOUT,
            fail_interval: None,
            recover_interval: None,
            down_after: DEFAULT_DOWN_AFTER,
            up_after: DEFAULT_UP_AFTER,
            initial: Initial::Up,
            window: DEFAULT_WINDOW,
            latency_degraded: None,
            latency_down: None,
            loss_degraded_pct: None,
            loss_down_pct: None,
        }
    }

    /// Whether the WAN is probed at all: a configuration without targets never sends a probe;
    /// its WAN stays in its initial state except for carrier changes and the operator's
    /// switch.
    pub fn is_probed(&self) -> bool {
        !self.targets.is_empty()
    }

    /// The interval used while failing.
    pub fn fail_interval(&self) -> Duration {
        self.fail_interval.unwrap_or(self.interval)
    }

    /// The interval used while recovering.
    pub fn recover_interval(&self) -> Duration {
        self.recover_interval.unwrap_or(self.interval)
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ProbeConfigError> {
        let err = |field: &'static str, message: String| ProbeConfigError {
            wan: self.name.clone(),
            field,
            message,
        };
        if self.name.is_empty() {
            return Err(err("name", "must not be empty".into()));
        }
        if self.targets.len() > MAX_TARGETS {
            return Err(err(
                "targets",
                format!("{} targets; at most {MAX_TARGETS}", self.targets.len()),
            ));
        }
        for (i, t) in self.targets.iter().enumerate() {
            if t.is_unspecified() || t.is_broadcast() || t.is_multicast() {
                return Err(err("targets", format!("{t} cannot be probed")));
            }
            if self.targets[..i].contains(t) {
                return Err(err("targets", format!("{t} is listed twice")));
            }
        }
        self.validate_method()
            .map_err(|(field, message)| err(field, message))?;
        if self.is_probed() && (self.reliability == 0 || self.reliability > self.targets.len()) {
            return Err(err(
                "reliability",
                format!(
                    "{} is not between 1 and the number of targets ({})",
                    self.reliability,
                    self.targets.len()
                ),
            ));
        }
        let periods = [
            ("interval", Some(self.interval)),
            ("timeout", Some(self.timeout)),
            ("fail_interval", self.fail_interval),
            ("recover_interval", self.recover_interval),
        ];
        for (field, value) in periods {
            if let Some(v) = value {
                if v < Duration::from_millis(1) || v > MAX_PERIOD {
                    return Err(err(
                        field,
                        format!("{v:?} is not between 1ms and {}s", MAX_PERIOD.as_secs()),
                    ));
                }
            }
        }
        if self.down_after == 0 {
            return Err(err("down_after", "must be at least 1".into()));
        }
        if self.up_after == 0 {
            return Err(err("up_after", "must be at least 1".into()));
        }
        if self.window == 0 || self.window > MAX_WINDOW {
            return Err(err(
                "window",
                format!("{} is not between 1 and {MAX_WINDOW}", self.window),
            ));
        }
        for (field, value) in [
            ("loss_degraded_pct", self.loss_degraded_pct),
            ("loss_down_pct", self.loss_down_pct),
        ] {
            if let Some(v) = value {
                if !(0.0..100.0).contains(&v) {
                    return Err(err(field, format!("{v} is not a percentage in 0 ..< 100")));
                }
            }
        }
        if let (Some(d), Some(x)) = (self.loss_degraded_pct, self.loss_down_pct) {
            if d > x {
                return Err(err(
                    "loss_degraded_pct",
                    format!("{d} is above loss_down_pct ({x})"),
                ));
            }
        }
        if let (Some(d), Some(x)) = (self.latency_degraded, self.latency_down) {
            if d > x {
                return Err(err(
                    "latency_degraded",
                    format!("{d:?} is above latency_down ({x:?})"),
                ));
            }
        }
        for (field, value) in [
            ("latency_degraded", self.latency_degraded),
            ("latency_down", self.latency_down),
        ] {
            if value == Some(Duration::ZERO) {
                return Err(err(field, "must be above zero".into()));
            }
        }
        Ok(())
    }

    fn validate_method(&self) -> Result<(), (&'static str, String)> {
        let port_ok = |port: u16| {
            if port == 0 {
                Err(("method.port", "must not be 0".to_string()))
            } else {
                Ok(())
            }
        };
        match &self.method {
            Method::Icmp => Ok(()),
            Method::Tcp { port } => port_ok(*port),
            Method::Http {
                port,
                path,
                expect_status,
            } => {
                port_ok(*port)?;
                if !path.starts_with('/')
                    || path.len() > 1024
                    || !path.bytes().all(|b| b.is_ascii_graphic())
                {
                    return Err((
                        "method.path",
                        format!(
                            "{path:?} must start with '/' and hold at most 1024 printable \
                             ASCII characters without spaces"
                        ),
                    ));
                }
                if !(100..=599).contains(expect_status) {
                    return Err((
                        "method.expect_status",
                        format!("{expect_status} is not an HTTP status (100-599)"),
                    ));
                }
                Ok(())
            }
            Method::Dns { port, name } => {
                port_ok(*port)?;
                check_dns_name(name).map_err(|m| ("method.name", m))
            }
        }
    }
}

/// Whether `name` can be encoded as a DNS QNAME: dot-separated labels of 1-63 letters,
/// digits, `-` or `_`, at most 253 characters (a trailing dot is allowed).
pub fn check_dns_name(name: &str) -> Result<(), String> {
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    if trimmed.is_empty() || trimmed.len() > 253 {
        return Err(format!("{name:?} is not a DNS name of 1-253 characters"));
    }
    for label in trimmed.split('.') {
        if label.is_empty()
            || label.len() > 63
            || !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!(
                "{name:?}: label {label:?} is not 1-63 letters, digits, '-' or '_'"
            ));
        }
    }
    Ok(())
}

/// A configuration error, naming the WAN and the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("wan {wan:?}: {field}: {message}")]
pub struct ProbeConfigError {
    /// The WAN's name as configured.
    pub wan: String,
    /// The field at fault, as named in [`ProbeConfig`] (`method.path` for a method field).
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}
