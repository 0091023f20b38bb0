//! The socket of a plain HTTP/1 connection, which sends the pieces of disk entries from their
//! files (`sendfile`): the kernel hands the page cache's pages to the socket, and the body
//! is neither copied into a buffer nor read by the edge. This is what nginx does for files.
//!
//! hyper writes a response as vectored writes of its head and the body's pieces. A piece that
//! is a mapped, verified block of an entry file (see `cache::disk::mapped`) is recognised by
//! its address and sent with `sendfile` from the file at the same offset; what comes before it
//! is sent with `MSG_MORE`, so the head and the body's first bytes still leave together. Any
//! other bytes are written as usual. Requests on such a connection carry [`SendsFiles`], which
//! is what lets the cache hand out such pieces.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

use crate::cache::disk::mapped;

/// Request extension: the response body goes straight into a socket that can send file
/// pieces (plain HTTP/1), so the cache may answer with them.
#[derive(Debug, Clone, Copy)]
pub struct SendsFiles;

/// A plain TCP connection that sends mapped file pieces with `sendfile`.
pub struct FileSend {
    tcp: TcpStream,
}

impl FileSend {
    /// Wraps an accepted connection.
    pub fn new(tcp: TcpStream) -> FileSend {
        FileSend { tcp }
    }

    /// Sends `bufs` (none of them a file piece) with `MSG_MORE`: a file piece follows.
    fn poll_send_more(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        use rustix::net::{SendAncillaryBuffer, SendFlags};
        loop {
            ready!(self.tcp.poll_write_ready(cx))?;
            let sent = self.tcp.try_io(Interest::WRITABLE, || {
                rustix::net::sendmsg(
                    &self.tcp,
                    bufs,
                    &mut SendAncillaryBuffer::default(),
                    SendFlags::MORE | SendFlags::NOSIGNAL,
                )
                .map_err(io::Error::from)
            });
            match sent {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                sent => return Poll::Ready(sent),
            }
        }
    }

    /// Sends `len` bytes of `file` from `offset`.
    fn poll_send_file(
        &self,
        cx: &mut Context<'_>,
        file: &std::fs::File,
        offset: u64,
        len: usize,
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.tcp.poll_write_ready(cx))?;
            let sent = self.tcp.try_io(Interest::WRITABLE, || {
                let mut at = offset;
                rustix::fs::sendfile(&self.tcp, file, Some(&mut at), len).map_err(io::Error::from)
            });
            match sent {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                // The file ends before the piece did: it was cut short under us. The response
                // is cut, never padded or wrong.
                Ok(0) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "entry file shorter than its mapped body",
                    )));
                }
                sent => return Poll::Ready(sent),
            }
        }
    }
}

impl AsyncRead for FileSend {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for FileSend {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(data)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if !mapped::any() {
            return Pin::new(&mut this.tcp).poll_write_vectored(cx, bufs);
        }
        let first_piece = bufs
            .iter()
            .enumerate()
            .filter(|(_, buf)| !buf.is_empty())
            .find_map(|(at, buf)| mapped::file_region(buf).map(|region| (at, region)));
        match first_piece {
            None => Pin::new(&mut this.tcp).poll_write_vectored(cx, bufs),
            Some((at, (file, offset))) if bufs[..at].iter().all(|buf| buf.is_empty()) => {
                this.poll_send_file(cx, &file, offset, bufs[at].len())
            }
            Some((at, _)) => this.poll_send_more(cx, &bufs[..at]),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}
