//! Rows behind authentication: signing keys, refresh tokens, magic links, sign-in throttling.

use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::any::AnyRow;
use veloflux_domain::{TenantId, UserId};

use crate::error::corrupt;
use crate::{Store, StoreError, time};

/// A JWT signing key; the private half is sealed.
#[derive(Debug, Clone, PartialEq)]
pub struct SigningKeyRow {
    /// Key id (the JWT `kid`).
    pub kid: String,
    /// JWS algorithm, e.g. `EdDSA`.
    pub algorithm: String,
    /// The sealed private key.
    pub private_key: String,
    /// The public key, base64url.
    pub public_key: String,
    /// Creation time; the newest unretired key signs.
    pub created_at: DateTime<Utc>,
    /// When it stopped signing; it keeps verifying for a while after.
    pub retired_at: Option<DateTime<Utc>>,
}

/// A refresh token to store (by digest).
#[derive(Debug, Clone)]
pub struct NewRefreshToken {
    /// SHA-256 of the token.
    pub token_hash: String,
    /// The rotation family; every token issued from one sign-in shares it.
    pub family_id: String,
    /// Owner.
    pub user_id: UserId,
    /// Tenant the token signs into.
    pub tenant_id: TenantId,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
}

/// A stored refresh token.
#[derive(Debug, Clone, PartialEq)]
pub struct RefreshTokenRow {
    /// The rotation family.
    pub family_id: String,
    /// Owner.
    pub user_id: UserId,
    /// Tenant.
    pub tenant_id: TenantId,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
}

/// What presenting a refresh token found.
#[derive(Debug, Clone, PartialEq)]
pub enum RefreshUse {
    /// First use of a live token: it is now spent.
    Fresh(RefreshTokenRow),
    /// The token was already used or revoked: a replay. The caller revokes the family.
    Reused(RefreshTokenRow),
    /// The token expired.
    Expired,
    /// No such token.
    Unknown,
}

/// Failed sign-ins counted against one key (an e-mail or an IP address).
#[derive(Debug, Clone, PartialEq)]
pub struct Throttle {
    /// Consecutive failures.
    pub failures: i64,
    /// Locked until this time, if locked.
    pub locked_until: Option<DateTime<Utc>>,
}

impl Store {
    /// Stores a new signing key.
    pub async fn insert_signing_key(&self, key: &SigningKeyRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO signing_keys (kid, algorithm, private_key, public_key, created_at, retired_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(key.kid.clone())
        .bind(key.algorithm.clone())
        .bind(key.private_key.clone())
        .bind(key.public_key.clone())
        .bind(time::encode(key.created_at))
        .bind(key.retired_at.map(time::encode))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Keys still valid for verification: unretired, or retired after `retired_after`.
    /// Newest first.
    pub async fn signing_keys(&self, retired_after: DateTime<Utc>) -> Result<Vec<SigningKeyRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT kid, algorithm, private_key, public_key, created_at, retired_at FROM signing_keys \
             WHERE retired_at IS NULL OR retired_at > $1 ORDER BY created_at DESC, kid DESC",
        )
        .bind(time::encode(retired_after))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(SigningKeyRow {
                    kid: row.try_get("kid")?,
                    algorithm: row.try_get("algorithm")?,
                    private_key: row.try_get("private_key")?,
                    public_key: row.try_get("public_key")?,
                    created_at: time::decode(&row.try_get::<String, _>("created_at")?)?,
                    retired_at: time::decode_opt(row.try_get("retired_at")?)?,
                })
            })
            .collect()
    }

    /// Retires every key but `kid` that is not retired yet.
    pub async fn retire_signing_keys_except(&self, kid: &str) -> Result<u64, StoreError> {
        let done = sqlx::query("UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL AND kid <> $2")
            .bind(time::encode(time::now()))
            .bind(kid)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Stores a refresh token (its digest).
    pub async fn insert_refresh_token(&self, token: &NewRefreshToken) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO refresh_tokens (id, token_hash, family_id, user_id, tenant_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(token.token_hash.clone())
        .bind(token.family_id.clone())
        .bind(token.user_id.to_string())
        .bind(token.tenant_id.to_string())
        .bind(time::encode(time::now()))
        .bind(time::encode(token.expires_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Spends a refresh token: atomically marks a live token used, so two concurrent uses
    /// cannot both succeed, and reports replays of spent or revoked tokens.
    pub async fn use_refresh_token(&self, token_hash: &str) -> Result<RefreshUse, StoreError> {
        let now = time::encode(time::now());
        let spent = sqlx::query(
            "UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL \
             AND revoked_at IS NULL AND expires_at > $3 RETURNING family_id, user_id, tenant_id, expires_at",
        )
        .bind(now.clone())
        .bind(token_hash)
        .bind(now.clone())
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = spent {
            return Ok(RefreshUse::Fresh(refresh_from_row(&row)?));
        }
        let existing = sqlx::query(
            "SELECT family_id, user_id, tenant_id, expires_at, used_at, revoked_at FROM refresh_tokens WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = existing else {
            return Ok(RefreshUse::Unknown);
        };
        let replayed = row.try_get::<Option<String>, _>("used_at")?.is_some()
            || row.try_get::<Option<String>, _>("revoked_at")?.is_some();
        if replayed {
            Ok(RefreshUse::Reused(refresh_from_row(&row)?))
        } else {
            Ok(RefreshUse::Expired)
        }
    }

    /// Looks up a refresh token without spending it.
    pub async fn refresh_token(&self, token_hash: &str) -> Result<Option<RefreshTokenRow>, StoreError> {
        let row = sqlx::query(
            "SELECT family_id, user_id, tenant_id, expires_at FROM refresh_tokens WHERE token_hash = $1 AND revoked_at IS NULL",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(refresh_from_row).transpose()
    }

    /// Revokes every token of a family; returns how many were still live.
    pub async fn revoke_refresh_family(&self, family_id: &str) -> Result<u64, StoreError> {
        let done = sqlx::query("UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL")
            .bind(time::encode(time::now()))
            .bind(family_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Whether a family has been revoked (a logout or a detected replay).
    pub async fn is_refresh_family_revoked(&self, family_id: &str) -> Result<bool, StoreError> {
        let revoked: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM refresh_tokens WHERE family_id = $1 AND revoked_at IS NOT NULL")
                .bind(family_id)
                .fetch_one(&self.pool)
                .await?;
        Ok(revoked > 0)
    }

    /// Revokes every refresh token of a user (membership removed, user deleted).
    pub async fn revoke_user_refresh_tokens(&self, user: UserId) -> Result<u64, StoreError> {
        let done = sqlx::query("UPDATE refresh_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
            .bind(time::encode(time::now()))
            .bind(user.to_string())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Stores a magic link (its digest) for `user`.
    pub async fn insert_magic_link(
        &self,
        token_hash: &str,
        user: UserId,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO magic_links (id, token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(token_hash)
        .bind(user.to_string())
        .bind(time::encode(time::now()))
        .bind(time::encode(expires_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Spends a magic link: returns its user the first time, before expiry; `None` after.
    pub async fn use_magic_link(&self, token_hash: &str) -> Result<Option<UserId>, StoreError> {
        let now = time::encode(time::now());
        let user: Option<String> = sqlx::query_scalar(
            "UPDATE magic_links SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $3 RETURNING user_id",
        )
        .bind(now.clone())
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        user.map(|raw| UserId::parse(&raw).map_err(corrupt("magic link user")))
            .transpose()
    }

    /// The throttle state of a key, if any failure was recorded.
    pub async fn login_throttle(&self, key: &str) -> Result<Option<Throttle>, StoreError> {
        let row = sqlx::query("SELECT failures, locked_until FROM login_throttle WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            Ok(Throttle {
                failures: row.try_get("failures")?,
                locked_until: time::decode_opt(row.try_get("locked_until")?)?,
            })
        })
        .transpose()
    }

    /// Counts one more failure for `key` and returns the new count.
    pub async fn record_login_failure(&self, key: &str) -> Result<i64, StoreError> {
        let now = time::encode(time::now());
        Ok(sqlx::query_scalar(
            "INSERT INTO login_throttle (key, failures, updated_at) VALUES ($1, 1, $2) \
             ON CONFLICT (key) DO UPDATE SET failures = login_throttle.failures + 1, updated_at = excluded.updated_at \
             RETURNING failures",
        )
        .bind(key)
        .bind(now)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Locks `key` until `until`.
    pub async fn lock_login(&self, key: &str, until: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query("UPDATE login_throttle SET locked_until = $1 WHERE key = $2")
            .bind(time::encode(until))
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forgets the failures of `key` (after a successful sign-in, or when a lock ended).
    pub async fn clear_login_throttle(&self, key: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM login_throttle WHERE key = $1")
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

fn refresh_from_row(row: &AnyRow) -> Result<RefreshTokenRow, StoreError> {
    Ok(RefreshTokenRow {
        family_id: row.try_get("family_id")?,
        user_id: UserId::parse(&row.try_get::<String, _>("user_id")?).map_err(corrupt("refresh token user"))?,
        tenant_id: TenantId::parse(&row.try_get::<String, _>("tenant_id")?).map_err(corrupt("refresh token tenant"))?,
        expires_at: time::decode(&row.try_get::<String, _>("expires_at")?)?,
    })
}
