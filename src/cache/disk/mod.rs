//! The disk tier: responses kept in checksummed files under `cache.disk_path`, bounded by
//! `cache.disk` bytes, below the memory tier, surviving restarts.
//!
//! One file per entry (`entries/ab/<hash of key and variant>`), written to `tmp/`, synced and
//! renamed into place, so a crash never leaves a half-written entry where a reader looks. The
//! index (`index.rs`) is rebuilt at start by reading each file's trailer and meta, in the
//! background; lookups meanwhile open the key's file directly. Every read verifies checksums
//! before a byte is used (`entry_file.rs`); a bad entry is removed and becomes a miss. Disk
//! trouble (full, removed or unwritable directory) turns the tier into pass-through for a
//! while, with a warning and a counter, and the PoP keeps serving from memory and the origin.

mod background;
mod body;
mod buffers;
pub mod entry_file;
mod health;
pub mod index;
pub mod mapped;
mod nowait;
mod open;
mod writer;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use http::{HeaderMap, HeaderName};

use crate::cache::body::Body;
use crate::cache::clock::SharedClock;
pub use body::DiskBody;
use buffers::Buffers;
use entry_file::Meta;
use health::Health;
use index::{Commit, Index, IndexEntry, SlotKey, entry_path};
use open::{OpenEntries, Wait};
use writer::{Job, WriteJob};
pub use writer::{Spool, SpoolHead};

use super::entry::{Entry, Validators, VaryValues};
use super::index::PurgeAction;
use super::key::{CacheKey, PurgeSelector};

/// Why a disk-tier operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiskError {
    /// The file system refused (full, removed, unwritable, I/O error).
    #[error("disk I/O: {0}")]
    Io(#[from] std::io::Error),
    /// An entry file failed its checksums or does not parse: it is removed.
    #[error("corrupt entry: {0}")]
    Corrupt(std::borrow::Cow<'static, str>),
    /// The tier is off (pass-through, shut down, or disabled by config).
    #[error("the disk tier is unavailable")]
    Unavailable,
}

impl DiskError {
    /// Whether the entry is simply gone (evicted or purged since it was looked up).
    fn is_missing(&self) -> bool {
        matches!(self, DiskError::Io(e) if e.kind() == std::io::ErrorKind::NotFound)
    }
}

/// How many small entries may wait for the writer; more are not written to disk.
const WRITE_QUEUE: usize = 1024;
/// Bytes of small entries that may wait for the writer.
const WRITE_QUEUE_BYTES: u64 = 256 << 20;
/// Threads writing small entries.
const WRITERS: usize = 8;
const WRITER_THREAD: &str = "edge-disk-writer";
/// How long a shutdown waits for spool commits under way.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

pub(crate) struct Inner {
    root: PathBuf,
    entries: PathBuf,
    tmp: PathBuf,
    max_object: u64,
    index: Index,
    health: Health,
    closed: AtomicBool,
    scanning: AtomicBool,
    tmp_seq: AtomicU64,
    queued_bytes: AtomicU64,
    /// Spool commits under way (shutdown waits for them).
    committing: AtomicU64,
    lock_file: Mutex<Option<File>>,
    clock: SharedClock,
    /// Entry files kept open for hits.
    open: Arc<OpenEntries>,
    /// Buffers body blocks are read into.
    buffers: Arc<Buffers>,
    writer: Mutex<Option<SyncSender<Job>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The disk tier (cheap to clone).
#[derive(Clone)]
pub struct DiskTier {
    inner: Option<Arc<Inner>>,
}

impl DiskTier {
    /// No disk tier (`cache.disk = "0"`).
    pub fn disabled() -> DiskTier {
        DiskTier { inner: None }
    }

    /// Opens (creating) the tier under `root`, holding at most `capacity` bytes of files.
    /// Never fails: a directory that cannot be used leaves the tier off, with a warning.
    pub fn open(root: &Path, capacity: u64, clock: SharedClock) -> DiskTier {
        if capacity == 0 {
            return DiskTier::disabled();
        }
        match Inner::open(root, capacity, clock) {
            Ok(inner) => DiskTier { inner: Some(inner) },
            Err(e) => {
                tracing::warn!(path = %root.display(), error = %e, "disk tier unavailable; serving from memory and origin only");
                DiskTier::disabled()
            }
        }
    }

    fn usable(&self) -> Option<&Arc<Inner>> {
        self.inner.as_ref().filter(|inner| inner.usable())
    }

    /// Whether the tier takes new entries now.
    pub fn enabled(&self) -> bool {
        self.usable().is_some()
    }

    /// Largest body the tier stores.
    pub fn max_object(&self) -> u64 {
        self.inner.as_ref().map_or(0, |inner| inner.max_object)
    }

    /// The stored response for `key` matching the request, its meta verified. Bodies up to
    /// `whole_up_to` bytes are read whole into memory (and verified); larger ones are read
    /// and verified block by block as they are sent. Files the kernel has cached are opened
    /// and read on the calling worker, others on a blocking thread. `known_vary` names the
    /// headers every response under the key varies on, when the origin decides it in advance
    /// (S3: `Origin`).
    pub async fn lookup(
        &self,
        key: &CacheKey,
        request: &HeaderMap,
        known_vary: Option<&[HeaderName]>,
        whole_up_to: u64,
    ) -> Option<Arc<Entry>> {
        let entry = self.find(key, request, known_vary).await?;
        match &entry.body {
            Body::Stored(stored) if stored.len() <= whole_up_to => {
                let body = crate::cache::body::read_whole(stored.clone()).await.ok()?;
                Some(Arc::new(entry.with_body(Body::Memory(body))))
            }
            _ => Some(entry),
        }
    }

    /// The stored response for `key`, its body unread.
    async fn find(
        &self,
        key: &CacheKey,
        request: &HeaderMap,
        known_vary: Option<&[HeaderName]>,
    ) -> Option<Arc<Entry>> {
        let inner = self.usable()?.clone();
        let found = inner.index.get(key, request, inner.clock.now());
        if let Some(found) = &found {
            match inner.open_entry(key, found, Wait::No) {
                Ok(Some(entry)) => return Some(entry),
                Ok(None) => {}
                Err(e) => {
                    inner.bad_entry(&SlotKey::new(key, found.vary.variant_id()), found, &e);
                    return None;
                }
            }
        }
        let scanning = inner.scanning.load(Ordering::Acquire);
        if found.is_none() && !scanning {
            return None;
        }
        let key = key.clone();
        // While the start-up scan has not reached the key, its file is looked for where the
        // request's variant would be: a response without `Vary`, or the known variant.
        let variant = match (known_vary, inner.index.vary_names(&key)) {
            (Some(names), _) => Some(VaryValues::of(names, request)),
            (None, None) => Some(VaryValues::default()),
            (None, Some(names)) => Some(VaryValues::of(&names, request)),
        };
        let request = request.clone();
        let task = tokio::task::spawn_blocking(move || {
            let found = match found {
                Some(found) => found,
                None => inner.adopt(&key, &variant?, &request)?,
            };
            inner.load(&key, found)
        });
        task.await.ok().flatten()
    }

    /// Entry files held open for hits.
    pub fn open_entries(&self) -> usize {
        self.inner.as_ref().map_or(0, |inner| inner.open.len())
    }

    /// Stores a complete response (in the background). `since` is the purge generation the
    /// response was fetched under (see `generation`).
    pub fn store(&self, entry: Arc<Entry>, since: u64) {
        let Some(inner) = self.usable() else { return };
        if entry.body.len() > inner.max_object {
            return;
        }
        let queued = match &entry.body {
            Body::Memory(body) => body.len() as u64,
            Body::Stored(_) => 0,
        };
        if inner.queued_bytes.fetch_add(queued, Ordering::AcqRel) + queued > WRITE_QUEUE_BYTES {
            inner.queued_bytes.fetch_sub(queued, Ordering::AcqRel);
            tracing::debug!(key = ?entry.key.as_str(), "disk writer busy; entry not written to disk");
            return;
        }
        let job = WriteJob {
            entry,
            since,
            queued,
        };
        let sent = lock(&inner.writer)
            .as_ref()
            .map(|tx| tx.try_send(Job::Write(job)));
        if !matches!(sent, Some(Ok(()))) {
            inner.queued_bytes.fetch_sub(queued, Ordering::AcqRel);
        }
    }

    /// The current purge generation: writes started now are dropped if a later purge
    /// selects their key.
    pub fn generation(&self) -> u64 {
        self.inner
            .as_ref()
            .map_or(0, |inner| inner.index.generation())
    }

    /// A spool file for a body of `length` (if known) that streams to disk as it arrives.
    pub fn spool(&self, length: Option<u64>) -> Option<Spool> {
        let inner = self.usable()?;
        if length.is_some_and(|len| len > inner.max_object) {
            return None;
        }
        match Spool::create(inner.clone()) {
            Ok(spool) => Some(spool),
            Err(e) => {
                inner.failed("creating a spool file", &e);
                None
            }
        }
    }

    /// Applies `action` to every entry `selector` names (only those received before
    /// `before`, if given): dropped, or marked stale (in the index at once, in the entry
    /// files in the background); returns how many were dropped or marked.
    pub fn purge(
        &self,
        selector: &PurgeSelector,
        before: Option<SystemTime>,
        action: PurgeAction,
    ) -> usize {
        let Some(inner) = self.inner.as_ref() else {
            return 0;
        };
        let mut marked = Vec::new();
        let affected = inner.index.purge(selector, before, action, |_, entry| {
            marked.push(entry.clone())
        });
        if !marked.is_empty() {
            let tx = lock(&inner.writer).clone();
            for entry in marked {
                // A full queue leaves that file's meta as it was: the index holds the mark
                // until the PoP restarts.
                if let Some(tx) = &tx {
                    let _ = tx.try_send(Job::Restamp(entry));
                }
            }
        }
        affected
    }

    /// Drops the entry file of `entry`'s slot if it holds the same response (received at the
    /// same instant).
    pub fn remove(&self, entry: &Entry) {
        if let Some(inner) = self.inner.as_ref() {
            let slot = SlotKey::new(&entry.key, entry.vary.variant_id());
            inner
                .index
                .remove_received(&slot, entry.freshness.response_time);
        }
    }

    /// `(tag, entry)` pairs the disk index holds.
    pub fn tag_pairs(&self) -> usize {
        self.inner
            .as_ref()
            .map_or(0, |inner| inner.index.tag_pairs())
    }

    /// Disk errors seen since start (the tier turns pass-through for a while after each).
    pub fn errors(&self) -> u64 {
        self.inner.as_ref().map_or(0, |inner| inner.health.errors())
    }

    /// Corrupt entries found (and removed) since start.
    pub fn corrupt_entries(&self) -> u64 {
        self.inner
            .as_ref()
            .map_or(0, |inner| inner.health.corrupt())
    }

    /// Body bytes of hits handed to sockets as the page cache's pages (sent with `sendfile`,
    /// neither copied nor read by the edge).
    pub fn file_page_bytes(&self) -> u64 {
        self.inner
            .as_ref()
            .map_or(0, |inner| inner.health.file_pages())
    }

    /// Bytes of entry files indexed and slots held.
    pub fn usage(&self) -> (u64, u64) {
        self.inner
            .as_ref()
            .map_or((0, 0), |inner| inner.index.usage())
    }

    /// Whether the start-up scan is still indexing files.
    pub fn scanning(&self) -> bool {
        self.inner
            .as_ref()
            .is_some_and(|inner| inner.scanning.load(Ordering::Acquire))
    }

    /// Finishes queued writes and deletions, then stops using the directory (so another
    /// process, or a restarted PoP, may open it).
    pub async fn shutdown(&self) {
        let Some(inner) = self.inner.clone() else {
            return;
        };
        let _ = tokio::task::spawn_blocking(move || inner.shutdown()).await;
    }
}

impl Inner {
    fn open(root: &Path, capacity: u64, clock: SharedClock) -> Result<Arc<Inner>, DiskError> {
        let entries = root.join("entries");
        let tmp = root.join("tmp");
        std::fs::create_dir_all(&entries)?;
        std::fs::create_dir_all(&tmp)?;
        let lock_file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(root.join("lock"))?;
        if let Err(e) = lock_file.try_lock() {
            return Err(DiskError::Io(std::io::Error::other(format!(
                "the directory is in use by another process ({e})"
            ))));
        }
        // Leftovers of writes a crash interrupted: never entries.
        for leftover in std::fs::read_dir(&tmp)?.flatten() {
            let _ = std::fs::remove_file(leftover.path());
        }
        let (writer_tx, writer_rx) = mpsc::sync_channel(WRITE_QUEUE);
        let open = Arc::new(OpenEntries::new());
        let inner = Arc::new(Inner {
            root: root.to_owned(),
            entries,
            tmp,
            max_object: capacity / 4,
            index: Index::new(capacity, capacity / 4, open.clone()),
            health: Health::default(),
            closed: AtomicBool::new(false),
            scanning: AtomicBool::new(true),
            tmp_seq: AtomicU64::new(0),
            queued_bytes: AtomicU64::new(0),
            committing: AtomicU64::new(0),
            lock_file: Mutex::new(Some(lock_file)),
            clock,
            open,
            buffers: Arc::default(),
            writer: Mutex::new(Some(writer_tx)),
            threads: Mutex::default(),
        });
        // Several writers: each waits in fsync most of the time, and concurrent fsyncs share
        // the file system's journal commits (about 10x the entries per second of one).
        let writer_rx = Arc::new(Mutex::new(writer_rx));
        let writers = (0..WRITERS).map(|_| {
            spawn(WRITER_THREAD, {
                let (weak, jobs) = (Arc::downgrade(&inner), writer_rx.clone());
                move || writer::run(&weak, &jobs)
            })
        });
        let threads = writers.chain([
            spawn("edge-disk-janitor", {
                let weak = Arc::downgrade(&inner);
                move || background::janitor(&weak)
            }),
            spawn("edge-disk-scan", {
                let weak = Arc::downgrade(&inner);
                move || background::scan(&weak)
            }),
        ]);
        lock(&inner.threads).extend(threads.flatten());
        Ok(inner)
    }

    fn usable(&self) -> bool {
        !self.closed.load(Ordering::Acquire) && self.health.usable()
    }

    fn failed(&self, what: &'static str, error: &DiskError) {
        self.health.failed(what, error, &self.root);
    }

    fn tmp_path(&self) -> PathBuf {
        let seq = self.tmp_seq.fetch_add(1, Ordering::Relaxed);
        self.tmp.join(format!("{}-{seq}.tmp", std::process::id()))
    }

    /// Indexes the file where `key`'s entry of `variant` would be, if it is there and sound.
    fn adopt(
        &self,
        key: &CacheKey,
        variant: &VaryValues,
        request: &HeaderMap,
    ) -> Option<Arc<IndexEntry>> {
        let path = entry_path(&self.entries, key, variant);
        let file = File::open(&path).ok()?;
        let meta = entry_file::read_meta(&file).ok()?;
        if meta.key != *key || meta.vary != *variant {
            return None;
        }
        // Every purge since the tier opened applies to files found in place.
        let since = 0;
        let entry = index_entry(path, &file, &meta).ok()?;
        self.index
            .commit(key, entry, since, Commit::Existing)
            .ok()?;
        self.index.get(key, request, self.clock.now())
    }

    /// Opens the entry file `found` for `key` and verifies its meta (blocking).
    fn load(self: &Arc<Self>, key: &CacheKey, found: Arc<IndexEntry>) -> Option<Arc<Entry>> {
        match self.open_entry(key, &found, Wait::Yes) {
            Ok(entry) => entry,
            Err(e) => {
                self.bad_entry(&SlotKey::new(key, found.vary.variant_id()), &found, &e);
                None
            }
        }
    }

    /// An entry could not be read: drop it from the index, and count what went wrong.
    fn bad_entry(&self, slot: &SlotKey, found: &Arc<IndexEntry>, error: &DiskError) {
        self.index.remove_entry(slot, found);
        match error {
            e if e.is_missing() => {}
            DiskError::Corrupt(reason) => {
                self.health.corrupt_found();
                tracing::warn!(key = ?slot.key.as_str(), path = %found.path.display(), %reason, "corrupt disk entry removed");
            }
            e => self.failed("reading an entry", e),
        }
    }

    /// Drains queued writes, lets spool commits under way finish (new ones are dropped),
    /// stops the threads, and releases the directory.
    fn shutdown(&self) {
        let Some(writer) = lock(&self.writer).take() else {
            return;
        };
        drop(writer);
        let threads: Vec<JoinHandle<()>> = lock(&self.threads).drain(..).collect();
        let (writers, others): (Vec<_>, Vec<_>) = threads
            .into_iter()
            .partition(|t| t.thread().name() == Some(WRITER_THREAD));
        for thread in writers {
            let _ = thread.join();
        }
        self.closed.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        while self.committing.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        for thread in others {
            let _ = thread.join();
        }
        lock(&self.lock_file).take();
    }

    /// Registers a spool commit; `None` once the tier is shutting down.
    fn begin_commit(self: &Arc<Self>) -> Option<CommitGuard> {
        self.committing.fetch_add(1, Ordering::SeqCst);
        let guard = CommitGuard(self.clone());
        (!self.closed.load(Ordering::SeqCst)).then_some(guard)
    }
}

/// Holds off the end of a shutdown while a commit is under way.
struct CommitGuard(Arc<Inner>);

impl Drop for CommitGuard {
    fn drop(&mut self) {
        self.0.committing.fetch_sub(1, Ordering::SeqCst);
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Option<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(f)
        .inspect_err(
            |e| tracing::error!(error = %e, thread = name, "cannot start a disk-tier thread"),
        )
        .ok()
}

/// The index's view of an entry file.
fn index_entry(path: PathBuf, file: &File, meta: &Meta) -> Result<IndexEntry, DiskError> {
    Ok(IndexEntry {
        path,
        file_len: file.metadata()?.len(),
        body_len: meta.body_len,
        freshness: meta.freshness,
        has_validators: Validators::from_headers(&meta.headers).any(),
        vary: meta.vary.clone(),
        tags: meta.tags.clone(),
    })
}
