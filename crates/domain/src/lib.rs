//! VeloFlux's domain: identifiers, validated values and pure rules shared by every other crate.
//!
//! This crate is the bottom of the graph. It performs no IO and must not depend on serde,
//! sqlx, axum or tokio: raw input is parsed into these types once, at the boundary
//! (an HTTP handler, the configuration loader, a store row), and code above works with typed
//! values only.

mod balancing;
mod duration;
mod email;
mod ids;
mod invalid;
mod password;
mod tenancy;

pub use balancing::{
    Algorithm, BackendAddress, HealthCheck, PathPrefix, PoolName, PoolTimeouts, RawHealthCheck, RouteHost, Weight,
};
pub use duration::{format_duration, parse_duration};
pub use email::Email;
pub use ids::{TenantId, UserId};
pub use invalid::Invalid;
pub use password::Password;
pub use tenancy::{Plan, PlatformRole, Role, TenantName, TenantStatus};
