//! A router in memory for pipeline tests: the test topology's config, its plan and tables,
//! a pipeline, and helpers to push one frame through and read what came out. Frames go
//! through [`Pipeline::process`] as a batch of one (the path the workers take, express lane
//! included) unless a test picks the general path alone ([`Path::General`]).

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use balancer::LinkState;

use crate::config::Config;
use crate::dataplane::DataPlane;
use crate::device::{Batch, FrameMemory, FramePool, CHUNK_SIZE, HEADROOM};
use crate::neighbors::StaticNeighbors;
use crate::packet::Medium;
use crate::pipeline::counters::MAX_WANS;
use crate::pipeline::{Context, Counters, DropReason, Output, Pipeline, Verdict};

/// Most frames [`Router::send_many`] takes at once.
pub const BATCH: usize = 16;

/// Which way a [`Router`] pushes frames through its pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// [`Pipeline::process`], a batch of one: look-ahead, express lane, general path.
    Batch,
    /// [`Pipeline::process_frame`]: the general path alone.
    General,
}

/// LAN 192.168.1.0/24 (iface 0); isp1 198.51.100.2 weight 3 (iface 1); isp2 203.0.113.2
/// weight 1 (iface 2); lte 192.0.2.2 tier 2 (iface 3). DNS goes out isp2; 10.99.0.0/16 is
/// blackholed, 10.98.0.0/16 unreachable, 10.97.0.0/16 main table; the rest is balanced.
pub const TOPOLOGY: &str = r#"
[[lan]]
name = "lan"
interface = "lan0"
address = "192.168.1.1/24"

[[wan]]
name = "isp1"
interface = "wan1"
address = "198.51.100.2/30"
gateway = "198.51.100.1"
weight = 3
nat_ports = "20000-29999"

[[wan]]
name = "isp2"
interface = "wan2"
address = "203.0.113.2/30"
gateway = "203.0.113.1"
nat_ports = "20000-29999"

[[wan]]
name = "lte"
interface = "wan3"
address = "192.0.2.2/30"
gateway = "192.0.2.1"
tier = 2
nat_ports = "40000-40002"

[[group]]
name = "balanced"
members = [{ wan = "isp1" }, { wan = "isp2" }, { wan = "lte" }]

[[group]]
name = "sticky"
members = [{ wan = "isp1" }, { wan = "isp2" }]

[[rule]]
name = "dns"
proto = "udp"
dst_ports = [53]
wan = "isp2"

[[rule]]
name = "drop"
dst = ["10.99.0.0/16"]
action = "blackhole"

[[rule]]
name = "nope"
dst = ["10.98.0.0/16"]
action = "unreachable"

[[rule]]
name = "main"
dst = ["10.97.0.0/16"]
action = "main"

[[rule]]
name = "banking"
dst = ["100.64.0.0/16"]
group = "sticky"
sticky = "10m"

[[rule]]
name = "default"
group = "balanced"

[conntrack]
max_sessions = 4096
shards = 4
"#;

pub const LAN: u8 = 0;
pub const ISP1: u8 = 1;
pub const ISP2: u8 = 2;
pub const LTE: u8 = 3;
pub const LAN_ADDR: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);
pub const ISP1_ADDR: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
pub const ISP2_ADDR: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
pub const LTE_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
pub const HOST_A: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);
pub const HOST_B: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 20);
pub const SERVER: Ipv4Addr = Ipv4Addr::new(8, 8, 4, 4);
pub const SERVER2: Ipv4Addr = Ipv4Addr::new(9, 9, 9, 9);

/// Frame memory for one [`Router`]: a test's router lives for the test, so its memory is
/// left mapped (leaked) rather than tied to a lifetime the tests would have to carry.
fn router_memory() -> &'static FrameMemory {
    Box::leak(Box::new(
        FrameMemory::new(BATCH, CHUNK_SIZE, HEADROOM).expect("frame memory"),
    ))
}

pub struct Router {
    pub dp: DataPlane,
    pub neighbors: StaticNeighbors,
    pub pipeline: Pipeline,
    pub counters: Arc<Counters>,
    pub now: Duration,
    pub path: Path,
    /// Each interface's MTU (empty: no limit), as a device states them.
    pub mtus: Vec<u16>,
    pool: FramePool<'static>,
    batch: Batch<'static>,
    output: Output,
}

impl Router {
    pub fn new(medium: Medium) -> Router {
        Router::with_config(medium, TOPOLOGY)
    }

    pub fn with_config(medium: Medium, toml: &str) -> Router {
        let config = Config::from_toml_str(toml).expect("test topology is valid");
        let dp = DataPlane::new(&config, 42, LinkState::Up).expect("data plane");
        let counters = Arc::new(Counters::default());
        let pipeline = Pipeline::new(medium, &dp.plan, counters.clone());
        Router {
            neighbors: StaticNeighbors::new(),
            pipeline,
            counters,
            now: Duration::from_secs(1),
            path: Path::Batch,
            mtus: Vec::new(),
            pool: FramePool::new(router_memory()).expect("a fresh memory"),
            batch: Batch::new(BATCH),
            output: Output::new(BATCH, dp.plan.interfaces.len()),
            dp,
        }
    }

    /// Pushes one frame in on `iface`; returns the verdict and the frame's bytes afterwards.
    pub fn send(&mut self, iface: u8, bytes: &[u8]) -> (Verdict, Vec<u8>) {
        self.send_many(&[(iface, bytes.to_vec())]).remove(0)
    }

    /// Pushes frames in as one batch (at most [`BATCH`]), each on its interface; returns each
    /// frame's verdict and bytes afterwards. The general path takes them one by one, after
    /// one `begin_batch`, as `process` does.
    pub fn send_many(&mut self, frames: &[(u8, Vec<u8>)]) -> Vec<(Verdict, Vec<u8>)> {
        assert!(frames.len() <= BATCH);
        for (iface, bytes) in frames {
            let mut frame = self.pool.take().expect("a frame per packet");
            assert!(frame.fill(bytes, *iface));
            self.batch.push(frame).expect("room in the batch");
        }
        let mut health = [LinkState::Down; MAX_WANS];
        self.dp.health.snapshot(&mut health);
        let ctx = Context {
            plan: &self.dp.plan,
            tables: &self.dp.tables,
            health: &health,
            neighbors: &self.neighbors,
            now: self.now,
            mtus: &self.mtus,
        };
        let verdicts: Vec<Verdict> = match self.path {
            Path::Batch => {
                self.pipeline
                    .process(&ctx, self.batch.frames_mut(), &mut self.output);
                self.output.verdicts().to_vec()
            }
            Path::General => {
                self.pipeline.begin_batch(&ctx);
                let pipeline = &mut self.pipeline;
                self.batch
                    .frames_mut()
                    .iter_mut()
                    .map(|frame| pipeline.process_frame(&ctx, frame))
                    .collect()
            }
        };
        let out = verdicts
            .into_iter()
            .zip(self.batch.frames().iter().map(|f| f.data().to_vec()))
            .collect();
        for frame in self.batch.drain() {
            self.pool.put(frame).expect("a frame of the router's pool");
        }
        out
    }

    /// Sends and expects a forward: returns (egress, bytes).
    pub fn forward(&mut self, iface: u8, bytes: &[u8]) -> (u8, Vec<u8>) {
        match self.send(iface, bytes) {
            (Verdict::Forward(egress), out) => (egress, out),
            (other, _) => panic!("expected a forward, got {other:?}"),
        }
    }

    pub fn expect_drop(&mut self, iface: u8, bytes: &[u8], reason: DropReason) {
        let before = self.counters.drops(reason);
        assert_eq!(self.send(iface, bytes).0, Verdict::Drop(reason));
        assert_eq!(
            self.counters.drops(reason),
            before + 1,
            "counter {}",
            reason.name()
        );
    }

    pub fn set_link(&self, wan: usize, state: LinkState) {
        self.dp.health.set(wan, state);
    }

    pub fn advance(&mut self, by: Duration) {
        self.now += by;
    }
}
