//! Bringing up the AF_XDP backend: what each interface offers (index, MAC, MTU, queues),
//! fwd's XDP program loaded and told what each interface is ([`prepare`]), and the split of
//! queues between workers. The workers then open their sockets (`worker.rs`) and put them
//! into the program's socket map ([`register`]); only once every worker has, the program is
//! attached to the interfaces ([`AfXdp::attach`]), so no data-plane frame ever meets an
//! empty socket slot (it would fall back to the kernel, which would forward it
//! untranslated).
//!
//! Before any of that, [`AfXdp::probe`] tries what the workers will do (every worker's UMEM
//! and sockets at once, the attachment in the mode asked for) and undoes it, so that a
//! backend that cannot work here fails before fwd installs anything and `auto` can take TUN
//! instead. The probe's attachment finds no socket in the map: frames pass to the kernel,
//! which still has no steering of fwd's, as if fwd were not there.
//!
//! Sockets: worker `w` of `W` serves queue `q` of every interface where `q % W == w`, all on
//! its one UMEM; `W` is at most the fewest queues any interface has, so every worker has a
//! socket on every interface to send from. A socket's slot in the program's map is
//! `iface * MAX_QUEUES + queue`.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use ipnet::Ipv4Net;

use crate::config::{Inbound, XdpMode};
use crate::device::afxdp::program::{
    AttachMode, DstKind, ForwardKey, IfaceConfig, XdpProgram, MAX_SOCKETS,
};
use crate::device::afxdp::socket::XskSocket;
use crate::device::afxdp::{AfXdpDevice, QueueSpec};
use crate::device::{FrameMemory, FramePool, CHUNK_SIZE, HEADROOM};
use crate::neighbors::Mac;
use crate::plan::{Plan, Role};

/// Socket slots per interface in the program's map: an interface's queues beyond this many
/// are refused.
pub const MAX_QUEUES: u32 = 64;

/// What fwd learned of one interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub name: String,
    pub ifindex: u32,
    pub mac: Mac,
    pub mtu: usize,
    /// RX queues.
    pub queues: u32,
}

/// The backend ready for its workers.
#[derive(Debug)]
pub struct AfXdp {
    pub program: Arc<Mutex<XdpProgram>>,
    pub links: Vec<Link>,
    pub workers: usize,
    /// How the program is attached to each interface (empty until [`attach`](Self::attach)).
    pub modes: Vec<AttachMode>,
}

/// Entries of each ring of a worker's sockets: a quarter of its UMEM, 64 to 2048.
pub fn ring_size(umem_frames: usize) -> u32 {
    (umem_frames / 4).clamp(64, 2048) as u32
}

impl AfXdp {
    /// Does what the workers and [`attach`](Self::attach) will do, then undoes it: every
    /// worker's UMEM of `umem_frames` frames and its sockets, all held at once, then the
    /// program attached in `mode` to every interface and detached again.
    pub fn probe(&mut self, mode: XdpMode, umem_frames: usize) -> Result<(), String> {
        let memories = (0..self.workers)
            .map(|_| FrameMemory::new(umem_frames, CHUNK_SIZE, HEADROOM))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("UMEM: {e}"))?;
        let mut devices = Vec::with_capacity(memories.len());
        for (w, memory) in memories.iter().enumerate() {
            let pool = FramePool::new(memory).map_err(|e| format!("UMEM: {e}"))?;
            let queues = self.queues_of(w);
            let sinks = queues.iter().map(|_| None).collect();
            let device = AfXdpDevice::open(
                pool,
                &queues,
                ring_size(umem_frames),
                true,
                sinks,
                self.mtus(),
            )
            .map_err(|e| e.to_string())?;
            devices.push(device);
        }
        drop(devices);
        let attached = self.attach(mode);
        self.modes.clear();
        self.program
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .detach_all();
        attached
    }

    /// Attaches the program to every interface, in the mode `wanted` allows. On failure the
    /// attachments made so far stay with the program (detached when it is dropped).
    pub fn attach(&mut self, wanted: XdpMode) -> Result<(), String> {
        let mut program = self
            .program
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for link in &self.links {
            let mode = program
                .attach(&link.name, link.ifindex, wanted)
                .map_err(|e| e.to_string())?;
            self.modes.push(mode);
        }
        Ok(())
    }

    /// The queues worker `w` serves.
    pub fn queues_of(&self, w: usize) -> Vec<QueueSpec> {
        queues_of(&self.links, self.workers, w)
    }

    /// The MTU of each plan interface.
    pub fn mtus(&self) -> Vec<u16> {
        self.links
            .iter()
            .map(|l| u16::try_from(l.mtu).unwrap_or(u16::MAX))
            .collect()
    }

    /// The router's own MAC on each plan interface.
    pub fn macs(&self) -> Vec<Option<Mac>> {
        self.links.iter().map(|l| Some(l.mac)).collect()
    }

    /// One line for the log and `fwdctl status`: XDP modes (once attached) and queues (the
    /// sockets' copy mode is known once the workers opened them; status adds it).
    pub fn describe(&self) -> String {
        let mut modes: Vec<&str> = self.modes.iter().map(|m| m.name()).collect();
        modes.dedup();
        let queues: Vec<String> = self
            .links
            .iter()
            .map(|l| format!("{} {}", l.name, l.queues))
            .collect();
        let modes = if modes.is_empty() {
            "not attached".to_string()
        } else {
            format!("{} XDP", modes.join("/"))
        };
        format!("afxdp ({modes}; queues {})", queues.join(", "))
    }
}

/// The queues worker `w` of `workers` serves: queue `q` of every link where
/// `q % workers == w`.
fn queues_of(links: &[Link], workers: usize, w: usize) -> Vec<QueueSpec> {
    let mut out = Vec::new();
    for (i, link) in links.iter().enumerate() {
        for q in (0..link.queues).filter(|q| *q as usize % workers.max(1) == w) {
            out.push(QueueSpec {
                iface: i as u8,
                ifindex: link.ifindex,
                queue: q,
            });
        }
    }
    out
}

/// Reads a line of `/sys/class/net/<dev>/<file>`.
fn sysfs(dev: &str, file: &str) -> Result<String, String> {
    std::fs::read_to_string(format!("/sys/class/net/{dev}/{file}"))
        .map(|s| s.trim().to_owned())
        .map_err(|e| format!("interface {dev}: {file}: {e}"))
}

/// What the kernel says of interface `name`.
pub fn link(name: &str) -> Result<Link, String> {
    let ifindex = sysfs(name, "ifindex")?
        .parse()
        .map_err(|_| format!("interface {name}: bad ifindex"))?;
    let mtu = super::tuns::interface_mtu(name)
        .ok_or_else(|| format!("interface {name}: no readable MTU"))?
        .into();
    let text = sysfs(name, "address")?;
    let mut mac = [0u8; 6];
    let parts: Vec<&str> = text.split(':').collect();
    if parts.len() != 6 {
        return Err(format!("interface {name}: no Ethernet address ({text:?})"));
    }
    for (b, p) in mac.iter_mut().zip(parts) {
        *b = u8::from_str_radix(p, 16).map_err(|_| format!("interface {name}: bad MAC"))?;
    }
    let queues = std::fs::read_dir(format!("/sys/class/net/{name}/queues"))
        .map_err(|e| format!("interface {name}: queues: {e}"))?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
        .count() as u32;
    Ok(Link {
        name: name.to_owned(),
        ifindex,
        mac,
        mtu,
        queues: queues.max(1),
    })
}

/// The destinations LAN frames to which the kernel handles itself, with what each is: the
/// router's addresses, the LANs' subnets (closed to WAN frames unless the LAN says
/// `inbound = "allow"`), multicast and the limited broadcast.
pub fn kernel_destinations(plan: &Plan) -> Vec<(Ipv4Net, DstKind)> {
    let host = |a: Ipv4Addr| Ipv4Net::new(a, 32).ok();
    let router = |n: Ipv4Net| (n, DstKind::Kernel);
    let mut out: Vec<(Ipv4Net, DstKind)> = plan
        .interfaces
        .iter()
        .filter_map(|i| host(i.address))
        .map(router)
        .collect();
    out.extend(plan.lans.iter().flat_map(|l| {
        let kind = match l.inbound {
            Inbound::Drop => DstKind::ClosedLan,
            Inbound::Allow => DstKind::Kernel,
        };
        l.subnets.iter().map(move |&n| (n, kind))
    }));
    out.extend(
        Ipv4Net::new(Ipv4Addr::new(224, 0, 0, 0), 4)
            .ok()
            .map(router),
    );
    out.extend(host(Ipv4Addr::BROADCAST).map(router));
    out
}

/// Loads fwd's XDP program for `plan`'s interfaces, tells it what each is, and decides the
/// workers (at most `wanted`). Nothing is attached yet.
pub fn prepare(plan: &Plan, wanted: usize) -> Result<AfXdp, String> {
    let links: Vec<Link> = plan
        .interfaces
        .iter()
        .map(|i| link(&i.os_name))
        .collect::<Result<_, _>>()?;
    if links.len() as u32 * MAX_QUEUES > MAX_SOCKETS {
        return Err(format!(
            "at most {} interfaces with AF_XDP",
            MAX_SOCKETS / MAX_QUEUES
        ));
    }
    if let Some(l) = links.iter().find(|l| l.queues > MAX_QUEUES) {
        return Err(format!(
            "interface {} has {} queues; fwd serves at most {MAX_QUEUES}",
            l.name, l.queues
        ));
    }
    let fewest = links.iter().map(|l| l.queues).min().unwrap_or(1) as usize;
    let workers = wanted.clamp(1, fewest);
    let mut program = XdpProgram::load().map_err(|e| e.to_string())?;
    for (i, (iface, link)) in plan.interfaces.iter().zip(&links).enumerate() {
        let base = i as u32 * MAX_QUEUES;
        let config = match iface.role {
            Role::Lan(_) => IfaceConfig::lan(base),
            Role::Wan(w) => {
                let wan = plan
                    .wans
                    .get(w)
                    .ok_or_else(|| format!("no WAN {w} in the plan"))?;
                program
                    .hairpin(wan.address, &wan.nat_ports)
                    .map_err(|e| e.to_string())?;
                IfaceConfig::wan(wan.address, &wan.nat_ports, base)
            }
        };
        program
            .configure(link.ifindex, config)
            .map_err(|e| e.to_string())?;
    }
    for (prefix, kind) in kernel_destinations(plan) {
        program
            .pass_to_kernel(prefix, kind)
            .map_err(|e| e.to_string())?;
    }
    program
        .set_forwards(&forward_keys(plan))
        .map_err(|e| e.to_string())?;
    Ok(AfXdp {
        program: Arc::new(Mutex::new(program)),
        links,
        workers,
        modes: Vec::new(),
    })
}

/// Every forwarded (WAN address, protocol, port) of `plan`, as the program's `fwd_ports`
/// map keys them.
pub fn forward_keys(plan: &Plan) -> BTreeSet<ForwardKey> {
    plan.forwards
        .each_port()
        .filter_map(|(wan, proto, port)| {
            let w = plan.wans.get(wan)?;
            Some(ForwardKey::new(w.address, proto as u8, port))
        })
        .collect()
}

/// The slot of (plan interface, queue) in the program's socket map.
pub fn slot(iface: u8, queue: u32) -> u32 {
    u32::from(iface) * MAX_QUEUES + queue
}

/// Puts a worker's sockets into the program's map, each at its (interface, queue) slot.
pub fn register(
    program: &Mutex<XdpProgram>,
    sockets: &[XskSocket],
    queues: &[QueueSpec],
) -> Result<(), String> {
    let mut program = program
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for (socket, q) in sockets.iter().zip(queues) {
        program
            .set_socket(slot(q.iface, q.queue), socket)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn split(queues: &[u32], workers: usize) -> Vec<Vec<(u8, u32)>> {
        let links: Vec<Link> = queues
            .iter()
            .enumerate()
            .map(|(i, &q)| Link {
                name: format!("eth{i}"),
                ifindex: i as u32 + 1,
                mac: [0; 6],
                mtu: 1500,
                queues: q,
            })
            .collect();
        (0..workers)
            .map(|w| {
                queues_of(&links, workers, w)
                    .iter()
                    .map(|q| (q.iface, q.queue))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn every_queue_has_one_worker_and_every_worker_every_interface() {
        assert_eq!(
            split(&[4, 2], 2),
            vec![vec![(0, 0), (0, 2), (1, 0)], vec![(0, 1), (0, 3), (1, 1)],]
        );
        assert_eq!(split(&[1, 1], 1), vec![vec![(0, 0), (1, 0)]]);
    }

    #[test]
    fn slots_do_not_overlap() {
        assert_eq!(slot(0, 0), 0);
        assert_eq!(slot(1, 0), MAX_QUEUES);
        assert_eq!(slot(2, 3), 2 * MAX_QUEUES + 3);
        assert!(slot(15, MAX_QUEUES - 1) < MAX_SOCKETS);
    }

    #[test]
    fn the_kernel_keeps_the_routers_addresses_its_lans_multicast_and_broadcast_and_closed_lans_are_marked(
    ) {
        let config = Config::from_toml_str(
            r#"
[[lan]]
name = "lan"
interface = "lan0"
address = "192.168.1.1/24"
extra_subnets = ["10.50.0.0/16"]

[[lan]]
name = "public"
interface = "lan1"
address = "203.0.113.1/28"
inbound = "allow"

[[wan]]
name = "isp"
interface = "wan0"
address = "198.51.100.2/30"
gateway = "198.51.100.1"
"#,
        )
        .unwrap();
        let plan = Plan::from_config(&config).unwrap();
        let got: Vec<String> = kernel_destinations(&plan)
            .iter()
            .map(|(n, k)| format!("{n} {k:?}"))
            .collect();
        assert_eq!(
            got,
            [
                "192.168.1.1/32 Kernel",
                "203.0.113.1/32 Kernel",
                "198.51.100.2/32 Kernel",
                "192.168.1.0/24 ClosedLan",
                "10.50.0.0/16 ClosedLan",
                "203.0.113.0/28 Kernel",
                "224.0.0.0/4 Kernel",
                "255.255.255.255/32 Kernel"
            ]
        );
    }
}
