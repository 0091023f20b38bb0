//! Prometheus metrics of one PoP. Each PoP owns its recorder (no global state), and the hot
//! path only increments pre-registered handles: no label formatting or map lookups per request.

pub mod series;
pub mod spaces;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use metrics::{Counter, Gauge, Histogram, Key, Label, Metadata, Recorder};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use crate::cache::{CacheFigures, CacheOutcome};
use series::{Series, period_of};
use spaces::SpaceMeters;

/// Statuses counted individually; the rest fall in "other".
const STATUSES: &[u16] = &[
    200, 204, 206, 301, 302, 304, 307, 308, 400, 403, 404, 405, 410, 416, 421, 500, 502, 503, 504,
];

/// Cache outcomes, as in the `cache` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Hit = 0,
    StaleHit,
    Miss,
    Collapsed,
    Revalidated,
    StaleOnError,
    Bypass,
}

impl Outcome {
    /// Whether the response came from the cache (fresh, or stale while revalidating).
    pub fn is_hit(self) -> bool {
        matches!(self, Outcome::Hit | Outcome::StaleHit)
    }

    /// The label an outcome is counted under. A revalidation is counted as one whatever the
    /// origin answered (304, a new 200, a 404...): only a stale entry served because the
    /// origin failed is `stale_on_error`.
    pub fn of(outcome: &CacheOutcome) -> Outcome {
        match *outcome {
            CacheOutcome::Hit { ttl, .. } if ttl < 0 => Outcome::StaleHit,
            CacheOutcome::Hit { .. } => Outcome::Hit,
            CacheOutcome::Miss {
                collapsed: true, ..
            } => Outcome::Collapsed,
            CacheOutcome::Miss { .. } => Outcome::Miss,
            CacheOutcome::Revalidated { .. } => Outcome::Revalidated,
            CacheOutcome::StaleOnError { .. } => Outcome::StaleOnError,
            CacheOutcome::Bypass(_) => Outcome::Bypass,
        }
    }

    /// The label value.
    pub fn label(self) -> &'static str {
        OUTCOMES[self as usize]
    }
}

const OUTCOMES: &[&str] = &[
    "hit",
    "stale_hit",
    "miss",
    "collapsed",
    "revalidated",
    "stale_on_error",
    "bypass",
];

/// Purge modes, as in the `mode` label: dropping (`hard`) or marking stale (`soft`).
const PURGE_MODES: [&str; 2] = ["hard", "soft"];

fn mode_label(mode: &'static str) -> Vec<Label> {
    vec![Label::new("mode", mode)]
}

const METADATA: Metadata<'static> = Metadata::new("edge", metrics::Level::INFO, Some("edge"));

/// The PoP's metrics.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    requests: Vec<Counter>,
    bytes_out: Counter,
    hits: AtomicU64,
    lookups: AtomicU64,
    hit_ratio: Gauge,
    origin_ok: Counter,
    origin_errors: Counter,
    origin_latency: Histogram,
    /// By mode: `[hard, soft]`.
    purges: [Counter; 2],
    purge_tags: [Counter; 2],
    purged_entries: [Counter; 2],
    tls_handshakes: Counter,
    tls_failures: Counter,
    memory_bytes: Gauge,
    memory_entries: Gauge,
    memory_evictions: Counter,
    disk_bytes: Gauge,
    disk_entries: Gauge,
    disk_errors: Counter,
    disk_corrupt: Counter,
    disk_file_pages: Counter,
    disk_revalidating: Gauge,
    /// The whole PoP's hour of 10-second buckets.
    pub series: Series,
    /// Figures by space.
    pub spaces: SpaceMeters,
}

impl Metrics {
    /// A fresh registry labelled with `pop`.
    pub fn new(pop: &str) -> Metrics {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&[
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ])
            .expect("the bucket list is not empty")
            .add_global_label("pop", pop)
            .build_recorder();
        let handle = recorder.handle();
        let counter = |name: &'static str, labels: Vec<Label>| {
            recorder.register_counter(&Key::from_parts(name, labels), &METADATA)
        };
        let gauge =
            |name: &'static str| recorder.register_gauge(&Key::from_static_name(name), &METADATA);
        let mut requests = Vec::with_capacity(OUTCOMES.len() * (STATUSES.len() + 1));
        for outcome in OUTCOMES {
            for status in STATUSES
                .iter()
                .map(|s| s.to_string())
                .chain(["other".to_owned()])
            {
                requests.push(counter(
                    "edge_requests_total",
                    vec![Label::new("cache", *outcome), Label::new("status", status)],
                ));
            }
        }
        Metrics {
            requests,
            bytes_out: counter("edge_response_bytes_total", vec![]),
            hits: AtomicU64::new(0),
            lookups: AtomicU64::new(0),
            hit_ratio: gauge("edge_cache_hit_ratio"),
            origin_ok: counter(
                "edge_origin_fetches_total",
                vec![Label::new("result", "response")],
            ),
            origin_errors: counter(
                "edge_origin_fetches_total",
                vec![Label::new("result", "error")],
            ),
            origin_latency: recorder.register_histogram(
                &Key::from_static_name("edge_origin_fetch_seconds"),
                &METADATA,
            ),
            purges: PURGE_MODES.map(|mode| counter("edge_purges_total", mode_label(mode))),
            purge_tags: PURGE_MODES.map(|mode| counter("edge_purge_tags_total", mode_label(mode))),
            purged_entries: PURGE_MODES
                .map(|mode| counter("edge_purged_entries_total", mode_label(mode))),
            tls_handshakes: counter(
                "edge_tls_handshakes_total",
                vec![Label::new("result", "ok")],
            ),
            tls_failures: counter(
                "edge_tls_handshakes_total",
                vec![Label::new("result", "failed")],
            ),
            memory_bytes: gauge("edge_cache_memory_bytes"),
            memory_entries: gauge("edge_cache_memory_entries"),
            memory_evictions: counter("edge_cache_memory_evictions_total", vec![]),
            disk_bytes: gauge("edge_cache_disk_bytes"),
            disk_entries: gauge("edge_cache_disk_entries"),
            disk_errors: counter("edge_cache_disk_errors_total", vec![]),
            disk_corrupt: counter("edge_cache_disk_corrupt_entries_total", vec![]),
            disk_file_pages: counter("edge_cache_disk_file_page_bytes_total", vec![]),
            disk_revalidating: gauge("edge_cache_disk_revalidating"),
            series: Series::default(),
            spaces: SpaceMeters::default(),
            recorder,
            handle,
        }
    }

    /// Keeps per-space figures for exactly `spaces` (the ones served).
    pub fn set_spaces<'a>(&self, spaces: impl IntoIterator<Item = &'a str>) {
        self.spaces.set_spaces(&self.recorder, spaces);
    }

    /// Counts one response, of `space` if it was routed to one.
    pub fn request(&self, space: Option<&str>, outcome: &CacheOutcome, status: u16, bytes: u64) {
        let outcome = Outcome::of(outcome);
        let period = period_of(SystemTime::now());
        self.series.request(period, outcome.is_hit(), bytes);
        if let Some(name) = space {
            self.spaces
                .with(name, |meter| meter.request(outcome, bytes, period));
        }
        let status_index = STATUSES
            .iter()
            .position(|s| *s == status)
            .unwrap_or(STATUSES.len());
        let index = outcome as usize * (STATUSES.len() + 1) + status_index;
        if let Some(counter) = self.requests.get(index) {
            counter.increment(1);
        }
        self.bytes_out.increment(bytes);
        if outcome != Outcome::Bypass {
            self.lookups.fetch_add(1, Ordering::Relaxed);
            if outcome.is_hit() {
                self.hits.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Counts one origin fetch of `space` and how long its response head took.
    pub fn origin_fetch(&self, space: &str, ok: bool, seconds: f64) {
        let period = period_of(SystemTime::now());
        let micros = (seconds * 1e6) as u64;
        self.series.origin_fetch(period, micros);
        self.spaces
            .with(space, |meter| meter.series.origin_fetch(period, micros));
        if ok {
            self.origin_ok.increment(1);
        } else {
            self.origin_errors.increment(1);
        }
        self.origin_latency.record(seconds);
    }

    /// Counts one purge request (`soft`: marking stale rather than dropping), the tags it
    /// named and the entries it dropped or marked.
    pub fn purge(&self, soft: bool, tags: usize, affected: usize) {
        let mode = usize::from(soft);
        self.purges[mode].increment(1);
        self.purge_tags[mode].increment(tags as u64);
        self.purged_entries[mode].increment(affected as u64);
    }

    /// Counts a TLS handshake.
    pub fn tls_handshake(&self, ok: bool) {
        if ok {
            self.tls_handshakes.increment(1)
        } else {
            self.tls_failures.increment(1)
        }
    }

    /// A gauge registered on demand (rare: scrapes, certificate changes).
    pub fn gauge(&self, name: &'static str, labels: Vec<Label>) -> Gauge {
        self.recorder
            .register_gauge(&Key::from_parts(name, labels), &METADATA)
    }

    /// Renders the Prometheus text, after refreshing the gauges read at scrape time.
    pub fn render(&self, tiers: &CacheFigures) -> String {
        self.memory_bytes.set(tiers.memory_bytes as f64);
        self.disk_revalidating
            .set(if tiers.disk_revalidating { 1.0 } else { 0.0 });
        self.memory_entries.set(tiers.memory_entries as f64);
        self.memory_evictions.absolute(tiers.memory_evictions);
        self.disk_bytes.set(tiers.disk_bytes as f64);
        self.disk_entries.set(tiers.disk_entries as f64);
        self.disk_errors.absolute(tiers.disk_errors);
        self.disk_corrupt.absolute(tiers.disk_corrupt);
        self.disk_file_pages.absolute(tiers.disk_file_page_bytes);
        let lookups = self.lookups.load(Ordering::Relaxed);
        if lookups > 0 {
            self.hit_ratio
                .set(self.hits.load(Ordering::Relaxed) as f64 / lookups as f64);
        }
        self.handle.run_upkeep();
        self.handle.render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_counted_from_the_value() {
        use crate::cache::{BypassReason, Tier};
        use http::StatusCode;
        let hit = |ttl| CacheOutcome::Hit {
            ttl,
            tier: Tier::Memory,
        };
        assert_eq!(Outcome::of(&hit(30)), Outcome::Hit);
        assert_eq!(Outcome::of(&hit(-3)), Outcome::StaleHit);
        let miss = |collapsed| CacheOutcome::Miss {
            stored: true,
            collapsed,
        };
        assert_eq!(Outcome::of(&miss(false)), Outcome::Miss);
        assert_eq!(Outcome::of(&miss(true)), Outcome::Collapsed);
        // A revalidation the origin answered with 404, 403 or 301 is a revalidation, not a
        // stale entry served on error (the old text parsing counted it as one).
        for status in [304, 200, 404, 403, 301] {
            let revalidated = CacheOutcome::Revalidated {
                status: StatusCode::from_u16(status).unwrap(),
                stored: false,
                collapsed: false,
            };
            assert_eq!(Outcome::of(&revalidated), Outcome::Revalidated, "{status}");
        }
        let on_error = CacheOutcome::StaleOnError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            ttl: -5,
        };
        assert_eq!(Outcome::of(&on_error), Outcome::StaleOnError);
        assert_eq!(
            Outcome::of(&CacheOutcome::Bypass(BypassReason::Edge)),
            Outcome::Bypass
        );
    }

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::new("pop-a");
        m.set_spaces(["assets"]);
        m.request(
            Some("assets"),
            &CacheOutcome::Hit {
                ttl: 5,
                tier: crate::cache::Tier::Memory,
            },
            200,
            10,
        );
        m.request(
            Some("elsewhere"),
            &CacheOutcome::Miss {
                stored: true,
                collapsed: false,
            },
            200,
            10,
        );
        let text = m.render(&CacheFigures {
            memory_bytes: 5,
            memory_entries: 1,
            memory_evictions: 0,
            disk_bytes: 0,
            disk_entries: 0,
            disk_errors: 0,
            disk_corrupt: 0,
            disk_file_page_bytes: 0,
            disk_revalidating: true,
        });
        assert!(
            text.contains("edge_requests_total{pop=\"pop-a\",cache=\"hit\",status=\"200\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("edge_cache_disk_revalidating{pop=\"pop-a\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("edge_cache_hit_ratio{pop=\"pop-a\"} 0.5"),
            "{text}"
        );
        // Only served spaces get a label: the miss of an unknown one is counted in total.
        assert!(
            text.contains(
                "edge_space_requests_total{pop=\"pop-a\",space=\"assets\",cache=\"hit\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("edge_space_response_bytes_total{pop=\"pop-a\",space=\"assets\"} 10"),
            "{text}"
        );
        assert!(!text.contains("elsewhere"), "{text}");
    }
}
