//! The link-state board: one atomic per WAN, written by whoever measures links (the prober,
//! `fwdctl wan disable`), read by workers once per batch without a lock.

use std::sync::atomic::{AtomicU8, Ordering};

use balancer::LinkState;

use crate::pipeline::counters::MAX_WANS;

#[derive(Debug)]
pub struct HealthBoard {
    states: Box<[AtomicU8]>,
}

fn encode(state: LinkState) -> u8 {
    match state {
        LinkState::Up => 0,
        LinkState::Degraded => 1,
        LinkState::Down => 2,
    }
}

fn decode(value: u8) -> LinkState {
    match value {
        0 => LinkState::Up,
        1 => LinkState::Degraded,
        _ => LinkState::Down,
    }
}

impl HealthBoard {
    /// A board for `wans` links, all in `initial` state.
    pub fn new(wans: usize, initial: LinkState) -> HealthBoard {
        HealthBoard {
            states: (0..wans.min(MAX_WANS))
                .map(|_| AtomicU8::new(encode(initial)))
                .collect(),
        }
    }

    pub fn set(&self, wan: usize, state: LinkState) {
        if let Some(s) = self.states.get(wan) {
            s.store(encode(state), Ordering::Release);
        }
    }

    pub fn get(&self, wan: usize) -> LinkState {
        self.states
            .get(wan)
            .map_or(LinkState::Down, |s| decode(s.load(Ordering::Acquire)))
    }

    pub fn len(&self) -> usize {
        self.states.len()
    }

    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    /// Copies the states into `out` (one per WAN; WANs beyond the board read as down).
    pub fn snapshot(&self, out: &mut [LinkState; MAX_WANS]) {
        for (i, slot) in out.iter_mut().enumerate() {
            *slot = self.get(i);
        }
    }
}
