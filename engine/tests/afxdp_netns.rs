//! The AF_XDP backend forwarding real traffic (see [`netns`] for how these tests run and
//! skip): fwd's XDP program on the router's two veths, one worker's sockets sharing one UMEM,
//! and the forwarder polling them, with the kernel's own forwarding switched off in the
//! router's namespace, so that whatever crosses was forwarded by fwd. A LAN host (`L`) pings
//! and runs iperf3 against a server behind the WAN (`S`); the server sees the WAN's address.
//! Next hops come from the kernel's neighbour table, which starts empty: the watcher asks
//! the kernel for the gateway and learns the LAN host from its ARP request for the router.
//! A host in the LAN's extra subnet (10.20.0.5, on `L`'s loopback: `L` is its router) is
//! reached through the gateway of the router's kernel route to it.
//!
//! Topology: `L` 10.77.0.2 ── xl0 10.77.0.1 [router] xw0 10.78.0.2 ── 10.78.0.1 `S`.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use balancer::LinkState;
use engine::config::Config;
use engine::daemon::neighbor_watch::NeighborWatch;
use engine::dataplane::DataPlane;
use engine::device::afxdp::program::{DstKind, IfaceConfig, ProgramError, XdpProgram};
use engine::device::afxdp::{AfXdpDevice, QueueSpec, SocketCounters};
use engine::device::{Device, FrameMemory, FramePool, CHUNK_SIZE, HEADROOM};
use engine::forwarder::Forwarder;
use engine::neighbors::kernel::NeighborTable;
use engine::neighbors::{Mac, Neighbors};
use engine::pipeline::{Counters, Event};

mod netns;
use netns::{ifindex, in_netns, ip, Netns};

const CONFIG: &str = r#"
[[lan]]
name = "lan"
interface = "xl0"
address = "10.77.0.1/24"

[[wan]]
name = "isp"
interface = "xw0"
address = "10.78.0.2/24"
gateway = "10.78.0.1"
nat_ports = "40000-40999"

[[group]]
name = "all"
members = [{ wan = "isp" }]

[[rule]]
name = "default"
group = "all"
"#;

const NO_PROGRAM: &str = "fwd was built without its XDP program (no clang at build time)";

fn sh(ns: &str, command: &str) -> std::process::Output {
    Command::new("ip")
        .args(["netns", "exec", ns, "bash", "-c", command])
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn mac(ns: Option<&str>, dev: &str) -> Mac {
    let text = match ns {
        Some(ns) => {
            String::from_utf8(sh(ns, &format!("cat /sys/class/net/{dev}/address")).stdout).unwrap()
        }
        None => std::fs::read_to_string(format!("/sys/class/net/{dev}/address")).unwrap(),
    };
    let mut out = [0u8; 6];
    for (b, part) in out.iter_mut().zip(text.trim().split(':')) {
        *b = u8::from_str_radix(part, 16).unwrap();
    }
    out
}

/// Builds the topology, each veth with `queues` queues each way; returns the guards of `L`
/// and `S`.
fn topology(l: &str, s: &str, queues: u32) -> (Netns, Netns) {
    ip(&format!("netns add {l}"));
    let lg = Netns { name: l.into() };
    ip(&format!("netns add {s}"));
    let sg = Netns { name: s.into() };
    for (dev, peer, ns, ours, theirs) in [
        ("xl0", "xlh", l, "10.77.0.1/24", "10.77.0.2/24"),
        ("xw0", "xwh", s, "10.78.0.2/24", "10.78.0.1/24"),
    ] {
        ip(&format!(
            "link add {dev} numtxqueues {queues} numrxqueues {queues} type veth peer name \
             {peer} numtxqueues {queues} numrxqueues {queues}"
        ));
        ip(&format!("link set {peer} netns {ns}"));
        ip(&format!("addr add {ours} dev {dev}"));
        ip(&format!("link set {dev} up"));
        ip(&format!("-n {ns} addr add {theirs} dev {peer}"));
        ip(&format!("-n {ns} link set {peer} up"));
        ip(&format!("-n {ns} link set lo up"));
        // AF_XDP in copy mode hands a frame on as its bytes: a partial checksum left for
        // the NIC would reach the far end unfinished
        assert!(sh(ns, &format!("ethtool -K {peer} tx off >/dev/null"))
            .status
            .success());
    }
    ip("link set lo up");
    ip(&format!("-n {l} route add default via 10.77.0.1"));
    // only fwd forwards here
    std::fs::write("/proc/sys/net/ipv4/ip_forward", "0\n").unwrap();
    (lg, sg)
}

/// Worker `w` of `workers`: the device over a UMEM of its own, on queue `q` of both
/// interfaces where `q % workers == w` (as the daemon splits them), its sockets put into the
/// program's map; polled until `stop`. Returns the sockets' counters.
#[allow(clippy::too_many_arguments)]
fn worker(
    w: u32,
    workers: u32,
    queues: u32,
    dp: &DataPlane,
    counters: Arc<Counters>,
    neighbors: &Arc<NeighborTable>,
    program: &Mutex<XdpProgram>,
    stop: &AtomicBool,
    ready: &AtomicUsize,
) -> Vec<SocketCounters> {
    let memory = FrameMemory::new(4096, CHUNK_SIZE, HEADROOM).unwrap();
    let pool = FramePool::new(&memory).unwrap();
    let specs: Vec<QueueSpec> = [("xl0", 0u8), ("xw0", 1u8)]
        .iter()
        .flat_map(|&(dev, iface)| {
            (0..queues)
                .filter(|q| q % workers == w)
                .map(move |queue| QueueSpec {
                    iface,
                    ifindex: ifindex(dev),
                    queue,
                })
        })
        .collect();
    let mut device =
        AfXdpDevice::open(pool, &specs, 512, false, vec![None, None], vec![1500, 1500]).unwrap();
    {
        let mut program = program.lock().unwrap();
        for (socket, q) in device.sockets().iter().zip(&specs) {
            let slot = u32::from(q.iface) * 64 + q.queue;
            program.set_socket(slot, socket).unwrap();
        }
    }
    let caps = device.capabilities();
    let mut forwarder = Forwarder::new(caps.medium, &dp.plan, counters, 64);
    let mut neighbors = neighbors.view();
    ready.fetch_add(1, Ordering::SeqCst);
    let start = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        let now = Duration::from_secs(1) + start.elapsed();
        neighbors.refresh();
        let received = forwarder.poll(&mut device, dp, &neighbors, now).unwrap();
        if received == 0 {
            device.wait(Duration::from_millis(10)).unwrap();
        }
    }
    device.counters()
}

/// Runs `command` in namespace `ns` while ticking the neighbour watcher, as the daemon's
/// main loop does.
fn run_watching(watch: &mut NeighborWatch, ns: &str, command: &str) -> std::process::Output {
    let child = Command::new("ip")
        .args(["netns", "exec", ns, "bash", "-c", command])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut child = child;
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "{command}: still running");
        watch.tick();
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// fwd's XDP program configured for the router's two interfaces, not attached yet; `None`
/// (the test skipped) when fwd was built without it.
fn program(test: &str) -> Option<Mutex<XdpProgram>> {
    let mut program = match XdpProgram::load() {
        Err(ProgramError::NotBuilt) => {
            netns::skip(test, NO_PROGRAM);
            return None;
        }
        other => other.unwrap(),
    };
    program
        .configure(ifindex("xl0"), IfaceConfig::lan(0))
        .unwrap();
    program
        .configure(
            ifindex("xw0"),
            IfaceConfig::wan("10.78.0.2".parse().unwrap(), &(40000..=40999), 64),
        )
        .unwrap();
    for (prefix, kind) in [
        ("10.77.0.0/24", DstKind::ClosedLan),
        ("10.78.0.2/32", DstKind::Kernel),
    ] {
        program
            .pass_to_kernel(prefix.parse().unwrap(), kind)
            .unwrap();
    }
    Some(Mutex::new(program))
}

/// The neighbour table and its watcher, once the WAN's gateway and the LAN router `L` are
/// known (`L` makes itself known by its ARP request for the router; without a kernel sink
/// here, a frame whose next hop is unknown would have nowhere to go).
fn watch_neighbors(l: &str) -> (Arc<NeighborTable>, NeighborWatch) {
    let neighbors = Arc::new(NeighborTable::new(vec![
        Some(mac(None, "xl0")),
        Some(mac(None, "xw0")),
    ]));
    let mut watch = NeighborWatch::start(
        neighbors.clone(),
        &[(ifindex("xl0"), 0), (ifindex("xw0"), 1)],
        vec![(1, "10.78.0.1".parse().unwrap())],
    )
    .unwrap();
    assert!(sh(l, "ping -c 1 -W 1 10.77.0.1").status.success());
    tick_until(&mut watch, "neighbours learned", |w| w.len() >= 2);
    (neighbors, watch)
}

/// Ticks the watcher until `done` holds (at most 5 s).
fn tick_until(watch: &mut NeighborWatch, what: &str, done: impl Fn(&NeighborWatch) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done(watch) {
        assert!(Instant::now() < deadline, "never: {what}");
        watch.tick();
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// What the workers of a test share.
struct Router<'a> {
    queues: u32,
    dp: &'a DataPlane,
    counters: &'a Arc<Counters>,
    neighbors: &'a Arc<NeighborTable>,
    program: &'a Mutex<XdpProgram>,
}

impl Router<'_> {
    /// Starts `workers` workers, attaches the program once every socket is in its map (as
    /// the daemon does), runs `body`, stops the workers; returns their sockets' counters.
    fn forward(&self, workers: u32, body: impl FnOnce()) -> Vec<SocketCounters> {
        let stop = AtomicBool::new(false);
        let ready = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|w| {
                    let (stop, ready) = (&stop, &ready);
                    scope.spawn(move || {
                        worker(
                            w,
                            workers,
                            self.queues,
                            self.dp,
                            self.counters.clone(),
                            self.neighbors,
                            self.program,
                            stop,
                            ready,
                        )
                    })
                })
                .collect();
            while ready.load(Ordering::SeqCst) < workers as usize {
                assert!(
                    handles.iter().all(|h| !h.is_finished()),
                    "a worker stopped early"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
            for dev in ["xl0", "xw0"] {
                self.program
                    .lock()
                    .unwrap()
                    .attach(dev, ifindex(dev), engine::config::XdpMode::Auto)
                    .unwrap();
            }
            body();
            stop.store(true, Ordering::SeqCst);
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        })
    }
}

/// Forwarding through `workers` workers over veths of `queues` queues: pings, and an
/// iperf3 TCP run with `streams` streams (several streams spread over the queues).
fn check_forwarding(queues: u32, workers: u32, streams: u32) {
    let pid = std::process::id();
    let (l, s) = (format!("fwdxl-{pid}"), format!("fwdxs-{pid}"));
    let _guards = topology(&l, &s, queues);
    let Some(program) = program("forwarding") else {
        return;
    };
    let config = Config::from_toml_str(CONFIG).unwrap();
    let dp = DataPlane::new(&config, 9, LinkState::Up).unwrap();
    let (neighbors, mut watch) = watch_neighbors(&l);
    let counters = Arc::new(Counters::default());
    let router = Router {
        queues,
        dp: &dp,
        counters: &counters,
        neighbors: &neighbors,
        program: &program,
    };
    let sockets = router.forward(workers, || {
        let ping = run_watching(&mut watch, &l, "ping -c 5 -i 0.2 -W 1 10.78.0.1");
        let server = Command::new("ip")
            .args(["netns", "exec", &s, "iperf3", "-s", "-1", "-B", "10.78.0.1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let client = run_watching(
            &mut watch,
            &l,
            &format!("timeout 20 iperf3 -c 10.78.0.1 -t 2 -P {streams} -J"),
        );
        let server = server.wait_with_output().unwrap();
        let ping_out = String::from_utf8_lossy(&ping.stdout);
        assert!(ping.status.success(), "ping through fwd:\n{ping_out}");
        assert!(ping_out.contains("5 received"), "{ping_out}");
        let client_out = String::from_utf8_lossy(&client.stdout);
        assert!(client.status.success(), "iperf3 through fwd:\n{client_out}");
        let server_out = String::from_utf8_lossy(&server.stdout);
        assert!(
            server_out.contains("10.78.0.2"),
            "the server sees the WAN's address:\n{server_out}"
        );
    });
    assert!(counters.events(Event::Forwarded) > 100);
    assert_eq!(counters.events(Event::NoNeighbor), 0);
    assert_eq!(watch.len(), 2, "the gateway and the LAN host");
    assert_eq!(watch.failures(), 0);
    let host = mac(Some(&l), "xlh");
    let mut view = neighbors.view();
    view.refresh();
    assert_eq!(view.resolve(0, "10.77.0.2".parse().unwrap()), Some(host));
    // every socket received (the flows spread over the queues); each interface sent (a
    // worker sends from its first socket on the interface)
    for socket in &sockets {
        assert!(socket.received > 0, "{socket:?}");
        assert_eq!(socket.invalid_descs, 0, "{socket:?}");
    }
    for iface in [0, 1] {
        let sent: u64 = sockets
            .iter()
            .filter(|s| s.iface == iface)
            .map(|s| s.sent)
            .sum();
        assert!(sent > 0, "interface {iface} sent nothing: {sockets:?}");
    }
    println!("sockets: {sockets:?}");
    // the veths go now, not when the kernel gets round to the deleted namespaces' ends
    drop(watch);
    drop(program);
    ip("link del xl0");
    ip("link del xw0");
}

#[test]
fn a_worker_forwards_between_afxdp_sockets_sharing_one_umem() {
    in_netns(
        "a_worker_forwards_between_afxdp_sockets_sharing_one_umem",
        || check_forwarding(1, 1, 1),
    );
}

/// Two queues a veth: one worker with a socket on each (four sockets on one UMEM), then two
/// workers with one each. Twelve TCP streams spread over both queues (the sender's veth
/// picks a queue by flow hash: all twelve on one queue is a 1 in 2048 chance).
#[test]
fn every_queue_gets_a_socket_with_one_worker_or_one_worker_a_queue() {
    in_netns(
        "every_queue_gets_a_socket_with_one_worker_or_one_worker_a_queue",
        || {
            check_forwarding(2, 1, 12);
            check_forwarding(2, 2, 12);
        },
    );
}

/// A host in the LAN's extra subnet, 10.20.0.5 behind the LAN router `L`, pings the server:
/// the watcher learns the kernel's route `10.20.0.0/16 via 10.77.0.2 dev xl0` from its
/// notification, and fwd sends the replies to `L`'s MAC. (Without the route they would miss
/// the neighbour table, and with no kernel sink here they would be lost.) The route's
/// deletion reaches the workers too.
#[test]
fn replies_to_an_extra_subnet_go_to_the_lan_router_of_the_kernels_route() {
    in_netns(
        "replies_to_an_extra_subnet_go_to_the_lan_router_of_the_kernels_route",
        check_extra_subnet,
    );
}

fn check_extra_subnet() {
    let pid = std::process::id();
    let (l, s) = (format!("fwdrl-{pid}"), format!("fwdrs-{pid}"));
    let _guards = topology(&l, &s, 1);
    let Some(program) = program("extra subnet") else {
        return;
    };
    ip(&format!("-n {l} addr add 10.20.0.5/32 dev lo"));
    let config = Config::from_toml_str(&CONFIG.replace(
        "address = \"10.77.0.1/24\"\n",
        "address = \"10.77.0.1/24\"\nextra_subnets = [\"10.20.0.0/16\"]\n",
    ))
    .unwrap();
    assert_eq!(config.lans[0].extra_subnets.len(), 1);
    let dp = DataPlane::new(&config, 9, LinkState::Up).unwrap();
    let (neighbors, mut watch) = watch_neighbors(&l);
    let far: std::net::Ipv4Addr = "10.20.0.5".parse().unwrap();
    let lan_router: std::net::Ipv4Addr = "10.77.0.2".parse().unwrap();
    let mut view = neighbors.view();
    assert_eq!(view.gateway(0, far), None);

    ip("route add 10.20.0.0/16 via 10.77.0.2 dev xl0");
    tick_until(&mut watch, "the route learned", |w| w.routes().len() == 3);
    view.refresh();
    assert_eq!(view.gateway(0, far), Some(lan_router));
    assert_eq!(view.gateway(1, far), None, "the route is xl0's");

    let counters = Arc::new(Counters::default());
    let router = Router {
        queues: 1,
        dp: &dp,
        counters: &counters,
        neighbors: &neighbors,
        program: &program,
    };
    router.forward(1, || {
        let ping = run_watching(
            &mut watch,
            &l,
            "ping -I 10.20.0.5 -c 3 -i 0.2 -W 1 10.78.0.1",
        );
        let out = String::from_utf8_lossy(&ping.stdout);
        assert!(ping.status.success(), "ping from the extra subnet:\n{out}");
        assert!(out.contains("3 received"), "{out}");
    });
    assert!(counters.events(Event::Forwarded) >= 6);
    assert_eq!(counters.events(Event::NoNeighbor), 0);
    assert_eq!(watch.failures(), 0);

    ip("route del 10.20.0.0/16");
    tick_until(&mut watch, "the route forgotten", |w| w.routes().len() == 2);
    view.refresh();
    assert_eq!(view.gateway(0, far), None);
    drop(watch);
    drop(program);
    ip("link del xl0");
    ip("link del xw0");
}
