//! The entry point: [`QueryEngine`] runs instant and range queries for one tenant.

use std::sync::Arc;
use std::time::Duration;

use hypnos_schemas::{SeriesSource, TenantId};

use crate::{QueryError, QueryResult};

/// Per-query options (from the HTTP parameters).
#[derive(Clone, Debug)]
pub struct QueryOptions {
    /// Lookback delta of instant-vector selection, milliseconds (Prometheus' default 5m).
    pub lookback_delta_ms: i64,
    /// The query fails with [`QueryError::Timeout`] past this.
    pub timeout: Duration,
}

impl Default for QueryOptions {
    fn default() -> Self {
        Self {
            lookback_delta_ms: 5 * 60 * 1000,
            timeout: Duration::from_secs(120),
        }
    }
}

/// Evaluates PromQL over a [`SeriesSource`] with DataFusion.
#[derive(Debug, Clone)]
pub struct QueryEngine {
    source: Arc<dyn SeriesSource>,
}

impl QueryEngine {
    pub fn new(source: Arc<dyn SeriesSource>) -> Self {
        Self { source }
    }

    /// Evaluates `query` at `time_ms`.
    pub async fn instant_query(
        &self,
        tenant: &TenantId,
        query: &str,
        time_ms: i64,
        opts: &QueryOptions,
    ) -> Result<QueryResult, QueryError> {
        let _ = (tenant, query, time_ms, opts, &self.source);
        Err(QueryError::Internal("not wired yet".into()))
    }

    /// Evaluates `query` at every step from `start_ms` to `end_ms` (inclusive); always a
    /// matrix (or an error when the query is not a scalar or instant vector).
    pub async fn range_query(
        &self,
        tenant: &TenantId,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
        opts: &QueryOptions,
    ) -> Result<QueryResult, QueryError> {
        let _ = (tenant, query, start_ms, end_ms, step_ms, opts);
        Err(QueryError::Internal("not wired yet".into()))
    }

    /// The logical and physical plans of `query` as text (for `explain=true`).
    pub async fn explain(
        &self,
        tenant: &TenantId,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
        opts: &QueryOptions,
    ) -> Result<String, QueryError> {
        let _ = (tenant, query, start_ms, end_ms, step_ms, opts);
        Err(QueryError::Internal("not wired yet".into()))
    }
}
