//! Figures by space: `edge_space_requests_total{space,cache}` and
//! `edge_space_response_bytes_total{space}` for Prometheus, and each space's hour of
//! 10-second buckets. Only the spaces the PoP serves have meters (the label stays bounded);
//! a space's meter is made when it is first served and kept while it is.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use metrics::{Counter, Key, Label, Recorder};
use metrics_exporter_prometheus::PrometheusRecorder;

use super::series::Series;
use super::{METADATA, OUTCOMES, Outcome};

/// One space's counters.
pub struct SpaceMeter {
    /// By outcome, in [`OUTCOMES`] order.
    requests: Vec<Counter>,
    bytes_out: Counter,
    pub series: Series,
}

impl SpaceMeter {
    fn new(recorder: &PrometheusRecorder, space: &str) -> SpaceMeter {
        let counter = |name: &'static str, labels: Vec<Label>| {
            recorder.register_counter(&Key::from_parts(name, labels), &METADATA)
        };
        SpaceMeter {
            requests: OUTCOMES
                .iter()
                .map(|outcome| {
                    counter(
                        "edge_space_requests_total",
                        vec![
                            Label::new("space", space.to_owned()),
                            Label::new("cache", *outcome),
                        ],
                    )
                })
                .collect(),
            bytes_out: counter(
                "edge_space_response_bytes_total",
                vec![Label::new("space", space.to_owned())],
            ),
            series: Series::default(),
        }
    }

    /// Counts one response.
    pub fn request(&self, outcome: Outcome, bytes: u64, period: u64) {
        if let Some(counter) = self.requests.get(outcome as usize) {
            counter.increment(1);
        }
        self.bytes_out.increment(bytes);
        self.series.request(period, outcome.is_hit(), bytes);
    }
}

/// The meters of the spaces served, swapped whole when the spaces change.
#[derive(Default)]
pub struct SpaceMeters {
    meters: ArcSwap<HashMap<String, Arc<SpaceMeter>>>,
}

impl SpaceMeters {
    /// Keeps meters for exactly `spaces` (existing ones go on counting).
    pub fn set_spaces<'a>(
        &self,
        recorder: &PrometheusRecorder,
        spaces: impl IntoIterator<Item = &'a str>,
    ) {
        let current = self.meters.load();
        let next: HashMap<String, Arc<SpaceMeter>> = spaces
            .into_iter()
            .map(|name| {
                let meter = current
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| Arc::new(SpaceMeter::new(recorder, name)));
                (name.to_owned(), meter)
            })
            .collect();
        self.meters.store(Arc::new(next));
    }

    /// Runs `f` with the meter of `space`, if it is served (no reference count taken: this
    /// runs on every response).
    pub fn with<R>(&self, space: &str, f: impl FnOnce(&SpaceMeter) -> R) -> Option<R> {
        self.meters.load().get(space).map(|meter| f(meter))
    }

    /// Every space's meter, by name.
    pub fn all(&self) -> Vec<(String, Arc<SpaceMeter>)> {
        let mut all: Vec<_> = self
            .meters
            .load()
            .iter()
            .map(|(name, meter)| (name.clone(), meter.clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}
