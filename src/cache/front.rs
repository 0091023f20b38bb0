//! A small per-thread table in front of the memory tier, for the entries served most.
//!
//! moka's lookup (hashing, probing its concurrent table, recording the read for its eviction
//! policy) is the largest part of what a hit costs beyond HTTP itself, and an edge's traffic
//! is skewed: a few objects take most requests. Each thread keeps the entries it found last
//! in a direct-mapped table of `SLOTS` weak references, consulted before moka.
//!
//! - **Never stale after a change:** a slot is valid only for the tier's *epoch* it was filled
//!   in, and every insert, removal and purge moves the epoch on. The epoch is read before moka
//!   is consulted, so a slot filled from a lookup that raced a purge carries the old epoch and
//!   is never used.
//! - **Bounded memory:** slots hold `Weak` references, so an entry moka evicted and nobody is
//!   sending is freed, not kept alive here.
//! - **Eviction policy intact:** hits served here are invisible to moka's TinyLFU, so one in
//!   `RECORD_EVERY` goes through moka anyway and hot entries stay hot there.
//! - **Cheap when nothing is hot:** a slot takes an entry only when the same key came to it
//!   twice in a row, so a spread of keys costs a hash and a compare, not a reference count
//!   bounced between threads.

use std::cell::RefCell;
use std::hash::Hasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use super::entry::Entry;
use super::key::KeyText;

/// Slots per thread.
const SLOTS: usize = 64;
/// One hit in this many on a slot is looked up in moka too.
const RECORD_EVERY: u32 = 16;

/// Numbers tiers, so the tables of several tiers in one process (tests) never mix.
static NEXT_TIER: AtomicU64 = AtomicU64::new(1);

#[derive(Default)]
struct Slot {
    tier: u64,
    epoch: u64,
    hash: u64,
    variant: u64,
    /// Empty until the key came to the slot twice in a row.
    entry: Weak<Entry>,
    hits: u32,
}

thread_local! {
    static SLOTS_OF_THREAD: RefCell<Vec<Slot>> =
        RefCell::new((0..SLOTS).map(|_| Slot::default()).collect());
}

/// One tier's side of the per-thread tables: its number and epoch.
#[derive(Debug)]
pub struct Front {
    tier: u64,
    epoch: AtomicU64,
}

impl Default for Front {
    fn default() -> Front {
        Front {
            tier: NEXT_TIER.fetch_add(1, Ordering::Relaxed),
            epoch: AtomicU64::new(0),
        }
    }
}

fn hash_of(key: KeyText<'_>, variant: u64) -> u64 {
    // Only this thread's table is indexed with it: a collision costs a moka lookup, so a
    // fast hash serves (no client can make it worse than a miss here).
    let mut hasher = fnv::FnvHasher::default();
    hasher.write(key.as_str().as_bytes());
    hasher.write_u64(variant);
    hasher.finish()
}

impl Front {
    /// The epoch to file a lookup under: read before moka is consulted.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Voids every slot filled so far (after an insert, removal or purge).
    pub fn invalidate(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// The entry this thread found last for `key`'s `variant` at `epoch`, unless it is this
    /// slot's turn to go through moka.
    pub fn get(&self, epoch: u64, key: KeyText<'_>, variant: u64) -> Option<Arc<Entry>> {
        let hash = hash_of(key, variant);
        SLOTS_OF_THREAD.with(|slots| {
            let mut slots = slots.try_borrow_mut().ok()?;
            let slot = &mut slots[hash as usize % SLOTS];
            if slot.tier != self.tier
                || slot.epoch != epoch
                || slot.hash != hash
                || slot.variant != variant
            {
                return None;
            }
            slot.hits += 1;
            if slot.hits >= RECORD_EVERY {
                slot.hits = 0;
                return None;
            }
            let entry = slot.entry.upgrade()?;
            (entry.key.as_str() == key.as_str()).then_some(entry)
        })
    }

    /// Offers `entry`, found in moka for `key`'s `variant` at `epoch`: kept if the same key
    /// came to this slot last, else the slot only notes the key.
    pub fn put(&self, epoch: u64, key: KeyText<'_>, variant: u64, entry: &Arc<Entry>) {
        let hash = hash_of(key, variant);
        SLOTS_OF_THREAD.with(|slots| {
            let Ok(mut slots) = slots.try_borrow_mut() else {
                return;
            };
            let slot = &mut slots[hash as usize % SLOTS];
            let again = slot.tier == self.tier && slot.hash == hash && slot.variant == variant;
            if again {
                if !std::ptr::eq(slot.entry.as_ptr(), Arc::as_ptr(entry)) {
                    slot.entry = Arc::downgrade(entry);
                }
            } else {
                *slot = Slot {
                    tier: self.tier,
                    hash,
                    variant,
                    ..Slot::default()
                };
            }
            slot.epoch = epoch;
            slot.hits = 0;
        });
    }
}
