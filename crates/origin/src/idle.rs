//! A connection that closes itself after `idle_timeout` without progress: no byte read and
//! none written. It ends clients that stall in the middle of a request body and clients that
//! stop reading a response, so a stalled peer holds at most one socket buffer and one task.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Wraps a stream with an inactivity deadline.
///
/// Progress only bumps a counter (no clock read per read or write). A timer ticks every half
/// timeout while I/O waits; two ticks in a row without progress fail the pending I/O, so the
/// connection closes between one and one and a half timeouts after its last progress.
pub(crate) struct IdleTimeout<T> {
    inner: T,
    /// Half the timeout; None when the timeout is zero (off).
    tick: Option<Duration>,
    /// Bumped by every read or write that moved bytes.
    progress: u64,
    /// `progress` at the last tick.
    progress_at_tick: u64,
    /// Ticks in a row without progress.
    idle_ticks: u8,
    timer: Pin<Box<Sleep>>,
}

impl<T> IdleTimeout<T> {
    /// `inner`, closed after `timeout` (to 1.5 x `timeout`) without progress; a zero
    /// `timeout` never closes it.
    pub(crate) fn new(inner: T, timeout: Duration) -> IdleTimeout<T> {
        let tick = (!timeout.is_zero()).then(|| (timeout / 2).max(Duration::from_millis(1)));
        IdleTimeout {
            inner,
            tick,
            progress: 0,
            progress_at_tick: 0,
            idle_ticks: 0,
            timer: Box::pin(tokio::time::sleep(tick.unwrap_or_default())),
        }
    }

    fn progressed(&mut self) {
        self.progress = self.progress.wrapping_add(1);
    }

    /// Called when I/O is pending: fails once two ticks passed without progress; otherwise
    /// leaves the timer registered to wake the task at the next tick.
    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        let Some(tick) = self.tick else {
            return Ok(());
        };
        loop {
            // Polled outside tokio's cooperative budget: with the budget spent, a `Sleep`
            // answers Pending without registering the waker, and the connection could then
            // wait forever.
            if Pin::new(&mut tokio::task::unconstrained(&mut self.timer))
                .poll(cx)
                .is_pending()
            {
                return Ok(());
            }
            if self.progress == self.progress_at_tick {
                self.idle_ticks = self.idle_ticks.saturating_add(1);
            } else {
                self.idle_ticks = 0;
                self.progress_at_tick = self.progress;
            }
            if self.idle_ticks >= 2 {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection idle past the idle timeout",
                ));
            }
            let next = Instant::now() + tick;
            self.timer.as_mut().reset(next);
        }
    }

    /// Turns a poll of the inner stream into one that counts progress and fails when idle.
    fn account<R>(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<io::Result<R>>,
        moved: impl FnOnce(&R) -> bool,
    ) -> Poll<io::Result<R>> {
        match poll {
            Poll::Ready(Ok(r)) => {
                if moved(&r) {
                    self.progressed();
                }
                Poll::Ready(Ok(r))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match self.check(cx) {
                Ok(()) => Poll::Pending,
                Err(e) => Poll::Ready(Err(e)),
            },
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleTimeout<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        let moved = buf.filled().len() > before;
        this.account(cx, poll, |()| moved)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleTimeout<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.account(cx, poll, |n| *n > 0)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.account(cx, poll, |n| *n > 0)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_flush(cx);
        this.account(cx, poll, |()| false)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn closes_after_no_progress_and_not_before() {
        let timeout = Duration::from_secs(1);
        let (mut client, server) = tokio::io::duplex(64);
        let mut conn = IdleTimeout::new(server, timeout);
        let writer = tokio::spawn(async move {
            for _ in 0..15 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                client.write_all(b"x").await.unwrap();
            }
            client
        });
        let mut buf = [0u8; 8];
        for _ in 0..15 {
            // 1.5 s in all, longer than the timeout: progress keeps the connection.
            assert_eq!(conn.read(&mut buf).await.unwrap(), 1);
        }
        let last = Instant::now();
        let _client = writer.await.unwrap();
        let err = conn.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        let idle = last.elapsed();
        assert!(
            idle >= timeout && idle < Duration::from_secs(5),
            "closed {idle:?} after the last byte"
        );
    }
}
