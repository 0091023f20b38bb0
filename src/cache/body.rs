//! A stored body as either tier hands it out: bytes held in memory, or a handle that streams
//! verified pieces from storage (the disk tier's entry files). The cache and the responses
//! use this handle and never the disk tier's own types.

use std::any::Any;
use std::fmt::Debug;
use std::sync::Arc;

use bytes::Bytes;
use futures::Stream;
use futures::future::BoxFuture;

/// Why a stored body could not be read (the stored copy is then dropped by its tier).
#[derive(Debug, Clone, thiserror::Error)]
#[error("stored body unreadable: {0}")]
pub struct BodyError(pub Arc<str>);

/// Pieces of a stored body, each verified before it is handed on.
pub type BodyStream = std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, BodyError>> + Send + Sync>>;

/// Where the pieces of a stored body go, which decides how they may be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    /// Anywhere: the pieces are bytes in memory.
    Copy,
    /// Straight into a plain socket (HTTP/1 without TLS): a piece may be the stored file's
    /// own pages, which the socket writer sends from the file without reading them
    /// (`server::file_send`).
    Socket,
}

/// A body kept in storage and read on demand.
pub trait StoredBody: Any + Send + Sync + Debug {
    /// Its length in bytes.
    fn len(&self) -> u64;

    /// Whether it is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes `[start, end)`, for `sink`. The first piece is read and verified before
    /// the stream is handed out, so a bad stored copy is known before any response is sent.
    fn read(
        self: Arc<Self>,
        start: u64,
        end: u64,
        sink: Sink,
    ) -> BoxFuture<'static, Result<BodyStream, BodyError>>;

    /// The handle as `Any`, for the tier that made it.
    fn as_any(&self) -> &dyn Any;
}

/// A stored body read whole into memory (verified as it is read).
pub async fn read_whole(stored: Arc<dyn StoredBody>) -> Result<Bytes, BodyError> {
    use futures::StreamExt as _;
    let len = stored.len();
    let capacity = usize::try_from(len).map_err(|_| BodyError("body too large".into()))?;
    if len == 0 {
        return Ok(Bytes::new());
    }
    let mut pieces = stored.read(0, len, Sink::Copy).await?;
    let mut body = bytes::BytesMut::with_capacity(capacity);
    while let Some(piece) = pieces.next().await {
        body.extend_from_slice(&piece?);
    }
    if body.len() != capacity {
        return Err(BodyError("stored body shorter than its length".into()));
    }
    Ok(body.freeze())
}

/// Where a stored response's body is.
#[derive(Debug, Clone)]
pub enum Body {
    /// Held whole in memory.
    Memory(Bytes),
    /// Read piece by piece from storage (bodies larger than the memory tier takes).
    Stored(Arc<dyn StoredBody>),
}

impl Body {
    /// The body's length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Body::Memory(bytes) => bytes.len() as u64,
            Body::Stored(stored) => stored.len(),
        }
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<Bytes> for Body {
    fn from(bytes: Bytes) -> Body {
        Body::Memory(bytes)
    }
}
