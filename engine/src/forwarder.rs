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

    /// Adopts a reloaded plan (same interfaces; new rules, groups and weights).
    pub fn set_plan(&mut self, plan: &Plan) {
        self.pipeline.set_plan(plan);
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use balancer::LinkState;
    use etherparse::PacketBuilder;

    use super::*;
    use crate::config::Config;
    use crate::device::memory::MemoryDevice;
    use crate::neighbors::StaticNeighbors;
    use crate::packet::Medium;
    use crate::pipeline::{Event, Verdict};

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

    fn setup() -> (DataPlane, Forwarder, Arc<Counters>, MemoryDevice) {
        let config = Config::from_toml_str(CONFIG).unwrap();
        let dp = DataPlane::new(&config, 3, LinkState::Up).unwrap();
        let counters = Arc::new(Counters::default());
        let forwarder = Forwarder::new(Medium::Ip, &dp.plan, counters.clone(), 8);
        (dp, forwarder, counters, MemoryDevice::new(Medium::Ip))
    }

    #[test]
    fn a_batch_goes_out_per_egress_and_replies_come_back() {
        let (dp, mut fwd, counters, mut dev) = setup();
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
        let (dp, mut fwd, counters, mut dev) = setup();
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
    }

    #[test]
    fn polling_expires_idle_sessions() {
        let (dp, mut fwd, _, mut dev) = setup();
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
}
