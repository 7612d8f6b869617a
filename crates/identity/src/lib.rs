//! VeloFlux identity: user accounts, password hashing, registration and the platform
//! administrator bootstrap. Tokens, sign-in, roles enforcement and OIDC build on this crate.
//!
//! It owns its routes (an `OpenApiRouter`) and calls the store for persistence; it must not
//! depend on the edge or on other feature crates.

mod accounts;
mod passwords;
mod register;

use utoipa_axum::router::OpenApiRouter;
use veloflux_store::Store;

pub use accounts::{AccountError, create_platform_admin};
pub use passwords::{hash_password, verify_password};

/// What the identity routes need.
#[derive(Debug, Clone)]
pub struct IdentityState {
    store: Store,
}

impl IdentityState {
    /// State over `store`.
    pub fn new(store: Store) -> IdentityState {
        IdentityState { store }
    }
}

/// The identity routes of the control-plane listener.
pub fn router(state: IdentityState) -> OpenApiRouter {
    register::routes().with_state(state)
}
