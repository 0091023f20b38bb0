//! Which disk hits earn a copy of their body in the memory tier. A copy costs a read of the
//! whole body and pushes other entries out of memory, so a body is copied up only when the
//! memory tier has room for it, or when its key is hit clearly more often than the entries
//! the memory tier holds are on average: a copy then never trades a hotter entry for a
//! colder one, and a working set much larger than memory (hits spread evenly) stays on disk
//! instead of churning through memory.
//!
//! Disk hits are counted per key in a count-min sketch (4 rows of byte counters), memory hits
//! in a few counters (one per thread group, so that hits on many cores do not contend); both
//! are halved every second, so they measure recent rates on the same scale.

use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::key::CacheKey;

/// Counters per sketch row (a power of two).
const WIDTH: usize = 1 << 14;
const ROWS: usize = 4;
/// Memory-hit counters (threads pick one each).
const SHARDS: usize = 16;
/// Copies up under way at once (each holds a whole body in memory while it is read).
const MAX_COPYING: usize = 4;

/// One counter on its own cache line.
#[repr(align(128))]
#[derive(Default)]
struct Padded(AtomicU64);

/// The promotion policy's counts (one per cache).
pub struct Promotion {
    sketch: Box<[AtomicU8]>,
    hasher: std::collections::hash_map::RandomState,
    memory_hits: [Padded; SHARDS],
    /// The second (since the epoch) of the last halving.
    period: AtomicU64,
    /// Memory-tier room and entries, as of the last halving (less what was copied up since).
    memory_free: AtomicU64,
    memory_entries: AtomicU64,
    copying: AtomicUsize,
}

/// What the memory tier holds: `(free bytes, entries)`.
pub type MemoryUsage = (u64, u64);

/// A copy up under way (ends on drop).
pub struct Copying<'a>(&'a Promotion);

impl Drop for Copying<'_> {
    fn drop(&mut self) {
        self.0.copying.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Default for Promotion {
    fn default() -> Promotion {
        Promotion {
            sketch: (0..WIDTH * ROWS).map(|_| AtomicU8::new(0)).collect(),
            hasher: Default::default(),
            memory_hits: Default::default(),
            period: AtomicU64::new(u64::MAX),
            memory_free: AtomicU64::new(0),
            memory_entries: AtomicU64::new(0),
            copying: AtomicUsize::new(0),
        }
    }
}

fn shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    SHARD.with(|shard| *shard)
}

impl Promotion {
    /// Counts a hit served by the memory tier.
    pub fn memory_hit(&self) {
        self.memory_hits[shard()].0.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a disk hit on `key` (variant `variant`) weighing `weight` bytes in memory, and
    /// says whether to copy it up now (`memory` is asked at most once a second).
    pub fn disk_hit(
        &self,
        key: &CacheKey,
        variant: u64,
        weight: u64,
        now: SystemTime,
        memory: impl FnOnce() -> MemoryUsage,
    ) -> Option<Copying<'_>> {
        self.tick(now, memory);
        let estimate = self.count(key, variant);
        let free = self.memory_free.load(Ordering::Acquire);
        let room = free >= weight;
        if !room && !self.hotter_than_memory(estimate) {
            return None;
        }
        if self.copying.fetch_add(1, Ordering::AcqRel) >= MAX_COPYING {
            self.copying.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        if room {
            self.memory_free
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |free| {
                    Some(free.saturating_sub(weight))
                })
                .ok();
        }
        Some(Copying(self))
    }

    /// Whether a key hit `estimate` times recently is hit clearly more often than the
    /// memory tier's entries are on average.
    fn hotter_than_memory(&self, estimate: u8) -> bool {
        let hits: u64 = self
            .memory_hits
            .iter()
            .map(|c| c.0.load(Ordering::Relaxed))
            .sum();
        let entries = self.memory_entries.load(Ordering::Relaxed).max(1);
        // estimate >= 2 * mean + 2, in integers.
        u64::from(estimate) * entries >= 2 * hits + 2 * entries
    }

    /// Adds one to `key`'s counters; its estimate (the least of them) after.
    fn count(&self, key: &CacheKey, variant: u64) -> u8 {
        let mut hasher = self.hasher.build_hasher();
        key.as_str().hash(&mut hasher);
        variant.hash(&mut hasher);
        let hash = hasher.finish();
        let mut estimate = u8::MAX;
        for row in 0..ROWS {
            let column = (hash >> (16 * row)) as usize & (WIDTH - 1);
            let counter = &self.sketch[row * WIDTH + column];
            let value = counter.load(Ordering::Relaxed);
            if value < u8::MAX {
                counter.store(value + 1, Ordering::Relaxed);
            }
            estimate = estimate.min(value.saturating_add(1));
        }
        estimate
    }

    /// Once a second: halves every count and reads the memory tier's usage.
    fn tick(&self, now: SystemTime, memory: impl FnOnce() -> MemoryUsage) {
        let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let last = self.period.load(Ordering::Acquire);
        if last == second
            || self
                .period
                .compare_exchange(last, second, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        {
            return;
        }
        for counter in self.sketch.iter() {
            let value = counter.load(Ordering::Relaxed);
            if value > 0 {
                counter.store(value / 2, Ordering::Relaxed);
            }
        }
        for counter in &self.memory_hits {
            let value = counter.0.load(Ordering::Relaxed);
            counter.0.fetch_sub(value - value / 2, Ordering::Relaxed);
        }
        let (free, entries) = memory();
        self.memory_free.store(free, Ordering::Release);
        self.memory_entries.store(entries, Ordering::Release);
    }
}

#[cfg(test)]
mod tests;
