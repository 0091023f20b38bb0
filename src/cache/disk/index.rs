//! The disk tier's in-memory index: which entry files exist, how much they weigh, when they
//! expire, and which to evict: the cache's one [`SlotIndex`] over entry files, weighed by
//! on-disk kibibytes. Files of entries that leave the index (evicted, expired, purged) are
//! queued and deleted by the janitor. A purge log lets a writer that raced a purge notice it
//! before its entry becomes visible.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use http::{HeaderMap, HeaderName};
use sha2::{Digest, Sha256};

use crate::cache::entry::VaryValues;
use crate::cache::freshness::{Freshness, later};
use crate::cache::index::{Dropped, Indexed, OnDrop, PurgeAction, SlotIndex};
use crate::cache::key::{CacheKey, PurgeSelector};
use crate::cache::tags::Tags;

pub use crate::cache::index::SlotKey;

/// How many recent purges writers are checked against; older writers give up their entry.
const PURGE_LOG: usize = 4096;

/// Typical entry file, in KiB (sizes the index's table).
const TYPICAL_FILE_KIB: u64 = 64;

/// Slots a sweep looks at per call.
const SWEEP_BATCH: usize = 1024;

/// One entry file as the index knows it (its headers stay on disk).
#[derive(Debug)]
pub struct IndexEntry {
    pub path: PathBuf,
    pub file_len: u64,
    pub body_len: u64,
    pub freshness: Freshness,
    pub has_validators: bool,
    pub vary: VaryValues,
    pub tags: Tags,
}

impl Indexed for Arc<IndexEntry> {
    /// Kibibytes on disk, plus one for the inode.
    fn weight(&self) -> u64 {
        self.file_len.div_ceil(1024) + 1
    }
    fn keep_until(&self) -> SystemTime {
        later(
            self.freshness.response_time,
            self.freshness.keep_for(self.has_validators),
        )
    }
    fn received(&self) -> SystemTime {
        self.freshness.response_time
    }
    fn vary(&self) -> &VaryValues {
        &self.vary
    }
    fn tags(&self) -> &Tags {
        &self.tags
    }
    fn invalidated(&self, at: SystemTime) -> Option<Self> {
        (self.freshness.fresh_until() > at).then(|| {
            Arc::new(IndexEntry {
                path: self.path.clone(),
                file_len: self.file_len,
                body_len: self.body_len,
                freshness: self.freshness.invalidated(at),
                has_validators: self.has_validators,
                vary: self.vary.clone(),
                tags: self.tags.clone(),
            })
        })
    }
}

struct PurgeLog {
    generation: u64,
    recent: VecDeque<(u64, PurgeSelector)>,
}

impl PurgeLog {
    /// Whether a purge after `since` selects `key` with `tags` (or the log no longer
    /// reaches back).
    fn purged_since(&self, since: u64, key: &CacheKey, tags: &Tags) -> bool {
        if since >= self.generation {
            return false;
        }
        if self
            .recent
            .front()
            .is_none_or(|(oldest, _)| *oldest > since + 1)
        {
            return true;
        }
        self.recent
            .iter()
            .any(|(generation, selector)| *generation > since && selector.matches(key, Some(tags)))
    }
}

/// How an entry file becomes visible.
pub enum Commit<'a> {
    /// A freshly written file: rename `tmp` over the entry's path, replacing any older one.
    Rename { tmp: &'a Path },
    /// A file already in place (found by the start-up scan or a direct lookup); an entry
    /// already indexed for the slot wins.
    Existing,
    /// The file in place was updated (a refreshed meta appended): replace the slot's entry.
    Replace,
}

/// What became of a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    /// The entry is visible.
    Indexed,
    /// A purge since the write began selected the key: the file is to be removed.
    Purged,
    /// (`Existing` only) the slot already holds this path's entry.
    Present,
}

/// Files of entries that left the index, to delete.
#[derive(Clone, Default)]
struct Doomed(Arc<Mutex<Vec<(SlotKey, PathBuf)>>>);

impl OnDrop<Arc<IndexEntry>> for Doomed {
    fn dropped(&self, slot: &SlotKey, entry: Arc<IndexEntry>, why: Dropped) {
        // A replaced entry's path now holds the newer file (paths are per slot).
        if why != Dropped::Replaced {
            lock(&self.0).push((slot.clone(), entry.path.clone()));
        }
    }
}

/// The index.
pub struct Index {
    slots: SlotIndex<Arc<IndexEntry>, Doomed>,
    doomed: Doomed,
    purges: Mutex<PurgeLog>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Index {
    /// An index for `capacity` bytes of files, none larger than `largest` bytes.
    pub fn new(capacity: u64, largest: u64) -> Index {
        let doomed = Doomed::default();
        Index {
            slots: SlotIndex::new(
                capacity.div_ceil(1024),
                TYPICAL_FILE_KIB,
                largest.div_ceil(1024) + 1,
                doomed.clone(),
            ),
            doomed,
            purges: Mutex::new(PurgeLog {
                generation: 0,
                recent: VecDeque::new(),
            }),
        }
    }

    /// The entry file for `key` matching the request's `Vary`'d headers, if still worth
    /// keeping at `now`.
    pub fn get(
        &self,
        key: &CacheKey,
        request: &HeaderMap,
        now: SystemTime,
    ) -> Option<Arc<IndexEntry>> {
        self.slots.get(key.text(), request, now)
    }

    /// The primary slot's `Vary` names, when the key varies.
    pub fn vary_names(&self, key: &CacheKey) -> Option<Arc<[HeaderName]>> {
        self.slots.vary_names(key.text())
    }

    /// The entry in `slot`, if it is (still) this one.
    pub fn is_current(&self, slot: &SlotKey, entry: &Arc<IndexEntry>) -> bool {
        self.slots
            .peek(slot)
            .is_some_and(|current| Arc::ptr_eq(&current, entry))
    }

    /// The purge generation a writer starts at.
    pub fn generation(&self) -> u64 {
        lock(&self.purges).generation
    }

    /// Makes an entry file visible, unless a purge since `since` selected its key (then the
    /// caller removes its file: `tmp`, or the existing one).
    pub fn commit(
        &self,
        key: &CacheKey,
        entry: IndexEntry,
        since: u64,
        how: Commit<'_>,
    ) -> Result<Committed, std::io::Error> {
        let purges = lock(&self.purges);
        // A file already indexed (written by this process) is the slot's: it was checked
        // when it was committed.
        if matches!(how, Commit::Existing)
            && self
                .slots
                .contains(&SlotKey::new(key, entry.vary.variant_id()))
        {
            return Ok(Committed::Present);
        }
        if purges.purged_since(since, key, &entry.tags) {
            return Ok(Committed::Purged);
        }
        if let Commit::Rename { tmp } = how {
            std::fs::rename(tmp, &entry.path)?;
        }
        // Evicts at once what no longer fits, so the files stay within the capacity.
        self.slots.insert(key, Arc::new(entry));
        drop(purges);
        self.delete_doomed();
        Ok(Committed::Indexed)
    }

    /// Applies `action` to every slot `selector` names (dropped entries' files are queued
    /// for deletion; entries marked stale are passed to `on_marked`, whose files then get a
    /// new meta) and records the purge for writers in flight (whose entries are then not
    /// stored). With `before`, a purge replayed from elsewhere, only responses received
    /// before then are selected (writes in flight are newer). Returns how many entries were
    /// dropped or marked.
    pub fn purge(
        &self,
        selector: &PurgeSelector,
        before: Option<SystemTime>,
        action: PurgeAction,
        on_marked: impl FnMut(&SlotKey, &Arc<IndexEntry>),
    ) -> usize {
        let mut purges = lock(&self.purges);
        if before.is_none() {
            purges.generation += 1;
            let generation = purges.generation;
            purges.recent.push_back((generation, selector.clone()));
            while purges.recent.len() > PURGE_LOG {
                purges.recent.pop_front();
            }
        }
        self.slots.purge_with(selector, before, action, on_marked)
    }

    /// `(tag, entry)` pairs the tag index holds.
    pub fn tag_pairs(&self) -> usize {
        self.slots.tag_pairs()
    }

    /// Drops `slot` if it still holds `entry` (a file found corrupt or missing).
    pub fn remove_entry(&self, slot: &SlotKey, entry: &Arc<IndexEntry>) {
        self.slots
            .remove_if(slot, |current| Arc::ptr_eq(current, entry));
    }

    /// Drops `slot` if its entry was received at `received` (its file is queued for
    /// deletion).
    pub fn remove_received(&self, slot: &SlotKey, received: SystemTime) {
        self.slots
            .remove_if(slot, |current| current.freshness.response_time == received);
    }

    /// Bytes of entry files indexed (as weighed) and slots held.
    pub fn usage(&self) -> (u64, u64) {
        let (kib, slots) = self.slots.usage();
        (kib * 1024, slots)
    }

    /// Drops a batch of entries past their keep window (the janitor calls it).
    pub fn maintain(&self, now: SystemTime) {
        self.slots.sweep(now, SWEEP_BATCH);
    }

    /// Deletes the files of entries dropped from the index (blocking). A path whose slot
    /// holds an entry again was rewritten since (paths are per slot) and is kept; the check
    /// and the unlink happen under the lock commits rename under.
    pub fn delete_doomed(&self) {
        let doomed = std::mem::take(&mut *lock(&self.doomed.0));
        for batch in doomed.chunks(256) {
            let _purges = lock(&self.purges);
            for (slot, path) in batch {
                if self.slots.peek(slot).is_some() {
                    continue;
                }
                match std::fs::remove_file(path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        tracing::debug!(path = %path.display(), error = %e, "cannot delete a dropped entry")
                    }
                }
            }
        }
    }
}

/// Where the entry file of `key` (and its `Vary` variant) lives: a stable hash, two levels.
pub fn entry_path(entries: &Path, key: &CacheKey, vary: &VaryValues) -> PathBuf {
    let mut hasher = Sha256::new();
    hasher.update(key.as_str().as_bytes());
    for (name, value) in vary.pairs() {
        hasher.update([0xff]);
        hasher.update(name.as_str().as_bytes());
        match value {
            Some(v) => {
                hasher.update([0]);
                hasher.update(v);
            }
            None => hasher.update([1]),
        }
    }
    let digest = hasher.finalize();
    let name = hex::encode(&digest[..16]);
    entries.join(&name[..2]).join(name)
}
