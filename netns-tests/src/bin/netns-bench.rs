//! netns-bench: fwd's forwarding against the Linux kernel's, in one 2-WAN namespace topology
//! and one run, so the machine's noise hits both alike.
//!
//! Per run, alternately: the kernel as router (`--kernel ecmp`: ECMP over both WANs +
//! masquerade; `--kernel mwan3`: marks and fwmark rules as mwan3 sets them up), measured,
//! cleared; then fwd (the backend `FWD_BACKEND` names: `afxdp`, `tun`, or fwd's default
//! `auto`) started in the router namespace, measured, stopped (its
//! exit status must be success and the router's `ip rule` list back as before). Each
//! configuration gets: ping round trips (idle), iperf3 TCP with 1 and 4 streams, iperf3 UDP
//! with 64-byte datagrams, and a UDP flood of 64-byte datagrams from several sockets
//! (counted at the server by an nft rule), with machine CPU and fwd's own CPU over each.
//! Then, fwd only (the kernel's ECMP has no health checks), failover: fwd with a probed
//! 2-WAN config, a 1000 pkt/s UDP stream, the WAN it rides cut (link down, then a silent
//! blackhole past the ISP) and restored; the stream's longest receive gap and the time until
//! fwd reported the WAN down (polled every 10 ms). `--skip-failover` and `--only-failover`
//! run one part alone.
//! Prints a table of medians (min–max) and fwd/kernel ratios; `--json PATH` writes the same
//! and every sample. Needs root and the tools of `scripts/netns-deps`.
//!
//! Ctrl-C (or SIGTERM) stops after the measurement in progress and removes everything; a
//! second one exits at once (the next topology build sweeps what is left).

use std::collections::BTreeMap;
use std::net::SocketAddrV4;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use netns_tests::bench::failover::{self, CutKind, CutMeasurement, CutPlan};
use netns_tests::bench::{self, CpuWindow};
use netns_tests::plan::{self, SERVER};
use netns_tests::{
    parse_iperf3_tcp, parse_iperf3_udp, BaselineMode, Error, Fwd, FwdOptions, Result, Topology,
    FLOOD_PAYLOAD,
};
use serde_json::{json, Value};

#[derive(Debug, Parser)]
#[command(
    name = "netns-bench",
    about = "Compare fwd's forwarding rate with the kernel's in one namespace topology (needs root)"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Sub>,
    /// Runs (each measures the kernel, then fwd); medians are reported.
    #[arg(long, default_value_t = 3)]
    runs: u32,
    /// Seconds per throughput measurement.
    #[arg(long, default_value_t = 5)]
    seconds: u32,
    /// fwd worker threads.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Sending threads (sockets, flows) of the UDP flood.
    #[arg(long, default_value_t = 2)]
    flood_threads: usize,
    /// Echo requests per ping measurement (10 ms apart).
    #[arg(long, default_value_t = 50)]
    pings: u32,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Leave out the failover measurement.
    #[arg(long, conflicts_with = "only_failover")]
    skip_failover: bool,
    /// Only the failover measurement (no kernel, no throughput).
    #[arg(long)]
    only_failover: bool,
    /// How the kernel routes when it is measured: `ecmp` (one ECMP default route over both
    /// WANs + masquerade) or `mwan3` (as OpenWrt's mwan3 does it: a weighted random mark
    /// per new connection kept in the conntrack mark, fwmark rules, masquerade per WAN).
    #[arg(long, value_enum, default_value_t = Kernel::Ecmp)]
    kernel: Kernel,
}

/// The kernel baseline netns-bench compares fwd with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Kernel {
    Ecmp,
    Mwan3,
}

impl Kernel {
    fn mode(self) -> BaselineMode {
        match self {
            Kernel::Ecmp => BaselineMode::Ecmp,
            Kernel::Mwan3 => BaselineMode::Mwan3(vec![1, 1]),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Kernel::Ecmp => "ECMP (fib_multipath_hash_policy=1) + masquerade",
            Kernel::Mwan3 => {
                "mwan3-style: weighted random ct mark per new connection (1:1), fwmark rules, \
                 masquerade per WAN"
            }
        }
    }
}

/// Rate of the failover measurement's UDP stream.
const FAILOVER_PPS: u32 = 1000;
/// Stream time before the cut, and after fwd saw the WAN down.
const FAILOVER_PLAN: CutPlan = CutPlan {
    pps: FAILOVER_PPS,
    before: Duration::from_millis(1500),
    after: Duration::from_millis(1500),
};
/// How long fwd's WANs may take to come up after its start.
const WANS_UP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Subcommand)]
enum Sub {
    /// Internal: the UDP flood sender, run inside a LAN host's namespace. Prints JSON.
    #[command(hide = true)]
    FloodSend {
        #[arg(long)]
        dst: SocketAddrV4,
        #[arg(long)]
        payload: usize,
        #[arg(long)]
        threads: usize,
        #[arg(long)]
        seconds: f64,
    },
}

/// One row of the table: key in the JSON, label, unit; `fwd_only` rows have no kernel value
/// by design.
struct Metric {
    key: &'static str,
    label: &'static str,
    unit: &'static str,
    fwd_only: bool,
}

const fn m(key: &'static str, label: &'static str, unit: &'static str) -> Metric {
    Metric {
        key,
        label,
        unit,
        fwd_only: false,
    }
}

/// A failover row (fwd only).
const fn f(key: &'static str, label: &'static str) -> Metric {
    Metric {
        key,
        label,
        unit: "ms",
        fwd_only: true,
    }
}

/// The JSON keys of a cut's gap, detection and recovery.
fn failover_keys(kind: CutKind) -> [&'static str; 3] {
    match kind {
        CutKind::LinkDown => [
            "failover_gap_link_down_ms",
            "detection_link_down_ms",
            "recovery_link_down_ms",
        ],
        CutKind::Blackhole => [
            "failover_gap_blackhole_ms",
            "detection_blackhole_ms",
            "recovery_blackhole_ms",
        ],
    }
}

const METRICS: &[Metric] = &[
    m("rtt_median_us", "ping RTT median (idle)", "µs"),
    m("rtt_avg_us", "ping RTT mean (idle)", "µs"),
    m("tcp1_mbps", "TCP 1 stream", "Mbit/s"),
    m("tcp1_machine_cpu_pct", "  machine CPU busy", "% all"),
    m("tcp1_fwd_cpu_pct", "  fwd CPU", "% core"),
    m("tcp4_mbps", "TCP 4 streams", "Mbit/s"),
    m("tcp4_fwd_cpu_pct", "  fwd CPU", "% core"),
    m("iperf_udp_sent_kpps", "iperf3 UDP 64 B sent", "kpps"),
    m("iperf_udp_recv_kpps", "iperf3 UDP 64 B received", "kpps"),
    m("iperf_udp_loss_pct", "iperf3 UDP 64 B loss", "%"),
    m("flood_sent_kpps", "UDP flood 64 B sent", "kpps"),
    m("flood_recv_kpps", "UDP flood 64 B received", "kpps"),
    m("flood_loss_pct", "UDP flood loss", "%"),
    m(
        "flood_link_drops_kpps",
        "  interface drops (all namespaces)",
        "kpps",
    ),
    m("flood_machine_cpu_pct", "  machine CPU busy", "% all"),
    m(
        "flood_machine_us_per_pkt",
        "  machine CPU per received pkt",
        "µs",
    ),
    m("flood_fwd_cpu_pct", "  fwd CPU", "% core"),
    m("flood_fwd_top_thread_pct", "  fwd busiest thread", "% core"),
    m("flood_fwd_forwarded_kpps", "  fwd forwarded", "kpps"),
    m("flood_fwd_dropped_kpps", "  fwd dropped", "kpps"),
    m("flood_fwd_us_per_pkt", "  fwd CPU per forwarded pkt", "µs"),
    f("failover_gap_link_down_ms", "failover gap, link down"),
    f("failover_gap_blackhole_ms", "failover gap, blackhole"),
    f("detection_link_down_ms", "detection, link down"),
    f("detection_blackhole_ms", "detection, blackhole"),
    f("recovery_link_down_ms", "back up after restore, link down"),
    f("recovery_blackhole_ms", "back up after restore, blackhole"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Config {
    Kernel,
    Fwd,
}

impl Config {
    fn name(self) -> &'static str {
        match self {
            Config::Kernel => "kernel",
            Config::Fwd => "fwd",
        }
    }
}

type Values = BTreeMap<&'static str, f64>;

/// One configuration measured in one run.
struct Sample {
    run: u32,
    config: Config,
    values: Values,
}

/// What the benchmark needs everywhere.
struct Bench<'a> {
    cli: &'a Cli,
    topo: &'a Topology,
    exe: String,
    ticks: f64,
    stop: Arc<AtomicBool>,
    /// Failed measurements and other problems, reported at the end.
    errors: Vec<String>,
    /// Non-zero fwd drop counters after each fwd run.
    fwd_drops: Vec<Value>,
    /// Interfaces that dropped packets during each flood.
    flood_link_drops: Vec<Value>,
    /// Every failover cut measured.
    cuts: Vec<Value>,
    /// The run in progress.
    run: u32,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Sub::FloodSend {
        dst,
        payload,
        threads,
        seconds,
    }) = &cli.command
    {
        return match bench::flood_send(*dst, *payload, *threads, *seconds) {
            Ok(sent) => {
                println!("{}", sent.to_json());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("flood-send: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match run(&cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("netns-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The whole benchmark; `Ok(false)` when it finished with errors.
fn run(cli: &Cli) -> Result<bool> {
    if cli.runs == 0 || cli.seconds == 0 || cli.workers == 0 {
        return Err(Error::new(
            "--runs, --seconds and --workers must be at least 1",
        ));
    }
    if !netns_tests::is_root() {
        return Err(Error::new("needs root (network namespaces, TUN, nftables)"));
    }
    for tool in ["ip", "nft", "ethtool", "sysctl", "iperf3", "ping", "kill"] {
        netns_tests::which(tool)?;
    }
    let fwd_bin = netns_tests::fwd_binary()?;
    if !cli.skip_failover {
        failover::udp_stream_binary()?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // A second signal while the flag is set exits at once.
        signal_hook::flag::register_conditional_shutdown(sig, 1, Arc::clone(&stop))?;
        signal_hook::flag::register(sig, Arc::clone(&stop))?;
    }
    // Ctrl-C reaches only this process, which then stops fwd and tears down in order.
    netns_tests::cmd::own_process_groups();

    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let mut facts = bench::machine_facts();
    let ticks = bench::clock_ticks_per_sec();
    facts.push(("busy before start", background_load(ticks)?));
    eprintln!("netns-bench: {command}");
    eprintln!("fwd binary: {}", fwd_bin.display());
    let topo = Topology::new(2)?;
    topo.start_iperf3()?;
    bench::install_flood_sink(&topo)?;
    let exe = std::env::current_exe()?.display().to_string();
    let mut b = Bench {
        cli,
        topo: &topo,
        exe,
        ticks,
        stop,
        errors: Vec::new(),
        fwd_drops: Vec::new(),
        flood_link_drops: Vec::new(),
        cuts: Vec::new(),
        run: 0,
    };
    let mut samples = Vec::new();
    let outcome = b.all_runs(&mut samples);
    // Whatever happened, report what was measured.
    if let Err(e) = &outcome {
        b.errors.push(format!("aborted: {e}"));
    }
    if let Ok(load) = background_load(ticks) {
        facts.push(("busy at end", load));
    }
    let table = render_table(cli, &command, &facts, &samples, &b.errors);
    println!("{table}");
    if let Some(path) = &cli.json {
        let doc = to_json(
            cli,
            &command,
            &facts,
            &samples,
            &b.errors,
            &Details {
                fwd_drops: &b.fwd_drops,
                flood_link_drops: &b.flood_link_drops,
                cuts: &b.cuts,
            },
        );
        let text = serde_json::to_string_pretty(&doc).map_err(|e| Error::new(e.to_string()))?;
        std::fs::write(path, text + "\n")
            .map_err(|e| Error::new(format!("cannot write {}: {e}", path.display())))?;
        eprintln!("JSON written to {}", path.display());
    }
    let clean = b.errors.is_empty();
    drop(b);
    drop(topo);
    outcome.map(|()| clean)
}

impl Bench<'_> {
    fn check_stop(&self) -> Result<()> {
        if self.stop.load(Ordering::Relaxed) {
            Err(Error::new("interrupted"))
        } else {
            Ok(())
        }
    }

    /// A pause between measurements (lets queues drain and timers fire), then the stop check.
    fn settle(&self) -> Result<()> {
        std::thread::sleep(Duration::from_millis(300));
        self.check_stop()
    }

    fn all_runs(&mut self, samples: &mut Vec<Sample>) -> Result<()> {
        let rules_baseline = ip_rules(self.topo)?;
        for run in 1..=self.cli.runs {
            self.run = run;
            self.check_stop()?;
            if !self.cli.only_failover {
                self.throughput_run(samples, &rules_baseline)?;
            }
            if !self.cli.skip_failover {
                self.check_stop()?;
                let values = self.failover_run(&rules_baseline)?;
                match samples
                    .iter_mut()
                    .find(|s| s.run == run && s.config == Config::Fwd)
                {
                    Some(s) => s.values.extend(values),
                    None => samples.push(Sample {
                        run,
                        config: Config::Fwd,
                        values,
                    }),
                }
            }
        }
        Ok(())
    }

    fn fwd_options(&self) -> FwdOptions {
        FwdOptions {
            workers: self.cli.workers,
            log_level: "warn".to_string(),
            extra: Vec::new(),
        }
    }

    /// The kernel measured, then fwd, in run [`Bench::run`].
    fn throughput_run(&mut self, samples: &mut Vec<Sample>, rules_baseline: &str) -> Result<()> {
        let topo = self.topo;
        let run = self.run;
        {
            eprintln!(
                "== run {run}/{}: kernel ({})",
                self.cli.runs,
                self.cli.kernel.describe()
            );
            topo.router_kernel_baseline(&self.cli.kernel.mode())?;
            let values = self.measure(Config::Kernel, None)?;
            topo.clear_kernel_baseline()?;
            progress(Config::Kernel, &values);
            samples.push(Sample {
                run,
                config: Config::Kernel,
                values,
            });

            self.check_stop()?;
            eprintln!(
                "== run {run}/{}: fwd ({}, {} workers)",
                self.cli.runs,
                netns_tests::fwd::backend().unwrap_or_else(|| "auto".into()),
                self.cli.workers
            );
            let rules_before = ip_rules(topo)?;
            if rules_before != rules_baseline {
                return Err(Error::new(format!(
                    "router rules differ from the start:\n{rules_before}\nwas:\n{rules_baseline}"
                )));
            }
            let fwd = Fwd::start_opts(topo, &plan::fwd_config_toml(2), &self.fwd_options())?;
            let values = self.measure(Config::Fwd, Some(&fwd));
            if let Ok(c) = fwd.counters() {
                let drops: Vec<Value> = c
                    .drops
                    .iter()
                    .filter(|d| d.value > 0)
                    .map(|d| json!({"name": d.name, "value": d.value}))
                    .collect();
                if !drops.is_empty() {
                    eprintln!("   fwd drop counters: {}", Value::from(drops.clone()));
                }
                self.fwd_drops.push(json!({"run": run, "drops": drops}));
            }
            let values = values?;
            self.stop_fwd(fwd, "fwd", &rules_before)?;
            progress(Config::Fwd, &values);
            samples.push(Sample {
                run,
                config: Config::Fwd,
                values,
            });
        }
        Ok(())
    }

    /// fwd with probed WANs: each [`CutKind`] measured once. A failed cut is recorded in
    /// `errors` and leaves its metrics out; fwd must still stop cleanly and leave the
    /// router's rules as they were.
    fn failover_run(&mut self, rules_baseline: &str) -> Result<Values> {
        let topo = self.topo;
        let run = self.run;
        eprintln!(
            "== run {run}/{}: fwd failover ({FAILOVER_PPS} pkt/s UDP stream; link down, then blackhole)",
            self.cli.runs
        );
        let config = plan::fwd_config_probed(&[1, 1], "unreachable", "");
        let fwd = Fwd::start_opts(topo, &config, &self.fwd_options())?;
        let mut v = Values::new();
        for wan in ["isp0", "isp1"] {
            failover::wait_wan_state(&fwd, wan, "up", failover::DETECT_POLL, WANS_UP_TIMEOUT)
                .map_err(|e| e.context(format!("fwd log:\n{}", fwd.log_text().trim())))?;
        }
        for kind in CutKind::ALL {
            self.check_stop()?;
            match failover::measure_cut(topo, &fwd, kind, FAILOVER_PLAN) {
                Ok(cut) => self.record_cut(&cut, &mut v),
                Err(e) => self
                    .errors
                    .push(format!("run {run}: failover, {}: {e}", kind.label())),
            }
            self.settle()?;
        }
        self.stop_fwd(fwd, "fwd (failover)", rules_baseline)?;
        Ok(v)
    }

    /// Stops `fwd` (a failed exit is recorded in `errors` with its log) and checks that it
    /// left the router's rules as `rules_baseline` and no device of its own behind.
    fn stop_fwd(&mut self, fwd: Fwd<'_>, what: &str, rules_baseline: &str) -> Result<()> {
        let run = self.run;
        let log = fwd.log_text();
        let status = fwd.stop()?;
        if !status.success() {
            self.errors.push(format!(
                "run {run}: {what} exited with {status}; log:\n{}",
                log.trim()
            ));
        }
        let rules_after = ip_rules(self.topo)?;
        if rules_after != rules_baseline {
            return Err(Error::new(format!(
                "fwd left the router's rules changed:\n{rules_after}\nwas:\n{rules_baseline}"
            )));
        }
        let links = self.topo.router().exec(&["ip", "-o", "link", "show"])?;
        if links.contains("fwd") {
            return Err(Error::new(format!(
                "fwd left devices in the router: {links}"
            )));
        }
        Ok(())
    }

    /// One cut's values into `v`, its details into the JSON's cuts, a progress line.
    fn record_cut(&mut self, cut: &CutMeasurement, v: &mut Values) {
        let [gap_key, detect_key, recovery_key] = failover_keys(cut.kind);
        let r = &cut.stream.report;
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        v.insert(gap_key, r.max_gap_ms);
        v.insert(detect_key, ms(cut.detection));
        v.insert(recovery_key, ms(cut.recovery));
        let moved = r.switches.iter().any(|s| {
            netns_tests::plan::wan_of(s.from).map(|i| format!("isp{i}")) == Some(cut.wan.clone())
        });
        if !moved {
            self.errors.push(format!(
                "run {}: failover, {}: the stream never left {} (switches: {:?})",
                self.run,
                cut.kind.label(),
                cut.wan,
                r.switches
            ));
        }
        eprintln!(
            "   {}: cut {}; fwd saw it down after {:.0} ms; stream gap {:.0} ms, {} of {} datagrams; up {:.0} ms after the restore",
            cut.kind.label(),
            cut.wan,
            ms(cut.detection),
            r.max_gap_ms,
            r.received,
            r.sent_at_least,
            ms(cut.recovery)
        );
        self.cuts.push(json!({
            "run": self.run,
            "kind": cut.kind.key(),
            "wan": cut.wan,
            "detection_ms": ms(cut.detection),
            "recovery_ms": ms(cut.recovery),
            "gap_ms": r.max_gap_ms,
            "gap_at_ms": r.max_gap_at_ms,
            "received": r.received,
            "sent_at_least": r.sent_at_least,
            "switches": r.switches,
        }));
    }

    /// Every measurement of one configuration. A failed measurement is recorded in
    /// `errors` and leaves its metrics out; an interruption or a LAN host that cannot reach
    /// the server at all is an error.
    fn measure(&mut self, config: Config, fwd: Option<&Fwd<'_>>) -> Result<Values> {
        let topo = self.topo;
        let host = topo.host(0);
        let secs = self.cli.seconds;
        let name = config.name();
        let pid = fwd.map(Fwd::pid);
        let mut v = Values::new();
        netns_tests::wait_until(
            "the LAN host to reach the server",
            Duration::from_secs(10),
            || Ok(host.reachable(SERVER)),
        )
        .map_err(|e| {
            let log = fwd.map(Fwd::log_text).unwrap_or_default();
            e.context(format!("{name}: {}", log.trim()))
        })?;
        self.settle()?;

        match bench::ping_rtt(host, SERVER, self.cli.pings, 0.01) {
            Ok(r) => {
                v.insert("rtt_median_us", r.median_ms * 1e3);
                v.insert("rtt_avg_us", r.avg_ms * 1e3);
                if r.received < r.transmitted {
                    self.errors.push(format!(
                        "{name}: ping lost {} of {}",
                        r.transmitted - r.received,
                        r.transmitted
                    ));
                }
            }
            Err(e) => self.errors.push(format!("{name}: ping: {e}")),
        }
        self.settle()?;

        for (streams, key, machine_key, fwd_key) in [
            (
                1,
                "tcp1_mbps",
                Some("tcp1_machine_cpu_pct"),
                "tcp1_fwd_cpu_pct",
            ),
            (4, "tcp4_mbps", None, "tcp4_fwd_cpu_pct"),
        ] {
            let window = CpuWindow::start(pid, self.ticks)?;
            let p = streams.to_string();
            let extra: Vec<&str> = if streams > 1 { vec!["-P", &p] } else { vec![] };
            let result = host
                .iperf3_json(SocketAddrV4::new(SERVER, plan::IPERF_PORT), secs, &extra)
                .and_then(|j| parse_iperf3_tcp(&j));
            let cpu = window.finish()?;
            match result {
                Ok(mbps) => {
                    v.insert(key, mbps);
                    if let Some(k) = machine_key {
                        v.insert(k, cpu.machine_percent);
                    }
                    if let Some(p) = cpu.process_percent() {
                        v.insert(fwd_key, p);
                    }
                }
                Err(e) => self.errors.push(format!("{name}: TCP {streams}: {e}")),
            }
            self.settle()?;
        }

        let l = FLOOD_PAYLOAD.to_string();
        let udp = host
            .iperf3_json(
                SocketAddrV4::new(SERVER, plan::IPERF_PORT),
                secs,
                &["-u", "-b", "0", "-l", &l],
            )
            .and_then(|j| parse_iperf3_udp(&j));
        match udp {
            Ok(u) => {
                v.insert("iperf_udp_sent_kpps", u.sent_pps / 1e3);
                v.insert("iperf_udp_recv_kpps", u.received_pps / 1e3);
                v.insert("iperf_udp_loss_pct", u.loss_percent);
            }
            Err(e) => self.errors.push(format!("{name}: iperf3 UDP: {e}")),
        }
        self.settle()?;

        if let Err(e) = self.flood(config, fwd, &mut v) {
            self.errors.push(format!("{name}: UDP flood: {e}"));
        }
        self.check_stop()?;
        Ok(v)
    }

    fn flood(&mut self, config: Config, fwd: Option<&Fwd<'_>>, v: &mut Values) -> Result<()> {
        let topo = self.topo;
        let links_before = bench::topology_link_drops(topo)?;
        let sink_before = bench::flood_sink_packets(topo)?;
        let fwd_before = fwd.map(Fwd::status).transpose()?;
        let window = CpuWindow::start(fwd.map(Fwd::pid), self.ticks)?;
        let sent = bench::run_flood_sender(
            topo.host(0),
            &self.exe,
            FLOOD_PAYLOAD,
            self.cli.flood_threads,
            self.cli.seconds,
        )?;
        let cpu = window.finish()?;
        // Let queues drain before counting what arrived.
        std::thread::sleep(Duration::from_millis(200));
        let received = bench::flood_sink_packets(topo)?.saturating_sub(sink_before) as f64;
        let links = bench::drop_deltas(&links_before, &bench::topology_link_drops(topo)?);
        let secs = sent.seconds.max(1e-9);
        let link_drops: u64 = links.values().sum();
        v.insert("flood_link_drops_kpps", link_drops as f64 / secs / 1e3);
        if !links.is_empty() {
            eprintln!("   flood drops by interface: {links:?}");
        }
        self.flood_link_drops.push(json!({
            "run": self.run,
            "config": config.name(),
            "seconds": secs,
            "drops": links,
        }));
        v.insert("flood_sent_kpps", sent.pps() / 1e3);
        v.insert("flood_recv_kpps", received / secs / 1e3);
        if sent.packets > 0 {
            v.insert(
                "flood_loss_pct",
                (100.0 * (1.0 - received / sent.packets as f64)).max(0.0),
            );
        }
        v.insert("flood_machine_cpu_pct", cpu.machine_percent);
        if received > 0.0 {
            v.insert(
                "flood_machine_us_per_pkt",
                cpu.machine_cpu_secs * 1e6 / received,
            );
        }
        if let (Some(fwd), Some(before)) = (fwd, fwd_before) {
            let after = fwd.status()?;
            let forwarded = after
                .totals
                .forwarded
                .saturating_sub(before.totals.forwarded) as f64;
            let dropped = after.totals.dropped.saturating_sub(before.totals.dropped) as f64;
            v.insert("flood_fwd_forwarded_kpps", forwarded / secs / 1e3);
            v.insert("flood_fwd_dropped_kpps", dropped / secs / 1e3);
            if let Some(p) = cpu.process_percent() {
                v.insert("flood_fwd_cpu_pct", p);
            }
            if let Some(p) = cpu.busiest_thread_percent() {
                v.insert("flood_fwd_top_thread_pct", p);
            }
            if let (Some(s), true) = (cpu.process_cpu_secs, forwarded > 0.0) {
                v.insert("flood_fwd_us_per_pkt", s * 1e6 / forwarded);
            }
        }
        Ok(())
    }
}

/// Machine CPU busy over one idle second, as "N% of all cores": other work on the machine
/// that the measurements share it with.
fn background_load(ticks: f64) -> Result<String> {
    let window = CpuWindow::start(None, ticks)?;
    std::thread::sleep(Duration::from_secs(1));
    Ok(format!(
        "{:.0}% of all cores",
        window.finish()?.machine_percent
    ))
}

fn ip_rules(topo: &Topology) -> Result<String> {
    topo.router().exec(&["ip", "rule", "show"])
}

fn progress(config: Config, v: &Values) {
    let g = |k: &str| v.get(k).map_or("-".to_string(), |x| num(*x));
    eprintln!(
        "   {}: rtt {} µs, tcp1 {} Mbit/s, tcp4 {} Mbit/s, iperf3 udp {} kpps rx, flood {} kpps tx / {} kpps rx",
        config.name(),
        g("rtt_median_us"),
        g("tcp1_mbps"),
        g("tcp4_mbps"),
        g("iperf_udp_recv_kpps"),
        g("flood_sent_kpps"),
        g("flood_recv_kpps"),
    );
}

/// A number with a precision that suits its size.
fn num(x: f64) -> String {
    let a = x.abs();
    if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn values_of(samples: &[Sample], config: Config, key: &str) -> Vec<f64> {
    samples
        .iter()
        .filter(|s| s.config == config)
        .filter_map(|s| s.values.get(key).copied())
        .collect()
}

fn cell(s: Option<bench::Summary>) -> String {
    match s {
        None => "—".to_string(),
        Some(s) if s.n == 1 => num(s.median),
        Some(s) => format!("{} ({}–{})", num(s.median), num(s.min), num(s.max)),
    }
}

fn ratio(kernel: Option<bench::Summary>, fwd: Option<bench::Summary>) -> Option<f64> {
    match (kernel, fwd) {
        (Some(k), Some(f)) if k.median != 0.0 => Some(f.median / k.median),
        _ => None,
    }
}

fn render_table(
    cli: &Cli,
    command: &str,
    facts: &[(&str, String)],
    samples: &[Sample],
    errors: &[String],
) -> String {
    let mut rows = vec![[
        "metric".to_string(),
        "unit".to_string(),
        "kernel median (min–max)".to_string(),
        "fwd median (min–max)".to_string(),
        "fwd/kernel".to_string(),
    ]];
    for m in METRICS {
        let k = bench::summarize(&values_of(samples, Config::Kernel, m.key));
        let f = bench::summarize(&values_of(samples, Config::Fwd, m.key));
        if k.is_none() && f.is_none() {
            continue;
        }
        rows.push([
            m.label.to_string(),
            m.unit.to_string(),
            if m.fwd_only {
                "n/a".to_string()
            } else {
                cell(k)
            },
            cell(f),
            ratio(k, f).map_or(String::new(), |r| format!("{r:.2}")),
        ]);
    }
    let mut widths = [0usize; 5];
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    out += &format!("command: {command}\n");
    let facts: Vec<String> = facts.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    out += &format!("machine: {}\n", facts.join("; "));
    out += &format!(
        "setup: 2 WANs, 1 LAN host; kernel = ECMP (L4 hash) + masquerade; fwd = TUN backend, {} workers; {} runs x {} s per throughput test; flood = {} sockets of {FLOOD_PAYLOAD}-byte UDP, counted at the server; ping = {} echoes 10 ms apart\n",
        cli.workers, cli.runs, cli.seconds, cli.flood_threads, cli.pings
    );
    out += "(% all = share of all cores; % core = share of one core)\n";
    if !cli.skip_failover {
        out += &format!(
            "failover rows: fwd only (n/a for the kernel: ECMP has no health checks). fwd probes by ICMP every\n  \
             100 ms (down after 3 failed rounds, up after 5 good); a {FAILOVER_PPS} pkt/s UDP stream from h0; the WAN\n  \
             it rides is cut (link down at the ISP, or the ISP silently dropping), then restored.\n  \
             gap = the stream's longest receive gap; detection = cut until fwd's `wans` answer said down\n  \
             (polled every {} ms); back up = restore until it said up\n",
            failover::DETECT_POLL.as_millis()
        );
    }
    out.push('\n');
    for (i, r) in rows.iter().enumerate() {
        let line: Vec<String> = r
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(j, (c, w))| {
                let pad = w - c.chars().count();
                if j == 0 {
                    format!("{c}{}", " ".repeat(pad))
                } else {
                    format!("{}{c}", " ".repeat(pad))
                }
            })
            .collect();
        out += line.join("  ").trim_end();
        out.push('\n');
        if i == 0 {
            let total: usize = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
            out += &"-".repeat(total);
            out.push('\n');
        }
    }
    if !errors.is_empty() {
        out += &format!("\n{} problem(s):\n", errors.len());
        for e in errors {
            out += &format!("- {e}\n");
        }
    }
    out
}

/// Per-run details for the JSON besides the samples.
struct Details<'a> {
    /// Non-zero fwd drop counters after each fwd run.
    fwd_drops: &'a [Value],
    /// Interfaces that dropped packets during each flood.
    flood_link_drops: &'a [Value],
    /// Every failover cut measured.
    cuts: &'a [Value],
}

fn summary_json(s: Option<bench::Summary>) -> Value {
    s.map_or(
        Value::Null,
        |s| json!({"median": s.median, "min": s.min, "max": s.max, "n": s.n}),
    )
}

fn to_json(
    cli: &Cli,
    command: &str,
    facts: &[(&str, String)],
    samples: &[Sample],
    errors: &[String],
    details: &Details<'_>,
) -> Value {
    let machine: serde_json::Map<String, Value> = facts
        .iter()
        .map(|(k, v)| ((*k).to_string(), Value::from(v.clone())))
        .collect();
    let metrics: Vec<Value> = METRICS
        .iter()
        .map(|m| {
            let k = bench::summarize(&values_of(samples, Config::Kernel, m.key));
            let f = bench::summarize(&values_of(samples, Config::Fwd, m.key));
            json!({
                "key": m.key,
                "label": m.label.trim(),
                "unit": m.unit,
                "kernel": summary_json(k),
                "fwd": summary_json(f),
                "fwd_only": m.fwd_only,
                "ratio_fwd_over_kernel": ratio(k, f),
            })
        })
        .collect();
    let runs: Vec<Value> = samples
        .iter()
        .map(|s| json!({"run": s.run, "config": s.config.name(), "values": s.values}))
        .collect();
    json!({
        "command": command,
        "machine": machine,
        "settings": {
            "runs": cli.runs,
            "seconds": cli.seconds,
            "workers": cli.workers,
            "flood_threads": cli.flood_threads,
            "flood_payload": FLOOD_PAYLOAD,
            "pings": cli.pings,
            "topology": "2 WANs, 1 LAN host",
            "kernel": cli.kernel.describe(),
            "fwd": format!(
                "backend {} (FWD_BACKEND; fwd's default is auto), plan::fwd_config_toml(2)",
                netns_tests::fwd::backend().unwrap_or_else(|| "auto".into())
            ),
            "failover": if cli.skip_failover {
                Value::Null
            } else {
                json!({
                    "fwd_config": "plan::fwd_config_probed(&[1, 1], \"unreachable\", \"\") (ICMP probes to the server, default timing)",
                    "stream_pps": FAILOVER_PPS,
                    "detection_poll_ms": failover::DETECT_POLL.as_millis() as u64,
                    "cuts": CutKind::ALL.iter().map(|k| k.key()).collect::<Vec<_>>(),
                })
            },
        },
        "metrics": metrics,
        "runs": runs,
        "fwd_drop_counters": details.fwd_drops,
        "flood_link_drops": details.flood_link_drops,
        "failover_cuts": details.cuts,
        "errors": errors,
    })
}
