//! `fwdctl`: asks the running fwd daemon over its control socket and prints the answer.
//!
//! Exit codes: 0 success; 1 the daemon answered with an error; 2 bad usage (clap); 3 the
//! daemon could not be reached (not running, no permission, no answer, broken connection).

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ctl::render::{render_reply, RenderOptions};
use ctl::{Client, Proto, Request, Response, DEFAULT_SOCKET_PATH};

/// Query and control the fwd multi-WAN forwarder.
#[derive(Debug, Parser)]
#[command(name = "fwdctl", version)]
struct Cli {
    /// Control socket of the daemon.
    #[arg(long, global = true, env = "FWD_SOCKET", default_value = DEFAULT_SOCKET_PATH)]
    socket: PathBuf,
    /// Print the reply as pretty JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Uptime, WANs with their state and traffic, totals.
    Status,
    /// Tracked flows.
    Flows {
        /// Only flows leaving by this WAN.
        #[arg(long, value_name = "NAME")]
        wan: Option<String>,
        /// Show at most N flows (default 100).
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
    },
    /// Policy rules in order, with hit counts.
    Rules,
    /// Drop and event counters.
    Counters {
        /// Include counters that are zero.
        #[arg(long)]
        all: bool,
    },
    /// What fwd would decide for a new flow, and why.
    Explain {
        /// Source address (a LAN host).
        #[arg(long)]
        src: Ipv4Addr,
        /// Destination address.
        #[arg(long)]
        dst: Ipv4Addr,
        /// tcp, udp, icmp (or 6, 17, 1).
        #[arg(long)]
        proto: Proto,
        /// Source port.
        #[arg(long)]
        sport: Option<u16>,
        /// Destination port.
        #[arg(long)]
        dport: Option<u16>,
    },
    /// Reload the configuration file (an invalid one is refused and the old one stays).
    Reload,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut options = RenderOptions::default();
    let request = match cli.command {
        Command::Status => Request::Status,
        Command::Flows { wan, limit } => Request::Flows { wan, limit },
        Command::Rules => Request::Rules,
        Command::Counters { all } => {
            options.all_counters = all;
            Request::Counters
        }
        Command::Explain {
            src,
            dst,
            proto,
            sport,
            dport,
        } => Request::Explain {
            src,
            dst,
            proto,
            sport,
            dport,
        },
        Command::Reload => Request::Reload,
    };
    let response = Client::connect(&cli.socket).and_then(|mut c| c.request(&request));
    match response {
        Ok(Response::Ok(reply)) => {
            let text = if cli.json {
                match serde_json::to_string_pretty(&reply) {
                    Ok(json) => json + "\n",
                    Err(e) => return fail(&format!("cannot print the reply: {e}"), 1),
                }
            } else {
                render_reply(&reply, options)
            };
            // A closed stdout (`fwdctl flows | head`) is not an error worth reporting.
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
            ExitCode::SUCCESS
        }
        Ok(Response::Error { message }) => fail(&message, 1),
        Err(e) => fail(&e.to_string(), 3),
    }
}

fn fail(message: &str, code: u8) -> ExitCode {
    eprintln!("fwdctl: {message}");
    ExitCode::from(code)
}
