//! The Linux kernel as the multi-WAN router, for comparison with fwd: routes and nftables
//! masquerade in the router namespace (recipes of FINDINGS.md), and rate measurements that
//! work whatever the router is.

use crate::error::{Error, Result};
use crate::plan::{self, LAN_IF};
use crate::topology::Topology;
use crate::UdpRate;

/// nftables table the kernel baseline adds in the router namespace.
pub const BASELINE_TABLE: &str = "fwt_baseline";
/// Payload of the UDP flood of [`measure_rates`], in bytes (a 92-byte IP packet).
pub const FLOOD_PAYLOAD: u16 = 64;
/// First `ip rule` preference (and `100 + i` the table) used by [`BaselineMode::Mwan3`].
const RULE_PREF: usize = 1000;

/// How the kernel spreads LAN traffic over the WANs. Every mode masquerades on each WAN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaselineMode {
    /// One ECMP default route over all WAN gateways, equal weights, L4 hash
    /// (`fib_multipath_hash_policy=1`, so different flows of one host spread).
    Ecmp,
    /// ECMP with one weight per WAN.
    WeightedEcmp(Vec<u32>),
    /// mwan3-style: a new connection from the LAN gets a random WAN mark by weight
    /// (`ct mark`, one per WAN), `ip rule fwmark` picks a per-WAN table.
    Mwan3(Vec<u32>),
    /// Default route via WAN `i` only.
    Single(usize),
}

/// Rates measured from LAN host 0 to the internet server.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    /// iperf3 TCP, one stream, receiver's Mbit/s.
    pub tcp_mbps: f64,
    /// iperf3 UDP at unlimited rate with [`FLOOD_PAYLOAD`]-byte payloads.
    pub udp_flood: UdpRate,
}

impl std::fmt::Display for Rates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let u = &self.udp_flood;
        write!(
            f,
            "tcp {:.0} Mbit/s; udp flood ({FLOOD_PAYLOAD} B payload) sent {:.0} kpps, received {:.0} kpps = {:.1} Mbit/s, loss {:.1}%",
            self.tcp_mbps,
            u.sent_pps / 1e3,
            u.received_pps / 1e3,
            u.mbps,
            u.loss_percent
        )
    }
}

impl Topology {
    /// Configures the router namespace's kernel as the multi-WAN router (replacing any
    /// earlier baseline): routes per `mode` and masquerade on every WAN.
    pub fn router_kernel_baseline(&self, mode: &BaselineMode) -> Result<()> {
        self.clear_kernel_baseline()?;
        let n = self.wan_count();
        let weights = |w: &Vec<u32>| -> Result<Vec<u32>> {
            if w.len() != n || w.contains(&0) {
                return Err(Error::new(format!(
                    "need {n} weights, each at least 1, not {w:?}"
                )));
            }
            Ok(w.clone())
        };
        let rt = self.router();
        let mut nft = format!(
            "table ip {BASELINE_TABLE} {{\n  chain postrouting {{\n    type nat hook postrouting priority srcnat; policy accept;\n"
        );
        for i in 0..n {
            nft += &format!("    oifname \"{}\" masquerade\n", plan::wan_if(i));
        }
        nft += "  }\n";
        match mode {
            BaselineMode::Ecmp => self.ecmp(&vec![1; n])?,
            BaselineMode::WeightedEcmp(w) => self.ecmp(&weights(w)?)?,
            BaselineMode::Single(i) => {
                if *i >= n {
                    return Err(Error::new(format!("no WAN {i}")));
                }
                let gw = plan::wan_gateway(*i).to_string();
                rt.ip(&["route", "replace", "default", "via", &gw])?;
            }
            BaselineMode::Mwan3(w) => {
                let w = weights(w)?;
                let total: u32 = w.iter().sum();
                let slots: Vec<String> = (0..n)
                    .flat_map(|i| std::iter::repeat_n(i + 1, w[i] as usize))
                    .enumerate()
                    .map(|(slot, mark)| format!("{slot} : {mark}"))
                    .collect();
                nft += &format!(
                    "  chain prerouting {{\n    type filter hook prerouting priority mangle; policy accept;\n    iifname \"{LAN_IF}\" ct mark & 0xff == 0 ct mark set numgen random mod {total} map {{ {} }}\n    iifname \"{LAN_IF}\" meta mark set ct mark\n  }}\n",
                    slots.join(", ")
                );
                for i in 0..n {
                    let table = (100 + i).to_string();
                    let gw = plan::wan_gateway(i).to_string();
                    rt.ip(&["route", "replace", "default", "via", &gw, "table", &table])?;
                    let pref = (RULE_PREF + i).to_string();
                    let mark = format!("{}/0xff", i + 1);
                    rt.ip(&[
                        "rule", "add", "pref", &pref, "fwmark", &mark, "lookup", &table,
                    ])?;
                }
            }
        }
        nft += "}\n";
        rt.nft(&nft)
    }

    /// Removes what [`Topology::router_kernel_baseline`] added: the router is back to no
    /// default route and no NAT (existing conntrack entries stay until they expire).
    pub fn clear_kernel_baseline(&self) -> Result<()> {
        let rt = self.router();
        let _ = rt.exec(&["nft", "delete", "table", "ip", BASELINE_TABLE]);
        while rt.ip(&["route", "del", "default"]).is_ok() {}
        for i in 0..plan::MAX_WANS {
            let _ = rt.ip(&["rule", "del", "pref", &(RULE_PREF + i).to_string()]);
            let _ = rt.ip(&["route", "flush", "table", &(100 + i).to_string()]);
        }
        let routes = rt.ip(&["route", "show", "default"])?;
        if routes.trim().is_empty() {
            Ok(())
        } else {
            Err(Error::new(format!(
                "default route left in {}: {routes}",
                rt.name()
            )))
        }
    }

    fn ecmp(&self, weights: &[u32]) -> Result<()> {
        let rt = self.router();
        rt.sysctl(&[("net.ipv4.fib_multipath_hash_policy", "1")])?;
        let mut args: Vec<String> = ["route", "replace", "default"].map(String::from).to_vec();
        for (i, w) in weights.iter().enumerate() {
            args.extend([
                "nexthop".to_string(),
                "via".to_string(),
                plan::wan_gateway(i).to_string(),
                "dev".to_string(),
                plan::wan_if(i),
                "weight".to_string(),
                w.to_string(),
            ]);
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        rt.ip(&refs).map(drop)
    }
}

/// Measures [`Rates`] over `topo` as it is routed now (kernel baseline or fwd), `seconds`
/// per test, starting the iperf3 server if needed.
pub fn measure_rates(topo: &Topology, seconds: u32) -> Result<Rates> {
    topo.start_iperf3()?;
    let host = topo.host(0);
    let tcp_mbps = host.iperf3_tcp(seconds)?;
    let udp_flood = host.iperf3_udp(seconds, 0, FLOOD_PAYLOAD)?;
    Ok(Rates {
        tcp_mbps,
        udp_flood,
    })
}

/// The kernel's rates as a 2-WAN router in `mode` (a fresh default topology, torn down
/// afterwards), for comparing fwd against: see [`measure_rates`].
pub fn baseline_rates(mode: &BaselineMode, seconds: u32) -> Result<Rates> {
    let topo = Topology::new(2)?;
    topo.router_kernel_baseline(mode)?;
    measure_rates(&topo, seconds)
}
