//! Policy routing rules: the [`RuleSpec`] fwd installs, its netlink message and its
//! `ip rule`-style description, and what fwd needs to read off rules the kernel dumps
//! (priority, table, owner, "is this the `lookup local` rule").

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::ops::RangeInclusive;

use ipnet::Ipv4Net;
use netlink_packet_route::route::RouteProtocol;
use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleMessage, RulePortRange};
use netlink_packet_route::{AddressFamily, IpProtocol};

use super::FWD_PROTO;

/// The kernel's `local` table (addresses of the box itself, broadcast).
pub const TABLE_LOCAL: u32 = 255;
/// The kernel's `main` table.
pub const TABLE_MAIN: u32 = 254;

/// The transport protocol a rule selects on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
    Icmp,
}

impl Proto {
    fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Icmp => "icmp",
        }
    }

    fn netlink(self) -> IpProtocol {
        match self {
            Proto::Tcp => IpProtocol::Tcp,
            Proto::Udp => IpProtocol::Udp,
            Proto::Icmp => IpProtocol::Icmp,
        }
    }
}

/// What a rule does with the packets it selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// `lookup T`: route by table T.
    Lookup(u32),
    /// `blackhole`: drop silently.
    Blackhole,
}

/// One IPv4 rule: `pref P [iif DEV] [from A/32] [to NET] [ipproto P [dport LO-HI]]
/// lookup T|blackhole [suppress_prefixlength N]`. Every rule fwd adds carries protocol
/// [`FWD_PROTO`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleSpec {
    pub pref: u32,
    pub iif: Option<String>,
    pub from: Option<Ipv4Addr>,
    pub to: Option<Ipv4Net>,
    pub proto: Option<Proto>,
    pub dports: Option<RangeInclusive<u16>>,
    pub action: Action,
    pub suppress_prefixlength: Option<u32>,
}

impl RuleSpec {
    /// `pref P lookup T`, no selector.
    pub fn lookup(pref: u32, table: u32) -> RuleSpec {
        RuleSpec {
            pref,
            iif: None,
            from: None,
            to: None,
            proto: None,
            dports: None,
            action: Action::Lookup(table),
            suppress_prefixlength: None,
        }
    }

    /// The message for RTM_NEWRULE and RTM_DELRULE (the kernel deletes the rule that
    /// matches every attribute given).
    pub fn message(&self) -> RuleMessage {
        let mut msg = RuleMessage::default();
        msg.header.family = AddressFamily::Inet;
        let attrs = &mut msg.attributes;
        attrs.push(RuleAttribute::Priority(self.pref));
        match self.action {
            Action::Lookup(table) => {
                msg.header.action = RuleAction::ToTable;
                msg.header.table = table_byte(table);
                attrs.push(RuleAttribute::Table(table));
            }
            Action::Blackhole => msg.header.action = RuleAction::Blackhole,
        }
        attrs.push(RuleAttribute::Protocol(RouteProtocol::Other(FWD_PROTO)));
        if let Some(iif) = &self.iif {
            attrs.push(RuleAttribute::Iifname(iif.clone()));
        }
        if let Some(from) = self.from {
            msg.header.src_len = 32;
            attrs.push(RuleAttribute::Source(IpAddr::V4(from)));
        }
        if let Some(to) = self.to {
            msg.header.dst_len = to.prefix_len();
            attrs.push(RuleAttribute::Destination(IpAddr::V4(to.network())));
        }
        if let Some(proto) = self.proto {
            attrs.push(RuleAttribute::IpProtocol(proto.netlink()));
        }
        if let Some(ports) = &self.dports {
            attrs.push(RuleAttribute::DestinationPortRange(RulePortRange {
                start: *ports.start(),
                end: *ports.end(),
            }));
        }
        if let Some(len) = self.suppress_prefixlength {
            attrs.push(RuleAttribute::SuppressPrefixLen(len));
        }
        msg
    }
}

impl fmt::Display for RuleSpec {
    /// `rule pref 100 iif wan0 to 10.0.0.2/32 ipproto tcp dport 20000-29999 lookup 4300`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rule pref {}", self.pref)?;
        if let Some(iif) = &self.iif {
            write!(f, " iif {iif}")?;
        }
        if let Some(from) = self.from {
            write!(f, " from {from}/32")?;
        }
        if let Some(to) = self.to {
            write!(f, " to {to}")?;
        }
        if let Some(proto) = self.proto {
            write!(f, " ipproto {}", proto.name())?;
        }
        if let Some(ports) = &self.dports {
            write!(f, " dport {}-{}", ports.start(), ports.end())?;
        }
        match self.action {
            Action::Lookup(table) => write!(f, " lookup {}", table_name(table))?,
            Action::Blackhole => write!(f, " blackhole")?,
        }
        if let Some(len) = self.suppress_prefixlength {
            write!(f, " suppress_prefixlength {len}")?;
        }
        Ok(())
    }
}

/// The header's 8-bit table field: the table itself when it fits, else `RT_TABLE_UNSPEC`
/// (the u32 table attribute, always sent, carries it).
pub fn table_byte(table: u32) -> u8 {
    u8::try_from(table).unwrap_or(0)
}

/// `local`, `main`, or the number.
pub fn table_name(table: u32) -> String {
    match table {
        TABLE_LOCAL => "local".to_string(),
        TABLE_MAIN => "main".to_string(),
        n => n.to_string(),
    }
}

/// A rule's priority (the kernel omits the attribute for priority 0).
pub fn priority(msg: &RuleMessage) -> u32 {
    msg.attributes
        .iter()
        .find_map(|a| match a {
            RuleAttribute::Priority(p) => Some(*p),
            _ => None,
        })
        .unwrap_or(0)
}

/// The table a rule looks up: the u32 attribute, else the header byte.
pub fn table(msg: &RuleMessage) -> u32 {
    msg.attributes
        .iter()
        .find_map(|a| match a {
            RuleAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(msg.header.table))
}

/// Whether fwd added this rule (it carries protocol [`FWD_PROTO`]).
pub fn is_ours(msg: &RuleMessage) -> bool {
    msg.attributes
        .iter()
        .any(|a| matches!(a, RuleAttribute::Protocol(p) if u8::from(*p) == FWD_PROTO))
}

/// Whether this is an IPv4 "all traffic → local table" rule (`pref N lookup local`, no
/// selector).
pub fn is_local_lookup(msg: &RuleMessage) -> bool {
    msg.header.family == AddressFamily::Inet
        && msg.header.action == RuleAction::ToTable
        && table(msg) == TABLE_LOCAL
        && msg.header.src_len == 0
        && msg.header.dst_len == 0
        && !msg.attributes.iter().any(is_selector)
}

fn is_selector(attr: &RuleAttribute) -> bool {
    !matches!(
        attr,
        RuleAttribute::Priority(_)
            | RuleAttribute::Table(_)
            | RuleAttribute::Protocol(_)
            | RuleAttribute::SuppressPrefixLen(_)
            | RuleAttribute::SuppressIfGroup(_)
    )
}

/// A dumped rule in `ip rule` terms, for logs and error messages.
pub fn describe_dumped(msg: &RuleMessage) -> String {
    let mut iif = String::new();
    let mut oif = String::new();
    let mut from = String::new();
    let mut to = String::new();
    let mut ipproto = String::new();
    let mut ports = String::new();
    let mut fwmark = String::new();
    let mut suppress = String::new();
    let mut proto = String::new();
    for attr in &msg.attributes {
        match attr {
            RuleAttribute::Iifname(n) => iif = format!(" iif {n}"),
            RuleAttribute::Oifname(n) => oif = format!(" oif {n}"),
            RuleAttribute::Source(a) => from = format!(" from {a}/{}", msg.header.src_len),
            RuleAttribute::Destination(a) => to = format!(" to {a}/{}", msg.header.dst_len),
            RuleAttribute::IpProtocol(p) => {
                ipproto = match u8::from(*p) {
                    6 => " ipproto tcp".to_string(),
                    17 => " ipproto udp".to_string(),
                    1 => " ipproto icmp".to_string(),
                    n => format!(" ipproto {n}"),
                }
            }
            RuleAttribute::SourcePortRange(r) => {
                ports.push_str(&format!(" sport {}-{}", r.start, r.end))
            }
            RuleAttribute::DestinationPortRange(r) => {
                ports.push_str(&format!(" dport {}-{}", r.start, r.end))
            }
            RuleAttribute::FwMark(m) => fwmark = format!(" fwmark {m:#x}"),
            RuleAttribute::SuppressPrefixLen(n) if *n != u32::MAX => {
                suppress = format!(" suppress_prefixlength {n}")
            }
            RuleAttribute::Protocol(p) => proto = format!(" proto {}", protocol_name(*p)),
            _ => {}
        }
    }
    let action = match msg.header.action {
        RuleAction::ToTable => format!(" lookup {}", table_name(table(msg))),
        RuleAction::Blackhole => " blackhole".to_string(),
        other => format!(" action {}", u8::from(other)),
    };
    format!(
        "pref {}{iif}{oif}{from}{to}{ipproto}{ports}{fwmark}{action}{suppress}{proto}",
        priority(msg)
    )
}

/// A protocol as `ip` prints it: its name, or its number (`245`).
pub fn protocol_name(p: RouteProtocol) -> String {
    match p {
        RouteProtocol::Other(n) => n.to_string(),
        named => named.to_string(),
    }
}
