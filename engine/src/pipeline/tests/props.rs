//! Property tests: arbitrary bytes never panic the pipeline; NAT then reverse NAT is the
//! identity; every forwarded packet's checksums are valid by full recomputation; through the
//! device boundary, every frame goes back to its device and every one is accounted for.

use proptest::prelude::*;

use super::harness::*;
use super::packets::*;
use crate::device::memory::MemoryDevice;
use crate::device::{FrameMemory, FramePool, CHUNK_SIZE, HEADROOM};
use crate::forwarder::Forwarder;
use crate::packet::Medium;
use crate::pipeline::{Event, Verdict};

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1600), iface in 0u8..5, ethernet in any::<bool>()) {
        let mut router = Router::new(if ethernet { Medium::Ethernet } else { Medium::Ip });
        let _ = router.send(iface, &bytes);
    }

    /// Mutated valid packets (one byte changed) never panic and anything forwarded is still a
    /// valid IPv4 packet.
    #[test]
    fn mutated_packets_never_panic(at in 0usize..60, value in any::<u8>(), from_wan in any::<bool>()) {
        let mut router = Router::new(Medium::Ip);
        router.forward(LAN, &tcp((HOST_A, 25000), (SERVER, 443), SYN).bytes());
        let mut packet = if from_wan {
            tcp((SERVER, 443), (ISP1_ADDR, 25000), SYN_ACK).payload(b"0123456789abcdef").bytes()
        } else {
            udp((HOST_A, 25001), (SERVER, 53)).payload(b"0123456789abcdefghijklmnopqrstuvwxyz").bytes()
        };
        let i = at % packet.len();
        packet[i] = value;
        let (verdict, out) = router.send(if from_wan { ISP1 } else { LAN }, &packet);
        if let Verdict::Forward(_) = verdict {
            prop_assert_eq!(crate::packet::checksum::full(&out[..20]), 0);
        }
    }

    /// A flow out and its reply back: the reply the host receives is exactly what the server
    /// sent, addressed to the host; all checksums valid on both legs.
    #[test]
    fn nat_then_reverse_nat_is_identity(host in 2u8..250, sport in 1u16.., dport in 1u16.., use_udp in any::<bool>(), payload in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut router = Router::with_config(Medium::Ip, &TOPOLOGY.replace("max_sessions = 4096", "max_sessions = 65536"));
        let host_ip = std::net::Ipv4Addr::new(192, 168, 1, host);
        let payload: &'static [u8] = Box::leak(payload.into_boxed_slice());
        let out_pkt = if use_udp { udp((host_ip, sport), (SERVER, dport)) } else { tcp((host_ip, sport), (SERVER, dport), SYN).client(true) }.payload(payload);
        let (egress, out) = router.forward(LAN, &out_pkt.bytes());
        assert_checksums_valid(&out);
        prop_assert!(egress == ISP1 || egress == ISP2);
        let ext_ip = std::net::Ipv4Addr::new(out[12], out[13], out[14], out[15]);
        let ext_port = u16::from_be_bytes([out[20], out[21]]);
        prop_assert_eq!(out, out_pkt.translated((ext_ip, ext_port), (SERVER, dport)).bytes());

        let reply = if use_udp { udp((SERVER, dport), (ext_ip, ext_port)) } else { tcp((SERVER, dport), (ext_ip, ext_port), SYN_ACK).client(false) }.payload(payload);
        let (back, delivered) = router.forward(egress, &reply.bytes());
        prop_assert_eq!(back, LAN);
        assert_checksums_valid(&delivered);
        prop_assert_eq!(delivered, reply.translated((SERVER, dport), (host_ip, sport)).bytes());
    }

    /// Batches of valid, mutated and random frames through the forwarder and the in-memory
    /// device, some against a full transmit queue: no panic; after every poll each frame is
    /// back in the device's pool; each received frame is forwarded, given to the kernel or
    /// counted as a drop (an ICMP error or reset sent in its place counts as both a drop and
    /// a frame sent).
    #[test]
    fn every_frame_returns_to_its_device(
        frames in proptest::collection::vec((0u8..5, 0usize..4, any::<u8>(), 0usize..80, proptest::collection::vec(any::<u8>(), 0..80)), 1..40),
        tx_limit in prop_oneof![Just(usize::MAX), 0usize..4],
    ) {
        let Router { dp, counters, neighbors, .. } = Router::new(Medium::Ip);
        let memory = FrameMemory::new(24, CHUNK_SIZE, HEADROOM).unwrap();
        let mut device = MemoryDevice::new(Medium::Ip, FramePool::new(&memory).unwrap());
        device.tx_limit = tx_limit;
        let mut forwarder = Forwarder::new(Medium::Ip, &dp.plan, counters.clone(), 16);
        for (iface, kind, value, at, random) in &frames {
            let packet = match kind {
                0 => udp((HOST_A, 30000 + u16::from(*value)), (SERVER, 53)).bytes(),
                1 => tcp((HOST_B, 31000), (SERVER, 443), SYN).ttl(*value % 3).bytes(),
                2 => {
                    let mut p = tcp((SERVER, 443), (ISP1_ADDR, 20000 + u16::from(*value)), SYN_ACK).bytes();
                    let i = at % p.len();
                    p[i] = *value;
                    p
                }
                _ => random.clone(),
            };
            device.inject(*iface % 4, &packet);
        }
        let mut received = 0;
        let mut sent = 0;
        let mut to_kernel = 0;
        for _ in 0..frames.len() {
            received += forwarder.poll(&mut device, &dp, &neighbors, std::time::Duration::from_secs(1)).unwrap();
            prop_assert_eq!(device.outstanding(), 0);
            sent += device.take_sent().len() as u64;
            to_kernel += device.take_to_kernel().len() as u64;
        }
        prop_assert_eq!(received, frames.len());
        let replies = counters.events(Event::IcmpErrorsSent) + counters.events(Event::TcpResetsSent);
        prop_assert_eq!(counters.events(Event::ToKernel), to_kernel);
        let refused = counters.drops(crate::pipeline::DropReason::TxQueueFull);
        prop_assert_eq!(counters.events(Event::Forwarded) + replies, sent + refused);
        prop_assert_eq!(
            received as u64 + refused,
            counters.events(Event::Forwarded) + to_kernel + counters.total_drops()
        );
    }
}
