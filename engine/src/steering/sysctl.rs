//! The IPv4 sysctls steering sets, read and written through `/proc/sys` (of the calling
//! thread's network namespace), and the pure helpers that compute their new values.

use std::fmt;
use std::fs;
use std::io;
use std::ops::RangeInclusive;
use std::path::PathBuf;

/// One sysctl: its dotted name for messages and its file under `/proc/sys`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    /// Path components below `/proc/sys` (a device name is one component even if it
    /// contains a dot).
    parts: Vec<String>,
}

impl Key {
    pub fn ipv4(name: &str) -> Key {
        Key {
            parts: vec!["net".into(), "ipv4".into(), name.into()],
        }
    }

    /// `net.ipv4.conf.<dev>.<name>` (`dev` may be `all` or `default`).
    pub fn conf(dev: &str, name: &str) -> Key {
        Key {
            parts: vec![
                "net".into(),
                "ipv4".into(),
                "conf".into(),
                dev.into(),
                name.into(),
            ],
        }
    }

    pub fn ip_forward() -> Key {
        Key::ipv4("ip_forward")
    }

    pub fn reserved_ports() -> Key {
        Key::ipv4("ip_local_reserved_ports")
    }

    fn path(&self) -> PathBuf {
        let mut p = PathBuf::from("/proc/sys");
        p.extend(&self.parts);
        p
    }

    /// The value, without the trailing newline.
    pub fn read(&self) -> io::Result<String> {
        let s = fs::read_to_string(self.path())?;
        Ok(s.trim_end_matches('\n').to_string())
    }

    pub fn write(&self, value: &str) -> io::Result<()> {
        fs::write(self.path(), format!("{value}\n"))
    }
}

impl fmt::Display for Key {
    /// Dotted, as `sysctl` writes it (a dot inside a device name becomes a slash).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.parts.iter().map(|p| p.replace('.', "/")).collect();
        write!(f, "{}", parts.join("."))
    }
}

/// The reverse-path filtering level of an `rp_filter` value (0 off, 1 strict, 2 loose;
/// anything unreadable counts as off).
pub fn rp_level(value: &str) -> u8 {
    value.trim().parse().unwrap_or(0)
}

/// How to take `all.rp_filter` (value `all`) to 0 without weakening the filtering of the
/// real interfaces: the kernel applies the larger of `all` and a device's own value, so
/// every device of `devices` (name, own value) below `all`'s level is raised to it first.
/// Returns the devices to raise and the level; nothing when `all` is already 0.
pub fn rp_filter_handover<'a>(all: &str, devices: &[(&'a str, &str)]) -> (Vec<&'a str>, u8) {
    let level = rp_level(all);
    if level == 0 {
        return (Vec::new(), 0);
    }
    let raise = devices
        .iter()
        .filter(|(_, v)| rp_level(v) < level)
        .map(|(d, _)| *d)
        .collect();
    (raise, level)
}

/// `ip_local_reserved_ports` with every range of `add` that the current value does not
/// already cover appended: the existing entries are kept as they are. The kernel accepts
/// overlapping entries and prints the value back merged.
pub fn merge_reserved_ports(current: &str, add: &[RangeInclusive<u16>]) -> String {
    let mut covered: Vec<(u16, u16)> = parse_port_list(current);
    let mut entries: Vec<String> = current
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(String::from)
        .collect();
    for r in add {
        let (lo, hi) = (*r.start(), *r.end());
        if !is_covered(&covered, lo, hi) {
            entries.push(if lo == hi {
                lo.to_string()
            } else {
                format!("{lo}-{hi}")
            });
            covered.push((lo, hi));
        }
    }
    entries.join(",")
}

/// The port ranges of a `1024,8080-8090` list (entries that do not parse are skipped).
pub fn parse_port_list(value: &str) -> Vec<(u16, u16)> {
    value
        .split(',')
        .map(str::trim)
        .filter_map(|e| match e.split_once('-') {
            Some((a, b)) => Some((a.trim().parse().ok()?, b.trim().parse().ok()?)),
            None => e.parse().ok().map(|p| (p, p)),
        })
        .filter(|(a, b)| a <= b)
        .collect()
}

/// Whether the union of `ranges` holds every port of `lo..=hi`.
pub fn is_covered(ranges: &[(u16, u16)], lo: u16, hi: u16) -> bool {
    let mut sorted = ranges.to_vec();
    sorted.sort_unstable();
    let mut next = u32::from(lo); // first port not yet known to be covered
    for (a, b) in sorted {
        if u32::from(a) > next {
            break;
        }
        next = next.max(u32::from(b) + 1);
        if next > u32::from(hi) {
            return true;
        }
    }
    next > u32::from(hi)
}
