//! `fwd-demo`: fwd routing real traffic between network namespaces, watched live.
//!
//! A 2-WAN topology with 2 LAN hosts ([`crate::Topology`]), nginx, dnsmasq and two iperf3
//! servers in the internet namespace, fwd in the router namespace with WANs weighted 2:1
//! and a rule pinning DNS to `isp1` ([`demo_config`]). Bounded client loops on the hosts
//! ([`traffic`]) run for the chosen time while a per-WAN view ([`view`]) is redrawn once a
//! second from fwd's control socket; then a [`summary`] of what the servers saw per WAN, the
//! clients' results and `fwdctl status`. fwd is stopped with SIGTERM and the topology dropped,
//! which removes every namespace. Ctrl-C or SIGTERM (a flag the caller sets) ends the run
//! early, with the same summary and teardown.
//!
//! The run's script over time is [`Phase`]: the place where failover (cut `isp0` mid-run,
//! restore it) goes once fwd probes link health.

pub mod summary;
pub mod traffic;
pub mod view;

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ctl::protocol::{Reply, Request};

use crate::error::{Error, Result};
use crate::fwd::Fwd;
use crate::plan::{self, DNS_NAME, DNS_PORT, HTTP_PORT, IPERF_PORT, SERVER};
use crate::topology::Topology;
use summary::{by_wan, problems, render_summary, Summary};
use traffic::{Traffic, TCP_PORT};
use view::{paint, render_view, Frame, Snapshot};

/// Weights of `isp0` and `isp1`.
pub const WEIGHTS: [u32; 2] = [2, 1];
/// Name of the rule that pins DNS to [`DNS_WAN`].
pub const DNS_RULE: &str = "dns";
/// The WAN every DNS query leaves by.
pub const DNS_WAN: &str = "isp1";
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
/// `dns` sends udp/53 out of `isp1`, rule `default` balances everything else over `all`.
pub fn demo_config() -> String {
    let rule = format!(
        "[[rule]]\nname = \"{DNS_RULE}\"\nproto = \"udp\"\ndst_ports = [{DNS_PORT}]\nwan = \"{DNS_WAN}\"\n"
    );
    plan::fwd_config_with(&WEIGHTS, &rule)
}

/// The script of the run over time. Today fwd balances for the whole run.
///
/// Failover goes here once fwd probes link health (a later issue; until then fwd does not
/// notice a dead link): add `Isp0Cut` from a third of the run and `Isp0Restored` from two
/// thirds to [`Phase::at`], and in [`enter_phase`] call `topo.set_wan_link(0, false)` and
/// `topo.set_wan_link(0, true)`. The view already shows each WAN's state and traffic, and
/// the summary counts connections per WAN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// New connections spread over both WANs by weight.
    Balancing,
}

impl Phase {
    /// The phase at `elapsed` into a run of `total`.
    pub fn at(_elapsed: Duration, _total: Duration) -> Phase {
        Phase::Balancing
    }

    /// What the live view's title says.
    pub fn label(self) -> &'static str {
        match self {
            Phase::Balancing => "balancing 2:1",
        }
    }
}

/// Acts on entering `phase` (see [`Phase`]).
fn enter_phase(_topo: &Topology, phase: Phase) -> Result<()> {
    match phase {
        Phase::Balancing => Ok(()),
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
    topo.start_iperf3()?;
    topo.start_iperf3_on(TCP_PORT)?;
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
    header(topo, fwd, opts, screen)?;
    let total = Duration::from_secs(opts.seconds);
    let mut traffic = Traffic::start(topo, opts.seconds)?;
    let started = Instant::now();
    let mut phase = Phase::at(Duration::ZERO, total);
    enter_phase(topo, phase)?;
    let mut prev = snapshot(topo, fwd)?;
    let mut prev_at = Instant::now();
    loop {
        let next = prev_at + REFRESH;
        while Instant::now() < next && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
        }
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if !fwd.is_running() {
            return Err(Error::new("fwd exited during the demo"));
        }
        let cur = snapshot(topo, fwd)?;
        let now = Instant::now();
        let elapsed = now - started;
        let next_phase = Phase::at(elapsed, total);
        if next_phase != phase {
            enter_phase(topo, next_phase)?;
            phase = next_phase;
        }
        let frame = Frame {
            elapsed,
            total,
            interval: now - prev_at,
            phase: phase.label(),
            color: opts.live,
        };
        screen.frame(&render_view(&prev, &cur, &frame));
        (prev, prev_at) = (cur, now);
        if elapsed >= total {
            break;
        }
    }
    let interrupted = stop.load(Ordering::Relaxed);
    let ran = started.elapsed().as_secs().min(opts.seconds);
    if interrupted {
        screen.line("\nInterrupted: stopping the clients, then the summary and teardown.");
        traffic.stop(Duration::ZERO);
    } else {
        screen.line("\nTime is up: letting the clients finish their last run.");
        traffic.stop(FINISH_GRACE);
    }
    let results = traffic.results();
    // The servers log a request just after answering it.
    std::thread::sleep(Duration::from_millis(300));
    let status = fwd.status()?;
    let n = status.wans.len();
    let summary = Summary {
        seconds: ran,
        interrupted,
        http_by_wan: by_wan(&topo.nginx_clients()?, n),
        dns_by_wan: by_wan(&topo.dns_clients()?, n),
        status,
        traffic: results,
    };
    screen.line(String::new());
    screen.text(&render_summary(&summary));
    for args in [["status"], ["rules"]] {
        let out = fwd.fwdctl(&args)?;
        if !out.success() {
            return Err(Error::new(format!(
                "fwdctl {} failed ({}): {}",
                args[0],
                out.status,
                out.stderr.trim()
            )));
        }
        screen.line(String::new());
        screen.line(paint(&format!("$ fwdctl {}", args[0]), "1", opts.live));
        screen.text(&out.stdout);
    }
    screen.line(String::new());
    Ok(problems(&summary))
}

fn snapshot(topo: &Topology, fwd: &Fwd<'_>) -> Result<Snapshot> {
    let status = fwd.status()?;
    let drops = fwd.counters()?.drops;
    let n = status.wans.len();
    Ok(Snapshot {
        http_by_wan: by_wan(&topo.nginx_clients()?, n),
        dns_by_wan: by_wan(&topo.dns_clients()?, n),
        status,
        drops,
    })
}

fn header(topo: &Topology, fwd: &Fwd<'_>, opts: &Options, screen: &mut Screen) -> Result<()> {
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
         iperf3 :{IPERF_PORT}, :{TCP_PORT}\n"
    );
    let rules = match fwd.request(&Request::Rules)? {
        Reply::Rules(r) => ctl::render::render_rules(&r),
        other => return Err(Error::new(format!("rules answered {other:?}"))),
    };
    text += &format!(
        "{} isp0 weight {}, isp1 weight {}, group all of both; rules (first match wins):\n",
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
        "{} new connections split about 2:1 over isp0 and isp1, every DNS query on {DNS_WAN}\n  \
         (the servers see the WAN's address as the client: {} or {}).\n",
        bold("Expect:"),
        plan::wan_router(0),
        plan::wan_router(1)
    );
    text += "Failover (cutting isp0 mid-run) is not in this demo yet: it needs link health\n  \
             probing, which comes later; the in-memory `fwd demo` shows failover today.\n";
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
