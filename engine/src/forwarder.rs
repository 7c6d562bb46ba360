//! One worker's step: receive a batch from a device, run the pipeline over it, hand every
//! frame back to the device by its fate (sent out of its egress, given to the kernel, or
//! released when dropped), and do a bounded slice of table housekeeping (at most once a
//! millisecond). The worker thread
//! (and the tests, with the in-memory device) call [`Forwarder::poll`] in a loop.
//!
//! Ownership: between the device's `recv` and the end of `poll` the forwarder holds the
//! frames in its batches; every frame of a poll goes back to the device before `poll`
//! returns, whatever happens (an I/O error included), so a device's pool never runs dry.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use balancer::LinkState;

use crate::dataplane::DataPlane;
use crate::device::{Batch, Device};
use crate::neighbors::Neighbors;
use crate::pipeline::counters::MAX_WANS;
use crate::pipeline::{Context, Counters, DropReason, Output, Pipeline, Verdict};
use crate::plan::Plan;

/// Expired sessions removed per housekeeping slice at most: bounds its work.
const EXPIRE_BUDGET: usize = 256;
/// Time between two housekeeping slices of one forwarder. A slice visits every shard of
/// both tables (each under its lock) even when nothing has expired, so it runs on a clock,
/// not every poll: up to `EXPIRE_BUDGET` expiries a millisecond per worker is far more than
/// sessions are created.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_millis(1);

#[derive(Debug)]
pub struct Forwarder<'m> {
    pipeline: Pipeline,
    /// Frames received, then processed in place.
    rx: Batch<'m>,
    /// Frames to send, by egress interface.
    tx: Vec<Batch<'m>>,
    /// Frames for the kernel sink.
    kernel: Batch<'m>,
    /// Frames dropped, to release.
    dropped: Batch<'m>,
    output: Output,
    health: [LinkState; MAX_WANS],
    /// The largest IP packet each interface carries (empty: no limit in fwd).
    mtus: Vec<u16>,
    /// When the next housekeeping slice is due.
    housekeeping_due: Duration,
}

impl<'m> Forwarder<'m> {
    /// A forwarder for frames of `medium` that takes at most `batch_size` frames a poll.
    pub fn new(
        medium: crate::packet::Medium,
        plan: &Plan,
        counters: Arc<Counters>,
        batch_size: usize,
    ) -> Forwarder<'m> {
        // Every batch holds a whole receive batch, so moving the frames of one poll into
        // them never finds one full.
        Forwarder {
            pipeline: Pipeline::new(medium, plan, counters),
            rx: Batch::new(batch_size),
            tx: (0..plan.interfaces.len())
                .map(|_| Batch::new(batch_size))
                .collect(),
            kernel: Batch::new(batch_size),
            dropped: Batch::new(batch_size),
            output: Output::new(batch_size, plan.interfaces.len()),
            health: [LinkState::Down; MAX_WANS],
            mtus: Vec::new(),
            housekeeping_due: Duration::ZERO,
        }
    }

    /// Receives, processes and hands back one batch. Returns the number of frames received.
    pub fn poll<D: Device<'m>>(
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
        if now >= self.housekeeping_due {
            self.housekeeping_due = now + HOUSEKEEPING_INTERVAL;
            tables.conntrack.expire(now, EXPIRE_BUDGET);
            tables.sticky.expire(now, EXPIRE_BUDGET);
        }
        let received = match device.recv(&mut self.rx) {
            Ok(n) => n,
            Err(e) => {
                device.release(&mut self.rx);
                return Err(e);
            }
        };
        if self.rx.is_empty() {
            return Ok(received);
        }
        health.snapshot(&mut self.health);
        let ctx = Context {
            plan,
            tables,
            health: &self.health,
            neighbors,
            now,
            mtus: &self.mtus,
        };
        self.pipeline
            .process(&ctx, self.rx.frames_mut(), &mut self.output);
        self.dispatch();
        let result = self.hand_back(device);
        result.map(|()| received)
    }

    /// Moves each processed frame into the batch its verdict names.
    fn dispatch(&mut self) {
        let verdicts = self.output.verdicts().iter();
        for (frame, verdict) in self.rx.drain().zip(verdicts) {
            let target = match verdict {
                Verdict::Forward(egress) => match self.tx.get_mut(usize::from(*egress)) {
                    Some(tx) => tx,
                    None => &mut self.dropped,
                },
                Verdict::Kernel => &mut self.kernel,
                Verdict::Drop(_) => &mut self.dropped,
            };
            // Cannot fail: every batch has the receive batch's capacity. Were it to, the
            // frame would be lost to the pool, not to memory safety.
            let _ = target.push(frame);
        }
    }

    /// Gives every frame of the poll back to the device: sends, the kernel sink, releases.
    /// Frames a queue refuses count as `tx_queue_full`. Returns the first I/O error, after
    /// every frame is back.
    fn hand_back<D: Device<'m>>(&mut self, device: &mut D) -> io::Result<()> {
        let mut result = Ok(());
        let counters = self.pipeline.counters();
        for tx in self.tx.iter_mut().filter(|tx| !tx.is_empty()) {
            let queued = tx.len();
            match device.send(tx) {
                Ok(sent) => count_refused(counters, queued, sent),
                Err(e) => {
                    count_refused(counters, queued, 0);
                    device.release(tx);
                    if result.is_ok() {
                        result = Err(e);
                    }
                }
            }
        }
        if !self.kernel.is_empty() {
            let queued = self.kernel.len();
            let taken = device.to_kernel(&mut self.kernel);
            count_refused(counters, queued, taken);
        }
        if !self.dropped.is_empty() {
            device.release(&mut self.dropped);
        }
        result
    }

    /// The largest IP packet each interface carries, by interface id (from the device):
    /// larger ones get ICMP fragmentation needed or are dropped (`too_big`).
    pub fn set_mtus(&mut self, mtus: Vec<u16>) {
        self.mtus = mtus;
    }

    /// Adopts a reloaded plan (same interfaces; new rules, groups and weights).
    pub fn set_plan(&mut self, plan: &Plan) {
        self.pipeline.set_plan(plan);
    }

    /// The verdicts of the last batch.
    pub fn output(&self) -> &Output {
        &self.output
    }
}

/// Counts the frames a queue did not take.
fn count_refused(counters: &Counters, queued: usize, taken: usize) {
    for _ in taken.min(queued)..queued {
        counters.count_drop(DropReason::TxQueueFull);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use balancer::LinkState;
    use etherparse::PacketBuilder;

    use super::*;
    use crate::config::Config;
    use crate::device::memory::MemoryDevice;
    use crate::device::{FrameMemory, FramePool, CHUNK_SIZE, HEADROOM};
    use crate::neighbors::StaticNeighbors;
    use crate::packet::Medium;
    use crate::pipeline::Event;

    const CONFIG: &str = r#"
[[lan]]
name = "lan"
interface = "lan0"
address = "192.168.1.1/24"

[[wan]]
name = "isp1"
interface = "wan1"
address = "198.51.100.2/30"
gateway = "198.51.100.1"

[[wan]]
name = "isp2"
interface = "wan2"
address = "203.0.113.2/30"
gateway = "203.0.113.1"

[[group]]
name = "both"
members = [{ wan = "isp1" }, { wan = "isp2" }]

[[rule]]
name = "all"
group = "both"
"#;

    fn udp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ipv4(src, dst, 64)
            .udp(sport, dport)
            .write_to_vec(&mut out, b"x")
            .unwrap();
        out
    }

    fn memory() -> FrameMemory {
        FrameMemory::new(16, CHUNK_SIZE, HEADROOM).unwrap()
    }

    fn setup(memory: &FrameMemory) -> (DataPlane, Forwarder<'_>, Arc<Counters>, MemoryDevice<'_>) {
        let config = Config::from_toml_str(CONFIG).unwrap();
        let dp = DataPlane::new(&config, 3, LinkState::Up).unwrap();
        let counters = Arc::new(Counters::default());
        let forwarder = Forwarder::new(Medium::Ip, &dp.plan, counters.clone(), 8);
        let device = MemoryDevice::new(Medium::Ip, FramePool::new(memory).unwrap());
        (dp, forwarder, counters, device)
    }

    #[test]
    fn a_batch_goes_out_per_egress_and_replies_come_back() {
        let memory = memory();
        let (dp, mut fwd, counters, mut dev) = setup(&memory);
        let neighbors = StaticNeighbors::new();
        let now = Duration::from_secs(1);
        for port in 0..4u16 {
            dev.inject(0, &udp([192, 168, 1, 10], 30000 + port, [8, 8, 8, 8], 53));
        }
        dev.inject(0, &udp([192, 168, 1, 10], 30009, [192, 168, 1, 1], 53)); // for the box
        assert_eq!(fwd.poll(&mut dev, &dp, &neighbors, now).unwrap(), 5);
        assert_eq!(fwd.output().kernel(), &[4]);
        assert_eq!(fwd.output().verdicts()[4], Verdict::Kernel);
        let sent = dev.take_sent();
        assert_eq!(sent.len(), 4);
        let per_wan = |iface| sent.iter().filter(|f| f.iface == iface).count();
        assert_eq!((per_wan(1), per_wan(2)), (2, 2), "1:1 weights alternate");
        assert_eq!(counters.events(Event::Forwarded), 4);
        assert_eq!(counters.events(Event::ToKernel), 1);
        let to_kernel = dev.take_to_kernel();
        assert_eq!(to_kernel.len(), 1, "through the kernel sink");
        assert_eq!(to_kernel[0].iface, 0, "as it arrived");
        assert_eq!(to_kernel[0].bytes[16..20], [192, 168, 1, 1]);
        assert_eq!(dev.outstanding(), 0, "every frame back in the pool");

        // The servers answer; every reply reaches the host.
        for frame in &sent {
            let b = &frame.bytes;
            let ext = [b[12], b[13], b[14], b[15]];
            let port = u16::from_be_bytes([b[20], b[21]]);
            dev.inject(frame.iface, &udp([8, 8, 8, 8], 53, ext, port));
        }
        fwd.poll(&mut dev, &dp, &neighbors, now).unwrap();
        let back = dev.take_sent();
        assert_eq!(back.len(), 4);
        assert!(back
            .iter()
            .all(|f| f.iface == 0 && f.bytes[16..20] == [192, 168, 1, 10]));
        let wan0 = counters.wan(0).unwrap();
        assert_eq!(
            wan0.tx_packets.load(std::sync::atomic::Ordering::Relaxed),
            2
        );
        assert_eq!(
            wan0.rx_packets.load(std::sync::atomic::Ordering::Relaxed),
            2
        );
    }

    #[test]
    fn a_full_transmit_queue_is_counted() {
        let memory = memory();
        let (dp, mut fwd, counters, mut dev) = setup(&memory);
        dev.tx_limit = 1;
        for port in 0..4u16 {
            dev.inject(0, &udp([192, 168, 1, 10], 31000 + port, [8, 8, 8, 8], 53));
        }
        fwd.poll(
            &mut dev,
            &dp,
            &StaticNeighbors::new(),
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(dev.take_sent().len(), 2, "one per egress list");
        assert_eq!(counters.drops(DropReason::TxQueueFull), 2);
        assert_eq!(dev.outstanding(), 0, "refused frames back in the pool");
    }

    #[test]
    fn polling_expires_idle_sessions() {
        let memory = memory();
        let (dp, mut fwd, _, mut dev) = setup(&memory);
        let neighbors = StaticNeighbors::new();
        dev.inject(0, &udp([192, 168, 1, 10], 32000, [8, 8, 8, 8], 53));
        fwd.poll(&mut dev, &dp, &neighbors, Duration::from_secs(1))
            .unwrap();
        assert_eq!(dp.tables.conntrack.len(), 1);
        // Nothing received, but the poll does its housekeeping: UDP's 300 s timeout passed.
        assert_eq!(
            fwd.poll(&mut dev, &dp, &neighbors, Duration::from_secs(302))
                .unwrap(),
            0
        );
        assert_eq!(dp.tables.conntrack.len(), 0);
    }

    #[test]
    fn dropped_frames_go_back_and_a_small_pool_limits_a_batch() {
        // 3 frames in the pool, 8 in the forwarder's batch: a poll takes 3
        let memory = FrameMemory::new(3, CHUNK_SIZE, HEADROOM).unwrap();
        let (dp, mut fwd, counters, mut dev) = setup(&memory);
        let neighbors = StaticNeighbors::new();
        let mut malformed = udp([192, 168, 1, 10], 33000, [8, 8, 8, 8], 53);
        malformed[10] ^= 0xff; // header checksum
        for _ in 0..5 {
            dev.inject(0, &malformed);
        }
        let now = Duration::from_secs(1);
        assert_eq!(fwd.poll(&mut dev, &dp, &neighbors, now).unwrap(), 3);
        assert_eq!(dev.outstanding(), 0);
        assert_eq!(fwd.poll(&mut dev, &dp, &neighbors, now).unwrap(), 2);
        assert_eq!(counters.drops(DropReason::BadIpChecksum), 5);
        assert_eq!(dev.outstanding(), 0);
        assert!(dev.take_sent().is_empty());
    }
}
