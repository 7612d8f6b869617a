//! Per-tenant OIDC settings, pending logins and linked identities.

use chrono::{DateTime, Utc};
use sqlx::Row;
use veloflux_domain::{TenantId, UserId};

use crate::error::corrupt;
use crate::{Store, StoreError, time};

/// A tenant's OIDC provider; the client secret is sealed.
#[derive(Debug, Clone, PartialEq)]
pub struct OidcConfigRow {
    /// The tenant.
    pub tenant_id: TenantId,
    /// Issuer URL (discovery at `/.well-known/openid-configuration` below it).
    pub provider_url: String,
    /// OAuth client id.
    pub client_id: String,
    /// Sealed client secret.
    pub client_secret: String,
    /// Where the provider sends the browser back.
    pub redirect_uri: String,
    /// Requested scopes.
    pub scopes: Vec<String>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// A login started and not finished yet.
#[derive(Debug, Clone, PartialEq)]
pub struct OidcLoginRow {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The nonce the ID token must carry.
    pub nonce: String,
    /// PKCE verifier.
    pub code_verifier: String,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
}

impl Store {
    /// Creates or replaces a tenant's OIDC settings.
    pub async fn put_tenant_oidc(&self, config: &OidcConfigRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO tenant_oidc (tenant_id, provider_url, client_id, client_secret, redirect_uri, scopes, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant_id) DO UPDATE SET \
             provider_url = excluded.provider_url, client_id = excluded.client_id, client_secret = excluded.client_secret, \
             redirect_uri = excluded.redirect_uri, scopes = excluded.scopes, updated_at = excluded.updated_at",
        )
        .bind(config.tenant_id.to_string())
        .bind(config.provider_url.clone())
        .bind(config.client_id.clone())
        .bind(config.client_secret.clone())
        .bind(config.redirect_uri.clone())
        .bind(serde_json::to_string(&config.scopes).map_err(|e| StoreError::Corrupt(e.to_string()))?)
        .bind(time::encode(config.updated_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A tenant's OIDC settings, if configured.
    pub async fn tenant_oidc(&self, tenant: TenantId) -> Result<Option<OidcConfigRow>, StoreError> {
        let row = sqlx::query(
            "SELECT provider_url, client_id, client_secret, redirect_uri, scopes, updated_at FROM tenant_oidc WHERE tenant_id = $1",
        )
        .bind(tenant.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(OidcConfigRow {
                tenant_id: tenant,
                provider_url: row.try_get("provider_url")?,
                client_id: row.try_get("client_id")?,
                client_secret: row.try_get("client_secret")?,
                redirect_uri: row.try_get("redirect_uri")?,
                scopes: serde_json::from_str(&row.try_get::<String, _>("scopes")?).map_err(corrupt("oidc scopes"))?,
                updated_at: time::decode(&row.try_get::<String, _>("updated_at")?)?,
            })
        })
        .transpose()
    }

    /// Remembers a login in progress under its `state`.
    pub async fn insert_oidc_login(&self, state: &str, login: &OidcLoginRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO oidc_logins (state, tenant_id, nonce, code_verifier, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(state)
        .bind(login.tenant_id.to_string())
        .bind(login.nonce.clone())
        .bind(login.code_verifier.clone())
        .bind(time::encode(time::now()))
        .bind(time::encode(login.expires_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Takes (reads and deletes) the login of `state`: each state is usable once.
    pub async fn take_oidc_login(&self, state: &str) -> Result<Option<OidcLoginRow>, StoreError> {
        let row = sqlx::query(
            "DELETE FROM oidc_logins WHERE state = $1 RETURNING tenant_id, nonce, code_verifier, expires_at",
        )
        .bind(state)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(OidcLoginRow {
                tenant_id: TenantId::parse(&row.try_get::<String, _>("tenant_id")?).map_err(corrupt("oidc tenant"))?,
                nonce: row.try_get("nonce")?,
                code_verifier: row.try_get("code_verifier")?,
                expires_at: time::decode(&row.try_get::<String, _>("expires_at")?)?,
            })
        })
        .transpose()
    }

    /// The user linked to an external identity.
    pub async fn user_by_identity(&self, issuer: &str, subject: &str) -> Result<Option<UserId>, StoreError> {
        let user: Option<String> =
            sqlx::query_scalar("SELECT user_id FROM user_identities WHERE issuer = $1 AND subject = $2")
                .bind(issuer)
                .bind(subject)
                .fetch_optional(&self.pool)
                .await?;
        user.map(|raw| UserId::parse(&raw).map_err(corrupt("identity user")))
            .transpose()
    }

    /// Links an external identity to a user.
    pub async fn link_identity(
        &self,
        issuer: &str,
        subject: &str,
        user: UserId,
        tenant: TenantId,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO user_identities (issuer, subject, user_id, tenant_id, created_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (issuer, subject) DO NOTHING",
        )
        .bind(issuer)
        .bind(subject)
        .bind(user.to_string())
        .bind(tenant.to_string())
        .bind(time::encode(time::now()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
