//! One WAN's raw ICMP sockets: sends echo requests with the WAN's identifier and reads the
//! echo replies that match an outstanding probe.
//!
//! Requests leave by a socket bound to the WAN's device and address. Replies are read from a
//! second raw socket bound to the address only: under fwd, an ICMP message addressed to a WAN
//! address first goes through fwd's TUN device (it may belong to a NATed ping) and reaches
//! the box's own sockets from there, with the TUN as its incoming interface, which a socket
//! bound to the WAN's device would never see. Whatever reaches the sending socket is drained
//! and dropped.
//!
//! Invariants: a reply counts only if its identifier is the WAN's, its sequence number is
//! outstanding, its source is the target that probe went to and it carries back the
//! request's payload: a nonce drawn when the socket opened (64 random bits an off-path
//! forger cannot guess) and the probe's token; each outstanding sequence number is answered
//! at most once; the table of outstanding probes is bounded by [`MAX_OUTSTANDING`] and by
//! the expiry the caller gives.

use std::collections::HashMap;
use std::io::{self, Read};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Instant;

use socket2::{Domain, Protocol, Socket, Type};

use super::icmp_wire::{echo_request, parse_echo_reply};
use super::{bound_socket, WanLink};

/// Outstanding probes kept per socket, at most (the oldest is forgotten beyond).
pub const MAX_OUTSTANDING: usize = 4096;

#[derive(Clone, Copy, Debug)]
struct Outstanding {
    token: u64,
    target: Ipv4Addr,
    expires: Instant,
}

/// The raw ICMP sockets of one WAN.
#[derive(Debug)]
pub struct IcmpSocket {
    /// Bound to the WAN's device and address: sends.
    socket: Socket,
    /// Bound to the WAN's address: receives.
    replies: Socket,
    ident: u16,
    /// Every request's payload starts with it.
    nonce: [u8; 8],
    next_seq: u16,
    outstanding: HashMap<u16, Outstanding>,
}

/// A request's payload: the socket's nonce, then the probe's token.
fn payload(nonce: [u8; 8], token: u64) -> [u8; 16] {
    let mut p = [0u8; 16];
    p[..8].copy_from_slice(&nonce);
    p[8..].copy_from_slice(&token.to_be_bytes());
    p
}

impl IcmpSocket {
    /// Opens the socket on `link` (needs CAP_NET_RAW).
    pub fn open(link: &WanLink) -> io::Result<IcmpSocket> {
        let replies = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))?;
        replies.set_nonblocking(true)?;
        replies.set_cloexec(true)?;
        replies.bind(&SocketAddrV4::new(link.source, 0).into())?;
        let mut nonce = [0u8; 8];
        getrandom::fill(&mut nonce).map_err(io::Error::other)?;
        Ok(IcmpSocket {
            socket: bound_socket(link, Type::RAW, Protocol::ICMPV4)?,
            replies,
            ident: link.icmp_ident,
            nonce,
            next_seq: 0,
            outstanding: HashMap::new(),
        })
    }

    /// The descriptor to register for readability (the receiving socket).
    pub fn raw_fd(&self) -> RawFd {
        self.replies.as_raw_fd()
    }

    /// Sends an echo request to `target` for probe `token`, remembered until `expires`.
    pub fn send(&mut self, target: Ipv4Addr, token: u64, expires: Instant) -> io::Result<()> {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        let packet = echo_request(self.ident, seq, &payload(self.nonce, token));
        self.socket
            .send_to(&packet, &SocketAddrV4::new(target, 0).into())?;
        if self.outstanding.len() >= MAX_OUTSTANDING {
            self.forget_oldest();
        }
        self.outstanding.insert(
            seq,
            Outstanding {
                token,
                target,
                expires,
            },
        );
        Ok(())
    }

    /// Reads every datagram waiting; returns the tokens of the probes answered.
    pub fn receive(&mut self) -> io::Result<Vec<u64>> {
        let mut answered = Vec::new();
        let mut buf = [0u8; 1500];
        while (&self.socket).read(&mut buf).is_ok() {}
        loop {
            match (&self.replies).read(&mut buf) {
                Ok(len) => {
                    let Some(reply) = buf.get(..len).and_then(parse_echo_reply) else {
                        continue;
                    };
                    if reply.ident != self.ident {
                        continue;
                    }
                    let matches = self.outstanding.get(&reply.seq).is_some_and(|o| {
                        o.target == reply.source
                            && reply.payload.get(..16) == Some(&payload(self.nonce, o.token)[..])
                    });
                    if matches {
                        if let Some(o) = self.outstanding.remove(&reply.seq) {
                            answered.push(o.token);
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(answered),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Forgets the probes whose expiry has passed at `now`.
    pub fn expire(&mut self, now: Instant) {
        self.outstanding.retain(|_, o| o.expires > now);
    }

    /// Probes still outstanding.
    pub fn outstanding(&self) -> usize {
        self.outstanding.len()
    }

    fn forget_oldest(&mut self) {
        let oldest = self
            .outstanding
            .iter()
            .min_by_key(|(_, o)| o.expires)
            .map(|(&seq, _)| seq);
        if let Some(seq) = oldest {
            self.outstanding.remove(&seq);
        }
    }
}
