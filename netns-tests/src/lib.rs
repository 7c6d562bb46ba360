//! End-to-end test topologies for fwd in Linux network namespaces.
//!
//! A [`Topology`] is a small Internet in namespaces: LAN hosts, a router (where fwd runs),
//! two or three ISPs and an "internet" with servers (nginx, iperf3, dnsmasq), addressed
//! per the fixed plan in [`plan`]. ISPs route without NAT, so a server sees the router's
//! WAN address and a test can tell which WAN carried a connection. The router has no
//! default route: fwd steers, or [`Topology::router_kernel_baseline`] makes the kernel the
//! multi-WAN router for comparison. Clients ([`Netns::curl`], [`Netns::ping`],
//! [`Netns::dig`], [`Netns::iperf3_tcp`], [`Netns::traceroute`], ...) run in any namespace,
//! normally a LAN host; link faults come from [`Topology::set_wan_link`] and
//! [`Topology::blackhole_isp`].
//!
//! Invariants:
//! - **Unique names.** Every namespace is named `fwt{pid}x{n}-{role}` (n counts topologies
//!   within the process), so tests run in parallel, also across processes; interfaces are
//!   created straight inside their namespaces and never appear in the root namespace.
//! - **Everything is removed.** Dropping a [`Topology`] (also while unwinding from a panic,
//!   or when building fails half-way) kills and reaps the processes it spawned, kills
//!   anything else left in its namespaces (`ip netns pids`), deletes the namespaces and its
//!   work directory. Leftovers of killed test processes are swept at the next build.
//! - **Bounded waits.** Every command runs with a deadline and is killed past it; waits
//!   for a condition poll every 20 ms up to a deadline ([`wait_until`]); clients pass
//!   their own timeouts (`curl --max-time`, `ping -W 1`, `dig +time=1`, ...).
//! - **Traffic stays inside**: only addresses of namespaces this crate created are used.
//!
//! Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and the tools of `scripts/netns-deps`; tests
//! call [`require_root_or_skip`] first.

mod baseline;
pub mod bench;
mod clients;
pub mod cmd;
pub mod demo;
mod error;
pub mod fwd;
mod links;
pub mod names;
mod netns;
pub mod plan;
mod privilege;
mod servers;
pub mod spoof;
pub mod stream;
mod sys;
mod topology;
pub mod wait;
mod workdir;

pub use baseline::{
    baseline_rates, measure_rates, BaselineMode, Rates, BASELINE_TABLE, FLOOD_PAYLOAD,
};
pub use clients::{
    parse_iperf3_tcp, parse_iperf3_udp, parse_ping, parse_traceroute, PingStats, UdpRate,
    CURL_MAX_TIME,
};
pub use error::{Error, Result};
pub use fwd::{fwd_binary, fwdctl_binary, Fwd, FwdOptions};
pub use links::BLACKHOLE_TABLE;
pub use netns::{remove_namespace, Netns};
pub use privilege::{
    debian_package, is_root, require_root_or_skip, require_tools_or_skip, which, REQUIRE_ENV,
};
pub use servers::{
    bytes_url, parse_dnsmasq_log, parse_nginx_log, NGINX_FILE_SIZES, NGINX_INDEX_BODY,
};
pub use topology::{Topology, TopologyBuilder};
pub use wait::wait_until;
pub use workdir::WorkDir;
