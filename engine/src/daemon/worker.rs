//! A worker thread: pinned to a core, it owns its backend's queues and frame buffers and runs
//! [`Forwarder::poll`] in a loop over them ([`drive`], generic over the [`Device`]). Frames
//! for the box itself leave through the device's kernel sink. It adopts a reloaded data
//! plane between batches, polls without sleeping while frames keep coming (and for
//! [`SPIN`] after the last), sleeps on its device otherwise, and stops within one idle wait
//! of the stop flag.

use std::fs::File;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::sync::Mutex;

use crate::device::afxdp::program::XdpProgram;
use crate::device::afxdp::{AfXdpDevice, QueueSpec};
use crate::device::tun::TunDevice;
use crate::device::{Device, FrameMemory, FramePool, CHUNK_SIZE, HEADROOM};
use crate::forwarder::Forwarder;
use crate::neighbors::kernel::NeighborTable;
use crate::pipeline::Counters;

use super::shared::Shared;

/// Frames per batch.
pub const BATCH: usize = 64;

/// Frames in a TUN worker's pool: one batch in flight, and as many again so that a receive
/// never waits for a frame (TUN frames go back to the pool as soon as they are written).
const TUN_FRAMES: usize = 2 * BATCH;

/// How long a worker keeps polling after the last frame it received before it sleeps: a
/// reply that comes back within it (a ping's, a TCP ACK's) is taken without the wake-up a
/// sleeping worker costs. An idle worker sleeps; one that sees a frame every few
/// milliseconds spins this long after each.
const SPIN: Duration = Duration::from_micros(250);

/// Longest sleep when every queue is empty: bounds the reaction to stop and the delay of
/// housekeeping (expiry) on an idle box.
const IDLE_WAIT: Duration = Duration::from_millis(50);

/// How often a worker publishes its device's own counters.
const PUBLISH_INTERVAL: Duration = Duration::from_secs(1);

/// Least time between two log lines about device errors.
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The queues a worker drives.
#[derive(Debug)]
pub enum Queues {
    /// Its queue of each interface's TUN, by plan interface id, and the MTU of each
    /// interface's real device.
    Tun(Vec<File>, Vec<u16>),
    /// AF_XDP sockets on these queues, over a UMEM of `umem_frames` frames; `sinks` are its
    /// queue of each interface's kernel sink TUN, by plan interface id.
    AfXdp {
        queues: Vec<QueueSpec>,
        sinks: Vec<File>,
        umem_frames: usize,
        /// Each plan interface's MTU.
        mtus: Vec<u16>,
        program: Arc<Mutex<XdpProgram>>,
    },
}

#[derive(Debug)]
pub struct Worker {
    pub index: usize,
    pub core: Option<core_affinity::CoreId>,
    pub queues: Queues,
    /// Next hops for Ethernet egress (the kernel's neighbour table).
    pub neighbors: Arc<NeighborTable>,
    /// Told once the worker's device is open (and, with AF_XDP, its sockets are in the XDP
    /// program's map), or why it could not be.
    pub ready: std::sync::mpsc::Sender<Result<(), String>>,
}

impl Worker {
    /// Runs until `shared.stopping()`.
    pub fn run(self, shared: &Shared) {
        if let Some(core) = self.core {
            if !core_affinity::set_for_current(core) {
                log::warn!("worker {}: could not pin to core {}", self.index, core.id);
            }
        }
        let Some(counters) = shared.counters.get(self.index).cloned() else {
            log::error!("worker {}: no counters; stopping fwd", self.index);
            shared.request_stop();
            return;
        };
        let index = self.index;
        let neighbors = &self.neighbors;
        let ready = &self.ready;
        let started = match self.queues {
            Queues::Tun(queues, mtus) => FrameMemory::new(TUN_FRAMES, CHUNK_SIZE, HEADROOM)
                .and_then(|memory| {
                    let pool = FramePool::new(&memory)?;
                    let mut device = TunDevice::new(queues, pool, mtus)?;
                    let _ = ready.send(Ok(()));
                    drive(index, &mut device, shared, &counters, neighbors);
                    Ok(())
                }),
            Queues::AfXdp {
                queues,
                sinks,
                umem_frames,
                mtus,
                program,
            } => FrameMemory::new(umem_frames, CHUNK_SIZE, HEADROOM).and_then(|memory| {
                let pool = FramePool::new(&memory)?;
                let ring = super::afxdp::ring_size(umem_frames);
                let sinks = sinks.into_iter().map(Some).collect();
                let mut device = AfXdpDevice::open(pool, &queues, ring, true, sinks, mtus)?;
                super::afxdp::register(&program, device.sockets(), &queues)
                    .map_err(std::io::Error::other)?;
                log::info!(
                    "worker {index}: {} AF_XDP sockets ({}), {} MiB of UMEM",
                    device.sockets().len(),
                    device.mode().name(),
                    memory.len() >> 20
                );
                let _ = ready.send(Ok(()));
                drive(index, &mut device, shared, &counters, neighbors);
                Ok(())
            }),
        };
        if let Err(e) = started {
            log::error!("worker {index}: {e}; stopping fwd");
            let _ = self.ready.send(Err(format!("worker {index}: {e}")));
            shared.request_stop();
        }
    }
}

/// The worker's loop over `device` until `shared.stopping()`.
fn drive<'m, D: Device<'m>>(
    index: usize,
    device: &mut D,
    shared: &Shared,
    counters: &Arc<Counters>,
    neighbors: &Arc<NeighborTable>,
) {
    let caps = device.capabilities();
    let batch = BATCH.min(caps.batch_size).max(1);
    let (mut dataplane, mut generation) = shared.dataplane();
    let mut forwarder = Forwarder::new(caps.medium, &dataplane.plan, Arc::clone(counters), batch);
    let interfaces = dataplane.plan.interfaces.len();
    let mtus: Option<Vec<u16>> = (0..interfaces)
        .map(|i| device.interface_mtu(u8::try_from(i).unwrap_or(u8::MAX)))
        .collect();
    if let Some(mtus) = mtus {
        forwarder.set_mtus(mtus);
    }
    let mut neighbors = neighbors.view();
    let mut last_error_log: Option<Instant> = None;
    let mut last_publish = Duration::ZERO;
    // Until then, an empty poll polls again rather than sleeping.
    let mut busy_until = Duration::ZERO;
    log::debug!("worker {index} running");
    while !shared.stopping() {
        if shared.generation() != generation {
            (dataplane, generation) = shared.dataplane();
            forwarder.set_plan(&dataplane.plan);
        }
        let now = shared.clock.now();
        if now.saturating_sub(last_publish) >= PUBLISH_INTERVAL {
            last_publish = now;
            publish_counters(index, device, shared);
        }
        neighbors.refresh();
        match forwarder.poll(device, &dataplane, &neighbors, now) {
            Ok(received) => {
                if received > 0 {
                    busy_until = now + SPIN;
                } else if now < busy_until {
                    // The frames may come from a thread on this very core (the kernel's
                    // receive work for the interface): give it the core.
                    std::thread::yield_now();
                } else if let Err(e) = device.wait(IDLE_WAIT) {
                    log::error!("worker {index}: poll: {e}; stopping fwd");
                    shared.request_stop();
                }
            }
            Err(e) => {
                if last_error_log.is_none_or(|t| t.elapsed() >= ERROR_LOG_INTERVAL) {
                    log::error!("worker {index}: device I/O: {e}");
                    last_error_log = Some(Instant::now());
                }
                std::thread::sleep(IDLE_WAIT);
            }
        }
    }
    log::debug!("worker {index} stopped");
}

/// Copies the device's own counters to where the control thread reads them.
fn publish_counters<'m, D: Device<'m>>(index: usize, device: &D, shared: &Shared) {
    let mut counters = Vec::new();
    device.queue_counters(&mut counters);
    if let Some(slot) = shared.queue_counters.get(index) {
        *slot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = counters;
    }
}
