//! Request smuggling and malformed framing: each classic case is refused with 400 and
//! nothing reaches the upstream.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{Server, call, client};

/// An upstream that counts every request it receives whole (head and complete body).
async fn counting_upstream() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&seen);
    let app = axum::Router::new().fallback(move |_body: axum::body::Bytes| {
        let counter = Arc::clone(&counter);
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            "reached"
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, seen)
}

/// Sends raw bytes and returns the status lines of the answers and whether the edge
/// closed the connection after answering.
async fn raw(edge: &str, bytes: &str) -> (Vec<String>, bool) {
    let mut stream = tokio::net::TcpStream::connect(edge).await.unwrap();
    stream.write_all(bytes.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut answer))
        .await
        .is_ok();
    // Bodies do not end in a line break, so status lines are found by their text.
    let text = String::from_utf8_lossy(&answer);
    let statuses = text
        .match_indices("HTTP/1.1 ")
        .map(|(at, _)| text[at..].lines().next().unwrap_or("").to_owned())
        .collect();
    (statuses, closed)
}

/// Routes `host` to a counting upstream; returns the edge's address and the counter.
async fn counted_route(server: &Server, host: &str) -> (String, Arc<AtomicUsize>) {
    let session = server.sign_up("ops@exemplo.com").await;
    let (addr, seen) = counting_upstream().await;
    for (path, body) in [
        ("/api/pools", json!({"name": "p", "health_check": {"enabled": false}})),
        ("/api/backends", json!({"address": addr.to_string(), "pool": "p"})),
        ("/api/routes", json!({"host": host, "pool": "p"})),
    ] {
        let (status, answer) = call(server, "POST", path, &session.token, Some(body)).await;
        assert_eq!(status, 201, "{answer}");
    }
    (server.listeners["edge_http"].to_string(), seen)
}

#[tokio::test]
async fn ambiguous_and_malformed_framing_is_rejected_before_the_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let (edge, seen) = counted_route(&server, "smuggle.test").await;

    // A well-formed request reaches the upstream, so the counter works.
    let (ok, _) = raw(
        &edge,
        "GET / HTTP/1.1\r\nHost: smuggle.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(ok[0].starts_with("HTTP/1.1 200"), "{ok:?}");
    assert_eq!(seen.load(Ordering::SeqCst), 1);

    let cases = [
        (
            "duplicate lengths",
            "POST / HTTP/1.1\r\nHost: smuggle.test\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        ),
        (
            "identical repeated lengths",
            "POST / HTTP/1.1\r\nHost: smuggle.test\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        ),
        (
            "CL.TE",
            "POST / HTTP/1.1\r\nHost: smuggle.test\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: smuggle.test\r\n\r\n",
        ),
        (
            "TE.CL",
            "POST / HTTP/1.1\r\nHost: smuggle.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n",
        ),
        (
            "CL.TE after a clean request on the same connection",
            "GET / HTTP/1.1\r\nHost: other.test\r\n\r\nPOST / HTTP/1.1\r\nHost: smuggle.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ),
        (
            "list of lengths",
            "POST / HTTP/1.1\r\nHost: smuggle.test\r\nContent-Length: 5, 6\r\n\r\nhello!",
        ),
        (
            "signed length",
            "POST / HTTP/1.1\r\nHost: smuggle.test\r\nContent-Length: +5\r\n\r\nhello",
        ),
        (
            "obfuscated TE",
            "POST / HTTP/1.1\r\nHost: smuggle.test\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
        ),
        (
            "TE not chunked last",
            "POST / HTTP/1.1\r\nHost: smuggle.test\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        ),
        (
            "space before colon",
            "POST / HTTP/1.1\r\nHost: smuggle.test\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
        ),
        (
            "obsolete line folding",
            "GET / HTTP/1.1\r\nHost: smuggle.test\r\nX-Folded: a\r\n b\r\n\r\n",
        ),
        (
            "invalid chunk size",
            "POST / HTTP/1.1\r\nHost: smuggle.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        ),
        (
            "bare LF in chunk",
            "POST / HTTP/1.1\r\nHost: smuggle.test\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n",
        ),
    ];
    let mut wrong = Vec::new();
    for (name, request) in cases {
        let before = seen.load(Ordering::SeqCst);
        let (statuses, closed) = raw(&edge, request).await;
        let reached = seen.load(Ordering::SeqCst) - before;
        if statuses.last().is_none_or(|s| !s.starts_with("HTTP/1.1 400")) || reached != 0 || !closed {
            wrong.push(format!(
                "{name}: answered {statuses:?}, reached upstream {reached} times, closed: {closed}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[tokio::test]
async fn chunked_bodies_over_the_limit_are_cut_off_with_413() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(&dir.path().join("data"), &[("VELOFLUX_EDGE__MAX_BODY_BYTES", "4096")]);
    let (edge, seen) = counted_route(&server, "upload.test").await;
    let chunk = format!("7d0\r\n{}\r\n", "x".repeat(2000));
    let head = "POST /upload HTTP/1.1\r\nHost: upload.test\r\nTransfer-Encoding: chunked\r\n\r\n";
    let within = format!("{head}{chunk}{chunk}0\r\n\r\n");
    let (statuses, _) = raw(
        &edge,
        &format!("{within}GET / HTTP/1.1\r\nHost: upload.test\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert!(statuses[0].starts_with("HTTP/1.1 200"), "{statuses:?}");
    assert_eq!(
        seen.load(Ordering::SeqCst),
        2,
        "a body within the limit is forwarded whole"
    );

    let over = format!("{head}{chunk}{chunk}{chunk}0\r\n\r\n");
    let (statuses, closed) = raw(&edge, &over).await;
    assert_eq!(statuses.len(), 1, "{statuses:?}");
    assert!(statuses[0].starts_with("HTTP/1.1 413"), "{statuses:?}");
    assert!(closed);
    assert_eq!(
        seen.load(Ordering::SeqCst),
        2,
        "the backend never receives the whole body"
    );
}

#[tokio::test]
async fn http2_clients_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let session = server.sign_up("ops@exemplo.com").await;
    let (addr, seen) = counting_upstream().await;
    let http = client();
    for (path, body) in [
        ("/api/pools", json!({"name": "p", "health_check": {"enabled": false}})),
        ("/api/backends", json!({"address": addr.to_string(), "pool": "p"})),
        ("/api/routes", json!({"host": "127.0.0.1", "pool": "p"})),
    ] {
        assert_eq!(
            http.post(server.url("api", path))
                .bearer_auth(&session.token)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status(),
            201
        );
    }
    // In HTTP/2 the host travels as `:authority`, here the listener's address.
    let h2 = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
    let response = h2.get(server.url("edge_http", "/x")).send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
    assert_eq!(seen.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn clients_that_trickle_a_request_head_are_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(&dir.path().join("data"), &[("VELOFLUX_HTTP__HEADER_TIMEOUT", "500ms")]);
    for listener in ["edge_http", "api"] {
        let mut stream = tokio::net::TcpStream::connect(server.listeners[listener])
            .await
            .unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: slow.test\r\n")
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
        assert!(closed.is_ok(), "{listener}: the connection stays open");
        assert!(
            started.elapsed() >= Duration::from_millis(400),
            "{listener}: closed before the timeout"
        );
    }
    // A complete request in time is served as usual.
    let health = client().get(server.url("api", "/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
}
