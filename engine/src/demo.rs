//! `fwd demo`: the forwarding core at work on an embedded default config, entirely in memory
//! (no privileges needed). Simulated LAN hosts open TCP and UDP flows through the real
//! pipeline and connection table over two WANs; a simulated Internet answers every packet on
//! the WAN it left by. One WAN is cut a third of the way through and restored at two thirds:
//! new flows move to the surviving WAN at once and come back after the restore. Once the
//! daemon runs for real, the netns demo replaces this simulation.

use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use balancer::LinkState;
use etherparse::PacketBuilder;

use crate::config::Config;
use crate::dataplane::DataPlane;
use crate::device::memory::MemoryDevice;
use crate::device::{Device, FrameMemory, FramePool, CHUNK_SIZE, HEADROOM};
use crate::forwarder::Forwarder;
use crate::neighbors::StaticNeighbors;
use crate::packet::Medium;
use crate::pipeline::{Counters, Event};

/// The embedded default: one LAN, two WANs weighted 2:1, everything balanced.
pub const DEMO_CONFIG: &str = r#"
[[lan]]
name = "lan"
interface = "lan0"
address = "192.168.1.1/24"

[[wan]]
name = "isp1"
interface = "wan1"
address = "198.51.100.2/30"
gateway = "198.51.100.1"
weight = 2

[[wan]]
name = "isp2"
interface = "wan2"
address = "203.0.113.2/30"
gateway = "203.0.113.1"

[[group]]
name = "balanced"
members = [{ wan = "isp1" }, { wan = "isp2" }]

[[rule]]
name = "default"
group = "balanced"
"#;

/// How the demo runs.
#[derive(Clone, Copy, Debug)]
pub struct DemoOptions {
    /// Simulated seconds.
    pub seconds: u32,
    /// Sleep in real time between ticks (false: as fast as possible, for tests).
    pub real_time: bool,
}

/// Per-second figures of one WAN.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WanSecond {
    pub packets_out: u64,
    pub packets_in: u64,
    pub sessions: u64,
}

/// What the demo observed, one entry per simulated second.
#[derive(Clone, Debug, Default)]
pub struct DemoReport {
    pub seconds: Vec<[WanSecond; 2]>,
    pub cut_at: u32,
    pub restored_at: u32,
}

const TICKS_PER_SECOND: u32 = 10;
const HOSTS: u8 = 20;
const NEW_FLOWS_PER_HOST_PER_TICK: u16 = 1;

pub fn run(out: &mut dyn Write, options: DemoOptions) -> io::Result<DemoReport> {
    let config = Config::from_toml_str(DEMO_CONFIG).map_err(|e| io::Error::other(e.to_string()))?;
    let dataplane =
        DataPlane::new(&config, 1, LinkState::Up).map_err(|e| io::Error::other(e.to_string()))?;
    let neighbors = StaticNeighbors::new();
    let counters = Arc::new(Counters::default());
    let memory = FrameMemory::new(64, CHUNK_SIZE, HEADROOM)?;
    let mut device = MemoryDevice::new(Medium::Ip, FramePool::new(&memory)?);
    let caps = device.capabilities();
    let mut forwarder = Forwarder::new(caps.medium, &dataplane.plan, counters.clone(), 64);

    let cut_at = options.seconds / 3;
    let restored_at = 2 * options.seconds / 3;
    let mut report = DemoReport {
        cut_at,
        restored_at,
        ..DemoReport::default()
    };
    let mut last = [(0u64, 0u64); 2];
    let mut next_port: u16 = 1024;

    writeln!(out, "fwd demo (in memory): {HOSTS} LAN hosts, isp1 weight 2, isp2 weight 1; isp1 is cut at {cut_at}s and restored at {restored_at}s")?;
    writeln!(
        out,
        "{:>4}  {:>8} {:>6} {:>6}  {:>8} {:>6} {:>6}",
        "t", "isp1 out", "in", "flows", "isp2 out", "in", "flows"
    )?;
    for tick in 0..options.seconds * TICKS_PER_SECOND {
        let now = Duration::from_millis(u64::from(tick) * 100) + Duration::from_secs(1);
        let second = tick / TICKS_PER_SECOND;
        let isp1_up = second < cut_at || second >= restored_at;
        dataplane.health.set(
            0,
            if isp1_up {
                LinkState::Up
            } else {
                LinkState::Down
            },
        );

        // LAN hosts open new flows and keep talking on the flows they have.
        for host in 0..HOSTS {
            let src = Ipv4Addr::new(192, 168, 1, 10 + host);
            for _ in 0..NEW_FLOWS_PER_HOST_PER_TICK {
                next_port = if next_port >= 60000 {
                    1024
                } else {
                    next_port + 1
                };
                device.inject(
                    0,
                    &udp(src, next_port, Ipv4Addr::new(93, 184, 216, 34), 443),
                );
            }
        }
        drain(&mut forwarder, &mut device, &dataplane, &neighbors, now)?;
        // The Internet answers what reached it, on the WAN it came by; a cut WAN delivers nothing.
        for frame in device.take_sent() {
            let wan = usize::from(frame.iface).wrapping_sub(1);
            if wan > 1 || (wan == 0 && !isp1_up) {
                continue;
            }
            if let Some(reply) = reply_to(&frame.bytes) {
                device.inject(frame.iface, &reply);
            }
        }
        drain(&mut forwarder, &mut device, &dataplane, &neighbors, now)?;
        device.take_sent();

        if (tick + 1) % TICKS_PER_SECOND == 0 {
            let mut row = [WanSecond::default(); 2];
            for (w, slot) in row.iter_mut().enumerate() {
                let traffic = counters.wan(w).map_or((0, 0), |t| {
                    (
                        t.tx_packets.load(std::sync::atomic::Ordering::Relaxed),
                        t.rx_packets.load(std::sync::atomic::Ordering::Relaxed),
                    )
                });
                *slot = WanSecond {
                    packets_out: traffic.0 - last[w].0,
                    packets_in: traffic.1 - last[w].1,
                    sessions: dataplane.tables.conntrack.wan_sessions(w as u8),
                };
                last[w] = traffic;
            }
            let mark = if second == cut_at {
                "  <- isp1 cut"
            } else if second == restored_at {
                "  <- isp1 restored"
            } else {
                ""
            };
            writeln!(
                out,
                "{:>3}s  {:>8} {:>6} {:>6}  {:>8} {:>6} {:>6}{mark}",
                second + 1,
                row[0].packets_out,
                row[0].packets_in,
                row[0].sessions,
                row[1].packets_out,
                row[1].packets_in,
                row[1].sessions,
            )?;
            report.seconds.push(row);
        }
        if options.real_time {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    writeln!(
        out,
        "forwarded {} packets, {} sessions created, {} dropped",
        counters.events(Event::Forwarded),
        counters.events(Event::SessionsCreated),
        counters.total_drops()
    )?;
    Ok(report)
}

fn drain<'m>(
    forwarder: &mut Forwarder<'m>,
    device: &mut MemoryDevice<'m>,
    dataplane: &DataPlane,
    neighbors: &StaticNeighbors,
    now: Duration,
) -> io::Result<()> {
    while device.pending() > 0 {
        forwarder.poll(device, dataplane, neighbors, now)?;
    }
    Ok(())
}

fn udp(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(64);
    // Building a small UDP packet cannot fail; an empty packet would just be counted as malformed.
    let _ = PacketBuilder::ipv4(src.octets(), dst.octets(), 64)
        .udp(sport, dport)
        .write_to_vec(&mut bytes, b"demo");
    bytes
}

/// The server's answer to a UDP packet that left fwd: addresses and ports swapped.
fn reply_to(packet: &[u8]) -> Option<Vec<u8>> {
    let sliced = etherparse::SlicedPacket::from_ip(packet).ok()?;
    let (src, dst) = match sliced.net? {
        etherparse::NetSlice::Ipv4(ip) => {
            (ip.header().source_addr(), ip.header().destination_addr())
        }
        _ => return None,
    };
    match sliced.transport? {
        etherparse::TransportSlice::Udp(u) => {
            Some(udp(dst, u.destination_port(), src, u.source_port()))
        }
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The demo's story holds: isp1 carries traffic, none while cut, some again after.
    #[test]
    fn demo_moves_traffic_and_brings_it_back() {
        let mut sink = Vec::new();
        let report = run(
            &mut sink,
            DemoOptions {
                seconds: 9,
                real_time: false,
            },
        )
        .unwrap();
        let (cut, restored) = (report.cut_at as usize, report.restored_at as usize);
        let before = report.seconds[cut - 1];
        assert!(
            before[0].packets_out > before[1].packets_out,
            "isp1 (weight 2) carries more before the cut"
        );
        for second in &report.seconds[cut + 1..restored] {
            assert_eq!(
                second[0].packets_in, 0,
                "nothing comes back over the cut WAN"
            );
            assert!(second[1].packets_out > 0);
        }
        let after = report.seconds[restored + 1];
        assert!(
            after[0].packets_out > 0,
            "new flows use isp1 again after the restore"
        );
        let text = String::from_utf8(sink).unwrap();
        assert!(text.contains("isp1 cut"));
    }
}
