//! Rule match criteria and the flow description they are tested against.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// IP protocol number of TCP.
pub const PROTO_TCP: u8 = 6;
/// IP protocol number of UDP.
pub const PROTO_UDP: u8 = 17;
/// IP protocol number of ICMP.
pub const PROTO_ICMP: u8 = 1;

/// An inclusive port range `first..=last`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    /// First port of the range.
    pub first: u16,
    /// Last port of the range (inclusive).
    pub last: u16,
}

impl PortRange {
    /// A range holding the single port `port`.
    pub fn single(port: u16) -> PortRange {
        PortRange {
            first: port,
            last: port,
        }
    }

    /// Whether `port` is in the range.
    pub fn contains(&self, port: u16) -> bool {
        self.first <= port && port <= self.last
    }
}

/// What a rule matches. Every non-empty criterion must match; an empty list
/// (or `proto: None`) matches anything.
///
/// Port lists only match TCP and UDP flows: a rule with a non-empty port
/// list never matches ICMP or any other protocol.
#[derive(Clone, Debug, Default)]
pub struct Match {
    /// Source networks; the flow's source must be in one of them.
    pub src: Vec<Ipv4Net>,
    /// Destination networks; the flow's destination must be in one of them.
    pub dst: Vec<Ipv4Net>,
    /// IP protocol number, or any.
    pub proto: Option<u8>,
    /// Source port ranges (TCP/UDP only).
    pub src_ports: Vec<PortRange>,
    /// Destination port ranges (TCP/UDP only).
    pub dst_ports: Vec<PortRange>,
    /// Ingress interface indices (as the engine numbers its LAN interfaces).
    pub ingress: Vec<u8>,
}

/// The facts about a new flow that rules are matched against.
#[derive(Clone, Copy, Debug)]
pub struct FlowInfo {
    /// Source (internal) address.
    pub src: Ipv4Addr,
    /// Destination (remote) address.
    pub dst: Ipv4Addr,
    /// IP protocol number.
    pub proto: u8,
    /// Source port (TCP/UDP; ignored by port criteria for other protocols).
    pub src_port: u16,
    /// Destination port (TCP/UDP; ignored by port criteria for other protocols).
    pub dst_port: u16,
    /// Ingress interface index.
    pub ingress: u8,
}

fn has_ports(proto: u8) -> bool {
    proto == PROTO_TCP || proto == PROTO_UDP
}

fn nets_match(nets: &[Ipv4Net], addr: Ipv4Addr) -> bool {
    nets.is_empty() || nets.iter().any(|n| n.contains(&addr))
}

fn ports_match(ranges: &[PortRange], proto: u8, port: u16) -> bool {
    ranges.is_empty() || (has_ports(proto) && ranges.iter().any(|r| r.contains(port)))
}

impl Match {
    /// Whether `flow` satisfies every non-empty criterion.
    pub fn matches(&self, flow: &FlowInfo) -> bool {
        self.proto.is_none_or(|p| p == flow.proto)
            && (self.ingress.is_empty() || self.ingress.contains(&flow.ingress))
            && nets_match(&self.src, flow.src)
            && nets_match(&self.dst, flow.dst)
            && ports_match(&self.src_ports, flow.proto, flow.src_port)
            && ports_match(&self.dst_ports, flow.proto, flow.dst_port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow() -> FlowInfo {
        FlowInfo {
            src: Ipv4Addr::new(192, 168, 1, 10),
            dst: Ipv4Addr::new(8, 8, 8, 8),
            proto: PROTO_UDP,
            src_port: 40000,
            dst_port: 53,
            ingress: 0,
        }
    }

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn empty_matches_everything() {
        let m = Match::default();
        assert!(m.matches(&flow()));
        assert!(m.matches(&FlowInfo {
            proto: PROTO_ICMP,
            ..flow()
        }));
    }

    #[test]
    fn src_alone() {
        let m = Match {
            src: vec![net("10.0.0.0/8"), net("192.168.1.0/24")],
            ..Match::default()
        };
        assert!(m.matches(&flow()));
        assert!(!m.matches(&FlowInfo {
            src: Ipv4Addr::new(192, 168, 2, 10),
            ..flow()
        }));
    }

    #[test]
    fn dst_alone() {
        let m = Match {
            dst: vec![net("8.8.8.0/24")],
            ..Match::default()
        };
        assert!(m.matches(&flow()));
        assert!(!m.matches(&FlowInfo {
            dst: Ipv4Addr::new(1, 1, 1, 1),
            ..flow()
        }));
    }

    #[test]
    fn proto_alone() {
        let m = Match {
            proto: Some(PROTO_UDP),
            ..Match::default()
        };
        assert!(m.matches(&flow()));
        assert!(!m.matches(&FlowInfo {
            proto: PROTO_TCP,
            ..flow()
        }));
    }

    #[test]
    fn src_ports_alone() {
        let m = Match {
            src_ports: vec![PortRange {
                first: 30000,
                last: 40000,
            }],
            ..Match::default()
        };
        assert!(m.matches(&flow()));
        assert!(m.matches(&FlowInfo {
            src_port: 30000,
            ..flow()
        }));
        assert!(!m.matches(&FlowInfo {
            src_port: 40001,
            ..flow()
        }));
        assert!(!m.matches(&FlowInfo {
            src_port: 29999,
            ..flow()
        }));
    }

    #[test]
    fn dst_ports_alone() {
        let m = Match {
            dst_ports: vec![PortRange::single(443), PortRange::single(53)],
            ..Match::default()
        };
        assert!(m.matches(&flow()));
        assert!(m.matches(&FlowInfo {
            proto: PROTO_TCP,
            dst_port: 443,
            ..flow()
        }));
        assert!(!m.matches(&FlowInfo {
            dst_port: 80,
            ..flow()
        }));
    }

    #[test]
    fn ingress_alone() {
        let m = Match {
            ingress: vec![1, 2],
            ..Match::default()
        };
        assert!(!m.matches(&flow()));
        assert!(m.matches(&FlowInfo {
            ingress: 2,
            ..flow()
        }));
    }

    #[test]
    fn ports_never_match_icmp() {
        let icmp = FlowInfo {
            proto: PROTO_ICMP,
            src_port: 53,
            dst_port: 53,
            ..flow()
        };
        let dst = Match {
            dst_ports: vec![PortRange {
                first: 0,
                last: u16::MAX,
            }],
            ..Match::default()
        };
        let src = Match {
            src_ports: vec![PortRange {
                first: 0,
                last: u16::MAX,
            }],
            ..Match::default()
        };
        assert!(!dst.matches(&icmp));
        assert!(!src.matches(&icmp));
        assert!(dst.matches(&flow()));
        assert!(src.matches(&flow()));
    }

    #[test]
    fn all_criteria_must_match() {
        let m = Match {
            src: vec![net("192.168.1.0/24")],
            dst: vec![net("8.8.8.8/32")],
            proto: Some(PROTO_UDP),
            src_ports: vec![],
            dst_ports: vec![PortRange::single(53)],
            ingress: vec![0],
        };
        assert!(m.matches(&flow()));
        assert!(!m.matches(&FlowInfo {
            ingress: 1,
            ..flow()
        }));
        assert!(!m.matches(&FlowInfo {
            dst: Ipv4Addr::new(8, 8, 4, 4),
            ..flow()
        }));
    }
}
