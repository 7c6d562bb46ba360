//! `fwd-demo`: fwd routing real traffic between network namespaces, watched live.
//!
//! A 2-WAN topology with 2 LAN hosts ([`crate::Topology`]), nginx, dnsmasq and two iperf3
//! servers in the internet namespace, fwd in the router namespace with WANs weighted 2:1,
//! probed by ICMP to the server, a rule pinning DNS to `isp1` and one sending the UDP stream
//! to `isp0` first ([`demo_config`]). Bounded client loops on the hosts ([`traffic`]) and a
//! constant-rate UDP stream from h0 run for the chosen time while a per-WAN view ([`view`])
//! is redrawn once a second from fwd's control socket; then a [`summary`] of what the servers
//! saw per WAN, the failover, the clients' results and `fwdctl status`. fwd is stopped with
//! SIGTERM and the topology dropped, which removes every namespace. Ctrl-C or SIGTERM (a flag
//! the caller sets) ends the run early, with the same summary and teardown (a cut link is
//! not restored: it goes with its namespace).
//!
//! The run's script over time is [`Phase`] on a [`Schedule`]: balancing; `isp0`'s link cut
//! in its ISP's namespace at a third of the run; restored at two thirds. Phases are entered
//! within [`TICK`] of their time, and the times they were actually entered are what the
//! view and the summary show.

pub mod failover;
pub mod summary;
pub mod traffic;
pub mod view;

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ctl::protocol::{Reply, Request};

use crate::bench::failover::{self as measure, StreamRun, StreamSpec};
use crate::error::{Error, Result};
use crate::fwd::Fwd;
use crate::plan::{self, DNS_NAME, DNS_PORT, HTTP_PORT, IPERF_PORT, SERVER};
use crate::topology::Topology;
use failover::{per_phase, secs, FailoverSummary, RunEvent, StreamResult, CUT_WAN_INDEX};
pub use failover::{Phase, Schedule};
use summary::{by_wan, problems, render_summary, Summary};
use traffic::{Traffic, TCP_PORT};
use view::{paint, render_view, Frame, Snapshot};

/// Weights of `isp0` and `isp1`.
pub const WEIGHTS: [u32; 2] = [2, 1];
/// Name of the rule that pins DNS to [`DNS_WAN`].
pub const DNS_RULE: &str = "dns";
/// The WAN every DNS query leaves by.
pub const DNS_WAN: &str = "isp1";
/// Name of the rule that sends the UDP stream to [`STREAM_GROUP`].
pub const STREAM_RULE: &str = "stream";
/// Group of the UDP stream: `isp0` first (tier 1), `isp1` as its backup (tier 2), so the
/// stream rides the WAN that is cut.
pub const STREAM_GROUP: &str = "isp0-first";
/// UDP port of the stream's receiver.
pub const STREAM_PORT: u16 = measure::STREAM_PORT;
/// Rate of the UDP stream.
pub const STREAM_PPS: u32 = 500;
/// LAN host that sends the UDP stream.
pub const STREAM_HOST: usize = 0;
/// The stream's receiver ends this long after the last datagram (longer than any gap worth
/// reporting).
const STREAM_IDLE: Duration = Duration::from_secs(4);
/// How long fwd's WANs may take to come up after its start.
const WANS_UP: Duration = Duration::from_secs(10);
/// How often the run checks whether a phase begins (and for Ctrl-C).
pub const TICK: Duration = Duration::from_millis(50);
/// Tools the demo runs (the topology's own and the servers' and clients').
pub const TOOLS: &[&str] = &[
    "ip", "sysctl", "kill", "ethtool", "nft", "curl", "nginx", "iperf3", "dnsmasq", "dig",
];
/// Time between two refreshes of the live view.
const REFRESH: Duration = Duration::from_secs(1);
/// How long the clients may take to finish their last command once the time is up.
const FINISH_GRACE: Duration = Duration::from_secs(8);
/// Lines of fwd's log shown with an error.
const LOG_TAIL: usize = 25;

/// How the demo runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Seconds of traffic.
    pub seconds: u64,
    /// Redraw the view in place with colors (a terminal); otherwise one plain block per
    /// second.
    pub live: bool,
}

/// fwd's configuration for the demo: `isp0` weight 2, `isp1` weight 1, group `all`; rule
/// `dns` sends udp/53 out of `isp1`, rule `stream` sends the UDP stream to group
/// `isp0-first`, rule `default` balances everything else over `all`. Every WAN is probed by
/// ICMP echo to the server with fwd's default timing.
pub fn demo_config() -> String {
    let rules = format!(
        "[[group]]\nname = \"{STREAM_GROUP}\"\nmembers = [{{ wan = \"isp0\", tier = 1 }}, \
         {{ wan = \"isp1\", tier = 2 }}]\n\n\
         [[rule]]\nname = \"{DNS_RULE}\"\nproto = \"udp\"\ndst_ports = [{DNS_PORT}]\nwan = \"{DNS_WAN}\"\n\n\
         [[rule]]\nname = \"{STREAM_RULE}\"\nproto = \"udp\"\ndst_ports = [{STREAM_PORT}]\n\
         group = \"{STREAM_GROUP}\"\n"
    );
    plan::fwd_config_with(&WEIGHTS, &rules)
        + &format!("\n[health.probe]\ntargets = [\"{SERVER}\"]\n")
}

/// Acts on entering `phase`: cuts or restores [`CUT_WAN`]'s link in its ISP's namespace.
fn enter_phase(topo: &Topology, phase: Phase) -> Result<()> {
    match phase {
        Phase::Balancing => Ok(()),
        Phase::Cut => topo.set_wan_link(CUT_WAN_INDEX, false),
        Phase::Restored => topo.set_wan_link(CUT_WAN_INDEX, true),
    }
}

/// Error unless this process is root and has every tool of [`TOOLS`]: one message with
/// the packages and the `apt-get install` line.
pub fn prerequisites() -> Result<()> {
    let mut missing: Vec<&str> = TOOLS
        .iter()
        .copied()
        .filter(|t| crate::which(t).is_err())
        .collect();
    let root = crate::is_root();
    if root && missing.is_empty() {
        return Ok(());
    }
    let mut packages: Vec<&str> = TOOLS.iter().map(|t| crate::debian_package(t)).collect();
    packages.dedup();
    let mut install: Vec<&str> = missing.iter().map(|t| crate::debian_package(t)).collect();
    install.dedup();
    if !root {
        missing.insert(0, "not root");
    }
    let hint = if install.is_empty() {
        "run it as root, e.g. with sudo".to_string()
    } else {
        format!("apt-get install {}", install.join(" "))
    };
    Err(Error::new(format!(
        "fwd-demo needs root and: {} (missing here: {}; {hint})",
        packages.join(" "),
        missing.join(", ")
    )))
}

/// Runs the demo; `stop` (set by SIGINT/SIGTERM handlers) ends it early. Everything it
/// created is gone when it returns, error or not.
/// Call [`prerequisites`] first.
pub fn run(opts: &Options, stop: &AtomicBool) -> Result<()> {
    let mut screen = Screen::new(opts.live);
    crate::fwd_binary()?;
    crate::fwdctl_binary()?;
    // Ctrl-C in a terminal reaches this process only; it stops the children in order.
    crate::cmd::own_process_groups();
    screen.line("fwd-demo: building the topology and starting the servers and fwd...");
    let topo = Topology::builder()
        .wans(2)
        .hosts(2)
        .build()
        .map_err(|e| e.context("building the topology"))?;
    let names = topo.namespace_names();
    let prefix = topo.prefix().to_string();
    let result = with_topology(&topo, opts, stop, &mut screen);
    drop(topo);
    let left: Vec<String> = crate::names::list_namespaces()
        .into_iter()
        .filter(|n| names.contains(n))
        .collect();
    if left.is_empty() {
        screen.line(format!(
            "Topology removed: its {} namespaces ({prefix}*) and their processes are gone.",
            names.len()
        ));
        result
    } else {
        result.and(Err(Error::new(format!(
            "namespaces left behind: {}",
            left.join(" ")
        ))))
    }
}

fn with_topology(
    topo: &Topology,
    opts: &Options,
    stop: &AtomicBool,
    screen: &mut Screen,
) -> Result<()> {
    topo.start_nginx()?;
    topo.start_dns()?;
    traffic::start_servers(topo)?;
    let fwd = Fwd::start(topo, &demo_config()).map_err(|e| e.context("fwd did not start"))?;
    let problems = match drive(topo, &fwd, opts, stop, screen) {
        Ok(problems) => problems,
        Err(e) => return Err(with_log_tail(e, &fwd.log_text())),
    };
    screen.line("Stopping fwd (SIGTERM)...");
    let log = fwd.config_path().with_file_name("fwd.log");
    let status = fwd.stop()?;
    if !status.success() {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        return Err(with_log_tail(
            Error::new(format!("fwd exited with {status} after SIGTERM")),
            &text,
        ));
    }
    screen.line("fwd stopped (exit 0): it removed its TUN devices, rules and routes.");
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::new(problems.join("; ")))
    }
}

/// `e` with the last [`LOG_TAIL`] lines of fwd's log.
fn with_log_tail(e: Error, log: &str) -> Error {
    let lines: Vec<&str> = log.lines().collect();
    let tail = lines[lines.len().saturating_sub(LOG_TAIL)..].join("\n");
    Error::new(format!(
        "{e}\n--- last {} lines of fwd's log ---\n{tail}",
        LOG_TAIL.min(lines.len())
    ))
}

/// The header, the traffic with the live view, the summary. Returns the problems found.
fn drive(
    topo: &Topology,
    fwd: &Fwd<'_>,
    opts: &Options,
    stop: &AtomicBool,
    screen: &mut Screen,
) -> Result<Vec<String>> {
    let schedule = Schedule::for_run(opts.seconds);
    header(topo, fwd, opts, &schedule, screen)?;
    wait_wans_up(fwd, screen)?;
    let total = Duration::from_secs(opts.seconds);
    let mut run = Run::start(topo, fwd, schedule)?;
    let stream = StreamRun::start(topo, stream_spec(opts.seconds))?;
    let stream_offset = run.started.elapsed();
    let mut traffic = Traffic::start(topo, opts.seconds)?;
    let mut prev = snapshot(topo, fwd)?;
    let mut prev_at = Instant::now();
    loop {
        let next = prev_at + REFRESH;
        while Instant::now() < next && !stop.load(Ordering::Relaxed) {
            run.advance(topo)?;
            std::thread::sleep(TICK);
        }
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if !fwd.is_running() {
            return Err(Error::new("fwd exited during the demo"));
        }
        run.poll_events(fwd)?;
        let cur = snapshot(topo, fwd)?;
        let now = Instant::now();
        let elapsed = now - run.started;
        let frame = Frame {
            elapsed,
            total,
            interval: now - prev_at,
            phase: run.label(),
            last_event: run.events.last().map(RunEvent::describe),
            color: opts.live,
        };
        screen.frame(&render_view(&prev, &cur, &frame));
        (prev, prev_at) = (cur, now);
        if elapsed >= total {
            break;
        }
    }
    let interrupted = stop.load(Ordering::Relaxed);
    let ran = run.started.elapsed().min(total);
    if interrupted {
        screen.line("\nInterrupted: stopping the clients, then the summary and teardown.");
        traffic.stop(Duration::ZERO);
        stream.kill();
    } else {
        screen.line("\nTime is up: letting the clients finish their last run.");
        traffic.stop(FINISH_GRACE);
    }
    let stream_outcome = if interrupted {
        None
    } else {
        Some(stream.finish(STREAM_IDLE + FINISH_GRACE)?)
    };
    let results = traffic.results();
    // The servers log a request just after answering it.
    std::thread::sleep(Duration::from_millis(300));
    run.poll_events(fwd)?;
    let status = fwd.status()?;
    let n = status.wans.len();
    let http_by_wan = by_wan(&topo.nginx_clients()?, n);
    let failover = FailoverSummary {
        schedule,
        cut_at: run.entered_at(Phase::Cut),
        restored_at: run.entered_at(Phase::Restored),
        phases: per_phase(&run.entered, ran, &http_by_wan),
        events: run.events,
        stream: StreamResult {
            host: STREAM_HOST,
            port: STREAM_PORT,
            pps: STREAM_PPS,
            offset: stream_offset,
            report: stream_outcome.as_ref().map(|o| o.report.clone()),
            sent: stream_outcome.and_then(|o| o.sent),
        },
        tcp_resets_sent: fwd.counter("tcp_resets_sent")?,
        flows_migrated: fwd.counter("flows_migrated")?,
    };
    let summary = Summary {
        seconds: ran.as_secs(),
        interrupted,
        http_by_wan,
        dns_by_wan: by_wan(&topo.dns_clients()?, n),
        status,
        traffic: results,
        failover,
    };
    screen.line(String::new());
    screen.text(&render_summary(&summary));
    for args in [&["status"][..], &["wan"], &["events"], &["rules"]] {
        fwdctl_block(fwd, args, opts, screen)?;
    }
    screen.line(String::new());
    Ok(problems(&summary))
}

/// `$ fwdctl ARGS` and its output; an error if it fails.
fn fwdctl_block(fwd: &Fwd<'_>, args: &[&str], opts: &Options, screen: &mut Screen) -> Result<()> {
    let out = fwd.fwdctl(args)?;
    if !out.success() {
        return Err(Error::new(format!(
            "fwdctl {} failed ({}): {}",
            args.join(" "),
            out.status,
            out.stderr.trim()
        )));
    }
    screen.line(String::new());
    screen.line(paint(
        &format!("$ fwdctl {}", args.join(" ")),
        "1",
        opts.live,
    ));
    screen.text(&out.stdout);
    Ok(())
}

/// The demo's UDP stream for a run of `seconds`.
fn stream_spec(seconds: u64) -> StreamSpec {
    StreamSpec {
        host: STREAM_HOST,
        port: STREAM_PORT,
        pps: STREAM_PPS,
        seconds: seconds as f64,
        idle: STREAM_IDLE,
    }
}

/// Waits until fwd's probes see every WAN up, so the run starts balanced.
fn wait_wans_up(fwd: &Fwd<'_>, screen: &mut Screen) -> Result<()> {
    screen.line("Waiting for fwd's probes to see both WANs up...");
    for w in 0..WEIGHTS.len() {
        let name = format!("isp{w}");
        measure::wait_wan_state(fwd, &name, "up", TICK, WANS_UP)?;
    }
    Ok(())
}

/// The run's clock and what happened on it: the phases entered (with nginx's per-WAN totals
/// at that moment) and fwd's WAN state changes.
struct Run {
    started: Instant,
    start_unix_ms: u64,
    schedule: Schedule,
    /// Phase, when it was entered, nginx's per-WAN totals then; in order, from Balancing.
    entered: Vec<(Phase, Duration, Vec<u64>)>,
    events: Vec<RunEvent>,
    /// Sequence number of the last event of fwd's that was read.
    last_seq: u64,
}

impl Run {
    /// Starts the clock in phase Balancing; only events after this moment are collected.
    fn start(topo: &Topology, fwd: &Fwd<'_>, schedule: Schedule) -> Result<Run> {
        // From 0, not u64::MAX: with nothing newer fwd echoes `after` as `last_seq`.
        let before = events_after(fwd, 0)?;
        let last_seq = before
            .events
            .iter()
            .map(|e| e.seq)
            .fold(before.last_seq, u64::max);
        let http = by_wan(&topo.nginx_clients()?, WEIGHTS.len());
        let start_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Ok(Run {
            started: Instant::now(),
            start_unix_ms,
            schedule,
            entered: vec![(Phase::Balancing, Duration::ZERO, http)],
            events: Vec::new(),
            last_seq,
        })
    }

    fn phase(&self) -> Phase {
        self.entered.last().map_or(Phase::Balancing, |e| e.0)
    }

    /// When `phase` was entered, if it was.
    fn entered_at(&self, phase: Phase) -> Option<Duration> {
        self.entered.iter().find(|e| e.0 == phase).map(|e| e.1)
    }

    /// The live view's title for the current phase.
    fn label(&self) -> String {
        let since = self.entered.last().map_or(Duration::ZERO, |e| e.1);
        self.phase().label(since)
    }

    /// Enters the next phase once its time has come (one step at a time, so none is skipped).
    fn advance(&mut self, topo: &Topology) -> Result<()> {
        let Some(next) = self.phase().next() else {
            return Ok(());
        };
        if self.started.elapsed() < self.schedule.start_of(next) {
            return Ok(());
        }
        let http = by_wan(&topo.nginx_clients()?, WEIGHTS.len());
        let at = self.started.elapsed();
        enter_phase(topo, next)?;
        self.entered.push((next, at, http));
        Ok(())
    }

    /// Reads fwd's new WAN state changes.
    fn poll_events(&mut self, fwd: &Fwd<'_>) -> Result<()> {
        let list = events_after(fwd, self.last_seq)?;
        self.last_seq = list.last_seq.max(self.last_seq);
        self.events.extend(
            list.events
                .iter()
                .map(|e| RunEvent::from_record(e, self.start_unix_ms)),
        );
        Ok(())
    }
}

/// fwd's events after sequence number `after`.
fn events_after(fwd: &Fwd<'_>, after: u64) -> Result<ctl::protocol::EventList> {
    match fwd.request(&Request::Events { after })? {
        Reply::Events(list) => Ok(list),
        other => Err(Error::new(format!("events answered {other:?}"))),
    }
}

fn snapshot(topo: &Topology, fwd: &Fwd<'_>) -> Result<Snapshot> {
    let status = fwd.status()?;
    let drops = fwd.counters()?.drops;
    let n = status.wans.len();
    let stream_wan = fwd
        .flows(None, None)?
        .flows
        .into_iter()
        .find(|f| f.remote.port() == STREAM_PORT)
        .map(|f| f.wan);
    Ok(Snapshot {
        http_by_wan: by_wan(&topo.nginx_clients()?, n),
        dns_by_wan: by_wan(&topo.dns_clients()?, n),
        health: measure::wan_states(fwd)?,
        stream_wan,
        status,
        drops,
    })
}

fn header(
    topo: &Topology,
    fwd: &Fwd<'_>,
    opts: &Options,
    schedule: &Schedule,
    screen: &mut Screen,
) -> Result<()> {
    let bold = |s: &str| paint(s, "1", opts.live);
    let hosts: Vec<String> = (0..topo.hosts().len())
        .map(|k| plan::lan_host(k).to_string())
        .collect();
    let wans = topo.wan_count();
    let wan_ifs: Vec<String> = (0..wans)
        .map(|i| format!("{} {}/24", plan::wan_if(i), plan::wan_router(i)))
        .collect();
    let gateways: Vec<String> = (0..wans)
        .map(|i| plan::wan_gateway(i).to_string())
        .collect();
    let roles: Vec<String> = topo
        .namespace_names()
        .iter()
        .map(|n| n.trim_start_matches(topo.prefix()).to_string())
        .collect();
    let mut text = format!(
        "\n{}\n",
        bold(&format!(
            "fwd-demo: fwd routing real traffic between network namespaces, for {} s",
            opts.seconds
        ))
    );
    text += &format!(
        "{} namespaces {}{{{}}}\n",
        bold("Topology:"),
        topo.prefix(),
        roles.join(",")
    );
    text += &format!(
        "  h0, h1      LAN hosts {} behind bridge sw, gateway {}\n",
        hosts.join(", "),
        plan::LAN_ROUTER
    );
    text += &format!(
        "  rt          fwd (pid {}): {} {}/24, {}\n",
        fwd.pid(),
        plan::LAN_IF,
        plan::LAN_ROUTER,
        wan_ifs.join(", ")
    );
    text += &format!(
        "  isp0, isp1  ISPs with gateways {}, routing without NAT\n",
        gateways.join(", ")
    );
    text += &format!(
        "  inet        {SERVER}: nginx :{HTTP_PORT}, dnsmasq :{DNS_PORT} ({DNS_NAME}), \
         iperf3 :{IPERF_PORT}, :{TCP_PORT}, udp-stream :{STREAM_PORT}\n"
    );
    let rules = match fwd.request(&Request::Rules)? {
        Reply::Rules(r) => ctl::render::render_rules(&r),
        other => return Err(Error::new(format!("rules answered {other:?}"))),
    };
    text += &format!(
        "{} isp0 weight {}, isp1 weight {}, in group all; group {STREAM_GROUP} has isp0\n  \
         with isp1 as its backup (tier 2). Link health: both WANs probed by ping to\n  \
         {SERVER} every 100 ms; down after 3 failed rounds, or at once when the link\n  \
         loses carrier; up after 5 good rounds. Rules (first match wins):\n",
        bold("Config:"),
        WEIGHTS[0],
        WEIGHTS[1]
    );
    for line in rules.lines() {
        text += &format!("  {line}\n");
    }
    text += &format!("{}\n", bold("Traffic:"));
    for line in traffic::describe() {
        text += &format!("  {line}\n");
    }
    text += &format!(
        "  h{STREAM_HOST}  udp-stream: {STREAM_PPS} datagrams/s to :{STREAM_PORT} for the whole run \
         (rule {STREAM_RULE})\n"
    );
    text += &format!(
        "{} balancing until {}; then isp0's link is cut (taken down in the isp0\n  \
         namespace: fwd's {} loses carrier); at {} it is restored.\n",
        bold("Script:"),
        secs(schedule.cut),
        plan::wan_if(CUT_WAN_INDEX),
        secs(schedule.restore)
    );
    text += &format!(
        "{} new connections split about 2:1 over isp0 and isp1, every DNS query on {DNS_WAN}\n  \
         (the servers see the WAN's address as the client: {} or {}).\n  \
         At the cut fwd marks isp0 down: new connections and the UDP stream go to isp1,\n  \
         TCP connections on isp0 are reset so their clients reconnect at once. After the\n  \
         restore fwd marks isp0 up again: new connections use it again and the stream\n  \
         goes back to isp0, its preferred tier.\n",
        bold("Expect:"),
        plan::wan_router(0),
        plan::wan_router(1)
    );
    text += "The view refreshes every second; HTTP and DNS count what the servers logged.\n\
             Ctrl-C stops early; the summary and the teardown follow either way.\n";
    screen.text(&text);
    Ok(())
}

/// stdout: lines, and the live view redrawn in place (live) or printed as blocks. Write
/// errors (a closed pipe) are ignored: the demo still tears down.
#[derive(Debug)]
struct Screen {
    live: bool,
    /// Lines of the view drawn last, when it is still the last thing on the screen.
    drawn: usize,
}

impl Screen {
    fn new(live: bool) -> Screen {
        Screen { live, drawn: 0 }
    }

    fn write(&mut self, s: &str) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(s.as_bytes());
        let _ = out.flush();
    }

    /// Text that ends with a newline (added if missing).
    fn text(&mut self, text: &str) {
        let mut s = text.to_string();
        if !s.ends_with('\n') {
            s.push('\n');
        }
        self.write(&s);
        self.drawn = 0;
    }

    fn line(&mut self, line: impl AsRef<str>) {
        self.text(&format!("{}\n", line.as_ref()));
    }

    /// One refresh of the view.
    fn frame(&mut self, lines: &[String]) {
        let mut s = String::new();
        if self.live {
            if self.drawn > 0 {
                s += &format!("\x1b[{}A", self.drawn);
            }
            for l in lines {
                s += &format!("\r\x1b[2K{l}\n");
            }
        } else {
            s.push('\n');
            for l in lines {
                s += &format!("{l}\n");
            }
        }
        self.write(&s);
        self.drawn = lines.len();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn config_has_weights_and_the_dns_rule_first() {
        let c = demo_config();
        assert!(
            c.contains("name = \"isp0\"") && c.contains("weight = 2"),
            "{c}"
        );
        assert!(c.contains("weight = 1"), "{c}");
        let dns = c.find("name = \"dns\"").unwrap();
        let default = c.find("name = \"default\"").unwrap();
        assert!(dns < default, "{c}");
        assert!(c.contains("dst_ports = [53]\nwan = \"isp1\""), "{c}");
    }

    #[test]
    fn log_tail_keeps_the_last_lines() {
        let log: String = (0..40).map(|i| format!("line {i}\n")).collect();
        let e = with_log_tail(Error::new("boom"), &log);
        assert!(e.message().starts_with("boom\n--- last 25 lines"));
        assert!(e.message().ends_with("line 39"));
        assert!(!e.message().contains("line 14\n"));
        let e = with_log_tail(Error::new("boom"), "only\n");
        assert!(e.message().contains("last 1 lines"));
    }
}
