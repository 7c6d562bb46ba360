//! # ctl — the control protocol of fwd (layer: control plane, no packet path)
//!
//! Defined once, used by both ends: the daemon serves it (the engine's control thread owns a
//! [`ControlServer`] and answers each [`Request`] with a handler `FnMut(Request) -> Response`)
//! and `fwdctl` speaks it through a [`Client`]. Nothing here touches packets, the connection
//! table or policy: the daemon fills the replies.
//!
//! Owns:
//! - [`protocol`]: the wire types ([`Request`], [`Response`], [`Reply`] and the reply
//!   structs) and their JSON form;
//! - [`server`]: the Unix stream socket of the daemon (bind with stale-socket handling,
//!   mode 0660, a mio loop driven one round per [`ControlServer::poll`]);
//! - [`client`]: a blocking client with timeouts;
//! - [`render`]: the human tables `fwdctl` prints (the binary in `src/bin/fwdctl.rs` only
//!   parses arguments, calls the client and prints).
//!
//! Invariants:
//! - JSON lines: one request object per line from the client, exactly one response object
//!   per line back, in order; a client may send several requests on one connection;
//! - a malformed request (bad JSON, unknown `cmd`, wrong or unknown fields) gets an error
//!   response and its connection stays open; nothing a client sends makes the server panic,
//!   close another client or stop;
//! - requests are bounded: a line longer than [`MAX_REQUEST_BYTES`] gets an error response
//!   and its connection is closed; the server buffers at most one line and one pending
//!   response per client, and serves a bounded number of clients;
//! - the socket file is removed on drop only if it is still the one this server bound.

pub mod client;
pub mod protocol;
pub mod render;
pub mod server;

pub use client::{Client, ClientError, DEFAULT_TIMEOUT};
pub use protocol::{
    Counter, CountersReply, EventList, EventRecord, ExplainReply, Flow, FlowsReply, ForwardEntry,
    ParseProtoError, Proto, ReloadReply, Reply, Request, Response, RuleEntry, RulesReply,
    StatusReply, Totals, WanAdminResult, WanHealth, WanStatus, DEFAULT_FLOW_LIMIT,
    DEFAULT_SOCKET_PATH, MAX_REQUEST_BYTES,
};
pub use server::{BindError, ControlServer};
