//! Link-layer addresses for Ethernet egress: the MAC of each interface of the router, the
//! MAC of a next hop, and the gateway of the route to a destination out of a LAN (the next
//! hop for a host in an extra subnet behind another router on that LAN). The AF_XDP backend
//! reads them from the kernel's neighbour and route tables ([`kernel`]: the kernel keeps
//! doing ARP, and its main table says which LAN router serves which subnet); tests use
//! [`StaticNeighbors`].

pub mod kernel;
pub mod routes;

use std::collections::HashMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use routes::{Route, Routes};

pub type Mac = [u8; 6];

pub trait Neighbors: Sync {
    /// The router's own MAC on interface `iface`.
    fn interface_mac(&self, iface: u8) -> Option<Mac>;
    /// The MAC of `next_hop` on interface `iface`.
    fn resolve(&self, iface: u8, next_hop: Ipv4Addr) -> Option<Mac>;
    /// The gateway of the longest-prefix route to `dst` among the routes out of `iface`;
    /// `None` when that route is on-link or no route out of `iface` covers `dst` (the next
    /// hop is then `dst` itself).
    fn gateway(&self, iface: u8, dst: Ipv4Addr) -> Option<Ipv4Addr>;
}

/// A fixed table, for tests, benchmarks and static setups.
#[derive(Clone, Debug, Default)]
pub struct StaticNeighbors {
    interfaces: HashMap<u8, Mac>,
    hosts: HashMap<(u8, Ipv4Addr), Mac>,
    routes: Routes,
}

impl StaticNeighbors {
    pub fn new() -> StaticNeighbors {
        StaticNeighbors::default()
    }

    pub fn set_interface(&mut self, iface: u8, mac: Mac) {
        self.interfaces.insert(iface, mac);
    }

    pub fn set_host(&mut self, iface: u8, ip: Ipv4Addr, mac: Mac) {
        self.hosts.insert((iface, ip), mac);
    }

    /// Adds a route to `destination` out of `iface`, via `gateway` (`None`: on-link).
    pub fn set_route(&mut self, iface: u8, destination: Ipv4Net, gateway: Option<Ipv4Addr>) {
        self.routes.insert(Route {
            iface,
            destination,
            gateway,
            metric: 0,
        });
    }
}

impl Neighbors for StaticNeighbors {
    fn interface_mac(&self, iface: u8) -> Option<Mac> {
        self.interfaces.get(&iface).copied()
    }

    fn resolve(&self, iface: u8, next_hop: Ipv4Addr) -> Option<Mac> {
        self.hosts.get(&(iface, next_hop)).copied()
    }

    fn gateway(&self, iface: u8, dst: Ipv4Addr) -> Option<Ipv4Addr> {
        self.routes.gateway(iface, dst)
    }
}
