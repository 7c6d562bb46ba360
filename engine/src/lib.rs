//! # engine — packets, the pipeline and I/O
//!
//! The top layer of fwd. It owns:
//! - [`config`]: the TOML configuration, parsed and validated whole;
//! - [`plan`]: the config compiled for the data plane (numbered interfaces, balancer policy,
//!   [`forwards`]: the port forwards);
//! - [`tables`]: the long-lived shared state (connection, fragment and sticky tables);
//! - [`dataplane`]: plan, tables and link-state board together, as workers share them;
//! - [`packet`]: parsing, validation, in-place NAT rewriting, router-generated ICMP errors;
//! - [`pipeline`]: a worker's batch processing (fast path, slow path, named drop counters);
//! - [`device`]: the batched I/O boundary and its backends (in memory, TUN); [`forwarder`]: a
//!   worker's step;
//! - [`steering`]: the kernel routes, rules and sysctls that send traffic through the TUNs;
//! - [`daemon`]: `fwd run`: threads, signals, reload, the control socket's handler.
//!
//! Invariants: the per-packet path allocates nothing, logs nothing and takes no global lock
//! (at most one connection-table shard lock per packet, none on most hits); every frame not
//! forwarded is counted under a [`pipeline::DropReason`]; time is an argument everywhere below
//! the worker loop. Only the I/O backends (`device::tun`, `device::prefetch`, `steering`) may
//! use `unsafe`.

pub mod config;
pub mod daemon;
pub mod dataplane;
pub mod demo;
pub mod device;
pub mod forwarder;
pub mod forwards;
pub mod health;
pub mod neighbors;
pub mod packet;
pub mod pipeline;
pub mod plan;
pub mod steering;
pub mod tables;
