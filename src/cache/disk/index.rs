//! The disk tier's in-memory index: which entry files exist, how much they weigh, when they
//! expire, and which to evict.
//!
//! The index is a moka cache weighed by on-disk kibibytes: TinyLFU admission keeps one scan of
//! cold objects from flushing the working set, LRU picks victims, per-entry expiry drops
//! entries past their keep window, and its eviction listener queues the files for deletion.
//! An ordered set of keys beside it lets purges select a key, a prefix or a space without a
//! scan. A purge log lets a writer that raced a purge notice it before its entry becomes
//! visible.

use std::collections::{BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use http::{HeaderMap, HeaderName};
use moka::notification::RemovalCause;
use moka::sync::Cache;
use sha2::{Digest, Sha256};

use crate::cache::entry::VaryValues;
use crate::cache::freshness::Freshness;
use crate::cache::key::{CacheKey, PurgeSelector};

/// A primary key plus the variant selected by `Vary` (0 for the primary slot).
pub type SlotKey = (CacheKey, u64);

/// How many recent purges writers are checked against; older writers give up their entry.
const PURGE_LOG: usize = 4096;

/// One entry file as the index knows it (its headers stay on disk).
#[derive(Debug)]
pub struct IndexEntry {
    pub path: PathBuf,
    pub file_len: u64,
    pub body_len: u64,
    pub freshness: Freshness,
    pub has_validators: bool,
    pub vary: VaryValues,
}

/// What a slot holds: an entry file, or the `Vary` names that select among variants.
#[derive(Debug, Clone)]
pub enum DiskSlot {
    Entry(Arc<IndexEntry>),
    Vary(Arc<[HeaderName]>),
}

struct PurgeLog {
    generation: u64,
    recent: VecDeque<(u64, PurgeSelector)>,
}

impl PurgeLog {
    /// Whether a purge after `since` selects `key` (or the log no longer reaches back).
    fn purged_since(&self, since: u64, key: &CacheKey) -> bool {
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
            .any(|(generation, selector)| *generation > since && selector.matches(key))
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

/// The index.
pub struct Index {
    slots: Cache<SlotKey, DiskSlot>,
    /// Files of evicted, expired and purged entries, to delete.
    doomed: Arc<Mutex<Vec<(SlotKey, PathBuf)>>>,
    ordered: Arc<Mutex<BTreeSet<SlotKey>>>,
    purges: Mutex<PurgeLog>,
}

struct SlotExpiry;

impl moka::Expiry<SlotKey, DiskSlot> for SlotExpiry {
    fn expire_after_create(
        &self,
        _key: &SlotKey,
        slot: &DiskSlot,
        _now: Instant,
    ) -> Option<Duration> {
        match slot {
            DiskSlot::Entry(entry) => {
                let keep = entry.freshness.keep_for(entry.has_validators);
                let elapsed = SystemTime::now()
                    .duration_since(entry.freshness.response_time)
                    .unwrap_or_default();
                Some(keep.saturating_sub(elapsed).max(Duration::from_secs(1)))
            }
            DiskSlot::Vary(_) => None,
        }
    }

    fn expire_after_update(
        &self,
        key: &SlotKey,
        slot: &DiskSlot,
        now: Instant,
        _left: Option<Duration>,
    ) -> Option<Duration> {
        self.expire_after_create(key, slot, now)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The weight of an entry file in the index: kibibytes on disk, plus one for its inode.
fn weight(file_len: u64) -> u32 {
    u32::try_from(file_len.div_ceil(1024) + 1).unwrap_or(u32::MAX)
}

impl Index {
    /// An index for `capacity` bytes of files.
    pub fn new(capacity: u64) -> Index {
        let ordered: Arc<Mutex<BTreeSet<SlotKey>>> = Arc::default();
        let listener_ordered = ordered.clone();
        let doomed: Arc<Mutex<Vec<(SlotKey, PathBuf)>>> = Arc::default();
        let listener_doomed = doomed.clone();
        let slots = Cache::builder()
            .max_capacity(capacity.div_ceil(1024))
            .weigher(|_key: &SlotKey, slot: &DiskSlot| match slot {
                DiskSlot::Entry(entry) => weight(entry.file_len),
                DiskSlot::Vary(_) => 1,
            })
            .expire_after(SlotExpiry)
            .eviction_listener(move |key: Arc<SlotKey>, slot: DiskSlot, cause| {
                if cause == RemovalCause::Replaced {
                    // The same path now holds the newer file.
                    return;
                }
                lock(&listener_ordered).remove(&*key);
                if let DiskSlot::Entry(entry) = slot {
                    lock(&listener_doomed).push(((*key).clone(), entry.path.clone()));
                }
            })
            .build();
        Index {
            slots,
            doomed,
            ordered,
            purges: Mutex::new(PurgeLog {
                generation: 0,
                recent: VecDeque::new(),
            }),
        }
    }

    /// The entry file for `key` matching the request's `Vary`'d headers.
    pub fn get(&self, key: &CacheKey, request: &HeaderMap) -> Option<Arc<IndexEntry>> {
        match self.slots.get(&(key.clone(), 0))? {
            DiskSlot::Entry(entry) => Some(entry),
            DiskSlot::Vary(names) => {
                let variant = VaryValues::id_of(names.iter(), request);
                match self.slots.get(&(key.clone(), variant))? {
                    DiskSlot::Entry(entry) if entry.vary.matches(request) => Some(entry),
                    _ => None,
                }
            }
        }
    }

    /// The primary slot's `Vary` names, when the key varies.
    pub fn vary_names(&self, key: &CacheKey) -> Option<Arc<[HeaderName]>> {
        match self.slots.get(&(key.clone(), 0))? {
            DiskSlot::Vary(names) => Some(names),
            DiskSlot::Entry(_) => None,
        }
    }

    /// The entry in `slot`, if it is (still) this one.
    pub fn is_current(&self, slot: &SlotKey, entry: &Arc<IndexEntry>) -> bool {
        matches!(self.slots.get(slot), Some(DiskSlot::Entry(current)) if Arc::ptr_eq(&current, entry))
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
        if purges.purged_since(since, key) {
            return Ok(Committed::Purged);
        }
        let variant = entry.vary.variant_id();
        let slot = (key.clone(), variant);
        match how {
            Commit::Rename { tmp } => std::fs::rename(tmp, &entry.path)?,
            Commit::Replace => {}
            Commit::Existing => {
                if self.slots.contains_key(&slot) {
                    return Ok(Committed::Present);
                }
            }
        }
        let names: Option<Arc<[HeaderName]>> = (variant != 0).then(|| entry.vary.names().into());
        {
            let mut ordered = lock(&self.ordered);
            ordered.insert((key.clone(), 0));
            ordered.insert(slot.clone());
        }
        if let Some(names) = names {
            let primary = (key.clone(), 0);
            match self.slots.get(&primary) {
                Some(DiskSlot::Vary(current)) if current == names => {}
                Some(DiskSlot::Entry(_)) => {
                    // The response used not to vary: drop its file.
                    self.slots.invalidate(&primary);
                    lock(&self.ordered).insert(primary.clone());
                    self.slots.insert(primary, DiskSlot::Vary(names));
                }
                _ => self.slots.insert(primary, DiskSlot::Vary(names)),
            }
        }
        self.slots.insert(slot, DiskSlot::Entry(Arc::new(entry)));
        drop(purges);
        // Evict now, and delete what was evicted, so the files stay within the capacity.
        self.slots.run_pending_tasks();
        self.delete_doomed();
        Ok(Committed::Indexed)
    }

    /// Drops every slot `selector` names (their files are queued for deletion) and records
    /// the purge for writers in flight. With `before`, a purge replayed from elsewhere, only
    /// responses received before then are dropped (writes in flight are newer). Returns how
    /// many entries were dropped.
    pub fn purge(&self, selector: &PurgeSelector, before: Option<SystemTime>) -> usize {
        let mut purges = lock(&self.purges);
        if before.is_none() {
            purges.generation += 1;
            let generation = purges.generation;
            purges.recent.push_back((generation, selector.clone()));
            while purges.recent.len() > PURGE_LOG {
                purges.recent.pop_front();
            }
        }
        let prefix = selector.key_prefix();
        let selected: Vec<SlotKey> = {
            let ordered = lock(&self.ordered);
            let start = (CacheKey::from_raw_prefix(&prefix), 0);
            ordered
                .range(start..)
                .take_while(|(key, _)| key.as_str().starts_with(&prefix))
                .cloned()
                .collect()
        };
        let mut dropped = 0;
        let mut removed = Vec::with_capacity(selected.len());
        for slot in selected {
            if let Some(before) = before {
                match self.slots.get(&slot) {
                    Some(DiskSlot::Entry(entry)) if entry.freshness.response_time >= before => {
                        continue;
                    }
                    Some(DiskSlot::Vary(_)) => continue,
                    _ => {}
                }
            }
            if let Some(DiskSlot::Entry(_)) = self.slots.remove(&slot) {
                dropped += 1;
            }
            removed.push(slot);
        }
        let mut ordered = lock(&self.ordered);
        for slot in &removed {
            ordered.remove(slot);
        }
        dropped
    }

    /// Drops `slot` if it still holds `entry` (a file found corrupt or missing).
    pub fn remove_entry(&self, slot: &SlotKey, entry: &Arc<IndexEntry>) {
        if self.is_current(slot, entry) {
            self.slots.invalidate(slot);
        }
    }

    /// Bytes of entry files indexed (as weighed, in kibibytes) and slots held.
    pub fn usage(&self) -> (u64, u64) {
        self.slots.run_pending_tasks();
        (self.slots.weighted_size() * 1024, self.slots.entry_count())
    }

    /// Runs pending evictions and expirations.
    pub fn maintain(&self) {
        self.slots.run_pending_tasks();
    }

    /// Deletes the files of entries dropped from the index (blocking). A path whose slot
    /// holds an entry again was rewritten since (paths are per slot) and is kept; the check
    /// and the unlink happen under the lock commits rename under.
    pub fn delete_doomed(&self) {
        let doomed = std::mem::take(&mut *lock(&self.doomed));
        for batch in doomed.chunks(256) {
            let _purges = lock(&self.purges);
            for (slot, path) in batch {
                if matches!(self.slots.get(slot), Some(DiskSlot::Entry(_))) {
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
