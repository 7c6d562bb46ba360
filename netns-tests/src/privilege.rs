//! Whether this process can build topologies (root, `ip netns`, the tools), and finding tools.

use crate::error::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Environment variable: when `1`, a missing privilege or tool fails the test instead of
/// skipping it.
pub const REQUIRE_ENV: &str = "FWD_REQUIRE_NETNS";

/// Tools every topology needs (building and tearing down).
pub const TOPOLOGY_TOOLS: &[&str] = &["ip", "sysctl", "ethtool", "nft", "kill"];

/// The Debian package that ships `tool`, for install hints (`scripts/netns-deps` lists them).
pub fn debian_package(tool: &str) -> &'static str {
    match tool {
        "ip" | "bridge" | "ss" => "iproute2",
        "ping" => "iputils-ping",
        "curl" => "curl",
        "nginx" => "nginx-light",
        "iperf3" => "iperf3",
        "dnsmasq" => "dnsmasq-base",
        "dig" => "bind9-dnsutils",
        "traceroute" => "traceroute",
        "nft" => "nftables",
        "ethtool" => "ethtool",
        "sysctl" | "kill" => "procps",
        _ => "(unknown package)",
    }
}

/// The full path of `tool`, searched in `PATH` and then the sbin directories (a non-login
/// root shell may lack them). Error: `TOOL missing: apt-get install PACKAGE`.
pub fn which(tool: &str) -> Result<PathBuf> {
    if tool.contains('/') {
        return Ok(PathBuf::from(tool));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let extra = ["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"];
    std::env::split_paths(&path)
        .chain(extra.iter().map(PathBuf::from))
        .map(|dir| dir.join(tool))
        .find(|p| is_executable(p))
        .ok_or_else(|| {
            Error::new(format!(
                "{tool} missing: apt-get install {}",
                debian_package(tool)
            ))
        })
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Whether the effective user is root, from the `Uid:` line of `/proc/self/status`.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| effective_uid(&s))
        == Some(0)
}

/// The effective uid (second field of the `Uid:` line) of a `/proc/PID/status` text.
pub fn effective_uid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// Why topologies cannot be built here, or `None` when they can: not root, a tool of
/// [`TOPOLOGY_TOOLS`] or of `extra` missing.
pub fn missing_prerequisite(extra: &[&str]) -> Option<String> {
    if !is_root() {
        return Some("not root".to_string());
    }
    let missing: Vec<String> = TOPOLOGY_TOOLS
        .iter()
        .chain(extra)
        .filter_map(|t| which(t).err().map(|e| e.to_string()))
        .collect();
    if missing.is_empty() {
        None
    } else {
        Some(missing.join("; "))
    }
}

/// Call first in every namespace test: `true` when it can run. Otherwise prints one line
/// `SKIP <test>: needs root and ip netns (...): REASON` to stderr (not captured by the test
/// harness) and returns `false`, or panics when `FWD_REQUIRE_NETNS=1`.
pub fn require_root_or_skip(test_name: &str) -> bool {
    require_tools_or_skip(test_name, &[])
}

/// [`require_root_or_skip`] that also needs the tools in `tools` (e.g. `["nginx", "curl"]`).
pub fn require_tools_or_skip(test_name: &str, tools: &[&str]) -> bool {
    let Some(why) = missing_prerequisite(tools) else {
        return true;
    };
    if std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1") {
        panic!("{test_name}: needs root and ip netns, and {REQUIRE_ENV}=1 forbids skipping: {why}");
    }
    // Straight to stderr, past the test harness's capture, so a skip is always visible.
    let _ = writeln!(
        std::io::stderr(),
        "SKIP {test_name}: needs root and ip netns (run as root; {REQUIRE_ENV}=1 makes this a failure): {why}"
    );
    false
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn effective_uid_is_the_second_field() {
        let s = "Name:\tx\nUid:\t1000\t0\t0\t0\nGid:\t0\t0\t0\t0\n";
        assert_eq!(effective_uid(s), Some(0));
        assert_eq!(effective_uid("Name: x\n"), None);
    }

    #[test]
    fn missing_tool_names_its_package() {
        let e = which("iperf3-surely-not-installed").unwrap_err();
        assert!(e.message().contains("missing: apt-get install"), "{e}");
        assert_eq!(debian_package("iperf3"), "iperf3");
        assert_eq!(debian_package("dig"), "bind9-dnsutils");
    }
}
