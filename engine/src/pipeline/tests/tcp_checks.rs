//! TCP validation: segments outside a connection's sequence window are dropped and change
//! nothing (an off-path host that knows the addresses and ports cannot reset or close the
//! connection); segments that could open or close a connection, and datagrams that would
//! open one, need a valid checksum.

use std::net::Ipv4Addr;

use conntrack::TcpState;

use super::harness::*;
use super::packets::*;
use crate::packet::Medium;
use crate::pipeline::{DropReason, Verdict};

/// A TCP segment built field by field (full checksum), with `payload`.
fn segment(
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    (seq, ack): (u32, Option<u32>),
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut b = etherparse::PacketBuilder::ipv4(src.0.octets(), dst.0.octets(), 64)
        .tcp(src.1, dst.1, seq, 64240);
    if let Some(ack) = ack {
        b = b.ack(ack);
    }
    if flags & SYN != 0 {
        b = b.syn();
    }
    if flags & 0x01 != 0 {
        b = b.fin();
    }
    if flags & RST != 0 {
        b = b.rst();
    }
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

/// An established connection from HOST_A:`sport` to SERVER:443 (client ISN 1000, server ISN
/// 5000, as `packets.rs` numbers them): returns the router and the connection's external
/// endpoint and WAN interface.
fn established(sport: u16) -> (Router, (Ipv4Addr, u16), u8) {
    let mut r = Router::new(Medium::Ip);
    let (wan, out) = r.forward(LAN, &tcp((HOST_A, sport), (SERVER, 443), SYN).bytes());
    let ext = (
        Ipv4Addr::new(out[12], out[13], out[14], out[15]),
        u16::from_be_bytes([out[20], out[21]]),
    );
    r.forward(wan, &tcp((SERVER, 443), ext, SYN_ACK).bytes());
    r.forward(LAN, &tcp((HOST_A, sport), (SERVER, 443), ACK).bytes());
    assert_eq!(state(&r, sport), Some(TcpState::Established));
    (r, ext, wan)
}

/// The TCP state of HOST_A:`sport`'s connection.
fn state(r: &Router, sport: u16) -> Option<TcpState> {
    let mut found = None;
    r.dp.tables.conntrack.for_each_session(|s| {
        if s.key.src == conntrack::Endpoint::new(HOST_A, sport) {
            found = s.tcp_state;
        }
    });
    found
}

#[test]
fn a_spoofed_reset_or_fin_from_the_internet_changes_nothing() {
    let (mut r, ext, wan) = established(40000);
    let far = 5001u32.wrapping_add(0x4000_0000);
    for (flags, ack) in [(RST, None), (RST | ACK, Some(1001)), (FIN_ACK, Some(1001))] {
        let spoofed = segment((SERVER, 443), ext, (far, ack), flags, b"");
        r.expect_drop(wan, &spoofed, DropReason::TcpOutOfWindow);
        assert_eq!(state(&r, 40000), Some(TcpState::Established));
    }
    // the connection goes on both ways
    let data = segment((SERVER, 443), ext, (5001, Some(1001)), PSH_ACK, b"more");
    assert_eq!(r.forward(wan, &data).0, LAN);
    r.forward(
        LAN,
        &segment((HOST_A, 40000), (SERVER, 443), (1001, Some(5005)), ACK, b""),
    );
    // a reset at the server's next sequence number is the server's own: it closes
    let reset = segment((SERVER, 443), ext, (5005, Some(1001)), RST | ACK, b"");
    assert_eq!(r.forward(wan, &reset).0, LAN);
    assert_eq!(state(&r, 40000), Some(TcpState::Closed));
}

#[test]
fn data_acknowledging_bytes_never_sent_is_dropped() {
    let (mut r, ext, wan) = established(40001);
    let bogus = segment((SERVER, 443), ext, (5001, Some(90_000)), PSH_ACK, b"x");
    r.expect_drop(wan, &bogus, DropReason::TcpOutOfWindow);
    let lan_bogus = segment(
        (HOST_A, 40001),
        (SERVER, 443),
        (1001, Some(70_000)),
        PSH_ACK,
        b"x",
    );
    r.expect_drop(LAN, &lan_bogus, DropReason::TcpOutOfWindow);
    // through the general path too (the express lane declines, the locked lookup decides)
    r.path = Path::General;
    r.expect_drop(wan, &bogus, DropReason::TcpOutOfWindow);
    assert_eq!(state(&r, 40001), Some(TcpState::Established));
}

#[test]
fn a_host_that_lost_its_connection_can_open_the_tuple_again() {
    let (mut r, ext, wan) = established(40002);
    // the host restarted: a SYN with a new initial sequence number goes out unchanged...
    let syn = segment((HOST_A, 40002), (SERVER, 443), (777_777, None), SYN, b"");
    assert_eq!(r.forward(LAN, &syn).0, wan);
    assert_eq!(state(&r, 40002), Some(TcpState::Established));
    // ...the server's challenge ACK (RFC 5961) comes back, the host resets at its number,
    // which is in the window, and the next SYN recycles the closed session
    let challenge = segment((SERVER, 443), ext, (5001, Some(1001)), ACK, b"");
    assert_eq!(r.forward(wan, &challenge).0, LAN);
    let reset = segment((HOST_A, 40002), (SERVER, 443), (1001, None), RST, b"");
    assert_eq!(r.forward(LAN, &reset).0, wan);
    assert_eq!(state(&r, 40002), Some(TcpState::Closed));
    assert_eq!(r.forward(LAN, &syn).0, wan);
    assert_eq!(state(&r, 40002), Some(TcpState::SynSent));
}

#[test]
fn control_segments_with_a_bad_checksum_are_dropped() {
    let (mut r, ext, wan) = established(40003);
    let mut reset = segment((SERVER, 443), ext, (5001, Some(1001)), RST | ACK, b"");
    // the TCP checksum is at offset 20 + 16
    reset[36] ^= 0x55;
    r.expect_drop(wan, &reset, DropReason::TcpBadChecksum);
    assert_eq!(state(&r, 40003), Some(TcpState::Established));
    let mut syn = tcp((HOST_A, 40004), (SERVER, 443), SYN).bytes();
    syn[36] ^= 0x55;
    r.expect_drop(LAN, &syn, DropReason::TcpBadChecksum);
    assert_eq!(state(&r, 40004), None, "no session from a corrupt SYN");
    // data with a bad checksum goes on (the receiving host drops it): only the flags that
    // change state are checked
    let mut data = segment((SERVER, 443), ext, (5001, Some(1001)), PSH_ACK, b"data");
    data[36] ^= 0x55;
    assert_eq!(r.send(wan, &data).0, Verdict::Forward(LAN));
}

#[test]
fn a_fragmented_reset_cannot_be_verified_and_is_dropped() {
    let (mut r, ext, wan) = established(40005);
    let mut reset = segment((SERVER, 443), ext, (5001, Some(1001)), RST | ACK, b"");
    // more fragments; the IP header checksum follows the change
    reset[6] |= 0x20;
    reset[10] = 0;
    reset[11] = 0;
    let sum = crate::packet::checksum::full(&reset[..20]);
    reset[10..12].copy_from_slice(&sum.to_be_bytes());
    r.expect_drop(wan, &reset, DropReason::TcpControlFragment);
    assert_eq!(state(&r, 40005), Some(TcpState::Established));
}

#[test]
fn a_datagram_with_a_bad_checksum_opens_no_session() {
    let mut r = Router::new(Medium::Ip);
    let mut bad = udp((HOST_A, 40100), (SERVER, 53)).bytes();
    // the UDP checksum is at offset 20 + 6
    bad[26] ^= 0x55;
    r.expect_drop(LAN, &bad, DropReason::UdpBadChecksum);
    assert!(r.dp.tables.conntrack.is_empty());
    // no checksum at all is allowed (RFC 768)
    let mut none = udp((HOST_A, 40101), (SERVER, 53)).bytes();
    none[26] = 0;
    none[27] = 0;
    assert!(matches!(r.send(LAN, &none).0, Verdict::Forward(_)));
    // a session's later datagrams are not checked: the host drops a corrupt one
    let mut later = udp((HOST_A, 40101), (SERVER, 53)).bytes();
    later[26] ^= 0x55;
    assert!(matches!(r.send(LAN, &later).0, Verdict::Forward(_)));
}
