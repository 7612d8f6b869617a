//! `/api/backends`: the servers behind pools.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use veloflux_api::{ApiError, Auth, DeferredJson, ErrorBody, ErrorCode, Json, Path, Permission};
use veloflux_domain::{BackendAddress, Invalid, Weight};
use veloflux_store::{Backend, BackendSpec, StoreError};

use crate::pools::find_pool;
use crate::views::{HealthCheckBody, rfc3339};
use crate::{RoutingState, store_error};

/// A backend as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct BackendView {
    /// Backend id.
    pub id: String,
    /// Address.
    pub address: String,
    /// Pool name.
    pub pool: String,
    /// Weight.
    pub weight: u32,
    /// Region.
    pub region: Option<String>,
    /// Live health: healthy, unhealthy or unknown.
    pub status: String,
    /// Its own health check, when it overrides the pool's.
    pub health_check: Option<HealthCheckBody>,
    /// Creation time.
    pub created_at: String,
}

/// `{"backends": [...]}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct BackendList {
    /// The tenant's backends.
    pub backends: Vec<BackendView>,
}

/// Body of `POST /api/backends`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"address": "192.168.1.20:8080", "pool": "servidores_web", "weight": 100, "region": "us-west-2",
    "health_check": {"path": "/health", "interval": "30s", "timeout": "5s", "expected_status": 200}}))]
pub struct CreateBackend {
    /// `host:port`.
    pub address: String,
    /// Pool name.
    pub pool: String,
    /// Weight, 1 to 1000 (default 100).
    #[serde(default)]
    pub weight: Option<i64>,
    /// Region label.
    #[serde(default)]
    pub region: Option<String>,
    /// Its own health check, overriding the pool's.
    #[serde(default)]
    pub health_check: Option<HealthCheckBody>,
}

/// Body of `PUT /api/backends/{id}`; absent fields stay.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"weight": 150, "region": "us-east-1"}))]
pub struct UpdateBackend {
    /// New address.
    #[serde(default)]
    pub address: Option<String>,
    /// New weight.
    #[serde(default)]
    pub weight: Option<i64>,
    /// New region.
    #[serde(default)]
    pub region: Option<String>,
    /// Its own health check.
    #[serde(default)]
    pub health_check: Option<HealthCheckBody>,
}

pub(crate) fn routes() -> OpenApiRouter<RoutingState> {
    OpenApiRouter::new()
        .routes(routes!(list_backends, create_backend))
        .routes(routes!(get_backend, update_backend, delete_backend))
}

async fn view(state: &RoutingState, backend: Backend) -> Result<BackendView, ApiError> {
    let pools = state.store.pools(backend.tenant_id).await?;
    let pool = pools
        .iter()
        .find(|p| p.id == backend.pool_id)
        .map(|p| p.name.clone())
        .unwrap_or_default();
    Ok(BackendView {
        status: state.edge.backend_status(&backend.id).into(),
        id: backend.id,
        address: backend.address.to_string(),
        pool,
        weight: backend.weight.get(),
        region: backend.region,
        health_check: backend.health_check.as_ref().map(HealthCheckBody::of),
        created_at: rfc3339(backend.created_at),
    })
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(ErrorCode::BackendNotFound, format!("backend \"{id}\" not found"))
}

fn address(raw: &str) -> Result<BackendAddress, ApiError> {
    BackendAddress::parse(raw).map_err(|e| ApiError::invalid("address", &e))
}

fn weight(raw: i64) -> Result<Weight, ApiError> {
    Weight::parse(raw).map_err(|e| ApiError::invalid("weight", &e))
}

fn region(raw: Option<String>) -> Result<Option<String>, ApiError> {
    let region = raw.map(|r| r.trim().to_owned()).filter(|r| !r.is_empty());
    if region
        .as_ref()
        .is_some_and(|r| r.len() > 64 || r.chars().any(char::is_control))
    {
        return Err(ApiError::invalid(
            "region",
            &Invalid::new("format", "region must be at most 64 printable characters"),
        ));
    }
    Ok(region)
}

fn duplicate(address: &BackendAddress) -> ApiError {
    ApiError::new(
        ErrorCode::Conflict,
        format!("{address} is already a backend of this pool"),
    )
    .with_details(json!({"field": "address", "constraint": "unique"}))
}

/// The tenant's backends.
#[utoipa::path(get, path = "/api/backends", tag = "backends", responses((status = 200, body = BackendList)), security(("bearer" = [])))]
async fn list_backends(
    State(state): State<RoutingState>,
    Auth(principal): Auth,
) -> Result<Json<BackendList>, ApiError> {
    principal.require(Permission::Read, principal.tenant_id)?;
    let mut backends = Vec::new();
    for backend in state.store.backends(principal.tenant_id).await? {
        backends.push(view(&state, backend).await?);
    }
    Ok(Json(BackendList { backends }))
}

/// Adds a backend to a pool. It takes traffic after its first passing health check (at once
/// when checks are disabled).
#[utoipa::path(post, path = "/api/backends", tag = "backends", request_body = CreateBackend,
    responses((status = 201, body = BackendView), (status = 404, description = "POOL_NOT_FOUND", body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn create_backend(
    State(state): State<RoutingState>,
    Auth(principal): Auth,
    body: DeferredJson<CreateBackend>,
) -> Result<(StatusCode, Json<BackendView>), ApiError> {
    principal.require(Permission::WriteResources, principal.tenant_id)?;
    let body = body.parse()?;
    let address = address(&body.address)?;
    let weight = weight(body.weight.unwrap_or(100))?;
    let region = region(body.region)?;
    let pool = find_pool(&state, &principal, body.pool.trim()).await?;
    let health_check = body
        .health_check
        .as_ref()
        .map(|c| c.parse(&pool.health_check, "health_check"))
        .transpose()?;
    let spec = BackendSpec {
        address,
        weight,
        region,
        health_check,
    };
    let backend = match state.store.create_backend(principal.tenant_id, &pool.id, &spec).await {
        Err(StoreError::Conflict { .. }) => return Err(duplicate(&spec.address)),
        other => other?,
    };
    state.apply().await?;
    let view = view(&state, backend).await?;
    state.publish(principal.tenant_id, "backend.added", "backend", &view);
    Ok((StatusCode::CREATED, Json(view)))
}

/// One backend.
#[utoipa::path(get, path = "/api/backends/{id}", tag = "backends", params(("id" = String, Path)),
    responses((status = 200, body = BackendView), (status = 404, description = "BACKEND_NOT_FOUND", body = ErrorBody)), security(("bearer" = [])))]
async fn get_backend(
    State(state): State<RoutingState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> Result<Json<BackendView>, ApiError> {
    principal.require(Permission::Read, principal.tenant_id)?;
    let backend = match state.store.backend(principal.tenant_id, &id).await {
        Err(StoreError::NotFound) => return Err(not_found(&id)),
        other => other.map_err(store_error)?,
    };
    Ok(Json(view(&state, backend).await?))
}

/// Changes a backend.
#[utoipa::path(put, path = "/api/backends/{id}", tag = "backends", params(("id" = String, Path)), request_body = UpdateBackend,
    responses((status = 200, body = BackendView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
async fn update_backend(
    State(state): State<RoutingState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
    body: DeferredJson<UpdateBackend>,
) -> Result<Json<BackendView>, ApiError> {
    principal.require(Permission::WriteResources, principal.tenant_id)?;
    let current = match state.store.backend(principal.tenant_id, &id).await {
        Err(StoreError::NotFound) => return Err(not_found(&id)),
        other => other.map_err(store_error)?,
    };
    let body = body.parse()?;
    let pool_check = state
        .store
        .pools(principal.tenant_id)
        .await?
        .into_iter()
        .find(|p| p.id == current.pool_id)
        .map(|p| p.health_check);
    let base = current.health_check.clone().or(pool_check).unwrap_or_default();
    let spec = BackendSpec {
        address: body
            .address
            .as_deref()
            .map(address)
            .transpose()?
            .unwrap_or_else(|| current.address.clone()),
        weight: body.weight.map(weight).transpose()?.unwrap_or(current.weight),
        region: if body.region.is_some() {
            region(body.region)?
        } else {
            current.region.clone()
        },
        health_check: match &body.health_check {
            Some(check) => Some(check.parse(&base, "health_check")?),
            None => current.health_check.clone(),
        },
    };
    let updated = match state.store.update_backend(principal.tenant_id, &id, &spec).await {
        Err(StoreError::Conflict { .. }) => return Err(duplicate(&spec.address)),
        other => other?,
    };
    state.apply().await?;
    Ok(Json(view(&state, updated).await?))
}

/// Removes a backend.
#[utoipa::path(delete, path = "/api/backends/{id}", tag = "backends", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn delete_backend(
    State(state): State<RoutingState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(Permission::WriteResources, principal.tenant_id)?;
    let backend = match state.store.backend(principal.tenant_id, &id).await {
        Err(StoreError::NotFound) => return Err(not_found(&id)),
        other => view(&state, other.map_err(store_error)?).await?,
    };
    match state.store.delete_backend(principal.tenant_id, &id).await {
        Err(StoreError::NotFound) => return Err(not_found(&id)),
        other => other.map_err(store_error)?,
    }
    state.apply().await?;
    state.publish(principal.tenant_id, "backend.removed", "backend", &backend);
    Ok(StatusCode::NO_CONTENT)
}
