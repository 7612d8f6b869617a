//! Metered usage: the edge appends batches, billing and the tenant views sum them.

use chrono::{DateTime, Utc};
use sqlx::Row;
use veloflux_domain::TenantId;

use crate::{Store, StoreError, time};

/// One flushed batch of a tenant's traffic on one route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageEvent {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The route, if the traffic matched one.
    pub route_id: Option<String>,
    /// Start of the metering period.
    pub period_start: DateTime<Utc>,
    /// End of the metering period.
    pub period_end: DateTime<Utc>,
    /// Requests served.
    pub requests: i64,
    /// Request bytes received.
    pub bytes_in: i64,
    /// Response bytes sent.
    pub bytes_out: i64,
    /// Responses by status class: 2xx, 3xx, 4xx, 5xx.
    pub status_classes: [i64; 4],
}

/// Sums of a tenant's usage over a period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsageTotals {
    /// Requests served.
    pub requests: i64,
    /// Request bytes received.
    pub bytes_in: i64,
    /// Response bytes sent.
    pub bytes_out: i64,
}

impl Store {
    /// Appends a batch of usage events in one transaction.
    pub async fn record_usage(&self, events: &[UsageEvent]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let now = time::encode(time::now());
        for event in events {
            sqlx::query(
                "INSERT INTO usage_events (id, tenant_id, route_id, period_start, period_end, requests, bytes_in, bytes_out, \
                 status_2xx, status_3xx, status_4xx, status_5xx, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            )
            .bind(uuid::Uuid::now_v7().to_string())
            .bind(event.tenant_id.to_string())
            .bind(event.route_id.clone())
            .bind(time::encode(event.period_start))
            .bind(time::encode(event.period_end))
            .bind(event.requests)
            .bind(event.bytes_in)
            .bind(event.bytes_out)
            .bind(event.status_classes[0])
            .bind(event.status_classes[1])
            .bind(event.status_classes[2])
            .bind(event.status_classes[3])
            .bind(now.clone())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A tenant's usage in periods starting at or after `since`.
    pub async fn tenant_usage(&self, tenant: TenantId, since: DateTime<Utc>) -> Result<UsageTotals, StoreError> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(requests), 0) AS BIGINT) AS requests, CAST(COALESCE(SUM(bytes_in), 0) AS BIGINT) AS bytes_in, \
             CAST(COALESCE(SUM(bytes_out), 0) AS BIGINT) AS bytes_out FROM usage_events WHERE tenant_id = $1 AND period_start >= $2",
        )
        .bind(tenant.to_string())
        .bind(time::encode(since))
        .fetch_one(&self.pool)
        .await?;
        Ok(UsageTotals {
            requests: row.try_get("requests")?,
            bytes_in: row.try_get("bytes_in")?,
            bytes_out: row.try_get("bytes_out")?,
        })
    }
}
