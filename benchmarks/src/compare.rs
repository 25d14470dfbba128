//! `hypnos-bench compare`: the one entry point. Installs the peers when missing, starts each
//! system in turn with a fresh data directory, runs the same workloads against it, stops it,
//! and prints and writes one table.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::Value;

use crate::compaction::{CompactionResult, compaction};
use crate::encode::encode_windows;
use crate::r#gen::{Dataset, GenConfig};
use crate::report::{Figure, Row, machine, render_table, today};
use crate::systems::{Kind, Server, apt_install, which};
use crate::workloads::{
    QueryOutcome, SUITE, compare_answers, ingest, run_query, storage_hypnos, storage_prometheus,
    storage_victoria,
};

/// Parameters of `compare`.
#[derive(Args, Clone, Debug)]
pub struct CompareArgs {
    /// Seconds of data, one instance, Hypnos plus whichever peers are already installed (no
    /// install), the debug `hypnos` binary: finishes in well under a minute. For CI.
    #[arg(long)]
    pub smoke: bool,
    /// Series per tenant (rounded up to whole instances of 58 series).
    #[arg(long, default_value_t = 1000)]
    pub series: usize,
    /// Hours of data, ending a few minutes before now.
    #[arg(long, default_value_t = 24.0)]
    pub hours: f64,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Tenants (each with its own series); only tenant-0 is queried.
    #[arg(long, default_value_t = 1)]
    pub tenants: usize,
    /// Replace every instance this often (minutes); 0: no churn.
    #[arg(long, default_value_t = 0)]
    pub churn_minutes: u64,
    /// Concurrent remote-write senders.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Minutes of samples per series in one request; requests of a window are sent before
    /// the next window's.
    #[arg(long, default_value_t = 30)]
    pub window_minutes: u64,
    /// Series per remote-write request.
    #[arg(long, default_value_t = 16)]
    pub series_per_request: usize,
    /// Timed runs per query (after one warm-up run).
    #[arg(long, default_value_t = 5)]
    pub query_runs: usize,
    /// Runs of the ingest, storage and compaction workloads per system, each on a fresh
    /// data directory; the table shows medians (queries run in the last one).
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// The `hypnos` binary; default: `cargo build [--release] -p hypnos` output.
    #[arg(long, env = "HYPNOS_BIN")]
    pub hypnos_bin: Option<PathBuf>,
    /// Do not install missing peers with apt-get; they are then reported as missing.
    #[arg(long)]
    pub no_install: bool,
    /// Name of the results file: `<results-dir>/<date>-<name>.md`.
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long)]
    pub results_dir: Option<PathBuf>,
    /// Where data directories and logs go (default: a new directory under the temp dir;
    /// removed after the run unless --keep).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    #[arg(long)]
    pub keep: bool,
}

/// What one system produced, one entry per repetition for ingest and storage.
#[derive(Debug, Default)]
struct Measured {
    ingest: Vec<Result<crate::workloads::IngestResult, String>>,
    /// Peak RSS after ingest and storage, per repetition.
    peak_rss: Vec<u64>,
    /// Peak RSS at the end of the last repetition, after the queries too.
    peak_rss_queries: Option<u64>,
    storage: Vec<Result<crate::workloads::StorageResult, String>>,
    /// Per query of [`SUITE`]: (range, instant).
    queries: Vec<(QueryOutcome, QueryOutcome)>,
    /// Hypnos only, per repetition.
    compaction: Vec<Result<CompactionResult, String>>,
    version: String,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("benchmarks/ has a parent")
        .to_path_buf()
}

/// The `hypnos` binary: `--hypnos-bin`, else built with cargo (release, or debug in smoke
/// mode) into `$CARGO_TARGET_DIR` or `<workspace>/target`.
fn hypnos_binary(args: &CompareArgs) -> Result<PathBuf> {
    if let Some(b) = &args.hypnos_bin {
        if !b.is_file() {
            bail!("--hypnos-bin {} does not exist", b.display());
        }
        return Ok(b.clone());
    }
    let root = workspace_root();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let profile = if args.smoke { "debug" } else { "release" };
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(&root).args(["build", "-p", "hypnos"]);
    if !args.smoke {
        cmd.arg("--release");
    }
    eprintln!("building hypnos: {cmd:?}");
    let st = cmd.status().context("run cargo build")?;
    if !st.success() {
        bail!("cargo build -p hypnos failed: {st}");
    }
    let bin = target.join(profile).join("hypnos");
    if !bin.is_file() {
        bail!("{} not found after cargo build", bin.display());
    }
    Ok(bin)
}

/// A peer's binary, installing its package when allowed; `Err` is the reason it is missing.
fn peer_binary(args: &CompareArgs, bin: &str, package: &str) -> Result<PathBuf, String> {
    if let Some(p) = which(bin) {
        return Ok(p);
    }
    if args.smoke || args.no_install {
        return Err(format!("{bin} not installed: apt-get install {package}"));
    }
    apt_install(&[package]).map_err(|e| format!("{e:#}"))?;
    which(bin).ok_or_else(|| format!("{bin} not found after installing {package}"))
}

fn version_of(bin: &Path, arg: &str) -> String {
    Command::new(bin)
        .arg(arg)
        .output()
        .ok()
        .map(|o| {
            let mut s = String::from_utf8_lossy(&o.stdout).to_string();
            s.push_str(&String::from_utf8_lossy(&o.stderr));
            s.lines().next().unwrap_or_default().trim().to_string()
        })
        .unwrap_or_default()
}

/// The installed version of a Debian package, for binaries that do not say theirs.
fn debian_version(package: &str) -> String {
    Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", package])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| {
            format!(
                "Debian package {package} {}",
                String::from_utf8_lossy(&o.stdout)
            )
        })
        .unwrap_or_else(|| "unknown version".into())
}

/// Runs the comparison; returns the path of the results file.
pub fn run(args: &CompareArgs) -> Result<PathBuf> {
    let started = Instant::now();
    let mut args = args.clone();
    if args.smoke {
        args.series = args.series.min(58);
        args.hours = args.hours.min(0.25);
        args.query_runs = args.query_runs.min(2);
        args.window_minutes = args.window_minutes.min(5);
        args.repeat = 1;
    }
    let repeat = args.repeat.max(1);
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| if args.smoke { "smoke" } else { "compare" }.into());
    let results_dir = args
        .results_dir
        .clone()
        .unwrap_or_else(|| workspace_root().join("benchmarks").join("results"));
    let work = match &args.work_dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("hypnos-bench-{}", std::process::id())),
    };
    std::fs::create_dir_all(&work)?;

    let hypnos = hypnos_binary(&args)?;
    let prometheus = peer_binary(&args, "prometheus", "prometheus");
    let promtool = peer_binary(&args, "promtool", "prometheus");
    let victoria = peer_binary(&args, "victoria-metrics", "victoria-metrics");

    // The data: ends two minutes before now, on a whole minute.
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64;
    let end = now_ms / 60_000 * 60_000 - 120_000;
    let duration_ms = (args.hours * 3_600_000.0) as i64;
    let cfg = GenConfig {
        seed: args.seed,
        series: args.series,
        start_ms: end - duration_ms,
        duration_ms,
        tenants: args.tenants.max(1),
        churn_ms: (args.churn_minutes > 0).then(|| args.churn_minutes as i64 * 60_000),
        ..GenConfig::default()
    };
    let t0 = Instant::now();
    let ds = Dataset::generate(&cfg);
    let gen_time = t0.elapsed();
    let t0 = Instant::now();
    let windows = encode_windows(
        &ds,
        args.window_minutes.max(1) as i64 * 60_000,
        args.series_per_request.max(1),
    );
    let encode_time = t0.elapsed();
    let requests: usize = windows.iter().map(Vec::len).sum();
    let body_bytes: usize = windows.iter().flatten().map(|r| r.body.len()).sum();
    let samples = ds.samples();
    let tenant0_series = ds.series.iter().filter(|s| s.tenant == 0).count();
    eprintln!(
        "data: {} series, {samples} samples, {requests} requests ({body_bytes} bytes) \
         (generated in {gen_time:.1?}, encoded in {encode_time:.1?})",
        ds.series.len()
    );

    // The compaction workload needs a closed 8 h window to merge: short runs (smoke) get
    // 18 h of one instance for it.
    let short;
    let compaction_ds = if duration_ms < 16 * 3_600_000 {
        short = Dataset::generate(&GenConfig {
            series: 58,
            start_ms: end - 18 * 3_600_000,
            duration_ms: 18 * 3_600_000,
            tenants: 1,
            churn_ms: None,
            ..cfg.clone()
        });
        &short
    } else {
        &ds
    };

    let (lo, hi) = ds.time_range();
    let range_start = (lo + 59_999) / 60_000 * 60_000;
    let range_end = hi / 60_000 * 60_000;
    let secs = |ms: i64| format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000));
    let range_params = |q: &str| {
        vec![
            ("query", q.to_string()),
            ("start", secs(range_start)),
            ("end", secs(range_end)),
            ("step", "60".to_string()),
        ]
    };
    let instant_params = |q: &str| vec![("query", q.to_string()), ("time", secs(range_end))];

    let mut measured: Vec<Result<Measured, String>> = Vec::new();
    for kind in Kind::ALL {
        eprintln!("== {}", kind.name());
        let mut m = Measured::default();
        let mut missing = None;
        for rep in 0..repeat {
            let last = rep + 1 == repeat;
            let server = match kind {
                Kind::Hypnos => Server::start_hypnos(&hypnos, &work).map_err(|e| format!("{e:#}")),
                Kind::Prometheus => prometheus.clone().and_then(|b| {
                    Server::start_prometheus(&b, &work).map_err(|e| format!("{e:#}"))
                }),
                Kind::VictoriaMetrics => victoria
                    .clone()
                    .and_then(|b| Server::start_victoria(&b, &work).map_err(|e| format!("{e:#}"))),
            };
            let server = match server {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("   missing: {e}");
                    missing = Some(e);
                    break;
                }
            };
            if rep == 0 {
                m.version = match kind {
                    Kind::Hypnos => version_of(&hypnos, "--version"),
                    Kind::Prometheus => {
                        version_of(prometheus.as_ref().expect("started"), "--version")
                    }
                    Kind::VictoriaMetrics => {
                        let v = version_of(victoria.as_ref().expect("started"), "-version");
                        if v.is_empty() {
                            debian_version("victoria-metrics")
                        } else {
                            v
                        }
                    }
                };
            }
            let ing =
                ingest(&server, &windows, args.concurrency.max(1)).map_err(|e| format!("{e:#}"));
            if let Ok(r) = &ing {
                eprintln!(
                    "   run {}: ingest {:.0} samples/s, {} failed requests{}",
                    rep + 1,
                    r.samples_per_sec(),
                    r.failed_requests,
                    r.first_error
                        .as_ref()
                        .map(|e| format!(" (first: {e})"))
                        .unwrap_or_default()
                );
            }
            m.ingest.push(ing);
            // VictoriaMetrics buffers recent samples for a second or two before they are
            // searchable.
            if kind == Kind::VictoriaMetrics {
                let _ = reqwest::blocking::get(format!("{}/internal/force_flush", server.url));
            }
            let st = match kind {
                Kind::Hypnos => storage_hypnos(&server),
                Kind::VictoriaMetrics => storage_victoria(&server),
                Kind::Prometheus => match &promtool {
                    Ok(p) => storage_prometheus(p, &ds, &work),
                    Err(e) => Err(anyhow::anyhow!("{e}")),
                },
            }
            .map_err(|e| format!("{e:#}"));
            if let Ok(s) = &st {
                eprintln!("   run {}: storage {} bytes", rep + 1, s.bytes);
            }
            m.storage.push(st);
            if let Some(p) = server.peak_rss() {
                m.peak_rss.push(p);
            }
            if last {
                for q in SUITE {
                    let range = run_query(
                        &server,
                        "/api/v1/query_range",
                        &range_params(q.expr),
                        args.query_runs,
                    );
                    let instant = run_query(
                        &server,
                        "/api/v1/query",
                        &instant_params(q.expr),
                        args.query_runs,
                    );
                    m.queries.push((range, instant));
                }
                m.peak_rss_queries = server.peak_rss();
            }
            if let Err(e) = server.stop() {
                eprintln!("   stop: {e:#}");
            }
            if kind == Kind::Hypnos {
                let c = compaction(&hypnos, compaction_ds, &work).map_err(|e| format!("{e:#}"));
                match &c {
                    Ok(c) => eprintln!(
                        "   run {}: compaction merged {:.0} samples/s per core, downsampled {}",
                        rep + 1,
                        c.merge.samples_per_core_sec(),
                        match &c.downsample {
                            Ok(d) => format!("{:.0} samples/s per core", d.samples_per_core_sec()),
                            Err(e) => format!("failed: {e}"),
                        }
                    ),
                    Err(e) => eprintln!("   run {}: compaction failed: {e}", rep + 1),
                }
                m.compaction.push(c);
            }
        }
        match missing {
            Some(e) if m.ingest.is_empty() => measured.push(Err(e)),
            _ => measured.push(Ok(m)),
        }
    }

    let rows = build_rows(&measured, samples, tenant0_series, ds.series.len());
    let table = render_table(&rows);
    let checks = answer_checks(&measured);

    let mut md = String::new();
    let _ = writeln!(md, "# Benchmark `{name}`, {}\n", today());
    let _ = writeln!(
        md,
        "Command: `{}`\n",
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    let _ = writeln!(md, "Machine: {}\n", machine());
    let _ = writeln!(md, "Parameters: {args:?}\n");
    let _ = writeln!(
        md,
        "Data: {} series ({} of tenant-0), {samples} samples, {:.2} h at a 15 s interval \
         (±25 ms jitter), seed {}; {requests} remote-write requests of {} series each \
         ({body_bytes} bytes snappy), {} concurrent senders, windows of {} min. Ingest, \
         storage and compaction ran {repeat} times per system (medians shown).\n",
        ds.series.len(),
        tenant0_series,
        duration_ms as f64 / 3_600_000.0,
        args.seed,
        args.series_per_request,
        args.concurrency,
        args.window_minutes
    );
    let _ = writeln!(md, "Versions:");
    for (kind, m) in Kind::ALL.iter().zip(&measured) {
        let v = match m {
            Ok(m) => m.version.clone(),
            Err(e) => format!("missing ({e})"),
        };
        let _ = writeln!(md, "- {}: {v}", kind.name());
    }
    let _ = writeln!(md, "\n{table}");
    let _ = writeln!(md, "Answers compared with Prometheus (1e-9 relative):\n");
    for c in &checks {
        let _ = writeln!(md, "- {c}");
    }
    let _ = writeln!(md, "\nHow each figure was measured:\n");
    for line in method_notes(&measured) {
        let _ = writeln!(md, "- {line}");
    }
    let _ = writeln!(md, "\nTotal time: {:.0?}", started.elapsed());

    println!("{table}");
    for c in &checks {
        println!("{c}");
    }
    std::fs::create_dir_all(&results_dir)?;
    let file = results_dir.join(format!("{}-{name}.md", today()));
    std::fs::write(&file, md)?;
    println!("results written to {}", file.display());
    if !args.keep && args.work_dir.is_none() {
        let _ = std::fs::remove_dir_all(&work);
    }
    Ok(file)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The table rows from what each system measured.
fn build_rows(
    measured: &[Result<Measured, String>],
    samples: usize,
    tenant0_series: usize,
    all_series: usize,
) -> Vec<Row> {
    let per = |f: &dyn Fn(&Measured) -> Figure| -> [Figure; 3] {
        std::array::from_fn(|i| match &measured.get(i) {
            Some(Ok(m)) => f(m),
            Some(Err(e)) => Figure::missing(e.clone()),
            None => Figure::missing("not run"),
        })
    };
    // The median over repetitions of what `f` takes from each successful one; the first
    // error when none succeeded.
    fn median_of<T>(runs: &[Result<T, String>], f: &dyn Fn(&T) -> Option<f64>) -> Figure {
        let mut v: Vec<f64> = runs.iter().flatten().filter_map(f).collect();
        if v.is_empty() {
            return match runs.iter().find_map(|r| r.as_ref().err()) {
                Some(e) => Figure::missing(shorten(e, 80)),
                None => Figure::missing("not run"),
            };
        }
        Figure::Value(median(&mut v))
    }
    let ingest_fig = |m: &Measured, f: &dyn Fn(&crate::workloads::IngestResult) -> f64| {
        let runs: Vec<Result<&crate::workloads::IngestResult, String>> = m
            .ingest
            .iter()
            .map(|r| match r {
                Ok(r) if r.failed_requests > 0 && r.samples == 0 => Err(format!(
                    "every request failed: {}",
                    r.first_error.clone().unwrap_or_default()
                )),
                Ok(r) => Ok(r),
                Err(e) => Err(e.clone()),
            })
            .collect();
        median_of(&runs, &|r| Some(f(r)))
    };
    let rss = |v: &[u64], per: f64| {
        let runs: Vec<Result<u64, String>> = v.iter().map(|b| Ok(*b)).collect();
        if runs.is_empty() {
            return Figure::missing("no /proc/<pid>/status");
        }
        median_of(&runs, &|b| Some(*b as f64 / per))
    };
    let mut rows = vec![
        Row::new(
            "ingest: samples/s",
            per(&|m| ingest_fig(m, &|r| r.samples_per_sec())),
        ),
        Row::new(
            "ingest: request latency p50 (ms)",
            per(&|m| ingest_fig(m, &|r| ms(r.latency_quantile(0.5).unwrap_or_default()))),
        ),
        Row::new(
            "ingest: request latency p99 (ms)",
            per(&|m| ingest_fig(m, &|r| ms(r.latency_quantile(0.99).unwrap_or_default()))),
        ),
        Row::new(
            "ingest: failed requests",
            per(&|m| ingest_fig(m, &|r| r.failed_requests as f64)),
        ),
        Row::new(
            "peak RSS after ingest (MiB)",
            per(&|m| rss(&m.peak_rss, (1 << 20) as f64)),
        ),
        Row::new(
            "peak RSS per series (KiB)",
            per(&|m| rss(&m.peak_rss, 1024.0 * all_series.max(1) as f64)),
        ),
        Row::new(
            "peak RSS after queries (MiB)",
            per(&|m| match m.peak_rss_queries {
                Some(b) => Figure::Value(b as f64 / (1 << 20) as f64),
                None => Figure::missing("no /proc/<pid>/status"),
            }),
        ),
    ];
    let storage =
        |m: &Measured, f: &dyn Fn(u64) -> f64| median_of(&m.storage, &|s| Some(f(s.bytes)));
    rows.push(Row::new(
        "storage: on disk (MiB)",
        per(&|m| storage(m, &|b| b as f64 / (1 << 20) as f64)),
    ));
    rows.push(Row::new(
        "storage: bytes per sample",
        per(&|m| storage(m, &|b| b as f64 / samples.max(1) as f64)),
    ));
    for (i, q) in SUITE.iter().enumerate() {
        for (kind, pick) in [("range", 0usize), ("instant", 1)] {
            for (stat, p90) in [("median", false), ("p90", true)] {
                rows.push(Row::new(
                    format!("query {} {kind}: {stat} (ms)", q.name),
                    per(&|m| {
                        let o = m
                            .queries
                            .get(i)
                            .map(|p| if pick == 0 { &p.0 } else { &p.1 });
                        match o {
                            Some(QueryOutcome::Ok { median, p90: p, .. }) => {
                                Figure::Value(ms(if p90 { *p } else { *median }))
                            }
                            Some(QueryOutcome::Failed(e)) => Figure::missing(shorten(e, 60)),
                            None => Figure::missing("not run"),
                        }
                    }),
                ));
            }
        }
    }
    let peers = |what: &str| {
        let why = format!("not comparable: {what}");
        [Figure::missing(why.clone()), Figure::missing(why)]
    };
    let compaction_row = |name: &str, f: &dyn Fn(&CompactionResult) -> Option<f64>| {
        let hypnos = match measured.first() {
            Some(Ok(m)) => median_of(&m.compaction, f),
            Some(Err(e)) => Figure::missing(e.clone()),
            None => Figure::missing("not run"),
        };
        let [p, v] = peers("their compaction runs inside the server, unmeasured");
        Row::new(name, [hypnos, p, v])
    };
    rows.push(compaction_row(
        "compaction merge: samples/s per core",
        &|c| Some(c.merge.samples_per_core_sec()),
    ));
    rows.push(compaction_row("compaction merge: wall time (s)", &|c| {
        Some(c.merge.wall.as_secs_f64())
    }));
    rows.push(compaction_row("compaction merge: peak RSS (MiB)", &|c| {
        c.merge.peak_rss.map(|b| b as f64 / (1 << 20) as f64)
    }));
    rows.push(compaction_row(
        "compaction downsample: samples/s per core",
        &|c| c.downsample.as_ref().ok().map(|d| d.samples_per_core_sec()),
    ));
    rows.push(compaction_row(
        "compaction downsample: peak RSS (MiB)",
        &|c| {
            c.downsample
                .as_ref()
                .ok()
                .and_then(|d| d.peak_rss)
                .map(|b| b as f64 / (1 << 20) as f64)
        },
    ));
    let _ = tenant0_series;
    rows
}

/// The median of `v` (the mean of the two middle values for an even count).
fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn shorten(e: &str, max: usize) -> String {
    let one_line = e
        .replace("unsupported PromQL construct: ", "unsupported: ")
        .replace('\n', " ")
        .replace('|', "/");
    if one_line.chars().count() > max {
        format!("{}…", one_line.chars().take(max).collect::<String>())
    } else {
        one_line
    }
}

/// One line per query and kind: Hypnos' answer against Prometheus'.
fn answer_checks(measured: &[Result<Measured, String>]) -> Vec<String> {
    let (Some(Ok(h)), Some(p)) = (measured.first(), measured.get(1)) else {
        return vec!["missing (Hypnos did not run)".into()];
    };
    let p = match p {
        Ok(p) => p,
        Err(e) => return vec![format!("missing (no Prometheus: {e})")],
    };
    let mut out = Vec::new();
    for (i, q) in SUITE.iter().enumerate() {
        for (kind, pick) in [("range", 0usize), ("instant", 1)] {
            let get = |m: &Measured| -> Option<Value> {
                match m
                    .queries
                    .get(i)
                    .map(|x| if pick == 0 { &x.0 } else { &x.1 })
                {
                    Some(QueryOutcome::Ok { result, .. }) => Some(result.clone()),
                    _ => None,
                }
            };
            let verdict = match (get(h), get(p)) {
                (None, _) => "missing (Hypnos has no answer)".to_string(),
                (_, None) => "missing (Prometheus has no answer)".to_string(),
                (Some(a), Some(b)) => match compare_answers(&a, &b, 1e-9) {
                    Ok(()) => "equal".to_string(),
                    Err(e) => format!("DIFFERENT: {}", shorten(&e, 300)),
                },
            };
            out.push(format!("{} {kind} (`{}`): {verdict}", q.name, q.expr));
        }
    }
    out
}

fn method_notes(measured: &[Result<Measured, String>]) -> Vec<String> {
    let mut v = vec![
        "ingest: remote write 1.0 (snappy protobuf, bodies encoded before the clock starts), \
         all requests of one time window (per series, consecutive samples) before the next \
         window, so every series arrives in time order; samples/s = accepted samples / wall \
         time from the first request to the last answer"
            .to_string(),
        "peak RSS: VmHWM of the server process after ingest and the storage step (median over \
         the runs), and again at the end of the last run, after the queries; per series = peak \
         RSS after ingest / every series written (all samples of the run are in memory for \
         Hypnos until the flush)"
            .to_string(),
        "compaction (Hypnos only): the same data written as 2h raw blocks into a local bucket, \
         then `hypnos compact --downsampling.disable` (merge in levels), then `hypnos compact` \
         with the downsampling span thresholds lowered to 1ms so that the merged blocks get 5m \
         and 1h blocks; samples/s per core = samples read (all raw samples, for both phases) / \
         CPU seconds of the process (user + system from /proc/<pid>/stat, sampled every 10 ms); \
         peak RSS is its VmHWM"
            .to_string(),
        "storage: bytes per sample = on-disk bytes (apparent file sizes, everything under the \
         directory) / samples generated"
            .to_string(),
        "query: one warm-up run (its answer is the one compared), then the timed runs; \
         range queries over the whole data with step 60 s, instant queries at its end; \
         VictoriaMetrics runs with -search.disableCache"
            .to_string(),
    ];
    for (kind, m) in Kind::ALL.iter().zip(measured) {
        if let Some(Ok(s)) = m.as_ref().ok().and_then(|m| m.storage.first()) {
            v.push(format!("storage of {}: {}", kind.name(), s.method));
        }
    }
    v
}
