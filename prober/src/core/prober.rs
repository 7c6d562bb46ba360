//! The multi-WAN prober the daemon drives: which probes to send now, what answers and
//! timeouts do, when to wake up next, the event ring, status, and reconfiguration.
//!
//! Driving it (what `crate::run` does): at each wake-up, send every request
//! [`Prober::poll_transmit`] hands out, report answers and failures as they come
//! ([`Prober::on_answer`], [`Prober::on_failure`]), call [`Prober::handle_timeout`], drain
//! [`Prober::poll_event`], and sleep until [`Prober::next_deadline`].
//!
//! Invariants: a token is handed out once and never reused while its probe can be
//! answered; an unknown or stale token is ignored; every event is both pushed into the
//! ring (with its sequence number) and queued for [`Prober::poll_event`].

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::time::Duration;

use super::config::{ProbeConfig, ProbeConfigError};
use super::event::{Event, EventRing, Logged};
use super::link::{Link, WanStatus};

/// A probe to send now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeRequest {
    /// Index of the WAN in the configurations.
    pub wan: usize,
    /// Index of the target in the WAN's `targets`.
    pub target_index: usize,
    /// The target's address.
    pub target: Ipv4Addr,
    /// Identifies the probe in [`Prober::on_answer`] and [`Prober::on_failure`]; unique
    /// per probe.
    pub token: u64,
}

/// No WAN has this name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("no wan named {0:?}")]
pub struct UnknownWan(pub String);

/// Link-health state of every WAN.
#[derive(Debug)]
pub struct Prober {
    links: Vec<Link>,
    ring: EventRing,
    /// Events not yet taken by [`Prober::poll_event`] (at most the ring's capacity).
    pending: VecDeque<Logged>,
    next_token: u64,
}

impl Prober {
    /// A prober for `configs` (each validated; names must be unique), every WAN in its
    /// initial state at `now` with its first round due at once.
    pub fn new(configs: Vec<ProbeConfig>, now: Duration) -> Result<Prober, ProbeConfigError> {
        check_all(&configs)?;
        Ok(Prober {
            links: configs
                .into_iter()
                .enumerate()
                .map(|(i, c)| Link::new(c, i, now))
                .collect(),
            ring: EventRing::default(),
            pending: VecDeque::new(),
            next_token: 1,
        })
    }

    /// Number of WANs.
    pub fn len(&self) -> usize {
        self.links.len()
    }

    /// Whether there is no WAN.
    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
    }

    /// The configuration of WAN `wan`.
    pub fn config(&self, wan: usize) -> Option<&ProbeConfig> {
        self.links.get(wan).map(Link::config)
    }

    /// Index of the WAN named `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.links.iter().position(|l| l.name() == name)
    }

    /// The next probe due at `now`, if any; call until `None`.
    pub fn poll_transmit(&mut self, now: Duration) -> Option<ProbeRequest> {
        for (wan, link) in self.links.iter_mut().enumerate() {
            if let Some((target_index, token)) = link.poll_transmit(now, &mut self.next_token) {
                let target = link.config().targets.get(target_index).copied()?;
                return Some(ProbeRequest {
                    wan,
                    target_index,
                    target,
                    token,
                });
            }
        }
        None
    }

    /// The probe `token` was answered at `now` (a loss if its round's timeout has passed).
    pub fn on_answer(&mut self, token: u64, now: Duration) {
        let mut out = Vec::new();
        if let Some(link) = self.links.iter_mut().find(|l| l.owns(token)) {
            link.on_answer(token, now, &mut out);
        }
        self.record(out);
    }

    /// The probe `token` failed at `now` (refused where an answer was expected, a bad
    /// reply, a send error): a loss.
    pub fn on_failure(&mut self, token: u64, now: Duration) {
        let mut out = Vec::new();
        if let Some(link) = self.links.iter_mut().find(|l| l.owns(token)) {
            link.on_failure(token, now, &mut out);
        }
        self.record(out);
    }

    /// Closes the rounds whose timeout has passed by `now`.
    pub fn handle_timeout(&mut self, now: Duration) {
        let mut out = Vec::new();
        for link in &mut self.links {
            link.handle_timeout(now, &mut out);
        }
        self.record(out);
    }

    /// When to call [`Prober::poll_transmit`] and [`Prober::handle_timeout`] next (may be
    /// in the past: then at once); `None` without WANs.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.links.iter().map(Link::next_deadline).min()
    }

    /// The carrier of WAN `wan`'s device went up or down at `now` (an unknown index is
    /// ignored).
    pub fn carrier(&mut self, wan: usize, up: bool, now: Duration) {
        let mut out = Vec::new();
        if let Some(link) = self.links.get_mut(wan) {
            link.set_carrier(up, now, &mut out);
        }
        self.record(out);
    }

    /// Administratively enables or disables the WAN named `wan`; `Ok(true)` if that
    /// changed its state.
    pub fn set_enabled(
        &mut self,
        wan: &str,
        enabled: bool,
        now: Duration,
    ) -> Result<bool, UnknownWan> {
        let mut out = Vec::new();
        let link = self
            .links
            .iter_mut()
            .find(|l| l.name() == wan)
            .ok_or_else(|| UnknownWan(wan.to_string()))?;
        let changed = link.set_enabled(enabled, now, &mut out);
        self.record(out);
        Ok(changed)
    }

    /// The next event not yet taken, oldest first.
    pub fn poll_event(&mut self) -> Option<Logged> {
        self.pending.pop_front()
    }

    /// Every WAN's status at `now`, in configuration order.
    pub fn status(&self, now: Duration) -> Vec<WanStatus> {
        self.links.iter().map(|l| l.status(now)).collect()
    }

    /// The events kept with a sequence number above `seq`, and how many after `seq` were
    /// dropped from the ring before they could be read.
    pub fn events_after(&self, seq: u64) -> (Vec<Logged>, u64) {
        (
            self.ring.after(seq).cloned().collect(),
            self.ring.missed_after(seq),
        )
    }

    /// The event ring.
    pub fn ring(&self) -> &EventRing {
        &self.ring
    }

    /// Replaces the configurations. A WAN whose name and configuration are unchanged keeps
    /// its state, window, counters and rounds in flight (only its index may change); a
    /// changed one starts afresh in its initial state but keeps the operator's switch and
    /// the carrier (an event, `probe configuration changed`, if that changes its published
    /// state); a new one starts afresh; a removed one is forgotten, and answers to its
    /// probes are ignored. The event ring is kept. On error nothing changes.
    pub fn reconfigure(
        &mut self,
        configs: Vec<ProbeConfig>,
        now: Duration,
    ) -> Result<(), ProbeConfigError> {
        check_all(&configs)?;
        let mut old: Vec<Option<Link>> = std::mem::take(&mut self.links)
            .into_iter()
            .map(Some)
            .collect();
        let mut out = Vec::new();
        for (index, config) in configs.into_iter().enumerate() {
            let previous = old
                .iter_mut()
                .find(|l| l.as_ref().is_some_and(|l| l.name() == config.name))
                .and_then(Option::take);
            let link = match previous {
                Some(mut same) if *same.config() == config => {
                    same.set_index(index);
                    same
                }
                Some(changed) => {
                    let mut fresh = Link::new(config, index, now);
                    out.extend(fresh.inherit(&changed, now));
                    fresh
                }
                None => Link::new(config, index, now),
            };
            self.links.push(link);
        }
        self.record(out);
        Ok(())
    }

    /// Pushes `events` into the ring and the queue of [`Prober::poll_event`].
    fn record(&mut self, events: Vec<Event>) {
        for event in events {
            let seq = self.ring.push(event.clone());
            if self.pending.len() >= self.ring.capacity() {
                self.pending.pop_front();
            }
            self.pending.push_back(Logged { seq, event });
        }
    }
}

/// Validates every configuration and the uniqueness of names.
fn check_all(configs: &[ProbeConfig]) -> Result<(), ProbeConfigError> {
    for (i, config) in configs.iter().enumerate() {
        config.validate()?;
        if configs[..i].iter().any(|c| c.name == config.name) {
            return Err(ProbeConfigError {
                wan: config.name.clone(),
                field: "name",
                message: "is used by another wan".into(),
            });
        }
    }
    Ok(())
}
