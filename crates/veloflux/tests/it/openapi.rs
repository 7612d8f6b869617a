//! The OpenAPI document is 3.1 and describes every route the server answers.

use serde_json::Value;

use crate::harness::{Server, client};

#[tokio::test]
async fn the_document_lists_every_route_and_every_listed_route_answers() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let http = client();
    let doc: Value = http
        .get(server.url("api", "/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "VeloFlux API");

    let paths = doc["paths"].as_object().unwrap();
    let mut operations = 0;
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            operations += 1;
            let tags: Vec<&str> = operation["tags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap())
                .collect();
            let listener = if tags.contains(&"admin") {
                "admin"
            } else if tags.contains(&"metrics") {
                "metrics"
            } else {
                "api"
            };
            assert!(
                operation["responses"]["default"].is_object(),
                "{method} {path} documents the error body"
            );
            let concrete = path.replace(['{', '}'], "");
            let request = http.request(method.to_uppercase().parse().unwrap(), server.url(listener, &concrete));
            let request = if matches!(method.as_str(), "post" | "put" | "patch") {
                request.json(&serde_json::json!({}))
            } else {
                request
            };
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let unrouted =
                (status == 404 && body["message"].as_str().is_some_and(|m| m.starts_with("no route"))) || status == 405;
            assert!(
                !unrouted,
                "{method} {path} is documented but not served on {listener}: {status} {body}"
            );
        }
    }
    assert!(operations >= 14, "{operations} operations");

    // And what the server answers is documented: the system, auth, admin and metrics routes.
    for (path, method) in [
        ("/health", "get"),
        ("/ready", "get"),
        ("/api/status", "get"),
        ("/api/version", "get"),
        ("/api/system/info", "get"),
        ("/api/openapi.json", "get"),
        ("/auth/register", "post"),
        ("/api/auth/register", "post"),
        ("/admin/health", "get"),
        ("/admin/metrics", "get"),
        ("/admin/config", "get"),
        ("/metrics", "get"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} missing from the document"
        );
    }
}
