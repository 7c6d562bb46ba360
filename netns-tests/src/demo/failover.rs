//! The demo's failover script and what it observed: when `isp0` is cut and restored
//! ([`Schedule`], [`Phase`]), fwd's WAN state changes on the run's clock ([`RunEvent`]), the
//! UDP stream's report, new HTTP connections per phase; rendered as the summary's failover
//! section ([`render_failover`]) and checked ([`failover_problems`]).
//!
//! Pure functions of fixed inputs: the demo collects, this module judges and prints. Times
//! are offsets from the start of the traffic (the run's clock), shown in seconds.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::time::Duration;

use ctl::protocol::EventRecord;
use ctl::render::Table;

use crate::plan;
use crate::stream::Report;

/// The WAN the demo cuts.
pub const CUT_WAN: &str = "isp0";
/// Its index in the plan.
pub const CUT_WAN_INDEX: usize = 0;
/// The longest receive gap of the UDP stream that still counts as a working failover.
pub const MAX_GAP: Duration = Duration::from_secs(2);

/// When the script cuts and restores [`CUT_WAN`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub cut: Duration,
    pub restore: Duration,
}

impl Schedule {
    /// For a run of `seconds`: the cut at a third, the restore at two thirds, each rounded
    /// to a whole second and kept inside the run in order (0 < cut < restore < seconds for
    /// any run of 3 s or more).
    pub fn for_run(seconds: u64) -> Schedule {
        let third = |k: u64| (seconds * k + 1) / 3;
        let cut = third(1).max(1);
        let restore = third(2).max(cut + 1);
        Schedule {
            cut: Duration::from_secs(cut),
            restore: Duration::from_secs(restore),
        }
    }

    /// When `phase` begins.
    pub fn start_of(&self, phase: Phase) -> Duration {
        match phase {
            Phase::Balancing => Duration::ZERO,
            Phase::Cut => self.cut,
            Phase::Restored => self.restore,
        }
    }
}

/// The script of the run over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Both WANs up; new connections spread over them by weight.
    Balancing,
    /// [`CUT_WAN`]'s link is down (taken down in its ISP's namespace).
    Cut,
    /// The link is up again.
    Restored,
}

impl Phase {
    /// Every phase, in order.
    pub const ALL: [Phase; 3] = [Phase::Balancing, Phase::Cut, Phase::Restored];

    /// The phase at `elapsed` into the run.
    pub fn at(elapsed: Duration, schedule: &Schedule) -> Phase {
        if elapsed >= schedule.restore {
            Phase::Restored
        } else if elapsed >= schedule.cut {
            Phase::Cut
        } else {
            Phase::Balancing
        }
    }

    /// The phase after this one.
    pub fn next(self) -> Option<Phase> {
        match self {
            Phase::Balancing => Some(Phase::Cut),
            Phase::Cut => Some(Phase::Restored),
            Phase::Restored => None,
        }
    }

    /// `balancing`, `isp0 cut`, `isp0 restored`.
    pub fn name(self) -> String {
        match self {
            Phase::Balancing => "balancing".to_string(),
            Phase::Cut => format!("{CUT_WAN} cut"),
            Phase::Restored => format!("{CUT_WAN} restored"),
        }
    }

    /// What the live view's title says: `balancing 2:1`, `isp0 cut at 10.0 s`, ... with
    /// `since`, the time the phase began.
    pub fn label(self, since: Duration) -> String {
        match self {
            Phase::Balancing => "balancing 2:1".to_string(),
            _ => format!("{} at {}", self.name(), secs(since)),
        }
    }
}

/// `10.0 s`.
pub fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// One WAN state change of fwd, on the run's clock.
#[derive(Debug, Clone, PartialEq)]
pub struct RunEvent {
    pub at: Duration,
    pub wan: String,
    pub old: String,
    pub new: String,
    pub reason: String,
}

impl RunEvent {
    /// `event` with its time as an offset from `start_unix_ms` (0 for an earlier one).
    pub fn from_record(event: &EventRecord, start_unix_ms: u64) -> RunEvent {
        RunEvent {
            at: Duration::from_millis(event.unix_ms.saturating_sub(start_unix_ms)),
            wan: event.wan.clone(),
            old: event.old.clone(),
            new: event.new.clone(),
            reason: event.reason.clone(),
        }
    }

    /// `10.0 s isp0 up -> down (carrier lost)`.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "{} {} {} -> {}",
            secs(self.at),
            self.wan,
            self.old,
            self.new
        );
        if !self.reason.is_empty() {
            let _ = write!(s, " ({})", self.reason);
        }
        s
    }
}

/// The UDP stream as the demo ran it, and what its receiver reported.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamResult {
    /// LAN host that sent.
    pub host: usize,
    pub port: u16,
    pub pps: u32,
    /// When the receiver started, on the run's clock (its report's times are from then).
    pub offset: Duration,
    /// The receiver's report; `None` if there is none (interrupted, or it failed).
    pub report: Option<Report>,
    /// Datagrams the sender says it sent.
    pub sent: Option<u64>,
}

/// New HTTP connections of one phase, per WAN (from nginx's log).
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseCount {
    pub phase: Phase,
    pub from: Duration,
    pub to: Duration,
    pub http_by_wan: Vec<u64>,
}

/// Everything the summary's failover section reports.
#[derive(Debug, Clone, PartialEq)]
pub struct FailoverSummary {
    pub schedule: Schedule,
    /// When the link was actually cut and restored (`None`: the run ended before).
    pub cut_at: Option<Duration>,
    pub restored_at: Option<Duration>,
    /// fwd's WAN state changes during the run.
    pub events: Vec<RunEvent>,
    pub stream: StreamResult,
    /// One entry per phase the run reached.
    pub phases: Vec<PhaseCount>,
    /// fwd's `tcp_resets_sent` and `flows_migrated` at the end.
    pub tcp_resets_sent: u64,
    pub flows_migrated: u64,
}

/// HTTP counts per phase from the per-WAN totals nginx had logged when each phase began
/// (`starts`: phase, time, totals; in order) and at `end` (`end_counts`). Phases the run did
/// not reach are not in `starts` and so not in the result.
pub fn per_phase(
    starts: &[(Phase, Duration, Vec<u64>)],
    end: Duration,
    end_counts: &[u64],
) -> Vec<PhaseCount> {
    let mut out = Vec::new();
    for (k, (phase, from, at_start)) in starts.iter().enumerate() {
        let (to, at_end) = match starts.get(k + 1) {
            Some((_, t, c)) => (*t, c.as_slice()),
            None => (end, end_counts),
        };
        let http_by_wan = at_end
            .iter()
            .enumerate()
            .map(|(i, n)| n.saturating_sub(at_start.get(i).copied().unwrap_or(0)))
            .collect();
        out.push(PhaseCount {
            phase: *phase,
            from: *from,
            to: to.max(*from),
            http_by_wan,
        });
    }
    out
}

impl FailoverSummary {
    /// The first time fwd saw [`CUT_WAN`] go `new` at or after `since`.
    fn first_change(&self, new: &str, since: Option<Duration>) -> Option<&RunEvent> {
        // Events are stamped in whole milliseconds, the cut on a finer clock.
        let since = since?.saturating_sub(Duration::from_millis(50));
        self.events
            .iter()
            .find(|e| e.wan == CUT_WAN && e.new == new && e.at >= since)
    }

    /// fwd's report of the cut WAN going down after the cut.
    pub fn seen_down(&self) -> Option<&RunEvent> {
        self.first_change("down", self.cut_at)
    }

    /// fwd's report of the cut WAN coming back up after the restore.
    pub fn seen_up(&self) -> Option<&RunEvent> {
        self.first_change("up", self.restored_at)
    }

    fn phase(&self, phase: Phase) -> Option<&PhaseCount> {
        self.phases.iter().find(|p| p.phase == phase)
    }
}

/// `+0.02 s` after `base`.
fn after(at: Duration, base: Duration) -> String {
    format!("{:.2} s", at.as_secs_f64() - base.as_secs_f64())
}

/// The WAN name of a source address the stream's receiver saw.
fn wan_name(addr: Ipv4Addr) -> String {
    plan::wan_of(addr).map_or_else(|| addr.to_string(), |i| format!("isp{i}"))
}

/// The summary's failover section (every line ends with `\n`).
pub fn render_failover(f: &FailoverSummary) -> String {
    let mut out = String::new();
    let Some(cut_at) = f.cut_at else {
        let _ = writeln!(
            out,
            "Failover: the run ended before {CUT_WAN}'s cut (planned at {}).",
            secs(f.schedule.cut)
        );
        return out;
    };
    let restored = f.restored_at.map_or_else(
        || "not restored before the end".to_string(),
        |r| format!("restored at {}", secs(r)),
    );
    let _ = writeln!(
        out,
        "Failover: {CUT_WAN}'s link cut at {} (in its ISP's namespace), {restored}:",
        secs(cut_at)
    );
    render_detection(&mut out, f, cut_at);
    render_stream(&mut out, f);
    render_phases(&mut out, f);
    let _ = writeln!(
        out,
        "  TCP resets fwd sent: {} (connections on a dead WAN are reset so their clients\n    \
         reconnect at once)",
        f.tcp_resets_sent
    );
    let _ = writeln!(
        out,
        "  Flows fwd migrated: {} (UDP/ICMP flows move to a live WAN on their next packet,\n    \
         and back to a better tier when it recovers)",
        f.flows_migrated
    );
    out
}

fn render_detection(out: &mut String, f: &FailoverSummary, cut_at: Duration) {
    match f.seen_down() {
        Some(e) => {
            let _ = writeln!(
                out,
                "  fwd saw {CUT_WAN} down at {}, {} after the cut: {}",
                secs(e.at),
                after(e.at, cut_at),
                if e.reason.is_empty() { "-" } else { &e.reason }
            );
        }
        None => {
            let _ = writeln!(out, "  fwd never reported {CUT_WAN} down");
        }
    }
    let Some(restored_at) = f.restored_at else {
        return;
    };
    match f.seen_up() {
        Some(e) => {
            let _ = writeln!(
                out,
                "  fwd saw {CUT_WAN} up again at {}, {} after the restore: {}",
                secs(e.at),
                after(e.at, restored_at),
                if e.reason.is_empty() { "-" } else { &e.reason }
            );
        }
        None => {
            let _ = writeln!(out, "  fwd never reported {CUT_WAN} up again");
        }
    }
}

fn render_stream(out: &mut String, f: &FailoverSummary) {
    let s = &f.stream;
    let _ = write!(
        out,
        "  UDP stream h{} -> :{} ({} pkt/s): ",
        s.host, s.port, s.pps
    );
    let Some(r) = &s.report else {
        let _ = writeln!(out, "no report from its receiver");
        return;
    };
    let sent = s.sent.unwrap_or(r.sent_at_least);
    let _ = writeln!(
        out,
        "{} of {sent} datagrams received, {} lost;",
        r.received,
        sent.saturating_sub(r.received)
    );
    let on_clock = |ms: f64| s.offset + Duration::from_secs_f64(ms.max(0.0) / 1000.0);
    let _ = writeln!(
        out,
        "    longest receive gap {:.0} ms, at {}",
        r.max_gap_ms,
        secs(on_clock(r.max_gap_at_ms))
    );
    if r.switches.is_empty() {
        let _ = writeln!(
            out,
            "    it never changed WAN (datagrams by WAN: {})",
            sources(&r.sources)
        );
    }
    for sw in &r.switches {
        let at = on_clock(sw.at_ms);
        let (to, from) = (wan_name(sw.to), wan_name(sw.from));
        let line = match (to == CUT_WAN, f.restored_at, f.cut_at) {
            (true, Some(restored), _) if at >= restored => format!(
                "it came back to {to} at {}, {} after the restore",
                secs(at),
                after(at, restored)
            ),
            (false, _, Some(cut)) if at >= cut => format!(
                "it moved from {from} to {to} at {}, {} after the cut",
                secs(at),
                after(at, cut)
            ),
            _ => format!("it moved from {from} to {to} at {}", secs(at)),
        };
        let _ = writeln!(out, "    {line}");
    }
    if let (Some(last), Some(_)) = (r.switches.last(), f.restored_at) {
        if wan_name(last.to) != CUT_WAN {
            let _ = writeln!(
                out,
                "    and stayed on {} after the restore",
                wan_name(last.to)
            );
        }
    }
}

/// `isp0 5000, isp1 10000`.
fn sources(map: &std::collections::BTreeMap<Ipv4Addr, u64>) -> String {
    let parts: Vec<String> = map
        .iter()
        .map(|(a, n)| format!("{} {n}", wan_name(*a)))
        .collect();
    if parts.is_empty() {
        "none".to_string()
    } else {
        parts.join(", ")
    }
}

fn render_phases(out: &mut String, f: &FailoverSummary) {
    let wans = f
        .phases
        .iter()
        .map(|p| p.http_by_wan.len())
        .max()
        .unwrap_or(0);
    let mut headers = vec!["PHASE".to_string(), "FROM".to_string(), "TO".to_string()];
    headers.extend((0..wans).map(|i| format!("isp{i}")));
    let header_refs: Vec<&str> = headers.iter().map(String::as_str).collect();
    let right: Vec<usize> = (1..headers.len()).collect();
    let mut table = Table::new(&header_refs).right(&right);
    for p in &f.phases {
        let mut row = vec![p.phase.name(), secs(p.from), secs(p.to)];
        row.extend(p.http_by_wan.iter().map(u64::to_string));
        table.row(row);
    }
    let _ = writeln!(
        out,
        "  New HTTP connections per phase, by WAN (nginx's log):"
    );
    for line in table.render().lines() {
        let _ = writeln!(out, "    {line}");
    }
}

/// What went wrong with the failover, one sentence each (empty: it worked).
pub fn failover_problems(f: &FailoverSummary) -> Vec<String> {
    let mut out = Vec::new();
    if f.cut_at.is_none() {
        return out;
    }
    if f.seen_down().is_none() {
        out.push(format!(
            "no failover seen: fwd never reported {CUT_WAN} down after its link was cut"
        ));
    }
    if let Some(r) = &f.stream.report {
        if r.max_gap_ms > MAX_GAP.as_secs_f64() * 1000.0 {
            out.push(format!(
                "the UDP stream's longest receive gap was {:.1} s (more than {} s)",
                r.max_gap_ms / 1000.0,
                MAX_GAP.as_secs()
            ));
        }
    }
    if f.restored_at.is_none() {
        return out;
    }
    if f.seen_up().is_none() {
        out.push(format!(
            "{CUT_WAN} never came back up after its link was restored"
        ));
    }
    let restored = f
        .phase(Phase::Restored)
        .and_then(|p| p.http_by_wan.get(CUT_WAN_INDEX).copied())
        .unwrap_or(0);
    if restored == 0 {
        out.push(format!(
            "no new connection used {CUT_WAN} after its link was restored"
        ));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;
    use crate::stream::Switch;
    use std::collections::BTreeMap;

    fn s(secs: f64) -> Duration {
        Duration::from_secs_f64(secs)
    }

    fn event(at: f64, old: &str, new: &str, reason: &str) -> RunEvent {
        RunEvent {
            at: s(at),
            wan: CUT_WAN.into(),
            old: old.into(),
            new: new.into(),
            reason: reason.into(),
        }
    }

    /// A 30 s run: cut at 10.02 s, restored at 20.01 s; the stream moved to isp1 at the cut
    /// and back to isp0 after the restore.
    pub(crate) fn sample() -> FailoverSummary {
        let isp0 = Ipv4Addr::new(10, 1, 0, 2);
        let isp1 = Ipv4Addr::new(10, 2, 0, 2);
        FailoverSummary {
            schedule: Schedule::for_run(30),
            cut_at: Some(s(10.02)),
            restored_at: Some(s(20.01)),
            events: vec![
                event(10.02, "up", "down", "carrier lost"),
                event(20.55, "down", "up", "5 good rounds"),
            ],
            stream: StreamResult {
                host: 0,
                port: 7000,
                pps: 500,
                offset: s(0.01),
                report: Some(Report {
                    received: 14_990,
                    sent_at_least: 15_000,
                    sources: BTreeMap::from([(isp0, 5_000), (isp1, 9_990)]),
                    max_gap_ms: 14.0,
                    max_gap_at_ms: 10_009.0,
                    switches: vec![
                        Switch {
                            at_ms: 10_023.0,
                            from: isp0,
                            to: isp1,
                        },
                        Switch {
                            at_ms: 20_560.0,
                            from: isp1,
                            to: isp0,
                        },
                    ],
                }),
                sent: Some(15_000),
            },
            phases: vec![
                PhaseCount {
                    phase: Phase::Balancing,
                    from: Duration::ZERO,
                    to: s(10.02),
                    http_by_wan: vec![60, 30],
                },
                PhaseCount {
                    phase: Phase::Cut,
                    from: s(10.02),
                    to: s(20.01),
                    http_by_wan: vec![0, 88],
                },
                PhaseCount {
                    phase: Phase::Restored,
                    from: s(20.01),
                    to: s(30.0),
                    http_by_wan: vec![55, 30],
                },
            ],
            tcp_resets_sent: 2,
            flows_migrated: 2,
        }
    }

    #[test]
    fn schedule_has_three_phases_for_any_run() {
        let sch = Schedule::for_run(30);
        assert_eq!((sch.cut, sch.restore), (s(10.0), s(20.0)));
        let sch = Schedule::for_run(20);
        assert_eq!((sch.cut, sch.restore), (s(7.0), s(13.0)));
        for seconds in 3..=200 {
            let sch = Schedule::for_run(seconds);
            assert!(sch.cut > Duration::ZERO, "{seconds}: {sch:?}");
            assert!(sch.cut < sch.restore, "{seconds}: {sch:?}");
            assert!(sch.restore < s(seconds as f64), "{seconds}: {sch:?}");
        }
        let sch = Schedule::for_run(30);
        assert_eq!(Phase::at(s(9.99), &sch), Phase::Balancing);
        assert_eq!(Phase::at(s(10.0), &sch), Phase::Cut);
        assert_eq!(Phase::at(s(25.0), &sch), Phase::Restored);
        for p in Phase::ALL {
            if let Some(n) = p.next() {
                assert!(sch.start_of(n) > sch.start_of(p));
            }
        }
        assert_eq!(Phase::Cut.label(s(10.04)), "isp0 cut at 10.0 s");
        assert_eq!(Phase::Restored.label(s(20.0)), "isp0 restored at 20.0 s");
        assert_eq!(Phase::Balancing.label(Duration::ZERO), "balancing 2:1");
    }

    #[test]
    fn events_are_put_on_the_run_clock() {
        let record = EventRecord {
            seq: 3,
            unix_ms: 1_000_010_020,
            wan: "isp0".into(),
            old: "up".into(),
            new: "down".into(),
            reason: "carrier lost".into(),
            latency_ms: None,
            jitter_ms: None,
            loss_pct: None,
        };
        let e = RunEvent::from_record(&record, 1_000_000_000);
        assert_eq!(e.at, s(10.02));
        assert_eq!(e.describe(), "10.0 s isp0 up -> down (carrier lost)");
        // An event stamped before the run began counts as its start.
        assert_eq!(
            RunEvent::from_record(&record, 2_000_000_000).at,
            Duration::ZERO
        );
    }

    #[test]
    fn phases_count_the_connections_logged_in_between() {
        let starts = vec![
            (Phase::Balancing, Duration::ZERO, vec![0, 0]),
            (Phase::Cut, s(10.0), vec![60, 30]),
            (Phase::Restored, s(20.0), vec![61, 120]),
        ];
        let p = per_phase(&starts, s(30.0), &[120, 150]);
        let counts: Vec<Vec<u64>> = p.iter().map(|c| c.http_by_wan.clone()).collect();
        assert_eq!(counts, [vec![60, 30], vec![1, 90], vec![59, 30]]);
        assert_eq!((p[2].from, p[2].to), (s(20.0), s(30.0)));
        // A run that ended during the cut has two phases.
        let p = per_phase(&starts[..2], s(15.0), &[60, 60]);
        assert_eq!(p.len(), 2);
        assert_eq!(p[1].http_by_wan, [0, 30]);
    }

    #[test]
    fn failover_section_tells_the_story() {
        let text = render_failover(&sample());
        let expected = "\
Failover: isp0's link cut at 10.0 s (in its ISP's namespace), restored at 20.0 s:
  fwd saw isp0 down at 10.0 s, 0.00 s after the cut: carrier lost
  fwd saw isp0 up again at 20.6 s, 0.54 s after the restore: 5 good rounds
  UDP stream h0 -> :7000 (500 pkt/s): 14990 of 15000 datagrams received, 10 lost;
    longest receive gap 14 ms, at 10.0 s
    it moved from isp0 to isp1 at 10.0 s, 0.01 s after the cut
    it came back to isp0 at 20.6 s, 0.56 s after the restore
  New HTTP connections per phase, by WAN (nginx's log):
    PHASE            FROM      TO  isp0  isp1
    balancing       0.0 s  10.0 s    60    30
    isp0 cut       10.0 s  20.0 s     0    88
    isp0 restored  20.0 s  30.0 s    55    30
  TCP resets fwd sent: 2 (connections on a dead WAN are reset so their clients
    reconnect at once)
  Flows fwd migrated: 2 (UDP/ICMP flows move to a live WAN on their next packet,
    and back to a better tier when it recovers)
";
        assert_eq!(text, expected);
        // A stream that stays where it went says so.
        let mut f = sample();
        if let Some(r) = f.stream.report.as_mut() {
            r.switches.pop();
        }
        assert!(render_failover(&f).contains("    and stayed on isp1 after the restore\n"));
        assert!(failover_problems(&sample()).is_empty());
    }

    #[test]
    fn failover_problems_name_what_did_not_happen() {
        let mut f = sample();
        f.events.clear();
        f.phases[2].http_by_wan = vec![0, 85];
        if let Some(r) = f.stream.report.as_mut() {
            r.max_gap_ms = 2500.0;
        }
        assert_eq!(
            failover_problems(&f),
            [
                "no failover seen: fwd never reported isp0 down after its link was cut",
                "the UDP stream's longest receive gap was 2.5 s (more than 2 s)",
                "isp0 never came back up after its link was restored",
                "no new connection used isp0 after its link was restored",
            ]
        );
        let text = render_failover(&f);
        assert!(text.contains("fwd never reported isp0 down\n"), "{text}");
        // An event from before the cut is not the failover.
        let mut f = sample();
        f.events = vec![event(3.0, "up", "down", "loss")];
        assert_eq!(
            failover_problems(&f).len(),
            2,
            "{:?}",
            failover_problems(&f)
        );
        // A run interrupted before the cut has nothing to judge.
        let mut f = sample();
        f.cut_at = None;
        f.restored_at = None;
        assert!(failover_problems(&f).is_empty());
        assert!(render_failover(&f).starts_with("Failover: the run ended before isp0's cut"));
    }
}
