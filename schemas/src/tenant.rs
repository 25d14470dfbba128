//! Tenant identifiers: validated once, at the edge, because they become object-store paths.

use std::fmt;
use std::sync::Arc;

use crate::SchemaError;

/// The tenant of writes and queries that name none (Thanos' default).
pub const DEFAULT_TENANT: &str = "default-tenant";

/// The label that carries a series' tenant, as Thanos receive attaches it.
pub const TENANT_LABEL: &str = "tenant_id";

/// Longest tenant id accepted (Cortex uses the same bound).
pub const MAX_TENANT_LEN: usize = 150;

/// A validated tenant id: 1 to 150 of `[A-Za-z0-9_.-]`, not `.` or `..`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(Arc<str>);

impl TenantId {
    /// Validates `s` as a tenant id.
    pub fn new(s: &str) -> Result<Self, SchemaError> {
        if s.is_empty() {
            return Err(SchemaError::InvalidTenant(s.into(), "empty"));
        }
        if s.len() > MAX_TENANT_LEN {
            return Err(SchemaError::InvalidTenant(
                s.into(),
                "longer than 150 characters",
            ));
        }
        if s == "." || s == ".." {
            return Err(SchemaError::InvalidTenant(s.into(), "reserved name"));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        {
            return Err(SchemaError::InvalidTenant(
                s.into(),
                "only letters, digits, '_', '-' and '.' are allowed",
            ));
        }
        Ok(Self(Arc::from(s)))
    }

    /// The default tenant.
    pub fn default_tenant() -> Self {
        Self(Arc::from(DEFAULT_TENANT))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantId({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates() {
        assert!(TenantId::new("team-a_1.prod").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", "ü", &"x".repeat(151)] {
            assert!(TenantId::new(bad).is_err(), "{bad:?} accepted");
        }
    }
}
