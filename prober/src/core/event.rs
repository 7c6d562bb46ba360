//! State-change events, the ring that keeps the latest of them, and the environment of the
//! hook command.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use balancer::LinkState;

/// The state of a WAN as the rest of fwd sees it: the measured state, or `Disabled` while
/// an operator has disabled the WAN (workers then treat it as [`LinkState::Down`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PublishedState {
    /// Healthy.
    Up,
    /// Usable but over a quality threshold.
    Degraded,
    /// Not usable.
    Down,
    /// Administratively disabled (`fwdctl wan disable`).
    Disabled,
}

impl PublishedState {
    /// What the workers get: `Disabled` is `Down`.
    pub fn link_state(self) -> LinkState {
        match self {
            PublishedState::Up => LinkState::Up,
            PublishedState::Degraded => LinkState::Degraded,
            PublishedState::Down | PublishedState::Disabled => LinkState::Down,
        }
    }

    /// Lower-case name: `up`, `degraded`, `down`, `disabled`.
    pub fn as_str(self) -> &'static str {
        match self {
            PublishedState::Up => "up",
            PublishedState::Degraded => "degraded",
            PublishedState::Down => "down",
            PublishedState::Disabled => "disabled",
        }
    }
}

impl From<LinkState> for PublishedState {
    fn from(s: LinkState) -> PublishedState {
        match s {
            LinkState::Up => PublishedState::Up,
            LinkState::Degraded => PublishedState::Degraded,
            LinkState::Down => PublishedState::Down,
        }
    }
}

impl fmt::Display for PublishedState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A change of a WAN's published state.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// When it happened (the `now` of the call that produced it).
    pub at: Duration,
    /// Index of the WAN in the configurations given to the prober.
    pub wan: usize,
    /// The WAN's name.
    pub wan_name: String,
    /// The published state before.
    pub old: PublishedState,
    /// The published state after.
    pub new: PublishedState,
    /// Why, e.g. `loss 45% > 40%`, `3 consecutive failed rounds: ...`, `disabled by operator`.
    pub reason: String,
    /// Figures over the window at that moment.
    pub latency: Option<Duration>,
    /// Mean RTT difference of consecutive answers of a target, if known.
    pub jitter: Option<Duration>,
    /// Lost probes in the window, in percent.
    pub loss_pct: f64,
}

impl fmt::Display for Event {
    /// One log line: `wan isp1: up -> down (reason); latency 12.3ms, jitter 0.4ms, loss 45%`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "wan {}: {} -> {} ({}); latency {}, jitter {}, loss {}",
            self.wan_name,
            self.old,
            self.new,
            self.reason,
            fmt_opt_ms(self.latency),
            fmt_opt_ms(self.jitter),
            fmt_pct(self.loss_pct)
        )
    }
}

fn fmt_opt_ms(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".to_string(), fmt_ms)
}

/// A duration in milliseconds for messages: `250ms`, `12.3ms`.
pub fn fmt_ms(d: Duration) -> String {
    let tenths = (d.as_micros() + 50) / 100;
    if tenths.is_multiple_of(10) {
        format!("{}ms", tenths / 10)
    } else {
        format!("{}.{}ms", tenths / 10, tenths % 10)
    }
}

/// A percentage for messages: `45%`, `42.9%`.
pub fn fmt_pct(p: f64) -> String {
    let tenths = (p * 10.0).round();
    if tenths % 10.0 == 0.0 {
        format!("{}%", tenths / 10.0)
    } else {
        format!("{:.1}%", tenths / 10.0)
    }
}

/// An event with its sequence number in an [`EventRing`].
#[derive(Clone, Debug, PartialEq)]
pub struct Logged {
    /// 1 for the first event pushed, then +1 per event; never reused.
    pub seq: u64,
    /// The event itself.
    pub event: Event,
}

/// Default capacity of an [`EventRing`].
pub const DEFAULT_RING_CAPACITY: usize = 256;

/// The latest events, oldest dropped first, each with a sequence number so a follower
/// (`fwdctl events --follow`) can ask for "the events after seq N" and see gaps.
#[derive(Clone, Debug)]
pub struct EventRing {
    events: VecDeque<Logged>,
    capacity: usize,
    last_seq: u64,
}

impl Default for EventRing {
    fn default() -> EventRing {
        EventRing::new(DEFAULT_RING_CAPACITY)
    }
}

impl EventRing {
    /// An empty ring keeping the last `capacity` (≥ 1) events.
    pub fn new(capacity: usize) -> EventRing {
        let capacity = capacity.max(1);
        EventRing {
            events: VecDeque::with_capacity(capacity),
            capacity,
            last_seq: 0,
        }
    }

    /// Appends `event`, dropping the oldest if full; returns its sequence number.
    pub fn push(&mut self, event: Event) -> u64 {
        if self.events.len() == self.capacity {
            self.events.pop_front();
        }
        self.last_seq += 1;
        self.events.push_back(Logged {
            seq: self.last_seq,
            event,
        });
        self.last_seq
    }

    /// The events kept with a sequence number above `seq`, oldest first (`after(0)`: all).
    pub fn after(&self, seq: u64) -> impl Iterator<Item = &Logged> {
        // Sequence numbers are consecutive, so the start index is computed, not searched.
        let first = self.first_seq().unwrap_or(self.last_seq + 1);
        let skip = seq.saturating_add(1).saturating_sub(first);
        self.events
            .iter()
            .skip(usize::try_from(skip).unwrap_or(usize::MAX))
    }

    /// How many events after `seq` were dropped before they could be read (a follower
    /// that fell behind by more than the capacity).
    pub fn missed_after(&self, seq: u64) -> u64 {
        let first = self.first_seq().unwrap_or(self.last_seq + 1);
        first.saturating_sub(seq.saturating_add(1))
    }

    /// Sequence number of the oldest event kept.
    pub fn first_seq(&self) -> Option<u64> {
        self.events.front().map(|l| l.seq)
    }

    /// Sequence number of the latest event pushed (0 before the first).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Events kept.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether no event is kept.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Most events kept.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

/// The environment of the hook command for `event` (sequence number `seq`), which
/// happened at `unix_time` (wall clock, since the Unix epoch: the core's clock has an
/// arbitrary origin, so the caller converts). Every variable is always set; unknown
/// figures are empty strings.
///
/// | variable | value |
/// |---|---|
/// | `FWD_EVENT_SEQ` | the event's sequence number |
/// | `FWD_TIME` | Unix time in seconds with milliseconds, `1700000000.123` |
/// | `FWD_WAN` | the WAN's name |
/// | `FWD_WAN_INDEX` | its index in the configuration |
/// | `FWD_OLD_STATE`, `FWD_NEW_STATE` | `up`, `degraded`, `down` or `disabled` |
/// | `FWD_REASON` | the reason text |
/// | `FWD_LATENCY_MS`, `FWD_JITTER_MS` | milliseconds with 3 decimals, or empty |
/// | `FWD_LOSS_PCT` | loss percentage with 1 decimal |
pub fn hook_env(seq: u64, event: &Event, unix_time: Duration) -> Vec<(String, String)> {
    let ms = |d: Option<Duration>| {
        d.map_or_else(String::new, |d| {
            let micros = d.as_micros();
            format!("{}.{:03}", micros / 1000, micros % 1000)
        })
    };
    let vars = [
        ("FWD_EVENT_SEQ", seq.to_string()),
        (
            "FWD_TIME",
            format!("{}.{:03}", unix_time.as_secs(), unix_time.subsec_millis()),
        ),
        ("FWD_WAN", event.wan_name.clone()),
        ("FWD_WAN_INDEX", event.wan.to_string()),
        ("FWD_OLD_STATE", event.old.as_str().to_string()),
        ("FWD_NEW_STATE", event.new.as_str().to_string()),
        ("FWD_REASON", event.reason.clone()),
        ("FWD_LATENCY_MS", ms(event.latency)),
        ("FWD_JITTER_MS", ms(event.jitter)),
        ("FWD_LOSS_PCT", format!("{:.1}", event.loss_pct)),
    ];
    vars.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: u64) -> Event {
        Event {
            at: Duration::from_millis(n),
            wan: 1,
            wan_name: "isp2".into(),
            old: PublishedState::Up,
            new: PublishedState::Down,
            reason: format!("event {n}"),
            latency: Some(Duration::from_micros(12_345)),
            jitter: None,
            loss_pct: 45.0,
        }
    }

    #[test]
    fn ring_keeps_the_latest_with_sequence_numbers() {
        let mut r = EventRing::new(3);
        assert_eq!(r.last_seq(), 0);
        assert_eq!(r.first_seq(), None);
        assert_eq!(r.after(0).count(), 0);
        assert_eq!(r.missed_after(0), 0);
        for n in 1..=5 {
            assert_eq!(r.push(event(n)), n);
        }
        assert_eq!(r.len(), 3);
        assert_eq!(r.capacity(), 3);
        assert_eq!(r.first_seq(), Some(3));
        assert_eq!(r.last_seq(), 5);
        let seqs = |after| r.after(after).map(|l| l.seq).collect::<Vec<_>>();
        assert_eq!(seqs(0), [3, 4, 5]);
        assert_eq!(seqs(2), [3, 4, 5]);
        assert_eq!(seqs(3), [4, 5]);
        assert_eq!(seqs(4), [5]);
        assert_eq!(seqs(5), Vec::<u64>::new());
        assert_eq!(seqs(99), Vec::<u64>::new());
        assert_eq!(seqs(u64::MAX), Vec::<u64>::new());
        assert_eq!(
            r.after(3).next().map(|l| l.event.reason.as_str()),
            Some("event 4")
        );
        // A follower that read up to 1 missed event 2; one at 2 or later missed nothing.
        assert_eq!(r.missed_after(0), 2);
        assert_eq!(r.missed_after(1), 1);
        assert_eq!(r.missed_after(2), 0);
        assert_eq!(r.missed_after(5), 0);
    }

    #[test]
    fn default_ring_capacity() {
        let mut r = EventRing::default();
        for n in 0..300 {
            r.push(event(n));
        }
        assert_eq!(r.len(), DEFAULT_RING_CAPACITY);
        assert_eq!(r.first_seq(), Some(300 - 256 + 1));
    }

    #[test]
    fn hook_environment() {
        let env = hook_env(7, &event(1), Duration::from_millis(1_700_000_000_123));
        let get = |k: &str| {
            env.iter()
                .find(|(name, _)| name == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("FWD_EVENT_SEQ"), Some("7"));
        assert_eq!(get("FWD_TIME"), Some("1700000000.123"));
        assert_eq!(get("FWD_WAN"), Some("isp2"));
        assert_eq!(get("FWD_WAN_INDEX"), Some("1"));
        assert_eq!(get("FWD_OLD_STATE"), Some("up"));
        assert_eq!(get("FWD_NEW_STATE"), Some("down"));
        assert_eq!(get("FWD_REASON"), Some("event 1"));
        assert_eq!(get("FWD_LATENCY_MS"), Some("12.345"));
        assert_eq!(get("FWD_JITTER_MS"), Some(""));
        assert_eq!(get("FWD_LOSS_PCT"), Some("45.0"));
        assert_eq!(env.len(), 10);
    }

    #[test]
    fn display_and_formatting() {
        assert_eq!(
            event(1).to_string(),
            "wan isp2: up -> down (event 1); latency 12.3ms, jitter -, loss 45%"
        );
        assert_eq!(fmt_ms(Duration::from_millis(250)), "250ms");
        assert_eq!(fmt_ms(Duration::from_micros(12_345)), "12.3ms");
        assert_eq!(fmt_ms(Duration::from_micros(99_960)), "100ms");
        assert_eq!(fmt_pct(45.0), "45%");
        assert_eq!(fmt_pct(300.0 / 7.0), "42.9%");
        assert_eq!(PublishedState::Disabled.link_state(), LinkState::Down);
        assert_eq!(
            PublishedState::from(LinkState::Degraded),
            PublishedState::Degraded
        );
    }
}
