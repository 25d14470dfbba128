//! Who is calling and which tenants they may use, decided once for every endpoint.
//!
//! [`Authenticator::authenticate`] takes the request's headers (an HTTP `HeaderMap`; a gRPC
//! `MetadataMap` converts into one) and the kind of access, and answers the [`Scope`]: the
//! tenants the request acts on. Three modes (`--auth`):
//!
//! - `header` (default, as Thanos): trust `THANOS-TENANT` / `X-Scope-OrgID`, else
//!   `default-tenant`. Reads may name several tenants, `a|b` (Cortex style).
//! - `token`: `Authorization: Bearer <token>`, looked up in the tokens file (re-read when it
//!   changes), which says which tenants each token may write and read. The tenant headers
//!   choose among those (default: the token's own tenant). Missing or unknown tokens are
//!   [`AuthError::Unauthenticated`] (401), a tenant the token may not use
//!   [`AuthError::Forbidden`] (403). Tokens are kept as SHA-256 digests, compared in constant
//!   time, and never logged: messages name the token by its `name`.
//! - `none`: every request belongs to `default-tenant`, whatever its headers say.
//!
//! Reads granted by a regular expression (`read_regex` in the tokens file): a read that
//! names its tenants gets exactly those, each checked against the grant (403 for one
//! outside it). A read that names none, by a token without an explicit `tenant`, reads every
//! *known* tenant the token may read: the tenants of its `read` list and the tenants holding
//! data (heads in the ingester or blocks in the catalog, listed by the [`KnownTenants`]
//! provider) that the expression matches. The headers take tenant ids only, never patterns
//! (as in Cortex and Mimir, `|` separates literal ids); to see fewer tenants, name them, or
//! narrow in the query with a `tenant_id` matcher, which can only narrow, never widen.
//!
//! The input is transport-neutral: an `http::HeaderMap`, which axum hands over as is and
//! tonic's `MetadataMap` converts to (`as_ref`, `into_headers`). Every [`AuthError`] says
//! which [`ErrorCode`] it is ([`ServiceError`]): HTTP ([`ErrorCode::http_status`]) and gRPC
//! ([`crate::grpc::status`]) answer through that one mapping.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use http::HeaderMap;
use hypnos_schemas::{ErrorCode, SchemaError, ServiceError, TenantId};
use regex::Regex;
use serde::Deserialize;
use subtle::ConstantTimeEq;
use thiserror::Error;

use crate::reload::Reloading;

/// Thanos' tenant header.
pub const THANOS_TENANT: &str = "thanos-tenant";
/// Cortex' and Mimir's tenant header.
pub const SCOPE_ORG_ID: &str = "x-scope-orgid";
/// Separator of several tenants in one header (Cortex' federation).
pub const TENANT_SEPARATOR: char = '|';
/// The most tenants one read may name by default (`--tenant-federation.max-tenants`).
pub const DEFAULT_MAX_TENANTS: usize = 100;

/// `--auth`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AuthMode {
    /// Trust the tenant headers (`THANOS-TENANT`, `X-Scope-OrgID`), else `default-tenant`.
    #[default]
    Header,
    /// Bearer tokens from `--auth.tokens-file`.
    Token,
    /// Everything belongs to `default-tenant`.
    None,
}

impl AuthMode {
    /// Every mode, as `--auth` spells it.
    pub const NAMES: [&'static str; 3] = ["header", "token", "none"];

    /// The mode as `--auth` spells it.
    pub fn name(self) -> &'static str {
        match self {
            AuthMode::Header => "header",
            AuthMode::Token => "token",
            AuthMode::None => "none",
        }
    }
}

impl std::fmt::Display for AuthMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for AuthMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "header" => Ok(AuthMode::Header),
            "token" => Ok(AuthMode::Token),
            "none" => Ok(AuthMode::None),
            other => Err(format!(
                "invalid auth mode {other:?}, expected one of: {}",
                AuthMode::NAMES.join(", ")
            )),
        }
    }
}

/// What a request does with its tenants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Remote write: exactly one tenant.
    Write,
    /// Queries and metadata: one or more tenants.
    Read,
    /// Operations on every tenant (flush, usage of all tenants).
    Admin,
    /// Reading `/metrics` (every tenant's volumes): open in `header` and `none` modes, for
    /// tokens with `metrics: true` or `admin: true` in `token` mode.
    Metrics,
}

impl Access {
    fn verb(self) -> &'static str {
        match self {
            Access::Write => "write",
            Access::Read => "read",
            Access::Admin => "administer",
            Access::Metrics => "read the metrics of",
        }
    }
}

/// The tenants a request may act on, after authentication: never empty, sorted, unique.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    tenants: Vec<TenantId>,
    /// The token's name (never the token) in `token` mode.
    principal: Option<Arc<str>>,
    /// The caller may see every tenant (admin tokens; `header` and `none` modes trust all).
    admin: bool,
}

impl Scope {
    pub fn tenants(&self) -> &[TenantId] {
        &self.tenants
    }

    /// The tenant of a single-tenant request (the first one otherwise).
    pub fn first(&self) -> &TenantId {
        &self.tenants[0]
    }

    /// The tenants joined by `|`, as a federated header names them.
    pub fn label(&self) -> String {
        let v: Vec<&str> = self.tenants.iter().map(TenantId::as_str).collect();
        v.join("|")
    }

    pub fn principal(&self) -> Option<&str> {
        self.principal.as_deref()
    }

    pub fn is_admin(&self) -> bool {
        self.admin
    }
}

/// A header that names the tenant could not be used (HTTP 400).
#[derive(Debug, Error)]
pub enum TenantError {
    #[error("invalid tenant in header {header}: {source}")]
    Invalid {
        header: &'static str,
        #[source]
        source: SchemaError,
    },
    #[error("invalid tenant in header {header}: the value is not valid UTF-8")]
    NotUtf8 { header: &'static str },
    #[error("a write goes to one tenant, header {header} names {count}")]
    SeveralForWrite { header: &'static str, count: usize },
    #[error(
        "token {token:?} has no tenant of its own: name one with THANOS-TENANT or X-Scope-OrgID"
    )]
    NoDefault { token: Arc<str> },
    #[error(
        "token {token:?} reads the tenants its read_regex matches, and none of them holds data \
         yet: name one with THANOS-TENANT or X-Scope-OrgID"
    )]
    NoneKnown { token: Arc<str> },
    #[error("header {header} names {count} tenants, at most {max} may be read at once")]
    TooMany {
        header: &'static str,
        count: usize,
        max: usize,
    },
}

/// Why a request may not proceed.
#[derive(Debug, Error)]
pub enum AuthError {
    /// No usable credentials (HTTP 401 with `WWW-Authenticate: Bearer`).
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// Valid credentials that do not cover the tenant (HTTP 403).
    #[error("token {token:?} may not {verb} tenant {tenant}")]
    Forbidden {
        token: Arc<str>,
        verb: &'static str,
        tenant: String,
    },
    /// The tenant headers are invalid (HTTP 400).
    #[error(transparent)]
    Tenant(#[from] TenantError),
    /// A valid token that may not do something that concerns no single tenant, such as
    /// reading `/metrics` (HTTP 403).
    #[error("token {token:?} may not {what}")]
    NotAllowed { token: Arc<str>, what: &'static str },
    /// Admin endpoints in `header` or `none` mode without `--web.enable-admin-api` (HTTP 503
    /// `unavailable`, as Prometheus answers).
    #[error("admin APIs disabled")]
    AdminDisabled,
}

impl AuthError {
    /// The `reason` label of rejection metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::Unauthenticated(_) => "unauthenticated",
            AuthError::Forbidden { .. } => "forbidden",
            AuthError::Tenant(_) => "invalid_tenant",
            AuthError::NotAllowed { .. } => "forbidden",
            AuthError::AdminDisabled => "admin_disabled",
        }
    }
}

impl ServiceError for AuthError {
    fn error_code(&self) -> ErrorCode {
        match self {
            AuthError::Unauthenticated(_) => ErrorCode::Unauthenticated,
            AuthError::Forbidden { .. } | AuthError::NotAllowed { .. } => {
                ErrorCode::PermissionDenied
            }
            AuthError::Tenant(_) => ErrorCode::BadRequest,
            AuthError::AdminDisabled => ErrorCode::Unavailable,
        }
    }
}

/// Lists the tenants that hold data now: the tenants a read granted by a regular
/// expression covers when it names none.
#[derive(Clone)]
pub struct KnownTenants(Arc<dyn Fn() -> BTreeSet<TenantId> + Send + Sync>);

impl KnownTenants {
    pub fn new(f: impl Fn() -> BTreeSet<TenantId> + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    fn list(&self) -> BTreeSet<TenantId> {
        (self.0)()
    }
}

impl std::fmt::Debug for KnownTenants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KnownTenants")
    }
}

/// Decides the [`Scope`] of requests; one per process, shared by every endpoint.
#[derive(Debug)]
pub struct Authenticator {
    mode: AuthMode,
    tokens: Option<Arc<Reloading<TokenTable>>>,
    /// Where the tenants of regex-granted reads come from (none known without it).
    known: Option<KnownTenants>,
    /// `--web.enable-admin-api`: admin endpoints in `header` and `none` modes.
    admin_api: bool,
    /// The most tenants one request may name.
    max_tenants: usize,
}

impl Authenticator {
    /// The tokens in force (an empty table when there is no tokens file).
    fn token_table(&self) -> Arc<TokenTable> {
        self.tokens
            .as_ref()
            .map(|t| t.get())
            .unwrap_or_else(|| Arc::new(TokenTable::default()))
    }

    /// `mode`, with the tokens file read now when `mode` is `token` (it must be given then).
    pub fn new(mode: AuthMode, tokens_file: Option<&Path>) -> anyhow::Result<Self> {
        let tokens = match (mode, tokens_file) {
            (AuthMode::Token, Some(p)) => {
                Some(Reloading::load(p, "tokens file", TokenTable::parse)?)
            }
            (AuthMode::Token, None) => {
                anyhow::bail!("--auth=token needs --auth.tokens-file")
            }
            (_, Some(_)) => anyhow::bail!("--auth.tokens-file is only used with --auth=token"),
            (_, None) => None,
        };
        Ok(Self {
            mode,
            tokens,
            known: None,
            admin_api: false,
            max_tenants: DEFAULT_MAX_TENANTS,
        })
    }

    /// The same, with the admin endpoints open in `header` and `none` modes when
    /// `enabled` (in `token` mode only admin tokens use them, flag or not).
    pub fn with_admin_api(self, enabled: bool) -> Self {
        Self {
            admin_api: enabled,
            ..self
        }
    }

    /// The same, refusing requests that name more than `max` tenants (at least 1).
    pub fn with_max_tenants(self, max: usize) -> Self {
        Self {
            max_tenants: max.max(1),
            ..self
        }
    }

    /// The same, listing the tenants that hold data with `known`.
    pub fn with_known_tenants(self, known: KnownTenants) -> Self {
        Self {
            known: Some(known),
            ..self
        }
    }

    /// The tokens file, to watch for changes.
    pub fn tokens(&self) -> Option<&Arc<Reloading<TokenTable>>> {
        self.tokens.as_ref()
    }

    pub fn mode(&self) -> AuthMode {
        self.mode
    }

    /// Whether the tokens file names `tenant` (for the bounded metric labels).
    pub fn names_tenant(&self, tenant: &TenantId) -> bool {
        self.tokens.as_ref().is_some_and(|t| t.get().names(tenant))
    }

    /// The scope of a request with `headers` doing `access`.
    pub fn authenticate(&self, headers: &HeaderMap, access: Access) -> Result<Scope, AuthError> {
        if access == Access::Metrics {
            return self.authenticate_metrics(headers);
        }
        if access == Access::Admin && self.mode != AuthMode::Token && !self.admin_api {
            return Err(AuthError::AdminDisabled);
        }
        match self.mode {
            AuthMode::None => Ok(Scope {
                tenants: vec![TenantId::default_tenant()],
                principal: None,
                admin: true,
            }),
            AuthMode::Header => {
                let tenants = requested_tenants(headers, access, self.max_tenants)?
                    .unwrap_or_else(|| vec![TenantId::default_tenant()]);
                Ok(Scope {
                    tenants,
                    principal: None,
                    admin: true,
                })
            }
            AuthMode::Token => {
                let table = self.token_table();
                let presented = bearer(headers)?;
                let entry = table
                    .find(presented)
                    .ok_or(AuthError::Unauthenticated("unknown bearer token"))?;
                // Admin rights concern no single tenant: a token without them is refused
                // (403) before its tenant is looked for.
                if access == Access::Admin && !entry.admin {
                    return Err(AuthError::NotAllowed {
                        token: Arc::clone(&entry.name),
                        what: "use the admin API (it needs admin: true)",
                    });
                }
                let tenants = match requested_tenants(headers, access, self.max_tenants)? {
                    Some(t) => t,
                    None if access == Access::Read
                        && entry.read_regex.is_some()
                        && !entry.explicit_tenant =>
                    {
                        self.granted_known(entry)?
                    }
                    // Admin tokens without a tenant of their own fall back to the default one.
                    None => vec![
                        entry
                            .default
                            .clone()
                            .or_else(|| entry.admin.then(TenantId::default_tenant))
                            .ok_or_else(|| TenantError::NoDefault {
                                token: Arc::clone(&entry.name),
                            })?,
                    ],
                };
                let forbidden = |tenant: &TenantId| AuthError::Forbidden {
                    token: Arc::clone(&entry.name),
                    verb: access.verb(),
                    tenant: tenant.to_string(),
                };
                for t in &tenants {
                    let allowed = match access {
                        Access::Write => entry.write.contains(t),
                        Access::Read => entry.may_read(t),
                        Access::Admin => entry.admin,
                        Access::Metrics => entry.admin || entry.metrics,
                    };
                    if !allowed {
                        return Err(forbidden(t));
                    }
                }
                Ok(Scope {
                    tenants,
                    principal: Some(Arc::clone(&entry.name)),
                    admin: entry.admin,
                })
            }
        }
    }

    /// `/metrics`: open but for `token` mode, where the token needs `metrics` or `admin`.
    /// The scope names the default tenant (the metrics concern every tenant).
    fn authenticate_metrics(&self, headers: &HeaderMap) -> Result<Scope, AuthError> {
        let (principal, admin) = match self.mode {
            AuthMode::None | AuthMode::Header => (None, false),
            AuthMode::Token => {
                let table = self.token_table();
                let entry = table
                    .find(bearer(headers)?)
                    .ok_or(AuthError::Unauthenticated("unknown bearer token"))?;
                if !(entry.admin || entry.metrics) {
                    return Err(AuthError::NotAllowed {
                        token: Arc::clone(&entry.name),
                        what: "read /metrics (it needs metrics: true or admin: true)",
                    });
                }
                (Some(Arc::clone(&entry.name)), entry.admin)
            }
        };
        Ok(Scope {
            tenants: vec![TenantId::default_tenant()],
            principal,
            admin,
        })
    }

    /// Every tenant `entry` may read among its `read` list and the known tenants; refused
    /// when there is none (a scope is never empty).
    fn granted_known(&self, entry: &TokenEntry) -> Result<Vec<TenantId>, TenantError> {
        let mut tenants = entry.read.clone();
        if let Some(known) = &self.known {
            tenants.extend(known.list().into_iter().filter(|t| entry.may_read(t)));
        }
        if tenants.is_empty() {
            return Err(TenantError::NoneKnown {
                token: Arc::clone(&entry.name),
            });
        }
        Ok(tenants.into_iter().collect())
    }
}

/// The token of `Authorization: Bearer <token>`.
fn bearer(headers: &HeaderMap) -> Result<&str, AuthError> {
    let missing = AuthError::Unauthenticated(
        "missing bearer token: send the header Authorization: Bearer <token>",
    );
    let v = headers.get(http::header::AUTHORIZATION).ok_or(missing)?;
    let v = v
        .to_str()
        .map_err(|_| AuthError::Unauthenticated("malformed Authorization header"))?;
    let (scheme, token) = v
        .trim()
        .split_once(' ')
        .ok_or(AuthError::Unauthenticated("malformed Authorization header"))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(AuthError::Unauthenticated(
            "the Authorization header must be Bearer <token>",
        ));
    }
    Ok(token.trim())
}

/// The tenants the headers name: `THANOS-TENANT`, else `X-Scope-OrgID`; `None` when neither
/// is present (an empty header counts as absent, as in Thanos). Several tenants, `a|b`, only
/// for reads, at most `max` of them (counted before any is parsed).
pub fn requested_tenants(
    headers: &HeaderMap,
    access: Access,
    max: usize,
) -> Result<Option<Vec<TenantId>>, TenantError> {
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
        let count = v.split(TENANT_SEPARATOR).count();
        if access != Access::Write && count > max {
            return Err(TenantError::TooMany {
                header: shown,
                count,
                max,
            });
        }
        let mut tenants = BTreeSet::new();
        for part in v.split(TENANT_SEPARATOR) {
            let t = TenantId::new(part.trim()).map_err(|source| TenantError::Invalid {
                header: shown,
                source,
            })?;
            tenants.insert(t);
        }
        if access == Access::Write && tenants.len() > 1 {
            return Err(TenantError::SeveralForWrite {
                header: shown,
                count: tenants.len(),
            });
        }
        return Ok(Some(tenants.into_iter().collect()));
    }
    Ok(None)
}

/// The tokens file:
///
/// ```yaml
/// tokens:
///   - name: team-a-prometheus   # shown in logs and errors instead of the token
///     token: "…"                # the bearer token
///     tenant: team-a            # default tenant (else the first of write, else of read)
///     write: [team-a]           # tenants it may write
///     read: [team-a, shared]    # tenants it may read (a list) …
///     read_regex: "team-.*"     # … and/or a fully anchored regex over tenant ids; without
///                               # an explicit `tenant`, reads naming no tenant see every
///                               # known tenant it matches (and the `read` list)
///     admin: false              # flush, usage of every tenant, /metrics
///     metrics: false            # may read /metrics (every tenant's volumes)
/// ```
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    tokens: Vec<TokenSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenSpec {
    name: String,
    token: String,
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    write: Vec<String>,
    #[serde(default)]
    read: Vec<String>,
    #[serde(default)]
    read_regex: Option<String>,
    #[serde(default)]
    admin: bool,
    #[serde(default)]
    metrics: bool,
}

impl std::fmt::Debug for TokenSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSpec")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// One token of the file, ready to check.
#[derive(Debug)]
pub struct TokenEntry {
    name: Arc<str>,
    /// SHA-256 of the token.
    digest: [u8; 32],
    default: Option<TenantId>,
    /// `default` was given as `tenant` (not taken from the lists).
    explicit_tenant: bool,
    write: BTreeSet<TenantId>,
    read: BTreeSet<TenantId>,
    read_regex: Option<Regex>,
    admin: bool,
    /// May read `/metrics`.
    metrics: bool,
}

impl TokenEntry {
    fn may_read(&self, t: &TenantId) -> bool {
        self.admin
            || self.read.contains(t)
            || self
                .read_regex
                .as_ref()
                .is_some_and(|r| r.is_match(t.as_str()))
    }
}

/// Every token of the tokens file.
#[derive(Debug, Default)]
pub struct TokenTable {
    entries: Vec<TokenEntry>,
}

fn digest(token: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

impl TokenTable {
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: TokensFile = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
        let mut entries = Vec::with_capacity(file.tokens.len());
        let tenant =
            |name: &str, s: &str| TenantId::new(s).map_err(|e| format!("token {name:?}: {e}"));
        for spec in file.tokens {
            let name = spec.name.as_str();
            if spec.token.trim().is_empty() || spec.token.trim() != spec.token {
                return Err(format!(
                    "token {name:?}: the token is empty or has surrounding spaces"
                ));
            }
            let d = digest(&spec.token);
            if entries
                .iter()
                .any(|e: &TokenEntry| bool::from(e.digest.ct_eq(&d)))
            {
                return Err(format!("token {name:?}: the same token is listed twice"));
            }
            let write = spec
                .write
                .iter()
                .map(|s| tenant(name, s))
                .collect::<Result<BTreeSet<_>, _>>()?;
            let read = spec
                .read
                .iter()
                .map(|s| tenant(name, s))
                .collect::<Result<BTreeSet<_>, _>>()?;
            let read_regex = spec
                .read_regex
                .as_deref()
                .map(|r| {
                    Regex::new(&format!("^(?:{r})$"))
                        .map_err(|e| format!("token {name:?}: invalid read_regex: {e}"))
                })
                .transpose()?;
            let default = match &spec.tenant {
                Some(t) => Some(tenant(name, t)?),
                None => spec
                    .write
                    .first()
                    .or(spec.read.first())
                    .map(|s| tenant(name, s))
                    .transpose()?,
            };
            entries.push(TokenEntry {
                name: Arc::from(name),
                digest: d,
                default,
                explicit_tenant: spec.tenant.is_some(),
                write,
                read,
                read_regex,
                admin: spec.admin,
                metrics: spec.metrics,
            });
        }
        Ok(Self { entries })
    }

    /// Whether a token names `tenant` (as its tenant, or in its write or read list).
    fn names(&self, tenant: &TenantId) -> bool {
        self.entries.iter().any(|e| {
            e.default.as_ref() == Some(tenant)
                || e.write.contains(tenant)
                || e.read.contains(tenant)
        })
    }

    /// The entry of `token`: every entry is compared (in constant time, on digests), so the
    /// time taken says nothing about how close a guess was.
    fn find(&self, token: &str) -> Option<&TokenEntry> {
        let d = digest(token);
        let mut found = None;
        for e in &self.entries {
            if bool::from(e.digest.ct_eq(&d)) {
                found = Some(e);
            }
        }
        found
    }
}

#[cfg(test)]
mod tests;
