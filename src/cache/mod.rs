//! The cache: keys, freshness rules, the storage tiers and request coalescing.
//!
//! `Cache` is the one door: lookups go to the memory tier, then the disk tier, misses join or
//! start a fill, and purges reach every tier and every fill in flight.

pub mod cache_control;
pub mod cors;
pub mod disk;
pub mod entry;
pub mod fill;
pub mod freshness;
mod front;
pub mod key;
pub mod memory;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use http::HeaderMap;

pub use disk::{DiskBody, DiskTier, Spool, SpoolHead};
pub use entry::{Entry, EntryBody, Validators, VaryValues};
pub use fill::{Fill, FillError, FillHead, FillKind, FillReader};
pub use freshness::{Freshness, FreshnessState, NotStored, TtlRules};
pub use key::{CacheKey, KeyText, PurgeSelector};
use memory::MemoryTier;

/// Outcome of joining the fill registry.
pub enum Join {
    /// This request started the fill and must drive it.
    Leader(Arc<Fill>),
    /// Another request is fetching; read from it.
    Follower(Arc<Fill>),
}

/// The PoP's cache: the memory tier, the disk tier and the fills in flight.
pub struct Cache {
    memory: MemoryTier,
    disk: DiskTier,
    fills: Mutex<HashMap<CacheKey, Arc<Fill>>>,
    max_memory_object: u64,
    /// Disk entries received before this time (milliseconds since the epoch; 0: none) may have
    /// been purged by peers while this PoP was down: they are revalidated, never served as
    /// they are, until the PoP has caught up with its peers' purges.
    disk_untrusted_before: AtomicU64,
}

impl Cache {
    /// A cache whose memory tier holds `memory` bytes, objects up to `max_memory_object`,
    /// without a disk tier.
    pub fn new(memory: u64, max_memory_object: u64) -> Cache {
        Cache {
            memory: MemoryTier::new(memory),
            disk: DiskTier::disabled(),
            fills: Mutex::default(),
            max_memory_object,
            disk_untrusted_before: AtomicU64::new(0),
        }
    }

    /// A cache with a disk tier of `disk` bytes under `disk_path` (none when `disk` is 0).
    pub fn with_disk(memory: u64, max_memory_object: u64, disk_path: &Path, disk: u64) -> Cache {
        Cache {
            disk: DiskTier::open(disk_path, disk),
            ..Cache::new(memory, max_memory_object)
        }
    }

    fn fills(&self) -> MutexGuard<'_, HashMap<CacheKey, Arc<Fill>>> {
        self.fills.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The stored response for `key` matching the request's varied headers, from memory.
    pub fn lookup(&self, key: KeyText<'_>, request: &HeaderMap) -> Option<Arc<Entry>> {
        self.memory.get(key, request)
    }

    /// Like [`Cache::lookup`] when every response under `key` varies on `names` (S3 origins:
    /// `Origin`, see [`cors`]): the variant is found without reading the primary slot.
    pub fn lookup_variant(
        &self,
        key: KeyText<'_>,
        names: &[http::HeaderName],
        request: &HeaderMap,
    ) -> Option<Arc<Entry>> {
        self.memory.get_variant(key, names, request)
    }

    /// After a memory miss: the stored response from the disk tier, verified. Bodies that fit
    /// the memory tier are read whole and promoted to it; larger ones stream from the file.
    pub async fn lookup_disk(&self, key: &CacheKey, request: &HeaderMap) -> Option<Arc<Entry>> {
        let mut entry = self
            .disk
            .lookup(key, request, self.max_memory_object)
            .await?;
        let untrusted_before = self.disk_untrusted_before.load(Ordering::Acquire);
        if untrusted_before > 0
            && entry.freshness.response_time
                < SystemTime::UNIX_EPOCH + Duration::from_millis(untrusted_before)
        {
            entry = Arc::new(entry.must_revalidate());
        }
        if matches!(entry.body, EntryBody::Memory(_)) {
            self.memory.insert(entry.clone());
        }
        Some(entry)
    }

    /// Until [`Cache::trust_disk`], disk entries received before `since` are revalidated
    /// before they are served (and never served stale): peers may have purged them while
    /// this PoP was down.
    pub fn distrust_disk_before(&self, since: SystemTime) {
        let millis = since.duration_since(SystemTime::UNIX_EPOCH).map_or(1, |d| {
            u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
        });
        self.disk_untrusted_before.store(millis, Ordering::Release);
    }

    /// The PoP has caught up with its peers' purges: disk entries are served as they are.
    pub fn trust_disk(&self) {
        self.disk_untrusted_before.store(0, Ordering::Release);
    }

    /// Whether disk entries are served as they are (see [`Cache::distrust_disk_before`]).
    pub fn disk_trusted(&self) -> bool {
        self.disk_untrusted_before.load(Ordering::Acquire) == 0
    }

    /// The disk tier.
    pub fn disk(&self) -> &DiskTier {
        &self.disk
    }

    /// A spool file streaming a large body of `length` (if known) to the disk tier, when the
    /// tier takes it.
    pub fn spool(&self, length: Option<u64>) -> Option<Spool> {
        self.disk.spool(length)
    }

    /// Disk errors seen (each turns the disk tier pass-through for a while).
    pub fn disk_errors(&self) -> u64 {
        self.disk.errors()
    }

    /// Bytes and entries in the disk tier.
    pub fn disk_usage(&self) -> (u64, u64) {
        self.disk.usage()
    }

    /// Finishes pending disk writes and releases the disk directory.
    pub async fn shutdown(&self) {
        self.disk.shutdown().await;
    }

    /// Largest body the memory tier stores.
    pub fn max_memory_object(&self) -> u64 {
        self.max_memory_object
    }

    /// Joins the fill in flight for `key`, or registers a new one this request leads.
    pub fn join(&self, key: &CacheKey) -> Join {
        let mut fills = self.fills();
        if let Some(fill) = fills.get(key)
            && fill.joinable()
        {
            return Join::Follower(fill.clone());
        }
        let fill = Fill::new();
        fills.insert(key.clone(), fill.clone());
        Join::Leader(fill)
    }

    /// Ends a fill: stores `entry` (if any) unless a purge detached the fill meanwhile.
    pub fn complete(&self, key: &CacheKey, fill: &Arc<Fill>, entry: Option<Entry>) {
        let mut fills = self.fills();
        let registered = fills.get(key).is_some_and(|f| Arc::ptr_eq(f, fill));
        if registered {
            fills.remove(key);
            if let Some(entry) = entry {
                let headers = entry::owned_headers(&entry.headers);
                let validators = Validators::from_headers(&headers);
                let entry = Arc::new(Entry {
                    headers,
                    validators,
                    ..entry
                });
                let fits = matches!(&entry.body, EntryBody::Memory(body) if body.len() as u64 <= self.max_memory_object);
                if fits {
                    self.memory.insert(entry.clone());
                }
                // Under the fills lock, so a purge either detached this fill or comes later.
                self.disk.store(entry, self.disk.generation());
            }
        }
    }

    /// Removes one stored response from memory (e.g. after an unsafe method invalidated it);
    /// purges reach the disk tier.
    pub fn remove(&self, entry: &Entry) {
        self.memory.remove(entry);
    }

    /// Drops everything `selector` names from every tier, and detaches matching fills so
    /// nothing fetched before the purge is stored after it. Returns responses dropped.
    pub fn purge(&self, selector: &PurgeSelector) -> usize {
        let mut fills = self.fills();
        fills.retain(|key, fill| {
            let keep = !selector.matches(key);
            if !keep {
                fill.close();
            }
            keep
        });
        let memory = self.memory.purge(selector, None);
        let disk = self.disk.purge(selector, None);
        memory.max(disk)
    }

    /// Replays a purge applied elsewhere at `at`: drops only what was stored before then.
    pub fn purge_stored_before(
        &self,
        selector: &PurgeSelector,
        at: std::time::SystemTime,
    ) -> usize {
        let memory = self.memory.purge(selector, Some(at));
        let disk = self.disk.purge(selector, Some(at));
        memory.max(disk)
    }

    /// Memory-tier evictions for room so far.
    pub fn memory_evictions(&self) -> u64 {
        self.memory.evictions()
    }

    /// Bytes and entries in the memory tier.
    pub fn memory_usage(&self) -> (u64, u64) {
        self.memory.sync();
        (self.memory.weighted_size(), self.memory.entry_count())
    }
}
