//! Port forwards compiled for the data plane: which (WAN, protocol, external port) leads to
//! which internal server, found by a binary search at a connection's first packet (and for
//! each packet from the Internet of a forwarded connection, whose port the WAN's NAT port
//! table does not hold), with a hit counter per forward. Part of the [`Plan`](crate::plan::Plan):
//! immutable once built, swapped whole on reload.

use std::net::Ipv4Addr;
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicU64, Ordering};

use conntrack::{Endpoint, Proto};

use crate::config::Forward;

/// One forward on one WAN and protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    wan: usize,
    proto: Proto,
    ports: RangeInclusive<u16>,
    to: Ipv4Addr,
    to_port: u16,
    lan: usize,
    forward: u16,
}

/// Where a forwarded port leads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Forwarded {
    /// The internal server's endpoint for this external port.
    pub target: Endpoint,
    /// Index of the server's LAN in the plan.
    pub lan: usize,
    /// Index of the forward in the config (its hit counter, its name).
    pub forward: u16,
}

/// The forwards of a plan.
#[derive(Debug, Default)]
pub struct Forwards {
    /// Sorted by (WAN, protocol, first port); the ranges of one WAN and protocol do not
    /// overlap (the config refuses that).
    entries: Vec<Entry>,
    hits: Box<[AtomicU64]>,
}

fn proto_of(number: u8) -> Option<Proto> {
    match number {
        6 => Some(Proto::Tcp),
        17 => Some(Proto::Udp),
        _ => None,
    }
}

impl Forwards {
    pub fn new(forwards: &[Forward]) -> Forwards {
        let mut entries = Vec::new();
        for (i, f) in forwards.iter().enumerate() {
            let forward = u16::try_from(i).unwrap_or(u16::MAX);
            for &wan in &f.wans {
                for proto in f.protos.iter().filter_map(|&p| proto_of(p)) {
                    entries.push(Entry {
                        wan,
                        proto,
                        ports: f.ports.clone(),
                        to: f.to,
                        to_port: f.to_port,
                        lan: f.lan,
                        forward,
                    });
                }
            }
        }
        entries.sort_by_key(|e| (e.wan, e.proto as u8, *e.ports.start()));
        Forwards {
            entries,
            hits: forwards.iter().map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Whether there are none (the pipeline then skips the search).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Where a packet from the Internet to WAN `wan`'s address and external port `port` of
    /// `proto` leads, if a forward takes it.
    #[inline]
    pub fn find(&self, wan: usize, proto: Proto, port: u16) -> Option<Forwarded> {
        let key = (wan, proto as u8, port);
        // the first entry past the key; the one before it is the only candidate
        let after = self
            .entries
            .partition_point(|e| (e.wan, e.proto as u8, *e.ports.start()) <= key);
        let e = self.entries.get(after.checked_sub(1)?)?;
        if e.wan != wan || e.proto != proto || !e.ports.contains(&port) {
            return None;
        }
        let offset = port - *e.ports.start();
        Some(Forwarded {
            target: Endpoint::new(e.to, e.to_port.wrapping_add(offset)),
            lan: e.lan,
            forward: e.forward,
        })
    }

    /// The external port of WAN `wan` and `proto` that a forward leads to `target`: the first
    /// (lowest) one if several do. The inverse of [`find`](Self::find), for the answers of a
    /// forward's target to a LAN host that reached it through the WAN's address (a hairpin):
    /// they must come from that port. A scan of the forwards, for a hairpin's first answer.
    pub fn port_of(&self, wan: usize, proto: Proto, target: Endpoint) -> Option<u16> {
        self.entries
            .iter()
            .filter(|e| e.wan == wan && e.proto == proto && e.to == target.ip)
            .find_map(|e| {
                let offset = target.port.checked_sub(e.to_port)?;
                let port = e.ports.start().checked_add(offset)?;
                e.ports.contains(&port).then_some(port)
            })
    }

    /// The (WAN, protocol, external ports) forwarded: what steering sends to fwd.
    pub fn ports(&self) -> impl Iterator<Item = (usize, Proto, RangeInclusive<u16>)> + '_ {
        self.entries
            .iter()
            .map(|e| (e.wan, e.proto, e.ports.clone()))
    }

    /// Every forwarded (WAN, protocol, external port), port by port.
    pub fn each_port(&self) -> impl Iterator<Item = (usize, Proto, u16)> + '_ {
        self.ports()
            .flat_map(|(wan, proto, ports)| ports.map(move |port| (wan, proto, port)))
    }

    /// Counts a connection forward `forward` took.
    #[inline]
    pub fn count_hit(&self, forward: u16) {
        if let Some(c) = self.hits.get(usize::from(forward)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Connections forward `forward` has taken.
    pub fn hits(&self, forward: usize) -> u64 {
        self.hits
            .get(forward)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forward(
        wans: Vec<usize>,
        protos: Vec<u8>,
        ports: RangeInclusive<u16>,
        to_port: u16,
    ) -> Forward {
        Forward {
            name: "f".into(),
            wans,
            protos,
            ports,
            to: Ipv4Addr::new(10, 0, 0, 5),
            to_port,
            lan: 0,
        }
    }

    #[test]
    fn finds_the_forward_of_a_wan_protocol_and_port() {
        let f = Forwards::new(&[
            forward(vec![0, 1], vec![6], 8080..=8080, 80),
            forward(vec![1], vec![6, 17], 6881..=6889, 6881),
            forward(vec![0], vec![17], 53..=53, 5353),
        ]);
        let at = |wan, proto, port| f.find(wan, proto, port).map(|h| (h.target.port, h.forward));
        assert_eq!(at(0, Proto::Tcp, 8080), Some((80, 0)));
        assert_eq!(at(1, Proto::Tcp, 8080), Some((80, 0)));
        assert_eq!(at(0, Proto::Udp, 8080), None, "another protocol");
        assert_eq!(at(1, Proto::Udp, 6885), Some((6885, 1)));
        assert_eq!(at(0, Proto::Tcp, 6885), None, "another WAN");
        assert_eq!(at(1, Proto::Tcp, 6890), None, "past the range");
        assert_eq!(at(1, Proto::Tcp, 6880), None, "before it");
        assert_eq!(at(0, Proto::Udp, 53), Some((5353, 2)));
        assert_eq!(at(2, Proto::Udp, 53), None, "no such WAN");
        assert_eq!(at(0, Proto::Icmp, 53), None);
        assert_eq!(f.ports().count(), 5);
        assert_eq!(f.each_port().count(), 2 + 9 + 9 + 1);
        f.count_hit(1);
        f.count_hit(1);
        f.count_hit(9);
        assert_eq!((f.hits(0), f.hits(1), f.hits(9)), (0, 2, 0));
    }

    #[test]
    fn port_of_finds_the_external_port_leading_to_a_target() {
        let f = Forwards::new(&[
            forward(vec![0, 1], vec![6], 8080..=8080, 80),
            forward(vec![1], vec![6, 17], 6881..=6889, 7881),
            forward(vec![0], vec![6], 80..=80, 80),
        ]);
        let host = Ipv4Addr::new(10, 0, 0, 5);
        let of = |wan, proto, port| f.port_of(wan, proto, Endpoint::new(host, port));
        assert_eq!(of(0, Proto::Tcp, 80), Some(80), "the first of two ports");
        assert_eq!(of(1, Proto::Tcp, 80), Some(8080));
        assert_eq!(of(1, Proto::Udp, 7885), Some(6885), "within a range");
        assert_eq!(of(1, Proto::Udp, 7889), Some(6889));
        assert_eq!(of(1, Proto::Udp, 7890), None, "past the range");
        assert_eq!(of(1, Proto::Udp, 7880), None, "before it");
        assert_eq!(of(0, Proto::Udp, 7885), None, "another WAN");
        assert_eq!(of(0, Proto::Udp, 80), None, "another protocol");
        assert_eq!(
            f.port_of(0, Proto::Tcp, Endpoint::new(Ipv4Addr::new(10, 0, 0, 6), 80)),
            None,
            "another host"
        );
        // each found port leads back to the target
        for (wan, proto, port) in [(0, Proto::Tcp, 80), (1, Proto::Udp, 7885)] {
            let back = of(wan, proto, port).and_then(|ext| f.find(wan, proto, ext));
            assert_eq!(back.map(|b| b.target), Some(Endpoint::new(host, port)));
        }
        assert_eq!(
            Forwards::new(&[]).port_of(0, Proto::Tcp, Endpoint::new(host, 80)),
            None
        );
    }

    #[test]
    fn no_forwards_find_nothing() {
        let f = Forwards::new(&[]);
        assert!(f.is_empty());
        assert_eq!(f.find(0, Proto::Tcp, 80), None);
    }
}
