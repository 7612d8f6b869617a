use serde_json::Value;

use crate::harness::{Server, client, command};

#[tokio::test]
async fn starts_without_configuration_and_creates_the_data_directory() {
    let cwd = tempfile::tempdir().unwrap();
    let mut serve = command(cwd.path());
    serve
        .arg("serve")
        .env("VELOFLUX_API_ADDR", "127.0.0.1:0")
        .env("VELOFLUX_ADMIN_ADDR", "127.0.0.1:0")
        .env("VELOFLUX_METRICS_ADDR", "127.0.0.1:0")
        .env("VELOFLUX_EDGE_HTTP_ADDR", "127.0.0.1:0")
        .env("VELOFLUX_EDGE_HTTPS_ADDR", "127.0.0.1:0")
        .env("VELOFLUX_LOG_FORMAT", "json");
    let server = Server::spawn(serve);
    assert!(
        cwd.path().join("data/veloflux.db").is_file(),
        "the default data directory holds the database"
    );

    let response = client().get(server.url("api", "/health")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let health: Value = response.json().await.unwrap();
    assert_eq!(health["status"], "healthy");
    assert_eq!(health["components"]["database"], "healthy");
    assert_eq!(health["components"]["load_balancer"], "healthy");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    assert!(health["uptime"].as_str().unwrap().ends_with('s'));
    assert!(health["timestamp"].as_str().unwrap().ends_with('Z'));

    let ready = client().get(server.url("api", "/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
}

#[tokio::test]
async fn every_listener_binds_port_zero_and_reports_its_address() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    assert_eq!(
        server.listeners.keys().map(String::as_str).collect::<Vec<_>>(),
        ["admin", "api", "edge_http", "edge_https", "metrics"]
    );
    let ports: std::collections::BTreeSet<u16> = server.listeners.values().map(|a| a.port()).collect();
    assert_eq!(ports.len(), 5, "five distinct ports");
    assert!(!ports.contains(&0));

    let http = client();
    assert_eq!(
        http.get(server.url("admin", "/admin/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        http.get(server.url("metrics", "/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        http.get(server.url("metrics", "/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let status: Value = http
        .get(server.url("api", "/api/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["ready"], true);
    assert_eq!(status["database"], "sqlite");
    for (name, addr) in &server.listeners {
        assert_eq!(status["listeners"][name], addr.to_string(), "{name}");
    }
    let line = server.wait_for_log("\"listening\"");
    assert!(
        line.contains("\"name\":\"") && line.contains("\"addr\":\"127.0.0.1:"),
        "{line}"
    );
}

#[tokio::test]
async fn metrics_count_requests_by_route_template() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let http = client();
    for _ in 0..3 {
        http.get(server.url("api", "/health")).send().await.unwrap();
    }
    http.get(server.url("api", "/no/such/path/123")).send().await.unwrap();
    let text = http
        .get(server.url("metrics", "/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(r#"http_requests_total{endpoint="/health",method="GET",status="200"} 3"#),
        "{text}"
    );
    assert!(
        text.contains(r#"http_requests_total{endpoint="unmatched",method="GET",status="404"} 1"#),
        "{text}"
    );
    assert!(!text.contains("/no/such/path"), "raw paths never become labels");
    assert!(
        text.contains(r#"http_request_duration_seconds_count{endpoint="/health",method="GET"} 3"#),
        "{text}"
    );
    assert!(text.contains("http_response_size_bytes_bucket"), "{text}");

    let admin: Value = http
        .get(server.url("admin", "/admin/metrics"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(admin["requests_by_status_class"]["2xx"].as_u64().unwrap() >= 3);
    assert_eq!(admin["requests_by_status_class"]["4xx"], 1);
    assert_eq!(admin["database"]["backend"], "sqlite");
}

#[tokio::test]
async fn system_routes_answer_with_the_seed_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let http = client();
    let version: Value = http
        .get(server.url("api", "/api/version"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(version["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(version["api_version"], "v1");
    let info: Value = http
        .get(server.url("api", "/api/system/info"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(info["cpus"].as_u64().unwrap() >= 1);
    assert!(info["pid"].as_u64().unwrap() > 0);
    assert!(info["memory_rss_bytes"].as_u64().unwrap() > 1_000_000);
    assert_eq!(info["database"], "sqlite");
}

#[tokio::test]
async fn admin_config_shows_the_effective_configuration_with_secrets_masked() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        &dir.path().join("data"),
        &[
            ("VELOFLUX_ADMIN_EMAIL", "root@exemplo.com"),
            ("VELOFLUX_ADMIN_PASSWORD", "s3cret-bootstrap-pw"),
        ],
    );
    let response = client().get(server.url("admin", "/admin/config")).send().await.unwrap();
    let text = response.text().await.unwrap();
    assert!(!text.contains("s3cret-bootstrap-pw"), "{text}");
    let config: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(config["bootstrap"]["admin_password"], "***");
    assert_eq!(config["bootstrap"]["admin_email"], "root@exemplo.com");
    assert_eq!(config["api"]["addr"], "127.0.0.1:0");
    server.wait_for_log("created the bootstrap platform admin");
    assert!(
        !server.log_text().contains("s3cret-bootstrap-pw"),
        "the password never reaches the log"
    );

    let not_built = client().put(server.url("admin", "/admin/config")).send().await.unwrap();
    assert_eq!(not_built.status(), 501);
    let body: Value = not_built.json().await.unwrap();
    assert_eq!(body["code"], "NOT_IMPLEMENTED");
}

#[tokio::test]
async fn sigterm_stops_the_server_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    assert_eq!(
        client()
            .get(server.url("api", "/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let (status, log) = server.terminate();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(log.contains("received SIGTERM") && log.contains("\"stopped\""), "{log}");
}

/// The same binary on PostgreSQL: sign-up, sign-in, refresh rotation and reuse detection,
/// and tenant membership, end to end. Skipped (with a notice) without `TEST_DATABASE_URL`.
#[tokio::test]
async fn runs_the_identity_flow_on_postgresql() {
    let Some(db) = veloflux_test_support::TestDatabase::postgres().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(&dir.path().join("data"), &[("VELOFLUX_DATABASE_URL", db.url())]);
    let status: Value = client()
        .get(server.url("api", "/api/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["database"], "postgres");
    let owner = server.sign_up("pg-owner@exemplo.com").await;
    let http = client();
    let refreshed = http
        .post(server.url("api", "/auth/refresh"))
        .bearer_auth(&owner.refresh_token)
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), 200);
    let replay = http
        .post(server.url("api", "/auth/refresh"))
        .bearer_auth(&owner.refresh_token)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 401);
    let owner = server.sign_in("pg-owner@exemplo.com", "senha_segura", None).await;
    let body = serde_json::json!({"email": "pg-viewer@exemplo.com", "role": "viewer", "password": "senha_segura"});
    let added = http
        .post(server.url("api", &format!("/api/tenants/{}/users", owner.tenant_id)))
        .bearer_auth(&owner.token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 201);
    let tenant: Value = http
        .get(server.url("api", &format!("/api/tenants/{}", owner.tenant_id)))
        .bearer_auth(&owner.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tenant["user_count"], 2);
}
