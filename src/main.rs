//! The `hypnos` binary: `hypnos all` runs the whole system in one process (see `server.rs`);
//! the other components are declared but not available in this build yet.
//!
//! Map: `cli.rs` (flags), `objstore.rs` (bucket configuration), `server.rs` (startup and
//! shutdown), `http.rs` + `http/` (the HTTP API), `grpc.rs`, `metrics.rs`.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

mod cli;
mod grpc;
mod http;
mod metrics;
mod objstore;
mod server;

use cli::{Cli, Command};

/// Exit code of usage errors (as clap uses), including components not in this build.
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let args = match cli.command {
        Command::All(args) => args,
        other => {
            eprintln!(
                "hypnos {}: not available yet in this build, use `hypnos all`",
                other.name()
            );
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let filter = match EnvFilter::try_new(&args.log_level) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("hypnos: invalid --log-level {:?}: {e}", args.log_level);
            return ExitCode::from(EXIT_USAGE);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("hypnos")
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hypnos: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(server::run_all(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "hypnos failed");
            eprintln!("hypnos: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
