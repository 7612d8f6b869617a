//! Timestamps are stored as fixed-width RFC 3339 UTC text so that one SQL text works on both
//! backends and text order equals time order.

use chrono::{DateTime, SecondsFormat, Utc};

use crate::StoreError;

/// The current time, truncated to microseconds (what is stored), so that a value returned by
/// a write equals the value read back later.
pub(crate) fn now() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

pub(crate) fn encode(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub(crate) fn decode(raw: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(raw)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|_| StoreError::Corrupt(format!("timestamp {raw:?}")))
}

pub(crate) fn decode_opt(raw: Option<String>) -> Result<Option<DateTime<Utc>>, StoreError> {
    raw.as_deref().map(decode).transpose()
}
