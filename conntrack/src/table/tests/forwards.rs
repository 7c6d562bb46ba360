//! Port forwards: sessions opened from the Internet to a WAN's external port and forwarded to
//! a LAN target (`create_forwarded`, `lookup_forwarded`, the target's packets through
//! `lookup_outbound`), their TCP tracking with the client as the opener, and the ports
//! reserved from dynamic NAT.

use super::*;

/// The forward's external port on WAN 0.
const EXT: u16 = 8443;
/// The forward's id.
const FORWARD: u16 = 7;

/// The forward's target on the LAN.
fn target() -> Endpoint {
    lan(20, 443)
}

/// An Internet client.
fn client(port: u16) -> Endpoint {
    remote(9, port)
}

/// The session of `client`'s connection to the forward on WAN 0, port `EXT`.
fn fwd(proto: Proto, client: Endpoint) -> NewForwarded {
    NewForwarded {
        key: key(proto, target(), client),
        wan: 0,
        ext_port: EXT,
        lan_iface: 1,
        forward: FORWARD,
    }
}

/// `client`'s packet as it arrives on WAN 0.
fn wire(proto: Proto, client: Endpoint) -> FlowKey {
    key(proto, client, Endpoint::new(WAN0, EXT))
}

/// A TCP segment with `flags`, sequence numbers and `payload` bytes.
fn data(flags: u8, seq: u32, ack: u32, payload: u16) -> PacketInfo {
    let mut p = segment(flags, seq, ack);
    p.seg.payload = payload;
    p.len = 40 + u32::from(payload);
    p
}

/// The client's rewrite: to the target, out of its LAN.
fn to_target(client: Endpoint) -> Rewrite {
    Rewrite {
        src: client,
        dst: target(),
        egress: 1,
    }
}

/// The target's rewrite: from the forward's external endpoint, out of WAN 0.
fn to_client(client: Endpoint) -> Rewrite {
    Rewrite {
        src: Endpoint::new(WAN0, EXT),
        dst: client,
        egress: 10,
    }
}

#[test]
fn a_forwarded_tcp_connection_lives_its_whole_life() {
    let t = table(64, 4, OnFull::Refuse);
    let c = client(50000);
    let (n, w) = (fwd(Proto::Tcp, c), wire(Proto::Tcp, c));
    let k = n.key;
    let state = |now| info(&t, &k, now).and_then(|i| i.tcp_state);
    // the client opens: its SYN creates the session
    let rw = t
        .create_forwarded(n, data(TCP_SYN, 1000, 0, 0), s(0))
        .unwrap();
    assert_eq!(rw, to_target(c));
    assert_eq!(state(s(0)), Some(TcpState::SynSent));
    let i = info(&t, &k, s(0)).unwrap();
    assert!(i.forwarded);
    assert_eq!(i.external, Endpoint::new(WAN0, EXT));
    assert_eq!((i.wan, i.egress, i.lan_iface, i.rule), (0, 10, 1, FORWARD));
    assert_eq!((i.packets_in, i.packets_out), (1, 0));
    // the target answers through the outbound path: from the forward's endpoint, out of WAN 0
    let syn_ack = data(TCP_SYN | TCP_ACK, 5000, 1001, 0);
    assert_eq!(hit(t.lookup_outbound(&k, syn_ack, s(1))), to_client(c));
    assert_eq!(state(s(1)), Some(TcpState::SynReceived));
    let ack = data(TCP_ACK, 1001, 5001, 0);
    assert_eq!(
        hit(t.lookup_forwarded(0, &w, target(), ack, s(1))),
        to_target(c)
    );
    assert_eq!(state(s(1)), Some(TcpState::Established));
    // data both ways, through the window tracker (later packets in one second take no lock)
    for round in 0..3u32 {
        let (cs, ts) = (1001 + 100 * round, 5001 + 500 * round);
        let up = data(TCP_ACK | TCP_PSH, cs, ts, 100);
        let down = data(TCP_ACK | TCP_PSH, ts, cs + 100, 500);
        hit(t.lookup_forwarded(0, &w, target(), up, s(2)));
        assert_eq!(hit(t.lookup_outbound(&k, down, s(2))), to_client(c));
    }
    let i = info(&t, &k, s(2)).unwrap();
    assert_eq!((i.packets_in, i.packets_out), (5, 4));
    assert_eq!((i.bytes_in, i.bytes_out), (40 + 40 + 3 * 140, 40 + 3 * 540));
    // a segment far outside the client's window is dropped
    let stale = data(TCP_ACK | TCP_PSH, 0x8000_0000, 6501, 100);
    assert_eq!(
        t.lookup_forwarded(0, &w, target(), stale, s(3)),
        Lookup::OutOfWindow
    );
    // the target closes first (for the tracker, the reply side), the client follows
    hit(t.lookup_outbound(&k, data(TCP_FIN | TCP_ACK, 6501, 1301, 0), s(4)));
    assert_eq!(state(s(4)), Some(TcpState::CloseWait));
    let fin = data(TCP_FIN | TCP_ACK, 1301, 6502, 0);
    hit(t.lookup_forwarded(0, &w, target(), fin, s(4)));
    assert_eq!(state(s(4)), Some(TcpState::LastAck));
    hit(t.lookup_outbound(&k, data(TCP_ACK, 6502, 1302, 0), s(4)));
    assert_eq!(state(s(4)), Some(TcpState::TimeWait));
    // a SYN of the target's does not reopen it; the client's recycles it
    hit(t.lookup_outbound(&k, data(TCP_SYN, 6502, 0, 0), s(5)));
    assert_eq!(state(s(5)), Some(TcpState::TimeWait));
    let syn = data(TCP_SYN, 90_000, 0, 0);
    assert_eq!(t.lookup_forwarded(0, &w, target(), syn, s(5)), Lookup::Miss);
    assert!(t.is_empty());
    assert_eq!(t.stats().recycled, 1);
    assert_eq!(t.create_forwarded(n, syn, s(5)).unwrap(), to_target(c));
    assert_eq!(state(s(5)), Some(TcpState::SynSent));
    // never a mapping nor a port binding
    assert_eq!((t.mapping_count(), t.bound_ports()), (0, 0));
    assert_eq!(t.stats().created, 2);
    t.check().unwrap();
}

/// A forwarded TCP connection from `c`, established with client ISN 1000 and target ISN
/// 5000.
fn established(t: &ConnTable, c: Endpoint) {
    let (n, w) = (fwd(Proto::Tcp, c), wire(Proto::Tcp, c));
    t.create_forwarded(n, data(TCP_SYN, 1000, 0, 0), s(0))
        .unwrap();
    hit(t.lookup_outbound(&n.key, data(TCP_SYN | TCP_ACK, 5000, 1001, 0), s(0)));
    hit(t.lookup_forwarded(0, &w, target(), data(TCP_ACK, 1001, 5001, 0), s(0)));
}

#[test]
fn a_spoofed_reset_from_the_client_side_changes_nothing() {
    let t = table(64, 4, OnFull::Refuse);
    let c = client(50001);
    established(&t, c);
    let (k, w) = (fwd(Proto::Tcp, c).key, wire(Proto::Tcp, c));
    let before = info(&t, &k, s(1)).unwrap();
    assert_eq!(before.tcp_state, Some(TcpState::Established));
    for (flags, seq) in [(TCP_RST, 0x8000_0000), (TCP_FIN | TCP_ACK, 0x4000_0000)] {
        let spoofed = data(flags, seq, 5001, 0);
        assert_eq!(
            t.lookup_forwarded(0, &w, target(), spoofed, s(1)),
            Lookup::OutOfWindow
        );
    }
    // through create_forwarded (a racing worker) too
    assert_eq!(
        t.create_forwarded(fwd(Proto::Tcp, c), data(TCP_RST, 0x8000_0000, 0, 0), s(1)),
        Err(CreateError::OutOfWindow)
    );
    assert_eq!(info(&t, &k, s(1)).unwrap(), before);
    // the client's own reset closes it, and its next SYN recycles it
    hit(t.lookup_forwarded(0, &w, target(), data(TCP_RST, 1001, 0, 0), s(2)));
    assert_eq!(
        info(&t, &k, s(2)).unwrap().tcp_state,
        Some(TcpState::Closed)
    );
    let syn = data(TCP_SYN, 777, 0, 0);
    assert_eq!(t.lookup_forwarded(0, &w, target(), syn, s(3)), Lookup::Miss);
    assert!(t.is_empty());
    t.check().unwrap();
}

#[test]
fn a_forwarded_udp_flow_goes_both_ways_and_only_through_its_forward() {
    let t = table(64, 4, OnFull::Refuse);
    let c = client(40000);
    let (n, w) = (fwd(Proto::Udp, c), wire(Proto::Udp, c));
    assert_eq!(t.create_forwarded(n, pkt(100), s(0)).unwrap(), to_target(c));
    assert_eq!(hit(t.lookup_outbound(&n.key, pkt(200), s(1))), to_client(c));
    assert_eq!(
        hit(t.lookup_forwarded(0, &w, target(), pkt(50), s(2))),
        to_target(c)
    );
    let i = info(&t, &n.key, s(2)).unwrap();
    assert_eq!(
        (i.packets_in, i.bytes_in, i.packets_out, i.bytes_out),
        (2, 150, 1, 200)
    );
    assert_eq!(i.tcp_state, None);
    // the NAT path does not reach it (no mapping owns the port)
    assert_eq!(t.lookup_inbound(0, &w, pkt(1), s(2)), Lookup::Miss);
    // another WAN, WAN address, external port, target or protocol: no hit
    let other_port = key(Proto::Udp, c, Endpoint::new(WAN0, EXT + 1));
    let other_addr = key(Proto::Udp, c, Endpoint::new(WAN1, EXT));
    for (wan, k, tg) in [
        (1, w, target()),
        (1, other_addr, target()),
        (0, other_addr, target()),
        (0, other_port, target()),
        (0, w, lan(20, 444)),
        (0, wire(Proto::Tcp, c), target()),
        (9, w, target()),
    ] {
        assert_eq!(t.lookup_forwarded(wan, &k, tg, pkt(1), s(2)), Lookup::Miss);
    }
    // nor does a forward lookup reach an ordinary session of the same flow
    let own = udp(lan(21, 5000), c);
    let rw = t.create(new(own, 0), pkt(1), s(2)).unwrap();
    let own_wire = key(Proto::Udp, c, rw.src);
    assert_eq!(
        t.lookup_forwarded(0, &own_wire, own.src, pkt(1), s(2)),
        Lookup::Miss
    );
    hit(t.lookup_inbound(0, &own_wire, pkt(1), s(2)));
    assert_eq!(info(&t, &n.key, s(2)).unwrap(), i);
    assert_eq!(t.mapping_count(), 1);
    t.check().unwrap();
}

#[test]
fn a_race_touches_the_session_and_a_conflicting_one_is_refused() {
    let t = table(64, 4, OnFull::Refuse);
    let c = client(40000);
    let n = fwd(Proto::Udp, c);
    t.create_forwarded(n, pkt(10), s(0)).unwrap();
    // a racing worker's creation is a hit
    assert_eq!(t.create_forwarded(n, pkt(10), s(1)).unwrap(), to_target(c));
    // and so is the target's packet racing through create (it has no mapping to take)
    assert_eq!(
        t.create(new(n.key, 1), pkt(10), s(1)).unwrap(),
        to_client(c)
    );
    let i = info(&t, &n.key, s(1)).unwrap();
    assert_eq!((t.len(), i.packets_in, i.packets_out), (1, 2, 1));
    // another forward (port, WAN) of the same flow is refused
    for other in [
        NewForwarded {
            ext_port: EXT + 1,
            ..n
        },
        NewForwarded { wan: 1, ..n },
    ] {
        assert_eq!(
            t.create_forwarded(other, pkt(10), s(1)),
            Err(CreateError::Conflict)
        );
    }
    // so is a forward of the flow of an ordinary session
    let own = udp(lan(21, 5000), c);
    t.create(new(own, 0), pkt(1), s(1)).unwrap();
    let clash = NewForwarded { key: own, ..n };
    assert_eq!(
        t.create_forwarded(clash, pkt(1), s(1)),
        Err(CreateError::Conflict)
    );
    assert_eq!(
        t.create_forwarded(NewForwarded { wan: 2, ..n }, pkt(1), s(1)),
        Err(CreateError::UnknownWan)
    );
    assert!(!CreateError::Conflict.to_string().is_empty());
    assert_eq!(t.len(), 2);
    t.check().unwrap();
}

#[test]
fn forwarded_sessions_go_by_expiry_and_eviction_and_hold_no_host_cap() {
    // one shard of 4, the target's host allowed a single session of its own
    let c = TableConfig {
        max_sessions_per_host: 1,
        max_ports_per_host: 1,
        ..config(4, 1, OnFull::EvictOldest)
    };
    let t = ConnTable::new(&c, &two_wans()).unwrap();
    for p in 0..3 {
        t.create_forwarded(fwd(Proto::Udp, client(1000 + p)), pkt(1), s(u64::from(p)))
            .unwrap();
    }
    // the host's own flow is not held back by the sessions it serves
    let own = udp(target(), remote(1, 53));
    t.create(new(own, 0), pkt(1), s(3)).unwrap();
    t.check().unwrap();
    // a full shard evicts: the forward's oldest session (its target serves three)
    t.create_forwarded(fwd(Proto::Udp, client(2000)), pkt(1), s(4))
        .unwrap();
    assert_eq!(t.stats().evicted, 1);
    assert!(info(&t, &fwd(Proto::Udp, client(1000)).key, s(4)).is_none());
    assert!(info(&t, &own, s(4)).is_some());
    t.check().unwrap();
    // expiry takes them all, and their host entries with them
    assert_eq!(t.expire(s(10_000), 100), 4);
    assert!(t.is_empty());
    let mut entries = 0;
    t.shared.hosts.for_each(|_, _, _, _, _| entries += 1);
    assert_eq!(entries, 0);
    t.check().unwrap();
    // a full shard that refuses refuses forwards too
    let r = table(1, 1, OnFull::Refuse);
    r.create_forwarded(fwd(Proto::Udp, client(1)), pkt(1), s(0))
        .unwrap();
    assert_eq!(
        r.create_forwarded(fwd(Proto::Udp, client(2)), pkt(1), s(0)),
        Err(CreateError::TableFull)
    );
    r.check().unwrap();
}

#[test]
fn reserved_ports_are_never_allocated_until_released() {
    let t = tiny_range_table();
    let reserved = 50001;
    assert!(t.reserve_port(0, Proto::Udp, reserved));
    assert!(t.reserve_port(0, Proto::Udp, reserved), "twice is fine");
    // outside the range nothing needs reserving; an unknown WAN is refused
    assert!(t.reserve_port(0, Proto::Udp, 80));
    assert!(!t.reserve_port(3, Proto::Udp, reserved));
    assert_eq!(t.binding(0, Proto::Udp, reserved), None);
    // port preservation skips it, and so does the scan
    let mut ports = Vec::new();
    for i in 0..2 {
        let k = udp(lan(i, reserved), remote(1, 53));
        ports.push(t.create(new(k, 0), pkt(1), s(0)).unwrap().src.port);
    }
    ports.sort_unstable();
    assert_eq!(ports, [50000, 50002]);
    let k3 = udp(lan(3, reserved), remote(1, 53));
    assert_eq!(
        t.create(new(k3, 0), pkt(1), s(0)),
        Err(CreateError::PortsExhausted)
    );
    assert_eq!((t.bound_ports(), t.mapping_count()), (2, 2));
    // the forward's sessions use it
    let n = NewForwarded {
        ext_port: reserved,
        ..fwd(Proto::Udp, client(1))
    };
    t.create_forwarded(n, pkt(1), s(0)).unwrap();
    let w = key(Proto::Udp, client(1), Endpoint::new(WAN0, reserved));
    hit(t.lookup_forwarded(0, &w, target(), pkt(1), s(0)));
    t.check().unwrap();
    // a port a mapping holds cannot be reserved, nor forwarded
    assert!(!t.reserve_port(0, Proto::Udp, 50000));
    let on_bound = NewForwarded {
        ext_port: 50000,
        ..fwd(Proto::Udp, client(2))
    };
    assert_eq!(
        t.create_forwarded(on_bound, pkt(1), s(0)),
        Err(CreateError::Conflict)
    );
    // the forward goes: its sessions, then its reservation; the port is dynamic NAT's again
    assert_eq!(t.remove_forwarded(0, Proto::Udp, reserved), 1);
    assert_eq!(t.remove_forwarded(0, Proto::Udp, reserved), 0);
    assert!(t.release_port(0, Proto::Udp, reserved));
    assert!(!t.release_port(0, Proto::Udp, reserved));
    assert!(!t.release_port(3, Proto::Udp, reserved));
    assert_eq!(
        t.create(new(k3, 0), pkt(1), s(1)).unwrap().src.port,
        reserved
    );
    assert_eq!(t.bound_ports(), 3);
    t.check().unwrap();
}

#[test]
fn a_forwarded_session_on_an_ended_wan_ends_on_the_targets_next_packet() {
    let t = table(64, 4, OnFull::Refuse);
    let c = client(50002);
    established(&t, c);
    let u = fwd(Proto::Udp, client(40000));
    t.create_forwarded(u, pkt(1), s(0)).unwrap();
    // never recalled: its WAN is its forward's
    let outranked = Liveness {
        outranked: WanSet::EMPTY.with(0),
        recall: &|_, _| true,
        ..Liveness::ALL_LIVE
    };
    assert_eq!(
        hit(t.lookup_outbound_live(&u.key, pkt(1), s(1), &outranked)),
        to_client(u.key.dst)
    );
    let down = Liveness {
        ended: WanSet::EMPTY.with(0),
        ..Liveness::ALL_LIVE
    };
    let k = fwd(Proto::Tcp, c).key;
    assert_eq!(
        t.lookup_outbound_live(&k, data(TCP_ACK, 5001, 1001, 0), s(1), &down),
        Lookup::Ended {
            wan: 0,
            tcp: Some(TcpState::Established)
        }
    );
    assert_eq!(
        t.lookup_outbound_live(&u.key, pkt(1), s(1), &down),
        Lookup::Ended { wan: 0, tcp: None }
    );
    assert!(t.is_empty());
    assert_eq!((t.wan_sessions(0), t.stats().ended_by_wan_down), (0, 2));
    t.check().unwrap();
}

/// A LAN client of the forward's port (a hairpin through the forward).
fn lan_client() -> Endpoint {
    lan(10, 50000)
}

/// Interface id of the LAN client's LAN (the target's is 1).
const CLIENT_LAN: u8 = 2;

/// The LAN client's hairpin session to the forward's port on WAN 0, reaching the target (what
/// the engine makes of its first packet: an ordinary hairpin session, `create`); returns its
/// external endpoint on WAN 0 (its mapping).
fn hairpin_in(t: &ConnTable, proto: Proto, flags: u8, now: Duration) -> Endpoint {
    let k = key(proto, lan_client(), Endpoint::new(WAN0, EXT));
    let hp = NewSession {
        lan_iface: CLIENT_LAN,
        hairpin: Some(Hairpin {
            target: target(),
            egress: 1,
        }),
        ..new(k, 0)
    };
    let rw = t.create(hp, data(flags, 1000, 0, 0), now).unwrap();
    assert_eq!((rw.src.ip, rw.dst, rw.egress), (WAN0, target(), 1));
    rw.src
}

/// The target's side of the hairpin: its session toward the client's external endpoint
/// `mapped`, from the forward's port.
fn hairpin_out(proto: Proto, mapped: Endpoint) -> (NewForwarded, Hairpin) {
    let n = NewForwarded {
        key: key(proto, target(), mapped),
        ..fwd(proto, mapped)
    };
    let hp = Hairpin {
        target: lan_client(),
        egress: CLIENT_LAN,
    };
    (n, hp)
}

/// The target's packets to the LAN client: from the forward's external endpoint, out of the
/// client's LAN.
fn to_lan_client() -> Rewrite {
    Rewrite {
        src: Endpoint::new(WAN0, EXT),
        dst: lan_client(),
        egress: CLIENT_LAN,
    }
}

#[test]
fn a_hairpin_through_a_forward_answers_from_the_forwards_port() {
    let t = table(64, 4, OnFull::Refuse);
    assert!(t.reserve_port(0, Proto::Tcp, EXT));
    // the client's SYN reaches the target from the client's own mapping
    let mapped = hairpin_in(&t, Proto::Tcp, TCP_SYN, s(0));
    assert_eq!(t.binding(0, Proto::Tcp, mapped.port), Some(lan_client()));
    // the target's SYN-ACK finds no session: the engine makes the target's side
    let (n, hp) = hairpin_out(Proto::Tcp, mapped);
    let k = n.key;
    let syn_ack = data(TCP_SYN | TCP_ACK, 5000, 1001, 0);
    assert_eq!(t.lookup_outbound(&k, syn_ack, s(1)), Lookup::Miss);
    assert_eq!(
        t.create_forwarded_hairpin(n, hp, syn_ack, s(1)).unwrap(),
        to_lan_client()
    );
    let i = info(&t, &k, s(1)).unwrap();
    assert!(i.forwarded);
    assert_eq!(i.dst_rewrite, Some(lan_client()));
    assert_eq!(i.external, Endpoint::new(WAN0, EXT));
    assert_eq!(
        (i.wan, i.egress, i.lan_iface, i.rule),
        (0, CLIENT_LAN, 1, FORWARD)
    );
    assert_eq!(i.tcp_state, Some(TcpState::Established));
    assert_eq!((i.packets_out, i.bytes_out, i.packets_in), (1, 40, 0));
    // no mapping of its own, no port: the client's mapping is the only one
    assert_eq!((t.mapping_count(), t.bound_ports()), (1, 1));
    t.check().unwrap();
    // the handshake ends and data goes both ways (later packets in a second take no lock)
    let ck = key(Proto::Tcp, lan_client(), Endpoint::new(WAN0, EXT));
    for round in 0..3u32 {
        let (cs, ts) = (1001 + 100 * round, 5001 + 500 * round);
        let up = data(TCP_ACK | TCP_PSH, cs, ts, 100);
        let rw = hit(t.lookup_outbound(&ck, up, s(2)));
        assert_eq!((rw.src, rw.dst), (mapped, target()));
        let down = data(TCP_ACK | TCP_PSH, ts, cs + 100, 500);
        assert_eq!(hit(t.lookup_outbound(&k, down, s(2))), to_lan_client());
    }
    let flow = t.outbound_hash(&k);
    let down = data(TCP_ACK | TCP_PSH, 6501, 1301, 500);
    assert_eq!(
        t.hit_outbound(&flow, SlotHint::NONE, down, s(2), WanSet::EMPTY),
        Some(to_lan_client())
    );
    let i = info(&t, &k, s(2)).unwrap();
    assert_eq!(i.tcp_state, Some(TcpState::Established));
    assert_eq!(
        (i.packets_out, i.bytes_out, i.packets_in),
        (5, 40 + 4 * 540, 0)
    );
    assert_eq!(
        i.dst_rewrite,
        Some(lan_client()),
        "counting kept the rewrite"
    );
    // it never matches inbound: not through the port table, nor as the forward's session
    let spoof = key(Proto::Tcp, mapped, Endpoint::new(WAN0, EXT));
    let ack = data(TCP_ACK, 1301, 7001, 0);
    assert_eq!(t.lookup_inbound(0, &spoof, ack, s(3)), Lookup::Miss);
    assert_eq!(
        t.lookup_forwarded(0, &spoof, target(), ack, s(3)),
        Lookup::Miss
    );
    // nor does it end with its WAN: it does not leave by it
    let down_wan = Liveness {
        ended: WanSet::EMPTY.with(0),
        ..Liveness::ALL_LIVE
    };
    let more = data(TCP_ACK | TCP_PSH, 7001, 1301, 10);
    assert_eq!(
        hit(t.lookup_outbound_live(&k, more, s(3), &down_wan)),
        to_lan_client()
    );
    // the target closes: FinWait, then its class's timeout takes it
    hit(t.lookup_outbound(&k, data(TCP_FIN | TCP_ACK, 7011, 1301, 0), s(4)));
    assert_eq!(
        info(&t, &k, s(4)).unwrap().tcp_state,
        Some(TcpState::FinWait)
    );
    t.check().unwrap();
    let transitory = timeouts().tcp_transitory.as_secs();
    assert_eq!(t.expire(s(4 + transitory + 2), 100), 1);
    assert!(info(&t, &k, s(4 + transitory + 2)).is_none());
    assert_eq!(t.len(), 1, "the client's own session stays (established)");
    t.check().unwrap();
}

#[test]
fn a_reset_closes_a_hairpin_through_a_forward_and_a_race_is_a_hit() {
    let t = table(64, 4, OnFull::Refuse);
    let mapped = hairpin_in(&t, Proto::Tcp, TCP_SYN, s(0));
    let (n, hp) = hairpin_out(Proto::Tcp, mapped);
    let syn_ack = data(TCP_SYN | TCP_ACK, 5000, 1001, 0);
    t.create_forwarded_hairpin(n, hp, syn_ack, s(0)).unwrap();
    // a racing worker's creation is a hit
    assert_eq!(
        t.create_forwarded_hairpin(n, hp, syn_ack, s(0)).unwrap(),
        to_lan_client()
    );
    assert_eq!(info(&t, &n.key, s(0)).unwrap().packets_out, 2);
    // the flow as a forward's session from the Internet, or another forward's, is refused
    for (other, hairpin) in [
        (n, None),
        (
            NewForwarded {
                ext_port: EXT + 1,
                ..n
            },
            Some(hp),
        ),
        (NewForwarded { wan: 1, ..n }, Some(hp)),
    ] {
        let made = match hairpin {
            Some(hp) => t.create_forwarded_hairpin(other, hp, syn_ack, s(0)),
            None => t.create_forwarded(other, syn_ack, s(0)),
        };
        assert_eq!(made, Err(CreateError::Conflict));
    }
    // and so is a hairpin through a forward whose port a mapping holds, or on no WAN
    let on_mapped = NewForwarded {
        key: key(Proto::Tcp, target(), remote(1, 1)),
        ext_port: mapped.port,
        ..n
    };
    assert_eq!(
        t.create_forwarded_hairpin(on_mapped, hp, syn_ack, s(0)),
        Err(CreateError::Conflict)
    );
    assert_eq!(
        t.create_forwarded_hairpin(NewForwarded { wan: 2, ..n }, hp, syn_ack, s(0)),
        Err(CreateError::UnknownWan)
    );
    // the target's reset closes it; a closed session times out as one
    hit(t.lookup_outbound(&n.key, data(TCP_RST, 5001, 0, 0), s(1)));
    assert_eq!(
        info(&t, &n.key, s(1)).unwrap().tcp_state,
        Some(TcpState::Closed)
    );
    assert_eq!(t.stats().closed_by_rst, 1);
    t.check().unwrap();
    let closed = timeouts().tcp_closed.as_secs();
    assert_eq!(t.expire(s(1 + closed + 2), 100), 1);
    assert!(info(&t, &n.key, s(1 + closed + 2)).is_none());
    t.check().unwrap();
}

#[test]
fn a_udp_hairpin_through_a_forward_holds_no_cap_and_goes_with_the_forward() {
    // the target's host may open one session of its own, and has it
    let c = TableConfig {
        max_sessions_per_host: 1,
        max_ports_per_host: 1,
        ..config(64, 4, OnFull::Refuse)
    };
    let t = ConnTable::new(&c, &two_wans()).unwrap();
    t.create(new(udp(target(), remote(1, 53)), 0), pkt(1), s(0))
        .unwrap();
    let mapped = hairpin_in(&t, Proto::Udp, 0, s(0));
    let (n, hp) = hairpin_out(Proto::Udp, mapped);
    assert_eq!(
        t.create_forwarded_hairpin(n, hp, pkt(200), s(1)).unwrap(),
        to_lan_client()
    );
    assert_eq!(
        hit(t.lookup_outbound(&n.key, pkt(100), s(2))),
        to_lan_client()
    );
    let i = info(&t, &n.key, s(2)).unwrap();
    assert_eq!((i.tcp_state, i.forwarded), (None, true));
    assert_eq!(
        (i.packets_out, i.bytes_out, i.packets_in, i.bytes_in),
        (2, 300, 0, 0)
    );
    assert_eq!(
        t.host_sessions(target().ip),
        1,
        "counted apart from its own"
    );
    t.check().unwrap();
    // expiry takes it with the rest, and every host entry with them
    let udp_timeout = timeouts().udp.as_secs();
    assert_eq!(t.expire(s(2 + udp_timeout + 2), 100), 3);
    let mut entries = 0;
    t.shared.hosts.for_each(|_, _, _, _, _| entries += 1);
    assert_eq!((t.len(), entries, t.mapping_count()), (0, 0, 0));
    t.check().unwrap();
    // made again, it goes when its forward does (the one from the Internet too)
    let mapped = hairpin_in(&t, Proto::Udp, 0, s(1000));
    let (n, hp) = hairpin_out(Proto::Udp, mapped);
    t.create_forwarded_hairpin(n, hp, pkt(1), s(1000)).unwrap();
    t.create_forwarded(fwd(Proto::Udp, client(1)), pkt(1), s(1000))
        .unwrap();
    assert_eq!(t.remove_forwarded(0, Proto::Udp, EXT), 2);
    assert_eq!(t.len(), 1, "the client's hairpin session is its own");
    t.check().unwrap();
}
