//! The link-state view: what the balancer knows about each WAN's health.
//!
//! The prober (outside this crate) publishes one [`LinkState`] per WAN; the
//! engine passes them in as a slice indexed by `WanId.0`. A WAN missing from
//! the slice is treated as [`LinkState::Down`].

use crate::ids::WanId;

/// Health of one WAN as published by the prober.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    /// Healthy: preferred.
    Up,
    /// Usable but poor (latency or loss over threshold): used only when no
    /// member of the same tier is `Up`.
    Degraded,
    /// Not usable: never picked for a new flow.
    Down,
}

impl LinkState {
    /// Whether new flows may use a link in this state.
    pub fn is_usable(self) -> bool {
        !matches!(self, LinkState::Down)
    }

    /// Lower-case name for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::Up => "up",
            LinkState::Degraded => "degraded",
            LinkState::Down => "down",
        }
    }
}

/// The state of `wan` in `health`; missing entries are `Down`.
pub fn state_of(health: &[LinkState], wan: WanId) -> LinkState {
    health
        .get(usize::from(wan.0))
        .copied()
        .unwrap_or(LinkState::Down)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_is_down() {
        let h = [LinkState::Up, LinkState::Degraded];
        assert_eq!(state_of(&h, WanId(0)), LinkState::Up);
        assert_eq!(state_of(&h, WanId(1)), LinkState::Degraded);
        assert_eq!(state_of(&h, WanId(2)), LinkState::Down);
        assert_eq!(state_of(&[], WanId(255)), LinkState::Down);
    }

    #[test]
    fn usable() {
        assert!(LinkState::Up.is_usable());
        assert!(LinkState::Degraded.is_usable());
        assert!(!LinkState::Down.is_usable());
    }
}
