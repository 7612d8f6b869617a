//! VeloFlux's edge: the reverse proxy and load balancer.
//!
//! The control plane hands it an [`EdgeConfig`] (plain values) whenever configuration
//! changes; the edge builds an immutable routing [`snapshot::Snapshot`] and swaps it in
//! atomically, so requests in flight finish on the configuration they started with. Backend
//! state (health, requests in flight, latency) lives in atomics shared across snapshots. The
//! request path never awaits the database and takes no lock.
//!
//! This crate must not depend on sqlx, axum, the store or the API crate.

pub mod backend;
pub mod balance;
pub mod config;
mod framing;
pub mod health;
pub mod limits;
pub mod metrics;
mod proxy;
pub mod snapshot;
mod upstream;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::broadcast;

pub use backend::Health;
pub use config::{
    BackendConfig, CertificateConfig, EdgeConfig, PoolConfig, RouteConfig, TenantLimits, TenantLimitsEntry,
};
pub use health::HealthEvent;
pub use proxy::EdgeBody;

/// Timeouts and retries of the proxy.
#[derive(Debug, Clone, Copy)]
pub struct EdgeSettings {
    /// Time to open a connection to a backend.
    pub connect_timeout: Duration,
    /// Time for a backend to send its response head.
    pub response_timeout: Duration,
    /// Extra attempts on another backend after a connect failure, for requests without a
    /// body.
    pub retries: u32,
    /// Idle upstream connections kept per backend.
    pub max_idle_per_backend: usize,
    /// How long a WebSocket (or other upgraded) tunnel may carry nothing before it is closed.
    pub tunnel_idle_timeout: Duration,
    /// Access log: 0 off, 1 every request, N one request in N.
    pub access_log_one_in: u32,
    /// Longest time a client may take to send a request head; the connection is closed
    /// after it.
    pub header_timeout: Duration,
    /// Largest request body accepted (413 above): checked against `Content-Length` before
    /// forwarding, and counted as a chunked body streams.
    pub max_request_body_bytes: u64,
}

/// Secret material of the edge.
#[derive(Clone)]
pub struct EdgeKeys {
    /// Signs sticky-session cookies.
    pub sticky: Vec<u8>,
}

impl std::fmt::Debug for EdgeKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EdgeKeys(***)")
    }
}

impl Default for EdgeSettings {
    fn default() -> Self {
        EdgeSettings {
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(60),
            retries: 1,
            max_idle_per_backend: 256,
            tunnel_idle_timeout: Duration::from_secs(300),
            access_log_one_in: 1,
            max_request_body_bytes: 100 * 1024 * 1024,
            header_timeout: Duration::from_secs(30),
        }
    }
}

/// The running edge.
#[derive(Debug)]
pub struct Edge {
    snapshot: ArcSwap<snapshot::Snapshot>,
    checker: health::HealthChecker,
    settings: EdgeSettings,
    keys: EdgeKeys,
    events: broadcast::Sender<HealthEvent>,
    metrics: metrics::EdgeMetrics,
    metered: std::sync::Mutex<std::collections::HashMap<String, RouteUsage>>,
    limiters: std::sync::Mutex<std::collections::HashMap<String, Arc<limits::TenantLimiter>>>,
    https_port: std::sync::atomic::AtomicU16,
    draining: std::sync::atomic::AtomicBool,
}

/// A route's traffic: cumulative inside the edge, a delta when handed to the meter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Requests by status class (1xx to 5xx).
    pub requests_by_class: [u64; 5],
    /// Request body bytes.
    pub bytes_in: u64,
    /// Response body bytes.
    pub bytes_out: u64,
}

impl Traffic {
    /// Requests in all.
    pub fn requests(&self) -> u64 {
        self.requests_by_class.iter().sum()
    }
}

/// Traffic of one route since the previous meter reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteUsage {
    /// Owner tenant.
    pub tenant_id: String,
    /// Route id.
    pub route_id: String,
    /// The traffic.
    pub traffic: Traffic,
}

impl Edge {
    /// An edge with no routes.
    pub fn new(settings: EdgeSettings, keys: EdgeKeys, registry: Option<&prometheus::Registry>) -> Arc<Edge> {
        let (events, _) = broadcast::channel(1024);
        Arc::new(Edge {
            snapshot: ArcSwap::from_pointee(snapshot::Snapshot::default()),
            checker: health::HealthChecker::new(events.clone()),
            settings,
            keys,
            events,
            metrics: metrics::EdgeMetrics::new(registry),
            metered: std::sync::Mutex::new(std::collections::HashMap::new()),
            limiters: std::sync::Mutex::new(std::collections::HashMap::new()),
            https_port: std::sync::atomic::AtomicU16::new(443),
            draining: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Swaps in a new configuration; must be called inside a Tokio runtime (it starts and
    /// stops health-check tasks).
    pub fn apply(&self, config: &EdgeConfig) {
        let limiters = {
            let mut registry = self.limiters.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            registry.retain(|tenant, _| config.tenant_limits.iter().any(|t| &t.tenant_id == tenant));
            for entry in &config.tenant_limits {
                registry
                    .entry(entry.tenant_id.clone())
                    .and_modify(|limiter| limiter.update(entry.limits))
                    .or_insert_with(|| Arc::new(limits::TenantLimiter::new(entry.limits)));
            }
            registry.clone()
        };
        let next = snapshot::Snapshot::build(
            config,
            &self.snapshot.load(),
            &self.keys.sticky,
            &self.metrics,
            &limiters,
        );
        self.checker.reconcile(&next);
        self.snapshot.store(Arc::new(next));
    }

    /// Health changes as they happen.
    pub fn subscribe(&self) -> broadcast::Receiver<HealthEvent> {
        self.events.subscribe()
    }

    /// The current health of a backend, if the edge knows it.
    pub fn backend_health(&self, backend_id: &str) -> Option<Health> {
        let snapshot = self.snapshot.load();
        snapshot
            .pools
            .values()
            .flat_map(|p| p.backends.iter())
            .find(|b| b.id == backend_id)
            .map(|b| b.health())
    }

    /// Traffic per route since the previous call, for metering; routes without traffic are
    /// left out.
    pub fn take_usage(&self) -> Vec<RouteUsage> {
        let snapshot = self.snapshot.load();
        let mut last = self.metered.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut usage = Vec::new();
        for route in snapshot.routes() {
            let (bytes_in, bytes_out) = route.metrics.bytes();
            let now = Traffic {
                requests_by_class: route.metrics.requests_by_class(),
                bytes_in,
                bytes_out,
            };
            let before = last.get(&route.route_id).map(|u| u.traffic).unwrap_or_default();
            let mut delta = Traffic {
                bytes_in: now.bytes_in.saturating_sub(before.bytes_in),
                bytes_out: now.bytes_out.saturating_sub(before.bytes_out),
                ..Traffic::default()
            };
            for (i, count) in delta.requests_by_class.iter_mut().enumerate() {
                *count = now.requests_by_class[i].saturating_sub(before.requests_by_class[i]);
            }
            last.insert(
                route.route_id.clone(),
                RouteUsage {
                    tenant_id: route.tenant_id.clone(),
                    route_id: route.route_id.clone(),
                    traffic: now,
                },
            );
            if delta.requests() > 0 {
                usage.push(RouteUsage {
                    tenant_id: route.tenant_id.clone(),
                    route_id: route.route_id.clone(),
                    traffic: delta,
                });
            }
        }
        usage
    }

    /// The upstream connections of one worker.
    fn upstream_client(&self) -> Arc<upstream::Upstream> {
        upstream::Upstream::new(self.settings.connect_timeout, self.settings.max_idle_per_backend)
    }

    /// Runs `workers` threads, each with its own single-threaded runtime and its own upstream
    /// connection pool: the nginx worker model, so a request stays on one core. The sockets of
    /// `listeners` (bound with [`bind_reuseport`], one per worker for even spreading) are
    /// dealt out to the workers in turn. Blocks until every worker has drained after
    /// `shutdown`.
    pub fn run_workers(
        self: Arc<Self>,
        listeners: Vec<EdgeListener>,
        workers: usize,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> std::io::Result<()> {
        let tls = Arc::new(
            veloflux_tls::server_config(Arc::new(SniResolver(Arc::clone(&self)))).map_err(std::io::Error::other)?,
        );
        let workers = workers.max(1);
        let mut dealt: Vec<Vec<(std::net::TcpListener, bool)>> = (0..workers).map(|_| Vec::new()).collect();
        for listener in listeners {
            for (index, socket) in listener.sockets.into_iter().enumerate() {
                dealt[index % workers].push((socket, listener.tls));
            }
        }
        let mut threads = Vec::new();
        for (index, sockets) in dealt.into_iter().enumerate() {
            let (edge, shutdown, tls) = (Arc::clone(&self), shutdown.clone(), Arc::clone(&tls));
            let thread = std::thread::Builder::new()
                .name(format!("veloflux-edge-{index}"))
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                    runtime.block_on(async move {
                        let client = edge.upstream_client();
                        let mut served = tokio::task::JoinSet::new();
                        for (socket, tls_enabled) in sockets {
                            let acceptor = tls_enabled.then(|| tokio_rustls::TlsAcceptor::from(Arc::clone(&tls)));
                            socket.set_nonblocking(true)?;
                            let socket = TcpListener::from_std(socket)?;
                            let (edge, client, mut shutdown) =
                                (Arc::clone(&edge), Arc::clone(&client), shutdown.clone());
                            served.spawn(async move {
                                edge.serve(socket, acceptor, client, async move {
                                    let _ = shutdown.wait_for(|stop| *stop).await;
                                })
                                .await;
                            });
                        }
                        while served.join_next().await.is_some() {}
                        Ok::<_, std::io::Error>(())
                    })
                })?;
            threads.push(thread);
        }
        for thread in threads {
            thread
                .join()
                .map_err(|_| std::io::Error::other("an edge worker panicked"))??;
        }
        self.checker.stop();
        Ok(())
    }

    /// Serves `listener` (TLS when `tls` is given: HTTP/2 or HTTP/1.1 by ALPN; plain HTTP/1.1
    /// and h2c otherwise) until `shutdown` resolves, then lets connections finish their
    /// requests (for at most 30 s).
    async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        tls: Option<tokio_rustls::TlsAcceptor>,
        client: Arc<upstream::Upstream>,
        shutdown: impl Future<Output = ()>,
    ) {
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let builder = connection_builder(self.settings.header_timeout);
        let scheme = if tls.is_some() { "https" } else { "http" };
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = accept(&listener) => accepted,
                () = &mut shutdown => break,
            };
            let _ = stream.set_nodelay(true);
            let open = ConnectionCount::new(self.metrics.active_connections.clone());
            let (edge, client) = (Arc::clone(&self), Arc::clone(&client));
            let framing = Arc::new(framing::Framing::new());
            let seen = Arc::clone(&framing);
            let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                let (edge, client) = (Arc::clone(&edge), Arc::clone(&client));
                let ambiguous = seen.next_request();
                // Boxed: hyper keeps the service future's allocation for the life of the
                // connection, so an idle connection holds a pointer, not the request's state.
                let handled: std::pin::Pin<Box<dyn Future<Output = _> + Send>> =
                    Box::pin(async move { proxy::handle(edge, &client, request, peer, scheme, ambiguous).await });
                async move { Ok::<_, std::convert::Infallible>(handled.await) }
            });
            let (builder, watcher) = (builder.clone(), graceful.watcher());
            match &tls {
                None => {
                    let connection = builder
                        .serve_connection_with_upgrades(TokioIo::new(framing::Scanned::new(stream, framing)), service)
                        .into_owned();
                    let connection = watcher.watch(connection);
                    tokio::spawn(async move {
                        let _open = open;
                        if let Err(err) = connection.await {
                            tracing::debug!(error = %err, peer = %peer, "edge connection ended with an error");
                        }
                    });
                }
                Some(acceptor) => {
                    let handshake = acceptor.accept(stream);
                    tokio::spawn(async move {
                        let _open = open;
                        let stream = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, handshake).await {
                            Ok(Ok(stream)) => stream,
                            Ok(Err(err)) => {
                                tracing::debug!(error = %err, peer = %peer, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(peer = %peer, "TLS handshake timed out");
                                return;
                            }
                        };
                        let connection = builder
                            .serve_connection_with_upgrades(
                                TokioIo::new(framing::Scanned::new(stream, framing)),
                                service,
                            )
                            .into_owned();
                        if let Err(err) = watcher.watch(connection).await {
                            tracing::debug!(error = %err, peer = %peer, "edge connection ended with an error");
                        }
                    });
                }
            }
        }
        // Keep-alive clients are told to reconnect (to whoever accepts now) on their next
        // response.
        self.draining.store(true, std::sync::atomic::Ordering::Relaxed);
        drain(graceful).await;
    }

    /// Sets the port HTTP requests to `ssl_enabled` routes are redirected to.
    pub fn set_https_port(&self, port: u16) {
        self.https_port.store(port, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The server side of every HTTP connection the process accepts (edge and API): HTTP/1.1
/// with a limit for a request head to arrive (slow clients cannot hold connections open by
/// trickling headers), or HTTP/2 by preface or ALPN.
pub fn connection_builder(header_timeout: Duration) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_timeout);
    builder
}

/// The next connection of `listener`. A failed accept (say, out of file descriptors) is
/// logged and retried after 50 ms rather than ending the listener.
pub async fn accept(listener: &TcpListener) -> (tokio::net::TcpStream, std::net::SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(accepted) => return accepted,
            Err(err) => {
                tracing::warn!(error = %err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// How long connections keep being served normally after a listener stopped accepting: a
/// connection accepted just before still gets its first request read and answered, and
/// keep-alive clients move to new connections on their next response.
pub const DRAIN_LINGER: Duration = Duration::from_secs(1);

/// Drains the connections `graceful` watches, once their listener stopped accepting: they
/// are served as usual for [`DRAIN_LINGER`] (or until all have closed), then idle ones are
/// closed and busy ones finish their request, for at most 30 s.
pub async fn drain(graceful: hyper_util::server::graceful::GracefulShutdown) {
    let linger = tokio::time::Instant::now() + DRAIN_LINGER;
    while graceful.count() > 0 && tokio::time::Instant::now() < linger {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(Duration::from_secs(30)) => tracing::warn!("connections still open after 30 s; closing"),
    }
}

/// Time a client has to complete a TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// One listening address of the edge.
#[derive(Debug)]
pub struct EdgeListener {
    /// Its sockets, bound with [`bind_reuseport`] (or inherited from a previous process).
    pub sockets: Vec<std::net::TcpListener>,
    /// Whether connections speak TLS.
    pub tls: bool,
}

/// Chooses the certificate of a TLS handshake from the current snapshot, by SNI.
#[derive(Debug)]
struct SniResolver(Arc<Edge>);

impl rustls::server::ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: rustls::server::ClientHello<'_>) -> Option<Arc<rustls::sign::CertifiedKey>> {
        let name = hello.server_name()?;
        let found = self.0.snapshot.load().certificate_for(name);
        if found.is_none() {
            tracing::debug!(server_name = %name, "no certificate for the requested name");
        }
        found
    }
}

/// Counts an open client connection until dropped.
struct ConnectionCount(prometheus::IntGauge);

impl ConnectionCount {
    fn new(gauge: prometheus::IntGauge) -> ConnectionCount {
        gauge.inc();
        ConnectionCount(gauge)
    }
}

impl Drop for ConnectionCount {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Binds `addr` with `SO_REUSEPORT`, so that several workers can listen on the same port
/// (and a new process can take the port over from an old one).
pub fn bind_reuseport(addr: std::net::SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = match addr {
        std::net::SocketAddr::V4(_) => socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?,
        std::net::SocketAddr::V6(_) => socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::STREAM, None)?,
    };
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}
