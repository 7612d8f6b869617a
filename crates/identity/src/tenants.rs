//! `/api/tenants`: tenants with their plan, status, members count and usage.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use chrono::{Datelike, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use veloflux_api::{
    ApiError, Auth, DeferredJson, ErrorBody, ErrorCode, Json, Pagination, Path, Permission, Principal, Query,
};
use veloflux_domain::{Email, Invalid, Plan, Role, TenantId, TenantName, TenantStatus};
use veloflux_store::{NewTenant, NewUser, StoreError, Tenant, TenantUpdate};

use crate::IdentityState;
use crate::sessions::audit;
use crate::views::rfc3339;

/// Traffic of the current calendar month, from the edge's meters.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TenantUsage {
    /// Requests served this month.
    pub requests_per_month: i64,
    /// Bytes in and out this month, in GB (10^9 bytes).
    pub bandwidth_gb: f64,
}

/// A tenant as the seed shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TenantView {
    /// Tenant id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// `active` or `suspended`.
    pub status: String,
    /// `free`, `professional` or `enterprise`.
    pub plan: String,
    /// Creation time.
    pub created_at: String,
    /// Members.
    pub user_count: i64,
    /// This month's usage.
    pub usage: TenantUsage,
    /// Limits and preferences: `max_users`, `max_requests_per_month`, `allow_self_signup`,
    /// `allowed_origins` and any other keys the operator keeps there.
    #[schema(value_type = Object)]
    pub settings: Value,
}

/// `{"tenants": [...]}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantList {
    /// The tenants.
    pub tenants: Vec<TenantView>,
    /// Cursor of the next page, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Body of `POST /api/tenants`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"name": "Nova Empresa", "plan": "professional", "admin_email": "admin@novaempresa.com",
    "settings": {"max_users": 50, "max_requests_per_month": 500000}}))]
pub struct CreateTenant {
    /// Display name.
    pub name: String,
    /// Plan (default `free`).
    #[serde(default)]
    pub plan: Option<String>,
    /// Owner of the new tenant; an account is created for a new address (it signs in by
    /// magic link or after an administrator sets a password).
    #[serde(default)]
    pub admin_email: Option<String>,
    /// Initial settings.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub settings: Option<Map<String, Value>>,
}

/// Body of `PUT /api/tenants/{tenant_id}`; absent fields are left as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"name": "Nome da Empresa Atualizado", "plan": "enterprise", "settings": {"max_users": 100}}))]
pub struct UpdateTenant {
    /// New display name (owner or admin).
    #[serde(default)]
    pub name: Option<String>,
    /// New plan (owner or platform administrator).
    #[serde(default)]
    pub plan: Option<String>,
    /// New status (platform administrators).
    #[serde(default)]
    pub status: Option<String>,
    /// Settings to merge; a `null` value removes a key (owner or admin).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub settings: Option<Map<String, Value>>,
}

pub(crate) fn routes() -> OpenApiRouter<IdentityState> {
    OpenApiRouter::new()
        .routes(routes!(list_tenants, create_tenant))
        .routes(routes!(get_tenant, update_tenant, delete_tenant))
}

pub(crate) async fn tenant_view(state: &IdentityState, tenant: Tenant) -> Result<TenantView, ApiError> {
    let now = Utc::now();
    let month_start = Utc
        .with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0)
        .single()
        .unwrap_or(now);
    let usage = state.store().tenant_usage(tenant.id, month_start).await?;
    #[allow(clippy::cast_precision_loss, reason = "byte counts far below 2^53")]
    let bandwidth_gb = (usage.bytes_in + usage.bytes_out) as f64 / 1e9;
    Ok(TenantView {
        id: tenant.id.to_string(),
        name: tenant.name,
        status: tenant.status.as_str().into(),
        plan: tenant.plan.as_str().into(),
        created_at: rfc3339(tenant.created_at),
        user_count: tenant.user_count,
        usage: TenantUsage {
            requests_per_month: usage.requests,
            bandwidth_gb,
        },
        settings: tenant.settings,
    })
}

pub(crate) fn parse_tenant_id(raw: &str) -> Result<TenantId, ApiError> {
    TenantId::parse(raw).map_err(|_| ApiError::new(ErrorCode::TenantNotFound, "tenant not found"))
}

/// Reads a tenant the caller may see with `permission`.
pub(crate) async fn visible_tenant(
    state: &IdentityState,
    principal: &Principal,
    raw: &str,
    permission: Permission,
) -> Result<Tenant, ApiError> {
    let id = parse_tenant_id(raw)?;
    principal.require(permission, id)?;
    match state.store().tenant(id).await {
        Err(StoreError::NotFound) => Err(ApiError::new(ErrorCode::TenantNotFound, "tenant not found")),
        other => Ok(other?),
    }
}

/// Lists tenants: every tenant for platform administrators, otherwise the caller's own.
#[utoipa::path(get, path = "/api/tenants", tag = "tenants", params(Pagination),
    responses((status = 200, body = TenantList), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
async fn list_tenants(
    State(state): State<IdentityState>,
    Auth(principal): Auth,
    Query(page): Query<Pagination>,
) -> Result<Json<TenantList>, ApiError> {
    let page = page.into_request()?;
    let (tenants, next_cursor) = if principal.platform_admin {
        let page = state.store().list_tenants(&page).await?;
        (page.items, page.next_cursor)
    } else {
        let ids: Vec<TenantId> = state
            .store()
            .memberships(principal.user_id)
            .await?
            .into_iter()
            .map(|m| m.tenant_id)
            .collect();
        (state.store().tenants_by_ids(&ids).await?, None)
    };
    let mut views = Vec::with_capacity(tenants.len());
    for tenant in tenants {
        views.push(tenant_view(&state, tenant).await?);
    }
    Ok(Json(TenantList {
        tenants: views,
        next_cursor,
    }))
}

/// Creates a tenant (platform administrators). With `admin_email`, that user owns it.
#[utoipa::path(post, path = "/api/tenants", tag = "tenants", request_body = CreateTenant,
    responses((status = 201, body = TenantView), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn create_tenant(
    State(state): State<IdentityState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Auth(principal): Auth,
    body: DeferredJson<CreateTenant>,
) -> Result<(StatusCode, Json<TenantView>), ApiError> {
    principal.require_platform_admin()?;
    let body = body.parse()?;
    let name = TenantName::parse(&body.name).map_err(|e| ApiError::invalid("name", &e))?;
    let plan = body
        .plan
        .as_deref()
        .map(Plan::parse)
        .transpose()
        .map_err(|e| ApiError::invalid("plan", &e))?
        .unwrap_or(Plan::Free);
    let settings = match &body.settings {
        Some(settings) => validate_settings(settings)?,
        None => Map::new(),
    };
    let owner = body
        .admin_email
        .as_deref()
        .map(Email::parse)
        .transpose()
        .map_err(|e| ApiError::invalid("admin_email", &e))?;
    let store = state.store();
    let tenant = store
        .create_tenant(&NewTenant {
            name,
            plan,
            settings: Value::Object(settings),
        })
        .await?;
    if let Some(email) = owner {
        let user = match store.user_by_email(&email).await {
            Ok(user) => user,
            Err(StoreError::NotFound) => {
                store
                    .create_user(&NewUser {
                        email,
                        first_name: String::new(),
                        last_name: String::new(),
                        password_hash: None,
                        platform_role: None,
                    })
                    .await?
            }
            Err(err) => return Err(err.into()),
        };
        store.add_membership(tenant.id, user.id, Role::Owner).await?;
    }
    audit(
        &state,
        Some(principal.user_id),
        Some(tenant.id),
        "tenant.created",
        &peer.ip().to_string(),
        json!({"plan": plan.as_str()}),
    )
    .await;
    let tenant = store.tenant(tenant.id).await?;
    Ok((StatusCode::CREATED, Json(tenant_view(&state, tenant).await?)))
}

/// One tenant.
#[utoipa::path(get, path = "/api/tenants/{tenant_id}", tag = "tenants", params(("tenant_id" = String, Path)),
    responses((status = 200, body = TenantView), (status = 404, description = "TENANT_NOT_FOUND", body = ErrorBody)),
    security(("bearer" = [])))]
async fn get_tenant(
    State(state): State<IdentityState>,
    Auth(principal): Auth,
    Path(tenant_id): Path<String>,
) -> Result<Json<TenantView>, ApiError> {
    let tenant = visible_tenant(&state, &principal, &tenant_id, Permission::Read).await?;
    Ok(Json(tenant_view(&state, tenant).await?))
}

/// Changes name, settings (owner, admin), plan (owner) or status (platform administrators).
#[utoipa::path(put, path = "/api/tenants/{tenant_id}", tag = "tenants", params(("tenant_id" = String, Path)), request_body = UpdateTenant,
    responses((status = 200, body = TenantView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn update_tenant(
    State(state): State<IdentityState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Auth(principal): Auth,
    Path(tenant_id): Path<String>,
    body: DeferredJson<UpdateTenant>,
) -> Result<Json<TenantView>, ApiError> {
    let tenant = visible_tenant(&state, &principal, &tenant_id, Permission::ManageTenant).await?;
    let body = body.parse()?;
    let mut update = TenantUpdate::default();
    let mut changed = Vec::new();
    if let Some(name) = &body.name {
        update.name = Some(TenantName::parse(name).map_err(|e| ApiError::invalid("name", &e))?);
        changed.push("name");
    }
    if let Some(settings) = &body.settings {
        update.settings = Some(validate_settings(settings)?);
        changed.push("settings");
    }
    if let Some(plan) = &body.plan {
        principal.require(Permission::ManageBilling, tenant.id)?;
        update.plan = Some(Plan::parse(plan).map_err(|e| ApiError::invalid("plan", &e))?);
        changed.push("plan");
    }
    if let Some(status) = &body.status {
        principal.require_platform_admin()?;
        update.status = Some(TenantStatus::parse(status).map_err(|e| ApiError::invalid("status", &e))?);
        changed.push("status");
    }
    let updated = state.store().update_tenant(tenant.id, &update).await?;
    audit(
        &state,
        Some(principal.user_id),
        Some(tenant.id),
        "tenant.updated",
        &peer.ip().to_string(),
        json!({"changed": changed}),
    )
    .await;
    Ok(Json(tenant_view(&state, updated).await?))
}

/// Deletes a tenant and its memberships (owner or platform administrators). The default
/// tenant cannot be deleted.
#[utoipa::path(delete, path = "/api/tenants/{tenant_id}", tag = "tenants", params(("tenant_id" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
async fn delete_tenant(
    State(state): State<IdentityState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Auth(principal): Auth,
    Path(tenant_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let tenant = visible_tenant(&state, &principal, &tenant_id, Permission::DeleteTenant).await?;
    if state.store().default_tenant().await? == Some(tenant.id) {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "the default tenant cannot be deleted",
        ));
    }
    state.store().delete_tenant(tenant.id).await?;
    audit(
        &state,
        Some(principal.user_id),
        Some(tenant.id),
        "tenant.deleted",
        &peer.ip().to_string(),
        json!({"name": tenant.name}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Checks the settings VeloFlux reads; other keys are kept as given. `null` removes a key.
pub(crate) fn validate_settings(settings: &Map<String, Value>) -> Result<Map<String, Value>, ApiError> {
    let field = |key: &str| format!("settings.{key}");
    for (key, value) in settings {
        if value.is_null() {
            continue;
        }
        let ok = match key.as_str() {
            "max_users" => value.as_u64().is_some_and(|n| n >= 1),
            "max_requests_per_month" => value.as_u64().is_some(),
            "allow_self_signup" => value.is_boolean(),
            "allowed_origins" => value
                .as_array()
                .is_some_and(|origins| origins.iter().all(|o| o.as_str().is_some_and(is_origin))),
            _ => true,
        };
        if !ok {
            let expected = match key.as_str() {
                "max_users" => "a whole number of at least 1",
                "max_requests_per_month" => "a whole number",
                "allow_self_signup" => "true or false",
                _ => "a list of origins such as https://app.example.com",
            };
            return Err(ApiError::invalid(
                &field(key),
                &Invalid::new("type", format!("must be {expected}")),
            ));
        }
    }
    Ok(settings.clone())
}

/// `scheme://host[:port]` with no path: what browsers send in `Origin`.
pub(crate) fn is_origin(text: &str) -> bool {
    let Ok(url) = url::Url::parse(text) else {
        return false;
    };
    matches!(url.scheme(), "http" | "https")
        && url.host_str().is_some()
        && url.path() == "/"
        && !text.ends_with('/')
        && url.query().is_none()
}
