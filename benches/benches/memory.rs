//! Memory per tracked flow: resident memory of a router holding a million sessions, minus the
//! same router empty, divided by a million. The tables are preallocated, so the empty router's
//! pages are only touched as sessions arrive: the difference is what sessions really cost
//! (session slab, index, mappings, LRU links), port tables included.

use benches::{router_with_sessions, rss_bytes, BenchRouter, BENCH_CONFIG};

fn main() {
    if std::env::args().any(|a| a == "--list") {
        // cargo bench lists benchmarks: this one has a single unnamed entry.
        println!("memory_per_session: bench");
        return;
    }
    const FLOWS: u32 = 1_000_000;
    let before = rss_bytes();
    let empty = BenchRouter::new(BENCH_CONFIG);
    let with_empty_tables = rss_bytes();
    drop(empty);
    let full = router_with_sessions(FLOWS);
    let with_sessions = rss_bytes();
    let per_session = (with_sessions.saturating_sub(before)) as f64 / f64::from(FLOWS);
    println!(
        "sessions:                 {}",
        full.dp.tables.conntrack.len()
    );
    println!(
        "size_of::<Session>:       {} bytes",
        conntrack::SESSION_SIZE
    );
    println!(
        "rss, process start:       {:.1} MiB",
        before as f64 / 1048576.0
    );
    println!(
        "rss, empty tables:        {:.1} MiB",
        with_empty_tables as f64 / 1048576.0
    );
    println!(
        "rss, {FLOWS} sessions:   {:.1} MiB",
        with_sessions as f64 / 1048576.0
    );
    println!("memory per session:       {per_session:.1} bytes (all tables, port tables and index included)");
}
