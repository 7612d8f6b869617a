//! The edge's configuration as plain values. The binary builds it from the store; the edge
//! never reads the database.

use veloflux_domain::{Algorithm, BackendAddress, HealthCheck, PathPrefix, PoolTimeouts, RouteHost};

/// Everything the edge serves.
#[derive(Debug, Clone, Default)]
pub struct EdgeConfig {
    /// Every pool with its backends.
    pub pools: Vec<PoolConfig>,
    /// Every route.
    pub routes: Vec<RouteConfig>,
    /// Traffic limits per tenant (from its plan); a tenant without an entry is unlimited.
    pub tenant_limits: Vec<TenantLimitsEntry>,
    /// TLS certificates, served by SNI for hosts their tenant routes.
    pub certificates: Vec<CertificateConfig>,
}

/// A checked certificate and the hostnames it is served for.
#[derive(Debug, Clone)]
pub struct CertificateConfig {
    /// Certificate id.
    pub id: String,
    /// Owner tenant: the certificate is served only for hosts this tenant routes.
    pub tenant_id: String,
    /// Hostnames (lower case; `*.example.com` covers one label).
    pub hostnames: Vec<String>,
    /// Chain and signing key.
    pub key: std::sync::Arc<rustls::sign::CertifiedKey>,
    /// End of validity; an expired certificate is not served.
    pub not_after: std::time::SystemTime,
}

/// What one tenant may send through the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantLimits {
    /// Requests per second, sustained (one second's worth may come at once).
    pub requests_per_second: u32,
    /// Requests in flight at once.
    pub concurrent_requests: u32,
}

/// A tenant's limits, by id.
#[derive(Debug, Clone)]
pub struct TenantLimitsEntry {
    /// Tenant id.
    pub tenant_id: String,
    /// Its limits.
    pub limits: TenantLimits,
}

/// A pool and its backends.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Pool id.
    pub id: String,
    /// Owner tenant.
    pub tenant_id: String,
    /// Pool name.
    pub name: String,
    /// Balancing algorithm.
    pub algorithm: Algorithm,
    /// Sticky sessions.
    pub sticky_sessions: bool,
    /// The pool's health check.
    pub health_check: HealthCheck,
    /// The pool's own upstream timeouts (the edge's defaults where unset).
    pub timeouts: PoolTimeouts,
    /// Backends.
    pub backends: Vec<BackendConfig>,
}

/// One backend.
#[derive(Debug, Clone)]
pub struct BackendConfig {
    /// Backend id.
    pub id: String,
    /// Address.
    pub address: BackendAddress,
    /// Weight (1 to 1000).
    pub weight: u32,
    /// Its own health check, if it overrides the pool's.
    pub health_check: Option<HealthCheck>,
}

/// One route.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// Route id.
    pub id: String,
    /// Owner tenant.
    pub tenant_id: String,
    /// Host or wildcard.
    pub host: RouteHost,
    /// Path prefix.
    pub path_prefix: PathPrefix,
    /// Target pool id.
    pub pool_id: String,
    /// HTTPS only.
    pub ssl_enabled: bool,
}
