//! Slowing down and locking out repeated failed sign-ins, per account and per IP address.
//!
//! Failures are counted per e-mail address whether or not an account has it, so the answers
//! are the same for existing and unknown addresses. Counters live in the store, so every
//! node sees them.

use std::time::Duration;

use chrono::Utc;
use veloflux_api::{ApiError, ErrorCode};
use veloflux_store::Store;

/// When to slow down and when to lock.
#[derive(Debug, Clone, Copy)]
pub struct LockoutPolicy {
    /// Consecutive failures for one e-mail address before it is locked.
    pub max_failures_per_account: i64,
    /// Failures from one IP address before it is locked.
    pub max_failures_per_ip: i64,
    /// How long a lock lasts.
    pub lockout: Duration,
    /// Extra delay per failure before answering a failed attempt (capped at four steps).
    pub slowdown_step: Duration,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        LockoutPolicy {
            max_failures_per_account: 5,
            max_failures_per_ip: 20,
            lockout: Duration::from_secs(15 * 60),
            slowdown_step: Duration::from_millis(250),
        }
    }
}

pub(crate) fn account_key(email: &str) -> String {
    format!("email:{email}")
}

pub(crate) fn ip_key(ip: &str) -> String {
    format!("ip:{ip}")
}

/// Refuses with 429 when any of `keys` is locked.
pub(crate) async fn ensure_unlocked(store: &Store, keys: &[String]) -> Result<(), ApiError> {
    let now = Utc::now();
    for key in keys {
        let Some(throttle) = store.login_throttle(key).await? else {
            continue;
        };
        match throttle.locked_until {
            Some(until) if until > now => {
                let wait = u64::try_from((until - now).num_seconds()).unwrap_or(1).max(1);
                return Err(ApiError::new(
                    ErrorCode::RateLimitExceeded,
                    format!("too many failed sign-in attempts; try again in {wait} seconds"),
                )
                .with_header(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(wait)));
            }
            Some(_) => store.clear_login_throttle(key).await?,
            None => {}
        }
    }
    Ok(())
}

/// Counts a failure against the account and the IP, locks what crossed its threshold, and
/// waits the slow-down delay.
pub(crate) async fn record_failure(
    store: &Store,
    policy: &LockoutPolicy,
    account: &str,
    ip: &str,
) -> Result<(), ApiError> {
    let account_failures = store.record_login_failure(account).await?;
    let ip_failures = store.record_login_failure(ip).await?;
    let until = Utc::now() + chrono::Duration::from_std(policy.lockout).unwrap_or(chrono::Duration::minutes(15));
    if account_failures >= policy.max_failures_per_account {
        store.lock_login(account, until).await?;
        tracing::warn!(
            failures = account_failures,
            "account locked after repeated sign-in failures"
        );
    }
    if ip_failures >= policy.max_failures_per_ip {
        store.lock_login(ip, until).await?;
        tracing::warn!(
            failures = ip_failures,
            "client address locked after repeated sign-in failures"
        );
    }
    let steps = u32::try_from(account_failures.clamp(0, 4)).unwrap_or(4);
    tokio::time::sleep(policy.slowdown_step * steps).await;
    Ok(())
}
