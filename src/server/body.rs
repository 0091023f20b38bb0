//! The edge's response body: a shared `Bytes` on hits (no copy), a few slices for
//! multipart ranges, or a stream read from a fill.

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
    /// Pieces sent in order; a hit is one piece.
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
            EdgeBody::Chunks(VecDeque::from([bytes]))
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
        match self.get_mut() {
            EdgeBody::Empty => Poll::Ready(None),
            EdgeBody::Chunks(chunks) => Poll::Ready(chunks.pop_front().map(|c| Ok(Frame::data(c)))),
            EdgeBody::Stream(stream) => Pin::new(stream).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            EdgeBody::Empty => true,
            EdgeBody::Chunks(chunks) => chunks.is_empty(),
            EdgeBody::Stream(stream) => stream.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            EdgeBody::Empty => SizeHint::with_exact(0),
            EdgeBody::Chunks(chunks) => {
                SizeHint::with_exact(chunks.iter().map(|c| c.len() as u64).sum())
            }
            EdgeBody::Stream(stream) => stream.size_hint(),
        }
    }
}
