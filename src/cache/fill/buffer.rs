//! A fill's buffer: one origin response, read by any number of requests while the body
//! arrives. Memory is bounded whatever the size: a body for the memory tier is
//! retained whole; a large body for the disk tier is *spooled* to a file as it arrives and
//! readers read what was written from the file at their own pace (the fetch never waits for
//! them, and late joiners start from byte 0); a body that will not be stored keeps only a
//! window, and the fetch waits for the slowest reader instead of buffering more.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use tokio::sync::{Notify, watch};

use crate::cache::admission::NotStored;
use crate::cache::body::StoredBody;
use crate::cache::entry::VaryValues;
use crate::cache::freshness::Freshness;
use crate::cache::tags::Tags;

/// How far (in bytes) a fill that is not being stored may run ahead of its slowest reader.
pub const STREAM_WINDOW: u64 = 4 << 20;

/// Largest piece a reader reads from a spool file at once.
const SPOOL_READ: u64 = 512 << 10;

/// What a fill keeps of its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Mode {
    /// Every chunk, for a memory entry.
    #[default]
    Retained,
    /// A window behind the slowest reader; the writer waits for readers.
    Windowed,
    /// Chunks until they are written to the spool file; readers behind read the file.
    Spooled,
}

/// Why a fill failed; readers get it as their body error.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FillError {
    #[error("origin failed: {1}")]
    Origin(StatusCode, Arc<str>),
    #[error("origin body ended early: {0}")]
    Body(Arc<str>),
    #[error("the fill was abandoned")]
    Abandoned,
}

/// How the fill's response came about, for `Cache-Status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FillKind {
    /// A plain miss.
    Miss,
    /// A stale entry revalidated with the origin answering this status (304 or a new 200).
    Revalidation(StatusCode),
    /// The origin failed with this status; a stale entry is served (`stale-if-error`).
    StaleOnError(StatusCode),
}

/// The head of a fill's response, known before its body.
#[derive(Debug)]
pub struct FillHead {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub content_length: Option<u64>,
    /// Whether the response will be stored (and with what freshness), or why not.
    pub admission: Result<Freshness, NotStored>,
    /// The request header values it was fetched with, for `Vary`.
    pub vary: VaryValues,
    pub kind: FillKind,
    /// Whether the fill's body is retained whole (it will become a memory entry).
    pub retained: bool,
    /// A stored disk body this response has (revalidated or served stale): readers stream it
    /// from its file rather than from the fill.
    pub stored_body: Option<Arc<dyn StoredBody>>,
    /// The response's cache tags (a purge of one detaches the fill).
    pub tags: Tags,
}

impl FillHead {
    /// Whether a request with `request_headers` that joined this fill may be given its
    /// response: only one a shared cache may store (RFC 9111 sections 3 and 4.3.2: not
    /// `private` or `no-store`, not an `Authorization`-dependent or `Set-Cookie` answer
    /// without explicit shared freshness) and of the variant the request selects. Any
    /// other response was for the client whose request the fill sent.
    pub fn shareable_with(&self, request_headers: &HeaderMap) -> bool {
        self.admission.is_ok() && self.vary.matches(request_headers)
    }
}

#[derive(Default)]
struct FillState {
    head: Option<Arc<FillHead>>,
    /// Retained body chunks with their start offsets.
    chunks: VecDeque<(u64, Bytes)>,
    received: u64,
    finished: Option<Result<(), FillError>>,
    mode: Mode,
    /// The file the body is spooled to: bytes before `flushed` are in it.
    spool: Option<Arc<File>>,
    flushed: u64,
    /// Reader id -> next offset it needs.
    readers: HashMap<u64, u64>,
    next_reader: u64,
    /// No new readers may join (purged, or the body has been dropped in part).
    closed: bool,
}

impl FillState {
    fn base_offset(&self) -> u64 {
        self.chunks
            .front()
            .map_or(self.received, |(start, _)| *start)
    }

    fn min_reader_offset(&self) -> Option<u64> {
        self.readers.values().copied().min()
    }

    /// Drops chunks no reader needs from memory: those every reader is past (windowed), or
    /// those in the spool file (spooled).
    fn trim(&mut self) {
        let keep_from = match self.mode {
            Mode::Retained => return,
            Mode::Windowed => self.min_reader_offset().unwrap_or(self.received),
            Mode::Spooled => self.flushed,
        };
        while let Some((start, chunk)) = self.chunks.front() {
            let end = start + chunk.len() as u64;
            if end <= keep_from {
                if end > self.flushed {
                    // Gone from memory and not in a file: late joiners cannot start at 0.
                    self.closed = true;
                }
                self.chunks.pop_front();
            } else {
                break;
            }
        }
    }

    /// Whether bytes at `offset` can be read from the spool file.
    fn in_spool(&self, offset: u64) -> bool {
        self.spool.is_some() && offset < self.flushed
    }
}

/// One in-flight origin fetch.
pub struct Fill {
    state: Mutex<FillState>,
    /// Bumped on every change readers may wait for.
    changed: watch::Sender<u64>,
    /// Wakes the writer when a reader advances or leaves.
    reader_moved: Notify,
}

impl Default for Fill {
    fn default() -> Self {
        Fill {
            state: Mutex::new(FillState {
                mode: Mode::Retained,
                ..FillState::default()
            }),
            changed: watch::Sender::new(0),
            reader_moved: Notify::new(),
        }
    }
}

impl Fill {
    /// A new fill with no head yet.
    pub fn new() -> Arc<Fill> {
        Arc::new(Fill::default())
    }

    fn lock(&self) -> MutexGuard<'_, FillState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wake_readers(&self) {
        self.changed
            .send_modify(|version| *version = version.wrapping_add(1));
    }

    /// Adds a reader starting at byte `offset`; `None` if that part of the body is gone.
    pub fn reader(self: &Arc<Self>, offset: u64) -> Option<FillReader> {
        let mut state = self.lock();
        if state.closed && offset < state.base_offset() && !state.in_spool(offset) {
            return None;
        }
        if matches!(state.finished, Some(Err(_))) {
            return None;
        }
        let id = state.next_reader;
        state.next_reader += 1;
        state.readers.insert(id, offset);
        drop(state);
        Some(FillReader {
            fill: self.clone(),
            id,
            offset,
            changes: self.changed.subscribe(),
        })
    }

    /// Whether new readers may still join from the start.
    pub fn joinable(&self) -> bool {
        let state = self.lock();
        !state.closed && !matches!(state.finished, Some(Err(_)))
    }

    /// Stops new readers from joining (after a purge).
    pub fn close(&self) {
        self.lock().closed = true;
    }

    /// The response's cache tags, once its head is known.
    pub fn tags(&self) -> Option<Tags> {
        self.lock().head.as_ref().map(|head| head.tags.clone())
    }

    /// Number of readers attached.
    pub fn reader_count(&self) -> usize {
        self.lock().readers.len()
    }

    /// Writer: publishes the response head.
    pub fn set_head(&self, head: FillHead) {
        let mut state = self.lock();
        if state.mode != Mode::Spooled {
            state.mode = if head.retained {
                Mode::Retained
            } else {
                Mode::Windowed
            };
        }
        state.head = Some(Arc::new(head));
        drop(state);
        self.wake_readers();
    }

    /// Writer: stops retaining the whole body (it outgrew what will be stored).
    pub fn stop_retaining(&self) {
        let mut state = self.lock();
        state.mode = Mode::Windowed;
        state.trim();
        drop(state);
        self.reader_moved.notify_one();
    }

    /// Writer: the body goes to `file` from now on (what is retained so far too, once
    /// `flushed` says so); the writer no longer waits for readers.
    pub fn start_spooling(&self, file: Arc<File>) {
        let mut state = self.lock();
        state.mode = Mode::Spooled;
        state.spool = Some(file);
        state.flushed = 0;
        drop(state);
        self.reader_moved.notify_one();
    }

    /// Writer: the spool file holds the body up to `offset`; memory before it is released.
    pub fn set_flushed(&self, offset: u64) {
        let mut state = self.lock();
        state.flushed = offset;
        state.trim();
    }

    /// Writer: the spool failed; keep what it holds for readers behind, window the rest.
    pub fn stop_spooling(&self) {
        let mut state = self.lock();
        state.mode = Mode::Windowed;
        state.closed = true;
        state.trim();
        drop(state);
        self.reader_moved.notify_one();
    }

    /// Writer: chunks received but not yet in the spool file.
    pub fn unflushed(&self) -> Vec<Bytes> {
        let state = self.lock();
        state
            .chunks
            .iter()
            .filter(|(start, _)| *start >= state.flushed)
            .map(|(_, chunk)| chunk.clone())
            .collect()
    }

    /// Whether the body is being spooled to disk.
    pub fn spooling(&self) -> bool {
        self.lock().mode == Mode::Spooled
    }

    /// Writer: appends a body chunk; waits while the slowest reader is a window behind.
    pub async fn push(&self, chunk: Bytes) {
        if chunk.is_empty() {
            return;
        }
        loop {
            let moved = self.reader_moved.notified();
            {
                let mut state = self.lock();
                let behind = state
                    .min_reader_offset()
                    .map_or(0, |min| state.received.saturating_sub(min));
                if state.mode != Mode::Windowed || behind < STREAM_WINDOW {
                    let start = state.received;
                    state.received += chunk.len() as u64;
                    state.chunks.push_back((start, chunk));
                    state.trim();
                    break;
                }
            }
            moved.await;
        }
        self.wake_readers();
    }

    /// Writer: ends the body.
    pub fn finish(&self, result: Result<(), FillError>) {
        let mut state = self.lock();
        if state.finished.is_none() {
            state.finished = Some(result);
        }
        drop(state);
        self.wake_readers();
    }

    /// The whole body, when retained and complete (for storing); concatenated once.
    pub fn retained_body(&self) -> Option<Bytes> {
        let state = self.lock();
        if state.mode != Mode::Retained
            || !matches!(state.finished, Some(Ok(())))
            || state.base_offset() != 0
        {
            return None;
        }
        Some(match state.chunks.len() {
            0 => Bytes::new(),
            // A chunk is a slice of the origin connection's read buffer: stored as it is, a
            // 1 KiB object would keep that whole buffer (8 KiB and more) alive. Copy it out.
            1 => Bytes::copy_from_slice(&state.chunks[0].1),
            _ => {
                let mut body = bytes::BytesMut::with_capacity(state.received as usize);
                for (_, chunk) in &state.chunks {
                    body.extend_from_slice(chunk);
                }
                body.freeze()
            }
        })
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.lock().received
    }
}

/// One request's view of a fill.
pub struct FillReader {
    fill: Arc<Fill>,
    id: u64,
    offset: u64,
    changes: watch::Receiver<u64>,
}

impl FillReader {
    /// The fill this reader reads.
    pub fn fill(&self) -> &Arc<Fill> {
        &self.fill
    }

    /// Waits for the response head.
    pub async fn head(&mut self) -> Result<Arc<FillHead>, FillError> {
        loop {
            self.changes.borrow_and_update();
            {
                let state = self.fill.lock();
                if let Some(head) = &state.head {
                    return Ok(head.clone());
                }
                if let Some(Err(e)) = &state.finished {
                    return Err(e.clone());
                }
                if matches!(state.finished, Some(Ok(()))) {
                    return Err(FillError::Abandoned);
                }
            }
            if self.changes.changed().await.is_err() {
                return Err(FillError::Abandoned);
            }
        }
    }

    /// The next piece of body from this reader's offset, up to `end` (exclusive) if given;
    /// `None` at the end.
    pub async fn next_chunk(&mut self, end: Option<u64>) -> Option<Result<Bytes, FillError>> {
        if end.is_some_and(|end| self.offset >= end) {
            return None;
        }
        loop {
            self.changes.borrow_and_update();
            let spooled = {
                let mut state = self.fill.lock();
                if let Some(piece) = Self::piece_at(&state, self.offset, end) {
                    self.offset += piece.len() as u64;
                    state.readers.insert(self.id, self.offset);
                    state.trim();
                    drop(state);
                    self.fill.reader_moved.notify_one();
                    return Some(Ok(piece));
                }
                if self.offset < state.base_offset() {
                    match (&state.spool, state.in_spool(self.offset)) {
                        (Some(file), true) => {
                            let to = end
                                .unwrap_or(u64::MAX)
                                .min(state.flushed)
                                .min(self.offset + SPOOL_READ);
                            Some((file.clone(), to))
                        }
                        _ => return Some(Err(FillError::Abandoned)),
                    }
                } else {
                    match &state.finished {
                        Some(Ok(())) => return None,
                        Some(Err(e)) => return Some(Err(e.clone())),
                        None => None,
                    }
                }
            };
            if let Some((file, to)) = spooled {
                return Some(self.read_spool(file, to).await);
            }
            if self.changes.changed().await.is_err() {
                return Some(Err(FillError::Abandoned));
            }
        }
    }

    /// Reads `[offset, to)` from the spool file.
    async fn read_spool(&mut self, file: Arc<File>, to: u64) -> Result<Bytes, FillError> {
        let from = self.offset;
        let len = usize::try_from(to.saturating_sub(from)).unwrap_or(0);
        let read = tokio::task::spawn_blocking(move || {
            let mut buf = bytes::BytesMut::zeroed(len);
            file.read_exact_at(&mut buf, from).map(|()| buf.freeze())
        })
        .await;
        match read {
            Ok(Ok(piece)) => {
                self.offset += piece.len() as u64;
                let mut state = self.fill.lock();
                state.readers.insert(self.id, self.offset);
                drop(state);
                Ok(piece)
            }
            Ok(Err(e)) => Err(FillError::Body(
                format!("reading the spool file: {e}").into(),
            )),
            Err(e) => Err(FillError::Body(e.to_string().into())),
        }
    }

    fn piece_at(state: &FillState, offset: u64, end: Option<u64>) -> Option<Bytes> {
        if offset >= state.received {
            return None;
        }
        let index = state
            .chunks
            .partition_point(|(start, chunk)| start + chunk.len() as u64 <= offset);
        let (start, chunk) = state.chunks.get(index)?;
        let from = usize::try_from(offset.checked_sub(*start)?).ok()?;
        let mut to = chunk.len();
        if let Some(end) = end {
            to = to.min(usize::try_from(end.saturating_sub(*start)).unwrap_or(usize::MAX));
        }
        (from < to).then(|| chunk.slice(from..to))
    }
}

impl Drop for FillReader {
    fn drop(&mut self) {
        let mut state = self.fill.lock();
        state.readers.remove(&self.id);
        state.trim();
        drop(state);
        self.fill.reader_moved.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(retained: bool) -> FillHead {
        FillHead {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            content_length: None,
            admission: Err(NotStored::Forbidden),
            vary: VaryValues::default(),
            kind: FillKind::Miss,
            retained,
            stored_body: None,
            tags: Tags::default(),
        }
    }

    #[tokio::test]
    async fn readers_get_data_as_it_arrives() {
        let fill = Fill::new();
        let mut a = fill.reader(0).unwrap();
        let mut b = fill.reader(0).unwrap();
        fill.set_head(head(true));
        fill.push(Bytes::from_static(b"hello ")).await;
        assert_eq!(a.next_chunk(None).await.unwrap().unwrap(), "hello ");
        fill.push(Bytes::from_static(b"world")).await;
        fill.finish(Ok(()));
        assert_eq!(a.next_chunk(None).await.unwrap().unwrap(), "world");
        assert!(a.next_chunk(None).await.is_none());
        assert_eq!(b.next_chunk(None).await.unwrap().unwrap(), "hello ");
        assert_eq!(fill.retained_body().unwrap(), "hello world");
        let mut late = fill.reader(3).unwrap();
        assert_eq!(late.next_chunk(Some(8)).await.unwrap().unwrap(), "lo ");
        assert_eq!(late.next_chunk(Some(8)).await.unwrap().unwrap(), "wo");
        assert!(late.next_chunk(Some(8)).await.is_none());
    }

    #[tokio::test]
    async fn unretained_fill_waits_for_slow_reader_and_drops_consumed_chunks() {
        let fill = Fill::new();
        let mut slow = fill.reader(0).unwrap();
        fill.set_head(head(false));
        let writer = {
            let fill = fill.clone();
            tokio::spawn(async move {
                for _ in 0..16 {
                    fill.push(Bytes::from(vec![7u8; 1 << 20])).await;
                }
                fill.finish(Ok(()));
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        // The writer stopped about a window ahead of the reader.
        assert!(fill.received() <= STREAM_WINDOW + (1 << 20));
        let mut total = 0;
        while let Some(chunk) = slow.next_chunk(None).await {
            total += chunk.unwrap().len();
        }
        writer.await.unwrap();
        assert_eq!(total, 16 << 20);
        assert!(fill.retained_body().is_none());
        assert!(fill.reader(0).is_none(), "the start of the body is gone");
    }

    #[tokio::test]
    async fn failure_reaches_readers() {
        let fill = Fill::new();
        let mut r = fill.reader(0).unwrap();
        fill.finish(Err(FillError::Origin(
            StatusCode::BAD_GATEWAY,
            "refused".into(),
        )));
        assert!(matches!(r.head().await, Err(FillError::Origin(..))));
    }
}
