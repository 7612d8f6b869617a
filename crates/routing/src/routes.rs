//! `/api/routes`: which host and path go to which pool.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use veloflux_api::{ApiError, Auth, DeferredJson, ErrorBody, ErrorCode, Json, Path, Permission};
use veloflux_domain::{PathPrefix, RouteHost};
use veloflux_store::{Route, RouteSpec, StoreError};

use crate::pools::find_pool;
use crate::views::rfc3339;
use crate::{RoutingState, store_error};

/// A route as the seed shows it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": "0190e0c7-c5a4-7f3c-9d8f-2b6a1e4d7c90", "host": "api.exemplo.com", "path_prefix": "/v1",
    "pool": "servidores_api", "ssl_enabled": true, "created_at": "2025-06-19T10:00:00Z"}))]
pub struct RouteView {
    /// Route id.
    pub id: String,
    /// Exact host or `*.` wildcard.
    pub host: String,
    /// Path prefix.
    pub path_prefix: String,
    /// Pool name.
    pub pool: String,
    /// HTTPS only.
    pub ssl_enabled: bool,
    /// Creation time.
    pub created_at: String,
}

/// `{"routes": [...]}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RouteList {
    /// The tenant's routes.
    pub routes: Vec<RouteView>,
}

/// Body of `POST /api/routes`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"host": "app.exemplo.com", "path_prefix": "/api", "pool": "servidores_api", "ssl_enabled": true}))]
pub struct CreateRoute {
    /// Exact host or `*.example.com`.
    pub host: String,
    /// Path prefix (default `/`).
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// Pool name.
    pub pool: String,
    /// HTTPS only (default false).
    #[serde(default)]
    pub ssl_enabled: Option<bool>,
}

/// Body of `PUT /api/routes/{id}`; absent fields stay.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"pool": "novos_servidores_api", "ssl_enabled": true}))]
pub struct UpdateRoute {
    /// New host.
    #[serde(default)]
    pub host: Option<String>,
    /// New path prefix.
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// New pool name.
    #[serde(default)]
    pub pool: Option<String>,
    /// HTTPS only.
    #[serde(default)]
    pub ssl_enabled: Option<bool>,
}

pub(crate) fn routes() -> OpenApiRouter<RoutingState> {
    OpenApiRouter::new()
        .routes(routes!(list_routes, create_route))
        .routes(routes!(get_route, update_route, delete_route))
}

async fn view(state: &RoutingState, route: Route) -> Result<RouteView, ApiError> {
    let pools = state.store.pools(route.tenant_id).await?;
    Ok(RouteView {
        id: route.id,
        host: route.host.as_str().into(),
        path_prefix: route.path_prefix.as_str().into(),
        pool: pools
            .into_iter()
            .find(|p| p.id == route.pool_id)
            .map(|p| p.name)
            .unwrap_or_default(),
        ssl_enabled: route.ssl_enabled,
        created_at: rfc3339(route.created_at),
    })
}

fn conflict(err: &StoreError, host: &RouteHost) -> Option<ApiError> {
    match err {
        StoreError::Conflict { constraint } if constraint == "route_hosts" => Some(
            ApiError::new(
                ErrorCode::Conflict,
                format!("host {} belongs to another tenant", host.as_str()),
            )
            .with_details(json!({"field": "host", "constraint": "owned_by_another_tenant"})),
        ),
        StoreError::Conflict { .. } => Some(
            ApiError::new(
                ErrorCode::Conflict,
                format!("a route for {} with this path prefix exists", host.as_str()),
            )
            .with_details(json!({"field": "path_prefix", "constraint": "unique"})),
        ),
        _ => None,
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(ErrorCode::NotFound, format!("route \"{id}\" not found"))
}

/// The tenant's routes.
#[utoipa::path(get, path = "/api/routes", tag = "routes", responses((status = 200, body = RouteList)), security(("bearer" = [])))]
async fn list_routes(State(state): State<RoutingState>, Auth(principal): Auth) -> Result<Json<RouteList>, ApiError> {
    principal.require(Permission::Read, principal.tenant_id)?;
    let mut routes = Vec::new();
    for route in state.store.routes(principal.tenant_id).await? {
        routes.push(view(&state, route).await?);
    }
    Ok(Json(RouteList { routes }))
}

/// Creates a route; the edge serves it at once.
#[utoipa::path(post, path = "/api/routes", tag = "routes", request_body = CreateRoute,
    responses((status = 201, body = RouteView), (status = 404, description = "POOL_NOT_FOUND", body = ErrorBody),
              (status = 409, description = "Host owned by another tenant, or duplicate route", body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn create_route(
    State(state): State<RoutingState>,
    Auth(principal): Auth,
    body: DeferredJson<CreateRoute>,
) -> Result<(StatusCode, Json<RouteView>), ApiError> {
    principal.require(Permission::WriteResources, principal.tenant_id)?;
    let body = body.parse()?;
    let host = RouteHost::parse(&body.host).map_err(|e| ApiError::invalid("host", &e))?;
    let path_prefix = PathPrefix::parse(body.path_prefix.as_deref().unwrap_or("/"))
        .map_err(|e| ApiError::invalid("path_prefix", &e))?;
    let pool = find_pool(&state, &principal, body.pool.trim()).await?;
    let spec = RouteSpec {
        host,
        path_prefix,
        pool_id: pool.id,
        ssl_enabled: body.ssl_enabled.unwrap_or(false),
    };
    let route = match state.store.create_route(principal.tenant_id, &spec).await {
        Err(err) => return Err(conflict(&err, &spec.host).unwrap_or_else(|| store_error(err))),
        Ok(route) => route,
    };
    state.apply().await?;
    Ok((StatusCode::CREATED, Json(view(&state, route).await?)))
}

/// One route.
#[utoipa::path(get, path = "/api/routes/{id}", tag = "routes", params(("id" = String, Path)),
    responses((status = 200, body = RouteView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn get_route(
    State(state): State<RoutingState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> Result<Json<RouteView>, ApiError> {
    principal.require(Permission::Read, principal.tenant_id)?;
    let route = match state.store.route(principal.tenant_id, &id).await {
        Err(StoreError::NotFound) => return Err(not_found(&id)),
        other => other.map_err(store_error)?,
    };
    Ok(Json(view(&state, route).await?))
}

/// Changes a route.
#[utoipa::path(put, path = "/api/routes/{id}", tag = "routes", params(("id" = String, Path)), request_body = UpdateRoute,
    responses((status = 200, body = RouteView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn update_route(
    State(state): State<RoutingState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
    body: DeferredJson<UpdateRoute>,
) -> Result<Json<RouteView>, ApiError> {
    principal.require(Permission::WriteResources, principal.tenant_id)?;
    let current = match state.store.route(principal.tenant_id, &id).await {
        Err(StoreError::NotFound) => return Err(not_found(&id)),
        other => other.map_err(store_error)?,
    };
    let body = body.parse()?;
    let spec = RouteSpec {
        host: match &body.host {
            Some(raw) => RouteHost::parse(raw).map_err(|e| ApiError::invalid("host", &e))?,
            None => current.host.clone(),
        },
        path_prefix: match &body.path_prefix {
            Some(raw) => PathPrefix::parse(raw).map_err(|e| ApiError::invalid("path_prefix", &e))?,
            None => current.path_prefix.clone(),
        },
        pool_id: match &body.pool {
            Some(name) => find_pool(&state, &principal, name.trim()).await?.id,
            None => current.pool_id.clone(),
        },
        ssl_enabled: body.ssl_enabled.unwrap_or(current.ssl_enabled),
    };
    let route = match state.store.update_route(principal.tenant_id, &id, &spec).await {
        Err(err) => return Err(conflict(&err, &spec.host).unwrap_or_else(|| store_error(err))),
        Ok(route) => route,
    };
    state.apply().await?;
    Ok(Json(view(&state, route).await?))
}

/// Deletes a route.
#[utoipa::path(delete, path = "/api/routes/{id}", tag = "routes", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn delete_route(
    State(state): State<RoutingState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(Permission::WriteResources, principal.tenant_id)?;
    match state.store.delete_route(principal.tenant_id, &id).await {
        Err(StoreError::NotFound) => return Err(not_found(&id)),
        other => other.map_err(store_error)?,
    }
    state.apply().await?;
    Ok(StatusCode::NO_CONTENT)
}
