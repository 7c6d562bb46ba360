//! The AF_XDP backend: fwd's XDP program steers data-plane frames into AF_XDP sockets that
//! share one UMEM per worker; frames are rewritten in place and leave by the egress socket's
//! TX ring, without a copy in fwd.

pub mod program;
