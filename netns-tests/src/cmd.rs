//! Running external commands with a deadline: every call returns within its timeout, and a
//! command that overruns is killed.

use crate::error::{Error, Result};
use crate::privilege::which;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// Timeout for configuration commands (`ip`, `nft`, `sysctl`, `ethtool`).
pub const CONFIG_TIMEOUT: Duration = Duration::from_secs(10);

/// What a finished command printed.
#[derive(Debug, Clone)]
pub struct Output {
    /// Exit status.
    pub status: ExitStatus,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
}

impl Output {
    /// Whether the command exited with status 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }
}

/// A command line for messages: program and arguments separated by spaces.
pub fn describe(program: &str, args: &[&str]) -> String {
    let mut s = program.to_string();
    for a in args {
        s.push(' ');
        s.push_str(a);
    }
    s
}

/// Whether children start in their own process group (see [`own_process_groups`]).
static OWN_PROCESS_GROUPS: AtomicBool = AtomicBool::new(false);

/// From now on, every command this crate starts gets its own process group, so the SIGINT a
/// terminal sends its foreground group on Ctrl-C reaches only this process (which then stops
/// its children and tears down in order) and not fwd or the servers. For `fwd-demo`; tests
/// leave it off, so an interrupted test run still takes its children with it.
pub fn own_process_groups() {
    OWN_PROCESS_GROUPS.store(true, Ordering::Relaxed);
}

/// A `Command` for `program` resolved through [`which`] (so `/usr/sbin` tools are found even
/// when `PATH` lacks it).
pub fn command(program: &str) -> Result<Command> {
    let mut cmd = Command::new(which(program)?);
    if OWN_PROCESS_GROUPS.load(Ordering::Relaxed) {
        cmd.process_group(0);
    }
    Ok(cmd)
}

/// Runs `program args` with `input` on stdin (or none), waits at most `timeout`, and returns
/// its output whatever the exit status. Errors: the program cannot be started, or it overran
/// (it is then killed; the error carries what it printed so far).
pub fn run(program: &str, args: &[&str], input: Option<&str>, timeout: Duration) -> Result<Output> {
    let line = describe(program, args);
    let mut cmd = command(program)?;
    cmd.args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::new(format!("cannot start `{line}`: {e}")))?;
    let stdin = child.stdin.take();
    let writer = input.map(|data| {
        let data = data.to_string();
        thread::spawn(move || {
            if let Some(mut stdin) = stdin {
                // A command that exits without reading all of it is reported by its status.
                let _ = stdin.write_all(data.as_bytes());
            }
        })
    });
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    };
    if let Some(w) = writer {
        let _ = w.join();
    }
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    match status {
        Some(status) => Ok(Output {
            status,
            stdout,
            stderr,
        }),
        None => Err(Error::new(format!(
            "`{line}` did not finish within {timeout:?} and was killed; stdout: {}; stderr: {}",
            stdout.trim(),
            stderr.trim()
        ))),
    }
}

/// Like [`run`], but a non-zero exit status is an error carrying stderr; returns stdout.
pub fn check(
    program: &str,
    args: &[&str],
    input: Option<&str>,
    timeout: Duration,
) -> Result<String> {
    let out = run(program, args, input, timeout)?;
    if out.success() {
        Ok(out.stdout)
    } else {
        Err(failed(program, args, &out))
    }
}

/// The error for a command that exited unsuccessfully.
pub fn failed(program: &str, args: &[&str], out: &Output) -> Error {
    let detail = if out.stderr.trim().is_empty() {
        out.stdout.trim()
    } else {
        out.stderr.trim()
    };
    Error::new(format!(
        "`{}` failed ({}): {detail}",
        describe(program, args),
        out.status
    ))
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    })
}
