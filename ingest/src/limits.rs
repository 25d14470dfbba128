//! Per-tenant write limits: what one tenant may send ([`WriteLimits`], plain data of `hypnos_schemas::limits`
//! that the tenancy crate fills from the limits file), the token buckets of the ingestion rate
//! ([`RateLimiter`]) and the error of a request that crosses a limit ([`LimitError`]).
//!
//! Every check runs before anything of the request is logged or applied, so a refused request
//! changes nothing and what was accepted before stays accepted.

use std::collections::HashMap;
use std::time::Instant;

use hypnos_schemas::TenantId;
use parking_lot::Mutex;
use thiserror::Error;

pub use hypnos_schemas::limits::{
    DEFAULT_MAX_FUTURE_SKEW_MS, DEFAULT_MAX_LABEL_NAME_LENGTH, DEFAULT_MAX_LABEL_NAMES_PER_SERIES,
    DEFAULT_MAX_LABEL_VALUE_LENGTH, DEFAULT_MAX_METADATA_LENGTH, DEFAULT_MAX_METADATA_PER_METRIC,
    DEFAULT_MAX_METADATA_PER_USER, DEFAULT_MAX_SAMPLES_PER_REQUEST, DEFAULT_MAX_SERIES_PER_REQUEST,
    WriteLimits,
};

/// How a crossed limit is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitKind {
    /// Invalid data (HTTP 400; senders do not retry).
    Invalid,
    /// An oversized request (HTTP 413).
    TooLarge,
    /// Too fast: retry after this many seconds (HTTP 429 with `Retry-After`).
    Rate { retry_after_secs: u64 },
    /// The tenant is at its series limit (HTTP 429): retrying helps once the head is cut or
    /// the limit raised.
    Capacity,
}

/// A request crossed one of its tenant's limits; nothing of it was written.
#[derive(Clone, Debug, Error, PartialEq)]
#[error("limit {limit} exceeded: {message}")]
pub struct LimitError {
    /// The limit's name as in the limits file, also the metric's `reason` label.
    pub limit: &'static str,
    pub kind: LimitKind,
    pub message: String,
}

impl LimitError {
    pub(crate) fn new(limit: &'static str, kind: LimitKind, message: impl Into<String>) -> Self {
        Self {
            limit,
            kind,
            message: message.into(),
        }
    }
}

/// One tenant's token bucket.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// The ingestion-rate token buckets of every tenant.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<TenantId, Bucket>>,
}

impl RateLimiter {
    /// Takes `samples` tokens from `tenant`'s bucket, or none at all when there are not
    /// enough (the request is refused whole).
    pub fn take(
        &self,
        tenant: &TenantId,
        samples: usize,
        limits: &WriteLimits,
    ) -> Result<(), LimitError> {
        self.take_at(tenant, samples, limits, Instant::now())
    }

    fn take_at(
        &self,
        tenant: &TenantId,
        samples: usize,
        limits: &WriteLimits,
        now: Instant,
    ) -> Result<(), LimitError> {
        let rate = limits.ingestion_rate;
        if rate <= 0.0 || !rate.is_finite() {
            return Ok(());
        }
        let burst = limits.burst();
        let want = samples as f64;
        if want > burst {
            return Err(LimitError::new(
                "ingestion_burst",
                LimitKind::TooLarge,
                format!(
                    "the request has {samples} samples, more than the burst of {burst} samples \
                     of tenant {tenant}; send smaller requests"
                ),
            ));
        }
        let mut buckets = self.buckets.lock();
        let b = buckets.entry(tenant.clone()).or_insert(Bucket {
            tokens: burst,
            last: now,
        });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(burst);
        b.last = now;
        if b.tokens >= want {
            b.tokens -= want;
            return Ok(());
        }
        let wait = ((want - b.tokens) / rate).ceil().max(1.0) as u64;
        Err(LimitError::new(
            "ingestion_rate",
            LimitKind::Rate {
                retry_after_secs: wait,
            },
            format!(
                "tenant {tenant} may send {rate} samples/s with a burst of {burst}; \
                 {samples} samples refused, retry in {wait}s"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn token_bucket_refills_at_the_rate_and_refuses_whole_requests() {
        let r = RateLimiter::default();
        let t = TenantId::new("a").unwrap();
        let other = TenantId::new("b").unwrap();
        let l = WriteLimits {
            ingestion_rate: 10.0,
            ingestion_burst: 20,
            ..WriteLimits::unlimited()
        };
        let t0 = Instant::now();
        r.take_at(&t, 15, &l, t0).unwrap();
        let e = r.take_at(&t, 10, &l, t0).unwrap_err();
        assert_eq!(e.limit, "ingestion_rate");
        assert_eq!(
            e.kind,
            LimitKind::Rate {
                retry_after_secs: 1
            }
        );
        assert!(
            e.to_string().contains("limit ingestion_rate exceeded"),
            "{e}"
        );
        // The refused request took nothing: 5 tokens are still there.
        r.take_at(&t, 5, &l, t0).unwrap();
        // The tenant next door has its own bucket.
        r.take_at(&other, 20, &l, t0).unwrap();
        // One second refills 10.
        r.take_at(&t, 10, &l, t0 + Duration::from_secs(1)).unwrap();
        assert!(r.take_at(&t, 1, &l, t0 + Duration::from_secs(1)).is_err());
        // Never more than the burst.
        r.take_at(&t, 20, &l, t0 + Duration::from_secs(100))
            .unwrap();
        let e = r
            .take_at(&t, 21, &l, t0 + Duration::from_secs(200))
            .unwrap_err();
        assert_eq!((e.limit, e.kind), ("ingestion_burst", LimitKind::TooLarge));
    }

    #[test]
    fn unlimited_by_default() {
        let r = RateLimiter::default();
        let t = TenantId::new("a").unwrap();
        r.take(&t, usize::MAX, &WriteLimits::default()).unwrap();
        r.take(&t, usize::MAX, &WriteLimits::unlimited()).unwrap();
        assert_eq!(
            WriteLimits {
                ingestion_rate: 0.5,
                ..WriteLimits::default()
            }
            .burst(),
            1.0
        );
    }
}
