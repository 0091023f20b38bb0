//! The memory tier: stored responses in a byte-bounded [`SlotIndex`] (scan-resistant
//! eviction, prefix purges), with per-thread front slots for the entries served most.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use http::{HeaderMap, HeaderName};

use super::entry::{Entry, VaryValues};
use super::front::Front;
use super::index::PurgeAction;
use super::index::{Dropped, Indexed, OnDrop, SlotIndex, SlotKey};
use super::key::{KeyText, PurgeSelector};
use super::tags::Tags;

impl Indexed for Arc<Entry> {
    fn weight(&self) -> u64 {
        u64::from(Entry::weight(self))
    }
    fn keep_until(&self) -> SystemTime {
        super::freshness::later(
            self.freshness.response_time,
            self.freshness.keep_for(self.has_validators()),
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
        (self.freshness.fresh_until() > at)
            .then(|| Arc::new(self.with_freshness(self.freshness.invalidated(at))))
    }
}

/// Counts evictions for room (the metrics' `edge_cache_memory_evictions_total`).
#[derive(Clone, Default)]
struct EvictionCount(Arc<AtomicU64>);

impl OnDrop<Arc<Entry>> for EvictionCount {
    fn dropped(&self, _slot: &SlotKey, _entry: Arc<Entry>, why: Dropped) {
        if why == Dropped::Evicted {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Weight the tier expects of a typical entry (sizes its table).
const TYPICAL_ENTRY: u64 = 16 << 10;

/// Entries a sweep looks at per call.
const SWEEP_BATCH: usize = 4096;

/// The in-memory tier.
pub struct MemoryTier {
    index: SlotIndex<Arc<Entry>, EvictionCount>,
    evictions: EvictionCount,
    /// Per-thread slots of the entries served most, checked before the index.
    front: Front,
}

impl MemoryTier {
    /// A tier holding at most `capacity` bytes, none of its entries over `largest` bytes.
    pub fn new(capacity: u64, largest: u64) -> MemoryTier {
        let evictions = EvictionCount::default();
        MemoryTier {
            index: SlotIndex::new(capacity, TYPICAL_ENTRY, largest, evictions.clone()),
            evictions,
            front: Front::default(),
        }
    }

    /// The stored response for `key` that matches the request's `Vary`'d headers.
    pub fn get(
        &self,
        key: KeyText<'_>,
        request: &HeaderMap,
        now: SystemTime,
    ) -> Option<Arc<Entry>> {
        let epoch = self.front.epoch();
        if let Some(entry) = self.front.get(epoch, key, 0) {
            return Some(entry);
        }
        let entry = self.index.get(key, request, now)?;
        if entry.vary.is_empty() {
            // Only responses without `Vary` live in the primary slot.
            self.front.put(epoch, key, 0, &entry);
        }
        Some(entry)
    }

    /// The stored response for `key` when every response stored under it varies on
    /// `names` (known in advance, as for S3 origins): one lookup, straight to the variant.
    pub fn get_variant(
        &self,
        key: KeyText<'_>,
        names: &[HeaderName],
        request: &HeaderMap,
        now: SystemTime,
    ) -> Option<Arc<Entry>> {
        let variant = VaryValues::id_of(names, request);
        let epoch = self.front.epoch();
        if let Some(entry) = self.front.get(epoch, key, variant)
            && entry.vary.matches(request)
        {
            return Some(entry);
        }
        let entry = self.index.get_variant(key, names, request, now)?;
        self.front.put(epoch, key, variant, &entry);
        Some(entry)
    }

    /// Stores `entry` (replacing the same variant).
    pub fn insert(&self, entry: Arc<Entry>) {
        let key = entry.key.clone();
        self.index.insert(&key, entry);
        self.front.invalidate();
    }

    /// Drops one stored variant (or the primary entry), if it is still `entry`.
    pub fn remove(&self, entry: &Arc<Entry>) {
        let slot = SlotKey::new(&entry.key, entry.vary.variant_id());
        self.index
            .remove_if(&slot, |current| Arc::ptr_eq(current, entry));
        self.front.invalidate();
    }

    /// Drops every slot `selector` names (only those stored before `before`, if given);
    /// returns how many responses were dropped.
    pub fn purge(&self, selector: &PurgeSelector, before: Option<SystemTime>) -> usize {
        self.purge_with(selector, before, PurgeAction::Drop)
    }

    /// Applies `action` to every response `selector` names (only those stored before
    /// `before`, if given); returns how many were dropped or marked stale.
    pub fn purge_with(
        &self,
        selector: &PurgeSelector,
        before: Option<SystemTime>,
        action: PurgeAction,
    ) -> usize {
        let affected = self.index.purge_with(selector, before, action, |_, _| {});
        self.front.invalidate();
        affected
    }

    /// `(tag, entry)` pairs the tag index holds.
    pub fn tag_pairs(&self) -> usize {
        self.index.tag_pairs()
    }

    /// Drops entries past their keep window, a batch at a time (called periodically).
    pub fn sweep(&self, now: SystemTime) -> usize {
        let dropped = self.index.sweep(now, SWEEP_BATCH);
        if dropped > 0 {
            self.front.invalidate();
        }
        dropped
    }

    /// Bytes held (as weighed) and entries held.
    pub fn usage(&self) -> (u64, u64) {
        self.index.usage()
    }

    /// Entries evicted for room so far.
    pub fn evictions(&self) -> u64 {
        self.evictions.0.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use bytes::Bytes;
    use http::{HeaderValue, StatusCode};

    use super::*;
    use crate::cache::CacheKey;
    use crate::cache::Freshness;
    use crate::cache::cors::S3_VARY;
    use crate::cache::entry::Body;

    fn request(origin: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(origin) = origin {
            headers.insert(http::header::ORIGIN, HeaderValue::from_str(origin).unwrap());
        }
        headers
    }

    fn entry(key: &CacheKey, origin: Option<&str>) -> Arc<Entry> {
        Arc::new(Entry::new(
            key.clone(),
            StatusCode::OK,
            &HeaderMap::new(),
            Bytes::from(origin.unwrap_or("none").to_owned()).into(),
            Freshness {
                response_time: SystemTime::now(),
                initial_age: Duration::ZERO,
                ttl_at_store: Duration::from_secs(3600),
                stale_while_revalidate: Duration::ZERO,
                stale_if_error: Duration::ZERO,
                hard_expiry: None,
                invalidated_at: None,
            },
            VaryValues::of(&S3_VARY, &request(origin)),
        ))
    }

    #[test]
    fn the_per_thread_front_never_serves_a_replaced_or_purged_entry() {
        let tier = MemoryTier::new(1 << 20, 1 << 16);
        let key = CacheKey::new("site", "index.html", "");
        let first = entry(&key, None);
        let plain = entry_without_vary(&key, "one");
        tier.insert(plain.clone());
        for _ in 0..40 {
            // Served from the front most of the time, from moka one time in 16.
            assert!(Arc::ptr_eq(
                &tier
                    .get(key.text(), &request(None), SystemTime::now())
                    .unwrap(),
                &plain
            ));
        }
        let replacement = entry_without_vary(&key, "two");
        tier.insert(replacement.clone());
        assert!(Arc::ptr_eq(
            &tier
                .get(key.text(), &request(None), SystemTime::now())
                .unwrap(),
            &replacement
        ));
        let purged = tier.purge(
            &PurgeSelector::Path {
                space: "site".into(),
                key: "index.html".into(),
            },
            None,
        );
        assert_eq!(purged, 1);
        assert!(
            tier.get(key.text(), &request(None), SystemTime::now())
                .is_none()
        );
        // Varied entries go through the front with their variant.
        tier.insert(first.clone());
        for _ in 0..3 {
            let found = tier
                .get_variant(key.text(), &S3_VARY, &request(None), SystemTime::now())
                .unwrap();
            assert!(Arc::ptr_eq(&found, &first));
            assert!(
                tier.get_variant(
                    key.text(),
                    &S3_VARY,
                    &request(Some("https://x")),
                    SystemTime::now()
                )
                .is_none()
            );
        }
        tier.remove(&first);
        assert!(
            tier.get_variant(key.text(), &S3_VARY, &request(None), SystemTime::now())
                .is_none()
        );
        // Another tier on the same thread never sees this one's slots.
        let other = MemoryTier::new(1 << 20, 1 << 16);
        tier.insert(plain.clone());
        assert!(
            tier.get(key.text(), &request(None), SystemTime::now())
                .is_some()
        );
        assert!(
            other
                .get(key.text(), &request(None), SystemTime::now())
                .is_none()
        );
    }

    fn entry_without_vary(key: &CacheKey, body: &'static str) -> Arc<Entry> {
        let mut entry = Arc::into_inner(entry(key, None)).unwrap();
        entry.body = Bytes::from_static(body.as_bytes()).into();
        entry.vary = VaryValues::default();
        Arc::new(entry)
    }

    #[test]
    fn each_origin_finds_its_own_variant() {
        let tier = MemoryTier::new(1 << 20, 1 << 16);
        let key = CacheKey::new("fonts", "f.woff2", "");
        let origins = [None, Some("https://a.example"), Some("https://b.example")];
        for origin in origins {
            assert!(
                tier.get(key.text(), &request(origin), SystemTime::now())
                    .is_none()
            );
            tier.insert(entry(&key, origin));
        }
        for origin in origins {
            let found = tier
                .get(key.text(), &request(origin), SystemTime::now())
                .unwrap();
            assert!(matches!(&found.body, Body::Memory(b) if b == origin.unwrap_or("none")));
            let direct = tier
                .get_variant(key.text(), &S3_VARY, &request(origin), SystemTime::now())
                .unwrap();
            assert!(Arc::ptr_eq(&found, &direct));
        }
        for other in [Some("https://c.example"), Some("")] {
            assert!(
                tier.get(key.text(), &request(other), SystemTime::now())
                    .is_none()
            );
            assert!(
                tier.get_variant(key.text(), &S3_VARY, &request(other), SystemTime::now())
                    .is_none()
            );
        }
        let purged = tier.purge(
            &PurgeSelector::Path {
                space: "fonts".into(),
                key: "f.woff2".into(),
            },
            None,
        );
        assert_eq!(purged, 3);
        assert!(
            tier.get(key.text(), &request(None), SystemTime::now())
                .is_none()
        );
    }
}
