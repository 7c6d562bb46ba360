//! Live tests of `engine::steering`, each in a throwaway network namespace (see
//! [`netns`] for how they run and skip). Tests may run `ip`; the module under test does not.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::net::Ipv4Addr;

use engine::steering::{self, LanSteer, SteeringError, SteeringSpec, WanSteer};

mod netns;
use netns::{in_netns, ip, run_child};

/// Set for the helper process that installs and exits without removing (a killed fwd).
const DIE: &str = "FWD_STEERING_DIE";

fn sysctl(path: &str) -> String {
    std::fs::read_to_string(format!("/proc/sys/{path}"))
        .unwrap()
        .trim_end()
        .to_string()
}

fn set_sysctl(path: &str, value: &str) {
    std::fs::write(format!("/proc/sys/{path}"), format!("{value}\n")).unwrap();
}

const TUNS: [&str; 3] = ["fwdl0", "fwdw0", "fwdw1"];

/// lan0 192.168.1.1/24, wan0 10.0.0.2/24 (gateway .1, main's default route), wan1
/// 10.1.0.2/24 (gateway .1): veth pairs with their peers up; three TUN devices, down.
/// Loose `rp_filter` on every device but wan1 (off), strict `all.rp_filter`, two
/// reserved-port entries: to see them changed and restored.
fn topology() {
    ip("link set lo up");
    // As systemd sets it: new devices (the TUNs too) start with loose filtering.
    set_sysctl("net/ipv4/conf/default/rp_filter", "2");
    for (dev, addr) in [
        ("lan0", "192.168.1.1/24"),
        ("wan0", "10.0.0.2/24"),
        ("wan1", "10.1.0.2/24"),
    ] {
        ip(&format!("link add {dev} type veth peer name {dev}p"));
        ip(&format!("addr add {addr} dev {dev}"));
        ip(&format!("link set {dev} up"));
        ip(&format!("link set {dev}p up"));
    }
    ip("route add default via 10.0.0.1 dev wan0");
    set_sysctl("net/ipv4/conf/wan1/rp_filter", "0");
    for tun in TUNS {
        ip(&format!("tuntap add mode tun multi_queue name {tun}"));
    }
    set_sysctl("net/ipv4/conf/all/rp_filter", "1");
    set_sysctl("net/ipv4/ip_local_reserved_ports", "1024,8080-8090");
}

fn spec() -> SteeringSpec {
    SteeringSpec {
        lans: vec![LanSteer {
            device: "lan0".into(),
            tun: "fwdl0".into(),
            closed: vec!["192.168.1.0/24".parse().unwrap()],
        }],
        wans: vec![
            WanSteer {
                device: "wan0".into(),
                tun: "fwdw0".into(),
                address: Ipv4Addr::new(10, 0, 0, 2),
                gateway: Ipv4Addr::new(10, 0, 0, 1),
                nat_ports: 20000..=29999,
                forwards: Vec::new(),
            },
            WanSteer {
                device: "wan1".into(),
                tun: "fwdw1".into(),
                address: Ipv4Addr::new(10, 1, 0, 2),
                gateway: Ipv4Addr::new(10, 1, 0, 1),
                nat_ports: 30000..=39999,
                forwards: Vec::new(),
            },
        ],
        ..SteeringSpec::default()
    }
}

/// What steering may touch: rules (with protocols), IPv4 routes of every table, link flags,
/// sysctls.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    rules: String,
    routes: String,
    link_flags: Vec<String>,
    sysctls: Vec<(String, String)>,
}

fn snapshot() -> Snapshot {
    let link_flags = ip("-o link show")
        .lines()
        .map(|l| {
            let name = l.split(':').nth(1).unwrap_or_default().trim();
            let flags = l.split(['<', '>']).nth(1).unwrap_or_default();
            format!("{name} <{flags}>")
        })
        .collect();
    let mut paths = vec![
        "net/ipv4/ip_forward".to_string(),
        "net/ipv4/conf/all/rp_filter".into(),
        "net/ipv4/ip_local_reserved_ports".into(),
    ];
    for dev in ["lan0", "wan0", "wan1"] {
        paths.push(format!("net/ipv4/conf/{dev}/rp_filter"));
    }
    for tun in TUNS {
        paths.push(format!("net/ipv4/conf/{tun}/rp_filter"));
        paths.push(format!("net/ipv4/conf/{tun}/accept_local"));
    }
    Snapshot {
        rules: ip("-d rule show"),
        routes: ip("route show table all"),
        link_flags,
        sysctls: paths
            .into_iter()
            .map(|p| (sysctl(&p), p))
            .map(|(v, p)| (p, v))
            .collect(),
    }
}

/// `ip route get ARGS` must mention `expect`.
fn route_get(args: &str, expect: &str) {
    let out = ip(&format!("route get {args}"));
    assert!(
        out.contains(expect),
        "ip route get {args}: expected `{expect}` in\n{out}"
    );
}

fn check_steering() {
    // LAN → Internet goes to fwd; LAN → router, LAN → LAN stay with the kernel.
    route_get("8.8.8.8 iif lan0 from 192.168.1.10", "dev fwdl0");
    route_get(
        "192.168.1.1 iif lan0 from 192.168.1.10",
        "local 192.168.1.1",
    );
    route_get("192.168.1.20 iif lan0 from 192.168.1.10", "dev lan0");
    // Hairpin: LAN → a WAN address's NAT ports or ICMP go to fwd; other ports to the box.
    route_get(
        "10.0.0.2 iif lan0 from 192.168.1.10 ipproto tcp dport 25000",
        "dev fwdl0",
    );
    route_get(
        "10.1.0.2 iif lan0 from 192.168.1.10 ipproto udp dport 30001",
        "dev fwdl0",
    );
    route_get(
        "10.1.0.2 iif lan0 from 192.168.1.10 ipproto icmp",
        "dev fwdl0",
    );
    route_get(
        "10.0.0.2 iif lan0 from 192.168.1.10 ipproto tcp dport 22",
        "local 10.0.0.2",
    );
    // Inbound: a WAN address's NAT ports and ICMP go to that WAN's TUN.
    route_get(
        "10.0.0.2 iif wan0 from 1.2.3.4 ipproto tcp dport 20001",
        "dev fwdw0",
    );
    route_get(
        "10.0.0.2 iif wan0 from 1.2.3.4 ipproto udp dport 29999",
        "dev fwdw0",
    );
    route_get("10.0.0.2 iif wan0 from 1.2.3.4 ipproto icmp", "dev fwdw0");
    route_get(
        "10.1.0.2 iif wan1 from 1.2.3.4 ipproto tcp dport 39999",
        "dev fwdw1",
    );
    route_get(
        "10.0.0.2 iif wan0 from 1.2.3.4 ipproto tcp dport 30000",
        "local 10.0.0.2",
    );
    route_get(
        "10.0.0.2 iif wan0 from 1.2.3.4 ipproto tcp dport 22",
        "local 10.0.0.2",
    );
    route_get(
        "10.0.0.2 iif wan0 from 1.2.3.4 ipproto udp dport 19999",
        "local 10.0.0.2",
    );
    route_get(
        "10.0.0.2 iif wan0 from 1.2.3.4 ipproto udp dport 65534",
        "local 10.0.0.2",
    );
    // From a WAN into the closed LAN subnet: to fwd, which drops and counts it; the
    // router's own LAN address stays the kernel's.
    route_get("192.168.1.10 iif wan0 from 1.2.3.4", "dev fwdw0");
    route_get("192.168.1.10 iif wan1 from 1.2.3.4", "dev fwdw1");
    route_get("192.168.1.1 iif wan0 from 1.2.3.4", "local 192.168.1.1");
    // Later fragments carry no ports (as port 0 here): inbound and hairpin ones go to fwd,
    // which follows each to its first fragment's session or hands it back to the kernel.
    route_get("10.0.0.2 iif wan0 from 1.2.3.4 ipproto udp", "dev fwdw0");
    route_get("10.1.0.2 iif wan1 from 1.2.3.4 ipproto tcp", "dev fwdw1");
    route_get(
        "10.1.0.2 iif lan0 from 192.168.1.10 ipproto udp",
        "dev fwdl0",
    );
    // What fwd writes: NATed traffic leaves by its WAN; frames handed back reach the box;
    // inbound translated traffic reaches the LAN host.
    route_get("1.2.3.4 iif fwdw1 from 10.1.0.2", "via 10.1.0.1 dev wan1");
    route_get("1.2.3.4 iif fwdw0 from 10.0.0.2", "via 10.0.0.1 dev wan0");
    route_get(
        "10.1.0.2 iif fwdw1 from 1.2.3.4 ipproto icmp",
        "local 10.1.0.2",
    );
    route_get(
        "10.0.0.2 iif fwdl0 from 192.168.1.10 ipproto icmp",
        "local 10.0.0.2",
    );
    route_get("192.168.1.10 iif fwdl0 from 1.2.3.4", "dev lan0");
    // The router's own traffic from a WAN address leaves by that WAN, but answers a LAN host
    // on the LAN.
    route_get("1.2.3.4 from 10.1.0.2", "via 10.1.0.1 dev wan1");
    route_get("1.2.3.4 from 10.0.0.2", "via 10.0.0.1 dev wan0");
    route_get("192.168.1.10 from 10.1.0.2", "dev lan0");

    let rules = ip("rule show");
    assert!(
        rules.lines().any(|l| l.starts_with(&format!(
            "{}:\tfrom all lookup local",
            steering::DEFAULT_LOCAL_PREF
        ))),
        "{rules}"
    );
    assert!(!rules.lines().any(|l| l.starts_with("0:\t")), "{rules}");
    assert!(ip("route show table 4200").contains("default dev fwdl0"));
    assert!(ip("route show table 4202").contains("default via 10.1.0.1 dev wan1 proto 245 onlink"));
    assert!(ip("route show table 4301").contains("default dev fwdw1"));

    assert_eq!(sysctl("net/ipv4/ip_forward"), "1");
    assert_eq!(sysctl("net/ipv4/conf/all/rp_filter"), "0");
    // Raised to the old `all` level so that its filtering stays as strict as it was.
    assert_eq!(sysctl("net/ipv4/conf/wan1/rp_filter"), "1");
    for tun in TUNS {
        assert_eq!(sysctl(&format!("net/ipv4/conf/{tun}/rp_filter")), "0");
        assert_eq!(sysctl(&format!("net/ipv4/conf/{tun}/accept_local")), "1");
        assert!(
            ip(&format!("link show {tun}")).contains(",UP"),
            "{tun} is not up"
        );
    }
    let reserved = sysctl("net/ipv4/ip_local_reserved_ports");
    let mut ports = vec![false; 65536];
    for entry in reserved.split(',') {
        let (lo, hi) = entry.split_once('-').unwrap_or((entry, entry));
        let (lo, hi): (usize, usize) = (lo.parse().unwrap(), hi.parse().unwrap());
        ports[lo..=hi].iter_mut().for_each(|p| *p = true);
    }
    for (lo, hi) in [(1024, 1024), (8080, 8090), (20000, 29999), (30000, 39999)] {
        assert!(
            ports[lo..=hi].iter().all(|p| *p),
            "{lo}-{hi} not all in {reserved}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Tests.

#[test]
fn install_steers_and_remove_restores_everything() {
    in_netns("install_steers_and_remove_restores_everything", || {
        topology();
        let before = snapshot();
        let installed = steering::install(&spec()).unwrap();
        let lines = installed.describe();
        println!("{}", lines.join("\n"));
        assert_eq!(lines.len(), 48, "{lines:#?}");
        assert!(installed.local_moved());
        check_steering();
        assert!(matches!(
            steering::install(&spec()),
            Err(SteeringError::AlreadyInstalled)
        ));
        assert!(matches!(
            steering::cleanup_stale(),
            Err(SteeringError::AlreadyInstalled)
        ));
        let errors = installed.remove();
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(snapshot(), before);
        // And again, now that nothing is left.
        let installed = steering::install(&spec()).unwrap();
        check_steering();
        drop(installed);
        assert_eq!(snapshot(), before);
    });
}

#[test]
fn a_failure_leaves_nothing_behind() {
    in_netns("a_failure_leaves_nothing_behind", || {
        topology();
        // Midway: the gateway route over wan1 needs wan1 up; by then links, sysctls and
        // three routes are done.
        ip("link set wan1 down");
        let before = snapshot();
        let err = steering::install(&spec()).unwrap_err().to_string();
        println!("{err}");
        assert!(
            err.starts_with("add route table 4202 default via 10.1.0.1 dev wan1 onlink: "),
            "{err}"
        );
        assert_eq!(snapshot(), before);
        ip("link set wan1 up");

        // A missing interface.
        let mut missing = spec();
        missing.wans[1].device = "wan9".into();
        let before = snapshot();
        let err = steering::install(&missing).unwrap_err().to_string();
        assert_eq!(err, "WAN device wan9: No such device (os error 19)");
        assert_eq!(snapshot(), before);

        // Someone else's rule at one of fwd's priorities, someone else's route in a table.
        ip("rule add pref 1003 lookup 77");
        let before = snapshot();
        let err = steering::install(&spec()).unwrap_err().to_string();
        assert!(err.contains("rule pref 1003 is taken"), "{err}");
        assert_eq!(snapshot(), before);
        ip("rule del pref 1003");
        ip("route add 10.9.0.0/16 dev lan0 table 4300");
        let before = snapshot();
        let err = steering::install(&spec()).unwrap_err().to_string();
        assert!(err.contains("table 4300 is not empty"), "{err}");
        assert_eq!(snapshot(), before);
    });
}

/// Not a test on its own: with [`DIE`] set, installs and exits without removing, as a
/// killed fwd would.
#[test]
fn helper_install_and_exit() {
    if std::env::var_os(DIE).is_some() {
        let installed = steering::install(&spec()).unwrap();
        println!("installed {} changes", installed.describe().len());
        std::process::exit(0); // no destructors: the steering stays
    }
}

#[test]
fn a_restarted_fwd_cleans_up_after_a_killed_one() {
    in_netns("a_restarted_fwd_cleans_up_after_a_killed_one", || {
        topology();
        let before = snapshot();
        let out_path = std::env::temp_dir().join(format!("fwdst-die-{}.out", std::process::id()));
        let out = run_child("", "helper_install_and_exit", &[(DIE, "1")], &out_path);
        let _ = std::fs::remove_file(&out_path);
        assert!(out.contains("installed 48 changes"), "{out}");
        check_steering();

        // Another start just works: the stale rules and routes go first.
        let installed = steering::install(&spec()).unwrap();
        check_steering();
        assert!(installed.local_moved());
        drop(installed);
        let after = snapshot();
        assert_eq!(after.rules, before.rules);
        assert_eq!(after.routes, before.routes);

        // cleanup_stale on its own, after another killed run.
        let out = run_child("", "helper_install_and_exit", &[(DIE, "1")], &out_path);
        let _ = std::fs::remove_file(&out_path);
        assert!(out.contains("installed"), "{out}");
        let removed = steering::cleanup_stale().unwrap();
        println!("{}", removed.join("\n"));
        assert_eq!(removed.len(), 1 + 29 + 5, "{removed:#?}");
        let after = snapshot();
        assert_eq!(after.rules, before.rules);
        assert_eq!(after.routes, before.routes);
    });
}

#[test]
fn a_local_rule_moved_by_someone_else_is_left_alone() {
    in_netns("a_local_rule_moved_by_someone_else_is_left_alone", || {
        topology();
        ip("rule add pref 150 lookup local");
        ip("rule del pref 0 lookup local");
        let before = snapshot();
        let installed = steering::install(&spec()).unwrap();
        assert!(!installed.local_moved());
        assert!(!installed
            .describe()
            .iter()
            .any(|l| l == &format!("rule pref {} lookup local", steering::DEFAULT_LOCAL_PREF)));
        route_get(
            "10.0.0.2 iif wan0 from 1.2.3.4 ipproto tcp dport 20001",
            "dev fwdw0",
        );
        route_get(
            "10.0.0.2 iif wan0 from 1.2.3.4 ipproto tcp dport 22",
            "local 10.0.0.2",
        );
        route_get("1.2.3.4 from 10.1.0.2", "via 10.1.0.1 dev wan1");
        drop(installed);
        assert_eq!(snapshot(), before);

        // A local lookup after fwd's late rules would break it: refused.
        ip("rule add pref 2000 lookup local");
        ip("rule del pref 150 lookup local");
        let err = steering::install(&spec()).unwrap_err().to_string();
        assert!(err.contains("looked up at pref 2000"), "{err}");
    });
}

#[test]
fn routes_the_kernel_drops_with_a_device_are_put_back() {
    in_netns("routes_the_kernel_drops_with_a_device_are_put_back", || {
        topology();
        let before = snapshot();
        let mut installed = steering::install(&spec()).unwrap();
        let repair = installed.restore_routes();
        assert!(
            repair.restored.is_empty() && repair.failed.is_empty(),
            "{repair:?}"
        );

        // A device set down takes its routes with it, fwd's among them, and up again brings
        // none back.
        ip("link set wan0 down");
        let routes = ip("route show table all");
        assert!(!routes.contains("via 10.0.0.1 dev wan0"), "{routes}");
        let repair = installed.restore_routes();
        assert!(
            repair.restored.is_empty() && repair.failed.is_empty(),
            "nothing to put back while the device is down: {repair:?}"
        );
        ip("link set wan0 up");
        let repair = installed.restore_routes();
        assert_eq!(
            repair.restored,
            ["route table 4201 default via 10.0.0.1 dev wan0 onlink"],
            "{repair:?}"
        );
        assert!(repair.failed.is_empty(), "{repair:?}");
        let repair = installed.restore_routes();
        assert!(
            repair.restored.is_empty() && repair.failed.is_empty(),
            "{repair:?}"
        );
        ip("route add default via 10.0.0.1 dev wan0"); // the topology's own, dropped too
        check_steering();
        let errors = installed.remove();
        assert!(errors.is_empty(), "{errors:?}");
        // as before, but for the order of the routes (wan0's IPv6 ones came back last)
        let mut after = snapshot();
        let sorted = |routes: &str| {
            let mut lines: Vec<String> = routes.lines().map(String::from).collect();
            lines.sort();
            lines.join("\n")
        };
        after.routes = sorted(&after.routes);
        assert_eq!(
            after,
            Snapshot {
                routes: sorted(&before.routes),
                ..before
            }
        );
    });
}
