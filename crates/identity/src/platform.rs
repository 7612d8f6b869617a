//! Platform administration on the API listener: `/api/admin/users`, `/api/admin/stats`,
//! `/api/admin/logs`. Platform administrators only.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use veloflux_api::{ApiError, Auth, DeferredJson, ErrorBody, ErrorCode, Json, Pagination, Query};
use veloflux_domain::{Email, PlatformRole, Role, TenantId};
use veloflux_store::{AuditEntry, NewUser, PageRequest, StoreError, User};

use crate::IdentityState;
use crate::sessions::audit;
use crate::views::rfc3339;

/// A membership in an account view.
#[derive(Debug, Serialize, ToSchema)]
pub struct MembershipView {
    /// The tenant.
    pub tenant_id: String,
    /// The role there.
    pub role: String,
}

/// An account across tenants.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountView {
    /// User id.
    pub user_id: String,
    /// E-mail address.
    pub email: String,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Whether the user administers the platform.
    pub platform_admin: bool,
    /// Creation time.
    pub created_at: String,
    /// Last sign-in.
    pub last_login: Option<String>,
    /// Tenants and roles.
    pub tenants: Vec<MembershipView>,
}

/// `{"users": [...]}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountList {
    /// Accounts, oldest first.
    pub users: Vec<AccountView>,
    /// Cursor of the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Body of `POST /api/admin/users`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateAccount {
    /// E-mail address.
    pub email: String,
    /// Password; without it the user signs in by magic link.
    #[serde(default)]
    pub password: Option<String>,
    /// Given name.
    #[serde(default)]
    pub first_name: String,
    /// Family name.
    #[serde(default)]
    pub last_name: String,
    /// Make the account a platform administrator.
    #[serde(default)]
    pub platform_admin: bool,
    /// Tenant to join (the default tenant when omitted).
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Role in that tenant (default `member`).
    #[serde(default)]
    pub role: Option<String>,
}

/// Answer of `GET /api/admin/stats`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlatformStats {
    /// Tenants in all.
    pub tenants: i64,
    /// Active tenants.
    pub active_tenants: i64,
    /// Accounts in all.
    pub users: i64,
    /// Platform administrators.
    pub platform_admins: i64,
}

/// Query of `GET /api/admin/logs`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// Only this tenant's entries.
    pub tenant_id: Option<String>,
    /// Items per page, 1 to 500.
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// An audit log entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogEntry {
    /// Entry id.
    pub id: String,
    /// When.
    pub timestamp: String,
    /// Dotted verb, e.g. `auth.login_failed`.
    pub action: String,
    /// Tenant concerned.
    pub tenant_id: Option<String>,
    /// Who did it.
    pub actor_user_id: Option<String>,
    /// What it was done to.
    pub target: Option<String>,
    /// Client address.
    pub ip: Option<String>,
    /// Further facts.
    #[schema(value_type = Object)]
    pub details: Value,
}

/// `{"logs": [...]}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogList {
    /// Entries, oldest first.
    pub logs: Vec<LogEntry>,
    /// Cursor of the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

pub(crate) fn routes() -> OpenApiRouter<IdentityState> {
    OpenApiRouter::new()
        .routes(routes!(list_accounts, create_account))
        .routes(routes!(stats))
        .routes(routes!(logs))
}

async fn account_view(state: &IdentityState, user: &User) -> Result<AccountView, ApiError> {
    let tenants = state
        .store()
        .memberships(user.id)
        .await?
        .into_iter()
        .map(|m| MembershipView {
            tenant_id: m.tenant_id.to_string(),
            role: m.role.as_str().into(),
        })
        .collect();
    Ok(AccountView {
        user_id: user.id.to_string(),
        email: user.email.to_string(),
        first_name: user.first_name.clone(),
        last_name: user.last_name.clone(),
        platform_admin: user.platform_role.is_some(),
        created_at: rfc3339(user.created_at),
        last_login: user.last_login_at.map(rfc3339),
        tenants,
    })
}

/// Every account with its tenants.
#[utoipa::path(get, path = "/api/admin/users", tag = "admin-api", params(Pagination),
    responses((status = 200, body = AccountList), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
async fn list_accounts(
    State(state): State<IdentityState>,
    Auth(principal): Auth,
    Query(page): Query<Pagination>,
) -> Result<Json<AccountList>, ApiError> {
    principal.require_platform_admin()?;
    let page = state.store().list_users(&page.into_request()?).await?;
    let mut users = Vec::with_capacity(page.items.len());
    for user in &page.items {
        users.push(account_view(&state, user).await?);
    }
    Ok(Json(AccountList {
        users,
        next_cursor: page.next_cursor,
    }))
}

/// Creates an account in a tenant (the default one when none is named).
#[utoipa::path(post, path = "/api/admin/users", tag = "admin-api", request_body = CreateAccount,
    responses((status = 201, body = AccountView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn create_account(
    State(state): State<IdentityState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Auth(principal): Auth,
    body: DeferredJson<CreateAccount>,
) -> Result<(StatusCode, Json<AccountView>), ApiError> {
    principal.require_platform_admin()?;
    let body = body.parse()?;
    let email = Email::parse(&body.email).map_err(|e| ApiError::invalid("email", &e))?;
    let role = body
        .role
        .as_deref()
        .map(Role::parse)
        .transpose()
        .map_err(|e| ApiError::invalid("role", &e))?
        .unwrap_or(Role::Member);
    let tenant = match body.tenant_id.as_deref() {
        Some(raw) => TenantId::parse(raw).map_err(|e| ApiError::invalid("tenant_id", &e))?,
        None => state.store().ensure_default_tenant().await?,
    };
    let password_hash = crate::passwords::hash_requested_password(body.password.as_deref()).await?;
    let new = NewUser {
        email,
        first_name: body.first_name.trim().to_owned(),
        last_name: body.last_name.trim().to_owned(),
        password_hash,
        platform_role: body.platform_admin.then_some(PlatformRole::Admin),
    };
    let user = match state.store().create_user_in_tenant(&new, tenant, role).await {
        Err(StoreError::Conflict { .. }) => {
            return Err(ApiError::new(ErrorCode::Conflict, "this e-mail is already registered"));
        }
        Err(StoreError::NotFound) => {
            return Err(ApiError::new(ErrorCode::TenantNotFound, "tenant not found"));
        }
        other => other?,
    };
    audit(
        &state,
        Some(principal.user_id),
        Some(tenant),
        "user.created",
        &peer.ip().to_string(),
        json!({"user_id": user.id.to_string(), "platform_admin": body.platform_admin, "role": role.as_str()}),
    )
    .await;
    Ok((StatusCode::CREATED, Json(account_view(&state, &user).await?)))
}

/// Totals over the platform.
#[utoipa::path(get, path = "/api/admin/stats", tag = "admin-api",
    responses((status = 200, body = PlatformStats), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
async fn stats(State(state): State<IdentityState>, Auth(principal): Auth) -> Result<Json<PlatformStats>, ApiError> {
    principal.require_platform_admin()?;
    let counts = state.store().platform_counts().await?;
    Ok(Json(PlatformStats {
        tenants: counts.tenants,
        active_tenants: counts.active_tenants,
        users: counts.users,
        platform_admins: counts.platform_admins,
    }))
}

/// The audit log: sign-ins and failures, token reuse, role and membership changes,
/// configuration changes.
#[utoipa::path(get, path = "/api/admin/logs", tag = "admin-api", params(LogQuery),
    responses((status = 200, body = LogList), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
async fn logs(
    State(state): State<IdentityState>,
    Auth(principal): Auth,
    Query(query): Query<LogQuery>,
) -> Result<Json<LogList>, ApiError> {
    principal.require_platform_admin()?;
    let tenant = query
        .tenant_id
        .as_deref()
        .map(TenantId::parse)
        .transpose()
        .map_err(|e| ApiError::invalid("tenant_id", &e))?;
    let page: PageRequest = Pagination {
        limit: query.limit,
        cursor: query.cursor,
    }
    .into_request()?;
    let page = state.store().audit_log(tenant, &page).await?;
    Ok(Json(LogList {
        logs: page.items.into_iter().map(log_entry).collect(),
        next_cursor: page.next_cursor,
    }))
}

fn log_entry(entry: AuditEntry) -> LogEntry {
    LogEntry {
        id: entry.id,
        timestamp: rfc3339(entry.created_at),
        action: entry.action,
        tenant_id: entry.tenant_id.map(|t| t.to_string()),
        actor_user_id: entry.actor_user_id.map(|u| u.to_string()),
        target: entry.target,
        ip: entry.ip,
        details: entry.details,
    }
}
