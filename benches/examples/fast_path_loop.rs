//! Runs the fast path (or, with `new`, the slow path: a new flow per packet) in a loop for
//! profiling with `perf record -e cpu-clock`:
//! `cargo run --profile bench -p benches --example fast_path_loop -- SESSIONS SECONDS [new|spread|replies]`.
//! By default one batch of 64 flows is replayed (hot in cache); `spread` cycles through 64
//! batches spread over the whole table, as `fast_path` in the pipeline bench does; `replies`
//! the servers' replies to established flows, spread likewise, as `fast_path_inbound` does.

use std::time::{Duration, Instant};

use benches::{
    batch, establish, fill, fill_on, reply_packets, router_with_sessions, tcp_packet, BATCH,
};
use engine::pipeline::Output;

fn main() {
    let mut args = std::env::args().skip(1);
    let sessions: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let mode = args.next();
    let new_flows = mode.as_deref() == Some("new");
    let replies = mode.as_deref() == Some("replies");
    let spread = replies || mode.as_deref() == Some("spread");
    let mut router = router_with_sessions(sessions);
    let reply_batches: Vec<Vec<(u8, Vec<u8>)>> = if replies {
        establish(&mut router, sessions);
        let all = reply_packets(&router);
        let stride = (all.len() / (BATCH * 64)).max(1);
        (0..64)
            .map(|b| {
                (0..BATCH)
                    .filter_map(|i| all.get(((b * BATCH + i) * stride) % all.len()))
                    .cloned()
                    .collect()
            })
            .collect()
    } else {
        Vec::new()
    };
    let stride = if spread {
        (sessions / (BATCH as u32 * 64)).max(1)
    } else {
        0
    };
    // the outbound batches (none for `replies`, which has its own)
    let template_batches = match (replies, spread) {
        (true, _) => 0,
        (false, true) => 64u32,
        (false, false) => 1,
    };
    let templates: Vec<Vec<Vec<u8>>> = (0..template_batches)
        .map(|b| {
            (0..BATCH as u32)
                .map(|i| {
                    let n = if spread {
                        (b * BATCH as u32 + i) * stride
                    } else {
                        i
                    };
                    tcp_packet(n % sessions, false)
                })
                .collect()
        })
        .collect();
    let mut frames = batch();
    let mut out = Output::new(BATCH, router.dp.plan.interfaces.len());
    let start = Instant::now();
    let mut batches = 0u64;
    // Per-window figures too: on a shared machine the best windows show the code's own cost,
    // the whole-run average also what the neighbours took.
    let mut windows: Vec<f64> = Vec::new();
    while start.elapsed() < Duration::from_secs(seconds) {
        let window = Instant::now();
        if new_flows {
            // 1000 batches of new flows, numbered past the preloaded ones.
            let first = sessions + (batches as u32) * BATCH as u32;
            let fresh: Vec<Vec<Vec<u8>>> = (0..1000u32)
                .map(|b| {
                    (0..BATCH as u32)
                        .map(|i| tcp_packet(first + b * BATCH as u32 + i, true))
                        .collect()
                })
                .collect();
            for batch_packets in &fresh {
                fill(&mut frames, batch_packets);
                router.process(&mut frames, &mut out);
            }
        } else if replies {
            for i in 0..1000 {
                fill_on(&mut frames, &reply_batches[i % reply_batches.len()]);
                router.process(&mut frames, &mut out);
            }
        } else {
            for i in 0..1000 {
                fill(&mut frames, &templates[i % templates.len()]);
                router.process(&mut frames, &mut out);
            }
        }
        batches += 1000;
        windows.push(window.elapsed().as_nanos() as f64 / (1000 * BATCH) as f64);
    }
    windows.sort_by(f64::total_cmp);
    let best = windows.first().copied().unwrap_or(0.0);
    let median = windows.get(windows.len() / 2).copied().unwrap_or(0.0);
    let per_packet = start.elapsed().as_nanos() as f64 / (batches * BATCH as u64) as f64;
    let what = if new_flows { "new flow" } else { "packet" };
    println!(
        "{sessions} sessions: {per_packet:.1} ns per {what} (refill and, for new flows, packet \
         generation included); windows of 1000 batches: best {best:.1}, median {median:.1}; \
         {packets} packets",
        packets = batches * BATCH as u64
    );
}
