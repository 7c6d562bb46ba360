//! The typed, validated configuration. Values of these types are produced by validation
//! (see the module doc for the invariants they satisfy); nothing here checks them again.

use std::net::Ipv4Addr;
use std::ops::RangeInclusive;
use std::time::Duration;

use ipnet::Ipv4Net;
use prober::core::ProbeConfig;

/// A whole, validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// LANs in file order (`[[lan]]`).
    pub lans: Vec<Lan>,
    /// WANs in file order (`[[wan]]`); at most 64.
    pub wans: Vec<Wan>,
    /// WAN groups in file order (`[[group]]`).
    pub groups: Vec<Group>,
    /// Policy rules, evaluated in this order; the first match wins, no match → main table.
    pub rules: Vec<Rule>,
    /// Port forwards (`[[forward]]`), in file order; no two share a WAN, protocol and port.
    pub forwards: Vec<Forward>,
    /// Connection tracking limits and timeouts (`[conntrack]`).
    pub conntrack: ConntrackConfig,
    /// Link health: what happens to flows of a WAN that went down, the event hook (`[health]`).
    pub health: Health,
    /// How frames reach fwd: the I/O backend and its settings (`[dataplane]`).
    pub dataplane: DataplaneConfig,
    /// Who may use the control socket (`[control]`).
    pub control: ControlConfig,
}

/// `[control]`: the control socket's groups. Root may always do everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ControlConfig {
    /// The group the socket belongs to: its members may connect and read (status, flows,
    /// counters, ...). `None`: the group fwd runs as.
    pub group: Option<String>,
    /// Members may also reload and disable or enable WANs. `None`: root only.
    pub admin_group: Option<String>,
}

/// Which I/O backend carries the frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// AF_XDP where every interface allows it, TUN otherwise.
    Auto,
    /// AF_XDP, or fwd does not start.
    AfXdp,
    /// TUN devices and kernel policy routing.
    Tun,
}

/// Where fwd's XDP program runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpMode {
    /// In the driver where it offers XDP, else in the kernel's generic path.
    Auto,
    /// In the driver only.
    Native,
    /// In the kernel's generic path (SKB mode) only.
    Generic,
}

/// `[dataplane]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataplaneConfig {
    /// Default `auto`.
    pub backend: Backend,
    /// Default `auto`.
    pub xdp_mode: XdpMode,
    /// Frames of 2048 bytes in each AF_XDP worker's UMEM: a power of two, 512..=262144.
    /// Default 4096 (8 MiB a worker).
    pub umem_frames: u32,
}

impl Default for DataplaneConfig {
    fn default() -> Self {
        DataplaneConfig {
            backend: Backend::Auto,
            xdp_mode: XdpMode::Auto,
            umem_frames: 4096,
        }
    }
}

/// A LAN-side interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lan {
    /// Unique among LANs and WANs.
    pub name: String,
    /// OS interface name; unique.
    pub interface: String,
    /// The router's own address on this LAN.
    pub address: Ipv4Addr,
    /// The LAN's subnet (network address, host bits cleared); contains `address`.
    pub subnet: Ipv4Net,
    /// More subnets reached through this LAN (host bits cleared).
    pub extra_subnets: Vec<Ipv4Net>,
    /// What happens to traffic from a WAN addressed into this LAN's subnets. Default `Drop`.
    pub inbound: Inbound,
}

/// Traffic from a WAN to a LAN's own addresses (not to a WAN address fwd translates).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inbound {
    /// Dropped and counted (`inbound_to_lan`), also while fwd is not running.
    Drop,
    /// The kernel's to route and filter (a routed public subnet, a VPN).
    Allow,
}

/// A WAN uplink.
#[derive(Debug, Clone, PartialEq)]
pub struct Wan {
    /// Unique among LANs and WANs.
    pub name: String,
    /// OS interface name; unique.
    pub interface: String,
    /// This WAN's address; source NAT rewrites to it.
    pub address: Ipv4Addr,
    /// The WAN's subnet (host bits cleared); contains `address` and `gateway`.
    pub subnet: Ipv4Net,
    /// Next hop for everything sent out of this WAN.
    pub gateway: Ipv4Addr,
    /// Default weight of this WAN in groups (≥ 1).
    pub weight: u32,
    /// Default tier of this WAN in groups (1 = most preferred).
    pub tier: u8,
    /// Ports (and ICMP ids) fwd owns on `address` for source NAT; first ≥ 1024.
    pub nat_ports: RangeInclusive<u16>,
    /// How the link is probed (`[wan.probe]` over `[health.probe]`, named after the WAN);
    /// `None` when no targets are configured: the WAN is never probed and counts as up.
    pub probe: Option<ProbeConfig>,
}

/// `[health]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Health {
    /// What happens to flows pinned to a WAN that goes down. Default `Migrate`.
    pub on_wan_down: OnWanDown,
    /// A command run (not waited for) on every WAN state change, with `FWD_*` variables.
    pub hook: Option<std::path::PathBuf>,
}

/// What happens to the flows of a WAN that went down (or was disabled).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnWanDown {
    /// UDP and ICMP flows continue on a live WAN from their next packet; TCP connections
    /// (which cannot change address) are reset towards the LAN client.
    #[default]
    Migrate,
    /// Every flow ends: TCP connections are reset, a UDP or ICMP packet is answered with ICMP
    /// host unreachable (the next one starts a new flow on a live WAN).
    Reset,
    /// Flows stay on the WAN until they expire; only new flows avoid it.
    Keep,
}

/// A set of WANs that rules can send traffic to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Unique among groups.
    pub name: String,
    /// At least one member, each WAN at most once.
    pub members: Vec<GroupMember>,
    /// What to do when no member is usable.
    pub last_resort: LastResort,
}

/// One WAN in a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    /// Index into [`Config::wans`].
    pub wan: usize,
    /// Weight within its tier (≥ 1); the WAN's weight when the group does not give one.
    pub weight: u32,
    /// Tier (1 = most preferred); the WAN's tier when the group does not give one.
    pub tier: u8,
}

/// What a group does with a new flow when none of its members is usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastResort {
    /// Drop and answer ICMP destination unreachable (the default).
    Unreachable,
    /// Drop silently.
    Blackhole,
    /// Route by the main table, as if no rule had matched.
    MainTable,
}

/// A policy rule: match conditions and an action. An empty match list matches anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Unique among rules.
    pub name: String,
    /// IP protocol number; `None` matches any protocol.
    pub proto: Option<u8>,
    /// Source subnets (any matches); empty = any source.
    pub src: Vec<Ipv4Net>,
    /// Destination subnets (any matches); empty = any destination.
    pub dst: Vec<Ipv4Net>,
    /// Source port ranges; non-empty only when `proto` is TCP (6) or UDP (17).
    pub src_ports: Vec<RangeInclusive<u16>>,
    /// Destination port ranges; non-empty only when `proto` is TCP (6) or UDP (17).
    pub dst_ports: Vec<RangeInclusive<u16>>,
    /// Indices into [`Config::lans`] the packet must arrive on; empty = any LAN.
    pub ingress: Vec<usize>,
    /// What to do with a matching flow.
    pub action: RuleAction,
    /// Keep a source address on one WAN for this idle time; only with `Group` / `Wan`.
    pub sticky: Option<Duration>,
}

/// A port forward (`[[forward]]`): a connection from the Internet to one of `wans`'
/// addresses on an external port of `ports` reaches the server `to`, and its replies leave by
/// the WAN it came in on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    /// Unique among forwards.
    pub name: String,
    /// Indices into [`Config::wans`] it applies on (at least one).
    pub wans: Vec<usize>,
    /// IP protocol numbers: TCP (6), UDP (17), or both.
    pub protos: Vec<u8>,
    /// External ports (none is 0).
    pub ports: RangeInclusive<u16>,
    /// The internal server: an address in the subnets of LAN `lan` (not the router's).
    pub to: Ipv4Addr,
    /// The server's port for the first external port; the others follow in order.
    pub to_port: u16,
    /// Index into [`Config::lans`] of the LAN whose subnets hold `to`.
    pub lan: usize,
}

impl Forward {
    /// The server's port for external port `port` (which must be one of `ports`).
    pub fn internal_port(&self, port: u16) -> u16 {
        self.to_port
            .wrapping_add(port.wrapping_sub(*self.ports.start()))
    }
}

/// The action of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleAction {
    /// Balance over a group: index into [`Config::groups`].
    Group(usize),
    /// Always use one WAN: index into [`Config::wans`].
    Wan(usize),
    /// Route by the main table (no policy, no NAT choice by fwd).
    MainTable,
    /// Drop silently.
    Blackhole,
    /// Drop and answer ICMP destination unreachable.
    Unreachable,
}

/// Connection tracking limits (`[conntrack]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConntrackConfig {
    /// Most sessions tracked at once (≥ 1, ≥ `shards`). Default 262144.
    pub max_sessions: u32,
    /// Number of table shards: a power of two in 1..=4096. Default 64.
    pub shards: u16,
    /// What to do when the table is full. Default evict.
    pub on_full: OnFull,
    /// Most fragmented datagrams tracked at once (≥ 1). Default 4096.
    pub max_fragments: u32,
    /// How long to wait for the rest of a fragmented datagram. Default 30 s.
    pub fragment_timeout: Duration,
    /// Most sticky source → WAN entries (≥ 1). Default 65536.
    pub sticky_max: u32,
    /// Most live sessions of one LAN host (IPv4 address), on all WANs together (≥ 1).
    /// Default 16384.
    pub max_sessions_per_host: u32,
    /// Most NAT ports one LAN host holds on one WAN, all protocols together (≥ 1). Default
    /// 8192.
    pub max_ports_per_host: u32,
    /// Idle timeouts per protocol and state.
    pub timeouts: Timeouts,
}

impl Default for ConntrackConfig {
    fn default() -> Self {
        ConntrackConfig {
            max_sessions: 262_144,
            shards: 64,
            on_full: OnFull::Evict,
            max_fragments: 4096,
            fragment_timeout: Duration::from_secs(30),
            sticky_max: 65_536,
            max_sessions_per_host: conntrack::DEFAULT_MAX_SESSIONS_PER_HOST,
            max_ports_per_host: conntrack::DEFAULT_MAX_PORTS_PER_HOST,
            timeouts: Timeouts::default(),
        }
    }
}

/// What to do with a new flow when the session table is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFull {
    /// Evict the longest-idle session.
    Evict,
    /// Refuse the new flow.
    Refuse,
}

/// Idle timeouts (`[conntrack.timeouts]`); all non-zero in a valid config. This is the
/// conntrack crate's own type, so its `Default` (RFC 4787, 5382 and 5508: UDP 300 s, ICMP
/// 60 s, TCP established 7440 s, TCP transitory 240 s, TCP closed 10 s) is the config's.
pub use conntrack::Timeouts;

impl Config {
    /// The LAN whose subnet or extra subnets contain `ip` (at most one, as LAN subnets do
    /// not overlap).
    pub fn lan_for(&self, ip: Ipv4Addr) -> Option<usize> {
        self.lans.iter().position(|lan| {
            lan.subnet.contains(&ip) || lan.extra_subnets.iter().any(|n| n.contains(&ip))
        })
    }

    /// The first WAN whose address is `ip`. Several WANs may share an address (with
    /// disjoint `nat_ports`); then this is the first of them in file order.
    pub fn wan_by_address(&self, ip: Ipv4Addr) -> Option<usize> {
        self.wans.iter().position(|wan| wan.address == ip)
    }
}
