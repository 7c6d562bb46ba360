//! What install will do, decided without touching the system: spec validation, the table
//! and priority numbering, the ordered list of [`Step`]s for a spec and the state observed
//! before it, and the check that fwd's tables and priorities are free.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;
use std::ops::RangeInclusive;

use ipnet::Ipv4Net;
use netlink_packet_route::route::RouteMessage;
use netlink_packet_route::rule::RuleMessage;

use super::routes::{self, RouteSpec};
use super::rules::{self, Action, Proto, RuleSpec, TABLE_LOCAL, TABLE_MAIN};
use super::sysctl::{self, Key};
use super::{SteeringError, SteeringSpec};

/// At most this many LANs and WANs together (the table numbering leaves room for 100).
pub const MAX_INTERFACES: usize = 100;
/// WAN `j`'s inbound table is `table_base + WAN_INBOUND_OFFSET + j`.
pub const WAN_INBOUND_OFFSET: u32 = 100;
/// The kernel's `main` rule; fwd's late rules must come before it.
const MAIN_PREF: u32 = 32766;
/// Longest interface name (IFNAMSIZ − 1).
const MAX_NAME_LEN: usize = 15;

/// Early rules per WAN (inbound tcp, udp, icmp; besides the one or two of
/// [`kernel_port_ranges`]) and per LAN and WAN (hairpin tcp, udp, icmp); late rules per LAN
/// (two) and per WAN (three).
const EARLY_PER_WAN: usize = 3;
const EARLY_PER_LAN_WAN: usize = 3;
const LATE_PER_LAN: usize = 2;
const LATE_PER_WAN: usize = 3;
/// Late rules per WAN with the AF_XDP backend (traffic from its address only).
const LATE_PER_WAN_XDP: usize = 2;
/// Late rules per WAN and closed LAN subnet: to fwd, then blackhole (AF_XDP: blackhole only,
/// the XDP program drops and counts).
const LATE_PER_WAN_CLOSED: usize = 2;
const LATE_PER_WAN_CLOSED_XDP: usize = 1;
/// The highest port a rule's port range can hold: the kernel refuses ranges that end at
/// 65535, and ranges that hold port 0.
const MAX_RULE_PORT: u16 = 65534;

impl SteeringSpec {
    /// LAN `i`'s table: `default dev <its TUN>`.
    pub fn lan_table(&self, i: usize) -> u32 {
        self.table_base + index(i)
    }

    /// WAN `j`'s outbound table: `default via <gateway> dev <its device> onlink`. LANs and
    /// WANs are numbered together, LANs first, as the plan numbers interfaces.
    pub fn wan_table(&self, j: usize) -> u32 {
        self.table_base + index(self.lans.len() + j)
    }

    /// WAN `j`'s inbound table: `default dev <its TUN>`.
    pub fn wan_inbound_table(&self, j: usize) -> u32 {
        self.table_base + WAN_INBOUND_OFFSET + index(j)
    }

    fn tables(&self) -> Vec<u32> {
        if self.xdp {
            return (0..self.wans.len()).map(|j| self.wan_table(j)).collect();
        }
        let mut t: Vec<u32> = (0..self.lans.len()).map(|i| self.lan_table(i)).collect();
        t.extend((0..self.wans.len()).map(|j| self.wan_table(j)));
        t.extend((0..self.wans.len()).map(|j| self.wan_inbound_table(j)));
        t
    }

    /// Whether the kernel's `pref 0 lookup local` rule moves (only the TUN steering has
    /// early rules to put before it).
    fn moves_local(&self) -> bool {
        !self.xdp && !self.wans.is_empty()
    }

    fn early_count(&self) -> usize {
        if self.xdp {
            return 0;
        }
        let kernel_ports: usize = self
            .wans
            .iter()
            .map(|w| kernel_port_ranges(&w.nat_ports).count())
            .sum();
        kernel_ports
            + self.wans.len() * EARLY_PER_WAN
            + self.lans.len() * self.wans.len() * EARLY_PER_LAN_WAN
    }

    fn late_count(&self) -> usize {
        let closed: usize = self.lans.iter().map(|l| l.closed.len()).sum();
        if self.xdp {
            return self.wans.len() * (LATE_PER_WAN_XDP + closed * LATE_PER_WAN_CLOSED_XDP);
        }
        self.lans.len() * LATE_PER_LAN
            + self.wans.len() * (LATE_PER_WAN + closed * LATE_PER_WAN_CLOSED)
    }

    /// Every priority fwd's own rules take (the moved local rule's not included).
    fn prefs(&self) -> BTreeSet<u32> {
        let early = (0..self.early_count()).map(|k| self.early_pref + index(k));
        let late = (0..self.late_count()).map(|k| self.late_pref + index(k));
        early.chain(late).collect()
    }
}

fn index(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

/// The ports of a WAN address that stay the kernel's, as rule port ranges: those below the
/// NAT range, and those above it up to [`MAX_RULE_PORT`]. Everything else of TCP and UDP to
/// the address goes to fwd: its NAT ports, and the later fragments of a datagram, which
/// carry no ports (a rule cannot name port 0; fwd gives back to the kernel the fragments
/// that are not its own, and anything to port 65535).
fn kernel_port_ranges(nat: &RangeInclusive<u16>) -> impl Iterator<Item = RangeInclusive<u16>> {
    let (first, last) = (*nat.start(), *nat.end());
    let below = (first > 1).then(|| 1..=first - 1);
    let above = (last < MAX_RULE_PORT).then(|| last + 1..=MAX_RULE_PORT);
    below.into_iter().chain(above)
}

/// `iif IIF to TO ipproto PROTO lookup TABLE`.
fn to_fwd(iif: &str, to: Ipv4Addr, proto: Proto, table: u32) -> RuleSpec {
    RuleSpec {
        iif: Some(iif.to_string()),
        to: Some(Ipv4Net::from(to)),
        proto: Some(proto),
        ..RuleSpec::lookup(0, table)
    }
}

/// The rules that send forwarded ports to fwd (with TUN devices; none with AF_XDP, whose
/// program does): per WAN and forwarded port range, one from the WAN to its inbound table
/// and one from each LAN (hairpin) to the LAN's table, all at `early_pref - 1`, before the
/// rules that keep a WAN address's other ports the kernel's. Rules of one priority are
/// tried in the order added; these never overlap (no two forwards share a WAN, protocol and
/// port), so a reload can add and remove them one by one.
pub(super) fn forward_rules(spec: &SteeringSpec) -> Vec<RuleSpec> {
    let mut out = Vec::new();
    if spec.xdp {
        return out;
    }
    for (j, wan) in spec.wans.iter().enumerate() {
        for (proto, ports) in &wan.forwards {
            // 65535 goes to fwd anyway (see `kernel_port_ranges`)
            let ports = *ports.start()..=(*ports.end()).min(MAX_RULE_PORT);
            if ports.is_empty() {
                continue;
            }
            let dev = std::iter::once((wan.device.as_str(), spec.wan_inbound_table(j)));
            let lans = spec
                .lans
                .iter()
                .enumerate()
                .map(|(i, l)| (l.device.as_str(), spec.lan_table(i)));
            for (iif, table) in dev.chain(lans) {
                out.push(RuleSpec {
                    pref: spec.early_pref - 1,
                    dports: Some(ports.clone()),
                    ..to_fwd(iif, wan.address, *proto, table)
                });
            }
        }
    }
    out
}

/// Rejects a spec whose names, numbers or ranges cannot work.
pub fn validate(spec: &SteeringSpec) -> Result<(), SteeringError> {
    let bad = |m: String| Err(SteeringError::Spec(m));
    if spec.lans.len() + spec.wans.len() > MAX_INTERFACES {
        return bad(format!("at most {MAX_INTERFACES} LANs and WANs together"));
    }
    let mut names = BTreeSet::new();
    let all_names = spec
        .lans
        .iter()
        .flat_map(|l| [&l.device, &l.tun])
        .chain(spec.wans.iter().flat_map(|w| [&w.device, &w.tun]));
    for name in all_names {
        if name.is_empty()
            || name.len() > MAX_NAME_LEN
            || name == "."
            || name == ".."
            || name.contains(|c: char| c == '/' || c == ':' || c.is_whitespace())
        {
            return bad(format!("bad interface name {name:?}"));
        }
        if !names.insert(name.as_str()) {
            return bad(format!("interface {name} appears twice"));
        }
    }
    let mut addresses = BTreeSet::new();
    for w in &spec.wans {
        if w.address.is_unspecified() || w.gateway.is_unspecified() {
            return bad(format!("WAN {}: address and gateway must be set", w.device));
        }
        if !addresses.insert(w.address) {
            return bad(format!("WAN address {} appears twice", w.address));
        }
        if w.nat_ports.is_empty() || *w.nat_ports.start() == 0 {
            return bad(format!(
                "WAN {}: bad NAT port range {}-{}",
                w.device,
                w.nat_ports.start(),
                w.nat_ports.end()
            ));
        }
    }
    let last_table = u64::from(spec.table_base)
        + u64::from(WAN_INBOUND_OFFSET)
        + u64::try_from(MAX_INTERFACES).unwrap_or(u64::MAX);
    if last_table > u64::from(u32::MAX) {
        return bad(format!("table_base {} is too large", spec.table_base));
    }
    if let Some(t) = spec
        .tables()
        .into_iter()
        .find(|t| [0, 253, 254, 255].contains(t))
    {
        return bad(format!(
            "table {t} is reserved by the kernel; choose another table_base"
        ));
    }
    let early_end = u64::from(spec.early_pref) + u64::try_from(spec.early_count()).unwrap_or(0);
    if spec.early_pref < 2 || early_end > u64::from(spec.local_pref) {
        return bad(format!(
            "early rules take prefs {}..{early_end} (and the forwarded ports' rules the one \
             before): they need early_pref > 1 and to end at or before local_pref {}",
            spec.early_pref, spec.local_pref
        ));
    }
    let late_end = u64::from(spec.late_pref) + u64::try_from(spec.late_count()).unwrap_or(0);
    if spec.late_pref <= spec.local_pref || late_end > u64::from(MAIN_PREF) {
        return bad(format!(
            "late rules take prefs {}..{late_end}: they must come after local_pref {} and \
             before the main table's rule (pref {MAIN_PREF})",
            spec.late_pref, spec.local_pref
        ));
    }
    Ok(())
}

/// One change install makes; undone in reverse order on removal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    LinkUp {
        dev: String,
    },
    Sysctl {
        key: Key,
        value: String,
        was: String,
    },
    Route(RouteSpec),
    Rule(RuleSpec),
    /// Delete the kernel's `pref 0 lookup local` rule (re-added as it was on removal).
    DeleteLocalAtZero,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::LinkUp { dev } => write!(f, "link {dev} up"),
            Step::Sysctl { key, value, was } => {
                let show = |v: &str| {
                    if v.is_empty() {
                        "(empty)".to_string()
                    } else {
                        v.to_string()
                    }
                };
                write!(f, "sysctl {key} = {} (was {})", show(value), show(was))
            }
            Step::Route(r) => write!(f, "{r}"),
            Step::Rule(r) => write!(f, "{r}"),
            Step::DeleteLocalAtZero => write!(f, "delete rule pref 0 lookup local"),
        }
    }
}

/// The system's state as far as the plan depends on it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// Current values of every sysctl of [`sysctl_keys`].
    pub sysctls: BTreeMap<Key, String>,
    /// TUN devices already administratively up.
    pub up: BTreeSet<String>,
    /// Whether the kernel's `pref 0 lookup local` rule is there (else it was moved by
    /// someone else, and fwd leaves it where it is).
    pub local_at_zero: bool,
}

/// The sysctls the plan reads.
pub fn sysctl_keys(spec: &SteeringSpec) -> Vec<Key> {
    let mut keys = vec![
        Key::ip_forward(),
        Key::conf("all", "rp_filter"),
        Key::reserved_ports(),
    ];
    for dev in devices(spec) {
        keys.push(Key::conf(dev, "rp_filter"));
    }
    for tun in tuns(spec) {
        keys.push(Key::conf(tun, "rp_filter"));
        keys.push(Key::conf(tun, "accept_local"));
    }
    keys
}

/// The real LAN and WAN interfaces.
fn devices(spec: &SteeringSpec) -> impl Iterator<Item = &str> {
    spec.lans
        .iter()
        .map(|l| l.device.as_str())
        .chain(spec.wans.iter().map(|w| w.device.as_str()))
}

fn tuns(spec: &SteeringSpec) -> impl Iterator<Item = &str> {
    spec.lans
        .iter()
        .map(|l| l.tun.as_str())
        .chain(spec.wans.iter().map(|w| w.tun.as_str()))
}

/// Everything install does, in order, for a valid spec.
pub fn plan(spec: &SteeringSpec, observed: &Observed) -> Vec<Step> {
    let mut steps = Vec::new();
    for tun in tuns(spec) {
        if !observed.up.contains(tun) {
            steps.push(Step::LinkUp {
                dev: tun.to_string(),
            });
        }
    }

    let mut set = |key: Key, value: Option<String>| {
        let was = observed.sysctls.get(&key).cloned().unwrap_or_default();
        if let Some(value) = value.filter(|v| *v != was) {
            steps.push(Step::Sysctl { key, value, was });
        }
    };
    set(Key::ip_forward(), Some("1".into()));
    let value = |key: &Key| observed.sysctls.get(key).cloned().unwrap_or_default();
    let all_rp = Key::conf("all", "rp_filter");
    let own: Vec<(&str, String)> = devices(spec)
        .map(|d| (d, value(&Key::conf(d, "rp_filter"))))
        .collect();
    let own: Vec<(&str, &str)> = own.iter().map(|(d, v)| (*d, v.as_str())).collect();
    let (raise, level) = sysctl::rp_filter_handover(&value(&all_rp), &own);
    for dev in raise {
        set(Key::conf(dev, "rp_filter"), Some(level.to_string()));
    }
    if level > 0 {
        set(all_rp, Some("0".into()));
    }
    for tun in tuns(spec) {
        set(Key::conf(tun, "rp_filter"), Some("0".into()));
        set(Key::conf(tun, "accept_local"), Some("1".into()));
    }
    let reserved = observed
        .sysctls
        .get(&Key::reserved_ports())
        .cloned()
        .unwrap_or_default();
    let ranges: Vec<_> = spec.wans.iter().map(|w| w.nat_ports.clone()).collect();
    set(
        Key::reserved_ports(),
        Some(sysctl::merge_reserved_ports(&reserved, &ranges)),
    );

    for (i, lan) in spec.lans.iter().enumerate().filter(|_| !spec.xdp) {
        steps.push(Step::Route(RouteSpec {
            table: spec.lan_table(i),
            dev: lan.tun.clone(),
            via: None,
        }));
    }
    for (j, wan) in spec.wans.iter().enumerate() {
        steps.push(Step::Route(RouteSpec {
            table: spec.wan_table(j),
            dev: wan.device.clone(),
            via: Some(wan.gateway),
        }));
        if !spec.xdp {
            steps.push(Step::Route(RouteSpec {
                table: spec.wan_inbound_table(j),
                dev: wan.tun.clone(),
                via: None,
            }));
        }
    }
    if spec.xdp {
        let rules = spec.wans.iter().enumerate().flat_map(|(j, wan)| {
            closed_lan_rules(spec, j).chain(from_wan_rules(spec, j, wan.address))
        });
        for (r, pref) in rules.zip(spec.late_pref..) {
            steps.push(Step::Rule(RuleSpec { pref, ..r }));
        }
        return steps;
    }

    if observed.local_at_zero && spec.moves_local() {
        steps.push(Step::Rule(RuleSpec::lookup(spec.local_pref, TABLE_LOCAL)));
        steps.push(Step::DeleteLocalAtZero);
    }

    // the forwarded ports' rules come just before, at `early_pref - 1` (`forward_rules`)
    let mut pref = spec.early_pref;
    let mut rule = |r: RuleSpec| {
        steps.push(Step::Rule(RuleSpec { pref, ..r }));
        pref += 1;
    };
    for (j, wan) in spec.wans.iter().enumerate() {
        // The kernel's own ports on the address first, from any interface (but the
        // forwarded ones, whose rules come before); then the rest of TCP, UDP and ICMP
        // from the WAN: NAT ports and port-less later fragments.
        for ports in kernel_port_ranges(&wan.nat_ports) {
            rule(RuleSpec {
                to: Some(Ipv4Net::from(wan.address)),
                dports: Some(ports),
                ..RuleSpec::lookup(0, TABLE_LOCAL)
            });
        }
        for proto in [Proto::Tcp, Proto::Udp, Proto::Icmp] {
            rule(to_fwd(
                &wan.device,
                wan.address,
                proto,
                spec.wan_inbound_table(j),
            ));
        }
    }
    for (i, lan) in spec.lans.iter().enumerate() {
        for wan in &spec.wans {
            for proto in [Proto::Tcp, Proto::Udp, Proto::Icmp] {
                rule(to_fwd(&lan.device, wan.address, proto, spec.lan_table(i)));
            }
        }
    }

    pref = spec.late_pref;
    let mut rule = |r: RuleSpec| {
        steps.push(Step::Rule(RuleSpec { pref, ..r }));
        pref += 1;
    };
    for (i, lan) in spec.lans.iter().enumerate() {
        let iif = Some(lan.device.clone());
        rule(RuleSpec {
            iif: iif.clone(),
            suppress_prefixlength: Some(0),
            ..RuleSpec::lookup(0, TABLE_MAIN)
        });
        rule(RuleSpec {
            iif,
            ..RuleSpec::lookup(0, spec.lan_table(i))
        });
    }
    for (j, wan) in spec.wans.iter().enumerate() {
        for r in closed_lan_rules(spec, j) {
            rule(r);
        }
        rule(RuleSpec {
            iif: Some(wan.tun.clone()),
            ..RuleSpec::lookup(0, spec.wan_table(j))
        });
        for r in from_wan_rules(spec, j, wan.address) {
            rule(r);
        }
    }
    steps
}

/// The rules that keep traffic arriving on WAN `j`'s device out of the closed LAN subnets:
/// with TUN, to fwd's inbound table (fwd drops and counts it); then a blackhole, which
/// takes it when that table is empty, i.e. when fwd is not running (its TUN, and the route
/// through it, went away with it). Behind the local table, so the router's own addresses
/// stay reachable. Priorities still to be set.
fn closed_lan_rules(spec: &SteeringSpec, j: usize) -> impl Iterator<Item = RuleSpec> + '_ {
    let device = spec.wans.get(j).map(|w| w.device.clone());
    spec.lans
        .iter()
        .flat_map(|l| l.closed.iter().copied())
        .flat_map(move |net| {
            let selector = |action| RuleSpec {
                iif: device.clone(),
                to: Some(net),
                action,
                ..RuleSpec::lookup(0, 0)
            };
            let to_fwd = (!spec.xdp).then(|| selector(Action::Lookup(spec.wan_inbound_table(j))));
            to_fwd.into_iter().chain([selector(Action::Blackhole)])
        })
}

/// The rules that send the router's own traffic from WAN `j`'s address out of that WAN
/// (its connected subnet stays the main table's); priorities still to be set.
fn from_wan_rules(spec: &SteeringSpec, j: usize, address: Ipv4Addr) -> [RuleSpec; 2] {
    [
        RuleSpec {
            from: Some(address),
            suppress_prefixlength: Some(0),
            ..RuleSpec::lookup(0, TABLE_MAIN)
        },
        RuleSpec {
            from: Some(address),
            ..RuleSpec::lookup(0, spec.wan_table(j))
        },
    ]
}

/// Refuses to install over rules or routes that are not fwd's: a rule at one of fwd's
/// priorities or looking up one of its tables, a route in one of its tables. When the
/// `pref 0 lookup local` rule is absent, the local table must still be looked up after
/// fwd's early rules and before its late ones. `rules` and `routes` are the system's, with
/// fwd's stale ones already removed.
pub fn check_existing(
    spec: &SteeringSpec,
    rules: &[RuleMessage],
    routes: &[RouteMessage],
    local_at_zero: bool,
) -> Result<(), SteeringError> {
    let tables = spec.tables();
    let mut prefs = spec.prefs();
    if local_at_zero && spec.moves_local() {
        prefs.insert(spec.local_pref);
    }
    for r in rules {
        let pref = rules::priority(r);
        if prefs.contains(&pref) {
            return Err(SteeringError::Conflict(format!(
                "rule pref {pref} is taken by `{}`; move it or configure other steering \
                 prefs",
                rules::describe_dumped(r)
            )));
        }
        if tables.contains(&rules::table(r)) {
            return Err(SteeringError::Conflict(format!(
                "rule `{}` uses table {}, one of fwd's; move it or configure another \
                 table_base",
                rules::describe_dumped(r),
                rules::table(r)
            )));
        }
    }
    if let Some(r) = routes.iter().find(|r| tables.contains(&routes::table(r))) {
        return Err(SteeringError::Conflict(format!(
            "table {} is not empty (`{}`); fwd needs its tables {}..={} empty: configure \
             another table_base",
            routes::table(r),
            routes::describe_dumped(r),
            tables.iter().min().copied().unwrap_or_default(),
            tables.iter().max().copied().unwrap_or_default(),
        )));
    }
    if local_at_zero || !spec.moves_local() {
        return Ok(());
    }
    let first_local = rules
        .iter()
        .filter(|r| rules::is_local_lookup(r))
        .map(rules::priority)
        .min();
    let early_last = spec.early_pref + index(spec.early_count()).saturating_sub(1);
    match first_local {
        Some(p) if p > early_last && p < spec.late_pref => Ok(()),
        Some(p) => Err(SteeringError::Conflict(format!(
            "the local table is looked up at pref {p} (the pref 0 rule was moved): fwd's \
             early rules (prefs {}..={early_last}) must come before it and its late rules \
             (from pref {}) after it; configure early_pref and late_pref around {p}",
            spec.early_pref, spec.late_pref
        ))),
        None => Err(SteeringError::Conflict(
            "no IPv4 rule looks up the local table".to_string(),
        )),
    }
}
