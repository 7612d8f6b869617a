//! Payloads as the seeds show them.

use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use veloflux_api::ApiError;
use veloflux_domain::{HealthCheck, RawHealthCheck, format_duration};

/// A health check in requests and answers.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"enabled": true, "path": "/health", "interval": "30s", "timeout": "5s", "expected_status": 200}))]
pub struct HealthCheckBody {
    /// Whether checks run (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Path requested with GET (default `/health`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Time between checks, e.g. `30s` (default `10s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Time a check may take, shorter than the interval (default `2s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Status of a healthy answer (default 200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_status: Option<i64>,
    /// Passes in a row that make a backend healthy again (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rise: Option<i64>,
    /// Failures in a row that make a backend unhealthy (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fall: Option<i64>,
}

impl HealthCheckBody {
    /// Validates over `base`; failures are `HEALTH_CHECK_FAILED` naming the field.
    pub fn parse(&self, base: &HealthCheck, prefix: &str) -> Result<HealthCheck, ApiError> {
        let raw = RawHealthCheck {
            enabled: self.enabled,
            path: self.path.as_deref(),
            interval: self.interval.as_deref(),
            timeout: self.timeout.as_deref(),
            expected_status: self.expected_status,
            rise: self.rise,
            fall: self.fall,
        };
        HealthCheck::parse(&raw, base).map_err(|(field, invalid)| {
            let field = format!("{prefix}.{field}");
            ApiError::new(
                veloflux_api::ErrorCode::HealthCheckFailed,
                format!("{field}: {}", invalid.message),
            )
            .with_details(json!({"field": field, "constraint": invalid.constraint}))
        })
    }

    /// The answer form of a check.
    pub fn of(check: &HealthCheck) -> HealthCheckBody {
        HealthCheckBody {
            enabled: Some(check.enabled),
            path: Some(check.path.clone()),
            interval: Some(format_duration(check.interval)),
            timeout: Some(format_duration(check.timeout)),
            expected_status: Some(i64::from(check.expected_status)),
            rise: Some(i64::from(check.rise)),
            fall: Some(i64::from(check.fall)),
        }
    }
}

/// RFC 3339 with seconds.
pub fn rfc3339(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
