//! The gRPC server. For now it only serves the standard health service
//! (`grpc.health.v1.Health`), reporting SERVING for the whole server; the Store API and
//! Arrow Flight come with later issues.
//!
//! Identity on gRPC is the identity of HTTP: the same [`Authenticator`] reads the request
//! metadata (`authorization: Bearer <token>`, `thanos-tenant`, `x-scope-orgid`) as it reads
//! HTTP headers. Services wrap themselves with [`AuthInterceptor`] (e.g.
//! `FlightServiceServer::with_interceptor(svc, AuthInterceptor::new(auth, Access::Read))`)
//! and find the caller's [`Scope`] with [`scope_of`]; [`auth_status`] maps refusals to
//! codes: unauthenticated (HTTP 401) to `UNAUTHENTICATED`, forbidden (403) to
//! `PERMISSION_DENIED`, an invalid tenant header (400) to `INVALID_ARGUMENT`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::metadata::MetadataMap;
use tonic::service::Interceptor;
use tonic::transport::Server;
use tonic::transport::server::{Connected, TcpConnectInfo, TcpIncoming};
use tonic::{Request, Status};
use tonic_health::ServingStatus;

use crate::auth::{Access, AuthError, Authenticator, Scope};
use crate::http::TimeoutIo;

/// The gRPC status of a refused request.
pub(crate) fn auth_status(e: &AuthError) -> Status {
    let msg = e.to_string();
    match e {
        AuthError::Unauthenticated(_) => Status::unauthenticated(msg),
        AuthError::Forbidden { .. } => Status::permission_denied(msg),
        AuthError::Tenant(_) => Status::invalid_argument(msg),
        AuthError::NotAllowed { .. } => Status::permission_denied(msg),
        AuthError::AdminDisabled => Status::unavailable(msg),
    }
}

/// Authenticates a gRPC request by its metadata for `access`.
pub(crate) fn authenticate(
    auth: &Authenticator,
    metadata: &MetadataMap,
    access: Access,
) -> Result<Scope, Status> {
    auth.authenticate(metadata.as_ref(), access)
        .map_err(|e| auth_status(&e))
}

/// Authenticates every request of a service for one kind of access and leaves the caller's
/// [`Scope`] in the request's extensions (read it with [`scope_of`]).
#[derive(Clone, Debug)]
pub(crate) struct AuthInterceptor {
    auth: Arc<Authenticator>,
    access: Access,
}

#[cfg_attr(
    not(test),
    expect(dead_code, reason = "the Flight services of a later issue use it")
)]
impl AuthInterceptor {
    pub(crate) fn new(auth: Arc<Authenticator>, access: Access) -> Self {
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
#[cfg_attr(
    not(test),
    expect(dead_code, reason = "the Flight services of a later issue use it")
)]
pub(crate) fn scope_of<T>(req: &Request<T>) -> Result<&Scope, Status> {
    req.extensions()
        .get::<Scope>()
        .ok_or_else(|| Status::internal("the service is not behind the authentication interceptor"))
}

/// How often an idle gRPC connection is pinged; one that does not answer within the same
/// time is closed.
const KEEPALIVE: Duration = Duration::from_secs(30);

/// Serves gRPC on `listener` until `shutdown` resolves, with at most
/// `limits.max_connections` connections open (further ones wait to be accepted); HTTP/2
/// keep-alive pings close connections whose peer is gone. Keep-alive starts only after the
/// HTTP/2 handshake, so a connection must also send its preface and first frame header
/// within `limits.header_read_timeout`, and one whose peer reads nothing for
/// `limits.write_timeout` is closed ([`TimeoutIo`]).
pub(crate) async fn serve(
    listener: TcpListener,
    limits: crate::http::ServeLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (reporter, health) = tonic_health::server::health_reporter();
    // The empty service name stands for the server as a whole.
    reporter
        .set_service_status("", ServingStatus::Serving)
        .await;
    Server::builder()
        .http2_keepalive_interval(Some(KEEPALIVE))
        .http2_keepalive_timeout(Some(KEEPALIVE))
        .max_concurrent_streams(Some(MAX_STREAMS_PER_CONNECTION))
        .add_service(health)
        .serve_with_incoming_shutdown(capped(listener, limits), shutdown)
        .await
        .context("gRPC server failed")
}

/// Concurrent requests (streams) on one gRPC connection.
const MAX_STREAMS_PER_CONNECTION: u32 = 256;

/// What a client sends first: the 24-byte HTTP/2 connection preface and the 9-byte header
/// of its SETTINGS frame.
const HANDSHAKE_START: usize = 24 + 9;

/// The connections of `listener`, at most `limits.max_connections` open at once: the next
/// one is accepted when one closes.
fn capped(
    listener: TcpListener,
    limits: crate::http::ServeLimits,
) -> impl futures::Stream<Item = std::io::Result<Capped>> {
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    futures::stream::unfold((incoming, slots), move |(mut incoming, slots)| async move {
        let slot = Arc::clone(&slots).acquire_owned().await.ok()?;
        let next = incoming.next().await?;
        Some((
            next.map(|stream| Capped {
                stream: TimeoutIo::new(stream, limits.write_timeout)
                    .first_bytes_within(HANDSHAKE_START, limits.header_read_timeout),
                _slot: slot,
            }),
            (incoming, slots),
        ))
    })
}

/// A gRPC connection holding one of the connection slots until it is dropped.
#[derive(Debug)]
struct Capped {
    stream: TimeoutIo<TcpStream>,
    _slot: OwnedSemaphorePermit,
}

impl Connected for Capped {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.get_ref().connect_info()
    }
}

impl AsyncRead for Capped {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Capped {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::AuthMode;
    use tonic::Code;
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
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus as Status;
    use tonic_health::pb::health_client::HealthClient;

    #[tokio::test]
    async fn health_reports_serving_and_stops_on_shutdown() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let limits = crate::http::ServeLimits {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 4,
            write_timeout: Duration::from_secs(10),
        };
        let server = tokio::spawn(serve(listener, limits, async {
            let _ = stopped.await;
        }));
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut client = HealthClient::new(channel);
        let resp = client
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap();
        assert_eq!(resp.into_inner().status, Status::Serving as i32);
        drop(client);
        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
    }
}
