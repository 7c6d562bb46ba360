//! The kernel's IPv4 unicast routes out of fwd's interfaces, for the next hop on a LAN: a
//! host in a LAN's extra subnet sits behind another router on that LAN, and the kernel's
//! route to it names that router as gateway.
//!
//! Layer: sans-I/O (the watcher, `daemon/neighbor_watch.rs`, reads the routes from the
//! kernel; tests build them by hand). Ownership: a [`Routes`] is built off the packet path and
//! then only read; the kernel's routes are published inside the neighbour snapshot
//! (`kernel::NeighborSnapshot`), so a worker reads neighbours and routes of one generation.
//!
//! Lookup ([`Routes::lookup`]) is the longest-prefix match among the routes out of one
//! interface: per interface a bit set of the prefix lengths present, and one hash map keyed by
//! (interface, length, network), probed from the longest length down. No allocation, at most
//! one probe per distinct length present on that interface (a LAN has a handful).

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// Keys come from the kernel's table or a test, not from packets: fixed seeds are enough.
type Map = hashbrown::HashMap<(u8, u8, u32), Entry, ahash::RandomState>;

fn hasher() -> ahash::RandomState {
    ahash::RandomState::with_seeds(0x6677_6432, 0x726f_7574, 0x6573_0000, 0x6c70_6d00)
}

/// One route: packets to `destination` leave by plan interface `iface`, to `gateway` if it
/// has one, else to their destination (on-link). `metric` ranks routes to the same
/// destination out of the same interface (lower wins), as the kernel's priority does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Route {
    pub iface: u8,
    pub destination: Ipv4Net,
    pub gateway: Option<Ipv4Addr>,
    pub metric: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    gateway: Option<Ipv4Addr>,
    metric: u32,
}

/// Routes by interface, for longest-prefix lookups.
#[derive(Clone, Debug)]
pub struct Routes {
    /// Per interface: bit `n` set when a route of prefix length `n` goes out of it.
    lengths: Vec<u64>,
    /// Per interface: whether any route out of it has a gateway (else every next hop out of
    /// it is the destination, and [`Routes::gateway`] needs no lookup).
    via_gateway: Vec<bool>,
    map: Map,
}

impl Default for Routes {
    fn default() -> Routes {
        Routes {
            lengths: Vec::new(),
            via_gateway: Vec::new(),
            map: Map::with_hasher(hasher()),
        }
    }
}

impl FromIterator<Route> for Routes {
    fn from_iter<I: IntoIterator<Item = Route>>(routes: I) -> Routes {
        let mut table = Routes::default();
        for route in routes {
            table.insert(route);
        }
        table
    }
}

impl Routes {
    /// Adds a route (its destination truncated to its prefix); of two routes to one
    /// destination out of one interface, the one with the lower metric stays (the first at
    /// equal metrics).
    pub fn insert(&mut self, route: Route) {
        let len = route.destination.prefix_len();
        let key = (route.iface, len, u32::from(route.destination.network()));
        let entry = Entry {
            gateway: route.gateway,
            metric: route.metric,
        };
        match self.map.get_mut(&key) {
            Some(old) if old.metric <= entry.metric => return,
            Some(old) => *old = entry,
            None => {
                self.map.insert(key, entry);
            }
        }
        let slot = usize::from(route.iface);
        if self.lengths.len() <= slot {
            self.lengths.resize(slot + 1, 0);
            self.via_gateway.resize(slot + 1, false);
        }
        if let Some(bits) = self.lengths.get_mut(slot) {
            *bits |= 1 << len;
        }
        if let Some(g) = self.via_gateway.get_mut(slot) {
            *g |= route.gateway.is_some();
        }
    }

    /// Routes held (one per interface and destination).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The gateway of the longest-prefix route to `dst` out of `iface`; `None` when that
    /// route is on-link or there is none (the next hop is then `dst`). An interface without
    /// any gateway route answers without a lookup.
    #[inline]
    pub fn gateway(&self, iface: u8, dst: Ipv4Addr) -> Option<Ipv4Addr> {
        if !self
            .via_gateway
            .get(usize::from(iface))
            .copied()
            .unwrap_or(false)
        {
            return None;
        }
        self.lookup(iface, dst).flatten()
    }

    /// The longest-prefix route to `dst` out of `iface`: `Some(gateway)` (`Some(None)` for an
    /// on-link route), `None` when no route out of `iface` covers `dst`.
    #[inline]
    pub fn lookup(&self, iface: u8, dst: Ipv4Addr) -> Option<Option<Ipv4Addr>> {
        let mut bits = *self.lengths.get(usize::from(iface))?;
        let dst = u32::from(dst);
        while bits != 0 {
            let len = 63 - bits.leading_zeros();
            bits &= !(1u64 << len);
            let network = dst & u32::MAX.checked_shl(32 - len).unwrap_or(0);
            if let Some(entry) = self.map.get(&(iface, len as u8, network)) {
                return Some(entry.gateway);
            }
        }
        None
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;

    /// A route from its parts in the shape `ip route` writes them.
    pub(crate) fn route(
        iface: u8,
        destination: &str,
        gateway: Option<[u8; 4]>,
        metric: u32,
    ) -> Route {
        Route {
            iface,
            destination: destination.parse().unwrap(),
            gateway: gateway.map(Ipv4Addr::from),
            metric,
        }
    }

    /// A LAN (iface 0) with its own subnet, two extra subnets behind two LAN routers (one
    /// nested in the other), a host route and a default; a WAN (iface 1) with its default.
    fn table() -> Routes {
        [
            route(0, "192.168.1.0/24", None, 0),
            route(0, "10.20.0.0/16", Some([192, 168, 1, 254]), 0),
            route(0, "10.20.5.0/24", Some([192, 168, 1, 253]), 0),
            route(0, "10.20.5.7/32", None, 0),
            route(0, "10.30.0.0/16", Some([192, 168, 1, 250]), 100),
            route(0, "10.30.0.0/16", Some([192, 168, 1, 251]), 10),
            route(0, "10.30.0.0/16", Some([192, 168, 1, 252]), 10),
            route(1, "0.0.0.0/0", Some([198, 51, 100, 1]), 0),
            route(1, "198.51.100.0/30", None, 0),
            // not truncated by its writer: the table truncates it
            route(3, "172.16.9.9/12", Some([172, 16, 0, 1]), 0),
        ]
        .into_iter()
        .collect()
    }

    #[test]
    fn longest_prefix_match_golden() {
        let t = table();
        let gw = |a: [u8; 4]| Some(Some(Ipv4Addr::from(a)));
        let on_link = Some(None);
        /// (interface, destination, what the lookup finds)
        type Case = (u8, [u8; 4], Option<Option<Ipv4Addr>>);
        let cases: &[Case] = &[
            (0, [192, 168, 1, 10], on_link),
            (0, [10, 20, 1, 1], gw([192, 168, 1, 254])),
            (0, [10, 20, 5, 1], gw([192, 168, 1, 253])),
            (0, [10, 20, 5, 7], on_link),
            (0, [10, 20, 5, 8], gw([192, 168, 1, 253])),
            (0, [10, 20, 255, 255], gw([192, 168, 1, 254])),
            (0, [10, 21, 0, 1], None),
            (0, [10, 30, 0, 1], gw([192, 168, 1, 251])),
            (0, [8, 8, 8, 8], None),
            (1, [8, 8, 8, 8], gw([198, 51, 100, 1])),
            (1, [198, 51, 100, 1], on_link),
            (1, [10, 20, 1, 1], gw([198, 51, 100, 1])),
            (2, [10, 20, 1, 1], None),
            (3, [172, 31, 0, 1], gw([172, 16, 0, 1])),
            (3, [172, 32, 0, 1], None),
            (200, [10, 20, 1, 1], None),
        ];
        for &(iface, dst, want) in cases {
            assert_eq!(
                t.lookup(iface, Ipv4Addr::from(dst)),
                want,
                "iface {iface} dst {dst:?}"
            );
        }
        assert_eq!(t.len(), 8, "one route per interface and destination");
        assert!(Routes::default().is_empty());
        assert_eq!(Routes::default().lookup(0, Ipv4Addr::LOCALHOST), None);
    }

    #[test]
    fn gateway_agrees_with_the_lookup() {
        let t = table();
        for iface in [0u8, 1, 2, 3, 200] {
            for dst in [
                [192, 168, 1, 10],
                [10, 20, 5, 7],
                [10, 20, 5, 8],
                [10, 30, 0, 1],
                [8, 8, 8, 8],
                [172, 31, 0, 1],
            ] {
                let dst = Ipv4Addr::from(dst);
                assert_eq!(t.gateway(iface, dst), t.lookup(iface, dst).flatten());
            }
        }
        let on_link: Routes = [route(0, "192.168.1.0/24", None, 0)].into_iter().collect();
        assert_eq!(on_link.gateway(0, Ipv4Addr::new(192, 168, 1, 9)), None);
    }

    #[test]
    fn every_length_matches_its_own_network_only() {
        for len in 0..=32u8 {
            let dst = Ipv4Addr::new(203, 0, 113, 77);
            let net = Ipv4Net::new(dst, len).unwrap().trunc();
            let t: Routes = [route(0, &net.to_string(), Some([1, 2, 3, 4]), 0)]
                .into_iter()
                .collect();
            assert_eq!(t.lookup(0, dst), Some(Some(Ipv4Addr::new(1, 2, 3, 4))));
            assert_eq!(
                t.lookup(0, net.network()),
                Some(Some(Ipv4Addr::new(1, 2, 3, 4)))
            );
            assert_eq!(
                t.lookup(0, net.broadcast()),
                Some(Some(Ipv4Addr::new(1, 2, 3, 4)))
            );
            if len > 0 {
                let outside = u32::from(net.network()) ^ (1 << (32 - u32::from(len)));
                assert_eq!(t.lookup(0, Ipv4Addr::from(outside)), None, "/{len}");
            }
        }
    }
}
