//! One worker's step: receive a batch from a device, run the pipeline over it, send each
//! egress list back out, and do a bounded slice of table housekeeping. The worker thread
//! (and the tests, with the in-memory device) call [`Forwarder::poll`] in a loop.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use balancer::LinkState;

use crate::dataplane::DataPlane;
use crate::device::{Batch, Device, FRAME_CAPACITY};
use crate::neighbors::Neighbors;
use crate::pipeline::counters::MAX_WANS;
use crate::pipeline::{Context, Counters, DropReason, Output, Pipeline};
use crate::plan::Plan;

/// Expired sessions removed per poll at most: bounds the housekeeping work per batch.
const EXPIRE_BUDGET: usize = 256;

#[derive(Debug)]
pub struct Forwarder {
    pipeline: Pipeline,
    batch: Batch,
    output: Output,
    health: [LinkState; MAX_WANS],
}

impl Forwarder {
    pub fn new(
        device_medium: crate::packet::Medium,
        plan: &Plan,
        counters: Arc<Counters>,
        batch_size: usize,
    ) -> Forwarder {
        Forwarder {
            pipeline: Pipeline::new(device_medium, plan, counters),
            batch: Batch::new(batch_size, FRAME_CAPACITY),
            output: Output::new(batch_size, plan.interfaces.len()),
            health: [LinkState::Down; MAX_WANS],
        }
    }

    /// Receives, processes and sends one batch. Returns the number of frames received.
    pub fn poll<D: Device>(
        &mut self,
        device: &mut D,
        dataplane: &DataPlane,
        neighbors: &dyn Neighbors,
        now: Duration,
    ) -> io::Result<usize> {
        let DataPlane {
            plan,
            tables,
            health,
        } = dataplane;
        tables.conntrack.expire(now, EXPIRE_BUDGET);
        tables.sticky.expire(now, EXPIRE_BUDGET);
        let received = device.recv(&mut self.batch)?;
        if received == 0 {
            return Ok(0);
        }
        health.snapshot(&mut self.health);
        let ctx = Context {
            plan,
            tables,
            health: &self.health,
            neighbors,
            now,
        };
        self.pipeline
            .process(&ctx, &mut self.batch, &mut self.output);
        for (_, indices) in self.output.egress_lists() {
            let sent = device.send(&self.batch, indices)?;
            for _ in sent..indices.len() {
                self.pipeline.counters().count_drop(DropReason::TxQueueFull);
            }
        }
        Ok(received)
    }

    /// The verdicts of the last batch.
    pub fn output(&self) -> &Output {
        &self.output
    }

    /// The frames of the last batch (for frames handed to the kernel).
    pub fn batch(&self) -> &Batch {
        &self.batch
    }
}
