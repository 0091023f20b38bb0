//! One index for both tiers: key → slot, `Vary` variants, and the ordered set of keys that
//! purges walk. The memory tier indexes stored responses, the disk tier its entry files; both
//! are a [`SlotIndex`] over the value they keep.
//!
//! - **Slots.** A primary key (`space \0 object key \0 query`) has a *primary slot* (variant
//!   0). A response that does not vary sits there; one that varies leaves the `Vary` names
//!   there and sits in the slot of its variant (a hash of the request's values for those
//!   names), so a lookup is one probe, or two for varied responses.
//! - **Eviction.** The slots live in a weighted quick_cache (S3-FIFO-like, scan resistant),
//!   whose per-entry overhead is about 64 bytes: a tenth of a moka entry's, which is what
//!   lets a PoP hold more objects in the same memory (see `benches/README.md`).
//! - **Expiry.** Values past their keep window are dropped when looked up and by
//!   [`SlotIndex::sweep`], which walks the ordered set a batch at a time.
//! - **Purges.** The ordered set (a `BTreeSet` of slot keys) selects a key, a `dir/*` prefix
//!   or a space in time proportional to what it drops. Every slot in the cache is in the set
//!   (inserts add to the set first, under its lock); the set may briefly name slots already
//!   gone, which purges and sweeps skip. Tags (`tags.rs`) select slots by the cache tags of
//!   their values, the same way. A soft purge marks what it selects stale instead of
//!   dropping it.
//!
//! Memory per slot (beyond the value): ~64 bytes in the cache, ~40 in the ordered set; the
//! key text is shared by both (one `Arc<str>`); ~28 more per tag of a tagged value.

use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use http::{HeaderMap, HeaderName};
use quick_cache::{Equivalent, Lifecycle, Weighter};

use super::entry::VaryValues;
use super::key::{CacheKey, KeyText};
use super::tags::Tags;

mod purge;
mod tags;

pub use purge::PurgeAction;

/// What a tier keeps in a slot.
pub trait Indexed: Clone + Send + Sync + 'static {
    /// Its weight in the tier's unit (memory: bytes held; disk: KiB of file). Never 0.
    fn weight(&self) -> u64;
    /// When it stops being worth keeping (freshness and every window to serve or
    /// revalidate it stale have passed).
    fn keep_until(&self) -> SystemTime;
    /// When its response was received (purges replayed from elsewhere drop only older ones).
    fn received(&self) -> SystemTime;
    /// The request values that select it among the key's variants.
    fn vary(&self) -> &VaryValues;
    /// Its cache tags.
    fn tags(&self) -> &Tags;
    /// The same value made stale at `at` (a soft purge); `None` when it is stale by then
    /// anyway.
    fn invalidated(&self, at: SystemTime) -> Option<Self>;
}

/// Why a value left its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// Evicted to make room.
    Evicted,
    /// Past its keep window.
    Expired,
    /// Removed by a purge or by its tier (a bad entry, an invalidation).
    Removed,
    /// Replaced by a newer value for the same slot.
    Replaced,
}

/// Told about every value that leaves a slot (the disk tier deletes its file).
pub trait OnDrop<V>: Send + Sync + 'static {
    /// `value` left `slot` because of `why`.
    fn dropped(&self, slot: &SlotKey, value: V, why: Dropped);
}

/// Nothing to do when a value leaves.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ignore;

impl<V> OnDrop<V> for Ignore {
    fn dropped(&self, _slot: &SlotKey, _value: V, _why: Dropped) {}
}

/// A primary key and the variant selected by `Vary` (0: the primary slot).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SlotKey {
    pub key: CacheKey,
    pub variant: u64,
}

impl SlotKey {
    /// The slot of `key`'s `variant`.
    pub fn new(key: &CacheKey, variant: u64) -> SlotKey {
        SlotKey {
            key: key.clone(),
            variant,
        }
    }
}

impl Hash for SlotKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        SlotRef::new(self.key.text(), self.variant).hash(state);
    }
}

/// A slot key borrowed from a request (no allocation on a lookup): hashes and compares as the
/// [`SlotKey`] it names.
#[derive(Debug, Clone, Copy)]
pub struct SlotRef<'a> {
    text: &'a str,
    variant: u64,
}

impl<'a> SlotRef<'a> {
    /// The slot of `variant` under the key `text`.
    pub fn new(text: KeyText<'a>, variant: u64) -> SlotRef<'a> {
        SlotRef {
            text: text.as_str(),
            variant,
        }
    }
}

impl Hash for SlotRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(self.text.as_bytes());
        state.write_u64(self.variant);
    }
}

impl Equivalent<SlotKey> for SlotRef<'_> {
    fn equivalent(&self, key: &SlotKey) -> bool {
        self.variant == key.variant && self.text == key.key.as_str()
    }
}

/// What a slot holds: a value, or the `Vary` names that select among the key's variants.
#[derive(Debug, Clone)]
pub enum Slot<V> {
    Value(V),
    Vary(Arc<[HeaderName]>),
}

/// Weight of a slot holding `Vary` names (a few names and a key).
const VARY_SLOT_WEIGHT: u64 = 1;

#[derive(Clone)]
struct SlotWeight;

impl<V: Indexed> Weighter<SlotKey, Slot<V>> for SlotWeight {
    fn weight(&self, _key: &SlotKey, slot: &Slot<V>) -> u64 {
        match slot {
            Slot::Value(value) => value.weight().max(1),
            Slot::Vary(_) => VARY_SLOT_WEIGHT,
        }
    }
}

/// Collects what an insert evicted, to be handled once the cache's shard lock is released.
#[derive(Clone, Default)]
struct Evictions;

impl<V: Indexed> Lifecycle<SlotKey, Slot<V>> for Evictions {
    type RequestState = Vec<(SlotKey, Slot<V>)>;

    fn begin_request(&self) -> Self::RequestState {
        Vec::new()
    }

    fn on_evict(&self, state: &mut Self::RequestState, key: SlotKey, slot: Slot<V>) {
        state.push((key, slot));
    }
}

type Slots<V> = quick_cache::sync::Cache<
    SlotKey,
    Slot<V>,
    SlotWeight,
    quick_cache::DefaultHashBuilder,
    Evictions,
>;

/// What the ordered-set lock guards: every slot key, and the slots of each tag.
#[derive(Default)]
struct Ordered {
    keys: BTreeSet<SlotKey>,
    tags: tags::TagSlots,
}

/// The index of one tier.
pub struct SlotIndex<V: Indexed, D: OnDrop<V> = Ignore> {
    slots: Slots<V>,
    ordered: Mutex<Ordered>,
    /// Where the next sweep starts.
    sweep_from: Mutex<Option<SlotKey>>,
    on_drop: D,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<V: Indexed, D: OnDrop<V>> SlotIndex<V, D> {
    /// An index holding at most `capacity` of weight, expecting values of about
    /// `typical_weight` and none heavier than `largest` (the cache is sharded, and a shard
    /// must hold the largest value several times).
    pub fn new(capacity: u64, typical_weight: u64, largest: u64, on_drop: D) -> SlotIndex<V, D> {
        let capacity = capacity.max(1);
        let items = usize::try_from(capacity / typical_weight.max(1))
            .unwrap_or(usize::MAX)
            .clamp(16, 1 << 24);
        // Shards of at least four of the largest values, at most 16 shards.
        let by_size = capacity / largest.max(1).saturating_mul(4).max(1);
        let shards = usize::try_from(by_size).unwrap_or(16).clamp(1, 16);
        let options = quick_cache::OptionsBuilder::new()
            .estimated_items_capacity(items)
            .weight_capacity(capacity)
            .shards(shards)
            .build()
            .expect("capacity and items are positive");
        SlotIndex {
            slots: Slots::with_options(
                options,
                SlotWeight,
                quick_cache::DefaultHashBuilder::default(),
                Evictions,
            ),
            ordered: Mutex::default(),
            sweep_from: Mutex::default(),
            on_drop,
        }
    }

    /// The value stored for `key` that the request's varied headers select, if it is still
    /// worth keeping at `now` (one that is not is dropped on the way).
    pub fn get(&self, key: KeyText<'_>, request: &HeaderMap, now: SystemTime) -> Option<V> {
        match self.slots.get(&SlotRef::new(key, 0))? {
            Slot::Value(value) => self.live(key, 0, value, now),
            Slot::Vary(names) => {
                let variant = VaryValues::id_of(names.iter(), request);
                self.get_variant_id(key, variant, request, now)
            }
        }
    }

    /// Like [`SlotIndex::get`] when every response under `key` varies on `names`, known in
    /// advance: one probe, straight to the variant.
    pub fn get_variant(
        &self,
        key: KeyText<'_>,
        names: &[HeaderName],
        request: &HeaderMap,
        now: SystemTime,
    ) -> Option<V> {
        self.get_variant_id(key, VaryValues::id_of(names, request), request, now)
    }

    fn get_variant_id(
        &self,
        key: KeyText<'_>,
        variant: u64,
        request: &HeaderMap,
        now: SystemTime,
    ) -> Option<V> {
        match self.slots.get(&SlotRef::new(key, variant))? {
            Slot::Value(value) if value.vary().matches(request) => {
                self.live(key, variant, value, now)
            }
            _ => None,
        }
    }

    /// `value` if it is still worth keeping, else dropped from its slot.
    fn live(&self, key: KeyText<'_>, variant: u64, value: V, now: SystemTime) -> Option<V> {
        if value.keep_until() > now {
            return Some(value);
        }
        if let Some((slot, Slot::Value(gone))) = self.slots.remove(&SlotRef::new(key, variant)) {
            self.forget_tags_now(&slot, &gone);
            self.on_drop.dropped(&slot, gone, Dropped::Expired);
        }
        None
    }

    /// Forgets the tag pairs of `gone`, which left `slot`, except those the slot's current
    /// value carries too. Called with the ordered set locked.
    fn forget_tags(&self, ordered: &mut Ordered, slot: &SlotKey, gone: &V) {
        if gone.tags().is_empty() {
            return;
        }
        let current = self.peek(slot);
        ordered.tags.remove(slot, gone.tags(), |tag| {
            current.as_ref().is_some_and(|v| v.tags().contains(tag))
        });
    }

    /// [`SlotIndex::forget_tags`], locking the ordered set (after the shard lock was
    /// released: the lock order is ordered set, then shard).
    fn forget_tags_now(&self, slot: &SlotKey, gone: &V) {
        if !gone.tags().is_empty() {
            self.forget_tags(&mut lock(&self.ordered), slot, gone);
        }
    }

    /// The `Vary` names of `key`'s primary slot, when its responses vary.
    pub fn vary_names(&self, key: KeyText<'_>) -> Option<Arc<[HeaderName]>> {
        match self.slots.peek(&SlotRef::new(key, 0))? {
            Slot::Vary(names) => Some(names),
            Slot::Value(_) => None,
        }
    }

    /// The value in `slot` without counting a use, if any.
    pub fn peek(&self, slot: &SlotKey) -> Option<V> {
        match self.slots.peek(slot)? {
            Slot::Value(value) => Some(value),
            Slot::Vary(_) => None,
        }
    }

    /// Stores `value` for `key`, in the slot of its variant (replacing what was there), and
    /// points the primary slot at the variants when it varies.
    pub fn insert(&self, key: &CacheKey, value: V) {
        let variant = value.vary().variant_id();
        let mut ordered = lock(&self.ordered);
        let mut evicted = Vec::new();
        if variant != 0 {
            let names: Arc<[HeaderName]> = value.vary().names().into();
            let primary = SlotRef::new(key.text(), 0);
            let current = self.slots.peek(&primary);
            if !matches!(&current, Some(Slot::Vary(now)) if **now == *names) {
                let primary = SlotKey::new(key, 0);
                ordered.keys.insert(primary.clone());
                evicted.extend(
                    self.slots
                        .insert_with_lifecycle(primary.clone(), Slot::Vary(names)),
                );
                if let Some(Slot::Value(old)) = current {
                    // The response used not to vary: its value is gone (not replaced in
                    // place: the variants live in other slots).
                    ordered.tags.remove(&primary, old.tags(), |_| false);
                    self.on_drop.dropped(&primary, old, Dropped::Removed);
                }
            }
        }
        let slot = SlotKey::new(key, variant);
        ordered.keys.insert(slot.clone());
        // The tags first: the value is selectable by them as soon as it is visible.
        ordered.tags.add(&slot, value.tags());
        let tags = value.tags().clone();
        let replaced = self.slots.peek(&slot);
        evicted.extend(
            self.slots
                .insert_with_lifecycle(slot.clone(), Slot::Value(value)),
        );
        if let Some(Slot::Value(old)) = replaced {
            ordered
                .tags
                .remove(&slot, old.tags(), |tag| tags.contains(tag));
            self.on_drop.dropped(&slot, old, Dropped::Replaced);
        }
        self.evicted(&mut ordered, evicted);
    }

    /// Handles what inserts evicted: out of the ordered set (unless the slot was filled
    /// again), and told to the tier. Called with the ordered set locked, after the cache's
    /// shard lock was released (lock order: ordered set, then shard).
    fn evicted(&self, ordered: &mut Ordered, evicted: Vec<(SlotKey, Slot<V>)>) {
        for (slot, gone) in evicted {
            if !self.slots.contains_key(&slot) {
                ordered.keys.remove(&slot);
            }
            if let Slot::Value(value) = gone {
                self.forget_tags(ordered, &slot, &value);
                self.on_drop.dropped(&slot, value, Dropped::Evicted);
            }
        }
    }

    /// Drops `slot`'s value if `still` says it is the one to drop.
    pub fn remove_if(&self, slot: &SlotKey, still: impl FnOnce(&V) -> bool) -> bool {
        let removed = self.slots.remove_if(slot, |current| match current {
            Slot::Value(value) => still(value),
            Slot::Vary(_) => false,
        });
        match removed {
            Some((slot, Slot::Value(value))) => {
                self.forget_tags_now(&slot, &value);
                self.on_drop.dropped(&slot, value, Dropped::Removed);
                true
            }
            _ => false,
        }
    }

    /// Drops up to `batch` slots' worth of values past their keep window, continuing where the
    /// last sweep stopped (a full pass over the index takes `len / batch` calls). Returns how
    /// many were dropped.
    pub fn sweep(&self, now: SystemTime, batch: usize) -> usize {
        let mut from = lock(&self.sweep_from);
        let mut ordered = lock(&self.ordered);
        let chunk: Vec<SlotKey> = match from.take() {
            Some(start) => ordered.keys.range(start..).take(batch).cloned().collect(),
            None => ordered.keys.iter().take(batch).cloned().collect(),
        };
        // The next sweep starts after this chunk (from the beginning once past the end).
        *from = chunk
            .last()
            .and_then(|last| ordered.keys.range(last.clone()..).nth(1).cloned());
        let mut dropped = 0;
        for slot in chunk {
            let expired = self.slots.remove_if(&slot, |current| match current {
                Slot::Value(value) => value.keep_until() <= now,
                Slot::Vary(_) => false,
            });
            if let Some((slot, Slot::Value(value))) = expired {
                dropped += 1;
                ordered.keys.remove(&slot);
                self.forget_tags(&mut ordered, &slot, &value);
                self.on_drop.dropped(&slot, value, Dropped::Expired);
            } else if !self.slots.contains_key(&slot) {
                ordered.keys.remove(&slot);
            }
        }
        dropped
    }

    /// Weight held and slots held.
    pub fn usage(&self) -> (u64, u64) {
        (self.slots.weight(), self.slots.len() as u64)
    }

    /// Whether `slot` holds anything.
    pub fn contains(&self, slot: &SlotKey) -> bool {
        self.slots.contains_key(slot)
    }

    /// Number of `(tag, slot)` pairs indexed (memory figures and tests).
    pub fn tag_pairs(&self) -> usize {
        lock(&self.ordered).tags.pairs()
    }
}

#[cfg(test)]
mod tests;
