//! The command line: `hypnos <component> [flags]`, every flag also an environment variable
//! `HYPNOS_*` (flags win).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Long-term, multi-tenant storage for Prometheus metrics on Arrow, Parquet and DataFusion.
#[derive(Debug, Parser)]
#[command(name = "hypnos", version, about, long_about = None)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The components. Only `all` is available in this build.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Runs the whole system in one process: remote-write receiver, query API and block
    /// storage.
    All(AllArgs),
    /// Remote-write receiver only (not available yet in this build, use `hypnos all`).
    Receive(Unavailable),
    /// Query API only (not available yet in this build, use `hypnos all`).
    Query(Unavailable),
    /// Store gateway serving blocks (not available yet in this build, use `hypnos all`).
    Store(Unavailable),
    /// Compactor (not available yet in this build, use `hypnos all`).
    Compact(Unavailable),
    /// Rule evaluation (not available yet in this build, use `hypnos all`).
    Rule(Unavailable),
}

impl Command {
    /// The subcommand's name, as typed.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Command::All(_) => "all",
            Command::Receive(_) => "receive",
            Command::Query(_) => "query",
            Command::Store(_) => "store",
            Command::Compact(_) => "compact",
            Command::Rule(_) => "rule",
        }
    }
}

/// Arguments of a component this build does not have: taken and ignored, so that the answer
/// is always "not available" rather than a complaint about a flag.
#[derive(Debug, Args)]
pub(crate) struct Unavailable {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    _args: Vec<String>,
}

/// Flags of `hypnos all`.
#[derive(Clone, Debug, Args)]
pub(crate) struct AllArgs {
    /// Directory of the write-ahead log (and of the default file bucket).
    #[arg(long, env = "HYPNOS_DATA_DIR", default_value = "./data")]
    pub(crate) data_dir: PathBuf,

    /// Address of the HTTP API (remote write, PromQL, /metrics).
    #[arg(long, env = "HYPNOS_HTTP_ADDRESS", default_value = "127.0.0.1:10902")]
    pub(crate) http_address: SocketAddr,

    /// Address of the gRPC server (health service for now).
    #[arg(long, env = "HYPNOS_GRPC_ADDRESS", default_value = "127.0.0.1:10901")]
    pub(crate) grpc_address: SocketAddr,

    /// Object store for blocks: `file:///abs/path` or `s3://bucket/prefix` (endpoint and
    /// credentials from the AWS_* environment variables). Default: file://<data-dir>/bucket.
    #[arg(
        long,
        env = "HYPNOS_OBJSTORE_URL",
        conflicts_with = "objstore_config_file"
    )]
    pub(crate) objstore_url: Option<String>,

    /// Thanos bucket configuration YAML (`type: S3` or `type: FILESYSTEM`, optional
    /// `prefix`), instead of --objstore-url.
    #[arg(long, env = "HYPNOS_OBJSTORE_CONFIG_FILE")]
    pub(crate) objstore_config_file: Option<PathBuf>,

    /// How often heads are cut and written as blocks (e.g. 2h, 30m, 10s).
    #[arg(long, env = "HYPNOS_BLOCK_DURATION", default_value = "2h", value_parser = parse_positive_duration)]
    pub(crate) block_duration: Duration,

    /// Largest compressed remote-write body accepted, in bytes; larger ones get 413.
    #[arg(long, env = "HYPNOS_MAX_REQUEST_BYTES", default_value_t = 32 << 20)]
    pub(crate) max_request_bytes: usize,

    /// Log filter: a level (error, warn, info, debug, trace) or tracing directives such as
    /// `info,hypnos_ingest=debug`.
    #[arg(long, env = "HYPNOS_LOG_LEVEL", default_value = "info")]
    pub(crate) log_level: String,
}

/// A humantime duration (`2h`, `90s`, `1h30m`) that is not zero.
fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 2h, 30m, 10s)"))?;
    if d.is_zero() {
        return Err("must be positive".into());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults() {
        let cli = Cli::try_parse_from(["hypnos", "all"]).unwrap();
        let Command::All(a) = cli.command else {
            panic!("not all")
        };
        assert_eq!(a.data_dir, PathBuf::from("./data"));
        assert_eq!(a.http_address.to_string(), "127.0.0.1:10902");
        assert_eq!(a.grpc_address.to_string(), "127.0.0.1:10901");
        assert_eq!(a.block_duration, Duration::from_secs(7200));
        assert_eq!(a.max_request_bytes, 32 << 20);
        assert_eq!(a.log_level, "info");
        assert!(a.objstore_url.is_none() && a.objstore_config_file.is_none());
    }

    #[test]
    fn durations_and_conflicts() {
        let cli = Cli::try_parse_from(["hypnos", "all", "--block-duration", "1h30m"]).unwrap();
        let Command::All(a) = cli.command else {
            panic!("not all")
        };
        assert_eq!(a.block_duration, Duration::from_secs(5400));
        for bad in ["soon", "0s"] {
            assert!(Cli::try_parse_from(["hypnos", "all", "--block-duration", bad]).is_err());
        }
        assert!(
            Cli::try_parse_from([
                "hypnos",
                "all",
                "--objstore-url",
                "file:///x",
                "--objstore-config-file",
                "b.yml"
            ])
            .is_err()
        );
    }

    #[test]
    fn unavailable_components_take_any_flags() {
        let cli = Cli::try_parse_from(["hypnos", "receive", "--whatever", "x"]).unwrap();
        assert_eq!(cli.command.name(), "receive");
    }
}
