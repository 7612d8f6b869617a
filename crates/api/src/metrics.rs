//! Prometheus metrics of the HTTP listeners, with the seeds' names
//! (`http_requests_total`, `http_request_duration_seconds`, `http_response_size_bytes`).
//!
//! The registry belongs to the process, not to a global, so that several servers can live
//! in one test process. Other parts of VeloFlux register their collectors in the same
//! registry through [`Metrics::registry`].

use std::sync::Arc;
use std::time::Instant;

use axum::body::HttpBody as _;
use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::http::header::CONTENT_LENGTH;
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

/// The label for requests that matched no route, so that unknown paths cannot grow the
/// label set.
pub const UNMATCHED_ENDPOINT: &str = "unmatched";

/// The process's metrics registry and the HTTP collectors in it.
#[derive(Debug, Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    size: HistogramVec,
}

impl Metrics {
    /// A registry with the HTTP collectors and `veloflux_build_info`.
    pub fn new(version: &str) -> Metrics {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests served, by method, route template and status.",
            ),
            &["method", "endpoint", "status"],
        )
        .expect("invariant: metric definition is valid");
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Time to produce the response head, in seconds.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["method", "endpoint"],
        )
        .expect("invariant: metric definition is valid");
        let size = HistogramVec::new(
            HistogramOpts::new("http_response_size_bytes", "Size of response bodies, in bytes.")
                .buckets(prometheus::exponential_buckets(64.0, 4.0, 10).expect("invariant: buckets are valid")),
            &["method", "endpoint"],
        )
        .expect("invariant: metric definition is valid");
        let build_info = IntGauge::with_opts(
            Opts::new(
                "veloflux_build_info",
                "Always 1; the labels describe the running build.",
            )
            .const_label("version", version),
        )
        .expect("invariant: metric definition is valid");
        build_info.set(1);
        for collector in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(duration.clone()),
            Box::new(size.clone()),
            Box::new(build_info),
        ] {
            registry
                .register(collector)
                .expect("invariant: names are unique in a new registry");
        }
        Metrics {
            inner: Arc::new(Inner {
                registry,
                requests,
                duration,
                size,
            }),
        }
    }

    /// The registry, for other parts of the process to add their collectors.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// The Prometheus text exposition of everything registered.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail on IO; a collector error would be a bug, and
        // half a page is still more useful to a scraper than none.
        let _ = TextEncoder::new().encode(&self.inner.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    /// Requests served so far, by status class (`2xx`, `4xx`, ...).
    pub fn requests_by_class(&self) -> std::collections::BTreeMap<String, u64> {
        let mut classes = std::collections::BTreeMap::new();
        for family in self.inner.registry.gather() {
            if family.name() != "http_requests_total" {
                continue;
            }
            for metric in family.get_metric() {
                let status = metric
                    .get_label()
                    .iter()
                    .find(|l| l.name() == "status")
                    .map(|l| l.value().to_owned())
                    .unwrap_or_default();
                let class = format!("{}xx", status.chars().next().unwrap_or('?'));
                // Counter values are integral; the float holds them exactly below 2^53.
                #[allow(
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss,
                    reason = "integral counter"
                )]
                let value = metric.get_counter().get_value() as u64;
                *classes.entry(class).or_insert(0) += value;
            }
        }
        classes
    }

    fn observe(&self, method: &str, endpoint: &str, status: u16, seconds: f64, size: Option<u64>) {
        let inner = &self.inner;
        inner
            .requests
            .with_label_values(&[method, endpoint, &status.to_string()])
            .inc();
        inner.duration.with_label_values(&[method, endpoint]).observe(seconds);
        if let Some(size) = size {
            #[allow(clippy::cast_precision_loss, reason = "sizes far below 2^53")]
            inner.size.with_label_values(&[method, endpoint]).observe(size as f64);
        }
    }
}

/// Middleware that records every request under its route template.
pub async fn track(State(metrics): State<Metrics>, request: Request, next: Next) -> Response {
    let method = method_label(request.method());
    let endpoint = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED_ENDPOINT.to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    let size = response
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .or_else(|| response.body().size_hint().exact());
    metrics.observe(
        method,
        &endpoint,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
        size,
    );
    response
}

/// Methods outside the standard set share one label value.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}
