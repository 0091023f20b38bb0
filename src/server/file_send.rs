//! The socket of a plain HTTP/1 connection, which sends the pieces of disk entries from their
//! files (`sendfile`): the kernel hands the page cache's pages to the socket, and the body
//! is neither copied into a buffer nor read by the edge. This is what nginx does for files.
//!
//! hyper writes a response as vectored writes of its head and the body's pieces. A piece that
//! is a mapped, verified block of an entry file (see `cache::disk::mapped`) is recognised by
//! its address and sent with `sendfile` from the file at the same offset; what comes before it
//! is sent with `MSG_MORE`, so the head and the body's first bytes still leave together. Any
//! other bytes are written as usual. Requests on such a connection that go past the memory
//! tier carry [`SendsFiles`] (set by the handler from `ConnInfo::sends_files`), which is what
//! lets the cache hand out such pieces.
//!
//! A piece is handed out (its block trusted and in the page cache, see `cache::disk::body`)
//! just before hyper writes it. When the socket cannot take it at once, it waits for the
//! reader, and a slow reader can make it wait long enough for the kernel to let its pages go:
//! after such a wait, its pages are looked for in the page cache again (`mincore`), and
//! missing ones are read and their blocks verified again on a blocking thread first. So
//! `sendfile` neither waits for the disk on an async worker nor sends bytes read again
//! unchecked; a failed check cuts the response.
//!
//! hyper must write vectored for the pieces to reach this writer untouched (it does when the
//! I/O says it can, which every layer above this one passes on: `IdleTimeout`, `TokioIo`,
//! hyper-util's `Rewind`); were it to flatten them, it would copy them out of the mapping,
//! which is correct, only slower.

use std::future::Future as _;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::cache::disk::DiskError;
use crate::cache::disk::mapped::{self, FilePiece};

/// Request extension: the response body goes straight into a socket that can send file
/// pieces (plain HTTP/1), so the cache may answer with them.
#[derive(Debug, Clone, Copy)]
pub struct SendsFiles;

/// A plain TCP connection that sends mapped file pieces with `sendfile`.
pub struct FileSend {
    tcp: TcpStream,
    /// A piece whose pages went missing, being read and verified again.
    loading: Option<JoinHandle<Result<(), DiskError>>>,
    /// The address of the piece bytes this writer waited for the socket to send: pages of
    /// it may have gone meanwhile.
    waited_at: Option<usize>,
}

impl FileSend {
    /// Wraps an accepted connection.
    pub fn new(tcp: TcpStream) -> FileSend {
        FileSend {
            tcp,
            loading: None,
            waited_at: None,
        }
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

    /// Sends `piece` from its file, once its pages are in the page cache.
    fn poll_send_file(
        &mut self,
        cx: &mut Context<'_>,
        piece: FilePiece,
    ) -> Poll<io::Result<usize>> {
        let waited = self.waited_at == Some(piece.address());
        if waited && self.loading.is_none() && !piece.resident() {
            let reading = piece.clone();
            self.loading = Some(tokio::task::spawn_blocking(move || reading.load_verified()));
        }
        if let Some(loading) = &mut self.loading {
            let loaded = ready!(Pin::new(loading).poll(cx));
            self.loading = None;
            loaded
                .map_err(io::Error::other)?
                .map_err(io::Error::other)?;
        }
        let len = piece.len;
        loop {
            if self.tcp.poll_write_ready(cx)?.is_pending() {
                self.waited_at = Some(piece.address());
                return Poll::Pending;
            }
            let sent = self.tcp.try_io(Interest::WRITABLE, || {
                let mut at = piece.offset;
                rustix::fs::sendfile(&self.tcp, &*piece.file, Some(&mut at), len)
                    .map_err(io::Error::from)
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
                sent => {
                    self.waited_at = None;
                    return Poll::Ready(sent);
                }
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
            .find_map(|(at, buf)| mapped::file_piece(buf).map(|piece| (at, piece)));
        match first_piece {
            None => Pin::new(&mut this.tcp).poll_write_vectored(cx, bufs),
            Some((at, piece)) if bufs[..at].iter().all(|buf| buf.is_empty()) => {
                this.poll_send_file(cx, piece)
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
