//! Access and refresh tokens.
//!
//! Access tokens are EdDSA-signed JWTs (3600 s by default) carrying the key id; the public
//! keys are published as a JWKS. Signing keys live in the store, sealed with the platform
//! secret key, so every node signs and verifies with the same set. Rotation adds a new key
//! and retires the old ones, which keep verifying until every token they signed has expired:
//! nobody is logged out.
//!
//! Refresh tokens are opaque (`refresh_` + 256 random bits), stored as SHA-256 digests,
//! single-use, and grouped in families (one per sign-in). Presenting a spent token revokes
//! its whole family: a stolen token that is replayed kills the session of the thief and of
//! the victim alike, and the event is audited.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use serde::{Deserialize, Serialize};
use serde_json::json;
use veloflux_api::{ApiError, ErrorCode, Principal};
use veloflux_domain::{Plan, Role, TenantId, UserId};
use veloflux_secrets::{SecretKey, random_token, sha256_hex};
use veloflux_store::{NewAuditEntry, NewRefreshToken, RefreshUse, SigningKeyRow, Store, StoreError};

/// Lifetimes and names of tokens.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// Access token lifetime (the seed's `expires_in`, 3600 s).
    pub access_ttl: Duration,
    /// Refresh token lifetime.
    pub refresh_ttl: Duration,
}

impl Default for TokenSettings {
    fn default() -> Self {
        TokenSettings {
            access_ttl: Duration::from_secs(3600),
            refresh_ttl: Duration::from_secs(30 * 86_400),
        }
    }
}

const ISSUER: &str = "veloflux";
const AUDIENCE: &str = "veloflux-api";
const REFRESH_PREFIX: &str = "refresh_";

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    sub: String,
    tid: String,
    role: String,
    plan: String,
    pa: bool,
    sid: String,
    iat: i64,
    exp: i64,
    jti: String,
}

/// Who a new session is for.
#[derive(Debug, Clone)]
pub struct SessionSubject {
    /// The user.
    pub user_id: UserId,
    /// The tenant signed into.
    pub tenant_id: TenantId,
    /// The user's role there.
    pub role: Role,
    /// The tenant's plan.
    pub plan: Plan,
    /// Whether the user is a platform administrator.
    pub platform_admin: bool,
}

/// A freshly issued access and refresh token.
#[derive(Debug, Clone)]
pub struct TokenPair {
    /// The JWT.
    pub access_token: String,
    /// The opaque refresh token.
    pub refresh_token: String,
    /// Access token lifetime in seconds.
    pub expires_in: u64,
}

struct KeySet {
    signing_kid: String,
    encoding: EncodingKey,
    decoding: HashMap<String, DecodingKey>,
    jwks: serde_json::Value,
}

/// Issues and verifies tokens.
pub struct Tokens {
    store: Store,
    secret: Arc<SecretKey>,
    settings: TokenSettings,
    keys: RwLock<Arc<KeySet>>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Why the key set could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A sealed key could not be opened or parsed.
    #[error("signing key {kid}: {reason}")]
    Key {
        /// Key id.
        kid: String,
        /// What went wrong.
        reason: String,
    },
}

impl Tokens {
    /// Loads the signing keys, creating the first one on a new installation.
    pub async fn load(store: Store, secret: Arc<SecretKey>, settings: TokenSettings) -> Result<Arc<Tokens>, KeyError> {
        let keys = load_keys(&store, &secret, &settings).await?;
        let keys = match keys {
            Some(keys) => keys,
            None => {
                insert_new_key(&store, &secret).await?;
                load_keys(&store, &secret, &settings)
                    .await?
                    .ok_or_else(|| KeyError::Key {
                        kid: "-".into(),
                        reason: "no signing key after creating one".into(),
                    })?
            }
        };
        Ok(Arc::new(Tokens {
            store,
            secret,
            settings,
            keys: RwLock::new(Arc::new(keys)),
        }))
    }

    /// Token lifetimes.
    pub fn settings(&self) -> &TokenSettings {
        &self.settings
    }

    fn current(&self) -> Arc<KeySet> {
        Arc::clone(&self.keys.read().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Re-reads the key set from the store (after a rotation, possibly on another node).
    pub async fn reload(&self) -> Result<(), KeyError> {
        if let Some(keys) = load_keys(&self.store, &self.secret, &self.settings).await? {
            *self.keys.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(keys);
        }
        Ok(())
    }

    /// Creates a new signing key and retires the others; returns the new key id.
    pub async fn rotate(&self) -> Result<String, KeyError> {
        let kid = insert_new_key(&self.store, &self.secret).await?;
        self.store.retire_signing_keys_except(&kid).await?;
        self.reload().await?;
        Ok(kid)
    }

    /// The public keys as a JWKS document.
    pub fn jwks(&self) -> serde_json::Value {
        self.current().jwks.clone()
    }

    /// The id of the key that signs new tokens.
    pub fn signing_kid(&self) -> String {
        self.current().signing_kid.clone()
    }

    /// Starts a session: a new refresh family and its first pair.
    pub async fn issue(&self, subject: &SessionSubject) -> Result<TokenPair, ApiError> {
        let family = uuid::Uuid::now_v7().to_string();
        self.issue_in_family(subject, &family).await
    }

    async fn issue_in_family(&self, subject: &SessionSubject, family: &str) -> Result<TokenPair, ApiError> {
        let refresh_token = format!("{REFRESH_PREFIX}{}", random_token(32).map_err(ApiError::internal)?);
        let refresh_ttl = chrono::Duration::from_std(self.settings.refresh_ttl).map_err(ApiError::internal)?;
        self.store
            .insert_refresh_token(&NewRefreshToken {
                token_hash: sha256_hex(refresh_token.as_bytes()),
                family_id: family.to_owned(),
                user_id: subject.user_id,
                tenant_id: subject.tenant_id,
                expires_at: Utc::now() + refresh_ttl,
            })
            .await?;
        let now = Utc::now().timestamp();
        let ttl = i64::try_from(self.settings.access_ttl.as_secs()).unwrap_or(3600);
        let claims = Claims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: subject.user_id.to_string(),
            tid: subject.tenant_id.to_string(),
            role: subject.role.as_str().into(),
            plan: subject.plan.as_str().into(),
            pa: subject.platform_admin,
            sid: family.to_owned(),
            iat: now,
            exp: now + ttl,
            jti: uuid::Uuid::now_v7().to_string(),
        };
        let keys = self.current();
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(keys.signing_kid.clone());
        let access_token = jsonwebtoken::encode(&header, &claims, &keys.encoding).map_err(ApiError::internal)?;
        Ok(TokenPair {
            access_token,
            refresh_token,
            expires_in: self.settings.access_ttl.as_secs(),
        })
    }

    /// Exchanges a refresh token for a new pair in the same family. A replayed token
    /// revokes the family and is audited as a security event.
    pub async fn refresh(
        &self,
        refresh_token: &str,
        ip: Option<String>,
    ) -> Result<(TokenPair, SessionSubject), ApiError> {
        let invalid = || ApiError::new(ErrorCode::InvalidToken, "invalid refresh token");
        if !refresh_token.starts_with(REFRESH_PREFIX) {
            return Err(invalid());
        }
        let row = match self
            .store
            .use_refresh_token(&sha256_hex(refresh_token.as_bytes()))
            .await?
        {
            RefreshUse::Fresh(row) => row,
            RefreshUse::Reused(row) => {
                let revoked = self.store.revoke_refresh_family(&row.family_id).await?;
                tracing::warn!(user_id = %row.user_id, tenant_id = %row.tenant_id, "refresh token reuse detected; session revoked");
                self.store
                    .record_audit(&NewAuditEntry {
                        tenant_id: Some(row.tenant_id),
                        actor_user_id: Some(row.user_id),
                        action: "auth.refresh_token_reused".into(),
                        target: Some(row.user_id.to_string()),
                        ip,
                        details: json!({"session_id": row.family_id, "tokens_revoked": revoked}),
                    })
                    .await?;
                return Err(ApiError::new(
                    ErrorCode::InvalidToken,
                    "refresh token was already used; the session has been revoked",
                ));
            }
            RefreshUse::Expired => {
                return Err(ApiError::new(ErrorCode::TokenExpired, "refresh token expired"));
            }
            RefreshUse::Unknown => return Err(invalid()),
        };
        let subject = self
            .subject_for(row.user_id, row.tenant_id)
            .await?
            .ok_or_else(invalid)?;
        let pair = self.issue_in_family(&subject, &row.family_id).await?;
        Ok((pair, subject))
    }

    /// The session (refresh family) a bearer token belongs to: an access token's `sid`, or
    /// a refresh token's family.
    pub async fn session_of(&self, bearer: &str) -> Result<String, ApiError> {
        if bearer.starts_with(REFRESH_PREFIX) {
            let row = self.store.refresh_token(&sha256_hex(bearer.as_bytes())).await?;
            return row
                .map(|r| r.family_id)
                .ok_or_else(|| ApiError::new(ErrorCode::InvalidToken, "invalid token"));
        }
        Ok(self.verify(bearer).await?.sid)
    }

    /// Ends a session: every refresh token of the family is revoked and its access tokens
    /// stop authenticating.
    pub async fn revoke_session(&self, session_id: &str) -> Result<u64, ApiError> {
        Ok(self.store.revoke_refresh_family(session_id).await?)
    }

    /// The subject as it is now: current role (or none), plan and admin flag.
    pub async fn subject_for(&self, user_id: UserId, tenant_id: TenantId) -> Result<Option<SessionSubject>, ApiError> {
        let user = match self.store.user(user_id).await {
            Ok(user) => user,
            Err(StoreError::NotFound) => return Ok(None),
            Err(err) => return Err(err.into()),
        };
        let tenant = match self.store.tenant(tenant_id).await {
            Ok(tenant) => tenant,
            Err(StoreError::NotFound) => return Ok(None),
            Err(err) => return Err(err.into()),
        };
        let platform_admin = user.platform_role.is_some();
        if tenant.status == veloflux_domain::TenantStatus::Suspended && !platform_admin {
            return Ok(None);
        }
        let role = match self.store.role_in(tenant_id, user_id).await? {
            Some(role) => role,
            None if platform_admin => Role::Owner,
            None => return Ok(None),
        };
        Ok(Some(SessionSubject {
            user_id,
            tenant_id,
            role,
            plan: tenant.plan,
            platform_admin,
        }))
    }

    async fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        let invalid = || ApiError::new(ErrorCode::InvalidToken, "invalid token");
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid())?;
        let kid = header.kid.ok_or_else(invalid)?;
        if header.alg != Algorithm::EdDSA {
            return Err(invalid());
        }
        let mut keys = self.current();
        if !keys.decoding.contains_key(&kid) {
            // Perhaps another node rotated; one reload, then the answer is final.
            self.reload().await.map_err(ApiError::internal)?;
            keys = self.current();
        }
        let key = keys.decoding.get(&kid).ok_or_else(invalid)?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = 0;
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        jsonwebtoken::decode::<Claims>(token, key, &validation)
            .map(|data| data.claims)
            .map_err(|err| match err.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    ApiError::new(ErrorCode::TokenExpired, "access token expired")
                }
                _ => invalid(),
            })
    }
}

impl veloflux_api::Authenticator for Tokens {
    fn authenticate<'a>(
        &'a self,
        token: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Principal, ApiError>> + Send + 'a>> {
        Box::pin(async move {
            let invalid = || ApiError::new(ErrorCode::InvalidToken, "invalid token");
            let claims = self.verify(token).await?;
            if self.store.is_refresh_family_revoked(&claims.sid).await? {
                return Err(ApiError::new(
                    ErrorCode::InvalidToken,
                    "the session has ended; sign in again",
                ));
            }
            let user_id = UserId::parse(&claims.sub).map_err(|_| invalid())?;
            let tenant_id = TenantId::parse(&claims.tid).map_err(|_| invalid())?;
            let subject = self.subject_for(user_id, tenant_id).await?.ok_or_else(|| {
                ApiError::new(
                    ErrorCode::InvalidToken,
                    "the account no longer has access to this tenant",
                )
            })?;
            Ok(Principal {
                user_id,
                tenant_id,
                role: subject.role,
                plan: subject.plan,
                platform_admin: subject.platform_admin,
                session_id: claims.sid,
            })
        })
    }
}

async fn insert_new_key(store: &Store, secret: &SecretKey) -> Result<String, KeyError> {
    let fail = |reason: String| KeyError::Key {
        kid: "new".into(),
        reason,
    };
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
        .map_err(|_| fail("key generation failed".into()))?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|e| fail(e.to_string()))?;
    let kid = format!("k{}", uuid::Uuid::now_v7().simple());
    store
        .insert_signing_key(&SigningKeyRow {
            kid: kid.clone(),
            algorithm: "EdDSA".into(),
            private_key: secret.seal(pkcs8.as_ref()).map_err(|e| fail(e.to_string()))?,
            public_key: URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
            created_at: Utc::now(),
            retired_at: None,
        })
        .await?;
    Ok(kid)
}

/// Reads the keys that may still verify tokens; `None` when there is no signing key.
async fn load_keys(store: &Store, secret: &SecretKey, settings: &TokenSettings) -> Result<Option<KeySet>, KeyError> {
    let grace = chrono::Duration::from_std(settings.access_ttl + Duration::from_secs(300))
        .unwrap_or(chrono::Duration::hours(2));
    let rows = store.signing_keys(Utc::now() - grace).await?;
    let Some(signing) = rows.iter().find(|row| row.retired_at.is_none()) else {
        return Ok(None);
    };
    let bad = |kid: &str, reason: &str| KeyError::Key {
        kid: kid.to_owned(),
        reason: reason.to_owned(),
    };
    let private = secret
        .open(&signing.private_key)
        .map_err(|e| bad(&signing.kid, &e.to_string()))?;
    let encoding = EncodingKey::from_ed_der(&private);
    let mut decoding = HashMap::new();
    let mut jwks = Vec::new();
    for row in &rows {
        let key = DecodingKey::from_ed_components(&row.public_key).map_err(|e| bad(&row.kid, &e.to_string()))?;
        decoding.insert(row.kid.clone(), key);
        jwks.push(
            json!({"kty": "OKP", "crv": "Ed25519", "x": row.public_key, "kid": row.kid, "alg": "EdDSA", "use": "sig"}),
        );
    }
    Ok(Some(KeySet {
        signing_kid: signing.kid.clone(),
        encoding,
        decoding,
        jwks: json!({"keys": jwks}),
    }))
}
