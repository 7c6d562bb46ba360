//! Behaviour of the whole table through its public operations.

use super::*;
use crate::session::{Hairpin, NewForwarded};
use crate::tcp::{TcpState, TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN};
use crate::window::Segment;

const WAN0: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
const WAN1: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);

fn lan(host: u8, port: u16) -> Endpoint {
    Endpoint::new(Ipv4Addr::new(192, 168, 1, host), port)
}

fn remote(host: u8, port: u16) -> Endpoint {
    Endpoint::new(Ipv4Addr::new(93, 184, 216, host), port)
}

fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

/// The default timeouts, except a closed session's: 10 s, so that every class has a
/// timeout of its own.
fn timeouts() -> Timeouts {
    Timeouts {
        tcp_closed: Duration::from_secs(10),
        ..Timeouts::default()
    }
}

fn config(max_sessions: u32, shards: u16, on_full: OnFull) -> TableConfig {
    TableConfig {
        max_sessions,
        shards,
        timeouts: timeouts(),
        on_full,
        hash_seed: 0x5eed,
        max_sessions_per_host: DEFAULT_MAX_SESSIONS_PER_HOST,
        max_ports_per_host: DEFAULT_MAX_PORTS_PER_HOST,
    }
}

fn two_wans() -> Vec<WanNat> {
    vec![
        WanNat {
            address: WAN0,
            ports: 1024..=65535,
            iface: 10,
        },
        WanNat {
            address: WAN1,
            ports: 1024..=65535,
            iface: 11,
        },
    ]
}

fn table(max_sessions: u32, shards: u16, on_full: OnFull) -> ConnTable {
    ConnTable::new(&config(max_sessions, shards, on_full), &two_wans()).expect("valid config")
}

fn key(proto: Proto, src: Endpoint, dst: Endpoint) -> FlowKey {
    FlowKey::new(proto, src, dst)
}

fn udp(src: Endpoint, dst: Endpoint) -> FlowKey {
    key(Proto::Udp, src, dst)
}

/// A session on `wan`, the only eligible WAN.
fn new(k: FlowKey, wan: u8) -> NewSession {
    NewSession {
        key: k,
        wan,
        eligible: 1u64.checked_shl(u32::from(wan)).unwrap_or(0),
        lan_iface: 1,
        hairpin: None,
        rule: 3,
    }
}

/// Bitmask of the WANs on which `internal` has a mapping for `proto` (bit w = WAN w).
fn mapped_wans(t: &ConnTable, proto: Proto, internal: Endpoint) -> u64 {
    (0..t.shared.wans.len())
        .filter(|&w| t.has_mapping(proto, internal, w as u8))
        .fold(0, |m, w| m | 1 << w)
}

fn pkt(len: u32) -> PacketInfo {
    PacketInfo {
        tcp_flags: 0,
        len,
        icmp_error: false,
        ..PacketInfo::default()
    }
}

fn tcp(flags: u8) -> PacketInfo {
    PacketInfo {
        tcp_flags: flags,
        len: 60,
        icmp_error: false,
        ..PacketInfo::default()
    }
}

/// The key of a reply to `k` translated by `rw`, as it arrives on the WAN.
fn reply(k: &FlowKey, rw: &Rewrite) -> FlowKey {
    FlowKey::new(k.proto, k.dst, rw.src)
}

fn sessions(t: &ConnTable, now: Duration) -> Vec<SessionInfo> {
    let mut v = Vec::new();
    t.for_each_session_at(now, |i| v.push(*i));
    v
}

fn info(t: &ConnTable, k: &FlowKey, now: Duration) -> Option<SessionInfo> {
    sessions(t, now).into_iter().find(|i| i.key == *k)
}

fn hit(l: Lookup) -> Rewrite {
    match l {
        Lookup::Hit(rw) => rw,
        other => panic!("expected a hit, got {other:?}"),
    }
}

#[test]
fn create_then_hit_in_both_directions() {
    let t = table(64, 4, OnFull::Refuse);
    let k = udp(lan(10, 40000), remote(1, 53));
    let rw = t.create(new(k, 0), pkt(70), s(1)).unwrap();
    assert_eq!(
        rw,
        Rewrite {
            src: Endpoint::new(WAN0, 40000),
            dst: remote(1, 53),
            egress: 10
        }
    );
    assert_eq!(hit(t.lookup_outbound(&k, pkt(80), s(2))), rw);
    let back = hit(t.lookup_inbound(0, &reply(&k, &rw), pkt(200), s(3)));
    assert_eq!(
        back,
        Rewrite {
            src: remote(1, 53),
            dst: lan(10, 40000),
            egress: 1
        }
    );
    assert_eq!(t.len(), 1);
    assert!(!t.is_empty());
    assert_eq!(t.wan_sessions(0), 1);
    assert_eq!(t.wan_sessions(1), 0);
    let i = info(&t, &k, s(4)).unwrap();
    assert_eq!((i.packets_out, i.bytes_out), (2, 150));
    assert_eq!((i.packets_in, i.bytes_in), (1, 200));
    assert_eq!(i.external, Endpoint::new(WAN0, 40000));
    assert_eq!((i.wan, i.egress, i.lan_iface, i.rule), (0, 10, 1, 3));
    assert_eq!(i.tcp_state, None);
    assert_eq!(i.idle, s(1));
    assert_eq!(i.age, s(3));
    assert_eq!(t.stats().created, 1);
    t.check().unwrap();
}

#[test]
fn a_session_on_an_ended_wan_is_removed_by_its_next_outbound_packet() {
    let t = table(64, 4, OnFull::Refuse);
    let src = lan(10, 40000);
    let k0 = udp(src, remote(1, 53));
    let k1 = udp(src, remote(2, 53));
    let rw0 = t.create(new(k0, 0), pkt(1), s(0)).unwrap();
    let tk = key(Proto::Tcp, lan(11, 50000), remote(3, 443));
    t.create(new(tk, 0), tcp(TCP_SYN), s(0)).unwrap();
    t.create(new(k1, 1), pkt(1), s(0)).unwrap();
    let down_set = WanSet::EMPTY.with(0);
    assert!(down_set.contains(0) && !down_set.contains(1) && !down_set.contains(200));
    let down = &Liveness {
        ended: down_set,
        ..Liveness::ALL_LIVE
    };
    // a session on a live WAN is a plain hit
    assert!(matches!(
        t.lookup_outbound_live(&k1, pkt(1), s(1), down),
        Lookup::Hit(_)
    ));
    // an ICMP error about a flow on the ended WAN changes nothing
    let err = PacketInfo {
        icmp_error: true,
        ..pkt(1)
    };
    let l = t.lookup_outbound_live(&k0, err, s(1), down);
    assert!(matches!(l, Lookup::Hit(_)), "{l:?}");
    assert_eq!(t.len(), 3);
    // UDP on the ended WAN: removed, the mapping's port released with its last session
    assert_eq!(
        t.lookup_outbound_live(&k0, pkt(1), s(1), down),
        Lookup::Ended { wan: 0, tcp: None }
    );
    assert_eq!(t.binding(0, Proto::Udp, rw0.src.port), None);
    assert_eq!(t.lookup_outbound(&k0, pkt(1), s(1)), Lookup::Miss);
    // TCP reports its state
    assert_eq!(
        t.lookup_outbound_live(&tk, tcp(TCP_ACK), s(1), down),
        Lookup::Ended {
            wan: 0,
            tcp: Some(TcpState::SynSent)
        }
    );
    assert_eq!((t.len(), t.wan_sessions(0), t.wan_sessions(1)), (1, 0, 1));
    assert_eq!(t.stats().ended_by_wan_down, 2);
    // the flow starts again on the live WAN, keeping its port (the old mapping is gone)
    let rw = t.create(new(k0, 1), pkt(1), s(2)).unwrap();
    assert_eq!(rw.src, Endpoint::new(WAN1, 40000));
    // the empty set never ends anything
    assert!(matches!(
        t.lookup_outbound_live(&k0, pkt(1), s(2), &Liveness::ALL_LIVE),
        Lookup::Hit(_)
    ));
    t.check().unwrap();
}

#[test]
fn udp_and_icmp_sessions_on_an_outranked_wan_are_recalled_when_their_rule_says_so() {
    let t = table(64, 4, OnFull::Refuse);
    let udp_k = udp(lan(10, 40000), remote(1, 53));
    let other_rule = udp(lan(10, 40001), remote(1, 53));
    let tcp_k = key(Proto::Tcp, lan(11, 50000), remote(3, 443));
    t.create(new(udp_k, 1), pkt(1), s(0)).unwrap();
    t.create(
        NewSession {
            rule: 9,
            ..new(other_rule, 1)
        },
        pkt(1),
        s(0),
    )
    .unwrap();
    t.create(new(tcp_k, 1), tcp(TCP_SYN), s(0)).unwrap();
    // WAN 1 is outranked; rule 3 (that of `new`) wants its flows elsewhere, rule 9 does not
    let asked = std::cell::RefCell::new(Vec::new());
    let recall = |wan: u8, rule: u16| {
        asked.borrow_mut().push((wan, rule));
        rule == 3
    };
    let live = Liveness {
        ended: WanSet::EMPTY,
        outranked: WanSet::EMPTY.with(1),
        recall: &recall,
    };
    assert_eq!(
        t.lookup_outbound_live(&udp_k, pkt(1), s(1), &live),
        Lookup::Recalled { wan: 1 }
    );
    assert!(matches!(
        t.lookup_outbound_live(&other_rule, pkt(1), s(1), &live),
        Lookup::Hit(_)
    ));
    // TCP connections stay where they are (moving them would break them)
    assert!(matches!(
        t.lookup_outbound_live(&tcp_k, tcp(TCP_ACK), s(1), &live),
        Lookup::Hit(_)
    ));
    assert_eq!(*asked.borrow(), vec![(1, 3), (1, 9)]);
    assert_eq!((t.len(), t.stats().recalled), (2, 1));
    t.check().unwrap();
}

#[test]
fn lookups_miss_without_a_session() {
    let t = table(64, 4, OnFull::Refuse);
    let k = udp(lan(10, 40000), remote(1, 53));
    assert_eq!(t.lookup_outbound(&k, pkt(1), s(0)), Lookup::Miss);
    let inbound = udp(remote(1, 53), Endpoint::new(WAN0, 40000));
    assert_eq!(t.lookup_inbound(0, &inbound, pkt(1), s(0)), Lookup::Miss);
    assert!(t.is_empty());
}

#[test]
fn port_preservation() {
    let t = table(64, 4, OnFull::Refuse);
    let rw = t
        .create(new(udp(lan(10, 5353), remote(1, 53)), 1), pkt(1), s(0))
        .unwrap();
    assert_eq!(rw.src, Endpoint::new(WAN1, 5353));
    assert_eq!(t.binding(1, Proto::Udp, 5353), Some(lan(10, 5353)));
}

#[test]
fn preferred_port_taken_allocates_another() {
    let t = table(64, 4, OnFull::Refuse);
    let a = t
        .create(new(udp(lan(10, 40000), remote(1, 53)), 0), pkt(1), s(0))
        .unwrap();
    let b = t
        .create(new(udp(lan(11, 40000), remote(1, 53)), 0), pkt(1), s(0))
        .unwrap();
    assert_eq!(a.src.port, 40000);
    assert_ne!(b.src.port, 40000);
    assert!(b.src.port >= 1024);
    assert_eq!(t.binding(0, Proto::Udp, a.src.port), Some(lan(10, 40000)));
    assert_eq!(t.binding(0, Proto::Udp, b.src.port), Some(lan(11, 40000)));
    // the other protocol's port space is separate: preserved again
    let c = t
        .create(
            new(key(Proto::Tcp, lan(11, 40000), remote(1, 80)), 0),
            tcp(TCP_SYN),
            s(0),
        )
        .unwrap();
    assert_eq!(c.src.port, 40000);
    t.check().unwrap();
}

#[test]
fn internal_port_outside_the_range_is_translated_into_it() {
    let t = table(64, 4, OnFull::Refuse);
    let rw = t
        .create(new(udp(lan(10, 123), remote(1, 123)), 0), pkt(1), s(0))
        .unwrap();
    assert!(rw.src.port >= 1024);
    assert_eq!(t.binding(0, Proto::Udp, 123), None);
}

#[test]
fn endpoint_independent_mapping() {
    let t = table(64, 4, OnFull::Refuse);
    let src = lan(10, 123); // outside the range: the port is allocated, not preserved
    let a = t
        .create(new(udp(src, remote(1, 3478)), 0), pkt(1), s(0))
        .unwrap();
    let b = t
        .create(new(udp(src, remote(2, 3479)), 0), pkt(1), s(100))
        .unwrap();
    assert_eq!(a.src, b.src);
    assert_eq!(t.len(), 2);
    assert_eq!(t.mapping_count(), 1);
    assert_eq!(t.bound_ports(), 1);
    // the first session expires; the mapping stays for the second
    assert_eq!(t.expire(s(300), 10), 1);
    assert_eq!(t.binding(0, Proto::Udp, a.src.port), Some(src));
    let c = t
        .create(new(udp(src, remote(3, 1)), 0), pkt(1), s(301))
        .unwrap();
    assert_eq!(c.src, a.src);
    assert_eq!(t.expire(s(1000), 10), 2);
    assert_eq!(t.mapping_count(), 0);
    assert_eq!(t.bound_ports(), 0);
    t.check().unwrap();
}

#[test]
fn mappings_on_two_wans() {
    let t = table(64, 4, OnFull::Refuse);
    let src = lan(10, 40000);
    assert_eq!(mapped_wans(&t, Proto::Udp, src), 0);
    let a = t
        .create(new(udp(src, remote(1, 1)), 0), pkt(1), s(0))
        .unwrap();
    assert_eq!(mapped_wans(&t, Proto::Udp, src), 0b01);
    let b = t
        .create(new(udp(src, remote(2, 1)), 1), pkt(1), s(0))
        .unwrap();
    assert_eq!(mapped_wans(&t, Proto::Udp, src), 0b11);
    assert_eq!(mapped_wans(&t, Proto::Tcp, src), 0);
    assert_eq!(mapped_wans(&t, Proto::Udp, lan(11, 40000)), 0);
    assert_eq!(a.src, Endpoint::new(WAN0, 40000));
    assert_eq!(b.src, Endpoint::new(WAN1, 40000));
    assert_eq!((t.wan_sessions(0), t.wan_sessions(1)), (1, 1));
    // a reply to the WAN 0 session arriving on WAN 1 (where the endpoint is also mapped) misses
    let k = udp(src, remote(1, 1));
    let wrong_wan = FlowKey::new(Proto::Udp, remote(1, 1), Endpoint::new(WAN1, 40000));
    assert_eq!(t.lookup_inbound(1, &wrong_wan, pkt(1), s(1)), Lookup::Miss);
    assert!(matches!(
        t.lookup_inbound(0, &reply(&k, &a), pkt(1), s(1)),
        Lookup::Hit(_)
    ));
    t.expire(s(10_000), 100);
    assert_eq!(mapped_wans(&t, Proto::Udp, src), 0);
    assert_eq!((t.wan_sessions(0), t.wan_sessions(1)), (0, 0));
}

/// A table of three WANs, leaving by interfaces 10, 11 and 12.
fn three_wan_table() -> ConnTable {
    let mut wans = two_wans();
    wans.push(WanNat {
        address: WAN2,
        ports: 1024..=65535,
        iface: 12,
    });
    ConnTable::new(&config(64, 4, OnFull::Refuse), &wans).unwrap()
}

const WAN2: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

/// `new` on `wan` with the given eligible WANs.
fn eligible(k: FlowKey, wan: u8, eligible: u64) -> NewSession {
    NewSession {
        eligible,
        ..new(k, wan)
    }
}

#[test]
fn create_reuses_the_mapping_on_the_preferred_wan() {
    let t = three_wan_table();
    let src = lan(10, 40000);
    // the endpoint is mapped on WANs 0 and 1 (port 40000 is taken on WAN 1: another port)
    t.create(new(udp(lan(11, 40000), remote(9, 1)), 1), pkt(1), s(0))
        .unwrap();
    let a0 = t
        .create(new(udp(src, remote(1, 1)), 0), pkt(1), s(0))
        .unwrap();
    let a1 = t
        .create(new(udp(src, remote(2, 1)), 1), pkt(1), s(0))
        .unwrap();
    assert_ne!(a1.src.port, 40000);
    assert_eq!(mapped_wans(&t, Proto::Udp, src), 0b011);
    let mappings = t.mapping_count();
    // every WAN eligible: the preferred WAN's mapping wins over the lower one
    let rw = t
        .create(eligible(udp(src, remote(3, 1)), 1, 0b111), pkt(1), s(1))
        .unwrap();
    assert_eq!((rw.src, rw.egress), (a1.src, 11));
    let rw = t
        .create(eligible(udp(src, remote(4, 1)), 0, 0b111), pkt(1), s(1))
        .unwrap();
    assert_eq!((rw.src, rw.egress), (a0.src, 10));
    // also when the preferred WAN is missing from `eligible`
    let rw = t
        .create(eligible(udp(src, remote(5, 1)), 1, 0b001), pkt(1), s(1))
        .unwrap();
    assert_eq!((rw.src, rw.egress), (a1.src, 11));
    assert_eq!(t.mapping_count(), mappings);
    assert_eq!(
        (t.wan_sessions(0), t.wan_sessions(1), t.wan_sessions(2)),
        (2, 4, 0)
    );
    t.check().unwrap();
}

#[test]
fn create_reuses_a_mapping_on_another_eligible_wan() {
    let t = three_wan_table();
    let src = lan(10, 40000);
    // port 40000 is taken on WAN 2: the endpoint's mapping there has another port
    t.create(new(udp(lan(11, 40000), remote(9, 1)), 2), pkt(1), s(0))
        .unwrap();
    let a2 = t
        .create(new(udp(src, remote(1, 1)), 2), pkt(1), s(0))
        .unwrap();
    assert_ne!(a2.src.port, 40000);
    // no mapping on the preferred WAN 0: the one on WAN 2 is reused, egress is WAN 2's
    let k = udp(src, remote(2, 1));
    let rw = t.create(eligible(k, 0, 0b101), pkt(1), s(1)).unwrap();
    assert_eq!((rw.src, rw.egress), (a2.src, 12));
    let i = info(&t, &k, s(1)).unwrap();
    assert_eq!((i.wan, i.egress, i.external), (2, 12, a2.src));
    assert_eq!(hit(t.lookup_outbound(&k, pkt(1), s(2))), rw);
    // replies come back on WAN 2
    assert_eq!(
        hit(t.lookup_inbound(2, &reply(&k, &rw), pkt(1), s(2))).dst,
        src
    );
    assert_eq!(mapped_wans(&t, Proto::Udp, src), 0b100);
    // mapped on WANs 1 and 2, preferring WAN 0: the lowest eligible mapped WAN wins
    let a1 = t
        .create(new(udp(src, remote(3, 1)), 1), pkt(1), s(2))
        .unwrap();
    let rw = t
        .create(eligible(udp(src, remote(4, 1)), 0, 0b111), pkt(1), s(2))
        .unwrap();
    assert_eq!((rw.src, rw.egress), (a1.src, 11));
    let rw = t
        .create(eligible(udp(src, remote(5, 1)), 0, 0b101), pkt(1), s(2))
        .unwrap();
    assert_eq!((rw.src, rw.egress), (a2.src, 12));
    // bits past the configured WANs are ignored
    let rw = t
        .create(eligible(udp(src, remote(6, 1)), 0, !0b011), pkt(1), s(2))
        .unwrap();
    assert_eq!(rw.src, a2.src);
    assert_eq!(mapped_wans(&t, Proto::Udp, src), 0b110);
    assert_eq!(
        (t.wan_sessions(0), t.wan_sessions(1), t.wan_sessions(2)),
        (0, 2, 5)
    );
    t.check().unwrap();
}

#[test]
fn create_makes_a_new_mapping_when_the_mapped_wan_is_not_eligible() {
    let t = three_wan_table();
    let src = lan(10, 40000);
    let a1 = t
        .create(new(udp(src, remote(1, 1)), 1), pkt(1), s(0))
        .unwrap();
    let k = udp(src, remote(2, 1));
    let rw = t.create(eligible(k, 0, 0b101), pkt(1), s(1)).unwrap();
    assert_eq!((rw.src, rw.egress), (Endpoint::new(WAN0, 40000), 10));
    assert_ne!(rw.src, a1.src);
    // the endpoint now has two mappings, one per WAN
    assert_eq!(mapped_wans(&t, Proto::Udp, src), 0b011);
    assert_eq!(t.mapping_count(), 2);
    assert_eq!(t.binding(0, Proto::Udp, 40000), Some(src));
    assert_eq!(t.binding(1, Proto::Udp, 40000), Some(src));
    // nothing eligible at all: a new mapping on the preferred WAN too
    let rw = t
        .create(eligible(udp(src, remote(3, 1)), 2, 0), pkt(1), s(1))
        .unwrap();
    assert_eq!((rw.src, rw.egress), (Endpoint::new(WAN2, 40000), 12));
    assert_eq!(mapped_wans(&t, Proto::Udp, src), 0b111);
    t.check().unwrap();
}

#[test]
fn hairpin_sessions_ignore_eligible() {
    let t = three_wan_table();
    // B publishes WAN0:8080; A is mapped on WAN 1 only
    let b = lan(20, 8080);
    t.create(
        new(key(Proto::Tcp, b, remote(9, 443)), 0),
        tcp(TCP_SYN),
        s(0),
    )
    .unwrap();
    let a = lan(10, 50000);
    let a1 = t
        .create(
            new(key(Proto::Tcp, a, remote(1, 443)), 1),
            tcp(TCP_SYN),
            s(0),
        )
        .unwrap();
    // A reaches WAN0:8080 with every WAN eligible: the hairpin stays on WAN 0
    let ka = key(Proto::Tcp, a, Endpoint::new(WAN0, 8080));
    let hp = NewSession {
        hairpin: Some(Hairpin {
            target: b,
            egress: 2,
        }),
        ..eligible(ka, 0, u64::MAX)
    };
    let rw = t.create(hp, tcp(TCP_SYN), s(1)).unwrap();
    assert_eq!(
        rw,
        Rewrite {
            src: Endpoint::new(WAN0, 50000),
            dst: b,
            egress: 2
        }
    );
    assert_ne!(rw.src, a1.src);
    assert_eq!(mapped_wans(&t, Proto::Tcp, a), 0b011);
    let i = info(&t, &ka, s(1)).unwrap();
    assert_eq!((i.wan, i.egress, i.dst_rewrite), (0, 2, Some(b)));
    t.check().unwrap();
}

#[test]
fn egress_comes_from_the_wan_interface() {
    let mut wans = two_wans();
    wans[0].iface = 7;
    wans[1].iface = 42;
    let t = ConnTable::new(&config(64, 4, OnFull::Refuse), &wans).unwrap();
    for (wan, iface) in [(0u8, 7u8), (1, 42)] {
        let k = udp(lan(10 + wan, 40000), remote(1, 53));
        let rw = t.create(new(k, wan), pkt(1), s(0)).unwrap();
        assert_eq!(rw.egress, iface);
        assert_eq!(hit(t.lookup_outbound(&k, pkt(1), s(1))).egress, iface);
        assert_eq!(info(&t, &k, s(1)).unwrap().egress, iface);
        // replies leave by the LAN the flow came from
        assert_eq!(
            hit(t.lookup_inbound(wan, &reply(&k, &rw), pkt(1), s(1))).egress,
            1
        );
    }
    // a session reusing WAN 1's mapping leaves by WAN 1's interface
    let k = udp(lan(11, 40000), remote(2, 53));
    let rw = t.create(eligible(k, 0, 0b11), pkt(1), s(2)).unwrap();
    assert_eq!((rw.src.ip, rw.egress), (WAN1, 42));
    t.check().unwrap();
}

#[test]
fn inbound_filtering_is_address_and_port_dependent() {
    let t = table(64, 4, OnFull::Refuse);
    let k = udp(lan(10, 40000), remote(1, 53));
    let rw = t.create(new(k, 0), pkt(1), s(0)).unwrap();
    let ok = reply(&k, &rw);
    let variants = [
        FlowKey {
            src: remote(2, 53),
            ..ok
        }, // unknown remote host
        FlowKey {
            src: remote(1, 54),
            ..ok
        }, // right host, other port
        FlowKey {
            dst: Endpoint::new(WAN0, 40001),
            ..ok
        }, // unbound external port
        FlowKey {
            dst: Endpoint::new(WAN1, 40000),
            ..ok
        }, // other WAN's address
        FlowKey {
            proto: Proto::Tcp,
            ..ok
        }, // other protocol
    ];
    for v in variants {
        assert_eq!(t.lookup_inbound(0, &v, pkt(1), s(1)), Lookup::Miss, "{v:?}");
    }
    assert_eq!(t.lookup_inbound(1, &ok, pkt(1), s(1)), Lookup::Miss);
    assert_eq!(t.lookup_inbound(9, &ok, pkt(1), s(1)), Lookup::Miss);
    assert!(matches!(
        t.lookup_inbound(0, &ok, pkt(1), s(1)),
        Lookup::Hit(_)
    ));
    // misses changed nothing
    let i = info(&t, &k, s(1)).unwrap();
    assert_eq!(i.packets_in, 1);
}

#[test]
fn binding_reads_the_port_table() {
    let t = table(64, 4, OnFull::Refuse);
    t.create(new(udp(lan(10, 40000), remote(1, 53)), 0), pkt(1), s(0))
        .unwrap();
    assert_eq!(t.binding(0, Proto::Udp, 40000), Some(lan(10, 40000)));
    assert_eq!(t.binding(0, Proto::Tcp, 40000), None);
    assert_eq!(t.binding(1, Proto::Udp, 40000), None);
    assert_eq!(t.binding(0, Proto::Udp, 40001), None);
    assert_eq!(t.binding(0, Proto::Udp, 80), None); // outside the range
    assert_eq!(t.binding(7, Proto::Udp, 40000), None); // no such WAN
    assert_eq!(t.wan_address(1), Some(WAN1));
    assert_eq!(t.wan_address(2), None);
}

#[test]
fn hairpin_rewrites_destination_and_establishes_from_one_side() {
    let t = table(64, 4, OnFull::Refuse);
    // B serves on 192.168.1.20:8080, published as WAN0:8080 by its own session
    let b = lan(20, 8080);
    let kb = key(Proto::Tcp, b, remote(9, 443));
    t.create(new(kb, 0), tcp(TCP_SYN), s(0)).unwrap();
    assert_eq!(t.binding(0, Proto::Tcp, 8080), Some(b));
    // A reaches WAN0:8080; the engine sees the binding and creates a hairpin session
    let ka = key(Proto::Tcp, lan(10, 50000), Endpoint::new(WAN0, 8080));
    let hp = NewSession {
        hairpin: Some(Hairpin {
            target: b,
            egress: 1,
        }),
        ..new(ka, 0)
    };
    let rw = t.create(hp, tcp(TCP_SYN), s(1)).unwrap();
    assert_eq!(
        rw,
        Rewrite {
            src: Endpoint::new(WAN0, 50000),
            dst: b,
            egress: 1
        }
    );
    assert_eq!(hit(t.lookup_outbound(&ka, tcp(TCP_ACK), s(2))), rw);
    assert_eq!(
        hit(t.lookup_outbound(&ka, tcp(TCP_ACK | TCP_PSH), s(3))),
        rw
    );
    // in the same second: a hit without the lock (the express lane's too), same rewrite
    assert_eq!(
        hit(t.lookup_outbound(&ka, tcp(TCP_ACK | TCP_PSH), s(3))),
        rw
    );
    let flow = t.outbound_hash(&ka);
    let (pkt, now, none) = (tcp(TCP_ACK | TCP_PSH), s(3), WanSet::EMPTY);
    assert_eq!(
        t.hit_outbound(&flow, SlotHint::NONE, pkt, now, none),
        Some(rw)
    );
    let i = info(&t, &ka, s(3)).unwrap();
    assert_eq!(i.dst_rewrite, Some(b));
    assert_eq!(i.tcp_state, Some(TcpState::Established));
    // a hairpin session never matches inbound, even from its own "remote"
    let spoof = key(
        Proto::Tcp,
        Endpoint::new(WAN0, 8080),
        Endpoint::new(WAN0, 50000),
    );
    assert_eq!(
        t.lookup_inbound(0, &spoof, tcp(TCP_ACK), s(4)),
        Lookup::Miss
    );
    // B's replies make B's own hairpin session toward A's external endpoint
    let kb2 = key(Proto::Tcp, b, Endpoint::new(WAN0, 50000));
    let a = t.binding(0, Proto::Tcp, 50000).unwrap();
    let rb = t
        .create(
            NewSession {
                hairpin: Some(Hairpin {
                    target: a,
                    egress: 1,
                }),
                ..new(kb2, 0)
            },
            tcp(TCP_SYN | TCP_ACK),
            s(4),
        )
        .unwrap();
    assert_eq!(rb.src, Endpoint::new(WAN0, 8080));
    assert_eq!(rb.dst, lan(10, 50000));
    t.check().unwrap();
}

/// A hairpin session keeps the target it was created with: when the target's mapping goes and
/// another host is given its external port, the hairpin flow is not redirected to that host
/// (the rewrite is stored in the session, not looked up in the port table per packet).
#[test]
fn hairpin_keeps_its_target_when_the_port_is_remapped() {
    let t = table(64, 4, OnFull::Refuse);
    let b = lan(20, 8080);
    t.create(new(udp(b, remote(9, 53)), 0), pkt(1), s(0))
        .unwrap();
    let ka = udp(lan(10, 50000), Endpoint::new(WAN0, 8080));
    let hp = NewSession {
        hairpin: Some(Hairpin {
            target: b,
            egress: 2,
        }),
        ..new(ka, 0)
    };
    let rw = t.create(hp, pkt(100), s(1)).unwrap();
    assert_eq!((rw.dst, rw.egress), (b, 2));
    // B's only session expires (UDP, 300 s) while A keeps its hairpin flow busy
    assert_eq!(hit(t.lookup_outbound(&ka, pkt(100), s(200))), rw);
    assert_eq!(t.expire(s(300), 10), 1);
    assert_eq!(t.binding(0, Proto::Udp, 8080), None);
    // C takes WAN0:8080 (its internal port, free now)
    let c = lan(30, 8080);
    let rc = t
        .create(new(udp(c, remote(9, 53)), 0), pkt(1), s(301))
        .unwrap();
    assert_eq!(rc.src, Endpoint::new(WAN0, 8080));
    assert_eq!(t.binding(0, Proto::Udp, 8080), Some(c));
    // A's packets still go to B, by B's LAN
    assert_eq!(hit(t.lookup_outbound(&ka, pkt(100), s(302))), rw);
    let i = info(&t, &ka, s(302)).unwrap();
    assert_eq!((i.dst_rewrite, i.egress, i.wan), (Some(b), 2, 0));
    assert_eq!(
        (i.packets_out, i.bytes_out, i.packets_in, i.bytes_in),
        (3, 300, 0, 0)
    );
    t.check().unwrap();
}

#[test]
fn icmp_echo_uses_the_identifier_as_port() {
    let t = table(64, 4, OnFull::Refuse);
    let req = key(Proto::Icmp, lan(10, 4242), remote(1, 0));
    let rw = t.create(new(req, 0), pkt(84), s(0)).unwrap();
    assert_eq!(rw.src, Endpoint::new(WAN0, 4242));
    assert_eq!(rw.dst, remote(1, 0));
    let rep = key(Proto::Icmp, remote(1, 0), Endpoint::new(WAN0, 4242));
    assert_eq!(
        hit(t.lookup_inbound(0, &rep, pkt(84), s(1))).dst,
        lan(10, 4242)
    );
    assert_eq!(t.expire(s(61) - Duration::from_nanos(1), 10), 0);
    assert_eq!(t.expire(s(61), 10), 1);
}

/// A session of each class, created at 1000 s: (key, timeout, flags of a packet that keeps
/// the session in its class).
fn one_of_each_class(t: &ConnTable) -> Vec<(FlowKey, Duration, u8)> {
    let d = timeouts();
    let now = s(1000);
    let mut v = Vec::new();
    let mut add = |k: FlowKey, first: u8, timeout: Duration, keep: u8| {
        t.create(new(k, 0), tcp(first), now).unwrap();
        v.push((k, timeout, keep));
    };
    add(udp(lan(1, 1111), remote(1, 1)), 0, d.udp, 0);
    add(key(Proto::Icmp, lan(2, 2222), remote(1, 0)), 0, d.icmp, 0);
    add(
        key(Proto::Tcp, lan(3, 3333), remote(1, 80)),
        TCP_ACK,
        d.tcp_established,
        TCP_ACK,
    );
    add(
        key(Proto::Tcp, lan(4, 4444), remote(1, 80)),
        TCP_SYN,
        d.tcp_transitory,
        TCP_SYN,
    );
    let closed = key(Proto::Tcp, lan(5, 5555), remote(1, 80));
    add(closed, TCP_SYN, d.tcp_closed, TCP_ACK);
    hit(t.lookup_outbound(&closed, tcp(TCP_RST), now));
    v
}

#[test]
fn each_class_expires_exactly_at_its_timeout_through_expire() {
    let t = table(64, 4, OnFull::Refuse);
    let mut classes = one_of_each_class(&t);
    classes.sort_by_key(|&(_, d, _)| d);
    let mut left = classes.len();
    for (k, d, _) in &classes {
        let at = s(1000) + *d;
        assert_eq!(
            t.expire(at - Duration::from_nanos(1), 100),
            0,
            "{k:?} early"
        );
        assert!(info(&t, k, at).is_some());
        assert_eq!(t.expire(at, 100), 1, "{k:?} not expired at its timeout");
        assert!(info(&t, k, at).is_none());
        left -= 1;
        assert_eq!(t.len(), left);
    }
    assert_eq!(t.stats().expired, classes.len() as u64);
    assert_eq!(t.bound_ports(), 0);
}

#[test]
fn each_class_expires_exactly_at_its_timeout_through_lookup() {
    let t = table(64, 4, OnFull::Refuse);
    let classes = one_of_each_class(&t);
    for (k, d, keep) in classes {
        let ns = Duration::from_nanos(1);
        // a hit just before the timeout refreshes the session ...
        let t1 = s(1000) + d - ns;
        assert!(
            matches!(t.lookup_outbound(&k, tcp(keep), t1), Lookup::Hit(_)),
            "{k:?}"
        );
        // ... so it lives a full timeout from there, and not a nanosecond more
        assert!(matches!(
            t.lookup_outbound(&k, tcp(keep), t1 + d - ns),
            Lookup::Hit(_)
        ));
        let t2 = t1 + d - ns;
        assert_eq!(
            t.lookup_outbound(&k, tcp(keep), t2 + d),
            Lookup::Miss,
            "{k:?}"
        );
        assert!(info(&t, &k, t2 + d).is_none());
    }
    assert!(t.is_empty());
    assert_eq!(t.bound_ports(), 0);
}

#[test]
fn lookup_on_an_expired_session_removes_it_and_misses() {
    let t = table(64, 4, OnFull::Refuse);
    let k = udp(lan(10, 40000), remote(1, 53));
    let rw = t.create(new(k, 0), pkt(1), s(0)).unwrap();
    assert!(matches!(
        t.lookup_outbound(&k, pkt(1), s(299)),
        Lookup::Hit(_)
    ));
    assert_eq!(
        t.lookup_inbound(0, &reply(&k, &rw), pkt(1), s(599)),
        Lookup::Miss
    );
    assert!(t.is_empty());
    assert_eq!(t.stats().expired, 1);
    assert_eq!(t.bound_ports(), 0);
    assert_eq!(t.binding(0, Proto::Udp, 40000), None);
    // created again: the preserved port comes back
    assert_eq!(t.create(new(k, 0), pkt(1), s(600)).unwrap(), rw);
}

#[test]
fn expire_respects_the_budget_and_resumes() {
    let t = table(64, 4, OnFull::Refuse);
    for i in 0..10 {
        t.create(
            new(udp(lan(i, 40000), remote(1, 53)), 0),
            pkt(1),
            s(u64::from(i)),
        )
        .unwrap();
    }
    let late = s(10_000);
    assert_eq!(t.expire(late, 0), 0);
    assert_eq!(t.expire(late, 3), 3);
    assert_eq!(t.len(), 7);
    assert_eq!(t.expire(late, 3), 3);
    assert_eq!(t.expire(late, 3), 3);
    assert_eq!(t.expire(late, 3), 1);
    assert_eq!(t.expire(late, 3), 0);
    assert!(t.is_empty());
    assert_eq!(t.stats().expired, 10);
    t.check().unwrap();
}

#[test]
fn expire_takes_only_what_is_expired() {
    let t = table(64, 4, OnFull::Refuse);
    for i in 0..10u8 {
        t.create(
            new(udp(lan(i, 40000), remote(1, 53)), 0),
            pkt(1),
            s(u64::from(i) * 10),
        )
        .unwrap();
    }
    assert_eq!(t.expire(s(299), 100), 0);
    // sessions created at 0, 10, 20 have expired at 320
    assert_eq!(t.expire(s(320), 100), 3);
    assert_eq!(t.len(), 7);
    assert_eq!(t.expire(s(320), 100), 0);
}

#[test]
fn eviction_picks_the_longest_idle_session_across_classes() {
    let t = table(3, 1, OnFull::EvictOldest);
    let a = udp(lan(1, 1001), remote(1, 1));
    let b = key(Proto::Tcp, lan(2, 1002), remote(1, 2));
    let c = key(Proto::Icmp, lan(3, 1003), remote(1, 0));
    t.create(new(a, 0), pkt(1), s(1)).unwrap();
    t.create(new(b, 0), tcp(TCP_ACK), s(2)).unwrap();
    t.create(new(c, 0), pkt(1), s(3)).unwrap();
    assert!(matches!(
        t.lookup_outbound(&a, pkt(1), s(4)),
        Lookup::Hit(_)
    ));
    let d = udp(lan(4, 1004), remote(1, 4));
    t.create(new(d, 0), pkt(1), s(5)).unwrap();
    let live: Vec<FlowKey> = sessions(&t, s(5)).iter().map(|i| i.key).collect();
    assert!(!live.contains(&b), "b was idle longest");
    assert!(live.contains(&a) && live.contains(&c) && live.contains(&d));
    assert_eq!(t.stats().evicted, 1);
    let e = udp(lan(5, 1005), remote(1, 5));
    t.create(new(e, 0), pkt(1), s(6)).unwrap();
    let live: Vec<FlowKey> = sessions(&t, s(6)).iter().map(|i| i.key).collect();
    assert!(!live.contains(&c), "then c");
    assert_eq!(t.len(), 3);
    assert_eq!(t.stats().evicted, 2);
    assert_eq!(t.binding(0, Proto::Tcp, 1002), None);
    t.check().unwrap();
}

#[test]
fn refuse_on_full_then_room_after_expiry() {
    let t = table(2, 1, OnFull::Refuse);
    assert_eq!(t.capacity(), 2);
    t.create(new(udp(lan(1, 1001), remote(1, 1)), 0), pkt(1), s(0))
        .unwrap();
    t.create(new(udp(lan(2, 1002), remote(1, 1)), 0), pkt(1), s(10))
        .unwrap();
    let k3 = udp(lan(3, 1003), remote(1, 1));
    assert_eq!(
        t.create(new(k3, 0), pkt(1), s(20)),
        Err(CreateError::TableFull)
    );
    assert_eq!(t.stats().refused_full, 1);
    assert_eq!(t.len(), 2);
    assert_eq!(t.binding(0, Proto::Udp, 1003), None, "no port leaked");
    // the first session's timeout passed: a full shard reaps it by itself
    assert!(t.create(new(k3, 0), pkt(1), s(300)).is_ok());
    assert_eq!(t.len(), 2);
    assert_eq!(t.stats().expired, 1);
    assert_eq!(t.stats().evicted, 0);
}

#[test]
fn capacity_rounds_up_per_shard() {
    let t = table(10, 4, OnFull::Refuse);
    assert_eq!(t.capacity(), 12);
    assert_eq!(t.shard_count(), 4);
}

fn tiny_range_table() -> ConnTable {
    ConnTable::new(
        &config(64, 4, OnFull::Refuse),
        &[WanNat {
            address: WAN0,
            ports: 50000..=50002,
            iface: 10,
        }],
    )
    .unwrap()
}

#[test]
fn ports_exhausted_on_a_tiny_range_then_reusable_after_expiry() {
    let t = tiny_range_table();
    let mut ports = Vec::new();
    for i in 0..3 {
        let rw = t
            .create(new(udp(lan(i, 40000), remote(1, 53)), 0), pkt(1), s(0))
            .unwrap();
        ports.push(rw.src.port);
    }
    ports.sort_unstable();
    assert_eq!(ports, [50000, 50001, 50002]);
    let k4 = udp(lan(3, 40000), remote(1, 53));
    assert_eq!(
        t.create(new(k4, 0), pkt(1), s(1)),
        Err(CreateError::PortsExhausted)
    );
    assert_eq!(t.stats().ports_exhausted, 1);
    assert_eq!(t.len(), 3);
    // an endpoint that already has a mapping still gets new sessions
    assert!(t
        .create(new(udp(lan(0, 40000), remote(2, 53)), 0), pkt(1), s(1))
        .is_ok());
    // other protocols have their own ports
    assert!(t
        .create(
            new(key(Proto::Tcp, lan(3, 40000), remote(1, 80)), 0),
            tcp(TCP_SYN),
            s(1)
        )
        .is_ok());
    assert_eq!(t.expire(s(100_000), 100), 5);
    assert_eq!(t.bound_ports(), 0);
    assert_eq!(t.mapping_count(), 0);
    for i in 10..13 {
        assert!(t
            .create(
                new(udp(lan(i, 40000), remote(1, 53)), 0),
                pkt(1),
                s(100_001)
            )
            .is_ok());
    }
    t.check().unwrap();
}

#[test]
fn create_of_an_existing_key_returns_its_rewrite() {
    let t = table(64, 4, OnFull::Refuse);
    let k = udp(lan(10, 123), remote(1, 53));
    let a = t.create(new(k, 0), pkt(10), s(0)).unwrap();
    // a racing worker asks for WAN 1: the existing session wins
    let b = t.create(new(k, 1), pkt(10), s(1)).unwrap();
    assert_eq!(a, b);
    assert_eq!(t.len(), 1);
    assert_eq!(t.stats().created, 1);
    assert_eq!(info(&t, &k, s(1)).unwrap().packets_out, 2);
}

#[test]
fn unknown_wan_is_refused() {
    let t = table(64, 4, OnFull::Refuse);
    let k = udp(lan(10, 40000), remote(1, 53));
    assert_eq!(
        t.create(new(k, 2), pkt(1), s(0)),
        Err(CreateError::UnknownWan)
    );
    assert!(t.is_empty());
    assert_eq!(t.wan_sessions(2), 0);
    assert_eq!(t.wan_sessions(200), 0);
    assert!(!CreateError::UnknownWan.to_string().is_empty());
}

/// A TCP packet with `flags` and sequence numbers.
fn segment(flags: u8, seq: u32, ack: u32) -> PacketInfo {
    PacketInfo {
        seg: Segment {
            seq,
            ack,
            window: 65535,
            ..Segment::default()
        },
        ..tcp(flags)
    }
}

#[test]
fn a_segment_out_of_the_window_changes_nothing() {
    let t = table(64, 4, OnFull::Refuse);
    let k = key(Proto::Tcp, lan(10, 40001), remote(1, 443));
    let rw = t.create(new(k, 0), segment(TCP_SYN, 100, 0), s(0)).unwrap();
    let r = reply(&k, &rw);
    hit(t.lookup_inbound(0, &r, segment(TCP_SYN | TCP_ACK, 900, 101), s(1)));
    hit(t.lookup_outbound(&k, segment(TCP_ACK, 101, 901), s(1)));
    let before = info(&t, &k, s(2)).unwrap();
    assert_eq!(before.tcp_state, Some(TcpState::Established));
    for (flags, seq) in [(TCP_RST, 0x8000_0000), (TCP_FIN | TCP_ACK, 0x4000_0000)] {
        let spoofed = segment(flags, seq, 101);
        assert_eq!(t.lookup_inbound(0, &r, spoofed, s(2)), Lookup::OutOfWindow);
    }
    // not even refreshed or counted
    assert_eq!(info(&t, &k, s(2)).unwrap(), before);
    // the reply side's own reset closes it
    hit(t.lookup_inbound(0, &r, segment(TCP_RST, 901, 0), s(3)));
    assert_eq!(
        info(&t, &k, s(3)).unwrap().tcp_state,
        Some(TcpState::Closed)
    );
    t.check().unwrap();
}

#[test]
fn tcp_lifecycle_through_the_table() {
    let t = table(64, 4, OnFull::Refuse);
    let k = key(Proto::Tcp, lan(10, 40000), remote(1, 443));
    let state = |now| info(&t, &k, now).and_then(|i| i.tcp_state);
    let rw = t.create(new(k, 0), tcp(TCP_SYN), s(0)).unwrap();
    let r = reply(&k, &rw);
    assert_eq!(state(s(0)), Some(TcpState::SynSent));
    hit(t.lookup_inbound(0, &r, tcp(TCP_SYN | TCP_ACK), s(1)));
    assert_eq!(state(s(1)), Some(TcpState::SynReceived));
    hit(t.lookup_outbound(&k, tcp(TCP_ACK), s(1)));
    assert_eq!(state(s(1)), Some(TcpState::Established));
    // established: still there after the transitory timeout
    assert_eq!(t.expire(s(1000), 10), 0);
    hit(t.lookup_outbound(&k, tcp(TCP_FIN | TCP_ACK), s(1000)));
    assert_eq!(state(s(1000)), Some(TcpState::FinWait));
    hit(t.lookup_inbound(0, &r, tcp(TCP_FIN | TCP_ACK), s(1000)));
    assert_eq!(state(s(1000)), Some(TcpState::LastAck));
    hit(t.lookup_outbound(&k, tcp(TCP_ACK), s(1000)));
    assert_eq!(state(s(1000)), Some(TcpState::TimeWait));
    // a new SYN on TimeWait recycles: miss, old session gone, fresh one from the slow path
    assert_eq!(t.lookup_outbound(&k, tcp(TCP_SYN), s(1001)), Lookup::Miss);
    assert!(t.is_empty());
    assert_eq!(t.stats().recycled, 1);
    assert_eq!(t.create(new(k, 0), tcp(TCP_SYN), s(1001)).unwrap(), rw);
    assert_eq!(state(s(1001)), Some(TcpState::SynSent));
    // RST from the reply side closes; closed sessions live tcp_closed
    hit(t.lookup_inbound(0, &r, tcp(TCP_RST | TCP_ACK), s(1002)));
    assert_eq!(state(s(1002)), Some(TcpState::Closed));
    assert_eq!(t.stats().closed_by_rst, 1);
    assert_eq!(t.expire(s(1011) + Duration::from_millis(999), 10), 0);
    assert_eq!(t.expire(s(1012), 10), 1);
    t.check().unwrap();
}

#[test]
fn syn_recycles_a_closed_session_inside_create_too() {
    let t = table(64, 4, OnFull::Refuse);
    let k = key(Proto::Tcp, lan(10, 40000), remote(1, 443));
    t.create(new(k, 0), tcp(TCP_SYN), s(0)).unwrap();
    hit(t.lookup_outbound(&k, tcp(TCP_RST), s(1)));
    // a worker that missed earlier creates with a SYN: the closed session is replaced
    t.create(new(k, 0), tcp(TCP_SYN), s(2)).unwrap();
    assert_eq!(t.len(), 1);
    assert_eq!(t.stats().created, 2);
    assert_eq!(
        info(&t, &k, s(2)).and_then(|i| i.tcp_state),
        Some(TcpState::SynSent)
    );
}

#[test]
fn icmp_errors_change_nothing() {
    let t = table(64, 4, OnFull::Refuse);
    let k = key(Proto::Tcp, lan(10, 40000), remote(1, 443));
    let rw = t.create(new(k, 0), tcp(TCP_ACK), s(0)).unwrap();
    let err = PacketInfo {
        tcp_flags: TCP_RST,
        len: 576,
        icmp_error: true,
        ..PacketInfo::default()
    };
    assert_eq!(
        hit(t.lookup_inbound(0, &reply(&k, &rw), err, s(100))).dst,
        k.src
    );
    assert_eq!(hit(t.lookup_outbound(&k, err, s(100))), rw);
    let i = info(&t, &k, s(100)).unwrap();
    assert_eq!(i.tcp_state, Some(TcpState::Established));
    assert_eq!((i.packets_out, i.packets_in, i.bytes_in), (1, 0, 0));
    assert_eq!(i.idle, s(100), "not refreshed");
    assert_eq!(t.stats().closed_by_rst, 0);
    // and the session still expires from its last real packet
    assert_eq!(t.expire(s(7440), 10), 1);
}

#[test]
fn for_each_session_measures_against_the_expire_clock() {
    let t = table(64, 4, OnFull::Refuse);
    let k = udp(lan(10, 40000), remote(1, 53));
    t.create(new(k, 0), pkt(1), s(5)).unwrap();
    t.expire(s(12), 10);
    let mut all = Vec::new();
    t.for_each_session(|i| all.push(*i));
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].idle, s(7));
    assert_eq!(all[0].age, s(7));
    assert_eq!(all[0].last_seen, s(5));
}

#[test]
fn config_errors() {
    let wans = two_wans();
    let bad = |c: TableConfig, w: &[WanNat]| ConnTable::new(&c, w).err();
    assert_eq!(
        bad(config(0, 1, OnFull::Refuse), &wans),
        Some(TableConfigError::NoSessions)
    );
    assert_eq!(
        bad(config(8, 3, OnFull::Refuse), &wans),
        Some(TableConfigError::BadShardCount(3))
    );
    assert_eq!(
        bad(config(8, 0, OnFull::Refuse), &wans),
        Some(TableConfigError::BadShardCount(0))
    );
    let many: Vec<WanNat> = (0..65).map(|_| wans[0].clone()).collect();
    assert_eq!(
        bad(config(8, 1, OnFull::Refuse), &many),
        Some(TableConfigError::TooManyWans(65))
    );
    #[allow(clippy::reversed_empty_ranges)]
    let empty = [WanNat {
        address: WAN0,
        ports: 2000..=1999,
        iface: 10,
    }];
    assert_eq!(
        bad(config(8, 1, OnFull::Refuse), &empty),
        Some(TableConfigError::EmptyPortRange { wan: 0 })
    );
    let zero = [
        wans[0].clone(),
        WanNat {
            address: WAN1,
            ports: 0..=100,
            iface: 11,
        },
    ];
    assert_eq!(
        bad(config(8, 1, OnFull::Refuse), &zero),
        Some(TableConfigError::PortZero { wan: 1 })
    );
    let mut c = config(8, 1, OnFull::Refuse);
    c.timeouts.icmp = Duration::ZERO;
    assert_eq!(bad(c, &wans), Some(TableConfigError::ZeroTimeout));
    // 64 WANs and no WAN at all are fine
    let sixty_four: Vec<WanNat> = (0..64).map(|_| wans[0].clone()).collect();
    let t = ConnTable::new(&config(8, 1, OnFull::Refuse), &sixty_four).unwrap();
    let src = lan(1, 40000);
    t.create(new(udp(src, remote(1, 1)), 63), pkt(1), s(0))
        .unwrap();
    assert_eq!(mapped_wans(&t, Proto::Udp, src), 1 << 63);
    let none = ConnTable::new(&config(8, 1, OnFull::Refuse), &[]).unwrap();
    assert_eq!(
        none.create(new(udp(src, remote(1, 1)), 0), pkt(1), s(0)),
        Err(CreateError::UnknownWan)
    );
    for e in [
        TableConfigError::NoSessions,
        TableConfigError::OutOfMemory,
        TableConfigError::BadShardCount(3),
    ] {
        assert!(!e.to_string().is_empty());
    }
}

#[test]
fn churn_never_grows_the_indexes() {
    // 2 x 179 sessions, full, with constant churn (evictions, expiry): the indexes of the
    // session shards and the mapping shards (179 slots plus headroom each, one mapping per
    // session) see every removal shift entries back, and never grow
    let t = table(358, 2, OnFull::EvictOldest);
    let buckets = t.index_buckets();
    let mut now = 0;
    for round in 0..200u32 {
        for i in 0..200u32 {
            // the internal endpoint changes every time: one new mapping per session
            let host = Ipv4Addr::from(0x0a00_0000 + round * 1000 + i);
            let k = udp(Endpoint::new(host, 40000), remote(1, 53));
            t.create(new(k, (i % 2) as u8), pkt(1), s(now)).unwrap();
            now += 1;
        }
        if round % 4 == 0 {
            t.expire(s(now + 300), 50);
        }
    }
    assert_eq!(t.index_buckets(), buckets, "an index grew");
    assert!(t.stats().evicted > 0);
    // one mapping per session, placed by endpoint: the mapping shards never ran out first
    assert_eq!(t.stats().refused_full, 0);
    assert!(t.len() > 300);
    t.check().unwrap();
    // every unexpired session still resolves in both directions after the churn
    let mut resolved = 0;
    for i in sessions(&t, s(now)) {
        if i.idle >= s(300) {
            continue;
        }
        resolved += 1;
        let rw = hit(t.lookup_outbound(&i.key, pkt(1), s(now)));
        assert_eq!(rw.src, i.external);
        let back = FlowKey::new(i.key.proto, i.key.dst, i.external);
        assert_eq!(
            hit(t.lookup_inbound(i.wan, &back, pkt(1), s(now))).dst,
            i.key.src
        );
    }
    assert!(resolved >= 299, "{resolved}");
}

#[test]
fn memory_per_session() {
    for (max, shards) in [
        (65_536u32, 16u16),
        (100_000, 16),
        (1 << 18, 16),
        (57_000, 8),
    ] {
        let t = ConnTable::new(&config(max, shards, OnFull::EvictOldest), &two_wans()).unwrap();
        let (sessions, ports) = t.memory_bytes();
        let per = sessions as f64 / t.capacity() as f64;
        // mapping slots per session slot: a mapping shard is a session shard plus headroom
        let shard_cap = t.capacity() / t.shard_count();
        let mapping_cap = t.mapping_shard_capacity();
        assert_eq!(mapping_cap, shard_cap + 8 * shard_cap.isqrt() + 8);
        // host shards: as many slots as a mapping shard
        assert_eq!(t.host_shard_capacity(), mapping_cap);
        let ratio = mapping_cap as f64 / shard_cap as f64;
        println!(
            "max_sessions {max} shards {shards}: {per:.1} bytes per session (session, index, \
             mapping, mapping index, host entry, host index; {ratio:.3} mapping and host slots \
             per session slot); port tables {ports} bytes"
        );
        // slabs (64 + 32 for the session and its TCP window, 16 per mapping slot, 12 per
        // host slot) plus three indexes of at most 2.86 buckets of 5 bytes per slot
        assert!(
            per <= 96.0 + 14.3 + (16.0 + 14.3 + 12.0 + 14.3) * ratio + 0.5,
            "{per}"
        );
        assert!(per <= 160.0, "{per}");
    }
}

#[test]
fn concurrent_create_and_lookup_stay_consistent() {
    let t = ConnTable::new(
        &config(4096, 8, OnFull::Refuse),
        &[
            WanNat {
                address: WAN0,
                ports: 40000..=40999,
                iface: 10,
            },
            WanNat {
                address: WAN1,
                ports: 1024..=65535,
                iface: 11,
            },
        ],
    )
    .unwrap();
    // 32 internal endpoints x 16 remotes; many endpoints share an internal port
    let keys: Vec<FlowKey> = (0..512u32)
        .map(|i| {
            let proto = if i % 3 == 0 { Proto::Tcp } else { Proto::Udp };
            let src = lan((i % 32) as u8, 40000 + (i % 4) as u16);
            key(proto, src, remote((i / 32) as u8, 443))
        })
        .collect();
    std::thread::scope(|sc| {
        for th in 0..2u64 {
            let t = &t;
            let keys = &keys;
            sc.spawn(move || {
                for round in 0..20u64 {
                    let now = s(round);
                    for i in 0..keys.len() {
                        let j = if th == 0 { i } else { keys.len() - 1 - i };
                        let k = &keys[j];
                        let flags = TCP_SYN;
                        let p = tcp(flags);
                        let rw = match t.lookup_outbound(k, p, now) {
                            Lookup::Hit(rw) => rw,
                            Lookup::Miss
                            | Lookup::Ended { .. }
                            | Lookup::Recalled { .. }
                            | Lookup::OutOfWindow => {
                                let wan = ((j as u64 + th) % 2) as u8;
                                t.create(new(*k, wan), p, now).expect("room and ports")
                            }
                        };
                        let wan = if rw.src.ip == WAN0 { 0 } else { 1 };
                        let back = t.lookup_inbound(wan, &reply(k, &rw), tcp(TCP_ACK), now);
                        assert_eq!(hit(back).dst, k.src);
                        assert_eq!(t.binding(wan, k.proto, rw.src.port), Some(k.src));
                    }
                }
            });
        }
    });
    assert_eq!(t.len(), keys.len());
    assert_eq!(t.stats().created, keys.len() as u64);
    assert_eq!(t.wan_sessions(0) + t.wan_sessions(1), keys.len() as u64);
    let mut n = 0;
    t.for_each_session_at(s(20), |_| n += 1);
    assert_eq!(n, keys.len());
    t.check().unwrap();
    // endpoint independence held under the race: one external port per (proto, endpoint, wan)
    let mut seen = std::collections::HashMap::new();
    for i in sessions(&t, s(20)) {
        let prev = seen.insert((i.key.proto, i.key.src, i.wan), i.external);
        assert!(prev.is_none_or(|p| p == i.external), "{i:?}");
    }
    assert_eq!(t.mapping_count(), seen.len());
    assert_eq!(t.expire(s(1_000_000), usize::MAX), keys.len());
    assert!(t.is_empty());
    assert_eq!(t.bound_ports(), 0);
    assert_eq!(t.mapping_count(), 0);
    assert_eq!((t.wan_sessions(0), t.wan_sessions(1)), (0, 0));
}

#[test]
fn table_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<ConnTable>();
    assert_send_sync::<crate::FragmentTable>();
}

/// Creates `k` on WAN 0 and asserts it got a session.
fn must_create(t: &ConnTable, k: FlowKey, now: Duration) -> Rewrite {
    match t.create(new(k, 0), pkt(1), now) {
        Ok(rw) => rw,
        Err(e) => panic!("{k:?}: {e} (len {} of {})", t.len(), t.capacity()),
    }
}

#[test]
fn a_busy_endpoint_does_not_crowd_out_other_hosts() {
    for on_full in [OnFull::EvictOldest, OnFull::Refuse] {
        // 16 shards of 256 sessions
        let t = table(4096, 16, on_full);
        assert_eq!(t.capacity(), 4096);
        // 300 other hosts' flows first
        let others: Vec<FlowKey> = (0..300u32)
            .map(|i| {
                let host = Ipv4Addr::from(0xc0a8_0200 + i);
                udp(Endpoint::new(host, 40000), remote(1, 443))
            })
            .collect();
        let mut rws = Vec::new();
        for k in &others {
            rws.push(must_create(&t, *k, s(0)));
        }
        // then one resolver on a fixed source port talks to 1000 distinct remote endpoints
        let busy = lan(53, 5353);
        let busy_keys: Vec<FlowKey> = (0..1000u32)
            .map(|i| udp(busy, Endpoint::new(Ipv4Addr::from(0x5db8_0000 + i), 53)))
            .collect();
        let mut ext = None;
        for k in &busy_keys {
            let rw = must_create(&t, *k, s(1));
            // one mapping: every session of the endpoint shares its external endpoint
            assert_eq!(*ext.get_or_insert(rw.src), rw.src);
        }
        assert_eq!(t.len(), 1300, "{on_full:?}");
        let st = t.stats();
        assert_eq!((st.evicted, st.refused_full), (0, 0), "{on_full:?}");
        assert_eq!(t.mapping_count(), 301);
        // nothing was disturbed: every session resolves in both directions
        for (k, rw) in others.iter().zip(&rws) {
            assert_eq!(hit(t.lookup_outbound(k, pkt(1), s(2))), *rw);
            assert_eq!(
                hit(t.lookup_inbound(0, &reply(k, rw), pkt(1), s(2))).dst,
                k.src
            );
        }
        for k in &busy_keys {
            let rw = hit(t.lookup_outbound(k, pkt(1), s(2)));
            assert_eq!(
                hit(t.lookup_inbound(0, &reply(k, &rw), pkt(1), s(2))).dst,
                busy
            );
        }
        t.check().unwrap();
    }
}

#[test]
fn clumps_of_sessions_per_endpoint_fill_the_table_evenly() {
    // 2^16 sessions in 16 shards; 4096 internal endpoints with 16 remotes each, filled to 90%
    // in arrival order (every endpoint opens its next flow in turn)
    const ENDPOINTS: u32 = 4096;
    let capacity = 1u32 << 16;
    let flows = capacity / 10 * 9;
    // (a few hash seeds: placement depends on them)
    for (seed, on_full) in (1..=4u64).flat_map(|s| [(s, OnFull::Refuse), (s, OnFull::EvictOldest)])
    {
        let c = TableConfig {
            hash_seed: seed,
            max_sessions_per_host: DEFAULT_MAX_SESSIONS_PER_HOST,
            max_ports_per_host: DEFAULT_MAX_PORTS_PER_HOST,
            ..config(capacity, 16, on_full)
        };
        let t = ConnTable::new(&c, &two_wans()).unwrap();
        for n in 0..flows {
            let e = n % ENDPOINTS;
            let src = Endpoint::new(
                Ipv4Addr::from(0x0a01_0000 + e / 16),
                10_000 + (e % 16) as u16,
            );
            let dst = Endpoint::new(Ipv4Addr::from(0x6440_0000 + n / ENDPOINTS), 443);
            must_create(&t, udp(src, dst), s(0));
        }
        assert_eq!(t.len(), flows as usize, "seed {seed} {on_full:?}");
        let st = t.stats();
        assert_eq!(
            (st.evicted, st.refused_full),
            (0, 0),
            "seed {seed} {on_full:?}"
        );
        assert_eq!(t.mapping_count(), ENDPOINTS as usize);
        t.check().unwrap();
    }
}

#[test]
fn concurrent_create_lookup_and_expire_on_shared_endpoints() {
    use std::sync::{mpsc, Arc};
    let config = TableConfig {
        timeouts: Timeouts {
            udp: s(3),
            icmp: s(3),
            tcp_established: s(5),
            tcp_transitory: s(2),
            tcp_closed: s(1),
        },
        ..config(512, 4, OnFull::EvictOldest)
    };
    let t = Arc::new(ConnTable::new(&config, &two_wans()).unwrap());
    // 48 internal endpoints (both threads use all of them) x 24 remotes, more flows than
    // sessions: creations evict, lookups expire and recycle, and `expire` runs, all taking
    // mapping-shard locks under session-shard locks while the other thread does the same
    let keys: Arc<Vec<FlowKey>> = Arc::new(
        (0..48u32 * 24)
            .map(|i| {
                let e = i % 48;
                let proto = if e % 3 == 0 { Proto::Tcp } else { Proto::Udp };
                let src = lan((e % 12) as u8, 40000 + (e / 12) as u16);
                key(proto, src, remote((i / 48) as u8, 443))
            })
            .collect(),
    );
    let (done, finished) = mpsc::channel();
    let mut workers = Vec::new();
    for th in 0..2u64 {
        let (t, keys, done) = (Arc::clone(&t), Arc::clone(&keys), done.clone());
        workers.push(std::thread::spawn(move || {
            let mut hits = 0u64;
            for round in 0..360u64 {
                let now = Duration::from_millis(round * 250);
                // a window of 256 keys moving on by 32 a round, walked in a different order by
                // each thread: flows idle out of the window and expire, or are evicted
                for i in 0..256 {
                    let w = if th == 0 { i } else { (i * 7 + 3) % 256 };
                    let j = (round as usize * 32 + w) % keys.len();
                    let k = &keys[j];
                    let flags = match (i + round as usize) % 11 {
                        0 => TCP_SYN,
                        1 => TCP_RST,
                        _ => TCP_ACK,
                    };
                    let p = if k.proto == Proto::Tcp {
                        tcp(flags)
                    } else {
                        pkt(100)
                    };
                    let rw = match t.lookup_outbound(k, p, now) {
                        Lookup::Hit(rw) => rw,
                        Lookup::Miss
                        | Lookup::Ended { .. }
                        | Lookup::Recalled { .. }
                        | Lookup::OutOfWindow => {
                            let wan = ((j as u64 + th + round) % 2) as u8;
                            let n = eligible(*k, wan, if round % 3 == 0 { 0b01 } else { 0b11 });
                            t.create(n, p, now).expect("room is made by eviction")
                        }
                    };
                    let wan = if rw.src.ip == WAN0 { 0 } else { 1 };
                    // the other thread may have removed it meanwhile; a hit must be right
                    if let Lookup::Hit(back) =
                        t.lookup_inbound(wan, &reply(k, &rw), tcp(TCP_ACK), now)
                    {
                        assert_eq!(back.dst, k.src);
                        hits += 1;
                    }
                    if i % 64 == 0 {
                        t.expire(now, 16);
                    }
                }
            }
            done.send(hits).expect("send");
        }));
    }
    drop(done);
    // a lock-order bug deadlocks: fail instead of hanging
    for _ in 0..2 {
        match finished.recv_timeout(Duration::from_secs(120)) {
            Ok(hits) => assert!(hits > 0),
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("workers stuck: deadlock?"),
            // a worker panicked: joining reports it
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    for w in workers {
        w.join().expect("worker");
    }
    let st = t.stats();
    println!("{st:?}, {} live", t.len());
    assert!(
        st.evicted > 0 && st.expired > 0 && st.recycled > 0,
        "{st:?}"
    );
    assert_eq!(
        st.created,
        t.len() as u64 + st.expired + st.evicted + st.recycled,
        "{st:?}"
    );
    assert_eq!(t.wan_sessions(0) + t.wan_sessions(1), t.len() as u64);
    t.check().unwrap();
    // endpoint independence held: one external port per (proto, endpoint, wan)
    let mut seen = std::collections::HashMap::new();
    for i in sessions(&t, s(10)) {
        let prev = seen.insert((i.key.proto, i.key.src, i.wan), i.external);
        assert!(prev.is_none_or(|p| p == i.external), "{i:?}");
        assert_eq!(
            t.binding(i.wan, i.key.proto, i.external.port),
            Some(i.key.src)
        );
    }
    assert_eq!(t.mapping_count(), seen.len());
    assert_eq!(t.bound_ports(), seen.len());
    let live = t.len();
    assert_eq!(t.expire(s(1_000), usize::MAX), live);
    assert!(t.is_empty());
    assert_eq!(t.bound_ports(), 0);
    assert_eq!(t.mapping_count(), 0);
    assert_eq!((t.wan_sessions(0), t.wan_sessions(1)), (0, 0));
    t.check().unwrap();
}

// Class lists in order of last packet to within one second (see `shard.rs`): a session moves
// to its list's head at most once per second (and on a change of class), nothing is removed
// early, a pass removes whatever is more than a second past its deadline, eviction takes the
// longest-idle class tail.

use std::collections::{HashMap, HashSet};

use crate::timeouts::Class;

/// The UDP list of session shard 0, head first.
fn udp_list(t: &ConnTable) -> Vec<FlowKey> {
    t.class_lists(0)[Class::Udp.index()].clone()
}

/// `n` UDP flows from distinct hosts.
fn udp_keys(n: u32) -> Vec<FlowKey> {
    (0..n)
        .map(|i| {
            udp(
                Endpoint::new(Ipv4Addr::from(0x0a00_0000 + i), 40000),
                remote(1, 53),
            )
        })
        .collect()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

const NS: Duration = Duration::from_nanos(1);

#[test]
fn a_hit_moves_its_session_at_its_first_packet_in_a_later_second() {
    let t = table(8, 1, OnFull::Refuse);
    let k = udp_keys(3);
    for (i, key) in k.iter().enumerate() {
        must_create(&t, *key, s(i as u64));
    }
    assert_eq!(udp_list(&t), [k[2], k[1], k[0]]);
    // k0's first packet since 0 s, in second 2: it moves to the head
    hit(t.lookup_outbound(&k[0], pkt(1), ms(2500)));
    assert_eq!(udp_list(&t), [k[0], k[2], k[1]]);
    // k2's packet is in the second it was created in: no move
    hit(t.lookup_outbound(&k[2], pkt(1), ms(2700)));
    assert_eq!(udp_list(&t), [k[0], k[2], k[1]]);
    // k1 in a later second moves; k0 again in second 2 does not
    hit(t.lookup_outbound(&k[1], pkt(1), ms(2800)));
    hit(t.lookup_outbound(&k[0], pkt(1), ms(2900)));
    assert_eq!(udp_list(&t), [k[1], k[0], k[2]]);
    // the tail k2 (last packet 2.7 s) expires at its own deadline, not its creation's
    assert_eq!(t.expire(s(302), 100), 0);
    assert_eq!(t.expire(ms(302_700) - NS, 100), 0);
    assert_eq!(t.expire(ms(302_700), 100), 1);
    assert_eq!(t.expire(ms(302_900) - NS, 100), 0);
    // k1's deadline (302.8 s) is before k0's, which is ahead of it: both go at 302.9 s
    assert_eq!(t.expire(ms(302_900), 100), 2);
    assert!(t.is_empty());
    assert_eq!(t.stats().expired, 3);
    t.check().unwrap();
}

#[test]
fn an_expire_pass_with_nothing_expired_writes_nothing() {
    let t = table(8, 1, OnFull::Refuse);
    let k = udp_keys(3);
    for (key, at) in k.iter().zip([0, 100, 800]) {
        must_create(&t, *key, ms(at));
    }
    hit(t.lookup_outbound(&k[0], pkt(1), ms(500)));
    let raw = t.raw_shard(0);
    assert_eq!(t.expire(ms(300_100) - NS, usize::MAX), 0);
    assert_eq!(
        t.raw_shard(0),
        raw,
        "a pass with nothing to do wrote something"
    );
    // k1's deadline (300.1 s) has passed, but k0's, ahead of it, has not: k0's packet came in
    // the second it was created in, so it did not move. k1 waits, less than a second.
    assert_eq!(t.expire(ms(300_100), usize::MAX), 0);
    assert_eq!(t.raw_shard(0), raw);
    assert_eq!(t.expire(ms(300_500), usize::MAX), 2);
    assert_eq!(udp_list(&t), [k[2]]);
}

#[test]
fn idle_sessions_among_refreshed_ones_expire_on_time_in_bounded_calls() {
    const N: u32 = 1000;
    const BUDGET: usize = 64;
    let t = table(4 * N, 4, OnFull::Refuse);
    let keys = udp_keys(N);
    for (i, k) in keys.iter().enumerate() {
        must_create(&t, *k, ms(i as u64));
    }
    // nine in ten get a packet later: the idle tenth is spread among refreshed sessions
    let idle = |i: usize| i.is_multiple_of(10);
    for (i, k) in keys.iter().enumerate() {
        if !idle(i) {
            hit(t.lookup_outbound(k, pkt(1), s(100)));
        }
    }
    // every idle session has expired by 301 s; no refreshed one before 400 s. The refreshed
    // ones moved away from the tails, so each call removes BUDGET idle sessions.
    let now = s(301);
    let mut calls = 0;
    while t.len() > 900 {
        calls += 1;
        assert!(calls <= 1000, "expiry does not progress");
        t.expire(now, BUDGET);
    }
    assert_eq!(calls, 100usize.div_ceil(BUDGET));
    assert_eq!(t.len(), 900);
    let live: HashSet<FlowKey> = sessions(&t, now).iter().map(|i| i.key).collect();
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(live.contains(k), !idle(i), "{i}");
    }
    assert_eq!(t.expire(now, usize::MAX), 0);
    assert_eq!(t.expire(s(400) - NS, usize::MAX), 0);
    assert_eq!(t.expire(s(400), usize::MAX), 900);
    assert_eq!(t.stats().expired, u64::from(N));
    assert_eq!(t.bound_ports(), 0);
    t.check().unwrap();
}

/// Asserts that a lookup hit on `k` wrote no other slot of its session shard, and no list.
fn assert_hit_writes_only_its_session(t: &ConnTable, k: &FlowKey, l: impl FnOnce() -> Lookup) {
    let (shard, slot) = t.slot_of(k).expect("live");
    let (before, lists_before) = t.raw_shard(shard);
    assert!(matches!(l(), Lookup::Hit(_)));
    let (after, lists_after) = t.raw_shard(shard);
    assert_eq!(lists_after, lists_before, "{k:?}: a list changed");
    let mut changed = 0;
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        if i == slot as usize {
            changed += usize::from(a != b);
        } else {
            assert_eq!(a, b, "hit on {k:?} (slot {slot}) wrote slot {i}");
        }
    }
    assert_eq!(changed, 1, "the hit did not even update its session");
}

#[test]
fn a_hit_writes_no_other_session_within_a_second() {
    let t = table(64, 1, OnFull::Refuse);
    let keys = udp_keys(10);
    let mut rws = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        rws.push(must_create(&t, *k, s(i as u64)));
    }
    let tk = key(Proto::Tcp, lan(1, 5000), remote(2, 443));
    let trw = t.create(new(tk, 0), tcp(TCP_ACK), s(10)).unwrap();
    for second in [20, 21, 200] {
        // the first packet of the second moves the tail, the middle and the head (a no-op
        // for the head) ...
        let start = s(second);
        for i in [0, 5, 9] {
            hit(t.lookup_outbound(&keys[i], pkt(1), start));
            assert_eq!(udp_list(&t)[0], keys[i], "second {second}: {i} not moved");
        }
        let order = udp_list(&t);
        // ... later packets in that second, outbound and inbound, write their session only
        let mut now = start;
        for i in [0, 5, 9, 0, 5, 9] {
            let k = &keys[i];
            now += ms(70);
            assert_hit_writes_only_its_session(&t, k, || t.lookup_outbound(k, pkt(1), now));
            now += ms(70);
            let back = reply(k, &rws[i]);
            assert_hit_writes_only_its_session(&t, k, || t.lookup_inbound(0, &back, pkt(1), now));
        }
        assert_eq!(udp_list(&t), order);
    }
    // the head in a later second: already there, nothing else written
    let head = udp_list(&t)[0];
    assert_hit_writes_only_its_session(&t, &head, || t.lookup_outbound(&head, pkt(1), s(250)));
    // TCP within its class and its second; its first packet in a later second moved it
    hit(t.lookup_outbound(&tk, tcp(TCP_ACK), s(300)));
    assert_hit_writes_only_its_session(&t, &tk, || {
        t.lookup_outbound(&tk, tcp(TCP_ACK | TCP_PSH), s(300) + ms(1))
    });
    assert_hit_writes_only_its_session(&t, &tk, || {
        t.lookup_inbound(0, &reply(&tk, &trw), tcp(TCP_ACK), s(301) - NS)
    });
    t.check().unwrap();
}

#[test]
fn a_change_of_class_moves_the_session_to_its_new_list_head() {
    let t = table(64, 1, OnFull::Refuse);
    let a = key(Proto::Tcp, lan(1, 5000), remote(2, 443));
    let b = key(Proto::Tcp, lan(2, 5000), remote(2, 443));
    let c = key(Proto::Tcp, lan(3, 5000), remote(2, 443));
    t.create(new(a, 0), tcp(TCP_ACK), s(0)).unwrap();
    t.create(new(b, 0), tcp(TCP_ACK), s(1)).unwrap();
    let rw = t.create(new(c, 0), tcp(TCP_SYN), s(2)).unwrap();
    let lists = |class: Class| t.class_lists(0)[class.index()].clone();
    assert_eq!(lists(Class::TcpTransitory), [c]);
    assert_eq!(lists(Class::TcpEstablished), [b, a]);
    // the handshake completes within the second c was created in: it changes lists anyway
    hit(t.lookup_inbound(0, &reply(&c, &rw), tcp(TCP_SYN | TCP_ACK), ms(2100)));
    hit(t.lookup_outbound(&c, tcp(TCP_ACK), ms(2200)));
    assert_eq!(lists(Class::TcpTransitory), []);
    assert_eq!(lists(Class::TcpEstablished), [c, b, a]);
    // a RST moves a to the closed list; it expires 10 s after that packet, b and c do not
    hit(t.lookup_outbound(&a, tcp(TCP_RST), s(5)));
    assert_eq!(lists(Class::TcpClosed), [a]);
    assert_eq!(t.expire(s(15) - NS, 100), 0);
    assert_eq!(t.expire(s(15), 100), 1);
    assert_eq!(lists(Class::TcpEstablished), [c, b]);
    t.check().unwrap();
}

#[test]
fn eviction_picks_the_longest_idle_session_after_hits() {
    // one shard of 7: six UDP sessions created at 0..5 s, a TCP one at 7 s
    let t = table(7, 1, OnFull::EvictOldest);
    let u = udp_keys(6);
    for (i, k) in u.iter().enumerate() {
        must_create(&t, *k, s(i as u64));
    }
    let tk = key(Proto::Tcp, lan(1, 5000), remote(2, 443));
    t.create(new(tk, 0), tcp(TCP_ACK), s(7)).unwrap();
    // the three oldest UDP sessions get packets: the longest-idle session is now u3
    for (i, k) in u.iter().take(3).enumerate() {
        hit(t.lookup_outbound(k, pkt(1), s(10 + i as u64)));
    }
    let live = |now| -> Vec<FlowKey> { sessions(&t, now).iter().map(|i| i.key).collect() };
    // each creation evicts the longest-idle session: u3 (idle since 3 s), u4, u5, the TCP
    // session (7 s), then u0 (10 s), u1, u2
    let order = [u[3], u[4], u[5], tk, u[0], u[1], u[2]];
    for (n, gone) in order.iter().enumerate() {
        let now = s(20 + n as u64);
        let fresh = udp(lan(100 + n as u8, 7000), remote(3, 53));
        must_create(&t, fresh, now);
        let l = live(now);
        assert!(!l.contains(gone), "eviction {n}: {gone:?} should have gone");
        for later in &order[n + 1..] {
            assert!(l.contains(later), "eviction {n}: {later:?} went too early");
        }
        assert_eq!(t.len(), 7);
        assert_eq!(t.stats().evicted, n as u64 + 1);
    }
    assert_eq!(t.stats().expired, 0);
    t.check().unwrap();
}

#[test]
fn eviction_is_exact_to_one_second() {
    // u0, u1 created in second 0, u0 refreshed in that second (no move), u2 in second 1
    let t = table(3, 1, OnFull::EvictOldest);
    let u = udp_keys(4);
    must_create(&t, u[0], ms(0));
    must_create(&t, u[1], ms(100));
    hit(t.lookup_outbound(&u[0], pkt(1), ms(600)));
    must_create(&t, u[2], ms(1200));
    // u0 (idle since 0.6 s) is the tail, u1 (since 0.1 s) the longest idle: both are among
    // the candidates eviction weighs, of hosts with one session each, so u1 goes
    must_create(&t, u[3], s(50));
    let l: Vec<FlowKey> = sessions(&t, s(50)).iter().map(|i| i.key).collect();
    assert_eq!(l.len(), 3);
    assert!(!l.contains(&u[1]));
    assert_eq!(t.stats().evicted, 1);
    t.check().unwrap();
}

/// A small xorshift generator for the randomized tests.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn random_traffic_never_expires_early_and_at_most_one_second_late_per_pass() {
    let timeouts = Timeouts {
        udp: s(30),
        icmp: s(20),
        tcp_established: s(60),
        tcp_transitory: s(25),
        tcp_closed: s(5),
    };
    let timeout = |i: &SessionInfo| match i.tcp_state {
        None => timeouts.udp,
        Some(st) => match st.class() {
            Class::TcpEstablished => timeouts.tcp_established,
            Class::TcpClosed => timeouts.tcp_closed,
            _ => timeouts.tcp_transitory,
        },
    };
    for seed in 1..=8u64 {
        let c = TableConfig {
            timeouts,
            hash_seed: seed,
            max_sessions_per_host: DEFAULT_MAX_SESSIONS_PER_HOST,
            max_ports_per_host: DEFAULT_MAX_PORTS_PER_HOST,
            ..config(512, 2, OnFull::Refuse)
        };
        let t = ConnTable::new(&c, &two_wans()).unwrap();
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let keys: Vec<FlowKey> = (0..300u32)
            .map(|i| {
                let proto = if i % 3 == 0 { Proto::Tcp } else { Proto::Udp };
                key(
                    proto,
                    lan((i % 50) as u8, 2000 + (i / 50) as u16),
                    remote(1, 80),
                )
            })
            .collect();
        // an expire call that removes sessions: nothing before its deadline; a full pass
        // (unlimited budget) leaves nothing a second past its deadline. Returns the latest
        // removal after its deadline.
        let expire = |now: Duration, budget: usize| -> Duration {
            let before = sessions(&t, now);
            t.expire(now, budget);
            let after: HashSet<FlowKey> = sessions(&t, now).iter().map(|i| i.key).collect();
            let mut late = Duration::ZERO;
            for i in &before {
                let deadline = i.last_seen + timeout(i);
                if !after.contains(&i.key) {
                    assert!(deadline <= now, "seed {seed}: {:?} expired early", i.key);
                    late = late.max(now - deadline);
                } else if budget == usize::MAX && deadline + s(1) <= now {
                    panic!("seed {seed}: {:?} left {:?} late", i.key, now - deadline);
                }
            }
            late
        };
        let mut now = Duration::ZERO;
        let mut late = Duration::ZERO;
        for step in 0..4000u32 {
            // a full pass at every whole second; random traffic and small passes in between
            let next = now + ms(rng.below(400));
            let mut second = now.as_secs() + 1;
            while s(second) <= next {
                late = late.max(expire(s(second), usize::MAX));
                second += 1;
            }
            now = next;
            // bursts of activity on a random slice of the flows, quiet spells in between
            let active = if (step / 200) % 2 == 0 { 300 } else { 30 };
            for _ in 0..rng.below(8) {
                let k = keys[rng.below(active) as usize];
                let flags = match rng.below(20) {
                    0 => TCP_SYN,
                    1 => TCP_RST,
                    2 => TCP_FIN | TCP_ACK,
                    _ => TCP_ACK,
                };
                let p = if k.proto == Proto::Tcp {
                    tcp(flags)
                } else {
                    pkt(1)
                };
                if t.lookup_outbound(&k, p, now) == Lookup::Miss {
                    t.create(new(k, 0), p, now).expect("room");
                }
            }
            late = late.max(expire(now, 4));
        }
        println!("seed {seed}: latest removal {late:?} after the deadline");
        // a pass every second: less than two seconds late
        assert!(late < s(2), "seed {seed}: {late:?}");
        assert_eq!(t.stats().evicted, 0);
        t.check().unwrap();
    }
}

#[test]
fn sessions_behind_an_idle_tail_are_removed_within_two_seconds_of_their_deadlines() {
    // The scenario that made a second-chance sweep keep answered flows for almost two
    // timeouts: an unanswered query X at the tail, idle until its deadline, and behind it
    // queries answered right after creation (most within the same second). Then steady
    // traffic, one flow in ten unanswered. UDP timeout 300 s; a pass every second.
    const FIRST: usize = 400;
    const STEADY: usize = 6000;
    let t = table(8192, 1, OnFull::Refuse);
    let keys = udp_keys((1 + FIRST + STEADY) as u32);
    // (time, flow, whether it is the answer)
    let mut events: Vec<(Duration, usize, bool)> = vec![(ms(0), 0, false)];
    for i in 1..=FIRST {
        let at = 10 * i as u64;
        events.push((ms(at), i, false));
        if i % 10 != 0 {
            events.push((ms(at + 20), i, true));
        }
    }
    for j in 0..STEADY {
        // ten flows a second from 5 s to 605 s
        let at = 5000 + 100 * j as u64 + j as u64 % 7;
        let i = 1 + FIRST + j;
        events.push((ms(at), i, false));
        if j % 10 != 3 {
            events.push((ms(at + 20 + 10 * (j as u64 % 5)), i, true));
        }
    }
    events.sort();
    let mut events = events.into_iter().peekable();
    let mut rws: Vec<Option<Rewrite>> = vec![None; keys.len()];
    // live flows and their deadlines (last packet + 300 s)
    let mut deadlines: HashMap<usize, Duration> = HashMap::new();
    let mut worst = Duration::ZERO;
    let mut most_live = 0;
    let mut removed = 0;
    for second in 1..=1000u64 {
        let now = s(second);
        while let Some(&(at, i, answer)) = events.peek() {
            if at >= now {
                break;
            }
            events.next();
            if answer {
                let back = reply(&keys[i], rws[i].as_ref().unwrap());
                hit(t.lookup_inbound(0, &back, pkt(1), at));
            } else {
                rws[i] = Some(must_create(&t, keys[i], at));
            }
            deadlines.insert(i, at + s(300));
        }
        most_live = most_live.max(t.len());
        t.expire(now, usize::MAX);
        deadlines.retain(|&i, &mut deadline| {
            if t.slot_of(&keys[i]).is_some() {
                assert!(
                    now < deadline + s(1),
                    "flow {i} left {:?} late",
                    now - deadline
                );
                return true;
            }
            assert!(deadline <= now, "flow {i} removed early");
            worst = worst.max(now - deadline);
            removed += 1;
            false
        });
    }
    println!("latest removal {worst:?} after the deadline; at most {most_live} live sessions");
    assert_eq!(removed, keys.len());
    assert!(t.is_empty());
    assert!(worst < s(2), "{worst:?}");
    // ten flows a second for 300 s, plus the first ones and the second of lateness
    assert!(most_live <= 3000 + FIRST + 1 + 20, "{most_live}");
    assert_eq!(t.stats().expired, keys.len() as u64);
    t.check().unwrap();
}

#[test]
fn lock_free_hits_stay_exact_while_the_shard_churns() {
    // One shard: every insertion and removal shifts entries in the index the readers probe
    // and reuses slots they may be reading. Readers must never see a false miss or another
    // session's rewrite for the 64 flows that live throughout.
    let config = TableConfig {
        timeouts: Timeouts {
            tcp_closed: s(1),
            ..Timeouts::default()
        },
        ..config(1024, 1, OnFull::Refuse)
    };
    let t = ConnTable::new(&config, &two_wans()).unwrap();
    let stable: Vec<(FlowKey, Rewrite)> = (0..64u8)
        .map(|i| {
            let k = udp(lan(i, 5000), remote(200, 53));
            (k, t.create(new(k, i % 2), pkt(80), s(1)).unwrap())
        })
        .collect();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|sc| {
        for th in 0..2usize {
            let (t, stable, stop) = (&t, &stable, &stop);
            sc.spawn(move || {
                let mut rounds = 0u64;
                while !stop.load(Ordering::Relaxed) || rounds < 10 {
                    for (k, rw) in stable.iter().skip(th) {
                        assert_eq!(hit(t.lookup_outbound(k, pkt(80), s(1))), *rw);
                        let wan = u8::from(rw.src.ip == WAN1);
                        let back = hit(t.lookup_inbound(wan, &reply(k, rw), pkt(80), s(1)));
                        assert_eq!((back.src, back.dst), (k.dst, k.src));
                    }
                    rounds += 1;
                }
            });
        }
        let (t, stop) = (&t, &stop);
        sc.spawn(move || {
            for round in 0..2000u32 {
                // 200 short TCP flows from fresh endpoints, closed by a reset, then reaped
                let keys: Vec<FlowKey> = (0..200u32)
                    .map(|i| {
                        let n = round * 200 + i;
                        let src = lan(100 + (n % 100) as u8, 20_000 + (n / 100 % 40_000) as u16);
                        key(Proto::Tcp, src, remote(7, 443))
                    })
                    .collect();
                for k in &keys {
                    t.create(new(*k, 0), tcp(TCP_SYN), s(1)).unwrap();
                }
                for k in &keys {
                    hit(t.lookup_outbound(k, tcp(TCP_RST), s(1)));
                }
                assert_eq!(t.expire(s(3), usize::MAX), 200);
            }
            stop.store(true, Ordering::Relaxed);
        });
    });
    assert_eq!(t.len(), 64);
    t.check().unwrap();
}

#[test]
fn both_directions_of_a_flow_hash_alike_and_prefetch_points_at_its_session() {
    use std::cell::Cell;
    thread_local! {
        static SEEN: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
        static LAST: Cell<usize> = const { Cell::new(0) };
    }
    fn count(p: *const u8) {
        SEEN.with(|s| {
            let (n, null) = s.get();
            s.set((n + 1, null + usize::from(p.is_null())));
        });
        LAST.with(|l| l.set(p.addr()));
    }
    let t = table(1024, 4, OnFull::Refuse);
    let k = udp(lan(3, 5353), remote(9, 53));
    let rw = t.create(new(k, 1), pkt(80), s(1)).unwrap();
    let h = t.outbound_hash(&k);
    assert_eq!(t.inbound_hash(1, &reply(&k, &rw)), Some(h));
    // no session owns the port on the other WAN, nor another port on this one
    assert_eq!(t.inbound_hash(0, &reply(&k, &rw)), None);
    let mut other = reply(&k, &rw);
    other.dst.port = other.dst.port.wrapping_add(1);
    assert_eq!(t.inbound_hash(1, &other), None);
    let mut slots = [SlotHint::NONE; 70];
    assert_eq!(t.prefetch_sessions(&[Some(h)], &mut slots, count), 0);
    assert_ne!(slots[0], SlotHint::NONE);
    // the home index entry's line, then the session's
    assert_eq!(SEEN.with(Cell::get), (2, 0));
    // the address prefetched last is the session's cell
    let Peek::Found(found, _) = t
        .shard_of(h.h)
        .peek(h.h, Proto::Udp, h.ep, h.remote, u32::MAX)
    else {
        panic!("the session is not found");
    };
    assert_eq!(LAST.with(Cell::get), std::ptr::from_ref(found.cell).addr());
    // a new flow of the same endpoint: its home entry, but no session (the endpoint's
    // mapping index entry instead), then the slot its session will take and the endpoint's
    // mapping; a frame without a flow is skipped, and its bit stays clear
    let unknown = t.outbound_hash(&udp(lan(3, 5353), remote(10, 53)));
    assert_eq!(
        t.prefetch_sessions(&[None, Some(unknown), Some(h)], &mut slots, count),
        0b010
    );
    assert_eq!(SEEN.with(Cell::get), (2 + 2 + 1 + 1, 0));
    t.prefetch_create(unknown, count);
    assert_eq!(SEEN.with(Cell::get), (8, 0));
    // a new endpoint has no mapping to prefetch
    let fresh = t.outbound_hash(&udp(lan(4, 1), remote(10, 53)));
    t.prefetch_create(fresh, count);
    assert_eq!(SEEN.with(Cell::get), (9, 0));
    // at most 64 flows (an entry and a mapping each): the rest are ignored
    assert_eq!(
        t.prefetch_sessions(&[Some(unknown); 70], &mut slots, count),
        u64::MAX
    );
    assert_eq!(SEEN.with(Cell::get), (9 + 64 * 2, 0));
    // a TCP flow's session comes with its window cell
    let tk = key(Proto::Tcp, lan(5, 40000), remote(9, 443));
    t.create(new(tk, 1), tcp(TCP_SYN), s(1)).unwrap();
    let th = t.outbound_hash(&tk);
    assert_eq!(t.prefetch_sessions(&[Some(th)], &mut slots, count), 0);
    assert_eq!(SEEN.with(Cell::get), (9 + 64 * 2 + 3, 0));
}

#[test]
fn a_hint_saves_the_hash_and_a_wrong_hint_costs_nothing_else() {
    let t = table(1024, 4, OnFull::Refuse);
    let k = udp(lan(3, 5353), remote(9, 53));
    let rw = t.create(new(k, 1), pkt(80), s(1)).unwrap();
    let back = reply(&k, &rw);
    let other = t.outbound_hash(&udp(lan(4, 1), remote(8, 53)));
    let live = Liveness::ALL_LIVE;
    for hint in [Some(t.outbound_hash(&k)), Some(other), None] {
        let out = t.lookup_outbound_hinted(&k, hint, pkt(80), s(2), &live);
        assert_eq!(hit(out), rw);
    }
    for hint in [t.inbound_hash(1, &back), Some(other), None] {
        let inb = t.lookup_inbound_hinted(1, &back, hint, pkt(80), s(2));
        assert_eq!(hit(inb).dst, k.src);
    }
}

#[test]
fn a_stale_slot_hint_finds_no_other_session() {
    // one shard: a freed slot is the next one taken
    let t = table(1024, 1, OnFull::Refuse);
    let none = WanSet::EMPTY;
    let ka = udp(lan(3, 1000), remote(9, 53));
    let rwa = t.create(new(ka, 1), pkt(80), s(1)).unwrap();
    let ha = t.outbound_hash(&ka);
    let mut slots = [SlotHint::NONE; 1];
    assert_eq!(t.prefetch_sessions(&[Some(ha)], &mut slots, |_| {}), 0);
    let hint = slots[0];
    assert_ne!(hint, SlotHint::NONE);
    assert_eq!(t.hit_outbound(&ha, hint, pkt(80), s(1), none), Some(rwa));
    // A expires: its slot is free, and the hint stale
    assert_eq!(t.expire(s(1000), usize::MAX), 1);
    assert_eq!(t.hit_outbound(&ha, hint, pkt(80), s(1000), none), None);
    // B takes A's slot: the hint leads to B's session, which is not A's
    let kb = udp(lan(4, 2000), remote(9, 53));
    let rwb = t.create(new(kb, 1), pkt(80), s(1000)).unwrap();
    let hb = t.outbound_hash(&kb);
    assert_eq!(t.prefetch_sessions(&[Some(hb)], &mut slots, |_| {}), 0);
    assert_eq!(slots[0], hint, "B took A's slot");
    assert_eq!(t.hit_outbound(&ha, hint, pkt(80), s(1000), none), None);
    assert_eq!(t.hit_outbound(&hb, hint, pkt(80), s(1000), none), Some(rwb));
    // a hint naming another flow's slot, or none, costs only the index probe
    let kc = udp(lan(5, 3000), remote(9, 53));
    let rwc = t.create(new(kc, 1), pkt(80), s(1000)).unwrap();
    let hc = t.outbound_hash(&kc);
    assert_eq!(t.hit_outbound(&hc, hint, pkt(80), s(1000), none), Some(rwc));
    assert_eq!(
        t.hit_outbound(&hc, SlotHint::NONE, pkt(80), s(1000), none),
        Some(rwc)
    );
    assert_eq!(t.len(), 2);
    t.check().unwrap();
}

#[test]
fn distinct_flows_fill_most_of_the_table_before_a_shard_refuses() {
    // The limit holds per shard (capacity / shards each): the first refusal comes when
    // the fullest shard is full, a little before the table is. At the default size and
    // shard count, with flows spread by the hash, that is at 96% (README, `max_sessions`).
    let t = table(262_144, 64, OnFull::Refuse);
    let mut created = 0u32;
    let refused_at = loop {
        let endpoint = created / 16;
        let internal = Endpoint::new(
            Ipv4Addr::from(0x0a00_0000 | (endpoint >> 6)),
            10_000 + (endpoint & 63) as u16,
        );
        let k = udp(internal, remote((created % 16) as u8, 53));
        match t.create(new(k, 0), pkt(1), s(0)) {
            Ok(_) => created += 1,
            Err(CreateError::TableFull) => break created,
            Err(e) => panic!("flow {created}: {e:?}"),
        }
    };
    let fill = f64::from(refused_at) / t.capacity() as f64;
    println!(
        "first refusal at {refused_at} of {} ({:.1}%)",
        t.capacity(),
        fill * 100.0
    );
    assert!(
        fill >= 0.95,
        "first refusal at {:.1}% of capacity",
        fill * 100.0
    );
}

mod hosts;

mod forwards;
