//! udp-stream: the constant-rate UDP stream of the failover tests and benchmarks
//! (`netns_tests::stream`). `send` runs in a LAN host, `recv` in the internet namespace and
//! prints its report as one JSON object.

use std::net::SocketAddrV4;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use netns_tests::stream;

#[derive(Debug, Parser)]
#[command(name = "udp-stream", about = "A numbered UDP stream and its receiver")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Sends `--pps` datagrams per second to `--dst` for `--seconds`.
    Send {
        #[arg(long)]
        dst: SocketAddrV4,
        #[arg(long, default_value_t = 1000)]
        pps: u32,
        #[arg(long)]
        seconds: f64,
    },
    /// Receives on `--bind` for at most `--seconds` (or until `--idle-ms` pass without a
    /// datagram) and prints the report as JSON.
    Recv {
        #[arg(long)]
        bind: SocketAddrV4,
        #[arg(long)]
        seconds: f64,
        #[arg(long, default_value_t = 3000)]
        idle_ms: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Send { dst, pps, seconds } => {
            stream::send(dst, pps, Duration::from_secs_f64(seconds.max(0.0)))
                .map(|n| println!("{{\"sent\":{n}}}"))
        }
        Command::Recv {
            bind,
            seconds,
            idle_ms,
        } => stream::receive(
            bind,
            Duration::from_secs_f64(seconds.max(0.0)),
            Duration::from_millis(idle_ms),
        )
        .map(|arrivals| {
            let report = stream::analyze(&arrivals);
            println!("{}", serde_json::to_string(&report).unwrap_or_default());
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("udp-stream: {e}");
            ExitCode::FAILURE
        }
    }
}
