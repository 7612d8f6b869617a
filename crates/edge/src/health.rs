//! Active health checks: one task per checked backend, reconciled with every new snapshot.
//! A new backend takes traffic after its first passing check; afterwards `fall` failures in
//! a row make it unhealthy and `rise` passes make it healthy again. Every change is logged
//! and published as a `backend.health_changed` event.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::broadcast;
use tokio::task::AbortHandle;
use veloflux_domain::HealthCheck;

use crate::backend::{BackendState, Health};
use crate::snapshot::Snapshot;

/// A backend's health changed.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthEvent {
    /// Owner tenant.
    pub tenant_id: String,
    /// Pool name.
    pub pool: String,
    /// Backend id.
    pub backend_id: String,
    /// Backend address.
    pub address: String,
    /// Health before.
    pub previous: Health,
    /// Health now.
    pub current: Health,
    /// Path of the check.
    pub path: String,
    /// Status of the last check, if it got an answer.
    pub status_code: Option<u16>,
    /// Time the last check took, in milliseconds.
    pub response_time_ms: u64,
    /// Why the last check failed.
    pub error: Option<String>,
}

type Key = (String, HealthCheck);

/// Runs the checks.
#[derive(Debug)]
pub struct HealthChecker {
    tasks: Mutex<HashMap<String, (Key, AbortHandle)>>,
    events: broadcast::Sender<HealthEvent>,
    client: Client<HttpConnector, Empty<bytes::Bytes>>,
}

impl HealthChecker {
    /// A checker publishing to `events`.
    pub fn new(events: broadcast::Sender<HealthEvent>) -> HealthChecker {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(1)
            .build(connector);
        HealthChecker {
            tasks: Mutex::new(HashMap::new()),
            events,
            client,
        }
    }

    /// Starts, restarts or stops tasks so that exactly the backends of `snapshot` with an
    /// enabled check are checked, each with its current settings.
    pub fn reconcile(&self, snapshot: &Snapshot) {
        let mut wanted: HashMap<String, (Key, Arc<BackendState>, String, String)> = HashMap::new();
        for pool in snapshot.pools.values() {
            for (backend, check) in pool.backends.iter().zip(&pool.checks) {
                let check = check.clone();
                if check.enabled {
                    wanted.insert(
                        backend.id.clone(),
                        (
                            (backend.authority.clone(), check),
                            Arc::clone(backend),
                            pool.name.clone(),
                            pool.tenant_id.clone(),
                        ),
                    );
                }
            }
        }
        let mut tasks = self.tasks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        tasks.retain(|id, (key, handle)| {
            let keep = wanted.get(id).is_some_and(|(wanted_key, ..)| wanted_key == key);
            if !keep {
                handle.abort();
            }
            keep
        });
        for (id, (key, backend, pool, tenant)) in wanted {
            if tasks.contains_key(&id) {
                continue;
            }
            let task = tokio::spawn(check_loop(
                self.client.clone(),
                backend,
                key.1.clone(),
                pool,
                tenant,
                self.events.clone(),
            ));
            tasks.insert(id, (key, task.abort_handle()));
        }
    }

    /// Stops every task.
    pub fn stop(&self) {
        for (_, (_, handle)) in self
            .tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .drain()
        {
            handle.abort();
        }
    }
}

async fn check_loop(
    client: Client<HttpConnector, Empty<bytes::Bytes>>,
    backend: Arc<BackendState>,
    check: HealthCheck,
    pool: String,
    tenant: String,
    events: broadcast::Sender<HealthEvent>,
) {
    let uri = format!("http://{}{}", backend.authority, check.path);
    let (mut passes, mut failures) = (0u32, 0u32);
    let mut ticker = tokio::time::interval(check.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let started = Instant::now();
        let outcome = match uri.parse::<http::Uri>() {
            Ok(uri) => {
                let request = http::Request::get(uri)
                    .header("user-agent", "veloflux-health-check")
                    .body(Empty::new());
                match request {
                    Ok(request) => match tokio::time::timeout(check.timeout, client.request(request)).await {
                        Ok(Ok(response)) if response.status().as_u16() == check.expected_status => {
                            Ok(response.status().as_u16())
                        }
                        Ok(Ok(response)) => Err((
                            Some(response.status().as_u16()),
                            format!("status {}", response.status().as_u16()),
                        )),
                        Ok(Err(err)) => Err((None, format!("connection failed: {err}"))),
                        Err(_) => Err((None, "timed out".to_owned())),
                    },
                    Err(err) => Err((None, err.to_string())),
                }
            }
            Err(err) => Err((None, err.to_string())),
        };
        let elapsed = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let current = backend.health();
        let (next, status_code, error) = match outcome {
            Ok(status) => {
                passes += 1;
                failures = 0;
                let next = if current == Health::Unknown || (current == Health::Unhealthy && passes >= check.rise) {
                    Health::Healthy
                } else {
                    current
                };
                if next == Health::Healthy {
                    backend.clear_ejection();
                }
                (next, Some(status), None)
            }
            Err((status, error)) => {
                failures += 1;
                passes = 0;
                let next = if current == Health::Unknown || (current == Health::Healthy && failures >= check.fall) {
                    Health::Unhealthy
                } else {
                    current
                };
                (next, status, Some(error))
            }
        };
        if next != current {
            backend.set_health(next);
            tracing::info!(backend_id = %backend.id, address = %backend.authority, pool = %pool, from = current.as_str(), to = next.as_str(), "backend health changed");
            let _ = events.send(HealthEvent {
                tenant_id: tenant.clone(),
                pool: pool.clone(),
                backend_id: backend.id.clone(),
                address: backend.authority.clone(),
                previous: current,
                current: next,
                path: check.path.clone(),
                status_code,
                response_time_ms: elapsed,
                error,
            });
        }
    }
}
