//! Building a topology: LAN hosts, router, ISPs and internet namespaces wired per
//! [`crate::plan`]. Dropping the [`Topology`] removes all of it.

use crate::error::{Error, Result};
use crate::names;
use crate::netns::Netns;
use crate::plan::{self, BRIDGE_IF, HOST_IF, ISP_CUSTOMER_IF, ISP_UPLINK_IF, LAN_IF, SERVER_IF};
use crate::servers::Servers;
use crate::workdir::WorkDir;
use std::net::Ipv4Addr;

/// Settings of a topology to build; see [`Topology::builder`].
#[derive(Debug, Clone)]
pub struct TopologyBuilder {
    wans: usize,
    hosts: usize,
    tx_offload: bool,
    queues: u32,
}

impl Default for TopologyBuilder {
    fn default() -> Self {
        TopologyBuilder {
            wans: 2,
            hosts: 1,
            tx_offload: false,
            queues: 1,
        }
    }
}

impl TopologyBuilder {
    /// Number of WANs/ISPs, 1 to 3 (default 2).
    #[must_use]
    pub fn wans(mut self, n: usize) -> Self {
        self.wans = n;
        self
    }

    /// Number of LAN hosts, 1 to 50 (default 1). One host is wired straight to the router's
    /// `lan0`; with more, `lan0` and the hosts hang off bridge `br0` in a switch namespace.
    #[must_use]
    pub fn hosts(mut self, n: usize) -> Self {
        self.hosts = n;
        self
    }

    /// Keep TX checksum/segmentation offload on the veths around the router (default off:
    /// `ethtool -K DEV tx off` on host `eth0`, router `lan0`/`wan{i}` and ISP `cust0`, so every
    /// frame reaching the router carries full checksums, which AF_XDP and TUN forwarders
    /// need; see FINDINGS.md). Turning it on only makes sense for kernel-only measurements.
    #[must_use]
    pub fn tx_offload(mut self, on: bool) -> Self {
        self.tx_offload = on;
        self
    }

    /// RX and TX queues of each veth pair at the router (`lan0` with a single host, every
    /// `wan{i}`), 1 to 8 (default 1). A veth hands a frame to the peer's RX queue of the
    /// sender's TX queue, which the sender picks by flow hash: with 2, flows spread over two
    /// queues, as on a multi-queue NIC.
    #[must_use]
    pub fn queues(mut self, n: u32) -> Self {
        self.queues = n;
        self
    }

    /// Creates the namespaces and links. On error (or panic) everything created so far is
    /// removed again.
    pub fn build(self) -> Result<Topology> {
        if !(1..=plan::MAX_WANS).contains(&self.wans) {
            return Err(Error::new(format!(
                "wans must be 1..={}, not {}",
                plan::MAX_WANS,
                self.wans
            )));
        }
        if !(1..=plan::MAX_HOSTS).contains(&self.hosts) {
            return Err(Error::new(format!(
                "hosts must be 1..={}, not {}",
                plan::MAX_HOSTS,
                self.hosts
            )));
        }
        if !(1..=8).contains(&self.queues) {
            return Err(Error::new(format!(
                "queues must be 1..=8, not {}",
                self.queues
            )));
        }
        names::sweep_stale_once();
        let prefix = names::unique_prefix();
        let workdir = WorkDir::create(&prefix)?;
        let new = |suffix: String| -> Result<Netns> {
            let ns = Netns::create(&format!("{prefix}{suffix}"))?;
            ns.sysctl(&[
                ("net.ipv6.conf.all.disable_ipv6", "1"),
                ("net.ipv6.conf.default.disable_ipv6", "1"),
                ("net.ipv4.conf.all.rp_filter", "0"),
                ("net.ipv4.conf.default.rp_filter", "0"),
            ])?;
            Ok(ns)
        };
        // Order of creation is the order of the fields: dropped in the same order.
        let hosts = (0..self.hosts)
            .map(|k| new(format!("h{k}")))
            .collect::<Result<Vec<_>>>()?;
        let switch = if self.hosts > 1 {
            Some(new("sw".to_string())?)
        } else {
            None
        };
        let router = new("rt".to_string())?;
        let isps = (0..self.wans)
            .map(|i| new(format!("isp{i}")))
            .collect::<Result<Vec<_>>>()?;
        let internet = new("inet".to_string())?;
        let topo = Topology {
            prefix,
            hosts,
            switch,
            router,
            isps,
            internet,
            servers: Servers::default(),
            workdir,
        };
        topo.wire(self.tx_offload, self.queues)?;
        Ok(topo)
    }
}

/// A built topology (see [`crate::plan`] for its addresses). Not `Clone`: it owns the
/// namespaces, and dropping it kills their processes and deletes them.
#[derive(Debug)]
pub struct Topology {
    prefix: String,
    hosts: Vec<Netns>,
    switch: Option<Netns>,
    router: Netns,
    isps: Vec<Netns>,
    internet: Netns,
    pub(crate) servers: Servers,
    pub(crate) workdir: WorkDir,
}

impl Topology {
    /// Settings for a new topology (2 WANs, 1 host, offloads off).
    pub fn builder() -> TopologyBuilder {
        TopologyBuilder::default()
    }

    /// A topology with `wans` WANs and one LAN host.
    pub fn new(wans: usize) -> Result<Topology> {
        Self::builder().wans(wans).build()
    }

    /// The unique prefix of this topology's namespace names (`fwt{pid}x{n}-`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Names of all namespaces of this topology.
    pub fn namespace_names(&self) -> Vec<String> {
        self.all().map(|ns| ns.name().to_string()).collect()
    }

    /// LAN host `k` (panics if out of range).
    pub fn host(&self, k: usize) -> &Netns {
        &self.hosts[k]
    }

    /// All LAN hosts.
    pub fn hosts(&self) -> &[Netns] {
        &self.hosts
    }

    /// The router namespace (where fwd runs).
    pub fn router(&self) -> &Netns {
        &self.router
    }

    /// ISP `i` (panics if out of range).
    pub fn isp(&self, i: usize) -> &Netns {
        &self.isps[i]
    }

    /// The internet namespace (servers).
    pub fn internet(&self) -> &Netns {
        &self.internet
    }

    /// The LAN switch namespace, present with several hosts.
    pub fn switch(&self) -> Option<&Netns> {
        self.switch.as_ref()
    }

    /// Number of WANs.
    pub fn wan_count(&self) -> usize {
        self.isps.len()
    }

    /// The router's WAN addresses, 10.(i+1).0.2 for each WAN.
    pub fn wan_addrs(&self) -> Vec<Ipv4Addr> {
        (0..self.wan_count()).map(plan::wan_router).collect()
    }

    /// A directory private to this topology, removed on drop (configs, logs).
    pub fn workdir(&self) -> &std::path::Path {
        self.workdir.path()
    }

    fn all(&self) -> impl Iterator<Item = &Netns> {
        self.hosts
            .iter()
            .chain(&self.switch)
            .chain([&self.router])
            .chain(&self.isps)
            .chain([&self.internet])
    }

    fn wire(&self, tx_offload: bool, queues: u32) -> Result<()> {
        let rt = &self.router;
        rt.sysctl(&[("net.ipv4.ip_forward", "1")])?;
        self.wire_lan(queues)?;
        rt.ip(&[
            "addr",
            "add",
            &format!("{}/24", plan::LAN_ROUTER),
            "dev",
            LAN_IF,
        ])?;
        rt.ip(&["link", "set", LAN_IF, "up"])?;
        for (k, host) in self.hosts.iter().enumerate() {
            host.ip(&[
                "addr",
                "add",
                &format!("{}/24", plan::lan_host(k)),
                "dev",
                HOST_IF,
            ])?;
            host.ip(&["link", "set", HOST_IF, "up"])?;
            host.ip(&[
                "route",
                "add",
                "default",
                "via",
                &plan::LAN_ROUTER.to_string(),
            ])?;
        }
        let inet = &self.internet;
        inet.ip(&[
            "addr",
            "add",
            &format!("{}/32", plan::SERVER),
            "dev",
            SERVER_IF,
        ])?;
        for (i, isp) in self.isps.iter().enumerate() {
            let wan = plan::wan_if(i);
            let to_isp = plan::internet_if(i);
            veth(&wan, rt, ISP_CUSTOMER_IF, isp, queues)?;
            veth(ISP_UPLINK_IF, isp, &to_isp, inet, 1)?;
            isp.sysctl(&[("net.ipv4.ip_forward", "1")])?;
            rt.ip(&[
                "addr",
                "add",
                &format!("{}/24", plan::wan_router(i)),
                "dev",
                &wan,
            ])?;
            rt.ip(&["link", "set", &wan, "up"])?;
            let gw = format!("{}/24", plan::wan_gateway(i));
            isp.ip(&["addr", "add", &gw, "dev", ISP_CUSTOMER_IF])?;
            isp.ip(&["link", "set", ISP_CUSTOMER_IF, "up"])?;
            let up = format!("{}/30", plan::isp_uplink(i));
            isp.ip(&["addr", "add", &up, "dev", ISP_UPLINK_IF])?;
            isp.ip(&["link", "set", ISP_UPLINK_IF, "up"])?;
            let far = plan::internet_side(i).to_string();
            isp.ip(&["route", "add", "default", "via", &far])?;
            inet.ip(&["addr", "add", &format!("{far}/30"), "dev", &to_isp])?;
            inet.ip(&["link", "set", &to_isp, "up"])?;
            let via = plan::isp_uplink(i).to_string();
            inet.ip(&["route", "add", &plan::wan_net(i), "via", &via])?;
        }
        if !tx_offload {
            for host in &self.hosts {
                tx_off(host, HOST_IF)?;
            }
            tx_off(rt, LAN_IF)?;
            for (i, isp) in self.isps.iter().enumerate() {
                tx_off(rt, &plan::wan_if(i))?;
                tx_off(isp, ISP_CUSTOMER_IF)?;
            }
        }
        Ok(())
    }

    fn wire_lan(&self, queues: u32) -> Result<()> {
        let Some(sw) = &self.switch else {
            return veth(LAN_IF, &self.router, HOST_IF, &self.hosts[0], queues);
        };
        sw.ip(&["link", "add", BRIDGE_IF, "type", "bridge"])?;
        sw.ip(&["link", "set", BRIDGE_IF, "up"])?;
        veth(LAN_IF, &self.router, "p0", sw, 1)?;
        let ports = (0..self.hosts.len()).map(|k| format!("h{k}"));
        for (port, host) in ports.clone().zip(&self.hosts) {
            veth(HOST_IF, host, &port, sw, 1)?;
        }
        for port in ["p0".to_string()].into_iter().chain(ports) {
            sw.ip(&["link", "set", &port, "master", BRIDGE_IF])?;
            sw.ip(&["link", "set", &port, "up"])?;
        }
        Ok(())
    }
}

/// A veth pair created straight into two namespaces: `a` in `ns_a`, `b` in `ns_b`, each end
/// with `queues` RX and TX queues.
fn veth(a: &str, ns_a: &Netns, b: &str, ns_b: &Netns, queues: u32) -> Result<()> {
    let q = queues.to_string();
    let args = [
        "link",
        "add",
        a,
        "netns",
        ns_a.name(),
        "numtxqueues",
        &q,
        "numrxqueues",
        &q,
        "type",
        "veth",
        "peer",
        "name",
        b,
        "netns",
        ns_b.name(),
        "numtxqueues",
        &q,
        "numrxqueues",
        &q,
    ];
    crate::cmd::check("ip", &args, None, crate::cmd::CONFIG_TIMEOUT).map(drop)
}

fn tx_off(ns: &Netns, dev: &str) -> Result<()> {
    ns.exec(&["ethtool", "-K", dev, "tx", "off"]).map(drop)
}
