//! The cache: keys, freshness rules, the storage tiers and request coalescing.
//!
//! `Cache` is the one door: lookups go to the memory tier, misses join or start a fill, and
//! purges reach every tier and every fill in flight.

pub mod cache_control;
pub mod cors;
pub mod entry;
pub mod fill;
pub mod freshness;
pub mod key;
pub mod memory;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use http::HeaderMap;

pub use entry::{Entry, Validators, VaryValues};
pub use fill::{Fill, FillError, FillHead, FillKind, FillReader};
pub use freshness::{Freshness, FreshnessState, NotStored, TtlRules};
pub use key::{CacheKey, PurgeSelector};
use memory::MemoryTier;

/// Outcome of joining the fill registry.
pub enum Join {
    /// This request started the fill and must drive it.
    Leader(Arc<Fill>),
    /// Another request is fetching; read from it.
    Follower(Arc<Fill>),
}

/// The PoP's cache: the memory tier and the fills in flight.
pub struct Cache {
    memory: MemoryTier,
    fills: Mutex<HashMap<CacheKey, Arc<Fill>>>,
    max_memory_object: u64,
}

impl Cache {
    /// A cache whose memory tier holds `memory` bytes, objects up to `max_memory_object`.
    pub fn new(memory: u64, max_memory_object: u64) -> Cache {
        Cache {
            memory: MemoryTier::new(memory),
            fills: Mutex::default(),
            max_memory_object,
        }
    }

    fn fills(&self) -> MutexGuard<'_, HashMap<CacheKey, Arc<Fill>>> {
        self.fills.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The stored response for `key` matching the request's varied headers.
    pub fn lookup(&self, key: &CacheKey, request: &HeaderMap) -> Option<Arc<Entry>> {
        self.memory.get(key, request)
    }

    /// Like [`Cache::lookup`] when every response under `key` varies on `names` (S3 origins:
    /// `Origin`, see [`cors`]): the variant is found without reading the primary slot.
    pub fn lookup_variant(
        &self,
        key: &CacheKey,
        names: &[http::HeaderName],
        request: &HeaderMap,
    ) -> Option<Arc<Entry>> {
        self.memory.get_variant(key, names, request)
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
                self.memory.insert(Arc::new(entry));
            }
        }
    }

    /// Removes one stored response (e.g. after an unsafe method invalidated it).
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
        self.memory.purge(selector, None)
    }

    /// Replays a purge applied elsewhere at `at`: drops only what was stored before then.
    pub fn purge_stored_before(
        &self,
        selector: &PurgeSelector,
        at: std::time::SystemTime,
    ) -> usize {
        self.memory.purge(selector, Some(at))
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
