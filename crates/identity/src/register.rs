//! `POST /auth/register` (also `/api/auth/register`).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use veloflux_api::{ApiError, ErrorCode, Json};
use veloflux_domain::{Email, Invalid, Password, Plan, Role, TenantId, TenantName};
use veloflux_store::{NewAuditEntry, NewTenant, NewUser, StoreError};

use crate::views::UserView;
use crate::{IdentityState, hash_password};

/// Tenant setting that lets anyone register into the tenant by naming it.
const SELF_SIGNUP_SETTING: &str = "allow_self_signup";

/// Body of a registration.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({
    "email": "novousuario@exemplo.com", "password": "senha_segura",
    "first_name": "Maria", "last_name": "Santos", "tenant_id": null
}))]
pub struct RegisterRequest {
    /// E-mail address; becomes the sign-in name.
    pub email: String,
    /// At least 8 characters and not a well-known password.
    pub password: String,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Join this tenant (it must allow self sign-up); without it a new tenant is created
    /// and the user owns it.
    #[serde(default)]
    pub tenant_id: Option<String>,
}

/// Answer of a registration.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegisterResponse {
    /// Always `true`.
    pub success: bool,
    /// The new account.
    pub user: UserView,
}

pub(crate) fn routes() -> OpenApiRouter<IdentityState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(register_api))
}

/// Creates an account, and a tenant it owns unless `tenant_id` names one to join.
#[utoipa::path(post, path = "/auth/register", tag = "auth", request_body = RegisterRequest,
    responses(
        (status = 201, body = RegisterResponse),
        (status = 403, description = "The tenant does not allow self sign-up", body = veloflux_api::ErrorBody),
        (status = 404, description = "TENANT_NOT_FOUND", body = veloflux_api::ErrorBody),
        (status = 409, description = "The e-mail is already registered", body = veloflux_api::ErrorBody),
        (status = 422, description = "A field is invalid", body = veloflux_api::ErrorBody)))]
async fn register(
    State(state): State<IdentityState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Json(body): Json<RegisterRequest>,
) -> Result<(StatusCode, Json<RegisterResponse>), ApiError> {
    register_account(&state, peer, body).await
}

/// Same as `POST /auth/register`.
#[utoipa::path(post, path = "/api/auth/register", tag = "auth", request_body = RegisterRequest,
    responses((status = 201, body = RegisterResponse)))]
async fn register_api(
    State(state): State<IdentityState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Json(body): Json<RegisterRequest>,
) -> Result<(StatusCode, Json<RegisterResponse>), ApiError> {
    register_account(&state, peer, body).await
}

async fn register_account(
    state: &IdentityState,
    peer: SocketAddr,
    body: RegisterRequest,
) -> Result<(StatusCode, Json<RegisterResponse>), ApiError> {
    let email = Email::parse(&body.email).map_err(|e| ApiError::invalid("email", &e))?;
    let password = Password::parse(&body.password).map_err(|e| ApiError::invalid("password", &e))?;
    let first_name = person_name(&body.first_name).map_err(|e| ApiError::invalid("first_name", &e))?;
    let last_name = person_name(&body.last_name).map_err(|e| ApiError::invalid("last_name", &e))?;
    let tenant_id = body
        .tenant_id
        .as_deref()
        .filter(|raw| !raw.trim().is_empty())
        .map(|raw| TenantId::parse(raw).map_err(|e| ApiError::invalid("tenant_id", &e)))
        .transpose()?;

    let store = state.store();
    if let Some(tenant_id) = tenant_id {
        let tenant = match store.tenant(tenant_id).await {
            Err(StoreError::NotFound) => {
                return Err(ApiError::new(ErrorCode::TenantNotFound, "tenant not found"));
            }
            other => other?,
        };
        if tenant.settings.get(SELF_SIGNUP_SETTING) != Some(&json!(true)) {
            return Err(ApiError::new(
                ErrorCode::InsufficientPermissions,
                "this tenant does not allow self sign-up; ask its administrator for an invitation",
            ));
        }
    }

    let password_hash = hash_password(password).await.map_err(ApiError::internal)?;
    let new_user = NewUser {
        email,
        first_name,
        last_name,
        password_hash: Some(password_hash),
        platform_role: None,
    };
    let created = match tenant_id {
        Some(tenant_id) => store
            .create_user_in_tenant(&new_user, tenant_id, Role::Member)
            .await
            .map(|user| (user, tenant_id, Role::Member)),
        None => {
            let name = format!("{} {}", new_user.first_name, new_user.last_name);
            let tenant = NewTenant {
                name: TenantName::parse(&name).map_err(|e| ApiError::invalid("first_name", &e))?,
                plan: Plan::Free,
                settings: json!({}),
            };
            store
                .create_user_with_tenant(&new_user, &tenant)
                .await
                .map(|(user, tenant)| (user, tenant.id, Role::Owner))
        }
    };
    let (user, tenant_id, role) = match created {
        Err(StoreError::Conflict { .. }) => {
            return Err(ApiError::new(ErrorCode::Conflict, "this e-mail is already registered")
                .with_details(json!({"field": "email", "constraint": "unique"})));
        }
        Err(StoreError::NotFound) => {
            return Err(ApiError::new(ErrorCode::TenantNotFound, "tenant not found"));
        }
        other => other?,
    };

    // The account exists; a failure to audit it is logged, not reported as a failed sign-up.
    if let Err(err) = store
        .record_audit(&NewAuditEntry {
            tenant_id: Some(tenant_id),
            actor_user_id: Some(user.id),
            action: "user.registered".into(),
            target: Some(user.id.to_string()),
            ip: Some(peer.ip().to_string()),
            details: json!({"role": role.as_str()}),
        })
        .await
    {
        tracing::error!(error = %err, user_id = %user.id, "could not record the registration in the audit log");
    }
    tracing::info!(user_id = %user.id, tenant_id = %tenant_id, "user registered");

    Ok((
        StatusCode::CREATED,
        Json(RegisterResponse {
            success: true,
            user: UserView::new(&user, tenant_id, role),
        }),
    ))
}

/// A given or family name: 1 to 100 characters after trimming, no control characters.
fn person_name(raw: &str) -> Result<String, Invalid> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(Invalid::new("required", "is required"));
    }
    if name.chars().count() > 100 {
        return Err(Invalid::new("max_length", "must be at most 100 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(Invalid::new("format", "must not contain control characters"));
    }
    Ok(name.to_owned())
}
