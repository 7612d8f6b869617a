//! API rate limits: per session token by plan (the seed's 100/1,000/10,000 requests per
//! hour), and stricter per-IP limits for the authentication routes. Fixed windows aligned to
//! the clock, so `X-RateLimit-Reset` is the same for every client of a window.
//!
//! Counters live in this process. Several control-plane nodes each count their own share;
//! the shared Redis limiter of DESIGN.md section 6 plugs in behind [`RateLimiter`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use veloflux_domain::Plan;

use crate::auth::authenticate;
use crate::error::{ApiError, ErrorCode};

/// Limits, configurable per installation.
#[derive(Debug, Clone, Copy)]
pub struct RateLimits {
    /// Requests per window for a token of a free-plan tenant.
    pub free: u32,
    /// Requests per window, professional plan.
    pub professional: u32,
    /// Requests per window, enterprise plan.
    pub enterprise: u32,
    /// The window of the per-token limits.
    pub window: Duration,
    /// Requests per window from one IP address to the authentication routes.
    pub auth_per_ip: u32,
    /// The window of the per-IP authentication limit.
    pub auth_window: Duration,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            free: 100,
            professional: 1_000,
            enterprise: 10_000,
            window: Duration::from_secs(3600),
            auth_per_ip: 30,
            auth_window: Duration::from_secs(60),
        }
    }
}

impl RateLimits {
    /// The per-token limit of a plan.
    pub fn for_plan(&self, plan: Plan) -> u32 {
        match plan {
            Plan::Free => self.free,
            Plan::Professional => self.professional,
            Plan::Enterprise => self.enterprise,
        }
    }
}

/// The outcome of counting one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// The limit of the window.
    pub limit: u32,
    /// Requests left in the window after this one.
    pub remaining: u32,
    /// When the window ends (Unix seconds).
    pub reset: u64,
    /// Window length in seconds.
    pub window: u64,
    /// Seconds until the window ends.
    pub retry_after: u64,
}

impl Decision {
    fn headers(&self) -> [(HeaderName, HeaderValue); 4] {
        [
            (
                HeaderName::from_static("x-ratelimit-limit"),
                HeaderValue::from(self.limit),
            ),
            (
                HeaderName::from_static("x-ratelimit-remaining"),
                HeaderValue::from(self.remaining),
            ),
            (
                HeaderName::from_static("x-ratelimit-reset"),
                HeaderValue::from(self.reset),
            ),
            (
                HeaderName::from_static("x-ratelimit-window"),
                HeaderValue::from(self.window),
            ),
        ]
    }

    fn apply(&self, headers: &mut HeaderMap) {
        for (name, value) in self.headers() {
            headers.insert(name, value);
        }
    }

    fn rejection(&self) -> ApiError {
        let mut error = ApiError::new(
            ErrorCode::RateLimitExceeded,
            format!(
                "rate limit of {} requests per {} seconds exceeded; retry in {} seconds",
                self.limit, self.window, self.retry_after
            ),
        )
        .with_header(
            HeaderName::from_static("retry-after"),
            HeaderValue::from(self.retry_after),
        );
        for (name, value) in self.headers() {
            error = error.with_header(name, value);
        }
        error
    }
}

/// Counts requests per key in fixed windows.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    limits: RateLimits,
    windows: Arc<Mutex<HashMap<String, (u64, u32)>>>,
}

impl RateLimiter {
    /// A limiter with `limits`.
    pub fn new(limits: RateLimits) -> RateLimiter {
        RateLimiter {
            limits,
            windows: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The configured limits.
    pub fn limits(&self) -> &RateLimits {
        &self.limits
    }

    /// Counts one request for `key` against `limit` per `window`.
    pub fn hit(&self, key: &str, limit: u32, window: Duration) -> Decision {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let window = window.as_secs().max(1);
        let start = now - now % window;
        let mut windows = self.windows.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if windows.len() > 100_000 {
            windows.retain(|_, (s, _)| *s == start);
        }
        let entry = windows.entry(key.to_owned()).or_insert((start, 0));
        if entry.0 != start {
            *entry = (start, 0);
        }
        let allowed = entry.1 < limit;
        if allowed {
            entry.1 += 1;
        }
        Decision {
            allowed,
            limit,
            remaining: limit.saturating_sub(entry.1),
            reset: start + window,
            window,
            retry_after: (start + window).saturating_sub(now).max(1),
        }
    }
}

/// Middleware: requests carrying a valid access token count against their session's
/// per-plan limit. Requests without one pass (routes that need a token reject them).
pub async fn per_token(State(limiter): State<RateLimiter>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let decision = match authenticate(&mut parts).await {
        Ok(principal) => {
            let limit = limiter.limits.for_plan(principal.plan);
            Some(limiter.hit(
                &format!("session:{}", principal.session_id),
                limit,
                limiter.limits.window,
            ))
        }
        Err(_) => None,
    };
    let request = Request::from_parts(parts, body);
    match decision {
        Some(decision) if !decision.allowed => decision.rejection().into_response(),
        Some(decision) => {
            let mut response = next.run(request).await;
            decision.apply(response.headers_mut());
            response
        }
        None => next.run(request).await,
    }
}

/// Middleware for the authentication routes: a per-IP limit.
pub async fn per_ip(State(limiter): State<RateLimiter>, request: Request, next: Next) -> Response {
    let ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |ConnectInfo(addr)| addr.ip().to_string());
    let limits = limiter.limits;
    let decision = limiter.hit(&format!("auth-ip:{ip}"), limits.auth_per_ip, limits.auth_window);
    if !decision.allowed {
        return decision.rejection().into_response();
    }
    let mut response = next.run(request).await;
    decision.apply(response.headers_mut());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_down_then_refuses_until_the_window_ends() {
        let limiter = RateLimiter::new(RateLimits::default());
        let window = Duration::from_secs(3600);
        let first = limiter.hit("k", 3, window);
        assert!(first.allowed);
        assert_eq!((first.limit, first.remaining, first.window), (3, 2, 3600));
        assert_eq!(first.reset % 3600, 0);
        assert!(limiter.hit("k", 3, window).allowed);
        assert_eq!(limiter.hit("k", 3, window).remaining, 0);
        let refused = limiter.hit("k", 3, window);
        assert!(!refused.allowed);
        assert!(refused.retry_after >= 1 && refused.retry_after <= 3600);
        assert!(limiter.hit("other", 3, window).allowed, "keys are independent");
    }

    #[test]
    fn plans_map_to_the_seed_limits() {
        let limits = RateLimits::default();
        assert_eq!(
            [Plan::Free, Plan::Professional, Plan::Enterprise].map(|p| limits.for_plan(p)),
            [100, 1_000, 10_000]
        );
    }
}
