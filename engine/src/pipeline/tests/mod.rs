//! Pipeline tests against an in-memory router (see [`harness`]).

#![allow(clippy::unwrap_used)]

mod behaviour;
mod express;
mod forward_hairpin;
mod forwards;
mod golden;
mod harness;
mod host_caps;
mod ipv6;
mod packets;
mod props;
mod tcp_checks;
mod wan_down;
