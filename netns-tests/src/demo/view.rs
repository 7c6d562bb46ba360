//! The live per-WAN view: pure functions from two snapshots of fwd's status (a second apart)
//! to the lines shown, at most [`WIDTH`] columns each so a redraw in place never wraps, and
//! always the same number of lines for a given number of WANs.

use std::time::Duration;

use ctl::protocol::{Counter, StatusReply, WanHealth};

use super::{STREAM_GROUP, STREAM_HOST, STREAM_PORT, STREAM_PPS};
use ctl::render::{human_bytes, human_duration};

/// Widest line of the view (an 80-column terminal).
pub const WIDTH: usize = 79;
/// How many drop reasons the drops line names.
const NOTABLE_DROPS: usize = 3;

/// What the demo knows at one refresh: fwd's status, WAN health and drop counters, the WAN
/// of the UDP stream, and what the servers logged so far per WAN (index `i` is `isp{i}`).
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// `fwdctl status`.
    pub status: StatusReply,
    /// `fwdctl wan`: the state each WAN is in.
    pub health: Vec<WanHealth>,
    /// The WAN fwd sends the UDP stream by (`None` while it has no flow).
    pub stream_wan: Option<String>,
    /// The drop counters of `fwdctl counters`.
    pub drops: Vec<Counter>,
    /// HTTP connections nginx logged from each WAN's address.
    pub http_by_wan: Vec<u64>,
    /// DNS queries dnsmasq logged from each WAN's address.
    pub dns_by_wan: Vec<u64>,
}

/// Where in the run a view is drawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Time since the traffic started.
    pub elapsed: Duration,
    /// Planned length of the run.
    pub total: Duration,
    /// Time between the two snapshots (the divisor of every rate).
    pub interval: Duration,
    /// What the demo is doing (the phase's label).
    pub phase: String,
    /// fwd's latest WAN state change in this run, described.
    pub last_event: Option<String>,
    /// ANSI colors.
    pub color: bool,
}

/// `delta` per second over `interval` (0 for an empty interval).
pub fn per_second(delta: u64, interval: Duration) -> f64 {
    let secs = interval.as_secs_f64();
    if secs > 0.0 {
        delta as f64 / secs
    } else {
        0.0
    }
}

/// A count or rate in at most 6 characters: `0`, `950`, `1.2k`, `12.3k`, `123k`, `1.23M`.
pub fn human_count(value: f64) -> String {
    let v = value.max(0.0);
    if v < 999.5 {
        format!("{v:.0}")
    } else if v < 99_950.0 {
        format!("{:.1}k", v / 1e3)
    } else if v < 999_500.0 {
        format!("{:.0}k", v / 1e3)
    } else {
        format!("{:.2}M", v / 1e6)
    }
}

/// A byte rate in decimal units: `0 B/s`, `12.3 kB/s`, `2.5 MB/s`.
pub fn byte_rate(per_s: f64) -> String {
    format!("{}/s", human_bytes(per_s.max(0.0).round() as u64))
}

/// `text` in an ANSI style (`1` bold, `32` green, ...) when `color`, else as it is.
pub fn paint(text: &str, style: &str, color: bool) -> String {
    if color {
        format!("\x1b[{style}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// `line` cut to `width` characters, ending with `…` when cut.
pub fn fit(line: &str, width: usize) -> String {
    if line.chars().count() <= width {
        return line.to_string();
    }
    let mut cut: String = line.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

fn state_style(state: &str) -> &'static str {
    match state {
        "up" => "32",
        "degraded" => "33",
        _ => "31",
    }
}

/// The view for `cur`, with rates from `prev` to `cur`: a title line, a header, one line per
/// WAN (its state from `cur.health`), the UDP stream's WAN, fwd's latest WAN event, the
/// totals, the most notable drops. Always [`view_lines`] lines.
pub fn render_view(prev: &Snapshot, cur: &Snapshot, frame: &Frame) -> Vec<String> {
    let color = frame.color;
    let rate = |now: u64, before: u64| per_second(now.saturating_sub(before), frame.interval);
    let s = &cur.status;
    let title = format!(
        "fwd-demo {:>3}s of {}s  {}  (fwd up {}, {} worker{}, {})",
        frame.elapsed.as_secs(),
        frame.total.as_secs(),
        frame.phase,
        human_duration(s.uptime_secs),
        s.workers,
        if s.workers == 1 { "" } else { "s" },
        s.backend
    );
    let mut lines = vec![paint(&fit(&title, WIDTH), "1", color)];
    let header = format!(
        "{:<5} {:<8} {:>6} {:>5} {:>9} {:>10} {:>8} {:>10} {:>5} {:>4}",
        "WAN",
        "STATE",
        "WEIGHT",
        "FLOWS",
        "OUT pkt/s",
        "OUT B/s",
        "IN pkt/s",
        "IN B/s",
        "HTTP",
        "DNS"
    );
    lines.push(paint(&header, "1", color));
    for (i, w) in s.wans.iter().enumerate() {
        let before = prev.status.wans.iter().find(|p| p.name == w.name);
        let old = |f: fn(&ctl::protocol::WanStatus) -> u64| before.map_or(0, f);
        let state = cur
            .health
            .iter()
            .find(|h| h.name == w.name)
            .map_or(w.state.as_str(), |h| h.state.as_str());
        let state = paint(&format!("{state:<8}"), state_style(state), color);
        lines.push(format!(
            "{:<5} {state} {:>6} {:>5} {:>9} {:>10} {:>8} {:>10} {:>5} {:>4}",
            w.name,
            w.weight,
            w.flows,
            human_count(rate(w.tx_packets, old(|p| p.tx_packets))),
            byte_rate(rate(w.tx_bytes, old(|p| p.tx_bytes))),
            human_count(rate(w.rx_packets, old(|p| p.rx_packets))),
            byte_rate(rate(w.rx_bytes, old(|p| p.rx_bytes))),
            cur.http_by_wan.get(i).copied().unwrap_or(0),
            cur.dns_by_wan.get(i).copied().unwrap_or(0),
        ));
    }
    lines.push(stream_line(cur));
    lines.push(fit(
        &format!(
            "last WAN event: {}",
            frame
                .last_event
                .as_deref()
                .unwrap_or("none in this run yet")
        ),
        WIDTH,
    ));
    let (t, p) = (&s.totals, &prev.status.totals);
    let totals = format!(
        "total {} flows, {} new/s, forwarded {} pkt/s ({}), dropped {}/s ({})",
        t.flows,
        human_count(rate(t.sessions_created, p.sessions_created)),
        human_count(rate(t.forwarded, p.forwarded)),
        human_count(t.forwarded as f64),
        human_count(rate(t.dropped, p.dropped)),
        human_count(t.dropped as f64),
    );
    lines.push(fit(&totals, WIDTH));
    lines.push(drops_line(prev, cur, color));
    lines
}

/// How many lines [`render_view`] draws for `wans` WANs.
pub fn view_lines(wans: usize) -> usize {
    6 + wans
}

/// `UDP stream h0 -> :7000 (500 pkt/s, isp0-first): on isp1`.
fn stream_line(cur: &Snapshot) -> String {
    let on = cur
        .stream_wan
        .as_deref()
        .map_or_else(|| "no flow".to_string(), |w| format!("on {w}"));
    fit(
        &format!(
            "UDP stream h{STREAM_HOST} -> :{STREAM_PORT} ({STREAM_PPS} pkt/s, group {STREAM_GROUP}): {on}"
        ),
        WIDTH,
    )
}

/// `drops: none`, or the [`NOTABLE_DROPS`] largest drop counters with their growth since the
/// previous snapshot: `drops: no_session_inbound 101 (+4), tcp_not_syn 3`.
fn drops_line(prev: &Snapshot, cur: &Snapshot, color: bool) -> String {
    let mut drops: Vec<&Counter> = cur.drops.iter().filter(|c| c.value > 0).collect();
    if drops.is_empty() {
        return "drops: none".to_string();
    }
    drops.sort_by(|a, b| b.value.cmp(&a.value).then_with(|| a.name.cmp(&b.name)));
    let mut growing = false;
    let named: Vec<String> = drops
        .iter()
        .take(NOTABLE_DROPS)
        .map(|c| {
            let before = prev
                .drops
                .iter()
                .find(|p| p.name == c.name)
                .map_or(0, |p| p.value);
            let grew = c.value.saturating_sub(before);
            growing |= grew > 0;
            if grew > 0 {
                format!("{} {} (+{grew})", c.name, c.value)
            } else {
                format!("{} {}", c.name, c.value)
            }
        })
        .collect();
    let more = drops.len().saturating_sub(NOTABLE_DROPS);
    let mut line = format!("drops: {}", named.join(", "));
    if more > 0 {
        line += &format!(", {more} more");
    }
    let line = fit(&line, WIDTH);
    if growing {
        paint(&line, "33", color)
    } else {
        line
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;
    use ctl::protocol::{Totals, WanHealth, WanStatus};
    use std::net::Ipv4Addr;

    fn wan(i: u8, weight: u32, flows: u64, packets: u64, bytes: u64) -> WanStatus {
        WanStatus {
            name: format!("isp{i}"),
            interface: format!("wan{i}"),
            address: Ipv4Addr::new(10, i + 1, 0, 2),
            state: "up".into(),
            tier: 1,
            weight,
            flows,
            tx_packets: packets,
            tx_bytes: bytes,
            rx_packets: packets * 2,
            rx_bytes: bytes * 10,
        }
    }

    fn health(name: &str, state: &str) -> WanHealth {
        WanHealth {
            name: name.into(),
            state: state.into(),
            tier: 1,
            weight: 1,
            probed: true,
            method: Some("icmp".into()),
            targets: vec![Ipv4Addr::new(203, 0, 113, 10)],
            latency_ms: Some(0.1),
            jitter_ms: Some(0.0),
            loss_pct: Some(0.0),
            in_state_secs: 1.0,
            reason: String::new(),
            carrier: Some(true),
            flows: 0,
        }
    }

    pub(crate) fn snapshot(scale: u64) -> Snapshot {
        Snapshot {
            health: vec![health("isp0", "up"), health("isp1", "up")],
            stream_wan: Some("isp0".into()),
            status: StatusReply {
                uptime_secs: 3 + scale,
                workers: 2,
                backend: "tun".into(),
                wans: vec![
                    wan(0, 2, 10 * scale, 1000 * scale, 1_500_000 * scale),
                    wan(1, 1, 5 * scale, 500 * scale, 750_000 * scale),
                ],
                totals: Totals {
                    flows: 15 * scale,
                    max_flows: 262_144,
                    forwarded: 4500 * scale,
                    to_kernel: 3,
                    dropped: 2 * scale,
                    sessions_created: 20 * scale,
                },
            },
            drops: vec![
                Counter {
                    name: "ttl_expired".into(),
                    value: 0,
                },
                Counter {
                    name: "no_session_inbound".into(),
                    value: 2 * scale,
                },
            ],
            http_by_wan: vec![8 * scale, 4 * scale],
            dns_by_wan: vec![0, 3 * scale],
        }
    }

    fn frame(color: bool) -> Frame {
        Frame {
            elapsed: Duration::from_secs(12),
            total: Duration::from_secs(30),
            interval: Duration::from_millis(2000),
            phase: "balancing 2:1".into(),
            last_event: None,
            color,
        }
    }

    #[test]
    fn rates_and_counts() {
        assert_eq!(per_second(500, Duration::from_millis(500)), 1000.0);
        assert_eq!(per_second(5, Duration::ZERO), 0.0);
        assert_eq!(human_count(0.0), "0");
        assert_eq!(human_count(999.4), "999");
        assert_eq!(human_count(999.6), "1.0k");
        assert_eq!(human_count(12_345.0), "12.3k");
        assert_eq!(human_count(123_456.0), "123k");
        assert_eq!(human_count(1_234_567.0), "1.23M");
        assert_eq!(human_count(-3.0), "0");
        assert_eq!(byte_rate(0.0), "0 B/s");
        assert_eq!(byte_rate(2_500_000.0), "2.5 MB/s");
        assert_eq!(fit("abcdef", 4), "abc…");
        assert_eq!(fit("abc", 4), "abc");
        assert_eq!(paint("up", "32", true), "\x1b[32mup\x1b[0m");
        assert_eq!(paint("up", "32", false), "up");
    }

    #[test]
    fn view_shows_rates_between_two_snapshots() {
        // From scale 1 to scale 3 over 2 s: every rate is (3 - 1) * base / 2 = base per second.
        let lines = render_view(&snapshot(1), &snapshot(3), &frame(false));
        assert_eq!(lines.len(), view_lines(2), "{lines:#?}");
        assert_eq!(
            lines[0],
            "fwd-demo  12s of 30s  balancing 2:1  (fwd up 6s, 2 workers, tun)"
        );
        assert!(lines[1].starts_with("WAN   STATE    WEIGHT FLOWS OUT pkt/s"));
        assert_eq!(
            lines[2],
            "isp0  up            2    30      1.0k   1.5 MB/s     2.0k  15.0 MB/s    24    0"
        );
        assert_eq!(
            lines[3],
            "isp1  up            1    15       500 750.0 kB/s     1.0k   7.5 MB/s    12    9"
        );
        assert_eq!(
            lines[4],
            "UDP stream h0 -> :7000 (500 pkt/s, group isp0-first): on isp0"
        );
        assert_eq!(lines[5], "last WAN event: none in this run yet");
        assert_eq!(
            lines[6],
            "total 45 flows, 20 new/s, forwarded 4.5k pkt/s (13.5k), dropped 2/s (6)"
        );
        assert_eq!(lines[7], "drops: no_session_inbound 6 (+4)");
        for l in &lines {
            assert!(l.chars().count() <= WIDTH, "too wide: {l}");
            assert_eq!(l.trim_end(), l);
        }
    }

    #[test]
    fn view_in_color_keeps_its_shape_and_first_view_has_no_negative_rates() {
        let lines = render_view(&snapshot(1), &snapshot(3), &frame(true));
        assert_eq!(lines.len(), view_lines(2));
        assert!(
            lines[2].contains("\x1b[32mup      \x1b[0m"),
            "{:?}",
            lines[2]
        );
        assert!(lines[7].starts_with("\x1b[33mdrops:"), "{:?}", lines[7]);
        // Counters that went backwards (a restarted fwd) read as 0, not as huge rates.
        let lines = render_view(&snapshot(3), &snapshot(1), &frame(false));
        assert!(lines[2].contains("    0      0 B/s"), "{}", lines[2]);
        let mut quiet = snapshot(1);
        quiet.drops.clear();
        let lines = render_view(&quiet, &quiet, &frame(false));
        assert_eq!(lines[7], "drops: none");
    }

    #[test]
    fn view_shows_the_health_state_the_stream_and_the_last_event() {
        let mut cur = snapshot(3);
        cur.health[0].state = "down".into();
        cur.stream_wan = Some("isp1".into());
        let mut f = frame(true);
        f.phase = "isp0 cut at 10.0 s".into();
        f.last_event = Some("10.0 s isp0 up -> down (carrier lost)".into());
        let lines = render_view(&snapshot(1), &cur, &f);
        assert_eq!(lines.len(), view_lines(2));
        assert!(lines[0].contains("isp0 cut at 10.0 s"), "{}", lines[0]);
        // Status still says up: the health state wins, in red.
        assert!(
            lines[2].contains("\x1b[31mdown    \x1b[0m"),
            "{:?}",
            lines[2]
        );
        assert!(lines[4].ends_with(": on isp1"), "{}", lines[4]);
        assert_eq!(
            lines[5],
            "last WAN event: 10.0 s isp0 up -> down (carrier lost)"
        );
        cur.stream_wan = None;
        f.last_event = Some("x".repeat(200));
        let lines = render_view(&snapshot(1), &cur, &f);
        assert!(lines[4].ends_with(": no flow"), "{}", lines[4]);
        assert_eq!(lines[5].chars().count(), WIDTH);
    }
}
