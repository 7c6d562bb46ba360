//! Link health for fwd: the prober layer.
//!
//! - [`core`] is sans-I/O: per-WAN probe configuration, the rolling window of results
//!   (latency, jitter, loss), the state machine with hysteresis and quality thresholds, and
//!   the ring of state-change events. Time comes in as an argument; nothing here does a
//!   syscall, so all of it is tested without root.
//!
//! Invariants: a WAN's published state changes only through an [`core::Event`], and every
//! event carries the figures it was decided on.

pub mod core;
