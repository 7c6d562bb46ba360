//! The control thread: serves the `ctl` protocol on the control socket. Every answer is
//! built from what the workers publish anyway (atomic counters, the connection table read one
//! shard at a time, the current plan), so a request never stalls the packet path for more
//! than one shard lock.

use std::net::SocketAddrV4;
use std::time::Duration;

use balancer::{DecisionKind, FlowInfo, Selector};
use ctl::protocol::{
    Counter, CountersReply, ExplainReply, Flow, FlowsReply, ForwardEntry, Reply, Request, Response,
    RuleEntry, RulesReply, StatusReply, Totals, WanStatus,
};
use ctl::server::ControlServer;

use crate::config::{Config, Rule, RuleAction};
use crate::device::afxdp::program::STATS;
use crate::pipeline::counters::MAX_WANS;
use crate::pipeline::{DropReason, Event};
use crate::plan::{Destination, Plan, HAIRPIN_RULE};

use super::health_requests;
use super::reload::reload;
use super::shared::Shared;

/// How long one `poll` of the control socket may block (bounds the reaction to stop).
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Serves requests until `shared.stopping()`.
pub fn serve(shared: &Shared, server: &mut ControlServer) {
    let mut handler = |request: Request| handle(shared, request);
    while !shared.stopping() {
        if let Err(e) = server.poll(POLL_INTERVAL, &mut handler) {
            log::error!("control socket: {e}");
            std::thread::sleep(POLL_INTERVAL);
        }
    }
}

/// Answers one request.
pub fn handle(shared: &Shared, request: Request) -> Response {
    let reply = match request {
        Request::Status => Ok(Reply::Status(status(shared))),
        Request::Flows { wan, limit, offset } => {
            flows(shared, wan.as_deref(), limit, offset.unwrap_or(0)).map(Reply::Flows)
        }
        Request::Rules => Ok(Reply::Rules(rules(shared))),
        Request::Counters => Ok(Reply::Counters(counters(shared))),
        Request::Explain {
            src,
            dst,
            proto,
            sport,
            dport,
        } => explain(
            shared,
            FlowQuery {
                src,
                dst,
                proto: proto.number(),
                sport: sport.unwrap_or(0),
                dport: dport.unwrap_or(0),
            },
        )
        .map(Reply::Explain),
        Request::Wans => health_requests::wans(shared).map(Reply::Wans),
        Request::WanAdmin { wan, enabled } => {
            health_requests::wan_admin(shared, &wan, enabled).map(Reply::WanAdmin)
        }
        Request::Events { after } => health_requests::events(shared, after).map(Reply::Events),
        Request::Reload => match reload(shared) {
            Ok(message) => {
                log::info!("fwdctl reload: {message}");
                Ok(Reply::Reload(ctl::protocol::ReloadReply { message }))
            }
            Err(message) => {
                log::error!("fwdctl reload: {message}");
                Err(message)
            }
        },
    };
    match reply {
        Ok(r) => Response::Ok(r),
        Err(message) => Response::Error { message },
    }
}

fn sum(shared: &Shared, f: impl Fn(&crate::pipeline::Counters) -> u64) -> u64 {
    shared.counters.iter().map(|c| f(c)).sum()
}

fn status(shared: &Shared) -> StatusReply {
    let (dp, _) = shared.dataplane();
    let config = shared.config();
    let load = |v: &std::sync::atomic::AtomicU64| v.load(std::sync::atomic::Ordering::Relaxed);
    // The prober's published state tells "disabled" from "down"; the board has the rest.
    let published = shared.with_link_health(|p| p.status()).unwrap_or_default();
    let wans = config
        .wans
        .iter()
        .enumerate()
        .take(MAX_WANS)
        .map(|(i, w)| WanStatus {
            name: w.name.clone(),
            interface: w.interface.clone(),
            address: w.address,
            state: published
                .iter()
                .find(|s| s.name == w.name)
                .map_or_else(|| dp.health.get(i).as_str(), |s| s.state.as_str())
                .to_string(),
            tier: w.tier,
            weight: w.weight,
            flows: dp.tables.conntrack.wan_sessions(i as u8),
            tx_packets: sum(shared, |c| c.wan(i).map_or(0, |t| load(&t.tx_packets))),
            tx_bytes: sum(shared, |c| c.wan(i).map_or(0, |t| load(&t.tx_bytes))),
            rx_packets: sum(shared, |c| c.wan(i).map_or(0, |t| load(&t.rx_packets))),
            rx_bytes: sum(shared, |c| c.wan(i).map_or(0, |t| load(&t.rx_bytes))),
        })
        .collect();
    StatusReply {
        uptime_secs: shared.clock.now().as_secs(),
        workers: shared.counters.len() as u32,
        backend: backend(shared),
        wans,
        totals: Totals {
            flows: dp.tables.conntrack.len() as u64,
            max_flows: u64::from(config.conntrack.max_sessions),
            forwarded: sum(shared, |c| c.events(Event::Forwarded)),
            to_kernel: sum(shared, |c| c.events(Event::ToKernel)),
            dropped: sum(shared, |c| c.total_drops()),
            sessions_created: sum(shared, |c| c.events(Event::SessionsCreated)),
        },
    }
}

fn rule_name(config: &Config, rule: u16) -> String {
    if rule == HAIRPIN_RULE {
        return "(hairpin)".to_string();
    }
    config
        .rules
        .get(usize::from(rule))
        .map_or_else(|| format!("#{rule}"), |r| r.name.clone())
}

/// How `flows` names the forward that opened a session: `forward NAME`.
fn forward_name(config: &Config, forward: u16) -> String {
    config.forwards.get(usize::from(forward)).map_or_else(
        || format!("forward #{forward}"),
        |f| format!("forward {}", f.name),
    )
}

/// A page of flows: the matches from `offset` on, at most [`Request::flow_limit`] of them.
/// Under each shard's lock the matching sessions are only copied (a few dozen bytes each);
/// names and strings are made after, with no lock held.
fn flows(
    shared: &Shared,
    wan: Option<&str>,
    limit: Option<u32>,
    offset: u64,
) -> Result<FlowsReply, String> {
    let (dp, _) = shared.dataplane();
    let config = shared.config();
    let wan_filter = match wan {
        None => None,
        Some(name) => Some(
            config
                .wans
                .iter()
                .position(|w| w.name == name)
                .ok_or_else(|| format!("no WAN named '{name}'"))? as u8,
        ),
    };
    let limit = Request::flow_limit(limit) as usize;
    let mut total = 0u64;
    let mut page = Vec::with_capacity(limit.min(4096));
    dp.tables
        .conntrack
        .for_each_session_at(shared.clock.now(), |s| {
            if wan_filter.is_some_and(|w| w != s.wan) {
                return;
            }
            if total >= offset && page.len() < limit {
                page.push(*s);
            }
            total += 1;
        });
    let flows = page
        .iter()
        .map(|s| Flow {
            proto: s.key.proto.name().to_string(),
            internal: SocketAddrV4::new(s.key.src.ip, s.key.src.port),
            external: SocketAddrV4::new(s.external.ip, s.external.port),
            remote: SocketAddrV4::new(s.key.dst.ip, s.key.dst.port),
            wan: config
                .wans
                .get(usize::from(s.wan))
                .map_or_else(|| format!("#{}", s.wan), |w| w.name.clone()),
            state: s
                .tcp_state
                .map_or_else(|| "-".to_string(), |t| t.name().to_string()),
            rule: if s.forwarded {
                forward_name(&config, s.rule)
            } else {
                rule_name(&config, s.rule)
            },
            age_secs: s.age.as_secs(),
            idle_secs: s.idle.as_secs(),
            packets_out: s.packets_out,
            packets_in: s.packets_in,
            bytes_out: s.bytes_out,
            bytes_in: s.bytes_in,
        })
        .collect();
    Ok(FlowsReply {
        total,
        offset,
        flows,
    })
}

fn rules(shared: &Shared) -> RulesReply {
    let (dp, _) = shared.dataplane();
    let config = shared.config();
    RulesReply {
        rules: config
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| RuleEntry {
                index: i as u32,
                name: r.name.clone(),
                matches: describe_match(&config, r),
                action: describe_action(&config, r.action),
                sticky_secs: r.sticky.map(|d| d.as_secs()),
                hits: dp.plan.rule_hits(i),
            })
            .collect(),
        forwards: config
            .forwards
            .iter()
            .enumerate()
            .map(|(i, f)| ForwardEntry {
                name: f.name.clone(),
                wans: f
                    .wans
                    .iter()
                    .filter_map(|&w| config.wans.get(w).map(|w| w.name.clone()))
                    .collect(),
                proto: f
                    .protos
                    .iter()
                    .map(|&p| proto_name(p))
                    .collect::<Vec<_>>()
                    .join("+"),
                ports: port_span(f.ports.clone()),
                to: format!(
                    "{}:{}",
                    f.to,
                    port_span(f.to_port..=f.internal_port(*f.ports.end()))
                ),
                hits: dp.plan.forwards.hits(i),
            })
            .collect(),
    }
}

/// `80`, or `6881-6889`.
fn port_span(ports: std::ops::RangeInclusive<u16>) -> String {
    if ports.start() == ports.end() {
        ports.start().to_string()
    } else {
        format!("{}-{}", ports.start(), ports.end())
    }
}

fn proto_name(proto: u8) -> String {
    match proto {
        1 => "icmp".to_string(),
        6 => "tcp".to_string(),
        17 => "udp".to_string(),
        n => n.to_string(),
    }
}

fn ports(ranges: &[std::ops::RangeInclusive<u16>]) -> String {
    ranges
        .iter()
        .map(|r| {
            if r.start() == r.end() {
                r.start().to_string()
            } else {
                format!("{}-{}", r.start(), r.end())
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// A rule's match conditions in `ip rule`-like words; "any" when it has none.
pub fn describe_match(config: &Config, rule: &Rule) -> String {
    let mut parts = Vec::new();
    if let Some(p) = rule.proto {
        parts.push(format!("proto {}", proto_name(p)));
    }
    let nets = |n: &[ipnet::Ipv4Net]| {
        n.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    if !rule.src.is_empty() {
        parts.push(format!("from {}", nets(&rule.src)));
    }
    if !rule.dst.is_empty() {
        parts.push(format!("to {}", nets(&rule.dst)));
    }
    if !rule.src_ports.is_empty() {
        parts.push(format!("sport {}", ports(&rule.src_ports)));
    }
    if !rule.dst_ports.is_empty() {
        parts.push(format!("dport {}", ports(&rule.dst_ports)));
    }
    if !rule.ingress.is_empty() {
        let names: Vec<&str> = rule
            .ingress
            .iter()
            .filter_map(|&l| config.lans.get(l).map(|l| l.name.as_str()))
            .collect();
        parts.push(format!("in {}", names.join(",")));
    }
    if parts.is_empty() {
        "any".to_string()
    } else {
        parts.join(" ")
    }
}

/// A rule's action in words.
pub fn describe_action(config: &Config, action: RuleAction) -> String {
    match action {
        RuleAction::Group(g) => format!(
            "group {}",
            config.groups.get(g).map_or("?", |g| g.name.as_str())
        ),
        RuleAction::Wan(w) => format!(
            "wan {}",
            config.wans.get(w).map_or("?", |w| w.name.as_str())
        ),
        RuleAction::MainTable => "main table".to_string(),
        RuleAction::Blackhole => "blackhole".to_string(),
        RuleAction::Unreachable => "unreachable".to_string(),
    }
}

/// The backend's own counters: each AF_XDP socket's, then the XDP program's.
fn device_counters(shared: &Shared, plan: &crate::plan::Plan) -> Vec<Counter> {
    let mut out = Vec::new();
    for worker in &shared.queue_counters {
        let counters = worker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        for c in counters {
            let iface = plan
                .interface(c.iface)
                .map_or_else(|| c.iface.to_string(), |i| i.os_name.clone());
            out.push(Counter {
                name: format!("{iface}.q{}.{}", c.queue, c.name),
                value: c.value,
            });
        }
    }
    if let Some(program) = &shared.xdp_program {
        let stats = program
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .stats();
        for (name, value) in STATS.iter().zip(stats) {
            out.push(Counter {
                name: format!("xdp.{name}"),
                value,
            });
        }
    }
    out
}

/// The backend as `fwdctl status` shows it: with AF_XDP, whether its sockets copy.
fn backend(shared: &Shared) -> String {
    let mut zero_copy = None;
    for worker in &shared.queue_counters {
        let counters = worker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for c in counters.iter().filter(|c| c.name == "zero_copy") {
            zero_copy = Some(zero_copy.unwrap_or(true) && c.value == 1);
        }
    }
    let backend = shared
        .backend
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    match zero_copy {
        None => backend,
        Some(true) => format!("{backend}, zero-copy sockets"),
        Some(false) => format!("{backend}, copy-mode sockets"),
    }
}

fn counters(shared: &Shared) -> CountersReply {
    let (dp, _) = shared.dataplane();
    // With AF_XDP, packets from a WAN into a LAN are dropped by the XDP program.
    let xdp_inbound_to_lan = shared.xdp_program.as_ref().map_or(0, |program| {
        let stats = program
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .stats();
        STATS
            .iter()
            .zip(stats)
            .find(|(name, _)| **name == "drop_inbound_to_lan")
            .map_or(0, |(_, v)| v)
    });
    let drops = DropReason::ALL
        .iter()
        .map(|&r| Counter {
            name: r.name().to_string(),
            value: sum(shared, |c| c.drops(r))
                + if r == DropReason::InboundToLan {
                    xdp_inbound_to_lan
                } else {
                    0
                },
        })
        .collect();
    let mut events: Vec<Counter> = Event::ALL
        .iter()
        .map(|&e| Counter {
            name: e.name().to_string(),
            value: sum(shared, |c| c.events(e)),
        })
        .collect();
    let t = dp.tables.conntrack.stats();
    for (name, value) in [
        ("conntrack_created", t.created),
        ("conntrack_expired", t.expired),
        ("conntrack_evicted", t.evicted),
        ("conntrack_refused_full", t.refused_full),
        ("conntrack_ports_exhausted", t.ports_exhausted),
        ("conntrack_host_session_limit", t.host_session_limit),
        ("conntrack_host_port_limit", t.host_port_limit),
        ("conntrack_closed_by_rst", t.closed_by_rst),
        ("conntrack_recycled", t.recycled),
        ("fragments_evicted", dp.tables.fragments.evicted()),
    ] {
        events.push(Counter {
            name: name.to_string(),
            value,
        });
    }
    CountersReply {
        drops,
        events,
        device: device_counters(shared, &dp.plan),
    }
}

#[derive(Debug, Clone, Copy)]
struct FlowQuery {
    src: std::net::Ipv4Addr,
    dst: std::net::Ipv4Addr,
    proto: u8,
    sport: u16,
    dport: u16,
}

fn explain(shared: &Shared, q: FlowQuery) -> Result<ExplainReply, String> {
    let (dp, _) = shared.dataplane();
    let config = shared.config();
    let Some(lan) = dp.plan.lan_for(q.src) else {
        return explain_inbound(&dp.plan, &config, &q);
    };
    let flow = FlowInfo {
        src: q.src,
        dst: q.dst,
        proto: q.proto,
        src_port: q.sport,
        dst_port: q.dport,
        ingress: lan.iface,
    };
    let mut health = [balancer::LinkState::Down; MAX_WANS];
    dp.health.snapshot(&mut health);
    // A fresh selector: its round-robin position is its own, so "would pick" shows the
    // first pick of the active tier, not necessarily the next one a worker will make.
    let selector = Selector::new(&dp.plan.policy);
    let e = selector.explain(
        &dp.plan.policy,
        &health,
        &dp.tables.sticky,
        &flow,
        shared.clock.now(),
    );
    let wan_name = |w: balancer::WanId| config.wans.get(usize::from(w.0)).map(|w| w.name.clone());
    let decision = match e.decision_kind {
        DecisionKind::Wan => "wan",
        DecisionKind::MainTable => "main table",
        DecisionKind::Blackhole => "blackhole",
        DecisionKind::Unreachable => "unreachable",
    };
    Ok(ExplainReply {
        rule: e.rule.map(|r| rule_name(&config, r.0)),
        group: e
            .group
            .and_then(|g| config.groups.get(usize::from(g.0)).map(|g| g.name.clone())),
        wan: match e.decision {
            balancer::Decision::Wan { wan, .. } => wan_name(wan),
            _ => None,
        },
        decision: decision.to_string(),
        reasons: e.reasons,
    })
}

/// `explain` of a flow from the Internet: to a WAN's address (a port forward, a session's
/// port, or the router's own), or into a LAN.
fn explain_inbound(plan: &Plan, config: &Config, q: &FlowQuery) -> Result<ExplainReply, String> {
    let proto = match q.proto {
        6 => Some(conntrack::Proto::Tcp),
        17 => Some(conntrack::Proto::Udp),
        _ => None,
    };
    let reply = |decision: &str, rule: Option<String>, wan: Option<String>, reasons| {
        Ok(ExplainReply {
            decision: decision.to_owned(),
            rule,
            group: None,
            wan,
            reasons,
        })
    };
    let arrives = |w: &str| {
        format!(
            "{} {}:{} → {}:{} arrives on WAN {w}",
            proto_name(q.proto),
            q.src,
            q.sport,
            q.dst,
            q.dport
        )
    };
    match plan.destination(q.dst) {
        Destination::WanAddress(w) => {
            let name = config
                .wans
                .get(w)
                .map_or_else(|| format!("#{w}"), |w| w.name.clone());
            let forward = proto.and_then(|p| plan.forwards.find(w, p, q.dport));
            if let Some(fw) = forward {
                let f = config.forwards.get(usize::from(fw.forward));
                let fname = f.map_or_else(|| format!("#{}", fw.forward), |f| f.name.clone());
                return reply(
                    "forward",
                    Some(fname.clone()),
                    Some(name.clone()),
                    vec![
                        arrives(&name),
                        format!("forward {fname:?} takes it: the server is {}", fw.target),
                        format!(
                            "the server's replies leave by {name}, the WAN the connection came \
                             in on"
                        ),
                    ],
                );
            }
            let nat = plan.wans.get(w).map(|wan| wan.nat_ports.clone());
            if proto.is_some() && nat.is_some_and(|n| n.contains(&q.dport)) {
                return reply(
                    "drop",
                    None,
                    Some(name.clone()),
                    vec![
                        arrives(&name),
                        format!(
                            "port {} is one of {name}'s NAT ports and no forward takes it: only \
                             the remote end of a session using it gets through \
                             (no_session_inbound otherwise)",
                            q.dport
                        ),
                    ],
                );
            }
            reply(
                "router",
                None,
                Some(name.clone()),
                vec![
                    arrives(&name),
                    "no forward takes it and it is no NAT port: it is for the router itself \
                     (the kernel decides)"
                        .to_owned(),
                ],
            )
        }
        Destination::Lan(l) => {
            let lan = config.lans.get(l).map_or("?", |l| l.name.as_str());
            match plan.lans.get(l).map(|l| l.inbound) {
                Some(crate::config::Inbound::Allow) => reply(
                    "main table",
                    None,
                    None,
                    vec![format!(
                        "{} is in LAN {lan}, open to the WANs (inbound = \"allow\"): the \
                         kernel routes it",
                        q.dst
                    )],
                ),
                _ => reply(
                    "drop",
                    None,
                    None,
                    vec![format!(
                        "{} is in LAN {lan}, closed to the WANs: dropped (inbound_to_lan); a \
                         [[forward]] opens a port of a WAN address to a server in it",
                        q.dst
                    )],
                ),
            }
        }
        Destination::Router | Destination::Beyond => Err(format!(
            "{} is not in any LAN subnet and {} is none of fwd's WAN addresses or LANs: fwd \
             explains flows from its LANs, and flows from the Internet to its WANs' addresses \
             and LANs",
            q.src, q.dst
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::path::PathBuf;
    use std::sync::Arc;

    use balancer::LinkState;
    use ctl::protocol::Proto;
    use etherparse::PacketBuilder;

    use super::*;
    use crate::dataplane::DataPlane;
    use crate::device::memory::MemoryDevice;
    use crate::device::{FrameMemory, FramePool, CHUNK_SIZE, HEADROOM};
    use crate::forwarder::Forwarder;
    use crate::neighbors::StaticNeighbors;
    use crate::packet::Medium;

    const CONFIG: &str = r#"
[[lan]]
name = "lan"
interface = "lan0"
address = "192.168.1.1/24"

[[wan]]
name = "isp1"
interface = "wan0"
address = "10.1.0.2/24"
gateway = "10.1.0.1"

[[wan]]
name = "isp2"
interface = "wan1"
address = "10.2.0.2/24"
gateway = "10.2.0.1"

[[group]]
name = "both"
members = [{ wan = "isp1" }, { wan = "isp2" }]

[[rule]]
name = "dns"
proto = "udp"
dst_ports = [53]
wan = "isp2"

[[rule]]
name = "all"
group = "both"

[[forward]]
name = "web"
wan = "isp2"
proto = "tcp"
port = 8080
to = "192.168.1.10"
to_port = 80
"#;

    /// A daemon state around `CONFIG` written to a fresh file, with `flows` UDP flows to
    /// port 9 (balanced) and one DNS flow sent through worker 0.
    fn daemon(test: &str, flows: u16) -> (Arc<Shared>, PathBuf) {
        let path =
            std::env::temp_dir().join(format!("fwd-control-{test}-{}.toml", std::process::id()));
        std::fs::write(&path, CONFIG).unwrap();
        let config = Config::from_toml_str(CONFIG).unwrap();
        let dp = DataPlane::new(&config, 5, LinkState::Up).unwrap();
        let shared = Arc::new(Shared::new(dp, config, path.clone(), 1, "memory".into()));
        let (dp, _) = shared.dataplane();
        let mut fwd = Forwarder::new(Medium::Ip, &dp.plan, shared.counters[0].clone(), 64);
        let memory = FrameMemory::new(64, CHUNK_SIZE, HEADROOM).unwrap();
        let mut dev = MemoryDevice::new(Medium::Ip, FramePool::new(&memory).unwrap());
        let udp = |sport: u16, dport: u16| {
            let mut out = Vec::new();
            PacketBuilder::ipv4([192, 168, 1, 10], [203, 0, 113, 10], 64)
                .udp(sport, dport)
                .write_to_vec(&mut out, b"hello")
                .unwrap();
            out
        };
        for i in 0..flows {
            dev.inject(0, &udp(30_000 + i, 9));
        }
        dev.inject(0, &udp(31_000, 53));
        fwd.poll(&mut dev, &dp, &StaticNeighbors::new(), shared.clock.now())
            .unwrap();
        (shared, path)
    }

    fn ok(response: Response) -> Reply {
        match response {
            Response::Ok(r) => r,
            Response::Error { message } => panic!("error: {message}"),
        }
    }

    fn error(response: Response) -> String {
        match response {
            Response::Error { message } => message,
            Response::Ok(r) => panic!("expected an error, got {r:?}"),
        }
    }

    #[test]
    fn status_counts_flows_and_traffic_per_wan() {
        let (shared, path) = daemon("status", 4);
        let Reply::Status(s) = ok(handle(&shared, Request::Status)) else {
            panic!()
        };
        assert_eq!(s.backend, "memory");
        assert_eq!(
            (s.wans[0].name.as_str(), s.wans[1].name.as_str()),
            ("isp1", "isp2")
        );
        // 4 balanced flows alternate; the DNS flow is pinned to isp2.
        assert_eq!((s.wans[0].flows, s.wans[1].flows), (2, 3));
        assert_eq!((s.wans[0].tx_packets, s.wans[1].tx_packets), (2, 3));
        assert_eq!(s.wans[1].tx_bytes, 3 * 33);
        assert!(s.wans.iter().all(|w| w.state == "up"));
        assert_eq!(s.totals.flows, 5);
        assert_eq!(s.totals.forwarded, 5);
        assert_eq!(s.totals.sessions_created, 5);
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn flows_filter_by_wan_and_limit() {
        let (shared, path) = daemon("flows", 6);
        let request = |wan: Option<&str>, limit| Request::Flows {
            wan: wan.map(str::to_string),
            limit,
            offset: None,
        };
        let Reply::Flows(all) = ok(handle(&shared, request(None, None))) else {
            panic!()
        };
        assert_eq!((all.total, all.flows.len()), (7, 7));
        let Reply::Flows(some) = ok(handle(&shared, request(Some("isp2"), Some(2)))) else {
            panic!()
        };
        assert_eq!((some.total, some.flows.len()), (4, 2));
        assert!(some
            .flows
            .iter()
            .all(|f| f.wan == "isp2" && f.proto == "udp"));
        let dns = all.flows.iter().find(|f| f.remote.port() == 53).unwrap();
        assert_eq!((dns.rule.as_str(), dns.state.as_str()), ("dns", "-"));
        assert_eq!(dns.external.ip(), &std::net::Ipv4Addr::new(10, 2, 0, 2));
        assert_eq!((dns.packets_out, dns.bytes_out), (1, 33));
        let page = |offset| Request::Flows {
            wan: None,
            limit: Some(4),
            offset: Some(offset),
        };
        let Reply::Flows(second) = ok(handle(&shared, page(4))) else {
            panic!()
        };
        assert_eq!((second.total, second.offset, second.flows.len()), (7, 4, 3));
        assert_eq!(
            second.flows[..],
            all.flows[4..],
            "the same order, page by page"
        );
        let Reply::Flows(past) = ok(handle(&shared, page(100))) else {
            panic!()
        };
        assert_eq!((past.total, past.flows.len()), (7, 0));
        let message = error(handle(&shared, request(Some("isp9"), None)));
        assert_eq!(message, "no WAN named 'isp9'");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn rules_show_matches_actions_and_hits() {
        let (shared, path) = daemon("rules", 2);
        let Reply::Rules(r) = ok(handle(&shared, Request::Rules)) else {
            panic!()
        };
        let rows: Vec<(&str, &str, &str, u64)> = r
            .rules
            .iter()
            .map(|r| {
                (
                    r.name.as_str(),
                    r.matches.as_str(),
                    r.action.as_str(),
                    r.hits,
                )
            })
            .collect();
        assert_eq!(
            rows,
            vec![
                ("dns", "proto udp dport 53", "wan isp2", 1),
                ("all", "any", "group both", 2)
            ]
        );
        let web = &r.forwards[0];
        assert_eq!(
            (
                web.name.as_str(),
                web.proto.as_str(),
                web.ports.as_str(),
                web.to.as_str()
            ),
            ("web", "tcp", "8080", "192.168.1.10:80")
        );
        assert_eq!((web.wans.clone(), web.hits), (vec!["isp2".to_owned()], 0));
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn explain_has_an_inbound_form() {
        let (shared, path) = daemon("explain-inbound", 0);
        let explain = |dst: [u8; 4], proto, dport| {
            handle(
                &shared,
                Request::Explain {
                    src: [198, 51, 100, 7].into(),
                    dst: dst.into(),
                    proto,
                    sport: Some(50_000),
                    dport: Some(dport),
                },
            )
        };
        let decision = |r: Response| match ok(r) {
            Reply::Explain(e) => (e.decision, e.rule, e.wan, e.reasons.join(" / ")),
            other => panic!("{other:?}"),
        };
        let (d, rule, wan, why) = decision(explain([10, 2, 0, 2], Proto::Tcp, 8080));
        assert_eq!(
            (d.as_str(), rule.as_deref(), wan.as_deref()),
            ("forward", Some("web"), Some("isp2"))
        );
        assert!(why.contains("192.168.1.10:80"), "{why}");
        // not on isp1, nor for UDP
        let (d, ..) = decision(explain([10, 1, 0, 2], Proto::Tcp, 8080));
        assert_eq!(d, "router");
        let (d, _, _, why) = decision(explain([10, 2, 0, 2], Proto::Udp, 30_000));
        assert_eq!(d, "drop");
        assert!(why.contains("NAT ports"), "{why}");
        let (d, _, _, why) = decision(explain([192, 168, 1, 10], Proto::Tcp, 22));
        assert_eq!(d, "drop");
        assert!(why.contains("inbound_to_lan"), "{why}");
        assert!(matches!(
            explain([8, 8, 8, 8], Proto::Tcp, 80),
            Response::Error { .. }
        ));
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn counters_name_every_drop_reason_and_event() {
        let (shared, path) = daemon("counters", 1);
        let Reply::Counters(c) = ok(handle(&shared, Request::Counters)) else {
            panic!()
        };
        assert_eq!(c.drops.len(), DropReason::ALL.len());
        let value = |name: &str| c.events.iter().find(|e| e.name == name).unwrap().value;
        assert_eq!(value("forwarded"), 2);
        assert_eq!(value("conntrack_created"), 2);
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn explain_names_rule_group_and_wan_and_refuses_non_lan_sources() {
        let (shared, path) = daemon("explain", 0);
        let explain = |src: [u8; 4], proto, dport| Request::Explain {
            src: src.into(),
            dst: [203, 0, 113, 10].into(),
            proto,
            sport: Some(40_000),
            dport,
        };
        let Reply::Explain(dns) = ok(handle(
            &shared,
            explain([192, 168, 1, 10], Proto::Udp, Some(53)),
        )) else {
            panic!()
        };
        assert_eq!(
            (
                dns.rule.as_deref(),
                dns.group.as_deref(),
                dns.wan.as_deref()
            ),
            (Some("dns"), None, Some("isp2"))
        );
        assert_eq!(dns.decision, "wan");
        let Reply::Explain(web) = ok(handle(
            &shared,
            explain([192, 168, 1, 10], Proto::Tcp, Some(80)),
        )) else {
            panic!()
        };
        assert_eq!(
            (web.rule.as_deref(), web.group.as_deref()),
            (Some("all"), Some("both"))
        );
        assert!(web.wan.is_some());
        assert!(!web.reasons.is_empty());
        let message = error(handle(&shared, explain([10, 9, 9, 9], Proto::Tcp, None)));
        assert!(message.contains("not in any LAN subnet"), "{message}");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn reload_applies_policy_changes_keeps_sessions_and_refuses_the_rest() {
        let (shared, path) = daemon("reload", 3);
        let generation = shared.generation();
        // A new weight: applied, sessions kept.
        std::fs::write(
            &path,
            CONFIG.replace("{ wan = \"isp1\" }", "{ wan = \"isp1\", weight = 3 }"),
        )
        .unwrap();
        let Reply::Reload(r) = ok(handle(&shared, Request::Reload)) else {
            panic!()
        };
        assert!(r.message.contains("4 sessions kept"), "{}", r.message);
        assert_eq!(shared.generation(), generation + 1);
        assert_eq!(shared.config().groups[0].members[0].weight, 3);
        // Invalid: refused with the line of the error.
        std::fs::write(
            &path,
            CONFIG.replace("dst_ports = [53]", "dst_ports = [\"x\"]"),
        )
        .unwrap();
        let message = error(handle(&shared, Request::Reload));
        assert!(
            message.contains("line 26: rule \"dns\".dst_ports[0]"),
            "{message}"
        );
        // Structural: refused, needs a restart.
        std::fs::write(&path, CONFIG.replace("10.2.0.2/24", "10.2.0.9/24")).unwrap();
        let message = error(handle(&shared, Request::Reload));
        assert!(message.contains("need a restart"), "{message}");
        // Missing file: refused.
        std::fs::remove_file(&path).unwrap();
        let message = error(handle(&shared, Request::Reload));
        assert!(message.contains("running config stays"), "{message}");
        assert_eq!(shared.generation(), generation + 1);
        assert_eq!(shared.dataplane().0.tables.conntrack.len(), 4);
    }
}
