//! A worker thread: pinned to a core, it owns its backend's queues and frame buffers and runs
//! [`Forwarder::poll`] in a loop over them ([`drive`], generic over the [`Device`]). Frames
//! for the box itself leave through the device's kernel sink. It adopts a reloaded data
//! plane between batches, sleeps on its device when nothing arrives, and stops within one
//! idle wait of the stop flag.

use std::fs::File;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::device::tun::TunDevice;
use crate::device::{Device, FrameMemory, FramePool, CHUNK_SIZE, HEADROOM};
use crate::forwarder::Forwarder;
use crate::neighbors::StaticNeighbors;
use crate::pipeline::Counters;

use super::shared::Shared;

/// Frames per batch.
pub const BATCH: usize = 64;

/// Frames in a TUN worker's pool: one batch in flight, and as many again so that a receive
/// never waits for a frame (TUN frames go back to the pool as soon as they are written).
const TUN_FRAMES: usize = 2 * BATCH;

/// Longest sleep when every queue is empty: bounds the reaction to stop and the delay of
/// housekeeping (expiry) on an idle box.
const IDLE_WAIT: Duration = Duration::from_millis(50);

/// Least time between two log lines about device errors.
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The queues a worker drives.
#[derive(Debug)]
pub enum Queues {
    /// Its queue of each interface's TUN, by plan interface id.
    Tun(Vec<File>),
}

#[derive(Debug)]
pub struct Worker {
    pub index: usize,
    pub core: Option<core_affinity::CoreId>,
    pub queues: Queues,
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
        let started = match self.queues {
            Queues::Tun(queues) => {
                FrameMemory::new(TUN_FRAMES, CHUNK_SIZE, HEADROOM).and_then(|memory| {
                    let pool = FramePool::new(&memory)?;
                    let mut device = TunDevice::new(queues, pool)?;
                    drive(index, &mut device, shared, &counters);
                    Ok(())
                })
            }
        };
        if let Err(e) = started {
            log::error!("worker {index}: {e}; stopping fwd");
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
) {
    let caps = device.capabilities();
    let batch = BATCH.min(caps.batch_size).max(1);
    let (mut dataplane, mut generation) = shared.dataplane();
    let mut forwarder = Forwarder::new(caps.medium, &dataplane.plan, Arc::clone(counters), batch);
    let neighbors = StaticNeighbors::new();
    let mut last_error_log: Option<Instant> = None;
    log::debug!("worker {index} running");
    while !shared.stopping() {
        if shared.generation() != generation {
            (dataplane, generation) = shared.dataplane();
            forwarder.set_plan(&dataplane.plan);
        }
        let now = shared.clock.now();
        match forwarder.poll(device, &dataplane, &neighbors, now) {
            Ok(received) => {
                if received < batch {
                    if let Err(e) = device.wait(IDLE_WAIT) {
                        log::error!("worker {index}: poll: {e}; stopping fwd");
                        shared.request_stop();
                    }
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
