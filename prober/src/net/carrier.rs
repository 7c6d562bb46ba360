//! Carrier of network devices from rtnetlink: a socket subscribed to link notifications,
//! and a dump of every link for the initial state (or to resynchronise after the kernel
//! dropped notifications).
//!
//! A device has carrier when it is administratively up and its lower layer is up
//! (`IFF_UP` and `IFF_LOWER_UP`, what `ip link` shows as `UP,LOWER_UP`); a deleted device
//! has none.
//!
//! Invariants: undecodable messages are skipped, never fatal; [`CarrierMonitor::read`]
//! never blocks.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// How long the initial dump may take.
pub const DUMP_TIMEOUT: Duration = Duration::from_secs(2);

const HEADER_LEN: usize = 16;

/// One device's carrier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkCarrier {
    /// The device's name.
    pub device: String,
    /// Up and lower layer up.
    pub carrier: bool,
}

/// What [`CarrierMonitor::read`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CarrierNews {
    /// Changes, in the order the kernel sent them.
    Changes(Vec<LinkCarrier>),
    /// The kernel dropped notifications (ENOBUFS): dump again.
    Overrun,
}

/// Most datagrams dropped after an overrun (far more than a socket buffer holds).
const DISCARD_LIMIT: usize = 100_000;

/// A NETLINK_ROUTE socket subscribed to link notifications.
#[derive(Debug)]
pub struct CarrierMonitor {
    socket: Socket,
}

impl CarrierMonitor {
    /// Opens the socket (non-blocking) and joins the link group.
    pub fn open() -> io::Result<CarrierMonitor> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind(&SocketAddr::new(0, 0))?;
        socket.add_membership(libc::RTNLGRP_LINK)?;
        socket.set_non_blocking(true)?;
        Ok(CarrierMonitor { socket })
    }

    /// The descriptor to register for readability.
    pub fn raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }

    /// Drops every notification waiting (bounded: the socket is non-blocking).
    fn discard_queued(&mut self) {
        for _ in 0..DISCARD_LIMIT {
            match self.socket.recv_from_full() {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {}
                Err(_) => return,
            }
        }
    }

    /// Every notification waiting.
    pub fn read(&mut self) -> io::Result<CarrierNews> {
        let mut changes = Vec::new();
        loop {
            match self.socket.recv_from_full() {
                Ok((datagram, _)) => changes.extend(
                    parse_datagram(&datagram)
                        .into_iter()
                        .filter_map(|m| m.carrier),
                ),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Ok(CarrierNews::Changes(changes))
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    // Whatever is still queued is older than the full read that follows an
                    // overrun; applied after it, it would undo it.
                    self.discard_queued();
                    return Ok(CarrierNews::Overrun);
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// The carrier of every device, from a dump on a socket of its own (waits at most
/// [`DUMP_TIMEOUT`]).
pub fn dump_carriers() -> io::Result<Vec<LinkCarrier>> {
    let mut socket = Socket::new(NETLINK_ROUTE)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    socket.set_non_blocking(true)?;
    let seq = 1;
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    header.sequence_number = seq;
    let request = RouteNetlinkMessage::GetLink(LinkMessage::default());
    let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(request));
    msg.finalize();
    let mut buf = vec![0u8; msg.buffer_len()];
    msg.serialize(&mut buf);
    socket.send(&buf, 0)?;
    let deadline = Instant::now() + DUMP_TIMEOUT;
    let mut out = Vec::new();
    loop {
        match socket.recv_from_full() {
            Ok((datagram, _)) => {
                for m in parse_datagram(&datagram) {
                    if m.seq != seq {
                        continue;
                    }
                    if m.done {
                        return Ok(out);
                    }
                    out.extend(m.carrier);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no link dump from the kernel",
                    ));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// What one netlink message says.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Parsed {
    seq: u32,
    /// The end of a dump (or an error ending it).
    done: bool,
    carrier: Option<LinkCarrier>,
}

/// The messages of one datagram; undecodable ones are skipped.
fn parse_datagram(datagram: &[u8]) -> Vec<Parsed> {
    let mut out = Vec::new();
    let mut offset = 0usize;
    while let Some(header) = datagram.get(offset..offset + HEADER_LEN) {
        let len = u32::from_ne_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let seq = u32::from_ne_bytes([header[8], header[9], header[10], header[11]]);
        let Some(bytes) = datagram.get(offset..offset.saturating_add(len)) else {
            break;
        };
        if len < HEADER_LEN {
            break;
        }
        offset = offset.saturating_add((len + 3) & !3);
        let Ok(msg) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes) else {
            continue;
        };
        let (done, carrier) = match msg.payload {
            NetlinkPayload::Done(_) | NetlinkPayload::Error(_) => (true, None),
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => {
                let up = link
                    .header
                    .flags
                    .contains(LinkFlags::Up | LinkFlags::LowerUp);
                (
                    false,
                    link_name(&link).map(|device| LinkCarrier {
                        device,
                        carrier: up,
                    }),
                )
            }
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(link)) => (
                false,
                link_name(&link).map(|device| LinkCarrier {
                    device,
                    carrier: false,
                }),
            ),
            _ => (false, None),
        };
        out.push(Parsed { seq, done, carrier });
    }
    out
}

fn link_name(link: &LinkMessage) -> Option<String> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(name) => Some(name.clone()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn link_message(name: &str, flags: LinkFlags, seq: u32) -> Vec<u8> {
        let mut link = LinkMessage::default();
        link.header.index = 7;
        link.header.flags = flags;
        link.attributes.push(LinkAttribute::IfName(name.into()));
        let mut header = NetlinkHeader::default();
        header.sequence_number = seq;
        let mut msg = NetlinkMessage::new(
            header,
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)),
        );
        msg.finalize();
        let mut buf = vec![0u8; msg.buffer_len()];
        msg.serialize(&mut buf);
        buf
    }

    #[test]
    fn carrier_from_flags() {
        let mut datagram = link_message("wan0", LinkFlags::Up | LinkFlags::LowerUp, 3);
        datagram.extend(link_message("wan1", LinkFlags::Up, 3));
        datagram.extend(link_message("wan2", LinkFlags::LowerUp, 3));
        let parsed = parse_datagram(&datagram);
        let carriers: Vec<_> = parsed
            .iter()
            .filter_map(|p| p.carrier.as_ref())
            .map(|c| (c.device.as_str(), c.carrier))
            .collect();
        assert_eq!(carriers, [("wan0", true), ("wan1", false), ("wan2", false)]);
        assert!(parsed.iter().all(|p| p.seq == 3 && !p.done));
        // A truncated datagram keeps what was whole.
        let cut = &datagram[..datagram.len() - 3];
        assert_eq!(parse_datagram(cut).len(), 2);
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = parse_datagram(&bytes);
        }
    }
}
