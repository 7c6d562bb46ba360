//! The thin socket layer: probes leave from the WAN itself (every socket bound to the
//! WAN's device and source address), replies are parsed defensively, and carrier changes
//! come from rtnetlink.
//!
//! - [`icmp`]: one raw ICMP socket per WAN, echo requests with the WAN's identifier;
//! - [`conn`]: TCP connect and HTTP GET probes, one non-blocking connection per probe;
//! - [`dns`]: DNS `A` queries over UDP, one socket per probe;
//! - [`carrier`]: link notifications and the initial carrier of every device;
//! - `*_wire`: the byte formats, pure functions tested with static bytes and proptests.
//!
//! Invariants: nothing here panics on what the network sends; a socket error is returned
//! to the caller (the runner counts it as a failed probe), never swallowed.

pub mod carrier;
pub mod conn;
pub mod dns;
pub mod dns_wire;
pub mod http_wire;
pub mod icmp;
pub mod icmp_wire;

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};

use socket2::{Domain, Protocol, Socket, Type};

/// Where a WAN's probes leave from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WanLink {
    /// The WAN's network device (`SO_BINDTODEVICE`).
    pub device: String,
    /// The WAN's address: the source of every probe.
    pub source: Ipv4Addr,
    /// The ICMP echo identifier of this WAN's probes (outside fwd's NAT id range; fwd draws
    /// it at random for each run).
    pub icmp_ident: u16,
    /// Interfaces an echo reply may arrive on, besides `device` (under fwd: the WAN's TUN,
    /// through which fwd hands the kernel what it does not translate). A reply that arrives
    /// elsewhere (a LAN host forging the target's address) is not counted.
    pub reply_devices: Vec<String>,
}

/// A non-blocking IPv4 socket bound to `link`'s device and source address (port 0: the
/// kernel picks one).
pub fn bound_socket(link: &WanLink, ty: Type, protocol: Protocol) -> io::Result<Socket> {
    let socket = Socket::new(Domain::IPV4, ty, Some(protocol))?;
    socket.set_nonblocking(true)?;
    socket.set_cloexec(true)?;
    socket.bind_device(Some(link.device.as_bytes()))?;
    socket.bind(&SocketAddrV4::new(link.source, 0).into())?;
    Ok(socket)
}
