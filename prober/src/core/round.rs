//! One probe round of one WAN: a probe to each target, each resolved once (answered,
//! failed or timed out), and the round's verdict.
//!
//! Invariants: every probe resolves at most once and pushes exactly one [`Sample`] when it
//! does; an answer at or after the round's deadline is a loss; a round has a verdict once
//! every probe is resolved or its deadline has passed, and the verdict never changes.

use std::time::Duration;

use super::window::{Sample, Window};

/// What became of one probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Resolution {
    /// Not sent yet, or sent and waiting.
    Pending,
    Answered,
    Lost,
}

/// One probe of a round.
#[derive(Clone, Debug)]
struct Probe {
    token: u64,
    /// When it was handed out for sending (`None`: not yet).
    sent_at: Option<Duration>,
    resolution: Resolution,
}

/// Whether a round counts toward bringing a link back (see [`Round::counts_as_good`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CarrierStamp {
    /// Carrier was up when the round started.
    pub up: bool,
    /// The link's carrier epoch (bumped at every carrier change) when the round started.
    pub epoch: u64,
}

/// A round in flight or closed but not yet applied.
#[derive(Clone, Debug)]
pub(crate) struct Round {
    pub started: Duration,
    /// `started + timeout`: answers from here on are losses.
    pub deadline: Duration,
    probes: Vec<Probe>,
    /// Probes `..next_unsent` have been handed out.
    next_unsent: usize,
    answered: usize,
    resolved: usize,
    /// Answers needed for a good verdict.
    reliability: usize,
    pub carrier: CarrierStamp,
    /// `Some(good)` once closed.
    verdict: Option<bool>,
}

impl Round {
    /// A round started at `now` with one probe per token (target `i` gets `tokens[i]`),
    /// good if at least `reliability` of them answer before `now + timeout`.
    pub fn new(
        now: Duration,
        timeout: Duration,
        reliability: usize,
        tokens: Vec<u64>,
        carrier: CarrierStamp,
    ) -> Round {
        Round {
            started: now,
            deadline: now.saturating_add(timeout),
            probes: tokens
                .into_iter()
                .map(|token| Probe {
                    token,
                    sent_at: None,
                    resolution: Resolution::Pending,
                })
                .collect(),
            next_unsent: 0,
            answered: 0,
            resolved: 0,
            reliability,
            carrier,
            verdict: None,
        }
    }

    /// The next probe to send, as (target index, token), marked sent at `now`.
    pub fn take_unsent(&mut self, now: Duration) -> Option<(usize, u64)> {
        if self.verdict.is_some() {
            return None;
        }
        let index = self.next_unsent;
        let probe = self.probes.get_mut(index)?;
        probe.sent_at = Some(now);
        self.next_unsent += 1;
        Some((index, probe.token))
    }

    /// Whether some probe still waits to be handed out.
    pub fn has_unsent(&self) -> bool {
        self.verdict.is_none() && self.next_unsent < self.probes.len()
    }

    /// Whether the probe with `token` belongs to this round.
    pub fn owns(&self, token: u64) -> bool {
        self.probes.iter().any(|p| p.token == token)
    }

    /// Records an answer to `token` at `now`; at or after the deadline it is a loss.
    /// Answers to unknown, unsent or already resolved probes are ignored.
    pub fn answer(&mut self, token: u64, now: Duration, window: &mut Window) {
        let in_time = now < self.deadline;
        let Some((target, probe)) = self.pending_probe(token) else {
            return;
        };
        let Some(sent_at) = probe.sent_at else { return };
        if in_time {
            probe.resolution = Resolution::Answered;
            self.answered += 1;
            window.push(Sample {
                target,
                rtt: Some(now.saturating_sub(sent_at)),
            });
        } else {
            probe.resolution = Resolution::Lost;
            window.push(Sample { target, rtt: None });
        }
        self.after_resolution();
    }

    /// Records the failure of `token` (refused, bad reply, send error): a loss.
    pub fn fail(&mut self, token: u64, window: &mut Window) {
        let Some((target, probe)) = self.pending_probe(token) else {
            return;
        };
        probe.resolution = Resolution::Lost;
        window.push(Sample { target, rtt: None });
        self.after_resolution();
    }

    /// Closes the round if its deadline has passed by `now`: every probe still pending is a
    /// loss.
    pub fn expire(&mut self, now: Duration, window: &mut Window) {
        if self.verdict.is_some() || now < self.deadline {
            return;
        }
        for (target, probe) in self.probes.iter_mut().enumerate() {
            if probe.resolution == Resolution::Pending {
                probe.resolution = Resolution::Lost;
                window.push(Sample { target, rtt: None });
            }
        }
        self.resolved = self.probes.len();
        self.verdict = Some(self.answered >= self.reliability);
    }

    /// `Some(good)` once the round is closed.
    pub fn verdict(&self) -> Option<bool> {
        self.verdict
    }

    /// Targets that answered in time.
    pub fn answered(&self) -> usize {
        self.answered
    }

    /// Whether a good verdict of this round may count toward bringing the link back: carrier
    /// was up when it started and has not changed since (`carrier_epoch`, `carrier_up` are
    /// the link's now).
    pub fn counts_as_good(&self, carrier_up: bool, carrier_epoch: u64) -> bool {
        self.carrier.up && carrier_up && self.carrier.epoch == carrier_epoch
    }

    fn pending_probe(&mut self, token: u64) -> Option<(usize, &mut Probe)> {
        if self.verdict.is_some() {
            return None;
        }
        self.probes
            .iter_mut()
            .enumerate()
            .find(|(_, p)| p.token == token && p.resolution == Resolution::Pending)
    }

    /// Counts one more resolved probe; the round closes with the last one.
    fn after_resolution(&mut self) {
        self.resolved += 1;
        if self.resolved >= self.probes.len() {
            self.verdict = Some(self.answered >= self.reliability);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    const STAMP: CarrierStamp = CarrierStamp { up: true, epoch: 0 };

    fn sent_round(targets: u64, reliability: usize) -> Round {
        let mut r = Round::new(
            ms(100),
            ms(300),
            reliability,
            (1..=targets).collect(),
            STAMP,
        );
        while r.take_unsent(ms(100)).is_some() {}
        r
    }

    #[test]
    fn answers_in_time_make_a_good_round() {
        let mut w = Window::new(10, 3);
        let mut r = sent_round(3, 2);
        r.answer(1, ms(110), &mut w);
        r.fail(2, &mut w);
        assert_eq!(r.verdict(), None);
        r.answer(3, ms(399), &mut w);
        assert_eq!(r.verdict(), Some(true));
        assert_eq!(r.answered(), 2);
        let f = w.figures();
        assert_eq!(f.samples, 3);
        // (10 + 299) / 2
        assert_eq!(f.latency, Some(Duration::from_micros(154_500)));
    }

    #[test]
    fn late_and_duplicate_answers() {
        let mut w = Window::new(10, 2);
        let mut r = sent_round(2, 1);
        r.answer(1, ms(400), &mut w); // at the deadline: lost
        r.answer(1, ms(150), &mut w); // already resolved: ignored
        r.answer(9, ms(150), &mut w); // not ours: ignored
        assert_eq!(r.verdict(), None);
        r.expire(ms(399), &mut w);
        assert_eq!(r.verdict(), None);
        r.expire(ms(400), &mut w);
        assert_eq!(r.verdict(), Some(false));
        r.answer(2, ms(150), &mut w); // closed: ignored
        assert_eq!(w.figures().samples, 2);
        assert_eq!(w.figures().loss_pct, 100.0);
    }

    #[test]
    fn unsent_probes_ignore_answers() {
        let mut w = Window::new(10, 2);
        let mut r = Round::new(ms(0), ms(300), 1, vec![5, 6], STAMP);
        assert!(r.has_unsent());
        assert_eq!(r.take_unsent(ms(1)), Some((0, 5)));
        r.answer(6, ms(2), &mut w);
        assert!(w.is_empty());
        assert_eq!(r.take_unsent(ms(1)), Some((1, 6)));
        assert!(!r.has_unsent());
        assert_eq!(r.take_unsent(ms(1)), None);
        assert!(r.owns(6) && !r.owns(7));
    }

    #[test]
    fn carrier_stamp() {
        let r = Round::new(
            ms(0),
            ms(300),
            1,
            vec![1],
            CarrierStamp { up: true, epoch: 2 },
        );
        assert!(r.counts_as_good(true, 2));
        assert!(!r.counts_as_good(false, 2));
        assert!(!r.counts_as_good(true, 3));
        let r = Round::new(
            ms(0),
            ms(300),
            1,
            vec![1],
            CarrierStamp {
                up: false,
                epoch: 2,
            },
        );
        assert!(!r.counts_as_good(true, 2));
    }
}
