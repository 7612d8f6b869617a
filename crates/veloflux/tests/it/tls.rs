//! HTTPS on the edge: certificates uploaded through the API, chosen by SNI, HTTP/2 by ALPN,
//! and HTTP redirected to HTTPS for routes that ask for it.

use std::time::Duration;

use serde_json::{Value, json};

use crate::edge::{setup, upstream};
use crate::harness::{Server, Session, call};

/// A self-signed certificate for `names`: (chain PEM, key PEM, leaf DER).
fn issue(names: &[&str], not_after: Option<(i32, u8, u8)>) -> (String, String, Vec<u8>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
    if let Some((y, m, d)) = not_after {
        params.not_before = rcgen::date_time_ymd(2019, 1, 1);
        params.not_after = rcgen::date_time_ymd(y, m, d);
    }
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem(), cert.der().to_vec())
}

async fn upload(server: &Server, session: &Session, body: Value) -> (u16, Value) {
    call(server, "POST", "/api/certificates", &session.token, Some(body)).await
}

/// An HTTPS client that trusts `roots`, sends `host` as SNI and reaches the edge's HTTPS
/// listener for it.
fn https_client(server: &Server, host: &str, roots: &[&str]) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .tls_info(true)
        .resolve(host, server.listeners["edge_https"]);
    for pem in roots {
        builder = builder.add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap());
    }
    builder.build().unwrap()
}

fn https_url(server: &Server, host: &str, path: &str) -> String {
    format!("https://{host}:{}{path}", server.listeners["edge_https"].port())
}

#[tokio::test]
async fn two_hosts_get_their_own_certificates_by_sni_over_http2() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let session = server.sign_up("tls@exemplo.com").await;
    let (one, two) = (
        upstream("one", Duration::ZERO).await,
        upstream("two", Duration::ZERO).await,
    );
    setup(
        &server,
        &session,
        "one",
        "round_robin",
        "one.example.test",
        &[(&one, 1)],
    )
    .await;
    setup(
        &server,
        &session,
        "two",
        "round_robin",
        "two.example.test",
        &[(&two, 1)],
    )
    .await;
    let (chain_one, key_one, der_one) = issue(&["one.example.test"], None);
    let (chain_two, key_two, der_two) = issue(&["two.example.test"], None);
    for (chain, key, host) in [
        (&chain_one, &key_one, "one.example.test"),
        (&chain_two, &key_two, "two.example.test"),
    ] {
        let (status, created) = upload(&server, &session, json!({"certificate": chain, "private_key": key})).await;
        assert_eq!(status, 201, "{created}");
        assert_eq!(created["hostnames"], json!([host]));
        assert_eq!(created["status"], "valid");
        assert!(created.get("private_key").is_none(), "the key is never returned");
    }

    for (host, der, name, roots) in [
        (
            "one.example.test",
            &der_one,
            "one",
            [chain_one.as_str(), chain_two.as_str()],
        ),
        (
            "two.example.test",
            &der_two,
            "two",
            [chain_one.as_str(), chain_two.as_str()],
        ),
    ] {
        let response = https_client(&server, host, &roots)
            .get(https_url(&server, host, "/hello"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.version(), reqwest::Version::HTTP_2, "ALPN chose h2");
        let info = response.extensions().get::<reqwest::tls::TlsInfo>().unwrap();
        assert_eq!(
            info.peer_certificate(),
            Some(der.as_slice()),
            "SNI {host} chose its own certificate"
        );
        assert_eq!(response.text().await.unwrap(), name);
    }
    let seen = one.seen.lock().unwrap().clone();
    assert_eq!(seen.last().unwrap()["x-forwarded-proto"], "https");

    // HTTP/1.1 when the client offers only that.
    let response = reqwest::Client::builder()
        .http1_only()
        .resolve("one.example.test", server.listeners["edge_https"])
        .add_root_certificate(reqwest::Certificate::from_pem(chain_one.as_bytes()).unwrap())
        .build()
        .unwrap()
        .get(https_url(&server, "one.example.test", "/"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    assert_eq!(response.text().await.unwrap(), "one");

    // A host without a certificate gets no handshake; a deleted certificate stops at once.
    let (_, list) = call(&server, "GET", "/api/certificates", &session.token, None).await;
    let certificates = list["certificates"].as_array().unwrap();
    assert_eq!(certificates.len(), 2);
    let id = certificates[0]["id"].as_str().unwrap();
    let (status, _) = call(
        &server,
        "DELETE",
        &format!("/api/certificates/{id}"),
        &session.token,
        None,
    )
    .await;
    assert_eq!(status, 204);
    let failed = https_client(&server, "one.example.test", &[&chain_one])
        .get(https_url(&server, "one.example.test", "/"))
        .send()
        .await;
    assert!(failed.is_err(), "no certificate is served after deletion");
    let (status, _) = call(&server, "GET", &format!("/api/certificates/{id}"), &session.token, None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn routes_with_ssl_enabled_redirect_http_to_https() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let session = server.sign_up("redirect@exemplo.com").await;
    let app = upstream("app", Duration::ZERO).await;
    setup(
        &server,
        &session,
        "app",
        "round_robin",
        "secure.example.test",
        &[(&app, 1)],
    )
    .await;
    let (_, routes) = call(&server, "GET", "/api/routes", &session.token, None).await;
    let id = routes["routes"][0]["id"].as_str().unwrap().to_owned();
    let (status, route) = call(
        &server,
        "PUT",
        &format!("/api/routes/{id}"),
        &session.token,
        Some(json!({"ssl_enabled": true})),
    )
    .await;
    assert_eq!((status, &route["ssl_enabled"]), (200, &json!(true)));
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = no_redirects
        .post(server.url("edge_http", "/cart?item=7"))
        .header("host", "secure.example.test")
        .body("kept for the retry")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 308, "308 keeps the method and body");
    let port = server.listeners["edge_https"].port();
    assert_eq!(
        response.headers()["location"],
        format!("https://secure.example.test:{port}/cart?item=7").as_str()
    );
    assert!(
        app.seen.lock().unwrap().is_empty(),
        "nothing reached the backend over HTTP"
    );

    let (chain, key, _) = issue(&["*.example.test"], None);
    let (status, created) = upload(&server, &session, json!({"certificate": chain, "private_key": key})).await;
    assert_eq!(status, 201, "{created}");
    let response = https_client(&server, "secure.example.test", &[&chain])
        .get(https_url(&server, "secure.example.test", "/cart"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "a wildcard certificate covers the host");
    assert_eq!(response.text().await.unwrap(), "app");
}

#[tokio::test]
async fn certificates_are_checked_and_isolated_by_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let alice = server.sign_up("alice-tls@exemplo.com").await;
    let bob = server.sign_up("bob-tls@exemplo.com").await;
    let app = upstream("alice", Duration::ZERO).await;
    setup(
        &server,
        &alice,
        "web",
        "round_robin",
        "alice.example.test",
        &[(&app, 1)],
    )
    .await;

    let (chain, key, _) = issue(&["alice.example.test", "www.alice.example.test"], None);
    let (_, other_key, _) = issue(&["alice.example.test"], None);
    let (expired_chain, expired_key, _) = issue(&["alice.example.test"], Some((2020, 1, 1)));
    let refused = [
        (
            json!({"certificate": chain, "private_key": other_key}),
            "private_key",
            "key_mismatch",
        ),
        (
            json!({"certificate": expired_chain, "private_key": expired_key}),
            "certificate",
            "expired",
        ),
        (
            json!({"certificate": "not pem", "private_key": key}),
            "certificate",
            "pem",
        ),
        (
            json!({"certificate": chain, "private_key": "not pem"}),
            "private_key",
            "pem",
        ),
        (
            json!({"certificate": chain, "private_key": key, "hostnames": ["shop.example.test"]}),
            "hostnames",
            "name_not_covered",
        ),
    ];
    for (body, field, constraint) in refused {
        let (status, error) = upload(&server, &alice, body).await;
        assert_eq!(status, 422, "{error}");
        assert_eq!(error["code"], "INVALID_CERTIFICATE");
        assert_eq!(error["details"]["field"], field, "{error}");
        assert_eq!(error["details"]["constraint"], constraint, "{error}");
    }
    let (status, error) = upload(&server, &alice, json!({"certificate": chain})).await;
    assert_eq!(status, 422, "{error}");
    assert_eq!(error["code"], "VALIDATION_ERROR");

    // Bob cannot take Alice's host; his certificate for an unrouted name is never served
    // for Alice's traffic once she routes it.
    let (bob_chain, bob_key, _) = issue(&["alice.example.test", "later.example.test"], None);
    let (status, error) = upload(&server, &bob, json!({"certificate": bob_chain, "private_key": bob_key})).await;
    assert_eq!(status, 409, "{error}");
    assert_eq!(error["details"]["field"], "hostnames");
    let (status, created) = upload(
        &server,
        &bob,
        json!({"certificate": bob_chain, "private_key": bob_key, "hostnames": ["later.example.test"]}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let bob_certificate = created["id"].as_str().unwrap().to_owned();
    setup(
        &server,
        &alice,
        "later",
        "round_robin",
        "later.example.test",
        &[(&app, 1)],
    )
    .await;
    let handshake = https_client(&server, "later.example.test", &[&bob_chain])
        .get(https_url(&server, "later.example.test", "/"))
        .send()
        .await;
    assert!(handshake.is_err(), "another tenant's certificate is not served");
    let (status, _) = call(
        &server,
        "GET",
        &format!("/api/certificates/{bob_certificate}"),
        &alice.token,
        None,
    )
    .await;
    assert_eq!(status, 404, "a certificate is visible only to its tenant");

    // Alice's own upload, restricted to one of its names, is stored once.
    let body = json!({"certificate": chain, "private_key": key, "hostnames": ["ALICE.example.test"]});
    let (status, created) = upload(&server, &alice, body.clone()).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["hostnames"], json!(["alice.example.test"]));
    assert_eq!(
        created["names"],
        json!(["alice.example.test", "www.alice.example.test"])
    );
    let (status, error) = upload(&server, &alice, body).await;
    assert_eq!((status, error["code"].as_str()), (409, Some("CONFLICT")));

    // The key is stored sealed: its PEM body is nowhere in the database files.
    let secret_line = key.lines().nth(1).unwrap();
    for file in ["veloflux.db", "veloflux.db-wal"] {
        let bytes = std::fs::read(dir.path().join("data").join(file)).unwrap_or_default();
        assert!(
            !bytes.windows(secret_line.len()).any(|w| w == secret_line.as_bytes()),
            "the private key is sealed at rest ({file})"
        );
    }
}

#[tokio::test]
async fn ambiguous_framing_is_refused_over_tls_too() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let session = server.sign_up("tls-framing@exemplo.com").await;
    let app = upstream("app", Duration::ZERO).await;
    setup(&server, &session, "app", "round_robin", "framing.test", &[(&app, 1)]).await;
    let (chain, key, der) = issue(&["framing.test"], None);
    let (status, created) = upload(&server, &session, json!({"certificate": chain, "private_key": key})).await;
    assert_eq!(status, 201, "{created}");

    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls::pki_types::CertificateDer::from(der)).unwrap();
    let config =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(server.listeners["edge_https"])
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("framing.test").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    tls.write_all(
        b"POST / HTTP/1.1\r\nHost: framing.test\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: framing.test\r\n\r\n",
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert_eq!(
        answer.matches("HTTP/1.1 ").count(),
        1,
        "one answer, then the connection closes"
    );
    assert!(app.seen.lock().unwrap().is_empty(), "nothing reached the backend");
}
