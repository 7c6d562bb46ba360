//! netns-bench: routers compared in one 2-WAN namespace topology and one run, so the
//! machine's noise hits them alike.
//!
//! Routers (`--routers`, measured in turn within each run, runs interleaved): the kernel
//! with ECMP + masquerade (`kernel-ecmp`), the kernel as OpenWrt's mwan3 sets it up
//! (`kernel-mwan3`: a weighted random mark per new connection kept in the conntrack mark,
//! fwmark rules, masquerade per WAN), fwd on AF_XDP or TUN with one worker or two
//! (`fwd-afxdp`, `fwd-afxdp-2w`, `fwd-tun`, `fwd-tun-2w`), and a bare AF_XDP forwarder given
//! as a command (`xsk-fwd`, with `--xsk-fwd CMD`), the ceiling of that I/O here. fwd must
//! exit successfully and leave the router's `ip rule` list as it found it.
//!
//! Placement (unless `--no-pin`): the router's work on core 0 (threaded NAPI of the router's
//! veths pinned there; fwd, its one worker, or the bare forwarder too), the AF_PACKET load
//! generator and the far side's receive work on core 1. Two-worker fwd takes both cores.
//! The veths at the router get two queues when a two-worker router is measured.
//!
//! Each router gets: ping round trips idle, iperf3 TCP with 1 and 4 streams, and per flow
//! count (`--flows`) a flood of 64-byte UDP frames from the generator (a 1 s warm-up
//! first, so flows exist), counted at the server by an nft rule, with the CPU of the router
//! core (or the machine) and of fwd per forwarded packet; during the first flood, ping round
//! trips under load. Then, fwd only, failover: fwd with a probed 2-WAN config, a 1000 pkt/s
//! UDP stream, the WAN it rides cut (link down, then a silent blackhole past the ISP) and
//! restored; the stream's longest receive gap and the time until fwd reported the WAN down.
//! `--skip-failover` and `--only-failover` run one part alone.
//!
//! Prints a table of medians (min–max) per router and their ratios to `--reference`;
//! `--json PATH` writes the same and every sample. Needs root and the tools of
//! `scripts/netns-deps`. Ctrl-C (or SIGTERM) stops after the measurement in progress and
//! removes everything; a second one exits at once (the next topology build sweeps what is
//! left).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use netns_tests::bench::failover::{self, CutKind, CutMeasurement, CutPlan};
use netns_tests::bench::packet_gen::{self, FrameSpec};
use netns_tests::bench::{self, placement, CpuWindow, FloodRun};
use netns_tests::plan::{self, SERVER};
use netns_tests::{
    parse_iperf3_tcp, BaselineMode, Error, Fwd, FwdOptions, Result, Topology, FLOOD_PAYLOAD,
};
use serde_json::{json, Value};

#[derive(Debug, Parser)]
#[command(
    name = "netns-bench",
    about = "Compare fwd's forwarding with the kernel's in one namespace topology (needs root)"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Sub>,
    /// Runs (each measures every router once); medians are reported.
    #[arg(long, default_value_t = 3)]
    runs: u32,
    /// Seconds per throughput measurement.
    #[arg(long, default_value_t = 5)]
    seconds: u32,
    /// Routers to measure, in this order within each run.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "kernel-ecmp,kernel-mwan3,fwd-afxdp,fwd-tun"
    )]
    routers: Vec<Router>,
    /// The router the others are compared with (default: kernel-mwan3 if measured, else the
    /// first).
    #[arg(long, value_enum)]
    reference: Option<Router>,
    /// Flow counts of the UDP flood (distinct source address and port pairs).
    #[arg(long, value_delimiter = ',', default_value = "1000,100000")]
    flows: Vec<u32>,
    /// The bare AF_XDP forwarder's command line (router `xsk-fwd`), run with `sh -c` in the
    /// router namespace after replacing `{lan}` and `{wan}` (the router's LAN and first WAN
    /// interface), `{lan_peer_mac}` (the LAN host's MAC) and `{wan_peer_mac}` (the first
    /// ISP's), e.g. xdp-project/bpf-examples' `xsk_fwd -i {lan} -i {wan} -c 0` (with a
    /// destination MAC option, as the frames must reach the ISP).
    #[arg(long)]
    xsk_fwd: Option<String>,
    /// Leave placement to the scheduler (no pinning, no threaded NAPI).
    #[arg(long)]
    no_pin: bool,
    /// Echo requests per ping measurement (10 ms apart).
    #[arg(long, default_value_t = 50)]
    pings: u32,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Leave out the failover measurement.
    #[arg(long, conflicts_with = "only_failover")]
    skip_failover: bool,
    /// Only the failover measurement (no throughput).
    #[arg(long)]
    only_failover: bool,
}

/// A router netns-bench measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
enum Router {
    #[value(name = "kernel-ecmp")]
    KernelEcmp,
    #[value(name = "kernel-mwan3")]
    KernelMwan3,
    #[value(name = "fwd-afxdp")]
    FwdAfxdp,
    #[value(name = "fwd-afxdp-2w")]
    FwdAfxdp2,
    #[value(name = "fwd-tun")]
    FwdTun,
    #[value(name = "fwd-tun-2w")]
    FwdTun2,
    #[value(name = "xsk-fwd")]
    XskFwd,
}

impl Router {
    fn name(self) -> &'static str {
        match self {
            Router::KernelEcmp => "kernel-ecmp",
            Router::KernelMwan3 => "kernel-mwan3",
            Router::FwdAfxdp => "fwd-afxdp",
            Router::FwdAfxdp2 => "fwd-afxdp-2w",
            Router::FwdTun => "fwd-tun",
            Router::FwdTun2 => "fwd-tun-2w",
            Router::XskFwd => "xsk-fwd",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Router::KernelEcmp => "kernel: ECMP (fib_multipath_hash_policy=1) + masquerade",
            Router::KernelMwan3 => {
                "kernel, mwan3-style: weighted random ct mark per new connection (1:1), fwmark \
                 rules, masquerade per WAN"
            }
            Router::FwdAfxdp => "fwd, AF_XDP backend, 1 worker",
            Router::FwdAfxdp2 => "fwd, AF_XDP backend, 2 workers (both cores)",
            Router::FwdTun => "fwd, TUN backend, 1 worker",
            Router::FwdTun2 => "fwd, TUN backend, 2 workers (both cores)",
            Router::XskFwd => "bare AF_XDP forward (--xsk-fwd command), no NAT, no tracking",
        }
    }

    /// fwd's backend and workers, for fwd routers.
    fn fwd(self) -> Option<(&'static str, usize)> {
        match self {
            Router::FwdAfxdp => Some(("afxdp", 1)),
            Router::FwdAfxdp2 => Some(("afxdp", 2)),
            Router::FwdTun => Some(("tun", 1)),
            Router::FwdTun2 => Some(("tun", 2)),
            _ => None,
        }
    }

    fn kernel(self) -> Option<BaselineMode> {
        match self {
            Router::KernelEcmp => Some(BaselineMode::Ecmp),
            Router::KernelMwan3 => Some(BaselineMode::Mwan3(vec![1, 1])),
            _ => None,
        }
    }
}

/// The core of the router's work, and the core of the generator and the far side's.
const ROUTER_CORE: usize = 0;
const OTHER_CORE: usize = 1;
/// fwd's NAT ports in the benchmark: enough for 100k flows over two WANs. The router's own
/// ephemeral ports are moved above them ([`LOCAL_PORTS`]).
const BENCH_NAT_PORTS: &str = "1024-61999";
const LOCAL_PORTS: &str = "62000 65535";
/// Warm-up of each flood, not counted: every flow exists when the measurement starts.
const WARM_UP_SECS: f64 = 1.0;

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
    /// Internal: the AF_PACKET load generator, run inside a LAN host's namespace. Prints
    /// JSON.
    #[command(hide = true)]
    PacketSend {
        #[arg(long)]
        interface: String,
        #[arg(long)]
        router_mac: String,
        #[arg(long)]
        src: Ipv4Addr,
        #[arg(long)]
        dst: SocketAddrV4,
        #[arg(long)]
        flows: u32,
        #[arg(long)]
        seconds: f64,
    },
}

/// One row of the table: key in the JSON, label, unit.
struct Metric {
    key: String,
    label: String,
    unit: &'static str,
}

fn m(key: impl Into<String>, label: impl Into<String>, unit: &'static str) -> Metric {
    Metric {
        key: key.into(),
        label: label.into(),
        unit,
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

/// The table's rows for `cli`'s flow counts and placement.
fn metrics(cli: &Cli) -> Vec<Metric> {
    let mut v = vec![
        m("rtt_idle_us", "ping RTT median, idle", "µs"),
        m("tcp1_mbps", "TCP, 1 stream", "Mbit/s"),
        m("tcp4_mbps", "TCP, 4 streams", "Mbit/s"),
        m("tcp4_router_core_pct", "  router core busy", "% core"),
    ];
    for (i, f) in cli.flows.iter().enumerate() {
        v.push(m(
            format!("flood{f}_kpps"),
            format!("UDP 64 B forwarded, {f} flows"),
            "kpps",
        ));
        v.push(m(format!("flood{f}_sent_kpps"), "  generator sent", "kpps"));
        if !cli.no_pin {
            v.push(m(
                format!("flood{f}_core_us"),
                "  router core CPU per forwarded pkt",
                "µs",
            ));
        }
        v.push(m(
            format!("flood{f}_machine_us"),
            "  machine CPU per forwarded pkt",
            "µs",
        ));
        v.push(m(
            format!("flood{f}_fwd_us"),
            "  fwd process CPU per forwarded pkt",
            "µs",
        ));
        v.push(m(
            format!("flood{f}_link_drops_kpps"),
            "  interface drops (all namespaces)",
            "kpps",
        ));
        if i == 0 {
            v.push(m(
                "rtt_load_us",
                format!("ping RTT median, under load ({f} flows)"),
                "µs",
            ));
            v.push(m("rtt_load_loss_pct", "  ping lost under load", "%"));
        }
    }
    let failover = [
        ("failover_gap_link_down_ms", "failover gap, link down"),
        ("failover_gap_blackhole_ms", "failover gap, blackhole"),
        ("detection_link_down_ms", "detection, link down"),
        ("detection_blackhole_ms", "detection, blackhole"),
        ("recovery_link_down_ms", "back up after restore, link down"),
        ("recovery_blackhole_ms", "back up after restore, blackhole"),
    ];
    v.extend(failover.iter().map(|(k, l)| m(*k, *l, "ms")));
    v
}

type Values = BTreeMap<String, f64>;

/// One router measured in one run.
struct Sample {
    run: u32,
    router: Router,
    values: Values,
}

/// A router started in the router namespace.
enum Running<'t> {
    Kernel,
    Fwd(Fwd<'t>),
    /// The bare forwarder's pid and log.
    Bare(u32, PathBuf),
}

impl Running<'_> {
    fn fwd(&self) -> Option<&Fwd<'_>> {
        match self {
            Running::Fwd(f) => Some(f),
            _ => None,
        }
    }

    fn pid(&self) -> Option<u32> {
        match self {
            Running::Kernel => None,
            Running::Fwd(f) => Some(f.pid()),
            Running::Bare(pid, _) => Some(*pid),
        }
    }
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
    if let Some(Sub::PacketSend {
        interface,
        router_mac,
        src,
        dst,
        flows,
        seconds,
    }) = &cli.command
    {
        return match packet_send(interface, router_mac, *src, *dst, *flows, *seconds) {
            Ok(sent) => {
                println!("{}", sent.to_json());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("packet-send: {e}");
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

fn packet_send(
    interface: &str,
    router_mac: &str,
    src: Ipv4Addr,
    dst: SocketAddrV4,
    flows: u32,
    seconds: f64,
) -> Result<bench::FloodSent> {
    let spec = FrameSpec {
        src_mac: packet_gen::interface_mac(interface)?,
        dst_mac: packet_gen::parse_mac(router_mac)
            .ok_or_else(|| Error::new(format!("bad --router-mac {router_mac}")))?,
        src,
        dst: *dst.ip(),
        dst_port: dst.port(),
        payload: usize::from(FLOOD_PAYLOAD),
        flows,
    };
    let sent = packet_gen::send(interface, &spec, seconds)?;
    Ok(bench::FloodSent {
        packets: sent.packets,
        errors: sent.errors,
        seconds: sent.seconds,
    })
}

impl Cli {
    fn reference(&self) -> Router {
        self.reference.unwrap_or_else(|| {
            if self.routers.contains(&Router::KernelMwan3) {
                Router::KernelMwan3
            } else {
                self.routers.first().copied().unwrap_or(Router::KernelMwan3)
            }
        })
    }

    /// The fwd router failover is measured with: the first fwd router given, else AF_XDP.
    fn failover_router(&self) -> Router {
        self.routers
            .iter()
            .copied()
            .find(|r| r.fwd().is_some())
            .unwrap_or(Router::FwdAfxdp)
    }

    fn queues(&self) -> u32 {
        if self
            .routers
            .iter()
            .any(|r| r.fwd().is_some_and(|(_, w)| w > 1))
        {
            2
        } else {
            1
        }
    }
}

/// The whole benchmark; `Ok(false)` when it finished with errors.
fn run(cli: &Cli) -> Result<bool> {
    if cli.runs == 0 || cli.seconds == 0 || cli.routers.is_empty() || cli.flows.contains(&0) {
        return Err(Error::new(
            "--runs, --seconds, --flows must be at least 1 and --routers not empty",
        ));
    }
    if cli.routers.contains(&Router::XskFwd) && cli.xsk_fwd.is_none() {
        return Err(Error::new("router xsk-fwd needs --xsk-fwd CMD"));
    }
    if !cli.no_pin && std::thread::available_parallelism().map_or(1, std::num::NonZero::get) < 2 {
        return Err(Error::new("pinning needs 2 cores (or pass --no-pin)"));
    }
    if !netns_tests::is_root() {
        return Err(Error::new("needs root (network namespaces, TUN, nftables)"));
    }
    for tool in [
        "ip", "nft", "ethtool", "sysctl", "iperf3", "ping", "kill", "taskset",
    ] {
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
    let topo = Topology::builder().wans(2).queues(cli.queues()).build()?;
    topo.router()
        .sysctl(&[("net.ipv4.ip_local_port_range", LOCAL_PORTS)])?;
    if !cli.no_pin {
        place(&topo)?;
    }
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

/// The devices whose receive work is placed, with their core: the router's on the router
/// core, the ISPs' customer side on the other.
fn napi_cores(topo: &Topology) -> BTreeMap<String, usize> {
    let mut cores = BTreeMap::from([(plan::LAN_IF.to_string(), ROUTER_CORE)]);
    for i in 0..topo.wan_count() {
        cores.insert(plan::wan_if(i), ROUTER_CORE);
    }
    cores.insert(plan::ISP_CUSTOMER_IF.to_string(), OTHER_CORE);
    cores
}

/// Threaded NAPI on the veths at the router, both sides.
fn place(topo: &Topology) -> Result<()> {
    placement::thread_napi(topo.router(), plan::LAN_IF)?;
    for i in 0..topo.wan_count() {
        placement::thread_napi(topo.router(), &plan::wan_if(i))?;
        placement::thread_napi(topo.isp(i), plan::ISP_CUSTOMER_IF)?;
    }
    Ok(())
}

impl<'a> Bench<'a> {
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
            if !self.cli.only_failover {
                for &router in &self.cli.routers {
                    self.check_stop()?;
                    let values = self.router_run(router, &rules_baseline)?;
                    samples.push(Sample {
                        run,
                        router,
                        values,
                    });
                }
            }
            if !self.cli.skip_failover {
                self.check_stop()?;
                let router = self.cli.failover_router();
                let values = self.failover_run(router, &rules_baseline)?;
                match samples
                    .iter_mut()
                    .find(|s| s.run == run && s.router == router)
                {
                    Some(s) => s.values.extend(values),
                    None => samples.push(Sample {
                        run,
                        router,
                        values,
                    }),
                }
            }
        }
        Ok(())
    }

    /// fwd's configuration for `router` (backend, NAT ports for many flows).
    fn fwd_config(&self, base: &str, backend: &str) -> String {
        let base = base.replace(
            "weight = 1\n",
            &format!("weight = 1\nnat_ports = \"{BENCH_NAT_PORTS}\"\n"),
        );
        format!("{base}\n[dataplane]\nbackend = \"{backend}\"\n")
    }

    /// Starts `router` in the router namespace.
    fn start(&self, router: Router) -> Result<Running<'a>> {
        let topo = self.topo;
        if let Some(mode) = router.kernel() {
            topo.router_kernel_baseline(&mode)?;
            return Ok(Running::Kernel);
        }
        if let Some((backend, workers)) = router.fwd() {
            let config = self.fwd_config(&plan::fwd_config_toml(2), backend);
            let options = FwdOptions {
                workers,
                log_level: "warn".to_string(),
                extra: Vec::new(),
                wrapper: if workers == 1 && !self.cli.no_pin {
                    vec!["taskset".into(), "-c".into(), ROUTER_CORE.to_string()]
                } else {
                    Vec::new()
                },
            };
            return Fwd::start_opts(topo, &config, &options).map(Running::Fwd);
        }
        let cmd = self
            .cli
            .xsk_fwd
            .as_deref()
            .unwrap_or_default()
            .replace("{lan}", plan::LAN_IF)
            .replace("{wan}", &plan::wan_if(0))
            .replace(
                "{lan_peer_mac}",
                &bench::interface_mac_in(topo.host(0), plan::HOST_IF)?,
            )
            .replace(
                "{wan_peer_mac}",
                &bench::interface_mac_in(topo.isp(0), plan::ISP_CUSTOMER_IF)?,
            );
        let core = ROUTER_CORE.to_string();
        let exec = format!("exec {cmd}");
        let mut args = Vec::new();
        if !self.cli.no_pin {
            args.extend(["taskset", "-c", core.as_str()]);
        }
        args.extend(["sh", "-c", exec.as_str()]);
        let log = topo.workdir().join("xsk-fwd.log");
        let pid = topo.router().spawn(&args, &log)?;
        std::thread::sleep(Duration::from_millis(500));
        if !topo.router().is_running(pid) {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(Error::new(format!("xsk-fwd exited at start:\n{text}")));
        }
        Ok(Running::Bare(pid, log))
    }

    /// Stops `running`: the kernel's baseline cleared, fwd stopped (a failed exit recorded
    /// with its log; the router's rules must be back as `rules_baseline`, no device of its
    /// own left), the bare forwarder interrupted (and killed if it lingers). No XDP
    /// program may be left on the router's interfaces.
    fn finish(&mut self, router: Router, running: Running<'_>, rules_baseline: &str) -> Result<()> {
        let run = self.run;
        let topo = self.topo;
        match running {
            Running::Kernel => topo.clear_kernel_baseline()?,
            Running::Fwd(fwd) => {
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
                    self.fwd_drops
                        .push(json!({"run": run, "router": router.name(), "drops": drops}));
                }
                let log = fwd.log_text();
                let status = fwd.stop()?;
                if !status.success() {
                    self.errors.push(format!(
                        "run {run}: {} exited with {status}; log:\n{}",
                        router.name(),
                        log.trim()
                    ));
                }
                let links = topo.router().exec(&["ip", "-o", "link", "show"])?;
                if links.contains("fwd") {
                    return Err(Error::new(format!(
                        "fwd left devices in the router: {links}"
                    )));
                }
            }
            Running::Bare(pid, _) => {
                let _ = topo.router().exec(&["kill", "-INT", &pid.to_string()]);
                if topo
                    .router()
                    .wait_exit(pid, Duration::from_secs(5))
                    .is_none()
                {
                    topo.router().kill(pid);
                    self.errors
                        .push(format!("run {run}: xsk-fwd ignored SIGINT; killed"));
                }
            }
        }
        let rules_after = ip_rules(topo)?;
        if rules_after != rules_baseline {
            return Err(Error::new(format!(
                "{} left the router's rules changed:\n{rules_after}\nwas:\n{rules_baseline}",
                router.name()
            )));
        }
        let links = topo.router().exec(&["ip", "-o", "link", "show"])?;
        if links.contains(" xdp") || links.contains("prog/xdp") {
            return Err(Error::new(format!(
                "{} left an XDP program attached: {links}",
                router.name()
            )));
        }
        Ok(())
    }

    /// `router` started, measured and stopped, in run [`Bench::run`].
    fn router_run(&mut self, router: Router, rules_baseline: &str) -> Result<Values> {
        eprintln!(
            "== run {}/{}: {} ({})",
            self.run,
            self.cli.runs,
            router.name(),
            router.describe()
        );
        let running = self.start(router)?;
        let values = self.measure(router, &running);
        let log = match &running {
            Running::Fwd(f) => f.log_text(),
            Running::Bare(_, log) => std::fs::read_to_string(log).unwrap_or_default(),
            Running::Kernel => String::new(),
        };
        self.finish(router, running, rules_baseline)?;
        let values = values.map_err(|e| e.context(format!("{}: {}", router.name(), log.trim())))?;
        progress(router, self.cli, &values);
        Ok(values)
    }

    /// fwd with probed WANs: each [`CutKind`] measured once. A failed cut is recorded in
    /// `errors` and leaves its metrics out; fwd must still stop cleanly and leave the
    /// router's rules as they were.
    fn failover_run(&mut self, router: Router, rules_baseline: &str) -> Result<Values> {
        let topo = self.topo;
        let run = self.run;
        eprintln!(
            "== run {run}/{}: {} failover ({FAILOVER_PPS} pkt/s UDP stream; link down, then blackhole)",
            self.cli.runs,
            router.name()
        );
        let (backend, workers) = router.fwd().unwrap_or(("afxdp", 1));
        let config = self.fwd_config(
            &plan::fwd_config_probed(&[1, 1], "unreachable", ""),
            backend,
        );
        let options = FwdOptions {
            workers,
            log_level: "warn".to_string(),
            ..FwdOptions::default()
        };
        let fwd = Fwd::start_opts(topo, &config, &options)?;
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
        self.finish(router, Running::Fwd(fwd), rules_baseline)?;
        Ok(v)
    }

    /// One cut's values into `v`, its details into the JSON's cuts, a progress line.
    fn record_cut(&mut self, cut: &CutMeasurement, v: &mut Values) {
        let [gap_key, detect_key, recovery_key] = failover_keys(cut.kind);
        let r = &cut.stream.report;
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        v.insert(gap_key.to_string(), r.max_gap_ms);
        v.insert(detect_key.to_string(), ms(cut.detection));
        v.insert(recovery_key.to_string(), ms(cut.recovery));
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

    /// Every measurement of one router. A failed measurement is recorded in `errors` and
    /// leaves its metrics out; an interruption or a LAN host that cannot reach the server at
    /// all is an error.
    fn measure(&mut self, router: Router, running: &Running<'_>) -> Result<Values> {
        let topo = self.topo;
        let host = topo.host(0);
        let secs = self.cli.seconds;
        let name = router.name();
        let mut v = Values::new();
        let reach = if router == Router::XskFwd {
            // A bare forwarder does no NAT: replies cannot come back.
            Ok(())
        } else {
            netns_tests::wait_until(
                "the LAN host to reach the server",
                Duration::from_secs(10),
                || Ok(host.reachable(SERVER)),
            )
        };
        reach?;
        if !self.cli.no_pin {
            let pinned = placement::pin_napi_threads(&napi_cores(topo))?;
            if !pinned.contains_key(plan::LAN_IF) {
                self.errors
                    .push(format!("{name}: no NAPI thread of {} to pin", plan::LAN_IF));
            }
        }
        self.settle()?;

        if router != Router::XskFwd {
            match bench::ping_rtt(host, SERVER, self.cli.pings, 0.01) {
                Ok(r) => {
                    v.insert("rtt_idle_us".into(), r.median_ms * 1e3);
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
            for streams in [1u32, 4] {
                let window = CpuWindow::start(running.pid(), self.ticks)?;
                let p = streams.to_string();
                let extra: Vec<&str> = if streams > 1 { vec!["-P", &p] } else { vec![] };
                let result = host
                    .iperf3_json(SocketAddrV4::new(SERVER, plan::IPERF_PORT), secs, &extra)
                    .and_then(|j| parse_iperf3_tcp(&j));
                let cpu = window.finish()?;
                match result {
                    Ok(mbps) => {
                        v.insert(format!("tcp{streams}_mbps"), mbps);
                        if let (4, false) = (streams, self.cli.no_pin) {
                            if let Some(s) = cpu.core_cpu_secs.get(ROUTER_CORE) {
                                v.insert(
                                    "tcp4_router_core_pct".into(),
                                    100.0 * s / cpu.seconds.max(1e-9),
                                );
                            }
                        }
                    }
                    Err(e) => self.errors.push(format!("{name}: TCP {streams}: {e}")),
                }
                self.settle()?;
            }
        }

        for (i, &flows) in self.cli.flows.iter().enumerate() {
            let ping = i == 0 && router != Router::XskFwd;
            if let Err(e) = self.flood(router, running, flows, ping, &mut v) {
                self.errors
                    .push(format!("{name}: UDP flood, {flows} flows: {e}"));
            }
            self.settle()?;
        }
        Ok(v)
    }

    /// One flood of `flows` flows (after a warm-up), with ping round trips alongside if
    /// `ping`.
    fn flood(
        &mut self,
        router: Router,
        running: &Running<'_>,
        flows: u32,
        ping: bool,
        v: &mut Values,
    ) -> Result<()> {
        let topo = self.topo;
        let core = (!self.cli.no_pin).then_some(OTHER_CORE);
        let warm = FloodRun {
            flows,
            seconds: WARM_UP_SECS,
            core,
        };
        bench::run_packet_sender(topo, &self.exe, warm)?;
        std::thread::sleep(Duration::from_millis(300));
        let fwd = running.fwd();
        let links_before = bench::topology_link_drops(topo)?;
        let sink_before = bench::flood_sink_packets(topo)?;
        let fwd_before = fwd.map(Fwd::status).transpose()?;
        let secs = f64::from(self.cli.seconds);
        let window = CpuWindow::start(running.pid(), self.ticks)?;
        let run = FloodRun {
            flows,
            seconds: secs,
            core,
        };
        let (sent, rtt) = std::thread::scope(|s| {
            let pinger = ping.then(|| {
                s.spawn(|| {
                    // Starts after the generator, ends before it.
                    std::thread::sleep(Duration::from_millis(500));
                    let count = ((secs - 1.5) * 100.0).max(10.0) as u32;
                    bench::ping_rtt(topo.host(0), SERVER, count, 0.01)
                })
            });
            let sent = bench::run_packet_sender(topo, &self.exe, run);
            (sent, pinger.map(|p| p.join()))
        });
        let sent = sent?;
        let cpu = window.finish()?;
        // Let queues drain before counting what arrived.
        std::thread::sleep(Duration::from_millis(200));
        let received = bench::flood_sink_packets(topo)?.saturating_sub(sink_before) as f64;
        let links = bench::drop_deltas(&links_before, &bench::topology_link_drops(topo)?);
        let secs = sent.seconds.max(1e-9);
        let key = |what: &str| format!("flood{flows}_{what}");
        let link_drops: u64 = links.values().sum();
        v.insert(key("link_drops_kpps"), link_drops as f64 / secs / 1e3);
        self.flood_link_drops.push(json!({
            "run": self.run,
            "router": router.name(),
            "flows": flows,
            "seconds": secs,
            "drops": links,
        }));
        v.insert(key("sent_kpps"), sent.pps() / 1e3);
        v.insert(key("kpps"), received / secs / 1e3);
        if received > 0.0 {
            v.insert(key("machine_us"), cpu.machine_cpu_secs * 1e6 / received);
            if !self.cli.no_pin {
                if let Some(s) = cpu.core_cpu_secs.get(ROUTER_CORE) {
                    v.insert(key("core_us"), s * 1e6 / received);
                }
            }
        }
        if let (Some(fwd), Some(before)) = (fwd, fwd_before) {
            let after = fwd.status()?;
            let forwarded = after
                .totals
                .forwarded
                .saturating_sub(before.totals.forwarded) as f64;
            if let (Some(s), true) = (cpu.process_cpu_secs, forwarded > 0.0) {
                v.insert(key("fwd_us"), s * 1e6 / forwarded);
            }
        }
        match rtt {
            Some(Ok(Ok(r))) => {
                v.insert("rtt_load_us".into(), r.median_ms * 1e3);
                let lost = r.transmitted.saturating_sub(r.received);
                v.insert(
                    "rtt_load_loss_pct".into(),
                    100.0 * f64::from(lost) / f64::from(r.transmitted.max(1)),
                );
            }
            Some(Ok(Err(e))) => {
                v.insert("rtt_load_loss_pct".into(), 100.0);
                self.errors
                    .push(format!("{}: ping under load: {e}", router.name()));
            }
            Some(Err(_)) => self
                .errors
                .push(format!("{}: ping under load panicked", router.name())),
            None => {}
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

fn progress(router: Router, cli: &Cli, v: &Values) {
    let g = |k: &str| v.get(k).map_or("-".to_string(), |x| num(*x));
    let floods: Vec<String> = cli
        .flows
        .iter()
        .map(|f| format!("{f} flows {} kpps", g(&format!("flood{f}_kpps"))))
        .collect();
    eprintln!(
        "   {}: rtt {} µs (loaded {} µs), tcp1 {} Mbit/s, tcp4 {} Mbit/s, flood {}",
        router.name(),
        g("rtt_idle_us"),
        g("rtt_load_us"),
        g("tcp1_mbps"),
        g("tcp4_mbps"),
        floods.join(", "),
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

fn values_of(samples: &[Sample], router: Router, key: &str) -> Vec<f64> {
    samples
        .iter()
        .filter(|s| s.router == router)
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

fn ratio(reference: Option<bench::Summary>, other: Option<bench::Summary>) -> Option<f64> {
    match (reference, other) {
        (Some(r), Some(o)) if r.median != 0.0 => Some(o.median / r.median),
        _ => None,
    }
}

/// Rows of cells, aligned: the first column left, the others right.
fn aligned(rows: &[Vec<String>]) -> String {
    let mut widths = vec![0usize; rows.first().map_or(0, Vec::len)];
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for (i, r) in rows.iter().enumerate() {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(j, (c, w))| {
                let pad = " ".repeat(w - c.chars().count());
                if j == 0 {
                    format!("{c}{pad}")
                } else {
                    format!("{pad}{c}")
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
    out
}

fn render_table(
    cli: &Cli,
    command: &str,
    facts: &[(&str, String)],
    samples: &[Sample],
    errors: &[String],
) -> String {
    let metrics = metrics(cli);
    let reference = cli.reference();
    let mut routers: Vec<Router> = cli.routers.clone();
    if !cli.skip_failover && !routers.contains(&cli.failover_router()) {
        routers.push(cli.failover_router());
    }
    let mut header = vec!["metric".to_string(), "unit".to_string()];
    header.extend(routers.iter().map(|r| r.name().to_string()));
    let mut rows = vec![header];
    let others: Vec<Router> = routers
        .iter()
        .copied()
        .filter(|r| *r != reference)
        .collect();
    let mut ratio_header = vec!["metric".to_string()];
    ratio_header.extend(
        others
            .iter()
            .map(|r| format!("{} / {}", r.name(), reference.name())),
    );
    let mut ratio_rows = vec![ratio_header];
    for m in &metrics {
        let sums: Vec<Option<bench::Summary>> = routers
            .iter()
            .map(|r| bench::summarize(&values_of(samples, *r, &m.key)))
            .collect();
        if sums.iter().all(Option::is_none) {
            continue;
        }
        let mut row = vec![m.label.clone(), m.unit.to_string()];
        row.extend(sums.iter().map(|s| cell(*s)));
        rows.push(row);
        let r = bench::summarize(&values_of(samples, reference, &m.key));
        let ratios: Vec<String> = others
            .iter()
            .map(|o| {
                ratio(r, bench::summarize(&values_of(samples, *o, &m.key)))
                    .map_or(String::new(), |x| format!("{x:.2}"))
            })
            .collect();
        if ratios.iter().any(|x| !x.is_empty()) {
            let mut row = vec![m.label.clone()];
            row.extend(ratios);
            ratio_rows.push(row);
        }
    }
    let mut out = String::new();
    out += &format!("command: {command}\n");
    let facts: Vec<String> = facts.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    out += &format!("machine: {}\n", facts.join("; "));
    out += &format!(
        "setup: 2 WANs, 1 LAN host, {} queue(s) per veth at the router; {} runs x {} s per throughput test; flood = {FLOOD_PAYLOAD}-byte UDP from an AF_PACKET generator ({} flows), counted at the server after a {WARM_UP_SECS} s warm-up; ping = {} echoes 10 ms apart (under load: during the first flood)\n",
        cli.queues(),
        cli.runs,
        cli.seconds,
        cli.flows.iter().map(u32::to_string).collect::<Vec<_>>().join(" and "),
        cli.pings
    );
    out += &if cli.no_pin {
        "placement: left to the scheduler\n".to_string()
    } else {
        format!(
            "placement: router work on core {ROUTER_CORE} (threaded NAPI of the router's veths, the forwarder process; two-worker fwd on both cores), generator and the ISPs' receive work on core {OTHER_CORE}\n"
        )
    };
    for r in &routers {
        out += &format!("  {}: {}\n", r.name(), r.describe());
    }
    out += "(% core = share of one core)\n";
    if !cli.skip_failover {
        out += &format!(
            "failover rows: {} only. fwd probes by ICMP every 100 ms (down after 3 failed rounds, up after 5\n  \
             good); a {FAILOVER_PPS} pkt/s UDP stream from h0; the WAN it rides is cut (link down at the ISP, or\n  \
             the ISP silently dropping), then restored. gap = the stream's longest receive gap; detection =\n  \
             cut until fwd's `wans` answer said down (polled every {} ms); back up = restore until it said up\n",
            cli.failover_router().name(),
            failover::DETECT_POLL.as_millis()
        );
    }
    out.push('\n');
    out += &aligned(&rows);
    if ratio_rows.len() > 1 {
        out += &format!("\nratios of medians to {}:\n", reference.name());
        out += &aligned(&ratio_rows);
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
    let reference = cli.reference();
    let metrics: Vec<Value> = metrics(cli)
        .iter()
        .map(|m| {
            let r = bench::summarize(&values_of(samples, reference, &m.key));
            let per_router: serde_json::Map<String, Value> = Router::value_variants()
                .iter()
                .filter_map(|router| {
                    let s = bench::summarize(&values_of(samples, *router, &m.key))?;
                    Some((
                        router.name().to_string(),
                        json!({
                            "summary": summary_json(Some(s)),
                            "ratio_to_reference": ratio(r, Some(s)),
                        }),
                    ))
                })
                .collect();
            json!({
                "key": m.key,
                "label": m.label.trim(),
                "unit": m.unit,
                "routers": per_router,
            })
        })
        .collect();
    let runs: Vec<Value> = samples
        .iter()
        .map(|s| json!({"run": s.run, "router": s.router.name(), "values": s.values}))
        .collect();
    json!({
        "command": command,
        "machine": machine,
        "settings": {
            "runs": cli.runs,
            "seconds": cli.seconds,
            "routers": cli.routers.iter().map(|r| json!({"name": r.name(), "what": r.describe()})).collect::<Vec<_>>(),
            "reference": reference.name(),
            "flows": cli.flows,
            "flood_payload": FLOOD_PAYLOAD,
            "pings": cli.pings,
            "pinned": !cli.no_pin,
            "queues": cli.queues(),
            "topology": "2 WANs, 1 LAN host",
            "fwd_config": format!("plan::fwd_config_toml(2), nat_ports {BENCH_NAT_PORTS}"),
            "xsk_fwd": cli.xsk_fwd,
            "failover": if cli.skip_failover {
                Value::Null
            } else {
                json!({
                    "router": cli.failover_router().name(),
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
