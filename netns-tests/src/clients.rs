//! Client tools run inside a namespace (normally a LAN host), each bounded in time, with
//! their output parsed.

use crate::error::{Error, Result};
use crate::netns::Netns;
use crate::plan::{IPERF_PORT, SERVER};
use serde_json::Value;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

/// `curl --max-time` of [`Netns::curl`], in seconds.
pub const CURL_MAX_TIME: u32 = 10;

/// What `ping` reported.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PingStats {
    /// Echo requests sent.
    pub transmitted: u32,
    /// Echo replies received.
    pub received: u32,
    /// Average round trip in milliseconds, when any reply came.
    pub avg_rtt_ms: Option<f64>,
}

/// What an iperf3 UDP test reported (receiver side, as told back to the client).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UdpRate {
    /// Received Mbit/s (UDP payload).
    pub mbps: f64,
    /// Lost datagrams in percent.
    pub loss_percent: f64,
    /// Datagrams sent per second.
    pub sent_pps: f64,
    /// Datagrams received per second.
    pub received_pps: f64,
}

impl Netns {
    /// `curl` GET of `url`; the body. Errors on connection failure, HTTP status ≥ 400 or
    /// after [`CURL_MAX_TIME`] seconds.
    pub fn curl(&self, url: &str) -> Result<String> {
        self.curl_max_time(url, CURL_MAX_TIME)
    }

    /// [`Netns::curl`] with its own `--max-time` in seconds (also the connect timeout).
    pub fn curl_max_time(&self, url: &str, seconds: u32) -> Result<String> {
        let t = seconds.to_string();
        let args = [
            "curl",
            "-sS",
            "--fail",
            "--noproxy",
            "*",
            "--connect-timeout",
            &t,
            "--max-time",
            &t,
            url,
        ];
        self.exec_timeout(&args, grace(seconds))
    }

    /// `ping -c COUNT -i 0.2 -W 1 DST`. Ok whenever ping printed its statistics, also with
    /// no reply; errors when it could not send at all (e.g. network unreachable).
    pub fn ping(&self, dst: Ipv4Addr, count: u32) -> Result<PingStats> {
        let (d, c) = (dst.to_string(), count.max(1).to_string());
        let args = ["ping", "-n", "-c", &c, "-i", "0.2", "-W", "1", &d];
        let timeout = grace(count.max(1).div_ceil(5) + 2);
        let out = self.output(&args, None, timeout)?;
        parse_ping(&out.stdout).ok_or_else(|| self.failed(&args, &out))
    }

    /// Whether two pings to `dst` get any reply.
    pub fn reachable(&self, dst: Ipv4Addr) -> bool {
        self.ping(dst, 2).is_ok_and(|s| s.received > 0)
    }

    /// `dig +short NAME A @SERVER` (1 s per try, 2 tries); the IPv4 addresses answered.
    pub fn dig(&self, name: &str, server: Ipv4Addr) -> Result<Vec<Ipv4Addr>> {
        let at = format!("@{server}");
        let args = ["dig", "+short", "+time=1", "+tries=2", &at, name, "A"];
        let out = self.exec_timeout(&args, grace(3))?;
        Ok(out.lines().filter_map(|l| l.trim().parse().ok()).collect())
    }

    /// `dig +short +ignore +bufsize=4096 NAME TXT @SERVER` over UDP only (1 s per try, 2
    /// tries), from `source` when given: the bytes of text answered (quotes and spaces
    /// between strings not counted). An answer that lost a fragment never arrives (an
    /// error); a truncated one is short.
    pub fn dig_txt_bytes(
        &self,
        name: &str,
        server: Ipv4Addr,
        source: Option<Ipv4Addr>,
    ) -> Result<usize> {
        let at = format!("@{server}");
        let mut args = vec![
            "dig",
            "+short",
            "+ignore",
            "+bufsize=4096",
            "+time=1",
            "+tries=2",
            &at,
            name,
            "TXT",
        ];
        let source = source.map(|s| s.to_string());
        if let Some(source) = &source {
            args.extend(["-b", source]);
        }
        let out = self.exec_timeout(&args, grace(3))?;
        Ok(out.chars().filter(char::is_ascii_alphanumeric).count())
    }

    /// iperf3 TCP upload for `seconds` to 203.0.113.10:5201; the receiver's Mbit/s.
    pub fn iperf3_tcp(&self, seconds: u32) -> Result<f64> {
        self.iperf3_tcp_to(SocketAddrV4::new(SERVER, IPERF_PORT), seconds)
    }

    /// [`Netns::iperf3_tcp`] to another server.
    pub fn iperf3_tcp_to(&self, server: SocketAddrV4, seconds: u32) -> Result<f64> {
        let json = self.iperf3_json(server, seconds, &[])?;
        parse_iperf3_tcp(&json)
    }

    /// iperf3 UDP upload for `seconds` at `rate_bps` bits/s (0: as fast as iperf3 can
    /// send) with `payload`-byte datagrams, to 203.0.113.10:5201.
    pub fn iperf3_udp(&self, seconds: u32, rate_bps: u64, payload: u16) -> Result<UdpRate> {
        self.iperf3_udp_to(
            SocketAddrV4::new(SERVER, IPERF_PORT),
            seconds,
            rate_bps,
            payload,
        )
    }

    /// [`Netns::iperf3_udp`] to another server.
    pub fn iperf3_udp_to(
        &self,
        server: SocketAddrV4,
        seconds: u32,
        rate_bps: u64,
        payload: u16,
    ) -> Result<UdpRate> {
        let (b, l) = (rate_bps.to_string(), payload.to_string());
        let json = self.iperf3_json(server, seconds, &["-u", "-b", &b, "-l", &l])?;
        parse_iperf3_udp(&json)
    }

    /// `iperf3 -J -c SERVER -p PORT -t SECONDS --connect-timeout 3000 EXTRA...` from this
    /// namespace: the JSON it printed. Errors carry iperf3's own message.
    pub fn iperf3_json(
        &self,
        server: SocketAddrV4,
        seconds: u32,
        extra: &[&str],
    ) -> Result<String> {
        let (host, port, t) = (
            server.ip().to_string(),
            server.port().to_string(),
            seconds.max(1).to_string(),
        );
        let mut args = vec![
            "iperf3",
            "-J",
            "-c",
            &host,
            "-p",
            &port,
            "-t",
            &t,
            "--connect-timeout",
            "3000",
        ];
        args.extend_from_slice(extra);
        let out = self.output(&args, None, grace(seconds + 10))?;
        if out.success() {
            Ok(out.stdout)
        } else {
            // iperf3 -J reports errors inside its JSON on stdout.
            let why = serde_json::from_str::<Value>(&out.stdout)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_string))
                .unwrap_or_else(|| out.stderr.trim().to_string());
            Err(Error::new(format!(
                "iperf3 to {server} from {} failed: {why}",
                self.name()
            )))
        }
    }

    /// `traceroute -n -q 1 -w 1 -m 8 DST`: per hop the address that answered, `None` for
    /// `*`.
    pub fn traceroute(&self, dst: Ipv4Addr) -> Result<Vec<Option<Ipv4Addr>>> {
        let d = dst.to_string();
        let args = ["traceroute", "-n", "-q", "1", "-w", "1", "-m", "8", &d];
        let out = self.exec_timeout(&args, grace(12))?;
        Ok(parse_traceroute(&out))
    }
}

/// A process deadline: the tool's own limit plus slack.
fn grace(seconds: u32) -> Duration {
    Duration::from_secs(u64::from(seconds) + 5)
}

/// Statistics of `ping` output (`N packets transmitted, M received` and the `rtt` line).
pub fn parse_ping(out: &str) -> Option<PingStats> {
    let line = out.lines().find(|l| l.contains("packets transmitted"))?;
    let mut nums = line
        .split(',')
        .map(|part| part.split_whitespace().next()?.parse::<u32>().ok());
    let transmitted = nums.next()??;
    let received = nums.next()??;
    let avg_rtt_ms = out
        .lines()
        .find(|l| l.starts_with("rtt") || l.starts_with("round-trip"))
        .and_then(|l| l.split('=').nth(1))
        .and_then(|v| v.trim().split('/').nth(1))
        .and_then(|v| v.parse().ok());
    Some(PingStats {
        transmitted,
        received,
        avg_rtt_ms,
    })
}

/// Hops of `traceroute -n -q 1` output: ` 1  192.168.1.1  0.05 ms` or ` 2  *`.
pub fn parse_traceroute(out: &str) -> Vec<Option<Ipv4Addr>> {
    out.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            f.next()?.parse::<u32>().ok()?;
            Some(f.next().and_then(|a| a.parse().ok()))
        })
        .collect()
}

/// iperf3's JSON; its own `error`, when it reports one, as the error.
fn json(out: &str) -> Result<Value> {
    let v: Value =
        serde_json::from_str(out).map_err(|e| Error::new(format!("iperf3 JSON: {e}")))?;
    match v["error"].as_str() {
        Some(e) => Err(Error::new(format!("iperf3: {e}"))),
        None => Ok(v),
    }
}

fn number(v: &Value, what: &str) -> Result<f64> {
    v.as_f64()
        .ok_or_else(|| Error::new(format!("iperf3 JSON lacks {what}")))
}

/// Receiver Mbit/s of `iperf3 -J` TCP output (`end.sum_received.bits_per_second`).
pub fn parse_iperf3_tcp(out: &str) -> Result<f64> {
    let v = json(out)?;
    Ok(number(
        &v["end"]["sum_received"]["bits_per_second"],
        "end.sum_received.bits_per_second",
    )? / 1e6)
}

/// [`UdpRate`] of `iperf3 -J -u` output (`end.sum_sent` and `end.sum_received`).
pub fn parse_iperf3_udp(out: &str) -> Result<UdpRate> {
    let v = json(out)?;
    let sent = &v["end"]["sum_sent"];
    let recv = &v["end"]["sum_received"];
    let sent_packets = number(&sent["packets"], "end.sum_sent.packets")?;
    let sent_secs = number(&sent["seconds"], "end.sum_sent.seconds")?;
    let packets = number(&recv["packets"], "end.sum_received.packets")?;
    let lost = number(&recv["lost_packets"], "end.sum_received.lost_packets")?;
    let secs = number(&recv["seconds"], "end.sum_received.seconds")?;
    let per_s = |n: f64, s: f64| if s > 0.0 { n / s } else { 0.0 };
    Ok(UdpRate {
        mbps: number(&recv["bits_per_second"], "end.sum_received.bits_per_second")? / 1e6,
        loss_percent: number(&recv["lost_percent"], "end.sum_received.lost_percent")?,
        sent_pps: per_s(sent_packets, sent_secs),
        received_pps: per_s(packets - lost, secs),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ping_statistics() {
        let out = "PING 10.9.0.2 (10.9.0.2) 56(84) bytes of data.\n\n--- 10.9.0.2 ping statistics ---\n3 packets transmitted, 2 received, 33% packet loss, time 405ms\nrtt min/avg/max/mdev = 0.038/0.043/0.052/0.006 ms\n";
        let s = parse_ping(out).unwrap();
        assert_eq!((s.transmitted, s.received), (3, 2));
        assert_eq!(s.avg_rtt_ms, Some(0.043));
        let none = "2 packets transmitted, 0 received, +2 errors, 100% packet loss, time 200ms\n";
        let s = parse_ping(none).unwrap();
        assert_eq!((s.transmitted, s.received, s.avg_rtt_ms), (2, 0, None));
        assert_eq!(parse_ping("connect: Network is unreachable\n"), None);
    }

    #[test]
    fn traceroute_hops() {
        let out = "traceroute to 203.0.113.10 (203.0.113.10), 8 hops max, 60 byte packets\n 1  192.168.1.1  0.046 ms\n 2  *\n 3  203.0.113.10  0.1 ms !H\n";
        assert_eq!(
            parse_traceroute(out),
            [
                Some(Ipv4Addr::new(192, 168, 1, 1)),
                None,
                Some(Ipv4Addr::new(203, 0, 113, 10))
            ]
        );
    }

    #[test]
    fn iperf3_json() {
        let tcp = r#"{"end":{"sum_sent":{"bits_per_second":2e9},"sum_received":{"bits_per_second":1.5e9}}}"#;
        assert_eq!(parse_iperf3_tcp(tcp).unwrap(), 1500.0);
        let udp = r#"{"end":{"sum_sent":{"seconds":1.0,"packets":1000,"bits_per_second":1e6},
            "sum_received":{"seconds":2.0,"packets":1000,"lost_packets":100,"lost_percent":10.0,"bits_per_second":9e5}}}"#;
        let u = parse_iperf3_udp(udp).unwrap();
        assert_eq!(u.mbps, 0.9);
        assert_eq!(u.loss_percent, 10.0);
        assert_eq!(u.sent_pps, 1000.0);
        assert_eq!(u.received_pps, 450.0);
        assert!(parse_iperf3_tcp("{}").is_err());
        let failed =
            r#"{"start":{},"end":{},"error":"unable to connect stream: Connection refused"}"#;
        let e = parse_iperf3_tcp(failed).unwrap_err().to_string();
        assert!(e.contains("unable to connect stream"), "{e}");
    }
}
