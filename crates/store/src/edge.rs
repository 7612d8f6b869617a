//! Pools, backends and routes: the edge's configuration, tenant by tenant.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::Row;
use sqlx::any::AnyRow;
use veloflux_domain::{
    Algorithm, BackendAddress, HealthCheck, PathPrefix, Plan, PoolName, PoolTimeouts, RouteHost, TenantId, Weight,
};

use crate::error::corrupt;
use crate::{Store, StoreError, time};

/// A pool of backends.
#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    /// Identifier.
    pub id: String,
    /// Owner.
    pub tenant_id: TenantId,
    /// Name, unique in the tenant.
    pub name: String,
    /// Balancing algorithm.
    pub algorithm: Algorithm,
    /// Whether clients stick to one backend by cookie.
    pub sticky_sessions: bool,
    /// Health checking of the pool's backends.
    pub health_check: HealthCheck,
    /// Upstream timeouts of its own.
    pub timeouts: PoolTimeouts,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// Settings of a new or changed pool.
#[derive(Debug, Clone)]
pub struct PoolSpec {
    /// Name.
    pub name: PoolName,
    /// Balancing algorithm.
    pub algorithm: Algorithm,
    /// Sticky sessions.
    pub sticky_sessions: bool,
    /// Health checking.
    pub health_check: HealthCheck,
    /// Upstream timeouts of its own.
    pub timeouts: PoolTimeouts,
}

/// A backend server of a pool.
#[derive(Debug, Clone, PartialEq)]
pub struct Backend {
    /// Identifier.
    pub id: String,
    /// Owner.
    pub tenant_id: TenantId,
    /// The pool.
    pub pool_id: String,
    /// Where it listens.
    pub address: BackendAddress,
    /// Share of traffic.
    pub weight: Weight,
    /// Region label.
    pub region: Option<String>,
    /// Its own health check, overriding the pool's.
    pub health_check: Option<HealthCheck>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// Settings of a new or changed backend.
#[derive(Debug, Clone)]
pub struct BackendSpec {
    /// Where it listens.
    pub address: BackendAddress,
    /// Share of traffic.
    pub weight: Weight,
    /// Region label.
    pub region: Option<String>,
    /// Its own health check.
    pub health_check: Option<HealthCheck>,
}

/// A route: requests for `host` under `path_prefix` go to `pool_id`.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// Identifier.
    pub id: String,
    /// Owner.
    pub tenant_id: TenantId,
    /// Exact host or `*.` wildcard.
    pub host: RouteHost,
    /// Path prefix.
    pub path_prefix: PathPrefix,
    /// Target pool.
    pub pool_id: String,
    /// Serve over HTTPS only (HTTP is redirected).
    pub ssl_enabled: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// Settings of a new or changed route.
#[derive(Debug, Clone)]
pub struct RouteSpec {
    /// Host.
    pub host: RouteHost,
    /// Path prefix.
    pub path_prefix: PathPrefix,
    /// Target pool id.
    pub pool_id: String,
    /// HTTPS only.
    pub ssl_enabled: bool,
}

/// Everything the edge needs, across tenants.
#[derive(Debug, Clone, Default)]
pub struct EdgeRows {
    /// Every pool.
    pub pools: Vec<Pool>,
    /// Every backend.
    pub backends: Vec<Backend>,
    /// Every route.
    pub routes: Vec<Route>,
    /// Every tenant's plan (it sets the edge limits).
    pub plans: Vec<(TenantId, Plan)>,
    /// Every TLS certificate.
    pub certificates: Vec<crate::CertificateRow>,
}

const POOL_COLUMNS: &str = "id, tenant_id, name, algorithm, sticky_sessions, health_check, created_at, updated_at, \
                            connect_timeout_ms, response_timeout_ms";
const BACKEND_COLUMNS: &str = "id, tenant_id, pool_id, address, weight, region, health_check, created_at";
const ROUTE_COLUMNS: &str = "id, tenant_id, host, path_prefix, pool_id, ssl_enabled, created_at";

impl Store {
    /// Creates a pool; a name the tenant already uses is a `Conflict`.
    pub async fn create_pool(&self, tenant: TenantId, spec: &PoolSpec) -> Result<Pool, StoreError> {
        let id = uuid::Uuid::now_v7().to_string();
        let now = time::encode(time::now());
        sqlx::query(&format!(
            "INSERT INTO pools ({POOL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
        .bind(id.clone())
        .bind(tenant.to_string())
        .bind(spec.name.as_str())
        .bind(spec.algorithm.as_str())
        .bind(i64::from(spec.sticky_sessions))
        .bind(encode_check(&spec.health_check))
        .bind(now.clone())
        .bind(now)
        .bind(millis(spec.timeouts.connect))
        .bind(millis(spec.timeouts.response))
        .execute(&self.pool)
        .await?;
        self.pool_by_id(tenant, &id).await
    }

    /// A tenant's pools, by name.
    pub async fn pools(&self, tenant: TenantId) -> Result<Vec<Pool>, StoreError> {
        self.scoped_all(POOL_COLUMNS, "pools", "name", tenant, pool_from_row)
            .await
    }

    /// One pool by name.
    pub async fn pool_by_name(&self, tenant: TenantId, name: &str) -> Result<Pool, StoreError> {
        self.scoped_one(POOL_COLUMNS, "pools", "name", tenant, name, pool_from_row)
            .await
    }

    async fn pool_by_id(&self, tenant: TenantId, id: &str) -> Result<Pool, StoreError> {
        self.scoped_one(POOL_COLUMNS, "pools", "id", tenant, id, pool_from_row)
            .await
    }

    /// Replaces a pool's settings (its name included).
    pub async fn update_pool(&self, tenant: TenantId, id: &str, spec: &PoolSpec) -> Result<Pool, StoreError> {
        let done = sqlx::query(
            "UPDATE pools SET name = $1, algorithm = $2, sticky_sessions = $3, health_check = $4, updated_at = $5, \
             connect_timeout_ms = $8, response_timeout_ms = $9 WHERE tenant_id = $6 AND id = $7",
        )
        .bind(spec.name.as_str())
        .bind(spec.algorithm.as_str())
        .bind(i64::from(spec.sticky_sessions))
        .bind(encode_check(&spec.health_check))
        .bind(time::encode(time::now()))
        .bind(tenant.to_string())
        .bind(id)
        .bind(millis(spec.timeouts.connect))
        .bind(millis(spec.timeouts.response))
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        self.pool_by_id(tenant, id).await
    }

    /// Deletes a pool and its backends; a pool that routes still use is a `Conflict`.
    pub async fn delete_pool(&self, tenant: TenantId, id: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("UPDATE pools SET updated_at = $1 WHERE tenant_id = $2 AND id = $3")
            .bind(time::encode(time::now()))
            .bind(tenant.to_string())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        let used: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM routes WHERE pool_id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        if used > 0 {
            return Err(StoreError::Conflict {
                constraint: "routes_pool_id".into(),
            });
        }
        sqlx::query("DELETE FROM pools WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Adds a backend to a pool of the tenant; an address already in the pool is a
    /// `Conflict`.
    pub async fn create_backend(
        &self,
        tenant: TenantId,
        pool_id: &str,
        spec: &BackendSpec,
    ) -> Result<Backend, StoreError> {
        let id = uuid::Uuid::now_v7().to_string();
        let now = time::encode(time::now());
        sqlx::query(&format!(
            "INSERT INTO backends ({BACKEND_COLUMNS}, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(id.clone())
        .bind(tenant.to_string())
        .bind(pool_id)
        .bind(spec.address.to_string())
        .bind(i64::from(spec.weight.get()))
        .bind(spec.region.clone())
        .bind(spec.health_check.as_ref().map(encode_check))
        .bind(now.clone())
        .bind(now)
        .execute(&self.pool)
        .await?;
        self.backend(tenant, &id).await
    }

    /// A tenant's backends, oldest first.
    pub async fn backends(&self, tenant: TenantId) -> Result<Vec<Backend>, StoreError> {
        self.scoped_all(BACKEND_COLUMNS, "backends", "id", tenant, backend_from_row)
            .await
    }

    /// One backend.
    pub async fn backend(&self, tenant: TenantId, id: &str) -> Result<Backend, StoreError> {
        self.scoped_one(BACKEND_COLUMNS, "backends", "id", tenant, id, backend_from_row)
            .await
    }

    /// Replaces a backend's settings.
    pub async fn update_backend(&self, tenant: TenantId, id: &str, spec: &BackendSpec) -> Result<Backend, StoreError> {
        let done = sqlx::query(
            "UPDATE backends SET address = $1, weight = $2, region = $3, health_check = $4, updated_at = $5 \
             WHERE tenant_id = $6 AND id = $7",
        )
        .bind(spec.address.to_string())
        .bind(i64::from(spec.weight.get()))
        .bind(spec.region.clone())
        .bind(spec.health_check.as_ref().map(encode_check))
        .bind(time::encode(time::now()))
        .bind(tenant.to_string())
        .bind(id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        self.backend(tenant, id).await
    }

    /// Removes a backend.
    pub async fn delete_backend(&self, tenant: TenantId, id: &str) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM backends WHERE tenant_id = $1 AND id = $2")
            .bind(tenant.to_string())
            .bind(id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Creates a route. A host claimed by another tenant is a `Conflict` on `route_hosts`;
    /// the same host and prefix twice is a `Conflict` on the routes.
    pub async fn create_route(&self, tenant: TenantId, spec: &RouteSpec) -> Result<Route, StoreError> {
        let mut tx = self.pool.begin().await?;
        claim_host(&mut tx, tenant, &spec.host).await?;
        let id = uuid::Uuid::now_v7().to_string();
        let now = time::encode(time::now());
        sqlx::query(&format!(
            "INSERT INTO routes ({ROUTE_COLUMNS}, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .bind(id.clone())
        .bind(tenant.to_string())
        .bind(spec.host.as_str())
        .bind(spec.path_prefix.as_str())
        .bind(spec.pool_id.clone())
        .bind(i64::from(spec.ssl_enabled))
        .bind(now.clone())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.route(tenant, &id).await
    }

    /// A tenant's routes, oldest first.
    pub async fn routes(&self, tenant: TenantId) -> Result<Vec<Route>, StoreError> {
        self.scoped_all(ROUTE_COLUMNS, "routes", "id", tenant, route_from_row)
            .await
    }

    /// One route.
    pub async fn route(&self, tenant: TenantId, id: &str) -> Result<Route, StoreError> {
        self.scoped_one(ROUTE_COLUMNS, "routes", "id", tenant, id, route_from_row)
            .await
    }

    /// Replaces a route's settings.
    pub async fn update_route(&self, tenant: TenantId, id: &str, spec: &RouteSpec) -> Result<Route, StoreError> {
        let mut tx = self.pool.begin().await?;
        claim_host(&mut tx, tenant, &spec.host).await?;
        let done = sqlx::query(
            "UPDATE routes SET host = $1, path_prefix = $2, pool_id = $3, ssl_enabled = $4, updated_at = $5 \
             WHERE tenant_id = $6 AND id = $7",
        )
        .bind(spec.host.as_str())
        .bind(spec.path_prefix.as_str())
        .bind(spec.pool_id.clone())
        .bind(i64::from(spec.ssl_enabled))
        .bind(time::encode(time::now()))
        .bind(tenant.to_string())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        release_unused_hosts(&mut tx, tenant).await?;
        tx.commit().await?;
        self.route(tenant, id).await
    }

    /// Deletes a route; its host is released when no other route of the tenant uses it.
    pub async fn delete_route(&self, tenant: TenantId, id: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("DELETE FROM routes WHERE tenant_id = $1 AND id = $2")
            .bind(tenant.to_string())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        release_unused_hosts(&mut tx, tenant).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The whole edge configuration, for building a routing snapshot.
    pub async fn edge_rows(&self) -> Result<EdgeRows, StoreError> {
        let pools = sqlx::query(&format!("SELECT {POOL_COLUMNS} FROM pools ORDER BY id"))
            .fetch_all(&self.pool)
            .await?;
        let backends = sqlx::query(&format!("SELECT {BACKEND_COLUMNS} FROM backends ORDER BY id"))
            .fetch_all(&self.pool)
            .await?;
        let routes = sqlx::query(&format!("SELECT {ROUTE_COLUMNS} FROM routes ORDER BY id"))
            .fetch_all(&self.pool)
            .await?;
        let plans = sqlx::query("SELECT id, plan FROM tenants ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        let plans = plans
            .iter()
            .map(|row| {
                Ok((
                    TenantId::parse(&row.try_get::<String, _>("id")?).map_err(corrupt("tenant id"))?,
                    Plan::parse(&row.try_get::<String, _>("plan")?).map_err(corrupt("tenant plan"))?,
                ))
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(EdgeRows {
            plans,
            certificates: self.all_certificates().await?,
            pools: pools.iter().map(pool_from_row).collect::<Result<_, _>>()?,
            backends: backends.iter().map(backend_from_row).collect::<Result<_, _>>()?,
            routes: routes.iter().map(route_from_row).collect::<Result<_, _>>()?,
        })
    }
}

impl Store {
    /// The row of `table` owned by `tenant` whose `key` column is `value`. Table, column and
    /// key names come from this module's constants, never from input.
    pub(crate) async fn scoped_one<T>(
        &self,
        columns: &str,
        table: &str,
        key: &str,
        tenant: TenantId,
        value: &str,
        decode: fn(&AnyRow) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {columns} FROM {table} WHERE tenant_id = $1 AND {key} = $2"
        ))
        .bind(tenant.to_string())
        .bind(value)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        decode(&row)
    }

    /// Every row of `table` owned by `tenant`, ordered by `order`.
    pub(crate) async fn scoped_all<T>(
        &self,
        columns: &str,
        table: &str,
        order: &str,
        tenant: TenantId,
        decode: fn(&AnyRow) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {columns} FROM {table} WHERE tenant_id = $1 ORDER BY {order}"
        ))
        .bind(tenant.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decode).collect()
    }
}

/// Claims `host` for `tenant`; another tenant's claim is a `Conflict` on `route_hosts`.
async fn claim_host(conn: &mut sqlx::AnyConnection, tenant: TenantId, host: &RouteHost) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO route_hosts (host, tenant_id) VALUES ($1, $2) ON CONFLICT (host) DO NOTHING")
        .bind(host.as_str())
        .bind(tenant.to_string())
        .execute(&mut *conn)
        .await?;
    let owner: String = sqlx::query_scalar("SELECT tenant_id FROM route_hosts WHERE host = $1")
        .bind(host.as_str())
        .fetch_one(&mut *conn)
        .await?;
    if owner != tenant.to_string() {
        return Err(StoreError::Conflict {
            constraint: "route_hosts".into(),
        });
    }
    Ok(())
}

async fn release_unused_hosts(conn: &mut sqlx::AnyConnection, tenant: TenantId) -> Result<(), StoreError> {
    sqlx::query(
        "DELETE FROM route_hosts WHERE tenant_id = $1 AND host NOT IN (SELECT host FROM routes WHERE tenant_id = $2)",
    )
    .bind(tenant.to_string())
    .bind(tenant.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

fn encode_check(check: &HealthCheck) -> String {
    let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    json!({
        "enabled": check.enabled, "path": check.path, "interval_ms": millis(check.interval), "timeout_ms": millis(check.timeout),
        "expected_status": check.expected_status, "rise": check.rise, "fall": check.fall,
    })
    .to_string()
}

fn decode_check(raw: &str) -> Result<HealthCheck, StoreError> {
    let bad = || StoreError::Corrupt("health check".into());
    let value: serde_json::Value = serde_json::from_str(raw).map_err(|_| bad())?;
    let number = |key: &str| value.get(key).and_then(serde_json::Value::as_u64).ok_or_else(bad);
    Ok(HealthCheck {
        enabled: value
            .get("enabled")
            .and_then(serde_json::Value::as_bool)
            .ok_or_else(bad)?,
        path: value
            .get("path")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(bad)?
            .to_owned(),
        interval: Duration::from_millis(number("interval_ms")?),
        timeout: Duration::from_millis(number("timeout_ms")?),
        expected_status: u16::try_from(number("expected_status")?).map_err(|_| bad())?,
        rise: u32::try_from(number("rise")?).map_err(|_| bad())?,
        fall: u32::try_from(number("fall")?).map_err(|_| bad())?,
    })
}

fn tenant_of(row: &AnyRow) -> Result<TenantId, StoreError> {
    TenantId::parse(&row.try_get::<String, _>("tenant_id")?).map_err(corrupt("tenant id"))
}

fn pool_from_row(row: &AnyRow) -> Result<Pool, StoreError> {
    Ok(Pool {
        id: row.try_get("id")?,
        tenant_id: tenant_of(row)?,
        name: row.try_get("name")?,
        algorithm: Algorithm::parse(&row.try_get::<String, _>("algorithm")?).map_err(corrupt("pool algorithm"))?,
        sticky_sessions: row.try_get::<i64, _>("sticky_sessions")? != 0,
        health_check: decode_check(&row.try_get::<String, _>("health_check")?)?,
        timeouts: PoolTimeouts {
            connect: duration(row.try_get("connect_timeout_ms")?)?,
            response: duration(row.try_get("response_timeout_ms")?)?,
        },
        created_at: time::decode(&row.try_get::<String, _>("created_at")?)?,
        updated_at: time::decode(&row.try_get::<String, _>("updated_at")?)?,
    })
}

fn millis(value: Option<Duration>) -> Option<i64> {
    value.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn duration(millis: Option<i64>) -> Result<Option<Duration>, StoreError> {
    millis
        .map(|ms| {
            u64::try_from(ms)
                .map(Duration::from_millis)
                .map_err(corrupt("pool timeout"))
        })
        .transpose()
}

fn backend_from_row(row: &AnyRow) -> Result<Backend, StoreError> {
    Ok(Backend {
        id: row.try_get("id")?,
        tenant_id: tenant_of(row)?,
        pool_id: row.try_get("pool_id")?,
        address: BackendAddress::parse(&row.try_get::<String, _>("address")?).map_err(corrupt("backend address"))?,
        weight: Weight::parse(row.try_get("weight")?).map_err(corrupt("backend weight"))?,
        region: row.try_get("region")?,
        health_check: row
            .try_get::<Option<String>, _>("health_check")?
            .as_deref()
            .map(decode_check)
            .transpose()?,
        created_at: time::decode(&row.try_get::<String, _>("created_at")?)?,
    })
}

fn route_from_row(row: &AnyRow) -> Result<Route, StoreError> {
    Ok(Route {
        id: row.try_get("id")?,
        tenant_id: tenant_of(row)?,
        host: RouteHost::parse(&row.try_get::<String, _>("host")?).map_err(corrupt("route host"))?,
        path_prefix: PathPrefix::parse(&row.try_get::<String, _>("path_prefix")?).map_err(corrupt("route prefix"))?,
        pool_id: row.try_get("pool_id")?,
        ssl_enabled: row.try_get::<i64, _>("ssl_enabled")? != 0,
        created_at: time::decode(&row.try_get::<String, _>("created_at")?)?,
    })
}
