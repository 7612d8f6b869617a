//! `veloflux serve`: binds every listener, serves, migrates, becomes ready, and shuts down
//! gracefully on SIGTERM or Ctrl-C.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, RwLock};

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::ServiceExt as _;
use tracing::{error, info, warn};
use utoipa_axum::router::OpenApiRouter;
use veloflux_api::AuthenticatorHandle;
use veloflux_api::admin::AdminState;
use veloflux_api::ratelimit::RateLimiter;
use veloflux_api::system::System;
use veloflux_api::{Metrics, openapi};
use veloflux_identity::{IdentitySettings, IdentityState, Mailer};
use veloflux_routing::{EdgeControl, RoutingState};
use veloflux_secrets::{KeyOrigin, SecretKey};
use veloflux_store::Store;

use veloflux_api::error_chain as chain;

use crate::cli::{Failure, open_store};
use crate::config::Config;

/// Runs the server until a shutdown signal, then drains and returns.
pub(crate) async fn serve(config: Config) -> Result<(), Failure> {
    crate::logging::init(&config);
    let store = open_store(&config).await?;

    // A running instance on the same data directory hands its sockets over (hot restart).
    let control_path = crate::takeover::socket_path(&config.data_dir);
    let mut inherited = crate::takeover::request(&control_path).await?;
    let mut taken = |name: &str, addr: SocketAddr| inherited.as_mut().and_then(|i| i.take(name, addr));
    let bind_failed = |name: &'static str, addr: SocketAddr| {
        move |e: std::io::Error| Failure::runtime(format!("cannot bind the {name} listener to {addr}: {e}"))
    };
    let mut handover: Vec<(&'static str, Vec<std::net::TcpListener>)> = Vec::new();
    let mut addresses: BTreeMap<&'static str, SocketAddr> = BTreeMap::new();

    let mut listeners = Vec::new();
    for (name, addr) in [
        ("api", config.api_addr),
        ("admin", config.admin_addr),
        ("metrics", config.metrics_addr),
    ] {
        let socket = match taken(name, addr).and_then(|group| group.into_iter().next()) {
            Some(socket) => socket,
            None => std::net::TcpListener::bind(addr).map_err(bind_failed(name, addr))?,
        };
        socket.set_nonblocking(true).map_err(bind_failed(name, addr))?;
        handover.push((name, vec![socket.try_clone().map_err(bind_failed(name, addr))?]));
        let listener = TcpListener::from_std(socket).map_err(bind_failed(name, addr))?;
        let bound = listener.local_addr().map_err(bind_failed(name, addr))?;
        info!(name = %name, addr = %bound, "listening");
        addresses.insert(name, bound);
        listeners.push((name, listener));
    }
    let mut edge_listeners = Vec::new();
    let edge_addrs = [
        ("edge_http", Some(config.edge_http_addr), false),
        ("edge_https", config.edge_https_addr, true),
    ];
    for (name, addr, tls) in edge_addrs {
        let Some(addr) = addr else { continue };
        let mut sockets = taken(name, addr).unwrap_or_default();
        if sockets.is_empty() {
            sockets.push(veloflux_edge::bind_reuseport(addr).map_err(bind_failed(name, addr))?);
        }
        let bound = sockets[0].local_addr().map_err(bind_failed(name, addr))?;
        // One socket per worker, so that the kernel spreads connections over the cores.
        while sockets.len() < config.edge_workers {
            sockets.push(veloflux_edge::bind_reuseport(bound).map_err(bind_failed(name, bound))?);
        }
        let clones = sockets
            .iter()
            .map(std::net::TcpListener::try_clone)
            .collect::<Result<Vec<_>, _>>()
            .map_err(bind_failed(name, bound))?;
        handover.push((name, clones));
        info!(name = %name, addr = %bound, "listening");
        addresses.insert(name, bound);
        edge_listeners.push(veloflux_edge::EdgeListener { sockets, tls });
    }
    let edge_addr = addresses["edge_http"];
    let secret = Arc::new(secret_key(&config)?);
    let events = veloflux_events::EventBus::new();
    let metrics = Metrics::new(env!("CARGO_PKG_VERSION"));
    let edge = veloflux_edge::Edge::new(
        config.edge,
        veloflux_edge::EdgeKeys {
            sticky: secret.derive(b"edge sticky sessions"),
        },
        Some(metrics.registry()),
    );
    if let Some(https) = addresses.get("edge_https") {
        edge.set_https_port(https.port());
    }
    let _ = metrics
        .registry()
        .register(Box::new(veloflux_edge::metrics::HealthCollector::new(Arc::clone(
            &edge,
        ))));
    let system = System::new(
        store.clone(),
        metrics.clone(),
        env!("CARGO_PKG_VERSION"),
        addresses,
        vec![Box::new(ListenerProbe {
            name: "load_balancer",
            addr: edge_addr,
        })],
    );
    let finish = |router: Router| veloflux_api::finish(router, metrics.clone(), config.http);

    // Until start-up is done the API listener serves only the system routes (so `/health`
    // answers and `/ready` says 503); then the full application is swapped in.
    let (starting, _) = veloflux_api::system::router(system.clone()).split_for_parts();
    let api_app = Arc::new(RwLock::new(finish(starting)));
    let (admin, _) = veloflux_api::admin::router(AdminState::new(system.clone(), config.masked())).split_for_parts();
    let (metrics_router, _) = veloflux_api::admin::metrics_router(system.clone()).split_for_parts();
    let apps = [
        ("api", switchable(&api_app)),
        ("admin", finish(admin)),
        ("metrics", finish(metrics_router)),
    ];

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut servers = JoinSet::new();
    // On a fresh start the API answers `/health` (and 503 on `/ready`) during start-up; on a
    // takeover the previous process keeps serving until this one is ready, so nothing is
    // accepted here before then. The edge always starts with its configuration loaded.
    let mut api_listeners = Some(listeners);
    if inherited.is_none() {
        spawn_http(
            &mut servers,
            api_listeners.take().unwrap_or_default(),
            &apps,
            config.http.header_timeout,
            &shutdown_rx,
        );
    }

    match prepare(&config, &store, &system, &edge, secret, &events).await {
        Ok((app, layers)) => {
            *api_app.write().unwrap_or_else(std::sync::PoisonError::into_inner) =
                veloflux_api::finish_with(app, metrics.clone(), config.http, layers);
        }
        Err(failure) => {
            error!(error = %failure.message, "start-up failed");
            let _ = shutdown_tx.send(true);
            servers.shutdown().await;
            return Err(failure);
        }
    }
    if let Some(listeners) = api_listeners.take() {
        spawn_http(&mut servers, listeners, &apps, config.http.header_timeout, &shutdown_rx);
    }
    {
        let (edge, shutdown, workers) = (Arc::clone(&edge), shutdown_rx.clone(), config.edge_workers);
        servers.spawn(async move {
            let result = tokio::task::spawn_blocking(move || edge.run_workers(edge_listeners, workers, shutdown))
                .await
                .unwrap_or_else(|err| Err(std::io::Error::other(err)));
            ("edge", result)
        });
    }
    tokio::spawn(publish_health_changes(edge.subscribe(), events.clone()));
    let meter = tokio::spawn(meter_loop(
        Arc::clone(&edge),
        store.clone(),
        config.meter_flush_interval,
        shutdown_rx.clone(),
    ));
    system.mark_ready();
    // Offer the sockets to a successor, then let the predecessor (if any) drain.
    let successor = crate::takeover::offer(control_path.clone(), handover);
    if let Some(previous) = inherited {
        previous.finish().await;
    }
    info!(
        version = env!("CARGO_PKG_VERSION"),
        database = store.engine().as_str(),
        "ready"
    );

    let mut handed_over = false;
    let outcome = tokio::select! {
        () = shutdown_signal() => Ok(()),
        () = successor => {
            handed_over = true;
            Ok(())
        }
        Some(joined) = servers.join_next() => match joined {
            Ok((name, Err(err))) => Err(Failure::runtime(format!("the {name} listener failed: {err}"))),
            Ok((name, Ok(()))) => Err(Failure::runtime(format!("the {name} listener stopped unexpectedly"))),
            Err(err) => Err(Failure::runtime(format!("a listener task failed: {err}"))),
        },
    };

    info!(
        grace_period_ms = config.shutdown_grace.as_millis() as u64,
        "shutting down: draining requests in flight"
    );
    let _ = shutdown_tx.send(true);
    let drained = tokio::time::timeout(config.shutdown_grace, async {
        while servers.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!("grace period over; closing the remaining connections");
        servers.shutdown().await;
    }
    // The meter flushes what it counted since its last tick before the store closes.
    let _ = meter.await;
    store.close().await;
    if !handed_over {
        let _ = std::fs::remove_file(&control_path);
    }
    info!("stopped");
    outcome
}

/// Serves each of `listeners` with its app until `shutdown`.
fn spawn_http(
    servers: &mut JoinSet<(&'static str, std::io::Result<()>)>,
    listeners: Vec<(&'static str, TcpListener)>,
    apps: &[(&'static str, Router)],
    header_timeout: std::time::Duration,
    shutdown: &watch::Receiver<bool>,
) {
    for (name, listener) in listeners {
        let Some((_, app)) = apps.iter().find(|(app_name, _)| *app_name == name).cloned() else {
            continue;
        };
        let shutdown = shutdown.clone();
        servers.spawn(async move {
            serve_app(listener, app, header_timeout, shutdown).await;
            (name, Ok(()))
        });
    }
}

/// Serves `app` on `listener` (HTTP/1.1 and h2c, with upgrades) until `shutdown`, then drains
/// the connections as the edge does.
async fn serve_app(
    listener: TcpListener,
    app: Router,
    header_timeout: std::time::Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    use hyper_util::rt::TokioIo;
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let builder = veloflux_edge::connection_builder(header_timeout);
    let stop = async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    };
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = veloflux_edge::accept(&listener) => accepted,
            () = &mut stop => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
            app.clone().oneshot(request)
        });
        let connection = graceful.watch(
            builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .into_owned(),
        );
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, peer = %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    veloflux_edge::drain(graceful).await;
}

/// A router that forwards to whatever router `slot` holds at the time of each request.
fn switchable(slot: &Arc<RwLock<Router>>) -> Router {
    let slot = Arc::clone(slot);
    Router::new().fallback_service(tower::service_fn(move |request: axum::extract::Request| {
        let router = slot.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        router.oneshot(request)
    }))
}

/// The API listener's own layers: authentication, CORS, rate limits.
type ApiLayers = Box<dyn FnOnce(Router) -> Router + Send>;

/// Everything that must be true before the server reports ready; returns the full API
/// router and its layers.
async fn prepare(
    config: &Config,
    store: &Store,
    system: &System,
    edge: &Arc<veloflux_edge::Edge>,
    secret: Arc<SecretKey>,
    events: &veloflux_events::EventBus,
) -> Result<(Router, ApiLayers), Failure> {
    let applied = store
        .migrate()
        .await
        .map_err(|e| Failure::runtime(format!("migration failed: {}", chain(&e))))?;
    info!(applied, "database migrations applied");
    store
        .ensure_default_tenant()
        .await
        .map_err(|e| Failure::runtime(chain(&e)))?;
    if let Some((email, password)) = &config.bootstrap_admin {
        let admins = store
            .count_platform_admins()
            .await
            .map_err(|e| Failure::runtime(chain(&e)))?;
        if admins == 0 {
            let user = veloflux_identity::create_platform_admin(store, email.clone(), password.clone())
                .await
                .map_err(|e| Failure::runtime(format!("cannot create the bootstrap admin: {}", chain(&e))))?;
            info!(user_id = %user.id, email = %user.email, "created the bootstrap platform admin");
        }
    }

    let tokens = veloflux_identity::load_tokens(store.clone(), Arc::clone(&secret), config.tokens.clone())
        .await
        .map_err(|e| Failure::runtime(format!("cannot load the token signing keys: {}", chain(&e))))?;
    let mailer = match &config.smtp {
        Some(smtp) => Mailer::smtp(smtp, &config.mail_from),
        None => Mailer::outbox(config.data_dir.join("outbox"), &config.mail_from),
    }
    .map_err(|e| Failure::usage(format!("invalid configuration: smtp: {e}")))?;
    let limiter = RateLimiter::new(config.rate_limits);
    let edge_link = Arc::new(EdgeLink {
        edge: Arc::clone(edge),
        store: store.clone(),
        limits: config.edge_limits,
        secret: Arc::clone(&secret),
        certificates: std::sync::Mutex::new(std::collections::HashMap::new()),
    });
    edge_link
        .apply()
        .await
        .map_err(|e| Failure::runtime(format!("cannot load the edge configuration: {}", chain(&e))))?;
    // Plan changes and changes made on other nodes reach this edge within half a minute.
    let refresher = Arc::clone(&edge_link);
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(std::time::Duration::from_secs(30));
        ticker.tick().await;
        loop {
            ticker.tick().await;
            if let Err(err) = refresher.apply().await {
                warn!(error = %chain(&err), "periodic edge reload failed");
            }
        }
    });
    let edge_link: Arc<dyn EdgeControl> = edge_link;
    let identity = IdentityState::new(
        store.clone(),
        Arc::clone(&tokens),
        Arc::clone(&secret),
        mailer,
        limiter.clone(),
        IdentitySettings {
            public_url: config.public_url.clone(),
            magic_link_ttl: config.magic_link_ttl,
            lockout: config.lockout,
            oidc_allow_private_targets: config.oidc_allow_private_targets,
        },
    )
    .await
    .map_err(|e| Failure::runtime(format!("cannot initialise identity: {e}")))?;

    let document = openapi::DocumentCell::new(OnceLock::new());
    let (api, api_doc) = OpenApiRouter::with_openapi(openapi::base())
        .merge(veloflux_api::system::router(system.clone()))
        .merge(veloflux_identity::router(identity))
        .merge(veloflux_routing::router(RoutingState::new(
            store.clone(),
            edge_link,
            Arc::clone(&secret),
            events.clone(),
        )))
        .merge(openapi::router(Arc::clone(&document)))
        .split_for_parts();
    let (_, admin_doc) =
        veloflux_api::admin::router(AdminState::new(system.clone(), serde_json::Value::Null)).split_for_parts();
    let (_, metrics_doc) = veloflux_api::admin::metrics_router(system.clone()).split_for_parts();
    let mut doc = api_doc;
    doc.merge(admin_doc);
    doc.merge(metrics_doc);
    let _ = document.set(serde_json::to_string(&openapi::finish(doc)).unwrap_or_default());

    let authenticator: Arc<dyn veloflux_api::Authenticator> = tokens;
    let cors = veloflux_api::cors::CorsPolicy::new(config.cors_allowed_origins.clone(), store.clone());
    let layers: ApiLayers = Box::new(move |router: Router| {
        router
            .layer(axum::middleware::from_fn_with_state(
                limiter,
                veloflux_api::ratelimit::per_token,
            ))
            .layer(axum::middleware::from_fn_with_state(cors, veloflux_api::cors::cors))
            .layer(axum::Extension(AuthenticatorHandle(authenticator)))
    });
    Ok((api, layers))
}

/// Reports a listener healthy when it accepts a connection (the edge's, for `/health`'s
/// `load_balancer` component).
struct ListenerProbe {
    name: &'static str,
    addr: SocketAddr,
}

impl veloflux_api::system::HealthProbe for ListenerProbe {
    fn name(&self) -> &'static str {
        self.name
    }

    fn check(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + '_>> {
        Box::pin(async move {
            let mut target = self.addr;
            if target.ip().is_unspecified() {
                target.set_ip(if target.is_ipv4() {
                    std::net::Ipv4Addr::LOCALHOST.into()
                } else {
                    std::net::Ipv6Addr::LOCALHOST.into()
                });
            }
            tokio::net::TcpStream::connect(target)
                .await
                .map(drop)
                .map_err(|e| format!("{target}: {e}"))
        })
    }
}

/// Flushes the edge's per-route traffic to `usage_events` every `interval`, and once more
/// at shutdown.
async fn meter_loop(
    edge: Arc<veloflux_edge::Edge>,
    store: Store,
    interval: std::time::Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut since = chrono::Utc::now();
    let mut ticker = tokio::time::interval(interval);
    ticker.tick().await;
    loop {
        let stopping = tokio::select! {
            _ = ticker.tick() => false,
            _ = shutdown.wait_for(|stop| *stop) => true,
        };
        let now = chrono::Utc::now();
        let events: Vec<veloflux_store::UsageEvent> = edge
            .take_usage()
            .into_iter()
            .filter_map(|usage| {
                let count = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
                let classes = usage.traffic.requests_by_class;
                Some(veloflux_store::UsageEvent {
                    tenant_id: veloflux_domain::TenantId::parse(&usage.tenant_id).ok()?,
                    route_id: Some(usage.route_id),
                    period_start: since,
                    period_end: now,
                    requests: count(usage.traffic.requests()),
                    bytes_in: count(usage.traffic.bytes_in),
                    bytes_out: count(usage.traffic.bytes_out),
                    status_classes: [
                        count(classes[1]),
                        count(classes[2]),
                        count(classes[3]),
                        count(classes[4]),
                    ],
                })
            })
            .collect();
        if !events.is_empty() {
            match store.record_usage(&events).await {
                Ok(()) => tracing::debug!(routes = events.len(), "usage flushed"),
                Err(err) => error!(error = %chain(&err), "could not flush usage; it is lost for this period"),
            }
        }
        since = now;
        if stopping {
            break;
        }
    }
}

/// Publishes the edge's health changes as `backend.health_changed` events, in the seed's
/// payload.
async fn publish_health_changes(
    mut changes: tokio::sync::broadcast::Receiver<veloflux_edge::HealthEvent>,
    events: veloflux_events::EventBus,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        let change = match changes.recv().await {
            Ok(change) => change,
            Err(RecvError::Lagged(missed)) => {
                warn!(
                    missed,
                    "backend health changes were dropped before they could be published"
                );
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        let data = serde_json::json!({
            "backend": {
                "id": change.backend_id,
                "address": change.address,
                "pool": change.pool,
                "previous_status": change.previous.as_str(),
                "current_status": change.current.as_str(),
                "health_check_details": {
                    "path": change.path,
                    "response_time": change.response_time_ms,
                    "status_code": change.status_code,
                    "error": change.error,
                },
            }
        });
        events.publish(veloflux_events::Event::new(
            "backend.health_changed",
            Some(change.tenant_id),
            data,
        ));
    }
}

/// Connects the configuration API to the running edge: every change rebuilds the edge's
/// configuration from the store.
struct EdgeLink {
    edge: Arc<veloflux_edge::Edge>,
    store: Store,
    limits: [veloflux_edge::TenantLimits; 3],
    secret: Arc<SecretKey>,
    /// Parsed certificates by id, so that a reload does not parse every chain again.
    certificates: std::sync::Mutex<std::collections::HashMap<String, Arc<rustls::sign::CertifiedKey>>>,
}

impl EdgeLink {
    async fn apply(&self) -> Result<(), veloflux_store::StoreError> {
        let rows = self.store.edge_rows().await?;
        let pools = rows
            .pools
            .iter()
            .map(|pool| veloflux_edge::PoolConfig {
                id: pool.id.clone(),
                tenant_id: pool.tenant_id.to_string(),
                name: pool.name.clone(),
                algorithm: pool.algorithm,
                sticky_sessions: pool.sticky_sessions,
                health_check: pool.health_check.clone(),
                timeouts: pool.timeouts,
                backends: rows
                    .backends
                    .iter()
                    .filter(|b| b.pool_id == pool.id)
                    .map(|b| veloflux_edge::BackendConfig {
                        id: b.id.clone(),
                        address: b.address.clone(),
                        weight: b.weight.get(),
                        health_check: b.health_check.clone(),
                    })
                    .collect(),
            })
            .collect();
        let routes = rows
            .routes
            .iter()
            .map(|r| veloflux_edge::RouteConfig {
                id: r.id.clone(),
                tenant_id: r.tenant_id.to_string(),
                host: r.host.clone(),
                path_prefix: r.path_prefix.clone(),
                pool_id: r.pool_id.clone(),
                ssl_enabled: r.ssl_enabled,
            })
            .collect();
        let tenant_limits = rows
            .plans
            .iter()
            .map(|(tenant, plan)| veloflux_edge::TenantLimitsEntry {
                tenant_id: tenant.to_string(),
                limits: match plan {
                    veloflux_domain::Plan::Free => self.limits[0],
                    veloflux_domain::Plan::Professional => self.limits[1],
                    veloflux_domain::Plan::Enterprise => self.limits[2],
                },
            })
            .collect();
        let certificates = self.certificates(&rows.certificates);
        self.edge.apply(&veloflux_edge::EdgeConfig {
            pools,
            routes,
            tenant_limits,
            certificates,
        });
        Ok(())
    }

    /// The stored certificates as the edge serves them. One that cannot be opened or parsed
    /// (it was checked on upload, so only a changed secret key does this) is logged and left
    /// out rather than stopping the others.
    fn certificates(&self, rows: &[veloflux_store::CertificateRow]) -> Vec<veloflux_edge::CertificateConfig> {
        let mut cache = self
            .certificates
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cache.retain(|id, _| rows.iter().any(|row| &row.id == id));
        let mut served = Vec::new();
        for row in rows {
            let key = match cache.get(&row.id) {
                Some(key) => Arc::clone(key),
                None => {
                    let parsed = self
                        .secret
                        .open(&row.private_key_sealed)
                        .map_err(|e| e.to_string())
                        .and_then(|key| String::from_utf8(key).map_err(|e| e.to_string()))
                        .and_then(|key| veloflux_tls::parse(&row.chain_pem, &key).map_err(|e| e.to_string()));
                    match parsed {
                        Ok(certificate) => {
                            cache.insert(row.id.clone(), Arc::clone(&certificate.key));
                            certificate.key
                        }
                        Err(err) => {
                            warn!(certificate_id = %row.id, error = %err, "a stored certificate cannot be used; skipped");
                            continue;
                        }
                    }
                }
            };
            served.push(veloflux_edge::CertificateConfig {
                id: row.id.clone(),
                tenant_id: row.tenant_id.to_string(),
                hostnames: row.hostnames.clone(),
                key,
                not_after: row.not_after.into(),
            });
        }
        served
    }
}

impl EdgeControl for EdgeLink {
    fn reload(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), veloflux_store::StoreError>> + Send + '_>> {
        Box::pin(self.apply())
    }

    fn backend_status(&self, backend_id: &str) -> &'static str {
        self.edge
            .backend_health(backend_id)
            .map_or("unknown", veloflux_edge::Health::as_str)
    }
}

/// The platform secret key: configured, or kept in the data directory (created on first
/// start, with a warning, because losing it makes sealed secrets unreadable).
fn secret_key(config: &Config) -> Result<SecretKey, Failure> {
    if let Some(encoded) = &config.secret_key {
        return SecretKey::from_base64(encoded)
            .map_err(|e| Failure::usage(format!("invalid configuration: secrets.key: {e}")));
    }
    let file = config.data_dir.join("keys").join("secret.key");
    let (key, origin) = SecretKey::load_or_generate(&file).map_err(|e| Failure::runtime(e.to_string()))?;
    if origin == KeyOrigin::Generated {
        warn!(file = %file.display(), "generated a new secret key for data at rest; back it up, or set VELOFLUX_SECRET_KEY");
    }
    Ok(key)
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => info!("received Ctrl-C"),
        () = terminate => info!("received SIGTERM"),
    }
}
