//! [`TimeoutIo`]: a connection's stream with two deadlines hyper and tonic cannot set:
//!
//! - a write timeout: a write that makes no progress (the peer does not read, its receive
//!   window and our send buffer are full) for the timeout fails with `TimedOut`, so the
//!   server drops the connection and its slot;
//! - a first-bytes deadline: until `want` bytes have been read, reading fails with
//!   `TimedOut` past the deadline (a gRPC client that never sends its HTTP/2 preface).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// A stream whose writes fail after making no progress for a timeout, and whose reads
/// fail when the first bytes do not arrive in time.
#[derive(Debug)]
pub struct TimeoutIo<S> {
    inner: S,
    write_timeout: Duration,
    /// Armed while a write is pending, from the moment it first was.
    write_sleep: Option<Pin<Box<Sleep>>>,
    /// Bytes still expected before the first-bytes deadline, and the deadline.
    first: Option<(usize, Pin<Box<Sleep>>)>,
}

impl<S> TimeoutIo<S> {
    /// `inner` with the write timeout `write_timeout` and no first-bytes deadline.
    pub fn new(inner: S, write_timeout: Duration) -> Self {
        Self {
            inner,
            write_timeout,
            write_sleep: None,
            first: None,
        }
    }

    /// Reading fails once `within` has passed and fewer than `want` bytes were read.
    pub fn first_bytes_within(mut self, want: usize, within: Duration) -> Self {
        self.first = Some((want, Box::pin(tokio::time::sleep(within))));
        self
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Runs a write: its progress disarms the write timer, a pending write arms it, and a
    /// timer that fires fails the write.
    fn timed<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: impl FnOnce(Pin<&mut S>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>>
    where
        S: Unpin,
    {
        match poll(Pin::new(&mut self.inner), cx) {
            Poll::Ready(r) => {
                self.write_sleep = None;
                Poll::Ready(r)
            }
            Poll::Pending => {
                let limit = self.write_timeout;
                let sleep = self
                    .write_sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                ready!(sleep.as_mut().poll(cx));
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "the peer read nothing for {}",
                        humantime::format_duration(limit)
                    ),
                )))
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for TimeoutIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                let got = buf.filled().len() - before;
                if let Some((want, _)) = &mut this.first {
                    *want = want.saturating_sub(got);
                    if *want == 0 || got == 0 {
                        this.first = None;
                    }
                }
                Poll::Ready(r)
            }
            Poll::Pending => {
                if let Some((_, sleep)) = &mut this.first {
                    ready!(sleep.as_mut().poll(cx));
                    this.first = None;
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the peer did not start its connection in time",
                    )));
                }
                Poll::Pending
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for TimeoutIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.timed(cx, |s, cx| s.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.timed(cx, |s, cx| s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.timed(cx, |s, cx| s.poll_flush(cx))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.timed(cx, |s, cx| s.poll_shutdown(cx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_write_the_peer_does_not_read_fails_after_the_timeout() {
        let (a, _b) = tokio::io::duplex(64);
        let mut a = TimeoutIo::new(a, Duration::from_millis(300));
        a.write_all(&[0u8; 64]).await.unwrap();
        let start = std::time::Instant::now();
        let e = a.write_all(&[0u8; 1]).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(start.elapsed() >= Duration::from_millis(300));
    }

    #[tokio::test]
    async fn a_write_making_progress_is_not_cut() {
        let (a, mut b) = tokio::io::duplex(16);
        // Far longer than the reader's pauses, however slow the machine.
        let mut a = TimeoutIo::new(a, Duration::from_secs(5));
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 16];
            let mut n = 0;
            while n < 256 {
                tokio::time::sleep(Duration::from_millis(20)).await;
                n += b.read(&mut buf).await.unwrap();
            }
        });
        a.write_all(&[0u8; 256]).await.unwrap();
        reader.await.unwrap();
    }

    #[tokio::test]
    async fn reads_fail_until_the_first_bytes_arrive() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut silent = TimeoutIo::new(a, Duration::from_secs(60))
            .first_bytes_within(4, Duration::from_millis(300));
        let mut buf = [0u8; 8];
        b.write_all(b"ab").await.unwrap();
        assert_eq!(silent.read(&mut buf).await.unwrap(), 2);
        let e = silent.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        // Once they arrived, reads wait as long as they need.
        let (a, mut b) = tokio::io::duplex(64);
        let mut talker = TimeoutIo::new(a, Duration::from_secs(60))
            .first_bytes_within(4, Duration::from_millis(300));
        b.write_all(b"abcd").await.unwrap();
        assert_eq!(talker.read(&mut buf).await.unwrap(), 4);
        let late = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(900)).await;
            b.write_all(b"e").await.unwrap();
            b
        });
        assert_eq!(talker.read(&mut buf).await.unwrap(), 1);
        drop(late.await.unwrap());
    }
}
