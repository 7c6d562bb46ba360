//! `fwd`: the forwarder's command line. `fwd check CONFIG` validates a configuration file;
//! `fwd demo` runs the forwarding core on an embedded default config in memory. `fwd run`
//! will start the forwarder.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use engine::config::{Config, LoadError};

#[derive(Debug, Parser)]
#[command(name = "fwd", version, about = "Userspace multi-WAN packet forwarder")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate a configuration file and print a summary; exit 1 if it is invalid.
    Check {
        /// Path of the TOML configuration file.
        config: PathBuf,
    },
    /// Run the forwarding core in memory on an embedded default config: simulated hosts and
    /// Internet, two WANs, one cut and restored mid-run.
    Demo {
        /// Simulated seconds.
        #[arg(long, default_value_t = 15)]
        seconds: u32,
        /// Do not pace the simulation in real time.
        #[arg(long)]
        fast: bool,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Check { config } => check(&config),
        Command::Demo { seconds, fast } => demo(seconds, fast),
    }
}

fn check(path: &std::path::Path) -> ExitCode {
    match Config::load(path) {
        Ok(c) => {
            println!(
                "OK: {} LANs, {} WANs, {} groups, {} rules",
                c.lans.len(),
                c.wans.len(),
                c.groups.len(),
                c.rules.len()
            );
            ExitCode::SUCCESS
        }
        Err(LoadError::Invalid(errors)) => {
            for e in &errors {
                eprintln!("{}: {e}", path.display());
            }
            ExitCode::FAILURE
        }
        Err(e @ LoadError::Read { .. }) => {
            eprintln!("fwd: {e}");
            ExitCode::FAILURE
        }
    }
}

fn demo(seconds: u32, fast: bool) -> ExitCode {
    let options = engine::demo::DemoOptions {
        seconds: seconds.max(3),
        real_time: !fast,
    };
    match engine::demo::run(&mut std::io::stdout().lock(), options) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fwd demo: {e}");
            ExitCode::FAILURE
        }
    }
}
