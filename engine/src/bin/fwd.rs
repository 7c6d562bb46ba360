//! `fwd`: the forwarder's command line. `fwd check CONFIG` validates a configuration file;
//! `fwd demo` runs the forwarding core on an embedded default config in memory; `fwd run`
//! runs the forwarder (see [`engine::daemon`]).

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
    /// Run the forwarder: TUN devices, kernel steering, workers, control socket. Stops on
    /// SIGTERM or SIGINT (removing everything it installed); SIGHUP reloads the config.
    Run {
        /// Path of the TOML configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// Path of the control socket (for fwdctl).
        #[arg(long, default_value = engine::daemon::DEFAULT_CONTROL_SOCKET, env = "FWD_SOCKET")]
        control_socket: PathBuf,
        /// Worker threads (default: one per core).
        #[arg(long)]
        workers: Option<usize>,
        /// First of the routing table numbers fwd installs its routes in.
        #[arg(long, default_value_t = 4200)]
        table_base: u32,
        /// Log level: error, warn, info, debug or trace (RUST_LOG overrides it).
        #[arg(long, default_value = "info")]
        log_level: String,
    },
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
        Command::Run {
            config,
            control_socket,
            workers,
            table_base,
            log_level,
        } => run(
            engine::daemon::RunOptions {
                config,
                control_socket,
                workers,
                table_base,
            },
            &log_level,
        ),
        Command::Check { config } => check(&config),
        Command::Demo { seconds, fast } => demo(seconds, fast),
    }
}

fn run(options: engine::daemon::RunOptions, log_level: &str) -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(log_level))
        .format_target(false)
        .init();
    match engine::daemon::run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::FAILURE
        }
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
