//! Prometheus metrics (text format at `/metrics`, and on `[service] metrics_listen`): requests
//! by route and status, latency by route, reloads by outcome, requests turned away at the
//! concurrency limits (these live across reloads); and, read from the set serving now at each
//! scrape, calls routed to each provider by capability, algorithm and outcome (fallbacks and
//! faults included), key uses by operation, provider, algorithm and outcome, audit write
//! failures, guest traps, instance-pool and HSM-session use and waits, HSM reconnects (these
//! start again from zero when a reload swaps in a new set).

use std::sync::{Arc, RwLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
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
    /// Requests being served now, and the bytes their bodies may hold (set at each scrape).
    pub in_flight: Gauge,
    pub body_bytes_in_flight: Gauge,
}

/// The serving set, as the collector reads it at each scrape.
pub type Current = Arc<RwLock<Arc<super::Inner>>>;

/// Reads the provider, pool and audit counters of the set serving now.
struct SetCollector(Current);

impl std::fmt::Debug for SetCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SetCollector")
    }
}

type Labels = Vec<(&'static str, String)>;

fn family(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    rows: Vec<(Labels, u64)>,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in rows {
        let encoder = metric.encode_family(&labels)?;
        match kind {
            MetricType::Gauge => ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX)).encode(encoder)?,
            _ => ConstCounter::new(value).encode(encoder)?,
        }
    }
    Ok(())
}

impl Collector for SetCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let set = self.0.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        usage(&set, &mut encoder)?;
        pools(&set, &mut encoder)
    }
}

/// Calls routed to each provider, and the key uses (and failed audit lines) of the set.
fn usage(set: &super::Inner, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let calls = set.host.calls().into_iter().map(|((provider, capability, algorithm, outcome), n)| {
        (
            vec![
                ("provider", provider),
                ("capability", capability.to_string()),
                ("algorithm", algorithm),
                ("outcome", outcome.to_string()),
            ],
            n,
        )
    });
    family(
        encoder,
        "provider_calls",
        "Calls routed to a provider, by capability, algorithm and outcome (ok, fell_back, fault, refused)",
        MetricType::Counter,
        calls.collect(),
    )?;
    let (uses, failures) = set.audit.counts();
    let uses = uses.into_iter().map(|((operation, provider, algorithm, outcome), n)| {
        (
            vec![
                ("operation", operation),
                ("provider", provider),
                ("algorithm", algorithm),
                ("outcome", outcome.to_string()),
            ],
            n,
        )
    });
    family(
        encoder,
        "key_uses",
        "Audited uses of a private or secret key, by operation, provider, algorithm and outcome",
        MetricType::Counter,
        uses.collect(),
    )?;
    family(
        encoder,
        "audit_write_failures",
        "Audit lines that could not be written (each refused its operation)",
        MetricType::Counter,
        vec![(Vec::new(), failures)],
    )?;
    Ok(())
}

/// Each provider's pool: instances or sessions, busy ones, waits, traps, reconnects.
fn pools(set: &super::Inner, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    // (name, is a component, stats)
    let stats: Vec<(String, bool, crate::provider::ProviderStats)> = set
        .host
        .providers()
        .iter()
        .map(|p| {
            let d = p.descriptor();
            (d.name.clone(), matches!(d.origin, crate::provider::Origin::Component { .. }), p.stats())
        })
        .collect();
    let rows = |which: fn(bool) -> bool, f: fn(&crate::provider::ProviderStats) -> u64| -> Vec<(Labels, u64)> {
        stats
            .iter()
            .filter(|(_, c, _)| which(*c))
            .map(|(name, _, s)| (vec![("provider", name.clone())], f(s)))
            .collect()
    };
    let per = |f| rows(|_| true, f);
    family(
        encoder,
        "pool_instances",
        "Instances (components) or sessions (PKCS#11) that exist",
        MetricType::Gauge,
        per(|s| s.instances as u64),
    )?;
    family(
        encoder,
        "pool_busy",
        "Instances or sessions running a call now",
        MetricType::Gauge,
        per(|s| s.busy as u64),
    )?;
    family(
        encoder,
        "pool_waits",
        "Calls that found every instance or session busy and waited",
        MetricType::Counter,
        per(|s| s.waits),
    )?;
    family(
        encoder,
        "guest_traps",
        "Calls that ended in a guest trap (the instance was discarded)",
        MetricType::Counter,
        rows(|component| component, |s| s.traps),
    )?;
    family(
        encoder,
        "hsm_reconnects",
        "PKCS#11 reconnects after a lost session or a finalized module",
        MetricType::Counter,
        rows(|component| !component, |s| s.reconnects),
    )
}

impl Metrics {
    pub fn new(current: Current) -> Metrics {
        let mut registry = Registry::with_prefix("cryptohost");
        registry.register_collector(Box::new(SetCollector(current)));
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
        registry.register(
            "overloaded",
            "Requests turned away at a concurrency limit, overall or per uid (503)",
            overloaded.clone(),
        );
        let in_flight = Gauge::default();
        registry.register("requests_in_flight", "Requests being served now", in_flight.clone());
        let body_bytes_in_flight = Gauge::default();
        registry.register(
            "request_body_bytes_in_flight",
            "Bytes the bodies of the requests being served may hold, against [service] body_budget_mib",
            body_bytes_in_flight.clone(),
        );
        Metrics { registry, requests, latency, reloads, overloaded, in_flight, body_bytes_in_flight }
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
