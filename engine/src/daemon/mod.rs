//! `fwd run`: the daemon. It loads the config, claims the control socket (refusing to start
//! beside another fwd), brings up its backend (`[dataplane] backend`: AF_XDP, with fwd's XDP
//! program attached to every interface ([`afxdp`]) and a kernel sink TUN per interface; or
//! one multi-queue TUN device per interface; `auto` takes AF_XDP where its probe, every
//! worker's UMEM and sockets and the attachment tried and undone, succeeds, TUN otherwise),
//! installs the kernel steering (routes, rules, sysctls), starts the prober,
//! pinned worker threads and a control thread, and then waits for signals: SIGHUP reloads
//! the config, SIGTERM and SIGINT stop it. Meanwhile it puts back any of its routes the
//! kernel drops ([`route_keeper`]) and, with AF_XDP, follows the kernel's neighbour table
//! ([`neighbor_watch`]). On the way out it stops the threads, detaches the XDP program,
//! removes every route, rule and sysctl it installed, closes the TUNs (the kernel deletes
//! them) and removes the socket. A failure half-way through start-up undoes what was done
//! before it.

pub mod afxdp;
pub mod control;
pub mod health_requests;
pub mod link_health;
pub mod neighbor_watch;
pub mod reload;
pub mod route_keeper;
pub mod shared;
pub mod tcp_nudge;
pub mod tuns;
pub mod worker;

use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use balancer::LinkState;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::config::{Backend, Config, LoadError};
use crate::dataplane::DataPlane;
use crate::neighbors::kernel::NeighborTable;
use crate::plan::Role;
use crate::steering::{self, LanSteer, SteeringSpec, WanSteer};

use route_keeper::RouteKeeper;
use shared::Shared;
use worker::{Queues, Worker};

/// Longest wait for a worker to open its device.
const WORKER_START_TIMEOUT: Duration = Duration::from_secs(30);

/// Default path of the control socket.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/fwd/fwd.sock";

/// How `fwd run` was asked to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub config: PathBuf,
    pub control_socket: PathBuf,
    /// Worker threads; `None`: one per available core.
    pub workers: Option<usize>,
    /// First routing table number fwd uses (it uses a small block from there).
    pub table_base: u32,
}

/// Why the daemon could not start (or stopped with an error).
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("{0}")]
    Config(String),
    #[error("control socket: {0}")]
    Control(String),
    #[error("data plane: {0}")]
    DataPlane(#[from] crate::dataplane::DataPlaneError),
    #[error("TUN devices: {0}")]
    Tun(std::io::Error),
    #[error("AF_XDP: {0}")]
    AfXdp(String),
    #[error("{0}")]
    Worker(String),
    #[error("kernel steering: {0}")]
    Steering(String),
    #[error("signals: {0}")]
    Signals(std::io::Error),
    #[error("threads: {0}")]
    Thread(std::io::Error),
    #[error("link health: {0}")]
    LinkHealth(String),
}

/// Runs the daemon until SIGTERM/SIGINT (Ok) or a fatal error.
pub fn run(options: &RunOptions) -> Result<(), DaemonError> {
    let config = load_config(options)?;
    let mut server = ctl::server::ControlServer::bind(&options.control_socket)
        .map_err(|e| DaemonError::Control(e.to_string()))?;
    control_access(&mut server, &config.control).map_err(DaemonError::Control)?;
    log::info!(
        "control socket {} (group {}, admin group {})",
        options.control_socket.display(),
        config.control.group.as_deref().unwrap_or("fwd's own"),
        config
            .control
            .admin_group
            .as_deref()
            .unwrap_or("none: root only")
    );

    let dataplane = DataPlane::new(&config, random_seed(), LinkState::Up)?;
    link_health::seed_health(&config, &dataplane.health);
    let workers = options
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, 64);
    let names = tuns::tun_names(&dataplane.plan);
    let started = start_backend(&config, &dataplane, &names, workers)?;
    let workers = started.workers();
    let spec = steering_spec(
        &dataplane,
        &names,
        options.table_base,
        matches!(started, Started::AfXdp { .. }),
    );
    let mut installed =
        steering::install(&spec).map_err(|e| DaemonError::Steering(e.to_string()))?;
    for line in installed.describe() {
        log::info!("installed: {line}");
    }
    let (queues, neighbors, watch, description, mut program) = match started {
        Started::Tun { queues } => {
            let neighbors = Arc::new(NeighborTable::new(Vec::new()));
            // an interface whose MTU cannot be read is not checked by fwd
            let mtus: Vec<u16> = dataplane
                .plan
                .interfaces
                .iter()
                .map(|i| tuns::interface_mtu(&i.os_name).unwrap_or(u16::MAX))
                .collect();
            let queues: Vec<Queues> = queues
                .into_iter()
                .map(|q| Queues::Tun(q, mtus.clone()))
                .collect();
            (queues, neighbors, None, "tun".to_string(), None)
        }
        Started::AfXdp { setup, sinks } => {
            let neighbors = Arc::new(NeighborTable::new(setup.macs()));
            let interfaces: Vec<(u32, u8)> = setup
                .links
                .iter()
                .enumerate()
                .map(|(i, l)| (l.ifindex, i as u8))
                .collect();
            let gateways = dataplane
                .plan
                .wans
                .iter()
                .map(|w| (w.iface, w.gateway))
                .collect();
            let watch =
                neighbor_watch::NeighborWatch::start(Arc::clone(&neighbors), &interfaces, gateways)
                    .map_err(|e| DaemonError::AfXdp(format!("neighbour table: {e}")))?;
            let queues = sinks
                .into_iter()
                .enumerate()
                .map(|(w, sinks)| Queues::AfXdp {
                    queues: setup.queues_of(w),
                    sinks,
                    umem_frames: config.dataplane.umem_frames as usize,
                    mtus: setup.mtus(),
                    program: Arc::clone(&setup.program),
                })
                .collect();
            let description = setup.describe();
            (queues, neighbors, Some(watch), description, Some(setup))
        }
    };
    if program.is_none() {
        log::info!("backend: {description}");
    }

    let mut shared = Shared::new(
        dataplane,
        config,
        options.config.clone(),
        workers,
        description,
    );
    shared.xdp_program = program.as_ref().map(|p| Arc::clone(&p.program));
    let shared = Arc::new(shared);
    let result = match link_health::start(&shared) {
        Ok(prober) => {
            shared.set_link_health(prober);
            serve(
                &shared,
                queues,
                &neighbors,
                watch,
                program.as_mut(),
                &mut server,
                &mut installed,
            )
        }
        Err(e) => Err(DaemonError::LinkHealth(e.to_string())),
    };
    shared.request_stop();
    if let Some(prober) = shared.take_link_health() {
        prober.stop();
    }
    // the workers are gone: detach the XDP program before the steering goes
    drop(program);
    for e in installed.remove() {
        log::warn!("removing kernel steering: {e}");
    }
    log::info!("kernel steering removed; fwd stopped");
    result
}

fn load_config(options: &RunOptions) -> Result<Config, DaemonError> {
    match Config::load(&options.config) {
        Ok(c) => {
            log::info!(
                "config {}: {} LANs, {} WANs, {} groups, {} rules",
                options.config.display(),
                c.lans.len(),
                c.wans.len(),
                c.groups.len(),
                c.rules.len()
            );
            Ok(c)
        }
        Err(LoadError::Invalid(errors)) => Err(DaemonError::Config(
            errors
                .iter()
                .map(|e| format!("{}: {e}", options.config.display()))
                .collect::<Vec<_>>()
                .join("\n"),
        )),
        Err(e) => Err(DaemonError::Config(e.to_string())),
    }
}

/// The backend that came up.
enum Started {
    Tun {
        /// Per worker, its queue of each interface's TUN.
        queues: Vec<Vec<std::fs::File>>,
    },
    AfXdp {
        setup: afxdp::AfXdp,
        /// Per worker, its queue of each interface's kernel sink TUN.
        sinks: Vec<Vec<std::fs::File>>,
    },
}

impl Started {
    fn workers(&self) -> usize {
        match self {
            Started::Tun { queues } => queues.len(),
            Started::AfXdp { sinks, .. } => sinks.len(),
        }
    }
}

/// Brings up the backend the config asks for (see the module's documentation).
fn start_backend(
    config: &Config,
    dataplane: &DataPlane,
    names: &[String],
    workers: usize,
) -> Result<Started, DaemonError> {
    let tun = || -> Result<Started, DaemonError> {
        let queues = tuns::open_queues(names, workers).map_err(DaemonError::Tun)?;
        log::info!("TUN devices {} ({} queues each)", names.join(", "), workers);
        Ok(Started::Tun { queues })
    };
    let afxdp = || -> Result<Started, String> {
        let mut setup = afxdp::prepare(&dataplane.plan, workers)?;
        setup.probe(
            config.dataplane.xdp_mode,
            config.dataplane.umem_frames as usize,
        )?;
        let sinks = tuns::open_queues(names, setup.workers)
            .map_err(|e| format!("kernel sink TUNs: {e}"))?;
        log::info!(
            "XDP program loaded for {}; kernel sinks {}",
            setup
                .links
                .iter()
                .map(|l| l.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            names.join(", ")
        );
        Ok(Started::AfXdp { setup, sinks })
    };
    match config.dataplane.backend {
        Backend::Tun => tun(),
        Backend::AfXdp => afxdp().map_err(DaemonError::AfXdp),
        Backend::Auto => afxdp().or_else(|why| {
            log::warn!("AF_XDP unavailable ({why}); using TUN devices");
            tun()
        }),
    }
}

/// The forwarded ports of each WAN of `plan`, in the plan's order, as steering takes them.
fn steered_forwards(
    plan: &crate::plan::Plan,
) -> Vec<Vec<(crate::steering::Proto, RangeInclusive<u16>)>> {
    let mut out = vec![Vec::new(); plan.wans.len()];
    for (wan, proto, ports) in plan.forwards.ports() {
        if let Some(w) = out.get_mut(wan) {
            w.push((steer_proto(proto), ports));
        }
    }
    out
}

/// A connection table protocol as a rule selects it.
fn steer_proto(proto: conntrack::Proto) -> crate::steering::Proto {
    match proto {
        conntrack::Proto::Tcp => crate::steering::Proto::Tcp,
        conntrack::Proto::Udp => crate::steering::Proto::Udp,
        conntrack::Proto::Icmp => crate::steering::Proto::Icmp,
    }
}

/// What the kernel must route into which TUN (or, with AF_XDP, what the router's own
/// traffic and the kernel sinks need), from the plan.
fn steering_spec(
    dataplane: &DataPlane,
    names: &[String],
    table_base: u32,
    xdp: bool,
) -> SteeringSpec {
    let plan = &dataplane.plan;
    let mut forwards = steered_forwards(plan);
    let mut lans = Vec::new();
    let mut wans = Vec::new();
    for (iface, tun) in plan.interfaces.iter().zip(names) {
        match iface.role {
            Role::Lan(l) => lans.push(LanSteer {
                device: iface.os_name.clone(),
                tun: tun.clone(),
                closed: plan
                    .lans
                    .get(l)
                    .filter(|lan| lan.inbound == crate::config::Inbound::Drop)
                    .map(|lan| lan.subnets.clone())
                    .unwrap_or_default(),
            }),
            Role::Wan(w) => {
                if let Some(wan) = plan.wans.get(w) {
                    wans.push(WanSteer {
                        device: iface.os_name.clone(),
                        tun: tun.clone(),
                        address: wan.address,
                        gateway: wan.gateway,
                        nat_ports: wan.nat_ports.clone(),
                        forwards: forwards.get_mut(w).map(std::mem::take).unwrap_or_default(),
                    });
                }
            }
        }
    }
    SteeringSpec {
        lans,
        wans,
        table_base,
        xdp,
        ..SteeringSpec::default()
    }
}

/// Starts the threads and waits for signals; returns when fwd should stop.
fn serve(
    shared: &Arc<Shared>,
    queues: Vec<Queues>,
    neighbors: &Arc<NeighborTable>,
    watch: Option<neighbor_watch::NeighborWatch>,
    afxdp: Option<&mut afxdp::AfXdp>,
    server: &mut ctl::server::ControlServer,
    installed: &mut steering::Installed,
) -> Result<(), DaemonError> {
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP]).map_err(DaemonError::Signals)?;
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let result = std::thread::scope(|scope| -> Result<(), DaemonError> {
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let workers = queues.len();
        for (index, queues) in queues.into_iter().enumerate() {
            let worker = Worker {
                index,
                core: (!cores.is_empty()).then(|| cores[index % cores.len()]),
                queues,
                neighbors: Arc::clone(neighbors),
                ready: ready_tx.clone(),
            };
            let worker_shared = Arc::clone(shared);
            let spawned = std::thread::Builder::new()
                .name(format!("fwd-worker-{index}"))
                .spawn_scoped(scope, move || worker.run(&worker_shared));
            if let Err(e) = spawned {
                shared.request_stop();
                return Err(DaemonError::Thread(e));
            }
        }
        drop(ready_tx);
        for _ in 0..workers {
            match ready.recv_timeout(WORKER_START_TIMEOUT) {
                Ok(Ok(())) => {}
                Ok(Err(why)) => {
                    shared.request_stop();
                    return Err(DaemonError::Worker(why));
                }
                Err(_) => {
                    shared.request_stop();
                    return Err(DaemonError::Worker(format!(
                        "a worker did not open its device within {WORKER_START_TIMEOUT:?}"
                    )));
                }
            }
        }
        if let Some(afxdp) = afxdp {
            // every socket is in the program's map: frames may come now
            let mode = shared.config().dataplane.xdp_mode;
            if let Err(why) = afxdp.attach(mode) {
                shared.request_stop();
                return Err(DaemonError::AfXdp(why));
            }
            let description = afxdp.describe();
            log::info!("backend: {description}");
            *shared
                .backend
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = description;
        }
        if let Some(watch) = watch {
            let stop = shared.stop_flag();
            std::thread::Builder::new()
                .name("fwd-neighbors".into())
                .spawn_scoped(scope, move || watch.run(stop))
                .map_err(|e| {
                    shared.request_stop();
                    DaemonError::Thread(e)
                })?;
        }
        let control_shared = Arc::clone(shared);
        std::thread::Builder::new()
            .name("fwd-control".into())
            .spawn_scoped(scope, move || control::serve(&control_shared, server))
            .map_err(|e| {
                shared.request_stop();
                DaemonError::Thread(e)
            })?;
        log::info!("fwd running: {} workers", shared.counters.len());
        let mut routes = RouteKeeper::new(installed, Instant::now());
        let (dataplane, mut generation) = shared.dataplane();
        let mut forwards = steered_forwards(&dataplane.plan);
        while !shared.stopping() {
            routes.tick(Instant::now());
            // a reload published a new plan: the kernel rules of its forwarded ports follow
            if shared.generation() != generation {
                let (dataplane, now) = shared.dataplane();
                generation = now;
                let wanted = steered_forwards(&dataplane.plan);
                if wanted != forwards {
                    match routes.steering().set_forwards(&wanted) {
                        Ok(n) => log::info!("steering: {n} forwarded-port rules changed"),
                        Err(e) => log::error!("steering: forwarded ports: {e}"),
                    }
                    forwards = wanted;
                }
            }

            for signal in signals.pending() {
                match signal {
                    SIGHUP => match reload::reload(shared) {
                        Ok(summary) => log::info!("SIGHUP: {summary}"),
                        Err(why) => log::error!("SIGHUP: {why}"),
                    },
                    _ => {
                        log::info!("signal {signal}: stopping");
                        shared.request_stop();
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    });
    signals.handle().close();
    result
}

/// A per-process random key for the table hashes (so remote hosts cannot aim at one bucket).
/// Gives the control socket to `[control] group` and lets `admin_group` change the daemon.
fn control_access(
    server: &mut ctl::server::ControlServer,
    control: &crate::config::ControlConfig,
) -> Result<(), String> {
    if let Some(name) = &control.group {
        let gid = group_id(name)?;
        server
            .set_group(gid)
            .map_err(|e| format!("giving the socket to group {name}: {e}"))?;
    }
    let admin = control.admin_group.as_deref().map(group_id).transpose()?;
    server.set_admin_group(admin);
    Ok(())
}

/// The id of group `name` (through NSS, as `getent group` finds it).
#[allow(unsafe_code)]
fn group_id(name: &str) -> Result<u32, String> {
    let c_name = std::ffi::CString::new(name).map_err(|_| format!("bad group name {name:?}"))?;
    // SAFETY: `group` is plain data (pointers the call fills in); all-zero is valid.
    let mut group: libc::group = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut found: *mut libc::group = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call: the name NUL-terminated, `group` and
    // `found` writable, `buf` writable for its length; the strings `group` points to live
    // in `buf`, which outlives every use (only `gr_gid`, a plain integer, is read).
    let rc = unsafe {
        libc::getgrnam_r(
            c_name.as_ptr(),
            &mut group,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        )
    };
    if rc != 0 {
        return Err(format!(
            "looking up group {name}: {}",
            std::io::Error::from_raw_os_error(rc)
        ));
    }
    if found.is_null() {
        return Err(format!("no group named {name} ([control] in the config)"));
    }
    Ok(group.gr_gid)
}

fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}
