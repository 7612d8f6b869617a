//! CORS: browsers may call the API from the platform's origins (configuration) and from
//! each tenant's own (`allowed_origins` in the tenant's settings). A request with a token
//! is judged by its tenant's list; a preflight or a request without a token (sign-in) by
//! whether any tenant lists the origin.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use veloflux_store::{Store, allows_origin};

use crate::auth::{authenticate, bearer_token};

/// What the CORS middleware consults.
#[derive(Debug, Clone)]
pub struct CorsPolicy {
    platform: Arc<Vec<String>>,
    store: Store,
}

impl CorsPolicy {
    /// Origins allowed for every tenant, and the store for the tenants' own lists.
    pub fn new(platform_origins: Vec<String>, store: Store) -> CorsPolicy {
        CorsPolicy {
            platform: Arc::new(platform_origins),
            store,
        }
    }

    async fn allowed_for_any(&self, origin: &str) -> bool {
        self.platform.iter().any(|o| o == origin)
            || self
                .store
                .tenants_allowing_origin(origin)
                .await
                .is_ok_and(|t| !t.is_empty())
    }
}

/// The middleware; it must run before authentication-dependent layers see the request.
pub async fn cors(State(policy): State<CorsPolicy>, request: Request, next: Next) -> Response {
    let Some(origin) = request
        .headers()
        .get(ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
    else {
        return next.run(request).await;
    };
    let preflight =
        request.method() == Method::OPTIONS && request.headers().contains_key(ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        let mut response = StatusCode::NO_CONTENT.into_response();
        if policy.allowed_for_any(&origin).await {
            let headers = response.headers_mut();
            allow(headers, &origin);
            headers.insert(
                ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, POST, PUT, DELETE, OPTIONS"),
            );
            headers.insert(
                ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("Authorization, Content-Type, X-Request-ID"),
            );
            headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
        }
        response.headers_mut().insert(VARY, HeaderValue::from_static("Origin"));
        return response;
    }

    let (mut parts, body) = request.into_parts();
    let allowed = if policy.platform.iter().any(|o| o == &origin) {
        true
    } else if bearer_token(&parts).is_some() {
        match authenticate(&mut parts).await {
            Ok(principal) => policy
                .store
                .tenant(principal.tenant_id)
                .await
                .is_ok_and(|t| allows_origin(&t.settings, &origin)),
            Err(_) => false,
        }
    } else {
        policy.allowed_for_any(&origin).await
    };
    let mut response = next.run(Request::from_parts(parts, body)).await;
    let headers = response.headers_mut();
    if allowed {
        allow(headers, &origin);
        headers.insert(
            ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("X-Request-ID, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, X-RateLimit-Window, Retry-After"),
        );
    }
    headers.append(VARY, HeaderValue::from_static("Origin"));
    response
}

fn allow(headers: &mut axum::http::HeaderMap, origin: &str) {
    if let Ok(value) = HeaderValue::from_str(origin) {
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, value);
    }
}
