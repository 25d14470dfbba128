//! Identity on gRPC is the identity of HTTP: the same [`Authenticator`] reads the request
//! metadata (`authorization: Bearer <token>`, `thanos-tenant`, `x-scope-orgid`) as it reads
//! HTTP headers. Services wrap themselves with [`AuthInterceptor`] (e.g.
//! `FlightServiceServer::with_interceptor(svc, AuthInterceptor::new(auth, Access::Read))`)
//! and find the caller's [`Scope`] with [`scope_of`]. Refusals become gRPC statuses through
//! their [`ErrorCode`] ([`status`]), the mapping HTTP uses too: unauthenticated (HTTP 401) is
//! `UNAUTHENTICATED`, forbidden (403) `PERMISSION_DENIED`, an invalid tenant header (400)
//! `INVALID_ARGUMENT`.

use std::sync::Arc;

use hypnos_schemas::{ErrorCode, ServiceError};
use tonic::metadata::MetadataMap;
use tonic::service::Interceptor;
use tonic::{Code, Request, Status};

use crate::auth::{Access, Authenticator, Scope};

/// The gRPC status of an error that can be answered to a caller.
pub fn status<E: ServiceError + ?Sized>(e: &E) -> Status {
    Status::new(code(e.error_code()), e.to_string())
}

/// The gRPC code of `code` ([`ErrorCode::grpc_code`]).
pub fn code(code: ErrorCode) -> Code {
    Code::from_i32(code.grpc_code() as i32)
}

/// Authenticates a gRPC request by its metadata for `access`.
pub fn authenticate(
    auth: &Authenticator,
    metadata: &MetadataMap,
    access: Access,
) -> Result<Scope, Status> {
    auth.authenticate(metadata.as_ref(), access)
        .map_err(|e| status(&e))
}

/// Authenticates every request of a service for one kind of access and leaves the caller's
/// [`Scope`] in the request's extensions (read it with [`scope_of`]).
#[derive(Clone, Debug)]
pub struct AuthInterceptor {
    auth: Arc<Authenticator>,
    access: Access,
}

impl AuthInterceptor {
    pub fn new(auth: Arc<Authenticator>, access: Access) -> Self {
        Self { auth, access }
    }
}

impl Interceptor for AuthInterceptor {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        let scope = authenticate(&self.auth, req.metadata(), self.access)?;
        req.extensions_mut().insert(scope);
        Ok(req)
    }
}

/// The scope [`AuthInterceptor`] left in `req`; `INTERNAL` when the service was not wrapped.
pub fn scope_of<T>(req: &Request<T>) -> Result<&Scope, Status> {
    req.extensions()
        .get::<Scope>()
        .ok_or_else(|| Status::internal("the service is not behind the authentication interceptor"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::AuthMode;
    use crate::limits::LimitError;
    use std::time::Duration;
    use tonic::metadata::MetadataValue;

    fn request(pairs: &[(&'static str, &str)]) -> Request<()> {
        let mut req = Request::new(());
        for (k, v) in pairs {
            req.metadata_mut()
                .insert(*k, MetadataValue::try_from(*v).unwrap());
        }
        req
    }

    #[test]
    fn interceptor_authenticates_like_http() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tokens.yml");
        std::fs::write(
            &p,
            "tokens:\n  - {name: reader, token: tok-r, read: [a, b]}\n  - {name: writer, token: tok-w, write: [a]}\n",
        )
        .unwrap();
        let auth = Arc::new(Authenticator::new(AuthMode::Token, Some(&p)).unwrap());
        let mut read = AuthInterceptor::new(Arc::clone(&auth), Access::Read);
        let code = |i: &mut AuthInterceptor, pairs| i.call(request(pairs)).unwrap_err().code();
        // No token, a wrong token, another scheme: UNAUTHENTICATED (HTTP 401).
        assert_eq!(code(&mut read, &[]), Code::Unauthenticated);
        assert_eq!(
            code(&mut read, &[("authorization", "Bearer nope")]),
            Code::Unauthenticated
        );
        assert_eq!(
            code(&mut read, &[("authorization", "Basic dTpw")]),
            Code::Unauthenticated
        );
        // A tenant outside the token's grant, or a write token reading: PERMISSION_DENIED.
        let e = read
            .call(request(&[
                ("authorization", "Bearer tok-r"),
                ("x-scope-orgid", "a|c"),
            ]))
            .unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied);
        assert!(e.message().contains("may not read tenant c"), "{e:?}");
        assert!(!e.message().contains("tok-r"), "{e:?}");
        assert_eq!(
            code(&mut read, &[("authorization", "Bearer tok-w")]),
            Code::PermissionDenied
        );
        // An invalid tenant: INVALID_ARGUMENT.
        assert_eq!(
            code(
                &mut read,
                &[("authorization", "Bearer tok-r"), ("thanos-tenant", "a/b")]
            ),
            Code::InvalidArgument
        );
        // Allowed: the scope travels to the handler.
        let req = read
            .call(request(&[
                ("authorization", "Bearer tok-r"),
                ("x-scope-orgid", "b|a"),
            ]))
            .unwrap();
        let scope = scope_of(&req).unwrap();
        let tenants: Vec<&str> = scope.tenants().iter().map(|t| t.as_str()).collect();
        assert_eq!(tenants, ["a", "b"]);
        assert_eq!(scope.principal(), Some("reader"));
        let mut write = AuthInterceptor::new(auth, Access::Write);
        assert!(
            write
                .call(request(&[("authorization", "Bearer tok-w")]))
                .is_ok()
        );
        // A service not behind the interceptor is an internal error, not an open door.
        assert_eq!(
            scope_of(&Request::new(())).unwrap_err().code(),
            Code::Internal
        );
    }

    #[test]
    fn errors_map_through_their_code() {
        let e = crate::auth::AuthError::AdminDisabled;
        assert_eq!(status(&e).code(), Code::Unavailable);
        assert_eq!(status(&e).message(), "admin APIs disabled");
        let e = LimitError::ConcurrentQueries {
            tenant: hypnos_schemas::TenantId::new("a").unwrap(),
            max: 2,
        };
        assert_eq!(status(&e).code(), Code::ResourceExhausted);
        let e = LimitError::QueryTimeout {
            timeout: Duration::from_secs(1),
        };
        assert_eq!(status(&e).code(), Code::DeadlineExceeded);
        for c in [
            ErrorCode::Internal,
            ErrorCode::Unauthenticated,
            ErrorCode::BadRequest,
        ] {
            assert_eq!(code(c) as i32, c.grpc_code() as i32);
        }
    }
}
