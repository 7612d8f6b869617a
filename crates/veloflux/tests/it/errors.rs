//! Every failure answers with the seed's error body, and its `request_id` equals the
//! `X-Request-ID` header.

use serde_json::{Value, json};
use sqlx::Connection as _;

use crate::harness::{Server, client};

/// Checks the envelope of an error response and returns its body.
async fn error_body(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status(), status);
    let header = response.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    assert_eq!(response.headers()["x-frame-options"], "DENY");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], true);
    assert_eq!(body["code"], code, "{body}");
    assert!(!body["message"].as_str().unwrap().is_empty());
    assert_eq!(body["request_id"], header.as_str());
    assert!(chrono_like(body["timestamp"].as_str().unwrap()), "{body}");
    body
}

fn chrono_like(timestamp: &str) -> bool {
    timestamp.len() == 20 && timestamp.ends_with('Z') && timestamp.as_bytes()[10] == b'T'
}

fn registration(email: &str) -> Value {
    json!({"email": email, "password": "senha_segura", "first_name": "Maria", "last_name": "Santos"})
}

#[tokio::test]
async fn every_error_status_uses_the_standard_body() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let http = client();
    let register = server.url("api", "/auth/register");

    // 400: unreadable JSON, with its position.
    let response = http
        .post(&register)
        .header("content-type", "application/json")
        .body("{\"email\": \"a\",,}")
        .send()
        .await
        .unwrap();
    let body = error_body(response, 400, "VALIDATION_ERROR").await;
    assert_eq!(body["details"], json!({"line": 1, "column": 15}));

    // 404: unknown route.
    let body = error_body(
        http.get(server.url("api", "/api/nothing-here")).send().await.unwrap(),
        404,
        "NOT_FOUND",
    )
    .await;
    assert_eq!(body["message"], "no route for GET /api/nothing-here");

    // 405: known route, wrong method.
    error_body(
        http.delete(server.url("api", "/health")).send().await.unwrap(),
        405,
        "METHOD_NOT_ALLOWED",
    )
    .await;

    // 413: body over the limit (1 MiB by default).
    let big = format!("{{\"email\": \"{}\"}}", "a".repeat(2 * 1024 * 1024));
    let response = http
        .post(&register)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    error_body(response, 413, "PAYLOAD_TOO_LARGE").await;

    // 415: not JSON.
    let response = http
        .post(&register)
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    error_body(response, 415, "UNSUPPORTED_MEDIA_TYPE").await;

    // 422: well-formed JSON, invalid values, naming the field.
    let mut bad = registration("maria@exemplo.com");
    bad["password"] = json!("short");
    let body = error_body(
        http.post(&register).json(&bad).send().await.unwrap(),
        422,
        "VALIDATION_ERROR",
    )
    .await;
    assert_eq!(
        body["details"],
        json!({"field": "password", "constraint": "min_length"})
    );
    let body = error_body(
        http.post(&register).json(&json!({"email": 5})).send().await.unwrap(),
        422,
        "VALIDATION_ERROR",
    )
    .await;
    assert_eq!(body["details"]["field"], "email");

    // The error responses are the seed's on the other listeners too.
    error_body(
        http.get(server.url("admin", "/nothing")).send().await.unwrap(),
        404,
        "NOT_FOUND",
    )
    .await;
    error_body(
        http.get(server.url("metrics", "/nothing")).send().await.unwrap(),
        404,
        "NOT_FOUND",
    )
    .await;
}

#[tokio::test]
async fn a_client_request_id_is_echoed_and_a_hostile_one_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let http = client();
    let response = http
        .get(server.url("api", "/nope"))
        .header("x-request-id", "id-requisicao-unico-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "id-requisicao-unico-123");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["request_id"], "id-requisicao-unico-123");

    let response = http
        .get(server.url("api", "/health"))
        .header("x-request-id", "bad id <script>")
        .send()
        .await
        .unwrap();
    let id = response.headers()["x-request-id"].to_str().unwrap();
    assert!(id.starts_with("req_") && id.len() == 36, "{id}");
}

#[tokio::test]
async fn an_internal_failure_is_a_500_that_leaks_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data);

    // Break the database under the running server: the table registrations write to is gone.
    let mut db = sqlx::SqliteConnection::connect(&format!("sqlite://{}/veloflux.db", data.display()))
        .await
        .unwrap();
    sqlx::query("DROP TABLE memberships").execute(&mut db).await.unwrap();
    db.close().await.unwrap();

    let response = client()
        .post(server.url("api", "/auth/register"))
        .json(&registration("x@exemplo.com"))
        .send()
        .await
        .unwrap();
    let request_id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body = error_body(response, 500, "INTERNAL_ERROR").await;
    assert_eq!(body["message"], "internal server error");
    assert!(body.get("details").is_none(), "{body}");
    let text = body.to_string().to_lowercase();
    assert!(
        !text.contains("memberships") && !text.contains("sql") && !text.contains("table"),
        "{text}"
    );
    // The cause is in the log, once, with the request id.
    let line = server.wait_for_log("request failed");
    assert!(line.contains(&request_id) && line.contains("memberships"), "{line}");
}
