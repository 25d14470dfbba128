//! The caller's tenants for each kind of request, decided by the one
//! [`Authenticator`](hypnos_tenancy::Authenticator), and the admission of reads under their
//! tenants' limits. Handlers take [`ReadScope`] or [`AdminScope`] as extractors; remote write
//! authenticates itself (its errors are plain text).
//!
//! An admitted read counts in `hypnos_queries_running{tenant}` until it is answered.
//!
//! Test hook, compiled only with the cargo feature `testsuite` (off by default, so release
//! builds do not have it): when the environment variable `HYPNOS_TEST_HOLD_QUERIES_DIR` names a directory, a query
//! (`/api/v1/query`, `/api/v1/query_range`) of a tenant for which that directory holds a
//! file of the tenant's name waits, once admitted (holding its concurrency slot, its timeout
//! running), until the file is removed (at most 60 s). The end-to-end tests use it
//! to hold a query in flight without depending on how fast the machine is; it is not meant
//! for production and nothing happens when the variable is unset.

#[cfg(feature = "testsuite")]
use std::path::PathBuf;
use std::sync::Arc;
#[cfg(feature = "testsuite")]
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use hypnos_engine::QueryBudget;
use hypnos_schemas::TenantId;
use prometheus::{IntGauge, IntGaugeVec};

use super::AppRef;
use super::errors::ApiError;
use crate::metrics::{ByTenant, INVALID_TENANT, OTHER_TENANT, UNAUTHENTICATED_TENANT};
use hypnos_tenancy::auth::{Access, AuthError, Scope, requested_tenants};
use hypnos_tenancy::limits::{Admission, ReadLimits};

/// The tenants a read (query, metadata, usage) may see: one, or several for a federated
/// read (`X-Scope-OrgID: a|b`).
#[derive(Clone, Debug)]
pub(crate) struct ReadScope(pub(crate) Scope);

/// A caller allowed to act on every tenant (flush).
#[derive(Clone, Debug)]
pub(crate) struct AdminScope(pub(crate) Scope);

/// A caller allowed to read `/metrics` (anyone but in `token` mode).
#[derive(Clone, Debug)]
pub(crate) struct MetricsScope;

fn authenticate(state: &AppRef, parts: &Parts, access: Access) -> Result<Scope, ApiError> {
    state
        .auth
        .authenticate(&parts.headers, access)
        .map_err(|e| {
            count_auth_rejection(state, &e);
            ApiError::Auth(e)
        })
}

/// Counts a refused read in `hypnos_query_rejected_total`. Unauthenticated callers are not
/// trusted to name a tenant (that would let anyone create label values), and a forbidden
/// tenant counts under its own name only when it is a known tenant
/// ([`crate::metrics::TenantLabels`]).
fn count_auth_rejection(state: &AppRef, e: &AuthError) {
    state
        .metrics
        .query_rejected
        .with_label_values(&[rejection_label(e), e.reason()])
        .inc();
}

/// The `tenant` label of a request refused by authentication.
pub(crate) fn rejection_label(e: &AuthError) -> &str {
    match e {
        AuthError::Forbidden { tenant, .. } => tenant,
        AuthError::Unauthenticated(_) => UNAUTHENTICATED_TENANT,
        AuthError::Tenant(_) => INVALID_TENANT,
        AuthError::NotAllowed { .. } | AuthError::AdminDisabled => OTHER_TENANT,
    }
}

impl FromRequestParts<AppRef> for ReadScope {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppRef) -> Result<Self, ApiError> {
        authenticate(state, parts, Access::Read).map(ReadScope)
    }
}

impl FromRequestParts<AppRef> for AdminScope {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppRef) -> Result<Self, ApiError> {
        authenticate(state, parts, Access::Admin).map(AdminScope)
    }
}

impl FromRequestParts<AppRef> for MetricsScope {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppRef) -> Result<Self, ApiError> {
        authenticate(state, parts, Access::Metrics).map(|_| MetricsScope)
    }
}

/// A read admitted under its tenants' limits: the strictest limits of its tenants, a pass
/// through each tenant's concurrency gate (held until dropped, [`Admission`]) and the
/// budget of series and samples it may read.
#[derive(Debug)]
pub(crate) struct Admitted {
    pub(crate) limits: ReadLimits,
    pub(crate) budget: Arc<QueryBudget>,
    _admission: Admission,
    running: Running,
    /// CPU time the read spent on the query runtime, in nanoseconds.
    spawned_cpu_ns: AtomicU64,
}

impl Admitted {
    /// Adds CPU time the read spent outside its handler (on the query runtime).
    pub(crate) fn add_cpu(&self, cpu: Duration) {
        let ns = u64::try_from(cpu.as_nanos()).unwrap_or(u64::MAX);
        self.spawned_cpu_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// The CPU time added with [`Self::add_cpu`].
    pub(crate) fn spawned_cpu(&self) -> Duration {
        Duration::from_nanos(self.spawned_cpu_ns.load(Ordering::Relaxed))
    }

    /// The tenants of the read.
    pub(crate) fn tenants(&self) -> &[TenantId] {
        &self.running.tenants
    }
}

/// Counts a read in `hypnos_queries_running` while it lives (the gauges are chosen once, so
/// a tenant that becomes known meanwhile is decremented where it was incremented).
#[derive(Debug)]
struct Running {
    gauges: Vec<IntGauge>,
    tenants: Vec<TenantId>,
}

impl Running {
    fn new(gauge: &ByTenant<IntGaugeVec>, tenants: &[TenantId]) -> Self {
        let gauges: Vec<IntGauge> = tenants
            .iter()
            .map(|t| gauge.with_label_values(&[t.as_str()]))
            .collect();
        gauges.iter().for_each(IntGauge::inc);
        Self {
            gauges,
            tenants: tenants.to_vec(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.gauges.iter().for_each(IntGauge::dec);
    }
}

/// Admits a read of `scope` or refuses it with 429 when one of its tenants already runs as
/// many queries as it may.
pub(crate) fn admit(state: &AppRef, scope: &Scope) -> Result<Admitted, ApiError> {
    let admission = state.limits.admit(scope.tenants())?;
    let limits = admission.limits.clone();
    let budget = Arc::new(QueryBudget::new(
        limits.max_series_per_query,
        limits.max_samples_per_query,
    ));
    Ok(Admitted {
        limits,
        budget,
        _admission: admission,
        running: Running::new(&state.metrics.queries_running, scope.tenants()),
        spawned_cpu_ns: AtomicU64::new(0),
    })
}

/// Adds `cpu` to the read's tenants, split by the samples it scanned of each.
pub(crate) fn count_cpu(state: &AppRef, admitted: &Admitted, cpu: Duration) {
    let scanned = admitted.budget.samples_by_tenant();
    let weights: Vec<(&str, u64)> = admitted
        .tenants()
        .iter()
        .map(|t| {
            let n = scanned.iter().find(|(s, _)| s == t).map_or(0, |(_, n)| *n);
            (t.as_str(), n as u64)
        })
        .collect();
    for (t, secs) in hypnos_tenancy::usage::split_by_weight(cpu, &weights) {
        state
            .metrics
            .query_cpu
            .with_label_values(&[*t])
            .inc_by(secs);
    }
}

/// The environment variable of the test hook (see the module).
#[cfg(feature = "testsuite")]
pub(crate) const HOLD_ENV: &str = "HYPNOS_TEST_HOLD_QUERIES_DIR";

/// The longest the test hook holds a query.
#[cfg(feature = "testsuite")]
pub(crate) const MAX_HOLD: Duration = Duration::from_secs(60);

/// Waits while the test hook holds one of `tenants` (see the module); returns at once when
/// [`HOLD_ENV`] is unset.
#[cfg(feature = "testsuite")]
pub(crate) async fn test_hold(tenants: &[TenantId]) {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    let Some(dir) = DIR.get_or_init(|| std::env::var_os(HOLD_ENV).map(PathBuf::from)) else {
        return;
    };
    let held = || tenants.iter().any(|t| dir.join(t.as_str()).exists());
    let until = tokio::time::Instant::now() + MAX_HOLD;
    while held() && tokio::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The tenant label for logs when no scope could be established.
pub(crate) fn requested_label(headers: &axum::http::HeaderMap) -> String {
    match requested_tenants(headers, Access::Read, usize::MAX) {
        Ok(Some(t)) => t.iter().map(|t| t.as_str()).collect::<Vec<_>>().join("|"),
        Ok(None) => "default".into(),
        Err(_) => INVALID_TENANT.into(),
    }
}
