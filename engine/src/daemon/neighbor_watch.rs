//! Follows the kernel's IPv4 neighbour table for fwd's interfaces and publishes it to the
//! workers ([`NeighborTable`]); asks the kernel to resolve what the workers missed and each
//! WAN's gateway (an `RTM_NEWNEIGH` with `NTF_USE`: the kernel sends its ARP request and
//! reports the answer like any other change). Runs on a thread of its own
//! ([`NeighborWatch::run`]), which sleeps on the notification socket and looks at the
//! workers' requests every [`REQUEST_POLL`]: a neighbour the kernel learns (a LAN host's ARP
//! request for the router, say) reaches the workers well before that host's first packet
//! does. A dump at start and after the kernel dropped notifications, then only the
//! notifications of the `RTNLGRP_NEIGH` group.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::Ipv4Addr;
use std::sync::Arc;

use netlink_packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use crate::neighbors::kernel::NeighborTable;
use crate::neighbors::Mac;
use crate::steering::netlink::Netlink;

const HEADER_LEN: usize = 16;
/// Longest sleep between two looks at the workers' requests.
pub const REQUEST_POLL: std::time::Duration = std::time::Duration::from_millis(5);
/// Most notifications read per tick.
const READ_LIMIT: usize = 10_000;

/// The watcher: its sockets, the interfaces it follows, and the entries it published.
#[derive(Debug)]
pub struct NeighborWatch {
    table: Arc<NeighborTable>,
    /// ifindex → plan interface.
    ifaces: HashMap<u32, u8>,
    /// plan interface → ifindex.
    ifindex: HashMap<u8, u32>,
    entries: BTreeMap<(u8, Ipv4Addr), Mac>,
    /// Next hops always wanted: each WAN's gateway.
    gateways: Vec<(u8, Ipv4Addr)>,
    monitor: Socket,
    netlink: Netlink,
    failures: u64,
}

impl NeighborWatch {
    /// Subscribes, then dumps the table once. `interfaces`: (ifindex, plan interface).
    pub fn start(
        table: Arc<NeighborTable>,
        interfaces: &[(u32, u8)],
        gateways: Vec<(u8, Ipv4Addr)>,
    ) -> io::Result<NeighborWatch> {
        let mut monitor = Socket::new(NETLINK_ROUTE)?;
        monitor.bind(&SocketAddr::new(0, 0))?;
        monitor.add_membership(libc::RTNLGRP_NEIGH)?;
        monitor.set_non_blocking(true)?;
        let netlink = Netlink::open().map_err(|e| io::Error::other(e.to_string()))?;
        let mut watch = NeighborWatch {
            table,
            ifaces: interfaces.iter().copied().collect(),
            ifindex: interfaces.iter().map(|&(i, p)| (p, i)).collect(),
            entries: BTreeMap::new(),
            gateways,
            monitor,
            netlink,
            failures: 0,
        };
        watch.dump()?;
        watch.resolve_missing(&[]);
        Ok(watch)
    }

    /// Neighbours published now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Resolution requests the kernel refused.
    pub fn failures(&self) -> u64 {
        self.failures
    }

    fn dump(&mut self) -> io::Result<()> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = AddressFamily::Inet;
        let replies = self
            .netlink
            .dump(RouteNetlinkMessage::GetNeighbour(msg))
            .map_err(|e| io::Error::other(e.to_string()))?;
        self.entries.clear();
        for reply in replies {
            if let RouteNetlinkMessage::NewNeighbour(n) = reply {
                self.apply(&n, false);
            }
        }
        self.publish();
        Ok(())
    }

    /// Applies one message; true if it changed the entries.
    fn apply(&mut self, n: &NeighbourMessage, deleted: bool) -> bool {
        let Some(&iface) = self.ifaces.get(&n.header.ifindex) else {
            return false;
        };
        let Some((address, mac)) = parse(n) else {
            return false;
        };
        let usable = !deleted
            && matches!(
                n.header.state,
                NeighbourState::Reachable
                    | NeighbourState::Stale
                    | NeighbourState::Delay
                    | NeighbourState::Probe
                    | NeighbourState::Permanent
                    | NeighbourState::Noarp
            );
        match (usable, mac) {
            (true, Some(mac)) => self.entries.insert((iface, address), mac) != Some(mac),
            _ => self.entries.remove(&(iface, address)).is_some(),
        }
    }

    fn publish(&self) {
        self.table
            .publish(self.entries.iter().map(|(&k, &v)| (k, v)));
    }

    /// Runs [`tick`](Self::tick) until `stop`, sleeping on the notification socket (at most
    /// [`REQUEST_POLL`]) in between.
    #[allow(unsafe_code)]
    pub fn run(mut self, stop: &std::sync::atomic::AtomicBool) {
        use std::os::fd::AsRawFd;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let mut fd = libc::pollfd {
                fd: self.monitor.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one live pollfd naming the watcher's own socket; the kernel writes
            // only its `revents`.
            unsafe {
                libc::poll(&mut fd, 1, REQUEST_POLL.as_millis() as libc::c_int);
            }
            self.tick();
        }
    }

    /// Reads the notifications waiting, asks for what the workers missed; publishes once
    /// if anything changed.
    pub fn tick(&mut self) {
        let mut changed = false;
        for _ in 0..READ_LIMIT {
            match self.monitor.recv_from_full() {
                Ok((datagram, _)) => {
                    for (n, deleted) in parse_datagram(&datagram) {
                        changed |= self.apply(&n, deleted);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    // notifications were lost: start again from a dump
                    if self.dump().is_err() {
                        self.failures += 1;
                    }
                    changed = false;
                    break;
                }
                Err(_) => break, // WouldBlock: all read
            }
        }
        if changed {
            self.publish();
        }
        let requests = self.table.take_requests();
        self.resolve_missing(&requests);
    }

    /// Asks the kernel to resolve each requested next hop and each gateway it has no MAC
    /// for yet.
    fn resolve_missing(&mut self, requests: &[(u8, Ipv4Addr)]) {
        let wanted: Vec<(u8, Ipv4Addr)> = requests
            .iter()
            .chain(&self.gateways)
            .filter(|k| !self.entries.contains_key(k))
            .copied()
            .collect();
        for (iface, address) in wanted {
            let Some(&ifindex) = self.ifindex.get(&iface) else {
                continue;
            };
            let mut msg = NeighbourMessage::default();
            msg.header.family = AddressFamily::Inet;
            msg.header.ifindex = ifindex;
            msg.header.state = NeighbourState::None;
            msg.header.flags = NeighbourFlags::Use;
            msg.attributes
                .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(
                    address,
                )));
            let sent = self.netlink.request(
                RouteNetlinkMessage::NewNeighbour(msg),
                NLM_F_CREATE | NLM_F_REPLACE,
            );
            if sent.is_err() {
                self.failures += 1;
            }
        }
    }
}

/// The address and MAC (if any) of a neighbour message.
fn parse(n: &NeighbourMessage) -> Option<(Ipv4Addr, Option<Mac>)> {
    let mut address = None;
    let mut mac = None;
    for attribute in &n.attributes {
        match attribute {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => address = Some(*a),
            NeighbourAttribute::LinkLayerAddress(bytes) => {
                mac = <[u8; 6]>::try_from(bytes.as_slice()).ok();
            }
            _ => {}
        }
    }
    Some((address?, mac))
}

/// The neighbour messages of one datagram, each with whether it is a deletion.
fn parse_datagram(datagram: &[u8]) -> Vec<(NeighbourMessage, bool)> {
    let mut out = Vec::new();
    let mut offset = 0usize;
    while let Some(header) = datagram.get(offset..offset + HEADER_LEN) {
        let len = u32::from_ne_bytes([header[0], header[1], header[2], header[3]]) as usize;
        if len < HEADER_LEN {
            break;
        }
        let Some(bytes) = datagram.get(offset..offset.saturating_add(len)) else {
            break;
        };
        offset = offset.saturating_add((len + 3) & !3);
        match NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes).map(|m| m.payload) {
            Ok(NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNeighbour(n))) => {
                out.push((n, false));
            }
            Ok(NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelNeighbour(n))) => {
                out.push((n, true));
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use netlink_packet_core::NetlinkHeader;

    fn message(state: NeighbourState, mac: Option<Mac>) -> NeighbourMessage {
        let mut n = NeighbourMessage::default();
        n.header.family = AddressFamily::Inet;
        n.header.ifindex = 7;
        n.header.state = state;
        n.attributes
            .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(
                Ipv4Addr::new(10, 0, 0, 1),
            )));
        if let Some(mac) = mac {
            n.attributes
                .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
        }
        n
    }

    #[test]
    fn datagrams_and_garbage() {
        let mut bytes = Vec::new();
        for (inner, _) in [
            (
                RouteNetlinkMessage::NewNeighbour(message(NeighbourState::Reachable, Some([1; 6]))),
                false,
            ),
            (
                RouteNetlinkMessage::DelNeighbour(message(NeighbourState::Failed, None)),
                true,
            ),
        ] {
            let mut msg = NetlinkMessage::new(
                NetlinkHeader::default(),
                NetlinkPayload::InnerMessage(inner),
            );
            msg.finalize();
            let mut buf = vec![0u8; msg.buffer_len()];
            msg.serialize(&mut buf);
            bytes.extend_from_slice(&buf);
        }
        let parsed = parse_datagram(&bytes);
        assert_eq!(parsed.len(), 2);
        assert!(!parsed[0].1 && parsed[1].1);
        assert_eq!(
            parse(&parsed[0].0),
            Some((Ipv4Addr::new(10, 0, 0, 1), Some([1; 6])))
        );
        // truncated and random bytes: no panic, nothing parsed past the damage
        for cut in 0..bytes.len() {
            let _ = parse_datagram(&bytes[..cut]);
        }
        assert!(parse_datagram(&[0xff; 40]).is_empty());
    }
}
