//! Topologies with the Linux kernel as the multi-WAN router (no fwd yet): connectivity,
//! servers, logs of which WAN carried traffic, link faults, cleanup, and baseline rates.

#![allow(clippy::unwrap_used)]

use netns_tests::names::list_namespaces;
use netns_tests::plan::{self, DNS_NAME, SERVER};
use netns_tests::{
    baseline_rates, require_root_or_skip, require_tools_or_skip, wait_until, BaselineMode,
    Topology, NGINX_INDEX_BODY,
};
use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Tests that push bulk traffic take turns, so the printed rates are not halved by another
/// test's iperf3 on these 2 cores.
static BULK: Mutex<()> = Mutex::new(());

fn bulk() -> std::sync::MutexGuard<'static, ()> {
    BULK.lock().unwrap_or_else(|p| p.into_inner())
}

const SERVER_TOOLS: &[&str] = &["nginx", "iperf3", "dnsmasq", "curl", "dig", "ping"];

fn two_wan_baseline() -> Topology {
    let t0 = Instant::now();
    let topo = Topology::new(2).unwrap();
    topo.router_kernel_baseline(&BaselineMode::Ecmp).unwrap();
    println!("{}: built in {:?}", topo.prefix(), t0.elapsed());
    topo
}

fn wait_for_sources(what: &str, mut read: impl FnMut() -> Vec<Ipv4Addr>) -> Vec<Ipv4Addr> {
    let mut seen = Vec::new();
    wait_until(what, Duration::from_secs(3), || {
        seen = read();
        Ok(!seen.is_empty())
    })
    .unwrap();
    seen
}

#[test]
fn kernel_baseline_serves_lan_over_two_wans() {
    if !require_tools_or_skip("kernel_baseline_serves_lan_over_two_wans", SERVER_TOOLS) {
        return;
    }
    let topo = two_wan_baseline();
    topo.start_nginx().unwrap();
    topo.start_dns().unwrap();
    topo.start_iperf3().unwrap();
    let host = topo.host(0);
    let wans = topo.wan_addrs();

    let ping = host.ping(SERVER, 3).unwrap();
    assert!(ping.received > 0, "{ping:?}");

    assert_eq!(host.curl(&plan::http_url("/")).unwrap(), NGINX_INDEX_BODY);
    let big = host.curl(&netns_tests::bytes_url(65_536)).unwrap();
    assert_eq!(big.len(), 65_536);
    let http = wait_for_sources("nginx log", || topo.nginx_clients().unwrap());
    assert!(
        http.iter().all(|a| wans.contains(a)),
        "{http:?} not in {wans:?}"
    );

    assert_eq!(host.dig(DNS_NAME, SERVER).unwrap(), [SERVER]);
    let dns = wait_for_sources("dnsmasq log", || topo.dns_clients().unwrap());
    assert!(
        dns.iter().all(|a| wans.contains(a)),
        "{dns:?} not in {wans:?}"
    );

    let _turn = bulk();
    let mbps = host.iperf3_tcp(2).unwrap();
    assert!(mbps > 0.0);
    println!("{}: iperf3 tcp 2 s: {mbps:.0} Mbit/s", topo.prefix());
}

#[test]
fn ecmp_uses_both_wans_and_traceroute_shows_the_path() {
    if !require_tools_or_skip(
        "ecmp_uses_both_wans_and_traceroute_shows_the_path",
        &["nginx", "curl", "traceroute"],
    ) {
        return;
    }
    let topo = Topology::builder().wans(3).hosts(2).build().unwrap();
    topo.router_kernel_baseline(&BaselineMode::Ecmp).unwrap();
    topo.start_nginx().unwrap();
    for round in 0..12 {
        for host in topo.hosts() {
            let body = host.curl(&plan::http_url("/")).unwrap();
            assert_eq!(body, NGINX_INDEX_BODY, "round {round} from {}", host.name());
        }
    }
    let mut seen = Vec::new();
    wait_until("24 requests logged", Duration::from_secs(3), || {
        seen = topo.nginx_clients()?;
        Ok(seen.len() == 24)
    })
    .unwrap();
    let used: Vec<usize> = (0..3)
        .filter(|&i| seen.contains(&plan::wan_router(i)))
        .collect();
    // With the L4 hash, 24 connections all on one WAN has odds of 3 * 3^-24.
    assert!(used.len() >= 2, "one WAN took all of {seen:?}");

    let hops = topo.host(1).traceroute(SERVER).unwrap();
    assert_eq!(hops.first(), Some(&Some(plan::LAN_ROUTER)), "{hops:?}");
    assert_eq!(hops.last(), Some(&Some(SERVER)), "{hops:?}");
    assert_eq!(hops.len(), 3, "router, ISP, server: {hops:?}");
}

#[test]
fn mwan3_style_marks_spread_connections_by_weight() {
    if !require_tools_or_skip(
        "mwan3_style_marks_spread_connections_by_weight",
        &["nginx", "curl"],
    ) {
        return;
    }
    let topo = Topology::new(2).unwrap();
    let mode = BaselineMode::Mwan3(vec![1, 1]);
    topo.router_kernel_baseline(&mode).unwrap();
    topo.start_nginx().unwrap();
    for _ in 0..16 {
        assert_eq!(
            topo.host(0).curl(&plan::http_url("/")).unwrap(),
            NGINX_INDEX_BODY
        );
    }
    let mut seen = Vec::new();
    wait_until("16 requests logged", Duration::from_secs(3), || {
        seen = topo.nginx_clients()?;
        Ok(seen.len() == 16)
    })
    .unwrap();
    // Random marks: all 16 on one WAN has odds of 2 * 2^-16.
    assert!(seen.contains(&plan::wan_router(0)), "{seen:?}");
    assert!(seen.contains(&plan::wan_router(1)), "{seen:?}");
    topo.clear_kernel_baseline().unwrap();
    assert_eq!(
        topo.router().ip(&["rule", "show"]).unwrap().lines().count(),
        3
    );
}

#[test]
fn wan_link_cut_and_blackhole() {
    if !require_tools_or_skip("wan_link_cut_and_blackhole", &["ping", "curl", "nginx"]) {
        return;
    }
    let topo = Topology::new(2).unwrap();
    topo.router_kernel_baseline(&BaselineMode::Single(0))
        .unwrap();
    topo.start_nginx().unwrap();
    let rt = topo.router();
    let (gw0, gw1) = (plan::wan_gateway(0), plan::wan_gateway(1));
    assert!(rt.reachable(gw0));

    topo.set_wan_link(0, false).unwrap();
    assert!(!rt.reachable(gw0), "gateway 0 answers with its link down");
    assert!(rt.reachable(gw1), "WAN 1 is not affected");
    topo.set_wan_link(0, true).unwrap();
    wait_until("gateway 0 back", Duration::from_secs(5), || {
        Ok(rt.reachable(gw0))
    })
    .unwrap();
    let url = plan::http_url("/");
    assert_eq!(topo.host(0).curl(&url).unwrap(), NGINX_INDEX_BODY);

    topo.blackhole_isp(0, true).unwrap();
    assert!(
        rt.reachable(gw0),
        "the gateway still answers in a blackhole"
    );
    assert!(!topo.host(0).reachable(SERVER));
    assert!(topo.host(0).curl_max_time(&url, 1).is_err());
    topo.blackhole_isp(0, false).unwrap();
    assert_eq!(topo.host(0).curl(&url).unwrap(), NGINX_INDEX_BODY);

    topo.clear_kernel_baseline().unwrap();
    assert!(
        topo.host(0).curl_max_time(&url, 1).is_err(),
        "no route without a baseline"
    );
}

#[test]
fn namespaces_are_removed_on_drop_and_on_panic() {
    if !require_root_or_skip("namespaces_are_removed_on_drop_and_on_panic") {
        return;
    }
    let topo = Topology::builder().wans(3).hosts(2).build().unwrap();
    let names = topo.namespace_names();
    assert_eq!(names.len(), 2 + 1 + 1 + 3 + 1, "{names:?}");
    let listed = list_namespaces();
    assert!(
        names.iter().all(|n| listed.contains(n)),
        "{names:?} vs {listed:?}"
    );
    topo.start_nginx().ok(); // a child process to kill, when nginx is installed
    let workdir = topo.workdir().to_path_buf();
    drop(topo);
    let listed = list_namespaces();
    assert!(
        names.iter().all(|n| !listed.contains(n)),
        "left: {listed:?}"
    );
    assert!(!workdir.exists());

    let (tx, rx) = std::sync::mpsc::channel();
    let result = std::panic::catch_unwind(move || {
        let topo = Topology::new(2).unwrap();
        tx.send(topo.namespace_names()).unwrap();
        panic!("test body fails with the topology alive");
    });
    assert!(result.is_err());
    let names = rx.recv().unwrap();
    let listed = list_namespaces();
    assert!(
        names.iter().all(|n| !listed.contains(n)),
        "left: {listed:?}"
    );
}

#[test]
fn kernel_baseline_rates() {
    if !require_tools_or_skip("kernel_baseline_rates", &["iperf3"]) {
        return;
    }
    let _turn = bulk();
    let rates = baseline_rates(&BaselineMode::Ecmp, 2).unwrap();
    println!("kernel baseline (ECMP + masquerade, 2 WANs, tx offload off): {rates}");
    assert!(rates.tcp_mbps > 0.0 && rates.udp_flood.received_pps > 0.0);
}
