//! An immutable routing table: host and path to pool. A new one is built for every
//! configuration change and swapped in atomically; requests in flight keep the one they
//! started with.

use std::collections::HashMap;
use std::sync::Arc;

use crate::backend::{BackendState, Health};
use crate::balance::PoolRuntime;
use crate::config::EdgeConfig;

/// One route in the table.
#[derive(Debug)]
pub struct RouteEntry {
    /// Route id.
    pub route_id: String,
    /// Owner tenant.
    pub tenant_id: String,
    /// Path prefix.
    pub prefix: String,
    /// HTTPS only.
    pub ssl_enabled: bool,
    /// Target pool.
    pub pool: Arc<PoolRuntime>,
    /// Counters of this route.
    pub metrics: crate::metrics::RouteMetrics,
    /// The owner's traffic limits, if it has any.
    pub limiter: Option<Arc<crate::limits::TenantLimiter>>,
}

/// The routing table.
#[derive(Debug, Default)]
pub struct Snapshot {
    exact: HashMap<String, Vec<Arc<RouteEntry>>>,
    wildcard: HashMap<String, Vec<Arc<RouteEntry>>>,
    /// Pools by id.
    pub pools: HashMap<String, Arc<PoolRuntime>>,
    certificates: Certificates,
}

/// Certificates by the hostname they are served for: exact names, and wildcards by the
/// parent domain they cover.
#[derive(Debug, Default)]
struct Certificates {
    exact: HashMap<String, Vec<CertificateEntry>>,
    wildcard: HashMap<String, Vec<CertificateEntry>>,
}

#[derive(Debug)]
struct CertificateEntry {
    tenant_id: String,
    key: Arc<rustls::sign::CertifiedKey>,
    not_after: std::time::SystemTime,
}

impl Snapshot {
    /// Builds a table from `config`, keeping the live state of backends that `previous`
    /// already knew (same id and address), so health and load survive reconfiguration.
    pub fn build(
        config: &EdgeConfig,
        previous: &Snapshot,
        sticky_key: &[u8],
        metrics: &crate::metrics::EdgeMetrics,
        limiters: &HashMap<String, Arc<crate::limits::TenantLimiter>>,
    ) -> Snapshot {
        let known: HashMap<&str, &Arc<BackendState>> = previous
            .pools
            .values()
            .flat_map(|p| p.backends.iter())
            .map(|b| (b.id.as_str(), b))
            .collect();
        let mut pools = HashMap::new();
        for pool in &config.pools {
            let backends = pool
                .backends
                .iter()
                .map(|backend| {
                    let authority = backend.address.to_string();
                    let check = backend.health_check.as_ref().unwrap_or(&pool.health_check);
                    let state = match known.get(backend.id.as_str()) {
                        Some(state) if state.authority == authority => {
                            if !check.enabled {
                                state.set_health(Health::Healthy);
                            }
                            Arc::clone(state)
                        }
                        _ => {
                            let initial = if check.enabled {
                                Health::Unknown
                            } else {
                                Health::Healthy
                            };
                            Arc::new(BackendState::new(backend.id.clone(), authority, initial))
                        }
                    };
                    (state, backend.weight, check.clone())
                })
                .collect();
            let runtime = PoolRuntime::new(
                pool.id.clone(),
                pool.tenant_id.clone(),
                pool.name.clone(),
                pool.algorithm,
                pool.health_check.clone(),
                backends,
            );
            let runtime = runtime.with_timeouts(pool.timeouts);
            let runtime = if pool.sticky_sessions {
                runtime.with_sticky_sessions(sticky_key)
            } else {
                runtime
            };
            pools.insert(pool.id.clone(), Arc::new(runtime));
        }
        let mut exact: HashMap<String, Vec<Arc<RouteEntry>>> = HashMap::new();
        let mut wildcard: HashMap<String, Vec<Arc<RouteEntry>>> = HashMap::new();
        for route in &config.routes {
            let Some(pool) = pools.get(&route.pool_id) else {
                continue;
            };
            let addresses: Vec<String> = pool.backends.iter().map(|b| b.authority.clone()).collect();
            let entry = Arc::new(RouteEntry {
                route_id: route.id.clone(),
                tenant_id: route.tenant_id.clone(),
                prefix: route.path_prefix.as_str().to_owned(),
                ssl_enabled: route.ssl_enabled,
                metrics: metrics.route(&route.tenant_id, &route.id, &pool.name, &addresses),
                limiter: limiters.get(&route.tenant_id).cloned(),
                pool: Arc::clone(pool),
            });
            match route.host.as_str().strip_prefix("*.") {
                Some(suffix) => wildcard.entry(suffix.to_owned()).or_default().push(entry),
                None => exact.entry(route.host.as_str().to_owned()).or_default().push(entry),
            }
        }
        for entries in exact.values_mut().chain(wildcard.values_mut()) {
            entries.sort_by_key(|e| std::cmp::Reverse(e.prefix.len()));
        }
        let mut certificates = Certificates::default();
        for certificate in &config.certificates {
            for name in &certificate.hostnames {
                let entry = CertificateEntry {
                    tenant_id: certificate.tenant_id.clone(),
                    key: Arc::clone(&certificate.key),
                    not_after: certificate.not_after,
                };
                match name.strip_prefix("*.") {
                    Some(parent) => certificates.wildcard.entry(parent.to_owned()).or_default().push(entry),
                    None => certificates.exact.entry(name.clone()).or_default().push(entry),
                }
            }
        }
        // The certificate valid longest is offered first.
        for entries in certificates
            .exact
            .values_mut()
            .chain(certificates.wildcard.values_mut())
        {
            entries.sort_by_key(|e| std::cmp::Reverse(e.not_after));
        }
        Snapshot {
            exact,
            wildcard,
            pools,
            certificates,
        }
    }

    /// The certificate for a TLS handshake naming `server_name`: one of the tenant that
    /// routes the host (so no tenant can answer for another's host), exact names before
    /// wildcards, unexpired, valid longest.
    pub fn certificate_for(&self, server_name: &str) -> Option<Arc<rustls::sign::CertifiedKey>> {
        let host = server_name.trim_end_matches('.').to_ascii_lowercase();
        let owner = self
            .exact
            .get(&host)
            .and_then(|routes| routes.first())
            .or_else(|| {
                let (_, parent) = host.split_once('.')?;
                self.wildcard.get(parent)?.first()
            })?
            .tenant_id
            .as_str();
        let now = std::time::SystemTime::now();
        let usable = |entries: Option<&Vec<CertificateEntry>>| {
            entries?
                .iter()
                .find(|e| e.tenant_id == owner && e.not_after > now)
                .map(|e| Arc::clone(&e.key))
        };
        usable(self.certificates.exact.get(&host)).or_else(|| {
            let (_, parent) = host.split_once('.')?;
            usable(self.certificates.wildcard.get(parent))
        })
    }

    /// Every route, once.
    pub fn routes(&self) -> impl Iterator<Item = &Arc<RouteEntry>> {
        self.exact.values().chain(self.wildcard.values()).flatten()
    }

    /// The route for `host` (lower case, no port) and `path`: exact hosts first, then the
    /// `*.` wildcard of the parent domain; the longest matching prefix wins.
    pub fn route(&self, host: &str, path: &str) -> Option<&Arc<RouteEntry>> {
        if let Some(entry) = self.exact.get(host).and_then(|entries| longest(entries, path)) {
            return Some(entry);
        }
        let (_, parent) = host.split_once('.')?;
        self.wildcard.get(parent).and_then(|entries| longest(entries, path))
    }
}

/// The first (longest, as entries are sorted) prefix that matches.
fn longest<'a>(entries: &'a [Arc<RouteEntry>], path: &str) -> Option<&'a Arc<RouteEntry>> {
    entries.iter().find(|e| prefix_matches(&e.prefix, path))
}

/// `/api` matches `/api` and `/api/x` but not `/apix`; `/` and prefixes ending in `/` match
/// everything below them.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    path.starts_with(prefix)
        && (prefix.ends_with('/') || path.len() == prefix.len() || path.as_bytes()[prefix.len()] == b'/')
}

#[cfg(test)]
mod tests {
    use veloflux_domain::{Algorithm, BackendAddress, HealthCheck, PathPrefix, RouteHost};

    use super::*;
    use crate::config::{BackendConfig, PoolConfig, RouteConfig};

    fn config() -> EdgeConfig {
        let pool = |id: &str| PoolConfig {
            id: id.into(),
            tenant_id: "t".into(),
            name: id.into(),
            algorithm: Algorithm::RoundRobin,
            sticky_sessions: false,
            health_check: HealthCheck {
                enabled: false,
                ..HealthCheck::default()
            },
            timeouts: veloflux_domain::PoolTimeouts::default(),
            backends: vec![BackendConfig {
                id: format!("{id}-b"),
                address: BackendAddress::parse("127.0.0.1:1").unwrap(),
                weight: 1,
                health_check: None,
            }],
        };
        let route = |id: &str, host: &str, prefix: &str, pool: &str| RouteConfig {
            id: id.into(),
            tenant_id: "t".into(),
            host: RouteHost::parse(host).unwrap(),
            path_prefix: PathPrefix::parse(prefix).unwrap(),
            pool_id: pool.into(),
            ssl_enabled: false,
        };
        EdgeConfig {
            tenant_limits: Vec::new(),
            certificates: Vec::new(),
            pools: vec![pool("web"), pool("api"), pool("wild")],
            routes: vec![
                route("r1", "app.example.com", "/", "web"),
                route("r2", "app.example.com", "/api", "api"),
                route("r3", "*.example.com", "/", "wild"),
            ],
        }
    }

    #[test]
    fn exact_hosts_then_wildcards_then_longest_prefix() {
        let snapshot = Snapshot::build(
            &config(),
            &Snapshot::default(),
            b"k",
            &crate::metrics::EdgeMetrics::new(None),
            &HashMap::new(),
        );
        let at = |host: &str, path: &str| snapshot.route(host, path).map(|e| e.route_id.clone());
        assert_eq!(at("app.example.com", "/api/users").as_deref(), Some("r2"));
        assert_eq!(at("app.example.com", "/api").as_deref(), Some("r2"));
        assert_eq!(at("app.example.com", "/apix").as_deref(), Some("r1"));
        assert_eq!(at("shop.example.com", "/x").as_deref(), Some("r3"));
        assert_eq!(at("example.com", "/"), None);
        assert_eq!(at("a.b.example.com", "/"), None, "a wildcard covers one label");
        assert_eq!(at("other.org", "/"), None);
    }

    #[test]
    fn rebuilding_keeps_backend_state() {
        let first = Snapshot::build(
            &config(),
            &Snapshot::default(),
            b"k",
            &crate::metrics::EdgeMetrics::new(None),
            &HashMap::new(),
        );
        let state = Arc::clone(&first.pools["web"].backends[0]);
        let _busy = state.begin();
        let second = Snapshot::build(
            &config(),
            &first,
            b"k",
            &crate::metrics::EdgeMetrics::new(None),
            &HashMap::new(),
        );
        assert!(Arc::ptr_eq(&state, &second.pools["web"].backends[0]));
        assert_eq!(second.pools["web"].backends[0].in_flight(), 1);
    }
}
