//! The gRPC server. For now it only serves the standard health service
//! (`grpc.health.v1.Health`), reporting SERVING for the whole server; the Store API and
//! Arrow Flight come with later issues (their services authenticate with
//! `hypnos_tenancy::grpc::AuthInterceptor`).

use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::transport::Server;
use tonic::transport::server::{Connected, TcpConnectInfo, TcpIncoming};
use tonic_health::ServingStatus;

use crate::{ServeLimits, TimeoutIo};

/// How often an idle gRPC connection is pinged; one that does not answer within the same
/// time is closed.
const KEEPALIVE: Duration = Duration::from_secs(30);

/// Serves gRPC on `listener` until `shutdown` resolves, with at most
/// `limits.max_connections` connections open (further ones wait to be accepted); HTTP/2
/// keep-alive pings close connections whose peer is gone. Keep-alive starts only after the
/// HTTP/2 handshake, so a connection must also send its preface and first frame header
/// within `limits.header_read_timeout`, and one whose peer reads nothing for
/// `limits.write_timeout` is closed ([`TimeoutIo`]).
pub async fn serve(
    listener: TcpListener,
    limits: ServeLimits,
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
    limits: ServeLimits,
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
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus as Status;
    use tonic_health::pb::health_client::HealthClient;

    #[tokio::test]
    async fn health_reports_serving_and_stops_on_shutdown() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let limits = ServeLimits {
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
