//! Where the work of a measurement runs, so that per-core figures mean one core: the router's
//! work (its veths' NAPI polling, where the kernel forwards and where XDP runs, and the
//! forwarder process) on one core, the load generator and everything past the router (the
//! ISPs' and the internet's receive work) on the other.
//!
//! Veths poll in NAPI only with GRO on at the receiver (or an XDP program), and NAPI work
//! runs in softirq on whichever CPU raised it unless it is threaded; threaded NAPI gives each
//! receive queue a kernel thread `napi/<dev>-<id>` that can be pinned like any thread. A
//! device's NAPI threads are made anew when an XDP program is attached or removed, so
//! [`pin_napi_threads`] runs again after every router start.

use std::collections::BTreeMap;

use crate::error::Result;
use crate::netns::Netns;

/// Turns GRO and threaded NAPI on for `dev` in `ns`.
pub fn thread_napi(ns: &Netns, dev: &str) -> Result<()> {
    ns.exec(&["ethtool", "-K", dev, "gro", "on"])?;
    let path = format!("/sys/class/net/{dev}/threaded");
    ns.exec(&["sh", "-c", &format!("echo 1 > {path}")])
        .map(drop)
        .map_err(|e| e.context(format!("threaded NAPI for {dev}")))
}

/// The device a NAPI thread's name (`napi/<dev>-<id>`) belongs to.
pub fn napi_device(comm: &str) -> Option<&str> {
    let rest = comm.strip_prefix("napi/")?;
    let (dev, id) = rest.rsplit_once('-')?;
    id.parse::<u32>().ok().map(|_| dev)
}

/// Pins every NAPI thread of a device named in `cores` to that core; returns how many
/// threads it pinned per device. Thread names are global, so device names must be unique
/// among the devices with threaded NAPI on this machine.
pub fn pin_napi_threads(cores: &BTreeMap<String, usize>) -> Result<BTreeMap<String, usize>> {
    let mut pinned = BTreeMap::new();
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(comm) = std::fs::read_to_string(entry.path().join("comm")) else {
            continue;
        };
        let Some(dev) = napi_device(comm.trim()) else {
            continue;
        };
        let Some(&core) = cores.get(dev) else {
            continue;
        };
        pin(pid, core).map_err(|e| e.context(format!("pinning {}", comm.trim())))?;
        *pinned.entry(dev.to_string()).or_insert(0) += 1;
    }
    Ok(pinned)
}

/// Pins thread `pid` to `core` (`taskset -p`).
pub fn pin(pid: i32, core: usize) -> Result<()> {
    let (core, pid) = (core.to_string(), pid.to_string());
    crate::cmd::check(
        "taskset",
        &["-p", "-c", &core, &pid],
        None,
        crate::cmd::CONFIG_TIMEOUT,
    )
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn napi_thread_names() {
        assert_eq!(napi_device("napi/lan0-8193"), Some("lan0"));
        assert_eq!(napi_device("napi/wan-x-12"), Some("wan-x"));
        assert_eq!(napi_device("napi/lan0-x"), None);
        assert_eq!(napi_device("kworker/0:1"), None);
    }
}
