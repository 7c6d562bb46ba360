//! The runtime form of a validated [`Config`]: interfaces numbered for the data plane, the
//! compiled balancer [`Policy`], and per-rule hit counters. Immutable once built; a reload
//! builds a new plan and swaps it in whole. Long-lived state (sessions, mappings, sticky
//! entries) lives in [`crate::tables::Tables`] and survives reloads.

use std::net::Ipv4Addr;
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicU64, Ordering};

use balancer::{
    Action, GroupId, LastResort, Match, Member, Policy, PolicyError, PortRange, Rule, WanId,
};
use ipnet::Ipv4Net;

use crate::config::{self, Config, OnWanDown};
use crate::forwards::Forwards;
use crate::neighbors::Neighbors;

/// What an interface is to the router.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The n-th LAN of the plan.
    Lan(usize),
    /// The n-th WAN of the plan (its index in the balancer and the connection table).
    Wan(usize),
}

/// An interface the data plane sends and receives on. Its index in [`Plan::interfaces`] is
/// the interface id frames carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    /// The name in the config (`lan`, `isp1`).
    pub name: String,
    /// The operating system's interface name.
    pub os_name: String,
    pub role: Role,
    /// The router's own address on it.
    pub address: Ipv4Addr,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LanPlan {
    pub iface: u8,
    pub address: Ipv4Addr,
    /// The LAN's subnet first, then extra subnets reached through it.
    pub subnets: Vec<Ipv4Net>,
    /// Whether traffic from a WAN may reach these subnets.
    pub inbound: config::Inbound,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WanPlan {
    pub iface: u8,
    pub address: Ipv4Addr,
    pub gateway: Ipv4Addr,
    pub nat_ports: RangeInclusive<u16>,
}

/// Where a destination address lies, as far as the router is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Destination {
    /// The address of WAN n (traffic for the box, or hairpin to a LAN endpoint's mapping).
    WanAddress(usize),
    /// Another address of the router itself.
    Router,
    /// Inside LAN n's subnets.
    Lan(usize),
    /// Anywhere else: the Internet.
    Beyond,
}

/// One prefix of the destination table: addresses first (as /32), then LAN subnets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Prefix {
    network: u32,
    mask: u32,
    destination: Destination,
}

/// Everything the pipeline reads that comes from the config.
#[derive(Debug)]
pub struct Plan {
    pub interfaces: Vec<Interface>,
    pub lans: Vec<LanPlan>,
    pub wans: Vec<WanPlan>,
    pub policy: Policy,
    /// What happens to flows of a WAN that went down.
    pub on_wan_down: OnWanDown,
    destinations: Vec<Prefix>,
    /// The first octets some prefix of `destinations` covers (bit n: octet n).
    destination_octets: [u64; 4],
    rule_hits: Box<[AtomicU64]>,
    /// Port forwards from the WANs to LAN servers.
    pub forwards: Forwards,
}

/// Rule number shown for hairpin sessions (they are created by no rule).
pub const HAIRPIN_RULE: u16 = u16::MAX;

impl Plan {
    /// Numbers the interfaces (LANs first, then WANs) and compiles the policy.
    pub fn from_config(cfg: &Config) -> Result<Plan, PolicyError> {
        let mut interfaces = Vec::with_capacity(cfg.lans.len() + cfg.wans.len());
        let mut lans = Vec::with_capacity(cfg.lans.len());
        let mut wans = Vec::with_capacity(cfg.wans.len());
        for (i, lan) in cfg.lans.iter().enumerate() {
            let iface = interface_id(interfaces.len());
            interfaces.push(Interface {
                name: lan.name.clone(),
                os_name: lan.interface.clone(),
                role: Role::Lan(i),
                address: lan.address,
            });
            let mut subnets = vec![lan.subnet];
            subnets.extend(lan.extra_subnets.iter().copied());
            lans.push(LanPlan {
                iface,
                address: lan.address,
                subnets,
                inbound: lan.inbound,
            });
        }
        for (i, wan) in cfg.wans.iter().enumerate() {
            let iface = interface_id(interfaces.len());
            interfaces.push(Interface {
                name: wan.name.clone(),
                os_name: wan.interface.clone(),
                role: Role::Wan(i),
                address: wan.address,
            });
            wans.push(WanPlan {
                iface,
                address: wan.address,
                gateway: wan.gateway,
                nat_ports: wan.nat_ports.clone(),
            });
        }
        let policy = compile_policy(cfg)?;
        let rule_hits = (0..policy.rules().len())
            .map(|_| AtomicU64::new(0))
            .collect();
        let destinations = destination_table(&interfaces, &lans);
        let destination_octets = first_octets(&destinations);
        Ok(Plan {
            interfaces,
            lans,
            wans,
            policy,
            on_wan_down: cfg.health.on_wan_down,
            destinations,
            destination_octets,
            rule_hits,
            forwards: Forwards::new(&cfg.forwards),
        })
    }

    pub fn interface(&self, id: u8) -> Option<&Interface> {
        self.interfaces.get(usize::from(id))
    }

    /// Where `ip` lies: beyond, at once, if no prefix of the table covers its first octet (a
    /// packet to the Internet, usually); else one pass over a flat prefix table (the router's
    /// addresses, then the LAN subnets).
    #[inline]
    pub fn destination(&self, ip: Ipv4Addr) -> Destination {
        let first = usize::from(ip.octets()[0]);
        let covered = self
            .destination_octets
            .get(first / 64)
            .is_some_and(|bits| bits & (1 << (first % 64)) != 0);
        if !covered {
            return Destination::Beyond;
        }
        self.scan_destinations(ip)
    }

    /// [`destination`](Self::destination) by the pass over the table alone.
    #[inline]
    fn scan_destinations(&self, ip: Ipv4Addr) -> Destination {
        let ip = u32::from(ip);
        self.destinations
            .iter()
            .find(|p| ip & p.mask == p.network)
            .map_or(Destination::Beyond, |p| p.destination)
    }

    /// The LAN that reaches `ip`.
    #[inline]
    pub fn lan_for(&self, ip: Ipv4Addr) -> Option<&LanPlan> {
        self.lans
            .iter()
            .find(|l| l.subnets.iter().any(|n| n.contains(&ip)))
    }

    /// Whether `src` may send through fwd from interface `ingress`: it lies in the subnets of
    /// the LAN on that interface.
    #[inline]
    pub fn lan_source_ok(&self, ingress: u8, src: Ipv4Addr) -> bool {
        let lan = match self.interface(ingress).map(|i| i.role) {
            Some(Role::Lan(l)) => self.lans.get(l),
            _ => None,
        };
        lan.is_some_and(|l| l.subnets.iter().any(|n| n.contains(&src)))
    }

    /// The next hop for a packet to `dst` leaving by interface `egress`: a WAN's configured
    /// gateway; on a LAN, the gateway of the route to `dst` out of that LAN (`routes`: the
    /// kernel's, so a host in an extra subnet is reached through the LAN router that serves
    /// it), else the destination itself.
    #[inline]
    pub fn next_hop(&self, egress: u8, dst: Ipv4Addr, routes: &dyn Neighbors) -> Option<Ipv4Addr> {
        match self.interface(egress)?.role {
            Role::Wan(w) => Some(self.wans.get(w)?.gateway),
            Role::Lan(_) => Some(routes.gateway(egress, dst).unwrap_or(dst)),
        }
    }

    /// Counts a new flow for a rule (slow path only).
    pub fn count_rule_hit(&self, rule: u16) {
        if let Some(c) = self.rule_hits.get(usize::from(rule)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn rule_hits(&self, rule: usize) -> u64 {
        self.rule_hits
            .get(rule)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

fn destination_table(interfaces: &[Interface], lans: &[LanPlan]) -> Vec<Prefix> {
    let own = interfaces.iter().map(|i| Prefix {
        network: u32::from(i.address),
        mask: u32::MAX,
        destination: match i.role {
            Role::Wan(w) => Destination::WanAddress(w),
            Role::Lan(_) => Destination::Router,
        },
    });
    let subnets = lans.iter().enumerate().flat_map(|(l, lan)| {
        lan.subnets.iter().map(move |net| Prefix {
            network: u32::from(net.network()),
            mask: u32::from(net.netmask()),
            destination: Destination::Lan(l),
        })
    });
    own.chain(subnets).collect()
}

/// The first octets some prefix of `table` covers, bit n of the 256-bit set for octet n.
fn first_octets(table: &[Prefix]) -> [u64; 4] {
    let mut bits = [0u64; 4];
    for p in table {
        let (low, high) = (p.network >> 24, (p.network | !p.mask) >> 24);
        for octet in low..=high {
            if let Some(word) = bits.get_mut(octet as usize / 64) {
                *word |= 1 << (octet % 64);
            }
        }
    }
    bits
}

fn interface_id(index: usize) -> u8 {
    // The config allows at most 250 interfaces; saturate rather than wrap.
    u8::try_from(index).unwrap_or(u8::MAX)
}

fn wan_id(index: usize) -> WanId {
    WanId(u8::try_from(index).unwrap_or(u8::MAX))
}

fn compile_policy(cfg: &Config) -> Result<Policy, PolicyError> {
    let wan_names = cfg.wans.iter().map(|w| w.name.clone()).collect();
    let groups = cfg
        .groups
        .iter()
        .map(|g| balancer::Group {
            name: g.name.clone(),
            members: g
                .members
                .iter()
                .map(|m| Member {
                    wan: wan_id(m.wan),
                    tier: m.tier,
                    weight: m.weight,
                })
                .collect(),
            last_resort: match g.last_resort {
                config::LastResort::Unreachable => LastResort::Unreachable,
                config::LastResort::Blackhole => LastResort::Blackhole,
                config::LastResort::MainTable => LastResort::MainTable,
            },
        })
        .collect();
    let ports = |ranges: &[RangeInclusive<u16>]| {
        ranges
            .iter()
            .map(|r| PortRange {
                first: *r.start(),
                last: *r.end(),
            })
            .collect()
    };
    let rules = cfg
        .rules
        .iter()
        .map(|r| Rule {
            name: r.name.clone(),
            matches: Match {
                src: r.src.clone(),
                dst: r.dst.clone(),
                proto: r.proto,
                src_ports: ports(&r.src_ports),
                dst_ports: ports(&r.dst_ports),
                ingress: r.ingress.iter().map(|&l| interface_id(l)).collect(),
            },
            action: match r.action {
                config::RuleAction::Group(g) => {
                    Action::Group(GroupId(u16::try_from(g).unwrap_or(u16::MAX)))
                }
                config::RuleAction::Wan(w) => Action::Wan(wan_id(w)),
                config::RuleAction::MainTable => Action::MainTable,
                config::RuleAction::Blackhole => Action::Blackhole,
                config::RuleAction::Unreachable => Action::Unreachable,
            },
            sticky: r.sticky,
        })
        .collect();
    Policy::new(wan_names, groups, rules)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::neighbors::StaticNeighbors;

    const CONFIG: &str = r#"
[[lan]]
name = "lan"
interface = "lan0"
address = "192.168.1.1/24"
extra_subnets = ["10.20.0.0/16"]

[[lan]]
name = "guest"
interface = "lan1"
address = "192.168.2.1/24"

[[wan]]
name = "isp1"
interface = "wan1"
address = "198.51.100.2/30"
gateway = "198.51.100.1"
"#;

    #[test]
    fn interfaces_are_numbered_lans_first() {
        let plan = Plan::from_config(&Config::from_toml_str(CONFIG).unwrap()).unwrap();
        let roles: Vec<Role> = plan.interfaces.iter().map(|i| i.role).collect();
        assert_eq!(roles, vec![Role::Lan(0), Role::Lan(1), Role::Wan(0)]);
        assert_eq!(plan.wans[0].iface, 2);
        let mut routes = StaticNeighbors::new();
        let lan_router = Ipv4Addr::new(192, 168, 1, 254);
        routes.set_route(0, "10.20.0.0/16".parse().unwrap(), Some(lan_router));
        routes.set_route(
            2,
            "0.0.0.0/0".parse().unwrap(),
            Some(Ipv4Addr::new(1, 1, 1, 1)),
        );
        let hop = |egress: u8, dst: [u8; 4]| plan.next_hop(egress, Ipv4Addr::from(dst), &routes);
        // a WAN's configured gateway, whatever the kernel's routes
        assert_eq!(hop(2, [8, 8, 8, 8]), Some(Ipv4Addr::new(198, 51, 100, 1)));
        // a LAN host on-link; an extra subnet's host through its LAN router
        assert_eq!(
            hop(1, [192, 168, 2, 9]),
            Some(Ipv4Addr::new(192, 168, 2, 9))
        );
        assert_eq!(hop(0, [10, 20, 3, 4]), Some(lan_router));
        // routes out of another interface do not count
        assert_eq!(hop(1, [10, 20, 3, 4]), Some(Ipv4Addr::new(10, 20, 3, 4)));
        assert_eq!(hop(9, [192, 168, 2, 9]), None);
    }

    #[test]
    fn destinations() {
        let plan = Plan::from_config(&Config::from_toml_str(CONFIG).unwrap()).unwrap();
        let d = |a: [u8; 4]| plan.destination(Ipv4Addr::from(a));
        assert_eq!(d([198, 51, 100, 2]), Destination::WanAddress(0));
        assert_eq!(
            d([192, 168, 1, 1]),
            Destination::Router,
            "own LAN address before its subnet"
        );
        assert_eq!(d([192, 168, 2, 1]), Destination::Router);
        assert_eq!(d([192, 168, 1, 77]), Destination::Lan(0));
        assert_eq!(d([10, 20, 3, 4]), Destination::Lan(0), "extra subnet");
        assert_eq!(d([192, 168, 2, 77]), Destination::Lan(1));
        assert_eq!(
            d([198, 51, 100, 1]),
            Destination::Beyond,
            "the gateway is beyond"
        );
        assert_eq!(d([8, 8, 8, 8]), Destination::Beyond);
    }

    proptest::proptest! {
        /// The first-octet filter never turns away an address the table covers.
        #[test]
        fn destination_filter_agrees_with_the_scan(ip in proptest::prelude::any::<u32>(), octet in 0usize..8) {
            let plan = Plan::from_config(&Config::from_toml_str(CONFIG).unwrap()).unwrap();
            // also addresses next to the table's own
            let near = [10u32, 192, 198, 203, 0, 255, 127, 100][octet] << 24 | (ip & 0x00ff_ffff);
            for ip in [Ipv4Addr::from(ip), Ipv4Addr::from(near)] {
                proptest::prop_assert_eq!(plan.destination(ip), plan.scan_destinations(ip));
            }
        }
    }
}
