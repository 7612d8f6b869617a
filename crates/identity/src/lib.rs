//! VeloFlux identity and tenancy: accounts, passwords, sign-in (password, magic link, OIDC),
//! access and refresh tokens, sign-in throttling, tenants, memberships and roles, and the
//! platform-admin routes.
//!
//! It owns its routes (one `OpenApiRouter`) and implements the API crate's
//! `Authenticator`, which every other feature crate relies on through the `Auth` extractor.
//! It must not depend on the edge or on other feature crates.

mod accounts;
mod magic;
mod mail;
mod members;
mod oidc;
mod outbound;
mod passwords;
mod platform;
mod register;
mod sessions;
mod tenants;
mod throttle;
mod tokens;
mod views;

use std::sync::Arc;
use std::time::Duration;

use utoipa_axum::router::OpenApiRouter;
use veloflux_api::ratelimit::{RateLimiter, per_ip};
use veloflux_secrets::SecretKey;
use veloflux_store::Store;

pub use accounts::{AccountError, create_platform_admin};
pub use mail::{MailError, Mailer, SmtpSecurity, SmtpSettings};
pub use passwords::{hash_password, verify_password};
pub use throttle::LockoutPolicy;
pub use tokens::{KeyError, SessionSubject, TokenPair, TokenSettings, Tokens};

/// Settings of the identity routes.
#[derive(Debug, Clone)]
pub struct IdentitySettings {
    /// Base URL users reach the platform at (links in e-mails point there).
    pub public_url: String,
    /// How long a magic link stays valid.
    pub magic_link_ttl: Duration,
    /// Failed sign-in handling.
    pub lockout: LockoutPolicy,
    /// Let OIDC requests reach private and loopback addresses (for providers inside the
    /// operator's network, and for tests).
    pub oidc_allow_private_targets: bool,
}

/// What the identity routes need.
#[derive(Debug, Clone)]
pub struct IdentityState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    tokens: Arc<Tokens>,
    secret: Arc<SecretKey>,
    outbound: reqwest::Client,
    mailer: Mailer,
    limiter: RateLimiter,
    settings: IdentitySettings,
    dummy_hash: String,
}

impl IdentityState {
    /// Builds the state. Hashes a throwaway password once, so that sign-ins for unknown
    /// accounts cost as much as real ones.
    pub async fn new(
        store: Store,
        tokens: Arc<Tokens>,
        secret: Arc<SecretKey>,
        mailer: Mailer,
        limiter: RateLimiter,
        settings: IdentitySettings,
    ) -> Result<IdentityState, argon2::password_hash::Error> {
        let throwaway = veloflux_secrets::random_token(24).map_err(|_| argon2::password_hash::Error::Crypto)?;
        let password =
            veloflux_domain::Password::parse(&throwaway).map_err(|_| argon2::password_hash::Error::Crypto)?;
        let dummy_hash = hash_password(password).await?;
        let outbound = outbound::client(settings.oidc_allow_private_targets);
        Ok(IdentityState {
            inner: Arc::new(Inner {
                store,
                tokens,
                secret,
                outbound,
                mailer,
                limiter,
                settings,
                dummy_hash,
            }),
        })
    }

    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    pub(crate) fn tokens(&self) -> &Tokens {
        &self.inner.tokens
    }

    pub(crate) fn secret(&self) -> &SecretKey {
        &self.inner.secret
    }

    pub(crate) fn outbound(&self) -> &reqwest::Client {
        &self.inner.outbound
    }

    pub(crate) fn mailer(&self) -> &Mailer {
        &self.inner.mailer
    }

    pub(crate) fn settings(&self) -> &IdentitySettings {
        &self.inner.settings
    }

    pub(crate) fn lockout(&self) -> &LockoutPolicy {
        &self.inner.settings.lockout
    }

    pub(crate) fn dummy_hash(&self) -> &str {
        &self.inner.dummy_hash
    }
}

/// Loads the token service (signing keys) for `store`.
pub async fn load_tokens(
    store: Store,
    secret: Arc<SecretKey>,
    settings: TokenSettings,
) -> Result<Arc<Tokens>, KeyError> {
    Tokens::load(store, secret, settings).await
}

/// The identity routes of the control-plane listener. The sign-in routes carry the stricter
/// per-IP rate limit.
pub fn router(state: IdentityState) -> OpenApiRouter {
    let sign_in = OpenApiRouter::new()
        .merge(register::routes())
        .merge(sessions::public_routes())
        .merge(magic::routes())
        .merge(oidc::sign_in_routes())
        .layer(axum::middleware::from_fn_with_state(
            state.inner.limiter.clone(),
            per_ip,
        ));
    OpenApiRouter::new()
        .merge(sign_in)
        .merge(sessions::routes())
        .merge(tenants::routes())
        .merge(members::routes())
        .merge(platform::routes())
        .merge(oidc::routes())
        .with_state(state)
}
