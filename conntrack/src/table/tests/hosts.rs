//! Per-LAN-host caps and fair eviction: sessions and NAT ports per host, the counts that back
//! them, and which session a full shard gives up.

use super::*;
use proptest::prelude::*;

/// A table of `max_sessions` in one shard, with the given per-host caps.
fn capped(max_sessions: u32, on_full: OnFull, per_host: u32, ports: u32) -> ConnTable {
    let c = TableConfig {
        max_sessions_per_host: per_host,
        max_ports_per_host: ports,
        ..config(max_sessions, 1, on_full)
    };
    ConnTable::new(&c, &two_wans()).expect("valid config")
}

fn host(a: u8) -> Ipv4Addr {
    Ipv4Addr::new(192, 168, 1, a)
}

#[test]
fn zero_caps_are_refused() {
    for (sessions, ports) in [(0, 1), (1, 0)] {
        let c = TableConfig {
            max_sessions_per_host: sessions,
            max_ports_per_host: ports,
            ..config(16, 1, OnFull::Refuse)
        };
        assert_eq!(
            ConnTable::new(&c, &two_wans()).err(),
            Some(TableConfigError::ZeroHostLimit)
        );
    }
}

#[test]
fn a_host_at_its_session_cap_is_refused_and_others_are_not() {
    let t = capped(64, OnFull::Refuse, 3, 100);
    for i in 0..3 {
        t.create(new(udp(lan(1, 5000 + i), remote(1, 53)), 0), pkt(1), s(0))
            .unwrap();
    }
    // on the same endpoint, another WAN or a new endpoint: the host has its three
    for n in [
        new(udp(lan(1, 5000), remote(2, 53)), 0),
        new(udp(lan(1, 5000), remote(2, 53)), 1),
        new(udp(lan(1, 6000), remote(2, 53)), 0),
    ] {
        assert_eq!(
            t.create(n, pkt(1), s(0)),
            Err(CreateError::HostSessionLimit)
        );
    }
    assert_eq!(t.stats().host_session_limit, 3);
    assert_eq!(t.len(), 3);
    assert_eq!(t.host_sessions(host(1)), 3);
    t.create(new(udp(lan(2, 5000), remote(1, 53)), 0), pkt(1), s(0))
        .unwrap();
    // a hit on a session the host has is not a creation
    t.create(new(udp(lan(1, 5000), remote(1, 53)), 0), pkt(1), s(1))
        .unwrap();
    t.check().unwrap();
    // room again once one expires
    assert_eq!(t.expire(s(1000), 100), 4);
    t.create(new(udp(lan(1, 6000), remote(2, 53)), 0), pkt(1), s(1000))
        .unwrap();
    t.check().unwrap();
}

#[test]
fn a_host_at_its_cap_takes_no_session_from_a_full_shard() {
    for on_full in [OnFull::EvictOldest, OnFull::Refuse] {
        let t = capped(4, on_full, 2, 100);
        for (a, p) in [(1, 1), (1, 2), (2, 1), (2, 2)] {
            t.create(
                new(udp(lan(a, p), remote(1, 53)), 0),
                pkt(1),
                s(u64::from(a)),
            )
            .unwrap();
        }
        assert_eq!(
            t.create(new(udp(lan(1, 3), remote(1, 53)), 0), pkt(1), s(10)),
            Err(CreateError::HostSessionLimit),
            "{on_full:?}"
        );
        let st = t.stats();
        assert_eq!(
            (st.evicted, st.refused_full, st.host_session_limit),
            (0, 0, 1)
        );
        assert_eq!(t.len(), 4);
        t.check().unwrap();
    }
}

#[test]
fn the_port_cap_refuses_new_mappings_and_reuses_existing_ones() {
    let t = capped(64, OnFull::Refuse, 100, 2);
    let a = udp(lan(1, 5000), remote(1, 53));
    let b = udp(lan(1, 5001), remote(1, 53));
    t.create(new(a, 0), pkt(1), s(0)).unwrap();
    // another protocol counts against the same cap
    t.create(
        new(key(Proto::Tcp, lan(1, 5001), remote(1, 443)), 0),
        tcp(TCP_SYN),
        s(0),
    )
    .unwrap();
    assert_eq!(
        t.create(new(b, 0), pkt(1), s(0)),
        Err(CreateError::HostPortLimit)
    );
    assert_eq!(t.stats().host_port_limit, 1);
    assert!(!t.has_mapping(Proto::Udp, b.src, 0));
    // the endpoint's mapping is reused whatever the host holds
    t.create(new(udp(lan(1, 5000), remote(2, 53)), 0), pkt(1), s(0))
        .unwrap();
    // another WAN has room, and another host
    t.create(new(b, 1), pkt(1), s(0)).unwrap();
    t.create(new(udp(lan(2, 5001), remote(1, 53)), 0), pkt(1), s(0))
        .unwrap();
    assert_eq!(t.stats().host_port_limit, 1);
    t.check().unwrap();
    // a released mapping frees its port for the host
    assert_eq!(t.expire(s(1000), 100), 5);
    t.create(new(b, 0), pkt(1), s(1000)).unwrap();
    t.check().unwrap();
}

#[test]
fn a_port_refusal_prefers_no_wan_and_takes_nothing() {
    // the endpoint is mapped on WAN 1 only; on WAN 0 the host is at its port cap: with WAN 1
    // eligible, the mapping there is reused
    let t = capped(64, OnFull::Refuse, 100, 1);
    let k = udp(lan(1, 5000), remote(1, 53));
    t.create(new(udp(lan(1, 4000), remote(1, 53)), 0), pkt(1), s(0))
        .unwrap();
    t.create(new(k, 1), pkt(1), s(0)).unwrap();
    let mut n = new(udp(lan(1, 5000), remote(2, 53)), 0);
    n.eligible = 0b11;
    let rw = t.create(n, pkt(1), s(0)).unwrap();
    assert_eq!(rw.src.ip, WAN1);
    assert_eq!(t.stats().host_port_limit, 0);
    t.check().unwrap();
}

#[test]
fn counts_return_to_zero_after_expiry_eviction_recycling_and_wan_down() {
    let t = capped(4, OnFull::EvictOldest, 100, 100);
    // eviction: a fifth flow from host 2 evicts one of host 1's
    for p in 0..4 {
        t.create(new(udp(lan(1, p), remote(1, 53)), 0), pkt(1), s(0))
            .unwrap();
    }
    t.create(new(udp(lan(2, 1), remote(1, 53)), 0), pkt(1), s(1))
        .unwrap();
    assert_eq!((t.host_sessions(host(1)), t.host_sessions(host(2))), (3, 1));
    assert_eq!(t.stats().evicted, 1);
    t.check().unwrap();
    // expiry
    assert_eq!(t.expire(s(1000), 100), 4);
    assert_eq!((t.host_sessions(host(1)), t.host_sessions(host(2))), (0, 0));
    t.check().unwrap();
    // recycling by a SYN, and a WAN that went down
    let k = key(Proto::Tcp, lan(3, 40000), remote(1, 443));
    t.create(new(k, 0), tcp(TCP_SYN), s(1000)).unwrap();
    hit(t.lookup_outbound(&k, tcp(TCP_RST), s(1001)));
    assert_eq!(t.lookup_outbound(&k, tcp(TCP_SYN), s(1002)), Lookup::Miss);
    assert_eq!(t.stats().recycled, 1);
    assert_eq!(t.host_sessions(host(3)), 0);
    t.check().unwrap();
    t.create(new(k, 1), tcp(TCP_SYN), s(1002)).unwrap();
    assert_eq!(t.host_sessions(host(3)), 1);
    let live = Liveness {
        ended: WanSet::EMPTY.with(1),
        ..Liveness::ALL_LIVE
    };
    let ended = t.lookup_outbound_live(&k, tcp(TCP_ACK), s(1003), &live);
    assert!(matches!(ended, Lookup::Ended { wan: 1, .. }), "{ended:?}");
    assert_eq!(t.host_sessions(host(3)), 0);
    assert!(t.is_empty());
    t.check().unwrap();
}

#[test]
fn eviction_takes_from_the_flooding_host() {
    // host 1 holds a long-lived TCP connection, idle since second 0; host 2 then opens flow
    // after flow in a full shard: every eviction takes one of host 2's own sessions
    let t = capped(16, OnFull::EvictOldest, 1000, 1000);
    let long = key(Proto::Tcp, lan(1, 40000), remote(1, 443));
    t.create(new(long, 0), tcp(TCP_ACK), s(0)).unwrap();
    for i in 0..200u16 {
        let k = udp(lan(2, 1000 + i), remote(2, 53));
        t.create(
            new(k, 0),
            pkt(1),
            s(1) + Duration::from_millis(u64::from(i)),
        )
        .unwrap();
    }
    assert_eq!(t.stats().evicted, 200 - 15);
    assert_eq!(t.host_sessions(host(1)), 1);
    assert_eq!(t.host_sessions(host(2)), 15);
    let rw = hit(t.lookup_outbound(&long, tcp(TCP_ACK), s(10)));
    assert_eq!(rw.src.ip, WAN0);
    t.check().unwrap();
    // host 2's oldest went first: its latest 15 flows remain
    for i in 185..200u16 {
        assert!(
            info(&t, &udp(lan(2, 1000 + i), remote(2, 53)), s(10)).is_some(),
            "flow {i}"
        );
    }
}

#[test]
fn eviction_prefers_the_host_with_more_sessions_over_the_longer_idle() {
    // host 1: one session, idle the longest; host 2: two; host 3: one. A new flow of host 3
    // evicts host 2's longer-idle session.
    let t = capped(4, OnFull::EvictOldest, 1000, 1000);
    let h1 = udp(lan(1, 1), remote(1, 53));
    let h2a = udp(lan(2, 1), remote(1, 53));
    let h2b = udp(lan(2, 2), remote(1, 53));
    let h3 = udp(lan(3, 1), remote(1, 53));
    for (i, k) in [h1, h2a, h2b, h3].into_iter().enumerate() {
        t.create(new(k, 0), pkt(1), s(i as u64 * 2)).unwrap();
    }
    t.create(new(udp(lan(3, 2), remote(1, 53)), 0), pkt(1), s(10))
        .unwrap();
    let left: Vec<FlowKey> = sessions(&t, s(10)).iter().map(|i| i.key).collect();
    assert!(!left.contains(&h2a), "{left:?}");
    assert!(left.contains(&h1) && left.contains(&h2b));
    t.check().unwrap();
}

/// One step of [`random_creations_and_expiry_keep_the_counts_exact`].
#[derive(Clone, Debug)]
enum Step {
    Create {
        host: u8,
        port: u8,
        remote: u8,
        tcp: bool,
        wan: u8,
    },
    Expire {
        secs: u8,
    },
    Rst {
        host: u8,
        port: u8,
        remote: u8,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..4u8, 0..6u8, 0..3u8, any::<bool>(), 0..2u8).prop_map(
            |(host, port, remote, tcp, wan)| Step::Create {
                host,
                port,
                remote,
                tcp,
                wan
            }
        ),
        1 => (0..40u8).prop_map(|secs| Step::Expire { secs }),
        1 => (0..4u8, 0..6u8, 0..3u8).prop_map(|(host, port, remote)| Step::Rst {
            host,
            port,
            remote
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random creations (two WANs, both eligible), TCP resets (recycled by a later SYN),
    /// expiry and eviction in a small table with small caps: after every step the host
    /// counts match the sessions and mappings (`check`), no host exceeds its caps, and a
    /// refusal for a cap is only given at the cap.
    #[test]
    fn random_creations_and_expiry_keep_the_counts_exact(
        steps in proptest::collection::vec(step(), 1..120),
        evict in any::<bool>(),
        per_host in 1..6u32,
        ports in 1..4u32,
    ) {
        let on_full = if evict { OnFull::EvictOldest } else { OnFull::Refuse };
        let t = capped(12, on_full, per_host, ports);
        let mut now = s(0);
        for st in steps {
            match st {
                Step::Create { host: h, port, remote: r, tcp: is_tcp, wan } => {
                    let proto = if is_tcp { Proto::Tcp } else { Proto::Udp };
                    let k = key(proto, lan(h, 1000 + u16::from(port)), remote(r, 53));
                    let mut n = new(k, wan);
                    n.eligible = 0b11;
                    let flags = if is_tcp { tcp(TCP_SYN) } else { pkt(1) };
                    match t.create(n, flags, now) {
                        Ok(_) => {}
                        Err(CreateError::HostSessionLimit) => {
                            prop_assert_eq!(t.host_sessions(host(h)), per_host);
                        }
                        Err(CreateError::HostPortLimit) => {
                            prop_assert!(!t.has_mapping(proto, k.src, wan));
                        }
                        Err(CreateError::TableFull) => prop_assert!(!evict),
                        Err(e) => prop_assert!(false, "{e}"),
                    }
                }
                Step::Expire { secs } => {
                    now += s(u64::from(secs));
                    t.expire(now, 8);
                }
                Step::Rst { host: h, port, remote: r } => {
                    let k = key(Proto::Tcp, lan(h, 1000 + u16::from(port)), remote(r, 53));
                    let _ = t.lookup_outbound(&k, tcp(TCP_RST), now);
                }
            }
            if let Err(e) = t.check() {
                prop_assert!(false, "{e}");
            }
            for h in 0..4 {
                prop_assert!(t.host_sessions(host(h)) <= per_host);
            }
            let mut per_wan: HashMap<(Ipv4Addr, u8), u32> = HashMap::new();
            t.shared.hosts.for_each(|ip, wan, _, _, p| {
                per_wan.insert((ip, wan), p);
            });
            prop_assert!(per_wan.values().all(|&p| p <= ports), "{per_wan:?}");
        }
    }
}
