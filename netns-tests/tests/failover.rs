//! Link failure and recovery with fwd as the router: a constant-rate UDP stream and an iperf3
//! TCP download run through fwd while a WAN is cut in its ISP namespace (link down, or a
//! silent blackhole past the ISP), then restored. Checks: traffic moves to the other WAN, the
//! TCP client gets a reset and reconnects, the restored WAN takes new flows again, tier
//! failover, the last resort when every WAN is down, and the operator's switch. Timing is
//! only checked against loose bounds (the gap figure itself belongs to `netns-bench`).

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ctl::protocol::{Reply, Request, WanHealth};
use netns_tests::plan::{self, SERVER};
use netns_tests::stream::Report;
use netns_tests::{require_tools_or_skip, wait_until, Fwd, Topology};

const TOOLS: &[&str] = &["nginx", "iperf3", "curl", "nft"];
/// UDP port of the stream's receiver.
const STREAM_PORT: u16 = 7000;
/// iperf3 server for the TCP download.
const DOWNLOAD_PORT: u16 = 5202;
/// Loose bound on the stream's receive gap (the defaults fail over in about half a second).
const MAX_GAP: Duration = Duration::from_secs(2);

fn skip(test: &str) -> bool {
    !require_tools_or_skip(test, TOOLS)
}

fn udp_stream_bin() -> &'static str {
    env!("CARGO_BIN_EXE_udp-stream")
}

fn wans(fwd: &Fwd<'_>) -> Vec<WanHealth> {
    match fwd.request(&Request::Wans).unwrap() {
        Reply::Wans(w) => w,
        other => panic!("wans answered {other:?}"),
    }
}

fn wan_state(fwd: &Fwd<'_>, wan: usize) -> String {
    wans(fwd)[wan].state.clone()
}

fn wait_state(fwd: &Fwd<'_>, wan: usize, state: &str, within: Duration) {
    wait_until(&format!("isp{wan} {state}"), within, || {
        Ok(wan_state(fwd, wan) == state)
    })
    .unwrap_or_else(|e| panic!("{e}: {:?}\n{}", wans(fwd), fwd.log_text()));
}

/// The WAN (by the address nginx saw) of one new HTTP connection from host 0.
fn http_wan(topo: &Topology) -> usize {
    let before = topo.nginx_clients().unwrap().len();
    topo.host(0).curl(&plan::http_url("/")).unwrap();
    let mut seen = Vec::new();
    wait_until("nginx logged the request", Duration::from_secs(5), || {
        seen = topo.nginx_clients()?;
        Ok(seen.len() > before)
    })
    .unwrap();
    plan::wan_of(seen[before]).unwrap()
}

/// The stream's receiver (internet) and sender (host 0, `seconds` long); returns the
/// receiver's pid and log.
struct Stream {
    receiver: u32,
    sender: u32,
    log: PathBuf,
}

fn start_stream(topo: &Topology, seconds: u32) -> Stream {
    let log = topo.workdir().join("stream-recv.log");
    let bind = format!("{SERVER}:{STREAM_PORT}");
    let receiver = topo
        .internet()
        .spawn(
            &[
                udp_stream_bin(),
                "recv",
                "--bind",
                &bind,
                "--seconds",
                &(seconds + 10).to_string(),
                "--idle-ms",
                "2500",
            ],
            &log,
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let sender = topo
        .host(0)
        .spawn(
            &[
                udp_stream_bin(),
                "send",
                "--dst",
                &bind,
                "--pps",
                "1000",
                "--seconds",
                &seconds.to_string(),
            ],
            &topo.workdir().join("stream-send.log"),
        )
        .unwrap();
    Stream {
        receiver,
        sender,
        log,
    }
}

fn finish_stream(topo: &Topology, s: &Stream) -> Report {
    topo.host(0)
        .wait_exit(s.sender, Duration::from_secs(30))
        .expect("the sender ends by itself");
    topo.internet()
        .wait_exit(s.receiver, Duration::from_secs(30))
        .expect("the receiver ends by itself");
    let text = std::fs::read_to_string(&s.log).unwrap();
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no report in {text}"));
    serde_json::from_str(line).unwrap()
}

/// The WAN the stream's flow is on, from `fwdctl flows`.
fn stream_wan(fwd: &Fwd<'_>) -> usize {
    let mut wan = None;
    wait_until("the stream's flow", Duration::from_secs(5), || {
        wan = fwd
            .flows(None, None)?
            .flows
            .iter()
            .find(|f| f.remote.port() == STREAM_PORT)
            .map(|f| f.wan.clone());
        Ok(wan.is_some())
    })
    .unwrap();
    wan.unwrap().trim_start_matches("isp").parse().unwrap()
}

/// Runs an iperf3 download (`-R`) from host 0; returns its pid and log path.
fn start_download(topo: &Topology) -> (u32, PathBuf) {
    let log = topo.workdir().join("download.log");
    let server = SERVER.to_string();
    let port = DOWNLOAD_PORT.to_string();
    let pid = topo
        .host(0)
        .spawn(
            &[
                "iperf3",
                "-c",
                &server,
                "-p",
                &port,
                "-R",
                "-t",
                "60",
                "-b",
                "50M",
                "--connect-timeout",
                "2000",
            ],
            &log,
        )
        .unwrap();
    (pid, log)
}

/// Cuts the WAN the stream is on (by `cut`), checks the failover, restores it and checks new
/// flows come back. Returns the stream's report.
fn cut_and_restore(
    cut: impl Fn(&Topology, usize, bool),
    tiers: &[u8],
    name: &str,
) -> Option<Report> {
    if skip(name) {
        return None;
    }
    let topo = Topology::builder().wans(2).build().unwrap();
    topo.start_nginx().unwrap();
    topo.start_iperf3_on(DOWNLOAD_PORT).unwrap();
    let fwd = Fwd::start(&topo, &plan::fwd_config_probed(tiers, "unreachable", "")).unwrap();
    wait_state(&fwd, 0, "up", Duration::from_secs(5));
    wait_state(&fwd, 1, "up", Duration::from_secs(5));

    let stream = start_stream(&topo, 8);
    let (download, download_log) = start_download(&topo);
    let victim = stream_wan(&fwd);
    let survivor = 1 - victim;
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        topo.host(0).is_running(download),
        "{}",
        std::fs::read_to_string(&download_log).unwrap_or_default()
    );

    // The download's connection is on some WAN; if it is the victim, its client gets a
    // reset and exits; a new connection works either way.
    let download_on_victim = fwd
        .flows(None, None)
        .unwrap()
        .flows
        .iter()
        .any(|f| f.remote.port() == DOWNLOAD_PORT && f.wan == format!("isp{victim}"));
    let cut_at = Instant::now();
    cut(&topo, victim, false);
    wait_state(&fwd, victim, "down", Duration::from_secs(3));
    let detected = cut_at.elapsed();
    let report = finish_stream(&topo, &stream);
    let status = topo.host(0).wait_exit(
        download,
        Duration::from_secs(if download_on_victim { 5 } else { 1 }),
    );
    let log = std::fs::read_to_string(&download_log).unwrap_or_default();
    if download_on_victim || status.is_some() {
        let status = status.unwrap_or_else(|| {
            let counters = fwd.fwdctl(&["counters"]).map(|o| o.stdout);
            let flows = fwd.fwdctl(&["flows"]).map(|o| o.stdout);
            panic!(
                "the download on the dead WAN hangs:\n{log}\ncounters: {}\nflows: {}\nfwd log:\n{}",
                counters.unwrap_or_default(),
                flows.unwrap_or_default(),
                fwd.log_text()
            )
        });
        assert!(!status.success(), "{log}");
    } else {
        topo.host(0).kill(download);
    }
    assert_eq!(
        http_wan(&topo),
        survivor,
        "new connections use the live WAN"
    );
    let resets = fwd.counter("tcp_resets_sent").unwrap();
    if download_on_victim {
        assert!(resets >= 1, "no TCP reset counted; download log:\n{log}");
    }

    // The stream moved from the victim's address to the survivor's within the bound.
    let victim_ip = plan::wan_router(victim);
    let survivor_ip = plan::wan_router(survivor);
    assert!(
        report.sources.contains_key(&victim_ip) && report.sources.contains_key(&survivor_ip),
        "{report:?}"
    );
    assert!(
        report
            .switches
            .iter()
            .any(|s| s.from == victim_ip && s.to == survivor_ip),
        "{report:?}"
    );
    assert!(
        report.max_gap_ms < MAX_GAP.as_secs_f64() * 1000.0,
        "gap {} ms: {report:?}",
        report.max_gap_ms
    );
    println!(
        "{name}: detected in {detected:?}; UDP stream gap {:.0} ms, {} of {} datagrams; download on the cut WAN: {download_on_victim}, resets sent {resets}",
        report.max_gap_ms, report.received, report.sent_at_least
    );

    cut(&topo, victim, true);
    wait_state(&fwd, victim, "up", Duration::from_secs(5));
    if tiers[victim] < tiers[survivor] {
        assert_eq!(
            http_wan(&topo),
            victim,
            "the preferred tier is used again at once"
        );
    } else {
        let seen: Vec<usize> = (0..6).map(|_| http_wan(&topo)).collect();
        assert!(
            seen.contains(&victim),
            "new flows use the restored WAN again: {seen:?}"
        );
    }
    let events = fwd.fwdctl(&["events"]).unwrap().stdout;
    assert!(
        events.contains(&format!("isp{victim} up -> down")),
        "{events}"
    );
    assert!(
        events.contains(&format!("isp{victim} down -> up")),
        "{events}"
    );
    let exit = fwd.stop().unwrap();
    assert!(exit.success(), "{exit:?}");
    Some(report)
}

fn set_link(topo: &Topology, wan: usize, up: bool) {
    topo.set_wan_link(wan, up).unwrap();
}

fn blackhole(topo: &Topology, wan: usize, up: bool) {
    topo.blackhole_isp(wan, !up).unwrap();
}

#[test]
fn a_wan_whose_link_goes_down_hands_its_traffic_to_the_other_and_takes_it_back() {
    cut_and_restore(
        set_link,
        &[1, 1],
        "a_wan_whose_link_goes_down_hands_its_traffic_to_the_other_and_takes_it_back",
    );
}

#[test]
fn a_silently_dead_upstream_is_found_by_probes_and_the_backup_tier_takes_over() {
    // isp0 is the primary tier, isp1 the backup: everything starts on isp0.
    cut_and_restore(
        blackhole,
        &[1, 2],
        "a_silently_dead_upstream_is_found_by_probes_and_the_backup_tier_takes_over",
    );
}

/// fwd's routes on the router (`ip route` lines with protocol 245, fwd's).
fn fwd_routes(topo: &Topology) -> String {
    topo.router()
        .exec(&["ip", "route", "show", "table", "all", "proto", "245"])
        .unwrap()
}

#[test]
fn a_wan_device_set_down_and_up_on_the_router_gets_its_route_back() {
    let name = "a_wan_device_set_down_and_up_on_the_router_gets_its_route_back";
    if skip(name) {
        return;
    }
    let topo = Topology::builder().wans(2).build().unwrap();
    topo.start_nginx().unwrap();
    let fwd = Fwd::start(&topo, &plan::fwd_config_probed(&[1, 1], "unreachable", "")).unwrap();
    wait_state(&fwd, 0, "up", Duration::from_secs(5));
    wait_state(&fwd, 1, "up", Duration::from_secs(5));
    let dev = plan::wan_if(0);
    let route = format!("via {} dev {dev}", plan::wan_gateway(0));
    assert!(fwd_routes(&topo).contains(&route), "{}", fwd_routes(&topo));

    // The kernel drops the routes through a device set down, and does not put them back
    // when it comes up: without fwd's keeper, isp0's probes and traffic would have no route.
    topo.router().ip(&["link", "set", &dev, "down"]).unwrap();
    wait_state(&fwd, 0, "down", Duration::from_secs(3));
    assert!(!fwd_routes(&topo).contains(&route), "{}", fwd_routes(&topo));
    topo.router().ip(&["link", "set", &dev, "up"]).unwrap();
    wait_state(&fwd, 0, "up", Duration::from_secs(10));
    assert!(fwd_routes(&topo).contains(&route), "{}", fwd_routes(&topo));
    let seen: Vec<usize> = (0..6).map(|_| http_wan(&topo)).collect();
    assert!(seen.contains(&0), "new flows use isp0 again: {seen:?}");
    assert!(
        fwd.log_text().contains("put back"),
        "the keeper logs what it put back:\n{}",
        fwd.log_text()
    );
    let exit = fwd.stop().unwrap();
    assert!(exit.success(), "{exit:?}");
}

#[test]
fn all_wans_down_means_the_last_resort_and_the_operator_switch_works() {
    let name = "all_wans_down_means_the_last_resort_and_the_operator_switch_works";
    if skip(name) {
        return;
    }
    let topo = Topology::builder().wans(2).build().unwrap();
    topo.start_nginx().unwrap();
    let fwd = Fwd::start(&topo, &plan::fwd_config_probed(&[1, 1], "unreachable", "")).unwrap();
    wait_state(&fwd, 0, "up", Duration::from_secs(5));

    // The operator takes isp0 out: everything new goes to isp1, whatever the probes say.
    let out = fwd.fwdctl(&["wan", "disable", "isp0"]).unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(wan_state(&fwd, 0), "disabled");
    for _ in 0..4 {
        assert_eq!(http_wan(&topo), 1);
    }
    let table = fwd.fwdctl(&["wan"]).unwrap().stdout;
    assert!(
        table.contains("disabled") && table.contains("isp1"),
        "{table}"
    );
    let unknown = fwd.fwdctl(&["wan", "disable", "isp9"]).unwrap();
    assert_eq!(unknown.status.code(), Some(1), "{unknown:?}");
    assert!(fwd
        .fwdctl(&["wan", "enable", "isp0"])
        .unwrap()
        .status
        .success());
    wait_state(&fwd, 0, "up", Duration::from_secs(2));

    // Both upstreams die: the group's last resort (unreachable) answers at once.
    blackhole(&topo, 0, false);
    blackhole(&topo, 1, false);
    wait_state(&fwd, 0, "down", Duration::from_secs(3));
    wait_state(&fwd, 1, "down", Duration::from_secs(3));
    let started = Instant::now();
    let curl = topo.host(0).curl_max_time(&plan::http_url("/"), 5);
    assert!(curl.is_err(), "{curl:?}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "an ICMP unreachable ends the attempt at once"
    );
    assert!(fwd.counter("unreachable").unwrap() >= 1);

    blackhole(&topo, 0, true);
    blackhole(&topo, 1, true);
    wait_state(&fwd, 0, "up", Duration::from_secs(5));
    wait_state(&fwd, 1, "up", Duration::from_secs(5));
    http_wan(&topo);
    let events = fwd.fwdctl(&["events", "--json"]).unwrap().stdout;
    assert!(events.contains("\"disabled\""), "{events}");
    assert!(fwd.stop().unwrap().success());
}
