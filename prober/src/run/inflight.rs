//! The prober thread's sockets: one raw ICMP socket per WAN link (opened on first use and
//! kept), and one connection or UDP socket per TCP, HTTP or DNS probe in flight, each
//! registered with the thread's `Poll` under a token of its own.
//!
//! Invariants: every socket registered is deregistered before it is dropped; a probe that
//! cannot be sent is reported as failed at once; sockets of probes whose timeout has passed
//! are closed (the core has counted them lost).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

use crate::core::{Method, ProbeRequest};
use crate::net::conn::{ProbeConn, Progress};
use crate::net::dns::DnsProbe;
use crate::net::http_wire;
use crate::net::icmp::IcmpSocket;
use crate::net::WanLink;

/// First token handed to a socket (0 and 1 are the waker and the rtnetlink socket).
const FIRST_SOCKET_TOKEN: usize = 2;
/// Kept past a probe's timeout before its socket or ICMP entry is dropped (the core decides
/// lateness; this only bounds what is kept).
const LINGER: Duration = Duration::from_millis(100);

/// A due probe with what is needed to send it.
#[derive(Clone, Debug)]
pub(crate) struct Outgoing {
    pub request: ProbeRequest,
    pub method: Method,
    pub link: WanLink,
    pub timeout: Duration,
}

#[derive(Debug)]
enum Io {
    Conn(ProbeConn),
    Dns(DnsProbe),
}

#[derive(Debug)]
struct InFlight {
    probe: u64,
    io: Io,
    expires: Instant,
}

/// What became of probes after a readiness event.
#[derive(Debug, Default)]
pub(crate) struct Outcomes {
    pub answered: Vec<u64>,
    pub failed: Vec<u64>,
}

/// The sockets of the prober thread.
#[derive(Debug, Default)]
pub(crate) struct Sockets {
    icmp: HashMap<WanLink, (IcmpSocket, Token)>,
    icmp_tokens: HashMap<Token, WanLink>,
    in_flight: HashMap<Token, InFlight>,
    next_token: usize,
    dns_id: u16,
}

impl Sockets {
    pub fn new() -> Sockets {
        Sockets {
            next_token: FIRST_SOCKET_TOKEN,
            // Any start will do; ids only need to differ between queries in flight.
            dns_id: (std::process::id() as u16).wrapping_mul(7919),
            ..Sockets::default()
        }
    }

    /// Sends `out`; an error is returned for the caller to count the probe as failed.
    pub fn send(&mut self, registry: &Registry, out: &Outgoing) -> io::Result<()> {
        let target = out.request.target;
        let token = out.request.token;
        let expires = Instant::now() + out.timeout + LINGER;
        match &out.method {
            Method::Icmp => {
                let socket = self.icmp_socket(registry, &out.link)?;
                socket.send(target, token, expires)
            }
            Method::Tcp { port } => {
                let conn = ProbeConn::tcp(&out.link, SocketAddrV4::new(target, *port))?;
                self.register(registry, token, Io::Conn(conn), expires)
            }
            Method::Http {
                port,
                path,
                expect_status,
            } => {
                let request = http_wire::request(path, target);
                let conn = ProbeConn::http(
                    &out.link,
                    SocketAddrV4::new(target, *port),
                    request,
                    *expect_status,
                )?;
                self.register(registry, token, Io::Conn(conn), expires)
            }
            Method::Dns { port, name } => {
                self.dns_id = self.dns_id.wrapping_add(1);
                let probe = DnsProbe::send(
                    &out.link,
                    SocketAddrV4::new(target, *port),
                    name,
                    self.dns_id,
                )?;
                self.register(registry, token, Io::Dns(probe), expires)
            }
        }
    }

    /// Handles readiness of the socket registered under `token`.
    pub fn ready(&mut self, registry: &Registry, token: Token, outcomes: &mut Outcomes) {
        if let Some(link) = self.icmp_tokens.get(&token) {
            if let Some((socket, _)) = self.icmp.get_mut(link) {
                match socket.receive() {
                    Ok(answered) => outcomes.answered.extend(answered),
                    Err(e) => log::debug!("icmp on {}: {e}", link.device),
                }
            }
            return;
        }
        let Some(flight) = self.in_flight.get_mut(&token) else {
            return;
        };
        let progress = match &mut flight.io {
            Io::Conn(conn) => conn.on_ready(),
            Io::Dns(dns) => dns.on_ready(),
        };
        let probe = flight.probe;
        match progress {
            Progress::Pending => return,
            Progress::Good => outcomes.answered.push(probe),
            Progress::Failed(why) => {
                log::debug!("probe {probe}: {why}");
                outcomes.failed.push(probe);
            }
        }
        self.close(registry, token);
    }

    /// Drops what has outlived its probe's timeout, and the ICMP sockets of links no
    /// longer in `links`.
    pub fn expire(&mut self, registry: &Registry, links: &[WanLink]) {
        let now = Instant::now();
        let old: Vec<Token> = self
            .in_flight
            .iter()
            .filter(|(_, f)| f.expires <= now)
            .map(|(&t, _)| t)
            .collect();
        for token in old {
            self.close(registry, token);
        }
        for (socket, _) in self.icmp.values_mut() {
            socket.expire(now);
        }
        let gone: Vec<WanLink> = self
            .icmp
            .keys()
            .filter(|l| !links.contains(l))
            .cloned()
            .collect();
        for link in gone {
            if let Some((socket, token)) = self.icmp.remove(&link) {
                let _ = registry.deregister(&mut SourceFd(&socket.raw_fd()));
                self.icmp_tokens.remove(&token);
            }
        }
    }

    fn icmp_socket(&mut self, registry: &Registry, link: &WanLink) -> io::Result<&mut IcmpSocket> {
        if !self.icmp.contains_key(link) {
            let socket = IcmpSocket::open(link)?;
            let token = self.take_token();
            registry.register(&mut SourceFd(&socket.raw_fd()), token, Interest::READABLE)?;
            self.icmp_tokens.insert(token, link.clone());
            self.icmp.insert(link.clone(), (socket, token));
        }
        self.icmp
            .get_mut(link)
            .map(|(s, _)| s)
            .ok_or_else(|| io::Error::other("icmp socket vanished"))
    }

    fn register(
        &mut self,
        registry: &Registry,
        probe: u64,
        mut io: Io,
        expires: Instant,
    ) -> io::Result<()> {
        let token = self.take_token();
        match &mut io {
            Io::Conn(conn) => registry.register(
                conn.stream(),
                token,
                Interest::READABLE | Interest::WRITABLE,
            )?,
            Io::Dns(dns) => registry.register(dns.socket(), token, Interest::READABLE)?,
        }
        self.in_flight
            .insert(token, InFlight { probe, io, expires });
        Ok(())
    }

    fn close(&mut self, registry: &Registry, token: Token) {
        if let Some(mut flight) = self.in_flight.remove(&token) {
            let _ = match &mut flight.io {
                Io::Conn(conn) => registry.deregister(conn.stream()),
                Io::Dns(dns) => registry.deregister(dns.socket()),
            };
        }
    }

    fn take_token(&mut self) -> Token {
        let token = Token(self.next_token);
        self.next_token = self.next_token.wrapping_add(1).max(FIRST_SOCKET_TOKEN);
        token
    }
}
