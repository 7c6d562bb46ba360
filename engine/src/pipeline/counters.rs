//! Named counters of one worker: every drop has a reason, every reason a counter. Written by
//! the owning worker only (a relaxed load and store, no read-modify-write), read by anyone.

use std::sync::atomic::{AtomicU64, Ordering};

/// Why a frame was not forwarded. Names are stable: they are what `fwdctl counters` shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// Frame shorter than its link header.
    MalformedL2,
    /// IPv4 header invalid (version, header length, total length).
    MalformedIpv4,
    /// IPv4 header checksum wrong.
    BadIpChecksum,
    /// TCP, UDP or ICMP header missing or inconsistent.
    MalformedTransport,
    /// ICMP error whose quoted packet cannot be read.
    MalformedIcmpError,
    /// A valid IPv6 packet to be forwarded (fwd forwards IPv4 only yet; IPv6 neighbour
    /// discovery and link-scoped or multicast traffic go to the kernel).
    UnsupportedIpv6,
    /// Link-layer protocol other than IPv4, IPv6 or ARP.
    UnsupportedEtherType,
    /// IP protocol other than TCP, UDP, ICMP.
    UnsupportedProtocol,
    /// ICMP message other than echo and errors (redirects, timestamps...).
    UnsupportedIcmp,
    /// Frame from an interface the plan does not know.
    UnknownInterface,
    /// Packet from a LAN, to be forwarded, whose source lies outside that LAN's subnets.
    LanSourceInvalid,
    /// TTL ran out here (an ICMP time exceeded is sent back when allowed).
    TtlExpired,
    /// A later fragment whose first fragment was not seen (or expired).
    FragmentWithoutFirst,
    /// The fragment table had no room to remember a first fragment.
    FragmentTableFull,
    /// TCP packet from the LAN that matches no session and is not a bare SYN (answered with a
    /// reset unless it is one).
    TcpNotSyn,
    /// Packet from the LAN that matches no session and cannot start one (e.g. an echo reply).
    NoSessionOutbound,
    /// Packet to a NAT port with no session for its sender.
    NoSessionInbound,
    /// Packet from a WAN to an address in a LAN's subnets: nothing reaches the LANs from a
    /// WAN but what fwd translates (with AF_XDP, fwd's XDP program drops these; its count
    /// is added to this one).
    InboundToLan,
    /// ICMP error from the LAN about a flow fwd does not know.
    IcmpErrorNoSession,
    /// A rule or last resort said blackhole.
    Blackhole,
    /// A rule or last resort said unreachable (an ICMP host unreachable is sent back).
    Unreachable,
    /// The connection table was full and the config says refuse.
    TableFull,
    /// No free NAT port on the chosen WAN.
    PortsExhausted,
    /// The LAN host had `[conntrack] max_sessions_per_host` sessions: its new flow was refused
    /// (before any eviction, so it takes no other host's session).
    HostSessionLimit,
    /// The flow needed a new NAT port and its LAN host held `[conntrack] max_ports_per_host`
    /// ports on every eligible WAN of its decision.
    HostPortLimit,
    /// Larger than the egress interface's MTU: answered with ICMP fragmentation needed
    /// when it has DF set (path MTU discovery), dropped otherwise (fwd does not fragment).
    TooBig,
    /// The egress queue was full.
    TxQueueFull,
    /// A packet of a flow pinned to a WAN that went down (`on_wan_down = migrate | reset`):
    /// a TCP reset or an ICMP host unreachable went back to the sender instead, when allowed.
    WanDown,
    /// A TCP segment of a tracked connection outside its sequence window (a spoofed or stale
    /// segment: see conntrack's `window.rs`); the connection is left as it was.
    TcpOutOfWindow,
    /// A TCP segment with SYN, FIN or RST (one that could open or close a connection) whose
    /// checksum is wrong.
    TcpBadChecksum,
    /// A fragment of a TCP segment with SYN, FIN or RST: its checksum cannot be verified
    /// without the rest of the datagram (fwd does not reassemble), so it may not change a
    /// connection's state.
    TcpControlFragment,
    /// A connection to a forwarded port that cannot be tracked: its flow is another
    /// session's (the server reaches the same remote endpoint from the same port), or a NAT
    /// mapping still holds the port (a forward added by a reload on a port in use).
    ForwardConflict,
    /// A UDP datagram that would open a session, with a wrong checksum.
    UdpBadChecksum,
    /// IPv6 header or extension headers invalid (version, payload length against the frame,
    /// a truncated or misplaced extension header, more than eight of them), or the upper-layer
    /// header missing or inconsistent.
    MalformedIpv6,
}

impl DropReason {
    pub const ALL: [DropReason; 34] = [
        DropReason::MalformedL2,
        DropReason::MalformedIpv4,
        DropReason::BadIpChecksum,
        DropReason::MalformedTransport,
        DropReason::MalformedIcmpError,
        DropReason::UnsupportedIpv6,
        DropReason::UnsupportedEtherType,
        DropReason::UnsupportedProtocol,
        DropReason::UnsupportedIcmp,
        DropReason::UnknownInterface,
        DropReason::LanSourceInvalid,
        DropReason::TtlExpired,
        DropReason::FragmentWithoutFirst,
        DropReason::FragmentTableFull,
        DropReason::TcpNotSyn,
        DropReason::NoSessionOutbound,
        DropReason::NoSessionInbound,
        DropReason::InboundToLan,
        DropReason::IcmpErrorNoSession,
        DropReason::Blackhole,
        DropReason::Unreachable,
        DropReason::TableFull,
        DropReason::PortsExhausted,
        DropReason::HostSessionLimit,
        DropReason::HostPortLimit,
        DropReason::TooBig,
        DropReason::TxQueueFull,
        DropReason::WanDown,
        DropReason::TcpOutOfWindow,
        DropReason::TcpBadChecksum,
        DropReason::TcpControlFragment,
        DropReason::ForwardConflict,
        DropReason::UdpBadChecksum,
        DropReason::MalformedIpv6,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DropReason::MalformedL2 => "malformed_l2",
            DropReason::MalformedIpv4 => "malformed_ipv4",
            DropReason::BadIpChecksum => "bad_ip_checksum",
            DropReason::MalformedTransport => "malformed_transport",
            DropReason::MalformedIcmpError => "malformed_icmp_error",
            DropReason::UnsupportedIpv6 => "unsupported_ipv6",
            DropReason::UnsupportedEtherType => "unsupported_ethertype",
            DropReason::UnsupportedProtocol => "unsupported_protocol",
            DropReason::UnsupportedIcmp => "unsupported_icmp",
            DropReason::UnknownInterface => "unknown_interface",
            DropReason::LanSourceInvalid => "lan_source_invalid",
            DropReason::TtlExpired => "ttl_expired",
            DropReason::FragmentWithoutFirst => "fragment_without_first",
            DropReason::FragmentTableFull => "fragment_table_full",
            DropReason::TcpNotSyn => "tcp_not_syn",
            DropReason::NoSessionOutbound => "no_session_outbound",
            DropReason::NoSessionInbound => "no_session_inbound",
            DropReason::InboundToLan => "inbound_to_lan",
            DropReason::IcmpErrorNoSession => "icmp_error_no_session",
            DropReason::Blackhole => "blackhole",
            DropReason::Unreachable => "unreachable",
            DropReason::TableFull => "table_full",
            DropReason::PortsExhausted => "ports_exhausted",
            DropReason::HostSessionLimit => "host_session_limit",
            DropReason::HostPortLimit => "host_port_limit",
            DropReason::TooBig => "too_big",
            DropReason::TxQueueFull => "tx_queue_full",
            DropReason::WanDown => "wan_down",
            DropReason::TcpOutOfWindow => "tcp_out_of_window",
            DropReason::TcpBadChecksum => "tcp_bad_checksum",
            DropReason::TcpControlFragment => "tcp_control_fragment",
            DropReason::ForwardConflict => "forward_conflict",
            DropReason::UdpBadChecksum => "udp_bad_checksum",
            DropReason::MalformedIpv6 => "malformed_ipv6",
        }
    }
}

/// Things that happened, other than drops.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Event {
    /// Frames forwarded (fast or slow path; ICMP errors fwd generates count as
    /// `icmp_errors_sent` instead).
    Forwarded,
    /// Frames handed to the kernel (traffic for the box itself, main-table routing, ARP).
    ToKernel,
    /// Sessions this worker created.
    SessionsCreated,
    /// ICMP errors fwd generated.
    IcmpErrorsSent,
    /// ICMP errors not sent because of the rate limit or RFC 1812's rules.
    IcmpErrorsSuppressed,
    /// TCP resets sent to LAN clients: their connection's WAN went down, or their segment has
    /// no session.
    TcpResetsSent,
    /// TCP resets not sent because of the rate limit (shared with ICMP errors).
    TcpResetsSuppressed,
    /// Flows of a WAN that went down continued on another WAN (`on_wan_down = migrate`).
    FlowsMigrated,
    /// UDP and ICMP flows that moved back from a backup tier once a better one was usable.
    FlowsRecalled,
    /// Frames for Ethernet egress whose next hop's MAC fwd did not know (yet): handed,
    /// translated, to the kernel, which resolves the address, queues them meanwhile and
    /// sends them (also counted in `to_kernel`; the neighbour watcher learns the answer).
    NoNeighbor,
}

impl Event {
    pub const ALL: [Event; 10] = [
        Event::Forwarded,
        Event::ToKernel,
        Event::SessionsCreated,
        Event::IcmpErrorsSent,
        Event::IcmpErrorsSuppressed,
        Event::TcpResetsSent,
        Event::TcpResetsSuppressed,
        Event::FlowsMigrated,
        Event::FlowsRecalled,
        Event::NoNeighbor,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Event::Forwarded => "forwarded",
            Event::ToKernel => "to_kernel",
            Event::SessionsCreated => "sessions_created",
            Event::IcmpErrorsSent => "icmp_errors_sent",
            Event::IcmpErrorsSuppressed => "icmp_errors_suppressed",
            Event::TcpResetsSent => "tcp_resets_sent",
            Event::TcpResetsSuppressed => "tcp_resets_suppressed",
            Event::FlowsMigrated => "flows_migrated",
            Event::FlowsRecalled => "flows_recalled",
            Event::NoNeighbor => "no_neighbor",
        }
    }
}

/// Most WANs a plan may have (the WAN sets of the balancer are 64-bit masks).
pub const MAX_WANS: usize = 64;

/// Traffic through one WAN, as seen by one worker.
#[derive(Debug, Default)]
pub struct WanTraffic {
    pub tx_packets: AtomicU64,
    pub tx_bytes: AtomicU64,
    pub rx_packets: AtomicU64,
    pub rx_bytes: AtomicU64,
}

/// One worker's counters. Aligned so two workers' counters never share a cache line.
#[derive(Debug)]
#[repr(align(128))]
pub struct Counters {
    drops: [AtomicU64; DropReason::ALL.len()],
    events: [AtomicU64; Event::ALL.len()],
    wans: [WanTraffic; MAX_WANS],
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            drops: std::array::from_fn(|_| AtomicU64::new(0)),
            events: std::array::from_fn(|_| AtomicU64::new(0)),
            wans: std::array::from_fn(|_| WanTraffic::default()),
        }
    }
}

/// Adds to a counter that only this thread writes: no atomic read-modify-write needed.
#[inline]
fn bump(counter: &AtomicU64, by: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(by),
        Ordering::Relaxed,
    );
}

impl Counters {
    #[inline]
    pub fn count_drop(&self, reason: DropReason) {
        bump(&self.drops[reason as usize], 1);
    }

    #[inline]
    pub fn event(&self, event: Event) {
        bump(&self.events[event as usize], 1);
    }

    #[inline]
    pub fn wan_tx(&self, wan: usize, bytes: usize) {
        if let Some(w) = self.wans.get(wan) {
            bump(&w.tx_packets, 1);
            bump(&w.tx_bytes, bytes as u64);
        }
    }

    #[inline]
    pub fn wan_rx(&self, wan: usize, bytes: usize) {
        if let Some(w) = self.wans.get(wan) {
            bump(&w.rx_packets, 1);
            bump(&w.rx_bytes, bytes as u64);
        }
    }

    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize].load(Ordering::Relaxed)
    }

    pub fn events(&self, event: Event) -> u64 {
        self.events[event as usize].load(Ordering::Relaxed)
    }

    pub fn wan(&self, wan: usize) -> Option<&WanTraffic> {
        self.wans.get(wan)
    }

    /// Sum of all drops.
    pub fn total_drops(&self) -> u64 {
        DropReason::ALL.iter().map(|&r| self.drops(r)).sum()
    }
}
