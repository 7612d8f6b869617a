//! `/api/tenants/{tenant_id}/users`: a tenant's users and their roles.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use veloflux_api::{
    ApiError, Auth, DeferredJson, ErrorBody, ErrorCode, Json, Pagination, Path, Permission, Principal, Query,
};
use veloflux_domain::{Email, Invalid, Role, UserId};
use veloflux_store::{NewUser, StoreError, Tenant, UserUpdate};

use crate::IdentityState;
use crate::sessions::audit;
use crate::tenants::visible_tenant;
use crate::views::UserView;

/// `{"users": [...]}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    /// The users with their role in the tenant.
    pub users: Vec<UserView>,
    /// Cursor of the next page, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Body of `POST /api/tenants/{tenant_id}/users`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"email": "novousuario@empresa.com", "first_name": "João", "last_name": "Silva", "role": "viewer", "password": "senha_segura"}))]
pub struct AddUser {
    /// E-mail address; an existing account joins, otherwise one is created.
    pub email: String,
    /// Given name (for a new account).
    #[serde(default)]
    pub first_name: String,
    /// Family name (for a new account).
    #[serde(default)]
    pub last_name: String,
    /// Role in the tenant: owner, admin, member or viewer.
    pub role: String,
    /// Password of a new account; without it the user signs in by magic link.
    #[serde(default)]
    pub password: Option<String>,
}

/// Body of `PUT /api/tenants/{tenant_id}/users/{user_id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"role": "admin", "first_name": "Nome Atualizado"}))]
pub struct UpdateUser {
    /// New role.
    #[serde(default)]
    pub role: Option<String>,
    /// New given name.
    #[serde(default)]
    pub first_name: Option<String>,
    /// New family name.
    #[serde(default)]
    pub last_name: Option<String>,
}

pub(crate) fn routes() -> OpenApiRouter<IdentityState> {
    OpenApiRouter::new()
        .routes(routes!(list_users, add_user))
        .routes(routes!(get_user, update_user, remove_user))
}

/// Only owners (and platform administrators) may hand out, take away or act on ownership.
fn check_owner_rules(principal: &Principal, role: Role) -> Result<(), ApiError> {
    if role == Role::Owner && !principal.platform_admin && principal.role != Role::Owner {
        return Err(ApiError::new(
            ErrorCode::InsufficientPermissions,
            "only an owner may grant, change or remove the owner role",
        ));
    }
    Ok(())
}

async fn member(
    state: &IdentityState,
    tenant: &Tenant,
    raw_user: &str,
) -> Result<(veloflux_store::User, Role), ApiError> {
    let not_found = || ApiError::new(ErrorCode::UserNotFound, "user not found in this tenant");
    let user_id = UserId::parse(raw_user).map_err(|_| not_found())?;
    let role = state.store().role_in(tenant.id, user_id).await?.ok_or_else(not_found)?;
    Ok((state.store().user(user_id).await?, role))
}

async fn refuse_last_owner(state: &IdentityState, tenant: &Tenant, current: Role) -> Result<(), ApiError> {
    if current == Role::Owner && state.store().count_role(tenant.id, Role::Owner).await? <= 1 {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "a tenant must keep at least one owner",
        ));
    }
    Ok(())
}

/// The tenant's users with their roles.
#[utoipa::path(get, path = "/api/tenants/{tenant_id}/users", tag = "tenants", params(("tenant_id" = String, Path), Pagination),
    responses((status = 200, body = UserList), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn list_users(
    State(state): State<IdentityState>,
    Auth(principal): Auth,
    Path(tenant_id): Path<String>,
    Query(page): Query<Pagination>,
) -> Result<Json<UserList>, ApiError> {
    let tenant = visible_tenant(&state, &principal, &tenant_id, Permission::Read).await?;
    let page = state.store().tenant_users(tenant.id, &page.into_request()?).await?;
    let users = page
        .items
        .iter()
        .map(|(user, role)| UserView::new(user, tenant.id, *role))
        .collect();
    Ok(Json(UserList {
        users,
        next_cursor: page.next_cursor,
    }))
}

/// Adds a user to the tenant (owner, admin). An existing account joins; a new address gets
/// an account.
#[utoipa::path(post, path = "/api/tenants/{tenant_id}/users", tag = "tenants", params(("tenant_id" = String, Path)), request_body = AddUser,
    responses((status = 201, body = UserView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn add_user(
    State(state): State<IdentityState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Auth(principal): Auth,
    Path(tenant_id): Path<String>,
    body: DeferredJson<AddUser>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    let tenant = visible_tenant(&state, &principal, &tenant_id, Permission::ManageUsers).await?;
    let body = body.parse()?;
    let email = Email::parse(&body.email).map_err(|e| ApiError::invalid("email", &e))?;
    let role = Role::parse(&body.role).map_err(|e| ApiError::invalid("role", &e))?;
    check_owner_rules(&principal, role)?;
    if let Some(max) = tenant.settings.get("max_users").and_then(serde_json::Value::as_i64)
        && tenant.user_count >= max
    {
        return Err(ApiError::invalid(
            "email",
            &Invalid::new("max_users", format!("this tenant is limited to {max} users")),
        ));
    }
    let store = state.store();
    let user = match store.user_by_email(&email).await {
        Ok(user) => {
            match store.add_membership(tenant.id, user.id, role).await {
                Err(StoreError::Conflict { .. }) => {
                    return Err(ApiError::new(
                        ErrorCode::Conflict,
                        "this user is already a member of the tenant",
                    ));
                }
                other => other?,
            }
            user
        }
        Err(StoreError::NotFound) => {
            let password_hash = crate::passwords::hash_requested_password(body.password.as_deref()).await?;
            let new = NewUser {
                email,
                first_name: body.first_name.trim().to_owned(),
                last_name: body.last_name.trim().to_owned(),
                password_hash,
                platform_role: None,
            };
            store.create_user_in_tenant(&new, tenant.id, role).await?
        }
        Err(err) => return Err(err.into()),
    };
    audit(
        &state,
        Some(principal.user_id),
        Some(tenant.id),
        "user.added",
        &peer.ip().to_string(),
        json!({"user_id": user.id.to_string(), "role": role.as_str()}),
    )
    .await;
    Ok((StatusCode::CREATED, Json(UserView::new(&user, tenant.id, role))))
}

/// One user of the tenant.
#[utoipa::path(get, path = "/api/tenants/{tenant_id}/users/{user_id}", tag = "tenants",
    params(("tenant_id" = String, Path), ("user_id" = String, Path)),
    responses((status = 200, body = UserView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn get_user(
    State(state): State<IdentityState>,
    Auth(principal): Auth,
    Path((tenant_id, user_id)): Path<(String, String)>,
) -> Result<Json<UserView>, ApiError> {
    let tenant = visible_tenant(&state, &principal, &tenant_id, Permission::Read).await?;
    let (user, role) = member(&state, &tenant, &user_id).await?;
    Ok(Json(UserView::new(&user, tenant.id, role)))
}

/// Changes a user's role or names (owner, admin).
#[utoipa::path(put, path = "/api/tenants/{tenant_id}/users/{user_id}", tag = "tenants",
    params(("tenant_id" = String, Path), ("user_id" = String, Path)), request_body = UpdateUser,
    responses((status = 200, body = UserView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
async fn update_user(
    State(state): State<IdentityState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Auth(principal): Auth,
    Path((tenant_id, user_id)): Path<(String, String)>,
    body: DeferredJson<UpdateUser>,
) -> Result<Json<UserView>, ApiError> {
    let tenant = visible_tenant(&state, &principal, &tenant_id, Permission::ManageUsers).await?;
    let body = body.parse()?;
    let (mut user, mut role) = member(&state, &tenant, &user_id).await?;
    if let Some(raw) = &body.role {
        let new_role = Role::parse(raw).map_err(|e| ApiError::invalid("role", &e))?;
        if new_role != role {
            check_owner_rules(&principal, role)?;
            check_owner_rules(&principal, new_role)?;
            refuse_last_owner(&state, &tenant, role).await?;
            state.store().set_role(tenant.id, user.id, new_role).await?;
            audit(
                &state,
                Some(principal.user_id),
                Some(tenant.id),
                "user.role_changed",
                &peer.ip().to_string(),
                json!({"user_id": user.id.to_string(), "from": role.as_str(), "to": new_role.as_str()}),
            )
            .await;
            role = new_role;
        }
    }
    let names = |raw: &Option<String>, field: &str| -> Result<Option<String>, ApiError> {
        raw.as_deref()
            .map(|n| {
                let n = n.trim();
                if n.chars().count() > 100 || n.chars().any(char::is_control) {
                    Err(ApiError::invalid(
                        field,
                        &Invalid::new("format", "must be at most 100 printable characters"),
                    ))
                } else {
                    Ok(n.to_owned())
                }
            })
            .transpose()
    };
    let update = UserUpdate {
        first_name: names(&body.first_name, "first_name")?,
        last_name: names(&body.last_name, "last_name")?,
    };
    if update.first_name.is_some() || update.last_name.is_some() {
        user = state.store().update_user(user.id, &update).await?;
    }
    Ok(Json(UserView::new(&user, tenant.id, role)))
}

/// Removes a user from the tenant (owner, admin); the account itself remains.
#[utoipa::path(delete, path = "/api/tenants/{tenant_id}/users/{user_id}", tag = "tenants",
    params(("tenant_id" = String, Path), ("user_id" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
async fn remove_user(
    State(state): State<IdentityState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Auth(principal): Auth,
    Path((tenant_id, user_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let tenant = visible_tenant(&state, &principal, &tenant_id, Permission::ManageUsers).await?;
    let (user, role) = member(&state, &tenant, &user_id).await?;
    check_owner_rules(&principal, role)?;
    refuse_last_owner(&state, &tenant, role).await?;
    state.store().remove_membership(tenant.id, user.id).await?;
    audit(
        &state,
        Some(principal.user_id),
        Some(tenant.id),
        "user.removed",
        &peer.ip().to_string(),
        json!({"user_id": user.id.to_string(), "role": role.as_str()}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}
