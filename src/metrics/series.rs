//! The last hour of a PoP's traffic in 10-second buckets, kept in memory with atomics: what
//! `/v1/stats` answers and the dashboard charts. A bucket is reused an hour later (its
//! counters zeroed by the first writer of the new period).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// Seconds per bucket.
pub const BUCKET_SECONDS: u64 = 10;
/// Buckets kept: one hour.
pub const BUCKETS: usize = 360;

/// Latency classes of origin fetches: class `i` holds fetches under 0.25 ms * 2^i (the last
/// one everything slower), for the percentiles of a bucket.
const LATENCY_CLASSES: usize = 20;

/// The upper bound of latency class `class`, in milliseconds.
fn class_bound_ms(class: usize) -> f64 {
    0.25 * f64::from(1u32 << class.min(30))
}

/// The latency class of `micros`.
fn class_of(micros: u64) -> usize {
    let quarter_ms = micros / 250;
    let class = (u64::BITS - quarter_ms.leading_zeros()) as usize;
    class.min(LATENCY_CLASSES - 1)
}

#[derive(Default)]
struct Slot {
    /// The period (seconds since the epoch / [`BUCKET_SECONDS`]) the counters are of.
    period: AtomicU64,
    requests: AtomicU64,
    hits: AtomicU64,
    bytes_out: AtomicU64,
    origin_fetches: AtomicU64,
    origin_micros: AtomicU64,
    /// Fetches by latency class.
    origin_classes: [AtomicU64; LATENCY_CLASSES],
}

/// One bucket as reported.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Point {
    /// Start of the bucket, seconds since the Unix epoch.
    pub t: u64,
    pub requests: u64,
    /// Requests answered from the cache (fresh or stale hits).
    pub hits: u64,
    pub bytes_out: u64,
    pub origin_fetches: u64,
    /// Mean time to the origin's response head, in milliseconds (`null` without fetches).
    pub origin_latency_ms: Option<f64>,
    /// Median of it (the upper bound of its power-of-two class), in milliseconds.
    pub origin_p50_ms: Option<f64>,
    /// 99th percentile of it, as the median.
    pub origin_p99_ms: Option<f64>,
}

/// An hour of counters in 10-second buckets.
pub struct Series {
    slots: Box<[Slot]>,
}

impl Default for Series {
    fn default() -> Series {
        Series {
            slots: (0..BUCKETS).map(|_| Slot::default()).collect(),
        }
    }
}

/// The period `time` falls in.
pub fn period_of(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / BUCKET_SECONDS)
}

impl Series {
    /// The slot of `period`, zeroed first if it still holds an older period.
    fn slot(&self, period: u64) -> &Slot {
        let index = usize::try_from(period % BUCKETS as u64).unwrap_or(0);
        let slot = &self.slots[index];
        let held = slot.period.load(Ordering::Relaxed);
        if held < period
            && slot
                .period
                .compare_exchange(held, period, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            for counter in [
                &slot.requests,
                &slot.hits,
                &slot.bytes_out,
                &slot.origin_fetches,
                &slot.origin_micros,
            ]
            .into_iter()
            .chain(&slot.origin_classes)
            {
                counter.store(0, Ordering::Relaxed);
            }
        }
        slot
    }

    /// Counts one response of `bytes` in `period`.
    pub fn request(&self, period: u64, hit: bool, bytes: u64) {
        let slot = self.slot(period);
        slot.requests.fetch_add(1, Ordering::Relaxed);
        if hit {
            slot.hits.fetch_add(1, Ordering::Relaxed);
        }
        slot.bytes_out.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts one origin fetch whose response head took `micros`.
    pub fn origin_fetch(&self, period: u64, micros: u64) {
        let slot = self.slot(period);
        slot.origin_fetches.fetch_add(1, Ordering::Relaxed);
        slot.origin_micros.fetch_add(micros, Ordering::Relaxed);
        slot.origin_classes[class_of(micros)].fetch_add(1, Ordering::Relaxed);
    }

    /// The `count` buckets up to and including `now`'s, oldest first (empty ones as zeros).
    pub fn window(&self, now: u64, count: usize) -> Vec<Point> {
        let count = count.clamp(1, BUCKETS) as u64;
        (now.saturating_sub(count - 1)..=now)
            .map(|period| {
                let index = usize::try_from(period % BUCKETS as u64).unwrap_or(0);
                let slot = &self.slots[index];
                let value = |c: &AtomicU64| {
                    if slot.period.load(Ordering::Acquire) == period {
                        c.load(Ordering::Relaxed)
                    } else {
                        0
                    }
                };
                let fetches = value(&slot.origin_fetches);
                let micros = value(&slot.origin_micros);
                let classes: Vec<u64> = slot.origin_classes.iter().map(value).collect();
                let percentile = |p: f64| {
                    let total: u64 = classes.iter().sum();
                    let rank = ((total as f64) * p).ceil().max(1.0) as u64;
                    let mut seen = 0;
                    classes.iter().enumerate().find_map(|(class, count)| {
                        seen += count;
                        (total > 0 && seen >= rank).then(|| class_bound_ms(class))
                    })
                };
                Point {
                    t: period * BUCKET_SECONDS,
                    requests: value(&slot.requests),
                    hits: value(&slot.hits),
                    bytes_out: value(&slot.bytes_out),
                    origin_fetches: fetches,
                    origin_latency_ms: (fetches > 0)
                        .then(|| micros as f64 / fetches as f64 / 1000.0),
                    origin_p50_ms: percentile(0.5),
                    origin_p99_ms: percentile(0.99),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_count_and_roll_over_after_an_hour() {
        let series = Series::default();
        series.request(1000, true, 10);
        series.request(1000, false, 5);
        series.origin_fetch(1000, 3000);
        series.request(1001, true, 1);
        let window = series.window(1001, 3);
        assert_eq!(window.len(), 3);
        assert_eq!(window[0].requests, 0);
        assert_eq!(
            (window[1].requests, window[1].hits, window[1].bytes_out),
            (2, 1, 15)
        );
        assert_eq!(window[1].origin_latency_ms, Some(3.0));
        // 3 ms falls in the class of 2-4 ms.
        assert_eq!(window[1].origin_p50_ms, Some(4.0));
        assert_eq!(window[0].origin_p99_ms, None);
        assert_eq!(window[2].t, 1001 * BUCKET_SECONDS);
        // An hour later the slot of period 1000 is reused, its old counts gone.
        series.request(1000 + BUCKETS as u64, false, 7);
        let later = series.window(1000 + BUCKETS as u64, 1);
        assert_eq!((later[0].requests, later[0].bytes_out), (1, 7));
        assert_eq!(series.window(1000, 1)[0].requests, 0, "period 1000 is gone");
    }
}

#[cfg(test)]
mod percentile_tests {
    use super::*;

    #[test]
    fn percentiles_come_from_latency_classes() {
        assert_eq!(class_of(0), 0);
        assert_eq!(class_of(249), 0);
        assert_eq!(class_of(250), 1);
        assert_eq!(class_of(999), 2);
        assert_eq!(class_of(u64::MAX), LATENCY_CLASSES - 1);
        let series = Series::default();
        for _ in 0..98 {
            series.origin_fetch(5, 100);
        }
        series.origin_fetch(5, 40_000);
        series.origin_fetch(5, 40_000);
        let point = series.window(5, 1)[0];
        assert_eq!(point.origin_p50_ms, Some(0.25));
        assert_eq!(point.origin_p99_ms, Some(64.0));
    }
}
