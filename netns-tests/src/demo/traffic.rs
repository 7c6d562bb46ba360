//! The demo's traffic: shell loops on the LAN hosts that end by themselves at a deadline
//! (or earlier when a stop file appears), each client command bounded by its own timeout;
//! and what they left behind (curl and dig logs, iperf3 JSON per run), parsed.
//!
//! - host 0: a new HTTP connection per curl (every 5th a 1 MB download), a dig after each;
//! - host 1: an iperf3 UDP stream at [`UDP_RATE`] to port 5201 in pieces of at most
//!   [`UDP_PIECE_SECS`] s, and now and then a TCP iperf3 to [`TCP_PORT`] (a second server,
//!   so both run at once).
//!
//! The iperf3 servers are the demo's own ([`start_servers`]): a test whose client was reset
//! when its WAN died must not keep a server "busy" for iperf3's default two minutes.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cmd;
use crate::error::{Error, Result};
use crate::plan::{self, DNS_NAME, IPERF_PORT, SERVER};
use crate::topology::Topology;
use crate::wait::{is_listening, wait_until, Proto};

/// Rate of the UDP stream (iperf3 `-b`).
pub const UDP_RATE: &str = "20M";
/// UDP payload bytes per datagram.
pub const UDP_PAYLOAD: u32 = 1200;
/// Longest UDP piece, in seconds.
pub const UDP_PIECE_SECS: u64 = 5;
/// Port of the second iperf3 server, for the TCP runs.
pub const TCP_PORT: u16 = 5202;
/// Rate cap of the TCP runs (iperf3 `-b`), so they do not starve the rest of the demo.
pub const TCP_RATE: &str = "200M";
/// Length of a TCP run, and the pause between two.
pub const TCP_SECS: u64 = 2;
const TCP_PAUSE_SECS: u64 = 6;
/// How long an iperf3 server waits for a test's data before it gives the test up.
pub const IPERF_RCV_TIMEOUT_MS: u32 = 3000;
/// Pause of the UDP loop after a piece that failed (e.g. the server was still busy).
const UDP_RETRY_SECS: u64 = 1;
/// Every how many requests host 0 downloads 1 MB instead of the index page.
pub const BIG_EVERY: u32 = 5;
/// Size of the big download.
pub const BIG_BYTES: usize = 1_048_576;

/// The traffic loops running on the hosts.
#[derive(Debug)]
pub struct Traffic<'t> {
    topo: &'t Topology,
    dir: PathBuf,
    /// (host index, pid of its shell).
    loops: Vec<(usize, u32)>,
}

/// The loops, for the demo's header: lines of at most 80 columns.
pub fn describe() -> Vec<String> {
    vec![
        format!(
            "h0  curl http://{SERVER}/ in a loop, a new connection each (every {BIG_EVERY}th: 1 MB),"
        ),
        format!("    each followed by dig {DNS_NAME} @{SERVER} (udp/53)"),
        format!(
            "h1  iperf3 UDP {UDP_RATE}bit/s to :{IPERF_PORT} in {UDP_PIECE_SECS} s pieces; \
             iperf3 TCP to :{TCP_PORT},"
        ),
        format!(
            "    {TCP_SECS} s at most {TCP_RATE}bit/s every {} s",
            TCP_SECS + TCP_PAUSE_SECS
        ),
    ]
}

/// Starts the iperf3 servers of the loops (ports [`IPERF_PORT`] and [`TCP_PORT`]) in the
/// internet namespace, with [`IPERF_RCV_TIMEOUT_MS`], and waits until they listen.
pub fn start_servers(topo: &Topology) -> Result<()> {
    let (addr, timeout) = (SERVER.to_string(), IPERF_RCV_TIMEOUT_MS.to_string());
    for port in [IPERF_PORT, TCP_PORT] {
        let p = port.to_string();
        let log = topo.workdir().join(format!("demo-iperf3-{port}.log"));
        let args = [
            "iperf3",
            "-s",
            "-B",
            &addr,
            "-p",
            &p,
            "--rcv-timeout",
            &timeout,
        ];
        let pid = topo.internet().spawn(&args, &log)?;
        wait_until(
            &format!("iperf3 on :{port}"),
            Duration::from_secs(5),
            || {
                if !topo.internet().is_running(pid) {
                    let text = std::fs::read_to_string(&log).unwrap_or_default();
                    return Err(Error::new(format!("iperf3 -s exited: {}", text.trim())));
                }
                is_listening(pid, Proto::Tcp, SERVER, port)
            },
        )?;
    }
    Ok(())
}

impl<'t> Traffic<'t> {
    /// Starts the loops for `seconds`; their files go to `topo`'s work directory.
    pub fn start(topo: &'t Topology, seconds: u64) -> Result<Traffic<'t>> {
        let dir = topo.workdir().join("demo");
        std::fs::create_dir_all(&dir)?;
        let mut traffic = Traffic {
            topo,
            dir,
            loops: Vec::new(),
        };
        let d = traffic.dir.display().to_string();
        let scripts = [
            (0, "web", web_script(&d, seconds)),
            (1, "udp", udp_script(&d, seconds)),
            (1, "tcp", tcp_script(&d, seconds)),
        ];
        for (host, name, script) in scripts {
            let log = traffic.dir.join(format!("{name}.out"));
            // Started one by one; a failure drops `traffic`, which stops those started.
            let pid = topo.host(host).spawn(&["sh", "-c", &script], &log)?;
            traffic.loops.push((host, pid));
        }
        Ok(traffic)
    }

    /// Stops the loops: asks them to stop, waits up to `grace` for them to finish what they
    /// are doing, then kills whatever still runs in the hosts' namespaces. Idempotent.
    pub fn stop(&mut self, grace: Duration) {
        let _ = std::fs::write(self.dir.join("stop"), b"");
        let deadline = Instant::now() + grace;
        for &(host, pid) in &self.loops {
            let left = deadline.saturating_duration_since(Instant::now());
            let _ = self.topo.host(host).wait_exit(pid, left);
        }
        for host in self.topo.hosts() {
            for signal in ["-TERM", "-KILL"] {
                let pids: Vec<String> = host.pids().iter().map(u32::to_string).collect();
                if pids.is_empty() {
                    break;
                }
                let mut args = vec![signal];
                args.extend(pids.iter().map(String::as_str));
                let _ = cmd::run("kill", &args, None, cmd::CONFIG_TIMEOUT);
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        for (host, pid) in self.loops.drain(..) {
            self.topo.host(host).kill(pid);
        }
    }

    /// What the loops logged so far.
    pub fn results(&self) -> TrafficResults {
        let read = |name: &str| std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        let (http_ok, http_failed) = count_curl(&read("curl.log"));
        let (dns_ok, dns_failed) = count_dig(&read("dig.log"));
        let udp = sum_udp(&json_files(&self.dir, "udp-"));
        let tcp = json_files(&self.dir, "tcp-");
        let tcp_mbps: Vec<f64> = tcp
            .iter()
            .filter_map(|j| crate::parse_iperf3_tcp(j).ok())
            .collect();
        TrafficResults {
            http_ok,
            http_failed,
            dns_ok,
            dns_failed,
            udp,
            tcp_runs_failed: tcp.len() - tcp_mbps.len(),
            tcp_mbps,
        }
    }
}

impl Drop for Traffic<'_> {
    fn drop(&mut self) {
        if !self.loops.is_empty() {
            self.stop(Duration::ZERO);
        }
    }
}

/// What the traffic loops achieved.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrafficResults {
    /// curl requests answered with 200.
    pub http_ok: u64,
    /// curl requests that failed.
    pub http_failed: u64,
    /// digs answered with the server's address.
    pub dns_ok: u64,
    /// digs without that answer.
    pub dns_failed: u64,
    /// The UDP stream, over every piece that finished.
    pub udp: UdpTotals,
    /// Receiver Mbit/s of every TCP run that finished.
    pub tcp_mbps: Vec<f64>,
    /// TCP runs without a result.
    pub tcp_runs_failed: usize,
}

/// The UDP stream summed over its pieces (receiver side, as iperf3 reports it back).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct UdpTotals {
    /// Pieces with a result.
    pub pieces: u32,
    /// Pieces without one (iperf3 failed or was cut off).
    pub pieces_failed: u32,
    /// Datagrams the receiver expected (sequence numbers seen).
    pub packets: u64,
    /// Datagrams lost.
    pub lost: u64,
    /// Payload bytes received.
    pub bytes: u64,
    /// Seconds of receiving.
    pub seconds: f64,
}

impl UdpTotals {
    /// Lost datagrams in percent.
    pub fn loss_percent(&self) -> f64 {
        if self.packets == 0 {
            0.0
        } else {
            self.lost as f64 * 100.0 / self.packets as f64
        }
    }

    /// Received Mbit/s averaged over the pieces.
    pub fn mbps(&self) -> f64 {
        if self.seconds > 0.0 {
            self.bytes as f64 * 8.0 / self.seconds / 1e6
        } else {
            0.0
        }
    }
}

/// (answered with 200, other) of the curl log: one `HTTP_CODE SIZE` line per request.
pub fn count_curl(log: &str) -> (u64, u64) {
    let lines = log.lines().filter(|l| !l.trim().is_empty());
    let ok = lines.clone().filter(|l| l.starts_with("200 ")).count() as u64;
    (ok, lines.count() as u64 - ok)
}

/// (ok, fail) of the dig log: one `ok` or `fail` line per query.
pub fn count_dig(log: &str) -> (u64, u64) {
    let ok = log.lines().filter(|l| l.trim() == "ok").count() as u64;
    let fail = log.lines().filter(|l| l.trim() == "fail").count() as u64;
    (ok, fail)
}

/// The UDP stream summed over the `iperf3 -J -u` outputs of its pieces.
pub fn sum_udp(pieces: &[String]) -> UdpTotals {
    let mut t = UdpTotals::default();
    for json in pieces {
        let recv = serde_json::from_str::<Value>(json)
            .ok()
            .map(|v| v["end"]["sum_received"].clone());
        let field = |name: &str| recv.as_ref().and_then(|r| r[name].as_f64());
        match (
            field("packets"),
            field("lost_packets"),
            field("bytes"),
            field("seconds"),
        ) {
            (Some(packets), Some(lost), Some(bytes), Some(seconds)) => {
                t.pieces += 1;
                t.packets += packets as u64;
                t.lost += lost as u64;
                t.bytes += bytes as u64;
                t.seconds += seconds;
            }
            _ => t.pieces_failed += 1,
        }
    }
    t
}

/// Contents of `dir/{prefix}N.json`, in order of N.
fn json_files(dir: &Path, prefix: &str) -> Vec<String> {
    let mut numbered: Vec<(u32, PathBuf)> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let n = name
                        .strip_prefix(prefix)?
                        .strip_suffix(".json")?
                        .parse()
                        .ok()?;
                    Some((n, e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    numbered.sort();
    numbered
        .into_iter()
        .filter_map(|(_, p)| std::fs::read_to_string(p).ok())
        .collect()
}

/// Shell lines that set `end` and define `running` (true until the deadline or the stop
/// file).
fn preamble(dir: &str, seconds: u64) -> String {
    format!(
        "cd '{dir}' || exit 1\nend=$(( $(date +%s) + {seconds} ))\n\
         running() {{ [ ! -e stop ] && [ \"$(date +%s)\" -lt \"$end\" ]; }}\n"
    )
}

fn web_script(dir: &str, seconds: u64) -> String {
    let page = plan::http_url("/");
    let big = crate::bytes_url(BIG_BYTES);
    preamble(dir, seconds)
        + &format!(
            "i=0\nwhile running; do\n  i=$((i + 1))\n  url={page}\n  \
             [ $((i % {BIG_EVERY})) -eq 0 ] && url={big}\n  \
             curl -s -o /dev/null --noproxy '*' --connect-timeout 3 --max-time 5 \
             -w '%{{http_code}} %{{size_download}}\\n' \"$url\" >> curl.log\n  \
             if dig +short +time=1 +tries=1 @{SERVER} {DNS_NAME} A | grep -qx '{SERVER}'; \
             then echo ok; else echo fail; fi >> dig.log\n  sleep 0.1\ndone\n"
        )
}

fn udp_script(dir: &str, seconds: u64) -> String {
    preamble(dir, seconds)
        + &format!(
            "i=0\nwhile running; do\n  left=$(( end - $(date +%s) ))\n  \
             [ \"$left\" -gt {UDP_PIECE_SECS} ] && left={UDP_PIECE_SECS}\n  i=$((i + 1))\n  \
             iperf3 -J -u -c {SERVER} -p {IPERF_PORT} -t \"$left\" -b {UDP_RATE} \
             -l {UDP_PAYLOAD} --connect-timeout 3000 > udp-$i.json 2>&1\n  \
             grep -q '\"error\"' udp-$i.json && sleep {UDP_RETRY_SECS}\ndone\n"
        )
}

fn tcp_script(dir: &str, seconds: u64) -> String {
    preamble(dir, seconds)
        + &format!(
            "i=0\nsleep 2\nwhile running && [ $(( end - $(date +%s) )) -gt {TCP_SECS} ]; do\n  \
             i=$((i + 1))\n  \
             iperf3 -J -c {SERVER} -p {TCP_PORT} -t {TCP_SECS} -b {TCP_RATE} \
             --connect-timeout 3000 > tcp-$i.json 2>&1\n  \
             n=0; while [ $n -lt {TCP_PAUSE_SECS} ] && running; do sleep 1; n=$((n + 1)); done\n\
             done\n"
        )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn curl_and_dig_logs() {
        assert_eq!(count_curl("200 22\n200 1048576\n000 0\n\n"), (2, 1));
        assert_eq!(count_curl(""), (0, 0));
        assert_eq!(count_dig("ok\nok\nfail\n"), (2, 1));
    }

    #[test]
    fn udp_pieces_add_up() {
        let piece = |packets: u64, lost: u64| {
            format!(
                r#"{{"end":{{"sum_received":{{"packets":{packets},"lost_packets":{lost},"bytes":{},"seconds":5.0}}}}}}"#,
                (packets - lost) * 1200
            )
        };
        let t = sum_udp(&[
            piece(10_000, 10),
            piece(10_000, 30),
            r#"{"error":"the server is busy"}"#.to_string(),
        ]);
        assert_eq!((t.pieces, t.pieces_failed), (2, 1));
        assert_eq!((t.packets, t.lost), (20_000, 40));
        assert!((t.loss_percent() - 0.2).abs() < 1e-9);
        assert!((t.mbps() - 19_960.0 * 1200.0 * 8.0 / 10.0 / 1e6).abs() < 1e-9);
        assert_eq!(UdpTotals::default().loss_percent(), 0.0);
        assert_eq!(UdpTotals::default().mbps(), 0.0);
    }

    #[test]
    fn scripts_are_bounded() {
        for s in [
            web_script("/tmp/x", 30),
            udp_script("/tmp/x", 30),
            tcp_script("/tmp/x", 30),
        ] {
            assert!(s.contains("end=$(( $(date +%s) + 30 ))"), "{s}");
            assert!(s.contains("while running"), "{s}");
        }
        assert!(web_script("/d", 5).contains("--max-time 5"));
        assert!(udp_script("/d", 5).contains("-b 20M -l 1200"));
        // A failed piece (a busy server answers at once) is not retried in a tight loop.
        assert!(udp_script("/d", 5).contains("udp-$i.json && sleep 1\n"));
    }
}
