//! Fast path (established flows, batches of 64) and slow path (a new flow per packet) with 1k
//! and 1M sessions in the table. Each iteration refills the batch's frames from templates (as
//! a NIC would write them), so the figure includes one ~60-byte copy per packet.

use std::hint::black_box;
use std::time::{Duration, Instant};

use benches::{batch, fill, router_with_sessions, tcp_packet, BenchRouter, BATCH};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use engine::pipeline::Output;

fn fast_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("fast_path");
    group.throughput(Throughput::Elements(BATCH as u64));
    for sessions in [1_000u32, 1_000_000] {
        let mut router = router_with_sessions(sessions);
        // 64 batches of established-flow packets spread over the whole table.
        let stride = (sessions / (BATCH as u32 * 64)).max(1);
        let batches: Vec<Vec<Vec<u8>>> = (0..64u32)
            .map(|b| {
                (0..BATCH as u32)
                    .map(|i| tcp_packet(((b * BATCH as u32 + i) * stride) % sessions, false))
                    .collect()
            })
            .collect();
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

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(4));
    targets = fast_path, slow_path
}
criterion_main!(benches);
