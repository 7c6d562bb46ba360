//! DNS probes: one UDP socket per query, bound to the WAN and connected to the server, so
//! only the server's datagrams reach it.
//!
//! Invariants: datagrams that are not a response to the query (another id, not a response)
//! are ignored and the probe keeps waiting; a response to it decides the probe.

use std::io;
use std::net::SocketAddrV4;

use mio::net::UdpSocket;
use socket2::{Protocol, SockAddr, Type};

use super::conn::Progress;
use super::dns_wire::{check_response, query, DnsVerdict};
use super::{bound_socket, WanLink};

/// One DNS query in flight.
#[derive(Debug)]
pub struct DnsProbe {
    socket: UdpSocket,
    id: u16,
}

impl DnsProbe {
    /// Sends an `A` query for `name` with id `id` to `server` from `link`.
    pub fn send(link: &WanLink, server: SocketAddrV4, name: &str, id: u16) -> io::Result<DnsProbe> {
        let message = query(id, name)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a DNS name"))?;
        let socket = bound_socket(link, Type::DGRAM, Protocol::UDP)?;
        socket.connect(&SockAddr::from(server))?;
        let socket = UdpSocket::from_std(std::net::UdpSocket::from(socket));
        socket.send(&message)?;
        Ok(DnsProbe { socket, id })
    }

    /// The socket, to register with a `mio::Poll` (readable).
    pub fn socket(&mut self) -> &mut UdpSocket {
        &mut self.socket
    }

    /// Reads what has arrived.
    pub fn on_ready(&mut self) -> Progress {
        let mut buf = [0u8; 1500];
        loop {
            match self.socket.recv(&mut buf) {
                Ok(n) => match check_response(self.id, buf.get(..n).unwrap_or_default()) {
                    DnsVerdict::Good => return Progress::Good,
                    DnsVerdict::Bad(why) => return Progress::Failed(why),
                    DnsVerdict::NotOurs => {}
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Progress::Pending,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // An ICMP port unreachable surfaces here as ECONNREFUSED.
                Err(e) => return Progress::Failed(format!("receive: {e}")),
            }
        }
    }
}
