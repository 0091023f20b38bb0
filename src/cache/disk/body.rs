//! A body served from an entry file, block by block. A block's checksum is verified before any
//! of its bytes is handed on. Once verified, a block is trusted for as long as its file stays
//! as it was when opened (same inode, size, modification and change times, still named:
//! [`FileStamp`]) and its pages stay in the page cache (asked at most once a second per block:
//! [`SEEN_RESIDENT_FOR`]): a hit on a trusted block costs no checksum, and on a plain socket no
//! copy either, as it goes out as the file's own pages ([`Sink::Socket`], [`super::mapped`]).
//! Pages the kernel has to read again from the disk are verified again: by this reader when it reads them (`preadv2(RWF_NOWAIT)` tells), by
//! the socket writer when a page went missing before it sent it; entry files are opened with
//! readahead off, so the kernel reads no page of them that no reader asked for. A bad block
//! removes the entry and ends the stream with an error (the connection is cut: never wrong
//! bytes).
//!
//! Blocks are read into pooled buffers ([`Buffers`]) on the async worker itself when the page
//! cache holds them (`nowait`), on a blocking thread otherwise; a stream reads its next block
//! only when the response asks for it, so a reader holds at most the block being sent.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{Stream, StreamExt as _};

use super::buffers::Buffers;
use super::entry_file::{self, Meta};
use super::index::{IndexEntry, SlotKey};
use super::mapped::{Checks, Mapping};
use super::{DiskError, Inner, nowait};
use crate::cache::body::{BodyError, BodyStream, Sink, StoredBody};

/// What identifies a file's contents as they were: a write, truncation or replacement of the
/// file changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    linked: bool,
    inode: u64,
    size: i64,
    modified: (i64, i64),
    changed: (i64, i64),
}

impl FileStamp {
    /// The stamp of `file` now (one `fstat`).
    #[allow(
        clippy::unnecessary_cast,
        reason = "the field types of `stat` differ between targets"
    )]
    pub fn of(file: &File) -> std::io::Result<FileStamp> {
        let stat = rustix::fs::fstat(file)?;
        Ok(FileStamp {
            linked: stat.st_nlink > 0,
            inode: stat.st_ino as u64,
            size: stat.st_size as i64,
            modified: (stat.st_mtime as i64, stat.st_mtime_nsec as i64),
            changed: (stat.st_ctime as i64, stat.st_ctime_nsec as i64),
        })
    }

    /// Whether the file still has a name (a deleted file's open entry is a miss).
    pub fn linked(&self) -> bool {
        self.linked
    }
}

/// How long a block found in the page cache is taken to stay there without asking the kernel
/// again (asking is `mincore`, which looks up each page: 10-13% of the CPU of a disk hit at
/// 256 KiB-4 MiB when asked on every hit). The kernel lets go of the pages used least
/// recently, and these were used within the second; should one go all the same, `sendfile`
/// reads it back on the async worker, as nginx's does.
const SEEN_RESIDENT_FOR: Duration = Duration::from_secs(1);

/// Milliseconds since the first call (never 0: 0 means "never").
fn now_millis() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_millis())
        .unwrap_or(u64::MAX)
        .saturating_add(1)
}

/// What is known of one block of a body.
#[derive(Default)]
struct BlockState {
    /// Its checksum was verified on the file as stamped.
    verified: AtomicBool,
    /// When it was last found, or read, in the page cache ([`now_millis`]; 0: never).
    seen_resident: AtomicU64,
}

impl BlockState {
    /// Whether the block was in the page cache within [`SEEN_RESIDENT_FOR`].
    fn recently_resident(&self, now: u64) -> bool {
        let seen = self.seen_resident.load(Ordering::Relaxed);
        seen != 0 && now.saturating_sub(seen) < SEEN_RESIDENT_FOR.as_millis() as u64
    }
}

/// Blocks shorter than a page are copied even when they may go to a socket as file pages:
/// for them, the copy costs less than asking the page cache (`mincore`) and a second system
/// call. (At 16 KiB the two ways cost the same, within the noise of the disk-16k bench.)
const MAPPED_MIN: u64 = 4 << 10;

/// The body of a disk entry.
pub struct DiskBody {
    file: Arc<File>,
    slot: SlotKey,
    found: Arc<IndexEntry>,
    buffers: Arc<Buffers>,
    tier: Weak<Inner>,
    /// The file as it was opened: verified blocks are trusted while it stays so.
    stamp: FileStamp,
    /// What is known of each block: verified, and last seen in the page cache.
    blocks: Box<[BlockState]>,
    /// Body length, block size and block checksums of the meta it was opened with (what the
    /// socket writer checks pages against when they went missing), and the verdict.
    checks: Arc<Checks>,
    /// The body mapped, made for the first block sent to a plain socket (`None` if mapping
    /// failed: blocks are then copied).
    mapping: OnceLock<Option<Arc<Mapping>>>,
}

impl std::fmt::Debug for DiskBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskBody")
            .field("path", &self.found.path)
            .field("len", &self.layout().body_len)
            .finish_non_exhaustive()
    }
}

impl DiskBody {
    /// The body of `file` as `stamp` says it was opened, whose verified meta is `meta` (its
    /// headers are not kept here).
    pub(super) fn new(
        file: Arc<File>,
        stamp: FileStamp,
        meta: &Meta,
        slot: SlotKey,
        found: Arc<IndexEntry>,
        buffers: Arc<Buffers>,
        tier: Weak<Inner>,
    ) -> DiskBody {
        let layout = Arc::new(Meta {
            headers: http::HeaderMap::new(),
            ..meta.clone()
        });
        let blocks = meta
            .block_crcs
            .iter()
            .map(|_| BlockState::default())
            .collect();
        let checks = Arc::new(Checks {
            layout,
            broken: AtomicBool::new(false),
        });
        DiskBody {
            file,
            checks,
            slot,
            found,
            buffers,
            tier,
            stamp,
            blocks,
            mapping: OnceLock::new(),
        }
    }

    /// The block holding byte `offset`.
    pub fn block_of(&self, offset: u64) -> u64 {
        offset / self.layout().block_size
    }

    /// The meta this body was opened with (checksums, for a refresh that keeps the body).
    pub(super) fn layout(&self) -> &Meta {
        &self.checks.layout
    }

    /// The index entry this body was opened from.
    pub(super) fn found(&self) -> &Arc<IndexEntry> {
        &self.found
    }

    /// Block `index`, verified (or verified before on the unchanged file, and still in the
    /// page cache); a bad block removes the entry.
    pub async fn block(&self, index: u64, sink: Sink) -> Result<Bytes, DiskError> {
        let result = self.read_block(index, sink).await;
        if let Err(e) = &result
            && let Some(tier) = self.tier.upgrade()
        {
            tier.bad_entry(&self.slot, &self.found, e);
        }
        result
    }

    async fn read_block(&self, index: u64, sink: Sink) -> Result<Bytes, DiskError> {
        let Some(state) = usize::try_from(index).ok().and_then(|i| self.blocks.get(i)) else {
            return Err(DiskError::Corrupt("block out of range".into()));
        };
        let (start, end) = self.layout().block_range(index);
        let len = usize::try_from(end - start)
            .map_err(|_| DiskError::Corrupt("block too large".into()))?;
        let unchanged =
            FileStamp::of(&self.file)? == self.stamp && !self.checks.broken.load(Ordering::Acquire);
        let trusted = unchanged && state.verified.load(Ordering::Acquire);
        // Sent from the page cache when it holds the block (otherwise read and verified
        // below); should its pages go while the socket makes the piece wait, the socket
        // writer reads and verifies them again before it sends them (`server::file_send`).
        if trusted
            && sink == Sink::Socket
            && end - start >= MAPPED_MIN
            && let Some(mapping) = self.mapping()
        {
            let range = start as usize..end as usize;
            let now = now_millis();
            let resident = state.recently_resident(now) || mapping.resident(range.clone());
            if resident {
                state.seen_resident.store(now, Ordering::Relaxed);
                if let Some(tier) = self.tier.upgrade() {
                    tier.health.file_pages_sent(end - start);
                }
                return Ok(mapping.bytes(range));
            }
        }
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
        state.seen_resident.store(now_millis(), Ordering::Relaxed);
        // Bytes read again from the disk are verified again.
        if !trusted || cached < len {
            entry_file::verify_block(self.layout(), index, block.as_ref())?;
            if unchanged {
                state.verified.store(true, Ordering::Release);
            }
        }
        Ok(block.freeze())
    }

    /// The body's mapping, made on first use.
    fn mapping(&self) -> Option<&Arc<Mapping>> {
        self.mapping
            .get_or_init(|| match Mapping::new(&self.file, &self.checks) {
                Ok(mapping) => Some(mapping),
                Err(e) => {
                    tracing::debug!(path = %self.found.path.display(), error = %e, "entry not mapped; its blocks are copied");
                    None
                }
            })
            .as_ref()
    }

    /// The bytes `[start, end)`, as verified pieces. `first` is the block holding `start`,
    /// already read (to know the entry is sound before answering).
    pub fn stream(
        self: Arc<Self>,
        start: u64,
        end: u64,
        first: Bytes,
        sink: Sink,
    ) -> impl Stream<Item = Result<Bytes, DiskError>> + Send + 'static {
        struct State {
            body: Arc<DiskBody>,
            offset: u64,
            end: u64,
            first: Option<Bytes>,
            sink: Sink,
        }
        let end = end.min(self.len());
        let state = State {
            body: self,
            offset: start,
            end,
            first: Some(first),
            sink,
        };
        futures::stream::unfold(state, |mut s| async move {
            if s.offset >= s.end {
                return None;
            }
            let index = s.body.block_of(s.offset);
            let block = match s.first.take() {
                Some(block) => Ok(block),
                None => s.body.block(index, s.sink).await,
            };
            let block = match block {
                Ok(block) => block,
                Err(e) => {
                    s.offset = s.end;
                    return Some((Err(e), s));
                }
            };
            let block_start = index * s.body.layout().block_size;
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
        self.layout().body_len
    }

    fn read(
        self: Arc<Self>,
        start: u64,
        end: u64,
        sink: Sink,
    ) -> BoxFuture<'static, Result<BodyStream, BodyError>> {
        Box::pin(async move {
            let failed = |e: DiskError| BodyError(e.to_string().into());
            let first = self
                .block(self.block_of(start), sink)
                .await
                .map_err(failed)?;
            let stream = self
                .stream(start, end, first, sink)
                .map(move |piece| piece.map_err(failed));
            let stream: BodyStream = Box::pin(stream);
            Ok(stream)
        })
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
