//! Human views of the replies, as `fwdctl` prints them: aligned tables, byte counts in
//! decimal units, durations in words, times in UTC. Pure functions from a reply to a `String`
//! (every line ends with `\n`, no trailing spaces), so the views are tested here and the
//! binary only prints.

use std::fmt::Write as _;

use crate::protocol::{
    Counter, CountersReply, EventList, EventRecord, ExplainReply, FlowsReply, ReloadReply, Reply,
    RulesReply, StatusReply, WanAdminResult, WanHealth,
};

/// Choices of the human view.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RenderOptions {
    /// Show counters that are zero (`fwdctl counters --all`).
    pub all_counters: bool,
}

/// Horizontal alignment of a table column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Text: padded on the right.
    Left,
    /// Numbers: padded on the left.
    Right,
}

/// A table whose columns are as wide as their widest cell, separated by two spaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    headers: Vec<String>,
    align: Vec<Align>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers, every column left-aligned.
    pub fn new(headers: &[&str]) -> Table {
        Table {
            headers: headers.iter().map(|h| (*h).to_owned()).collect(),
            align: vec![Align::Left; headers.len()],
            rows: Vec::new(),
        }
    }

    /// Right-aligns the columns at these indexes (numbers).
    pub fn right(mut self, columns: &[usize]) -> Table {
        for &c in columns {
            if let Some(a) = self.align.get_mut(c) {
                *a = Align::Right;
            }
        }
        self
    }

    /// Adds a row; missing cells are blank, extra cells are ignored.
    pub fn row(&mut self, mut cells: Vec<String>) {
        cells.resize(self.headers.len(), String::new());
        self.rows.push(cells);
    }

    /// Number of rows (headers not counted).
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True without rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The header line and every row, each ending with a newline.
    pub fn render(&self) -> String {
        let width = |cell: &String| cell.chars().count();
        let widths: Vec<usize> = (0..self.headers.len())
            .map(|c| {
                std::iter::once(&self.headers[c])
                    .chain(self.rows.iter().map(|r| &r[c]))
                    .map(width)
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for cells in std::iter::once(&self.headers).chain(&self.rows) {
            let mut line = String::new();
            for (c, cell) in cells.iter().enumerate() {
                if c > 0 {
                    line.push_str("  ");
                }
                let pad = widths[c] - width(cell);
                match self.align[c] {
                    Align::Left => {
                        line.push_str(cell);
                        line.extend(std::iter::repeat_n(' ', pad));
                    }
                    Align::Right => {
                        line.extend(std::iter::repeat_n(' ', pad));
                        line.push_str(cell);
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// A byte count in decimal units with one decimal: `999 B`, `1.2 kB`, `3.4 MB`, `5.0 GB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["kB", "MB", "GB", "TB", "PB", "EB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    // Step up while the rounded value would read 1000.0 or more.
    while value >= 999.95 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A duration in its two largest units: `42s`, `3m 07s`, `2h 05m`, `6d 3h`.
pub fn human_duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if secs < 60 {
        format!("{s}s")
    } else if secs < 3600 {
        format!("{m}m {s:02}s")
    } else if secs < 86_400 {
        format!("{h}h {m:02}m")
    } else {
        format!("{d}d {h}h")
    }
}

/// Any reply, as the matching `render_*` function shows it.
pub fn render_reply(reply: &Reply, options: RenderOptions) -> String {
    match reply {
        Reply::Status(r) => render_status(r),
        Reply::Flows(r) => render_flows(r),
        Reply::Rules(r) => render_rules(r),
        Reply::Counters(r) => render_counters(r, options.all_counters),
        Reply::Explain(r) => render_explain(r),
        Reply::Reload(r) => render_reload(r),
        Reply::Wans(r) => render_wans(r),
        Reply::WanAdmin(r) => render_wan_admin(r),
        Reply::Events(r) => render_events(r),
    }
}

/// `fwdctl status`: a summary line, the totals, then one row per WAN.
pub fn render_status(reply: &StatusReply) -> String {
    let t = &reply.totals;
    let mut out = format!(
        "fwd up {}, backend {}, {} worker{}\n",
        human_duration(reply.uptime_secs),
        reply.backend,
        reply.workers,
        plural(u64::from(reply.workers)),
    );
    let _ = writeln!(
        out,
        "flows {} of {}, forwarded {}, to kernel {}, dropped {}, sessions created {}",
        t.flows, t.max_flows, t.forwarded, t.to_kernel, t.dropped, t.sessions_created
    );
    out.push('\n');
    if reply.wans.is_empty() {
        out.push_str("no WANs configured\n");
        return out;
    }
    let mut table = Table::new(&[
        "WAN",
        "INTERFACE",
        "ADDRESS",
        "STATE",
        "TIER",
        "WEIGHT",
        "FLOWS",
        "TX PKTS",
        "TX",
        "RX PKTS",
        "RX",
    ])
    .right(&[4, 5, 6, 7, 8, 9, 10]);
    for w in &reply.wans {
        table.row(vec![
            w.name.clone(),
            w.interface.clone(),
            w.address.to_string(),
            w.state.clone(),
            w.tier.to_string(),
            w.weight.to_string(),
            w.flows.to_string(),
            w.tx_packets.to_string(),
            human_bytes(w.tx_bytes),
            w.rx_packets.to_string(),
            human_bytes(w.rx_bytes),
        ]);
    }
    out.push_str(&table.render());
    out
}

/// `fwdctl flows`: one row per flow, then how many matched.
pub fn render_flows(reply: &FlowsReply) -> String {
    if reply.flows.is_empty() {
        return if reply.total == 0 {
            "no flows\n".to_owned()
        } else {
            format!(
                "0 of {} flows shown (offset {})\n",
                reply.total, reply.offset
            )
        };
    }
    let mut table = Table::new(&[
        "PROTO",
        "INTERNAL",
        "EXTERNAL",
        "REMOTE",
        "WAN",
        "STATE",
        "RULE",
        "AGE",
        "IDLE",
        "PKTS OUT",
        "PKTS IN",
        "BYTES OUT",
        "BYTES IN",
    ])
    .right(&[7, 8, 9, 10, 11, 12]);
    for f in &reply.flows {
        table.row(vec![
            f.proto.clone(),
            f.internal.to_string(),
            f.external.to_string(),
            f.remote.to_string(),
            f.wan.clone(),
            f.state.clone(),
            f.rule.clone(),
            human_duration(f.age_secs),
            human_duration(f.idle_secs),
            f.packets_out.to_string(),
            f.packets_in.to_string(),
            human_bytes(f.bytes_out),
            human_bytes(f.bytes_in),
        ]);
    }
    let mut out = table.render();
    let shown = reply.flows.len() as u64;
    if reply.offset > 0 {
        let (first, last) = (reply.offset + 1, reply.offset + shown);
        let _ = writeln!(out, "flows {first}-{last} of {} shown", reply.total);
    } else if shown < reply.total {
        let _ = writeln!(
            out,
            "{shown} of {} flows shown (--limit and --offset show more)",
            reply.total
        );
    } else {
        let _ = writeln!(out, "{shown} flow{}", plural(shown));
    }
    out
}

/// `fwdctl rules`: the rules in evaluation order, then the port forwards.
pub fn render_rules(reply: &RulesReply) -> String {
    let mut out = policy_rules(reply);
    if !reply.forwards.is_empty() {
        let mut table =
            Table::new(&["FORWARD", "WANS", "PROTO", "PORTS", "TO", "HITS"]).right(&[5]);
        for f in &reply.forwards {
            table.row(vec![
                f.name.clone(),
                f.wans.join(","),
                f.proto.clone(),
                f.ports.clone(),
                f.to.clone(),
                f.hits.to_string(),
            ]);
        }
        out.push('\n');
        out.push_str(&table.render());
    }
    out
}

fn policy_rules(reply: &RulesReply) -> String {
    if reply.rules.is_empty() {
        return "no rules: all traffic follows the main table\n".to_owned();
    }
    let mut table = Table::new(&["#", "NAME", "MATCH", "ACTION", "STICKY", "HITS"]).right(&[0, 5]);
    for r in &reply.rules {
        table.row(vec![
            r.index.to_string(),
            r.name.clone(),
            r.matches.clone(),
            r.action.clone(),
            r.sticky_secs.map_or_else(|| "-".to_owned(), human_duration),
            r.hits.to_string(),
        ]);
    }
    table.render()
}

/// `fwdctl counters`: drops, then events; zero counters only with `all`.
pub fn render_counters(reply: &CountersReply, all: bool) -> String {
    let mut out = counter_section("DROP", &reply.drops, all);
    out.push('\n');
    out.push_str(&counter_section("EVENT", &reply.events, all));
    if !reply.device.is_empty() {
        out.push('\n');
        out.push_str(&counter_section("DEVICE", &reply.device, all));
    }
    out
}

fn counter_section(title: &str, counters: &[Counter], all: bool) -> String {
    let mut table = Table::new(&[title, "COUNT"]).right(&[1]);
    for c in counters.iter().filter(|c| all || c.value != 0) {
        table.row(vec![c.name.clone(), c.value.to_string()]);
    }
    let hidden = counters.len() - table.len();
    let note = format!(
        "{hidden} zero counter{} hidden, --all shows them",
        plural(hidden as u64)
    );
    match (table.is_empty(), hidden > 0) {
        (true, false) => format!("no {}s\n", title.to_ascii_lowercase()),
        (true, true) => format!("no {}s ({note})\n", title.to_ascii_lowercase()),
        (false, false) => table.render(),
        (false, true) => format!("{}({note})\n", table.render()),
    }
}

/// `fwdctl explain`: the decision, where it came from, and the steps.
pub fn render_explain(reply: &ExplainReply) -> String {
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
    let mut out = String::new();
    let _ = writeln!(out, "decision  {}", reply.decision);
    let _ = writeln!(out, "rule      {}", dash(&reply.rule));
    let _ = writeln!(out, "group     {}", dash(&reply.group));
    let _ = writeln!(out, "wan       {}", dash(&reply.wan));
    if !reply.reasons.is_empty() {
        out.push_str("because:\n");
        for (i, reason) in reply.reasons.iter().enumerate() {
            let _ = writeln!(out, "  {}. {reason}", i + 1);
        }
    }
    out
}

/// `fwdctl reload`: the daemon's message.
pub fn render_reload(reply: &ReloadReply) -> String {
    format!("{}\n", reply.message.trim_end())
}

/// A fractional duration, compact: `4.2s` under a minute, then `3m12s`, `2h05m`, `6d03h`
/// (whole units, truncated); `-` for a negative or non-finite value.
pub fn compact_duration(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "-".to_owned();
    }
    if secs < 59.95 {
        return format!("{secs:.1}s");
    }
    // Saturates for absurd values; truncation is what a clock shows.
    let whole = secs as u64;
    let (d, h, m, s) = (
        whole / 86_400,
        whole / 3600 % 24,
        whole / 60 % 60,
        whole % 60,
    );
    if whole < 3600 {
        format!("{m}m{s:02}s")
    } else if whole < 86_400 {
        format!("{h}h{m:02}m")
    } else {
        format!("{d}d{h:02}h")
    }
}

/// Milliseconds since the Unix epoch as a UTC time: `2026-12-01 03:14:07.123Z`.
pub fn utc_timestamp(unix_ms: u64) -> String {
    let days = unix_ms / 86_400_000;
    let in_day = unix_ms % 86_400_000;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{:03}Z",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (H. Hinnant's `civil_from_days`,
/// unsigned since the input is never before the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shift the epoch to 0000-03-01 so that leap days end each 400-year era.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March first
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// A measurement with one decimal and its unit (`12.3ms`, `0.0%`), `-` when unknown.
fn measure(value: Option<f64>, unit: &str) -> String {
    match value {
        Some(v) if v.is_finite() => format!("{v:.1}{unit}"),
        _ => "-".to_owned(),
    }
}

/// `fwdctl wan`: one row per WAN with its health.
pub fn render_wans(wans: &[WanHealth]) -> String {
    if wans.is_empty() {
        return "no WANs configured\n".to_owned();
    }
    let mut table = Table::new(&[
        "WAN", "STATE", "TIER", "WEIGHT", "LATENCY", "JITTER", "LOSS", "IN-STATE", "CARRIER",
        "FLOWS", "REASON",
    ])
    .right(&[2, 3, 4, 5, 6, 7, 9]);
    for w in wans {
        let probed = |value: Option<f64>| if w.probed { value } else { None };
        let reason = match (w.reason.is_empty(), w.probed) {
            (false, _) => w.reason.clone(),
            (true, false) => "not probed".to_owned(),
            (true, true) => "-".to_owned(),
        };
        table.row(vec![
            w.name.clone(),
            w.state.clone(),
            w.tier.to_string(),
            w.weight.to_string(),
            measure(probed(w.latency_ms), "ms"),
            measure(probed(w.jitter_ms), "ms"),
            measure(probed(w.loss_pct), "%"),
            compact_duration(w.in_state_secs),
            match w.carrier {
                Some(true) => "yes",
                Some(false) => "no",
                None => "-",
            }
            .to_owned(),
            w.flows.to_string(),
            reason,
        ]);
    }
    table.render()
}

/// `fwdctl wan enable|disable NAME`: what the command did.
pub fn render_wan_admin(result: &WanAdminResult) -> String {
    let action = if result.state == "disabled" {
        "disabled"
    } else {
        "enabled"
    };
    if result.changed {
        format!("{} {action} (state: {})\n", result.wan, result.state)
    } else {
        format!(
            "{} was already {action} (state: {})\n",
            result.wan, result.state
        )
    }
}

/// One event on one line: `2026-12-01 03:14:07.123Z #13 isp0 up -> down (reason); latency
/// 12.3ms, jitter 1.0ms, loss 40.0%`. The reason's parentheses are left out when it is empty,
/// the measurements when none is known.
pub fn render_event(event: &EventRecord) -> String {
    let mut out = format!(
        "{} #{} {} {} -> {}",
        utc_timestamp(event.unix_ms),
        event.seq,
        event.wan,
        event.old,
        event.new
    );
    if !event.reason.is_empty() {
        let _ = write!(out, " ({})", event.reason);
    }
    if event.latency_ms.is_some() || event.jitter_ms.is_some() || event.loss_pct.is_some() {
        let _ = write!(
            out,
            "; latency {}, jitter {}, loss {}",
            measure(event.latency_ms, "ms"),
            measure(event.jitter_ms, "ms"),
            measure(event.loss_pct, "%")
        );
    }
    // One line whatever the daemon put in the text fields.
    let mut line: String = out
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    line.truncate(line.trim_end().len());
    line.push('\n');
    line
}

/// The lines of one batch of events, as `fwdctl events --follow` prints each poll: a note
/// when events were dropped before they could be read, then one line per event; empty when
/// there is nothing new.
pub fn render_event_batch(list: &EventList) -> String {
    let mut out = String::new();
    if list.missed > 0 {
        let _ = writeln!(
            out,
            "({} older event{} dropped)",
            list.missed,
            if list.missed == 1 { " was" } else { "s were" }
        );
    }
    for event in &list.events {
        out.push_str(&render_event(event));
    }
    out
}

/// `fwdctl events`: [`render_event_batch`], or `no events` when there are none.
pub fn render_events(list: &EventList) -> String {
    let mut out = render_event_batch(list);
    if list.events.is_empty() {
        out.push_str("no events\n");
    }
    out
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::protocol::tests::{
        sample_events, sample_flow, sample_forward, sample_status, sample_wans,
    };
    use crate::protocol::RuleEntry;

    #[test]
    fn bytes_are_decimal_with_one_decimal() {
        for (n, s) in [
            (0, "0 B"),
            (999, "999 B"),
            (1000, "1.0 kB"),
            (1_234, "1.2 kB"),
            (999_949, "999.9 kB"),
            (999_950, "1.0 MB"),
            (1_234_567, "1.2 MB"),
            (2_345_678_901, "2.3 GB"),
            (u64::MAX, "18.4 EB"),
        ] {
            assert_eq!(human_bytes(n), s, "{n}");
        }
    }

    #[test]
    fn durations_use_two_units() {
        for (n, s) in [
            (0, "0s"),
            (59, "59s"),
            (60, "1m 00s"),
            (3599, "59m 59s"),
            (3600, "1h 00m"),
            (86_399, "23h 59m"),
            (86_400, "1d 0h"),
            (200_000, "2d 7h"),
        ] {
            assert_eq!(human_duration(n), s, "{n}");
        }
    }

    #[test]
    fn table_aligns_without_trailing_spaces() {
        let mut t = Table::new(&["NAME", "N", "NOTE"]).right(&[1]);
        t.row(vec!["é".into(), "7".into(), String::new()]);
        t.row(vec![
            "longer".into(),
            "1234".into(),
            "x".into(),
            "ignored".into(),
        ]);
        t.row(vec!["short".into()]);
        assert_eq!(
            t.render(),
            "NAME       N  NOTE\n\
             é          7\n\
             longer  1234  x\n\
             short\n"
        );
    }

    #[test]
    fn status_view() {
        let expected = "\
fwd up 1h 02m, backend tun, 4 workers
flows 812 of 262144, forwarded 350346, to kernel 42, dropped 7, sessions created 1900

WAN          INTERFACE  ADDRESS       STATE  TIER  WEIGHT  FLOWS  TX PKTS      TX  RX PKTS      RX
isp1         eth1       198.51.100.2  up        0       2    812   120345  1.2 MB   230001  2.3 GB
isp2-backup  ppp0       203.0.113.77  down      1       1      0        0     0 B        3   999 B
";
        assert_eq!(render_status(&sample_status()), expected);
        let mut empty = sample_status();
        empty.wans.clear();
        empty.workers = 1;
        assert_eq!(
            render_status(&empty),
            "fwd up 1h 02m, backend tun, 1 worker\n\
             flows 812 of 262144, forwarded 350346, to kernel 42, dropped 7, \
             sessions created 1900\n\nno WANs configured\n"
        );
    }

    #[test]
    fn flows_view() {
        let mut udp = sample_flow();
        udp.proto = "udp".into();
        udp.state = "-".into();
        udp.age_secs = 4000;
        udp.bytes_in = 0;
        let reply = FlowsReply {
            total: 5,
            offset: 0,
            flows: vec![sample_flow(), udp.clone()],
        };
        let expected = "\
PROTO  INTERNAL            EXTERNAL            REMOTE             WAN   STATE        RULE     AGE  IDLE  PKTS OUT  PKTS IN  BYTES OUT  BYTES IN
tcp    192.168.1.10:51000  198.51.100.2:40001  93.184.216.34:443  isp1  established  web   1m 05s    2s        10       12     1.5 kB   64.0 kB
udp    192.168.1.10:51000  198.51.100.2:40001  93.184.216.34:443  isp1  -            web   1h 06m    2s        10       12     1.5 kB       0 B
2 of 5 flows shown (--limit and --offset show more)
";
        assert_eq!(render_flows(&reply), expected);
        let page = FlowsReply {
            total: 5,
            offset: 2,
            flows: vec![udp],
        };
        assert!(render_flows(&page).ends_with("0 B\nflows 3-3 of 5 shown\n"));
        let all = FlowsReply {
            total: 1,
            offset: 0,
            flows: vec![sample_flow()],
        };
        assert!(render_flows(&all).ends_with("64.0 kB\n1 flow\n"));
        let none = FlowsReply {
            total: 0,
            offset: 0,
            flows: vec![],
        };
        assert_eq!(render_flows(&none), "no flows\n");
    }

    #[test]
    fn rules_view() {
        let reply = RulesReply {
            forwards: vec![],
            rules: vec![
                RuleEntry {
                    index: 1,
                    name: "dns".into(),
                    matches: "proto udp dport 53".into(),
                    action: "group balanced".into(),
                    sticky_secs: None,
                    hits: 12345,
                },
                RuleEntry {
                    index: 2,
                    name: "default".into(),
                    matches: "any".into(),
                    action: "group all".into(),
                    sticky_secs: Some(600),
                    hits: 7,
                },
            ],
        };
        let expected = "\
#  NAME     MATCH               ACTION          STICKY    HITS
1  dns      proto udp dport 53  group balanced  -        12345
2  default  any                 group all       10m 00s      7
";
        assert_eq!(render_rules(&reply), expected);
        let none = RulesReply {
            rules: vec![],
            forwards: vec![],
        };
        assert_eq!(
            render_rules(&none),
            "no rules: all traffic follows the main table\n"
        );
        let forwards = RulesReply {
            forwards: vec![sample_forward()],
            ..none
        };
        let expected = "\
no rules: all traffic follows the main table

FORWARD  WANS       PROTO  PORTS  TO               HITS
web      isp1,isp2  tcp    8080   192.168.1.10:80    42
";
        assert_eq!(render_rules(&forwards), expected);
    }

    #[test]
    fn counters_view_hides_zeros_unless_all() {
        let counter = |name: &str, value| Counter {
            name: name.into(),
            value,
        };
        let reply = CountersReply {
            drops: vec![counter("ttl_expired", 3), counter("malformed_ipv4", 0)],
            events: vec![counter("wan_down", 0)],
            device: vec![],
        };
        let expected = "\
DROP         COUNT
ttl_expired      3
(1 zero counter hidden, --all shows them)

no events (1 zero counter hidden, --all shows them)
";
        assert_eq!(render_counters(&reply, false), expected);
        let expected_all = "\
DROP            COUNT
ttl_expired         3
malformed_ipv4      0

EVENT     COUNT
wan_down      0
";
        assert_eq!(render_counters(&reply, true), expected_all);
        let options = RenderOptions { all_counters: true };
        assert_eq!(render_reply(&Reply::Counters(reply), options), expected_all);
        let empty = CountersReply {
            drops: vec![],
            events: vec![],
            device: vec![],
        };
        assert_eq!(render_counters(&empty, false), "no drops\n\nno events\n");
        let afxdp = CountersReply {
            device: vec![counter("lan0.q0.received", 12), counter("xdp.to_fwd", 0)],
            ..empty
        };
        assert_eq!(
            render_counters(&afxdp, false),
            "no drops\n\nno events\n\nDEVICE            COUNT\nlan0.q0.received     12\n\
             (1 zero counter hidden, --all shows them)\n"
        );
    }

    #[test]
    fn explain_and_reload_views() {
        let reply = ExplainReply {
            rule: Some("dns".into()),
            group: Some("balanced".into()),
            wan: Some("isp1".into()),
            decision: "nat via isp1".into(),
            reasons: vec![
                "rule dns matched (proto udp dport 53)".into(),
                "group balanced: tier 0 has isp1 up".into(),
            ],
        };
        let expected = "\
decision  nat via isp1
rule      dns
group     balanced
wan       isp1
because:
  1. rule dns matched (proto udp dport 53)
  2. group balanced: tier 0 has isp1 up
";
        assert_eq!(render_explain(&reply), expected);
        let main = ExplainReply {
            rule: None,
            group: None,
            wan: None,
            decision: "main table".into(),
            reasons: vec![],
        };
        assert_eq!(
            render_explain(&main),
            "decision  main table\nrule      -\ngroup     -\nwan       -\n"
        );
        assert_eq!(
            render_reload(&ReloadReply {
                message: "configuration reloaded\n".into()
            }),
            "configuration reloaded\n"
        );
    }

    #[test]
    fn compact_durations() {
        for (n, s) in [
            (0.0, "0.0s"),
            (4.2, "4.2s"),
            (4.25, "4.2s"),
            (59.94, "59.9s"),
            (59.96, "0m59s"),
            (60.0, "1m00s"),
            (192.9, "3m12s"),
            (3599.9, "59m59s"),
            (7530.0, "2h05m"),
            (86_399.0, "23h59m"),
            (86_400.0, "1d00h"),
            (200_000.0, "2d07h"),
            (1e30, "213503982334601d07h"),
            (-1.0, "-"),
            (f64::NAN, "-"),
            (f64::INFINITY, "-"),
        ] {
            assert_eq!(compact_duration(n), s, "{n}");
        }
    }

    #[test]
    fn utc_timestamps() {
        for (ms, s) in [
            (0, "1970-01-01 00:00:00.000Z"),
            (1_796_094_847_123, "2026-12-01 03:14:07.123Z"),
            (951_782_400_000, "2000-02-29 00:00:00.000Z"),
            (951_868_799_999, "2000-02-29 23:59:59.999Z"),
            (4_102_444_800_000, "2100-01-01 00:00:00.000Z"),
            (4_107_542_400_000, "2100-03-01 00:00:00.000Z"),
            (253_402_300_799_999, "9999-12-31 23:59:59.999Z"),
            (u64::MAX, "584556019-04-03 14:25:51.615Z"),
        ] {
            assert_eq!(utc_timestamp(ms), s, "{ms}");
        }
    }

    #[test]
    fn wans_view() {
        let expected = "\
WAN       STATE     TIER  WEIGHT  LATENCY  JITTER   LOSS  IN-STATE  CARRIER  FLOWS  REASON
isp0      up           0       2   12.3ms   1.2ms   0.0%      4.2s  yes        812  recovered: 0% loss over 10 probes
isp1-lte  degraded     1       1  187.0ms       -  35.5%     3m12s  no           3  -
dsl       disabled     0      10        -       -      -     2h05m  -            0  not probed
";
        assert_eq!(render_wans(&sample_wans()), expected);
        assert_eq!(
            render_reply(&Reply::Wans(sample_wans()), RenderOptions::default()),
            expected
        );
        assert_eq!(render_wans(&[]), "no WANs configured\n");
        // A reason given wins over `not probed`; garbage measurements show as unknown.
        let mut odd = sample_wans().remove(2);
        odd.reason = "disabled by fwdctl".into();
        odd.probed = true;
        odd.latency_ms = Some(f64::NAN);
        odd.in_state_secs = -3.0;
        assert_eq!(
            render_wans(&[odd]),
            "\
WAN  STATE     TIER  WEIGHT  LATENCY  JITTER  LOSS  IN-STATE  CARRIER  FLOWS  REASON
dsl  disabled     0      10        -       -     -         -  -            0  disabled by fwdctl
"
        );
    }

    #[test]
    fn wan_admin_view() {
        let result = |changed, state: &str| WanAdminResult {
            wan: "isp0".into(),
            changed,
            state: state.into(),
        };
        for (r, s) in [
            (
                result(true, "disabled"),
                "isp0 disabled (state: disabled)\n",
            ),
            (
                result(false, "disabled"),
                "isp0 was already disabled (state: disabled)\n",
            ),
            (result(true, "down"), "isp0 enabled (state: down)\n"),
            (
                result(false, "up"),
                "isp0 was already enabled (state: up)\n",
            ),
        ] {
            assert_eq!(render_wan_admin(&r), s);
        }
    }

    #[test]
    fn events_view() {
        let expected = "\
(2 older events were dropped)
2026-12-01 03:14:07.123Z #13 isp0 up -> down (loss 100% over 5 probes); latency -, jitter -, loss 100.0%
2026-12-01 03:15:12.000Z #14 isp0 down -> up (recovered); latency 12.3ms, jitter 1.0ms, loss 0.0%
";
        assert_eq!(render_events(&sample_events()), expected);
        assert_eq!(render_event_batch(&sample_events()), expected);
        let mut list = sample_events();
        list.missed = 1;
        list.events.truncate(1);
        list.events[0].reason = "line\nbreak\t".into();
        list.events[0].loss_pct = None;
        assert_eq!(
            render_events(&list),
            "(1 older event was dropped)\n\
             2026-12-01 03:14:07.123Z #13 isp0 up -> down (line break )\n"
        );
        list.events[0].reason.clear();
        assert_eq!(
            render_event(&list.events[0]),
            "2026-12-01 03:14:07.123Z #13 isp0 up -> down\n"
        );
        let empty = EventList {
            events: vec![],
            last_seq: 14,
            missed: 0,
        };
        assert_eq!(render_events(&empty), "no events\n");
        assert_eq!(render_event_batch(&empty), "");
        assert_eq!(
            render_reply(&Reply::Events(empty), RenderOptions::default()),
            "no events\n"
        );
    }
}
