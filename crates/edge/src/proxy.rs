//! The request path: find the route, pick a backend, forward the request, stream the answer
//! back. No database, no locks: a snapshot `Arc`, atomics and the upstream connection pool.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::header::{
    CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, COOKIE, HOST, HeaderName, HeaderValue, SET_COOKIE, TRANSFER_ENCODING,
    UPGRADE,
};
use http::{HeaderMap, Request, Response, StatusCode, Uri, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;

use crate::Edge;
use crate::backend::InFlight;
use crate::upstream::{Upstream, UpstreamError};

/// The body type of every response the edge writes.
pub type EdgeBody = BoxBody<Bytes, BoxError>;

/// The error of a body the edge passes on.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// Headers that describe one connection, never forwarded (RFC 9110 section 7.6.1).
const HOP_BY_HOP: [HeaderName; 8] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    http::header::PROXY_AUTHENTICATE,
    http::header::TE,
    http::header::TRAILER,
    TRANSFER_ENCODING,
    UPGRADE,
];

/// Requests seen, for access-log sampling.
static ACCESS_LOG_COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Serves one request.
pub(crate) async fn handle(
    edge: Arc<Edge>,
    client: &Arc<Upstream>,
    request: Request<Incoming>,
    peer: SocketAddr,
    scheme: &'static str,
    ambiguous: Option<&'static str>,
) -> Response<EdgeBody> {
    // The id travels as one shared header value: to the backend, into the answer, and as
    // text into error bodies and the access log.
    let id_value = match request.headers().get(&REQUEST_ID) {
        Some(value) if value.to_str().is_ok_and(valid_request_id) => value.clone(),
        _ => next_request_id(),
    };
    let request_id = id_value.to_str().unwrap_or("-");
    let http1 = request.version() <= Version::HTTP_11;
    let sample = edge.settings.access_log_one_in;
    let logged = sample != 0
        && tracing::enabled!(target: "veloflux::access", tracing::Level::INFO)
        && ACCESS_LOG_COUNTER
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .is_multiple_of(u64::from(sample));
    let context = logged.then(|| {
        (
            request.method().clone(),
            request.uri().path().to_owned(),
            host_of(&request),
            std::time::Instant::now(),
        )
    });
    let mut response = match ambiguous {
        // Refused whatever the host: the head was read by the connection's framing scanner.
        Some(problem) => bad_framing(problem, request_id),
        None => forward(&edge, client, request, peer, scheme, &id_value).await,
    };
    if let Some((method, path, host, started)) = context {
        tracing::info!(
            target: "veloflux::access",
            request_id = %request_id,
            client = %peer.ip(),
            method = %method,
            host = host.as_deref().unwrap_or("-"),
            path = %path,
            status = response.status().as_u16(),
            duration_ms = started.elapsed().as_secs_f64() * 1e3,
            "edge request"
        );
    }
    response.headers_mut().insert(REQUEST_ID, id_value.clone());
    if http1
        && response.status() != StatusCode::SWITCHING_PROTOCOLS
        && edge.draining.load(std::sync::atomic::Ordering::Relaxed)
    {
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

async fn forward(
    edge: &Edge,
    client: &Arc<Upstream>,
    request: Request<Incoming>,
    peer: SocketAddr,
    scheme: &'static str,
    id_value: &HeaderValue,
) -> Response<EdgeBody> {
    let request_id = id_value.to_str().unwrap_or("-");
    let Some(host) = host_of(&request) else {
        return error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            "the request names no host",
            request_id,
        );
    };
    // The route (and through it its pool) is all the request keeps of the snapshot: one
    // reference count, not two, on memory every worker shares.
    let route = edge.snapshot.load().route(&host, request.uri().path()).cloned();
    let Some(route) = route else {
        return error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            &format!("no route for host {host}"),
            request_id,
        );
    };
    if route.ssl_enabled && scheme == "http" {
        return to_https(edge, &host, request.uri(), request_id);
    }
    if let Some(problem) = framing_problem(request.headers()) {
        return bad_framing(problem, request_id);
    }
    let mut slot = match route.limiter.as_ref().map(crate::limits::TenantLimiter::admit) {
        Some(Err(refusal)) => {
            route.metrics.count(None, 429);
            return limited(refusal, request_id);
        }
        Some(Ok(slot)) => Some(slot),
        None => None,
    };
    if wants_upgrade(&request) {
        // Boxed: a rare path whose state would otherwise enlarge every request's future.
        return Box::pin(upgrade(
            edge, client, request, &route, peer, scheme, &host, request_id, slot,
        ))
        .await;
    }
    if let Some(length) = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        && length > edge.settings.max_request_body_bytes
    {
        return too_large(edge.settings.max_request_body_bytes, request_id);
    }
    route.pool.earn_retry();
    let bodiless = is_bodiless(request.headers());
    let chunked = request.headers().contains_key(TRANSFER_ENCODING);
    let (mut parts, body) = request.into_parts();
    // A chunked body is checked up to its first chunk before anything is sent upstream, so
    // that a malformed one never reaches a backend.
    let body = if chunked {
        let mut body = body;
        match body.frame().await {
            Some(Ok(first)) => Prefetched {
                first: Some(first),
                rest: body,
            }
            .map_err(BoxError::from)
            .boxed(),
            Some(Err(_)) => return bad_framing("malformed chunked body", request_id),
            None => empty(),
        }
    } else {
        body.map_err(BoxError::from).boxed()
    };
    // A chunked body announces no length, so the size limit is applied as it streams: past
    // the limit the upstream request is aborted (the backend never sees a complete body) and
    // the client gets 413.
    let oversized = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let limit = chunked.then(|| Limit {
        left: edge.settings.max_request_body_bytes,
        tripped: Arc::clone(&oversized),
    });
    strip_hop_by_hop(&mut parts.headers);
    add_forwarding(&mut parts.headers, peer, scheme, &host);
    parts.headers.insert(REQUEST_ID, id_value.clone());
    let idempotent = matches!(
        parts.method,
        http::Method::GET
            | http::Method::HEAD
            | http::Method::OPTIONS
            | http::Method::PUT
            | http::Method::DELETE
            | http::Method::TRACE
    );
    let pinned = route
        .pool
        .pinned(parts.headers.get(COOKIE).and_then(|v| v.to_str().ok()));
    // Another attempt is possible for a bodiless request when another backend could take it.
    let attempts = if bodiless && route.pool.backends.len() > 1 {
        1 + edge.settings.retries
    } else {
        1
    };
    let body = if bodiless {
        empty()
    } else {
        Metered {
            inner: body,
            counter: route.metrics.bytes_in.clone(),
            limit,
            _guard: None,
            _slot: None,
        }
        .boxed()
    };
    let mut next = Some(Request::new(body));
    if let Some(upstream) = next.as_mut() {
        *upstream.method_mut() = parts.method;
        *upstream.uri_mut() = origin_form(parts.uri);
        *upstream.headers_mut() = parts.headers;
        if !upstream.headers().contains_key(HOST)
            && let Ok(value) = HeaderValue::from_str(&host)
        {
            upstream.headers_mut().insert(HOST, value);
        }
    }
    let mut avoid: Option<String> = None;

    for attempt in 0..attempts {
        let Some(upstream) = next.take() else { break };
        let chosen = match &pinned {
            Some(backend) if attempt == 0 => Some(Arc::clone(backend)),
            _ => route.pool.pick(peer.ip(), avoid.as_deref()),
        };
        let Some(backend) = chosen else {
            route.metrics.count(None, 503);
            let message = format!("no healthy backend in pool {}", route.pool.name);
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "SERVICE_UNAVAILABLE",
                &message,
                request_id,
            );
        };
        let index = route.pool.backends.iter().position(|b| Arc::ptr_eq(b, &backend));
        if attempt > 0 {
            edge.metrics.retry(&route.pool.name);
        }
        // An idempotent request may be sent again after a backend failed it; the copy is
        // made only when another attempt can follow.
        let copy = (idempotent && attempt + 1 < attempts).then(|| bodiless_copy(&upstream));

        let guard = route.pool.counts_in_flight().then(|| backend.begin());
        let started = Instant::now();
        let timeouts = route.pool.timeouts;
        match tokio::time::timeout(
            timeouts.response.unwrap_or(edge.settings.response_timeout),
            client.send(&backend.authority, upstream, true, timeouts.connect),
        )
        .await
        {
            Ok(Ok(response)) => {
                let elapsed = started.elapsed();
                // Only the adaptive balancer reads latency; other pools skip the shared write.
                if route.pool.algorithm == veloflux_domain::Algorithm::AdaptiveAi {
                    backend.observe(elapsed);
                }
                route.metrics.duration.observe(elapsed.as_secs_f64());
                route.metrics.count(index, response.status().as_u16());
                if response.status().is_server_error() {
                    backend.record_failure(false);
                } else {
                    backend.record_success();
                }
                let (mut head, body) = response.into_parts();
                strip_hop_by_hop(&mut head.headers);
                let repin = pinned.as_ref().is_none_or(|p| p.id != backend.id);
                if repin
                    && let Some(cookie) = route.pool.pin_cookie(&backend)
                    && let Ok(value) = HeaderValue::from_str(&cookie)
                {
                    head.headers.append(SET_COOKIE, value);
                }
                let counter = route.metrics.bytes_out.clone();
                return Response::from_parts(
                    head,
                    Metered {
                        inner: body,
                        counter,
                        limit: None,
                        _guard: guard,
                        _slot: slot.take(),
                    }
                    .boxed(),
                );
            }
            Ok(Err(_)) if oversized.load(std::sync::atomic::Ordering::Relaxed) => {
                route.metrics.count(index, 413);
                return too_large(edge.settings.max_request_body_bytes, request_id);
            }
            Ok(Err(UpstreamError::Connect { reason, request })) => {
                edge.metrics.connect_error(&route.pool.name, &backend.authority);
                if backend.record_failure(true) {
                    tracing::warn!(backend_id = %backend.id, address = %backend.authority, error = %reason, "backend ejected after failures");
                }
                // Nothing was sent: the same request may go to another backend.
                if attempt + 1 < attempts && route.pool.spend_retry() {
                    next = Some(*request);
                    avoid = Some(backend.id.clone());
                    continue;
                }
                tracing::warn!(backend_id = %backend.id, error = %reason, "backend unreachable");
            }
            Ok(Err(UpstreamError::Exchange(err))) => {
                if backend.record_failure(false) {
                    tracing::warn!(backend_id = %backend.id, address = %backend.authority, error = %err, "backend ejected after failures");
                }
                if let Some(copy) = copy
                    && route.pool.spend_retry()
                {
                    next = Some(copy);
                    avoid = Some(backend.id.clone());
                    continue;
                }
                tracing::warn!(backend_id = %backend.id, error = %err, "upstream request failed");
            }
            Err(_) => {
                backend.record_failure(false);
                route.metrics.count(index, 504);
                return error(
                    StatusCode::GATEWAY_TIMEOUT,
                    "SERVICE_UNAVAILABLE",
                    "the backend did not answer in time",
                    request_id,
                );
            }
        }
        route.metrics.count(index, 502);
        break;
    }
    error(
        StatusCode::BAD_GATEWAY,
        "SERVICE_UNAVAILABLE",
        "the backend could not be reached",
        request_id,
    )
}

/// A body-less copy of `request` for another attempt.
fn bodiless_copy(request: &Request<EdgeBody>) -> Request<EdgeBody> {
    let mut copy = Request::new(empty());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.headers_mut() = request.headers().clone();
    copy
}

/// The request target as a backend wants it: path and query only (HTTP/2 requests carry the
/// scheme and authority in their URI).
fn origin_form(uri: Uri) -> Uri {
    if uri.scheme().is_none() && uri.authority().is_none() {
        return uri;
    }
    uri.path_and_query()
        .map_or_else(|| Uri::from_static("/"), |pq| Uri::from(pq.clone()))
}

/// An empty body (no allocation: the boxed body is zero-sized).
fn empty() -> EdgeBody {
    http_body_util::Empty::new().map_err(|never| match never {}).boxed()
}

/// 413 for a request body over the limit; the connection is closed, as the rest of the body
/// is not read.
fn too_large(limit: u64, request_id: &str) -> Response<EdgeBody> {
    let message = format!("request bodies are limited to {limit} bytes");
    let mut response = error(StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE", &message, request_id);
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Bytes a streamed request body may still carry.
#[derive(Clone)]
struct Limit {
    left: u64,
    tripped: Arc<std::sync::atomic::AtomicBool>,
}

/// The error that aborts a request body over the limit.
#[derive(Debug)]
struct BodyTooLarge;

impl std::fmt::Display for BodyTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body is larger than the limit")
    }
}

impl std::error::Error for BodyTooLarge {}

/// A body that counts the bytes it passes on, enforces a size limit when it has one and, for
/// responses, holds the backend's in-flight count until it is fully sent or the client goes
/// away.
struct Metered<B> {
    inner: B,
    counter: prometheus::IntCounter,
    limit: Option<Limit>,
    _guard: Option<InFlight>,
    _slot: Option<crate::limits::Slot>,
}

impl<B> Body for Metered<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(polled) => polled.map(|frame| frame.map_err(Into::into)),
        };
        if let Some(Ok(frame)) = &polled
            && let Some(data) = frame.data_ref()
        {
            let size = data.len() as u64;
            self.counter.inc_by(size);
            if let Some(limit) = &mut self.limit {
                if size > limit.left {
                    limit.tripped.store(true, std::sync::atomic::Ordering::Relaxed);
                    return Poll::Ready(Some(Err(Box::new(BodyTooLarge))));
                }
                limit.left -= size;
            }
        }
        Poll::Ready(polled)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Whether a request asks to switch protocols (WebSocket): HTTP/1.1 with `Upgrade` and a
/// `Connection` header naming it.
fn wants_upgrade<B>(request: &Request<B>) -> bool {
    request.version() == Version::HTTP_11
        && request.headers().contains_key(UPGRADE)
        && request
            .headers()
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
}

/// Proxies a protocol switch: the upgrade request goes to a backend as is; when it agrees
/// (101), bytes flow both ways until either side closes or the tunnel is idle too long.
#[allow(clippy::too_many_arguments, reason = "the request path's context, passed once")]
async fn upgrade(
    edge: &Edge,
    client: &Arc<Upstream>,
    mut request: Request<Incoming>,
    route: &crate::snapshot::RouteEntry,
    peer: SocketAddr,
    scheme: &'static str,
    host: &str,
    request_id: &str,
    mut slot: Option<crate::limits::Slot>,
) -> Response<EdgeBody> {
    let pinned = route
        .pool
        .pinned(request.headers().get(COOKIE).and_then(|v| v.to_str().ok()));
    let Some(backend) = pinned.or_else(|| route.pool.pick(peer.ip(), None)) else {
        let message = format!("no healthy backend in pool {}", route.pool.name);
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVICE_UNAVAILABLE",
            &message,
            request_id,
        );
    };
    let downstream = hyper::upgrade::on(&mut request);
    let protocol = request.headers().get(UPGRADE).cloned();
    let (mut parts, _) = request.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    add_forwarding(&mut parts.headers, peer, scheme, host);
    if let Some(protocol) = protocol {
        parts.headers.insert(UPGRADE, protocol);
        parts.headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    }
    let mut upstream = Request::new(empty());
    *upstream.method_mut() = parts.method;
    *upstream.uri_mut() = origin_form(parts.uri);
    *upstream.headers_mut() = parts.headers;
    let guard = backend.begin();
    // A protocol switch takes a connection of its own, never reused afterwards.
    let timeouts = route.pool.timeouts;
    let sent = client.send(&backend.authority, upstream, false, timeouts.connect);
    let response_timeout = timeouts.response.unwrap_or(edge.settings.response_timeout);
    let mut response = match tokio::time::timeout(response_timeout, sent).await {
        Ok(Ok(response)) => response,
        Ok(Err(err)) => {
            backend.record_failure(matches!(err, UpstreamError::Connect { .. }));
            return error(
                StatusCode::BAD_GATEWAY,
                "SERVICE_UNAVAILABLE",
                "the backend could not be reached",
                request_id,
            );
        }
        Err(_) => {
            return error(
                StatusCode::GATEWAY_TIMEOUT,
                "SERVICE_UNAVAILABLE",
                "the backend did not answer in time",
                request_id,
            );
        }
    };
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        let (mut head, body) = response.into_parts();
        strip_hop_by_hop(&mut head.headers);
        let counter = route.metrics.bytes_out.clone();
        return Response::from_parts(
            head,
            Metered {
                inner: body,
                counter,
                limit: None,
                _guard: Some(guard),
                _slot: slot.take(),
            }
            .boxed(),
        );
    }
    backend.record_success();
    let upstream = hyper::upgrade::on(&mut response);
    let idle = edge.settings.tunnel_idle_timeout;
    tokio::spawn(async move {
        let (_guard, _slot) = (guard, slot);
        match tokio::try_join!(downstream, upstream) {
            Ok((client, server)) => tunnel(TokioIo::new(client), TokioIo::new(server), idle).await,
            Err(err) => tracing::debug!(error = %err, "protocol switch did not complete"),
        }
    });
    let (head, _) = response.into_parts();
    Response::from_parts(head, empty())
}

/// Copies bytes both ways until one side closes or nothing moves for `idle`.
async fn tunnel<A, B>(client: A, server: B, idle: std::time::Duration)
where
    A: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    B: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let (mut server_read, mut server_write) = tokio::io::split(server);
    let (mut up, mut down) = (vec![0u8; 16 * 1024], vec![0u8; 16 * 1024]);
    let deadline = tokio::time::sleep(idle);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            read = client_read.read(&mut up) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => if server_write.write_all(&up[..n]).await.is_err() { break },
            },
            read = server_read.read(&mut down) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => if client_write.write_all(&down[..n]).await.is_err() { break },
            },
            () = &mut deadline => {
                tracing::debug!("closing an idle tunnel");
                break;
            }
        }
        deadline.as_mut().reset(tokio::time::Instant::now() + idle);
    }
    let _ = server_write.shutdown().await;
    let _ = client_write.shutdown().await;
}

/// A body whose first frame was read ahead.
struct Prefetched {
    first: Option<Frame<Bytes>>,
    rest: Incoming,
}

impl Body for Prefetched {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(first)));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.rest.is_end_stream()
    }
}

/// Why a request's framing is ambiguous, if it is: the classic request-smuggling shapes
/// (both lengths, several lengths, odd lengths, transfer codings that do not end in
/// `chunked`). Such requests are refused, never normalised.
fn framing_problem(headers: &HeaderMap) -> Option<&'static str> {
    let lengths: Vec<&HeaderValue> = headers.get_all(CONTENT_LENGTH).iter().collect();
    let codings: Vec<&HeaderValue> = headers.get_all(TRANSFER_ENCODING).iter().collect();
    if !lengths.is_empty() && !codings.is_empty() {
        return Some("both Content-Length and Transfer-Encoding");
    }
    if lengths.len() > 1 {
        return Some("more than one Content-Length");
    }
    if let Some(length) = lengths.first()
        && (length.is_empty() || !length.as_bytes().iter().all(u8::is_ascii_digit))
    {
        return Some("invalid Content-Length");
    }
    if !codings.is_empty() {
        let mut tokens = Vec::new();
        for value in codings {
            let Ok(text) = value.to_str() else {
                return Some("invalid Transfer-Encoding");
            };
            tokens.extend(text.split(',').map(|t| t.trim().to_ascii_lowercase()));
        }
        let chunked_last = tokens.last().is_some_and(|t| t == "chunked");
        let chunked_once = tokens.iter().filter(|t| *t == "chunked").count() == 1;
        if !chunked_last || !chunked_once || tokens.iter().any(String::is_empty) {
            return Some("Transfer-Encoding must end with a single chunked");
        }
    }
    None
}

/// 308 to the same host and path over HTTPS, for a route that is served over HTTPS only.
fn to_https(edge: &Edge, host: &str, uri: &Uri, request_id: &str) -> Response<EdgeBody> {
    let port = edge.https_port.load(std::sync::atomic::Ordering::Relaxed);
    let path = uri.path_and_query().map_or("/", http::uri::PathAndQuery::as_str);
    let location = if port == 443 {
        format!("https://{host}{path}")
    } else {
        format!("https://{host}:{port}{path}")
    };
    let Ok(location) = HeaderValue::from_str(&location) else {
        return error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            "invalid request target",
            request_id,
        );
    };
    let mut response = error(
        StatusCode::PERMANENT_REDIRECT,
        "HTTPS_REQUIRED",
        "this route is served over HTTPS only",
        request_id,
    );
    response.headers_mut().insert(http::header::LOCATION, location);
    response
}

/// 429 for a tenant over its edge limit, with the rate-limit headers of the API.
fn limited(refusal: crate::limits::Refusal, request_id: &str) -> Response<EdgeBody> {
    let message = format!(
        "the tenant's edge limit of {} is exceeded; retry in {} s",
        refusal.limit, refusal.retry_after
    );
    let mut response = error(
        StatusCode::TOO_MANY_REQUESTS,
        "RATE_LIMIT_EXCEEDED",
        &message,
        request_id,
    );
    let reset = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + refusal.retry_after;
    let headers = response.headers_mut();
    headers.insert("retry-after", HeaderValue::from(refusal.retry_after));
    headers.insert("x-ratelimit-limit", HeaderValue::from(refusal.limit));
    headers.insert("x-ratelimit-remaining", HeaderValue::from(0));
    headers.insert("x-ratelimit-reset", HeaderValue::from(reset));
    headers.insert("x-ratelimit-window", HeaderValue::from(1));
    response
}

fn bad_framing(problem: &str, request_id: &str) -> Response<EdgeBody> {
    let mut response = error(
        StatusCode::BAD_REQUEST,
        "VALIDATION_ERROR",
        &format!("ambiguous request framing: {problem}"),
        request_id,
    );
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

/// The host a request is for: the `Host` header, or the authority of an HTTP/2 request;
/// lower case, without the port.
fn host_of<B>(request: &Request<B>) -> Option<String> {
    let raw = request
        .headers()
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.as_str().to_owned()))?;
    let host = if raw.starts_with('[') {
        raw.split(']').next().map(|h| format!("{h}]"))?
    } else {
        raw.split(':').next()?.to_owned()
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

fn is_bodiless(headers: &HeaderMap) -> bool {
    !headers.contains_key(TRANSFER_ENCODING)
        && headers
            .get(CONTENT_LENGTH)
            .is_none_or(|v| v.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok()) == Some(0))
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none: one pass over the names, no lookups.
    if !headers.keys().any(|name| HOP_BY_HOP.contains(name)) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

fn add_forwarding(headers: &mut HeaderMap, peer: SocketAddr, scheme: &'static str, host: &str) {
    use std::fmt::Write as _;
    let ip = peer.ip();
    let mut text = String::with_capacity(96);
    if let Some(existing) = headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        let _ = write!(text, "{existing}, ");
    }
    let _ = write!(text, "{ip}");
    if let Ok(value) = HeaderValue::from_maybe_shared(Bytes::from(std::mem::take(&mut text))) {
        headers.insert(X_FORWARDED_FOR, value);
    }
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(scheme));
    // The host as the client named it (with its port), without a copy when it came as Host.
    let original = headers.get(HOST).cloned();
    match original {
        Some(value) => {
            headers.insert(X_FORWARDED_HOST, value);
        }
        None => {
            if let Ok(value) = HeaderValue::from_str(host) {
                headers.insert(X_FORWARDED_HOST, value);
            }
        }
    }
    let _ = if peer.is_ipv6() {
        write!(text, "for=\"[{ip}]\";host={host};proto={scheme}")
    } else {
        write!(text, "for={ip};host={host};proto={scheme}")
    };
    if let Ok(value) = HeaderValue::from_maybe_shared(Bytes::from(text)) {
        headers.append(FORWARDED, value);
    }
}

/// A new request id: `req_` and 32 hex digits, unique per process start (a random base) and
/// per request (a counter), without a clock read or a random draw on the request path.
fn next_request_id() -> HeaderValue {
    use std::sync::atomic::{AtomicU64, Ordering};
    static BASE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let base = *BASE.get_or_init(|| uuid::Uuid::new_v4().as_u64_pair().0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let id = format!("req_{base:016x}{n:016x}");
    HeaderValue::from_maybe_shared(Bytes::from(id)).unwrap_or_else(|_| HeaderValue::from_static("req_unknown"))
}

fn valid_request_id(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
}

/// The standard error body (see the API crate's `ErrorBody`), written by the edge itself,
/// which does not depend on the API crate.
pub(crate) fn error(status: StatusCode, code: &str, message: &str, request_id: &str) -> Response<EdgeBody> {
    let body = serde_json::json!({
        "error": true,
        "code": code,
        "message": message,
        "timestamp": veloflux_tls::rfc3339(std::time::SystemTime::now()),
        "request_id": request_id,
    });
    let mut response = Response::new(
        Full::new(Bytes::from(body.to_string()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_named_in_connection_are_removed() {
        let mut headers = HeaderMap::new();
        headers.insert(CONNECTION, HeaderValue::from_static("keep-alive, x-secret-hop"));
        headers.insert("x-secret-hop", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        headers.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key("x-kept"));
    }

    #[test]
    fn ambiguous_framing_is_named() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.append(*name, HeaderValue::from_static(value));
            }
            map
        };
        assert_eq!(framing_problem(&headers(&[("content-length", "5")])), None);
        assert_eq!(
            framing_problem(&headers(&[("transfer-encoding", "gzip, chunked")])),
            None
        );
        for bad in [
            headers(&[("content-length", "5"), ("transfer-encoding", "chunked")]),
            headers(&[("content-length", "5"), ("content-length", "5")]),
            headers(&[("content-length", "5, 5")]),
            headers(&[("content-length", "+5")]),
            headers(&[("transfer-encoding", "chunked, identity")]),
            headers(&[("transfer-encoding", "chunked"), ("transfer-encoding", "chunked")]),
            headers(&[("transfer-encoding", "xchunked")]),
        ] {
            assert!(framing_problem(&bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn forwarding_headers_append_to_what_came_before() {
        let mut headers = HeaderMap::new();
        headers.insert(X_FORWARDED_FOR, HeaderValue::from_static("203.0.113.7"));
        add_forwarding(
            &mut headers,
            "10.0.0.2:5000".parse().unwrap(),
            "http",
            "app.example.com",
        );
        assert_eq!(headers[&X_FORWARDED_FOR], "203.0.113.7, 10.0.0.2");
        assert_eq!(headers[&X_FORWARDED_PROTO], "http");
        assert_eq!(headers[&X_FORWARDED_HOST], "app.example.com");
        assert_eq!(headers[&FORWARDED], "for=10.0.0.2;host=app.example.com;proto=http");
    }

    #[test]
    fn hosts_lose_their_port_and_case() {
        let request = Request::get("/").header(HOST, "App.Example.com:8000").body(()).unwrap();
        assert_eq!(host_of(&request).as_deref(), Some("app.example.com"));
        let request = Request::get("http://[::1]:80/").body(()).unwrap();
        assert_eq!(host_of(&request).as_deref(), Some("[::1]"));
    }
}
