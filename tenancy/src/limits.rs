//! Per-tenant limits from `--limits-file` (re-read when it changes): defaults and per-tenant
//! overrides of the write limits ([`WriteLimits`], enforced by the ingester) and of the read
//! limits ([`ReadLimits`], enforced by the HTTP API and the query engine), plus the
//! per-tenant concurrency gates of queries and the admission of a read under the limits of
//! all its tenants ([`Limits::admit`]). A crossed read limit is a [`LimitError`]: one
//! variant per limit, carrying the values, named by [`LimitError::limit`].
//!
//! `0` switches a limit off. A limit absent from the file (or every limit, without a file)
//! takes its default: unlimited, except the bounds of one write request, which default to
//! `max_label_names_per_series: 30`, `max_label_name_length: 1024`,
//! `max_label_value_length: 2048`, `max_series_per_request: 100000`,
//! `max_samples_per_request: 1000000` (floats and histograms), `max_future_skew: 10m`,
//! `max_metadata_length: 1024`, `max_metadata_per_user: 10000` and
//! `max_metadata_per_metric: 10`. Whatever the limits, samples before 1970 (negative
//! timestamps) are refused, and a request whose decoded structures would take more than 24
//! times its decompressed size is refused before it is decoded.
//!
//! ```yaml
//! defaults:
//!   ingestion_rate: 100000          # samples and metadata entries/s; 0 or absent: unlimited
//!   ingestion_burst: 200000         # samples (default: one second of the rate)
//!   max_series: 1000000             # active series per tenant
//!   max_series_per_metric: 0
//!   max_label_names_per_series: 30
//!   max_label_name_length: 1024
//!   max_label_value_length: 2048
//!   max_series_per_request: 100000  # counted before the request is decoded
//!   max_samples_per_request: 1000000
//!   max_sample_age: 2w              # durations: 10s, 5m, 2h, 1d, 2w
//!   max_future_skew: 10m            # 0: samples may be any time ahead
//!   max_metadata_length: 1024       # bytes of a metadata name or unit (refused) and help (cut)
//!   max_metadata_per_user: 10000    # metric names with metadata per tenant
//!   max_metadata_per_metric: 10     # distinct entries per metric name
//!   max_series_per_query: 100000
//!   max_samples_per_query: 50000000
//!   max_query_range: 32d            # query_range end - start
//!   max_concurrent_queries: 20
//!   query_timeout: 2m
//!   retention_raw: 30d              # compactor; absent: --retention.resolution-raw,
//!   retention_5m: 90d               # 0: kept forever
//!   retention_1h: 1y
//! tenants:
//!   team-a: { ingestion_rate: 500000, max_series: 5000000, retention_raw: 0 }
//! ```

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hypnos_schemas::limits::{RetentionOverride, WriteLimits};
use hypnos_schemas::{ErrorCode, ServiceError, TenantId};
use serde::Deserialize;
use thiserror::Error;

use crate::reload::Reloading;

/// The read limits of one tenant; `0` / `None` means unlimited.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReadLimits {
    pub max_series_per_query: usize,
    pub max_samples_per_query: usize,
    /// Longest `end - start` of a range query (and of series/labels requests).
    pub max_query_range: Option<Duration>,
    pub max_concurrent_queries: usize,
    pub query_timeout: Option<Duration>,
}

/// Every limit of one tenant.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TenantLimits {
    pub write: WriteLimits,
    pub read: ReadLimits,
    /// How long the compactor keeps the tenant's blocks, per resolution (`None`: the
    /// `--retention.*` flag; zero: forever).
    pub retention: RetentionOverride,
}

/// The limits file, resolved: the defaults and each overridden tenant's full limits.
#[derive(Debug, Default)]
pub struct LimitsConfig {
    defaults: TenantLimits,
    tenants: HashMap<TenantId, TenantLimits>,
}

impl LimitsConfig {
    pub fn for_tenant(&self, t: &TenantId) -> &TenantLimits {
        self.tenants.get(t).unwrap_or(&self.defaults)
    }

    /// Whether the file has limits of `t`'s own.
    pub fn names_tenant(&self, t: &TenantId) -> bool {
        self.tenants.contains_key(t)
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let file: LimitsFile = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
        let defaults = file
            .defaults
            .resolve(&TenantLimits::default())
            .map_err(|e| format!("defaults: {e}"))?;
        let mut tenants = HashMap::new();
        for (name, spec) in file.tenants {
            let t = TenantId::new(&name).map_err(|e| format!("tenants: {e}"))?;
            let l = spec
                .resolve(&defaults)
                .map_err(|e| format!("tenant {name}: {e}"))?;
            tenants.insert(t, l);
        }
        Ok(Self { defaults, tenants })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsFile {
    #[serde(default)]
    defaults: LimitsSpec,
    #[serde(default)]
    tenants: HashMap<String, LimitsSpec>,
}

/// One section of the file: every field optional, absent ones inherited.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsSpec {
    ingestion_rate: Option<f64>,
    ingestion_burst: Option<u64>,
    max_series: Option<usize>,
    max_series_per_metric: Option<usize>,
    max_label_names_per_series: Option<usize>,
    max_label_name_length: Option<usize>,
    max_label_value_length: Option<usize>,
    max_series_per_request: Option<usize>,
    max_samples_per_request: Option<usize>,
    max_sample_age: Option<String>,
    max_future_skew: Option<String>,
    max_metadata_length: Option<usize>,
    max_metadata_per_user: Option<usize>,
    max_metadata_per_metric: Option<usize>,
    max_series_per_query: Option<usize>,
    max_samples_per_query: Option<usize>,
    max_query_range: Option<String>,
    max_concurrent_queries: Option<usize>,
    query_timeout: Option<String>,
    retention_raw: Option<String>,
    retention_5m: Option<String>,
    retention_1h: Option<String>,
}

/// A retention field: absent inherits `base`, `0` keeps forever (`Some(ZERO)`).
fn retention(
    name: &str,
    v: &Option<String>,
    base: Option<Duration>,
) -> Result<Option<Duration>, String> {
    match v.as_deref().map(str::trim) {
        None => Ok(base),
        Some("0") => Ok(Some(Duration::ZERO)),
        Some(s) => humantime::parse_duration(s)
            .map(Some)
            .map_err(|e| format!("{name}: {e} (examples: 0, 30d, 1y)")),
    }
}

/// A duration field: `0` means unlimited.
fn duration(
    name: &str,
    v: &Option<String>,
    base: Option<Duration>,
) -> Result<Option<Duration>, String> {
    match v {
        None => Ok(base),
        Some(s) => {
            let d = humantime::parse_duration(s.trim())
                .map_err(|e| format!("{name}: {e} (examples: 10s, 5m, 2h, 1d)"))?;
            Ok((!d.is_zero()).then_some(d))
        }
    }
}

fn ms(d: Option<Duration>) -> Option<i64> {
    d.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl LimitsSpec {
    fn resolve(&self, base: &TenantLimits) -> Result<TenantLimits, String> {
        let (w, r) = (&base.write, &base.read);
        if let Some(rate) = self.ingestion_rate
            && (!rate.is_finite() || rate < 0.0)
        {
            return Err(format!("ingestion_rate: {rate} is not a rate"));
        }
        let since = |ms: Option<i64>| ms.map(|m| Duration::from_millis(m as u64));
        Ok(TenantLimits {
            write: WriteLimits {
                ingestion_rate: self.ingestion_rate.unwrap_or(w.ingestion_rate),
                ingestion_burst: self.ingestion_burst.unwrap_or(w.ingestion_burst),
                max_series: self.max_series.unwrap_or(w.max_series),
                max_series_per_metric: self
                    .max_series_per_metric
                    .unwrap_or(w.max_series_per_metric),
                max_label_names_per_series: self
                    .max_label_names_per_series
                    .unwrap_or(w.max_label_names_per_series),
                max_label_name_length: self
                    .max_label_name_length
                    .unwrap_or(w.max_label_name_length),
                max_label_value_length: self
                    .max_label_value_length
                    .unwrap_or(w.max_label_value_length),
                max_series_per_request: self
                    .max_series_per_request
                    .unwrap_or(w.max_series_per_request),
                max_samples_per_request: self
                    .max_samples_per_request
                    .unwrap_or(w.max_samples_per_request),
                max_sample_age_ms: ms(duration(
                    "max_sample_age",
                    &self.max_sample_age,
                    since(w.max_sample_age_ms),
                )?),
                max_future_skew_ms: ms(duration(
                    "max_future_skew",
                    &self.max_future_skew,
                    since(w.max_future_skew_ms),
                )?),
                max_metadata_length: self.max_metadata_length.unwrap_or(w.max_metadata_length),
                max_metadata_per_user: self
                    .max_metadata_per_user
                    .unwrap_or(w.max_metadata_per_user),
                max_metadata_per_metric: self
                    .max_metadata_per_metric
                    .unwrap_or(w.max_metadata_per_metric),
            },
            read: ReadLimits {
                max_series_per_query: self.max_series_per_query.unwrap_or(r.max_series_per_query),
                max_samples_per_query: self
                    .max_samples_per_query
                    .unwrap_or(r.max_samples_per_query),
                max_query_range: duration(
                    "max_query_range",
                    &self.max_query_range,
                    r.max_query_range,
                )?,
                max_concurrent_queries: self
                    .max_concurrent_queries
                    .unwrap_or(r.max_concurrent_queries),
                query_timeout: duration("query_timeout", &self.query_timeout, r.query_timeout)?,
            },
            retention: RetentionOverride {
                raw: retention("retention_raw", &self.retention_raw, base.retention.raw)?,
                res_5m: retention("retention_5m", &self.retention_5m, base.retention.res_5m)?,
                res_1h: retention("retention_1h", &self.retention_1h, base.retention.res_1h)?,
            },
        })
    }
}

/// Where the limits come from: the file (kept current) or nowhere (unlimited).
#[derive(Debug)]
pub struct Limits {
    file: Option<Arc<Reloading<LimitsConfig>>>,
    none: Arc<LimitsConfig>,
    gates: QueryGates,
}

impl Limits {
    pub fn new(file: Option<&Path>) -> anyhow::Result<Self> {
        Ok(Self {
            file: file
                .map(|p| Reloading::load(p, "limits file", LimitsConfig::parse))
                .transpose()?,
            none: Arc::new(LimitsConfig::default()),
            gates: QueryGates::default(),
        })
    }

    /// The limits now.
    pub fn get(&self) -> Arc<LimitsConfig> {
        self.file
            .as_ref()
            .map_or_else(|| Arc::clone(&self.none), |f| f.get())
    }

    pub fn file(&self) -> Option<&Arc<Reloading<LimitsConfig>>> {
        self.file.as_ref()
    }

    pub fn gates(&self) -> &QueryGates {
        &self.gates
    }
}

/// Queries running per tenant.
#[derive(Debug, Default)]
pub struct QueryGates {
    running: std::sync::Mutex<HashMap<TenantId, Arc<AtomicUsize>>>,
}

/// A running query of one tenant; leaving the gate when dropped.
#[derive(Debug)]
pub struct GatePass(Arc<AtomicUsize>);

impl Drop for GatePass {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl QueryGates {
    /// Enters `tenant`'s gate, or `None` when `max` (non-zero) queries already run.
    pub fn enter(&self, tenant: &TenantId, max: usize) -> Option<GatePass> {
        let counter = Arc::clone(
            self.running
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(tenant.clone())
                .or_default(),
        );
        let before = counter.fetch_add(1, Ordering::AcqRel);
        let pass = GatePass(counter);
        (max == 0 || before < max).then_some(pass)
    }
}

/// A read limit crossed: which one, with the values that crossed it. Nothing is parsed back
/// from a message: [`LimitError::limit`] names the limit (as in the limits file, also the
/// `reason` label of rejection metrics) and [`ServiceError::error_code`] says how it is
/// answered.
#[derive(Clone, Debug, Error, PartialEq)]
pub enum LimitError {
    /// `max_concurrent_queries`: the tenant already runs as many reads as it may; retry
    /// later.
    #[error(
        "limit max_concurrent_queries exceeded: tenant {tenant} already runs {max} queries; \
         retry later"
    )]
    ConcurrentQueries { tenant: TenantId, max: usize },
    /// `max_query_range`: `end - start` of the read is longer than the limit.
    #[error(
        "limit max_query_range exceeded: the query range of {} is longer than {}",
        humantime::format_duration(*range),
        humantime::format_duration(*max)
    )]
    QueryRange { range: Duration, max: Duration },
    /// `max_series_per_query`: the read selects more series than the limit.
    #[error("limit max_series_per_query exceeded: the query selects more than {max} series")]
    SeriesPerQuery { max: usize },
    /// `max_samples_per_query`: the read selects more samples than the limit.
    #[error("limit max_samples_per_query exceeded: the query selects more than {max} samples")]
    SamplesPerQuery { max: usize },
    /// `query_timeout`: the read ran longer than its tenant's timeout.
    #[error(
        "limit query_timeout exceeded: the query ran longer than {}",
        humantime::format_duration(*timeout)
    )]
    QueryTimeout { timeout: Duration },
}

impl LimitError {
    /// The limit's name, as in the limits file.
    pub fn limit(&self) -> &'static str {
        match self {
            LimitError::ConcurrentQueries { .. } => "max_concurrent_queries",
            LimitError::QueryRange { .. } => "max_query_range",
            LimitError::SeriesPerQuery { .. } => "max_series_per_query",
            LimitError::SamplesPerQuery { .. } => "max_samples_per_query",
            LimitError::QueryTimeout { .. } => "query_timeout",
        }
    }

    /// The error of the query budget's limit `name` (`max_series_per_query` or
    /// `max_samples_per_query`, as the engine's budget names them) under `limits`; `None`
    /// for another name.
    pub fn of_budget(name: &str, limits: &ReadLimits) -> Option<Self> {
        match name {
            "max_series_per_query" => Some(LimitError::SeriesPerQuery {
                max: limits.max_series_per_query,
            }),
            "max_samples_per_query" => Some(LimitError::SamplesPerQuery {
                max: limits.max_samples_per_query,
            }),
            _ => None,
        }
    }
}

impl ServiceError for LimitError {
    fn error_code(&self) -> ErrorCode {
        match self {
            LimitError::ConcurrentQueries { .. } => ErrorCode::TooManyRequests,
            LimitError::QueryTimeout { .. } => ErrorCode::Timeout,
            LimitError::QueryRange { .. }
            | LimitError::SeriesPerQuery { .. }
            | LimitError::SamplesPerQuery { .. } => ErrorCode::LimitExceeded,
        }
    }
}

/// A read admitted under the limits of its tenants: the strictest of their read limits and
/// a pass through each tenant's concurrency gate (the read counts as running until the
/// admission is dropped).
#[derive(Debug)]
pub struct Admission {
    pub limits: ReadLimits,
    _passes: Vec<GatePass>,
}

impl Limits {
    /// Admits a read of `tenants`, or refuses it when one of them already runs as many
    /// queries as it may.
    pub fn admit(&self, tenants: &[TenantId]) -> Result<Admission, LimitError> {
        let config = self.get();
        let mut limits: Option<ReadLimits> = None;
        let mut passes = Vec::with_capacity(tenants.len());
        for t in tenants {
            let l = &config.for_tenant(t).read;
            let Some(pass) = self.gates.enter(t, l.max_concurrent_queries) else {
                return Err(LimitError::ConcurrentQueries {
                    tenant: t.clone(),
                    max: l.max_concurrent_queries,
                });
            };
            passes.push(pass);
            limits = Some(match limits {
                None => l.clone(),
                Some(m) => ReadLimits {
                    max_series_per_query: min_limit(m.max_series_per_query, l.max_series_per_query),
                    max_samples_per_query: min_limit(
                        m.max_samples_per_query,
                        l.max_samples_per_query,
                    ),
                    max_query_range: min_duration(m.max_query_range, l.max_query_range),
                    max_concurrent_queries: min_limit(
                        m.max_concurrent_queries,
                        l.max_concurrent_queries,
                    ),
                    query_timeout: min_duration(m.query_timeout, l.query_timeout),
                },
            });
        }
        Ok(Admission {
            limits: limits.unwrap_or_default(),
            _passes: passes,
        })
    }
}

/// The smaller of two limits where `0` means unlimited.
fn min_limit(a: usize, b: usize) -> usize {
    match (a, b) {
        (0, x) | (x, 0) => x,
        (a, b) => a.min(b),
    }
}

fn min_duration(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strictest_limits() {
        assert_eq!(min_limit(0, 5), 5);
        assert_eq!(min_limit(7, 0), 7);
        assert_eq!(min_limit(7, 5), 5);
        assert_eq!(min_limit(0, 0), 0);
        let s = Duration::from_secs;
        assert_eq!(min_duration(None, Some(s(1))), Some(s(1)));
        assert_eq!(min_duration(Some(s(2)), Some(s(1))), Some(s(1)));
        assert_eq!(min_duration(None, None), None);
    }

    #[test]
    fn defaults_overrides_and_durations() {
        let c = LimitsConfig::parse(
            "defaults:\n  ingestion_rate: 10\n  max_sample_age: 1h\n  max_query_range: 1d\n  max_concurrent_queries: 2\n\
             tenants:\n  big:\n    ingestion_rate: 1000\n    max_query_range: 0s\n",
        )
        .unwrap();
        let small = c.for_tenant(&TenantId::new("small").unwrap());
        assert_eq!(small.write.ingestion_rate, 10.0);
        assert_eq!(small.write.max_sample_age_ms, Some(3_600_000));
        assert_eq!(
            small.read.max_query_range,
            Some(Duration::from_secs(86_400))
        );
        let big = c.for_tenant(&TenantId::new("big").unwrap());
        assert_eq!(big.write.ingestion_rate, 1000.0);
        // Inherited from the defaults; 0 switches a limit off.
        assert_eq!(big.write.max_sample_age_ms, Some(3_600_000));
        assert_eq!(big.read.max_concurrent_queries, 2);
        assert_eq!(big.read.max_query_range, None);
        assert_eq!(
            LimitsConfig::parse("").unwrap().defaults,
            TenantLimits::default()
        );
    }

    #[test]
    fn write_requests_are_bounded_without_a_file_and_0_switches_off() {
        let none = Limits::new(None).unwrap().get();
        let w = &none.for_tenant(&TenantId::new("any").unwrap()).write;
        assert_eq!(w.max_future_skew_ms, Some(600_000));
        assert_eq!(w.max_series_per_request, 100_000);
        assert_eq!(w.max_samples_per_request, 1_000_000);
        assert_eq!(w.max_label_names_per_series, 30);
        assert_eq!(
            (w.max_label_name_length, w.max_label_value_length),
            (1024, 2048)
        );
        assert_eq!(
            (
                w.max_metadata_length,
                w.max_metadata_per_user,
                w.max_metadata_per_metric
            ),
            (1024, 10_000, 10)
        );
        let c = LimitsConfig::parse(
            "defaults: {max_future_skew: 0, max_series_per_request: 0, max_metadata_per_user: 5}",
        )
        .unwrap();
        let w = &c.for_tenant(&TenantId::new("any").unwrap()).write;
        assert_eq!(w.max_future_skew_ms, None);
        assert_eq!(w.max_series_per_request, 0);
        assert_eq!(w.max_metadata_per_user, 5);
        assert_eq!(w.max_samples_per_request, 1_000_000);
    }

    #[test]
    fn errors_name_the_field() {
        for (bad, want) in [
            ("defaults: {max_sample_age: soon}", "max_sample_age"),
            ("defaults: {max_series: -1}", "max_series"),
            ("defaults: {ingestion_rate: -1}", "ingestion_rate"),
            ("defaults: {max_seris: 1}", "unknown field"),
            ("tenants: {'a/b': {}}", "a/b"),
        ] {
            let e = LimitsConfig::parse(bad).unwrap_err();
            assert!(e.contains(want), "{bad}: {e}");
        }
    }

    #[test]
    fn retention_overrides() {
        let c = LimitsConfig::parse(
            "defaults:\n  retention_5m: 90d\n\
             tenants:\n  short: {retention_raw: 7d}\n  forever: {retention_raw: 0, retention_5m: '0s'}\n",
        )
        .unwrap();
        let day = Duration::from_secs(86_400);
        let other = c.for_tenant(&TenantId::new("other").unwrap()).retention;
        assert_eq!(
            other,
            RetentionOverride {
                raw: None,
                res_5m: Some(90 * day),
                res_1h: None
            }
        );
        let short = c.for_tenant(&TenantId::new("short").unwrap()).retention;
        assert_eq!((short.raw, short.res_5m), (Some(7 * day), Some(90 * day)));
        let forever = c.for_tenant(&TenantId::new("forever").unwrap()).retention;
        assert_eq!(
            (forever.raw, forever.res_5m, forever.res_1h),
            (Some(Duration::ZERO), Some(Duration::ZERO), None)
        );
        let e = LimitsConfig::parse("tenants: {a: {retention_1h: later}}").unwrap_err();
        assert!(e.contains("retention_1h") && e.contains("tenant a"), "{e}");
    }

    #[test]
    fn limit_errors_name_their_limit_and_code() {
        let a = TenantId::new("a").unwrap();
        let cases = [
            (
                LimitError::ConcurrentQueries {
                    tenant: a.clone(),
                    max: 2,
                },
                "max_concurrent_queries",
                ErrorCode::TooManyRequests,
                "limit max_concurrent_queries exceeded: tenant a already runs 2 queries; retry later",
            ),
            (
                LimitError::QueryRange {
                    range: Duration::from_secs(7200),
                    max: Duration::from_secs(3600),
                },
                "max_query_range",
                ErrorCode::LimitExceeded,
                "limit max_query_range exceeded: the query range of 2h is longer than 1h",
            ),
            (
                LimitError::SeriesPerQuery { max: 3 },
                "max_series_per_query",
                ErrorCode::LimitExceeded,
                "limit max_series_per_query exceeded: the query selects more than 3 series",
            ),
            (
                LimitError::SamplesPerQuery { max: 4 },
                "max_samples_per_query",
                ErrorCode::LimitExceeded,
                "limit max_samples_per_query exceeded: the query selects more than 4 samples",
            ),
            (
                LimitError::QueryTimeout {
                    timeout: Duration::from_secs(5),
                },
                "query_timeout",
                ErrorCode::Timeout,
                "limit query_timeout exceeded: the query ran longer than 5s",
            ),
        ];
        for (e, name, code, text) in cases {
            assert_eq!((e.limit(), e.error_code()), (name, code), "{e}");
            assert_eq!(e.to_string(), text);
        }
        let l = ReadLimits {
            max_series_per_query: 3,
            max_samples_per_query: 4,
            ..ReadLimits::default()
        };
        assert_eq!(
            LimitError::of_budget("max_samples_per_query", &l),
            Some(LimitError::SamplesPerQuery { max: 4 })
        );
        assert_eq!(
            LimitError::of_budget("max_series_per_query", &l),
            Some(LimitError::SeriesPerQuery { max: 3 })
        );
        assert_eq!(LimitError::of_budget("query_timeout", &l), None);
    }

    #[test]
    fn admission_takes_the_strictest_limits_and_holds_the_gates() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("limits.yml");
        std::fs::write(
            &p,
            "defaults: {max_series_per_query: 10, max_concurrent_queries: 1, query_timeout: 1m}\n\
             tenants:\n  b: {max_series_per_query: 5, max_samples_per_query: 7, query_timeout: 0}\n",
        )
        .unwrap();
        let limits = Limits::new(Some(&p)).unwrap();
        let (a, b) = (TenantId::new("a").unwrap(), TenantId::new("b").unwrap());
        let both = limits.admit(&[a.clone(), b.clone()]).unwrap();
        assert_eq!(both.limits.max_series_per_query, 5);
        assert_eq!(both.limits.max_samples_per_query, 7);
        assert_eq!(both.limits.query_timeout, Some(Duration::from_secs(60)));
        // Both gates are held: a second read of either tenant is refused, naming it.
        assert_eq!(
            limits.admit(std::slice::from_ref(&b)).unwrap_err(),
            LimitError::ConcurrentQueries {
                tenant: b.clone(),
                max: 1
            }
        );
        assert!(limits.admit(std::slice::from_ref(&a)).is_err());
        drop(both);
        let one = limits.admit(std::slice::from_ref(&a)).unwrap();
        assert_eq!(one.limits.max_series_per_query, 10);
        // Without a file nothing is limited.
        let none = Limits::new(None).unwrap();
        let _first = none.admit(std::slice::from_ref(&a)).unwrap();
        assert_eq!(
            none.admit(std::slice::from_ref(&a)).unwrap().limits,
            ReadLimits::default()
        );
    }

    #[test]
    fn gates_count_running_queries() {
        let g = QueryGates::default();
        let a = TenantId::new("a").unwrap();
        let b = TenantId::new("b").unwrap();
        let p1 = g.enter(&a, 2).unwrap();
        let _p2 = g.enter(&a, 2).unwrap();
        assert!(g.enter(&a, 2).is_none());
        assert!(g.enter(&b, 2).is_some());
        drop(p1);
        assert!(g.enter(&a, 2).is_some());
        assert!(g.enter(&a, 0).is_some());
    }
}
