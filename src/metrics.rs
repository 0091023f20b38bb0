//! Prometheus metrics of one PoP. Each PoP owns its recorder (no global state), and the hot
//! path only increments pre-registered handles: no label formatting or map lookups per request.

use std::sync::atomic::{AtomicU64, Ordering};

use metrics::{Counter, Gauge, Histogram, Key, Label, Metadata, Recorder};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

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
    /// Reads our member (the last one) of a `Cache-Status` value.
    pub fn from_cache_status(value: &[u8]) -> Outcome {
        let last = match value.iter().rposition(|b| *b == b',') {
            Some(i) => &value[i + 1..],
            None => value,
        };
        // Every response passes here: read by hand, without iterator chains or searches
        // beyond the one member.
        let trimmed = |b: &[u8]| -> usize { b.iter().take_while(|c| **c == b' ').count() };
        let Some(semi) = last.iter().position(|b| *b == b';') else {
            return Outcome::Bypass;
        };
        let params = &last[semi + 1..];
        let params = &params[trimmed(params)..];
        let has = |needle: &[u8]| params.windows(needle.len()).any(|w| w == needle);
        if params.starts_with(b"hit") {
            if has(b"ttl=-") {
                Outcome::StaleHit
            } else {
                Outcome::Hit
            }
        } else if params.starts_with(b"fwd=miss") {
            if has(b"collapsed") {
                Outcome::Collapsed
            } else {
                Outcome::Miss
            }
        } else if params.starts_with(b"fwd=stale") {
            if has(b"fwd-status=304") || has(b"fwd-status=200") {
                Outcome::Revalidated
            } else {
                Outcome::StaleOnError
            }
        } else {
            Outcome::Bypass
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
    purges: Counter,
    purged_entries: Counter,
    tls_handshakes: Counter,
    tls_failures: Counter,
    memory_bytes: Gauge,
    memory_entries: Gauge,
    memory_evictions: Counter,
    disk_bytes: Gauge,
    disk_entries: Gauge,
    disk_errors: Counter,
    disk_corrupt: Counter,
    disk_revalidating: Gauge,
}

/// Tier figures read at scrape time.
pub struct TierFigures {
    pub memory_bytes: u64,
    pub memory_entries: u64,
    pub memory_evictions: u64,
    pub disk_bytes: u64,
    pub disk_entries: u64,
    pub disk_errors: u64,
    pub disk_corrupt: u64,
    /// Whether disk entries are revalidated before they are served, because peers that may
    /// have purged them while this PoP was down have not answered yet.
    pub disk_revalidating: bool,
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
            purges: counter("edge_purges_total", vec![]),
            purged_entries: counter("edge_purged_entries_total", vec![]),
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
            disk_revalidating: gauge("edge_cache_disk_revalidating"),
            recorder,
            handle,
        }
    }

    /// Counts one response.
    pub fn request(&self, outcome: Outcome, status: u16, bytes: u64) {
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
            if matches!(outcome, Outcome::Hit | Outcome::StaleHit) {
                self.hits.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Counts one origin fetch and how long its response head took.
    pub fn origin_fetch(&self, ok: bool, seconds: f64) {
        if ok {
            self.origin_ok.increment(1);
        } else {
            self.origin_errors.increment(1);
        }
        self.origin_latency.record(seconds);
    }

    /// Counts one purge request and the entries it dropped.
    pub fn purge(&self, dropped: usize) {
        self.purges.increment(1);
        self.purged_entries.increment(dropped as u64);
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
    pub fn render(&self, tiers: &TierFigures) -> String {
        self.memory_bytes.set(tiers.memory_bytes as f64);
        self.disk_revalidating
            .set(if tiers.disk_revalidating { 1.0 } else { 0.0 });
        self.memory_entries.set(tiers.memory_entries as f64);
        self.memory_evictions.absolute(tiers.memory_evictions);
        self.disk_bytes.set(tiers.disk_bytes as f64);
        self.disk_entries.set(tiers.disk_entries as f64);
        self.disk_errors.absolute(tiers.disk_errors);
        self.disk_corrupt.absolute(tiers.disk_corrupt);
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
    fn outcomes_from_cache_status() {
        let o = |v: &str| Outcome::from_cache_status(v.as_bytes());
        assert_eq!(o("p; hit; ttl=30"), Outcome::Hit);
        assert_eq!(o("p; hit; ttl=-3"), Outcome::StaleHit);
        assert_eq!(o("p; fwd=miss; stored"), Outcome::Miss);
        assert_eq!(o("p; fwd=miss; collapsed"), Outcome::Collapsed);
        assert_eq!(
            o("p; fwd=stale; fwd-status=304; stored"),
            Outcome::Revalidated
        );
        assert_eq!(
            o("p; fwd=stale; fwd-status=503; ttl=-5"),
            Outcome::StaleOnError
        );
        assert_eq!(o("shield; hit; ttl=5, p; fwd=miss; stored"), Outcome::Miss);
        assert_eq!(o("p; fwd=bypass"), Outcome::Bypass);
    }

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::new("pop-a");
        m.request(Outcome::Hit, 200, 10);
        m.request(Outcome::Miss, 200, 10);
        let text = m.render(&TierFigures {
            memory_bytes: 5,
            memory_entries: 1,
            memory_evictions: 0,
            disk_bytes: 0,
            disk_entries: 0,
            disk_errors: 0,
            disk_corrupt: 0,
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
    }
}
