//! The express lane against the general path: two routers built alike, one pushing frames
//! through [`Pipeline::process`] (look-ahead, express lane, general path), the other through
//! [`Pipeline::process_frame`] (the general path alone), fed the same random traffic in the
//! same batches (flows out and their replies, a LAN host reaching another's external
//! endpoint, fragments, TCP flags of every kind, TTL 1, time jumps across timeouts and
//! seconds, links going down and up). Every frame must come out of both alike, and every
//! counter and table statistic must end alike. Batches of several frames let an earlier frame
//! change the table under a later one's look-ahead (a session ending, its port released).

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use balancer::LinkState;
use proptest::prelude::*;

use super::harness::*;
use super::packets::*;
use crate::packet::Medium;
use crate::pipeline::counters::MAX_WANS;
use crate::pipeline::{DropReason, Event, Verdict};

const TCP_FLAGS: [u8; 5] = [SYN, ACK, PSH_ACK, FIN_ACK, RST];

type Flow = (u8, (Ipv4Addr, u16), (Ipv4Addr, u16));

/// The flows the traffic draws from: (protocol, internal endpoint, remote endpoint); 2 is DNS
/// (its rule sends it out isp2), 4 an echo (identifier 7). Flow 5's destination is replaced by
/// flow 0's external endpoint once flow 0 has one: a LAN host reaching another through the
/// router (a hairpin).
const FLOWS: [Flow; 6] = [
    (17, (HOST_A, 40000), (SERVER, 443)),
    (6, (HOST_B, 40001), (SERVER2, 80)),
    (17, (HOST_A, 5000), (SERVER, 53)),
    (6, (HOST_B, 6000), (SERVER2, 3478)),
    (1, (HOST_A, 7), (SERVER, 0)),
    (17, (HOST_B, 41000), (ISP1_ADDR, 20000)),
];
const HAIRPIN_FLOW: usize = 5;
const HAIRPIN_TARGET: usize = 0;

#[derive(Clone, Debug)]
enum Step {
    /// A packet of flow `flow` from the LAN (TCP flags `TCP_FLAGS[flags]`), TTL 1 if `expiring`,
    /// in two fragments if `fragmented` (UDP only).
    Out {
        flow: usize,
        flags: usize,
        expiring: bool,
        fragmented: bool,
    },
    /// Its reply from the WAN it left by (to the translated endpoint last seen), TTL 1 if
    /// `expiring`.
    Back {
        flow: usize,
        flags: usize,
        expiring: bool,
    },
    /// The batch so far goes through.
    Flush,
    /// Time moves on (after the batch so far).
    Wait { millis: u64 },
    /// A WAN goes down or comes back (after the batch so far).
    Link { wan: usize, up: bool },
}

fn step() -> impl Strategy<Value = Step> {
    let flag = 0..TCP_FLAGS.len();
    prop_oneof![
        6 => (0..FLOWS.len(), flag.clone(), prop::bool::weighted(0.15), prop::bool::weighted(0.1))
            .prop_map(|(flow, flags, expiring, fragmented)| Step::Out { flow, flags, expiring, fragmented }),
        5 => (0..FLOWS.len(), flag, prop::bool::weighted(0.15))
            .prop_map(|(flow, flags, expiring)| Step::Back { flow, flags, expiring }),
        3 => Just(Step::Flush),
        2 => prop_oneof![0u64..900, 900u64..2_000, 200_000u64..400_000].prop_map(|millis| Step::Wait { millis }),
        1 => (0..3usize, any::<bool>()).prop_map(|(wan, up)| Step::Link { wan, up }),
    ]
}

fn packet(proto: u8, src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), flags: u8, request: bool) -> Pkt {
    match proto {
        6 => tcp(src, dst, flags),
        17 => udp(src, dst).payload(b"sixteen bytes of payload, or more"),
        _ if request => echo_request(src.0, dst.0, src.1),
        _ => echo_reply(src.0, dst.0, dst.1),
    }
}

fn counters_of(router: &Router) -> Vec<u64> {
    let c = &router.counters;
    let mut all: Vec<u64> = DropReason::ALL.iter().map(|&r| c.drops(r)).collect();
    all.extend(Event::ALL.iter().map(|&e| c.events(e)));
    for wan in 0..MAX_WANS {
        if let Some(t) = c.wan(wan) {
            for v in [&t.tx_packets, &t.tx_bytes, &t.rx_packets, &t.rx_bytes] {
                all.push(v.load(std::sync::atomic::Ordering::Relaxed));
            }
        }
    }
    all
}

/// Where each flow's packets last left, and as what: (WAN interface, source endpoint).
type Externals = HashMap<usize, (u8, (Ipv4Addr, u16))>;

/// The frames of a packet step, given what is known of the flows' external endpoints.
fn frames_of(s: &Step, external: &Externals) -> Vec<(u8, Vec<u8>)> {
    match *s {
        Step::Out {
            flow,
            flags,
            expiring,
            fragmented,
        } => {
            let (proto, internal, mut remote) = FLOWS[flow];
            if flow == HAIRPIN_FLOW {
                if let Some(&(_, target)) = external.get(&HAIRPIN_TARGET) {
                    remote = target;
                }
            }
            let p = packet(proto, internal, remote, TCP_FLAGS[flags], true);
            let bytes = if expiring { p.ttl(1) } else { p }.bytes();
            if fragmented && proto == 17 {
                let (first, later) = fragments(&bytes, 16);
                vec![(LAN, first), (LAN, later)]
            } else {
                vec![(LAN, bytes)]
            }
        }
        Step::Back {
            flow,
            flags,
            expiring,
        } => {
            let (proto, _, remote) = FLOWS[flow];
            let (wan, ext) = external
                .get(&flow)
                .copied()
                .unwrap_or((ISP1, (ISP1_ADDR, 20000)));
            let p = packet(proto, remote, ext, TCP_FLAGS[flags], false);
            vec![(wan, if expiring { p.ttl(1) } else { p }.bytes())]
        }
        Step::Flush | Step::Wait { .. } | Step::Link { .. } => Vec::new(),
    }
}

/// Learns the external endpoint a flow's forwarded packet left with.
fn learn(flow: usize, (verdict, out): &(Verdict, Vec<u8>), external: &mut Externals) {
    let Verdict::Forward(egress) = *verdict else {
        return;
    };
    // only whole packets out of a WAN (not a hairpin back to the LAN, not a fragment)
    if egress == LAN || out.len() < 28 || u16::from_be_bytes([out[6], out[7]]) & 0x3fff != 0 {
        return;
    }
    let src = Ipv4Addr::new(out[12], out[13], out[14], out[15]);
    let port = if FLOWS[flow].0 == 1 {
        u16::from_be_bytes([out[24], out[25]])
    } else {
        u16::from_be_bytes([out[20], out[21]])
    };
    external.insert(flow, (egress, (src, port)));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn express_lane_and_general_path_agree(steps in proptest::collection::vec(step(), 1..100)) {
        let mut batched = Router::new(Medium::Ip);
        let mut general = Router::new(Medium::Ip);
        general.path = Path::General;
        let mut external = Externals::new();
        // the batch being gathered: its frames, and for each the flow of an Out step
        let mut pending: Vec<(u8, Vec<u8>)> = Vec::new();
        let mut pending_flows: Vec<Option<usize>> = Vec::new();
        for (n, s) in steps.iter().chain([&Step::Flush]).enumerate() {
            let frames = frames_of(s, &external);
            let flow = match *s {
                Step::Out { flow, .. } => Some(flow),
                _ => None,
            };
            pending_flows.extend(frames.iter().map(|_| flow));
            pending.extend(frames);
            let flush = !matches!(s, Step::Out { .. } | Step::Back { .. }) || pending.len() + 2 > BATCH;
            if flush && !pending.is_empty() {
                let a = batched.send_many(&pending);
                let b = general.send_many(&pending);
                prop_assert_eq!(&a, &b, "batch ending at step {}: {:?}", n, s);
                for (result, flow) in a.iter().zip(&pending_flows) {
                    if let Some(flow) = *flow {
                        learn(flow, result, &mut external);
                    }
                }
                pending.clear();
                pending_flows.clear();
            }
            match *s {
                Step::Wait { millis } => {
                    batched.advance(Duration::from_millis(millis));
                    general.advance(Duration::from_millis(millis));
                }
                Step::Link { wan, up } => {
                    let state = if up { LinkState::Up } else { LinkState::Down };
                    batched.set_link(wan, state);
                    general.set_link(wan, state);
                }
                _ => {}
            }
        }
        prop_assert_eq!(counters_of(&batched), counters_of(&general));
        prop_assert_eq!(batched.dp.tables.conntrack.stats(), general.dp.tables.conntrack.stats());
        prop_assert_eq!(batched.dp.tables.conntrack.len(), general.dp.tables.conntrack.len());
    }
}
