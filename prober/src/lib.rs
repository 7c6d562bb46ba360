//! Link health for fwd: the prober layer.
//!
//! - [`core`] is sans-I/O: per-WAN probe configuration, the rolling window of results
//!   (latency, jitter, loss), the state machine with hysteresis and quality thresholds, and
//!   the ring of state-change events. Time comes in as an argument; nothing here does a
//!   syscall, so all of it is tested without root.
//! - [`net`] is the thin socket layer: ICMP echo, TCP connect, HTTP GET and DNS probes
//!   leaving from the WAN's device and address, and carrier from rtnetlink.
//! - [`run`] is what the daemon calls: [`run::ProberHandle`] runs the core over the
//!   sockets on a thread of its own, logs every event, runs the hook and tells the
//!   daemon about every state change.
//!
//! Invariants: a WAN's published state changes only through an [`core::Event`], and every
//! event carries the figures it was decided on.

#![warn(missing_docs)]

pub mod core;
pub mod net;
pub mod run;
