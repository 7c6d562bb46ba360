//! fwd as the router of a namespace topology: real clients on LAN hosts, real servers in
//! the "internet", fwd (TUN backend) in the router namespace. Each test builds its own
//! topology (unique names) and removes it, also on failure.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use ctl::protocol::{Reply, Request};
use netns_tests::plan::{self, DNS_NAME, SERVER};
use netns_tests::{
    require_tools_or_skip, wait_until, Fwd, Topology, TopologyBuilder, NGINX_INDEX_BODY,
};

const TOOLS: &[&str] = &[
    "nginx",
    "iperf3",
    "dnsmasq",
    "curl",
    "dig",
    "ping",
    "traceroute",
];

fn skip(test: &str) -> bool {
    !require_tools_or_skip(test, TOOLS)
}

fn topology(builder: TopologyBuilder) -> Topology {
    builder.build().unwrap()
}

/// Waits until `read` returns at least `n` sources; returns them.
fn sources(
    what: &str,
    n: usize,
    mut read: impl FnMut() -> netns_tests::Result<Vec<Ipv4Addr>>,
) -> Vec<Ipv4Addr> {
    let mut seen = Vec::new();
    wait_until(what, Duration::from_secs(5), || {
        seen = read()?;
        Ok(seen.len() >= n)
    })
    .unwrap_or_else(|e| panic!("{e}: saw {} of {n}", seen.len()));
    seen
}

fn count_by_wan(addrs: &[Ipv4Addr]) -> HashMap<usize, usize> {
    let mut out = HashMap::new();
    for a in addrs {
        let wan = plan::wan_of(*a).unwrap_or_else(|| panic!("{a} is not a WAN address"));
        *out.entry(wan).or_default() += 1;
    }
    out
}

fn ip_rules(topo: &Topology) -> String {
    topo.router().exec(&["ip", "rule", "show"]).unwrap()
}

fn router_links(topo: &Topology) -> String {
    topo.router().exec(&["ip", "-o", "link", "show"]).unwrap()
}

#[test]
fn lan_hosts_reach_the_internet_through_fwd_and_fwd_cleans_up() {
    if skip("lan_hosts_reach_the_internet_through_fwd_and_fwd_cleans_up") {
        return;
    }
    let topo = topology(Topology::builder().wans(2));
    topo.start_nginx().unwrap();
    topo.start_dns().unwrap();
    topo.start_iperf3().unwrap();
    let rules_before = ip_rules(&topo);
    let fwd = Fwd::start(&topo, &plan::fwd_config_toml(2)).unwrap();
    let host = topo.host(0);

    let ping = host.ping(SERVER, 3).unwrap();
    assert_eq!(ping.received, 3, "{ping:?}");
    assert_eq!(host.curl(&plan::http_url("/")).unwrap(), NGINX_INDEX_BODY);
    let big = host.curl(&netns_tests::bytes_url(1_048_576)).unwrap();
    assert_eq!(big.len(), 1_048_576);
    assert_eq!(host.dig(DNS_NAME, SERVER).unwrap(), vec![SERVER]);
    let tcp = host.iperf3_tcp(2).unwrap();
    assert!(tcp > 1.0, "iperf3 TCP through fwd: {tcp} Mbit/s");
    let udp = host.iperf3_udp(2, 20_000_000, 1200).unwrap();
    assert!(udp.mbps > 1.0 && udp.loss_percent < 50.0, "{udp:?}");
    println!("through fwd: TCP {tcp:.0} Mbit/s, UDP {udp:?}");

    // traceroute: fwd counts as one hop (the router), then the ISP, then the server.
    let hops = host.traceroute(SERVER).unwrap();
    assert_eq!(
        hops.first().copied().flatten(),
        Some(plan::LAN_ROUTER),
        "{hops:?}"
    );
    let isp = hops.get(1).copied().flatten().unwrap();
    assert!(
        (0..2).any(|i| plan::wan_gateway(i) == isp),
        "hop 2 should be an ISP gateway: {hops:?}"
    );
    assert_eq!(hops.last().copied().flatten(), Some(SERVER), "{hops:?}");

    let status = fwd.status().unwrap();
    match netns_tests::fwd::backend().as_deref() {
        Some("afxdp") => assert!(
            status.backend.starts_with("afxdp (native XDP;")
                && status.backend.ends_with("copy-mode sockets"),
            "{}",
            status.backend
        ),
        Some("tun") => assert_eq!(status.backend, "tun"),
        _ => {}
    }
    assert!(status.totals.sessions_created >= 5, "{status:?}");
    assert!(status.totals.forwarded > 1000, "{status:?}");
    assert!(status.wans.iter().all(|w| w.state == "up"));

    // A clean stop removes every rule, route and TUN device, the socket, and (AF_XDP) the
    // XDP program.
    let socket = fwd.socket().to_path_buf();
    let exit = fwd.stop().unwrap();
    assert!(exit.success(), "{exit:?}");
    assert_eq!(ip_rules(&topo), rules_before, "rules left behind");
    assert!(!router_links(&topo).contains("fwd0-"), "TUN left behind");
    assert!(
        !router_links(&topo).contains("xdp"),
        "XDP program left behind"
    );
    for table in ["4200", "4201", "4202", "4300", "4301"] {
        let routes = topo
            .router()
            .exec(&["ip", "route", "show", "table", table])
            .unwrap_or_default();
        assert!(routes.trim().is_empty(), "table {table}: {routes}");
    }
    assert!(!socket.exists(), "control socket left behind");
    let reserved = topo
        .router()
        .exec(&["cat", "/proc/sys/net/ipv4/ip_local_reserved_ports"])
        .unwrap();
    assert!(
        reserved.trim().is_empty(),
        "reserved ports left: {reserved}"
    );
}

#[test]
fn new_connections_follow_weights_and_fwdctl_agrees() {
    if skip("new_connections_follow_weights_and_fwdctl_agrees") {
        return;
    }
    let topo = topology(Topology::builder().wans(2));
    topo.start_nginx().unwrap();
    let fwd = Fwd::start(&topo, &plan::fwd_config_with(&[3, 1], "")).unwrap();
    let host = topo.host(0);
    const CONNECTIONS: usize = 200;
    // One shell loop of curls: each a new TCP connection (new source port).
    let script = format!(
        "for i in $(seq {CONNECTIONS}); do curl -s -o /dev/null --max-time 5 {}; done",
        plan::http_url("/")
    );
    host.exec_timeout(&["sh", "-c", &script], Duration::from_secs(120))
        .unwrap();
    let seen = sources("nginx log", CONNECTIONS, || topo.nginx_clients());
    let by_wan = count_by_wan(&seen);
    let (a, b) = (
        by_wan.get(&0).copied().unwrap_or(0),
        by_wan.get(&1).copied().unwrap_or(0),
    );
    println!("3:1 weights over {CONNECTIONS} connections: isp0 {a}, isp1 {b}");
    assert_eq!(a + b, CONNECTIONS);
    // Each worker keeps its own exact round robin; together they stay close to 3:1.
    let ratio = a as f64 / b.max(1) as f64;
    assert!((2.4..=3.75).contains(&ratio), "isp0 {a} : isp1 {b}");

    // fwdctl sees the same split: every connection is still tracked (TIME_WAIT lasts minutes).
    let flows0 = fwd.flows(Some("isp0"), Some(1)).unwrap();
    let flows1 = fwd.flows(Some("isp1"), Some(1)).unwrap();
    assert_eq!((flows0.total as usize, flows1.total as usize), (a, b));
    let status = fwd.status().unwrap();
    assert_eq!(status.wans[0].flows as usize, a);
    assert_eq!(status.wans[1].flows as usize, b);
    assert!(status.wans[0].tx_packets > status.wans[1].tx_packets);

    // The real fwdctl: human tables and --json.
    let out = fwd.fwdctl(&["status"]).unwrap();
    assert!(out.success(), "{out:?}");
    assert!(
        out.stdout.contains("isp0") && out.stdout.contains("up"),
        "{}",
        out.stdout
    );
    let out = fwd
        .fwdctl(&["--json", "flows", "--wan", "isp1", "--limit", "3"])
        .unwrap();
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(json["total"].as_u64(), Some(b as u64), "{json}");
    assert_eq!(json["flows"].as_array().map(Vec::len), Some(3.min(b)));
    let out = fwd.fwdctl(&["flows", "--wan", "nope"]).unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains("no WAN named 'nope'"), "{}", out.stderr);
    let out = fwd.fwdctl(&["rules"]).unwrap();
    assert!(out.stdout.contains("default"), "{}", out.stdout);
    assert!(
        out.stdout.contains(&CONNECTIONS.to_string()),
        "hits: {}",
        out.stdout
    );
}

const DNS_AND_STICKY_RULES: &str = r#"
[[rule]]
name = "dns"
proto = "udp"
dst_ports = [53]
wan = "isp1"

[[rule]]
name = "sticky-host"
src = ["192.168.1.11"]
group = "all"
sticky = "5m"
"#;

#[test]
fn rules_steer_dns_to_one_wan_and_sticky_keeps_a_source_on_one_wan() {
    if skip("rules_steer_dns_to_one_wan_and_sticky_keeps_a_source_on_one_wan") {
        return;
    }
    let topo = topology(Topology::builder().wans(2).hosts(2));
    topo.start_nginx().unwrap();
    topo.start_dns().unwrap();
    let fwd = Fwd::start(&topo, &plan::fwd_config_with(&[1, 1], DNS_AND_STICKY_RULES)).unwrap();

    for _ in 0..10 {
        assert_eq!(topo.host(0).dig(DNS_NAME, SERVER).unwrap(), vec![SERVER]);
    }
    let dns = sources("dnsmasq log", 10, || topo.dns_clients());
    assert_eq!(
        count_by_wan(&dns),
        HashMap::from([(1, dns.len())]),
        "{dns:?}"
    );

    let url = plan::http_url("/");
    for _ in 0..20 {
        topo.host(1).curl(&url).unwrap();
    }
    let sticky = sources("nginx log", 20, || topo.nginx_clients());
    assert_eq!(
        count_by_wan(&sticky).len(),
        1,
        "sticky host used both WANs: {sticky:?}"
    );
    for _ in 0..20 {
        topo.host(0).curl(&url).unwrap();
    }
    let all = sources("nginx log", 40, || topo.nginx_clients());
    assert_eq!(count_by_wan(&all[20..]).len(), 2, "balanced host: {all:?}");

    // explain agrees with what the servers saw.
    let reply = fwd
        .request(&Request::Explain {
            src: plan::lan_host(0),
            dst: SERVER,
            proto: ctl::protocol::Proto::Udp,
            sport: Some(40000),
            dport: Some(53),
        })
        .unwrap();
    let Reply::Explain(e) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(e.rule.as_deref(), Some("dns"));
    assert_eq!(e.wan.as_deref(), Some("isp1"), "{e:?}");
    let out = fwd
        .fwdctl(&[
            "explain",
            "--src",
            "192.168.1.11",
            "--dst",
            "203.0.113.10",
            "--proto",
            "tcp",
            "--dport",
            "80",
        ])
        .unwrap();
    assert!(out.success(), "{out:?}");
    assert!(out.stdout.contains("sticky-host"), "{}", out.stdout);
    let sticky_wan = format!("isp{}", plan::wan_of(sticky[0]).unwrap());
    assert!(out.stdout.contains(&sticky_wan), "{}", out.stdout);
    let out = fwd
        .fwdctl(&[
            "explain",
            "--src",
            "10.9.9.9",
            "--dst",
            "203.0.113.10",
            "--proto",
            "tcp",
        ])
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

const MAIN_TABLE_RULE: &str = r#"
[[rule]]
name = "direct"
dst = ["203.0.113.10/32"]
proto = "tcp"
dst_ports = [80]
action = "main"
"#;

/// A rule that hands a flow to the main table hands it the whole TCP connection: the
/// handshake's last ACK and the request after the SYN go to the kernel too, which routes them
/// by its own default route without NAT (here: by isp1, whose side routes the LAN back).
#[test]
fn a_main_table_rule_hands_whole_tcp_connections_to_the_kernel() {
    if skip("a_main_table_rule_hands_whole_tcp_connections_to_the_kernel") {
        return;
    }
    let topo = topology(Topology::builder().wans(2));
    topo.start_nginx().unwrap();
    let lan = plan::LAN_NET;
    let gateway = plan::wan_gateway(1).to_string();
    let wan = plan::wan_router(1).to_string();
    let uplink = plan::isp_uplink(1).to_string();
    topo.router()
        .ip(&["route", "add", "default", "via", &gateway])
        .unwrap();
    topo.isp(1).ip(&["route", "add", lan, "via", &wan]).unwrap();
    topo.internet()
        .ip(&["route", "add", lan, "via", &uplink])
        .unwrap();
    // the LAN is routed, not translated: its replies come from the WAN to LAN addresses
    let config = plan::fwd_config_with(&[1, 1], MAIN_TABLE_RULE).replacen(
        "address = \"192.168.1.1/24\"\n",
        "address = \"192.168.1.1/24\"\ninbound = \"allow\"\n",
        1,
    );
    assert!(config.contains("inbound = \"allow\""), "{config}");
    let fwd = Fwd::start(&topo, &config).unwrap();
    for _ in 0..3 {
        let body = topo.host(0).curl(&plan::http_url("/")).unwrap();
        assert!(body.contains(NGINX_INDEX_BODY), "{body}");
    }
    let seen = sources("nginx log", 3, || topo.nginx_clients());
    assert_eq!(seen, vec![plan::lan_host(0); 3], "not translated");
    assert_eq!(fwd.counter("tcp_not_syn").unwrap(), 0);
    assert!(fwd.counter("to_kernel").unwrap() >= 3 * 5, "every segment");
    assert_eq!(fwd.status().unwrap().totals.flows, 0, "no session");
}

#[test]
fn unsolicited_inbound_traffic_is_dropped_and_counted() {
    if skip("unsolicited_inbound_traffic_is_dropped_and_counted") {
        return;
    }
    let topo = topology(Topology::builder().wans(2));
    let fwd = Fwd::start(&topo, &plan::fwd_config_toml(2)).unwrap();
    assert_eq!(fwd.counter("no_session_inbound").unwrap(), 0);
    // From the internet to fwd's NAT ports on WAN 0: UDP datagrams and a TCP SYN.
    let wan0 = plan::wan_router(0);
    let send = format!(
        "for p in 40000 40001 40002; do echo probe > /dev/udp/{wan0}/$p; done; \
         timeout 2 bash -c 'echo > /dev/tcp/{wan0}/40003' || true"
    );
    topo.internet()
        .exec_timeout(&["bash", "-c", &send], Duration::from_secs(10))
        .unwrap();
    wait_until("drops counted", Duration::from_secs(5), || {
        Ok(fwd.counter("no_session_inbound")? >= 4)
    })
    .unwrap();
    assert_eq!(
        fwd.status().unwrap().totals.flows,
        0,
        "no session was created"
    );
    let out = fwd.fwdctl(&["counters"]).unwrap();
    assert!(out.stdout.contains("no_session_inbound"), "{}", out.stdout);
    // The router itself still answers ping on its WAN address (the kernel's job).
    assert!(topo.internet().reachable(wan0));
}

#[test]
fn fragmented_datagrams_cross_fwd_both_ways_and_the_routers_own_reach_it() {
    if skip("fragmented_datagrams_cross_fwd_both_ways_and_the_routers_own_reach_it") {
        return;
    }
    let topo = topology(Topology::builder().wans(2));
    topo.start_dns().unwrap();
    topo.start_iperf3().unwrap();
    let fwd = Fwd::start(&topo, &plan::fwd_config_toml(2)).unwrap();
    let host = topo.host(0);

    // A DNS answer of ~4 KB comes back from the internet in three fragments: the first
    // carries the NAT port, the later ones no port at all, and all of them must reach fwd
    // and be translated.
    for _ in 0..3 {
        let got = host
            .dig_txt_bytes(plan::BIG_TXT_NAME, SERVER, None)
            .unwrap();
        assert_eq!(got, plan::BIG_TXT_BYTES, "fragmented answer through fwd");
    }
    // LAN to internet: 3000-byte datagrams leave the host in two fragments each.
    let udp = host.iperf3_udp(1, 2_000_000, 3000).unwrap();
    assert!(
        udp.loss_percent < 50.0,
        "fragmented upload through fwd: {udp:?}"
    );
    // ICMP echo both ways in fragments.
    let ping = host.exec(&["ping", "-c", "2", "-s", "3000", &SERVER.to_string()]);
    let stats = ping.as_deref().ok().and_then(netns_tests::parse_ping);
    assert_eq!(stats.map(|s| s.received), Some(2), "{ping:?}");

    // The router's own lookup from a WAN address: its answer's first fragment goes to the
    // kernel by its port; the later ones go through fwd, which does not know them and hands
    // them back to the kernel, which reassembles the datagram.
    let to_kernel = fwd.counter("to_kernel").unwrap();
    let own = topo
        .router()
        .dig_txt_bytes(plan::BIG_TXT_NAME, SERVER, Some(plan::wan_router(0)))
        .unwrap();
    assert_eq!(
        own,
        plan::BIG_TXT_BYTES,
        "the router's own fragmented answer"
    );
    assert!(
        fwd.counter("to_kernel").unwrap() >= to_kernel + 2,
        "the later fragments went through fwd"
    );

    let counters = fwd.counters().unwrap();
    let drops: Vec<_> = counters.drops.iter().filter(|c| c.value > 0).collect();
    assert!(drops.is_empty(), "drops: {drops:?}");
}

fn downloads_survive(topo: &Topology) -> std::thread::JoinHandle<String> {
    // A 4 MB download at 1 MB/s: a TCP flow that lives across the reloads below.
    let host = topo.host(0).name().to_string();
    let url = netns_tests::bytes_url(4_194_304);
    std::thread::spawn(move || {
        let out = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &host,
                "curl",
                "-s",
                "--max-time",
                "20",
                "--limit-rate",
                "1M",
                "-o",
                "/dev/null",
                "-w",
                "%{size_download}",
                &url,
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    })
}

#[test]
fn reload_applies_new_rules_keeps_flows_and_refuses_bad_configs() {
    if skip("reload_applies_new_rules_keeps_flows_and_refuses_bad_configs") {
        return;
    }
    let topo = topology(Topology::builder().wans(2));
    topo.start_nginx().unwrap();
    let config = plan::fwd_config_toml(2);
    let fwd = Fwd::start(&topo, &config).unwrap();
    let download = downloads_survive(&topo);
    std::thread::sleep(Duration::from_millis(500));

    // SIGHUP with a new rule: applied, flows kept.
    let with_rule = plan::fwd_config_with(
        &[1, 1],
        "[[rule]]\nname = \"web-isp0\"\nproto = \"tcp\"\ndst_ports = [80]\nwan = \"isp0\"\n",
    );
    fwd.write_config(&with_rule).unwrap();
    fwd.signal("HUP").unwrap();
    wait_until("SIGHUP reload", Duration::from_secs(5), || {
        Ok(fwd.fwdctl(&["rules"])?.stdout.contains("web-isp0"))
    })
    .unwrap();
    for _ in 0..6 {
        topo.host(0).curl(&plan::http_url("/")).unwrap();
    }
    let web = sources("nginx log", 7, || topo.nginx_clients());
    assert!(
        web[web.len() - 6..]
            .iter()
            .all(|&a| a == plan::wan_router(0)),
        "{web:?}"
    );

    // An invalid config is refused with its error; the running one stays.
    fwd.write_config(&with_rule.replace("weight = 1", "weight = 0"))
        .unwrap();
    let out = fwd.fwdctl(&["reload"]).unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains("weight"), "{}", out.stderr);
    // A change the tables depend on needs a restart.
    fwd.write_config(&with_rule.replace("10.2.0.2/24", "10.2.0.3/24"))
        .unwrap();
    let out = fwd.fwdctl(&["reload"]).unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains("restart"), "{}", out.stderr);
    assert!(fwd.fwdctl(&["rules"]).unwrap().stdout.contains("web-isp0"));
    // Back to the first config through fwdctl.
    fwd.write_config(&config).unwrap();
    let out = fwd.fwdctl(&["reload"]).unwrap();
    assert!(out.success(), "{out:?}");
    assert!(!fwd.fwdctl(&["rules"]).unwrap().stdout.contains("web-isp0"));

    assert_eq!(
        download.join().unwrap(),
        "4194304",
        "the download broke across reloads"
    );
    assert!(fwd.is_running());
}

#[test]
fn the_control_socket_survives_bad_requests_and_guards_against_a_second_fwd() {
    if skip("the_control_socket_survives_bad_requests_and_guards_against_a_second_fwd") {
        return;
    }
    let topo = topology(Topology::builder().wans(2));
    let fwd = Fwd::start(&topo, &plan::fwd_config_toml(2)).unwrap();
    let mut stream = UnixStream::connect(fwd.socket()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    for bad in [
        "not json",
        "{}",
        r#"{"cmd":"launch"}"#,
        r#"{"cmd":"flows","limit":"lots"}"#,
        r#"{"cmd":"explain","src":"1.2.3"}"#,
    ] {
        writeln!(stream, "{bad}").unwrap();
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert!(line.contains("\"error\""), "{bad} -> {line}");
    }
    writeln!(stream, r#"{{"cmd":"status"}}"#).unwrap();
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.contains("\"ok\""), "{line}");
    // A huge line closes that connection only.
    let _ = stream.write_all(&vec![b'x'; 200_000]);
    assert!(fwd.status().is_ok());

    // A second fwd on the same socket refuses to start and leaves the first alone.
    let second = netns_tests::fwd_binary().unwrap();
    let out = topo
        .router()
        .output(
            &[
                &second.display().to_string(),
                "run",
                "--config",
                &fwd.config_path().display().to_string(),
                "--control-socket",
                &fwd.socket().display().to_string(),
            ],
            None,
            Duration::from_secs(10),
        )
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        out.stderr.contains("another fwd is running"),
        "{}",
        out.stderr
    );
    assert!(fwd.status().is_ok());
}

#[test]
fn a_minute_of_mixed_load_does_not_hurt_fwd() {
    if skip("a_minute_of_mixed_load_does_not_hurt_fwd") {
        return;
    }
    let seconds: u64 = std::env::var("FWD_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let topo = topology(Topology::builder().wans(2).hosts(2));
    topo.start_nginx().unwrap();
    topo.start_dns().unwrap();
    topo.start_iperf3().unwrap();
    let fwd = Fwd::start(&topo, &plan::fwd_config_with(&[2, 1], DNS_AND_STICKY_RULES)).unwrap();
    let end = Instant::now() + Duration::from_secs(seconds);
    let deadline = format!("{}", seconds);
    // Host 0: curls (short and 64 KiB), digs, big pings (fragments) in a bounded loop.
    let mixed = format!(
        "end=$(( $(date +%s) + {deadline} )); while [ $(date +%s) -lt $end ]; do \
         curl -s -o /dev/null --max-time 3 {url}; \
         curl -s -o /dev/null --max-time 3 {big}; \
         dig +short +time=1 +tries=1 @{SERVER} {DNS_NAME} > /dev/null; \
         ping -c 1 -W 1 -s 3000 {SERVER} > /dev/null; \
         done",
        url = plan::http_url("/"),
        big = netns_tests::bytes_url(65_536),
    );
    let h0 = topo.host(0).name().to_string();
    let mixed_thread = std::thread::spawn(move || {
        std::process::Command::new("timeout")
            .args([
                &format!("{}", seconds + 30),
                "ip",
                "netns",
                "exec",
                &h0,
                "sh",
                "-c",
                &mixed,
            ])
            .status()
            .unwrap()
    });
    // Host 1: a UDP stream for the whole run, in 10 s pieces.
    while Instant::now() + Duration::from_secs(3) < end {
        let left = end
            .saturating_duration_since(Instant::now())
            .as_secs()
            .clamp(1, 10) as u32;
        let udp = topo.host(1).iperf3_udp(left, 30_000_000, 1000);
        assert!(udp.is_ok(), "{udp:?}\n{}", fwd.log_text());
        // Unsolicited traffic and junk at the WAN while that runs.
        let _ = topo.internet().exec_timeout(
            &[
                "bash",
                "-c",
                "for p in $(seq 40000 40100); do echo junk > /dev/udp/10.1.0.2/$p; done",
            ],
            Duration::from_secs(10),
        );
        assert!(fwd.is_running(), "fwd died:\n{}", fwd.log_text());
    }
    assert!(mixed_thread.join().unwrap().success());
    assert!(fwd.is_running(), "fwd died:\n{}", fwd.log_text());
    let status = fwd.status().unwrap();
    let counters = fwd.counters().unwrap();
    println!("after {seconds} s: {status:?}");
    assert!(status.totals.forwarded > 10_000, "{status:?}");
    let events: HashMap<&str, u64> = counters
        .events
        .iter()
        .map(|c| (c.name.as_str(), c.value))
        .collect();
    assert!(events["sessions_created"] > 100, "{counters:?}");
    let exit = fwd.stop().unwrap();
    assert!(exit.success(), "{exit:?}");
}

/// While fwd runs, the router's own services stay reachable (a TCP connection to it from
/// the LAN); killed with SIGKILL mid-traffic, fwd leaves no XDP program on any interface,
/// the router still answers on its LAN address, and a restarted fwd forwards again.
#[test]
fn a_killed_fwd_leaves_the_router_reachable_and_a_restarted_one_forwards() {
    if skip("a_killed_fwd_leaves_the_router_reachable_and_a_restarted_one_forwards") {
        return;
    }
    let topo = topology(Topology::builder().wans(2));
    topo.start_iperf3().unwrap();
    topo.start_nginx().unwrap();
    let router_port = 5999u16;
    let router_server = topo.router().spawn(
        &[
            "iperf3",
            "-s",
            "-B",
            &plan::LAN_ROUTER.to_string(),
            "-p",
            &router_port.to_string(),
        ],
        &topo.workdir().join("router-iperf3.log"),
    );
    let fwd = Fwd::start(&topo, &plan::fwd_config_toml(2)).unwrap();
    let host = topo.host(0);
    assert_eq!(host.ping(SERVER, 3).unwrap().received, 3);
    std::thread::sleep(Duration::from_millis(300));
    let to_router = host
        .iperf3_tcp_to(SocketAddrV4::new(plan::LAN_ROUTER, router_port), 1)
        .unwrap();
    assert!(
        to_router > 1.0,
        "TCP to the router itself: {to_router} Mbit/s"
    );

    std::thread::scope(|scope| {
        let traffic = scope.spawn(|| host.iperf3_udp(3, 20_000_000, 1200));
        std::thread::sleep(Duration::from_millis(1000));
        fwd.kill();
        let _ = traffic.join();
    });
    assert!(
        !router_links(&topo).contains("xdp"),
        "XDP program left behind"
    );
    assert_eq!(
        host.ping(plan::LAN_ROUTER, 2).unwrap().received,
        2,
        "the router answers on its LAN address"
    );

    let fwd = Fwd::start(&topo, &plan::fwd_config_toml(2)).unwrap();
    assert_eq!(
        host.ping(SERVER, 3).unwrap().received,
        3,
        "forwarding again"
    );
    assert_eq!(host.curl(&plan::http_url("/")).unwrap(), NGINX_INDEX_BODY);
    fwd.stop().unwrap();
    if let Ok(pid) = router_server {
        topo.router().kill(pid);
    }
}

/// WANs with a smaller MTU than the LAN: a host's packet with DF set that is too big for the
/// WAN gets ICMP fragmentation needed with the WAN's MTU, from the router (path MTU discovery
/// works through fwd on both backends); one that fits crosses; the counter says so.
#[test]
fn path_mtu_discovery_works_through_fwd() {
    if skip("path_mtu_discovery_works_through_fwd") {
        return;
    }
    let topo = topology(Topology::builder().wans(2));
    for i in 0..2 {
        let wan = plan::wan_if(i);
        topo.router()
            .ip(&["link", "set", &wan, "mtu", "1400"])
            .unwrap();
        topo.isp(i)
            .ip(&["link", "set", plan::ISP_CUSTOMER_IF, "mtu", "1400"])
            .unwrap();
    }
    let fwd = Fwd::start(&topo, &plan::fwd_config_toml(2)).unwrap();
    let host = topo.host(0);
    let server = SERVER.to_string();
    let ping = |size: &str| {
        host.output(
            &[
                "ping", "-n", "-c", "1", "-W", "2", "-M", "do", "-s", size, &server,
            ],
            None,
            Duration::from_secs(5),
        )
        .unwrap()
    };
    let too_big = ping("1450");
    assert!(!too_big.status.success(), "{}", too_big.stdout);
    assert!(
        too_big.stdout.contains("Frag needed") && too_big.stdout.contains("mtu = 1400"),
        "the router tells the host the WAN's MTU: {}",
        too_big.stdout
    );
    assert!(
        too_big.stdout.contains(&plan::LAN_ROUTER.to_string()),
        "from the router: {}",
        too_big.stdout
    );
    let fits = ping("1300");
    assert!(fits.status.success(), "{}", fits.stdout);
    assert!(fwd.counter("too_big").unwrap() >= 1);
    fwd.stop().unwrap();
}

/// Without CAP_IPC_LOCK the UMEM cannot be locked beyond `ulimit -l` (8 MiB here, the
/// default UMEM's size): `backend = "afxdp"` refuses to start and names the capability,
/// `auto` says why and forwards over TUN, having left nothing of AF_XDP behind.
#[test]
fn without_cap_ipc_lock_afxdp_says_why_and_auto_takes_tun() {
    if skip("without_cap_ipc_lock_afxdp_says_why_and_auto_takes_tun") {
        return;
    }
    let topo = topology(Topology::builder().wans(2));
    let with = |backend: &str| {
        format!(
            "{}\n[dataplane]\nbackend = \"{backend}\"\numem_frames = 8192\n",
            plan::fwd_config_toml(2)
        )
    };
    match Fwd::start(&topo, &with("afxdp")) {
        Ok(fwd) => fwd.stop().unwrap(),
        Err(e) => {
            eprintln!("skipping: AF_XDP does not work here with CAP_IPC_LOCK either: {e}");
            return;
        }
    };
    let unprivileged = netns_tests::FwdOptions {
        wrapper: ["setpriv", "--bounding-set", "-ipc_lock", "--"]
            .map(String::from)
            .to_vec(),
        ..netns_tests::FwdOptions::default()
    };
    let refused = Fwd::start_opts(&topo, &with("afxdp"), &unprivileged)
        .expect_err("AF_XDP without CAP_IPC_LOCK")
        .to_string();
    assert!(refused.contains("CAP_IPC_LOCK"), "{refused}");
    assert!(
        !router_links(&topo).contains("xdp"),
        "{}",
        router_links(&topo)
    );

    let fwd = Fwd::start_opts(&topo, &with("auto"), &unprivileged).unwrap();
    assert_eq!(fwd.status().unwrap().backend, "tun");
    assert!(
        fwd.log_text().contains("CAP_IPC_LOCK"),
        "the log says why: {}",
        fwd.log_text()
    );
    assert!(
        !router_links(&topo).contains("xdp"),
        "{}",
        router_links(&topo)
    );
    assert_eq!(topo.host(0).ping(SERVER, 3).unwrap().received, 3);
    fwd.stop().unwrap();
}

/// From the ISP side, the LAN is closed while fwd runs (pings, TCP and UDP to a LAN host are
/// dropped and counted) and after it is killed (the kernel's blackhole rules stay); a clean
/// stop removes them, and the LAN is as reachable as before fwd. LAN hosts keep their
/// Internet access throughout fwd's run.
#[test]
fn the_lan_is_closed_from_the_wan_side_while_fwd_runs_and_after_it_is_killed() {
    if skip("the_lan_is_closed_from_the_wan_side_while_fwd_runs_and_after_it_is_killed") {
        return;
    }
    let topo = topology(Topology::builder().wans(2));
    let isp = topo.isp(0);
    let host = plan::lan_host(0);
    let wan = plan::wan_router(0).to_string();
    isp.ip(&["route", "add", plan::LAN_NET, "via", &wan])
        .unwrap();
    let reach = || isp.ping(host, 2).map_or(0, |p| p.received);
    assert_eq!(
        reach(),
        2,
        "without fwd the router forwards from the ISP to the LAN"
    );

    let config = plan::fwd_config_toml(2);
    let fwd = Fwd::start(&topo, &config).unwrap();
    assert_eq!(topo.host(0).ping(SERVER, 2).unwrap().received, 2);
    assert_eq!(reach(), 0, "ping from the ISP to a LAN host");
    let target = format!("{host}");
    let tcp = isp.output(
        &[
            "bash",
            "-c",
            &format!("timeout 2 bash -c 'exec 3<>/dev/tcp/{target}/80'"),
        ],
        None,
        Duration::from_secs(5),
    );
    assert!(
        !tcp.unwrap().status.success(),
        "a TCP connection from the ISP"
    );
    isp.exec(&["bash", "-c", &format!("echo x > /dev/udp/{target}/53")])
        .unwrap();
    wait_until("the drops counted", Duration::from_secs(3), || {
        // two pings, at least one SYN, one datagram
        Ok(fwd.counter("inbound_to_lan")? >= 4)
    })
    .unwrap();

    fwd.kill();
    assert_eq!(reach(), 0, "closed after fwd was killed");
    assert_eq!(
        topo.host(0).ping(plan::LAN_ROUTER, 1).unwrap().received,
        1,
        "the router still answers its LAN"
    );

    let fwd = Fwd::start(&topo, &config).unwrap();
    assert_eq!(reach(), 0, "closed by a restarted fwd");
    fwd.stop().unwrap();
    assert_eq!(reach(), 2, "a clean stop removes what fwd installed");
}

/// The control socket's access: with `[control] group = "nogroup"`, user nobody (in that
/// group, not root, no admin group) reads `status` but is refused `reload` and `wan
/// disable`, which root may send; 64 idle clients do not keep `fwdctl status` out.
#[test]
fn the_control_socket_lets_its_group_read_and_only_admins_change_fwd() {
    if skip("the_control_socket_lets_its_group_read_and_only_admins_change_fwd") {
        return;
    }
    let topo = topology(Topology::builder().wans(2));
    let config = format!(
        "{}\n[control]\ngroup = \"nogroup\"\n",
        plan::fwd_config_toml(2)
    );
    let fwd = Fwd::start(&topo, &config).unwrap();
    // fwdctl where nobody may run it, whatever the build directory's permissions
    let fwdctl = topo.workdir().join("fwdctl");
    std::fs::copy(netns_tests::fwdctl_binary().unwrap(), &fwdctl).unwrap();
    let socket = fwd.socket().display().to_string();
    let as_nobody = |args: &[&str]| {
        let bin = fwdctl.display().to_string();
        let mut full = vec![
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            bin.as_str(),
            "--socket",
            socket.as_str(),
        ];
        full.extend_from_slice(args);
        netns_tests::cmd::run("setpriv", &full, None, Duration::from_secs(10)).unwrap()
    };
    let status = as_nobody(&["status"]);
    assert!(status.success(), "{}{}", status.stdout, status.stderr);
    for args in [&["reload"][..], &["wan", "disable", "isp0"]] {
        let refused = as_nobody(args);
        assert_eq!(
            refused.status.code(),
            Some(1),
            "{args:?}: {}",
            refused.stdout
        );
        assert!(
            refused.stderr.contains("needs root or the admin group"),
            "{args:?}: {}",
            refused.stderr
        );
    }
    assert_eq!(
        fwd.status().unwrap().wans[0].state,
        "up",
        "the refused disable changed nothing"
    );
    let reload = fwd.fwdctl(&["reload"]).unwrap();
    assert!(reload.success(), "root may: {}", reload.stderr);

    let idle: Vec<_> = (0..64)
        .map(|_| UnixStream::connect(fwd.socket()).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(1300));
    let status = fwd.fwdctl(&["status"]).unwrap();
    assert!(status.success(), "with 64 idle clients: {}", status.stderr);
    drop(idle);
    fwd.stop().unwrap();
}

/// One LAN host sending fragmented datagrams as fast as iperf3 can (thousands of first
/// fragments a second, each remembered for 30 s) does not keep another host's fragmented
/// DNS answers from crossing fwd: a source holds a quarter of the fragment table at most.
#[test]
fn one_hosts_fragment_flood_does_not_stop_anothers_fragmented_answers() {
    if skip("one_hosts_fragment_flood_does_not_stop_anothers_fragmented_answers") {
        return;
    }
    let topo = topology(Topology::builder().wans(2).hosts(2));
    topo.start_dns().unwrap();
    topo.start_iperf3().unwrap();
    // a small table, so the flood overfills it many times over
    let config = format!(
        "{}\n[conntrack]\nmax_fragments = 256\n",
        plan::fwd_config_toml(2)
    );
    let fwd = Fwd::start(&topo, &config).unwrap();
    std::thread::scope(|scope| {
        let flood = scope.spawn(|| topo.host(1).iperf3_udp(4, 100_000_000, 3000));
        std::thread::sleep(Duration::from_millis(1500));
        for _ in 0..3 {
            let got = topo
                .host(0)
                .dig_txt_bytes(plan::BIG_TXT_NAME, SERVER, None)
                .unwrap();
            assert_eq!(
                got,
                plan::BIG_TXT_BYTES,
                "a fragmented answer during the flood"
            );
        }
        let _ = flood.join();
    });
    assert!(
        fwd.counter("fragments_evicted").unwrap() > 0,
        "the flood did fill its share"
    );
    assert_eq!(fwd.counter("fragment_table_full").unwrap(), 0);
    fwd.stop().unwrap();
}

/// Two LAN hosts opening UDP flows without limit (each datagram from a fresh source port)
/// do not cost a third host its long-lived TCP connection, idle meanwhile and so the oldest
/// session of the table: each flooding host stops at its session cap, and when the table is
/// full eviction takes from the host with the most sessions.
#[test]
fn one_hosts_flow_flood_does_not_evict_anothers_long_lived_connection() {
    if skip("one_hosts_flow_flood_does_not_evict_anothers_long_lived_connection") {
        return;
    }
    let topo = topology(Topology::builder().wans(2).hosts(3));
    topo.start_nginx().unwrap();
    // one shard of 32 sessions; a host holds 24 at most
    let config = format!(
        "{}\n[conntrack]\nmax_sessions = 32\nshards = 1\nmax_sessions_per_host = 24\n",
        plan::fwd_config_toml(2)
    );
    let fwd = Fwd::start(&topo, &config).unwrap();
    // Two requests on one connection, 3 s apart (nginx keeps an idle one 5 s).
    let request = "printf 'GET / HTTP/1.1\\r\\nHost: server\\r\\n\\r\\n' >&3; timeout 0.5 cat <&3";
    let long_lived =
        format!("exec 3<>/dev/tcp/{SERVER}/80 || exit 1; {request}; sleep 2.5; {request}; exit 0");
    let flood = format!("for i in $(seq 200); do echo flood > /dev/udp/{SERVER}/9; done");
    let answers = std::thread::scope(|scope| {
        let a = scope.spawn(|| {
            topo.host(0)
                .exec_timeout(&["bash", "-c", &long_lived], Duration::from_secs(15))
        });
        std::thread::sleep(Duration::from_millis(700));
        for k in [1, 2] {
            topo.host(k)
                .exec_timeout(&["bash", "-c", &flood], Duration::from_secs(10))
                .unwrap();
        }
        a.join().unwrap()
    });
    let answers = answers.unwrap();
    let counters = fwd.counters().unwrap();
    assert_eq!(
        answers.matches("HTTP/1.1 200").count(),
        2,
        "both requests answered on the one connection: {answers}\n{counters:?}"
    );
    assert!(fwd.counter("host_session_limit").unwrap() > 0);
    assert!(fwd.counter("conntrack_host_session_limit").unwrap() > 0);
    assert!(
        fwd.counter("conntrack_evicted").unwrap() > 0,
        "the second host's flood filled the table"
    );
    assert_eq!(fwd.counter("tcp_not_syn").unwrap(), 0);
    fwd.stop().unwrap();
}
