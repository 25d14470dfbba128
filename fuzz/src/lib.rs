//! What the fuzz targets run, shared by the libFuzzer targets (`fuzz_targets/`) and the
//! stable-toolchain `replay` binary: a small fixed data set behind an in-memory
//! [`SeriesSource`], the query entry the HTTP API uses ([`QueryEngine`]) and the remote-write
//! decode and write path of the ingester.
//!
//! Every input may fail with an error; a panic, an abort or a hang is a bug.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use arrow::array::{BinaryArray, BooleanArray, Float64Array, Int64Array};
use async_trait::async_trait;
use hypnos_ingest::{IngestConfig, Ingester, WriteLimits};
use hypnos_engine::{QueryEngine, QueryOptions};
use hypnos_planner::QueryError;
use hypnos_schemas::histogram::{FloatHistogram, ResetHint, Span};
use hypnos_schemas::matcher::matches_all;
use hypnos_schemas::{
    BlockSink, Labels, MatchOp, Matcher, STALE_NAN_BITS, SchemaError, SeriesData, SeriesSource,
    TenantId, TimeRange,
};

/// Longest query text tried (longer inputs are skipped, to keep each run short). Long
/// enough for queries nested past the nesting limit in every way (a 2 KiB query once
/// overflowed the stack); run with `-max_len=16384`.
pub const MAX_QUERY_BYTES: usize = 16 * 1024;

/// Longest remote-write body tried: enough for a snappy block that decompresses to
/// [`MAX_DECOMPRESSED_BYTES`] of repeated messages (about 400 KB), so that decompression
/// amplification is reachable.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// The ingester's limit on decompressed bodies: 8 MiB. With `-rss_limit_mb` (see
/// README.md), a body whose decoding takes memory out of proportion to it is a finding.
pub const MAX_DECOMPRESSED_BYTES: usize = 8 << 20;

/// Samples one selection may load: small, so that a huge range or subquery is refused
/// instead of running for long.
pub const MAX_SAMPLES: usize = 200_000;

/// The tenant queries run as; the data set also holds series of another tenant, which must
/// never show up.
pub const TENANT: &str = "fuzz";

/// The instant query times (milliseconds).
pub const INSTANT_TIMES: [i64; 3] = [0, 301_000, 1_000_000];

/// The range queries: (start, end, step), milliseconds.
pub const RANGES: [(i64, i64, i64); 2] = [(0, 600_000, 15_000), (-120_000, 900_000, 67_000)];

/// Fixed series, filtered per select like a real source (tenant, matchers, time range).
#[derive(Debug)]
pub struct FixedSource(Vec<SeriesData>);

#[async_trait]
impl SeriesSource for FixedSource {
    async fn select(
        &self,
        tenant: &TenantId,
        matchers: &[Matcher],
        range: TimeRange,
    ) -> Result<Vec<SeriesData>, SchemaError> {
        Ok(self
            .0
            .iter()
            .filter(|s| {
                s.labels.get("tenant_id") == tenant.as_str() && matches_all(matchers, &s.labels)
            })
            .map(|s| {
                let keep = BooleanArray::from_iter(
                    s.timestamps()
                        .values()
                        .iter()
                        .map(|t| Some(*t >= range.min && *t <= range.max)),
                );
                let samples = arrow::compute::filter_record_batch(&s.samples, &keep)
                    .expect("a filter as long as the samples");
                SeriesData {
                    labels: s.labels.clone(),
                    samples,
                }
            })
            .filter(|s| !s.is_empty())
            .collect())
    }
}

fn series(tenant: &str, labels: &[(&str, &str)], points: &[(i64, f64)]) -> SeriesData {
    let mut pairs: Vec<(&str, &str)> = labels.to_vec();
    pairs.push(("tenant_id", tenant));
    let (t, v): (Vec<i64>, Vec<f64>) = points.iter().copied().unzip();
    SeriesData::new(
        Labels::from_pairs(pairs),
        Int64Array::from(t),
        Float64Array::from(v),
    )
}

/// A series of native histograms (`None`: a float sample with value `i`).
fn histogram_series(
    tenant: &str,
    labels: &[(&str, &str)],
    f: impl Fn(i64) -> Option<FloatHistogram>,
) -> SeriesData {
    let mut pairs: Vec<(&str, &str)> = labels.to_vec();
    pairs.push(("tenant_id", tenant));
    let points: Vec<(i64, Option<FloatHistogram>)> =
        (0..=48).map(|i| (-60_000 + i * 15_000, f(i))).collect();
    SeriesData::with_histograms(
        Labels::from_pairs(pairs),
        Int64Array::from_iter_values(points.iter().map(|p| p.0)),
        Float64Array::from_iter_values(
            points
                .iter()
                .enumerate()
                .map(|(i, p)| if p.1.is_some() { 0.0 } else { i as f64 }),
        ),
        BinaryArray::from_iter(points.iter().map(|p| p.1.as_ref().map(|h| h.encode()))),
    )
}

/// An exponential histogram of `n` observations spread over a few buckets.
fn exponential(n: f64, schema: i32, hint: ResetHint) -> FloatHistogram {
    FloatHistogram {
        counter_reset_hint: hint,
        schema,
        zero_threshold: 0.001,
        zero_count: n,
        count: 6.0 * n,
        sum: 2.5 * n,
        positive_spans: vec![
            Span {
                offset: -1,
                length: 2,
            },
            Span {
                offset: 2,
                length: 1,
            },
        ],
        positive_buckets: vec![n, 2.0 * n, n],
        negative_spans: vec![Span {
            offset: 0,
            length: 1,
        }],
        negative_buckets: vec![n],
        custom_values: vec![],
    }
}

/// A histogram with custom buckets (bounds 0.1, 0.5, 1) of `n` observations.
fn custom(n: f64, bounds: &[f64]) -> FloatHistogram {
    FloatHistogram {
        schema: hypnos_schemas::histogram::CUSTOM_BUCKETS_SCHEMA,
        count: 4.0 * n,
        sum: 1.5 * n,
        positive_spans: vec![Span {
            offset: 0,
            length: 4,
        }],
        positive_buckets: vec![n, n, n, n],
        custom_values: bounds.to_vec(),
        ..FloatHistogram::default()
    }
}

/// Every 15 s from -60 s to 660 s, `f(i)` for the i-th point.
fn every_15s(f: impl Fn(i64) -> f64) -> Vec<(i64, f64)> {
    (0..=48).map(|i| (-60_000 + i * 15_000, f(i))).collect()
}

/// The data set: counters (with a reset), gauges with NaN, infinities and a staleness
/// marker, classic histogram buckets, a sparse series, odd label values, and a second
/// tenant with the same names.
pub fn data_set() -> Vec<SeriesData> {
    let stale = f64::from_bits(STALE_NAN_BITS);
    let mut out = Vec::new();
    for tenant in [TENANT, "other"] {
        // Native histograms: a counter with a reset and a schema change, a gauge, custom
        // buckets whose bounds change, and a series mixing floats and histograms.
        out.push(histogram_series(
            tenant,
            &[("__name__", "rpc_duration_seconds"), ("job", "api")],
            |i| {
                let n = if i < 30 { i } else { i - 30 } as f64;
                Some(exponential(
                    n,
                    if i < 40 { 1 } else { 0 },
                    ResetHint::Unknown,
                ))
            },
        ));
        out.push(histogram_series(
            tenant,
            &[("__name__", "queue_size"), ("job", "db")],
            |i| Some(exponential((i % 7) as f64, -2, ResetHint::Gauge)),
        ));
        out.push(histogram_series(
            tenant,
            &[("__name__", "rpc_duration_seconds"), ("job", "db")],
            |i| {
                let bounds: &[f64] = if i < 24 {
                    &[0.1, 0.5, 1.0]
                } else {
                    &[0.1, 1.0, 5.0]
                };
                Some(custom(i as f64, bounds))
            },
        ));
        out.push(histogram_series(
            tenant,
            &[("__name__", "mixed"), ("job", "api")],
            |i| (i % 3 != 0).then(|| exponential(i as f64, 3, ResetHint::NotReset)),
        ));
        for (job, instance, inc) in [("api", "0", 1.0), ("api", "1", 3.5), ("db", "0", 100.0)] {
            out.push(series(
                tenant,
                &[
                    ("__name__", "http_requests_total"),
                    ("job", job),
                    ("instance", instance),
                ],
                &every_15s(|i| if i == 30 { 2.0 } else { i as f64 * inc }),
            ));
        }
        out.push(series(
            tenant,
            &[("__name__", "temperature"), ("job", "api"), ("room", "a")],
            &every_15s(|i| match i % 7 {
                0 => f64::NAN,
                1 => f64::INFINITY,
                2 => f64::NEG_INFINITY,
                3 => -1e308,
                _ => (i as f64).sin() * 40.0,
            }),
        ));
        out.push(series(
            tenant,
            &[("__name__", "temperature"), ("job", "db"), ("room", "b")],
            &every_15s(|i| {
                if i == 20 {
                    stale
                } else {
                    20.0 + i as f64 * 0.25
                }
            }),
        ));
        for (le, f) in [("0.1", 1.0), ("0.5", 4.0), ("1", 9.0), ("+Inf", 10.0)] {
            out.push(series(
                tenant,
                &[
                    ("__name__", "request_duration_seconds_bucket"),
                    ("job", "api"),
                    ("le", le),
                ],
                &every_15s(|i| i as f64 * f),
            ));
        }
        out.push(series(
            tenant,
            &[("__name__", "request_duration_seconds_sum"), ("job", "api")],
            &every_15s(|i| i as f64 * 3.25),
        ));
        out.push(series(
            tenant,
            &[
                ("__name__", "request_duration_seconds_count"),
                ("job", "api"),
            ],
            &every_15s(|i| i as f64 * 10.0),
        ));
        out.push(series(
            tenant,
            &[("__name__", "up"), ("job", "api"), ("instance", "0")],
            &[(0, 1.0), (300_000, 0.0), (600_000, 1.0)],
        ));
        out.push(series(
            tenant,
            &[
                ("__name__", "weird"),
                ("path", "a\"b\\c\n"),
                ("utf8", "ñ✓ 名前"),
                ("empty_looking", " "),
            ],
            &[(-1, 0.0), (1, -0.0), (599_999, 5e-324)],
        ));
        out.push(series(
            tenant,
            &[("__name__", "up"), ("job", "db"), ("instance", "0")],
            &[(150_000, 1.0)],
        ));
    }
    out
}

/// The single-threaded runtime every target runs on.
pub static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("tokio runtime")
});

/// The runtime queries run on, as in the server: [`hypnos_engine::query_runtime`], whose
/// worker threads have the stack production query threads have
/// ([`hypnos_engine::QUERY_THREAD_STACK`]), not the 8 MiB of libFuzzer's main thread.
pub static QUERY_RUNTIME: LazyLock<tokio::runtime::Runtime> =
    LazyLock::new(|| hypnos_engine::query_runtime(1).expect("query runtime"));

static ENGINE: LazyLock<QueryEngine> =
    LazyLock::new(|| QueryEngine::with_max_samples(Arc::new(FixedSource(data_set())), MAX_SAMPLES));

static TENANT_ID: LazyLock<TenantId> = LazyLock::new(|| TenantId::new(TENANT).expect("tenant"));

fn query_options() -> QueryOptions {
    QueryOptions {
        timeout: Duration::from_secs(5),
        ..QueryOptions::default()
    }
}

/// How one query text fared over all fixed times: counts of successes and of errors.
#[derive(Clone, Copy, Debug, Default)]
pub struct QueryOutcome {
    pub ok: usize,
    pub errors: usize,
    pub internal_errors: usize,
}

fn tally(outcome: &mut QueryOutcome, r: Result<hypnos_planner::QueryResult, QueryError>) {
    match r {
        Ok(_) => outcome.ok += 1,
        Err(QueryError::Internal(_)) => {
            outcome.errors += 1;
            outcome.internal_errors += 1;
        }
        Err(_) => outcome.errors += 1,
    }
}

/// The `promql_parse_plan` target: `data` as UTF-8 PromQL, run as instant queries at
/// [`INSTANT_TIMES`] and as range queries over [`RANGES`], through parse, lowering,
/// planning and execution.
pub fn promql_parse_plan(data: &[u8]) -> QueryOutcome {
    let mut outcome = QueryOutcome::default();
    if data.len() > MAX_QUERY_BYTES {
        return outcome;
    }
    let Ok(query) = std::str::from_utf8(data) else {
        return outcome;
    };
    let query = query.to_string();
    let run = QUERY_RUNTIME.spawn(async move {
        let (engine, tenant, opts) = (&*ENGINE, &*TENANT_ID, query_options());
        let mut outcome = QueryOutcome::default();
        for t in INSTANT_TIMES {
            tally(
                &mut outcome,
                engine.instant_query(tenant, &query, t, &opts).await,
            );
        }
        for (start, end, step) in RANGES {
            tally(
                &mut outcome,
                engine
                    .range_query(tenant, &query, start, end, step, &opts)
                    .await,
            );
        }
        outcome
    });
    // A panic in the query resumes here, so that libFuzzer sees it.
    match QUERY_RUNTIME.block_on(run) {
        Ok(o) => outcome = o,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
    outcome
}

/// Never told about blocks: the fuzzed ingester never flushes.
struct NoBlocks;

impl BlockSink for NoBlocks {
    fn block_written(&self, _meta: &hypnos_schemas::layout::BlockMeta) {}
}

/// An ingester over a fresh temporary directory (in `/dev/shm` when it exists, so that
/// fsyncs cost nothing), recreated every [`WRITES_PER_INGESTER`] accepted writes so that its
/// heads stay small.
struct FuzzIngester {
    _dir: tempfile::TempDir,
    ingester: Arc<Ingester>,
    writes: usize,
}

const WRITES_PER_INGESTER: usize = 2_000;

impl FuzzIngester {
    fn open() -> FuzzIngester {
        let shm = std::path::Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::tempdir_in(shm)
        } else {
            tempfile::tempdir()
        }
        .expect("tempdir");
        let store: Arc<dyn object_store::ObjectStore> =
            Arc::new(object_store::memory::InMemory::new());
        let cfg = IngestConfig {
            data_dir: dir.path().to_path_buf(),
            block_duration: Duration::from_secs(365 * 86_400),
            max_decompressed_bytes: MAX_DECOMPRESSED_BYTES,
        };
        let ingester = RUNTIME
            .block_on(Ingester::open(
                cfg,
                store,
                Arc::new(NoBlocks),
                &prometheus::Registry::new(),
            ))
            .expect("ingester");
        FuzzIngester {
            _dir: dir,
            ingester,
            writes: 0,
        }
    }
}

static INGESTER: LazyLock<std::sync::Mutex<Option<FuzzIngester>>> =
    LazyLock::new(|| std::sync::Mutex::new(None));

/// The `remote_write_decode` target: the first byte picks the headers, the rest is the
/// body (raw, so that snappy framing is fuzzed too; bit 0x80 of the first byte compresses
/// the rest first, so that the protobuf and validation are reached). A decoded request is
/// validated and written with strict limits; the written series are read back.
pub fn remote_write_decode(data: &[u8]) -> bool {
    let Some((&mode, rest)) = data.split_first() else {
        return false;
    };
    if rest.len() > MAX_BODY_BYTES {
        return false;
    }
    let compressed;
    let body = if mode & 0x80 != 0 {
        compressed = snap::raw::Encoder::new()
            .compress_vec(rest)
            .expect("snappy compression of a small body");
        &compressed[..]
    } else {
        rest
    };
    let encoding = match mode & 0x3 {
        0 | 1 => Some("snappy"),
        2 => Some(" SNAPPY "),
        _ => None,
    };
    let content_type = match (mode >> 2) & 0x3 {
        0 => Some("application/x-protobuf"),
        1 => None,
        2 => Some("application/x-protobuf;proto=prometheus.WriteRequest"),
        _ => Some("application/x-protobuf;proto=io.prometheus.write.v2.Request"),
    };
    let mut guard = INGESTER.lock().unwrap_or_else(|e| e.into_inner());
    if guard
        .as_ref()
        .is_none_or(|i| i.writes >= WRITES_PER_INGESTER)
    {
        *guard = Some(FuzzIngester::open());
    }
    let fi = guard.as_mut().expect("ingester just opened");
    let Ok(req) = fi.ingester.decode(encoding, content_type, body) else {
        return false;
    };
    let tenant = &*TENANT_ID;
    let limits = WriteLimits {
        max_label_names_per_series: 32,
        max_label_name_length: 128,
        max_label_value_length: 1024,
        max_samples_per_request: 10_000,
        ..WriteLimits::unlimited()
    };
    let written = RUNTIME.block_on(async {
        let ok = fi
            .ingester
            .write_limited(tenant, req, &limits, 0)
            .await
            .is_ok();
        if ok {
            let all = [Matcher::new(MatchOp::Re, "__name__", ".*").expect("matcher")];
            let _ = fi
                .ingester
                .select(tenant, &all, TimeRange::new(i64::MIN, i64::MAX))
                .await;
        }
        ok
    });
    if written {
        fi.writes += 1;
    }
    written
}
