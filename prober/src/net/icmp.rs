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
//! Invariants: a reply counts only if it arrived on the WAN's device or one of its
//! `reply_devices` (the kernel says which, `IP_PKTINFO`), its identifier is the WAN's, its
//! sequence number is outstanding, its source is the target that probe went to and it
//! carries back the request's payload: a nonce drawn when the socket opened (64 random bits an off-path
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
    /// Interface indexes a reply may arrive on.
    reply_ifindexes: Vec<u32>,
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
        set_pktinfo(&replies)?;
        // A device that does not exist (yet) cannot deliver a reply either.
        let reply_ifindexes = std::iter::once(&link.device)
            .chain(&link.reply_devices)
            .filter_map(|d| ifindex(d))
            .collect();
        Ok(IcmpSocket {
            socket: bound_socket(link, Type::RAW, Protocol::ICMPV4)?,
            replies,
            ident: link.icmp_ident,
            nonce,
            reply_ifindexes,
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
            match recv_with_ifindex(&self.replies, &mut buf) {
                Ok((len, arrived_on)) => {
                    if !arrived_on.is_some_and(|i| self.reply_ifindexes.contains(&i)) {
                        continue;
                    }
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

/// The index of interface `name`, from sysfs.
fn ifindex(name: &str) -> Option<u32> {
    std::fs::read_to_string(format!("/sys/class/net/{name}/ifindex"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Asks the kernel to say on which interface each datagram arrived (`IP_PKTINFO`).
#[allow(unsafe_code)]
fn set_pktinfo(socket: &Socket) -> io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: the option value is a c_int living across the call, its size given.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_PKTINFO,
            std::ptr::from_ref(&one).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Receives one datagram into `buf`: its length, and the interface it arrived on when the
/// kernel said (`IP_PKTINFO`).
#[allow(unsafe_code)]
fn recv_with_ifindex(socket: &Socket, buf: &mut [u8]) -> io::Result<(usize, Option<u32>)> {
    // u64s: the control buffer must be aligned for `cmsghdr`
    let mut control = [0u64; 16];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data; all-zero is a valid empty header, filled in below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: `msg` points at one iovec over `buf` and at `control`, both writable for the
    // lengths given and living across the call.
    let n = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut bytes = [0u8; 128];
    for (chunk, word) in bytes.chunks_exact_mut(8).zip(control) {
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    let used = msg.msg_controllen.min(bytes.len());
    Ok((
        n as usize,
        pktinfo_ifindex(bytes.get(..used).unwrap_or_default()),
    ))
}

/// The interface index of the `IP_PKTINFO` message among the control messages `control`.
fn pktinfo_ifindex(control: &[u8]) -> Option<u32> {
    const HEADER: usize = std::mem::size_of::<libc::cmsghdr>();
    const ALIGN: usize = std::mem::size_of::<usize>();
    let mut at = 0;
    while let Some(header) = control.get(at..at + HEADER) {
        let len = usize::from_ne_bytes(header.get(..ALIGN)?.try_into().ok()?);
        let level = i32::from_ne_bytes(header.get(ALIGN..ALIGN + 4)?.try_into().ok()?);
        let kind = i32::from_ne_bytes(header.get(ALIGN + 4..ALIGN + 8)?.try_into().ok()?);
        if len < HEADER {
            return None;
        }
        if level == libc::IPPROTO_IP && kind == libc::IP_PKTINFO {
            let data = control.get(at + HEADER..at + HEADER + 4)?;
            return u32::try_from(i32::from_ne_bytes(data.try_into().ok()?)).ok();
        }
        at += len.div_ceil(ALIGN) * ALIGN;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmsg(level: i32, kind: i32, data: &[u8]) -> Vec<u8> {
        const HEADER: usize = std::mem::size_of::<libc::cmsghdr>();
        let len = HEADER + data.len();
        let mut out = Vec::new();
        out.extend_from_slice(&len.to_ne_bytes());
        out.extend_from_slice(&level.to_ne_bytes());
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(data);
        while out.len() % std::mem::size_of::<usize>() != 0 {
            out.push(0);
        }
        out
    }

    #[test]
    fn the_arrival_interface_is_read_from_ip_pktinfo() {
        let mut info = 7i32.to_ne_bytes().to_vec();
        info.extend_from_slice(&[0; 8]);
        let pktinfo = cmsg(libc::IPPROTO_IP, libc::IP_PKTINFO, &info);
        assert_eq!(pktinfo_ifindex(&pktinfo), Some(7));
        let mut both = cmsg(libc::IPPROTO_IP, libc::IP_TTL, &64i32.to_ne_bytes());
        both.extend_from_slice(&pktinfo);
        assert_eq!(pktinfo_ifindex(&both), Some(7), "after another message");
        assert_eq!(pktinfo_ifindex(&[]), None);
        let header = std::mem::size_of::<libc::cmsghdr>();
        assert_eq!(pktinfo_ifindex(&pktinfo[..header + 2]), None, "cut short");
        let mut bad = pktinfo.clone();
        bad[..std::mem::size_of::<usize>()].copy_from_slice(&3usize.to_ne_bytes());
        assert_eq!(
            pktinfo_ifindex(&bad),
            None,
            "a length shorter than its header"
        );
        assert_eq!(payload([1; 8], 2)[8..], 2u64.to_be_bytes());
    }
}
