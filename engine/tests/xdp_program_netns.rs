//! Live tests of fwd's XDP program (`engine::device::afxdp::program`) on veth pairs in a
//! throwaway namespace (see [`netns`] for how they run and skip): what it passes to the
//! kernel and what it would send to fwd (with no socket in its slots, such frames fall back
//! to the kernel and count as `no_socket`), and that no program stays attached once the
//! process that attached it is gone, also after SIGKILL.
//!
//! Topology inside the namespace: `xl0` 10.77.0.1/24 (LAN) and `xw0` 10.78.0.2/24 (WAN,
//! NAT ports 40000-40010), each a veth whose peer is in a second namespace, the host `H`
//! (10.77.0.2 and 10.78.0.1).

#![allow(clippy::unwrap_used, clippy::panic)]

use std::process::Command;
use std::time::Duration;

use engine::device::afxdp::program::{DstKind, IfaceConfig, ProgramError, XdpProgram, STATS};

mod netns;
use netns::{ifindex, in_netns, ip, Netns};

const NO_PROGRAM: &str = "fwd was built without its XDP program (no clang at build time)";

/// Set for the helper process that attaches the program and waits to be killed.
const HOLD: &str = "FWD_XDP_HOLD";

fn host_ns() -> String {
    format!("fwdxh-{}", std::process::id())
}

fn topology(host: &str) -> Netns {
    ip(&format!("netns add {host}"));
    let guard = Netns {
        name: host.to_owned(),
    };
    for (dev, peer, ours, theirs) in [
        ("xl0", "xlh", "10.77.0.1/24", "10.77.0.2/24"),
        ("xw0", "xwh", "10.78.0.2/24", "10.78.0.1/24"),
    ] {
        ip(&format!("link add {dev} type veth peer name {peer}"));
        ip(&format!("link set {peer} netns {host}"));
        ip(&format!("addr add {ours} dev {dev}"));
        ip(&format!("link set {dev} up"));
        ip(&format!("-n {host} addr add {theirs} dev {peer}"));
        ip(&format!("-n {host} link set {peer} up"));
    }
    ip("link set lo up");
    ip(&format!("-n {host} link set lo up"));
    ip(&format!("-n {host} route add default via 10.77.0.1"));
    guard
}

/// Loads and attaches the program on both interfaces, configured as fwd would.
fn attach() -> Result<XdpProgram, ProgramError> {
    let mut program = XdpProgram::load()?;
    program.configure(ifindex("xl0"), IfaceConfig::lan(0))?;
    program.configure(
        ifindex("xw0"),
        IfaceConfig::wan("10.78.0.2".parse().unwrap(), &(40000..=40010), 64),
    )?;
    program.pass_to_kernel("10.77.0.0/24".parse().unwrap(), DstKind::ClosedLan)?;
    program.pass_to_kernel("10.77.0.1/32".parse().unwrap(), DstKind::Kernel)?;
    for dev in ["xl0", "xw0"] {
        program.attach(dev, ifindex(dev), engine::config::XdpMode::Auto)?;
    }
    Ok(program)
}

fn attached(dev: &str) -> bool {
    let out = ip(&format!("-d link show {dev}"));
    out.contains("prog/xdp") || out.contains("xdpgeneric") || out.contains(" xdp ")
}

fn in_host(host: &str, command: &str) -> bool {
    Command::new("ip")
        .args(["netns", "exec", host, "bash", "-c", command])
        .output()
        .unwrap()
        .status
        .success()
}

fn stat(program: &XdpProgram, name: &str) -> u64 {
    let i = STATS.iter().position(|s| *s == name).unwrap();
    program.stats()[i]
}

fn check_steering() {
    let host = host_ns();
    let _host = topology(&host);
    let program = match attach() {
        Err(ProgramError::NotBuilt) => return netns::skip("steering", NO_PROGRAM),
        other => other.unwrap(),
    };
    let modes: Vec<_> = program
        .attachments()
        .map(|(d, m)| (d.to_owned(), m))
        .collect();
    assert_eq!(modes.len(), 2, "{modes:?}");
    assert!(attached("xl0") && attached("xw0"));

    // LAN: the router's own address and ARP go to the kernel, which answers
    assert!(in_host(&host, "ping -c 2 -i 0.2 -W 1 10.77.0.1"));
    assert!(stat(&program, "kernel_local") >= 2);
    assert!(stat(&program, "kernel_not_ipv4") >= 1, "ARP");
    // LAN: a remote destination is fwd's (no socket here: it falls back to the kernel)
    let before = stat(&program, "no_socket");
    in_host(&host, "ping -c 1 -W 1 192.0.2.99");
    assert!(
        stat(&program, "no_socket") > before,
        "a forwarded flow goes to fwd"
    );

    // WAN: UDP to a NAT port is fwd's, to another port the kernel's; pings to the router
    // are the kernel's, and answered
    let before = (
        stat(&program, "no_socket"),
        stat(&program, "kernel_not_ours"),
    );
    in_host(&host, "echo x > /dev/udp/10.78.0.2/40005");
    assert_eq!(
        stat(&program, "no_socket"),
        before.0 + 1,
        "UDP to a NAT port"
    );
    in_host(&host, "echo x > /dev/udp/10.78.0.2/5000");
    assert_eq!(
        stat(&program, "kernel_not_ours"),
        before.1 + 1,
        "UDP elsewhere"
    );
    assert!(in_host(&host, "ping -c 1 -W 1 10.78.0.2"), "echo request");
    assert!(in_host(
        &host,
        "timeout 2 bash -c 'exec 3<>/dev/tcp/10.78.0.2/22' || true"
    ));

    // WAN: a LAN host's address is out of reach and counted; the router's own LAN address
    // is the kernel's (routes in H make both leave by the WAN side)
    ip(&format!(
        "-n {host} route add 10.77.0.99/32 via 10.78.0.2 dev xwh"
    ));
    let before = stat(&program, "drop_inbound_to_lan");
    assert!(!in_host(&host, "ping -c 2 -i 0.2 -W 1 10.77.0.99"));
    assert_eq!(
        stat(&program, "drop_inbound_to_lan"),
        before + 2,
        "pings from the WAN side to a LAN address"
    );
    ip(&format!(
        "-n {host} route add 10.77.0.1/32 via 10.78.0.2 dev xwh"
    ));
    assert!(
        in_host(&host, "ping -c 1 -W 1 10.77.0.1"),
        "the router's LAN address from the WAN side is the kernel's"
    );
    assert_eq!(stat(&program, "drop_inbound_to_lan"), before + 2);

    drop(program);
    assert!(!attached("xl0") && !attached("xw0"), "detached on drop");
}

#[test]
fn the_program_steers_data_plane_frames_and_passes_the_rest() {
    in_netns(
        "the_program_steers_data_plane_frames_and_passes_the_rest",
        check_steering,
    );
}

/// Not a test on its own: with [`HOLD`] set, attaches the program and waits to be killed.
#[test]
fn helper_attach_and_hold() {
    if std::env::var_os(HOLD).is_some() {
        let _program = attach().unwrap();
        println!("attached");
        std::thread::sleep(Duration::from_secs(60));
    }
}

fn check_killed() {
    let host = host_ns();
    let _host = topology(&host);
    if matches!(XdpProgram::load(), Err(ProgramError::NotBuilt)) {
        return netns::skip("killed", NO_PROGRAM);
    }
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args(["--exact", "helper_attach_and_hold", "--nocapture"])
        .env(HOLD, "1")
        .env(netns::INNER, "1")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !(attached("xl0") && attached("xw0")) {
        assert!(std::time::Instant::now() < deadline, "never attached");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while attached("xl0") || attached("xw0") {
        assert!(
            std::time::Instant::now() < deadline,
            "still attached after SIGKILL"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // the interfaces work as before: the kernel answers on both
    assert!(in_host(&host, "ping -c 1 -W 1 10.77.0.1"));
    assert!(in_host(&host, "ping -c 1 -W 1 10.78.0.2"));
}

#[test]
fn a_killed_process_leaves_no_program_attached() {
    in_netns("a_killed_process_leaves_no_program_attached", check_killed);
}
