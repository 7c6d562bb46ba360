//! fwd's XDP program (`engine/bpf/fwd_xdp.c`, built by `engine/build.rs`), loaded with aya:
//! it sends fwd's data-plane frames to the AF_XDP sockets and passes everything else to the
//! kernel (see the C source for what goes where).
//!
//! Attachments are bpf_links only: the kernel detaches them when the link's last file
//! descriptor closes, so when [`XdpProgram`] is dropped, and when fwd exits, crashes or is
//! killed, no interface is left redirecting into a dead socket. An attachment the kernel
//! would only make the old way (netlink, which outlives the process) is undone and refused.
//! Native (driver) mode is tried first, generic mode where the driver refuses.

use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;

use aya::maps::lpm_trie::{Key, LpmTrie};
use aya::maps::{HashMap, MapData, PerCpuArray, XskMap};
use aya::programs::links::FdLink;
use aya::programs::{Xdp, XdpMode};
use aya::Ebpf;
use ipnet::Ipv4Net;

/// Role of an interface, as the program knows it.
pub const ROLE_LAN: u32 = 1;
pub const ROLE_WAN: u32 = 2;

/// Socket slots in the program's XSKMAP (`MAX_SOCKETS` in the C source).
pub const MAX_SOCKETS: u32 = 1024;

/// What the program knows of one interface (`struct iface_config` in the C source).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IfaceConfig {
    pub role: u32,
    /// WAN: its address, network byte order.
    pub address: u32,
    /// WAN: its NAT ports, inclusive.
    pub port_lo: u16,
    pub port_hi: u16,
    /// Socket slot of the interface's RX queue 0.
    pub xsk_base: u32,
}

impl IfaceConfig {
    pub fn lan(xsk_base: u32) -> IfaceConfig {
        IfaceConfig {
            role: ROLE_LAN,
            xsk_base,
            ..IfaceConfig::default()
        }
    }

    pub fn wan(address: Ipv4Addr, ports: &std::ops::RangeInclusive<u16>, xsk_base: u32) -> Self {
        IfaceConfig {
            role: ROLE_WAN,
            address: u32::from_ne_bytes(address.octets()),
            port_lo: *ports.start(),
            port_hi: *ports.end(),
            xsk_base,
        }
    }
}

/// A WAN's NAT ports as the program matches hairpin traffic (`struct nat_ports`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NatPorts {
    pub lo: u16,
    pub hi: u16,
}

// SAFETY: `repr(C)` of two `u16`s, no padding: every bit pattern is a value.
#[allow(unsafe_code)]
unsafe impl aya::Pod for NatPorts {}

/// Most forwarded (WAN address, protocol, port)s the program holds (`MAX_FORWARDED_PORTS`
/// in the C source).
pub const MAX_FORWARDED_PORTS: usize = 65536;

/// A forwarded port of a WAN address, as the program's `fwd_ports` map keys it
/// (`struct forward_key`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct ForwardKey {
    /// The WAN's address, network byte order.
    pub addr: u32,
    pub port: u16,
    /// IP protocol number (TCP or UDP).
    pub proto: u8,
    pub pad: u8,
}

impl ForwardKey {
    pub fn new(address: Ipv4Addr, proto: u8, port: u16) -> ForwardKey {
        ForwardKey {
            addr: u32::from_ne_bytes(address.octets()),
            port,
            proto,
            pad: 0,
        }
    }
}

// SAFETY: `repr(C)` of a `u32`, a `u16` and two `u8`s (8 bytes, each field at its
// alignment, no padding): every bit pattern is a value.
#[allow(unsafe_code)]
unsafe impl aya::Pod for ForwardKey {}

// SAFETY: `IfaceConfig` is `repr(C)` of plain integers with no padding (4 + 4 + 2 + 2 + 4
// bytes, each field at its alignment): every bit pattern is a value.
#[allow(unsafe_code)]
unsafe impl aya::Pod for IfaceConfig {}

/// The program's counters (`enum stat` in the C source), in order.
pub const STATS: [&str; 8] = [
    "to_fwd",
    "no_socket",
    "kernel_not_ipv4",
    "kernel_not_unicast",
    "kernel_malformed",
    "kernel_local",
    "kernel_not_ours",
    "drop_inbound_to_lan",
];

/// What a destination the kernel handles is (`DST_*` in the C source).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DstKind {
    /// The router's addresses, multicast, broadcast, LAN subnets open to the WANs: frames to
    /// them pass, from a LAN or a WAN.
    Kernel = 1,
    /// A LAN's subnet closed to the WANs: LAN frames to it pass (the kernel routes LAN to
    /// LAN); WAN frames to it are dropped and counted (`drop_inbound_to_lan`).
    ClosedLan = 2,
}

/// How the program is attached to an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    /// In the driver (native XDP).
    Native,
    /// In the kernel's generic path (SKB mode), where the driver has no XDP.
    Generic,
}

impl AttachMode {
    pub fn name(self) -> &'static str {
        match self {
            AttachMode::Native => "native",
            AttachMode::Generic => "generic",
        }
    }
}

/// Why the program could not be loaded, configured or attached.
#[derive(Debug, thiserror::Error)]
pub enum ProgramError {
    #[error("fwd was built without its XDP program (clang was missing at build time)")]
    NotBuilt,
    #[error("loading the XDP program: {0}")]
    Load(String),
    #[error("attaching the XDP program to {iface}: {why}")]
    Attach { iface: String, why: String },
    #[error("XDP program map {map}: {why}")]
    Map { map: &'static str, why: String },
}

/// The loaded program and its attachments.
#[derive(Debug)]
pub struct XdpProgram {
    ebpf: Ebpf,
    links: Vec<(String, AttachMode, FdLink)>,
}

#[cfg(not(fwd_no_xdp_program))]
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/fwd_xdp.o"));
#[cfg(fwd_no_xdp_program)]
static OBJECT: &[u8] = &[];

const PROGRAM: &str = "fwd_xdp";

fn map_error(map: &'static str) -> impl Fn(aya::maps::MapError) -> ProgramError {
    move |e| ProgramError::Map {
        map,
        why: e.to_string(),
    }
}

impl XdpProgram {
    /// Loads the program into the kernel (verified, not attached anywhere yet).
    pub fn load() -> Result<XdpProgram, ProgramError> {
        if OBJECT.is_empty() {
            return Err(ProgramError::NotBuilt);
        }
        let mut ebpf = Ebpf::load(OBJECT).map_err(|e| ProgramError::Load(e.to_string()))?;
        let program: &mut Xdp = ebpf
            .program_mut(PROGRAM)
            .ok_or_else(|| ProgramError::Load(format!("no program {PROGRAM} in the object")))?
            .try_into()
            .map_err(|e: aya::programs::ProgramError| ProgramError::Load(e.to_string()))?;
        program
            .load()
            .map_err(|e| ProgramError::Load(e.to_string()))?;
        Ok(XdpProgram {
            ebpf,
            links: Vec::new(),
        })
    }

    fn program(&mut self) -> Result<&mut Xdp, ProgramError> {
        self.ebpf
            .program_mut(PROGRAM)
            .and_then(|p| p.try_into().ok())
            .ok_or_else(|| ProgramError::Load(format!("program {PROGRAM} vanished")))
    }

    /// Attaches the program to interface `name` (index `ifindex`) through a bpf_link: with
    /// `Auto`, in native mode if the driver takes it, else in generic mode; otherwise only in
    /// the mode asked for.
    pub fn attach(
        &mut self,
        name: &str,
        ifindex: u32,
        wanted: crate::config::XdpMode,
    ) -> Result<AttachMode, ProgramError> {
        use crate::config::XdpMode as Wanted;
        const NATIVE: (XdpMode, AttachMode) = (XdpMode::Driver, AttachMode::Native);
        const GENERIC: (XdpMode, AttachMode) = (XdpMode::Skb, AttachMode::Generic);
        let modes: &[(XdpMode, AttachMode)] = match wanted {
            Wanted::Auto => &[NATIVE, GENERIC],
            Wanted::Native => &[NATIVE],
            Wanted::Generic => &[GENERIC],
        };
        let attach_error = |why: String| ProgramError::Attach {
            iface: name.to_owned(),
            why,
        };
        let mut last = String::new();
        for &(mode, attached) in modes {
            let program = self.program()?;
            match program.attach_to_if_index(ifindex, mode) {
                Ok(id) => {
                    let link = program
                        .take_link(id)
                        .map_err(|e| attach_error(e.to_string()))?;
                    // A netlink attachment would outlive fwd: dropping it here detaches it.
                    let link = FdLink::try_from(link).map_err(|_| {
                        attach_error("the kernel offers no bpf_link for XDP here".into())
                    })?;
                    self.links.push((name.to_owned(), attached, link));
                    return Ok(attached);
                }
                Err(e) => last = format!("{} mode: {e}", attached.name()),
            }
        }
        Err(attach_error(last))
    }

    /// Detaches the program from every interface.
    pub fn detach_all(&mut self) {
        self.links.clear();
    }

    /// The interfaces the program is attached to, and how.
    pub fn attachments(&self) -> impl Iterator<Item = (&str, AttachMode)> {
        self.links.iter().map(|(n, m, _)| (n.as_str(), *m))
    }

    /// The program's map `name`.
    fn map(&mut self, name: &'static str) -> Result<&mut aya::maps::Map, ProgramError> {
        self.ebpf.map_mut(name).ok_or(ProgramError::Map {
            map: name,
            why: "not in the program".into(),
        })
    }

    /// Tells the program what interface `ifindex` is.
    pub fn configure(&mut self, ifindex: u32, config: IfaceConfig) -> Result<(), ProgramError> {
        let map = self.map("ifaces")?;
        let mut ifaces: HashMap<&mut MapData, u32, IfaceConfig> =
            HashMap::try_from(map).map_err(map_error("ifaces"))?;
        ifaces
            .insert(ifindex, config, 0)
            .map_err(map_error("ifaces"))
    }

    /// A WAN's address and NAT ports: LAN frames to a port of the range (hairpin) and later
    /// fragments to the address go to fwd, the rest to the kernel.
    pub fn hairpin(
        &mut self,
        address: Ipv4Addr,
        ports: &std::ops::RangeInclusive<u16>,
    ) -> Result<(), ProgramError> {
        let map = self.map("wan_ports")?;
        let mut wans: HashMap<&mut MapData, u32, NatPorts> =
            HashMap::try_from(map).map_err(map_error("wan_ports"))?;
        let value = NatPorts {
            lo: *ports.start(),
            hi: *ports.end(),
        };
        wans.insert(u32::from_ne_bytes(address.octets()), value, 0)
            .map_err(map_error("wan_ports"))
    }

    /// Makes `ports` the forwarded ports (TCP or UDP to them, on their WAN's address, from
    /// the WAN or a LAN, goes to fwd): entries not in it are removed, the missing ones
    /// added. At most [`MAX_FORWARDED_PORTS`].
    pub fn set_forwards(
        &mut self,
        ports: &std::collections::BTreeSet<ForwardKey>,
    ) -> Result<(), ProgramError> {
        if ports.len() > MAX_FORWARDED_PORTS {
            return Err(ProgramError::Map {
                map: "fwd_ports",
                why: format!(
                    "{} forwarded ports; the program holds {MAX_FORWARDED_PORTS}",
                    ports.len()
                ),
            });
        }
        let map = self.map("fwd_ports")?;
        let mut forwards: HashMap<&mut MapData, ForwardKey, u8> =
            HashMap::try_from(map).map_err(map_error("fwd_ports"))?;
        let stale: Vec<ForwardKey> = forwards
            .keys()
            .filter_map(Result::ok)
            .filter(|k| !ports.contains(k))
            .collect();
        for key in &stale {
            forwards.remove(key).map_err(map_error("fwd_ports"))?;
        }
        for key in ports {
            forwards.insert(key, 1, 0).map_err(map_error("fwd_ports"))?;
        }
        Ok(())
    }

    /// A destination the kernel handles itself (LAN frames to it pass), and what it is.
    pub fn pass_to_kernel(&mut self, prefix: Ipv4Net, kind: DstKind) -> Result<(), ProgramError> {
        let map = self.map("kernel_dst")?;
        let mut trie: LpmTrie<&mut MapData, u32, u8> =
            LpmTrie::try_from(map).map_err(map_error("kernel_dst"))?;
        let key = Key::new(
            u32::from(prefix.prefix_len()),
            u32::from_ne_bytes(prefix.network().octets()),
        );
        trie.insert(&key, kind as u8, 0)
            .map_err(map_error("kernel_dst"))
    }

    /// Puts an AF_XDP socket (bound to its interface and queue) into slot `slot`.
    pub fn set_socket(&mut self, slot: u32, socket: &impl AsRawFd) -> Result<(), ProgramError> {
        let map = self.map("xsks")?;
        let mut xsks = XskMap::try_from(map).map_err(map_error("xsks"))?;
        xsks.set(slot, socket.as_raw_fd(), 0)
            .map_err(map_error("xsks"))
    }

    /// The program's counters, summed over CPUs, in the order of [`STATS`].
    pub fn stats(&self) -> [u64; STATS.len()] {
        let mut out = [0u64; STATS.len()];
        let Some(map) = self.ebpf.map("stats") else {
            return out;
        };
        let Ok(stats) = PerCpuArray::<&MapData, u64>::try_from(map) else {
            return out;
        };
        for (i, slot) in out.iter_mut().enumerate() {
            if let Ok(values) = stats.get(&(i as u32), 0) {
                *slot = values.iter().sum();
            }
        }
        out
    }
}
