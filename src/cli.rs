//! The command line: `hypnos <component> [flags]`, every flag also an environment variable
//! `HYPNOS_*` (flags win).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand};
use hypnos_tenancy::AuthMode;

/// Long-term, multi-tenant storage for Prometheus metrics on Arrow, Parquet and DataFusion.
#[derive(Debug, Parser)]
#[command(name = "hypnos", version, about, long_about = None)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The components. Only `all` is available in this build.
#[derive(Debug, Subcommand)]
// Parsed once at startup: the size of the flags of `all` costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
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
    /// Compactor: merges small blocks into larger ones, deduplicates HA replicas, applies
    /// retention and deletes replaced blocks. Runs once, or forever with --wait.
    Compact(CompactArgs),
    /// Operator tools: `hypnos tools bucket ls|inspect`.
    Tools(ToolsArgs),
    /// Rule evaluation (not available yet in this build, use `hypnos all`).
    Rule(Unavailable),
    /// Prints the DataFusion logical and physical plans of a PromQL query (reads no data).
    Explain(ExplainArgs),
}

/// Flags of `hypnos explain`.
#[derive(Debug, Args)]
pub(crate) struct ExplainArgs {
    /// The PromQL query.
    pub(crate) query: String,
    /// Evaluation time of an instant query, in Unix seconds (default: now).
    #[arg(long)]
    pub(crate) time: Option<f64>,
    /// Start of a range query, in Unix seconds (with --end and --step).
    #[arg(long, requires_all = ["end", "step"], conflicts_with = "time")]
    pub(crate) start: Option<f64>,
    /// End of a range query, in Unix seconds.
    #[arg(long, requires_all = ["start", "step"])]
    pub(crate) end: Option<f64>,
    /// Step of a range query, in seconds.
    #[arg(long, requires_all = ["start", "end"])]
    pub(crate) step: Option<f64>,
    /// The tenant the plan reads.
    #[arg(long, default_value = hypnos_schemas::tenant::DEFAULT_TENANT)]
    pub(crate) tenant: String,
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
            Command::Tools(_) => "tools",
            Command::Rule(_) => "rule",
            Command::Explain(_) => "explain",
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
    // The data directory (also the write-ahead log's), the bucket and the log filter.
    #[command(flatten)]
    pub(crate) bucket: BucketArgs,

    /// Address of the HTTP API (remote write, PromQL, /metrics).
    #[arg(long, env = "HYPNOS_HTTP_ADDRESS", default_value = "127.0.0.1:10902")]
    pub(crate) http_address: SocketAddr,

    /// Address of the gRPC server (health service for now).
    #[arg(long, env = "HYPNOS_GRPC_ADDRESS", default_value = "127.0.0.1:10901")]
    pub(crate) grpc_address: SocketAddr,

    /// How often heads are cut and written as blocks (e.g. 2h, 30m, 10s).
    #[arg(long, env = "HYPNOS_BLOCK_DURATION", default_value = "2h", value_parser = parse_positive_duration)]
    pub(crate) block_duration: Duration,

    /// Exemplars kept in memory per tenant, in a circular buffer (the oldest are overwritten
    /// first; 0: exemplars are dropped at ingest).
    #[arg(long = "exemplars.max-per-tenant", env = "HYPNOS_EXEMPLARS_MAX_PER_TENANT", default_value_t = hypnos_ingest::DEFAULT_MAX_EXEMPLARS_PER_TENANT)]
    pub(crate) exemplars_max_per_tenant: usize,

    /// Memory for decoded block samples kept between queries, in bytes (least recently used
    /// series evicted first; 0: every query decodes what it reads).
    #[arg(long = "store.sample-cache-size", env = "HYPNOS_STORE_SAMPLE_CACHE_SIZE", default_value_t = hypnos_engine::DEFAULT_SAMPLE_CACHE_BYTES)]
    pub(crate) sample_cache_bytes: usize,

    /// How often the built-in compactor runs (0s: never; run `hypnos compact` instead).
    #[arg(long = "compact-interval", env = "HYPNOS_COMPACT_INTERVAL", default_value = "5m", value_parser = parse_duration)]
    pub(crate) compact_interval: Duration,

    #[command(flatten)]
    pub(crate) compact: CompactFlags,

    /// Largest compressed remote-write body accepted, in bytes; larger ones get 413.
    #[arg(long, env = "HYPNOS_MAX_REQUEST_BYTES", default_value_t = hypnos_api::DEFAULT_MAX_REQUEST_BYTES)]
    pub(crate) max_request_bytes: usize,

    /// Bytes that remote-write requests being decoded, validated and logged may hold at
    /// once, across tenants (decompressed bodies and an estimate of their decoded form);
    /// past it a request gets 429, one needing more than all of it 413 (0: unlimited).
    #[arg(
        long = "receive.max-inflight-decode-bytes",
        env = "HYPNOS_RECEIVE_MAX_INFLIGHT_DECODE_BYTES",
        default_value_t = hypnos_ingest::DEFAULT_MAX_INFLIGHT_DECODE_BYTES
    )]
    pub(crate) receive_max_inflight_decode_bytes: usize,

    /// Budget of the write-ahead log on disk (e.g. 512MiB, 2GB; 0: unlimited). A write that
    /// would take it past the budget gets 503 "WAL full" and starts a flush early; writes
    /// resume once the flush has truncated the log. A full disk is answered the same way.
    #[arg(long = "wal.max-size", env = "HYPNOS_WAL_MAX_SIZE", default_value = "0", value_parser = hypnos_ingest::parse_byte_size)]
    pub(crate) wal_max_size: u64,

    /// Who may use which tenant: `header` trusts THANOS-TENANT / X-Scope-OrgID (else
    /// default-tenant), `token` checks bearer tokens against --auth.tokens-file, `none` puts
    /// everything in default-tenant.
    #[arg(
        long,
        env = "HYPNOS_AUTH",
        default_value = "header",
        value_parser = PossibleValuesParser::new(AuthMode::NAMES).try_map(|s| s.parse::<AuthMode>())
    )]
    pub(crate) auth: AuthMode,

    /// YAML mapping bearer tokens to the tenants they may write and read (with --auth=token);
    /// re-read when it changes.
    #[arg(long = "auth.tokens-file", env = "HYPNOS_AUTH_TOKENS_FILE")]
    pub(crate) auth_tokens_file: Option<PathBuf>,

    #[command(flatten)]
    pub(crate) limits: LimitsArgs,

    /// Queries without a `max_source_resolution` parameter read downsampled data where their
    /// step allows (`auto`) instead of raw data only.
    #[arg(
        long = "query.auto-downsampling",
        env = "HYPNOS_QUERY_AUTO_DOWNSAMPLING"
    )]
    pub(crate) query_auto_downsampling: bool,

    /// Serve the admin endpoints (`/api/v1/admin/*`) in `header` and `none` auth modes,
    /// where every caller is trusted; without it they answer 503 "admin APIs disabled". In
    /// `token` mode only admin tokens use them, with or without this flag.
    #[arg(long = "web.enable-admin-api", env = "HYPNOS_WEB_ENABLE_ADMIN_API")]
    pub(crate) enable_admin_api: bool,

    /// The most tenants one read may name (`X-Scope-OrgID: a|b|...`); more get 400.
    #[arg(long = "tenant-federation.max-tenants", env = "HYPNOS_TENANT_FEDERATION_MAX_TENANTS", default_value_t = hypnos_tenancy::DEFAULT_MAX_TENANTS, value_parser = parse_at_least_one)]
    pub(crate) max_tenants: usize,

    /// Longest a client may take to send a request's headers; the connection is closed
    /// after it (also the longest an idle keep-alive connection waits for its next request).
    #[arg(long = "http.header-read-timeout", env = "HYPNOS_HTTP_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_positive_duration)]
    pub(crate) http_header_read_timeout: Duration,

    /// Longest a client may take to send a request's body, counted from its headers; past
    /// it the request gets 408 and the connection is closed.
    #[arg(long = "http.body-read-timeout", env = "HYPNOS_HTTP_BODY_READ_TIMEOUT", default_value = "1m", value_parser = parse_positive_duration)]
    pub(crate) http_body_read_timeout: Duration,

    /// The most HTTP connections open at once (and, separately, gRPC connections); further
    /// connections wait to be accepted until one closes.
    #[arg(long = "http.max-connections", env = "HYPNOS_HTTP_MAX_CONNECTIONS", default_value_t = 1024, value_parser = parse_at_least_one)]
    pub(crate) http_max_connections: usize,

    /// Longest a response (HTTP or gRPC) may make no progress because the client does not
    /// read it; the connection is closed after it.
    #[arg(long = "http.write-timeout", env = "HYPNOS_HTTP_WRITE_TIMEOUT", default_value = "1m", value_parser = parse_positive_duration)]
    pub(crate) http_write_timeout: Duration,
}

/// Compaction settings shared by `hypnos compact` and `hypnos all`.
#[derive(Clone, Debug, Args)]
pub(crate) struct CompactFlags {
    /// Label telling HA replicas apart (repeatable): removed by compaction, and the replicas'
    /// series merged into one.
    #[arg(
        long = "dedup.replica-label",
        env = "HYPNOS_DEDUP_REPLICA_LABEL",
        value_delimiter = ','
    )]
    pub(crate) dedup_replica_labels: Vec<String>,

    /// How long raw blocks are kept after their last sample (0: forever).
    #[arg(long = "retention.resolution-raw", env = "HYPNOS_RETENTION_RESOLUTION_RAW", default_value = "0s", value_parser = parse_duration)]
    pub(crate) retention_raw: Duration,

    /// How long 5m-resolution blocks are kept (0: forever).
    #[arg(long = "retention.resolution-5m", env = "HYPNOS_RETENTION_RESOLUTION_5M", default_value = "0s", value_parser = parse_duration)]
    pub(crate) retention_5m: Duration,

    /// How long 1h-resolution blocks are kept (0: forever).
    #[arg(long = "retention.resolution-1h", env = "HYPNOS_RETENTION_RESOLUTION_1H", default_value = "0s", value_parser = parse_duration)]
    pub(crate) retention_1h: Duration,

    /// How long a replaced block stays after its deletion mark (readers may still use it).
    #[arg(long = "delete-delay", env = "HYPNOS_DELETE_DELAY", default_value = "48h", value_parser = parse_duration)]
    pub(crate) delete_delay: Duration,

    /// Do not downsample: without it, raw blocks spanning 40h or more get a 5m-resolution
    /// block and 5m blocks spanning 10 days or more a 1h block.
    #[arg(long = "downsampling.disable", env = "HYPNOS_DOWNSAMPLING_DISABLE")]
    pub(crate) downsampling_disable: bool,

    /// Advanced (tests): the shortest raw block that is downsampled to 5m.
    #[arg(long = "downsample.5m-min-span", env = "HYPNOS_DOWNSAMPLE_5M_MIN_SPAN", default_value = "40h", value_parser = parse_positive_duration, hide = true)]
    pub(crate) downsample_5m_min_span: Duration,

    /// Advanced (tests): the shortest 5m block that is downsampled to 1h.
    #[arg(long = "downsample.1h-min-span", env = "HYPNOS_DOWNSAMPLE_1H_MIN_SPAN", default_value = "10d", value_parser = parse_positive_duration, hide = true)]
    pub(crate) downsample_1h_min_span: Duration,
}

/// Where the data is (the data directory and the bucket) and the log filter: the flags
/// every component that touches data shares.
#[derive(Clone, Debug, Args)]
pub(crate) struct BucketArgs {
    /// Data directory: the write-ahead log of `hypnos all`, and the default file bucket
    /// (its `bucket` folder).
    #[arg(long, env = "HYPNOS_DATA_DIR", default_value = "./data")]
    pub(crate) data_dir: PathBuf,

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

    /// Log filter: a level (error, warn, info, debug, trace) or tracing directives such as
    /// `info,hypnos_ingest=debug`.
    #[arg(long, env = "HYPNOS_LOG_LEVEL", default_value = "info")]
    pub(crate) log_level: String,
}

/// `--limits-file`, shared by `hypnos all` and `hypnos compact`.
#[derive(Clone, Debug, Args)]
pub(crate) struct LimitsArgs {
    /// YAML of per-tenant limits (defaults and per-tenant overrides); re-read when it
    /// changes (the compactor: at every run, for the per-tenant retentions `retention_raw`,
    /// `retention_5m`, `retention_1h`). Without it nothing is limited.
    #[arg(long, env = "HYPNOS_LIMITS_FILE")]
    pub(crate) limits_file: Option<PathBuf>,
}

/// Flags of `hypnos compact`.
#[derive(Clone, Debug, Args)]
pub(crate) struct CompactArgs {
    #[command(flatten)]
    pub(crate) bucket: BucketArgs,

    #[command(flatten)]
    pub(crate) compact: CompactFlags,

    /// Keep running, compacting every --wait-interval, instead of running once.
    #[arg(long, env = "HYPNOS_COMPACT_WAIT")]
    pub(crate) wait: bool,

    /// Pause between runs with --wait.
    #[arg(long = "wait-interval", env = "HYPNOS_COMPACT_WAIT_INTERVAL", default_value = "5m", value_parser = parse_positive_duration)]
    pub(crate) wait_interval: Duration,

    #[command(flatten)]
    pub(crate) limits: LimitsArgs,
}

/// `hypnos tools ...`.
#[derive(Clone, Debug, Args)]
pub(crate) struct ToolsArgs {
    #[command(subcommand)]
    pub(crate) command: ToolsCommand,
}

#[derive(Clone, Debug, Subcommand)]
pub(crate) enum ToolsCommand {
    /// Blocks in the bucket.
    #[command(subcommand)]
    Bucket(BucketCommand),
}

#[derive(Clone, Debug, Subcommand)]
pub(crate) enum BucketCommand {
    /// One line per block: tenant, ULID, time range, resolution, level, series, samples,
    /// size, bytes per sample, deletion mark.
    Ls(BucketArgs),
    /// Every block's meta.json and files, with totals per tenant.
    Inspect(BucketArgs),
}

/// A count that is at least 1.
fn parse_at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// A humantime duration; `0s` allowed.
fn parse_duration(s: &str) -> Result<Duration, String> {
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 0s, 2h, 30d)"))
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
        assert_eq!(a.bucket.data_dir, PathBuf::from("./data"));
        assert_eq!(a.http_address.to_string(), "127.0.0.1:10902");
        assert_eq!(a.grpc_address.to_string(), "127.0.0.1:10901");
        assert_eq!(a.block_duration, Duration::from_secs(7200));
        assert_eq!(a.exemplars_max_per_tenant, 100_000);
        assert_eq!(a.sample_cache_bytes, 256 << 20);
        assert_eq!(a.max_request_bytes, 32 << 20);
        assert_eq!(a.bucket.log_level, "info");
        assert!(a.bucket.objstore_url.is_none() && a.bucket.objstore_config_file.is_none());
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
    fn compact_and_tools_flags() {
        let cli = Cli::try_parse_from([
            "hypnos",
            "compact",
            "--wait",
            "--dedup.replica-label",
            "replica",
            "--dedup.replica-label",
            "rule_replica",
            "--retention.resolution-raw",
            "30d",
            "--delete-delay",
            "0s",
        ])
        .unwrap();
        let Command::Compact(c) = cli.command else {
            panic!("not compact")
        };
        assert!(c.wait);
        assert_eq!(c.wait_interval, Duration::from_secs(300));
        assert_eq!(
            c.compact.dedup_replica_labels,
            vec!["replica", "rule_replica"]
        );
        assert_eq!(c.compact.retention_raw, Duration::from_secs(30 * 86400));
        assert_eq!(c.compact.retention_5m, Duration::ZERO);
        assert_eq!(c.compact.delete_delay, Duration::ZERO);
        assert!(!c.compact.downsampling_disable);
        assert_eq!(
            c.compact.downsample_5m_min_span,
            Duration::from_secs(40 * 3600)
        );
        assert_eq!(
            c.compact.downsample_1h_min_span,
            Duration::from_secs(240 * 3600)
        );
        assert!(c.limits.limits_file.is_none());
        let cli = Cli::try_parse_from([
            "hypnos",
            "compact",
            "--downsampling.disable",
            "--downsample.5m-min-span",
            "10s",
            "--downsample.1h-min-span",
            "1m",
            "--limits-file",
            "limits.yml",
        ])
        .unwrap();
        let Command::Compact(c) = cli.command else {
            panic!("not compact")
        };
        assert!(c.compact.downsampling_disable);
        assert_eq!(c.compact.downsample_5m_min_span, Duration::from_secs(10));
        assert_eq!(c.compact.downsample_1h_min_span, Duration::from_secs(60));
        assert_eq!(c.limits.limits_file, Some(PathBuf::from("limits.yml")));
        assert!(
            Cli::try_parse_from(["hypnos", "compact", "--downsample.5m-min-span", "0s"]).is_err()
        );
        let cli =
            Cli::try_parse_from(["hypnos", "tools", "bucket", "ls", "--data-dir", "x"]).unwrap();
        assert_eq!(cli.command.name(), "tools");
        let cli = Cli::try_parse_from(["hypnos", "all"]).unwrap();
        let Command::All(a) = cli.command else {
            panic!("not all")
        };
        assert_eq!(a.compact_interval, Duration::from_secs(300));
        assert_eq!(a.compact.delete_delay, Duration::from_secs(48 * 3600));
        let cli = Cli::try_parse_from(["hypnos", "all", "--downsampling.disable"]).unwrap();
        let Command::All(a) = cli.command else {
            panic!("not all")
        };
        assert!(a.compact.downsampling_disable);
    }

    #[test]
    fn unavailable_components_take_any_flags() {
        let cli = Cli::try_parse_from(["hypnos", "receive", "--whatever", "x"]).unwrap();
        assert_eq!(cli.command.name(), "receive");
    }
}
