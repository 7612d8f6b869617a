//! What every response gets, on every listener: a request id (echoed or generated), the
//! standard error body for any failure, the security headers, and one access-log line.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use chrono::{SecondsFormat, Utc};
use tracing::{Instrument, error, info, info_span, warn};

use crate::error::{ApiError, ErrorBody, ErrorCode};

/// The request id header, read from clients and set on every response.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the request being served, available to handlers as an extension.
#[derive(Debug, Clone)]
pub struct RequestId(pub Arc<str>);

impl RequestId {
    /// Accepts a client's id when it is 1 to 128 characters of `[A-Za-z0-9._:-]`, so that it
    /// is safe to echo and to log; otherwise a new one is made.
    fn from_headers(headers: &HeaderMap) -> RequestId {
        let candidate = headers
            .get(&REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|v| {
                (1..=128).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
            });
        match candidate {
            Some(id) => RequestId(id.into()),
            None => RequestId(format!("req_{}", uuid::Uuid::now_v7().simple()).into()),
        }
    }
}

/// The headers veloflux-api-reference.md lists under "Headers de Segurança", plus a referrer
/// policy.
const SECURITY_HEADERS: [(&str, &str); 6] = [
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("x-xss-protection", "1; mode=block"),
    ("strict-transport-security", "max-age=31536000; includeSubDomains"),
    ("content-security-policy", "default-src 'self'"),
    ("referrer-policy", "no-referrer"),
];

/// The middleware. It must wrap every route and the fallbacks (see [`crate::finish`]).
pub async fn envelope(mut request: Request, next: Next) -> Response {
    let request_id = RequestId::from_headers(request.headers());
    request.extensions_mut().insert(request_id.clone());
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let span = info_span!("request", request_id = %request_id.0, method = %method, path = %path);
    let started = Instant::now();

    let response = next.run(request).instrument(span.clone()).await;
    let mut response = span.in_scope(|| render_error(response, &request_id));

    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&request_id.0) {
        headers.insert(REQUEST_ID_HEADER, value);
    }
    for (name, value) in SECURITY_HEADERS {
        headers.entry(name).or_insert(HeaderValue::from_static(value));
    }
    span.in_scope(|| {
        info!(
            status = response.status().as_u16(),
            duration_ms = started.elapsed().as_secs_f64() * 1e3,
            "request completed"
        );
    });
    response
}

/// Turns an [`ApiError`] (or a bare error status from the router, a timeout or a limit) into
/// the standard body carrying `request_id`.
fn render_error(mut response: Response, request_id: &RequestId) -> Response {
    let status = response.status();
    let error = match response.extensions_mut().remove::<ApiError>() {
        Some(error) => error,
        None if (status.is_client_error() || status.is_server_error()) && !is_json(response.headers()) => {
            let code = ErrorCode::for_status(status);
            let message = status.canonical_reason().unwrap_or("error").to_lowercase();
            ApiError::new(code, message).with_status(status)
        }
        None => return response,
    };
    if error.status.is_server_error() {
        match &error.cause {
            Some(cause) => {
                error!(error = %error_chain(cause.as_ref()), code = error.code.as_str(), "request failed")
            }
            None => warn!(code = error.code.as_str(), message = %error.message, "request failed"),
        }
    }
    let body = ErrorBody {
        error: true,
        code: error.code.as_str(),
        message: error.message,
        details: error.details,
        timestamp: Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
        request_id: request_id.0.to_string(),
    };
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let (mut parts, _) = response.into_parts();
    parts.status = if error.status == StatusCode::OK {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        error.status
    };
    parts
        .headers
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    parts.headers.insert(CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    Response::from_parts(parts, Body::from(bytes))
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// `outer: inner: innermost`, the way people read a cause chain.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
