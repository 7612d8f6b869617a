//! VeloFlux's store: the one place that talks to the database.
//!
//! It owns the connection pool, the migrations of both backends (SQLite by default,
//! PostgreSQL at scale) and every query. Queries are written once in the SQL dialect both
//! backends share and run through sqlx's `Any` driver; the conformance suite in
//! `tests/it` runs the same tests against both.
//!
//! Every call on tenant-owned data takes the tenant id, so a caller cannot forget it. The
//! store knows nothing about HTTP, authentication or configuration files, and must not
//! depend on axum or the edge.

mod audit;
mod auth;
mod certificates;
mod db;
mod edge;
mod error;
mod oidc;
mod page;
mod settings;
mod tenants;
mod time;
mod usage;
mod users;

pub use audit::{AuditEntry, NewAuditEntry};
pub use auth::{NewRefreshToken, RefreshTokenRow, RefreshUse, SigningKeyRow, Throttle};
pub use certificates::{CertificateRow, NewCertificate};
pub use db::{Engine, Store};
pub use edge::{Backend, BackendSpec, EdgeRows, Pool, PoolSpec, Route, RouteSpec};
pub use error::StoreError;
pub use oidc::{OidcConfigRow, OidcLoginRow};
pub use page::{Page, PageRequest};
pub use tenants::{NewTenant, Tenant, TenantUpdate, allows_origin};
pub use usage::{UsageEvent, UsageTotals};
pub use users::{Membership, NewUser, PlatformCounts, User, UserUpdate};
