//! The limits of one tenant as plain data, shared by the crates that enforce them (the
//! ingester enforces [`WriteLimits`], the compactor [`RetentionOverride`]) and the crate that
//! reads them from the limits file (`hypnos-tenancy`).

use std::time::Duration;

/// The write limits of one tenant. `0` (or `None`) means unlimited. The default
/// ([`WriteLimits::default`], what a server without a limits file applies) bounds what one
/// request may carry and refuses timestamps far in the future; [`WriteLimits::unlimited`]
/// switches everything off (library use and tests).
#[derive(Clone, Debug, PartialEq)]
pub struct WriteLimits {
    /// Samples per second, sustained (token bucket refill rate).
    pub ingestion_rate: f64,
    /// Samples that may arrive at once (bucket size); `0`: one second of `ingestion_rate`.
    pub ingestion_burst: u64,
    /// Series in the tenant's active head.
    pub max_series: usize,
    /// Series of one metric name in the tenant's active head.
    pub max_series_per_metric: usize,
    /// Label names of one series, `tenant_id` excluded.
    pub max_label_names_per_series: usize,
    /// Bytes of a label name.
    pub max_label_name_length: usize,
    /// Bytes of a label value.
    pub max_label_value_length: usize,
    /// Series in one request.
    pub max_series_per_request: usize,
    /// Samples in one request.
    pub max_samples_per_request: usize,
    /// Samples older than now minus this (milliseconds) are refused.
    pub max_sample_age_ms: Option<i64>,
    /// Samples newer than now plus this (milliseconds) are refused.
    pub max_future_skew_ms: Option<i64>,
    /// Bytes of a metadata entry's metric name or unit (longer ones refuse the request) and
    /// of its help text (longer ones are cut).
    pub max_metadata_length: usize,
    /// Metric names with metadata kept per tenant; a request adding names past it is
    /// refused.
    pub max_metadata_per_user: usize,
    /// Distinct metadata entries kept per metric name (the oldest go first).
    pub max_metadata_per_metric: usize,
}

/// Label names per series when no limits file says otherwise (Mimir's default).
pub const DEFAULT_MAX_LABEL_NAMES_PER_SERIES: usize = 30;
/// Bytes of a label name when no limits file says otherwise (Mimir's default).
pub const DEFAULT_MAX_LABEL_NAME_LENGTH: usize = 1024;
/// Bytes of a label value when no limits file says otherwise (Mimir's default).
pub const DEFAULT_MAX_LABEL_VALUE_LENGTH: usize = 2048;
/// Series per request when no limits file says otherwise (Prometheus sends at most
/// `max_samples_per_send`, 2000 by default).
pub const DEFAULT_MAX_SERIES_PER_REQUEST: usize = 100_000;
/// Samples (floats and histograms) per request when no limits file says otherwise.
pub const DEFAULT_MAX_SAMPLES_PER_REQUEST: usize = 1_000_000;
/// How far in the future a sample may be when no limits file says otherwise: 10 minutes,
/// as Mimir's creation grace period.
pub const DEFAULT_MAX_FUTURE_SKEW_MS: i64 = 10 * 60 * 1000;
/// Bytes of metadata names, units and help texts (Mimir's default).
pub const DEFAULT_MAX_METADATA_LENGTH: usize = 1024;
/// Metric names with metadata per tenant.
pub const DEFAULT_MAX_METADATA_PER_USER: usize = 10_000;
/// Metadata entries per metric name.
pub const DEFAULT_MAX_METADATA_PER_METRIC: usize = 10;

impl Default for WriteLimits {
    /// No rate or series limits (those depend on the installation), but bounded requests:
    /// the `DEFAULT_*` constants of this module.
    fn default() -> Self {
        Self {
            ingestion_rate: 0.0,
            ingestion_burst: 0,
            max_series: 0,
            max_series_per_metric: 0,
            max_label_names_per_series: DEFAULT_MAX_LABEL_NAMES_PER_SERIES,
            max_label_name_length: DEFAULT_MAX_LABEL_NAME_LENGTH,
            max_label_value_length: DEFAULT_MAX_LABEL_VALUE_LENGTH,
            max_series_per_request: DEFAULT_MAX_SERIES_PER_REQUEST,
            max_samples_per_request: DEFAULT_MAX_SAMPLES_PER_REQUEST,
            max_sample_age_ms: None,
            max_future_skew_ms: Some(DEFAULT_MAX_FUTURE_SKEW_MS),
            max_metadata_length: DEFAULT_MAX_METADATA_LENGTH,
            max_metadata_per_user: DEFAULT_MAX_METADATA_PER_USER,
            max_metadata_per_metric: DEFAULT_MAX_METADATA_PER_METRIC,
        }
    }
}

impl WriteLimits {
    /// Every limit off. Requests are still bounded by the decoder's own checks (decompressed
    /// size, decoding amplification, the in-flight budget) and timestamps before 1970 are
    /// still refused.
    pub fn unlimited() -> Self {
        Self {
            ingestion_rate: 0.0,
            ingestion_burst: 0,
            max_series: 0,
            max_series_per_metric: 0,
            max_label_names_per_series: 0,
            max_label_name_length: 0,
            max_label_value_length: 0,
            max_series_per_request: 0,
            max_samples_per_request: 0,
            max_sample_age_ms: None,
            max_future_skew_ms: None,
            max_metadata_length: 0,
            max_metadata_per_user: 0,
            max_metadata_per_metric: 0,
        }
    }

    /// The bucket size the rate limit uses.
    pub fn burst(&self) -> f64 {
        if self.ingestion_burst > 0 {
            self.ingestion_burst as f64
        } else {
            self.ingestion_rate.max(1.0)
        }
    }
}

/// Per-tenant retention overrides (from the limits file): for each resolution, `None`
/// keeps the compactor's setting and `Some(Duration::ZERO)` keeps blocks forever.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetentionOverride {
    pub raw: Option<Duration>,
    pub res_5m: Option<Duration>,
    pub res_1h: Option<Duration>,
}
