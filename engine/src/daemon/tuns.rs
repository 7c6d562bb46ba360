//! The TUN devices of a running fwd: one per plan interface, named after it, with one queue
//! per worker.

use std::fs::File;
use std::io;

use crate::device::tun::{open_queue, MAX_NAME_LEN};
use crate::plan::Plan;

/// The TUN name for plan interface `id` with OS name `os_name`: `fwd<id>-<os_name>`, cut to
/// the kernel's 15-character limit (the id prefix keeps cut names unique).
pub fn tun_name(id: usize, os_name: &str) -> String {
    let mut name = format!("fwd{id}-{os_name}");
    while name.len() > MAX_NAME_LEN {
        name.pop();
    }
    name
}

/// The TUN names of `plan`'s interfaces, by interface id.
pub fn tun_names(plan: &Plan) -> Vec<String> {
    plan.interfaces
        .iter()
        .enumerate()
        .map(|(i, iface)| tun_name(i, &iface.os_name))
        .collect()
}

/// The MTU of the real interface `name` (the kernel's, from sysfs), if it can be read.
pub fn interface_mtu(name: &str) -> Option<u16> {
    std::fs::read_to_string(format!("/sys/class/net/{name}/mtu"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Opens `workers` queues of every TUN: `result[w][i]` is worker `w`'s queue of interface
/// `i`. The first open of a name creates the device.
pub fn open_queues(names: &[String], workers: usize) -> io::Result<Vec<Vec<File>>> {
    (0..workers)
        .map(|_| names.iter().map(|n| open_queue(n)).collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_interface_id_and_fit_the_kernel_limit() {
        assert_eq!(tun_name(0, "lan0"), "fwd0-lan0");
        assert_eq!(tun_name(12, "enp0s31f6.1234"), "fwd12-enp0s31f6");
        assert!(tun_name(255, "a-very-long-interface-name").len() <= MAX_NAME_LEN);
    }
}
