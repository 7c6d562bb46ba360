//! The express lane against the general path: two routers built alike, one pushing frames
//! through [`Pipeline::process`] (look-ahead, express lane, general path), the other through
//! [`Pipeline::process_frame`] (the general path alone), fed the same random traffic (flows
//! out and their replies, TCP flags of every kind, TTL 1, time jumps across timeouts and
//! seconds, links going down and up). Every frame must come out of both alike, and every
//! counter must end alike.

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

/// The flows the traffic draws from: (protocol, internal endpoint, remote endpoint); 2 is DNS
/// (its rule sends it out isp2), 4 an echo (identifier 7), 5 a LAN host reaching isp1's
/// address (a hairpin, when the port is mapped).
type Flow = (u8, (Ipv4Addr, u16), (Ipv4Addr, u16));

const FLOWS: [Flow; 6] = [
    (6, (HOST_A, 40000), (SERVER, 443)),
    (6, (HOST_B, 40001), (SERVER2, 80)),
    (17, (HOST_A, 5000), (SERVER, 53)),
    (17, (HOST_B, 6000), (SERVER2, 3478)),
    (1, (HOST_A, 7), (SERVER, 0)),
    (6, (HOST_B, 41000), (ISP1_ADDR, 40000)),
];

#[derive(Clone, Debug)]
enum Step {
    /// A packet of flow `flow` from the LAN (TCP flags `TCP_FLAGS[flags]`), TTL 1 if `expiring`.
    Out {
        flow: usize,
        flags: usize,
        expiring: bool,
    },
    /// Its reply from the WAN it left by (to the translated endpoint last seen), TTL 1 if
    /// `expiring`.
    Back {
        flow: usize,
        flags: usize,
        expiring: bool,
    },
    /// Time moves on.
    Wait { millis: u64 },
    /// A WAN goes down or comes back.
    Link { wan: usize, up: bool },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0..FLOWS.len(), 0..TCP_FLAGS.len(), prop::bool::weighted(0.15))
            .prop_map(|(flow, flags, expiring)| Step::Out { flow, flags, expiring }),
        5 => (0..FLOWS.len(), 0..TCP_FLAGS.len(), prop::bool::weighted(0.15))
            .prop_map(|(flow, flags, expiring)| Step::Back { flow, flags, expiring }),
        2 => prop_oneof![0u64..900, 900u64..2_000, 200_000u64..400_000].prop_map(|millis| Step::Wait { millis }),
        1 => (0..3usize, any::<bool>()).prop_map(|(wan, up)| Step::Link { wan, up }),
    ]
}

fn packet(proto: u8, src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), flags: u8, request: bool) -> Pkt {
    match proto {
        6 => tcp(src, dst, flags),
        17 => udp(src, dst),
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

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn express_lane_and_general_path_agree(steps in proptest::collection::vec(step(), 1..80)) {
        let mut batched = Router::new(Medium::Ip);
        let mut general = Router::new(Medium::Ip);
        general.path = Path::General;
        // where each flow's last forwarded packet left, and as what: (WAN interface, source)
        let mut external: HashMap<usize, (u8, (Ipv4Addr, u16))> = HashMap::new();
        for (n, s) in steps.iter().enumerate() {
            let (iface, bytes) = match *s {
                Step::Out { flow, flags, expiring } => {
                    let (proto, internal, remote) = FLOWS[flow];
                    let p = packet(proto, internal, remote, TCP_FLAGS[flags], true);
                    (LAN, if expiring { p.ttl(1) } else { p }.bytes())
                }
                Step::Back { flow, flags, expiring } => {
                    let (proto, _, remote) = FLOWS[flow];
                    let (wan, ext) = external.get(&flow).copied().unwrap_or((ISP1, (ISP1_ADDR, 40000)));
                    let p = packet(proto, remote, ext, TCP_FLAGS[flags], false);
                    (wan, if expiring { p.ttl(1) } else { p }.bytes())
                }
                Step::Wait { millis } => {
                    batched.advance(Duration::from_millis(millis));
                    general.advance(Duration::from_millis(millis));
                    continue;
                }
                Step::Link { wan, up } => {
                    let state = if up { LinkState::Up } else { LinkState::Down };
                    batched.set_link(wan, state);
                    general.set_link(wan, state);
                    continue;
                }
            };
            let a = batched.send(iface, &bytes);
            let b = general.send(iface, &bytes);
            prop_assert_eq!(&a, &b, "step {}: {:?}", n, s);
            if let (Step::Out { flow, .. }, (Verdict::Forward(egress), out)) = (s, &a) {
                if *egress != LAN && out.len() >= 24 {
                    let src = Ipv4Addr::new(out[12], out[13], out[14], out[15]);
                    let port = if FLOWS[*flow].0 == 1 {
                        u16::from_be_bytes([out[24], out[25]])
                    } else {
                        u16::from_be_bytes([out[20], out[21]])
                    };
                    external.insert(*flow, (*egress, (src, port)));
                }
            }
        }
        prop_assert_eq!(counters_of(&batched), counters_of(&general));
        prop_assert_eq!(batched.dp.tables.conntrack.stats(), general.dp.tables.conntrack.stats());
        prop_assert_eq!(batched.dp.tables.conntrack.len(), general.dp.tables.conntrack.len());
    }
}
