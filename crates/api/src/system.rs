//! Facts about the running server and the routes that report them: `/health`, `/ready`,
//! `/api/status`, `/api/version`, `/api/system/info`.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use veloflux_store::Store;

use crate::error::{ApiError, ErrorCode};
use crate::extract::Json;
use crate::metrics::Metrics;

/// How long one health probe may take before it counts as unhealthy.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// A component that `/health` reports on (the database, later the edge, Redis, NATS...).
pub trait HealthProbe: Send + Sync + 'static {
    /// The key under `components`.
    fn name(&self) -> &'static str;
    /// Checks the component; an `Err` carries a short reason for the log.
    fn check(&self) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>>;
}

struct DatabaseProbe(Store);

impl HealthProbe for DatabaseProbe {
    fn name(&self) -> &'static str {
        "database"
    }

    fn check(&self) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move { self.0.ping().await.map_err(|err| err.to_string()) })
    }
}

/// Shared facts about the process, cheap to clone.
#[derive(Clone)]
pub struct System {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    metrics: Metrics,
    version: &'static str,
    started: Instant,
    started_at: DateTime<Utc>,
    ready: AtomicBool,
    listeners: BTreeMap<&'static str, SocketAddr>,
    probes: Vec<Box<dyn HealthProbe>>,
}

impl std::fmt::Debug for System {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("System")
            .field("version", &self.inner.version)
            .field("listeners", &self.inner.listeners)
            .field("ready", &self.is_ready())
            .finish_non_exhaustive()
    }
}

impl System {
    /// Facts for a process whose listeners are bound at `listeners`. It starts not ready.
    pub fn new(
        store: Store,
        metrics: Metrics,
        version: &'static str,
        listeners: BTreeMap<&'static str, SocketAddr>,
        extra_probes: Vec<Box<dyn HealthProbe>>,
    ) -> System {
        let mut probes: Vec<Box<dyn HealthProbe>> = vec![Box::new(DatabaseProbe(store.clone()))];
        probes.extend(extra_probes);
        System {
            inner: Arc::new(Inner {
                store,
                metrics,
                version,
                started: Instant::now(),
                started_at: Utc::now(),
                ready: AtomicBool::new(false),
                listeners,
                probes,
            }),
        }
    }

    /// Declares the process ready to serve: migrations applied and listeners bound.
    pub fn mark_ready(&self) {
        self.inner.ready.store(true, Ordering::Release);
    }

    /// Whether [`System::mark_ready`] was called.
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Acquire)
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The running version.
    pub fn version(&self) -> &'static str {
        self.inner.version
    }

    /// Time since start.
    pub fn uptime(&self) -> Duration {
        self.inner.started.elapsed()
    }

    /// Runs every probe (concurrently, each bounded by a timeout).
    pub async fn health(&self) -> HealthReport {
        let checks = self.inner.probes.iter().map(|probe| async move {
            let outcome = tokio::time::timeout(PROBE_TIMEOUT, probe.check()).await;
            let healthy = match outcome {
                Ok(Ok(())) => true,
                Ok(Err(reason)) => {
                    tracing::warn!(component = probe.name(), reason = %reason, "health probe failed");
                    false
                }
                Err(_) => {
                    tracing::warn!(component = probe.name(), "health probe timed out");
                    false
                }
            };
            (
                probe.name().to_owned(),
                if healthy { "healthy" } else { "unhealthy" }.to_owned(),
            )
        });
        let components: BTreeMap<String, String> = futures_util::future::join_all(checks).await.into_iter().collect();
        let healthy = components.values().all(|s| s == "healthy");
        HealthReport {
            status: if healthy { "healthy" } else { "unhealthy" }.to_owned(),
            timestamp: now_rfc3339(),
            version: self.inner.version.to_owned(),
            uptime: format_uptime(self.uptime()),
            components,
        }
    }
}

/// Answer of `GET /health`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "status": "healthy", "timestamp": "2025-06-19T15:30:00Z", "version": "0.1.0",
    "uptime": "72h30m15s", "components": {"database": "healthy"}
}))]
pub struct HealthReport {
    /// `healthy` when every component is, `unhealthy` otherwise (answered with 503).
    pub status: String,
    /// When the report was made.
    pub timestamp: String,
    /// Running version.
    pub version: String,
    /// Time since start, e.g. `72h30m15s`.
    pub uptime: String,
    /// Each component's state: `healthy` or `unhealthy`.
    pub components: BTreeMap<String, String>,
}

impl IntoResponse for HealthReport {
    fn into_response(self) -> Response {
        let status = if self.status == "healthy" {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        (status, Json(self)).into_response()
    }
}

/// Answer of `GET /ready`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReadyReport {
    /// `ready`.
    pub status: String,
}

/// Answer of `GET /api/status`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StatusReport {
    /// `running`, or `starting` until migrations are applied.
    pub status: String,
    /// Running version.
    pub version: String,
    /// Whether the server is ready for traffic.
    pub ready: bool,
    /// Start time (RFC 3339).
    pub started_at: String,
    /// Time since start, e.g. `1h2m3s`.
    pub uptime: String,
    /// Seconds since start.
    pub uptime_seconds: u64,
    /// Database engine: `sqlite` or `postgres`.
    pub database: String,
    /// Each listener's bound address.
    pub listeners: BTreeMap<String, String>,
}

/// Answer of `GET /api/version`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct VersionReport {
    /// Always `veloflux`.
    pub name: String,
    /// Semantic version of the binary.
    pub version: String,
    /// Version of the HTTP API.
    pub api_version: String,
}

/// Answer of `GET /api/system/info`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SystemInfo {
    /// Host name.
    pub hostname: String,
    /// Operating system.
    pub os: String,
    /// CPU architecture.
    pub arch: String,
    /// CPUs available to the process.
    pub cpus: usize,
    /// Process id.
    pub pid: u32,
    /// Resident memory in bytes, where the OS reports it.
    pub memory_rss_bytes: Option<u64>,
    /// Start time (RFC 3339).
    pub started_at: String,
    /// Seconds since start.
    pub uptime_seconds: u64,
    /// Running version.
    pub version: String,
    /// Database engine.
    pub database: String,
}

/// The system routes of the control-plane listener.
pub fn router(system: System) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(ready))
        .routes(routes!(status))
        .routes(routes!(version))
        .routes(routes!(system_info))
        .with_state(system)
}

/// Overall health with a real check of each component.
#[utoipa::path(get, path = "/health", tag = "system",
    responses((status = 200, description = "Every component is healthy", body = HealthReport),
              (status = 503, description = "A component is unhealthy", body = HealthReport)))]
pub async fn health(State(system): State<System>) -> HealthReport {
    system.health().await
}

/// Readiness probe: 503 until migrations are applied and every listener is bound.
#[utoipa::path(get, path = "/ready", tag = "system",
    responses((status = 200, body = ReadyReport), (status = 503, body = crate::ErrorBody)))]
pub async fn ready(State(system): State<System>) -> Result<Json<ReadyReport>, ApiError> {
    if system.is_ready() {
        Ok(Json(ReadyReport { status: "ready".into() }))
    } else {
        Err(ApiError::new(
            ErrorCode::ServiceUnavailable,
            "starting: database migrations are not applied yet",
        ))
    }
}

/// What is running, since when, on which addresses.
#[utoipa::path(get, path = "/api/status", tag = "system", responses((status = 200, body = StatusReport)))]
pub async fn status(State(system): State<System>) -> Json<StatusReport> {
    let ready = system.is_ready();
    Json(StatusReport {
        status: if ready { "running" } else { "starting" }.into(),
        version: system.version().into(),
        ready,
        started_at: system.inner.started_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        uptime: format_uptime(system.uptime()),
        uptime_seconds: system.uptime().as_secs(),
        database: system.store().engine().as_str().into(),
        listeners: system
            .inner
            .listeners
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.to_string()))
            .collect(),
    })
}

/// The version of the binary and of the API.
#[utoipa::path(get, path = "/api/version", tag = "system", responses((status = 200, body = VersionReport)))]
pub async fn version(State(system): State<System>) -> Json<VersionReport> {
    Json(VersionReport {
        name: "veloflux".into(),
        version: system.version().into(),
        api_version: "v1".into(),
    })
}

/// Host and process facts.
#[utoipa::path(get, path = "/api/system/info", tag = "system", responses((status = 200, body = SystemInfo)))]
pub async fn system_info(State(system): State<System>) -> Json<SystemInfo> {
    Json(SystemInfo {
        hostname: hostname(),
        os: std::env::consts::OS.into(),
        arch: std::env::consts::ARCH.into(),
        cpus: std::thread::available_parallelism().map_or(1, usize::from),
        pid: std::process::id(),
        memory_rss_bytes: resident_memory(),
        started_at: system.inner.started_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        uptime_seconds: system.uptime().as_secs(),
        version: system.version().into(),
        database: system.store().engine().as_str().into(),
    })
}

pub(crate) fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `72h30m15s`, the seed's uptime format.
pub fn format_uptime(uptime: Duration) -> String {
    let secs = uptime.as_secs();
    format!("{}h{}m{}s", secs / 3600, (secs % 3600) / 60, secs % 60)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|name| name.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

/// Resident set size from `/proc/self/status` (Linux); `None` elsewhere.
pub(crate) fn resident_memory() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_reads_like_the_seed() {
        assert_eq!(
            format_uptime(Duration::from_secs(72 * 3600 + 30 * 60 + 15)),
            "72h30m15s"
        );
        assert_eq!(format_uptime(Duration::from_secs(5)), "0h0m5s");
    }
}
