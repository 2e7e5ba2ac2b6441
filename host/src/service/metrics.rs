//! Prometheus metrics (text format at `/metrics`): requests by route and status, latency by
//! route, reloads by outcome, requests turned away at the concurrency limit. They live across
//! reloads.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: String,
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<RouteLabel, Histogram>,
    pub reloads: Family<OutcomeLabel, Counter>,
    pub overloaded: Counter,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("cryptohost");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("requests", "Requests answered, by route and HTTP status", requests.clone());
        // 50 us to about 1.6 s.
        let latency = Family::<RouteLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
        });
        registry.register("request_seconds", "Time to answer a request, by route", latency.clone());
        let reloads = Family::<OutcomeLabel, Counter>::default();
        registry.register("reloads", "Reloads of the provider set, by outcome (ok, refused)", reloads.clone());
        let overloaded = Counter::default();
        registry.register("overloaded", "Requests turned away at the concurrency limit (503)", overloaded.clone());
        Metrics { registry, requests, latency, reloads, overloaded }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
