//! Routes in fwd's tables: the [`RouteSpec`] fwd installs (a default route, either into a
//! TUN or via a WAN's gateway), its netlink message and description, and what fwd reads
//! off dumped routes (table, owner).

use std::fmt;
use std::net::Ipv4Addr;

use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::AddressFamily;

use super::rules::{protocol_name, table_byte};
use super::FWD_PROTO;

/// `default dev DEV scope link table T` (no gateway), or `default via G dev DEV onlink
/// table T`. Every route fwd adds carries protocol [`FWD_PROTO`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteSpec {
    pub table: u32,
    pub dev: String,
    pub via: Option<Ipv4Addr>,
}

impl RouteSpec {
    /// The message for RTM_NEWROUTE and RTM_DELROUTE; `oif` is the index of `dev`.
    pub fn message(&self, oif: u32) -> RouteMessage {
        let mut msg = RouteMessage::default();
        msg.header.address_family = AddressFamily::Inet;
        msg.header.destination_prefix_length = 0;
        msg.header.table = table_byte(self.table);
        msg.header.protocol = RouteProtocol::Other(FWD_PROTO);
        msg.header.kind = RouteType::Unicast;
        msg.attributes.push(RouteAttribute::Table(self.table));
        match self.via {
            Some(gateway) => {
                msg.header.scope = RouteScope::Universe;
                msg.header.flags = RouteFlags::Onlink;
                msg.attributes
                    .push(RouteAttribute::Gateway(RouteAddress::Inet(gateway)));
            }
            None => msg.header.scope = RouteScope::Link,
        }
        msg.attributes.push(RouteAttribute::Oif(oif));
        msg
    }
}

impl fmt::Display for RouteSpec {
    /// `route table 4201 default via 10.0.0.1 dev wan0 onlink`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.via {
            Some(g) => write!(
                f,
                "route table {} default via {g} dev {} onlink",
                self.table, self.dev
            ),
            None => write!(
                f,
                "route table {} default dev {} scope link",
                self.table, self.dev
            ),
        }
    }
}

/// The table of a dumped route: the u32 attribute, else the header byte.
pub fn table(msg: &RouteMessage) -> u32 {
    msg.attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(msg.header.table))
}

/// Whether fwd added this route (protocol [`FWD_PROTO`]).
pub fn is_ours(msg: &RouteMessage) -> bool {
    u8::from(msg.header.protocol) == FWD_PROTO
}

/// A dumped IPv4 route in `ip route` terms, for logs and error messages.
pub fn describe_dumped(msg: &RouteMessage) -> String {
    let mut dst = "default".to_string();
    let mut s = String::new();
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Destination(RouteAddress::Inet(a)) => {
                dst = format!("{a}/{}", msg.header.destination_prefix_length)
            }
            RouteAttribute::Gateway(RouteAddress::Inet(g)) => s.push_str(&format!(" via {g}")),
            RouteAttribute::Oif(i) => s.push_str(&format!(" dev #{i}")),
            _ => {}
        }
    }
    format!(
        "route table {} {dst}{s} proto {}",
        table(msg),
        protocol_name(msg.header.protocol)
    )
}
