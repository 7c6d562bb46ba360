//! # Kernel steering for the TUN backend
//!
//! fwd runs inside a router: the kernel keeps L2, ARP and routing, fwd does policy,
//! balancing, connection tracking and NAT in userspace. Each LAN and WAN has a TUN device
//! (created by the engine before [`install`]). This module adds the routes, rules and
//! sysctls that make the kernel hand fwd exactly the traffic fwd handles, and route what fwd
//! writes back. [`install`] is all or nothing; [`Installed::remove`] (or dropping the
//! [`Installed`]) undoes every change in reverse order.
//!
//! ## Tables (`table_base` = B, `nl` LANs)
//! - LAN `i`: table `B + i` = `default dev <lan tun> scope link`;
//! - WAN `j` outbound: table `B + nl + j` = `default via <gateway> dev <wan dev> onlink`
//!   (LANs and WANs numbered together, LANs first, as the plan numbers interfaces);
//! - WAN `j` inbound: table `B + 100 + j` = `default dev <wan tun> scope link`.
//!
//! ## Rules, in priority order
//! Early (from `early_pref`, one after another, all before the local table):
//! - per WAN: `to <A>/32 dport <ports below the NAT range>` and `dport <ports above it, up
//!   to 65534>` → local table (from any interface): the kernel's own ports on `A` (SSH to
//!   the box, its own connections) stay the kernel's; then `iif <wan dev> to <A>/32 ipproto
//!   tcp|udp|icmp` → WAN inbound table: replies to fwd's NAT ports and ICMP go to fwd
//!   although `A` is a local address, and so do the later fragments of datagrams, which
//!   carry no ports (no rule can name port 0 or 65535, hence the ranges around the NAT
//!   range rather than the NAT range itself; fwd hands back to the kernel the fragments
//!   that follow no first fragment of its own, and anything to port 65535);
//! - per LAN and WAN (hairpin): `iif <lan dev> to <A>/32 ipproto tcp|udp|icmp` → LAN
//!   table (the kernel's ports on `A` went to the local table just before).
//!
//! `pref local_pref lookup local`: the kernel's `pref 0 lookup local` rule is moved here (the
//! new rule added first, then the old one deleted, so the local table is never unreachable;
//! on removal the old rule is re-added exactly as it was dumped, then ours deleted). If the
//! pref-0 rule is already absent (someone else moved it), fwd leaves the local rules alone,
//! records that ([`Installed::local_moved`] is false) and requires the existing local lookup
//! to lie between its early and late rules.
//!
//! Late (from `late_pref`, after the local table, before `main` at 32766):
//! - per LAN: `iif <lan dev> lookup main suppress_prefixlength 0`, then `iif <lan dev>
//!   lookup <LAN table>`: what main would send by its *default* route (the Internet) goes
//!   to fwd; connected and specific routes (LAN to LAN, static routes) stay with the kernel;
//! - per WAN and LAN subnet closed to the WANs (`inbound = "drop"`, the default): `iif <wan
//!   dev> to <subnet> lookup <WAN inbound table>`, then `iif <wan dev> to <subnet>
//!   blackhole`: traffic from a WAN into a LAN goes to fwd, which drops and counts it
//!   (`inbound_to_lan`); when fwd is not running its TUN and the route through it are gone,
//!   the lookup finds nothing and the blackhole takes the packet (fail closed until a clean
//!   stop removes the rules). After the local table: the router's own addresses in the
//!   subnet stay reachable. With AF_XDP only the blackhole (fwd's XDP program drops and
//!   counts while fwd runs);
//! - per WAN: `iif <wan tun> lookup <WAN table>`: what fwd writes into a WAN's TUN (source
//!   `A` after NAT) leaves by that WAN whatever main holds; then `from <A>/32 lookup main
//!   suppress_prefixlength 0` and `from <A>/32 lookup <WAN table>`: the router's own traffic
//!   sourced from `A` (link probes) leaves by that WAN, except where main has a specific
//!   route (the router answering a LAN host that addressed `A` answers on the LAN).
//!
//! ## Why frames fwd hands back reach the router itself
//! fwd writes a frame meant for the router into the TUN it arrived from. Its input
//! interface is then that TUN: no early rule matches (they all name real LAN and WAN
//! devices), so the lookup reaches the local table at `local_pref` and the kernel delivers
//! it. The `iif <wan tun>` and `from <A>` rules come after the local table, so they never
//! capture traffic for the router either.
//!
//! ## Sysctls (only values that differ are written; each is restored to the value read)
//! - `net.ipv4.ip_forward = 1`;
//! - per TUN `rp_filter = 0` and `accept_local = 1`: fwd writes packets whose source is the
//!   local address `A`;
//! - `net.ipv4.conf.all.rp_filter = 0`: the kernel applies the larger of `all` and a
//!   device's own value, and on a TUN (it has no address) any filtering, loose included,
//!   rejects the packets fwd writes into it (`ip route get 1.2.3.4 iif fwdw0 from A` fails
//!   with EINVAL). So that the real interfaces keep the filtering they had, every LAN and
//!   WAN device whose own `rp_filter` is below the old `all` value is raised to it first.
//!   Strict filtering on a WAN works: the `from <A>` rules route the reverse path out of it;
//! - `net.ipv4.ip_local_reserved_ports`: every WAN's NAT range appended (existing entries
//!   kept), so the kernel never gives fwd's NAT ports to its own sockets.
//!
//! Every TUN is set administratively up (and down again on removal if it was down).
//!
//! ## Routes the kernel drops
//! The kernel deletes every route through a device that is set administratively down, and
//! does not re-add them when it comes up. [`Installed::restore_routes`] puts fwd's back; the
//! daemon calls it every second (`daemon/route_keeper.rs`).
//!
//! ## Ownership, and a previous fwd that was killed
//! Every rule and route fwd adds carries protocol [`FWD_PROTO`] (`proto 245` in `ip rule`
//! and `ip route`). [`install`] first calls [`cleanup_stale`], which deletes every such rule
//! and route (re-adding `pref 0 lookup local` if fwd's moved copy is the only local lookup
//! left), so a restarted fwd just works after SIGKILL; hence one fwd per network namespace.
//! The sysctls a killed fwd changed stay as it left them (harmless for a router: its
//! original values are lost), and the next removal restores the values found at the next
//! start. After the cleanup, install refuses, with an error naming the object, a table that
//! holds a route or a priority that holds a rule that is not fwd's.
//!
//! Interfaces are resolved through netlink (a missing one is an error naming it). No
//! `unsafe`, no external commands. Needs Linux 4.17 or later (rule protocol, IP protocol and
//! port range selectors).

pub mod netlink;
mod plan;
pub(crate) mod routes;
mod rules;
mod sysctl;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::io;
use std::net::Ipv4Addr;
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, Ordering};

use ipnet::Ipv4Net;
use netlink_packet_route::route::RouteMessage;
use netlink_packet_route::route::RouteProtocol;
use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
use netlink_packet_route::AddressFamily;

use netlink::Netlink;
pub use netlink::NetlinkError;
use plan::{Observed, Step};
pub use rules::Proto;
use rules::{RuleSpec, TABLE_LOCAL};
use sysctl::Key;

/// The route and rule protocol number that marks fwd's own (`proto 245`).
pub const FWD_PROTO: u8 = 245;
pub const DEFAULT_TABLE_BASE: u32 = 4200;
pub const DEFAULT_EARLY_PREF: u32 = 100;
/// Leaves fwd's early rules 200 prefs: ten WANs and five LANs (see `plan::early_count`).
pub const DEFAULT_LOCAL_PREF: u32 = 300;
pub const DEFAULT_LATE_PREF: u32 = 1000;

/// What to steer. Table and priority numbering: see the module documentation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SteeringSpec {
    pub lans: Vec<LanSteer>,
    pub wans: Vec<WanSteer>,
    pub table_base: u32,
    /// First priority of the early rules (before the local table).
    pub early_pref: u32,
    /// Where the `pref 0 lookup local` rule is moved.
    pub local_pref: u32,
    /// First priority of the late rules (after the local table).
    pub late_pref: u32,
    /// The AF_XDP backend's steering: fwd's XDP program takes the data plane's frames before
    /// the kernel routes them, so only what the router's own traffic and the kernel sinks
    /// need is installed (the sysctls, the sinks up, each WAN's table and the rules for
    /// traffic from its address); the `tun` of each LAN and WAN names its kernel sink.
    pub xdp: bool,
}

impl Default for SteeringSpec {
    fn default() -> Self {
        SteeringSpec {
            lans: Vec::new(),
            wans: Vec::new(),
            table_base: DEFAULT_TABLE_BASE,
            early_pref: DEFAULT_EARLY_PREF,
            local_pref: DEFAULT_LOCAL_PREF,
            late_pref: DEFAULT_LATE_PREF,
            xdp: false,
        }
    }
}

/// A LAN: its OS interface, its TUN, and its subnets closed to the WANs (traffic from a
/// WAN device to them is fwd's to drop and count, and blackholed by the kernel when fwd is
/// not there to).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LanSteer {
    pub device: String,
    pub tun: String,
    pub closed: Vec<Ipv4Net>,
}

/// A WAN: its OS interface, its TUN, the router's address on it, the gateway, and the
/// NAT port range fwd owns on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WanSteer {
    pub device: String,
    pub tun: String,
    pub address: Ipv4Addr,
    pub gateway: Ipv4Addr,
    pub nat_ports: RangeInclusive<u16>,
    /// Ports forwarded to LAN servers (`[[forward]]`), by protocol: fwd's, like the NAT
    /// ports, from the WAN and (hairpin) from the LANs.
    pub forwards: Vec<(Proto, RangeInclusive<u16>)>,
}

#[derive(Debug, thiserror::Error)]
pub enum SteeringError {
    #[error("steering spec: {0}")]
    Spec(String),
    /// An interface of the spec cannot be found.
    #[error("{role} {name}: {source}")]
    Interface {
        role: &'static str,
        name: String,
        source: NetlinkError,
    },
    /// A netlink request failed: `what` names the object (`add route table 4200 default
    /// dev fwdl0 scope link`).
    #[error("{what}: {source}")]
    Netlink { what: String, source: NetlinkError },
    #[error("sysctl {key}: {source}")]
    Sysctl { key: String, source: io::Error },
    /// A rule or route that is not fwd's is in the way.
    #[error("{0}")]
    Conflict(String),
    #[error("kernel steering is already installed by this process")]
    AlreadyInstalled,
}

fn nl_err(what: impl Into<String>) -> impl FnOnce(NetlinkError) -> SteeringError {
    let what = what.into();
    move |source| SteeringError::Netlink { what, source }
}

fn sysctl_err(key: &Key) -> impl FnOnce(io::Error) -> SteeringError + '_ {
    move |source| SteeringError::Sysctl {
        key: key.to_string(),
        source,
    }
}

/// Set while an [`Installed`] of this process is alive: a second install (or a stale
/// cleanup) would delete its rules.
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Installs the steering for `spec`, after removing what a previous fwd left behind (see
/// [`cleanup_stale`]). All or nothing: when a step fails, the steps done are undone and
/// the error returned.
pub fn install(spec: &SteeringSpec) -> Result<Installed, SteeringError> {
    plan::validate(spec)?;
    if ACTIVE.swap(true, Ordering::SeqCst) {
        return Err(SteeringError::AlreadyInstalled);
    }
    let result = install_inner(spec);
    if result.is_err() {
        ACTIVE.store(false, Ordering::SeqCst);
    }
    result
}

fn install_inner(spec: &SteeringSpec) -> Result<Installed, SteeringError> {
    let mut nl = Netlink::open().map_err(nl_err("open a netlink socket"))?;
    for line in cleanup(&mut nl)? {
        log::info!("steering: removed stale {line} (left by an fwd that did not stop cleanly)");
    }
    let links = resolve_links(&mut nl, spec)?;
    let rules = nl.rule_dump().map_err(nl_err("list rules"))?;
    let routes = nl.route_dump().map_err(nl_err("list routes"))?;
    let local_at_zero = rules
        .iter()
        .find(|r| rules::is_local_lookup(r) && rules::priority(r) == 0)
        .cloned();
    plan::check_existing(spec, &rules, &routes, local_at_zero.is_some())?;

    let mut observed = Observed {
        local_at_zero: local_at_zero.is_some(),
        ..Observed::default()
    };
    for key in plan::sysctl_keys(spec) {
        let value = key.read().map_err(sysctl_err(&key))?;
        observed.sysctls.insert(key, value);
    }
    for (name, (_, up)) in &links {
        if *up {
            observed.up.insert(name.clone());
        }
    }

    let mut installed = Installed {
        done: Vec::new(),
        local_moved: false,
        nl: None,
        spec: spec.clone(),
        forwards: Vec::new(),
    };
    for step in plan::plan(spec, &observed) {
        match apply(&mut nl, &step, &links, local_at_zero.as_ref()) {
            Ok(undo) => {
                if step == Step::DeleteLocalAtZero {
                    installed.local_moved = true;
                }
                installed.done.push(Done {
                    line: step.to_string(),
                    undo,
                });
            }
            Err(e) => {
                log::info!(
                    "steering: `{step}` failed; undoing the {} changes made",
                    installed.done.len()
                );
                // Dropping `installed` undoes what was done (failures logged).
                drop(installed);
                return Err(e);
            }
        }
    }
    if let Err(e) = installed.add_forward_rules(&mut nl, &plan::forward_rules(spec)) {
        // Dropping `installed` undoes what was done (failures logged).
        drop(installed);
        return Err(e);
    }
    if local_at_zero.is_none() && !spec.wans.is_empty() && !spec.xdp {
        log::info!(
            "steering: the pref 0 `lookup local` rule was already absent; local rules left as \
             they are"
        );
    }
    let nat_ports: Vec<String> = spec
        .wans
        .iter()
        .map(|w| format!("{} {}-{}", w.device, w.nat_ports.start(), w.nat_ports.end()))
        .collect();
    log::info!(
        "steering: installed {} changes; NAT ports reserved from the kernel's own sockets: {}",
        installed.done.len(),
        nat_ports.join(", ")
    );
    Ok(installed)
}

/// Index and up state of every interface of the spec, by name.
fn resolve_links(
    nl: &mut Netlink,
    spec: &SteeringSpec,
) -> Result<BTreeMap<String, (u32, bool)>, SteeringError> {
    let named = spec
        .lans
        .iter()
        .flat_map(|l| [("LAN device", &l.device), ("LAN TUN", &l.tun)])
        .chain(
            spec.wans
                .iter()
                .flat_map(|w| [("WAN device", &w.device), ("WAN TUN", &w.tun)]),
        );
    let mut links = BTreeMap::new();
    for (role, name) in named {
        let link = nl.link(name).map_err(|source| SteeringError::Interface {
            role,
            name: name.clone(),
            source,
        })?;
        links.insert(name.clone(), link);
    }
    Ok(links)
}

fn index_of(links: &BTreeMap<String, (u32, bool)>, dev: &str) -> u32 {
    // Every device of a plan step comes from the spec, all resolved beforehand.
    links.get(dev).map_or(0, |l| l.0)
}

/// Performs one step; returns how to undo it.
fn apply(
    nl: &mut Netlink,
    step: &Step,
    links: &BTreeMap<String, (u32, bool)>,
    local_at_zero: Option<&RuleMessage>,
) -> Result<Undo, SteeringError> {
    match step {
        Step::LinkUp { dev } => {
            let index = index_of(links, dev);
            nl.link_set_up(index, true)
                .map_err(nl_err(format!("set link {dev} up")))?;
            Ok(Undo::LinkDown { index })
        }
        Step::Sysctl { key, value, was } => {
            key.write(value).map_err(sysctl_err(key))?;
            Ok(Undo::Sysctl {
                key: key.clone(),
                value: was.clone(),
            })
        }
        Step::Route(route) => {
            let msg = route.message(index_of(links, &route.dev));
            nl.route_add(msg.clone())
                .map_err(nl_err(format!("add {route}")))?;
            Ok(Undo::DelRoute(msg))
        }
        Step::Rule(rule) => {
            let msg = rule.message();
            nl.rule_add(msg.clone())
                .map_err(nl_err(format!("add {rule}")))?;
            Ok(Undo::DelRule(msg))
        }
        Step::DeleteLocalAtZero => {
            let msg = with_priority(local_at_zero.cloned().unwrap_or_else(kernel_local_rule), 0);
            nl.rule_del(msg.clone())
                .map_err(nl_err("delete rule pref 0 lookup local"))?;
            Ok(Undo::AddRule(msg))
        }
    }
}

/// The rule as the kernel creates it: `pref 0 lookup local proto kernel`.
fn kernel_local_rule() -> RuleMessage {
    let mut msg = RuleMessage::default();
    msg.header.family = AddressFamily::Inet;
    msg.header.action = RuleAction::ToTable;
    msg.header.table = rules::table_byte(TABLE_LOCAL);
    msg.attributes.push(RuleAttribute::Table(TABLE_LOCAL));
    msg.attributes
        .push(RuleAttribute::Protocol(RouteProtocol::Kernel));
    with_priority(msg, 0)
}

/// `msg` with an explicit priority attribute (the kernel omits it for priority 0 in dumps,
/// and without it an add would pick a priority and a delete would match any).
fn with_priority(mut msg: RuleMessage, pref: u32) -> RuleMessage {
    msg.attributes
        .retain(|a| !matches!(a, RuleAttribute::Priority(_)));
    msg.attributes.push(RuleAttribute::Priority(pref));
    msg
}

/// Removes every rule and route a previous fwd left (those with protocol [`FWD_PROTO`]).
/// If fwd's moved `lookup local` rule is the only one, `pref 0 lookup local` is re-added
/// first. Returns what was removed, in `ip rule`/`ip route` terms. [`install`] calls it;
/// refused while this process has steering installed.
pub fn cleanup_stale() -> Result<Vec<String>, SteeringError> {
    if ACTIVE.load(Ordering::SeqCst) {
        return Err(SteeringError::AlreadyInstalled);
    }
    let mut nl = Netlink::open().map_err(nl_err("open a netlink socket"))?;
    cleanup(&mut nl)
}

fn cleanup(nl: &mut Netlink) -> Result<Vec<String>, SteeringError> {
    let mut removed = Vec::new();
    let rules = nl.rule_dump().map_err(nl_err("list rules"))?;
    let mut foreign_local = rules
        .iter()
        .any(|r| rules::is_local_lookup(r) && !rules::is_ours(r));
    for rule in rules.iter().filter(|r| rules::is_ours(r)) {
        let line = format!("rule {}", rules::describe_dumped(rule));
        if rules::is_local_lookup(rule) && !foreign_local {
            nl.rule_add(kernel_local_rule())
                .map_err(nl_err("restore rule pref 0 lookup local"))?;
            removed.push("move of the local rule (restored rule pref 0 lookup local)".into());
            foreign_local = true;
        }
        match nl.rule_del(with_priority(rule.clone(), rules::priority(rule))) {
            Ok(()) => removed.push(line),
            Err(e) if e.is_absent() => {}
            Err(e) => return Err(nl_err(format!("remove stale {line}"))(e)),
        }
    }
    let stale_routes: Vec<RouteMessage> = nl
        .route_dump()
        .map_err(nl_err("list routes"))?
        .into_iter()
        .filter(routes::is_ours)
        .collect();
    for route in stale_routes {
        let line = routes::describe_dumped(&route);
        match nl.route_del(route) {
            Ok(()) => removed.push(line),
            Err(e) if e.is_absent() => {}
            Err(e) => return Err(nl_err(format!("remove stale {line}"))(e)),
        }
    }
    Ok(removed)
}

/// How to undo one step.
#[derive(Debug)]
enum Undo {
    LinkDown {
        index: u32,
    },
    Sysctl {
        key: Key,
        value: String,
    },
    DelRoute(RouteMessage),
    DelRule(RuleMessage),
    /// Re-add the kernel's `pref 0 lookup local` rule, as it was dumped.
    AddRule(RuleMessage),
}

#[derive(Debug)]
struct Done {
    line: String,
    undo: Undo,
}

/// The steering in place. [`Installed::remove`] undoes it and reports what could not be
/// undone; dropping it without calling `remove` removes it too (failures logged).
#[derive(Debug)]
pub struct Installed {
    done: Vec<Done>,
    local_moved: bool,
    /// The socket [`Installed::restore_routes`] keeps between calls.
    nl: Option<Netlink>,
    /// The spec installed, with the forwarded ports of the last [`Installed::set_forwards`].
    spec: SteeringSpec,
    /// The rules of the forwarded ports in place (`plan::forward_rules`), kept apart from
    /// `done` so that a reload can change them.
    forwards: Vec<(RuleSpec, RuleMessage)>,
}

/// What [`Installed::restore_routes`] did.
#[derive(Debug, Default)]
pub struct RouteRepair {
    /// The routes put back, in [`Installed::describe`] terms.
    pub restored: Vec<String>,
    /// Routes that could not be put back for another reason than their device being down.
    pub failed: Vec<SteeringError>,
}

impl Installed {
    /// One line per change, in the order made: `link fwdl0 up`, `sysctl net.ipv4.ip_forward
    /// = 1 (was 0)`, `route table 4200 default dev fwdl0 scope link`, `rule pref 100 iif
    /// wan0 to 10.0.0.2/32 ipproto tcp dport 20000-29999 lookup 4300`, ...
    pub fn describe(&self) -> Vec<String> {
        self.done.iter().map(|d| d.line.clone()).collect()
    }

    /// Whether fwd moved the kernel's `pref 0 lookup local` rule (false: it was already
    /// absent at install, and fwd left the local rules alone).
    pub fn local_moved(&self) -> bool {
        self.local_moved
    }

    /// Puts back every route of fwd's that the kernel dropped since [`install`]: the kernel
    /// deletes the routes through a device when the device is set administratively down
    /// (`ip link set wan0 down`, a driver reset, some PPP and DHCP clients), and does not
    /// put them back when it comes up again, so without this a WAN whose device went down
    /// and up would stay without its route, its probes and traffic failing, until fwd
    /// restarted. Tries to add each route fwd installed: one that is still there answers
    /// "exists", one whose device is (still) down answers so and is tried again at the next
    /// call. Returns the routes put back (in `describe` terms) and the failures of any other
    /// kind. Meant to be called every second or so by the daemon (a request per route).
    pub fn restore_routes(&mut self) -> RouteRepair {
        let mut repair = RouteRepair::default();
        let nl = match &mut self.nl {
            Some(nl) => nl,
            none => match Netlink::open() {
                Ok(nl) => none.insert(nl),
                Err(e) => {
                    repair.failed.push(nl_err("open a netlink socket")(e));
                    return repair;
                }
            },
        };
        for done in &self.done {
            let Undo::DelRoute(msg) = &done.undo else {
                continue;
            };
            match nl.route_add(msg.clone()) {
                Ok(()) => repair.restored.push(done.line.clone()),
                Err(e) if e.is_present() || e.is_device_down() => {}
                Err(e) => repair
                    .failed
                    .push(nl_err(format!("restore {}", done.line))(e)),
            }
        }
        repair
    }

    /// Makes the forwarded ports' rules those of `forwards` (per WAN of the spec, in its
    /// order: the protocol and ports of each forward on it): rules no longer wanted are
    /// deleted, new ones added; the others stay. Returns how many rules changed. On an error
    /// the rules changed so far stay changed and are tracked (a stop removes them).
    pub fn set_forwards(
        &mut self,
        forwards: &[Vec<(Proto, RangeInclusive<u16>)>],
    ) -> Result<usize, SteeringError> {
        for (wan, f) in self.spec.wans.iter_mut().zip(forwards) {
            wan.forwards.clone_from(f);
        }
        let wanted = plan::forward_rules(&self.spec);
        let mut nl = Netlink::open().map_err(nl_err("open a netlink socket"))?;
        let mut changed = 0;
        let mut kept = Vec::new();
        for (rule, msg) in std::mem::take(&mut self.forwards) {
            if wanted.contains(&rule) {
                kept.push((rule, msg));
                continue;
            }
            match nl.rule_del(msg.clone()) {
                Ok(()) => changed += 1,
                Err(e) if e.is_absent() => changed += 1,
                Err(e) => {
                    kept.push((rule.clone(), msg));
                    self.forwards = kept;
                    return Err(nl_err(format!("delete {rule}"))(e));
                }
            }
        }
        self.forwards = kept;
        let new: Vec<RuleSpec> = wanted
            .into_iter()
            .filter(|r| !self.forwards.iter().any(|(k, _)| k == r))
            .collect();
        changed += new.len();
        self.add_forward_rules(&mut nl, &new)?;
        Ok(changed)
    }

    /// Adds forwarded-port rules, tracking each one added.
    fn add_forward_rules(
        &mut self,
        nl: &mut Netlink,
        rules: &[RuleSpec],
    ) -> Result<(), SteeringError> {
        for rule in rules {
            let msg = rule.message();
            nl.rule_add(msg.clone())
                .map_err(nl_err(format!("add {rule}")))?;
            self.forwards.push((rule.clone(), msg));
        }
        Ok(())
    }

    /// Undoes every change, last first, going on past failures; returns the failures.
    /// Something already gone (a route whose TUN the engine closed) is not a failure.
    pub fn remove(mut self) -> Vec<SteeringError> {
        self.undo_all()
    }

    fn undo_all(&mut self) -> Vec<SteeringError> {
        let mut errors = Vec::new();
        if self.done.is_empty() && self.forwards.is_empty() {
            return errors;
        }
        let mut nl = match Netlink::open() {
            Ok(nl) => Some(nl),
            Err(e) => {
                errors.push(nl_err("open a netlink socket")(e));
                None
            }
        };
        for (rule, msg) in std::mem::take(&mut self.forwards) {
            self.done.push(Done {
                line: rule.to_string(),
                undo: Undo::DelRule(msg),
            });
        }
        let count = self.done.len();
        while let Some(done) = self.done.pop() {
            if let Err(e) = undo(nl.as_mut(), done) {
                log::warn!("steering: {e}");
                errors.push(e);
            }
        }
        log::info!(
            "steering: removed ({count} changes undone, {} failed)",
            errors.len()
        );
        errors
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        self.undo_all();
        ACTIVE.store(false, Ordering::SeqCst);
    }
}

fn undo(nl: Option<&mut Netlink>, done: Done) -> Result<(), SteeringError> {
    let what = format!("undo `{}`", done.line);
    if let Undo::Sysctl { key, value } = &done.undo {
        return match key.write(value) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(sysctl_err(key)(e)),
            _ => Ok(()), // done, or the device (a TUN) is gone with its settings
        };
    }
    let Some(nl) = nl else {
        return Err(SteeringError::Netlink {
            what,
            source: io::Error::from(io::ErrorKind::NotConnected).into(),
        });
    };
    let result = match done.undo {
        Undo::LinkDown { index, .. } => nl.link_set_up(index, false),
        Undo::DelRoute(msg) => nl.route_del(msg),
        Undo::DelRule(msg) => nl.rule_del(msg),
        Undo::AddRule(msg) => match nl.rule_add(msg) {
            Err(e) if e.is_present() => Ok(()),
            other => other,
        },
        Undo::Sysctl { .. } => Ok(()),
    };
    match result {
        // Already gone (a route or TUN the engine removed first): nothing to undo.
        Err(e) if !e.is_absent() => Err(SteeringError::Netlink { what, source: e }),
        _ => Ok(()),
    }
}
