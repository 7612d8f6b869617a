//! Request smuggling and malformed framing: each classic case is refused with 400 and
//! nothing reaches the upstream.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{Server, client};

/// An upstream that counts every request it sees.
async fn counting_upstream() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&seen);
    let app = axum::Router::new().fallback(move || {
        let counter = Arc::clone(&counter);
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            "reached"
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, seen)
}

/// Sends raw bytes and returns the status line of the answer (empty if the connection
/// closed without one) and whether the edge closed the connection after answering.
async fn raw(edge: &str, bytes: &str) -> (String, bool) {
    let mut stream = tokio::net::TcpStream::connect(edge).await.unwrap();
    stream.write_all(bytes.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut answer))
        .await
        .is_ok();
    (
        String::from_utf8_lossy(&answer).lines().next().unwrap_or("").to_owned(),
        closed,
    )
}

#[tokio::test]
async fn ambiguous_and_malformed_framing_is_rejected_before_the_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let session = server.sign_up("ops@exemplo.com").await;
    let (addr, seen) = counting_upstream().await;
    let http = client();
    let api = |path: &str, body: serde_json::Value| {
        http.post(server.url("api", path))
            .bearer_auth(&session.token)
            .json(&body)
            .send()
    };
    assert_eq!(
        api("/api/pools", json!({"name": "p", "health_check": {"enabled": false}}))
            .await
            .unwrap()
            .status(),
        201
    );
    assert_eq!(
        api("/api/backends", json!({"address": addr.to_string(), "pool": "p"}))
            .await
            .unwrap()
            .status(),
        201
    );
    assert_eq!(
        api("/api/routes", json!({"host": "smuggle.test", "pool": "p"}))
            .await
            .unwrap()
            .status(),
        201
    );
    let edge = server.listeners["edge_http"].to_string();

    // A well-formed request reaches the upstream, so the counter works.
    let (ok, _) = raw(
        &edge,
        "GET / HTTP/1.1\r\nHost: smuggle.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert_eq!(seen.load(Ordering::SeqCst), 1);

    let cases = [
        (
            "duplicate lengths",
            "POST / HTTP/1.1\r\nHost: smuggle.test\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
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
        let (status, _) = raw(&edge, request).await;
        let reached = seen.load(Ordering::SeqCst) - before;
        if !status.starts_with("HTTP/1.1 400") || reached != 0 {
            wrong.push(format!("{name}: answered {status:?}, reached upstream {reached} times"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");

    // Both lengths: hyper, under the edge, frames the request by Transfer-Encoding alone,
    // drops Content-Length and closes the connection after answering (RFC 9112 section 6.1).
    // The upstream gets one re-framed request and never the smuggled remainder.
    for (name, request) in [
        (
            "CL.TE",
            "POST / HTTP/1.1\r\nHost: smuggle.test\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: smuggle.test\r\n\r\n",
        ),
        (
            "TE.CL",
            "POST / HTTP/1.1\r\nHost: smuggle.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n",
        ),
    ] {
        let before = seen.load(Ordering::SeqCst);
        let (_, closed) = raw(&edge, request).await;
        assert!(closed, "{name}: the connection stays open");
        assert!(
            seen.load(Ordering::SeqCst) - before <= 1,
            "{name}: a second request was smuggled"
        );
    }
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
