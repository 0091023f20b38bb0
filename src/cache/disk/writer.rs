//! Writing entry files: small bodies whole (a background thread, so fills never wait for a
//! disk), large bodies as a *spool* that streams to the file while the fill serves them.
//!
//! Every write goes to `tmp/`, is synced, and only then renamed to the entry's path under the
//! index's purge check, so a crash leaves either the old entry or the new one, never a torn
//! file where a reader looks.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};

use super::entry_file::{self, BLOCK_SIZE, BlockSums, Meta};
use super::index::{Commit, Committed, IndexEntry, entry_path};
use super::{DiskBody, DiskError, Inner};
use crate::cache::body::Body;
use crate::cache::entry::{Entry, Validators, VaryValues};
use crate::cache::freshness::Freshness;
use crate::cache::key::CacheKey;

/// What the writer threads do.
pub enum Job {
    /// Write a complete response.
    Write(WriteJob),
    /// Append a meta marking the entry's file stale (a soft purge).
    Restamp(Arc<IndexEntry>),
}

/// A complete response for the writer thread.
pub struct WriteJob {
    pub entry: Arc<Entry>,
    /// Purge generation it was fetched under.
    pub since: u64,
    /// Bytes it counts against the queue.
    pub queued: u64,
}

/// A writer thread: writes queued entries until the tier shuts down.
pub fn run(weak: &Weak<Inner>, jobs: &Mutex<Receiver<Job>>) {
    loop {
        let next = jobs.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(job) = next else { return };
        let Some(inner) = weak.upgrade() else { return };
        let job = match job {
            Job::Write(job) => job,
            Job::Restamp(entry) => {
                if inner.health.usable()
                    && let Err(e) = restamp(&inner, &entry)
                {
                    inner.failed("marking an entry stale", &e);
                }
                continue;
            }
        };
        inner.queued_bytes.fetch_sub(job.queued, Ordering::AcqRel);
        if !inner.health.usable() {
            continue;
        }
        let result = match &job.entry.body {
            Body::Memory(body) => write_whole(&inner, &job.entry, body, job.since),
            Body::Stored(stored) => match stored.as_any().downcast_ref::<DiskBody>() {
                Some(disk) => refresh(&inner, &job.entry, disk, job.since),
                // Not one of this tier's files: nothing to refresh here.
                None => Ok(false),
            },
        };
        if let Err(e) = result {
            inner.failed("writing an entry", &e);
        }
    }
}

/// Creates a temporary file, recreating `tmp/` once if it was removed.
fn create_tmp(inner: &Inner) -> Result<(PathBuf, File), DiskError> {
    let path = inner.tmp_path();
    let open = |p: &Path| {
        File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(p)
    };
    match open(&path) {
        Ok(file) => Ok((path, file)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(&inner.tmp)?;
            Ok((path.clone(), open(&path)?))
        }
        Err(e) => Err(e.into()),
    }
}

/// Syncs `tmp` and renames it into place (under the index's purge check).
fn publish(
    inner: &Inner,
    tmp: &Path,
    file: &File,
    key: &CacheKey,
    meta: &Meta,
    since: u64,
) -> Result<bool, DiskError> {
    file.sync_all()?;
    let path = entry_path(&inner.entries, key, &meta.vary);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let entry = IndexEntry {
        path,
        file_len: file.metadata()?.len(),
        body_len: meta.body_len,
        freshness: meta.freshness,
        has_validators: Validators::from_headers(&meta.headers).any(),
        vary: meta.vary.clone(),
        tags: meta.tags.clone(),
    };
    match inner
        .index
        .commit(key, entry, since, Commit::Rename { tmp })
    {
        Ok(Committed::Indexed) => Ok(true),
        Ok(_) => {
            let _ = std::fs::remove_file(tmp);
            Ok(false)
        }
        Err(e) => {
            let _ = std::fs::remove_file(tmp);
            Err(e.into())
        }
    }
}

fn meta_of(inner: &Inner, entry: &Entry, body_len: u64, block_crcs: Vec<u32>) -> Meta {
    Meta {
        written_at: inner.clock.now(),
        key: entry.key.clone(),
        vary: entry.vary.clone(),
        status: entry.status,
        headers: entry.headers(),
        freshness: entry.freshness,
        body_len,
        block_size: BLOCK_SIZE,
        block_crcs,
        tags: entry.tags.clone(),
    }
}

fn write_whole(inner: &Inner, entry: &Entry, body: &Bytes, since: u64) -> Result<bool, DiskError> {
    let meta = meta_of(
        inner,
        entry,
        body.len() as u64,
        entry_file::block_sums(body),
    );
    let (tmp, mut file) = create_tmp(inner)?;
    let written = (|| {
        file.write_all(body)?;
        file.write_all(&meta.encode())?;
        Ok::<_, std::io::Error>(())
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.into());
    }
    publish(inner, &tmp, &file, &entry.key, &meta, since)
}

/// A revalidated large entry: append its new meta to the file in place (the body stays).
fn refresh(inner: &Inner, entry: &Entry, disk: &DiskBody, since: u64) -> Result<bool, DiskError> {
    let found = disk.found();
    let mut file = match File::options().read(true).append(true).open(&found.path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    // Only if the file still holds the body this entry was read from.
    let current = entry_file::read_meta(&file)?;
    if current.block_crcs != disk.layout().block_crcs || current.key != entry.key {
        return Ok(false);
    }
    let meta = meta_of(inner, entry, current.body_len, current.block_crcs);
    file.write_all(&meta.encode())?;
    file.sync_data()?;
    let updated = IndexEntry {
        path: found.path.clone(),
        file_len: file.metadata()?.len(),
        body_len: meta.body_len,
        freshness: meta.freshness,
        has_validators: Validators::from_headers(&meta.headers).any(),
        vary: meta.vary.clone(),
        tags: meta.tags.clone(),
    };
    Ok(inner
        .index
        .commit(&entry.key, updated, since, Commit::Replace)?
        == Committed::Indexed)
}

/// A soft-purged entry: append a meta marking its file stale, if the file still holds the
/// response the index entry describes (the index was marked already).
fn restamp(inner: &Inner, entry: &IndexEntry) -> Result<(), DiskError> {
    let Some(at) = entry.freshness.invalidated_at else {
        return Ok(());
    };
    let mut file = match File::options().read(true).append(true).open(&entry.path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let mut meta = entry_file::read_meta(&file)?;
    if meta.vary != entry.vary
        || meta.freshness.response_time != entry.freshness.response_time
        || meta.freshness.fresh_until() <= at
    {
        return Ok(());
    }
    meta.freshness = meta.freshness.invalidated(at);
    meta.written_at = inner.clock.now();
    file.write_all(&meta.encode())?;
    file.sync_data()?;
    Ok(())
}

struct SpoolState {
    file: Arc<File>,
    sums: BlockSums,
}

/// A large body being written to disk as it arrives. Readers of the fill read the bytes
/// already written from `file()`. Dropped without `commit`, the file is removed.
pub struct Spool {
    inner: Arc<Inner>,
    tmp: PathBuf,
    file: Arc<File>,
    state: Option<SpoolState>,
    written: u64,
    since: u64,
    done: bool,
}

impl Spool {
    pub(super) fn create(inner: Arc<Inner>) -> Result<Spool, DiskError> {
        let since = inner.index.generation();
        let (tmp, file) = create_tmp(&inner)?;
        let file = Arc::new(file);
        Ok(Spool {
            inner,
            tmp,
            file: file.clone(),
            state: Some(SpoolState {
                file,
                sums: BlockSums::default(),
            }),
            written: 0,
            since,
            done: false,
        })
    }

    /// The file, for readers of what was written so far.
    pub fn file(&self) -> Arc<File> {
        self.file.clone()
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Appends `chunks` (the body's next bytes); returns the bytes written so far. An error
    /// turns the tier pass-through; the spool is then to be dropped.
    pub async fn write(&mut self, chunks: Vec<Bytes>) -> Result<u64, DiskError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(DiskError::Unavailable);
        }
        let Some(mut state) = self.state.take() else {
            return Err(DiskError::Unavailable);
        };
        let mut offset = self.written;
        let (state, result) = tokio::task::spawn_blocking(move || {
            let result = (|| {
                for chunk in &chunks {
                    state.file.write_all_at(chunk, offset)?;
                    state.sums.update(chunk);
                    offset += chunk.len() as u64;
                }
                Ok::<_, std::io::Error>(offset)
            })();
            (state, result)
        })
        .await
        .map_err(|e| DiskError::Io(std::io::Error::other(e)))?;
        match result {
            Ok(written) => {
                self.written = written;
                self.state = Some(state);
                Ok(written)
            }
            Err(e) => {
                let e = DiskError::Io(e);
                self.inner.failed("spooling a body", &e);
                Err(e)
            }
        }
    }

    /// Ends the body: writes the meta, syncs, and makes the entry visible (unless a purge
    /// selected its key meanwhile). Returns whether it was stored.
    pub async fn commit(mut self, head: SpoolHead) -> Result<bool, DiskError> {
        let Some(guard) = self.inner.begin_commit() else {
            return Err(DiskError::Unavailable);
        };
        let Some(state) = self.state.take() else {
            return Err(DiskError::Unavailable);
        };
        let inner = self.inner.clone();
        let tmp = self.tmp.clone();
        let since = self.since;
        let body_len = self.written;
        self.done = true;
        tokio::task::spawn_blocking(move || {
            let result = (|| {
                let meta = Meta {
                    written_at: inner.clock.now(),
                    key: head.key.clone(),
                    vary: head.vary,
                    status: head.status,
                    headers: head.headers,
                    freshness: head.freshness,
                    body_len,
                    block_size: BLOCK_SIZE,
                    block_crcs: state.sums.finish(),
                    tags: head.tags,
                };
                state.file.write_all_at(&meta.encode(), body_len)?;
                publish(&inner, &tmp, &state.file, &head.key, &meta, since)
            })();
            if let Err(e) = &result {
                let _ = std::fs::remove_file(&tmp);
                inner.failed("storing a spooled body", e);
            }
            drop(guard);
            result
        })
        .await
        .map_err(|e| DiskError::Io(std::io::Error::other(e)))?
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// What a spooled entry's meta needs besides the body.
pub struct SpoolHead {
    pub key: CacheKey,
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub freshness: Freshness,
    pub vary: VaryValues,
    pub tags: crate::cache::tags::Tags,
}
