//! What the daemon calls: [`ProberHandle::spawn`] runs the prober core over the sockets on
//! a thread of its own (one mio `Poll`, woken by a `Waker` for stop and for changes made
//! through the handle), and the handle reads status and events and switches WANs through
//! the core, which sits behind a `Mutex` (the control thread's reads, never a packet path).
//!
//! Every event is logged (`warn` when a WAN goes down, `info` otherwise), passed to the
//! hook command if one is configured, and to `on_change`. The thread wakes at the core's
//! next deadline, not on a tick, so rounds and timeouts keep their precision.
//!
//! Invariants: a socket error is a failed probe, never the end of the thread; the lock is
//! never held across a socket call, a hook spawn or `on_change`; a poisoned lock is taken
//! over (the core's state is consistent between calls).

mod hooks;
mod inflight;
mod worker;

use std::collections::VecDeque;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime};

use mio::unix::SourceFd;
use mio::{Interest, Poll, Waker};

use crate::core::event::DEFAULT_RING_CAPACITY;
use crate::core::{
    Logged, ProbeConfig, ProbeConfigError, Prober, PublishedState, UnknownWan, WanStatus,
};
use crate::net::carrier::CarrierMonitor;
pub use crate::net::WanLink;
pub use hooks::HOOK_TIMEOUT;

/// One WAN to probe: how, and from where.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeSpec {
    /// What to probe and how, for the core.
    pub config: ProbeConfig,
    /// Where the probes leave from.
    pub link: WanLink,
}

/// Why the prober could not start (or be reconfigured).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    /// A configuration is invalid.
    Config(#[from] ProbeConfigError),
    #[error("{what}: {source}")]
    /// A system resource could not be set up.
    Io {
        /// What was being set up.
        what: &'static str,
        #[source]
        /// The OS error.
        source: io::Error,
    },
}

/// What the prober thread is called from `on_change`.
pub type OnChange = Box<dyn FnMut(usize, PublishedState) + Send>;

/// State shared by the handle and the thread.
#[derive(Debug)]
struct State {
    prober: Prober,
    /// Where each WAN's probes leave from, in the prober's order.
    links: Vec<WanLink>,
    /// The hook command, as the last spawn or reconfiguration gave it.
    hook: Option<PathBuf>,
    /// Bumped by every reconfiguration.
    generation: u64,
    stop: bool,
    /// Wall-clock time of the latest events, by sequence number (the core's clock has an
    /// arbitrary origin).
    wall: VecDeque<(u64, SystemTime)>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// The core's time origin.
    origin: Instant,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now(&self) -> std::time::Duration {
        self.origin.elapsed()
    }
}

/// The running prober thread.
#[derive(Debug)]
pub struct ProberHandle {
    shared: Arc<Shared>,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<()>>,
}

impl ProberHandle {
    /// Starts the prober thread. `on_change(wan_index, new_state)` is called from that
    /// thread for every event, first once per WAN with its initial state before any probe
    /// goes out (and again for every WAN after a [`ProberHandle::reconfigure`], indexes
    /// being those of the new specs).
    pub fn spawn(
        specs: Vec<ProbeSpec>,
        hook: Option<PathBuf>,
        on_change: OnChange,
    ) -> Result<ProberHandle, StartError> {
        let origin = Instant::now();
        let (configs, links) = split(specs);
        let prober = Prober::new(configs, origin.elapsed())?;
        let io = |what| move |source| StartError::Io { what, source };
        let poll = Poll::new().map_err(io("creating the poll"))?;
        let waker =
            Arc::new(Waker::new(poll.registry(), worker::WAKER).map_err(io("creating the waker"))?);
        let carrier = CarrierMonitor::open().map_err(io("opening the rtnetlink socket"))?;
        poll.registry()
            .register(
                &mut SourceFd(&carrier.raw_fd()),
                worker::CARRIER,
                Interest::READABLE,
            )
            .map_err(io("registering the rtnetlink socket"))?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                prober,
                links,
                hook,
                generation: 0,
                stop: false,
                wall: VecDeque::new(),
            }),
            origin,
        });
        let worker = worker::Worker::new(Arc::clone(&shared), poll, carrier, on_change);
        let thread = std::thread::Builder::new()
            .name("fwd-prober".into())
            .spawn(move || worker.run())
            .map_err(io("starting the prober thread"))?;
        Ok(ProberHandle {
            shared,
            waker,
            thread: Some(thread),
        })
    }

    /// Every WAN's status, in configuration order.
    pub fn status(&self) -> Vec<WanStatus> {
        let now = self.shared.now();
        self.shared.lock().prober.status(now)
    }

    /// The events kept after sequence number `seq`, each with its wall-clock time, and how
    /// many after `seq` were dropped before they could be read.
    pub fn events_after(&self, seq: u64) -> (Vec<(Logged, SystemTime)>, u64) {
        let (events, missed, _) = self.events_and_last_seq(seq);
        (events, missed)
    }

    /// [`events_after`](Self::events_after), and the sequence number of the newest event
    /// pushed (0 before the first), read under the same lock: a follower that asks again
    /// after that number misses nothing.
    pub fn events_and_last_seq(&self, seq: u64) -> (Vec<(Logged, SystemTime)>, u64, u64) {
        let now = self.shared.now();
        let wall_now = SystemTime::now();
        let state = self.shared.lock();
        let last_seq = state.prober.ring().last_seq();
        let (events, missed) = state.prober.events_after(seq);
        let events = events
            .into_iter()
            .map(|l| {
                let wall = state
                    .wall
                    .iter()
                    .find(|(s, _)| *s == l.seq)
                    .map(|(_, t)| *t)
                    .unwrap_or_else(|| {
                        // Not drained by the thread yet: computed from the core's clock.
                        let ago = now.saturating_sub(l.event.at);
                        wall_now.checked_sub(ago).unwrap_or(wall_now)
                    });
                (l, wall)
            })
            .collect();
        (events, missed, last_seq)
    }

    /// Administratively enables or disables the WAN named `wan`; `Ok(true)` if that
    /// changed its state (the event is then logged and reported by the thread).
    pub fn set_enabled(&self, wan: &str, enabled: bool) -> Result<bool, UnknownWan> {
        let now = self.shared.now();
        let changed = self.shared.lock().prober.set_enabled(wan, enabled, now)?;
        if changed {
            self.wake();
        }
        Ok(changed)
    }

    /// Replaces the specs (see [`Prober::reconfigure`] for what is kept) and the hook
    /// command (events reported from then on run the new one; hooks already running go on).
    /// On error nothing changes.
    pub fn reconfigure(
        &self,
        specs: Vec<ProbeSpec>,
        hook: Option<PathBuf>,
    ) -> Result<(), StartError> {
        let (configs, links) = split(specs);
        let now = self.shared.now();
        {
            let mut state = self.shared.lock();
            state.prober.reconfigure(configs, now)?;
            state.links = links;
            state.hook = hook;
            state.generation += 1;
        }
        self.wake();
        Ok(())
    }

    /// Stops the thread and waits for it (also done on drop).
    pub fn stop(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        self.shared.lock().stop = true;
        self.wake();
        if thread.join().is_err() {
            log::error!("the prober thread panicked");
        }
    }

    fn wake(&self) {
        if let Err(e) = self.waker.wake() {
            log::error!("cannot wake the prober thread: {e}");
        }
    }
}

impl Drop for ProberHandle {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// Splits specs into the core's configurations and the links.
fn split(specs: Vec<ProbeSpec>) -> (Vec<ProbeConfig>, Vec<WanLink>) {
    specs.into_iter().map(|s| (s.config, s.link)).unzip()
}

/// Keeps the wall-clock time of event `seq` (bounded like the ring).
fn remember_wall(state: &mut State, seq: u64, wall: SystemTime) {
    if state.wall.len() >= DEFAULT_RING_CAPACITY {
        state.wall.pop_front();
    }
    state.wall.push_back((seq, wall));
}
