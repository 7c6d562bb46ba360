//! One network namespace owned by this process: commands inside it, processes spawned into
//! it, and its removal on drop (children killed and reaped, stragglers killed, namespace
//! deleted).

use crate::cmd::{self, Output, CONFIG_TIMEOUT};
use crate::error::{Error, Result};
use crate::privilege::which;
use std::fs::File;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::Mutex;
use std::time::Duration;

/// Serializes `ip netns add`: the first ones in a process race to set up `/run/netns`.
static CREATE: Mutex<()> = Mutex::new(());

/// A network namespace created by [`Netns::create`] and deleted when dropped.
#[derive(Debug)]
pub struct Netns {
    name: String,
    children: Mutex<Vec<Child>>,
}

impl Netns {
    /// Creates namespace `name` (`ip netns add`) with `lo` up. Fails if it exists.
    pub fn create(name: &str) -> Result<Netns> {
        {
            let _serial = CREATE.lock().unwrap_or_else(|p| p.into_inner());
            cmd::check("ip", &["netns", "add", name], None, CONFIG_TIMEOUT)?;
        }
        let ns = Netns {
            name: name.to_string(),
            children: Mutex::new(Vec::new()),
        };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name (as in `ip netns list`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n NAME args`; returns stdout, error with stderr on failure.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        cmd::check("ip", &full, None, CONFIG_TIMEOUT)
    }

    /// Runs `args` inside the namespace; returns stdout, error with stderr on a non-zero exit.
    pub fn exec(&self, args: &[&str]) -> Result<String> {
        self.exec_timeout(args, CONFIG_TIMEOUT)
    }

    /// [`Netns::exec`] with an explicit deadline.
    pub fn exec_timeout(&self, args: &[&str], timeout: Duration) -> Result<String> {
        let out = self.output(args, None, timeout)?;
        if out.success() {
            Ok(out.stdout)
        } else {
            Err(self.failed(args, &out))
        }
    }

    /// Runs `args` inside the namespace with `input` on stdin; stdout or an error.
    pub fn exec_stdin(&self, args: &[&str], input: &str) -> Result<String> {
        let out = self.output(args, Some(input), CONFIG_TIMEOUT)?;
        if out.success() {
            Ok(out.stdout)
        } else {
            Err(self.failed(args, &out))
        }
    }

    /// Runs `args` inside the namespace and returns its output whatever the exit status.
    /// Errors only when it cannot start or overruns `timeout` (then it is killed).
    pub fn output(&self, args: &[&str], input: Option<&str>, timeout: Duration) -> Result<Output> {
        let full = self.exec_args(args)?;
        let refs: Vec<&str> = full.iter().map(String::as_str).collect();
        cmd::run("ip", &refs, input, timeout)
    }

    /// The error for `args` run here that exited unsuccessfully.
    pub fn failed(&self, args: &[&str], out: &Output) -> Error {
        cmd::failed(&format!("[{}]", self.name), args, out)
    }

    /// Sets sysctls inside the namespace: `sysctl -qw k=v ...`.
    pub fn sysctl(&self, settings: &[(&str, &str)]) -> Result<()> {
        let kv: Vec<String> = settings.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut args = vec!["sysctl", "-qw"];
        args.extend(kv.iter().map(String::as_str));
        self.exec(&args).map(drop)
    }

    /// Loads an nftables script inside the namespace (`nft -f -`).
    pub fn nft(&self, script: &str) -> Result<()> {
        self.exec_stdin(&["nft", "-f", "-"], script).map(drop)
    }

    /// Starts `args` in the background inside the namespace, stdout and stderr appended to
    /// `log`. The process is tracked: killed and reaped by [`Netns::kill`] or on drop.
    /// Returns its pid (`ip netns exec` execs the program, so it is the program's pid).
    pub fn spawn(&self, args: &[&str], log: &Path) -> Result<u32> {
        let full = self.exec_args(args)?;
        let file = File::options()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| Error::new(format!("cannot open {}: {e}", log.display())))?;
        let child = cmd::command("ip")?
            .args(&full)
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .map_err(|e| {
                Error::new(format!(
                    "cannot start `{}` in {}: {e}",
                    args.join(" "),
                    self.name
                ))
            })?;
        let pid = child.id();
        self.lock_children().push(child);
        Ok(pid)
    }

    /// Whether tracked process `pid` is still running (false once it exited or was killed).
    pub fn is_running(&self, pid: u32) -> bool {
        self.lock_children()
            .iter_mut()
            .any(|c| c.id() == pid && matches!(c.try_wait(), Ok(None)))
    }

    /// Waits up to `timeout` for tracked process `pid` to exit and reaps it: its exit status,
    /// or `None` if it is still running (or unknown).
    pub fn wait_exit(&self, pid: u32, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            {
                let mut children = self.lock_children();
                let at = children.iter().position(|c| c.id() == pid)?;
                if let Ok(Some(status)) = children[at].try_wait() {
                    // Reaped by try_wait; wait() again only returns the same status.
                    let mut done = children.swap_remove(at);
                    let _ = done.wait();
                    return Some(status);
                }
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills (SIGKILL) and reaps tracked process `pid`. Unknown pids are ignored.
    pub fn kill(&self, pid: u32) {
        let mut children = self.lock_children();
        if let Some(at) = children.iter().position(|c| c.id() == pid) {
            let mut c = children.swap_remove(at);
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Pids of every process in the namespace (`ip netns pids`).
    pub fn pids(&self) -> Vec<u32> {
        pids_of(&self.name)
    }

    fn exec_args(&self, args: &[&str]) -> Result<Vec<String>> {
        let (program, rest) = args
            .split_first()
            .ok_or_else(|| Error::new("empty command"))?;
        let program = which(program)?;
        let mut full = vec![
            "netns".to_string(),
            "exec".to_string(),
            self.name.clone(),
            program.display().to_string(),
        ];
        full.extend(rest.iter().map(|s| s.to_string()));
        Ok(full)
    }

    fn lock_children(&self) -> std::sync::MutexGuard<'_, Vec<Child>> {
        self.children.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for mut c in self.lock_children().drain(..) {
            let _ = c.kill();
            let _ = c.wait();
        }
        remove_namespace(&self.name);
    }
}

fn pids_of(name: &str) -> Vec<u32> {
    cmd::check("ip", &["netns", "pids", name], None, CONFIG_TIMEOUT)
        .map(|out| {
            out.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Kills every process still in namespace `name`, then deletes it. Best effort: failures
/// are printed to stderr (this runs in `Drop`, also while unwinding), never panics.
pub fn remove_namespace(name: &str) {
    for _ in 0..3 {
        let pids = pids_of(name);
        if pids.is_empty() {
            break;
        }
        let mut args = vec!["-9".to_string()];
        args.extend(pids.iter().map(u32::to_string));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let _ = cmd::run("kill", &refs, None, CONFIG_TIMEOUT);
        std::thread::sleep(Duration::from_millis(20));
    }
    if let Err(e) = cmd::check("ip", &["netns", "del", name], None, CONFIG_TIMEOUT) {
        eprintln!("netns-tests: cannot delete namespace {name}: {e}");
    }
}
