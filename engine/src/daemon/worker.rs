//! A worker thread: pinned to a core, it owns one queue of every TUN device and runs
//! [`Forwarder::poll`] in a loop; frames for the box itself are written back into the TUN
//! they came from (the kernel's local table takes them there). It adopts a reloaded data
//! plane between batches and stops within one idle wait of the stop flag.

use std::fs::File;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::device::tun::TunDevice;
use crate::forwarder::Forwarder;
use crate::neighbors::StaticNeighbors;
use crate::packet::Medium;
use crate::pipeline::DropReason;

use super::shared::Shared;

/// Frames per batch.
pub const BATCH: usize = 64;

/// Longest sleep when every queue is empty: bounds the reaction to stop and the delay of
/// housekeeping (expiry) on an idle box.
const IDLE_WAIT: Duration = Duration::from_millis(50);

/// Least time between two log lines about device errors.
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct Worker {
    pub index: usize,
    pub core: Option<core_affinity::CoreId>,
    /// This worker's queue of each interface's TUN, by plan interface id.
    pub queues: Vec<File>,
}

impl Worker {
    /// Runs until `shared.stopping()`.
    pub fn run(self, shared: &Shared) {
        if let Some(core) = self.core {
            if !core_affinity::set_for_current(core) {
                log::warn!("worker {}: could not pin to core {}", self.index, core.id);
            }
        }
        let mut device = match TunDevice::new(self.queues) {
            Ok(d) => d,
            Err(e) => {
                log::error!("worker {}: {e}; stopping fwd", self.index);
                shared.request_stop();
                return;
            }
        };
        let Some(counters) = shared.counters.get(self.index).cloned() else {
            log::error!("worker {}: no counters; stopping fwd", self.index);
            shared.request_stop();
            return;
        };
        let (mut dataplane, mut generation) = shared.dataplane();
        let mut forwarder =
            Forwarder::new(Medium::Ip, &dataplane.plan, Arc::clone(&counters), BATCH);
        let neighbors = StaticNeighbors::new();
        let mut last_error_log: Option<Instant> = None;
        log::debug!("worker {} running", self.index);
        while !shared.stopping() {
            if shared.generation() != generation {
                (dataplane, generation) = shared.dataplane();
                forwarder.set_plan(&dataplane.plan);
            }
            let now = shared.clock.now();
            match forwarder.poll(&mut device, &dataplane, &neighbors, now) {
                Ok(received) => {
                    let to_kernel = forwarder.output().kernel();
                    if !to_kernel.is_empty() {
                        let sent = device.return_to_kernel(forwarder.batch(), to_kernel);
                        for _ in sent..to_kernel.len() {
                            counters.count_drop(DropReason::TxQueueFull);
                        }
                    }
                    if received < BATCH {
                        if let Err(e) = device.wait(IDLE_WAIT) {
                            log::error!("worker {}: poll: {e}; stopping fwd", self.index);
                            shared.request_stop();
                        }
                    }
                }
                Err(e) => {
                    if last_error_log.is_none_or(|t| t.elapsed() >= ERROR_LOG_INTERVAL) {
                        log::error!("worker {}: TUN I/O: {e}", self.index);
                        last_error_log = Some(Instant::now());
                    }
                    std::thread::sleep(IDLE_WAIT);
                }
            }
        }
        log::debug!("worker {} stopped", self.index);
    }
}
