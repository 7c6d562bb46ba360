//! Nudges for TCP connections stranded on a WAN that went down.
//!
//! The pipeline resets such a connection on the client's next segment (a reset that needs the
//! client's ACK number to be exact: see `packet::tcp_reset`). A client that is only receiving
//! (a download) sends nothing while the WAN is dead, and would wait for its own timeouts. So
//! when a WAN goes down, every TCP connection on it gets two bare ACK segments towards its LAN
//! client, as if from the remote end, with sequence numbers half the sequence space apart: at
//! least one lies outside the client's receive window (windows are below 2^30), and a
//! segment outside the window makes the client's stack answer at once with an ACK of its
//! current state (RFC 9293 3.10.7.4). That ACK reaches fwd, finds the session on the dead
//! WAN and is answered with the exact reset.
//!
//! The segments go out through a raw IPv4 socket of the router's namespace (the kernel routes
//! them to the LAN like any other packet); nothing here touches the packet path. The walk of
//! the connection table takes one shard lock at a time.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use conntrack::{ConnTable, Proto, TcpState};
use etherparse::PacketBuilder;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// TTL of the nudges (they only cross the LAN).
const NUDGE_TTL: u8 = 64;

/// The client and remote endpoints of one stranded connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stranded {
    pub client: SocketAddrV4,
    pub remote: SocketAddrV4,
}

/// The TCP connections of WAN `wan` that a nudge can end (those past the handshake and not yet
/// closed; hairpin sessions never leave by a WAN and are left alone).
pub fn stranded(table: &ConnTable, wan: u8) -> Vec<Stranded> {
    let mut out = Vec::new();
    table.for_each_session(|s| {
        let live = matches!(
            s.tcp_state,
            Some(
                TcpState::SynReceived
                    | TcpState::Established
                    | TcpState::FinWait
                    | TcpState::CloseWait
            )
        );
        if s.key.proto == Proto::Tcp && s.wan == wan && live && s.dst_rewrite.is_none() {
            out.push(Stranded {
                client: SocketAddrV4::new(s.key.src.ip, s.key.src.port),
                remote: SocketAddrV4::new(s.key.dst.ip, s.key.dst.port),
            });
        }
    });
    out
}

/// The two nudge segments for `conn` (see the module doc), from `seed`.
pub fn nudges(conn: &Stranded, seed: u32) -> [Vec<u8>; 2] {
    let segment = |seq: u32| {
        let builder = PacketBuilder::ipv4(
            conn.remote.ip().octets(),
            conn.client.ip().octets(),
            NUDGE_TTL,
        )
        .tcp(conn.remote.port(), conn.client.port(), seq, 0)
        .ack(seed.rotate_left(16));
        let mut bytes = Vec::with_capacity(builder.size(0));
        // Writing into a Vec cannot fail.
        let _ = builder.write(&mut bytes, &[]);
        bytes
    };
    [segment(seed), segment(seed.wrapping_add(1 << 31))]
}

/// A raw socket that sends whole IPv4 packets (headers included).
#[derive(Debug)]
pub struct NudgeSender {
    socket: Socket,
}

impl NudgeSender {
    /// Opens the raw socket (needs CAP_NET_RAW).
    pub fn new() -> io::Result<NudgeSender> {
        let socket = Socket::new(
            Domain::IPV4,
            Type::RAW,
            Some(Protocol::from(libc::IPPROTO_RAW)),
        )?;
        socket.set_header_included_v4(true)?;
        Ok(NudgeSender { socket })
    }

    /// Sends the nudges of every connection; returns how many connections were nudged (a
    /// send error is skipped: the client's next segment still meets the reset).
    pub fn nudge(&self, conns: &[Stranded], seed: u32) -> usize {
        let mut sent = 0;
        for (i, conn) in conns.iter().enumerate() {
            let seed = seed.wrapping_add(u32::try_from(i).unwrap_or(0).wrapping_mul(0x9e37_79b9));
            let to = SockAddr::from(SocketAddr::V4(SocketAddrV4::new(*conn.client.ip(), 0)));
            let ok = nudges(conn, seed)
                .iter()
                .all(|segment| self.socket.send_to(segment, &to).is_ok());
            if ok {
                sent += 1;
            }
        }
        sent
    }
}

/// A seed for the nudges' sequence numbers that a remote host cannot predict.
pub fn seed() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u8(0);
    u32::try_from(h.finish() & u64::from(u32::MAX)).unwrap_or(0)
}

/// Clients shown in a log line, at most.
const LOGGED_CLIENTS: usize = 8;

/// The client addresses of stranded connections, for a log line: sorted, distinct, at most
/// [`LOGGED_CLIENTS`] of them, and how many more there were.
pub fn clients(conns: &[Stranded]) -> (Vec<Ipv4Addr>, usize) {
    let mut ips: Vec<Ipv4Addr> = conns.iter().map(|c| *c.client.ip()).collect();
    ips.sort_unstable();
    ips.dedup();
    let more = ips.len().saturating_sub(LOGGED_CLIENTS);
    ips.truncate(LOGGED_CLIENTS);
    (ips, more)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};

    #[test]
    fn nudges_come_from_the_remote_half_the_sequence_space_apart() {
        let conn = Stranded {
            client: "192.168.1.10:40000".parse().unwrap(),
            remote: "203.0.113.10:443".parse().unwrap(),
        };
        let [a, b] = nudges(&conn, 0x8000_0010);
        let fields = |bytes: &[u8]| {
            let p = SlicedPacket::from_ip(bytes).unwrap();
            let Some(NetSlice::Ipv4(ip)) = p.net else {
                panic!()
            };
            let Some(TransportSlice::Tcp(t)) = p.transport else {
                panic!()
            };
            let h = ip.header().to_header();
            assert_eq!(h.header_checksum, h.calc_header_checksum());
            assert_eq!(
                t.checksum(),
                t.to_header().calc_checksum_ipv4(&h, &[]).unwrap()
            );
            assert!(t.ack() && !t.rst() && !t.syn() && !t.fin());
            (
                Ipv4Addr::from(h.source),
                Ipv4Addr::from(h.destination),
                t.source_port(),
                t.destination_port(),
                t.sequence_number(),
            )
        };
        let (src, dst, sport, dport, seq_a) = fields(&a);
        assert_eq!(
            (src, dst, sport, dport),
            (*conn.remote.ip(), *conn.client.ip(), 443, 40000)
        );
        let (_, _, _, _, seq_b) = fields(&b);
        assert_eq!(seq_b.wrapping_sub(seq_a), 1 << 31);
        assert_eq!(seq_a, 0x8000_0010);
    }

    #[test]
    fn client_list_is_sorted_and_unique() {
        let c = |s: &str| Stranded {
            client: s.parse().unwrap(),
            remote: "203.0.113.10:443".parse().unwrap(),
        };
        let conns = [
            c("192.168.1.20:1"),
            c("192.168.1.10:2"),
            c("192.168.1.20:3"),
        ];
        assert_eq!(
            clients(&conns),
            (
                vec![
                    Ipv4Addr::new(192, 168, 1, 10),
                    Ipv4Addr::new(192, 168, 1, 20)
                ],
                0
            )
        );
        let many: Vec<Stranded> = (1..=20).map(|i| c(&format!("10.0.0.{i}:1"))).collect();
        let (shown, more) = clients(&many);
        assert_eq!((shown.len(), more), (LOGGED_CLIENTS, 12));
    }
}
