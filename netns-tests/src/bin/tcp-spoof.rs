//! tcp-spoof: run on the server's side of TCP connections to `--local`, watches their
//! segments for `--listen-ms`, then sends each peer resets and FINs with sequence numbers far
//! outside its window, as an off-path attacker would (`netns_tests::spoof`). Prints
//! `{"peers":N,"sent":M}`.

use std::net::SocketAddrV4;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use netns_tests::spoof;

#[derive(Debug, Parser)]
#[command(name = "tcp-spoof", about = "Off-path TCP resets and FINs")]
struct Cli {
    /// The server's end of the connections.
    #[arg(long)]
    local: SocketAddrV4,
    #[arg(long, default_value_t = 500)]
    listen_ms: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = spoof::sniff(cli.local, Duration::from_millis(cli.listen_ms))
        .and_then(|peers| spoof::attack(cli.local, &peers).map(|sent| (peers.len(), sent)));
    match result {
        Ok((peers, sent)) => {
            println!("{{\"peers\":{peers},\"sent\":{sent}}}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tcp-spoof: {e}");
            ExitCode::FAILURE
        }
    }
}
