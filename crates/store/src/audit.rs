use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::any::AnyRow;
use veloflux_domain::{TenantId, UserId};

use crate::error::corrupt;
use crate::{Page, PageRequest, Store, StoreError, time};

/// Something security-relevant that happened: a sign-in, a role change, a configuration edit.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// Identifier (time-ordered).
    pub id: String,
    /// The tenant it concerns, if any.
    pub tenant_id: Option<TenantId>,
    /// Who did it, if known.
    pub actor_user_id: Option<UserId>,
    /// Dotted verb, e.g. `user.registered`, `auth.login_failed`.
    pub action: String,
    /// What it was done to (an id or name).
    pub target: Option<String>,
    /// Client address.
    pub ip: Option<String>,
    /// Further facts; never secrets.
    pub details: serde_json::Value,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// An entry to append to the audit log.
#[derive(Debug, Clone)]
pub struct NewAuditEntry {
    /// The tenant it concerns, if any.
    pub tenant_id: Option<TenantId>,
    /// Who did it, if known.
    pub actor_user_id: Option<UserId>,
    /// Dotted verb.
    pub action: String,
    /// What it was done to.
    pub target: Option<String>,
    /// Client address.
    pub ip: Option<String>,
    /// Further facts; never secrets.
    pub details: serde_json::Value,
}

impl Store {
    /// Appends an entry to the audit log.
    pub async fn record_audit(&self, entry: &NewAuditEntry) -> Result<AuditEntry, StoreError> {
        let id = uuid::Uuid::now_v7().to_string();
        let now = time::now();
        sqlx::query(
            "INSERT INTO audit_log (id, tenant_id, actor_user_id, action, target, ip, details, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(id.clone())
        .bind(entry.tenant_id.map(|t| t.to_string()))
        .bind(entry.actor_user_id.map(|u| u.to_string()))
        .bind(entry.action.clone())
        .bind(entry.target.clone())
        .bind(entry.ip.clone())
        .bind(entry.details.to_string())
        .bind(time::encode(now))
        .execute(&self.pool)
        .await?;
        Ok(AuditEntry {
            id,
            tenant_id: entry.tenant_id,
            actor_user_id: entry.actor_user_id,
            action: entry.action.clone(),
            target: entry.target.clone(),
            ip: entry.ip.clone(),
            details: entry.details.clone(),
            created_at: now,
        })
    }

    /// Reads the audit log, oldest first: one tenant's entries, or every entry when `tenant`
    /// is `None` (platform administrators only).
    pub async fn audit_log(
        &self,
        tenant: Option<TenantId>,
        page: &PageRequest,
    ) -> Result<Page<AuditEntry>, StoreError> {
        const COLUMNS: &str =
            "SELECT id, tenant_id, actor_user_id, action, target, ip, details, created_at FROM audit_log";
        let limit = i64::from(page.limit()) + 1;
        let rows = match tenant {
            Some(tenant) => {
                sqlx::query(&format!(
                    "{COLUMNS} WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3"
                ))
                .bind(tenant.to_string())
                .bind(page.after())
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(&format!("{COLUMNS} WHERE id > $1 ORDER BY id LIMIT $2"))
                    .bind(page.after())
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        let entries = rows.iter().map(audit_from_row).collect::<Result<Vec<_>, _>>()?;
        Ok(page.finish(entries, |e| e.id.clone()))
    }
}

fn audit_from_row(row: &AnyRow) -> Result<AuditEntry, StoreError> {
    Ok(AuditEntry {
        id: row.try_get("id")?,
        tenant_id: row
            .try_get::<Option<String>, _>("tenant_id")?
            .map(|raw| TenantId::parse(&raw))
            .transpose()
            .map_err(corrupt("audit tenant"))?,
        actor_user_id: row
            .try_get::<Option<String>, _>("actor_user_id")?
            .map(|raw| UserId::parse(&raw))
            .transpose()
            .map_err(corrupt("audit actor"))?,
        action: row.try_get("action")?,
        target: row.try_get("target")?,
        ip: row.try_get("ip")?,
        details: serde_json::from_str(&row.try_get::<String, _>("details")?).map_err(corrupt("audit details"))?,
        created_at: time::decode(&row.try_get::<String, _>("created_at")?)?,
    })
}
