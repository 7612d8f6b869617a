//! What every VeloFlux HTTP route shares: the error type and the seed's error body, request
//! ids, JSON extraction with precise errors, security headers, Prometheus metrics, OpenAPI
//! assembly, and the system, admin and metrics routes.
//!
//! Feature crates (identity, sites, billing, ...) build their own `OpenApiRouter`s on top of
//! this crate; the binary composes them and hands the result to [`finish`]. This crate must
//! not depend on any feature crate, nor on the edge.

pub mod admin;
mod auth;
pub mod cors;
mod envelope;
mod error;
mod extract;
pub mod metrics;
pub mod openapi;
pub mod ratelimit;
pub mod system;

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, OriginalUri};
use axum::http::{Method, StatusCode};
use axum::response::IntoResponse;

pub use auth::{
    Auth, Authenticator, AuthenticatorHandle, Permission, Principal, authenticate, bearer_token, role_allows,
};
pub use envelope::{REQUEST_ID_HEADER, RequestId, error_chain};
pub use error::{ApiError, ErrorBody, ErrorCode};
pub use extract::{DeferredJson, Json, Pagination, Path, Query, parse_json};
pub use metrics::Metrics;

/// Limits that apply to every request of a listener.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Longest time a handler may take.
    pub request_timeout: Duration,
    /// Longest time a client may take to send a request head (every listener, the edge's too).
    pub header_timeout: Duration,
}

/// Wraps a listener's router with what every response needs: 404 and 405 in the standard
/// body, body limit, timeout, panic recovery, metrics, request id, security headers and the
/// access log.
pub fn finish(router: Router, metrics: Metrics, limits: HttpLimits) -> Router {
    finish_with(router, metrics, limits, |router| router)
}

/// Like [`finish`], with the listener's own layers (`inner`) applied after the fallbacks,
/// so that they also see requests no route or method matches (CORS preflights, for one).
pub fn finish_with(
    router: Router,
    metrics: Metrics,
    limits: HttpLimits,
    inner: impl FnOnce(Router) -> Router,
) -> Router {
    inner(
        router
            .fallback(not_found)
            .method_not_allowed_fallback(method_not_allowed),
    )
    .layer(DefaultBodyLimit::max(limits.max_body_bytes))
    .layer(tower_http::timeout::TimeoutLayer::with_status_code(
        StatusCode::REQUEST_TIMEOUT,
        limits.request_timeout,
    ))
    .layer(tower_http::catch_panic::CatchPanicLayer::custom(
        |_: Box<dyn std::any::Any + Send>| {
            ApiError::new(ErrorCode::InternalError, "internal server error").into_response()
        },
    ))
    .layer(axum::middleware::from_fn(envelope::envelope))
    .layer(axum::middleware::from_fn_with_state(metrics, metrics::track))
}

async fn not_found(method: Method, OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::new(ErrorCode::NotFound, format!("no route for {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("{method} is not allowed on {}", uri.path()),
    )
}
