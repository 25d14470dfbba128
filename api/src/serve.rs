//! Serving the router over HTTP/1.1 with bounds on slow and numerous clients (what
//! `axum::serve` cannot configure):
//!
//! - a header read timeout (`--http.header-read-timeout`, hyper's own): a connection whose
//!   request headers are not complete in time is closed, whether it sent nothing, half a
//!   header, or sits idle between keep-alive requests;
//! - a body read timeout (`--http.body-read-timeout`), counted from the request's headers:
//!   reading the body fails past it, the request is answered 408 and the connection closed
//!   ([`body_deadline`], a middleware);
//! - a write timeout (`--http.write-timeout`): a connection whose response makes no
//!   progress for it, the client reading nothing, is closed ([`TimeoutIo`]);
//! - a connection cap (`--http.max-connections`): past it, new connections wait in the
//!   listen backlog until one closes (as Prometheus' `--web.max-connections`), so the
//!   connections already open, a health checker's keep-alive connection among them, are
//!   served as before.
//!
//! Only HTTP/1.1 is served on the HTTP port, as Prometheus does without TLS.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body::Frame;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use hypnos_schemas::ErrorCode;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Sleep;

use super::AppRef;
use super::errors::status_of;
use super::timeout_io::TimeoutIo;

/// How slow and how many clients may be.
#[derive(Clone, Copy, Debug)]
pub struct ServeLimits {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
    /// Longest a response may make no progress (the client not reading it).
    pub write_timeout: Duration,
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting and waits
/// for the connections open to finish their requests.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut warned_full = false;
    loop {
        let slot = match Arc::clone(&slots).try_acquire_owned() {
            Ok(s) => s,
            Err(_) => {
                if !warned_full {
                    tracing::warn!(
                        max = limits.max_connections,
                        "HTTP connection limit reached: new connections wait until one closes"
                    );
                    warned_full = true;
                }
                tokio::select! {
                    s = Arc::clone(&slots).acquire_owned() => match s {
                        Ok(s) => s,
                        Err(_) => break,
                    },
                    () = &mut shutdown => break,
                }
            }
        };
        let accepted = tokio::select! {
            r = listener.accept() => r,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                tracing::warn!(error = %e, "cannot accept an HTTP connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if slots.available_permits() > 0 {
            warned_full = false;
        }
        let _ = stream.set_nodelay(true);
        let conn = builder.serve_connection(
            TokioIo::new(TimeoutIo::new(stream, limits.write_timeout)),
            TowerToHyperService::new(router.clone()),
        );
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "HTTP connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Set when a request's body was not read in time.
#[derive(Clone, Debug, Default)]
struct TimedOut(Arc<AtomicBool>);

/// Middleware: the request body must be read within the body read timeout of the state;
/// past it, reading fails and the answer, whatever the handler made of the failure, is 408
/// with `Connection: close`.
pub(super) async fn body_deadline(
    State(state): State<AppRef>,
    req: Request,
    next: Next,
) -> Response {
    let timed_out = TimedOut::default();
    let limit = state.body_read_timeout;
    let req = req.map(|body| {
        Body::new(DeadlineBody {
            inner: body,
            sleep: Box::pin(tokio::time::sleep(limit)),
            timed_out: timed_out.clone(),
            limit,
        })
    });
    let resp = next.run(req).await;
    if timed_out.0.load(Ordering::Relaxed) {
        tracing::debug!(timeout = ?limit, "request body not received in time");
        let mut resp = (
            status_of(ErrorCode::RequestTimeout),
            format!(
                "request body not received within {}\n",
                humantime::format_duration(limit)
            ),
        )
            .into_response();
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return resp;
    }
    resp
}

/// A request body that fails once its deadline has passed.
struct DeadlineBody {
    inner: Body,
    sleep: Pin<Box<Sleep>>,
    timed_out: TimedOut,
    limit: Duration,
}

/// The error of a body read past its deadline.
#[derive(Debug, thiserror::Error)]
#[error("request body not received within {0:?}")]
struct BodyTimeout(Duration);

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            self.timed_out.0.store(true, Ordering::Relaxed);
            let limit = self.limit;
            return Poll::Ready(Some(Err(axum::Error::new(BodyTimeout(limit)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
