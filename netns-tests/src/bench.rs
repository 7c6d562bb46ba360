//! Pieces of the `netns-bench` binary (routers compared in one topology): medians, CPU
//! accounting from `/proc` (per process, per thread, per core), a UDP flood (64-byte frames
//! of many flows from an AF_PACKET generator in a LAN host, [`packet_gen`], counted and
//! dropped by an nftables rule at the server), per-packet ping round trips, and where the
//! work runs ([`placement`]: router on one core, generator on the other).
//!
//! The flood exists because one iperf3 UDP sender cannot send small datagrams fast enough
//! to saturate a router on these machines (FINDINGS.md); the sink is an nft counter in the
//! internet namespace's prerouting hook, so the receiving end costs almost nothing and
//! cannot be the bottleneck.
//!
//! [`failover`] measures fwd's failover (fwd only: the kernel's ECMP has no health checks).

pub mod failover;
pub mod packet_gen;
pub mod placement;

use crate::error::{Error, Result};
use crate::netns::Netns;
use crate::plan::SERVER;
use crate::topology::Topology;
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

/// UDP port the flood is sent to (the sink counts and drops it before any socket lookup).
pub const FLOOD_PORT: u16 = 9;
/// nftables table of the flood sink, in the internet namespace.
pub const SINK_TABLE: &str = "fwt_bench_sink";

/// Median, minimum and maximum of some samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// Number of samples.
    pub n: usize,
}

/// [`Summary`] of the finite values of `values`; `None` when there are none.
pub fn summarize(values: &[f64]) -> Option<Summary> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some(Summary {
        median,
        min: v[0],
        max: v[n - 1],
        n,
    })
}

// ---------------------------------------------------------------------------------------
// CPU time
// ---------------------------------------------------------------------------------------

/// Clock ticks per second of `/proc` CPU times (`getconf CLK_TCK`; 100 if that fails).
pub fn clock_ticks_per_sec() -> f64 {
    crate::cmd::check("getconf", &["CLK_TCK"], None, crate::cmd::CONFIG_TIMEOUT)
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// `(comm, utime + stime)` of a `/proc/PID/stat` or `/proc/PID/task/TID/stat` line.
pub fn parse_stat_ticks(stat: &str) -> Option<(String, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_string();
    // After ") ": state is field 3 of the line, utime field 14, stime field 15.
    let rest: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some((comm, utime + stime))
}

/// CPU ticks a process used so far, in total and per thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessCpu {
    pub total: u64,
    /// `(tid, thread name, ticks)`.
    pub threads: Vec<(u32, String, u64)>,
}

/// Reads [`ProcessCpu`] of `pid` from `/proc`.
pub fn process_cpu(pid: u32) -> Result<ProcessCpu> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let (_, total) =
        parse_stat_ticks(&stat).ok_or_else(|| Error::new(format!("bad /proc/{pid}/stat")))?;
    let mut threads = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task"))?.flatten() {
        let Ok(tid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        // A thread may exit between the listing and the read.
        if let Ok(s) = std::fs::read_to_string(entry.path().join("stat")) {
            if let Some((name, ticks)) = parse_stat_ticks(&s) {
                threads.push((tid, name, ticks));
            }
        }
    }
    Ok(ProcessCpu { total, threads })
}

/// Machine-wide CPU ticks from the first line of `/proc/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SystemCpu {
    /// Everything but idle and iowait (user, nice, system, irq, softirq, steal).
    pub busy: u64,
    pub total: u64,
}

/// [`SystemCpu`] of `/proc/stat` text: the whole machine.
pub fn parse_proc_stat(text: &str) -> Option<SystemCpu> {
    parse_cpu_line(text.lines().find(|l| l.starts_with("cpu "))?)
}

/// [`SystemCpu`] of each core (`cpuN` lines of `/proc/stat`), in order of N.
pub fn parse_proc_stat_cores(text: &str) -> Vec<SystemCpu> {
    text.lines()
        .filter(|l| {
            l.strip_prefix("cpu")
                .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
        })
        .filter_map(parse_cpu_line)
        .collect()
}

/// One `cpu` line of `/proc/stat`.
fn parse_cpu_line(line: &str) -> Option<SystemCpu> {
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    if v.len() < 5 {
        return None;
    }
    let total: u64 = v.iter().sum();
    let idle = v[3] + v[4];
    Some(SystemCpu {
        busy: total - idle,
        total,
    })
}

/// Reads [`SystemCpu`] of the machine and of each core now.
pub fn system_cpu() -> Result<(SystemCpu, Vec<SystemCpu>)> {
    let text = std::fs::read_to_string("/proc/stat")?;
    let all = parse_proc_stat(&text).ok_or_else(|| Error::new("cannot parse /proc/stat"))?;
    Ok((all, parse_proc_stat_cores(&text)))
}

/// CPU used over a measurement (see [`CpuWindow`]).
#[derive(Debug, Clone, PartialEq)]
pub struct CpuUsage {
    /// Wall-clock seconds of the window.
    pub seconds: f64,
    /// Machine busy time as a percentage of all cores.
    pub machine_percent: f64,
    /// Machine busy CPU-seconds.
    pub machine_cpu_secs: f64,
    /// The watched process's CPU-seconds, if one was watched.
    pub process_cpu_secs: Option<f64>,
    /// Its busiest thread: name and CPU-seconds.
    pub busiest_thread: Option<(String, f64)>,
    /// Busy CPU-seconds of each core.
    pub core_cpu_secs: Vec<f64>,
}

impl CpuUsage {
    /// The watched process's CPU as a percentage of one core.
    pub fn process_percent(&self) -> Option<f64> {
        self.process_cpu_secs
            .map(|s| 100.0 * s / self.seconds.max(1e-9))
    }

    /// Its busiest thread's CPU as a percentage of one core.
    pub fn busiest_thread_percent(&self) -> Option<f64> {
        self.busiest_thread
            .as_ref()
            .map(|(_, s)| 100.0 * s / self.seconds.max(1e-9))
    }
}

/// Machine and (optionally) one process's CPU time between [`CpuWindow::start`] and
/// [`CpuWindow::finish`].
#[derive(Debug, Clone)]
pub struct CpuWindow {
    at: Instant,
    system: SystemCpu,
    cores: Vec<SystemCpu>,
    pid: Option<u32>,
    process: Option<ProcessCpu>,
    ticks_per_sec: f64,
}

impl CpuWindow {
    /// Starts a window, watching `pid` too if given.
    pub fn start(pid: Option<u32>, ticks_per_sec: f64) -> Result<CpuWindow> {
        let process = pid.map(process_cpu).transpose()?;
        let (system, cores) = system_cpu()?;
        Ok(CpuWindow {
            at: Instant::now(),
            system,
            cores,
            pid,
            process,
            ticks_per_sec,
        })
    }

    /// Ends the window.
    pub fn finish(&self) -> Result<CpuUsage> {
        let (system, cores) = system_cpu()?;
        let seconds = self.at.elapsed().as_secs_f64();
        let tps = self.ticks_per_sec;
        let core_cpu_secs = cores
            .iter()
            .zip(&self.cores)
            .map(|(after, before)| after.busy.saturating_sub(before.busy) as f64 / tps)
            .collect();
        let d_busy = system.busy.saturating_sub(self.system.busy) as f64;
        let d_total = system.total.saturating_sub(self.system.total) as f64;
        let (mut process_cpu_secs, mut busiest_thread) = (None, None);
        if let (Some(pid), Some(before)) = (self.pid, &self.process) {
            let after = process_cpu(pid)?;
            process_cpu_secs = Some(after.total.saturating_sub(before.total) as f64 / tps);
            busiest_thread = after
                .threads
                .iter()
                .map(|(tid, name, ticks)| {
                    let was = before
                        .threads
                        .iter()
                        .find(|(t, _, _)| t == tid)
                        .map_or(0, |(_, _, t)| *t);
                    (name.clone(), ticks.saturating_sub(was) as f64 / tps)
                })
                .max_by(|a, b| a.1.total_cmp(&b.1));
        }
        Ok(CpuUsage {
            seconds,
            machine_percent: if d_total > 0.0 {
                100.0 * d_busy / d_total
            } else {
                0.0
            },
            machine_cpu_secs: d_busy / tps,
            process_cpu_secs,
            busiest_thread,
            core_cpu_secs,
        })
    }
}

// ---------------------------------------------------------------------------------------
// UDP flood
// ---------------------------------------------------------------------------------------

/// What a load generator did, as it prints it (one JSON line).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FloodSent {
    /// Frames the kernel took.
    pub packets: u64,
    /// Send calls that failed (e.g. ENOBUFS), not counted in `packets`.
    pub errors: u64,
    pub seconds: f64,
}

impl FloodSent {
    /// Sent frames per second.
    pub fn pps(&self) -> f64 {
        self.packets as f64 / self.seconds.max(1e-9)
    }

    pub fn to_json(&self) -> String {
        serde_json::json!({
            "packets": self.packets,
            "errors": self.errors,
            "seconds": self.seconds,
        })
        .to_string()
    }

    /// Parses [`FloodSent::to_json`] output.
    pub fn from_json(text: &str) -> Result<FloodSent> {
        let v: Value = serde_json::from_str(text.trim())
            .map_err(|e| Error::new(format!("generator output {text:?}: {e}")))?;
        let field = |k: &str| {
            v[k].as_f64()
                .ok_or_else(|| Error::new(format!("generator output lacks {k}: {text}")))
        };
        Ok(FloodSent {
            packets: field("packets")? as u64,
            errors: field("errors")? as u64,
            seconds: field("seconds")?,
        })
    }
}

/// Installs the flood sink in `topo`'s internet namespace: a named counter `flood` that
/// counts and drops UDP to [`FLOOD_PORT`] in prerouting (idempotent).
pub fn install_flood_sink(topo: &Topology) -> Result<()> {
    let inet = topo.internet();
    let _ = inet.exec(&["nft", "delete", "table", "ip", SINK_TABLE]);
    inet.nft(&format!(
        "table ip {SINK_TABLE} {{\n  counter flood {{ }}\n  chain pre {{\n    type filter hook prerouting priority raw; policy accept;\n    ip daddr {SERVER} udp dport {FLOOD_PORT} counter name \"flood\" drop\n  }}\n}}\n"
    ))
}

/// Packets the flood sink counted so far.
pub fn flood_sink_packets(topo: &Topology) -> Result<u64> {
    let out = topo
        .internet()
        .exec(&["nft", "list", "counter", "ip", SINK_TABLE, "flood"])?;
    parse_nft_counter(&out)
        .ok_or_else(|| Error::new(format!("no packet count in nft output: {out}")))
}

/// The `packets N` of `nft list counter` output.
pub fn parse_nft_counter(out: &str) -> Option<u64> {
    let mut words = out.split_whitespace();
    while let Some(w) = words.next() {
        if w == "packets" {
            return words.next()?.parse().ok();
        }
    }
    None
}

/// A load generator run: `flows` flows of [`FLOOD_PAYLOAD`](crate::FLOOD_PAYLOAD)-byte UDP
/// from LAN host 0 to the server's [`FLOOD_PORT`], for `seconds`.
#[derive(Debug, Clone, Copy)]
pub struct FloodRun {
    pub flows: u32,
    pub seconds: f64,
    /// The core the generator runs on, if pinned.
    pub core: Option<usize>,
}

/// Runs `exe packet-send ...` (see [`packet_gen::send`]) in `topo`'s LAN host 0, towards
/// the router's MAC on `lan0`, and returns what it sent.
pub fn run_packet_sender(topo: &Topology, exe: &str, run: FloodRun) -> Result<FloodSent> {
    let host = topo.host(0);
    let router_mac = interface_mac_in(topo.router(), crate::plan::LAN_IF)?;
    let (flows, seconds) = (run.flows.to_string(), run.seconds.to_string());
    let src = crate::plan::lan_host(0).to_string();
    let dst = SocketAddrV4::new(SERVER, FLOOD_PORT).to_string();
    let core = run.core.map(|c| c.to_string());
    let mut args: Vec<&str> = Vec::new();
    if let Some(c) = &core {
        args.extend(["taskset", "-c", c.as_str()]);
    }
    args.extend([
        exe,
        "packet-send",
        "--interface",
        crate::plan::HOST_IF,
        "--router-mac",
        &router_mac,
        "--src",
        &src,
        "--dst",
        &dst,
        "--flows",
        &flows,
        "--seconds",
        &seconds,
    ]);
    let out = host.exec_timeout(&args, Duration::from_secs_f64(run.seconds + 10.0))?;
    FloodSent::from_json(&out)
}

/// The MAC of `dev` in `ns`, as text.
pub fn interface_mac_in(ns: &Netns, dev: &str) -> Result<String> {
    let text = ns.exec(&["cat", &format!("/sys/class/net/{dev}/address")])?;
    let mac = text.trim();
    packet_gen::parse_mac(mac)
        .map(|_| mac.to_string())
        .ok_or_else(|| Error::new(format!("bad MAC of {dev}: {text}")))
}

/// Dropped packets (rx + tx) of every interface of `ns` (`ip -s -j link show`), by name.
pub fn link_drops(ns: &Netns) -> Result<BTreeMap<String, u64>> {
    let out = ns.exec(&["ip", "-s", "-j", "link", "show"])?;
    parse_link_drops(&out).ok_or_else(|| Error::new(format!("cannot parse ip -s -j link: {out}")))
}

/// [`link_drops`] of `ip -s -j link show` output.
pub fn parse_link_drops(out: &str) -> Option<BTreeMap<String, u64>> {
    let v: Value = serde_json::from_str(out).ok()?;
    let mut drops = BTreeMap::new();
    for link in v.as_array()? {
        let name = link["ifname"].as_str()?.to_string();
        let stats = &link["stats64"];
        let rx = stats["rx"]["dropped"].as_u64().unwrap_or(0);
        let tx = stats["tx"]["dropped"].as_u64().unwrap_or(0);
        drops.insert(name, rx + tx);
    }
    Some(drops)
}

/// Link drops of every namespace of `topo` (LAN hosts, router, ISPs, internet), keyed
/// `role/ifname` (roles `h0`, `rt`, `isp0`, `inet`...).
pub fn topology_link_drops(topo: &Topology) -> Result<BTreeMap<String, u64>> {
    let mut all = BTreeMap::new();
    let mut add = |role: String, ns: &Netns| -> Result<()> {
        for (name, n) in link_drops(ns)? {
            all.insert(format!("{role}/{name}"), n);
        }
        Ok(())
    };
    for (k, h) in topo.hosts().iter().enumerate() {
        add(format!("h{k}"), h)?;
    }
    add("rt".to_string(), topo.router())?;
    for i in 0..topo.wan_count() {
        add(format!("isp{i}"), topo.isp(i))?;
    }
    add("inet".to_string(), topo.internet())?;
    Ok(all)
}

/// Per-key increase from `before` to `after`, non-zero ones only.
pub fn drop_deltas(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, a)| {
            (
                k.clone(),
                a.saturating_sub(before.get(k).copied().unwrap_or(0)),
            )
        })
        .filter(|(_, d)| *d > 0)
        .collect()
}

// ---------------------------------------------------------------------------------------
// ping and iperf3
// ---------------------------------------------------------------------------------------

/// Round trips of one ping run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RttStats {
    pub transmitted: u32,
    pub received: u32,
    /// Median round trip, milliseconds.
    pub median_ms: f64,
    /// Mean round trip, milliseconds.
    pub avg_ms: f64,
}

/// The `time=X ms` of every reply line of `ping` output.
pub fn parse_ping_times(out: &str) -> Vec<f64> {
    out.lines()
        .filter_map(|l| {
            let t = l.split_whitespace().find_map(|w| w.strip_prefix("time="))?;
            t.parse().ok()
        })
        .collect()
}

/// `ping -n -c COUNT -i INTERVAL -W 1 DST` from `ns`, every reply's time kept. Errors when
/// no reply came.
pub fn ping_rtt(ns: &Netns, dst: Ipv4Addr, count: u32, interval: f64) -> Result<RttStats> {
    let (d, c, i) = (
        dst.to_string(),
        count.max(1).to_string(),
        interval.to_string(),
    );
    let args = ["ping", "-n", "-c", &c, "-i", &i, "-W", "1", &d];
    let limit = Duration::from_secs_f64(f64::from(count) * interval + 10.0);
    let out = ns.output(&args, None, limit)?;
    let stats = crate::parse_ping(&out.stdout).ok_or_else(|| ns.failed(&args, &out))?;
    let times = parse_ping_times(&out.stdout);
    let s = summarize(&times)
        .ok_or_else(|| Error::new(format!("no ping reply from {dst}: {}", out.stdout.trim())))?;
    Ok(RttStats {
        transmitted: stats.transmitted,
        received: stats.received,
        median_ms: s.median,
        avg_ms: times.iter().sum::<f64>() / times.len() as f64,
    })
}

// ---------------------------------------------------------------------------------------
// Machine facts
// ---------------------------------------------------------------------------------------

/// `(name, value)` facts about this machine: cores, CPU model, kernel, iperf3 version.
pub fn machine_facts() -> Vec<(&'static str, String)> {
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_default();
    let iperf = crate::cmd::run("iperf3", &["--version"], None, crate::cmd::CONFIG_TIMEOUT)
        .ok()
        .and_then(|o| o.stdout.lines().next().map(str::to_string))
        .unwrap_or_default();
    vec![
        ("nproc", cores.to_string()),
        ("cpu", model),
        ("kernel", kernel),
        ("iperf3", iperf),
    ]
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        let s = summarize(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.n), (2.0, 1.0, 3.0, 3));
        assert_eq!(summarize(&[4.0, 1.0, 2.0, 3.0]).unwrap().median, 2.5);
        assert_eq!(summarize(&[f64::NAN]), None);
        assert_eq!(summarize(&[]), None);
    }

    #[test]
    fn stat_lines() {
        let line = "1234 (fwd-worker 0) R 1 2 3 4 5 6 7 8 9 10 150 25 0 0 20 0 3 0";
        assert_eq!(
            parse_stat_ticks(line),
            Some(("fwd-worker 0".to_string(), 175))
        );
        let stat = "cpu  100 5 50 1000 10 1 20 3 0 0\ncpu0 1 2 3 4 5\ncpu1 10 0 0 4 0\n";
        assert_eq!(
            parse_proc_stat_cores(stat),
            [
                SystemCpu { busy: 6, total: 15 },
                SystemCpu {
                    busy: 10,
                    total: 14
                }
            ]
        );
        assert_eq!(
            parse_proc_stat(stat),
            Some(SystemCpu {
                busy: 179,
                total: 1189
            })
        );
    }

    #[test]
    fn ping_and_nft_output() {
        let out = "64 bytes from 203.0.113.10: icmp_seq=1 ttl=62 time=0.085 ms\n64 bytes from 203.0.113.10: icmp_seq=2 ttl=62 time=0.051 ms\n";
        assert_eq!(parse_ping_times(out), [0.085, 0.051]);
        let nft = "table ip t {\n\tcounter flood {\n\t\tpackets 12345 bytes 999\n\t}\n}\n";
        assert_eq!(parse_nft_counter(nft), Some(12345));
        let f = FloodSent {
            packets: 10,
            errors: 1,
            seconds: 2.0,
        };
        assert_eq!(FloodSent::from_json(&f.to_json()).unwrap(), f);
        assert_eq!(f.pps(), 5.0);
        let links = r#"[{"ifname":"lan0","stats64":{"rx":{"dropped":2},"tx":{"dropped":3}}},{"ifname":"lo","stats64":{"rx":{"dropped":0},"tx":{"dropped":0}}}]"#;
        let d = parse_link_drops(links).unwrap();
        assert_eq!(d["lan0"], 5);
        let before = BTreeMap::from([("lan0".to_string(), 1), ("lo".to_string(), 0)]);
        assert_eq!(
            drop_deltas(&before, &d),
            BTreeMap::from([("lan0".to_string(), 4)])
        );
    }
}
