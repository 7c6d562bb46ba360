//! Fast path (established flows, batches of 64: from the LAN, and replies from a WAN) and
//! slow path (a new flow per packet) with 1k and 1M sessions in the table; the fast path
//! also with every packet on another of the 1M flows (`fast_path_cold`). Each iteration
//! refills the batch's frames from templates (as a NIC would write them), so the figure
//! includes one ~60-byte copy per packet (`frame_refill` measures that copy alone); the
//! router's clock moves on 4 µs a batch, so every hit refreshes its session's `last_seen` as
//! on a live link.
//!
//! `forwarder_poll` is what a worker runs per poll: `Forwarder::poll` on the in-memory device
//! (receive, pipeline, dispatch, hand back, and the table housekeeping it does on its
//! clock), with a batch of 64 established-flow packets (the in-memory device copies each
//! frame in and out, which the AF_XDP device does not) and with nothing to receive
//! (`empty`: the cost of a poll that finds its rings empty, which a worker repeats while it
//! waits for frames).

use std::hint::black_box;
use std::time::{Duration, Instant};

use benches::{
    batch, establish, fill, fill_on, reply_packets, router_with_sessions, tcp_packet, BenchRouter,
    BATCH,
};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use engine::device::memory::MemoryDevice;
use engine::device::{FrameMemory, FramePool, CHUNK_SIZE, HEADROOM};
use engine::forwarder::Forwarder;
use engine::packet::Medium;
use engine::pipeline::{Counters, Output, Verdict};

/// 64 batches of established-flow packets spread over the whole table of `sessions`.
fn spread_batches(sessions: u32) -> Vec<Vec<Vec<u8>>> {
    let stride = (sessions / (BATCH as u32 * 64)).max(1);
    (0..64u32)
        .map(|b| {
            (0..BATCH as u32)
                .map(|i| tcp_packet(((b * BATCH as u32 + i) * stride) % sessions, false))
                .collect()
        })
        .collect()
}

fn fast_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("fast_path");
    group.throughput(Throughput::Elements(BATCH as u64));
    for sessions in [1_000u32, 1_000_000] {
        let mut router = router_with_sessions(sessions);
        let batches = spread_batches(sessions);
        let mut frames = batch();
        let mut out = Output::new(BATCH, router.dp.plan.interfaces.len());
        let mut next = 0;
        group.bench_function(format!("{sessions}_sessions"), |bench| {
            bench.iter(|| {
                fill(&mut frames, &batches[next % batches.len()]);
                next += 1;
                router.process(&mut frames, &mut out);
                black_box(out.verdicts().len());
            })
        });
    }
    group.finish();
}

/// The fast path with every packet on another of 1M established flows, visited in a
/// scattered order: unlike `fast_path`, whose 4,096 flows (with their index lines) stay in a
/// 2 MiB L2 between visits, no lookup finds its lines in cache. `refill_only` copies the
/// same (equally cold) templates without processing them, so the pipeline's share shows.
fn fast_path_cold(c: &mut Criterion) {
    const SESSIONS: u32 = 1_000_000;
    // 7919 is prime and does not divide 10^6: k * 7919 mod 10^6 visits every flow once.
    const SCATTER: u64 = 7919;
    let mut group = c.benchmark_group("fast_path_cold");
    group.throughput(Throughput::Elements(BATCH as u64));
    let mut router = router_with_sessions(SESSIONS);
    let batches: Vec<Vec<Vec<u8>>> = (0..SESSIONS / BATCH as u32)
        .map(|b| {
            (0..BATCH as u32)
                .map(|i| {
                    let k = u64::from(b * BATCH as u32 + i);
                    tcp_packet(((k * SCATTER) % u64::from(SESSIONS)) as u32, false)
                })
                .collect()
        })
        .collect();
    let mut frames = batch();
    let mut out = Output::new(BATCH, router.dp.plan.interfaces.len());
    for probe in [&batches[0], &batches[batches.len() - 1]] {
        fill(&mut frames, probe);
        router.process(&mut frames, &mut out);
        assert!(
            out.verdicts()
                .iter()
                .all(|v| matches!(v, Verdict::Forward(_))),
            "established flows are forwarded: {:?}",
            out.verdicts()
        );
    }
    let mut next = 0;
    group.bench_function("1000000_sessions", |bench| {
        bench.iter(|| {
            fill(&mut frames, &batches[next % batches.len()]);
            next += 1;
            router.process(&mut frames, &mut out);
            black_box(out.verdicts().len());
        })
    });
    group.bench_function("refill_only", |bench| {
        bench.iter(|| {
            fill(&mut frames, &batches[next % batches.len()]);
            next += 1;
            black_box(&mut frames);
        })
    });
    group.finish();
}

/// Replies from the Internet to established flows (through the WAN port tables), batches of
/// 64 spread over the whole table as for `fast_path`.
fn fast_path_inbound(c: &mut Criterion) {
    let mut group = c.benchmark_group("fast_path_inbound");
    group.throughput(Throughput::Elements(BATCH as u64));
    for sessions in [1_000u32, 1_000_000] {
        let mut router = router_with_sessions(sessions);
        establish(&mut router, sessions);
        let replies = reply_packets(&router);
        let stride = (replies.len() / (BATCH * 64)).max(1);
        let batches: Vec<Vec<(u8, Vec<u8>)>> = (0..64)
            .map(|b| {
                (0..BATCH)
                    .filter_map(|i| replies.get(((b * BATCH + i) * stride) % replies.len()))
                    .cloned()
                    .collect()
            })
            .collect();
        let mut frames = batch();
        let mut out = Output::new(BATCH, router.dp.plan.interfaces.len());
        fill_on(&mut frames, &batches[0]);
        router.process(&mut frames, &mut out);
        assert!(
            out.verdicts()
                .iter()
                .all(|v| matches!(v, Verdict::Forward(_))),
            "replies are forwarded to the LAN: {:?}",
            out.verdicts()
        );
        let mut next = 0;
        group.bench_function(format!("{sessions}_sessions"), |bench| {
            bench.iter(|| {
                fill_on(&mut frames, &batches[next % batches.len()]);
                next += 1;
                router.process(&mut frames, &mut out);
                black_box(out.verdicts().len());
            })
        });
    }
    group.finish();
}

/// The refill alone (the copy of 64 frames from their templates that each `fast_path`
/// iteration makes before processing), so that the pipeline's share of those figures shows.
fn frame_refill(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame_refill");
    group.throughput(Throughput::Elements(BATCH as u64));
    let batches: Vec<Vec<Vec<u8>>> = (0..64u32)
        .map(|b| {
            (0..BATCH as u32)
                .map(|i| tcp_packet(b * BATCH as u32 + i, false))
                .collect()
        })
        .collect();
    let mut frames = batch();
    let mut next = 0;
    group.bench_function("64_frames", |bench| {
        bench.iter(|| {
            fill(&mut frames, &batches[next % batches.len()]);
            next += 1;
            black_box(&mut frames);
        })
    });
    group.finish();
}

fn slow_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("slow_path");
    group.throughput(Throughput::Elements(BATCH as u64));
    for sessions in [1_000u32, 1_000_000] {
        let mut frames = batch();
        // New flows are numbered above the preloaded ones (so most reuse an existing
        // internal endpoint's mapping once past 65,536: endpoint-independent mapping). The
        // router is rebuilt, untimed, before its table passes 1.9M sessions.
        let mut router: BenchRouter = router_with_sessions(sessions);
        let mut out = Output::new(BATCH, router.dp.plan.interfaces.len());
        let mut n = sessions;
        group.bench_function(format!("{sessions}_sessions"), |bench| {
            bench.iter_custom(|iterations| {
                let mut timed = Duration::ZERO;
                for _ in 0..iterations {
                    if router.dp.tables.conntrack.len() > 1_900_000 {
                        router = router_with_sessions(sessions);
                        n = sessions;
                    }
                    let packets: Vec<Vec<u8>> =
                        (n..n + BATCH as u32).map(|i| tcp_packet(i, true)).collect();
                    n += BATCH as u32;
                    fill(&mut frames, &packets);
                    let start = Instant::now();
                    router.process(&mut frames, &mut out);
                    timed += start.elapsed();
                    black_box(out.verdicts().len());
                }
                timed
            })
        });
    }
    group.finish();
}

fn forwarder_poll(c: &mut Criterion) {
    let mut group = c.benchmark_group("forwarder_poll");
    for sessions in [1_000u32, 1_000_000] {
        let router = router_with_sessions(sessions);
        let batches = spread_batches(sessions);
        let memory = FrameMemory::new(4 * BATCH, CHUNK_SIZE, HEADROOM).expect("frame memory");
        let mut device = MemoryDevice::new(Medium::Ip, FramePool::new(&memory).expect("pool"));
        let counters = Arc::new(Counters::default());
        let mut forwarder = Forwarder::new(Medium::Ip, &router.dp.plan, counters, BATCH);
        let mut now = router.now;
        let mut next = 0;
        group.throughput(Throughput::Elements(BATCH as u64));
        group.bench_function(format!("{sessions}_sessions"), |bench| {
            bench.iter(|| {
                for packet in &batches[next % batches.len()] {
                    device.inject(0, packet);
                }
                next += 1;
                let n = forwarder
                    .poll(&mut device, &router.dp, &router.neighbors, now)
                    .expect("in-memory poll");
                now += benches::BATCH_INTERVAL;
                black_box(device.take_sent().len());
                n
            })
        });
        if sessions == 1_000_000 {
            group.throughput(Throughput::Elements(1));
            group.bench_function("empty_1000000_sessions", |bench| {
                bench.iter(|| {
                    // a worker's clock, polling an empty ring back to back
                    now += Duration::from_nanos(200);
                    forwarder
                        .poll(&mut device, &router.dp, &router.neighbors, now)
                        .expect("in-memory poll")
                })
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(4));
    targets = fast_path, fast_path_cold, fast_path_inbound, frame_refill, slow_path, forwarder_poll
}
criterion_main!(benches);
