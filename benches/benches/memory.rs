//! Memory per tracked flow. A router whose connection table holds 2^20 sessions is filled to
//! 90% (a sharded table cannot be filled to the last slot without some shard overflowing
//! first); the resident memory it gained over the bare process, divided by the flows it
//! tracks, is what a flow costs: session slab, index, mappings and their index, LRU links,
//! port tables, fragment and sticky tables. The table's own accounting per slot of capacity
//! is printed beside it.

use benches::{open_sessions, rss_bytes, BenchRouter, BENCH_CONFIG};

const CAPACITY: u32 = 1 << 20;
const FLOWS: u32 = CAPACITY / 10 * 9;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        // `cargo bench -- --list` asks every bench target for its benchmarks.
        println!("memory_per_session: bench");
        return;
    }
    let config = BENCH_CONFIG.replace(
        "max_sessions = 2097152",
        &format!("max_sessions = {CAPACITY}"),
    );
    let before = rss_bytes();
    let mut router = BenchRouter::new(&config);
    let created = rss_bytes();
    open_sessions(&mut router, FLOWS);
    let filled = rss_bytes();
    let conntrack = &router.dp.tables.conntrack;
    let (session_bytes, port_bytes) = conntrack.memory_bytes();
    let mib = |b: u64| b as f64 / 1_048_576.0;
    println!(
        "capacity {} sessions, {} tracked flows",
        conntrack.capacity(),
        conntrack.len()
    );
    println!(
        "size_of::<Session>                    {} bytes",
        conntrack::SESSION_SIZE
    );
    println!(
        "table accounting per slot of capacity  {:.1} bytes (+ {:.1} MiB port tables)",
        session_bytes as f64 / conntrack.capacity() as f64,
        mib(port_bytes as u64)
    );
    println!(
        "rss: process {:.1} MiB, router created {:.1} MiB, filled {:.1} MiB",
        mib(before),
        mib(created),
        mib(filled)
    );
    println!(
        "memory per tracked flow (rss)          {:.1} bytes",
        (filled - before) as f64 / f64::from(FLOWS)
    );
}
