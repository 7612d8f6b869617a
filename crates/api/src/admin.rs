//! The admin listener (`VELOFLUX_ADMIN_ADDR`, loopback by default): operator routes under
//! `/admin`, and the Prometheus listener's routes.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ErrorCode};
use crate::extract::Json;
use crate::system::{HealthReport, System, format_uptime, resident_memory};

/// What the admin routes need.
#[derive(Debug, Clone)]
pub struct AdminState {
    system: System,
    /// The effective configuration with every secret replaced by `***`.
    config: Arc<Value>,
}

impl AdminState {
    /// `config` must already be masked; this type only serves it.
    pub fn new(system: System, masked_config: Value) -> AdminState {
        AdminState {
            system,
            config: Arc::new(masked_config),
        }
    }
}

/// Answer of `GET /admin/health`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AdminHealth {
    /// Overall health, as `GET /health` reports it.
    #[serde(flatten)]
    pub health: HealthReport,
    /// Whether the server is ready for traffic.
    pub ready: bool,
}

/// Answer of `GET /admin/metrics`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AdminMetrics {
    /// Seconds since start.
    pub uptime_seconds: u64,
    /// Time since start, e.g. `1h2m3s`.
    pub uptime: String,
    /// HTTP requests served by every listener, by status class (`2xx`, `4xx`, ...).
    pub requests_by_status_class: BTreeMap<String, u64>,
    /// HTTP requests served in all.
    pub requests_total: u64,
    /// Database pool state.
    pub database: DatabasePoolStats,
    /// Resident memory in bytes, where the OS reports it.
    pub memory_rss_bytes: Option<u64>,
}

/// Connections of the database pool.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DatabasePoolStats {
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// Open connections.
    pub connections: u32,
    /// Idle connections among them.
    pub idle: usize,
}

/// Routes of the admin listener.
pub fn router(state: AdminState) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(admin_health))
        .routes(routes!(admin_metrics))
        .routes(routes!(admin_config, update_admin_config))
        .routes(routes!(admin_reload))
        .with_state(state)
}

/// Routes of the Prometheus listener.
pub fn metrics_router(system: System) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(prometheus_metrics))
        .routes(routes!(crate::system::health))
        .with_state(system)
}

/// Health and readiness, for operators.
#[utoipa::path(get, path = "/admin/health", tag = "admin",
    responses((status = 200, body = AdminHealth), (status = 503, body = AdminHealth)))]
async fn admin_health(State(state): State<AdminState>) -> impl IntoResponse {
    let health = state.system.health().await;
    let status = if health.status == "healthy" {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(AdminHealth {
            health,
            ready: state.system.is_ready(),
        }),
    )
}

/// Request counts, uptime, database pool and memory.
#[utoipa::path(get, path = "/admin/metrics", tag = "admin", responses((status = 200, body = AdminMetrics)))]
async fn admin_metrics(State(state): State<AdminState>) -> Json<AdminMetrics> {
    let system = &state.system;
    let by_class = system.metrics().requests_by_class();
    let (connections, idle) = system.store().pool_stats();
    Json(AdminMetrics {
        uptime_seconds: system.uptime().as_secs(),
        uptime: format_uptime(system.uptime()),
        requests_total: by_class.values().sum(),
        requests_by_status_class: by_class,
        database: DatabasePoolStats {
            backend: system.store().engine().as_str().into(),
            connections,
            idle,
        },
        memory_rss_bytes: resident_memory(),
    })
}

/// The effective configuration, secrets masked.
#[utoipa::path(get, path = "/admin/config", tag = "admin",
    responses((status = 200, description = "Configuration with secrets shown as ***", body = Object)))]
async fn admin_config(State(state): State<AdminState>) -> Json<Value> {
    Json(state.config.as_ref().clone())
}

/// Changing the configuration at run time is not implemented: edit the file or the
/// environment and restart (the edge's routing is configured live through the API).
#[utoipa::path(put, path = "/admin/config", tag = "admin",
    responses((status = 501, description = "Not implemented", body = crate::ErrorBody)))]
async fn update_admin_config() -> ApiError {
    ApiError::new(
        ErrorCode::NotImplemented,
        "changing the configuration at run time is not implemented; edit veloflux.toml or the environment and restart",
    )
}

/// Reloading the configuration file is not implemented (see `PUT /admin/config`).
#[utoipa::path(post, path = "/admin/reload", tag = "admin",
    responses((status = 501, description = "Not implemented", body = crate::ErrorBody)))]
async fn admin_reload() -> ApiError {
    ApiError::new(
        ErrorCode::NotImplemented,
        "reloading the configuration is not implemented; restart the process",
    )
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "metrics",
    responses((status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain", body = String)))]
async fn prometheus_metrics(State(system): State<System>) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        system.metrics().render(),
    )
}
