//! The whole packet path on arbitrary frames, both directions: a fresh data plane (2 WANs,
//! a small table), a forwarder and the in-memory device; the input is a sequence of
//! (interface, time step, length, bytes) records, run in batches through `Forwarder::poll`
//! on Ethernet or IP frames (the input's first byte says which). Never a panic, and every
//! frame goes back to the device's pool.
#![no_main]

use std::sync::Arc;
use std::time::Duration;

use balancer::LinkState;
use engine::config::Config;
use engine::dataplane::DataPlane;
use engine::device::memory::MemoryDevice;
use engine::device::{FrameMemory, FramePool, Medium, CHUNK_SIZE, HEADROOM};
use engine::forwarder::Forwarder;
use engine::neighbors::StaticNeighbors;
use engine::pipeline::Counters;
use libfuzzer_sys::fuzz_target;

const CONFIG: &str = r#"
[[lan]]
name = "lan"
interface = "lan0"
address = "192.168.1.1/24"
extra_subnets = ["10.20.0.0/16"]

[[wan]]
name = "isp1"
interface = "wan1"
address = "198.51.100.2/30"
gateway = "198.51.100.1"
nat_ports = "20000-20063"

[[wan]]
name = "isp2"
interface = "wan2"
address = "203.0.113.2/30"
gateway = "203.0.113.1"
nat_ports = "20000-20063"

[[group]]
name = "both"
members = [{ wan = "isp1" }, { wan = "isp2", weight = 2 }]

[[rule]]
name = "dns"
proto = "udp"
dst_ports = [53]
wan = "isp2"
sticky = "1m"

[[rule]]
name = "main"
dst = ["10.97.0.0/16"]
action = "main"

[[rule]]
name = "default"
group = "both"

[conntrack]
max_sessions = 256
shards = 2
max_fragments = 16
"#;

/// Frames in the device's memory: more than one batch, fewer than the input may send.
const FRAMES: usize = 64;
const BATCH: usize = 16;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    let medium = if mode & 1 == 0 {
        Medium::Ethernet
    } else {
        Medium::Ip
    };
    let config = Config::from_toml_str(CONFIG).expect("the fuzz config is valid");
    let dp = DataPlane::new(&config, 7, LinkState::Up).expect("a data plane");
    let memory = FrameMemory::new(FRAMES, CHUNK_SIZE, HEADROOM).expect("frame memory");
    let mut device = MemoryDevice::new(medium, FramePool::new(&memory).expect("a pool"));
    let counters = Arc::new(Counters::default());
    let mut forwarder = Forwarder::new(medium, &dp.plan, counters, BATCH);
    let mut neighbors = StaticNeighbors::new();
    for iface in 0..3u8 {
        neighbors.set_interface(iface, [2, 0, 0, 0, 0, iface + 1]);
    }
    neighbors.set_host(1, "198.51.100.1".parse().unwrap(), [2, 0, 0, 0, 1, 1]);
    neighbors.set_host(2, "203.0.113.1".parse().unwrap(), [2, 0, 0, 0, 1, 2]);
    neighbors.set_host(0, "192.168.1.10".parse().unwrap(), [2, 0, 0, 0, 2, 10]);
    let mut now = Duration::from_secs(1);
    let mut queued = 0;
    while rest.len() >= 4 {
        let (head, tail) = rest.split_at(4);
        let iface = head[0] % 4; // 3: an interface the plan does not know
        now += Duration::from_millis(u64::from(head[1]) * 50);
        let len = usize::from(u16::from_be_bytes([head[2], head[3]])) % 1600;
        let len = len.min(tail.len());
        let (frame, tail) = tail.split_at(len);
        rest = tail;
        device.inject(iface, frame);
        queued += 1;
        if queued == BATCH {
            let _ = forwarder.poll(&mut device, &dp, &neighbors, now);
            let _ = device.take_sent();
            let _ = device.take_to_kernel();
            queued = 0;
        }
    }
    while device.pending() > 0 {
        let _ = forwarder.poll(&mut device, &dp, &neighbors, now);
    }
    let _ = device.take_sent();
    let _ = device.take_to_kernel();
    assert_eq!(device.outstanding(), 0, "every frame back in the pool");
});
