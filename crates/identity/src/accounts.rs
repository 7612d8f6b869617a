use veloflux_domain::{Email, Password, PlatformRole, Role};
use veloflux_store::{NewAuditEntry, NewUser, Store, StoreError, User};

use crate::hash_password;

/// Why an account could not be created.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The e-mail address is already registered.
    #[error("a user with e-mail {0} already exists")]
    EmailTaken(String),
    /// Hashing the password failed.
    #[error("hashing the password failed")]
    Hashing,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Creates a platform administrator who owns the `default` tenant, and records it in the
/// audit log. Used by `veloflux admin create` and the first-start bootstrap.
pub async fn create_platform_admin(store: &Store, email: Email, password: Password) -> Result<User, AccountError> {
    let default_tenant = store.ensure_default_tenant().await?;
    let password_hash = hash_password(password).await.map_err(|_| AccountError::Hashing)?;
    let new = NewUser {
        email: email.clone(),
        first_name: String::new(),
        last_name: String::new(),
        password_hash: Some(password_hash),
        platform_role: Some(PlatformRole::Admin),
    };
    let user = match store.create_user_in_tenant(&new, default_tenant, Role::Owner).await {
        Err(StoreError::Conflict { .. }) => {
            return Err(AccountError::EmailTaken(email.to_string()));
        }
        other => other?,
    };
    store
        .record_audit(&NewAuditEntry {
            tenant_id: Some(default_tenant),
            actor_user_id: None,
            action: "user.platform_admin_created".into(),
            target: Some(user.id.to_string()),
            ip: None,
            details: serde_json::json!({"email": user.email.as_str()}),
        })
        .await?;
    Ok(user)
}
