//! The kernel's neighbour table and main-table routes as the workers see them: a snapshot of
//! (interface, address) → MAC and of the routes out of fwd's interfaces ([`Routes`]),
//! published whole by the thread that follows the kernel ([`NeighborTable::publish`]), read
//! by each worker through its own [`NeighborView`] without a lock on the packet path. One
//! snapshot holds both, so a worker's next hop and its MAC come from one generation.
//!
//! Layer: sans-I/O (the netlink side is `daemon/neighbor_watch.rs`). Ownership: the table is
//! shared (`Arc`); a snapshot is immutable once published and replaced whole, under a mutex
//! only the publisher and a worker that saw the generation change take, once per batch.
//! A lookup that misses leaves a request on a fixed board of atomics (no allocation, no
//! lock); the watcher asks the kernel to resolve what is on it, and the packet itself goes
//! to the kernel meanwhile (the pipeline's `no_neighbor`).

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::routes::Routes;
use super::{Mac, Neighbors};

/// Slots of the request board: misses beyond this many distinct ones between two reads of
/// the board overwrite each other (they are asked for again on their next miss).
const REQUEST_SLOTS: usize = 64;
/// Slots a request may take, from its hash on.
const PROBE: usize = 8;

/// Keys come from the kernel's table, not from packets: fixed seeds are enough.
type Hosts = hashbrown::HashMap<(u8, Ipv4Addr), Mac, ahash::RandomState>;

fn hasher() -> ahash::RandomState {
    ahash::RandomState::with_seeds(0x6677_6431, 0x6e65_6967, 0x6862_6f75, 0x7273_0000)
}

/// One published state of the table.
#[derive(Debug)]
pub struct NeighborSnapshot {
    interfaces: Vec<Option<Mac>>,
    hosts: Hosts,
    routes: Routes,
}

impl NeighborSnapshot {
    /// Neighbours held.
    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    /// Routes held.
    pub fn routes(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }
}

/// The shared table.
#[derive(Debug)]
pub struct NeighborTable {
    snapshot: Mutex<Arc<NeighborSnapshot>>,
    generation: AtomicU64,
    requests: [AtomicU64; REQUEST_SLOTS],
}

/// A request as stored on the board: `VALID | iface << 32 | address`.
const VALID: u64 = 1 << 63;

impl NeighborTable {
    /// A table that knows the router's own MAC on each plan interface and no neighbour or
    /// route yet.
    pub fn new(interfaces: Vec<Option<Mac>>) -> NeighborTable {
        NeighborTable {
            snapshot: Mutex::new(Arc::new(NeighborSnapshot {
                interfaces,
                hosts: Hosts::with_hasher(hasher()),
                routes: Routes::default(),
            })),
            generation: AtomicU64::new(0),
            requests: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Replaces the neighbours and the routes (the interfaces' MACs stay).
    pub fn publish(&self, hosts: impl IntoIterator<Item = ((u8, Ipv4Addr), Mac)>, routes: Routes) {
        let mut guard = self
            .snapshot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut map = Hosts::with_hasher(hasher());
        map.extend(hosts);
        *guard = Arc::new(NeighborSnapshot {
            interfaces: guard.interfaces.clone(),
            hosts: map,
            routes,
        });
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<NeighborSnapshot> {
        Arc::clone(
            &self
                .snapshot
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Asks for `address` on `iface` to be resolved (from the packet path: a few loads and
    /// at most one store). The request takes the first of [`PROBE`] slots from its hash that
    /// holds it already or is empty, else overwrites the first.
    pub fn request(&self, iface: u8, address: Ipv4Addr) {
        let word = VALID | u64::from(iface) << 32 | u64::from(u32::from(address));
        let home = (word.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) as usize;
        for k in 0..PROBE {
            let Some(slot) = self.requests.get((home + k) % REQUEST_SLOTS) else {
                return;
            };
            match slot.load(Ordering::Relaxed) {
                w if w == word => return,
                0 if slot
                    .compare_exchange(0, word, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok() =>
                {
                    return
                }
                _ => {}
            }
        }
        if let Some(slot) = self.requests.get(home % REQUEST_SLOTS) {
            slot.store(word, Ordering::Relaxed);
        }
    }

    /// Takes every request off the board.
    pub fn take_requests(&self) -> Vec<(u8, Ipv4Addr)> {
        self.requests
            .iter()
            .filter_map(|s| {
                let word = s.swap(0, Ordering::Relaxed);
                (word & VALID != 0).then(|| ((word >> 32) as u8, Ipv4Addr::from(word as u32)))
            })
            .collect()
    }

    /// A worker's view.
    pub fn view(self: &Arc<Self>) -> NeighborView {
        NeighborView {
            table: Arc::clone(self),
            snapshot: self.snapshot(),
            generation: self.generation.load(Ordering::Acquire),
        }
    }
}

/// One worker's view of a [`NeighborTable`]: the snapshot it read last.
#[derive(Debug)]
pub struct NeighborView {
    table: Arc<NeighborTable>,
    snapshot: Arc<NeighborSnapshot>,
    generation: u64,
}

impl NeighborView {
    /// Takes the latest snapshot if one was published since (one atomic load otherwise).
    pub fn refresh(&mut self) {
        let generation = self.table.generation.load(Ordering::Acquire);
        if generation != self.generation {
            self.snapshot = self.table.snapshot();
            self.generation = generation;
        }
    }
}

impl Neighbors for NeighborView {
    fn interface_mac(&self, iface: u8) -> Option<Mac> {
        self.snapshot
            .interfaces
            .get(usize::from(iface))
            .copied()
            .flatten()
    }

    fn resolve(&self, iface: u8, next_hop: Ipv4Addr) -> Option<Mac> {
        let found = self.snapshot.hosts.get(&(iface, next_hop)).copied();
        if found.is_none() {
            self.table.request(iface, next_hop);
        }
        found
    }

    fn gateway(&self, iface: u8, dst: Ipv4Addr) -> Option<Ipv4Addr> {
        self.snapshot.routes.gateway(iface, dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::neighbors::routes::Route;

    const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    #[test]
    fn views_see_what_is_published_after_a_refresh_and_misses_are_requested() {
        let table = Arc::new(NeighborTable::new(vec![Some([2; 6]), None]));
        let mut view = table.view();
        assert_eq!(view.interface_mac(0), Some([2; 6]));
        assert_eq!(view.interface_mac(1), None);
        assert_eq!(view.interface_mac(9), None);
        assert_eq!(view.resolve(1, A), None);
        assert_eq!(view.resolve(1, A), None, "asked once, kept once");
        assert_eq!(table.take_requests(), vec![(1, A)]);
        assert!(table.take_requests().is_empty(), "taken");

        table.publish([((1, A), [7; 6])], Routes::default());
        assert_eq!(view.resolve(1, A), None, "not before a refresh");
        view.refresh();
        assert_eq!(view.resolve(1, A), Some([7; 6]));
        assert_eq!(view.resolve(0, A), None, "per interface");
        assert_eq!(view.interface_mac(0), Some([2; 6]), "interfaces kept");
        table.publish([((1, B), [8; 6])], Routes::default());
        view.refresh();
        assert_eq!(
            (view.resolve(1, A), view.resolve(1, B)),
            (None, Some([8; 6]))
        );
    }

    #[test]
    fn routes_are_published_with_the_neighbours() {
        let table = Arc::new(NeighborTable::new(vec![Some([2; 6])]));
        let mut view = table.view();
        let far = Ipv4Addr::new(10, 20, 1, 1);
        assert_eq!(view.gateway(0, far), None);
        let route = |gateway| Route {
            iface: 0,
            destination: "10.20.0.0/16".parse().expect("a prefix"),
            gateway: Some(gateway),
            metric: 0,
        };
        table.publish([((0, A), [7; 6])], [route(A)].into_iter().collect());
        assert_eq!(view.gateway(0, far), None, "not before a refresh");
        view.refresh();
        assert_eq!(view.snapshot.routes(), 1);
        assert_eq!(
            (view.gateway(0, far), view.resolve(0, A)),
            (Some(A), Some([7; 6]))
        );
        assert_eq!(view.gateway(1, far), None, "per interface");
        table.publish([], [route(B)].into_iter().collect());
        view.refresh();
        assert_eq!((view.gateway(0, far), view.resolve(0, A)), (Some(B), None));
    }

    #[test]
    fn the_board_holds_many_distinct_requests() {
        let table = NeighborTable::new(Vec::new());
        for i in 0..40u8 {
            table.request(i % 3, Ipv4Addr::new(10, 0, 1, i));
        }
        let taken = table.take_requests();
        assert_eq!(taken.len(), 40);
        assert!(taken
            .iter()
            .all(|&(iface, a)| iface == a.octets()[3] % 3 && a.octets()[2] == 1));
    }
}
