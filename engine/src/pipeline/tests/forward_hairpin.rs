//! Hairpins through port forwards: a LAN host reaching a WAN address's forwarded port gets to
//! the forward's target, which sees it come from the host's own mapping on that WAN; the
//! target's answers reach the host from the forward's port, where it sent its packets (else
//! its TCP or UDP stack would not take them as its connection's).

use std::net::Ipv4Addr;

use super::harness::*;
use super::packets::*;
use crate::packet::Medium;
use crate::pipeline::{Event, Verdict};

/// The harness's router with these forwards, pushing frames the way `path` says.
fn router(forwards: &str, path: Path) -> Router {
    let mut r = Router::with_config(Medium::Ip, &format!("{TOPOLOGY}\n{forwards}"));
    r.path = path;
    r
}

/// TCP 8080 of isp1 and isp2 to HOST_A:80.
const WEB: &str = "[[forward]]\nname = \"web\"\nwans = [\"isp1\", \"isp2\"]\nproto = \"tcp\"\n\
                   port = 8080\nto = \"192.168.1.10\"\nto_port = 80\n";

/// UDP 27015-27020 of isp2 to HOST_B:37015-37020.
const GAME: &str = "[[forward]]\nname = \"game\"\nwan = \"isp2\"\nproto = \"udp\"\n\
                    port = \"27015-27020\"\nto = \"192.168.1.20\"\nto_port = 37015\n";

/// The forwarded session of the target `target` (the target's side of a hairpin): its
/// external port, hairpin destination and TCP state.
fn target_side(
    r: &Router,
    target: (Ipv4Addr, u16),
) -> Option<(u16, conntrack::Endpoint, Option<conntrack::TcpState>)> {
    let mut found = None;
    r.dp.tables.conntrack.for_each_session(|s| {
        if s.forwarded && s.key.src == conntrack::Endpoint::new(target.0, target.1) {
            found = s.dst_rewrite.map(|d| (s.external.port, d, s.tcp_state));
        }
    });
    found
}

#[test]
fn a_lan_host_reaches_a_forwarded_tcp_port_and_hears_back_from_it() {
    for path in [Path::Batch, Path::General] {
        let mut r = router(WEB, path);
        // through each WAN the forward is on; the client's port lies in the NAT range and is
        // preserved: its mapping m is its own port
        for (wan, addr, m) in [(0, ISP1_ADDR, 21000), (1, ISP2_ADDR, 21100)] {
            let client = (HOST_B, m);
            let syn = tcp(client, (addr, 8080), SYN).client(true);
            let (egress, out) = r.forward(LAN, &syn.bytes());
            assert_eq!(egress, LAN);
            assert_eq!(
                out,
                syn.translated((addr, m), (HOST_A, 80)).bytes(),
                "the server sees the client at its mapping"
            );
            let syn_ack = tcp((HOST_A, 80), (addr, m), SYN_ACK).client(false);
            let (egress, out) = r.forward(LAN, &syn_ack.bytes());
            assert_eq!(egress, LAN);
            assert_eq!(
                out,
                syn_ack.translated((addr, 8080), client).bytes(),
                "the client hears from the port it called"
            );
            let ack = tcp(client, (addr, 8080), ACK).client(true);
            let (_, out) = r.forward(LAN, &ack.bytes());
            assert_eq!(out, ack.translated((addr, m), (HOST_A, 80)).bytes());
            let ask = tcp(client, (addr, 8080), PSH_ACK)
                .client(true)
                .payload(b"GET / HTTP/1.1\r\n\r\n");
            let (_, out) = r.forward(LAN, &ask.bytes());
            assert_eq!(out, ask.translated((addr, m), (HOST_A, 80)).bytes());
            let answer = tcp((HOST_A, 80), (addr, m), PSH_ACK)
                .client(false)
                .payload(b"HTTP/1.1 200 OK\r\n\r\n");
            for _ in 0..2 {
                let (egress, out) = r.forward(LAN, &answer.bytes());
                assert_eq!(egress, LAN);
                assert_eq!(out, answer.translated((addr, 8080), client).bytes());
            }
            let client_ep = conntrack::Endpoint::new(HOST_B, m);
            let want = (8080, client_ep, Some(conntrack::TcpState::Established));
            let mut sides = Vec::new();
            r.dp.tables.conntrack.for_each_session(|s| {
                if s.forwarded && s.wan == wan {
                    sides.push((s.external.port, s.dst_rewrite, s.tcp_state));
                }
            });
            assert_eq!(sides, [(want.0, Some(want.1), want.2)], "{path:?} {wan}");
            // the server closes: its FIN reaches the client from the forward's port too
            let fin = tcp((HOST_A, 80), (addr, m), FIN_ACK).client(false);
            let (_, out) = r.forward(LAN, &fin.bytes());
            assert_eq!(out, fin.translated((addr, 8080), client).bytes());
        }
        assert_eq!(
            target_side(&r, (HOST_A, 80)).map(|(port, _, state)| (port, state)),
            Some((8080, Some(conntrack::TcpState::FinWait)))
        );
        // a connection each way, each counted once on the forward
        assert_eq!(r.dp.plan.forwards.hits(0), 2);
        assert_eq!(r.counters.events(Event::SessionsCreated), 4);
        // a port of the WAN address that nothing forwards or owns is the box's own
        let own = tcp((HOST_B, 21001), (ISP1_ADDR, 8081), SYN).bytes();
        assert_eq!(r.send(LAN, &own).0, Verdict::Kernel);
    }
}

#[test]
fn a_lan_host_reaches_a_forwarded_udp_port_and_hears_back_from_it() {
    for path in [Path::Batch, Path::General] {
        let mut r = router(GAME, path);
        let client = (HOST_A, 22000);
        let ask = udp(client, (ISP2_ADDR, 27017));
        let (egress, out) = r.forward(LAN, &ask.bytes());
        assert_eq!(egress, LAN);
        assert_eq!(
            out,
            ask.translated((ISP2_ADDR, 22000), (HOST_B, 37017)).bytes()
        );
        let answer = udp((HOST_B, 37017), (ISP2_ADDR, 22000));
        for _ in 0..2 {
            let (egress, out) = r.forward(LAN, &answer.bytes());
            assert_eq!(egress, LAN);
            assert_eq!(out, answer.translated((ISP2_ADDR, 27017), client).bytes());
            let (_, out) = r.forward(LAN, &ask.bytes());
            assert_eq!(
                out,
                ask.translated((ISP2_ADDR, 22000), (HOST_B, 37017)).bytes()
            );
        }
        assert_eq!(
            target_side(&r, (HOST_B, 37017)),
            Some((27017, conntrack::Endpoint::new(HOST_A, 22000), None))
        );
        assert_eq!(r.dp.plan.forwards.hits(0), 1);
        assert_eq!(r.counters.events(Event::SessionsCreated), 2);
        // not forwarded on isp1: the box's own
        let elsewhere = udp(client, (ISP1_ADDR, 27017)).bytes();
        assert_eq!(r.send(LAN, &elsewhere).0, Verdict::Kernel);
    }
}

#[test]
fn a_forwards_target_opening_a_hairpin_is_seen_at_the_forwards_port() {
    // HOST_A has a mapping of its own on isp2 (a flow out); HOST_B, the forward's target,
    // talks to it from its forwarded port: HOST_A sees HOST_B at the forward's port, and its
    // answers to that port reach HOST_B through the forward
    let mut r = router(GAME, Path::Batch);
    let b = (HOST_B, 37017);
    let a = (HOST_A, 23000);
    assert_eq!(
        r.forward(LAN, &udp(a, (SERVER, 53)).bytes()).0,
        ISP2,
        "dns goes out isp2"
    );
    let hello = udp(b, (ISP2_ADDR, 23000));
    let (egress, out) = r.forward(LAN, &hello.bytes());
    assert_eq!(egress, LAN);
    assert_eq!(out, hello.translated((ISP2_ADDR, 27017), a).bytes());
    let back = udp(a, (ISP2_ADDR, 27017));
    let (egress, out) = r.forward(LAN, &back.bytes());
    assert_eq!(egress, LAN);
    assert_eq!(out, back.translated((ISP2_ADDR, 23000), b).bytes());
}

#[test]
fn a_forwards_target_reaching_another_forward_is_answered_from_the_port_it_called() {
    // HOST_B:37017 (the game forward's target) asks isp2's DNS forward, whose target HOST_A:53
    // sees it at the game forward's port and answers from the DNS forward's
    let dns = "[[forward]]\nname = \"dns\"\nwan = \"isp2\"\nproto = \"udp\"\nport = 5353\n\
               to = \"192.168.1.10\"\nto_port = 53\n";
    let mut r = router(&format!("{GAME}\n{dns}"), Path::Batch);
    let (b, a) = ((HOST_B, 37017), (HOST_A, 53));
    let ask = udp(b, (ISP2_ADDR, 5353));
    let (egress, out) = r.forward(LAN, &ask.bytes());
    assert_eq!(egress, LAN);
    assert_eq!(out, ask.translated((ISP2_ADDR, 27017), a).bytes());
    let answer = udp(a, (ISP2_ADDR, 27017));
    let (egress, out) = r.forward(LAN, &answer.bytes());
    assert_eq!(egress, LAN);
    assert_eq!(out, answer.translated((ISP2_ADDR, 5353), b).bytes());
    // each forward took one connection; no mapping was made
    assert_eq!(r.dp.plan.forwards.hits(0), 1);
    assert_eq!(r.dp.plan.forwards.hits(1), 1);
    assert_eq!(r.dp.tables.conntrack.mapping_count(), 0);
}
