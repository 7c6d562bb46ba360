//! Property test: arbitrary sequences of create / lookup / expire operations, over few enough
//! keys, ports and slots that collisions, races for ports, full shards and expiry all happen,
//! keep the table's invariants.

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use conntrack::{
    ConnTable, CreateError, Endpoint, FlowKey, Hairpin, Liveness, Lookup, NewForwarded, NewSession,
    OnFull, PacketInfo, Proto, Rewrite, SessionInfo, TableConfig, TableStats, Timeouts, WanNat,
    WanSet, TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN,
};
use proptest::prelude::*;

const WANS: [Ipv4Addr; 2] = [
    Ipv4Addr::new(203, 0, 113, 1),
    Ipv4Addr::new(198, 51, 100, 1),
];
const LAN_IFACE: u8 = 1;
/// Interface of the LAN hairpin sessions are sent to.
const HAIRPIN_IFACE: u8 = 2;
/// Interface of WAN w is `WAN_IFACE + w`.
const WAN_IFACE: u8 = 10;
/// The external port of the port forward of every WAN, UDP and TCP: inside both NAT ranges,
/// reserved before anything else.
const FWD_PORT: u16 = 50002;
/// The forwards' target: an endpoint that `Create` and `Out` use too.
const FWD_TARGET: Endpoint = Endpoint::new(Ipv4Addr::new(192, 168, 1, 3), 123);
const FLAGS: [u8; 7] = [
    TCP_SYN,
    TCP_SYN | TCP_ACK,
    TCP_ACK,
    TCP_FIN | TCP_ACK,
    TCP_RST,
    TCP_PSH | TCP_ACK,
    0,
];

#[derive(Clone, Debug)]
enum Op {
    Create {
        host: u8,
        port: u8,
        remote: u8,
        proto: u8,
        wan: u8,
        /// Eligible WANs; bit 2 names no configured WAN.
        eligible: u8,
        flags: u8,
        hairpin: bool,
    },
    Out {
        host: u8,
        port: u8,
        remote: u8,
        proto: u8,
        flags: u8,
        icmp_error: bool,
        /// Bit w: WAN w has gone down (the lookup ends its sessions).
        down: u8,
    },
    In {
        wan: u8,
        remote: u8,
        proto: u8,
        ext: u8,
        flags: u8,
    },
    /// A packet from an Internet client to the forward on `wan` (2: no such WAN): its
    /// creation (`create_forwarded`) or its lookup (`lookup_forwarded`).
    Forward {
        wan: u8,
        remote: u8,
        /// UDP or TCP.
        proto: u8,
        flags: u8,
        create: bool,
    },
    Expire {
        budget: u8,
    },
    Advance {
        ms: u32,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (
            (0..4u8, 0..5u8, 0..3u8, 0..3u8),
            (0..3u8, 0..8u8, 0..7u8, prop::bool::weighted(0.1)),
        )
            .prop_map(|((host, port, remote, proto), (wan, eligible, flags, hairpin))| {
                Op::Create { host, port, remote, proto, wan, eligible, flags, hairpin }
            }),
        3 => (
            (0..4u8, 0..5u8, 0..3u8, 0..3u8, 0..7u8, prop::bool::weighted(0.1)),
            prop::sample::select(vec![0u8, 0, 0, 0b01, 0b10, 0b11]),
        )
            .prop_map(|((host, port, remote, proto, flags, icmp_error), down)| Op::Out {
                host, port, remote, proto, flags, icmp_error, down
            }),
        3 => (0..3u8, 0..3u8, 0..3u8, 0..7u8, 0..7u8).prop_map(
            |(wan, remote, proto, ext, flags)| Op::In { wan, remote, proto, ext, flags }
        ),
        2 => (0..3u8, 0..3u8, 0..2u8, 0..7u8, any::<bool>()).prop_map(
            |(wan, remote, proto, flags, create)| Op::Forward { wan, remote, proto, flags, create }
        ),
        1 => (0..6u8).prop_map(|budget| Op::Expire { budget }),
        2 => (0..40_000u32).prop_map(|ms| Op::Advance { ms }),
    ]
}

fn proto(p: u8) -> Proto {
    [Proto::Udp, Proto::Tcp, Proto::Icmp][usize::from(p % 3)]
}

fn internal(host: u8, port: u8) -> Endpoint {
    // ports 50000..=50003 are inside both WAN ranges (preserved when free); 123 is outside
    let port = if port < 4 {
        50000 + u16::from(port)
    } else {
        123
    };
    Endpoint::new(Ipv4Addr::new(192, 168, 1, host), port)
}

fn remote(p: Proto, host: u8) -> Endpoint {
    let port = if p == Proto::Icmp { 0 } else { 443 };
    Endpoint::new(Ipv4Addr::new(93, 184, 216, host), port)
}

fn table(max_sessions: u32, shards: u16, refuse: bool) -> ConnTable {
    let config = TableConfig {
        max_sessions,
        shards,
        timeouts: Timeouts {
            udp: Duration::from_secs(30),
            icmp: Duration::from_secs(10),
            tcp_established: Duration::from_secs(100),
            tcp_transitory: Duration::from_secs(20),
            tcp_closed: Duration::from_secs(5),
        },
        on_full: if refuse {
            OnFull::Refuse
        } else {
            OnFull::EvictOldest
        },
        hash_seed: u64::from(max_sessions) * 31 + u64::from(shards),
        max_sessions_per_host: conntrack::DEFAULT_MAX_SESSIONS_PER_HOST,
        max_ports_per_host: conntrack::DEFAULT_MAX_PORTS_PER_HOST,
    };
    let wans = [
        // five ports: exhaustion is common
        WanNat {
            address: WANS[0],
            ports: 50000..=50004,
            iface: WAN_IFACE,
        },
        WanNat {
            address: WANS[1],
            ports: 50000..=50099,
            iface: WAN_IFACE + 1,
        },
    ];
    ConnTable::new(&config, &wans).unwrap()
}

fn sessions(t: &ConnTable, now: Duration) -> Vec<SessionInfo> {
    let mut v = Vec::new();
    t.for_each_session_at(now, |i| v.push(*i));
    v
}

fn present(t: &ConnTable, key: &FlowKey, now: Duration) -> bool {
    sessions(t, now).iter().any(|i| i.key == *key)
}

/// Whether sessions were removed between two snapshots of the counters.
fn removed_any(before: &TableStats, after: &TableStats) -> bool {
    (before.expired, before.evicted, before.recycled)
        != (after.expired, after.evicted, after.recycled)
}

/// The invariants that must hold between any two operations.
fn check(t: &ConnTable, now: Duration) -> Result<(), TestCaseError> {
    let all = sessions(t, now);
    prop_assert_eq!(all.len(), t.len());
    prop_assert!(t.len() <= t.capacity());
    prop_assert_eq!(t.wan_sessions(0) + t.wan_sessions(1), t.len() as u64);
    let mut keys = HashSet::new();
    let mut mappings = HashSet::new();
    for i in &all {
        prop_assert!(keys.insert(i.key), "duplicate session {:?}", i.key);
        let w = i.wan;
        prop_assert_eq!(i.external.ip, WANS[usize::from(w)]);
        if i.forwarded {
            // no mapping, and its port is none's
            prop_assert_eq!((i.key.src, i.external.port), (FWD_TARGET, FWD_PORT));
            prop_assert_eq!(t.binding(w, i.key.proto, FWD_PORT), None);
            prop_assert_eq!((i.egress, i.dst_rewrite), (WAN_IFACE + w, None));
            prop_assert_eq!(i.lan_iface, LAN_IFACE);
            continue;
        }
        prop_assert_eq!(
            t.binding(w, i.key.proto, i.external.port),
            Some(i.key.src),
            "port of {:?} not bound to it",
            i
        );
        prop_assert_eq!(
            i.egress,
            if i.dst_rewrite.is_some() {
                HAIRPIN_IFACE
            } else {
                WAN_IFACE + w
            }
        );
        prop_assert_eq!(i.lan_iface, LAN_IFACE);
        // endpoint independence: one external endpoint per (proto, internal, wan)
        mappings.insert((i.key.proto, i.key.src, w, i.external));
    }
    let distinct: HashSet<_> = mappings.iter().map(|&(p, s, w, _)| (p, s, w)).collect();
    prop_assert_eq!(
        distinct.len(),
        mappings.len(),
        "an endpoint has two ports on a WAN"
    );
    prop_assert_eq!(t.mapping_count(), mappings.len());
    prop_assert_eq!(t.bound_ports(), mappings.len());
    Ok(())
}

fn run(ops: &[Op], max_sessions: u32, shards: u16, refuse: bool) -> Result<(), TestCaseError> {
    let t = table(max_sessions, shards, refuse);
    for (wan, p) in [
        (0, Proto::Udp),
        (0, Proto::Tcp),
        (1, Proto::Udp),
        (1, Proto::Tcp),
    ] {
        prop_assert!(t.reserve_port(wan, p, FWD_PORT));
    }
    let mut now = Duration::from_secs(1);
    for op in ops {
        match *op {
            Op::Create {
                host,
                port,
                remote: r,
                proto: p,
                wan,
                eligible,
                flags,
                hairpin,
            } => {
                let p = proto(p);
                let key = FlowKey::new(p, internal(host, port), remote(p, r));
                let new = NewSession {
                    key,
                    wan,
                    eligible: u64::from(eligible),
                    lan_iface: LAN_IFACE,
                    hairpin: hairpin.then(|| Hairpin {
                        target: internal(3 - host % 4, 0),
                        egress: HAIRPIN_IFACE,
                    }),
                    rule: 0,
                };
                // The WAN `create` must choose if it removes no session first (no race hit, no
                // reaping or eviction): the endpoint's mapping on `wan`, else on the lowest other
                // eligible WAN (not for hairpin), else a new one on `wan` (`None`). Port forward
                // sessions hold no mapping.
                let before = sessions(&t, now);
                let was_present = before.iter().any(|i| i.key == key);
                let mapped = before
                    .iter()
                    .filter(|i| i.key.proto == p && i.key.src == key.src && !i.forwarded)
                    .fold(0u64, |m, i| m | 1 << i.wan);
                let preferred = 1u64 << wan;
                let others = mapped & u64::from(eligible) & !preferred;
                let reuse = if mapped & preferred != 0 {
                    Some(wan)
                } else if !hairpin && others != 0 {
                    Some(others.trailing_zeros() as u8)
                } else {
                    None
                };
                let stats = t.stats();
                let pkt = PacketInfo {
                    tcp_flags: FLAGS[usize::from(flags)],
                    len: 100,
                    icmp_error: false,
                    ..PacketInfo::default()
                };
                let result = t.create(new, pkt, now);
                let undisturbed = !was_present && !removed_any(&stats, &t.stats());
                let forwarded = sessions(&t, now)
                    .into_iter()
                    .find(|i| i.key == key && i.forwarded);
                match result {
                    Ok(rw) if forwarded.is_some() => {
                        // a race hit on a forward's session: the target's packet
                        let i = forwarded.unwrap();
                        prop_assert_eq!(rw.src, i.external);
                        prop_assert_eq!(rw.egress, WAN_IFACE + i.wan);
                    }
                    Ok(rw) => {
                        prop_assert!(wan < 2);
                        let w = WANS.iter().position(|&a| a == rw.src.ip).unwrap() as u8;
                        prop_assert_eq!(t.binding(w, p, rw.src.port), Some(key.src));
                        prop_assert!(present(&t, &key, now));
                        if undisturbed {
                            prop_assert_eq!(w, reuse.unwrap_or(wan));
                            let egress = if hairpin {
                                HAIRPIN_IFACE
                            } else {
                                WAN_IFACE + w
                            };
                            prop_assert_eq!(rw.egress, egress);
                        }
                    }
                    Err(CreateError::UnknownWan) => prop_assert_eq!(wan, 2),
                    Err(CreateError::TableFull) => prop_assert!(refuse),
                    Err(CreateError::OutOfWindow) => {
                        prop_assert!(was_present && p == Proto::Tcp);
                        prop_assert!(present(&t, &key, now));
                    }
                    Err(e @ CreateError::Conflict) => prop_assert!(false, "{e}: not a forward"),
                    Err(e @ (CreateError::HostSessionLimit | CreateError::HostPortLimit)) => {
                        prop_assert!(false, "{e}: the default caps are above the table's size");
                    }
                    Err(CreateError::PortsExhausted) => {
                        prop_assert!(!present(&t, &key, now));
                        if undisturbed {
                            prop_assert_eq!(reuse, None, "a mapping was there to reuse");
                        }
                    }
                }
            }
            Op::Out {
                host,
                port,
                remote: r,
                proto: p,
                flags,
                icmp_error,
                down,
            } => {
                let p = proto(p);
                let key = FlowKey::new(p, internal(host, port), remote(p, r));
                let ended = (0..2)
                    .filter(|w| down & (1 << w) != 0)
                    .fold(WanSet::EMPTY, WanSet::with);
                let on_wan = sessions(&t, now)
                    .iter()
                    .find(|i| i.key == key)
                    .map(|i| i.wan);
                let pkt = PacketInfo {
                    tcp_flags: FLAGS[usize::from(flags)],
                    len: 100,
                    icmp_error,
                    ..PacketInfo::default()
                };
                let live = Liveness {
                    ended,
                    ..Liveness::ALL_LIVE
                };
                match t.lookup_outbound_live(&key, pkt, now, &live) {
                    Lookup::Hit(rw) => {
                        prop_assert!(present(&t, &key, now));
                        prop_assert!(WANS.contains(&rw.src.ip));
                        let w = WANS.iter().position(|&a| a == rw.src.ip).unwrap() as u8;
                        prop_assert!(
                            !ended.contains(w) || icmp_error || rw.egress == HAIRPIN_IFACE
                        );
                    }
                    Lookup::Miss => {
                        prop_assert!(!present(&t, &key, now));
                        prop_assert!(
                            on_wan.is_none_or(|w| !ended.contains(w)) || !present(&t, &key, now)
                        );
                    }
                    Lookup::Recalled { .. } => prop_assert!(false, "nothing is outranked here"),
                    Lookup::OutOfWindow => {
                        prop_assert!(p == Proto::Tcp && !icmp_error);
                        prop_assert!(present(&t, &key, now));
                    }
                    Lookup::Ended { wan, tcp } => {
                        prop_assert!(!icmp_error && ended.contains(wan));
                        prop_assert_eq!(on_wan, Some(wan));
                        prop_assert_eq!(tcp.is_some(), p == Proto::Tcp);
                        prop_assert!(!present(&t, &key, now));
                    }
                }
            }
            Op::In {
                wan,
                remote: r,
                proto: p,
                ext,
                flags,
            } => {
                let p = proto(p);
                let w = usize::from(wan).min(1);
                let dst = Endpoint::new(WANS[w], 50000 + u16::from(ext));
                let key = FlowKey::new(p, remote(p, r), dst);
                let pkt = PacketInfo {
                    tcp_flags: FLAGS[usize::from(flags)],
                    len: 100,
                    icmp_error: false,
                    ..PacketInfo::default()
                };
                let owner = t.binding(wan, p, dst.port);
                match t.lookup_inbound(wan, &key, pkt, now) {
                    Lookup::Hit(rw) => {
                        prop_assert_eq!(Some(rw.dst), owner);
                        prop_assert_eq!(rw.src, key.src);
                        prop_assert_eq!(rw.egress, LAN_IFACE);
                        let canonical = FlowKey::new(p, rw.dst, key.src);
                        prop_assert!(present(&t, &canonical, now));
                    }
                    Lookup::Miss => {}
                    Lookup::OutOfWindow => {
                        prop_assert_eq!(p, Proto::Tcp);
                        prop_assert!(owner.is_some());
                    }
                    Lookup::Ended { .. } | Lookup::Recalled { .. } => {
                        prop_assert!(false, "inbound lookups end nothing")
                    }
                }
            }
            Op::Forward {
                wan,
                remote: r,
                proto: p,
                flags,
                create,
            } => {
                let p = proto(p % 2);
                let client = remote(p, r);
                let key = FlowKey::new(p, FWD_TARGET, client);
                let was = sessions(&t, now).into_iter().find(|i| i.key == key);
                let ours = was.is_some_and(|i| i.forwarded && i.wan == wan);
                let pkt = PacketInfo {
                    tcp_flags: FLAGS[usize::from(flags)],
                    len: 100,
                    icmp_error: false,
                    ..PacketInfo::default()
                };
                let to_target = Rewrite {
                    src: client,
                    dst: FWD_TARGET,
                    egress: LAN_IFACE,
                };
                let result = if create {
                    let new = NewForwarded {
                        key,
                        wan,
                        ext_port: FWD_PORT,
                        lan_iface: LAN_IFACE,
                        forward: 9,
                    };
                    match t.create_forwarded(new, pkt, now) {
                        Ok(rw) => Lookup::Hit(rw),
                        Err(CreateError::UnknownWan) => {
                            prop_assert_eq!(wan, 2);
                            Lookup::Miss
                        }
                        Err(CreateError::Conflict) => {
                            prop_assert!(was.is_some() && !ours);
                            Lookup::Miss
                        }
                        Err(CreateError::TableFull) => {
                            prop_assert!(refuse);
                            Lookup::Miss
                        }
                        Err(CreateError::OutOfWindow) => Lookup::OutOfWindow,
                        Err(e) => {
                            prop_assert!(false, "{e}: not for a forward");
                            Lookup::Miss
                        }
                    }
                } else {
                    let dst = Endpoint::new(WANS[usize::from(wan).min(1)], FWD_PORT);
                    let wire = FlowKey::new(p, client, dst);
                    t.lookup_forwarded(wan, &wire, FWD_TARGET, pkt, now)
                };
                let is = sessions(&t, now).into_iter().find(|i| i.key == key);
                match result {
                    Lookup::Hit(rw) => {
                        prop_assert_eq!(rw, to_target);
                        prop_assert!(create || ours);
                        let i = is.unwrap();
                        prop_assert!(i.forwarded && i.wan == wan && wan < 2);
                    }
                    Lookup::Miss => {
                        prop_assert!(create || !is.is_some_and(|i| i.forwarded && i.wan == wan));
                    }
                    Lookup::OutOfWindow => {
                        prop_assert!(ours && p == Proto::Tcp);
                        prop_assert_eq!(is, was);
                    }
                    Lookup::Ended { .. } | Lookup::Recalled { .. } => {
                        prop_assert!(false, "forward lookups end nothing")
                    }
                }
            }
            Op::Expire { budget } => {
                let before = t.len();
                let n = t.expire(now, usize::from(budget));
                prop_assert!(n <= usize::from(budget));
                prop_assert_eq!(t.len(), before - n);
            }
            Op::Advance { ms } => now += Duration::from_millis(u64::from(ms)),
        }
        check(&t, now)?;
    }
    // far in the future everything expires and every port is released
    let end = now + Duration::from_secs(86_400);
    let n = t.len();
    prop_assert_eq!(t.expire(end, usize::MAX), n);
    prop_assert_eq!(t.len(), 0);
    prop_assert!(t.is_empty());
    prop_assert_eq!(t.bound_ports(), 0);
    prop_assert_eq!(t.mapping_count(), 0);
    prop_assert_eq!((t.wan_sessions(0), t.wan_sessions(1)), (0, 0));
    check(&t, end)?;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn invariants_hold_under_arbitrary_operations(
        ops in prop::collection::vec(op(), 1..80),
        max_sessions in prop::sample::select(vec![1u32, 4, 7, 16, 64]),
        shards in prop::sample::select(vec![1u16, 2, 4]),
        refuse in any::<bool>(),
    ) {
        run(&ops, max_sessions, shards, refuse)?;
    }
}
