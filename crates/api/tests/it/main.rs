//! The shared HTTP layer, driven in-process: readiness, panics, timeouts.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;
use veloflux_api::system::System;
use veloflux_api::{HttpLimits, Metrics};
use veloflux_store::Store;
use veloflux_test_support::TestDatabase;

const LIMITS: HttpLimits = HttpLimits {
    max_body_bytes: 4096,
    request_timeout: Duration::from_millis(200),
    header_timeout: Duration::from_secs(30),
};

async fn call(app: &Router, path: &str) -> (StatusCode, serde_json::Value, String) {
    let response = app
        .clone()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        id,
    )
}

#[tokio::test]
async fn ready_is_503_until_the_server_says_so() {
    let db = TestDatabase::sqlite();
    let store = Store::connect(db.url()).await.unwrap();
    let metrics = Metrics::new("test");
    let system = System::new(store, metrics.clone(), "test", BTreeMap::new(), Vec::new());
    let (router, _) = veloflux_api::system::router(system.clone()).split_for_parts();
    let app = veloflux_api::finish(router, metrics, LIMITS);

    let (status, body, id) = call(&app, "/ready").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["code"], "SERVICE_UNAVAILABLE");
    assert_eq!(body["request_id"], id.as_str());

    system.mark_ready();
    let (status, body, _) = call(&app, "/ready").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ready");
}

#[tokio::test]
async fn a_panicking_handler_answers_500_and_the_server_keeps_serving() {
    let router = Router::new()
        .route("/boom", get(boom))
        .route("/fine", get(|| async { "fine" }));
    let app = veloflux_api::finish(router, Metrics::new("test"), LIMITS);
    let (status, body, id) = call(&app, "/boom").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["code"], "INTERNAL_ERROR");
    assert_eq!(body["message"], "internal server error");
    assert_eq!(body["request_id"], id.as_str());
    assert!(!body.to_string().contains("secret"));
    let (status, _, _) = call(&app, "/fine").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_slow_handler_times_out_with_408() {
    let router = Router::new().route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            "late"
        }),
    );
    let app = veloflux_api::finish(router, Metrics::new("test"), LIMITS);
    let (status, body, _) = call(&app, "/slow").await;
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
    assert_eq!(body["code"], "REQUEST_TIMEOUT");
}

async fn boom() -> &'static str {
    panic!("secret internal detail")
}
