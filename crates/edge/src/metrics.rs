//! The edge's Prometheus metrics. Label sets are resolved when a snapshot is built, so the
//! request path only increments atomics; cardinality is bounded by the configuration
//! (tenants, routes, pools, backends), never by client input.

use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// Status classes, in label order.
pub const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The edge's collectors.
#[derive(Debug, Clone)]
pub struct EdgeMetrics {
    requests: IntCounterVec,
    duration: HistogramVec,
    bytes_in: IntCounterVec,
    bytes_out: IntCounterVec,
    pub(crate) active_connections: IntGauge,
    connect_errors: IntCounterVec,
    retries: IntCounterVec,
}

/// Counters of one route, resolved for the request path.
#[derive(Debug)]
pub struct RouteMetrics {
    /// Requests by backend (in pool order, then one for "no backend") and status class.
    pub(crate) requests: Vec<[IntCounter; 5]>,
    pub(crate) duration: Histogram,
    pub(crate) bytes_in: IntCounter,
    pub(crate) bytes_out: IntCounter,
}

impl RouteMetrics {
    /// Counts a response of `status` from backend `index` (`None`: no backend answered).
    pub(crate) fn count(&self, index: Option<usize>, status: u16) {
        let row = index.unwrap_or(self.requests.len() - 1).min(self.requests.len() - 1);
        let class = usize::from((status / 100).clamp(1, 5) - 1);
        self.requests[row][class].inc();
    }

    /// Requests so far by status class, over every backend.
    pub fn requests_by_class(&self) -> [u64; 5] {
        let mut totals = [0u64; 5];
        for row in &self.requests {
            for (total, counter) in totals.iter_mut().zip(row) {
                *total += counter.get();
            }
        }
        totals
    }

    /// Request and response body bytes so far.
    pub fn bytes(&self) -> (u64, u64) {
        (self.bytes_in.get(), self.bytes_out.get())
    }
}

impl EdgeMetrics {
    /// Creates the collectors and registers them (and the health gauge) in `registry`.
    pub fn new(registry: Option<&Registry>) -> EdgeMetrics {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels).expect("invariant: metric definition is valid")
        };
        let metrics = EdgeMetrics {
            requests: counter(
                "veloflux_requests_total",
                "Requests proxied, by tenant, route, pool, backend and status class.",
                &["tenant", "route", "pool", "backend", "status"],
            ),
            duration: HistogramVec::new(
                HistogramOpts::new(
                    "veloflux_request_duration_seconds",
                    "Time from request to the response head, in seconds.",
                )
                .buckets(vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ]),
                &["tenant", "route", "pool"],
            )
            .expect("invariant: metric definition is valid"),
            bytes_in: counter(
                "veloflux_request_bytes_total",
                "Request body bytes received, by tenant and route.",
                &["tenant", "route"],
            ),
            bytes_out: counter(
                "veloflux_response_bytes_total",
                "Response body bytes sent, by tenant and route.",
                &["tenant", "route"],
            ),
            active_connections: IntGauge::new("veloflux_active_connections", "Client connections open on the edge.")
                .expect("invariant: metric definition is valid"),
            connect_errors: counter(
                "veloflux_upstream_connect_errors_total",
                "Failed connections to backends.",
                &["pool", "backend"],
            ),
            retries: counter(
                "veloflux_upstream_retries_total",
                "Requests retried on another backend.",
                &["pool"],
            ),
        };
        if let Some(registry) = registry {
            for collector in [
                Box::new(metrics.requests.clone()) as Box<dyn Collector>,
                Box::new(metrics.duration.clone()),
                Box::new(metrics.bytes_in.clone()),
                Box::new(metrics.bytes_out.clone()),
                Box::new(metrics.active_connections.clone()),
                Box::new(metrics.connect_errors.clone()),
                Box::new(metrics.retries.clone()),
            ] {
                // A second edge in one registry (tests) keeps the first one's collectors.
                let _ = registry.register(collector);
            }
        }
        metrics
    }

    /// Resolves the counters of one route whose pool has `backends` (their addresses).
    pub(crate) fn route(&self, tenant: &str, route: &str, pool: &str, backends: &[String]) -> RouteMetrics {
        let row = |backend: &str| {
            STATUS_CLASSES.map(|class| self.requests.with_label_values(&[tenant, route, pool, backend, class]))
        };
        let mut requests: Vec<[IntCounter; 5]> = backends.iter().map(|b| row(b)).collect();
        requests.push(row("none"));
        RouteMetrics {
            requests,
            duration: self.duration.with_label_values(&[tenant, route, pool]),
            bytes_in: self.bytes_in.with_label_values(&[tenant, route]),
            bytes_out: self.bytes_out.with_label_values(&[tenant, route]),
        }
    }

    pub(crate) fn connect_error(&self, pool: &str, backend: &str) {
        self.connect_errors.with_label_values(&[pool, backend]).inc();
    }

    pub(crate) fn retry(&self, pool: &str) {
        self.retries.with_label_values(&[pool]).inc();
    }
}

/// `veloflux_backend_health{pool,backend}`: 1 healthy, 0 otherwise, read from the current
/// snapshot at scrape time.
pub struct HealthCollector {
    edge: Arc<crate::Edge>,
    template: IntGaugeVec,
}

impl std::fmt::Debug for HealthCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HealthCollector")
    }
}

impl HealthCollector {
    /// A collector over `edge`.
    pub fn new(edge: Arc<crate::Edge>) -> HealthCollector {
        HealthCollector {
            edge,
            template: health_gauge(),
        }
    }
}

fn health_gauge() -> IntGaugeVec {
    IntGaugeVec::new(
        Opts::new("veloflux_backend_health", "1 when the backend is healthy, 0 otherwise."),
        &["pool", "backend"],
    )
    .expect("invariant: metric definition is valid")
}

impl Collector for HealthCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.template.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let gauge = health_gauge();
        let snapshot = self.edge.snapshot.load();
        for pool in snapshot.pools.values() {
            for backend in &pool.backends {
                gauge
                    .with_label_values(&[pool.name.as_str(), backend.authority.as_str()])
                    .set(i64::from(backend.available()));
            }
        }
        gauge.collect()
    }
}
