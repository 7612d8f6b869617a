//! Hot restart: a second `serve` on the same data directory takes over the listeners while
//! the first drains and exits, and clients see no failed request.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::edge::{setup, upstream};
use crate::harness::Server;

#[tokio::test]
async fn a_new_process_takes_over_the_listeners_without_losing_a_request() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let old = Server::start(&data);
    let session = old.sign_up("restart@exemplo.com").await;
    let app = upstream("app", Duration::from_millis(2)).await;
    setup(&old, &session, "app", "round_robin", "restart.test", &[(&app, 1)]).await;

    // Clients on fresh connections (so each request goes through accept) and on a kept-alive
    // pool, to the edge and to the API, until told to stop.
    let (stop, sent, failures) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(std::sync::Mutex::new(Vec::new())),
    );
    let mut clients = Vec::new();
    for (kind, fresh) in [("edge", true), ("edge", true), ("api", true), ("edge", false)] {
        let url = match kind {
            "edge" => old.url("edge_http", "/work"),
            _ => old.url("api", "/health"),
        };
        let (stop, sent, failures) = (Arc::clone(&stop), Arc::clone(&sent), Arc::clone(&failures));
        let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(10));
        if fresh {
            builder = builder.pool_max_idle_per_host(0);
        }
        let http = builder.build().unwrap();
        clients.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let outcome = http.get(&url).header("host", "restart.test").send().await;
                sent.fetch_add(1, Ordering::Relaxed);
                match outcome {
                    Ok(response) if response.status().is_success() => {}
                    Ok(response) => failures.lock().unwrap().push(format!("{url}: {}", response.status())),
                    Err(err) => failures.lock().unwrap().push(format!("{url}: {err}")),
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let new = tokio::task::spawn_blocking({
        let data = data.clone();
        move || Server::start(&data)
    })
    .await
    .unwrap();
    assert_eq!(
        new.listeners, old.listeners,
        "the new process serves on the same addresses"
    );
    let (status, log) = tokio::task::spawn_blocking(move || old.wait_for_exit()).await.unwrap();
    assert!(status.success(), "the old process drains and exits 0; log:\n{log}");
    assert!(log.contains("took over the listeners"), "{log}");

    let before = sent.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    let total = sent.load(Ordering::Relaxed);
    assert!(
        total > before + 20,
        "requests kept flowing after the handover ({before} then {total})"
    );
    let failures = failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "{} of {total} requests failed: {failures:?}",
        failures.len()
    );

    // The new process is a full server: it answers the API with the same data.
    let (status, pools) = crate::harness::call(&new, "GET", "/api/pools", &session.token, None).await;
    assert_eq!(status, 200);
    assert_eq!(pools["pools"][0]["name"], "app");
    new.wait_for_log("taking over the listeners");
}
