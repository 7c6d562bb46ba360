//! Tests of the prober core with injected time: a small simulator plays the network (each
//! target answers after a set delay, fails at once, or stays silent) and drives the
//! [`Prober`] the way the runner does.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use balancer::LinkState;
use proptest::prelude::*;

use super::*;

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn target(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, n)
}

/// A configuration with `targets` targets and the defaults (interval 100 ms, timeout
/// 300 ms, down after 3, up after 5, window 20).
fn config(name: &str, targets: u8) -> ProbeConfig {
    ProbeConfig::new(name, (1..=targets).map(target).collect(), Method::Icmp)
}

/// What a target does with a probe sent to it.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Behavior {
    Answer(Duration),
    Fail,
    Silent,
}

#[derive(Clone, Copy, Debug)]
enum Reply {
    Answer,
    Fail,
}

struct Sim {
    p: Prober,
    now: Duration,
    /// `[wan][target]`.
    behavior: Vec<Vec<Behavior>>,
    in_flight: BTreeMap<(Duration, u64), Reply>,
    sent: Vec<(Duration, ProbeRequest)>,
    events: Vec<Logged>,
    /// When set, `drain` records every way out of Down (other than the operator's) taken
    /// with fewer than this many consecutive good rounds.
    check_up_after: Option<u32>,
    violations: Vec<String>,
}

impl Sim {
    fn new(configs: Vec<ProbeConfig>) -> Sim {
        let behavior = configs
            .iter()
            .map(|c| vec![Behavior::Answer(ms(10)); c.targets.len()])
            .collect();
        Sim {
            p: Prober::new(configs, Duration::ZERO).expect("valid"),
            now: Duration::ZERO,
            behavior,
            in_flight: BTreeMap::new(),
            sent: Vec::new(),
            events: Vec::new(),
            check_up_after: None,
            violations: Vec::new(),
        }
    }

    fn set(&mut self, wan: usize, target: usize, b: Behavior) {
        self.behavior[wan][target] = b;
    }

    fn set_all(&mut self, wan: usize, b: Behavior) {
        for t in &mut self.behavior[wan] {
            *t = b;
        }
    }

    /// Runs the loop until `end` (inclusive).
    fn run_until(&mut self, end: Duration) {
        for _ in 0..1_000_000 {
            while let Some(req) = self.p.poll_transmit(self.now) {
                self.sent.push((self.now, req));
                match self.behavior[req.wan][req.target_index] {
                    Behavior::Answer(rtt) => {
                        self.in_flight
                            .insert((self.now + rtt, req.token), Reply::Answer);
                    }
                    Behavior::Fail => {
                        self.in_flight.insert((self.now, req.token), Reply::Fail);
                    }
                    Behavior::Silent => {}
                }
            }
            while let Some((&(at, token), &reply)) = self.in_flight.first_key_value() {
                if at > self.now {
                    break;
                }
                self.in_flight.remove(&(at, token));
                match reply {
                    Reply::Answer => self.p.on_answer(token, self.now),
                    Reply::Fail => self.p.on_failure(token, self.now),
                }
                self.drain();
            }
            self.p.handle_timeout(self.now);
            self.drain();
            let mut next = self.p.next_deadline().unwrap_or(Duration::MAX);
            if let Some(&(at, _)) = self.in_flight.keys().next() {
                next = next.min(at);
            }
            if next > end {
                self.now = end;
                return;
            }
            // A deadline already past (a round closed and the interval shortened): loop again
            // at the same time.
            self.now = self.now.max(next);
        }
        panic!("the loop did not reach {end:?}");
    }

    fn drain(&mut self) {
        while let Some(l) = self.p.poll_event() {
            if let Some(up_after) = self.check_up_after {
                let e = &l.event;
                let leaves_down = e.old == Down && matches!(e.new, Up | Degraded);
                let st = &self.p.status(self.now)[e.wan];
                if leaves_down && (st.good_rounds < up_after || !st.carrier) {
                    self.violations.push(format!("{e} with {st:?}"));
                }
            }
            self.events.push(l);
        }
    }

    fn state(&self, wan: usize) -> PublishedState {
        self.p.status(self.now)[wan].state
    }

    fn status(&self, wan: usize) -> WanStatus {
        self.p.status(self.now)[wan].clone()
    }

    /// (time, old, new, reason) of every event so far.
    fn changes(&self) -> Vec<(Duration, PublishedState, PublishedState, String)> {
        self.events
            .iter()
            .map(|l| (l.event.at, l.event.old, l.event.new, l.event.reason.clone()))
            .collect()
    }

    /// Times probes went to WAN `wan`'s target 0.
    fn send_times(&self, wan: usize) -> Vec<u64> {
        self.sent
            .iter()
            .filter(|(_, r)| r.wan == wan && r.target_index == 0)
            .map(|(t, _)| t.as_millis() as u64)
            .collect()
    }
}

use PublishedState::{Degraded, Disabled, Down, Up};

#[test]
fn down_after_failed_rounds_and_up_after_good_ones() {
    let mut s = Sim::new(vec![config("isp1", 1)]);
    s.run_until(ms(995));
    assert_eq!(s.state(0), Up);
    assert_eq!(s.status(0).good_rounds, 10);
    s.set_all(0, Behavior::Silent);
    // Rounds at 1000, 1100, 1200 fail at 1300, 1400, 1500.
    s.run_until(ms(1499));
    assert_eq!(s.state(0), Up);
    assert_eq!(s.status(0).failed_rounds, 2);
    s.run_until(ms(1500));
    assert_eq!(s.state(0), Down);
    assert_eq!(
        s.changes(),
        [(ms(1500), Up, Down, "3 consecutive failed rounds".into())]
    );
    s.run_until(ms(1995));
    s.set_all(0, Behavior::Answer(ms(10)));
    // Four good rounds, then one lost: the count starts again.
    s.run_until(ms(2395));
    assert_eq!(s.status(0).good_rounds, 4);
    s.set_all(0, Behavior::Silent);
    s.run_until(ms(2495));
    s.set_all(0, Behavior::Answer(ms(10)));
    s.run_until(ms(2900));
    assert_eq!(s.state(0), Down);
    assert_eq!(s.status(0).good_rounds, 4);
    // Rounds 2500..=2900 are good; the fifth closes at 2910.
    s.run_until(ms(2909));
    assert_eq!(s.state(0), Down);
    s.run_until(ms(2910));
    assert_eq!(s.state(0), Up);
    assert_eq!(
        s.changes()[1],
        (ms(2910), Down, Up, "5 consecutive good rounds".into())
    );
    assert_eq!(s.status(0).in_state, Duration::ZERO);
    s.run_until(ms(3910));
    assert_eq!(s.status(0).in_state, ms(1000));
}

#[test]
fn initial_down_needs_up_after_good_rounds() {
    let mut c = config("isp1", 1);
    c.initial = Initial::Down;
    let mut s = Sim::new(vec![c]);
    assert_eq!(s.state(0), Down);
    assert_eq!(s.status(0).reason, "initial state");
    s.run_until(ms(409));
    assert_eq!(s.state(0), Down);
    s.run_until(ms(410));
    assert_eq!(s.state(0), Up);
}

#[test]
fn reliability_two_of_three() {
    let mut c = config("isp1", 3);
    c.reliability = 2;
    let mut s = Sim::new(vec![c]);
    s.set(0, 2, Behavior::Silent);
    s.run_until(ms(2000));
    assert_eq!(s.state(0), Up);
    assert_eq!(s.status(0).failed_rounds, 0);
    // About a third (losses enter the window at the timeout, answers at once).
    let f = s.status(0).figures;
    assert!(f.loss_pct > 25.0 && f.loss_pct < 40.0, "{f:?}");
    s.set(0, 1, Behavior::Fail);
    s.run_until(ms(3000));
    assert_eq!(s.state(0), Down);
    assert_eq!(
        s.changes()[0].3,
        "3 consecutive failed rounds (last: 1 of 3 targets answered, 2 needed)"
    );
    s.set(0, 1, Behavior::Answer(ms(20)));
    s.run_until(ms(4000));
    assert_eq!(s.state(0), Up);
}

#[test]
fn failures_close_a_round_early() {
    let mut s = Sim::new(vec![config("isp1", 1)]);
    s.set_all(0, Behavior::Fail);
    // Each round fails as soon as its probe does: rounds at 0, 100, 200.
    s.run_until(ms(200));
    assert_eq!(s.state(0), Down);
}

#[test]
fn late_answers_count_as_lost() {
    let mut s = Sim::new(vec![config("isp1", 1)]);
    s.set_all(0, Behavior::Answer(ms(300)));
    s.run_until(ms(2000));
    assert_eq!(s.state(0), Down);
    assert_eq!(s.status(0).figures.loss_pct, 100.0);
    assert_eq!(s.status(0).figures.latency, None);
    s.set_all(0, Behavior::Answer(ms(299)));
    s.run_until(ms(3000));
    assert_eq!(s.state(0), Up);
    // An answer after its round closed changes nothing.
    let (_, first) = s.sent[0];
    let before = s.status(0);
    s.p.on_answer(first.token, s.now);
    s.p.on_failure(first.token, s.now);
    s.p.on_answer(u64::MAX, s.now);
    assert_eq!(s.status(0), before);
}

#[test]
fn degraded_and_down_by_latency() {
    let mut c = config("isp1", 1);
    c.window = 5;
    c.latency_degraded = Some(ms(100));
    c.latency_down = Some(ms(200));
    let mut s = Sim::new(vec![c]);
    s.set_all(0, Behavior::Answer(ms(150)));
    // Rounds at 0..=400 answer at 150..=550; the window is full after the fifth.
    s.run_until(ms(549));
    assert_eq!(s.state(0), Up);
    s.run_until(ms(550));
    assert_eq!(s.state(0), Degraded);
    assert_eq!(
        s.changes(),
        [(ms(550), Up, Degraded, "latency 150ms > 100ms".into())]
    );
    s.set_all(0, Behavior::Answer(ms(250)));
    s.run_until(ms(2000));
    assert_eq!(s.state(0), Down);
    assert_eq!(s.changes()[1].3, "latency 210ms > 200ms");
    // Back to 10 ms: the average falls under 200 then 100 ms, and each level needs five
    // rounds in a row.
    s.set_all(0, Behavior::Answer(ms(10)));
    s.run_until(ms(4000));
    assert_eq!(s.state(0), Up);
    let changes = s.changes();
    assert_eq!(changes[2].1, Down);
    assert_eq!(changes[2].2, Degraded);
    assert_eq!(changes[3].2, Up);
    assert_eq!(changes[3].3, "5 consecutive rounds within thresholds");
    assert!(changes[3].0 - changes[2].0 >= ms(400), "{changes:?}");
}

#[test]
fn degraded_back_up_needs_up_after_rounds_under_threshold() {
    let mut c = config("isp1", 1);
    c.window = 1;
    c.latency_degraded = Some(ms(50));
    let mut s = Sim::new(vec![c]);
    s.set_all(0, Behavior::Answer(ms(90)));
    s.run_until(ms(90));
    assert_eq!(s.state(0), Degraded);
    s.run_until(ms(195));
    s.set_all(0, Behavior::Answer(ms(10)));
    // Rounds at 200, 300, 400, 500 are under the threshold, 600 is not: stays degraded.
    s.run_until(ms(595));
    s.set_all(0, Behavior::Answer(ms(90)));
    s.run_until(ms(695));
    s.set_all(0, Behavior::Answer(ms(10)));
    s.run_until(ms(1109));
    assert_eq!(s.state(0), Degraded);
    // Rounds at 700..=1100 are: up when the fifth answers.
    s.run_until(ms(1110));
    assert_eq!(s.state(0), Up);
    assert_eq!(s.changes().len(), 2);
}

#[test]
fn degraded_and_down_by_loss() {
    let mut c = config("isp1", 2);
    c.window = 10;
    c.loss_degraded_pct = Some(20.0);
    c.loss_down_pct = Some(40.0);
    let mut s = Sim::new(vec![c]);
    // One of two targets silent: every round is good, loss 50%.
    s.set(0, 1, Behavior::Silent);
    s.run_until(ms(3000));
    assert_eq!(s.state(0), Down);
    // The first full window holds 4 losses in 10 (losses arrive at the timeout).
    assert_eq!(
        s.changes(),
        [
            (ms(600), Up, Degraded, "loss 40% > 20%".into()),
            (ms(700), Degraded, Down, "loss 50% > 40%".into()),
        ]
    );
    assert_eq!(s.status(0).failed_rounds, 0);
    // One in four probes lost (target 1 answers every other round): degraded.
    let mut c = config("isp1", 2);
    c.window = 8;
    c.loss_degraded_pct = Some(20.0);
    c.loss_down_pct = Some(40.0);
    let mut s = Sim::new(vec![c]);
    for round in 0..40u64 {
        let b = if round % 2 == 0 {
            Behavior::Silent
        } else {
            Behavior::Answer(ms(10))
        };
        s.set(0, 1, b);
        s.run_until(ms(round * 100 + 50));
    }
    assert_eq!(s.state(0), Degraded);
    assert_eq!(s.changes()[0].3, "loss 25% > 20%");
}

#[test]
fn fail_and_recover_intervals_change_when_probes_go_out() {
    let mut c = config("isp1", 1);
    c.interval = ms(1000);
    c.timeout = ms(50);
    c.fail_interval = Some(ms(100));
    c.recover_interval = Some(ms(500));
    let mut s = Sim::new(vec![c]);
    s.run_until(ms(2500));
    s.set_all(0, Behavior::Silent);
    // 3000 fails at 3050: failing, so 3100 and 3200; down at 3250; still failing.
    s.run_until(ms(3950));
    assert_eq!(s.state(0), Down);
    s.set_all(0, Behavior::Answer(ms(10)));
    // 4000 is good: recovering every 500 ms; up after the fifth good round (6000).
    s.run_until(ms(7500));
    assert_eq!(s.state(0), Up);
    assert_eq!(
        s.send_times(0),
        [
            0, 1000, 2000, 3000, 3100, 3200, 3300, 3400, 3500, 3600, 3700, 3800, 3900, 4000, 4500,
            5000, 5500, 6000, 7000
        ]
    );
    assert_eq!(
        s.changes()
            .iter()
            .map(|c| c.0.as_millis() as u64)
            .collect::<Vec<_>>(),
        [3250, 6010]
    );
}

#[test]
fn rounds_overlap_when_the_timeout_exceeds_the_interval() {
    let mut s = Sim::new(vec![config("isp1", 1)]);
    s.set_all(0, Behavior::Answer(ms(250)));
    s.run_until(ms(1000));
    assert_eq!(s.state(0), Up);
    assert_eq!(
        s.send_times(0),
        (0..=10).map(|i| i * 100).collect::<Vec<_>>()
    );
    assert_eq!(s.status(0).figures.latency, Some(ms(250)));
}

#[test]
fn carrier_loss_and_return() {
    let mut s = Sim::new(vec![config("isp1", 1)]);
    s.run_until(ms(1000));
    s.p.carrier(0, false, s.now);
    s.drain();
    assert_eq!(s.state(0), Down);
    assert_eq!(s.changes(), [(ms(1000), Up, Down, "carrier lost".into())]);
    assert!(!s.status(0).carrier);
    // Probes still answered (stale replies, a wrong carrier report): not enough.
    s.run_until(ms(2000));
    assert_eq!(s.state(0), Down);
    s.p.carrier(0, false, s.now);
    s.p.carrier(7, true, s.now);
    s.p.carrier(0, true, s.now);
    // A round starts at once; rounds from 2000 to 2400 bring the link back at 2410.
    s.run_until(ms(2409));
    assert_eq!(s.state(0), Down);
    s.run_until(ms(2410));
    assert_eq!(s.state(0), Up);
    assert_eq!(
        s.changes()[1],
        (ms(2410), Down, Up, "5 consecutive good rounds".into())
    );
    // A flap in the middle of recovery starts the count again.
    s.p.carrier(0, false, s.now);
    s.run_until(ms(2500));
    s.p.carrier(0, true, s.now);
    s.run_until(ms(2600));
    s.p.carrier(0, false, s.now);
    s.p.carrier(0, true, s.now);
    s.run_until(ms(2909));
    assert_eq!(s.state(0), Down);
    assert!(s.status(0).good_rounds < 5);
    s.run_until(ms(3100));
    assert_eq!(s.state(0), Up);
}

#[test]
fn a_wan_without_targets_is_never_probed_but_follows_its_carrier_and_the_operator() {
    let mut s = Sim::new(vec![config("isp1", 1), config("static", 0)]);
    s.run_until(ms(1000));
    assert_eq!(s.send_times(1), Vec::<u64>::new(), "no probe ever goes out");
    assert_eq!(s.state(1), Up);
    s.p.carrier(1, false, s.now);
    s.drain();
    assert_eq!(s.state(1), Down);
    s.run_until(ms(1500));
    s.p.carrier(1, true, s.now);
    s.drain();
    assert_eq!(s.state(1), Up, "the carrier alone brings it back");
    assert_eq!(s.p.set_enabled("static", false, s.now), Ok(true));
    s.drain();
    assert_eq!(s.state(1), Disabled);
    assert_eq!(s.state(0), Up, "the probed WAN is untouched");
}

#[test]
fn admin_disable_and_enable() {
    let mut s = Sim::new(vec![config("isp1", 1), config("isp2", 1)]);
    s.run_until(ms(1000));
    assert_eq!(s.p.set_enabled("isp1", false, s.now), Ok(true));
    assert_eq!(s.p.set_enabled("isp1", false, s.now), Ok(false));
    assert_eq!(
        s.p.set_enabled("nope", true, s.now),
        Err(UnknownWan("nope".into()))
    );
    s.drain();
    assert_eq!(s.state(0), Disabled);
    assert_eq!(s.state(1), Up);
    assert!(!s.status(0).enabled);
    // Probing goes on: the link fails while disabled, without an event.
    s.set_all(0, Behavior::Silent);
    s.run_until(ms(3000));
    assert_eq!(s.state(0), Disabled);
    assert_eq!(s.status(0).measured, LinkState::Down);
    assert_eq!(s.changes().len(), 1);
    assert_eq!(s.p.set_enabled("isp1", true, s.now), Ok(true));
    s.drain();
    assert_eq!(s.state(0), Down);
    assert_eq!(
        s.changes(),
        [
            (ms(1000), Up, Disabled, "disabled by operator".into()),
            (ms(3000), Disabled, Down, "enabled by operator".into()),
        ]
    );
    assert_eq!(s.changes().len(), 2);
    assert_eq!(s.events[1].event.wan, 0);
    assert_eq!(s.events[1].event.wan_name, "isp1");
    assert!(s.events[1].event.loss_pct > 50.0);
}

#[test]
fn event_ring_and_sequence_numbers() {
    let mut s = Sim::new(vec![config("isp1", 1)]);
    for i in 0..150u64 {
        let at = ms(i);
        assert_eq!(s.p.set_enabled("isp1", i % 2 == 1, at), Ok(true));
    }
    let polled: Vec<u64> = std::iter::from_fn(|| s.p.poll_event())
        .map(|l| l.seq)
        .collect();
    assert_eq!(polled, (1..=150).collect::<Vec<_>>());
    let (events, missed) = s.p.events_after(0);
    assert_eq!(events.len(), 150);
    assert_eq!(missed, 0);
    assert_eq!(events[0].event.new, Disabled);
    assert_eq!(events[1].event.reason, "enabled by operator");
    let (events, missed) = s.p.events_after(148);
    assert_eq!(events.iter().map(|l| l.seq).collect::<Vec<_>>(), [149, 150]);
    assert_eq!(missed, 0);
    assert!(s.p.events_after(150).0.is_empty());
    // Past the ring's capacity (256): the oldest are dropped and counted as missed.
    for i in 150..300u64 {
        s.p.set_enabled("isp1", i % 2 == 1, ms(i)).expect("known");
    }
    let (events, missed) = s.p.events_after(0);
    assert_eq!(events.len(), 256);
    assert_eq!(events[0].seq, 45);
    assert_eq!(missed, 44);
    assert_eq!(s.p.ring().last_seq(), 300);
}

#[test]
fn a_dead_wan_stays_down_when_its_probe_settings_change() {
    let mut s = Sim::new(vec![config("a", 1)]);
    s.set_all(0, Behavior::Silent);
    s.run_until(ms(1000));
    assert_eq!(s.state(0), Down);
    let events = s.events.len();
    let mut changed = config("a", 1);
    changed.window = 40;
    s.p.reconfigure(vec![changed], s.now).expect("valid");
    s.drain();
    assert_eq!(s.state(0), Down, "not up again at its initial state");
    assert_eq!(
        s.events.len(),
        events,
        "no event: nothing changed for the workers"
    );
    // it comes back only through good rounds
    s.set_all(0, Behavior::Answer(ms(10)));
    s.run_until(ms(2000));
    assert_eq!(s.state(0), Up);
}

#[test]
fn reconfigure_keeps_unchanged_wans() {
    let mut s = Sim::new(vec![config("a", 1), config("b", 1), config("gone", 1)]);
    s.set_all(0, Behavior::Silent);
    s.run_until(ms(1000));
    s.p.set_enabled("b", false, s.now).expect("known");
    s.drain();
    assert_eq!(s.state(0), Down);
    let a_before = s.status(0);
    let seq_before = s.p.ring().last_seq();
    let mut b = config("b", 2);
    b.initial = Initial::Down;
    let mut c = config("c", 1);
    c.initial = Initial::Down;
    // Errors change nothing.
    let bad = vec![config("a", 1), config("a", 1)];
    let err = s.p.reconfigure(bad, s.now).expect_err("duplicate");
    assert_eq!(err.field, "name");
    assert_eq!(s.p.len(), 3);
    s.p.reconfigure(vec![b, config("a", 1), c], s.now)
        .expect("valid");
    s.drain();
    assert_eq!(s.p.len(), 3);
    assert_eq!(s.p.index_of("a"), Some(1));
    assert_eq!(s.p.index_of("gone"), None);
    // a: same state, window, counters.
    assert_eq!(s.status(1), a_before);
    // b: fresh (Down at first, two targets) but still disabled: no change, no event.
    assert_eq!(s.status(0).state, Disabled);
    assert_eq!(s.status(0).measured, LinkState::Down);
    assert_eq!(s.status(0).figures.samples, 0);
    assert_eq!(s.p.config(0).map(|c| c.targets.len()), Some(2));
    // c: new.
    assert_eq!(s.status(2).state, Down);
    assert_eq!(s.p.ring().last_seq(), seq_before);
    // The ring and the sequence go on; a's events carry its new index.
    s.behavior = vec![
        vec![Behavior::Answer(ms(10)); 2],
        vec![Behavior::Answer(ms(10))],
        vec![Behavior::Answer(ms(10))],
    ];
    s.run_until(ms(2000));
    assert_eq!(s.state(1), Up);
    let last = s.events.last().expect("an event");
    assert_eq!((last.event.wan, last.event.wan_name.as_str()), (1, "a"));
    assert!(last.seq > seq_before);
    assert_eq!(s.state(2), Up);
    // A changed config that changes the published state is an event.
    s.p.set_enabled("b", true, s.now).expect("known");
    s.drain();
    assert_eq!(s.state(0), Up);
    let mut b = config("b", 1);
    b.initial = Initial::Down;
    s.p.reconfigure(vec![b, config("a", 1), config("c", 1)], s.now)
        .expect("valid");
    s.drain();
    let last = s.events.last().expect("an event");
    assert_eq!(
        (last.event.old, last.event.new, last.event.reason.as_str()),
        (Up, Down, "probe configuration changed")
    );
}

#[test]
fn invalid_configurations_are_refused() {
    let mut bad = config("isp1", 1);
    bad.reliability = 2;
    assert_eq!(
        Prober::new(vec![bad], Duration::ZERO)
            .expect_err("invalid")
            .field,
        "reliability"
    );
    let empty = Prober::new(Vec::new(), Duration::ZERO).expect("no wans is valid");
    assert!(empty.is_empty());
    assert_eq!(empty.next_deadline(), None);
}

#[test]
fn open_rounds_are_bounded() {
    let mut c = config("isp1", 1);
    c.interval = ms(1);
    c.timeout = ms(3_600_000);
    let mut s = Sim::new(vec![c]);
    s.set_all(0, Behavior::Silent);
    s.run_until(ms(1000));
    assert_eq!(s.sent.len(), MAX_OPEN_ROUNDS);
}

/// One step of a random run.
#[derive(Clone, Debug)]
enum Op {
    Advance(u16),
    Behave(usize, Behavior),
    Carrier(bool),
    Enable(bool),
    StrayAnswer(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let behavior = prop_oneof![
        (0u64..400).prop_map(|v| Behavior::Answer(ms(v))),
        Just(Behavior::Fail),
        Just(Behavior::Silent),
    ];
    prop_oneof![
        6 => (1u16..700).prop_map(Op::Advance),
        4 => (0usize..3, behavior).prop_map(|(t, b)| Op::Behave(t, b)),
        1 => any::<bool>().prop_map(Op::Carrier),
        1 => any::<bool>().prop_map(Op::Enable),
        1 => any::<u64>().prop_map(Op::StrayAnswer),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random answers, failures, timeouts, carrier flaps and admin switches never panic,
    /// the published state always agrees with the switch and the measured state, events
    /// are numbered without gaps, and a WAN never comes back from down without `up_after`
    /// consecutive good rounds. (The last is checked after every call into the prober, so
    /// without overlapping rounds one call closes at most one round and the counters seen
    /// are those the decision was made on; with overlap only the rest is checked.)
    #[test]
    fn random_runs_keep_the_invariants(
        ops in proptest::collection::vec(op(), 1..80),
        reliability in 1usize..=3,
        up_after in 1u32..6,
        down_after in 1u32..5,
        interval in 20u64..300,
        timeout_pct in 10u64..250,
    ) {
        let timeout = (interval * timeout_pct / 100).max(1);
        let mut c = config("isp1", 3);
        c.reliability = reliability;
        c.up_after = up_after;
        c.down_after = down_after;
        c.interval = ms(interval);
        c.timeout = ms(timeout);
        c.fail_interval = Some(ms(interval / 2 + 1).max(ms(timeout)));
        c.recover_interval = Some(ms(interval * 2));
        c.window = 6;
        c.latency_degraded = Some(ms(150));
        c.loss_down_pct = Some(60.0);
        let mut s = Sim::new(vec![c]);
        if timeout <= interval / 2 + 1 {
            s.check_up_after = Some(up_after);
        }
        for op in ops {
            match op {
                Op::Advance(d) => {
                    let end = s.now + ms(u64::from(d));
                    s.run_until(end);
                }
                Op::Behave(t, b) => s.set(0, t, b),
                Op::Carrier(up) => s.p.carrier(0, up, s.now),
                Op::Enable(on) => {
                    s.p.set_enabled("isp1", on, s.now).expect("known");
                }
                Op::StrayAnswer(token) => s.p.on_answer(token, s.now),
            }
            s.drain();
            prop_assert!(s.violations.is_empty(), "{:?}", s.violations);
            let st = s.status(0);
            if st.enabled {
                prop_assert_eq!(st.state, PublishedState::from(st.measured));
            } else {
                prop_assert_eq!(st.state, Disabled);
            }
            if !st.carrier {
                prop_assert_eq!(st.measured, LinkState::Down);
            }
            let seqs: Vec<u64> = s.events.iter().map(|l| l.seq).collect();
            prop_assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1));
            for l in &s.events {
                prop_assert!(l.event.old != l.event.new);
            }
        }
    }
}
