//! A connection that closes itself after `limits.idle_timeout` without progress: no byte
//! read and none written. It ends idle keep-alive connections and clients that stop reading
//! a response (slow readers), so a stalled peer holds at most one socket buffer.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Wraps a stream with an inactivity deadline.
///
/// Progress only bumps a counter: reading the clock or moving a timer on every read and
/// write cost more than the rest of a cached hit's I/O. A timer ticks every half timeout;
/// two ticks in a row without progress end the connection, so it closes between one and one
/// and a half timeouts after its last progress.
pub struct IdleTimeout<T> {
    inner: T,
    /// Half the timeout.
    tick: Duration,
    /// Bumped by every read or write that moved bytes.
    progress: u64,
    /// `progress` at the last tick.
    progress_at_tick: u64,
    /// Ticks in a row without progress.
    idle_ticks: u8,
    timer: Pin<Box<Sleep>>,
    /// The waker the timer was last polled with: while I/O is polled with the same one, the
    /// timer need not be polled again until it has fired.
    timer_waker: Option<Waker>,
}

impl<T> IdleTimeout<T> {
    /// `inner`, closed after `timeout` (to 1.5 x `timeout`) without progress.
    pub fn new(inner: T, timeout: Duration) -> IdleTimeout<T> {
        let tick = timeout / 2;
        IdleTimeout {
            inner,
            tick,
            progress: 0,
            progress_at_tick: 0,
            idle_ticks: 0,
            timer: Box::pin(tokio::time::sleep(tick)),
            timer_waker: None,
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    fn progressed(&mut self) {
        self.progress = self.progress.wrapping_add(1);
    }

    /// Pending I/O: fails once two ticks passed without progress.
    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if !self.timer.is_elapsed()
            && self
                .timer_waker
                .as_ref()
                .is_some_and(|waker| waker.will_wake(cx.waker()))
        {
            return Ok(());
        }
        loop {
            // Polled outside tokio's cooperative budget: with the budget spent, a `Sleep`
            // answers Pending without registering the waker, and the shortcut above would
            // then never poll it again.
            if Pin::new(&mut tokio::task::unconstrained(&mut self.timer))
                .poll(cx)
                .is_pending()
            {
                self.timer_waker = Some(cx.waker().clone());
                return Ok(());
            }
            if self.progress == self.progress_at_tick {
                self.idle_ticks += 1;
            } else {
                self.progress_at_tick = self.progress;
                self.idle_ticks = 0;
            }
            if self.idle_ticks >= 2 {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection idle too long",
                ));
            }
            // The next tick (polled above, so the waker is registered).
            self.timer.as_mut().reset(Instant::now() + self.tick);
        }
    }
}

impl<T> IdleTimeout<T> {
    /// What a pending I/O call returns: still pending, or the idle error.
    fn pending<R>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        match self.check(cx) {
            Ok(()) => Poll::Pending,
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    /// Passes on a write's outcome, counting written bytes as progress.
    fn wrote(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match poll {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    self.progressed();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => self.pending(cx),
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
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    this.progressed();
                }
                Poll::Ready(result)
            }
            Poll::Pending => this.pending(cx),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleTimeout<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, data);
        this.wrote(cx, poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.wrote(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Pending => this.pending(cx),
            ready => ready,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
