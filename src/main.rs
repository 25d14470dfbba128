//! The `hypnos` binary: `hypnos all` runs the whole system in one process (see `server.rs`);
//! `hypnos compact` runs the compactor alone (`compact.rs`), `hypnos tools bucket ls|inspect`
//! lists blocks (`tools.rs`), `hypnos explain` prints a query's plans (`explain.rs`); the other
//! components are declared but not available yet.
//!
//! Only the command line and the wiring live here: `cli.rs` (flags), `objstore.rs` (bucket
//! configuration), `server.rs` (building `hypnos all` from its flags, startup and shutdown).
//! The HTTP API, its servers and metrics are `hypnos-api`; authentication, limits and usage
//! accounting `hypnos-tenancy`.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

mod cli;
mod compact;
mod explain;
mod objstore;
mod server;
mod tools;

use cli::{Cli, Command};

/// The command to run, once logging is set up.
// Parsed once at startup: the size of the flags of `all` costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
enum Run {
    All(cli::AllArgs),
    Compact(cli::CompactArgs),
    Tools(cli::ToolsArgs),
    Explain(cli::ExplainArgs),
}

/// Exit code of usage errors (as clap uses), including components not in this build.
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (log_level, run) = match cli.command {
        Command::All(args) => (args.bucket.log_level.clone(), Run::All(args)),
        Command::Compact(args) => (args.bucket.log_level.clone(), Run::Compact(args)),
        Command::Tools(args) => (tools::log_level(&args).to_string(), Run::Tools(args)),
        Command::Explain(args) => ("warn".to_string(), Run::Explain(args)),
        other => {
            eprintln!(
                "hypnos {}: not available yet in this build, use `hypnos all`",
                other.name()
            );
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let filter = match EnvFilter::try_new(&log_level) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("hypnos: invalid --log-level {log_level:?}: {e}");
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
    let outcome = runtime.block_on(async move {
        match run {
            Run::All(args) => server::run_all(args).await,
            Run::Compact(args) => compact::run_compact(args).await,
            Run::Tools(args) => tools::run_tools(args).await,
            Run::Explain(args) => explain::run_explain(args).await,
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "hypnos failed");
            eprintln!("hypnos: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
