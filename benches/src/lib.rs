//! # benches — measurement, not tests
//!
//! Shared setup for the criterion benches in `benches/`: a router in memory with a config
//! sized for a million sessions, and packet generators. Benchmarks report figures; nothing
//! here asserts a timing.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use balancer::LinkState;
use engine::config::Config;
use engine::dataplane::DataPlane;
use engine::device::{Batch, FrameMemory, FramePool, CHUNK_SIZE, HEADROOM};
use engine::neighbors::StaticNeighbors;
use engine::packet::Medium;
use engine::pipeline::counters::MAX_WANS;
use engine::pipeline::{Context, Counters, Output, Pipeline};
use etherparse::PacketBuilder;

/// Two WANs owning ports 1024-65535 each, one LAN 10.0.0.0/8, a table for 2M sessions.
pub const BENCH_CONFIG: &str = r#"
[[lan]]
name = "lan"
interface = "lan0"
address = "10.0.0.1/8"

[[wan]]
name = "isp1"
interface = "wan1"
address = "198.51.100.2/30"
gateway = "198.51.100.1"
nat_ports = "1024-65535"

[[wan]]
name = "isp2"
interface = "wan2"
address = "203.0.113.2/30"
gateway = "203.0.113.1"
nat_ports = "1024-65535"

[[group]]
name = "balanced"
members = [{ wan = "isp1" }, { wan = "isp2" }]

[[rule]]
name = "default"
group = "balanced"

[conntrack]
max_sessions = 2097152
shards = 256
"#;

pub const LAN: u8 = 0;
pub const BATCH: usize = 64;
pub const SERVER: Ipv4Addr = Ipv4Addr::new(8, 8, 4, 4);

/// A router in memory.
#[derive(Debug)]
pub struct BenchRouter {
    pub dp: DataPlane,
    pub health: [LinkState; MAX_WANS],
    pub neighbors: StaticNeighbors,
    pub pipeline: Pipeline,
    pub now: Duration,
}

impl BenchRouter {
    pub fn new(config: &str) -> BenchRouter {
        let config = Config::from_toml_str(config).expect("bench config is valid");
        let dp = DataPlane::new(&config, 7, LinkState::Up).expect("data plane");
        let pipeline = Pipeline::new(Medium::Ip, &dp.plan, Arc::new(Counters::default()));
        let mut health = [LinkState::Down; MAX_WANS];
        dp.health.snapshot(&mut health);
        BenchRouter {
            dp,
            health,
            neighbors: StaticNeighbors::new(),
            pipeline,
            now: Duration::from_secs(1),
        }
    }

    /// Runs a batch through the pipeline at the router's clock, then moves the clock on by
    /// [`BATCH_INTERVAL`]: every batch comes at a later time, as on a live link, so that hits
    /// refresh their sessions' `last_seen` as they do there.
    pub fn process(&mut self, frames: &mut Frames, out: &mut Output) {
        let ctx = Context {
            plan: &self.dp.plan,
            tables: &self.dp.tables,
            health: &self.health,
            neighbors: &self.neighbors,
            now: self.now,
            mtus: &[],
        };
        self.pipeline.process(&ctx, frames.batch.frames_mut(), out);
        self.now += BATCH_INTERVAL;
    }
}

/// How far the bench router's clock moves per batch: about what a batch of 64 takes.
pub const BATCH_INTERVAL: Duration = Duration::from_micros(4);

/// The LAN endpoint of flow number `n`: 4096 hosts × 16 ports... spread so that a million
/// flows need at most 65,536 internal endpoints (one external port each, shared by the
/// endpoint's flows to 16 destinations: endpoint-independent mapping).
pub fn flow_endpoints(n: u32) -> ((Ipv4Addr, u16), (Ipv4Addr, u16)) {
    let endpoint = n % 65_536;
    let host = endpoint / 16;
    let port = 10_000 + (endpoint % 16) as u16;
    let dst = n / 65_536;
    let src_ip = Ipv4Addr::new(10, 1 + (host >> 8) as u8, (host & 0xff) as u8, 10);
    let dst_ip = Ipv4Addr::new(100, 64, (dst >> 8) as u8, (dst & 0xff) as u8);
    ((src_ip, port), (dst_ip, 443))
}

/// A TCP segment (flags given) of flow `n` from the LAN, as bytes.
pub fn tcp_packet(n: u32, flags_syn: bool) -> Vec<u8> {
    let (src, dst) = flow_endpoints(n);
    let b = PacketBuilder::ipv4(src.0.octets(), dst.0.octets(), 64).tcp(src.1, dst.1, 1, 64240);
    let b = if flags_syn { b.syn() } else { b.ack(1) };
    let mut out = Vec::new();
    b.write_to_vec(&mut out, &[0u8; 0]).expect("builds");
    out
}

/// A batch of frames for the benches, from a pool of their own: refilled in place, as a
/// device's receive does, without going back to the pool between batches.
#[derive(Debug)]
pub struct Frames {
    pool: FramePool<'static>,
    batch: Batch<'static>,
}

impl Frames {
    /// Sets the batch to `packets` (at most [`BATCH`]), each arriving on its interface.
    fn set<'p>(&mut self, packets: impl ExactSizeIterator<Item = (u8, &'p [u8])>) {
        let wanted = packets.len().min(BATCH);
        while self.batch.len() > wanted {
            if let Some(frame) = self.batch.pop() {
                let _ = self.pool.put(frame);
            }
        }
        while self.batch.len() < wanted {
            match self.pool.take() {
                Some(frame) => {
                    let _ = self.batch.push(frame);
                }
                None => break,
            }
        }
        for (frame, (iface, bytes)) in self.batch.frames_mut().iter_mut().zip(packets) {
            frame.fill(bytes, iface);
        }
    }
}

/// A batch preallocated at the bench batch size. Its memory stays mapped for the process (a
/// bench's batches live as long as it runs).
pub fn batch() -> Frames {
    let memory: &'static FrameMemory = Box::leak(Box::new(
        FrameMemory::new(BATCH, CHUNK_SIZE, HEADROOM).expect("frame memory"),
    ));
    Frames {
        pool: FramePool::new(memory).expect("a fresh memory"),
        batch: Batch::new(BATCH),
    }
}

/// Fills `frames` with `packets` arriving on the LAN.
pub fn fill(frames: &mut Frames, packets: &[Vec<u8>]) {
    frames.set(packets.iter().map(|p| (LAN, p.as_slice())));
}

/// Fills `frames` with `packets`, each arriving on its own interface.
pub fn fill_on(frames: &mut Frames, packets: &[(u8, Vec<u8>)]) {
    frames.set(packets.iter().map(|(i, p)| (*i, p.as_slice())));
}

/// Sends one ACK from the LAN for each of flows `0..flows` (their sessions, opened by a SYN,
/// become established).
pub fn establish(router: &mut BenchRouter, flows: u32) {
    let mut b = batch();
    let mut out = Output::new(BATCH, router.dp.plan.interfaces.len());
    for first in (0..flows).step_by(BATCH) {
        let chunk: Vec<Vec<u8>> = (first..(first + BATCH as u32).min(flows))
            .map(|i| tcp_packet(i, false))
            .collect();
        fill(&mut b, &chunk);
        router.process(&mut b, &mut out);
    }
}

/// A reply (an ACK from the server to the WAN address and external port) for every session
/// in the router's table, with the interface id of its WAN, in the table's order.
pub fn reply_packets(router: &BenchRouter) -> Vec<(u8, Vec<u8>)> {
    let mut replies = Vec::new();
    let wans = &router.dp.plan.wans;
    router
        .dp
        .tables
        .conntrack
        .for_each_session_at(router.now, |s| {
            let Some(wan) = wans.get(usize::from(s.wan)) else {
                return;
            };
            let (server, external) = (s.key.dst, s.external);
            let b = PacketBuilder::ipv4(server.ip.octets(), external.ip.octets(), 64)
                .tcp(server.port, external.port, 1, 64240)
                .ack(1);
            let mut bytes = Vec::new();
            b.write_to_vec(&mut bytes, &[0u8; 0]).expect("builds");
            replies.push((wan.iface, bytes));
        });
    replies
}

/// Opens `flows` sessions (SYN through the pipeline) on a router with [`BENCH_CONFIG`].
pub fn router_with_sessions(flows: u32) -> BenchRouter {
    let mut router = BenchRouter::new(BENCH_CONFIG);
    open_sessions(&mut router, flows);
    router
}

/// Opens `flows` sessions (numbered 0..flows) through the pipeline.
pub fn open_sessions(router: &mut BenchRouter, flows: u32) {
    let mut b = batch();
    let mut out = Output::new(BATCH, router.dp.plan.interfaces.len());
    let mut n = 0;
    while n < flows {
        let chunk: Vec<Vec<u8>> = (n..(n + BATCH as u32).min(flows))
            .map(|i| tcp_packet(i, true))
            .collect();
        fill(&mut b, &chunk);
        router.process(&mut b, &mut out);
        n += chunk.len() as u32;
    }
    assert_eq!(
        router.dp.tables.conntrack.len(),
        flows as usize,
        "every flow has its session"
    );
}

/// Resident set size of this process in bytes (Linux).
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}
