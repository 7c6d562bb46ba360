//! `fwdctl`: asks the running fwd daemon over its control socket and prints the answer.
//!
//! Exit codes: 0 success; 1 the daemon answered with an error; 2 bad usage (clap); 3 the
//! daemon could not be reached (not running, no permission, no answer, broken connection).
//! `fwdctl events --follow` polls until interrupted; the daemon going away ends it with 3.

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use ctl::render::{render_event_batch, render_reply, RenderOptions};
use ctl::{Client, EventList, Proto, Reply, Request, Response, DEFAULT_SOCKET_PATH};

/// How often `fwdctl events --follow` asks for new events.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(200);

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
        /// Show at most N flows (default 100, at most 10000 a page).
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
        /// Skip the first N matching flows (the next page).
        #[arg(long, value_name = "N")]
        offset: Option<u64>,
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
    /// Link health of each WAN (state, latency, jitter, loss, carrier); `wan disable NAME`
    /// takes a WAN out of service, `wan enable NAME` puts it back.
    Wan {
        #[command(subcommand)]
        action: Option<WanAction>,
    },
    /// WAN state changes, oldest first.
    Events {
        /// Only events after this sequence number.
        #[arg(long, value_name = "N", default_value_t = 0)]
        after: u64,
        /// Keep printing new events as they happen, until interrupted (with --json, one
        /// event per line).
        #[arg(long)]
        follow: bool,
    },
}

#[derive(Debug, Subcommand)]
enum WanAction {
    /// Take a WAN out of service: no new flows go out by it, whatever its probes say.
    Disable {
        /// The WAN, by name.
        name: String,
    },
    /// Put a disabled WAN back in service (its probes decide its state again).
    Enable {
        /// The WAN, by name.
        name: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut options = RenderOptions::default();
    let request = match cli.command {
        Command::Status => Request::Status,
        Command::Flows { wan, limit, offset } => Request::Flows { wan, limit, offset },
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
        Command::Wan { action: None } => Request::Wans,
        Command::Wan {
            action: Some(WanAction::Disable { name }),
        } => Request::WanAdmin {
            wan: name,
            enabled: false,
        },
        Command::Wan {
            action: Some(WanAction::Enable { name }),
        } => Request::WanAdmin {
            wan: name,
            enabled: true,
        },
        Command::Events {
            after,
            follow: true,
        } => return follow_events(&cli.socket, after, cli.json),
        Command::Events {
            after,
            follow: false,
        } => Request::Events { after },
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

/// `fwdctl events --follow`: polls for events after the last one seen every
/// [`FOLLOW_INTERVAL`] on one connection and prints each batch as it comes.
fn follow_events(socket: &Path, mut after: u64, json: bool) -> ExitCode {
    let mut client = match Client::connect(socket) {
        Ok(client) => client,
        Err(e) => return fail(&e.to_string(), 3),
    };
    loop {
        let list = match client.request(&Request::Events { after }) {
            Ok(Response::Ok(Reply::Events(list))) => list,
            Ok(Response::Ok(_)) => {
                return fail("bad response from fwd: expected an events reply", 3);
            }
            Ok(Response::Error { message }) => return fail(&message, 1),
            Err(e) => return fail(&format!("fwd went away, stopped following events: {e}"), 3),
        };
        let text = match batch_text(&list, json) {
            Ok(text) => text,
            Err(e) => return fail(&format!("cannot print the events: {e}"), 1),
        };
        if !text.is_empty() {
            let mut stdout = std::io::stdout().lock();
            // A closed stdout (`fwdctl events --follow | head`) ends the watch quietly.
            if stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
                .is_err()
            {
                return ExitCode::SUCCESS;
            }
        }
        // `after` never goes back, so no event is printed twice whatever `last_seq` says.
        after = list
            .events
            .iter()
            .map(|e| e.seq)
            .fold(list.last_seq.max(after), u64::max);
        std::thread::sleep(FOLLOW_INTERVAL);
    }
}

/// One polled batch as printed: the human lines, or one JSON event per line (a note about
/// dropped events then goes to stderr, keeping stdout pure JSON lines).
fn batch_text(list: &EventList, json: bool) -> Result<String, serde_json::Error> {
    if !json {
        return Ok(render_event_batch(list));
    }
    if list.missed > 0 {
        eprintln!("fwdctl: {} older events were dropped", list.missed);
    }
    let mut text = String::new();
    for event in &list.events {
        text += &serde_json::to_string(event)?;
        text.push('\n');
    }
    Ok(text)
}

fn fail(message: &str, code: u8) -> ExitCode {
    eprintln!("fwdctl: {message}");
    ExitCode::from(code)
}
