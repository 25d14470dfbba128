//! Prometheus' own PromQL conformance scripts, run as data through the production path:
//! samples enter through the ingest head (then, in a second pass, through flushed Parquet
//! blocks), queries go through the planner, DataFusion and the engine.
//!
//! - `PROMQLTEST_DIR`: the directory of `.test` files (default `../shared/promqltest/testdata`
//!   beside the checkout); the project's own cases in `tests/promqltest/cases` always run.
//! - `PROMQLTEST_VERBOSE=1`: print every failing eval with query, expected and actual result.
//! - `PROMQLTEST_WRITE_BASELINE=1`: raise `tests/promqltest/baseline.txt` to the current counts
//!   (a count is never lowered).
//!
//! Native histograms (`{{...}}` in loads and expected results) are loaded through remote
//! write like floats; `load_with_nhcb` also loads the classic histograms as native histograms
//! with custom buckets. Result histograms are compared as upstream compares them.
//!
//! Annotations (warnings and infos) are checked as upstream's framework checks them, on the
//! query itself (not on the range-mode repetition of an instant eval). Where a load could not
//! store all of its samples (e.g. start timestamps, or a write the store refused), the
//! annotations those samples would cause cannot appear; such evals are counted apart and
//! listed with `PROMQLTEST_VERBOSE=1`.
//!
//! A panic in a load or an eval fails that load or eval (with the panic's message), not the
//! run. The run fails when a file passes fewer evals than its baseline, when a file of the
//! baseline did not run, and under `CI=true` when the upstream suite is missing. An
//! `expect fail` without a message passes only on an error PromQL itself raises (bad data or
//! an evaluation error), never on "unsupported" or an internal failure.

#[path = "promqltest/histogram.rs"]
mod histogram;
#[path = "promqltest/nhcb.rs"]
mod nhcb;
#[path = "promqltest/panics.rs"]
mod panics;
#[path = "promqltest/script.rs"]
mod script;
#[path = "promqltest/series.rs"]
mod series;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hypnos_engine::{BlockCatalog, MergedSource, QueryEngine, QueryOptions};
use hypnos_ingest::{IngestConfig, Ingester};
use hypnos_planner::{AnnotatedResult, InstantSample, QueryAnnotations, QueryError, QueryResult};
use hypnos_schemas::histogram::{FloatHistogram, Span};
use hypnos_schemas::remote::{Label, Sample, TimeSeries, WriteRequest};
use hypnos_schemas::tenant::TENANT_LABEL;
use hypnos_schemas::{BlockSink, Labels, SeriesSource, ServiceError, TenantId};
use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use script::{AnnotationExpect, Command, Eval, Expect, FailMsg, SeriesDesc, Timing};
use series::{HistogramValue, Value};

/// A fresh store: ingester, block catalog and query engine over a temporary directory.
struct Env {
    _dir: tempfile::TempDir,
    ingester: Arc<Ingester>,
    engine: QueryEngine,
    tenant: TenantId,
}

impl Env {
    async fn new() -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("bucket")).expect("bucket dir");
        let store: Arc<dyn ObjectStore> =
            Arc::new(LocalFileSystem::new_with_prefix(dir.path().join("bucket")).expect("store"));
        let catalog = Arc::new(BlockCatalog::new(Arc::clone(&store)));
        let cfg = IngestConfig {
            data_dir: dir.path().to_path_buf(),
            block_duration: std::time::Duration::from_secs(365 * 86400),
            max_decompressed_bytes: 1 << 30,
        };
        let ingester = Ingester::open(
            cfg,
            store,
            Arc::clone(&catalog) as Arc<dyn BlockSink>,
            &prometheus::Registry::new(),
        )
        .await
        .expect("ingester");
        let merged = MergedSource::new(vec![
            Arc::clone(&ingester) as Arc<dyn SeriesSource>,
            catalog as Arc<dyn SeriesSource>,
        ]);
        Env {
            _dir: dir,
            ingester,
            engine: QueryEngine::new(Arc::new(merged)),
            tenant: TenantId::new("promqltest").expect("tenant"),
        }
    }

    /// Loads one `load` block: per series one remote-write request with its floats and
    /// histograms (points `interval` apart from 0); with `nhcb`, then the native histograms
    /// with custom buckets built from its classic histograms.
    async fn load(
        &self,
        interval: i64,
        series: &[SeriesDesc],
        nhcb: bool,
        flush: bool,
    ) -> Result<(), String> {
        // A series defined twice in one load block keeps its last definition, as upstream's
        // loader (which keys the definitions by label set) does.
        let last = |i: usize, s: &SeriesDesc| !series[i + 1..].iter().any(|o| o.labels == s.labels);
        let defs: Vec<&SeriesDesc> = series
            .iter()
            .enumerate()
            .filter(|(i, s)| last(*i, s))
            .map(|(_, s)| s)
            .collect();
        let mut requests = Vec::new();
        for s in &defs {
            let mut samples = Vec::new();
            let mut histograms = Vec::new();
            for (i, p) in s.points.iter().enumerate() {
                let timestamp = i as i64 * interval;
                match p {
                    None => {}
                    Some(Value::Float(value)) => samples.push(Sample {
                        value: *value,
                        timestamp,
                    }),
                    Some(Value::Histogram(h)) => histograms.push(h.h.to_remote(timestamp)),
                }
            }
            requests.push((s.labels.clone(), samples, histograms));
        }
        // Every series is written even when one is refused (or its NHCB conversion failed);
        // the first refusal is reported.
        let mut refused = None;
        if nhcb {
            match nhcb::custom_bucket_series(&defs, interval) {
                Ok(converted) => {
                    for (labels, points) in converted {
                        let histograms = points.iter().map(|(t, h)| h.to_remote(*t)).collect();
                        requests.push((labels, Vec::new(), histograms));
                    }
                }
                Err(e) => refused = Some(format!("load_with_nhcb: {e}")),
            }
        }
        for (labels, samples, histograms) in requests {
            let req = WriteRequest {
                timeseries: vec![TimeSeries {
                    labels: labels
                        .iter()
                        .map(|l| Label {
                            name: l.name.clone(),
                            value: l.value.clone(),
                        })
                        .collect(),
                    samples,
                    histograms,
                    ..Default::default()
                }],
                metadata: vec![],
            };
            if let Err(e) = self.ingester.write(&self.tenant, req).await {
                refused.get_or_insert(format!("load {labels}: {e}"));
            }
        }
        if let Some(e) = refused {
            return Err(e);
        }
        if flush {
            self.ingester
                .flush()
                .await
                .map_err(|e| format!("flush: {e}"))?;
        }
        Ok(())
    }
}

fn strip_tenant(l: &Labels) -> Labels {
    let mut l = l.clone();
    l.set(TENANT_LABEL, "");
    l
}

/// Prometheus' test comparison: relative epsilon 1e-6, NaN equals NaN.
fn almost_equal(a: f64, b: f64) -> bool {
    const EPS: f64 = 1e-6;
    const MIN_NORMAL: f64 = f64::MIN_POSITIVE;
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < MIN_NORMAL {
        return diff < EPS * MIN_NORMAL;
    }
    diff / abs_sum.min(f64::MAX) < EPS
}

/// Normalised result: series with their points (floats or histograms) by time.
type Got = Vec<(Labels, Vec<(i64, Value)>)>;

/// A value as the test notation writes it.
fn fmt_value(v: &Value) -> String {
    match v {
        Value::Float(f) => histogram::go_float(*f),
        Value::Histogram(h) => histogram::test_expression(&h.h),
    }
}

fn describe(got: &Got) -> String {
    got.iter()
        .map(|(l, p)| {
            let points: Vec<String> = p
                .iter()
                .map(|(t, v)| format!("{} @{t}", fmt_value(v)))
                .collect();
            format!("{l} [{}]", points.join(", "))
        })
        .collect::<Vec<_>>()
        .join("\n      ")
}

/// Whether a result value is the expected one: floats within the tolerance, histograms as
/// [`histogram::matches`]; a float never matches a histogram. `Err` when comparing panicked.
fn value_matches(want: &Value, got: &Value) -> Result<bool, String> {
    match (want, got) {
        (Value::Float(w), Value::Float(g)) => Ok(almost_equal(*w, *g)),
        (Value::Histogram(w), Value::Histogram(g)) => histogram::matches(w, &g.h),
        _ => Ok(false),
    }
}

/// Compares series point by point; `want` and `got` in the same order.
fn same_points(
    want: &[(Labels, Vec<(i64, Value)>)],
    got: &[(Labels, Vec<(i64, Value)>)],
    compare_times: bool,
) -> Result<bool, String> {
    if want.len() != got.len() {
        return Ok(false);
    }
    for ((wl, wp), (gl, gp)) in want.iter().zip(got) {
        if wl != gl || wp.len() != gp.len() {
            return Ok(false);
        }
        for ((wt, wv), (gt, gv)) in wp.iter().zip(gp) {
            if (compare_times && wt != gt) || !value_matches(wv, gv)? {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// The most points any expected series has.
fn expected_len(expected: &[SeriesDesc]) -> usize {
    expected.iter().map(|s| s.points.len()).max().unwrap_or(0)
}

/// The expected series with their points on `grid` (missing points left out).
fn expected_on_grid(expected: &[SeriesDesc], grid: &[i64]) -> Got {
    expected
        .iter()
        .map(|s| {
            let pts = s
                .points
                .iter()
                .zip(grid)
                .filter_map(|(p, t)| p.clone().map(|v| (*t, v)))
                .collect();
            (s.labels.clone(), pts)
        })
        .collect()
}

fn compare_series(
    ev: &Eval,
    expected: &[SeriesDesc],
    got: &Got,
    grid: &[i64],
    ordered: bool,
) -> Result<(), String> {
    let mut want = expected_on_grid(expected, grid);
    want.retain(|(_, p)| !p.is_empty());
    let mut got = got.clone();
    got.retain(|(_, p)| !p.is_empty());
    if !ordered {
        want.sort_by(|a, b| a.0.cmp(&b.0));
        got.sort_by(|a, b| a.0.cmp(&b.0));
    }
    let mismatch = |why: &str| {
        format!(
            "line {}: {}\n    expected:\n      {}\n    got:\n      {}{why}",
            ev.line,
            ev.query,
            describe(&want),
            describe(&got)
        )
    };
    match same_points(&want, &got, true) {
        Ok(true) => Ok(()),
        Ok(false) => Err(mismatch("")),
        Err(e) => Err(mismatch(&format!("\n    comparing: {e}"))),
    }
}

/// A query result for a failure message, histograms in the test notation.
fn fmt_result(r: &QueryResult) -> String {
    match r {
        QueryResult::String { v, .. } => format!("string {v:?}"),
        QueryResult::Scalar { v, .. } => format!("scalar {}", histogram::go_float(*v)),
        QueryResult::Vector(_) | QueryResult::Matrix(_) => {
            let kind = if matches!(r, QueryResult::Vector(_)) {
                "vector"
            } else {
                "matrix"
            };
            match normalise(r.clone()) {
                Ok(got) => format!("{kind}:\n      {}", describe(&got)),
                Err(e) => e,
            }
        }
    }
}

fn normalise(r: QueryResult) -> Result<Got, String> {
    let hist = |h| Value::Histogram(Box::new(HistogramValue { h, hint_set: false }));
    Ok(match r {
        QueryResult::Vector(v) => v
            .into_iter()
            .map(|s| {
                let v = match s.h {
                    Some(h) => hist(h),
                    None => Value::Float(s.v),
                };
                (strip_tenant(&s.labels), vec![(s.t, v)])
            })
            .collect(),
        QueryResult::Matrix(m) => m
            .into_iter()
            .map(|s| {
                let mut points: Vec<(i64, Value)> = s
                    .points
                    .into_iter()
                    .map(|(t, v)| (t, Value::Float(v)))
                    .chain(s.histograms.into_iter().map(|(t, h)| (t, hist(h))))
                    .collect();
                points.sort_by_key(|p| p.0);
                (strip_tenant(&s.labels), points)
            })
            .collect(),
        QueryResult::Scalar { t, v } => vec![(Labels::default(), vec![(t, Value::Float(v))])],
        QueryResult::String { v, .. } => return Err(format!("string result {v:?}")),
    })
}

/// Runs one eval. `data_missing`: an earlier load of this script section could not store
/// everything (start timestamps, or a write the store refused); see [`check_annotations`].
/// `Ok(true)` when it passed but some expected annotations could not be checked for that.
async fn run_eval(env: &Env, ev: &Eval, data_missing: bool) -> Result<bool, String> {
    if let Some(why) = &ev.unreadable {
        return Err(format!(
            "line {}: {}\n    expected result not readable: {why}",
            ev.line, ev.query
        ));
    }
    let opts = QueryOptions::default();
    let (result, grid): (Result<AnnotatedResult, QueryError>, Vec<i64>) = match ev.timing {
        Timing::Instant(t) => (
            env.engine
                .instant_query_annotated(&env.tenant, &ev.query, t, &opts)
                .await,
            vec![t],
        ),
        Timing::Range { start, end, step } => (
            env.engine
                .range_query_annotated(&env.tenant, &ev.query, start, end, step, &opts)
                .await,
            (0..)
                .map(|i| start + i * step)
                .take_while(|t| *t <= end)
                .collect(),
        ),
    };
    if ev.fail {
        return match result {
            Err(e) => {
                let text = e.to_string();
                // Without a message, upstream expects the error PromQL itself raises: one
                // that says "not supported here" or "internal failure" is not that error.
                if ev.fail_msg.is_none() && !is_promql_error(&e) {
                    return Err(format!(
                        "line {}: {}\n    expected a PromQL error, got {} error {text:?}",
                        ev.line,
                        ev.query,
                        e.error_code().prometheus_error_type()
                    ));
                }
                let matches = match &ev.fail_msg {
                    None => true,
                    Some(FailMsg::Exact(m)) => text == *m,
                    Some(FailMsg::Regex(r)) => {
                        regex::Regex::new(r).is_ok_and(|re| re.is_match(&text))
                    }
                };
                if matches {
                    Ok(false)
                } else {
                    Err(format!(
                        "line {}: {}\n    expected error {:?}, got {text:?}",
                        ev.line, ev.query, ev.fail_msg
                    ))
                }
            }
            Ok(r) => Err(format!(
                "line {}: {}\n    expected an error, got {}",
                ev.line,
                ev.query,
                fmt_result(&r.result)
            )),
        };
    }
    let result = result.map_err(|e| format!("line {}: {}\n    error: {e}", ev.line, ev.query))?;
    // As upstream: the annotations of the query itself (not of the range-mode check below)
    // are checked before its value.
    let unchecked = check_annotations(&ev.annotations, &result.annotations, data_missing)
        .map_err(|e| format!("line {}: {}\n    {e}", ev.line, ev.query))?;
    run_eval_value(env, ev, result.result, grid, &opts)
        .await
        .map(|()| unchecked)
}

/// The value half of [`run_eval`]: the result, then the range-mode check of an instant eval.
async fn run_eval_value(
    env: &Env,
    ev: &Eval,
    result: QueryResult,
    grid: Vec<i64>,
    opts: &QueryOptions,
) -> Result<(), String> {
    match (&ev.expect, &result) {
        (Expect::String(s), QueryResult::String { v, .. }) if s == v => return Ok(()),
        (Expect::String(s), _) => {
            return Err(format!(
                "line {}: {}\n    expected string {s:?}, got {}",
                ev.line,
                ev.query,
                fmt_result(&result)
            ));
        }
        (Expect::Scalar(want), QueryResult::Scalar { v, .. }) => {
            return if almost_equal(*want, *v) {
                Ok(())
            } else {
                Err(format!(
                    "line {}: {}\n    expected scalar {want}, got {v}",
                    ev.line, ev.query
                ))
            };
        }
        (Expect::Scalar(want), _) => {
            return Err(format!(
                "line {}: {}\n    expected scalar {want}, got {}",
                ev.line,
                ev.query,
                fmt_result(&result)
            ));
        }
        _ => {}
    }
    let Expect::Series(expected) = &ev.expect else {
        unreachable!("handled above")
    };
    let is_matrix_instant = matches!(
        (&ev.timing, &result),
        (Timing::Instant(_), QueryResult::Matrix(_))
    );
    let got = normalise(result)?;
    if let Some((start, end, step)) = ev.range_vector {
        // `expect range vector`: the expected points are at these times (and, as upstream,
        // the range-mode repetition does not apply).
        let grid: Vec<i64> = (0..)
            .map(|i| start + i * step.max(1))
            .take_while(|t| *t <= end)
            .collect();
        return compare_series(ev, expected, &got, &grid, false);
    }
    if is_matrix_instant {
        // A range selector evaluated instantly without its times given: the expected points
        // are the raw values in order.
        let mut want = expected_on_grid(expected, &vec![0; expected_len(expected)]);
        let mut got = got;
        want.sort_by(|x, y| x.0.cmp(&y.0));
        got.sort_by(|x, y| x.0.cmp(&y.0));
        let mismatch = |why: String| {
            format!(
                "line {}: {}\n    expected:\n      {}\n    got:\n      {}{why}",
                ev.line,
                ev.query,
                describe(&want),
                describe(&got)
            )
        };
        return match same_points(&want, &got, false) {
            Ok(true) => Ok(()),
            Ok(false) => Err(mismatch(String::new())),
            Err(e) => Err(mismatch(format!("\n    comparing: {e}"))),
        };
    }
    compare_series(ev, expected, &got, &grid, ev.ordered)?;
    // Upstream also runs an instant eval as a range query around the same time and reads the
    // middle step: the answer must not depend on the step.
    if let Timing::Instant(t) = ev.timing
        && !uses_query_parameters(&ev.query)
    {
        let r = env
            .engine
            .range_query(&env.tenant, &ev.query, t - 60_000, t + 60_000, 60_000, opts)
            .await
            .map_err(|e| {
                format!(
                    "line {}: {} (as a range query)\n    error: {e}",
                    ev.line, ev.query
                )
            })?;
        let middle: Got = normalise(r)?
            .into_iter()
            .filter_map(|(l, p)| p.into_iter().find(|x| x.0 == t).map(|x| (l, vec![x])))
            .collect();
        compare_series(ev, expected, &middle, &grid, false)
            .map_err(|e| format!("{e}\n    (in range mode)"))?;
    }
    Ok(())
}

/// Checks a query's annotations against an eval's expectations exactly as upstream's
/// `checkAnnotations`: `eval_warn`/`eval_info` want at least one; `expect warn`/`expect info`
/// lines want at least one, every line matched by some annotation and every annotation of
/// that kind matched by some line; `expect no_warn`/`no_info` want none. Annotations an
/// eval says nothing about are allowed.
///
/// With `data_missing` (an earlier load of the section could not store all its samples, e.g.
/// start timestamps), the annotations that data would have caused cannot appear: expected
/// ones that are missing are then not counted against the eval (returns `Ok(true)`), while
/// unexpected annotations and `no_warn`/`no_info` are still checked.
fn check_annotations(
    want: &AnnotationExpect,
    got: &QueryAnnotations,
    data_missing: bool,
) -> Result<bool, String> {
    let mut unchecked = false;
    let mut missing = |what: String| {
        if data_missing {
            unchecked = true;
            Ok(())
        } else {
            Err(what)
        }
    };
    if want.some_warning && got.warnings.is_empty() {
        missing("expected warnings but got none".into())?;
    }
    if want.some_info && got.infos.is_empty() {
        missing("expected info annotations but got none".into())?;
    }
    let all = || format!("{:?}", [&got.warnings[..], &got.infos[..]].concat());
    for (kind, expected, actual) in [
        ("warn", &want.warnings, &got.warnings),
        ("info", &want.infos, &got.infos),
    ] {
        if expected.is_empty() {
            continue;
        }
        if actual.is_empty() {
            missing(format!("expected {kind} annotations but none were found"))?;
            continue;
        }
        if let Some(e) = expected
            .iter()
            .find(|e| !actual.iter().any(|a| e.matches(a)))
        {
            missing(format!(
                "expected {kind} annotation matching {e} but no matching annotation was found, found: {}",
                all()
            ))?;
        }
        if let Some(a) = actual
            .iter()
            .find(|a| !expected.iter().any(|e| e.matches(a)))
        {
            return Err(format!("unexpected {kind} annotation {a:?}"));
        }
    }
    if want.no_warnings && !got.warnings.is_empty() {
        return Err(format!("unexpected warning annotations: {}", all()));
    }
    if want.no_infos && !got.infos.is_empty() {
        return Err(format!("unexpected info annotations: {}", all()));
    }
    Ok(unchecked)
}

/// Whether a query calls `step()`, `range()`, `start()` or `end()` (not the `@` modifiers of
/// the same names): their value is the query's own step and range, so an instant query and
/// the range query around it answer differently by design and the range-mode check is left
/// out for them.
fn uses_query_parameters(query: &str) -> bool {
    let bytes = query.as_bytes();
    ["step(", "range(", "start(", "end("].iter().any(|f| {
        query.match_indices(f).any(|(i, _)| {
            let before = &bytes[..i];
            let glued = before
                .last()
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_');
            let at = before
                .iter()
                .rev()
                .find(|c| !c.is_ascii_whitespace())
                .is_some_and(|c| *c == b'@');
            !glued && !at
        })
    })
}

/// Runs a script in one mode; returns each eval's line and outcome.
async fn run_script(cmds: &[Command], flush: bool) -> Vec<(usize, Result<bool, String>)> {
    let mut env = Env::new().await;
    let mut load_error: Option<String> = None;
    let mut out = Vec::new();
    for c in cmds {
        match c {
            Command::Clear => {
                env = Env::new().await;
                load_error = None;
            }
            Command::Load {
                interval,
                series,
                nhcb,
                line,
                error,
            } => {
                if let Some(e) = error {
                    load_error = Some(format!("load at line {line}: {e}"));
                }
                let loaded = panics::catch_async(env.load(*interval, series, *nhcb, flush))
                    .await
                    .and_then(|r| r);
                if let Err(e) = loaded {
                    load_error = Some(format!("load at line {line}: {e}"));
                }
            }
            Command::Eval(ev) => {
                let r = panics::catch_async(run_eval(&env, ev, load_error.is_some()))
                    .await
                    .unwrap_or_else(|p| Err(format!("line {}: {}\n    {p}", ev.line, ev.query)));
                let r = match r {
                    Err(e) => Err(match &load_error {
                        Some(le) => format!("{e}\n    (after a failed {le})"),
                        None => e,
                    }),
                    ok => ok,
                };
                out.push((ev.line, r));
            }
        }
    }
    out
}

struct FileOutcome {
    passed: usize,
    failures: Vec<String>,
    /// Passing evals whose expected annotations could not all be checked because their
    /// data could not be loaded (see `check_annotations`).
    unchecked_annotations: Vec<usize>,
}

async fn run_file(path: &Path) -> FileOutcome {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let cmds = match script::parse(&text) {
        Ok(c) => c,
        Err(e) => {
            return FileOutcome {
                passed: 0,
                failures: vec![format!("script does not parse: {e}")],
                unchecked_annotations: Vec::new(),
            };
        }
    };
    let heads = run_script(&cmds, false).await;
    let blocks = run_script(&cmds, true).await;
    let mut passed = 0;
    let mut failures = Vec::new();
    let mut unchecked_annotations = Vec::new();
    for ((line, h), (_, b)) in heads.into_iter().zip(blocks) {
        match (h, b) {
            (Ok(u), Ok(v)) => {
                passed += 1;
                if u || v {
                    unchecked_annotations.push(line);
                }
            }
            (Err(e), _) => failures.push(e),
            (Ok(_), Err(e)) => failures.push(format!("{e}\n    (from Parquet blocks only)")),
        }
    }
    FileOutcome {
        passed,
        failures,
        unchecked_annotations,
    }
}

/// An error PromQL itself raises (a parse error, a bad parameter, an evaluation error, a
/// limit), as opposed to Hypnos not supporting the construct or failing internally.
fn is_promql_error(e: &QueryError) -> bool {
    matches!(e, QueryError::BadData(_) | QueryError::Execution(_))
}

fn read_baseline(path: &Path) -> BTreeMap<String, usize> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let (f, n) = l.split_once(char::is_whitespace)?;
            Some((f.to_string(), n.trim().parse().ok()?))
        })
        .collect()
}

fn test_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "test"));
    files.sort();
    files
}

/// The result comparison on made-up answers: a float never stands for a histogram,
/// histograms compare after compaction, and failure output writes them in the test notation.
fn check_comparison_rules() {
    let text =
        "load 1m\n  x 1\n\neval instant at 0 x\n  x {{count:2 sum:3 buckets:[0 2] offset:1}}\n";
    let Some(Command::Eval(ev)) = script::parse(text).expect("script parses").pop() else {
        unreachable!("the last command is the eval")
    };
    let Expect::Series(expected) = &ev.expect else {
        panic!("a series expectation: {:?}", ev.expect)
    };
    let labels = expected[0].labels.clone();
    let hist = |buckets: Vec<f64>, offset: i32| FloatHistogram {
        count: 2.0,
        sum: 3.0,
        positive_spans: vec![Span {
            offset,
            length: buckets.len() as u32,
        }],
        positive_buckets: buckets,
        ..FloatHistogram::default()
    };
    let got = |v: Value| vec![(labels.clone(), vec![(0, v)])];
    let as_value =
        |h: FloatHistogram| Value::Histogram(Box::new(HistogramValue { h, hint_set: false }));
    let check = |v: Value| compare_series(&ev, expected, &got(v), &[0], false);
    assert!(check(Value::Float(2.0)).is_err());
    let r = check(as_value(hist(vec![2.0], 2)));
    assert!(r.is_ok(), "{r:?}");
    let r = check(as_value(hist(vec![0.0, 0.0, 2.0, 0.0], 0)));
    assert!(r.is_ok(), "{r:?}");
    assert!(check(as_value(hist(vec![2.0], 1))).is_err());
    let e = check(as_value(hist(vec![2.5], 2))).unwrap_err();
    assert!(
        e.contains("{{count:2 sum:3 offset:2 buckets:[2]}}")
            && e.contains("{{count:2 sum:3 offset:2 buckets:[2.5]}}"),
        "{e}"
    );
    // Float expectations do not take histograms either.
    let text = "load 1m\n  x 1\n\neval instant at 0 x\n  x 0\n";
    let Some(Command::Eval(ev)) = script::parse(text).expect("script parses").pop() else {
        unreachable!("the last command is the eval")
    };
    let Expect::Series(expected) = &ev.expect else {
        panic!("a series expectation: {:?}", ev.expect)
    };
    assert!(compare_series(&ev, expected, &got(as_value(hist(vec![], 0))), &[0], false).is_err());
    let vector = QueryResult::Vector(vec![InstantSample {
        labels: labels.clone(),
        t: 0,
        v: 0.0,
        h: Some(hist(vec![1.0, 0.0, 1.0], -1)),
    }]);
    assert!(
        fmt_result(&vector).contains("{{count:2 sum:3 offset:-1 buckets:[1 0 1]}} @0"),
        "{}",
        fmt_result(&vector)
    );
}

/// The annotation checks themselves, on made-up answers: what must fail fails.
fn check_annotation_rules() {
    let eval = |lines: &str| -> AnnotationExpect {
        let text = format!("load 1m\n  x 1\n\neval instant at 0 x\n{lines}  x 1\n");
        match script::parse(&text).expect("script parses").pop() {
            Some(Command::Eval(ev)) => ev.annotations,
            _ => unreachable!("the last command is the eval"),
        }
    };
    let got = |warnings: &[&str], infos: &[&str]| QueryAnnotations {
        warnings: warnings.iter().map(ToString::to_string).collect(),
        infos: infos.iter().map(ToString::to_string).collect(),
    };
    let w = "PromQL warning: w (1:1)";
    let i = "PromQL info: i (1:5)";
    let cases: &[(&str, QueryAnnotations, bool)] = &[
        // Annotations nobody asked about are fine; asked-for ones must be there.
        ("", got(&[w], &[i]), true),
        ("  expect warn\n", got(&[w], &[]), true),
        ("  expect warn\n", got(&[], &[i]), false),
        ("  expect info\n", got(&[w], &[]), false),
        ("  expect no_warn\n", got(&[w], &[]), false),
        ("  expect no_warn\n", got(&[], &[i]), true),
        ("  expect no_info\n", got(&[], &[i]), false),
        (&format!("  expect warn msg: {w}\n"), got(&[w], &[]), true),
        (
            "  expect warn msg: PromQL warning: w (1:2)\n",
            got(&[w], &[]),
            false,
        ),
        // Every warning must match some expected line.
        (
            &format!("  expect warn msg: {w}\n"),
            got(&[w, "PromQL warning: v"], &[]),
            false,
        ),
        (
            "  expect info regex: ^PromQL info: i \\(1:[0-9]+\\)$\n",
            got(&[], &[i]),
            true,
        ),
        ("  expect info regex: \\(2:\n", got(&[], &[i]), false),
    ];
    for (lines, answer, ok) in cases {
        let r = check_annotations(&eval(lines), answer, false);
        assert_eq!(r.is_ok(), *ok, "{lines:?} against {answer:?}: {r:?}");
    }
    let legacy = |cmd: &str| {
        let text = format!("load 1m\n  x 1\n\n{cmd} instant at 0 x\n  x 1\n");
        match script::parse(&text).expect("script parses").pop() {
            Some(Command::Eval(ev)) => ev.annotations,
            _ => unreachable!("the last command is the eval"),
        }
    };
    assert!(check_annotations(&legacy("eval_warn"), &got(&[], &[i]), false).is_err());
    assert!(check_annotations(&legacy("eval_info"), &got(&[], &[i]), false).is_ok());
    // Data that could not be loaded excuses missing annotations only.
    assert_eq!(
        check_annotations(&eval("  expect warn\n"), &got(&[], &[]), true),
        Ok(true)
    );
    assert!(check_annotations(&eval("  expect no_info\n"), &got(&[], &[i]), true).is_err());
    assert!(script::parse("eval instant at 0 x\n  expect warn\n  expect no_warn\n").is_err());
}

/// `expect fail` without a message: only errors PromQL raises count.
fn check_failure_rules() {
    assert!(is_promql_error(&QueryError::BadData("parse error".into())));
    assert!(is_promql_error(&QueryError::Execution(
        "many-to-many".into()
    )));
    assert!(!is_promql_error(&QueryError::Unsupported("x".into())));
    assert!(!is_promql_error(&QueryError::Internal("x".into())));
    assert!(!is_promql_error(&QueryError::Timeout("query execution")));
}

fn main() {
    panics::install_hook();
    check_failure_rules();
    panics::self_check();
    series::self_check();
    histogram::self_check();
    nhcb::self_check();
    check_comparison_rules();
    check_annotation_rules();
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let upstream = std::env::var_os("PROMQLTEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../shared/promqltest/testdata"));
    let own = manifest.join("tests/promqltest/cases");
    let baseline_path = manifest.join("tests/promqltest/baseline.txt");
    let verbose = std::env::var("PROMQLTEST_VERBOSE").is_ok_and(|v| v != "0");

    let mut files: Vec<(String, PathBuf)> = test_files(&own)
        .into_iter()
        .map(|p| {
            (
                format!("hypnos/{}", p.file_name().unwrap().to_string_lossy()),
                p,
            )
        })
        .collect();
    if upstream.is_dir() {
        files.extend(
            test_files(&upstream)
                .into_iter()
                .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), p)),
        );
    } else if std::env::var("CI").is_ok_and(|v| v == "true") {
        // In CI the suite is part of the checkout's surroundings: its absence is a failure,
        // never a run that passes on the project's own cases alone.
        println!(
            "promqltest: CI=true and {} is not there: the upstream suite cannot run",
            upstream.display()
        );
        std::process::exit(1);
    } else {
        println!(
            "promqltest: SKIPPED the upstream suite: {} not found; running only the project's own cases. Point PROMQLTEST_DIR at a Prometheus checkout's promql/promqltest/testdata to run it.",
            upstream.display()
        );
    }
    let upstream_ran = upstream.is_dir();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let baseline = read_baseline(&baseline_path);
    let (mut total_pass, mut total_fail, mut total_unchecked) = (0, 0, 0);
    let mut regressions = Vec::new();
    let mut counts = BTreeMap::new();
    for (name, path) in &files {
        let outcome = rt.block_on(run_file(path));
        let failed = outcome.failures.len();
        let unchecked = &outcome.unchecked_annotations;
        println!(
            "  {name:<40} {:>5} of {:>5} evals pass{}",
            outcome.passed,
            outcome.passed + failed,
            if unchecked.is_empty() {
                String::new()
            } else {
                format!(
                    " ({} with expected annotations unchecked: data not loaded)",
                    unchecked.len()
                )
            }
        );
        if verbose {
            for f in &outcome.failures {
                println!("    FAIL {f}");
            }
            if !unchecked.is_empty() {
                println!("    annotations unchecked at lines {unchecked:?}");
            }
        }
        total_unchecked += unchecked.len();
        total_pass += outcome.passed;
        total_fail += failed;
        if let Some(&want) = baseline.get(name)
            && outcome.passed < want
        {
            regressions.push(format!(
                "{name}: {} evals pass, baseline is {want}",
                outcome.passed
            ));
        }
        counts.insert(name.clone(), outcome.passed);
    }
    // A file of the baseline that did not run at all (renamed, deleted, or its directory
    // gone) is a regression too, not a silent pass. Upstream files are only expected when
    // the upstream suite ran (outside CI it may be missing, said above).
    for name in baseline.keys() {
        let own_case = name.starts_with("hypnos/");
        if !counts.contains_key(name) && (own_case || upstream_ran) {
            regressions.push(format!("{name}: in the baseline but did not run"));
        }
    }
    if std::env::var("PROMQLTEST_WRITE_BASELINE").is_ok_and(|v| v != "0") {
        let mut merged = baseline.clone();
        for (name, n) in &counts {
            let e = merged.entry(name.clone()).or_insert(0);
            *e = (*e).max(*n);
        }
        let mut text = String::from(
            "# Evals that must keep passing, per file (raised as PromQL work lands, never lowered).\n",
        );
        for (name, n) in &merged {
            text.push_str(&format!("{name} {n}\n"));
        }
        std::fs::write(&baseline_path, text).expect("write baseline");
    }
    for r in &regressions {
        println!("promqltest: REGRESSION {r}");
    }
    println!(
        "promqltest: {total_pass} passed, {total_fail} failed ({total_unchecked} passed with expected annotations unchecked: data not loaded)"
    );
    if !regressions.is_empty() {
        std::process::exit(1);
    }
}
