//! The hook command's children: spawned with the event's environment, never waited on in
//! the loop; finished ones are reaped with `try_wait`, one still running after
//! [`HOOK_TIMEOUT`] is killed.
//!
//! Invariants: a child is kept until it has been reaped (no zombies while the prober runs);
//! nothing here blocks.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::core::event::hook_env;
use crate::core::Logged;

/// How long a hook may run before it is killed.
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct Running {
    child: Child,
    started: Instant,
    killed: bool,
    what: String,
}

/// Hook children not yet reaped.
#[derive(Debug)]
pub(crate) struct Hooks {
    command: Option<PathBuf>,
    running: Vec<Running>,
}

impl Hooks {
    /// No command yet (see [`Hooks::sync_command`]).
    pub fn new() -> Hooks {
        Hooks {
            command: None,
            running: Vec::new(),
        }
    }

    /// Makes `command` the one for the events from now on, if it is not already (the
    /// children of an old one are still reaped).
    pub fn sync_command(&mut self, command: Option<&PathBuf>) {
        if self.command.as_ref() != command {
            self.command = command.cloned();
        }
    }

    /// Starts the hook for `logged` (which happened at `wall`), if one is configured.
    pub fn spawn(&mut self, logged: &Logged, wall: SystemTime) {
        let Some(command) = &self.command else { return };
        let unix = wall.duration_since(UNIX_EPOCH).unwrap_or_default();
        let what = format!("hook {} for event {}", command.display(), logged.seq);
        match spawn(command, hook_env(logged.seq, &logged.event, unix)) {
            Ok(child) => self.running.push(Running {
                child,
                started: Instant::now(),
                killed: false,
                what,
            }),
            Err(e) => log::warn!("{what}: cannot start: {e}"),
        }
    }

    /// Reaps the children that have finished and kills those running too long.
    pub fn reap(&mut self) {
        self.running.retain_mut(|r| match r.child.try_wait() {
            Ok(Some(status)) => {
                if !status.success() && !r.killed {
                    log::warn!("{}: {status}", r.what);
                }
                false
            }
            Ok(None) => {
                if !r.killed && r.started.elapsed() >= HOOK_TIMEOUT {
                    log::warn!("{}: still running after {HOOK_TIMEOUT:?}, killed", r.what);
                    let _ = r.child.kill();
                    r.killed = true;
                }
                true
            }
            Err(e) => {
                log::warn!("{}: {e}", r.what);
                false
            }
        });
    }

    /// Whether a child is still to be reaped (the loop then wakes up regularly).
    pub fn any_running(&self) -> bool {
        !self.running.is_empty()
    }

    /// Hands the children still running to a thread of their own that reaps them (killing
    /// them at their timeout), for when the prober stops.
    pub fn detach(mut self) {
        if self.running.is_empty() {
            return;
        }
        let spawned = std::thread::Builder::new()
            .name("fwd-prober-hooks".into())
            .spawn(move || {
                while self.any_running() {
                    self.reap();
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
        if let Err(e) = spawned {
            log::warn!("cannot wait for the remaining hooks: {e}");
        }
    }
}

fn spawn(command: &Path, env: Vec<(String, String)>) -> std::io::Result<Child> {
    Command::new(command).envs(env).stdin(Stdio::null()).spawn()
}
