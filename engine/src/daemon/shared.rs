//! What the daemon's threads share: the current data plane (swapped whole on reload), the
//! config it was built from, every worker's counters, the clock, the stop flag and the
//! prober thread's handle.
//!
//! Workers read the data plane without a lock on the packet path: they compare the
//! generation number (one atomic load per batch) and take the mutex only when it changed,
//! i.e. once per reload.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::dataplane::DataPlane;
use crate::device::afxdp::program::XdpProgram;
use crate::device::QueueCounter;
use crate::pipeline::Counters;
use prober::run::ProberHandle;

/// Monotonic time since the daemon started: the `now` of every table.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
}

impl Clock {
    pub fn start() -> Clock {
        Clock {
            start: Instant::now(),
        }
    }

    pub fn now(&self) -> Duration {
        self.start.elapsed()
    }
}

#[derive(Debug)]
struct Current {
    dataplane: Arc<DataPlane>,
    config: Arc<Config>,
}

#[derive(Debug)]
pub struct Shared {
    current: Mutex<Current>,
    generation: AtomicU64,
    stop: AtomicBool,
    /// Serialises reloads (SIGHUP and `fwdctl reload` may race).
    reload_lock: Mutex<()>,
    pub config_path: PathBuf,
    pub clock: Clock,
    /// One set per worker, in worker order.
    pub counters: Vec<Arc<Counters>>,
    /// The backend, as the start-up log and `fwdctl status` describe it.
    pub backend: Mutex<String>,
    /// Each worker's device counters per queue, as it last published them (about once a
    /// second).
    pub queue_counters: Vec<Mutex<Vec<QueueCounter>>>,
    /// fwd's XDP program, for its counters (AF_XDP only).
    pub xdp_program: Option<Arc<Mutex<XdpProgram>>>,
    /// The prober thread, once started (see `link_health`); `None` before and after.
    link_health: Mutex<Option<ProberHandle>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking holder cannot leave `Current` half-written (it is replaced whole).
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    pub fn new(
        dataplane: DataPlane,
        config: Config,
        config_path: PathBuf,
        workers: usize,
        backend: String,
    ) -> Shared {
        Shared {
            current: Mutex::new(Current {
                dataplane: Arc::new(dataplane),
                config: Arc::new(config),
            }),
            generation: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            reload_lock: Mutex::new(()),
            config_path,
            clock: Clock::start(),
            counters: (0..workers)
                .map(|_| Arc::new(Counters::default()))
                .collect(),
            backend: Mutex::new(backend),
            queue_counters: (0..workers).map(|_| Mutex::new(Vec::new())).collect(),
            xdp_program: None,
            link_health: Mutex::new(None),
        }
    }

    /// Hands the running prober to the other threads.
    pub fn set_link_health(&self, handle: ProberHandle) {
        *lock(&self.link_health) = Some(handle);
    }

    /// Runs `f` on the prober, if it runs.
    pub fn with_link_health<T>(&self, f: impl FnOnce(&ProberHandle) -> T) -> Option<T> {
        lock(&self.link_health).as_ref().map(f)
    }

    /// Takes the prober out (to stop it).
    pub fn take_link_health(&self) -> Option<ProberHandle> {
        lock(&self.link_health).take()
    }

    /// The current data plane and its generation.
    pub fn dataplane(&self) -> (Arc<DataPlane>, u64) {
        let c = lock(&self.current);
        (
            Arc::clone(&c.dataplane),
            self.generation.load(Ordering::Acquire),
        )
    }

    pub fn config(&self) -> Arc<Config> {
        Arc::clone(&lock(&self.current).config)
    }

    /// Changes whenever a new data plane is published.
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Publishes a new data plane and the config it came from.
    pub fn publish(&self, dataplane: DataPlane, config: Config) {
        let mut c = lock(&self.current);
        c.dataplane = Arc::new(dataplane);
        c.config = Arc::new(config);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    pub fn reload_guard(&self) -> MutexGuard<'_, ()> {
        lock(&self.reload_lock)
    }

    /// The flag [`request_stop`](Self::request_stop) sets, for threads that poll it.
    pub fn stop_flag(&self) -> &AtomicBool {
        &self.stop
    }

    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Release);
    }

    #[inline]
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }
}
