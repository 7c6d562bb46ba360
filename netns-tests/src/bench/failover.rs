//! Failover through fwd, driven and measured: the constant-rate UDP stream of
//! [`crate::stream`] run as the `udp-stream` binary ([`StreamRun`]: receiver in the internet
//! namespace, sender in a LAN host), fwd's view of its WANs ([`wan_states`], [`stream_wan`]),
//! and one measured cut ([`measure_cut`]: cut the WAN the stream rides, time fwd's detection
//! and the stream's longest receive gap, restore, wait until fwd sees the WAN up again).
//! `netns-bench` and `fwd-demo` use these.
//!
//! Invariants: every process started here is tracked by its namespace, so it is killed when
//! the topology is dropped; every wait has a deadline; a WAN cut by [`measure_cut`] is
//! restored before it returns, error or not.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ctl::protocol::{Reply, Request, WanHealth};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::fwd::Fwd;
use crate::plan::SERVER;
use crate::stream::Report;
use crate::topology::Topology;
use crate::wait::{is_listening, wait_until, Proto};

/// UDP port of the stream's receiver.
pub const STREAM_PORT: u16 = 7000;
/// How often [`measure_cut`] asks fwd for its WAN states after the cut.
pub const DETECT_POLL: Duration = Duration::from_millis(10);
/// Longest a cut may take to be detected, or a restored WAN to come back up.
const STATE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the receiver may take to bind its socket.
const RECEIVER_READY: Duration = Duration::from_secs(5);

/// Path of the `udp-stream` binary: `UDP_STREAM_BIN`, or next to this executable (cargo
/// builds every binary of the package into the same directory).
pub fn udp_stream_binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("UDP_STREAM_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    // target/<profile>/binary, or target/<profile>/deps/test-binary
    for dir in exe.ancestors().skip(1).take(2) {
        let candidate = dir.join("udp-stream");
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(Error::new(format!(
        "udp-stream binary not found near {} (build it with `cargo build -p netns-tests \
         --bins`, or set UDP_STREAM_BIN)",
        exe.display()
    )))
}

/// What stream to run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StreamSpec {
    /// LAN host that sends.
    pub host: usize,
    /// Receiver port on [`SERVER`].
    pub port: u16,
    /// Datagrams per second.
    pub pps: u32,
    /// How long the sender sends.
    pub seconds: f64,
    /// The receiver ends this long after the last datagram (so it must exceed any gap
    /// worth measuring).
    pub idle: Duration,
}

/// A running stream: its receiver and sender processes and their logs.
#[derive(Debug)]
pub struct StreamRun<'t> {
    topo: &'t Topology,
    spec: StreamSpec,
    receiver: u32,
    sender: u32,
    receiver_log: PathBuf,
    sender_log: PathBuf,
}

/// The receiver's report, with what the sender says it sent (when it finished).
#[derive(Debug, Clone, PartialEq)]
pub struct StreamOutcome {
    pub report: Report,
    /// Datagrams the sender sent; `None` if it was stopped before it could tell.
    pub sent: Option<u64>,
}

impl<'t> StreamRun<'t> {
    /// Starts the receiver, waits until it listens, then starts the sender. Logs go to
    /// `topo`'s work directory, named after the port.
    pub fn start(topo: &'t Topology, spec: StreamSpec) -> Result<StreamRun<'t>> {
        let bin = udp_stream_binary()?.display().to_string();
        let dir = topo.workdir();
        let receiver_log = dir.join(format!("stream-{}-recv.log", spec.port));
        let sender_log = dir.join(format!("stream-{}-send.log", spec.port));
        // Earlier runs on the same port append to the same logs: start afresh.
        let _ = std::fs::remove_file(&receiver_log);
        let _ = std::fs::remove_file(&sender_log);
        let bind = format!("{SERVER}:{}", spec.port);
        let idle_ms = spec.idle.as_millis().to_string();
        let recv_secs = format!("{:.1}", spec.seconds + spec.idle.as_secs_f64() + 10.0);
        let receiver = topo.internet().spawn(
            &[
                &bin,
                "recv",
                "--bind",
                &bind,
                "--seconds",
                &recv_secs,
                "--idle-ms",
                &idle_ms,
            ],
            &receiver_log,
        )?;
        let ready = wait_until("udp-stream's receiver to bind", RECEIVER_READY, || {
            if !topo.internet().is_running(receiver) {
                return Err(Error::new(format!(
                    "udp-stream recv exited: {}",
                    read(&receiver_log).trim()
                )));
            }
            is_listening(receiver, Proto::Udp, SERVER, spec.port)
        });
        if let Err(e) = ready {
            topo.internet().kill(receiver);
            return Err(e);
        }
        let (pps, seconds) = (spec.pps.to_string(), format!("{:.3}", spec.seconds));
        let sender = topo.host(spec.host).spawn(
            &[
                &bin,
                "send",
                "--dst",
                &bind,
                "--pps",
                &pps,
                "--seconds",
                &seconds,
            ],
            &sender_log,
        );
        let sender = match sender {
            Ok(pid) => pid,
            Err(e) => {
                topo.internet().kill(receiver);
                return Err(e);
            }
        };
        Ok(StreamRun {
            topo,
            spec,
            receiver,
            sender,
            receiver_log,
            sender_log,
        })
    }

    /// The stream's parameters.
    pub fn spec(&self) -> StreamSpec {
        self.spec
    }

    /// Waits up to `timeout` for the sender, then for the receiver (which ends [`StreamSpec::idle`]
    /// after the last datagram), and reads the receiver's report. Kills what still runs.
    pub fn finish(self, timeout: Duration) -> Result<StreamOutcome> {
        let deadline = Instant::now() + timeout;
        let host = self.topo.host(self.spec.host);
        let sender_done = host.wait_exit(
            self.sender,
            deadline.saturating_duration_since(Instant::now()),
        );
        let inet = self.topo.internet();
        let receiver_done = inet.wait_exit(
            self.receiver,
            deadline.saturating_duration_since(Instant::now()),
        );
        self.kill();
        if receiver_done.is_none() {
            return Err(Error::new(format!(
                "udp-stream's receiver did not end within {timeout:?}{}",
                if sender_done.is_none() {
                    " (nor did its sender)"
                } else {
                    ""
                }
            )));
        }
        let text = read(&self.receiver_log);
        let report = parse_report(&text).ok_or_else(|| {
            Error::new(format!("no report from udp-stream recv: {}", text.trim()))
        })?;
        Ok(StreamOutcome {
            report,
            sent: parse_sent(&read(&self.sender_log)),
        })
    }

    /// Kills the sender: the receiver ends [`StreamSpec::idle`] later with its report (which
    /// then has no sender count).
    pub fn stop_sender(&self) {
        self.topo.host(self.spec.host).kill(self.sender);
    }

    /// Kills the sender and the receiver (no report).
    pub fn kill(&self) {
        self.topo.host(self.spec.host).kill(self.sender);
        self.topo.internet().kill(self.receiver);
    }
}

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The report of `udp-stream recv` output: its last JSON line.
pub fn parse_report(output: &str) -> Option<Report> {
    let line = output
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))?;
    serde_json::from_str(line.trim()).ok()
}

/// The `{"sent":N}` of `udp-stream send` output.
pub fn parse_sent(output: &str) -> Option<u64> {
    output.lines().rev().find_map(|l| {
        serde_json::from_str::<Value>(l.trim())
            .ok()
            .and_then(|v| v["sent"].as_u64())
    })
}

/// fwd's `wans` answer.
pub fn wan_states(fwd: &Fwd<'_>) -> Result<Vec<WanHealth>> {
    match fwd.request(&Request::Wans)? {
        Reply::Wans(w) => Ok(w),
        other => Err(Error::new(format!("wans answered {other:?}"))),
    }
}

/// The published state of WAN `name` (`None` if fwd does not know it).
pub fn wan_state(fwd: &Fwd<'_>, name: &str) -> Result<Option<String>> {
    Ok(wan_states(fwd)?
        .into_iter()
        .find(|w| w.name == name)
        .map(|w| w.state))
}

/// Polls every `poll` until WAN `name` is in `state`; how long that took.
pub fn wait_wan_state(
    fwd: &Fwd<'_>,
    name: &str,
    state: &str,
    poll: Duration,
    timeout: Duration,
) -> Result<Duration> {
    let start = Instant::now();
    loop {
        if wan_state(fwd, name)?.as_deref() == Some(state) {
            return Ok(start.elapsed());
        }
        if start.elapsed() >= timeout {
            return Err(Error::new(format!(
                "{name} not {state} within {timeout:?} (states: {})",
                describe_states(&wan_states(fwd).unwrap_or_default())
            )));
        }
        std::thread::sleep(poll);
    }
}

/// `isp0 up, isp1 down`.
pub fn describe_states(wans: &[WanHealth]) -> String {
    let parts: Vec<String> = wans
        .iter()
        .map(|w| format!("{} {}", w.name, w.state))
        .collect();
    parts.join(", ")
}

/// The WAN (by name) fwd sends the flow to remote port `port` by, once it has one.
pub fn stream_wan(fwd: &Fwd<'_>, port: u16, timeout: Duration) -> Result<String> {
    let mut wan = None;
    wait_until("the stream's flow in fwd", timeout, || {
        wan = fwd
            .flows(None, None)?
            .flows
            .into_iter()
            .find(|f| f.remote.port() == port)
            .map(|f| f.wan);
        Ok(wan.is_some())
    })?;
    wan.ok_or_else(|| Error::new("the stream's flow vanished"))
}

/// The index of WAN `isp{i}` in the plan.
pub fn wan_index(name: &str) -> Option<usize> {
    name.strip_prefix("isp")?.parse().ok()
}

/// How a WAN is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutKind {
    /// The ISP takes its side of the link down: the router's interface loses carrier.
    LinkDown,
    /// The ISP silently drops everything it would forward; the link stays up.
    Blackhole,
}

impl CutKind {
    /// Both kinds, in the order they are measured.
    pub const ALL: [CutKind; 2] = [CutKind::LinkDown, CutKind::Blackhole];

    /// The receiver port of this kind's stream: each cut its own, so that the flow of an
    /// earlier cut's stream, still in fwd's table, is never taken for this one's.
    pub fn stream_port(self) -> u16 {
        match self {
            CutKind::LinkDown => STREAM_PORT,
            CutKind::Blackhole => STREAM_PORT + 1,
        }
    }

    /// `link down`, `blackhole`.
    pub fn label(self) -> &'static str {
        match self {
            CutKind::LinkDown => "link down",
            CutKind::Blackhole => "blackhole",
        }
    }

    /// `link_down`, `blackhole` (for JSON keys).
    pub fn key(self) -> &'static str {
        match self {
            CutKind::LinkDown => "link_down",
            CutKind::Blackhole => "blackhole",
        }
    }

    /// Cuts (`cut = true`) or restores WAN `wan` of `topo`.
    pub fn apply(self, topo: &Topology, wan: usize, cut: bool) -> Result<()> {
        match self {
            CutKind::LinkDown => topo.set_wan_link(wan, !cut),
            CutKind::Blackhole => topo.blackhole_isp(wan, cut),
        }
    }
}

/// How a measured cut went.
#[derive(Debug, Clone, PartialEq)]
pub struct CutMeasurement {
    pub kind: CutKind,
    /// The WAN that was cut (the one the stream rode).
    pub wan: String,
    /// From the cut until fwd's `wans` answer said `down`.
    pub detection: Duration,
    /// From the restore until fwd said `up` again.
    pub recovery: Duration,
    /// What the stream's receiver saw.
    pub stream: StreamOutcome,
}

/// Timing of [`measure_cut`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CutPlan {
    /// The stream's rate.
    pub pps: u32,
    /// Stream time before the cut.
    pub before: Duration,
    /// Stream time after fwd saw the WAN down.
    pub after: Duration,
}

/// Starts a stream from host 0, finds the WAN it rides, cuts that WAN by `kind` after
/// `plan.before`, polls fwd's WAN states every [`DETECT_POLL`] until it says `down`, lets
/// the stream run `plan.after` more, restores the WAN and waits until fwd says `up`.
pub fn measure_cut(
    topo: &Topology,
    fwd: &Fwd<'_>,
    kind: CutKind,
    plan: CutPlan,
) -> Result<CutMeasurement> {
    let idle = Duration::from_secs(3);
    // Long enough for the cut, a slow detection and the time after it.
    let seconds = (plan.before + STATE_TIMEOUT + plan.after).as_secs_f64();
    let spec = StreamSpec {
        host: 0,
        port: kind.stream_port(),
        pps: plan.pps,
        seconds,
        idle,
    };
    let stream = StreamRun::start(topo, spec)?;
    let wan = stream_wan(fwd, kind.stream_port(), Duration::from_secs(5))?;
    let index = wan_index(&wan).ok_or_else(|| Error::new(format!("unknown WAN {wan}")))?;
    std::thread::sleep(plan.before);
    let cut_at = Instant::now();
    kind.apply(topo, index, true)?;
    let detected =
        wait_wan_state(fwd, &wan, "down", DETECT_POLL, STATE_TIMEOUT).map(|_| cut_at.elapsed());
    if detected.is_ok() {
        std::thread::sleep(plan.after);
    }
    // The receiver ends `idle` after the last datagram.
    stream.stop_sender();
    let outcome = stream.finish(idle + Duration::from_secs(5));
    let restored = kind.apply(topo, index, false);
    let detection = detected?;
    let stream = outcome?;
    restored?;
    let recovery = wait_wan_state(fwd, &wan, "up", DETECT_POLL, STATE_TIMEOUT)?;
    Ok(CutMeasurement {
        kind,
        wan,
        detection,
        recovery,
        stream,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn stream_outputs() {
        let recv = "warming up\n{\"received\":3,\"sent_at_least\":4,\"sources\":{\"10.1.0.2\":3},\
                    \"max_gap_ms\":20.5,\"max_gap_at_ms\":10.0,\"switches\":[]}\n";
        let r = parse_report(recv).unwrap();
        assert_eq!((r.received, r.max_gap_ms), (3, 20.5));
        assert_eq!(parse_report("udp-stream: address in use\n"), None);
        assert_eq!(parse_sent("{\"sent\":1500}\n"), Some(1500));
        assert_eq!(parse_sent(""), None);
        assert_eq!(wan_index("isp1"), Some(1));
        assert_eq!(wan_index("lte"), None);
        assert_eq!(CutKind::Blackhole.key(), "blackhole");
    }
}
