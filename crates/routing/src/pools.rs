//! `/api/pools`: pools by name.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use veloflux_api::{ApiError, Auth, DeferredJson, ErrorBody, ErrorCode, Json, Path, Permission, Principal};
use veloflux_domain::{Algorithm, HealthCheck, PoolName, PoolTimeouts, format_duration};
use veloflux_store::{Pool, PoolSpec, StoreError};

use crate::views::{HealthCheckBody, rfc3339};
use crate::{RoutingState, pool_not_found, store_error};

/// A backend inside a pool view.
#[derive(Debug, Serialize, ToSchema)]
pub struct PoolBackendView {
    /// Backend id.
    pub id: String,
    /// Address.
    pub address: String,
    /// Weight.
    pub weight: u32,
    /// Live health: healthy, unhealthy or unknown.
    pub status: String,
    /// Region.
    pub region: Option<String>,
}

/// A pool as the seed shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PoolView {
    /// Pool id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Balancing algorithm.
    pub algorithm: String,
    /// Sticky sessions.
    pub sticky_sessions: bool,
    /// Health check.
    pub health_check: HealthCheckBody,
    /// Time to open a connection to a backend (`null`: the edge's default).
    pub connect_timeout: Option<String>,
    /// Time for a backend to send its response head (`null`: the edge's default).
    pub response_timeout: Option<String>,
    /// Backends with their live status.
    pub backends: Vec<PoolBackendView>,
    /// Creation time.
    pub created_at: String,
}

/// `{"pools": [...]}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PoolList {
    /// The tenant's pools.
    pub pools: Vec<PoolView>,
}

/// Body of `POST /api/pools`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"name": "servidores_api", "algorithm": "least_connections", "sticky_sessions": false,
    "health_check": {"path": "/api/health", "interval": "10s", "timeout": "3s", "expected_status": 200}}))]
pub struct CreatePool {
    /// Name, unique in the tenant.
    pub name: String,
    /// round_robin, weighted_round_robin, least_connections, adaptive_ai or ip_hash.
    #[serde(default)]
    pub algorithm: Option<String>,
    /// Sticky sessions (default false).
    #[serde(default)]
    pub sticky_sessions: Option<bool>,
    /// Health check (defaults apply to absent fields).
    #[serde(default)]
    pub health_check: Option<HealthCheckBody>,
    /// Time to open a connection to a backend, e.g. `2s` (default: the edge's).
    #[serde(default)]
    pub connect_timeout: Option<String>,
    /// Time for a backend to send its response head, e.g. `30s` (default: the edge's).
    #[serde(default)]
    pub response_timeout: Option<String>,
}

/// Body of `PUT /api/pools/{name}`; absent fields stay.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"algorithm": "adaptive_ai", "sticky_sessions": true}))]
pub struct UpdatePool {
    /// New name.
    #[serde(default)]
    pub name: Option<String>,
    /// New algorithm.
    #[serde(default)]
    pub algorithm: Option<String>,
    /// Sticky sessions.
    #[serde(default)]
    pub sticky_sessions: Option<bool>,
    /// Health check changes.
    #[serde(default)]
    pub health_check: Option<HealthCheckBody>,
    /// New connect timeout.
    #[serde(default)]
    pub connect_timeout: Option<String>,
    /// New response timeout.
    #[serde(default)]
    pub response_timeout: Option<String>,
}

pub(crate) fn routes() -> OpenApiRouter<RoutingState> {
    OpenApiRouter::new()
        .routes(routes!(list_pools, create_pool))
        .routes(routes!(get_pool, update_pool, delete_pool))
}

pub(crate) async fn pool_view(state: &RoutingState, pool: Pool) -> Result<PoolView, ApiError> {
    let backends = state.store.backends(pool.tenant_id).await?;
    let backends = backends
        .into_iter()
        .filter(|b| b.pool_id == pool.id)
        .map(|b| PoolBackendView {
            status: state.edge.backend_status(&b.id).into(),
            id: b.id,
            address: b.address.to_string(),
            weight: b.weight.get(),
            region: b.region,
        })
        .collect();
    Ok(PoolView {
        id: pool.id,
        name: pool.name,
        algorithm: pool.algorithm.as_str().into(),
        sticky_sessions: pool.sticky_sessions,
        health_check: HealthCheckBody::of(&pool.health_check),
        connect_timeout: pool.timeouts.connect.map(format_duration),
        response_timeout: pool.timeouts.response.map(format_duration),
        backends,
        created_at: rfc3339(pool.created_at),
    })
}

fn algorithm(raw: &str) -> Result<Algorithm, ApiError> {
    Algorithm::parse(raw).map_err(|e| {
        ApiError::new(ErrorCode::InvalidAlgorithm, e.message)
            .with_details(json!({"field": "algorithm", "constraint": e.constraint}))
    })
}

fn timeouts(connect: Option<&str>, response: Option<&str>, base: PoolTimeouts) -> Result<PoolTimeouts, ApiError> {
    PoolTimeouts::parse(connect, response, base).map_err(|(field, e)| ApiError::invalid(field, &e))
}

fn name(raw: &str) -> Result<PoolName, ApiError> {
    PoolName::parse(raw).map_err(|e| ApiError::invalid("name", &e))
}

pub(crate) async fn find_pool(state: &RoutingState, principal: &Principal, name: &str) -> Result<Pool, ApiError> {
    match state.store.pool_by_name(principal.tenant_id, name).await {
        Err(StoreError::NotFound) => Err(pool_not_found(name)),
        other => other.map_err(store_error),
    }
}

fn exists(name: &str) -> ApiError {
    ApiError::new(
        ErrorCode::PoolAlreadyExists,
        format!("a pool named \"{name}\" already exists"),
    )
    .with_details(json!({"field": "name", "constraint": "unique"}))
}

/// The tenant's pools with their backends.
#[utoipa::path(get, path = "/api/pools", tag = "pools", responses((status = 200, body = PoolList)), security(("bearer" = [])))]
async fn list_pools(State(state): State<RoutingState>, Auth(principal): Auth) -> Result<Json<PoolList>, ApiError> {
    principal.require(Permission::Read, principal.tenant_id)?;
    let mut pools = Vec::new();
    for pool in state.store.pools(principal.tenant_id).await? {
        pools.push(pool_view(&state, pool).await?);
    }
    Ok(Json(PoolList { pools }))
}

/// Creates a pool.
#[utoipa::path(post, path = "/api/pools", tag = "pools", request_body = CreatePool,
    responses((status = 201, body = PoolView), (status = 409, description = "POOL_ALREADY_EXISTS", body = ErrorBody),
              (status = 422, description = "INVALID_ALGORITHM, HEALTH_CHECK_FAILED or VALIDATION_ERROR", body = ErrorBody)),
    security(("bearer" = [])))]
async fn create_pool(
    State(state): State<RoutingState>,
    Auth(principal): Auth,
    body: DeferredJson<CreatePool>,
) -> Result<(StatusCode, Json<PoolView>), ApiError> {
    principal.require(Permission::WriteResources, principal.tenant_id)?;
    let body = body.parse()?;
    let spec = PoolSpec {
        name: name(&body.name)?,
        algorithm: body
            .algorithm
            .as_deref()
            .map(algorithm)
            .transpose()?
            .unwrap_or(Algorithm::RoundRobin),
        sticky_sessions: body.sticky_sessions.unwrap_or(false),
        health_check: body
            .health_check
            .unwrap_or_default()
            .parse(&HealthCheck::default(), "health_check")?,
        timeouts: timeouts(
            body.connect_timeout.as_deref(),
            body.response_timeout.as_deref(),
            PoolTimeouts::default(),
        )?,
    };
    let pool = match state.store.create_pool(principal.tenant_id, &spec).await {
        Err(StoreError::Conflict { .. }) => return Err(exists(spec.name.as_str())),
        other => other?,
    };
    state.apply().await?;
    let view = pool_view(&state, pool).await?;
    state.publish(principal.tenant_id, "pool.created", "pool", &view);
    Ok((StatusCode::CREATED, Json(view)))
}

/// One pool.
#[utoipa::path(get, path = "/api/pools/{name}", tag = "pools", params(("name" = String, Path)),
    responses((status = 200, body = PoolView), (status = 404, description = "POOL_NOT_FOUND", body = ErrorBody)), security(("bearer" = [])))]
async fn get_pool(
    State(state): State<RoutingState>,
    Auth(principal): Auth,
    Path(name): Path<String>,
) -> Result<Json<PoolView>, ApiError> {
    principal.require(Permission::Read, principal.tenant_id)?;
    let pool = find_pool(&state, &principal, &name).await?;
    Ok(Json(pool_view(&state, pool).await?))
}

/// Changes a pool.
#[utoipa::path(put, path = "/api/pools/{name}", tag = "pools", params(("name" = String, Path)), request_body = UpdatePool,
    responses((status = 200, body = PoolView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn update_pool(
    State(state): State<RoutingState>,
    Auth(principal): Auth,
    Path(pool_name): Path<String>,
    body: DeferredJson<UpdatePool>,
) -> Result<Json<PoolView>, ApiError> {
    principal.require(Permission::WriteResources, principal.tenant_id)?;
    let pool = find_pool(&state, &principal, &pool_name).await?;
    let body = body.parse()?;
    let spec = PoolSpec {
        name: match &body.name {
            Some(raw) => name(raw)?,
            None => name(&pool.name)?,
        },
        algorithm: body
            .algorithm
            .as_deref()
            .map(algorithm)
            .transpose()?
            .unwrap_or(pool.algorithm),
        sticky_sessions: body.sticky_sessions.unwrap_or(pool.sticky_sessions),
        health_check: match &body.health_check {
            Some(check) => check.parse(&pool.health_check, "health_check")?,
            None => pool.health_check.clone(),
        },
        timeouts: timeouts(
            body.connect_timeout.as_deref(),
            body.response_timeout.as_deref(),
            pool.timeouts,
        )?,
    };
    let updated = match state.store.update_pool(principal.tenant_id, &pool.id, &spec).await {
        Err(StoreError::Conflict { .. }) => return Err(exists(spec.name.as_str())),
        other => other?,
    };
    state.apply().await?;
    let view = pool_view(&state, updated).await?;
    state.publish(principal.tenant_id, "pool.updated", "pool", &view);
    Ok(Json(view))
}

/// Deletes a pool and its backends; a pool that routes use cannot be deleted.
#[utoipa::path(delete, path = "/api/pools/{name}", tag = "pools", params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
async fn delete_pool(
    State(state): State<RoutingState>,
    Auth(principal): Auth,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(Permission::WriteResources, principal.tenant_id)?;
    let pool = find_pool(&state, &principal, &name).await?;
    match state.store.delete_pool(principal.tenant_id, &pool.id).await {
        Err(StoreError::Conflict { .. }) => {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                format!("pool \"{name}\" is used by routes; delete or move them first"),
            ));
        }
        other => other?,
    }
    state.apply().await?;
    state.publish(
        principal.tenant_id,
        "pool.deleted",
        "pool",
        &serde_json::json!({"id": pool.id, "name": pool.name}),
    );
    Ok(StatusCode::NO_CONTENT)
}
