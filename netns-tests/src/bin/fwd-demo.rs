//! `fwd-demo`: the live demo of fwd in network namespaces (see `netns_tests::demo`). Needs
//! root and the packages of `scripts/netns-deps`; `scripts/demo` builds and runs it.
//!
//! Exit codes: 0 success; 1 any failure (the message says what, with the tail of fwd's log
//! when fwd was involved); 2 bad usage.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::Parser;
use netns_tests::demo::{self, Options};
use signal_hook::consts::{SIGINT, SIGTERM};

/// fwd routing real traffic between network namespaces: two WANs weighted 2:1, two LAN
/// hosts, real servers, a live per-WAN view, a summary, then everything removed.
#[derive(Debug, Parser)]
#[command(name = "fwd-demo")]
struct Cli {
    /// Seconds of traffic.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(3..=3600))]
    seconds: u64,
    /// Plain output: one block per second instead of a view redrawn in place (also the
    /// default when stdout is not a terminal).
    #[arg(long)]
    no_color: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Ctrl-C and SIGTERM only set the flag: the demo ends its loop and tears down.
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM] {
        if let Err(e) = signal_hook::flag::register(signal, Arc::clone(&stop)) {
            let _ = writeln!(
                std::io::stderr(),
                "fwd-demo: cannot handle signal {signal}: {e}"
            );
            return ExitCode::FAILURE;
        }
    }
    if let Err(e) = demo::prerequisites() {
        let _ = writeln!(std::io::stderr(), "{e}");
        return ExitCode::FAILURE;
    }
    let live = !cli.no_color && std::io::stdout().is_terminal();
    let options = Options {
        seconds: cli.seconds,
        live,
    };
    match demo::run(&options, &stop) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "fwd-demo: error: {e}");
            ExitCode::FAILURE
        }
    }
}
