use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::any::AnyRow;
use veloflux_domain::{Plan, TenantId, TenantName, TenantStatus};

use crate::error::corrupt;
use crate::{Page, PageRequest, Store, StoreError, time};

/// A tenant as stored, with the number of its members.
#[derive(Debug, Clone, PartialEq)]
pub struct Tenant {
    /// Identifier.
    pub id: TenantId,
    /// Display name.
    pub name: String,
    /// Commercial plan.
    pub plan: Plan,
    /// Whether it may use the platform.
    pub status: TenantStatus,
    /// Free-form limits and preferences (`max_users`, `max_requests_per_month`, ...).
    pub settings: serde_json::Value,
    /// Number of users with a membership in this tenant.
    pub user_count: i64,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// What it takes to create a tenant.
#[derive(Debug, Clone)]
pub struct NewTenant {
    /// Display name.
    pub name: TenantName,
    /// Plan to start on.
    pub plan: Plan,
    /// Initial settings object.
    pub settings: serde_json::Value,
}

/// A partial change to a tenant; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct TenantUpdate {
    /// New display name.
    pub name: Option<TenantName>,
    /// New plan.
    pub plan: Option<Plan>,
    /// New status.
    pub status: Option<TenantStatus>,
    /// Keys to merge into the settings object (a `null` value removes the key).
    pub settings: Option<serde_json::Map<String, serde_json::Value>>,
}

const SELECT_TENANT: &str = "SELECT t.id, t.name, t.plan, t.status, t.settings, t.created_at, t.updated_at, \
     (SELECT COUNT(*) FROM memberships m WHERE m.tenant_id = t.id) AS user_count FROM tenants t";

const DEFAULT_TENANT_KEY: &str = "default_tenant_id";

impl Store {
    /// Creates a tenant.
    pub async fn create_tenant(&self, new: &NewTenant) -> Result<Tenant, StoreError> {
        let mut tx = self.pool.begin().await?;
        let id = insert_tenant(&mut tx, new).await?;
        tx.commit().await?;
        self.tenant(id).await
    }

    /// Reads one tenant.
    pub async fn tenant(&self, id: TenantId) -> Result<Tenant, StoreError> {
        let row = sqlx::query(&format!("{SELECT_TENANT} WHERE t.id = $1"))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        tenant_from_row(&row)
    }

    /// Lists every tenant (for platform administrators), oldest first.
    pub async fn list_tenants(&self, page: &PageRequest) -> Result<Page<Tenant>, StoreError> {
        let rows = sqlx::query(&format!("{SELECT_TENANT} WHERE t.id > $1 ORDER BY t.id LIMIT $2"))
            .bind(page.after())
            .bind(i64::from(page.limit()) + 1)
            .fetch_all(&self.pool)
            .await?;
        let tenants = rows.iter().map(tenant_from_row).collect::<Result<Vec<_>, _>>()?;
        Ok(page.finish(tenants, |t| t.id.to_string()))
    }

    /// Lists the tenants among `ids`, oldest first (a user's own tenants).
    pub async fn tenants_by_ids(&self, ids: &[TenantId]) -> Result<Vec<Tenant>, StoreError> {
        let mut tenants = Vec::with_capacity(ids.len());
        for id in ids {
            match self.tenant(*id).await {
                Ok(tenant) => tenants.push(tenant),
                Err(StoreError::NotFound) => {}
                Err(err) => return Err(err),
            }
        }
        tenants.sort_by_key(|t| t.id);
        Ok(tenants)
    }

    /// Applies a partial change and returns the tenant as it is now.
    pub async fn update_tenant(&self, id: TenantId, update: &TenantUpdate) -> Result<Tenant, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Touch the row first: on SQLite this takes the write lock before the read below, so
        // a concurrent update cannot interleave and no transaction has to upgrade its lock.
        let touched = sqlx::query("UPDATE tenants SET updated_at = $1 WHERE id = $2")
            .bind(time::encode(time::now()))
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        if touched.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        let row = sqlx::query("SELECT name, plan, status, settings FROM tenants WHERE id = $1")
            .bind(id.to_string())
            .fetch_one(&mut *tx)
            .await?;
        let mut name: String = row.try_get("name")?;
        let mut plan: String = row.try_get("plan")?;
        let mut status: String = row.try_get("status")?;
        let mut settings = decode_settings(&row.try_get::<String, _>("settings")?)?;
        if let Some(new) = &update.name {
            name = new.as_str().to_owned();
        }
        if let Some(new) = update.plan {
            plan = new.as_str().to_owned();
        }
        if let Some(new) = update.status {
            status = new.as_str().to_owned();
        }
        if let Some(changes) = &update.settings {
            let object = settings
                .as_object_mut()
                .ok_or_else(|| StoreError::Corrupt(format!("settings of tenant {id} is not an object")))?;
            for (key, value) in changes {
                if value.is_null() {
                    object.remove(key);
                } else {
                    object.insert(key.clone(), value.clone());
                }
            }
        }
        sqlx::query("UPDATE tenants SET name = $1, plan = $2, status = $3, settings = $4 WHERE id = $5")
            .bind(name)
            .bind(plan)
            .bind(status)
            .bind(settings.to_string())
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.tenant(id).await
    }

    /// Deletes a tenant and, through foreign keys, its memberships.
    pub async fn delete_tenant(&self, id: TenantId) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM tenants WHERE id = $1")
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// The tenant named `default` that the first start creates; created here if missing.
    ///
    /// Safe to call from several processes at once: the id is claimed with an insert that
    /// only one of them wins.
    pub async fn ensure_default_tenant(&self) -> Result<TenantId, StoreError> {
        if let Some(id) = self.default_tenant().await? {
            return Ok(id);
        }
        let mut tx = self.pool.begin().await?;
        let new = NewTenant {
            name: TenantName::parse("default").map_err(|e| StoreError::Corrupt(e.message))?,
            plan: Plan::Free,
            settings: serde_json::json!({}),
        };
        let id = insert_tenant(&mut tx, &new).await?;
        let claimed =
            sqlx::query("INSERT INTO platform_settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
                .bind(DEFAULT_TENANT_KEY)
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
        if claimed.rows_affected() == 1 {
            tx.commit().await?;
            return Ok(id);
        }
        tx.rollback().await?;
        self.default_tenant().await?.ok_or(StoreError::NotFound)
    }

    /// The default tenant's id, if it has been created.
    pub async fn default_tenant(&self) -> Result<Option<TenantId>, StoreError> {
        self.platform_setting(DEFAULT_TENANT_KEY)
            .await?
            .map(|raw| TenantId::parse(&raw).map_err(|e| StoreError::Corrupt(e.message)))
            .transpose()
    }
}

pub(crate) async fn insert_tenant(conn: &mut sqlx::AnyConnection, new: &NewTenant) -> Result<TenantId, StoreError> {
    let id = TenantId::new();
    let now = time::encode(time::now());
    sqlx::query(
        "INSERT INTO tenants (id, name, plan, status, settings, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id.to_string())
    .bind(new.name.as_str())
    .bind(new.plan.as_str())
    .bind(TenantStatus::Active.as_str())
    .bind(new.settings.to_string())
    .bind(now.clone())
    .bind(now)
    .execute(conn)
    .await?;
    Ok(id)
}

fn decode_settings(raw: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(raw).map_err(|_| StoreError::Corrupt("tenant settings".into()))
}

fn tenant_from_row(row: &AnyRow) -> Result<Tenant, StoreError> {
    Ok(Tenant {
        id: TenantId::parse(&row.try_get::<String, _>("id")?).map_err(corrupt("tenant id"))?,
        name: row.try_get("name")?,
        plan: Plan::parse(&row.try_get::<String, _>("plan")?).map_err(corrupt("tenant plan"))?,
        status: TenantStatus::parse(&row.try_get::<String, _>("status")?).map_err(corrupt("tenant status"))?,
        settings: decode_settings(&row.try_get::<String, _>("settings")?)?,
        user_count: row.try_get("user_count")?,
        created_at: time::decode(&row.try_get::<String, _>("created_at")?)?,
        updated_at: time::decode(&row.try_get::<String, _>("updated_at")?)?,
    })
}

impl Store {
    /// Tenants whose settings list `origin` under `allowed_origins` (for CORS preflights,
    /// which carry no token to tell the tenant).
    pub async fn tenants_allowing_origin(&self, origin: &str) -> Result<Vec<TenantId>, StoreError> {
        // A cheap text filter narrows the scan (LIKE wildcards in it only widen it); the JSON
        // check decides.
        let pattern = format!("%{origin}%");
        let rows = sqlx::query("SELECT id, settings FROM tenants WHERE settings LIKE $1")
            .bind(pattern)
            .fetch_all(&self.pool)
            .await?;
        let mut allowed = Vec::new();
        for row in rows {
            let settings = decode_settings(&row.try_get::<String, _>("settings")?)?;
            if allows_origin(&settings, origin) {
                allowed.push(TenantId::parse(&row.try_get::<String, _>("id")?).map_err(corrupt("tenant id"))?);
            }
        }
        Ok(allowed)
    }
}

/// Whether a tenant's settings list `origin` in `allowed_origins`.
pub fn allows_origin(settings: &serde_json::Value, origin: &str) -> bool {
    settings
        .get("allowed_origins")
        .and_then(serde_json::Value::as_array)
        .is_some_and(|origins| origins.iter().any(|o| o.as_str() == Some(origin)))
}
