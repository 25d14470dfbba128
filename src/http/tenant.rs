//! The caller's tenants for each kind of request, decided by the one
//! [`Authenticator`](crate::auth::Authenticator), and the admission of reads under their
//! tenants' limits. Handlers take [`ReadScope`] or [`AdminScope`] as extractors; remote write
//! authenticates itself (its errors are plain text).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use hypnos_engine::QueryBudget;

use super::AppRef;
use super::errors::ApiError;
use crate::auth::{Access, AuthError, Scope, requested_tenants};
use crate::limits::{GatePass, ReadLimits};

/// The tenants a read (query, metadata, usage) may see: one, or several for a federated
/// read (`X-Scope-OrgID: a|b`).
#[derive(Clone, Debug)]
pub(crate) struct ReadScope(pub(crate) Scope);

/// A caller allowed to act on every tenant (flush).
#[derive(Clone, Debug)]
pub(crate) struct AdminScope(pub(crate) Scope);

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
/// trusted to name a tenant (that would let anyone create label values).
fn count_auth_rejection(state: &AppRef, e: &AuthError) {
    let tenant = match e {
        AuthError::Forbidden { tenant, .. } => tenant.clone(),
        AuthError::Unauthenticated(_) => "unknown".into(),
        AuthError::Tenant(_) => "invalid".into(),
    };
    state
        .metrics
        .query_rejected
        .with_label_values(&[tenant.as_str(), e.reason()])
        .inc();
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

/// A read admitted under its tenants' limits: the strictest limits of its tenants, a pass
/// through each tenant's concurrency gate (held until dropped) and the budget of series and
/// samples it may read.
#[derive(Debug)]
pub(crate) struct Admitted {
    pub(crate) limits: ReadLimits,
    pub(crate) budget: Arc<QueryBudget>,
    _passes: Vec<GatePass>,
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

/// Admits a read of `scope` or refuses it with 429 when one of its tenants already runs as
/// many queries as it may.
pub(crate) fn admit(state: &AppRef, scope: &Scope) -> Result<Admitted, ApiError> {
    let config = state.limits.get();
    let mut limits: Option<ReadLimits> = None;
    let mut passes = Vec::with_capacity(scope.tenants().len());
    for t in scope.tenants() {
        let l = &config.for_tenant(t).read;
        let Some(pass) = state.limits.gates().enter(t, l.max_concurrent_queries) else {
            return Err(ApiError::Limit {
                limit: "max_concurrent_queries",
                status: StatusCode::TOO_MANY_REQUESTS,
                message: format!(
                    "tenant {t} already runs {} queries; retry later",
                    l.max_concurrent_queries
                ),
            });
        };
        passes.push(pass);
        limits = Some(match limits {
            None => l.clone(),
            Some(m) => ReadLimits {
                max_series_per_query: min_limit(m.max_series_per_query, l.max_series_per_query),
                max_samples_per_query: min_limit(m.max_samples_per_query, l.max_samples_per_query),
                max_query_range: min_duration(m.max_query_range, l.max_query_range),
                max_concurrent_queries: min_limit(
                    m.max_concurrent_queries,
                    l.max_concurrent_queries,
                ),
                query_timeout: min_duration(m.query_timeout, l.query_timeout),
            },
        });
    }
    let limits = limits.unwrap_or_default();
    let budget = Arc::new(QueryBudget::new(
        limits.max_series_per_query,
        limits.max_samples_per_query,
    ));
    Ok(Admitted {
        limits,
        budget,
        _passes: passes,
    })
}

/// The tenant label for logs when no scope could be established.
pub(crate) fn requested_label(headers: &axum::http::HeaderMap) -> String {
    match requested_tenants(headers, Access::Read) {
        Ok(Some(t)) => t.iter().map(|t| t.as_str()).collect::<Vec<_>>().join("|"),
        Ok(None) => "default".into(),
        Err(_) => "invalid".into(),
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
}
