//! The demo's closing summary: what the servers saw per WAN, the failover
//! ([`super::failover`]), what the clients achieved, what fwd counted; and the problems that
//! make the demo fail.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use ctl::protocol::StatusReply;
use ctl::render::Table;

use super::failover::{failover_problems, render_failover, FailoverSummary};
use super::traffic::{TrafficResults, TCP_PORT};
use super::{DNS_RULE, DNS_WAN};
use crate::plan::{IPERF_PORT, SERVER};

/// Everything the summary reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Seconds the traffic ran.
    pub seconds: u64,
    /// Whether Ctrl-C or SIGTERM ended the run early.
    pub interrupted: bool,
    /// fwd's status at the end.
    pub status: StatusReply,
    /// HTTP connections nginx logged per WAN (index `i` is the i-th WAN of `status`).
    pub http_by_wan: Vec<u64>,
    /// DNS queries dnsmasq logged per WAN.
    pub dns_by_wan: Vec<u64>,
    /// What the clients achieved.
    pub traffic: TrafficResults,
    /// The cut and the restore of `isp0`, and what they did.
    pub failover: FailoverSummary,
}

/// Per-WAN connections and queries as the servers logged them, by source address.
pub fn by_wan(sources: &[Ipv4Addr], wans: usize) -> Vec<u64> {
    let mut counts = vec![0; wans];
    for a in sources {
        if let Some(n) = crate::plan::wan_of(*a).and_then(|i| counts.get_mut(i)) {
            *n += 1;
        }
    }
    counts
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        "-".to_string()
    } else {
        format!("{:.1}%", part as f64 * 100.0 / whole as f64)
    }
}

/// The summary as printed (every line ends with `\n`).
pub fn render_summary(s: &Summary) -> String {
    let mut out = String::new();
    let how = if s.interrupted {
        "interrupted after"
    } else {
        "after"
    };
    let _ = writeln!(out, "Summary, {how} {} s of traffic:", s.seconds);
    let _ = writeln!(
        out,
        "  New HTTP connections and DNS queries per WAN over the whole run:"
    );
    let http_total: u64 = s.http_by_wan.iter().sum();
    let weight_total: u64 = s.status.wans.iter().map(|w| u64::from(w.weight)).sum();
    let mut table = Table::new(&[
        "WAN",
        "ADDRESS",
        "WEIGHT",
        "HTTP CONNS",
        "SHARE",
        "EXPECTED",
        "DNS QUERIES",
    ])
    .right(&[2, 3, 4, 5, 6]);
    for (i, w) in s.status.wans.iter().enumerate() {
        let http = s.http_by_wan.get(i).copied().unwrap_or(0);
        table.row(vec![
            w.name.clone(),
            w.address.to_string(),
            w.weight.to_string(),
            http.to_string(),
            percent(http, http_total),
            percent(u64::from(w.weight), weight_total),
            s.dns_by_wan.get(i).copied().unwrap_or(0).to_string(),
        ]);
    }
    for line in table.render().lines() {
        let _ = writeln!(out, "    {line}");
    }
    let t = &s.traffic;
    let _ = writeln!(
        out,
        "    (from nginx's and dnsmasq's logs: the source address tells the WAN)"
    );
    if s.failover.cut_at.is_some() {
        let _ = writeln!(
            out,
            "    (isp0's share is below its weight's: it was cut for part of the run)"
        );
    }
    out += &render_failover(&s.failover);
    let _ = writeln!(out, "Clients:");
    let _ = writeln!(
        out,
        "  HTTP: {} of {} curl requests answered; DNS: {} of {} digs answered",
        t.http_ok,
        t.http_ok + t.http_failed,
        t.dns_ok,
        t.dns_ok + t.dns_failed
    );
    let u = &t.udp;
    if u.pieces == 0 {
        let _ = writeln!(
            out,
            "  iperf3 UDP to {SERVER}:{IPERF_PORT}: no piece finished"
        );
    } else {
        let _ = writeln!(
            out,
            "  iperf3 UDP to {SERVER}:{IPERF_PORT}: {} datagrams in {} piece{}{}, {} lost ({:.2}%), \
             {:.1} Mbit/s received",
            u.packets,
            u.pieces,
            if u.pieces == 1 { "" } else { "s" },
            if u.pieces_failed > 0 {
                format!(" ({} more failed)", u.pieces_failed)
            } else {
                String::new()
            },
            u.lost,
            u.loss_percent(),
            u.mbps()
        );
    }
    if !t.tcp_mbps.is_empty() {
        let avg = t.tcp_mbps.iter().sum::<f64>() / t.tcp_mbps.len() as f64;
        let _ = writeln!(
            out,
            "  TCP to {SERVER}:{TCP_PORT}: {} run{}, {avg:.0} Mbit/s on average{}",
            t.tcp_mbps.len(),
            if t.tcp_mbps.len() == 1 { "" } else { "s" },
            if t.tcp_runs_failed > 0 {
                format!(" ({} more cut short)", t.tcp_runs_failed)
            } else {
                String::new()
            }
        );
    }
    if t.http_failed > 0 || t.dns_failed > 0 || t.udp.pieces_failed > 0 || t.tcp_runs_failed > 0 {
        let _ = writeln!(
            out,
            "  (failures are expected around the cut: requests in flight on isp0 are lost or reset)"
        );
    }
    let tot = &s.status.totals;
    let _ = writeln!(
        out,
        "  fwd: {} packets forwarded, {} dropped, {} to the kernel, {} flows created",
        tot.forwarded, tot.dropped, tot.to_kernel, tot.sessions_created
    );
    out
}

/// What went wrong in a run, one sentence each (empty: the demo succeeded).
pub fn problems(s: &Summary) -> Vec<String> {
    let mut out = failover_problems(&s.failover);
    if !s.interrupted && s.failover.stream.report.is_none() {
        out.push("the UDP stream's receiver gave no report".to_string());
    }
    if s.traffic.http_ok == 0 {
        out.push("no HTTP request got through fwd".to_string());
    }
    if s.traffic.dns_ok == 0 && s.traffic.dns_failed > 0 {
        out.push("no DNS query got an answer through fwd".to_string());
    }
    for (i, w) in s.status.wans.iter().enumerate() {
        let n = s.dns_by_wan.get(i).copied().unwrap_or(0);
        if w.name != DNS_WAN && n > 0 {
            out.push(format!(
                "{n} DNS quer{} left by {} although rule `{DNS_RULE}` pins udp/53 to {DNS_WAN}",
                if n == 1 { "y" } else { "ies" },
                w.name
            ));
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::traffic::UdpTotals;
    use super::super::view::tests::snapshot;
    use super::*;

    fn summary() -> Summary {
        Summary {
            seconds: 30,
            interrupted: false,
            status: snapshot(1).status,
            http_by_wan: vec![200, 100],
            dns_by_wan: vec![0, 60],
            failover: super::super::failover::tests::sample(),
            traffic: TrafficResults {
                http_ok: 300,
                http_failed: 0,
                dns_ok: 60,
                dns_failed: 0,
                udp: UdpTotals {
                    pieces: 6,
                    pieces_failed: 0,
                    packets: 60_000,
                    lost: 6,
                    bytes: 71_992_800,
                    seconds: 30.0,
                },
                tcp_mbps: vec![190.0, 200.0],
                tcp_runs_failed: 0,
            },
        }
    }

    #[test]
    fn summary_shows_shares_per_wan() {
        let text = render_summary(&summary());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "Summary, after 30 s of traffic:");
        assert_eq!(
            lines[2],
            "    WAN   ADDRESS   WEIGHT  HTTP CONNS  SHARE  EXPECTED  DNS QUERIES"
        );
        assert_eq!(
            lines[3],
            "    isp0  10.1.0.2       2         200  66.7%     66.7%            0"
        );
        assert_eq!(
            lines[4],
            "    isp1  10.2.0.2       1         100  33.3%     33.3%           60"
        );
        assert_eq!(
            lines[7],
            "Failover: isp0's link cut at 10.0 s (in its ISP's namespace), restored at 20.0 s:"
        );
        assert!(text.contains("\nClients:\n  HTTP: 300 of 300"), "{text}");
        assert!(text.contains("HTTP: 300 of 300 curl requests answered; DNS: 60 of 60"));
        assert!(text.contains("60000 datagrams in 6 pieces, 6 lost (0.01%), 19.2 Mbit/s"));
        assert!(text.contains("2 runs, 195 Mbit/s on average"));
        assert!(text.contains("4500 packets forwarded, 2 dropped"));
        assert!(problems(&summary()).is_empty());
    }

    #[test]
    fn problems_name_what_failed() {
        let mut s = summary();
        s.dns_by_wan = vec![1, 59];
        s.traffic.http_ok = 0;
        s.interrupted = true;
        s.failover.stream.report = None;
        assert_eq!(
            problems(&s),
            [
                "no HTTP request got through fwd",
                "1 DNS query left by isp0 although rule `dns` pins udp/53 to isp1"
            ]
        );
        assert!(render_summary(&s).starts_with("Summary, interrupted after 30 s"));
        // Without Ctrl-C, a missing stream report is a problem of its own.
        s.interrupted = false;
        assert!(problems(&s).contains(&"the UDP stream's receiver gave no report".to_string()));
    }

    #[test]
    fn sources_are_counted_per_wan() {
        let a = [
            Ipv4Addr::new(10, 1, 0, 2),
            Ipv4Addr::new(10, 2, 0, 2),
            Ipv4Addr::new(10, 1, 0, 2),
            Ipv4Addr::new(192, 0, 2, 1),
            Ipv4Addr::new(10, 3, 0, 2),
        ];
        assert_eq!(by_wan(&a, 2), [2, 1]);
    }
}
