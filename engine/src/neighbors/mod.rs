//! Link-layer addresses for Ethernet egress: the MAC of each interface of the router and the
//! MAC of a next hop. The AF_XDP backend reads them from the kernel's neighbour table
//! ([`kernel`]: the kernel keeps doing ARP); tests use [`StaticNeighbors`].

pub mod kernel;

use std::collections::HashMap;
use std::net::Ipv4Addr;

pub type Mac = [u8; 6];

pub trait Neighbors: Sync {
    /// The router's own MAC on interface `iface`.
    fn interface_mac(&self, iface: u8) -> Option<Mac>;
    /// The MAC of `next_hop` on interface `iface`.
    fn resolve(&self, iface: u8, next_hop: Ipv4Addr) -> Option<Mac>;
}

/// A fixed table, for tests, benchmarks and static setups.
#[derive(Clone, Debug, Default)]
pub struct StaticNeighbors {
    interfaces: HashMap<u8, Mac>,
    hosts: HashMap<(u8, Ipv4Addr), Mac>,
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
}

impl Neighbors for StaticNeighbors {
    fn interface_mac(&self, iface: u8) -> Option<Mac> {
        self.interfaces.get(&iface).copied()
    }

    fn resolve(&self, iface: u8, next_hop: Ipv4Addr) -> Option<Mac> {
        self.hosts.get(&(iface, next_hop)).copied()
    }
}
