//! The shapes the seeds show for users and sign-in answers.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use veloflux_domain::{Role, TenantId};
use veloflux_store::User;

use crate::tokens::TokenPair;

/// A user as seen inside one tenant (the seed's `user` object and `GET /api/profile`).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "user_id": "0190e0c7-c5a4-7f3c-9d8f-2b6a1e4d7c90", "email": "usuario@exemplo.com",
    "tenant_id": "0190e0c7-c5a4-7f3c-9d8f-2b6a1e4d7c91", "role": "admin", "first_name": "João",
    "last_name": "Silva", "created_at": "2025-06-19T10:00:00Z", "last_login": "2025-06-19T15:30:00Z"
}))]
pub struct UserView {
    /// User id.
    pub user_id: String,
    /// E-mail address.
    pub email: String,
    /// The tenant this view is about.
    pub tenant_id: String,
    /// Role in that tenant: owner, admin, member or viewer.
    pub role: String,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Whether the user administers the whole platform.
    pub platform_admin: bool,
    /// Creation time (RFC 3339).
    pub created_at: String,
    /// Last successful sign-in (RFC 3339), if any.
    pub last_login: Option<String>,
}

impl UserView {
    /// The view of `user` in `tenant` with `role`.
    pub fn new(user: &User, tenant: TenantId, role: Role) -> UserView {
        UserView {
            user_id: user.id.to_string(),
            email: user.email.to_string(),
            tenant_id: tenant.to_string(),
            role: role.as_str().into(),
            first_name: user.first_name.clone(),
            last_name: user.last_name.clone(),
            platform_admin: user.platform_role.is_some(),
            created_at: rfc3339(user.created_at),
            last_login: user.last_login_at.map(rfc3339),
        }
    }
}

/// Answer of sign-in, refresh and magic-link verification (the seed's login response).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SessionResponse {
    /// Always `true`.
    pub success: bool,
    /// The access token (JWT), for `Authorization: Bearer`.
    pub token: String,
    /// The refresh token, for `POST /auth/refresh`; single use.
    pub refresh_token: String,
    /// The signed-in user in the token's tenant.
    pub user: UserView,
    /// Access token lifetime in seconds.
    pub expires_in: u64,
}

impl SessionResponse {
    /// Wraps a token pair and the user it was issued to.
    pub fn new(pair: TokenPair, user: UserView) -> SessionResponse {
        SessionResponse {
            success: true,
            token: pair.access_token,
            refresh_token: pair.refresh_token,
            user,
            expires_in: pair.expires_in,
        }
    }
}

/// `{"success": true}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Done {
    /// Always `true`.
    pub success: bool,
}

/// RFC 3339 with seconds, as the seeds write times.
pub fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}
