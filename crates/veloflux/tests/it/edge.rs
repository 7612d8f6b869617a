//! The edge end to end: real upstream servers on loopback, configured through the API.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use serde_json::{Value, json};

use crate::harness::{Server, Session, call, client};

/// A loopback upstream that answers with its name and remembers forwarding headers.
pub(crate) struct Upstream {
    pub(crate) addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
    pub(crate) seen: Arc<Mutex<Vec<HashMap<String, String>>>>,
}

#[derive(Clone)]
struct UpstreamState {
    name: String,
    delay: Duration,
    seen: Arc<Mutex<Vec<HashMap<String, String>>>>,
}

async fn answer(State(state): State<UpstreamState>, headers: HeaderMap) -> String {
    let kept: HashMap<String, String> = [
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "forwarded",
        "host",
        "connection",
    ]
    .iter()
    .filter_map(|name| {
        headers
            .get(*name)
            .map(|v| ((*name).to_owned(), v.to_str().unwrap_or("").to_owned()))
    })
    .collect();
    state.seen.lock().unwrap().push(kept);
    tokio::time::sleep(state.delay).await;
    state.name.clone()
}

pub(crate) async fn upstream(name: &str, delay: Duration) -> Upstream {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let state = UpstreamState {
        name: name.to_owned(),
        delay,
        seen: Arc::clone(&seen),
    };
    let app = axum::Router::new()
        .route("/health", axum::routing::get(|| async { "ok" }))
        .fallback(answer)
        .with_state(state);
    let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Upstream { addr, task, seen }
}

async fn api(server: &Server, session: &Session, method: &str, path: &str, body: Value) -> (u16, Value) {
    call(server, method, path, &session.token, Some(body)).await
}

async fn through_edge(server: &Server, host: &str, path: &str) -> (u16, String) {
    let response = client()
        .get(server.url("edge_http", path))
        .header("host", host)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// A pool with health checks off (backends serve at once), its backends and a route.
pub(crate) async fn setup(
    server: &Server,
    session: &Session,
    pool: &str,
    algorithm: &str,
    host: &str,
    backends: &[(&Upstream, i64)],
) {
    let body = json!({"name": pool, "algorithm": algorithm, "health_check": {"enabled": false}});
    let (status, created) = api(server, session, "POST", "/api/pools", body).await;
    assert_eq!(status, 201, "{created}");
    for (upstream, weight) in backends {
        let body = json!({"address": upstream.addr.to_string(), "pool": pool, "weight": weight});
        let (status, created) = api(server, session, "POST", "/api/backends", body).await;
        assert_eq!(status, 201, "{created}");
    }
    let (status, created) = api(
        server,
        session,
        "POST",
        "/api/routes",
        json!({"host": host, "path_prefix": "/", "pool": pool}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
}

#[tokio::test]
async fn weighted_and_plain_round_robin_follow_the_configured_shares() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let session = server.sign_up("ops@exemplo.com").await;
    let (a, b, c) = (
        upstream("a", Duration::ZERO).await,
        upstream("b", Duration::ZERO).await,
        upstream("c", Duration::ZERO).await,
    );
    setup(
        &server,
        &session,
        "weighted",
        "weighted_round_robin",
        "w.exemplo.com",
        &[(&a, 100), (&b, 150), (&c, 50)],
    )
    .await;
    setup(
        &server,
        &session,
        "plain",
        "round_robin",
        "rr.exemplo.com",
        &[(&a, 1), (&b, 1), (&c, 1)],
    )
    .await;

    for (host, expected) in [
        ("w.exemplo.com", [200.0, 300.0, 100.0]),
        ("rr.exemplo.com", [200.0, 200.0, 200.0]),
    ] {
        let mut counts: HashMap<String, f64> = HashMap::new();
        for _ in 0..600 {
            let (status, name) = through_edge(&server, host, "/x").await;
            assert_eq!(status, 200);
            *counts.entry(name).or_default() += 1.0;
        }
        for (name, want) in ["a", "b", "c"].iter().zip(expected) {
            let got = counts.get(*name).copied().unwrap_or(0.0);
            assert!(
                (got - want).abs() <= 600.0 * 0.02,
                "{host}: {name} got {got}, want {want}"
            );
        }
    }
    let seen = a.seen.lock().unwrap()[0].clone();
    assert_eq!(seen["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen["x-forwarded-proto"], "http");
    assert_eq!(seen["x-forwarded-host"], "w.exemplo.com");
    assert_eq!(seen["host"], "w.exemplo.com");
    assert!(seen["forwarded"].starts_with("for=127.0.0.1;host=w.exemplo.com"));
}

#[tokio::test]
async fn least_connections_avoids_a_busy_backend() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let session = server.sign_up("ops@exemplo.com").await;
    let slow = upstream("slow", Duration::from_millis(800)).await;
    let fast = upstream("fast", Duration::from_millis(5)).await;
    setup(
        &server,
        &session,
        "lc",
        "least_connections",
        "lc.exemplo.com",
        &[(&slow, 1), (&fast, 1)],
    )
    .await;
    let requests = (0..20).map(|i| {
        let url = server.url("edge_http", &format!("/r{i}"));
        async move {
            tokio::time::sleep(Duration::from_millis(i * 20)).await;
            client()
                .get(url)
                .header("host", "lc.exemplo.com")
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    });
    let names = futures_util::future::join_all(requests).await;
    let to_slow = names.iter().filter(|n| *n == "slow").count();
    assert!(to_slow <= 3, "the busy backend got {to_slow} of 20");
}

#[tokio::test]
async fn a_killed_backend_stops_receiving_traffic_without_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let session = server.sign_up("ops@exemplo.com").await;
    let (a, b) = (upstream("a", Duration::ZERO).await, upstream("b", Duration::ZERO).await);
    let check = json!({"path": "/health", "interval": "300ms", "timeout": "200ms", "rise": 1, "fall": 1});
    let (status, _) = api(
        &server,
        &session,
        "POST",
        "/api/pools",
        json!({"name": "hc", "algorithm": "round_robin", "health_check": check}),
    )
    .await;
    assert_eq!(status, 201);
    for upstream in [&a, &b] {
        api(
            &server,
            &session,
            "POST",
            "/api/backends",
            json!({"address": upstream.addr.to_string(), "pool": "hc"}),
        )
        .await;
    }
    api(
        &server,
        &session,
        "POST",
        "/api/routes",
        json!({"host": "hc.exemplo.com", "pool": "hc"}),
    )
    .await;

    // New backends take traffic after their first passing check.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, pool) = api(&server, &session, "GET", "/api/pools/hc", json!({})).await;
        if pool["backends"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["status"] == "healthy")
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "backends never became healthy: {pool}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    a.task.abort();
    let _ = a.task.await;
    let mut answers = HashMap::new();
    for _ in 0..100 {
        let (status, name) = through_edge(&server, "hc.exemplo.com", "/x").await;
        assert_eq!(status, 200, "no 5xx after the backend died: {name}");
        *answers.entry(name).or_insert(0) += 1;
    }
    assert_eq!(answers.get("b"), Some(&100));

    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (_, list) = api(&server, &session, "GET", "/api/backends", json!({})).await;
        let statuses: Vec<&str> = list["backends"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["status"].as_str().unwrap())
            .collect();
        if statuses.contains(&"unhealthy") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the dead backend was never marked unhealthy: {statuses:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The change was published as a `backend.health_changed` event in the seed's payload.
    let (_, list) = api(&server, &session, "GET", "/api/backends", json!({})).await;
    let dead = list["backends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["address"] == a.addr.to_string())
        .unwrap()["id"]
        .clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let (tenant, data) = loop {
        let found = published_events(&server).into_iter().find(|(name, _, data)| {
            name == "backend.health_changed" && data["backend"]["current_status"] == "unhealthy"
        });
        if let Some((_, tenant, data)) = found {
            break (tenant, data);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no backend.health_changed event"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(tenant, session.tenant_id);
    let backend = &data["backend"];
    assert_eq!(backend["id"], dead);
    assert_eq!(backend["address"], a.addr.to_string());
    assert_eq!(backend["pool"], "hc");
    assert_eq!(backend["previous_status"], "healthy");
    assert_eq!(backend["health_check_details"]["path"], "/health");
    assert!(backend["health_check_details"]["error"].is_string(), "{backend}");
}

#[tokio::test]
async fn configuration_changes_under_load_lose_no_request() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let session = server.sign_up("ops@exemplo.com").await;
    let (a, b) = (upstream("a", Duration::ZERO).await, upstream("b", Duration::ZERO).await);
    setup(&server, &session, "live", "round_robin", "live.exemplo.com", &[(&a, 1)]).await;

    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let (stop, url) = (Arc::clone(&stop), server.url("edge_http", "/steady"));
        tokio::spawn(async move {
            let http = client();
            let (mut ok, mut failed) = (0, Vec::new());
            while !stop.load(Ordering::Relaxed) && ok + failed.len() < 20_000 {
                match http.get(&url).header("host", "live.exemplo.com").send().await {
                    Ok(response) if response.status() == 200 => ok += 1,
                    Ok(response) => failed.push(response.status().as_u16()),
                    Err(err) => failed.push(if err.is_connect() { 1 } else { 0 }),
                }
            }
            (ok, failed)
        })
    };
    for round in 0..15 {
        let algorithm = [
            "least_connections",
            "adaptive_ai",
            "weighted_round_robin",
            "ip_hash",
            "round_robin",
        ][round % 5];
        let (status, _) = api(
            &server,
            &session,
            "PUT",
            "/api/pools/live",
            json!({"algorithm": algorithm}),
        )
        .await;
        assert_eq!(status, 200);
        let (status, added) = api(
            &server,
            &session,
            "POST",
            "/api/backends",
            json!({"address": b.addr.to_string(), "pool": "live"}),
        )
        .await;
        assert_eq!(status, 201);
        let (status, route) = api(
            &server,
            &session,
            "POST",
            "/api/routes",
            json!({"host": format!("extra{round}.exemplo.com"), "pool": "live"}),
        )
        .await;
        assert_eq!(status, 201);
        let (status, _) = api(
            &server,
            &session,
            "DELETE",
            &format!("/api/backends/{}", added["id"].as_str().unwrap()),
            json!({}),
        )
        .await;
        assert_eq!(status, 204);
        let (status, _) = api(
            &server,
            &session,
            "DELETE",
            &format!("/api/routes/{}", route["id"].as_str().unwrap()),
            json!({}),
        )
        .await;
        assert_eq!(status, 204);
    }
    stop.store(true, Ordering::Relaxed);
    let (ok, failed) = traffic.await.unwrap();
    assert!(ok > 100, "only {ok} requests went through");
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {:?}",
        failed.len(),
        ok + failed.len(),
        &failed[..failed.len().min(10)]
    );
}

#[tokio::test]
async fn the_configuration_api_validates_with_the_seed_codes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(&dir.path().join("data"), &[("VELOFLUX_EDGE__MAX_BODY_BYTES", "4096")]);
    let owner = server.sign_up("ops@exemplo.com").await;
    let other = server.sign_up("other@exemplo.com").await;
    let a = upstream("a", Duration::ZERO).await;
    setup(&server, &owner, "web", "round_robin", "shop.exemplo.com", &[(&a, 100)]).await;

    let cases = [
        (
            "POST",
            "/api/pools",
            json!({"name": "x", "algorithm": "random"}),
            422,
            "INVALID_ALGORITHM",
        ),
        ("POST", "/api/pools", json!({"name": "web"}), 409, "POOL_ALREADY_EXISTS"),
        (
            "POST",
            "/api/pools",
            json!({"name": "y", "health_check": {"interval": "5s", "timeout": "5s"}}),
            422,
            "HEALTH_CHECK_FAILED",
        ),
        (
            "POST",
            "/api/pools",
            json!({"name": "z", "health_check": {"interval": "soon"}}),
            422,
            "HEALTH_CHECK_FAILED",
        ),
        ("GET", "/api/pools/nope", json!({}), 404, "POOL_NOT_FOUND"),
        (
            "POST",
            "/api/backends",
            json!({"address": "not an address", "pool": "web"}),
            422,
            "VALIDATION_ERROR",
        ),
        (
            "POST",
            "/api/backends",
            json!({"address": "10.0.0.1:80", "pool": "web", "weight": 5000}),
            422,
            "VALIDATION_ERROR",
        ),
        (
            "POST",
            "/api/backends",
            json!({"address": "10.0.0.1:80", "pool": "nope"}),
            404,
            "POOL_NOT_FOUND",
        ),
        ("GET", "/api/backends/nope", json!({}), 404, "BACKEND_NOT_FOUND"),
        (
            "POST",
            "/api/routes",
            json!({"host": "bad host", "pool": "web"}),
            422,
            "VALIDATION_ERROR",
        ),
        (
            "POST",
            "/api/routes",
            json!({"host": "shop.exemplo.com", "pool": "web"}),
            409,
            "CONFLICT",
        ),
        ("DELETE", "/api/pools/web", json!({}), 409, "CONFLICT"),
    ];
    for (method, path, body, status, code) in cases {
        let (got, answer) = api(&server, &owner, method, path, body.clone()).await;
        assert_eq!(
            (got, answer["code"].as_str()),
            (status, Some(code)),
            "{method} {path} {body}: {answer}"
        );
    }
    let (status, answer) = api(
        &server,
        &owner,
        "POST",
        "/api/pools",
        json!({"name": "y", "health_check": {"interval": "5s", "timeout": "5s"}}),
    )
    .await;
    assert_eq!(
        (status, answer["details"]["field"].as_str()),
        (422, Some("health_check.timeout"))
    );

    // Another tenant cannot claim the host, and sees none of the first tenant's pools.
    api(&server, &other, "POST", "/api/pools", json!({"name": "web"})).await;
    let (status, answer) = api(
        &server,
        &other,
        "POST",
        "/api/routes",
        json!({"host": "shop.exemplo.com", "path_prefix": "/x", "pool": "web"}),
    )
    .await;
    assert_eq!(
        (status, answer["details"]["constraint"].as_str()),
        (409, Some("owned_by_another_tenant"))
    );
    let (_, pools) = api(&server, &other, "GET", "/api/pools", json!({})).await;
    assert_eq!(pools["pools"].as_array().unwrap().len(), 1);
    assert!(pools["pools"][0]["backends"].as_array().unwrap().is_empty());

    let (status, seen) = api(&server, &owner, "GET", "/api/pools", json!({})).await;
    assert_eq!(status, 200);
    let pool = &seen["pools"][0];
    assert_eq!(
        (pool["name"].as_str(), pool["algorithm"].as_str()),
        (Some("web"), Some("round_robin"))
    );
    assert_eq!(pool["health_check"]["interval"], "10s");
    assert_eq!(pool["backends"][0]["status"], "healthy");
    assert_eq!(pool["backends"][0]["weight"], 100);

    // Unknown hosts and pools without healthy backends answer in the standard body.
    let (status, body) = through_edge(&server, "unknown.exemplo.com", "/").await;
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((status, body["code"].as_str()), (404, Some("NOT_FOUND")));
    assert!(body["request_id"].as_str().unwrap().starts_with("req_"));
    api(&server, &owner, "POST", "/api/pools", json!({"name": "empty"})).await;
    api(
        &server,
        &owner,
        "POST",
        "/api/routes",
        json!({"host": "empty.exemplo.com", "pool": "empty"}),
    )
    .await;
    let (status, body) = through_edge(&server, "empty.exemplo.com", "/").await;
    assert_eq!(status, 503, "{body}");

    // Bodies over the edge's limit are refused before they reach a backend.
    let before = a.seen.lock().unwrap().len();
    let response = client()
        .post(server.url("edge_http", "/upload"))
        .header("host", "shop.exemplo.com")
        .body(vec![b'x'; 10_000])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "PAYLOAD_TOO_LARGE");
    assert_eq!(a.seen.lock().unwrap().len(), before);
}

#[tokio::test]
async fn sticky_sessions_hold_and_re_pin_when_the_backend_fails() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let session = server.sign_up("ops@exemplo.com").await;
    let upstreams = [
        upstream("a", Duration::ZERO).await,
        upstream("b", Duration::ZERO).await,
        upstream("c", Duration::ZERO).await,
    ];
    let check = json!({"path": "/health", "interval": "300ms", "timeout": "200ms", "rise": 1, "fall": 1});
    let body = json!({"name": "sticky", "algorithm": "round_robin", "sticky_sessions": true, "health_check": check});
    assert_eq!(api(&server, &session, "POST", "/api/pools", body).await.0, 201);
    for upstream in &upstreams {
        api(
            &server,
            &session,
            "POST",
            "/api/backends",
            json!({"address": upstream.addr.to_string(), "pool": "sticky"}),
        )
        .await;
    }
    api(
        &server,
        &session,
        "POST",
        "/api/routes",
        json!({"host": "sticky.exemplo.com", "pool": "sticky"}),
    )
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while api(&server, &session, "GET", "/api/pools/sticky", json!({})).await.1["backends"]
        .as_array()
        .unwrap()
        .iter()
        .any(|b| b["status"] != "healthy")
    {
        assert!(tokio::time::Instant::now() < deadline, "backends never became healthy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let http = client();
    let get = |cookie: Option<String>| {
        let request = http
            .get(server.url("edge_http", "/page"))
            .header("host", "sticky.exemplo.com");
        let request = match cookie {
            Some(cookie) => request.header("cookie", cookie),
            None => request,
        };
        async move {
            let response = request.send().await.unwrap();
            let set = response
                .headers()
                .get("set-cookie")
                .map(|v| v.to_str().unwrap().to_owned());
            (response.status().as_u16(), set, response.text().await.unwrap())
        }
    };
    let (status, set, first) = get(None).await;
    assert_eq!(status, 200);
    let set = set.expect("a sticky pool pins new clients");
    assert!(
        set.contains("HttpOnly") && !set.contains("127.0.0.1"),
        "the cookie names no address: {set}"
    );
    let cookie = set.split(';').next().unwrap().to_owned();
    for _ in 0..10 {
        let (status, again, name) = get(Some(cookie.clone())).await;
        assert_eq!((status, name.as_str()), (200, first.as_str()));
        assert!(again.is_none(), "a pinned client is not re-pinned");
    }
    let forged = format!("{}=0123456789abcdef0123456789abcdef", cookie.split('=').next().unwrap());
    assert_eq!(get(Some(forged)).await.0, 200, "a forged cookie is ignored");

    let pinned = upstreams.iter().find(|u| u.seen.lock().unwrap().len() > 1).unwrap();
    pinned.task.abort();
    let (status, repinned, other) = get(Some(cookie.clone())).await;
    assert_eq!(status, 200);
    assert_ne!(other, first);
    let new_cookie = repinned
        .expect("re-pinned after failure")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    for _ in 0..5 {
        assert_eq!(get(Some(new_cookie.clone())).await.2, other);
    }
}

async fn websocket_upstream() -> SocketAddr {
    use axum::extract::ws::WebSocketUpgrade;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/ws",
        axum::routing::get(|ws: WebSocketUpgrade| async {
            ws.on_upgrade(|mut socket| async move {
                while let Some(Ok(message)) = socket.recv().await {
                    if socket.send(message).await.is_err() {
                        break;
                    }
                }
            })
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[tokio::test]
async fn websockets_pass_through_the_edge_and_idle_tunnels_close() {
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        &dir.path().join("data"),
        &[("VELOFLUX_EDGE__WEBSOCKET_IDLE_TIMEOUT", "1s")],
    );
    let session = server.sign_up("ops@exemplo.com").await;
    let addr = websocket_upstream().await;
    api(
        &server,
        &session,
        "POST",
        "/api/pools",
        json!({"name": "ws", "health_check": {"enabled": false}}),
    )
    .await;
    api(
        &server,
        &session,
        "POST",
        "/api/backends",
        json!({"address": addr.to_string(), "pool": "ws"}),
    )
    .await;
    api(
        &server,
        &session,
        "POST",
        "/api/routes",
        json!({"host": "ws.exemplo.com", "pool": "ws"}),
    )
    .await;

    let stream = tokio::net::TcpStream::connect(server.listeners["edge_http"])
        .await
        .unwrap();
    let (mut socket, response) = tokio_tungstenite::client_async("ws://ws.exemplo.com/ws", stream)
        .await
        .unwrap();
    assert_eq!(response.status(), 101);
    for text in ["olá", "segunda mensagem"] {
        socket.send(Message::text(text)).await.unwrap();
        let echoed = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(echoed.into_text().unwrap().as_str(), text);
    }
    // Nothing for longer than the idle timeout: the edge closes the tunnel.
    let closed = tokio::time::timeout(Duration::from_secs(5), socket.next())
        .await
        .expect("the idle tunnel was not closed");
    assert!(
        matches!(closed, None | Some(Err(_)) | Some(Ok(Message::Close(_)))),
        "{closed:?}"
    );
}

#[tokio::test]
async fn traffic_is_measured_in_metrics_and_metered_into_usage() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(&dir.path().join("data"), &[("VELOFLUX_METER__FLUSH_INTERVAL", "200ms")]);
    let session = server.sign_up("ops@exemplo.com").await;
    let a = upstream("a", Duration::ZERO).await;
    setup(&server, &session, "metered", "round_robin", "m.exemplo.com", &[(&a, 1)]).await;
    let http = client();
    for _ in 0..10 {
        let response = http
            .post(server.url("edge_http", "/upload"))
            .header("host", "m.exemplo.com")
            .body(vec![b'x'; 100])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    through_edge(&server, "nobody.exemplo.com", "/").await;

    let text = http
        .get(server.url("metrics", "/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("veloflux_requests_total{") && l.contains("status=\"2xx\"") && l.contains(&session.tenant_id)
        })
        .unwrap_or_else(|| panic!("no request counter in:\n{text}"));
    assert!(
        line.ends_with(" 10") && line.contains(&format!("backend=\"{}\"", a.addr)) && line.contains("pool=\"metered\""),
        "{line}"
    );
    assert!(
        text.contains(&format!(
            "veloflux_backend_health{{backend=\"{}\",pool=\"metered\"}} 1",
            a.addr
        )),
        "{text}"
    );
    assert!(text.contains("veloflux_request_duration_seconds_count{"), "{text}");
    assert!(text.contains("veloflux_active_connections"), "{text}");
    assert!(
        !text.contains("nobody.exemplo.com"),
        "unknown hosts never become labels"
    );

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, tenant) = api(
            &server,
            &session,
            "GET",
            &format!("/api/tenants/{}", session.tenant_id),
            json!({}),
        )
        .await;
        if tenant["usage"]["requests_per_month"] == 10 {
            let gb = tenant["usage"]["bandwidth_gb"].as_f64().unwrap();
            assert!(gb > 0.0 && gb < 0.001, "{tenant}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "usage never metered: {tenant}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn tenants_are_limited_at_the_edge_by_plan() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        &dir.path().join("data"),
        &[
            ("VELOFLUX_EDGE__FREE_RPS", "5"),
            ("VELOFLUX_EDGE__FREE_CONCURRENCY", "1000"),
        ],
    );
    let session = server.sign_up("ops@exemplo.com").await;
    let a = upstream("a", Duration::ZERO).await;
    setup(&server, &session, "limited", "round_robin", "l.exemplo.com", &[(&a, 1)]).await;
    let http = client();
    let mut statuses = Vec::new();
    let mut refusal = None;
    for _ in 0..20 {
        let response = http
            .get(server.url("edge_http", "/"))
            .header("host", "l.exemplo.com")
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
        if response.status() == 429 && refusal.is_none() {
            let headers = response.headers().clone();
            refusal = Some((headers, response.json::<Value>().await.unwrap()));
        }
    }
    let ok = statuses.iter().filter(|s| **s == 200).count();
    assert!(
        (5..=7).contains(&ok),
        "a burst of about one second's worth passes: {statuses:?}"
    );
    let (headers, body) = refusal.expect("the rest is refused");
    assert_eq!(body["code"], "RATE_LIMIT_EXCEEDED");
    assert_eq!(headers["x-ratelimit-limit"], "5");
    assert_eq!(headers["retry-after"], "1");
    assert!(headers.contains_key("x-ratelimit-reset"));
}

/// An upstream that counts the connections it accepts and closes every connection after
/// `close_every` responses (0: never).
async fn connection_counting_upstream(close_every: usize) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            counter.fetch_add(1, Ordering::SeqCst);
            let served = Arc::new(AtomicUsize::new(0));
            let service = hyper::service::service_fn(move |_request| {
                let n = served.fetch_add(1, Ordering::SeqCst) + 1;
                async move {
                    let mut response = hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from("ok")));
                    if close_every != 0 && n.is_multiple_of(close_every) {
                        response
                            .headers_mut()
                            .insert("connection", hyper::header::HeaderValue::from_static("close"));
                    }
                    Ok::<_, std::convert::Infallible>(response)
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service),
            );
        }
    });
    (addr, accepted)
}

#[tokio::test]
async fn upstream_connections_are_reused_and_closed_ones_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(&dir.path().join("data"), &[("VELOFLUX_EDGE__WORKERS", "1")]);
    let session = server.sign_up("ops@exemplo.com").await;
    let (kept, kept_connections) = connection_counting_upstream(0).await;
    let (closing, closing_connections) = connection_counting_upstream(3).await;
    for (pool, host, addr) in [("kept", "kept.test", kept), ("closing", "closing.test", closing)] {
        let body = json!({"name": pool, "health_check": {"enabled": false}});
        assert_eq!(api(&server, &session, "POST", "/api/pools", body).await.0, 201);
        let body = json!({"address": addr.to_string(), "pool": pool});
        assert_eq!(api(&server, &session, "POST", "/api/backends", body).await.0, 201);
        let body = json!({"host": host, "pool": pool});
        assert_eq!(api(&server, &session, "POST", "/api/routes", body).await.0, 201);
    }
    for _ in 0..30 {
        assert_eq!(through_edge(&server, "kept.test", "/").await, (200, "ok".to_owned()));
        assert_eq!(through_edge(&server, "closing.test", "/").await, (200, "ok".to_owned()));
    }
    assert_eq!(
        kept_connections.load(Ordering::SeqCst),
        1,
        "sequential requests share one kept-alive upstream connection"
    );
    assert_eq!(
        closing_connections.load(Ordering::SeqCst),
        10,
        "a connection the backend closes is replaced, and no request fails"
    );
}

#[tokio::test]
async fn each_pool_has_its_own_timeouts() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let session = server.sign_up("ops@exemplo.com").await;
    let slow = upstream("slow", Duration::from_millis(400)).await;
    let body = json!({"name": "impatient", "health_check": {"enabled": false}, "response_timeout": "100ms", "connect_timeout": "1s"});
    let (status, created) = api(&server, &session, "POST", "/api/pools", body).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        (&created["connect_timeout"], &created["response_timeout"]),
        (&json!("1s"), &json!("100ms"))
    );
    let body = json!({"name": "patient", "health_check": {"enabled": false}});
    let (_, created) = api(&server, &session, "POST", "/api/pools", body).await;
    assert_eq!(created["response_timeout"], Value::Null, "unset: the edge's default");
    for (pool, host) in [("impatient", "impatient.test"), ("patient", "patient.test")] {
        let body = json!({"address": slow.addr.to_string(), "pool": pool});
        assert_eq!(api(&server, &session, "POST", "/api/backends", body).await.0, 201);
        let body = json!({"host": host, "pool": pool});
        assert_eq!(api(&server, &session, "POST", "/api/routes", body).await.0, 201);
    }
    let (status, body) = through_edge(&server, "impatient.test", "/").await;
    assert_eq!(status, 504, "{body}");
    assert_eq!(
        through_edge(&server, "patient.test", "/").await,
        (200, "slow".to_owned())
    );

    for (field, value) in [
        ("connect_timeout", "0s"),
        ("response_timeout", "2h"),
        ("connect_timeout", "soon"),
    ] {
        let (status, error) = api(&server, &session, "PUT", "/api/pools/patient", json!({ field: value })).await;
        assert_eq!(status, 422, "{error}");
        assert_eq!(error["details"]["field"], field);
    }
    let (status, updated) = api(
        &server,
        &session,
        "PUT",
        "/api/pools/patient",
        json!({"response_timeout": "100ms"}),
    )
    .await;
    assert_eq!((status, &updated["response_timeout"]), (200, &json!("100ms")));
    assert_eq!(
        through_edge(&server, "patient.test", "/").await.0,
        504,
        "changes apply live"
    );
}

/// The events of the log (target `veloflux::events`) as (name, tenant, data).
fn published_events(server: &Server) -> Vec<(String, String, Value)> {
    server
        .log_text()
        .lines()
        .filter_map(|line| {
            let entry: Value = serde_json::from_str(line).ok()?;
            (entry["message"] == "event published").then(|| {
                (
                    entry["event"].as_str().unwrap_or_default().to_owned(),
                    entry["tenant_id"].as_str().unwrap_or_default().to_owned(),
                    serde_json::from_str(entry["data"].as_str().unwrap_or("null")).unwrap_or(Value::Null),
                )
            })
        })
        .collect()
}

#[tokio::test]
async fn configuration_changes_are_published_as_events() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let session = server.sign_up("events@exemplo.com").await;
    let body = json!({"name": "evented", "health_check": {"enabled": false}});
    assert_eq!(api(&server, &session, "POST", "/api/pools", body).await.0, 201);
    let body = json!({"address": "127.0.0.1:9", "pool": "evented", "weight": 5});
    let (_, backend) = api(&server, &session, "POST", "/api/backends", body).await;
    let body = json!({"algorithm": "least_connections"});
    assert_eq!(api(&server, &session, "PUT", "/api/pools/evented", body).await.0, 200);
    let id = backend["id"].as_str().unwrap();
    assert_eq!(
        api(&server, &session, "DELETE", &format!("/api/backends/{id}"), json!({}))
            .await
            .0,
        204
    );
    assert_eq!(
        api(&server, &session, "DELETE", "/api/pools/evented", json!({}))
            .await
            .0,
        204
    );

    // The log is read from the process's stderr as it comes: wait (bounded) for the last line.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut events = published_events(&server);
    while events.len() < 5 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        events = published_events(&server);
    }
    let names: Vec<&str> = events.iter().map(|(name, _, _)| name.as_str()).collect();
    assert_eq!(
        names,
        [
            "pool.created",
            "backend.added",
            "pool.updated",
            "backend.removed",
            "pool.deleted"
        ]
    );
    assert!(events.iter().all(|(_, tenant, _)| tenant == &session.tenant_id));
    assert_eq!(events[1].2["backend"]["address"], "127.0.0.1:9");
    assert_eq!(events[1].2["backend"]["weight"], 5);
    assert_eq!(events[2].2["pool"]["algorithm"], "least_connections");
    assert_eq!(events[3].2["backend"]["id"], id);
    assert_eq!(events[4].2["pool"]["name"], "evented");
}
