//! [`QueryBudget`]: what one query may read (series and samples), charged by every
//! selection as it reads and checked before the data goes further. The caller keeps an
//! `Arc` to learn what the query read (usage tracking) and which limit stopped it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use hypnos_schemas::TenantId;

use crate::ops::EvalError;

/// The series and samples one query may select; `0` means unlimited.
#[derive(Debug, Default)]
pub struct QueryBudget {
    max_series: usize,
    max_samples: usize,
    series: AtomicUsize,
    samples: AtomicUsize,
    exceeded: OnceLock<&'static str>,
    /// Samples selected per tenant (a federated query reads several).
    by_tenant: Mutex<BTreeMap<TenantId, usize>>,
}

impl QueryBudget {
    pub fn new(max_series: usize, max_samples: usize) -> Self {
        Self {
            max_series,
            max_samples,
            ..Self::default()
        }
    }

    /// Adds what one selection read; an error naming the limit once the query has read more
    /// than it may.
    pub fn charge(
        &self,
        tenant: &TenantId,
        series: usize,
        samples: usize,
    ) -> Result<(), EvalError> {
        *self
            .by_tenant
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(tenant.clone())
            .or_default() += samples;
        let total_series = self.series.fetch_add(series, Ordering::Relaxed) + series;
        let total_samples = self.samples.fetch_add(samples, Ordering::Relaxed) + samples;
        if self.max_series > 0 && total_series > self.max_series {
            let _ = self.exceeded.set("max_series_per_query");
            return Err(EvalError(format!(
                "limit max_series_per_query exceeded: the query selects more than {} series",
                self.max_series
            )));
        }
        if self.max_samples > 0 && total_samples > self.max_samples {
            let _ = self.exceeded.set("max_samples_per_query");
            return Err(EvalError(format!(
                "limit max_samples_per_query exceeded: the query selects more than {} samples",
                self.max_samples
            )));
        }
        Ok(())
    }

    /// The most samples the query may select (0: unlimited); also the most points one of
    /// its operators may hold (see [`crate::QueryGuard`]).
    pub fn max_samples(&self) -> usize {
        self.max_samples
    }

    /// Records that `limit` stopped the query (the first one recorded stays).
    pub fn mark_exceeded(&self, limit: &'static str) {
        let _ = self.exceeded.set(limit);
    }

    /// The limit that stopped the query, if one did.
    pub fn exceeded(&self) -> Option<&'static str> {
        self.exceeded.get().copied()
    }

    /// Series selected so far (a series selected twice by two selectors counts twice).
    pub fn series(&self) -> usize {
        self.series.load(Ordering::Relaxed)
    }

    /// Samples selected so far.
    pub fn samples(&self) -> usize {
        self.samples.load(Ordering::Relaxed)
    }

    /// Samples selected so far, per tenant.
    pub fn samples_by_tenant(&self) -> Vec<(TenantId, usize)> {
        self.by_tenant
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(t, n)| (t.clone(), *n))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_and_names_the_limit() {
        let (t, u) = (TenantId::new("t").unwrap(), TenantId::new("u").unwrap());
        let b = QueryBudget::new(2, 100);
        b.charge(&t, 1, 10).unwrap();
        b.charge(&u, 1, 10).unwrap();
        let e = b.charge(&t, 1, 0).unwrap_err();
        assert!(e.0.contains("max_series_per_query"), "{}", e.0);
        assert_eq!(b.exceeded(), Some("max_series_per_query"));
        assert_eq!((b.series(), b.samples()), (3, 20));
        assert_eq!(b.samples_by_tenant(), vec![(t.clone(), 10), (u, 10)]);
        let b = QueryBudget::new(0, 5);
        assert!(b.charge(&t, 100, 5).is_ok());
        assert_eq!(
            b.charge(&t, 0, 1).map_err(|_| b.exceeded()),
            Err(Some("max_samples_per_query"))
        );
        assert!(
            QueryBudget::default()
                .charge(&t, usize::MAX / 2, usize::MAX / 2)
                .is_ok()
        );
    }
}
