//! The cache: keys, freshness rules, the storage tiers and request coalescing, behind one
//! door. A request asks [`Cache::lookup`] (the memory tier's answer first, from
//! [`Cache::lookup_memory`], without waiting) and gets a [`Lookup`]: a fresh entry, a stale
//! one it may serve while a revalidation runs, the permit to fetch the key itself, or the
//! fill of another request to join. Purges reach every tier and every fill in flight.

pub mod admission;
pub mod body;
pub mod cache_control;
pub mod clock;
pub mod coded;
pub mod coding;
pub mod cors;
pub mod disk;
pub mod entry;
pub mod fill;
pub mod freshness;
mod front;
pub mod head;
pub mod http_date;
pub mod index;
pub mod key;
pub mod memory;
pub mod outcome;
mod promotion;
pub mod tags;
pub mod targeted;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName};

pub use admission::{Exchange, NotStored, TtlRules};
pub use body::{Body, BodyError, Sink, StoredBody};
pub use clock::{Clock, SharedClock};
pub use disk::{DiskTier, Spool, SpoolHead};
pub use entry::{Entry, Validators, VaryValues};
pub use fill::{Fill, FillError, FillHead, FillKind, FillPermit, FillReader, FillRequest, Origin};
pub use freshness::{Freshness, FreshnessState};
pub use head::StoredHead;
pub use key::{CacheKey, KeyText, PurgeSelector};
pub use outcome::{BypassReason, CacheOutcome, Tier};

pub use index::PurgeAction;
pub use tags::Tags;

use fill::{Joined, Registry};
use memory::MemoryTier;
use promotion::Promotion;

/// What the cache holds for a request.
pub enum Lookup {
    /// A fresh stored response.
    Fresh(Arc<Entry>, Tier),
    /// A stale stored response that may be served while it is revalidated; `revalidation`
    /// is this request's to start, unless another one runs already.
    StaleWhileRevalidate {
        entry: Arc<Entry>,
        tier: Tier,
        revalidation: Option<FillPermit>,
    },
    /// Nothing servable: this request fetches (revalidating `permit.stale()`, if any).
    Miss(FillPermit),
    /// Another request is fetching: read its fill.
    Join(Arc<Fill>),
}

/// Which slot of a key a request's response is in, when the origin decides it in advance.
#[derive(Debug, Clone, Copy)]
pub enum Variants {
    /// As the stored responses' `Vary` says.
    ByVary,
    /// Every response varies on these names (S3 origins: `Origin`, see [`cors`]).
    Always(&'static [HeaderName]),
}

/// The PoP's cache: the memory tier, the disk tier and the fills in flight.
pub struct Cache {
    memory: MemoryTier,
    disk: DiskTier,
    fills: Registry,
    max_memory_object: u64,
    /// Disk entries received before this time (milliseconds since the epoch; 0: none) may
    /// have been purged by peers while this PoP was down: they are revalidated, never served
    /// as they are, until the PoP has caught up with its peers' purges.
    disk_untrusted_before: AtomicU64,
    /// Which disk hits are copied up to the memory tier.
    promotion: Promotion,
    clock: SharedClock,
}

impl Cache {
    /// A cache whose memory tier holds `memory` bytes, objects up to `max_memory_object`,
    /// with a disk tier of `disk` bytes under `disk_path` (none when `disk` is 0), reading
    /// the time from `clock`.
    pub fn new(
        memory: u64,
        max_memory_object: u64,
        disk_path: &Path,
        disk: u64,
        clock: SharedClock,
    ) -> Cache {
        Cache {
            memory: MemoryTier::new(memory, max_memory_object),
            disk: DiskTier::open(disk_path, disk, clock.clone()),
            fills: Registry::default(),
            max_memory_object,
            disk_untrusted_before: AtomicU64::new(0),
            promotion: Promotion::default(),
            clock,
        }
    }

    /// A cache without a disk tier, on the real clock.
    pub fn in_memory(memory: u64, max_memory_object: u64) -> Cache {
        Cache::new(memory, max_memory_object, Path::new(""), 0, clock::system())
    }

    /// The time, as the cache's clock tells it.
    pub fn now(&self) -> SystemTime {
        self.clock.now()
    }

    /// The cache's clock.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// The memory tier's answer, without waiting: a fresh entry, or a stale one servable
    /// while revalidating. `None`: ask [`Cache::lookup`].
    pub fn lookup_memory(
        self: &Arc<Self>,
        key: KeyText<'_>,
        variants: Variants,
        request: &HeaderMap,
        now: SystemTime,
    ) -> Option<Lookup> {
        let entry = self.memory_entry(key, variants, request, now)?;
        match entry.freshness.state(now) {
            FreshnessState::Fresh => Some(Lookup::Fresh(entry, Tier::Memory)),
            FreshnessState::StaleWhileRevalidate => {
                let revalidation = self.revalidation(&entry);
                Some(Lookup::StaleWhileRevalidate {
                    entry,
                    tier: Tier::Memory,
                    revalidation,
                })
            }
            FreshnessState::Stale => None,
        }
    }

    fn memory_entry(
        &self,
        key: KeyText<'_>,
        variants: Variants,
        request: &HeaderMap,
        now: SystemTime,
    ) -> Option<Arc<Entry>> {
        let entry = match variants {
            Variants::ByVary => self.memory.get(key, request, now),
            Variants::Always(names) => self.memory.get_variant(key, names, request, now),
        }?;
        self.promotion.memory_hit();
        Some(entry)
    }

    /// The one door: the memory tier, then the disk tier, then the fills in flight.
    pub async fn lookup(
        self: &Arc<Self>,
        key: &CacheKey,
        variants: Variants,
        request: &HeaderMap,
        now: SystemTime,
    ) -> Lookup {
        let mut tier = Tier::Memory;
        let mut stored = self.memory_entry(key.text(), variants, request, now);
        if stored.is_none() {
            tier = Tier::Disk;
            let known_vary = match variants {
                Variants::ByVary => None,
                Variants::Always(names) => Some(names),
            };
            stored = self.lookup_disk(key, request, known_vary).await;
        }
        if let Some(entry) = &stored {
            match entry.freshness.state(now) {
                FreshnessState::Fresh => return Lookup::Fresh(entry.clone(), tier),
                FreshnessState::StaleWhileRevalidate => {
                    return Lookup::StaleWhileRevalidate {
                        entry: entry.clone(),
                        tier,
                        revalidation: self.revalidation(entry),
                    };
                }
                FreshnessState::Stale => {}
            }
        } else {
            // Nothing stored when we looked; a fill may have ended since (the disk lookup
            // awaits): what it stored in memory is looked for again under the registry's lock.
            let stored_since = || {
                self.memory_entry(key.text(), variants, request, now)
                    .filter(|e| matches!(e.freshness.state(now), FreshnessState::Fresh))
            };
            return match self.fills.join_unless(key, stored_since) {
                Err(entry) => Lookup::Fresh(entry, Tier::Memory),
                Ok(joined) => self.joined(key, joined, None),
            };
        }
        self.fetch(key, stored)
    }

    /// Joins the key's fill in flight, or gets the permit to start one (revalidating
    /// `stale`, if given).
    pub fn fetch(self: &Arc<Self>, key: &CacheKey, stale: Option<Arc<Entry>>) -> Lookup {
        self.joined(key, self.fills.join(key), stale)
    }

    /// The lookup a registry join for `key` makes: a miss this request leads (with `stale`
    /// to serve on error), or a fill to follow.
    fn joined(
        self: &Arc<Self>,
        key: &CacheKey,
        joined: Joined,
        stale: Option<Arc<Entry>>,
    ) -> Lookup {
        match joined {
            Joined::Leader(fill) => Lookup::Miss(FillPermit::registered(
                self.clone(),
                key.clone(),
                fill,
                stale,
            )),
            Joined::Follower(fill) => Lookup::Join(fill),
        }
    }

    /// The permit to revalidate `entry` in the background, unless a fill for its key runs.
    pub fn revalidation(self: &Arc<Self>, entry: &Arc<Entry>) -> Option<FillPermit> {
        match self.fills.join(&entry.key) {
            Joined::Leader(fill) => Some(FillPermit::registered(
                self.clone(),
                entry.key.clone(),
                fill,
                Some(entry.clone()),
            )),
            Joined::Follower(_) => None,
        }
    }

    /// After a memory miss: the stored response from the disk tier (its body is read and
    /// verified as it is sent). A body that fits the memory tier is copied up when the
    /// memory tier has room for it or the key is hotter than what memory holds (`promotion`).
    async fn lookup_disk(
        &self,
        key: &CacheKey,
        request: &HeaderMap,
        known_vary: Option<&[HeaderName]>,
    ) -> Option<Arc<Entry>> {
        let mut entry = self.disk.lookup(key, request, known_vary, 0).await?;
        let untrusted_before = self.disk_untrusted_before.load(Ordering::Acquire);
        if untrusted_before > 0
            && entry.freshness.response_time
                < SystemTime::UNIX_EPOCH + Duration::from_millis(untrusted_before)
        {
            entry = Arc::new(entry.must_revalidate());
        }
        if let Body::Stored(stored) = &entry.body
            && stored.len() <= self.max_memory_object
        {
            let weight = u64::from(entry.weight());
            let usage = || self.memory.room();
            let now = self.clock.now();
            if let Some(_copying) =
                self.promotion
                    .disk_hit(key, entry.vary.variant_id(), weight, now, usage)
            {
                // A bad body was dropped by its tier: the request is a miss.
                let body = body::read_whole(stored.clone()).await.ok()?;
                entry = Arc::new(entry.with_body(Body::Memory(body)));
                self.memory.insert(entry.clone());
            }
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

    /// Finishes pending disk writes and releases the disk directory.
    pub async fn shutdown(&self) {
        self.disk.shutdown().await;
    }

    /// Largest body the memory tier stores.
    pub fn max_memory_object(&self) -> u64 {
        self.max_memory_object
    }

    /// Ends a fill: stores `entry` (if any) unless a purge detached the fill meanwhile.
    pub(crate) fn complete(&self, key: &CacheKey, fill: &Arc<Fill>, entry: Option<Arc<Entry>>) {
        self.fills.leave(key, fill, || {
            let Some(entry) = entry else { return };
            let fits = matches!(&entry.body, Body::Memory(body) if body.len() as u64 <= self.max_memory_object);
            if fits {
                self.memory.insert(entry.clone());
            }
            // Under the registry's lock: a purge either detached this fill or comes later.
            self.disk.store(entry, self.disk.generation());
        });
    }

    /// Stores `entry` as if a fill had fetched it, unless a fill for its key runs
    /// (benchmarks and tests fill caches so).
    pub fn insert(&self, entry: Entry) {
        let key = entry.key.clone();
        if let Joined::Leader(fill) = self.fills.join(&key) {
            self.complete(&key, &fill, Some(Arc::new(entry)));
        }
    }

    /// Drops everything `selector` names from every tier, and detaches matching fills so
    /// nothing fetched before the purge is stored after it. Returns responses dropped.
    pub fn purge(&self, selector: &PurgeSelector) -> usize {
        self.purge_with(selector, PurgeAction::Drop)
    }

    /// Applies `action` (drop, or mark stale: a soft purge) to everything `selector` names
    /// in every tier, and detaches matching fills so nothing fetched before the purge is
    /// stored after it. Returns responses dropped or marked.
    pub fn purge_with(&self, selector: &PurgeSelector, action: PurgeAction) -> usize {
        self.fills.detach(selector);
        let memory = self.memory.purge_with(selector, None, action);
        let disk = self.disk.purge(selector, None, action);
        memory.max(disk)
    }

    /// Replays a purge applied elsewhere at `at`: acts only on what was stored before then.
    pub fn purge_stored_before(
        &self,
        selector: &PurgeSelector,
        at: SystemTime,
        action: PurgeAction,
    ) -> usize {
        let memory = self.memory.purge_with(selector, Some(at), action);
        let disk = self.disk.purge(selector, Some(at), action);
        memory.max(disk)
    }

    /// Drops `entry` from both tiers, if it is still the one stored for its slot (the origin
    /// said the resource is gone, e.g. a `410` to a HEAD revalidating it).
    pub fn invalidate(&self, entry: &Arc<Entry>) {
        self.memory.remove(entry);
        self.disk.remove(entry);
    }

    /// `(tag, entry)` pairs the tiers' tag indexes hold (memory, disk).
    pub fn tag_pairs(&self) -> (usize, usize) {
        (self.memory.tag_pairs(), self.disk.tag_pairs())
    }

    /// Drops memory entries past their keep window, a batch at a time (called every few
    /// seconds; the disk tier sweeps its own).
    pub fn sweep(&self) -> usize {
        self.memory.sweep(self.now())
    }

    /// Figures for the metrics.
    pub fn figures(&self) -> CacheFigures {
        let (memory_bytes, memory_entries) = self.memory.usage();
        let (disk_bytes, disk_entries) = self.disk.usage();
        CacheFigures {
            memory_bytes,
            memory_entries,
            memory_evictions: self.memory.evictions(),
            disk_bytes,
            disk_entries,
            disk_errors: self.disk.errors(),
            disk_corrupt: self.disk.corrupt_entries(),
            disk_file_page_bytes: self.disk.file_page_bytes(),
            disk_revalidating: !self.disk_trusted(),
        }
    }

    /// Bytes and entries in the memory tier.
    pub fn memory_usage(&self) -> (u64, u64) {
        self.memory.usage()
    }

    /// Bytes and entries in the disk tier.
    pub fn disk_usage(&self) -> (u64, u64) {
        self.disk.usage()
    }
}

/// The cache's figures at one instant.
#[derive(Debug, Clone, Copy, Default)]
pub struct CacheFigures {
    pub memory_bytes: u64,
    pub memory_entries: u64,
    pub memory_evictions: u64,
    pub disk_bytes: u64,
    pub disk_entries: u64,
    pub disk_errors: u64,
    pub disk_corrupt: u64,
    /// Body bytes of disk hits handed to sockets as the page cache's pages (`sendfile`).
    pub disk_file_page_bytes: u64,
    /// Whether disk entries are revalidated before they are served (see
    /// [`Cache::distrust_disk_before`]).
    pub disk_revalidating: bool,
}

/// A header map of `(name, value)` pairs, in order (unit tests).
#[cfg(test)]
pub(crate) fn test_headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    for (name, value) in pairs {
        headers.append(
            http::HeaderName::from_bytes(name.as_bytes()).expect("a test header name"),
            http::HeaderValue::from_str(value).expect("a test header value"),
        );
    }
    headers
}
