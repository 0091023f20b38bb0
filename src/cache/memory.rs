//! The memory tier: a byte-bounded moka cache (TinyLFU admission, LRU eviction) with an
//! ordered key index so purges select by prefix without scanning every entry.

use std::borrow::Borrow;
use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderName};
use moka::notification::RemovalCause;
use moka::sync::Cache;

use super::entry::{Entry, VaryValues};
use super::front::Front;
use super::key::{CacheKey, KeyText, PurgeSelector};

/// A primary key plus the variant selected by `Vary` (0 for the primary slot).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SlotKey {
    key: CacheKey,
    variant: u64,
}

impl SlotKey {
    fn new(key: &CacheKey, variant: u64) -> SlotKey {
        SlotKey {
            key: key.clone(),
            variant,
        }
    }
}

/// A slot key's parts, however held: lookups hash and compare borrowed text against the
/// stored [`SlotKey`]s without building one (no allocation on a hit).
trait SlotView {
    fn text(&self) -> &str;
    fn variant(&self) -> u64;
}

impl SlotView for SlotKey {
    fn text(&self) -> &str {
        self.key.as_str()
    }
    fn variant(&self) -> u64 {
        self.variant
    }
}

impl SlotView for (KeyText<'_>, u64) {
    fn text(&self) -> &str {
        self.0.as_str()
    }
    fn variant(&self) -> u64 {
        self.1
    }
}

impl Hash for dyn SlotView + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.text().hash(state);
        self.variant().hash(state);
    }
}

impl PartialEq for dyn SlotView + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.variant() == other.variant() && self.text() == other.text()
    }
}

impl Eq for dyn SlotView + '_ {}

/// Hashes as its [`SlotView`] does, so borrowed lookups find it.
impl Hash for SlotKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self as &dyn SlotView).hash(state);
    }
}

impl<'a> Borrow<dyn SlotView + 'a> for SlotKey {
    fn borrow(&self) -> &(dyn SlotView + 'a) {
        self
    }
}

/// The slot of `key`'s variant, borrowed.
fn slot(key: KeyText<'_>, variant: u64) -> (KeyText<'_>, u64) {
    (key, variant)
}

/// What a slot holds: a response, or the `Vary` names that select among variants.
#[derive(Debug, Clone)]
pub enum Slot {
    Entry(Arc<Entry>),
    Vary(Arc<[HeaderName]>),
}

/// The in-memory tier.
pub struct MemoryTier {
    slots: Cache<SlotKey, Slot>,
    index: Arc<Mutex<BTreeSet<SlotKey>>>,
    evictions: Arc<AtomicU64>,
    /// Per-thread slots of the entries served most, checked before `slots`.
    front: Front,
}

struct SlotExpiry;

impl moka::Expiry<SlotKey, Slot> for SlotExpiry {
    fn expire_after_create(&self, _key: &SlotKey, slot: &Slot, _now: Instant) -> Option<Duration> {
        Some(match slot {
            Slot::Entry(entry) => {
                let keep = entry.freshness.keep_for(entry.validators.any());
                let elapsed = std::time::SystemTime::now()
                    .duration_since(entry.freshness.response_time)
                    .unwrap_or_default();
                keep.saturating_sub(elapsed).max(Duration::from_secs(1))
            }
            Slot::Vary(_) => Duration::from_secs(86_400),
        })
    }

    fn expire_after_update(
        &self,
        key: &SlotKey,
        slot: &Slot,
        now: Instant,
        _left: Option<Duration>,
    ) -> Option<Duration> {
        self.expire_after_create(key, slot, now)
    }
}

impl MemoryTier {
    /// A tier holding at most `capacity` bytes.
    pub fn new(capacity: u64) -> MemoryTier {
        let index: Arc<Mutex<BTreeSet<SlotKey>>> = Arc::default();
        let listener_index = index.clone();
        let evictions: Arc<AtomicU64> = Arc::default();
        let listener_evictions = evictions.clone();
        let slots = Cache::builder()
            .max_capacity(capacity)
            .weigher(|key: &SlotKey, slot: &Slot| match slot {
                Slot::Entry(entry) => entry.weight(),
                Slot::Vary(names) => (key.key.as_str().len() + names.len() * 32 + 128) as u32,
            })
            .expire_after(SlotExpiry)
            .eviction_listener(move |key: Arc<SlotKey>, _slot, cause| {
                if cause == RemovalCause::Size {
                    listener_evictions.fetch_add(1, Ordering::Relaxed);
                }
                if cause != RemovalCause::Replaced {
                    listener_index
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .remove(&*key);
                }
            })
            .build();
        MemoryTier {
            slots,
            index,
            evictions,
            front: Front::default(),
        }
    }

    /// The stored response for `key` that matches the request's `Vary`'d headers.
    pub fn get(&self, key: KeyText<'_>, request: &HeaderMap) -> Option<Arc<Entry>> {
        let epoch = self.front.epoch();
        if let Some(entry) = self.front.get(epoch, key, 0) {
            return Some(entry);
        }
        match self.slots.get(&slot(key, 0) as &dyn SlotView)? {
            Slot::Entry(entry) => {
                // Only responses without `Vary` live in the primary slot.
                self.front.put(epoch, key, 0, &entry);
                Some(entry)
            }
            Slot::Vary(names) => {
                // Hashed and compared in place: a varied hit allocates nothing.
                let variant = VaryValues::id_of(names.iter(), request);
                match self.slots.get(&slot(key, variant) as &dyn SlotView)? {
                    Slot::Entry(entry) if entry.vary.matches(request) => Some(entry),
                    _ => None,
                }
            }
        }
    }

    /// The stored response for `key` when every response stored under it varies on
    /// `names` (known in advance, as for S3 origins): one lookup, straight to the variant.
    pub fn get_variant(
        &self,
        key: KeyText<'_>,
        names: &[HeaderName],
        request: &HeaderMap,
    ) -> Option<Arc<Entry>> {
        let variant = VaryValues::id_of(names, request);
        let epoch = self.front.epoch();
        if let Some(entry) = self.front.get(epoch, key, variant)
            && entry.vary.matches(request)
        {
            return Some(entry);
        }
        match self.slots.get(&slot(key, variant) as &dyn SlotView)? {
            Slot::Entry(entry) if entry.vary.matches(request) => {
                self.front.put(epoch, key, variant, &entry);
                Some(entry)
            }
            _ => None,
        }
    }

    /// Stores `entry` (replacing the same variant).
    pub fn insert(&self, entry: Arc<Entry>) {
        let key = entry.key.clone();
        let variant = entry.vary.variant_id();
        {
            let mut index = self.index.lock().unwrap_or_else(PoisonError::into_inner);
            index.insert(SlotKey::new(&key, 0));
            if variant != 0 {
                index.insert(SlotKey::new(&key, variant));
            }
        }
        if variant == 0 {
            self.slots.insert(SlotKey::new(&key, 0), Slot::Entry(entry));
        } else {
            let names: Arc<[HeaderName]> = entry.vary.names().into();
            self.slots.insert(SlotKey::new(&key, 0), Slot::Vary(names));
            self.slots
                .insert(SlotKey::new(&key, variant), Slot::Entry(entry));
        }
        self.front.invalidate();
    }

    /// Drops one stored variant (or the primary entry).
    pub fn remove(&self, entry: &Entry) {
        self.slots
            .invalidate(&slot(entry.key.text(), entry.vary.variant_id()) as &dyn SlotView);
        self.front.invalidate();
    }

    /// Drops every slot `selector` names (only those stored before `before`, if given);
    /// returns how many responses were dropped.
    pub fn purge(&self, selector: &PurgeSelector, before: Option<std::time::SystemTime>) -> usize {
        let prefix = selector.key_prefix();
        let selected: Vec<SlotKey> = {
            let index = self.index.lock().unwrap_or_else(PoisonError::into_inner);
            let start = SlotKey::new(&CacheKey::from_raw_prefix(&prefix), 0);
            index
                .range(start..)
                .take_while(|slot| slot.key.as_str().starts_with(&prefix))
                .cloned()
                .collect()
        };
        let mut dropped = 0;
        let mut removed = Vec::with_capacity(selected.len());
        for slot in selected {
            if let Some(before) = before {
                match self.slots.get(&slot) {
                    Some(Slot::Entry(entry)) if entry.freshness.response_time >= before => continue,
                    Some(Slot::Vary(_)) => continue,
                    _ => {}
                }
            }
            if let Some(Slot::Entry(_)) = self.slots.remove(&slot) {
                dropped += 1;
            }
            removed.push(slot);
        }
        self.front.invalidate();
        let mut index = self.index.lock().unwrap_or_else(PoisonError::into_inner);
        for slot in &removed {
            index.remove(slot);
        }
        dropped
    }

    /// Bytes held (approximate, as weighed).
    pub fn weighted_size(&self) -> u64 {
        self.slots.weighted_size()
    }

    /// Number of slots held (approximate).
    pub fn entry_count(&self) -> u64 {
        self.slots.entry_count()
    }

    /// Entries evicted for room so far.
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    /// Runs moka's pending housekeeping (tests and metrics).
    pub fn sync(&self) {
        self.slots.run_pending_tasks();
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use bytes::Bytes;
    use http::{HeaderValue, StatusCode};

    use super::*;
    use crate::cache::Freshness;
    use crate::cache::cors::S3_VARY;
    use crate::cache::entry::{EntryBody, Validators};

    fn request(origin: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(origin) = origin {
            headers.insert(http::header::ORIGIN, HeaderValue::from_str(origin).unwrap());
        }
        headers
    }

    fn entry(key: &CacheKey, origin: Option<&str>) -> Arc<Entry> {
        Arc::new(Entry {
            key: key.clone(),
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: Bytes::from(origin.unwrap_or("none").to_owned()).into(),
            freshness: Freshness {
                response_time: SystemTime::now(),
                initial_age: Duration::ZERO,
                ttl_at_store: Duration::from_secs(3600),
                stale_while_revalidate: Duration::ZERO,
                stale_if_error: Duration::ZERO,
                hard_expiry: None,
            },
            validators: Validators::default(),
            vary: VaryValues::of(&S3_VARY, &request(origin)),
        })
    }

    #[test]
    fn the_per_thread_front_never_serves_a_replaced_or_purged_entry() {
        let tier = MemoryTier::new(1 << 20);
        let key = CacheKey::new("site", "index.html", "");
        let first = entry(&key, None);
        let plain = entry_without_vary(&key, "one");
        tier.insert(plain.clone());
        for _ in 0..40 {
            // Served from the front most of the time, from moka one time in 16.
            assert!(Arc::ptr_eq(
                &tier.get(key.text(), &request(None)).unwrap(),
                &plain
            ));
        }
        let replacement = entry_without_vary(&key, "two");
        tier.insert(replacement.clone());
        assert!(Arc::ptr_eq(
            &tier.get(key.text(), &request(None)).unwrap(),
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
        assert!(tier.get(key.text(), &request(None)).is_none());
        // Varied entries go through the front with their variant.
        tier.insert(first.clone());
        for _ in 0..3 {
            let found = tier
                .get_variant(key.text(), &S3_VARY, &request(None))
                .unwrap();
            assert!(Arc::ptr_eq(&found, &first));
            assert!(
                tier.get_variant(key.text(), &S3_VARY, &request(Some("https://x")))
                    .is_none()
            );
        }
        tier.remove(&first);
        assert!(
            tier.get_variant(key.text(), &S3_VARY, &request(None))
                .is_none()
        );
        // Another tier on the same thread never sees this one's slots.
        let other = MemoryTier::new(1 << 20);
        tier.insert(plain.clone());
        assert!(tier.get(key.text(), &request(None)).is_some());
        assert!(other.get(key.text(), &request(None)).is_none());
    }

    fn entry_without_vary(key: &CacheKey, body: &'static str) -> Arc<Entry> {
        let mut entry = Arc::into_inner(entry(key, None)).unwrap();
        entry.body = Bytes::from_static(body.as_bytes()).into();
        entry.vary = VaryValues::default();
        Arc::new(entry)
    }

    #[test]
    fn each_origin_finds_its_own_variant() {
        let tier = MemoryTier::new(1 << 20);
        let key = CacheKey::new("fonts", "f.woff2", "");
        let origins = [None, Some("https://a.example"), Some("https://b.example")];
        for origin in origins {
            assert!(tier.get(key.text(), &request(origin)).is_none());
            tier.insert(entry(&key, origin));
        }
        for origin in origins {
            let found = tier.get(key.text(), &request(origin)).unwrap();
            assert!(matches!(&found.body, EntryBody::Memory(b) if b == origin.unwrap_or("none")));
            let direct = tier
                .get_variant(key.text(), &S3_VARY, &request(origin))
                .unwrap();
            assert!(Arc::ptr_eq(&found, &direct));
        }
        for other in [Some("https://c.example"), Some("")] {
            assert!(tier.get(key.text(), &request(other)).is_none());
            assert!(
                tier.get_variant(key.text(), &S3_VARY, &request(other))
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
        assert!(tier.get(key.text(), &request(None)).is_none());
    }
}
