//! The prober thread's loop: wait on the `Poll` until the core's next deadline, hand
//! replies, carrier changes and timeouts to the core, send the probes it asks for, and
//! report its events (log, hook, `on_change`).
//!
//! Invariants: the loop never ends on a socket or poll error (only on stop); it sleeps
//! until the earliest of the core's next deadline and, while hooks run, their next check;
//! `on_change` sees every WAN's initial state before the first probe is sent.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mio::{Events, Poll, Token};

use super::hooks::Hooks;
use super::inflight::{Outcomes, Outgoing, Sockets};
use super::{remember_wall, OnChange, Shared};
use crate::core::{Logged, PublishedState};
use crate::net::carrier::{dump_carriers, CarrierMonitor, CarrierNews, LinkCarrier};

/// Token of the waker.
pub(crate) const WAKER: Token = Token(0);
/// Token of the rtnetlink socket.
pub(crate) const CARRIER: Token = Token(1);
/// Longest sleep (a safety net: the core's deadline normally comes first).
const MAX_SLEEP: Duration = Duration::from_secs(1);
/// Sleep while hooks are running, to reap them in time.
const HOOK_CHECK: Duration = Duration::from_millis(100);

pub(crate) struct Worker {
    shared: Arc<Shared>,
    poll: Poll,
    carrier: CarrierMonitor,
    hooks: Hooks,
    on_change: OnChange,
    sockets: Sockets,
    generation: u64,
    /// WANs whose last probe could not be sent (their next failure is not logged again).
    send_failing: HashSet<usize>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl Worker {
    pub fn new(
        shared: Arc<Shared>,
        poll: Poll,
        carrier: CarrierMonitor,
        on_change: OnChange,
    ) -> Worker {
        Worker {
            shared,
            poll,
            carrier,
            hooks: Hooks::new(),
            on_change,
            sockets: Sockets::new(),
            generation: 0,
            send_failing: HashSet::new(),
        }
    }

    pub fn run(mut self) {
        self.announce_all();
        self.resync_carrier();
        self.report_events();
        let mut events = Events::with_capacity(256);
        loop {
            let sleep = self.sleep_time();
            if let Err(e) = self.poll.poll(&mut events, Some(sleep)) {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    log::error!("prober poll: {e}");
                    std::thread::sleep(Duration::from_millis(10));
                }
                continue;
            }
            let mut outcomes = Outcomes::default();
            let mut carrier_news = false;
            for event in events.iter() {
                match event.token() {
                    WAKER => {}
                    CARRIER => carrier_news = true,
                    token => self
                        .sockets
                        .ready(self.poll.registry(), token, &mut outcomes),
                }
            }
            self.report_outcomes(&outcomes);
            if carrier_news {
                self.read_carrier();
            }
            // A state change reaches the workers before the next probes go out.
            self.report_events();
            let (stop, generation) = {
                let state = self.shared.lock();
                (state.stop, state.generation)
            };
            if stop {
                break;
            }
            if generation != self.generation {
                self.generation = generation;
                self.announce_all();
                self.resync_carrier();
            }
            self.send_due();
            self.report_events();
            self.hooks.reap();
            let links = self.shared.lock().links.clone();
            self.sockets.expire(self.poll.registry(), &links);
        }
        self.hooks.detach();
    }

    /// Calls `on_change` with every WAN's current state.
    fn announce_all(&mut self) {
        let now = self.shared.now();
        let states: Vec<PublishedState> = self
            .shared
            .lock()
            .prober
            .status(now)
            .into_iter()
            .map(|s| s.state)
            .collect();
        for (wan, state) in states.into_iter().enumerate() {
            (self.on_change)(wan, state);
        }
    }

    /// How long to sleep: until the core's next deadline, at most [`MAX_SLEEP`].
    fn sleep_time(&self) -> Duration {
        let now = self.shared.now();
        let deadline = self.shared.lock().prober.next_deadline();
        let mut sleep = deadline.map_or(MAX_SLEEP, |d| d.saturating_sub(now));
        if self.hooks.any_running() {
            sleep = sleep.min(HOOK_CHECK);
        }
        sleep.min(MAX_SLEEP)
    }

    fn report_outcomes(&mut self, outcomes: &Outcomes) {
        if outcomes.answered.is_empty() && outcomes.failed.is_empty() {
            return;
        }
        let now = self.shared.now();
        let mut state = self.shared.lock();
        for &token in &outcomes.answered {
            state.prober.on_answer(token, now);
        }
        for &token in &outcomes.failed {
            state.prober.on_failure(token, now);
        }
    }

    /// Closes timed-out rounds and sends every probe due, until none is (a failure can
    /// shorten the interval and make another round due at once).
    fn send_due(&mut self) {
        for _ in 0..16 {
            let now = self.shared.now();
            let due: Vec<Outgoing> = {
                let mut state = self.shared.lock();
                state.prober.handle_timeout(now);
                let mut due = Vec::new();
                while let Some(request) = state.prober.poll_transmit(now) {
                    let config = state.prober.config(request.wan);
                    let link = state.links.get(request.wan);
                    if let (Some(config), Some(link)) = (config, link) {
                        due.push(Outgoing {
                            request,
                            method: config.method.clone(),
                            link: link.clone(),
                            timeout: config.timeout,
                        });
                    }
                }
                due
            };
            if due.is_empty() {
                return;
            }
            let mut failed = Vec::new();
            for out in &due {
                if let Err(e) = self.sockets.send(self.poll.registry(), out) {
                    // The first failure of a WAN says why its probes fail (no CAP_NET_RAW, no
                    // such device, ...); the rest would flood the log.
                    let first = self.send_failing.insert(out.request.wan);
                    let level = if first {
                        log::Level::Warn
                    } else {
                        log::Level::Debug
                    };
                    log::log!(
                        level,
                        "probe to {} from {} ({}): {e}",
                        out.request.target,
                        out.link.device,
                        out.method.kind()
                    );
                    failed.push(out.request.token);
                } else {
                    self.send_failing.remove(&out.request.wan);
                }
            }
            self.report_outcomes(&Outcomes {
                answered: Vec::new(),
                failed,
            });
        }
    }

    /// Takes the core's events: logs them, runs the hook, calls `on_change`.
    fn report_events(&mut self) {
        let wall = SystemTime::now();
        let events: Vec<Logged> = {
            let mut state = self.shared.lock();
            // the hook of the configuration these events belong to
            self.hooks.sync_command(state.hook.as_ref());
            let mut events = Vec::new();
            while let Some(logged) = state.prober.poll_event() {
                remember_wall(&mut state, logged.seq, wall);
                events.push(logged);
            }
            events
        };
        for logged in events {
            // The workers first: the log line and the hook can wait.
            (self.on_change)(logged.event.wan, logged.event.new);
            if logged.event.new == PublishedState::Down {
                log::warn!("{}", logged.event);
            } else {
                log::info!("{}", logged.event);
            }
            self.hooks.spawn(&logged, wall);
        }
    }

    fn read_carrier(&mut self) {
        match self.carrier.read() {
            Ok(CarrierNews::Changes(changes)) => self.apply_carrier(&changes, false),
            Ok(CarrierNews::Overrun) => {
                log::warn!("link notifications overran; reading every link again");
                self.resync_carrier();
            }
            Err(e) => log::warn!("link notifications: {e}"),
        }
    }

    /// Reads every device's carrier; a WAN whose device does not exist has none.
    fn resync_carrier(&mut self) {
        match dump_carriers() {
            Ok(all) => self.apply_carrier(&all, true),
            Err(e) => log::warn!("cannot read the links' carrier: {e}"),
        }
    }

    /// Hands carrier reports to the core; with `complete`, WANs whose device is missing
    /// from `reports` lose carrier.
    fn apply_carrier(&mut self, reports: &[LinkCarrier], complete: bool) {
        let now = self.shared.now();
        let mut state = self.shared.lock();
        let devices: Vec<String> = state.links.iter().map(|l| l.device.clone()).collect();
        for (wan, device) in devices.iter().enumerate() {
            let report = reports.iter().rev().find(|r| &r.device == device);
            match report {
                Some(r) => state.prober.carrier(wan, r.carrier, now),
                None if complete => state.prober.carrier(wan, false, now),
                None => {}
            }
        }
    }
}
