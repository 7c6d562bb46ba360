//! Unique namespace names per topology, and removal of namespaces left by dead test processes.

use crate::cmd::{self, CONFIG_TIMEOUT};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;

/// Start of every namespace name this crate creates.
pub const NAME_TAG: &str = "fwt";

static COUNTER: AtomicU32 = AtomicU32::new(0);
static SWEEP: Once = Once::new();

/// A fresh prefix `fwt{pid}x{n}-`, unique among live processes and within this one.
pub fn unique_prefix() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{NAME_TAG}{}x{n}-", std::process::id())
}

/// The pid encoded in a namespace name made by [`unique_prefix`], if it is one of ours.
pub fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(NAME_TAG)?;
    let (pid, after) = rest.split_once('x')?;
    let (n, _) = after.split_once('-')?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// Names of all network namespaces (`ip netns list`, first word of each line).
pub fn list_namespaces() -> Vec<String> {
    cmd::check("ip", &["netns", "list"], None, CONFIG_TIMEOUT)
        .map(|out| parse_netns_list(&out))
        .unwrap_or_default()
}

/// The names in `ip netns list` output (lines like `name (id: 3)`).
pub fn parse_netns_list(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// Once per process: deletes namespaces named by [`unique_prefix`] whose process is gone
/// (left by a test run that was killed), after killing what still runs in them, and their
/// work directories.
pub fn sweep_stale_once() {
    SWEEP.call_once(|| {
        for name in list_namespaces() {
            if let Some(pid) = owner_pid(&name) {
                if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                    crate::netns::remove_namespace(&name);
                }
            }
        }
        let Ok(dir) = std::fs::read_dir(std::env::temp_dir()) else {
            return;
        };
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(pid) = owner_pid(&format!("{name}-")) {
                if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
    });
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_unique_and_parse_back() {
        let a = unique_prefix();
        let b = unique_prefix();
        assert_ne!(a, b);
        assert_eq!(owner_pid(&format!("{a}rt")), Some(std::process::id()));
        assert_eq!(owner_pid("fwtabc"), None);
        assert_eq!(owner_pid("other"), None);
    }

    #[test]
    fn netns_list_names() {
        let out = "fwt1x0-rt (id: 2)\nfwt1x0-inet\n";
        assert_eq!(parse_netns_list(out), ["fwt1x0-rt", "fwt1x0-inet"]);
    }
}
