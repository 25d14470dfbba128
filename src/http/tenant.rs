//! The caller's tenant, from `THANOS-TENANT`, else `X-Scope-OrgID`, else `default-tenant`;
//! the same rule for writes, queries and metadata.

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use hypnos_schemas::TenantId;

use super::errors::{ApiError, TenantError};

/// Thanos' tenant header.
pub(crate) const THANOS_TENANT: &str = "thanos-tenant";
/// Cortex' and Mimir's tenant header.
pub(crate) const SCOPE_ORG_ID: &str = "x-scope-orgid";

/// The tenant named by the request's headers. An empty header counts as absent, as in
/// Thanos; a present one must be a valid tenant id.
pub(crate) fn tenant_from_headers(headers: &HeaderMap) -> Result<TenantId, TenantError> {
    for (name, shown) in [
        (THANOS_TENANT, "THANOS-TENANT"),
        (SCOPE_ORG_ID, "X-Scope-OrgID"),
    ] {
        let Some(v) = headers.get(name) else { continue };
        let v = v
            .to_str()
            .map_err(|_| TenantError::NotUtf8 { header: shown })?
            .trim();
        if v.is_empty() {
            continue;
        }
        return TenantId::new(v).map_err(|source| TenantError::Invalid {
            header: shown,
            source,
        });
    }
    Ok(TenantId::default_tenant())
}

/// Extractor of the caller's tenant for the JSON API (invalid tenants answer 400
/// `bad_data`).
#[derive(Clone, Debug)]
pub(crate) struct Tenant(pub(crate) TenantId);

impl<S: Send + Sync> FromRequestParts<S> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Tenant(tenant_from_headers(&parts.headers)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn tenant(pairs: &[(&'static str, &str)]) -> Result<String, String> {
        tenant_from_headers(&headers(pairs))
            .map(|t| t.to_string())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn precedence_and_default() {
        assert_eq!(tenant(&[]).unwrap(), "default-tenant");
        assert_eq!(tenant(&[("x-scope-orgid", "mimir")]).unwrap(), "mimir");
        assert_eq!(
            tenant(&[("thanos-tenant", "thanos"), ("x-scope-orgid", "mimir")]).unwrap(),
            "thanos"
        );
        // Header names are case-insensitive; empty values count as absent.
        assert_eq!(
            tenant(&[("THANOS-TENANT", ""), ("X-Scope-OrgID", "b")]).unwrap(),
            "b"
        );
        assert_eq!(tenant(&[("thanos-tenant", " ")]).unwrap(), "default-tenant");
    }

    #[test]
    fn invalid_tenants_name_the_problem() {
        let e = tenant(&[("thanos-tenant", "a/b")]).unwrap_err();
        assert!(e.contains("THANOS-TENANT") && e.contains("\"a/b\""), "{e}");
        let e = tenant(&[("x-scope-orgid", "a|b")]).unwrap_err();
        assert!(e.contains("X-Scope-OrgID"), "{e}");
        let e = tenant(&[("thanos-tenant", &"x".repeat(151))]).unwrap_err();
        assert!(e.contains("150"), "{e}");
        let mut h = HeaderMap::new();
        h.insert("thanos-tenant", HeaderValue::from_bytes(b"\xff").unwrap());
        assert!(tenant_from_headers(&h).is_err());
    }
}
