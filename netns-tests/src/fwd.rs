//! A running fwd in a topology's router namespace: started with a config written into the
//! topology's work directory, its control socket there too, talked to through the `ctl`
//! client (as fwdctl does) or the real `fwdctl` binary, stopped with SIGTERM.
//!
//! The binaries are found next to the test executable's directory (`target/<profile>/fwd`
//! and `fwdctl`; `cargo build --workspace --bins` builds them) or through `FWD_BIN` and
//! `FWDCTL_BIN`.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use ctl::protocol::{CountersReply, FlowsReply, Reply, Request, Response, StatusReply};
use ctl::Client;

use crate::cmd::{self, Output};
use crate::error::{Error, Result};
use crate::topology::Topology;
use crate::wait::wait_until;

/// How long fwd may take to answer on its control socket after start.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// How long fwd may take to stop after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

fn binary(env: &str, name: &str) -> Result<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    // target/<profile>/deps/test-binary or target/<profile>/binary
    for dir in exe.ancestors().skip(1).take(2) {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(Error::new(format!(
        "{name} binary not found near {} (run `cargo build --workspace --bins` first, or set {env})",
        exe.display()
    )))
}

/// The environment variable that picks the backend of every fwd the tests start: `tun`,
/// `afxdp` or `auto` (then fwd's own default applies). CI runs the suite once with each.
pub const BACKEND_ENV: &str = "FWD_BACKEND";

/// The backend [`BACKEND_ENV`] asks for, if any.
pub fn backend() -> Option<String> {
    std::env::var(BACKEND_ENV).ok().filter(|b| !b.is_empty())
}

/// `config_toml` with the `[dataplane] backend` of [`BACKEND_ENV`] added, unless it has a
/// `[dataplane]` section of its own.
pub fn with_backend(config_toml: &str) -> String {
    match backend() {
        Some(b) if !config_toml.contains("[dataplane]") => {
            format!("{config_toml}\n[dataplane]\nbackend = \"{b}\"\n")
        }
        _ => config_toml.to_string(),
    }
}

/// Path of the `fwd` binary.
pub fn fwd_binary() -> Result<PathBuf> {
    binary("FWD_BIN", "fwd")
}

/// Path of the `fwdctl` binary.
pub fn fwdctl_binary() -> Result<PathBuf> {
    binary("FWDCTL_BIN", "fwdctl")
}

/// How [`Fwd::start_opts`] runs `fwd run`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FwdOptions {
    /// `--workers` (default 2).
    pub workers: usize,
    /// `--log-level` (default `debug`).
    pub log_level: String,
    /// More `fwd run` arguments, after those.
    pub extra: Vec<String>,
    /// A command fwd runs under, e.g. `taskset -c 0` (its workers pin themselves to the
    /// CPUs fwd may run on, in order) or `setpriv --bounding-set -ipc_lock`.
    pub wrapper: Vec<String>,
}

impl Default for FwdOptions {
    fn default() -> Self {
        FwdOptions {
            workers: 2,
            log_level: "debug".to_string(),
            extra: Vec::new(),
            wrapper: Vec::new(),
        }
    }
}

/// fwd running in `topo`'s router namespace.
#[derive(Debug)]
pub struct Fwd<'t> {
    topo: &'t Topology,
    pid: u32,
    socket: PathBuf,
    config: PathBuf,
    log: PathBuf,
    stopped: bool,
}

impl<'t> Fwd<'t> {
    /// Writes `config_toml` and starts `fwd run` with 2 workers; returns once its control
    /// socket answers, or the log when it exits or does not answer in time.
    pub fn start(topo: &'t Topology, config_toml: &str) -> Result<Fwd<'t>> {
        Fwd::start_with(topo, config_toml, &[])
    }

    /// [`Fwd::start`] with extra `fwd run` arguments (not `--workers` or `--log-level`, which
    /// it already passes: use [`Fwd::start_opts`] to change those).
    pub fn start_with(topo: &'t Topology, config_toml: &str, extra: &[&str]) -> Result<Fwd<'t>> {
        let options = FwdOptions {
            extra: extra.iter().map(|s| s.to_string()).collect(),
            ..FwdOptions::default()
        };
        Fwd::start_opts(topo, config_toml, &options)
    }

    /// [`Fwd::start`] with every `fwd run` option of `options`.
    pub fn start_opts(
        topo: &'t Topology,
        config_toml: &str,
        options: &FwdOptions,
    ) -> Result<Fwd<'t>> {
        let dir = topo.workdir();
        let config = dir.join("fwd.toml");
        let socket = dir.join("fwd.sock");
        let log = dir.join("fwd.log");
        std::fs::write(&config, with_backend(config_toml))?;
        let bin = fwd_binary()?;
        let bin = bin.display().to_string();
        let config_arg = config.display().to_string();
        let socket_arg = socket.display().to_string();
        let workers = options.workers.to_string();
        let mut args: Vec<&str> = options.wrapper.iter().map(String::as_str).collect();
        args.extend([
            bin.as_str(),
            "run",
            "--config",
            &config_arg,
            "--control-socket",
            &socket_arg,
            "--workers",
            &workers,
            "--log-level",
            &options.log_level,
        ]);
        args.extend(options.extra.iter().map(String::as_str));
        let pid = topo.router().spawn(&args, &log)?;
        let fwd = Fwd {
            topo,
            pid,
            socket,
            config,
            log,
            stopped: false,
        };
        let started = wait_until("fwd's control socket", START_TIMEOUT, || {
            if !fwd.topo.router().is_running(fwd.pid) {
                return Err(Error::new("fwd exited during start-up"));
            }
            Ok(fwd.request(&Request::Status).is_ok())
        });
        match started {
            Ok(()) => Ok(fwd),
            Err(e) => Err(e.context(format!("fwd log:\n{}", fwd.log_text()))),
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// Everything fwd logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn is_running(&self) -> bool {
        self.topo.router().is_running(self.pid)
    }

    /// One request on a fresh connection; a daemon error becomes `Err`.
    pub fn request(&self, request: &Request) -> Result<Reply> {
        let mut client = Client::connect(&self.socket).map_err(|e| Error::new(e.to_string()))?;
        match client
            .request(request)
            .map_err(|e| Error::new(e.to_string()))?
        {
            Response::Ok(reply) => Ok(reply),
            Response::Error { message } => Err(Error::new(format!("fwd: {message}"))),
        }
    }

    pub fn status(&self) -> Result<StatusReply> {
        match self.request(&Request::Status)? {
            Reply::Status(s) => Ok(s),
            other => Err(Error::new(format!("status answered {other:?}"))),
        }
    }

    pub fn counters(&self) -> Result<CountersReply> {
        match self.request(&Request::Counters)? {
            Reply::Counters(c) => Ok(c),
            other => Err(Error::new(format!("counters answered {other:?}"))),
        }
    }

    /// The value of the drop or event counter `name` (0 if fwd does not report it).
    pub fn counter(&self, name: &str) -> Result<u64> {
        let c = self.counters()?;
        Ok(c.drops
            .iter()
            .chain(&c.events)
            .find(|c| c.name == name)
            .map_or(0, |c| c.value))
    }

    pub fn flows(&self, wan: Option<&str>, limit: Option<u32>) -> Result<FlowsReply> {
        match self.request(&Request::Flows {
            wan: wan.map(str::to_string),
            limit,
            offset: None,
        })? {
            Reply::Flows(f) => Ok(f),
            other => Err(Error::new(format!("flows answered {other:?}"))),
        }
    }

    /// Runs the real `fwdctl` against this fwd (any exit status).
    pub fn fwdctl(&self, args: &[&str]) -> Result<Output> {
        let bin = fwdctl_binary()?;
        let socket = self.socket.display().to_string();
        let mut full = vec!["--socket", socket.as_str()];
        full.extend_from_slice(args);
        cmd::run(
            &bin.display().to_string(),
            &full,
            None,
            Duration::from_secs(10),
        )
    }

    /// Replaces the config file (for a reload).
    pub fn write_config(&self, config_toml: &str) -> Result<()> {
        std::fs::write(&self.config, with_backend(config_toml))?;
        Ok(())
    }

    /// Sends `signal` (e.g. "HUP") to fwd.
    pub fn signal(&self, signal: &str) -> Result<()> {
        cmd::check(
            "kill",
            &[&format!("-{signal}"), &self.pid.to_string()],
            None,
            Duration::from_secs(5),
        )?;
        Ok(())
    }

    /// SIGKILL, as a crash would end it: nothing of fwd's runs its clean-up.
    pub fn kill(mut self) {
        self.stopped = true;
        self.topo.router().kill(self.pid);
    }

    /// SIGTERM, then waits for the exit. Returns its status; an error if it did not stop in
    /// time (it is then killed).
    pub fn stop(mut self) -> Result<ExitStatus> {
        self.stopped = true;
        self.signal("TERM")?;
        match self.topo.router().wait_exit(self.pid, STOP_TIMEOUT) {
            Some(status) => Ok(status),
            None => {
                self.topo.router().kill(self.pid);
                Err(Error::new(format!(
                    "fwd did not stop within {STOP_TIMEOUT:?} of SIGTERM; log:\n{}",
                    self.log_text()
                )))
            }
        }
    }
}

impl Drop for Fwd<'_> {
    fn drop(&mut self) {
        if !self.stopped {
            let _ = self.signal("TERM");
            if self
                .topo
                .router()
                .wait_exit(self.pid, STOP_TIMEOUT)
                .is_none()
            {
                self.topo.router().kill(self.pid);
            }
        }
    }
}
