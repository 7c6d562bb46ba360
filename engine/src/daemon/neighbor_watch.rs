//! Follows the kernel's IPv4 neighbour table and the main table's unicast routes out of
//! fwd's interfaces and publishes both to the workers in one snapshot ([`NeighborTable`]);
//! asks the kernel to resolve what the workers missed and each WAN's gateway (an
//! `RTM_NEWNEIGH` with `NTF_USE`: the kernel sends its ARP request and reports the answer
//! like any other change). Runs on a thread of its own ([`NeighborWatch::run`]), which sleeps
//! on the notification socket and looks at the workers' requests every [`REQUEST_POLL`]: a
//! neighbour the kernel learns (a LAN host's ARP request for the router, say) reaches the
//! workers well before that host's first packet does.
//!
//! Neighbours: a dump at start and after the kernel dropped notifications, then the
//! notifications of `RTNLGRP_NEIGH`, applied one by one. Routes: a dump of every IPv4 route
//! at start, and again in the tick after a notification that may change the main table's
//! routes out of fwd's interfaces (`RTNLGRP_IPV4_ROUTE`; and `RTNLGRP_LINK` and
//! `RTNLGRP_IPV4_IFADDR` for fwd's interfaces, since the kernel flushes routes through a
//! link that goes down, or via a gateway whose subnet goes, without a route notification).
//! The snapshot is republished only when the kept routes differ. Messages are decoded by
//! `netlink-packet-route` (bounds checked); what fails to decode or does not fit is skipped.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::Ipv4Addr;
use std::sync::Arc;

use netlink_packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteNextHopFlags,
    RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use crate::neighbors::kernel::NeighborTable;
use crate::neighbors::routes::{Route, Routes};
use crate::neighbors::Mac;
use crate::steering::netlink::Netlink;
use crate::steering::routes::table;

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
    /// The main table's routes out of fwd's interfaces, sorted.
    routes: Vec<Route>,
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
        for group in [
            libc::RTNLGRP_NEIGH,
            libc::RTNLGRP_IPV4_ROUTE,
            libc::RTNLGRP_LINK,
            libc::RTNLGRP_IPV4_IFADDR,
        ] {
            monitor.add_membership(group)?;
        }
        monitor.set_non_blocking(true)?;
        let netlink = Netlink::open().map_err(|e| io::Error::other(e.to_string()))?;
        let mut watch = NeighborWatch {
            table,
            ifaces: interfaces.iter().copied().collect(),
            ifindex: interfaces.iter().map(|&(i, p)| (p, i)).collect(),
            entries: BTreeMap::new(),
            routes: Vec::new(),
            gateways,
            monitor,
            netlink,
            failures: 0,
        };
        watch.dump_routes()?;
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

    /// Routes published now.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Resolution requests the kernel refused, and dumps that failed.
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

    /// Reads the routes again; true if the ones kept changed (the caller publishes).
    fn dump_routes(&mut self) -> io::Result<bool> {
        let dumped = self
            .netlink
            .route_dump()
            .map_err(|e| io::Error::other(e.to_string()))?;
        let mut routes: Vec<Route> = dumped
            .iter()
            .flat_map(|r| main_routes(r, &self.ifaces))
            .collect();
        routes.sort_unstable();
        routes.dedup();
        let changed = routes != self.routes;
        self.routes = routes;
        Ok(changed)
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
        self.table.publish(
            self.entries.iter().map(|(&k, &v)| (k, v)),
            self.routes.iter().copied().collect::<Routes>(),
        );
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
        let mut routes_stale = false;
        for _ in 0..READ_LIMIT {
            match self.monitor.recv_from_full() {
                Ok((datagram, _)) => {
                    for notice in parse_datagram(&datagram) {
                        match notice {
                            Notice::Neighbour(n, deleted) => changed |= self.apply(&n, deleted),
                            Notice::Route(r) => {
                                routes_stale |= !main_routes(&r, &self.ifaces).is_empty();
                            }
                            Notice::Interface(index) => {
                                routes_stale |= self.ifaces.contains_key(&index);
                            }
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    // notifications were lost: start again from dumps (the neighbours' publishes both)
                    let routes = self.dump_routes();
                    if routes.is_err() | self.dump().is_err() {
                        self.failures += 1;
                    }
                    changed = false;
                    routes_stale = false;
                    break;
                }
                Err(_) => break, // WouldBlock: all read
            }
        }
        if routes_stale {
            match self.dump_routes() {
                Ok(routes_changed) => changed |= routes_changed,
                Err(_) => self.failures += 1,
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

/// The routes a dumped or notified route message gives fwd: an IPv4 unicast route of the
/// main table (any TOS but 0 is left out: such a route covers only some packets), one
/// [`Route`] per next hop out of one of fwd's interfaces (`ifaces`: ifindex → plan
/// interface) that the kernel has not marked dead. A route without `RTA_OIF` or next hops
/// (a nexthop object alone) gives none.
fn main_routes(r: &RouteMessage, ifaces: &HashMap<u32, u8>) -> Vec<Route> {
    let header = &r.header;
    if header.address_family != AddressFamily::Inet
        || header.kind != RouteType::Unicast
        || header.tos != 0
        || table(r) != u32::from(RouteHeader::RT_TABLE_MAIN)
    {
        return Vec::new();
    }
    let mut network = Ipv4Addr::UNSPECIFIED;
    let mut metric = 0;
    let mut oif = None;
    let mut gateway = None;
    let mut hops: &[_] = &[];
    for attribute in &r.attributes {
        match attribute {
            RouteAttribute::Destination(RouteAddress::Inet(a)) => network = *a,
            RouteAttribute::Priority(p) => metric = *p,
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::Gateway(RouteAddress::Inet(g)) => gateway = Some(*g),
            RouteAttribute::MultiPath(h) => hops = h,
            _ => {}
        }
    }
    let Ok(destination) = ipnet::Ipv4Net::new(network, header.destination_prefix_length) else {
        return Vec::new();
    };
    let route = |index: u32, gateway: Option<Ipv4Addr>| {
        Some(Route {
            iface: *ifaces.get(&index)?,
            destination: destination.trunc(),
            gateway,
            metric,
        })
    };
    if header.flags.contains(RouteFlags::Dead) {
        return Vec::new();
    }
    let mut out: Vec<Route> = oif
        .and_then(|index| route(index, gateway))
        .into_iter()
        .collect();
    out.extend(
        hops.iter()
            .filter(|hop| !hop.flags.contains(RouteNextHopFlags::Dead))
            .filter_map(|hop| {
                let gateway = hop.attributes.iter().find_map(|a| match a {
                    RouteAttribute::Gateway(RouteAddress::Inet(g)) => Some(*g),
                    _ => None,
                });
                route(hop.interface_index, gateway)
            }),
    );
    out
}

/// What a notification is about.
#[derive(Debug)]
enum Notice {
    /// A neighbour, and whether it is a deletion.
    Neighbour(NeighbourMessage, bool),
    /// A route added, changed or deleted.
    Route(RouteMessage),
    /// A link or an IPv4 address of the interface with this index changed.
    Interface(u32),
}

/// The notifications of one datagram fwd looks at.
fn parse_datagram(datagram: &[u8]) -> Vec<Notice> {
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
        let Ok(NetlinkPayload::InnerMessage(message)) =
            NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes).map(|m| m.payload)
        else {
            continue;
        };
        out.extend(match message {
            RouteNetlinkMessage::NewNeighbour(n) => Some(Notice::Neighbour(n, false)),
            RouteNetlinkMessage::DelNeighbour(n) => Some(Notice::Neighbour(n, true)),
            RouteNetlinkMessage::NewRoute(r) | RouteNetlinkMessage::DelRoute(r) => {
                Some(Notice::Route(r))
            }
            RouteNetlinkMessage::NewLink(l) | RouteNetlinkMessage::DelLink(l) => {
                Some(Notice::Interface(l.header.index))
            }
            RouteNetlinkMessage::NewAddress(a) | RouteNetlinkMessage::DelAddress(a) => {
                Some(Notice::Interface(a.header.index))
            }
            _ => None,
        });
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::neighbors::routes::tests::route;
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
        let (Notice::Neighbour(first, false), Notice::Neighbour(_, true)) =
            (&parsed[0], &parsed[1])
        else {
            panic!("a new neighbour, then a deleted one: {parsed:?}");
        };
        assert_eq!(
            parse(first),
            Some((Ipv4Addr::new(10, 0, 0, 1), Some([1; 6])))
        );
        // truncated and random bytes: no panic, nothing parsed past the damage
        for cut in 0..bytes.len() {
            let _ = parse_datagram(&bytes[..cut]);
        }
        assert!(parse_datagram(&[0xff; 40]).is_empty());
    }

    /// `RTM_NEWROUTE` messages as the kernel (6.x) sent them, whole (netlink header first),
    /// in answer to an IPv4 route dump in a namespace with lan0 (ifindex 3, 192.168.1.1/24)
    /// and lan1 (ifindex 5, 192.168.2.1/24), after:
    /// ```text
    /// ip route add 10.20.0.0/16 via 192.168.1.254 dev lan0
    /// ip route add 10.30.0.0/16 nexthop via 192.168.1.250 dev lan0 nexthop via 192.168.2.251 dev lan1
    /// ip route add 10.40.0.0/16 via 192.168.1.254 metric 50
    /// ip route add default via 192.168.2.254
    /// ip route add table 4201 default via 192.168.2.253
    /// ```
    const DUMPED: [&str; 8] = [
        // table 4201 default via 192.168.2.253 dev lan1 (header table 252, RTA_TABLE 4201)
        "3400000018000200010000009e1e000002000000fc0300010000000008000f006910000008000500c0a802fd0800040005000000",
        // default via 192.168.2.254 dev lan1
        "3400000018000200010000009e1e000002000000fe0300010000000008000f00fe00000008000500c0a802fe0800040005000000",
        // 10.20.0.0/16 via 192.168.1.254 dev lan0
        "3c00000018000200010000009e1e000002100000fe0300010000000008000f00fe000000080001000a14000008000500c0a801fe0800040003000000",
        // 10.30.0.0/16 nexthop via 192.168.1.250 dev lan0 nexthop via 192.168.2.251 dev lan1
        "5000000018000200010000009e1e000002100000fe0300010000000008000f00fe000000080001000a1e000024000900100000000300000008000500c0a801fa100000000500000008000500c0a802fb",
        // 10.40.0.0/16 via 192.168.1.254 dev lan0 metric 50
        "4400000018000200010000009e1e000002100000fe0300010000000008000f00fe000000080001000a280000080006003200000008000500c0a801fe0800040003000000",
        // 192.168.1.0/24 dev lan0 proto kernel scope link src 192.168.1.1
        "3c00000018000200010000009e1e000002180000fe02fd010000000008000f00fe00000008000100c0a8010008000700c0a801010800040003000000",
        // 192.168.2.0/24 dev lan1 proto kernel scope link src 192.168.2.1
        "3c00000018000200010000009e1e000002180000fe02fd010000000008000f00fe00000008000100c0a8020008000700c0a802010800040005000000",
        // local 192.168.1.1 dev lan0 table local (type local)
        "3c00000018000200010000009e1e000002200000ff02fe020000000008000f00ff00000008000100c0a8010108000700c0a801010800040003000000",
    ];

    fn bytes(hex: &str) -> Vec<u8> {
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()
    }

    /// The routes fwd keeps from the dump when lan0 is its interface 0 and lan1 its 1.
    #[test]
    fn dumped_routes_of_the_main_table() {
        let ifaces = HashMap::from([(3, 0), (5, 1)]);
        let datagram: Vec<u8> = DUMPED.iter().flat_map(|m| bytes(m)).collect();
        let kept: Vec<Route> = parse_datagram(&datagram)
            .iter()
            .flat_map(|n| match n {
                Notice::Route(r) => main_routes(r, &ifaces),
                other => panic!("only routes here: {other:?}"),
            })
            .collect();
        assert_eq!(
            kept,
            vec![
                route(1, "0.0.0.0/0", Some([192, 168, 2, 254]), 0),
                route(0, "10.20.0.0/16", Some([192, 168, 1, 254]), 0),
                route(0, "10.30.0.0/16", Some([192, 168, 1, 250]), 0),
                route(1, "10.30.0.0/16", Some([192, 168, 2, 251]), 0),
                route(0, "10.40.0.0/16", Some([192, 168, 1, 254]), 50),
                route(0, "192.168.1.0/24", None, 0),
                route(1, "192.168.2.0/24", None, 0),
            ]
        );
        // only lan0 is fwd's: lan1's routes and next hops are left out
        let ifaces = HashMap::from([(3, 0)]);
        let kept: Vec<Route> = parse_datagram(&datagram)
            .iter()
            .flat_map(|n| match n {
                Notice::Route(r) => main_routes(r, &ifaces),
                _ => Vec::new(),
            })
            .collect();
        assert_eq!(kept.len(), 4);
        assert!(kept.iter().all(|r| r.iface == 0));
        // what the workers look up from these
        let routes: Routes = kept.into_iter().collect();
        assert_eq!(
            routes.lookup(0, Ipv4Addr::new(10, 20, 7, 7)),
            Some(Some(Ipv4Addr::new(192, 168, 1, 254)))
        );
        assert_eq!(routes.lookup(0, Ipv4Addr::new(192, 168, 1, 9)), Some(None));
        assert_eq!(routes.lookup(0, Ipv4Addr::new(8, 8, 8, 8)), None);
    }

    #[test]
    fn damaged_route_messages_are_skipped() {
        let whole = bytes(DUMPED[3]);
        for cut in 0..whole.len() {
            let mut damaged = whole.clone();
            damaged.truncate(cut);
            let _ = parse_datagram(&damaged);
            // lengths that lie: the header's, an attribute's, a next hop's
            for (at, value) in [
                (0, 0xff),
                (0, 0x10),
                (28, 0xff),
                (36, 0x02),
                (44, 0xff),
                (44, 0x03),
                (48, 0x02),
                (48, 0xff),
            ] {
                let mut lying = whole.clone();
                lying[at] = value;
                lying.truncate(cut.max(at + 1));
                let _ = parse_datagram(&lying);
            }
        }
        // a dead route and a dead next hop are left out
        let ifaces = HashMap::from([(3, 0), (5, 1)]);
        let mut dead = whole.clone();
        dead[24] |= 1; // rtm_flags: RTNH_F_DEAD
        let parsed = parse_datagram(&dead);
        let [Notice::Route(r)] = parsed.as_slice() else {
            panic!("one route: {parsed:?}");
        };
        assert!(main_routes(r, &ifaces).is_empty());
        let mut dead_hop = whole;
        dead_hop[50] |= 1; // the first next hop's rtnh_flags
        let parsed = parse_datagram(&dead_hop);
        let [Notice::Route(r)] = parsed.as_slice() else {
            panic!("one route: {parsed:?}");
        };
        assert_eq!(
            main_routes(r, &ifaces),
            vec![route(1, "10.30.0.0/16", Some([192, 168, 2, 251]), 0)]
        );
    }
}
