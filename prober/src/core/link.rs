//! One WAN's state machine: when its rounds start, what their verdicts do to the measured
//! state (hysteresis and quality), carrier, and the administrative switch.
//!
//! **Rounds.** A round sends one probe to each target and is good if at least
//! `reliability` targets answer before its timeout; it closes when every probe is resolved
//! or the timeout passes. Rounds start every `interval` and may overlap; the interval is
//! `fail_interval` while failing (a failed round since the last good one, or down without
//! a good round yet) and `recover_interval` while down with at least one good round. The
//! interval in force is re-read at every decision, so a switch takes effect for the next
//! round. Verdicts are applied in the order rounds *started* (a round that closes early waits
//! for the older ones), so "consecutive" means consecutive in time. At most
//! [`MAX_OPEN_ROUNDS`] rounds are open at once; beyond that the next one waits.
//!
//! **Measured state.**
//! - Reachability: `down_after` consecutive failed rounds make the link Down; while down,
//!   `up_after` consecutive good rounds bring it back, to whatever the figures allow.
//! - Quality (over a full window, see [`super::quality`]): figures worse than the current
//!   state take the link to that level after the round at once; figures better than the
//!   current state must stay better for `up_after` consecutive rounds, and the link then
//!   moves to the worst level seen during those rounds (so Degraded → Up needs `up_after`
//!   rounds with every figure under its degraded threshold).
//! - Carrier lost: Down at once (`carrier lost`), the good-round count is reset, and only
//!   rounds that started after the carrier came back (and saw no change since) count toward
//!   the `up_after` good rounds that bring the link back. A returning carrier starts a round
//!   at once.
//!
//! **Published state** is the measured state, or `Disabled` while an operator has disabled
//! the WAN; probing goes on while disabled, so enabling publishes the current measured state.
//! Every change of the published state is an [`Event`]; nothing else is.

use std::collections::VecDeque;
use std::time::Duration;

use balancer::LinkState;

use super::config::{Initial, ProbeConfig};
use super::event::{Event, PublishedState};
use super::quality::{assess, rank};
use super::round::{CarrierStamp, Round};
use super::window::{Figures, Window};

/// Rounds open at once per WAN, at most (a timeout far above the interval would otherwise
/// pile rounds up without bound).
pub const MAX_OPEN_ROUNDS: usize = 64;

/// A WAN's state as `fwdctl` shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct WanStatus {
    /// The WAN's name.
    pub name: String,
    /// What the rest of fwd sees.
    pub state: PublishedState,
    /// What probing says, whether or not the WAN is disabled.
    pub measured: LinkState,
    /// Time since the published state last changed (or since probing of this
    /// configuration started).
    pub in_state: Duration,
    /// Why the published state last changed (`initial state` before any change).
    pub reason: String,
    /// Latency, jitter and loss over the window.
    pub figures: Figures,
    /// Consecutive good rounds (those that count toward coming back up).
    pub good_rounds: u32,
    /// Consecutive failed rounds.
    pub failed_rounds: u32,
    /// `false` while administratively disabled.
    pub enabled: bool,
    /// The device's carrier as last reported (`true` until reported otherwise).
    pub carrier: bool,
}

/// Rounds whose figures were better than the measured state, in a row.
#[derive(Clone, Debug)]
struct Recovery {
    rounds: u32,
    /// The worst level the figures called for during those rounds, and why.
    worst: LinkState,
    reason: String,
}

/// One WAN's probing state.
#[derive(Clone, Debug)]
pub(crate) struct Link {
    config: ProbeConfig,
    /// Index in the prober's configurations (events carry it).
    index: usize,
    window: Window,
    /// Open rounds and closed ones not yet applied, oldest first.
    rounds: VecDeque<Round>,
    /// Reference start of the latest round (`None`: the next round is due at once).
    last_start: Option<Duration>,
    /// Round hysteresis: `false` after `down_after` failed rounds or carrier loss, until
    /// `up_after` good rounds.
    reachable: bool,
    measured: LinkState,
    recovery: Option<Recovery>,
    good_rounds: u32,
    failed_rounds: u32,
    enabled: bool,
    carrier: bool,
    /// Bumped at every carrier change.
    carrier_epoch: u64,
    published: PublishedState,
    since: Duration,
    reason: String,
}

impl Link {
    /// A link starting at `now` in the configured initial state; its first round is due at
    /// once. `config` must be valid.
    pub fn new(config: ProbeConfig, index: usize, now: Duration) -> Link {
        let (reachable, measured) = match config.initial {
            Initial::Up => (true, LinkState::Up),
            Initial::Down => (false, LinkState::Down),
        };
        Link {
            window: Window::new(config.window, config.targets.len()),
            config,
            index,
            rounds: VecDeque::new(),
            last_start: None,
            reachable,
            measured,
            recovery: None,
            good_rounds: 0,
            failed_rounds: 0,
            enabled: true,
            carrier: true,
            carrier_epoch: 0,
            published: measured.into(),
            since: now,
            reason: "initial state".into(),
        }
    }

    pub fn config(&self) -> &ProbeConfig {
        &self.config
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn set_index(&mut self, index: usize) {
        self.index = index;
    }

    /// Takes over the operator's switch and the carrier of `old` (the same WAN under its
    /// previous configuration), and its being down; returns the event if that changes the
    /// published state from `old`'s.
    pub fn inherit(&mut self, old: &Link, now: Duration) -> Option<Event> {
        self.enabled = old.enabled;
        self.carrier = old.carrier;
        // A WAN that was down stays down until its new probes bring it up: starting it at
        // its initial state would send new flows into a dead link for `down_after` rounds.
        if !self.carrier || old.measured == LinkState::Down || !old.reachable {
            self.reachable = false;
            self.measured = LinkState::Down;
        }
        self.published = if self.enabled {
            self.measured.into()
        } else {
            PublishedState::Disabled
        };
        if self.published == old.published {
            self.since = old.since;
            self.reason.clone_from(&old.reason);
            return None;
        }
        let reason = "probe configuration changed".to_string();
        self.reason.clone_from(&reason);
        Some(self.event(old.published, reason, now))
    }

    /// The next probe to send at `now` (target index, token), starting a round if one is
    /// due; tokens are drawn from `next_token`.
    pub fn poll_transmit(&mut self, now: Duration, next_token: &mut u64) -> Option<(usize, u64)> {
        if !self.config.is_probed() {
            return None;
        }
        for round in &mut self.rounds {
            if let Some(probe) = round.take_unsent(now) {
                return Some(probe);
            }
        }
        if self.rounds.len() >= MAX_OPEN_ROUNDS || now < self.next_start() {
            return None;
        }
        self.start_round(now, next_token);
        self.rounds.back_mut()?.take_unsent(now)
    }

    /// Whether `token` belongs to one of this link's open rounds.
    pub fn owns(&self, token: u64) -> bool {
        self.rounds.iter().any(|r| r.owns(token))
    }

    /// An answer to `token` at `now` (a loss at or after its round's timeout).
    pub fn on_answer(&mut self, token: u64, now: Duration, out: &mut Vec<Event>) {
        if let Some(round) = self.rounds.iter_mut().find(|r| r.owns(token)) {
            round.answer(token, now, &mut self.window);
        }
        self.apply_closed(now, out);
    }

    /// The failure of `token` (a loss).
    pub fn on_failure(&mut self, token: u64, now: Duration, out: &mut Vec<Event>) {
        if let Some(round) = self.rounds.iter_mut().find(|r| r.owns(token)) {
            round.fail(token, &mut self.window);
        }
        self.apply_closed(now, out);
    }

    /// Closes the rounds whose timeout has passed by `now` and applies closed rounds.
    pub fn handle_timeout(&mut self, now: Duration, out: &mut Vec<Event>) {
        for round in &mut self.rounds {
            round.expire(now, &mut self.window);
        }
        self.apply_closed(now, out);
    }

    /// When this link next needs attention: a probe waiting to be sent (a time already
    /// past), the next round start, or the earliest open round's timeout.
    pub fn next_deadline(&self) -> Duration {
        let mut next = Duration::MAX;
        if self.config.is_probed() && self.rounds.len() < MAX_OPEN_ROUNDS {
            next = self.next_start();
        }
        for round in &self.rounds {
            if round.has_unsent() {
                next = next.min(round.started);
            }
            if round.verdict().is_none() {
                next = next.min(round.deadline);
            }
        }
        next
    }

    /// The device's carrier went up or down at `now`.
    pub fn set_carrier(&mut self, up: bool, now: Duration, out: &mut Vec<Event>) {
        if up == self.carrier {
            return;
        }
        self.carrier = up;
        self.carrier_epoch = self.carrier_epoch.wrapping_add(1);
        if up {
            self.last_start = None;
            if !self.config.is_probed() {
                // No rounds will vouch for it: the carrier alone decides.
                self.set_measured(
                    LinkState::Up,
                    "carrier restored (not probed)".into(),
                    now,
                    out,
                );
            }
        } else {
            self.reachable = false;
            self.good_rounds = 0;
            self.recovery = None;
            self.set_measured(LinkState::Down, "carrier lost".into(), now, out);
        }
    }

    /// Disables or enables the WAN; returns whether that changed anything.
    pub fn set_enabled(&mut self, enabled: bool, now: Duration, out: &mut Vec<Event>) -> bool {
        if enabled == self.enabled {
            return false;
        }
        self.enabled = enabled;
        if enabled {
            self.publish(self.measured.into(), "enabled by operator".into(), now, out);
        } else {
            self.publish(
                PublishedState::Disabled,
                "disabled by operator".into(),
                now,
                out,
            );
        }
        true
    }

    pub fn status(&self, now: Duration) -> WanStatus {
        WanStatus {
            name: self.config.name.clone(),
            state: self.published,
            measured: self.measured,
            in_state: now.saturating_sub(self.since),
            reason: self.reason.clone(),
            figures: self.window.figures(),
            good_rounds: self.good_rounds,
            failed_rounds: self.failed_rounds,
            enabled: self.enabled,
            carrier: self.carrier,
        }
    }

    /// The interval in force: see the module doc.
    fn current_interval(&self) -> Duration {
        if self.measured == LinkState::Down || !self.reachable {
            if self.good_rounds > 0 {
                self.config.recover_interval()
            } else {
                self.config.fail_interval()
            }
        } else if self.failed_rounds > 0 {
            self.config.fail_interval()
        } else {
            self.config.interval
        }
    }

    fn next_start(&self) -> Duration {
        match self.last_start {
            None => Duration::ZERO,
            Some(t) => t.saturating_add(self.current_interval()),
        }
    }

    fn start_round(&mut self, now: Duration, next_token: &mut u64) {
        // Keep to the schedule (no drift from the caller's latency) unless a whole interval
        // was missed, then restart the schedule from now.
        let due = self.next_start();
        let reference = if now.saturating_sub(due) < self.current_interval() {
            due
        } else {
            now
        };
        self.last_start = Some(reference);
        let tokens = (0..self.config.targets.len())
            .map(|_| {
                let token = *next_token;
                *next_token = next_token.wrapping_add(1);
                token
            })
            .collect();
        let stamp = CarrierStamp {
            up: self.carrier,
            epoch: self.carrier_epoch,
        };
        self.rounds.push_back(Round::new(
            now,
            self.config.timeout,
            self.config.reliability,
            tokens,
            stamp,
        ));
    }

    /// Applies the closed rounds at the front, oldest first.
    fn apply_closed(&mut self, now: Duration, out: &mut Vec<Event>) {
        while let Some(good) = self.rounds.front().and_then(Round::verdict) {
            let Some(round) = self.rounds.pop_front() else {
                break;
            };
            let counts = round.counts_as_good(self.carrier, self.carrier_epoch);
            self.apply_round(good, counts, round.answered(), now, out);
        }
    }

    /// Hysteresis and quality after one round (`counts`: a good verdict may count toward
    /// coming back; `answered`: targets that answered in time).
    fn apply_round(
        &mut self,
        good: bool,
        counts: bool,
        answered: usize,
        now: Duration,
        out: &mut Vec<Event>,
    ) {
        if !good {
            self.failed_rounds = self.failed_rounds.saturating_add(1);
            self.good_rounds = 0;
        } else if counts {
            self.good_rounds = self.good_rounds.saturating_add(1);
            self.failed_rounds = 0;
        }
        if !self.carrier {
            return;
        }
        let quality = assess(&self.config, &self.window.figures(), self.window.is_full());
        if !self.reachable {
            if self.good_rounds >= self.config.up_after {
                self.reachable = true;
                self.recovery = None;
                let mut reason = format!("{} consecutive good rounds", self.good_rounds);
                if quality.level != LinkState::Up {
                    reason = format!("{reason}; {}", quality.reason);
                }
                self.set_measured(quality.level, reason, now, out);
            }
            return;
        }
        if self.failed_rounds >= self.config.down_after {
            self.reachable = false;
            self.recovery = None;
            let mut reason = format!("{} consecutive failed rounds", self.failed_rounds);
            let targets = self.config.targets.len();
            if targets > 1 {
                reason = format!(
                    "{reason} (last: {answered} of {targets} targets answered, {} needed)",
                    self.config.reliability
                );
            }
            self.set_measured(LinkState::Down, reason, now, out);
            return;
        }
        let (now_rank, measured_rank) = (rank(quality.level), rank(self.measured));
        if now_rank > measured_rank {
            self.recovery = None;
            self.set_measured(quality.level, quality.reason, now, out);
        } else if now_rank < measured_rank && good && counts {
            let recovery = self.recovery.get_or_insert_with(|| Recovery {
                rounds: 0,
                worst: LinkState::Up,
                reason: String::new(),
            });
            recovery.rounds = recovery.rounds.saturating_add(1);
            if now_rank > rank(recovery.worst) {
                recovery.worst = quality.level;
                recovery.reason = quality.reason;
            }
            if recovery.rounds >= self.config.up_after {
                if let Some(Recovery { worst, reason, .. }) = self.recovery.take() {
                    let reason = if worst == LinkState::Up {
                        format!(
                            "{} consecutive rounds within thresholds",
                            self.config.up_after
                        )
                    } else {
                        reason
                    };
                    self.set_measured(worst, reason, now, out);
                }
            }
        } else {
            self.recovery = None;
        }
    }

    fn set_measured(
        &mut self,
        level: LinkState,
        reason: String,
        now: Duration,
        out: &mut Vec<Event>,
    ) {
        self.measured = level;
        if self.enabled {
            self.publish(level.into(), reason, now, out);
        }
    }

    /// Publishes `new`; an event if it differs from the published state.
    fn publish(
        &mut self,
        new: PublishedState,
        reason: String,
        now: Duration,
        out: &mut Vec<Event>,
    ) {
        if new == self.published {
            return;
        }
        let old = self.published;
        self.published = new;
        self.since = now;
        self.reason.clone_from(&reason);
        out.push(self.event(old, reason, now));
    }

    fn event(&self, old: PublishedState, reason: String, now: Duration) -> Event {
        let figures = self.window.figures();
        Event {
            at: now,
            wan: self.index,
            wan_name: self.config.name.clone(),
            old,
            new: self.published,
            reason,
            latency: figures.latency,
            jitter: figures.jitter,
            loss_pct: figures.loss_pct,
        }
    }
}
