//! A body served from an entry file, block by block: each block is read and its checksum
//! verified before any of its bytes is handed on, on every read (a byte flipped on disk is
//! never served, even after the page cache let go of a verified copy). A bad block removes
//! the entry and ends the stream with an error (the connection is cut: never wrong bytes).
//!
//! Blocks are read into pooled buffers ([`Buffers`]) on the async worker itself when the page
//! cache holds them (`nowait`), on a blocking thread otherwise; a stream reads its next block
//! only when the response asks for it, so a reader holds at most the block being sent.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Weak};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{Stream, StreamExt as _};

use super::buffers::Buffers;
use super::entry_file::{self, Meta};
use super::index::{IndexEntry, SlotKey};
use super::{DiskError, Inner, nowait};
use crate::cache::body::{BodyError, BodyStream, StoredBody};

/// The body of a disk entry.
pub struct DiskBody {
    file: Arc<File>,
    /// Body length, block size and block checksums of the meta it was opened with.
    layout: Meta,
    slot: SlotKey,
    found: Arc<IndexEntry>,
    buffers: Arc<Buffers>,
    tier: Weak<Inner>,
}

impl std::fmt::Debug for DiskBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskBody")
            .field("path", &self.found.path)
            .field("len", &self.layout.body_len)
            .finish_non_exhaustive()
    }
}

impl DiskBody {
    /// The body of `file`, whose verified meta is `meta` (its headers are not kept here).
    pub(super) fn new(
        file: Arc<File>,
        meta: &Meta,
        slot: SlotKey,
        found: Arc<IndexEntry>,
        buffers: Arc<Buffers>,
        tier: Weak<Inner>,
    ) -> DiskBody {
        let layout = Meta {
            headers: http::HeaderMap::new(),
            ..meta.clone()
        };
        DiskBody {
            file,
            layout,
            slot,
            found,
            buffers,
            tier,
        }
    }

    /// The block holding byte `offset`.
    pub fn block_of(&self, offset: u64) -> u64 {
        offset / self.layout.block_size
    }

    /// The meta this body was opened with (checksums, for a refresh that keeps the body).
    pub(super) fn layout(&self) -> &Meta {
        &self.layout
    }

    /// The index entry this body was opened from.
    pub(super) fn found(&self) -> &Arc<IndexEntry> {
        &self.found
    }

    /// Reads and verifies block `index`; a bad block removes the entry.
    pub async fn block(&self, index: u64) -> Result<Bytes, DiskError> {
        let result = self.read_block(index).await;
        if let Err(e) = &result
            && let Some(tier) = self.tier.upgrade()
        {
            tier.bad_entry(&self.slot, &self.found, e);
        }
        result
    }

    async fn read_block(&self, index: u64) -> Result<Bytes, DiskError> {
        if index >= self.layout.block_crcs.len() as u64 {
            return Err(DiskError::Corrupt("block out of range".into()));
        }
        let (start, end) = self.layout.block_range(index);
        let len = usize::try_from(end - start)
            .map_err(|_| DiskError::Corrupt("block too large".into()))?;
        let mut block = self.buffers.get(len).await;
        // What the page cache holds is read here; the rest on a blocking thread.
        let cached = nowait::read_at(&self.file, block.as_mut(), start)?;
        if cached < len {
            let file = self.file.clone();
            block = tokio::task::spawn_blocking(move || {
                file.read_exact_at(&mut block.as_mut()[cached..], start + cached as u64)
                    .map(|()| block)
            })
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))?;
        }
        entry_file::verify_block(&self.layout, index, block.as_ref())?;
        Ok(block.freeze())
    }

    /// The bytes `[start, end)`, as verified pieces. `first` is the block holding `start`,
    /// already read (to know the entry is sound before answering).
    pub fn stream(
        self: Arc<Self>,
        start: u64,
        end: u64,
        first: Bytes,
    ) -> impl Stream<Item = Result<Bytes, DiskError>> + Send + 'static {
        struct State {
            body: Arc<DiskBody>,
            offset: u64,
            end: u64,
            first: Option<Bytes>,
        }
        let end = end.min(self.len());
        let state = State {
            body: self,
            offset: start,
            end,
            first: Some(first),
        };
        futures::stream::unfold(state, |mut s| async move {
            if s.offset >= s.end {
                return None;
            }
            let index = s.body.block_of(s.offset);
            let block = match s.first.take() {
                Some(block) => Ok(block),
                None => s.body.block(index).await,
            };
            let block = match block {
                Ok(block) => block,
                Err(e) => {
                    s.offset = s.end;
                    return Some((Err(e), s));
                }
            };
            let block_start = index * s.body.layout.block_size;
            let from = usize::try_from(s.offset - block_start)
                .unwrap_or(usize::MAX)
                .min(block.len());
            let to = usize::try_from(s.end - block_start)
                .unwrap_or(usize::MAX)
                .min(block.len());
            let piece = block.slice(from..to.max(from));
            s.offset = block_start + to as u64;
            if piece.is_empty() {
                s.offset = s.end;
                return Some((
                    Err(DiskError::Corrupt("block shorter than its range".into())),
                    s,
                ));
            }
            Some((Ok(piece), s))
        })
    }
}

impl StoredBody for DiskBody {
    fn len(&self) -> u64 {
        self.layout.body_len
    }

    fn read(
        self: Arc<Self>,
        start: u64,
        end: u64,
    ) -> BoxFuture<'static, Result<BodyStream, BodyError>> {
        Box::pin(async move {
            let failed = |e: DiskError| BodyError(e.to_string().into());
            let first = self.block(self.block_of(start)).await.map_err(failed)?;
            let stream = self
                .stream(start, end, first)
                .map(move |piece| piece.map_err(failed));
            let stream: BodyStream = Box::pin(stream);
            Ok(stream)
        })
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
