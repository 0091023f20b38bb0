//! The edge's response body: a shared `Bytes` on hits (no copy, no allocation), a few slices
//! for multipart ranges, or a stream read from a fill.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::BoxBody;

use crate::cache::FillError;

/// A response body.
pub enum EdgeBody {
    /// No body (HEAD, 304, errors without text).
    Empty,
    /// One piece: a hit, a single range, an error text.
    Full(Bytes),
    /// Pieces sent in order (multipart ranges).
    Chunks(VecDeque<Bytes>),
    /// A body produced as it arrives.
    Stream(BoxBody<Bytes, FillError>),
}

impl EdgeBody {
    /// A body of one piece.
    pub fn full(bytes: impl Into<Bytes>) -> EdgeBody {
        let bytes = bytes.into();
        if bytes.is_empty() {
            EdgeBody::Empty
        } else {
            EdgeBody::Full(bytes)
        }
    }
}

impl Body for EdgeBody {
    type Data = Bytes;
    type Error = FillError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, FillError>>> {
        let this = self.get_mut();
        match this {
            EdgeBody::Empty => Poll::Ready(None),
            EdgeBody::Full(bytes) => {
                let bytes = std::mem::take(bytes);
                *this = EdgeBody::Empty;
                Poll::Ready(Some(Ok(Frame::data(bytes))))
            }
            EdgeBody::Chunks(chunks) => Poll::Ready(chunks.pop_front().map(|c| Ok(Frame::data(c)))),
            EdgeBody::Stream(stream) => Pin::new(stream).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            EdgeBody::Empty => true,
            EdgeBody::Full(bytes) => bytes.is_empty(),
            EdgeBody::Chunks(chunks) => chunks.is_empty(),
            EdgeBody::Stream(stream) => stream.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            EdgeBody::Empty => SizeHint::with_exact(0),
            EdgeBody::Full(bytes) => SizeHint::with_exact(bytes.len() as u64),
            EdgeBody::Chunks(chunks) => {
                SizeHint::with_exact(chunks.iter().map(|c| c.len() as u64).sum())
            }
            EdgeBody::Stream(stream) => stream.size_hint(),
        }
    }
}
