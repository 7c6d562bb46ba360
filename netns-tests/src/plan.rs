//! The fixed address and interface plan of every topology, so tests and generated configs
//! agree without asking the topology.
//!
//! | namespace | interface | address | link to |
//! |---|---|---|---|
//! | host k (k = 0, 1, ...) | `eth0` | 192.168.1.(10+k)/24, default via 192.168.1.1 | router `lan0` (one host: direct veth; several: bridge `br0` in the switch namespace) |
//! | router | `lan0` | 192.168.1.1/24 | the LAN |
//! | router | `wan{i}` (i = 0, 1, 2) | 10.(i+1).0.2/24 | ISP i `cust0`; no default route (fwd steers) |
//! | ISP i | `cust0` | 10.(i+1).0.1/24 (the WAN gateway) | router `wan{i}` |
//! | ISP i | `up0` | 172.16.(i+1).1/30, default via 172.16.(i+1).2 | internet `isp{i}`; forwards, no NAT |
//! | internet | `isp{i}` | 172.16.(i+1).2/30, route 10.(i+1).0.0/24 via 172.16.(i+1).1 | ISP i `up0` |
//! | internet | `lo` | 203.0.113.10/32: nginx :80, iperf3 :5201, dnsmasq :53 | — |
//!
//! IPv6 is disabled in every namespace and `rp_filter` is 0 everywhere. The internet has no
//! route to 192.168.1.0/24: LAN traffic reaches servers only when the router source-NATs it,
//! and the source address a server logs (10.(i+1).0.2) tells which WAN carried it.

use std::net::Ipv4Addr;

/// Router LAN interface.
pub const LAN_IF: &str = "lan0";
/// Interface of each LAN host.
pub const HOST_IF: &str = "eth0";
/// ISP interface facing the router.
pub const ISP_CUSTOMER_IF: &str = "cust0";
/// ISP interface facing the internet.
pub const ISP_UPLINK_IF: &str = "up0";
/// Interface holding the server address in the internet namespace (`lo`: this kernel has
/// no dummy interfaces).
pub const SERVER_IF: &str = "lo";
/// Bridge in the LAN switch namespace (only with several hosts).
pub const BRIDGE_IF: &str = "br0";

/// The LAN subnet.
pub const LAN_NET: &str = "192.168.1.0/24";
/// Router address on the LAN (the hosts' gateway).
pub const LAN_ROUTER: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);
/// LAN prefix length.
pub const LAN_PREFIX_LEN: u8 = 24;
/// The server address in the internet namespace.
pub const SERVER: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
/// HTTP port of nginx.
pub const HTTP_PORT: u16 = 80;
/// Default iperf3 server port.
pub const IPERF_PORT: u16 = 5201;
/// DNS port of dnsmasq.
pub const DNS_PORT: u16 = 53;
/// The name dnsmasq answers (and its subdomains), with [`SERVER`].
pub const DNS_NAME: &str = "example.test";
/// A name whose TXT record dnsmasq answers with [`BIG_TXT_BYTES`] bytes of text: a UDP
/// answer of about 4 KB, in three fragments on a 1500-byte link.
pub const BIG_TXT_NAME: &str = "big.txt.test";
/// The TXT record of [`BIG_TXT_NAME`]: this many strings of [`BIG_TXT_STRING_LEN`] bytes.
pub const BIG_TXT_STRINGS: usize = 16;
/// Bytes in each string of the big TXT record (a string holds at most 255).
pub const BIG_TXT_STRING_LEN: usize = 250;
/// Bytes of text in the big TXT record.
pub const BIG_TXT_BYTES: usize = BIG_TXT_STRINGS * BIG_TXT_STRING_LEN;
/// Most WANs a topology has.
pub const MAX_WANS: usize = 3;
/// Most LAN hosts a topology has.
pub const MAX_HOSTS: usize = 50;

/// Router WAN interface `i`: `wan{i}`.
pub fn wan_if(i: usize) -> String {
    format!("wan{i}")
}

/// Internet interface towards ISP `i`: `isp{i}`.
pub fn internet_if(i: usize) -> String {
    format!("isp{i}")
}

/// Address of LAN host `k`: 192.168.1.(10+k).
pub fn lan_host(k: usize) -> Ipv4Addr {
    Ipv4Addr::new(192, 168, 1, 10 + octet(k))
}

/// Router address on WAN `i` (fwd's source NAT address): 10.(i+1).0.2.
pub fn wan_router(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, octet(i) + 1, 0, 2)
}

/// Gateway of WAN `i` (ISP `i`'s customer-side address): 10.(i+1).0.1.
pub fn wan_gateway(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, octet(i) + 1, 0, 1)
}

/// Subnet of WAN `i`: 10.(i+1).0.0/24.
pub fn wan_net(i: usize) -> String {
    format!("10.{}.0.0/24", i + 1)
}

/// ISP `i`'s address towards the internet: 172.16.(i+1).1 (/30).
pub fn isp_uplink(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(172, 16, octet(i) + 1, 1)
}

/// The internet's address towards ISP `i`: 172.16.(i+1).2 (/30).
pub fn internet_side(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(172, 16, octet(i) + 1, 2)
}

/// `http://203.0.113.10{path}` (`path` starts with `/`).
pub fn http_url(path: &str) -> String {
    format!("http://{SERVER}{path}")
}

/// Which WAN an address seen by a server belongs to (10.(i+1).0.2 gives `i`).
pub fn wan_of(addr: Ipv4Addr) -> Option<usize> {
    (0..MAX_WANS).find(|&i| wan_router(i) == addr)
}

fn octet(i: usize) -> u8 {
    u8::try_from(i).unwrap_or(u8::MAX)
}

/// A minimal fwd configuration for this plan with `wans` WANs of weight 1 and one group
/// `all` over them, used by a default rule (keys as in `examples/fwd.toml`).
pub fn fwd_config_toml(wans: usize) -> String {
    fwd_config_with(&vec![1; wans], "")
}

/// An fwd configuration for this plan: one WAN `isp{i}` per entry of `weights` (its weight),
/// group `all` over them, then `rules` (TOML `[[rule]]` tables, evaluated first), then a
/// default rule `default` sending everything else to `all`.
pub fn fwd_config_with(weights: &[u32], rules: &str) -> String {
    let mut s = format!(
        "[[lan]]\nname = \"lan\"\ninterface = \"{LAN_IF}\"\naddress = \"{LAN_ROUTER}/{LAN_PREFIX_LEN}\"\n"
    );
    for (i, weight) in weights.iter().enumerate() {
        s += &format!(
            "\n[[wan]]\nname = \"isp{i}\"\ninterface = \"{}\"\naddress = \"{}/24\"\ngateway = \"{}\"\nweight = {weight}\n",
            wan_if(i),
            wan_router(i),
            wan_gateway(i)
        );
    }
    s += "\n[[group]]\nname = \"all\"\nmembers = [";
    let members: Vec<String> = (0..weights.len())
        .map(|i| format!("{{ wan = \"isp{i}\" }}"))
        .collect();
    s += &members.join(", ");
    s += "]\n\n";
    s += rules;
    s += "\n[[rule]]\nname = \"default\"\ngroup = \"all\"\n";
    s
}

/// An fwd configuration with link health: WAN `isp{i}` in tier `tiers[i]` (weight 1) of group
/// `all` (last resort `last_resort`), every WAN probed by ICMP echo to [`SERVER`] with the
/// default timing, then `health` (more `[health]` keys, e.g. `on_wan_down = "keep"`), and a
/// default rule to `all`.
pub fn fwd_config_probed(tiers: &[u8], last_resort: &str, health: &str) -> String {
    let mut s = fwd_config_with(&vec![1; tiers.len()], "");
    for (i, tier) in tiers.iter().enumerate() {
        s = s.replace(
            &format!("name = \"isp{i}\"\ninterface"),
            &format!("name = \"isp{i}\"\ntier = {tier}\ninterface"),
        );
    }
    s = s.replace(
        "[[group]]\nname = \"all\"\n",
        &format!("[[group]]\nname = \"all\"\nlast_resort = \"{last_resort}\"\n"),
    );
    s + &format!("\n[health]\n{health}\n[health.probe]\ntargets = [\"{SERVER}\"]\n")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn plan_addresses() {
        assert_eq!(lan_host(1), Ipv4Addr::new(192, 168, 1, 11));
        assert_eq!(wan_router(2), Ipv4Addr::new(10, 3, 0, 2));
        assert_eq!(wan_gateway(0), Ipv4Addr::new(10, 1, 0, 1));
        assert_eq!(isp_uplink(1), Ipv4Addr::new(172, 16, 2, 1));
        assert_eq!(internet_side(1), Ipv4Addr::new(172, 16, 2, 2));
        assert_eq!(wan_of(Ipv4Addr::new(10, 2, 0, 2)), Some(1));
        assert_eq!(wan_of(SERVER), None);
        assert!(fwd_config_toml(2).contains("gateway = \"10.2.0.1\""));
        let probed = fwd_config_probed(&[1, 2], "unreachable", "on_wan_down = \"keep\"");
        assert!(probed.contains("name = \"isp1\"\ntier = 2\n"), "{probed}");
        assert!(probed.contains("last_resort = \"unreachable\""), "{probed}");
        assert!(
            probed.ends_with("targets = [\"203.0.113.10\"]\n"),
            "{probed}"
        );
    }
}
