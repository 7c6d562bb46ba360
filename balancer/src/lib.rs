//! # balancer — policy layer of fwd (sans-I/O)
//!
//! Decides, for the first packet of a new outbound flow, where the flow
//! goes: the first matching rule's action, a WAN group's member chosen by
//! tier, health and weight, or a sticky binding.
//!
//! Owns:
//! - the [`Policy`]: WAN names, [`Group`]s (members with tier and weight,
//!   last resort) and ordered [`Rule`]s, validated once ([`PolicyError`]) and
//!   immutable afterwards, shared by workers via `Arc`;
//! - per-worker [`Selector`]s: smooth weighted round robin counters, one per
//!   group member;
//! - the shared [`StickyTable`]: (rule, source address) → WAN, sharded,
//!   preallocated, bounded;
//! - the link-state view: a `&[LinkState]` indexed by `WanId.0` that the
//!   caller passes in (missing = `Down`);
//! - [`Explanation`]s for `fwdctl explain`.
//!
//! Does no parsing, no I/O, no NAT, reads no clock (`now` is an argument),
//! spawns no threads, logs nothing.
//!
//! Invariants:
//! - a [`Decision::Wan`] names a usable WAN (`Up` or `Degraded`) of the
//!   active tier, and that WAN is in its `eligible` set;
//! - the active tier is the lowest tier with a usable member; within it
//!   `Up` members are preferred over `Degraded` ones;
//! - over `total weight × k` decisions on an unchanged candidate set from
//!   zeroed counters, each candidate is picked exactly `weight × k` times;
//! - [`Selector::decide`] allocates nothing and locks at most one sticky
//!   shard (only for sticky rules); [`Selector::explain`] changes nothing;
//! - no input makes any function panic.

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod decision;
mod error;
mod explain;
mod group;
mod health;
mod ids;
mod matcher;
mod policy;
mod recall;
mod selector;
mod sticky;
mod swrr;

pub use decision::{Decision, DecisionKind};
pub use error::PolicyError;
pub use explain::Explanation;
pub use group::{Group, LastResort, Member};
pub use health::{state_of, LinkState};
pub use ids::{GroupId, RuleId, WanId, WanSet, WanSetIter, MAX_WANS};
pub use matcher::{FlowInfo, Match, PortRange, PROTO_ICMP, PROTO_TCP, PROTO_UDP};
pub use policy::{Action, Policy, Rule, MAX_GROUPS, MAX_RULES};
pub use selector::Selector;
pub use sticky::{StickyEntry, StickyTable};
