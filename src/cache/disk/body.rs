//! A body served from an entry file, block by block: each block is read and its checksum
//! verified before any of its bytes is handed on. A bad block removes the entry and ends the
//! stream with an error (the connection is cut: never wrong bytes).

use std::fs::File;
use std::sync::{Arc, Weak};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{Stream, StreamExt as _};

use super::entry_file::{self, Meta};
use super::index::{IndexEntry, SlotKey};
use super::{DiskError, Inner};
use crate::cache::body::{BodyError, BodyStream, StoredBody};

/// How many blocks a stream reads ahead of the one being sent.
const READ_AHEAD: usize = 1;

/// The body of a disk entry too large for the memory tier.
pub struct DiskBody {
    file: Arc<File>,
    /// Body length, block size and block checksums of the meta it was opened with.
    layout: Arc<Meta>,
    slot: SlotKey,
    found: Arc<IndexEntry>,
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
    pub(super) fn new(
        file: File,
        meta: &Meta,
        slot: SlotKey,
        found: Arc<IndexEntry>,
        tier: Weak<Inner>,
    ) -> DiskBody {
        let layout = Meta {
            headers: http::HeaderMap::new(),
            ..meta.clone()
        };
        DiskBody {
            file: Arc::new(file),
            layout: Arc::new(layout),
            slot,
            found,
            tier,
        }
    }

    /// Number of blocks.
    pub fn blocks(&self) -> u64 {
        self.layout.block_crcs.len() as u64
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
        let file = self.file.clone();
        let layout = self.layout.clone();
        let result =
            tokio::task::spawn_blocking(move || entry_file::read_block(&file, &layout, index))
                .await
                .unwrap_or_else(|e| Err(DiskError::Io(std::io::Error::other(e))));
        if let Err(e) = &result
            && let Some(tier) = self.tier.upgrade()
        {
            tier.bad_entry(&self.slot, &self.found, e);
        }
        result
    }

    /// The bytes `[start, end)`, as verified pieces. `first` is the block holding `start`,
    /// if the caller already read it (to know the entry is sound before answering).
    pub fn stream(
        self: Arc<Self>,
        start: u64,
        end: u64,
        first: Option<Bytes>,
    ) -> impl Stream<Item = Result<Bytes, DiskError>> + Send + 'static {
        struct State {
            body: Arc<DiskBody>,
            offset: u64,
            end: u64,
            first: Option<Bytes>,
            ahead: std::collections::VecDeque<tokio::task::JoinHandle<Result<Bytes, DiskError>>>,
            next_fetch: u64,
        }
        let end = end.min(self.len());
        let next_fetch = self.block_of(start) + u64::from(first.is_some());
        let state = State {
            body: self,
            offset: start,
            end,
            first,
            ahead: Default::default(),
            next_fetch,
        };
        futures::stream::unfold(state, |mut s| async move {
            if s.offset >= s.end {
                return None;
            }
            let index = s.body.block_of(s.offset);
            let last = s.body.block_of(s.end - 1);
            while s.ahead.len() < 1 + READ_AHEAD && s.next_fetch <= last {
                let body = s.body.clone();
                let fetch = s.next_fetch;
                s.ahead
                    .push_back(tokio::spawn(async move { body.block(fetch).await }));
                s.next_fetch += 1;
            }
            let block = match s.first.take() {
                Some(block) => Ok(block),
                None => match s.ahead.pop_front() {
                    Some(task) => task
                        .await
                        .unwrap_or_else(|e| Err(DiskError::Io(std::io::Error::other(e)))),
                    None => Err(DiskError::Corrupt("block out of range".into())),
                },
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
                .stream(start, end, Some(first))
                .map(move |piece| piece.map_err(failed));
            let stream: BodyStream = Box::pin(stream);
            Ok(stream)
        })
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
