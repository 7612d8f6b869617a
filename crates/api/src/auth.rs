//! Who is calling, and what they may do: the authenticated [`Principal`], the
//! [`Authenticator`] seam the identity crate fills, the [`Auth`] extractor, and the one
//! permission matrix every route checks against.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use veloflux_domain::{Plan, Role, TenantId, UserId};

use crate::error::{ApiError, ErrorCode};

/// An authenticated caller acting inside one tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// The user.
    pub user_id: UserId,
    /// The tenant the token was issued for.
    pub tenant_id: TenantId,
    /// The user's current role in that tenant.
    pub role: Role,
    /// The tenant's plan (sets API rate limits).
    pub plan: Plan,
    /// Platform administrators may act on every tenant.
    pub platform_admin: bool,
    /// The sign-in session (refresh-token family) the token belongs to.
    pub session_id: String,
}

/// What a role may do. Checked only through [`Principal::require`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Read the tenant, its users and resources.
    Read,
    /// Create, change and delete the tenant's resources (pools, backends, routes, sites...).
    WriteResources,
    /// Add, change and remove the tenant's users.
    ManageUsers,
    /// Change the tenant's name, settings, CORS and OIDC.
    ManageTenant,
    /// Read the tenant's audit log.
    ReadAudit,
    /// Change plan and subscriptions.
    ManageBilling,
    /// Delete the tenant.
    DeleteTenant,
}

impl Permission {
    /// Every permission, in the order of the matrix in the README.
    pub const ALL: [Permission; 7] = [
        Permission::Read,
        Permission::WriteResources,
        Permission::ManageUsers,
        Permission::ManageTenant,
        Permission::ReadAudit,
        Permission::ManageBilling,
        Permission::DeleteTenant,
    ];
}

/// The permission matrix: the one place that says which tenant role may do what.
pub fn role_allows(role: Role, permission: Permission) -> bool {
    use Permission::*;
    match role {
        Role::Owner => true,
        Role::Admin => matches!(
            permission,
            Read | WriteResources | ManageUsers | ManageTenant | ReadAudit
        ),
        Role::Member => matches!(permission, Read | WriteResources),
        Role::Viewer => matches!(permission, Read),
    }
}

impl Principal {
    /// Allows the action on `tenant` or explains why not: another tenant's resources are
    /// invisible (404 `TENANT_NOT_FOUND`), a role without the permission gets 403
    /// `INSUFFICIENT_PERMISSIONS`. Platform administrators may do everything everywhere.
    pub fn require(&self, permission: Permission, tenant: TenantId) -> Result<(), ApiError> {
        if self.platform_admin {
            return Ok(());
        }
        if tenant != self.tenant_id {
            return Err(ApiError::new(ErrorCode::TenantNotFound, "tenant not found"));
        }
        if role_allows(self.role, permission) {
            Ok(())
        } else {
            Err(ApiError::new(
                ErrorCode::InsufficientPermissions,
                format!("the {} role may not do this", self.role.as_str()),
            ))
        }
    }

    /// Allows platform administrators only.
    pub fn require_platform_admin(&self) -> Result<(), ApiError> {
        if self.platform_admin {
            Ok(())
        } else {
            Err(ApiError::new(
                ErrorCode::InsufficientPermissions,
                "platform administrators only",
            ))
        }
    }
}

/// Turns a bearer token into a principal. The identity crate implements it; the binary
/// installs it with [`AuthenticatorHandle`] so every route can authenticate.
pub trait Authenticator: Send + Sync + 'static {
    /// Verifies an access token. Failures are `TOKEN_EXPIRED` or `INVALID_TOKEN` (401).
    fn authenticate<'a>(
        &'a self,
        token: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<Principal, ApiError>> + Send + 'a>>;
}

/// The installed authenticator, as a request extension.
#[derive(Clone)]
pub struct AuthenticatorHandle(pub Arc<dyn Authenticator>);

impl std::fmt::Debug for AuthenticatorHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthenticatorHandle")
    }
}

/// The bearer token of a request, if it has one.
pub fn bearer_token(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Authenticates a request once: a principal found by an earlier layer is reused.
pub async fn authenticate(parts: &mut Parts) -> Result<Principal, ApiError> {
    if let Some(principal) = parts.extensions.get::<Principal>() {
        return Ok(principal.clone());
    }
    let token = bearer_token(parts)
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidToken, "missing bearer token"))?
        .to_owned();
    let handle = parts
        .extensions
        .get::<AuthenticatorHandle>()
        .cloned()
        .ok_or_else(|| ApiError::new(ErrorCode::InternalError, "internal server error"))?;
    let principal = handle.0.authenticate(&token).await?;
    parts.extensions.insert(principal.clone());
    Ok(principal)
}

/// Extractor for routes that need a signed-in caller.
#[derive(Debug, Clone)]
pub struct Auth(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        authenticate(parts).await.map(Auth)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(role: Role) -> Principal {
        Principal {
            user_id: UserId::new(),
            tenant_id: TenantId::new(),
            role,
            plan: Plan::Free,
            platform_admin: false,
            session_id: "s".into(),
        }
    }

    #[test]
    fn the_matrix_grows_with_the_role() {
        let allowed = |role| Permission::ALL.iter().filter(|p| role_allows(role, **p)).count();
        assert_eq!(allowed(Role::Viewer), 1);
        assert_eq!(allowed(Role::Member), 2);
        assert_eq!(allowed(Role::Admin), 5);
        assert_eq!(allowed(Role::Owner), 7);
        for permission in Permission::ALL {
            for (weaker, stronger) in [
                (Role::Viewer, Role::Member),
                (Role::Member, Role::Admin),
                (Role::Admin, Role::Owner),
            ] {
                assert!(!role_allows(weaker, permission) || role_allows(stronger, permission));
            }
        }
    }

    #[test]
    fn other_tenants_are_invisible_and_roles_are_enforced() {
        let viewer = principal(Role::Viewer);
        assert!(viewer.require(Permission::Read, viewer.tenant_id).is_ok());
        let err = viewer
            .require(Permission::WriteResources, viewer.tenant_id)
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::InsufficientPermissions);
        let err = viewer.require(Permission::Read, TenantId::new()).unwrap_err();
        assert_eq!(err.code(), ErrorCode::TenantNotFound);
        let admin = Principal {
            platform_admin: true,
            ..principal(Role::Viewer)
        };
        assert!(admin.require(Permission::DeleteTenant, TenantId::new()).is_ok());
    }
}
