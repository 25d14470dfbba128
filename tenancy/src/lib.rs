//! Who is calling and what they may do, decided once for every service (the HTTP API, the
//! gRPC/Flight services, the ruler):
//!
//! - [`auth`]: the authentication modes (`header`, `token`, `none`), the tokens file and the
//!   [`Scope`] of a request (its tenants);
//! - [`limits`]: the limits file (write, read and retention limits per tenant), the admission
//!   of reads under their tenants' limits, and the typed [`LimitError`] of a crossed limit;
//! - [`usage`]: the CPU time of reads and its split among their tenants;
//! - [`grpc`]: the same authentication for gRPC services (an interceptor);
//! - [`reload`]: configuration files re-read when they change (tokens, limits).
//!
//! [`AuthError`] and [`LimitError`] say which [`hypnos_schemas::ErrorCode`] they are
//! ([`hypnos_schemas::ServiceError`]); HTTP and gRPC answer them through that one mapping.
//!
//! Depends on `hypnos-schemas` only.

pub mod auth;
pub mod grpc;
pub mod limits;
pub mod reload;
pub mod usage;

pub use auth::{
    Access, AuthError, AuthMode, Authenticator, DEFAULT_MAX_TENANTS, KnownTenants, Scope,
    TenantError,
};
pub use limits::{
    Admission, GatePass, LimitError, Limits, LimitsConfig, QueryGates, ReadLimits, TenantLimits,
};
pub use reload::{RELOAD_INTERVAL, Reloading};
