//! A write the server acknowledged survives the process being killed at any moment.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use veloflux_domain::Email;
use veloflux_store::Store;

use crate::harness::{Server, client};

#[tokio::test]
async fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // The per-IP limit on sign-up routes would stop the writers long before the kill.
    let unlimited = [("VELOFLUX_RATE_LIMITS__AUTH_PER_IP", "1000000")];
    let server = Server::start_with(&data, &unlimited);
    let register = server.url("api", "/auth/register");

    // Four writers register accounts as fast as the server takes them; each remembers the
    // e-mails the server answered 201 for.
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let mut writers = Vec::new();
    for writer in 0..4 {
        let (register, acknowledged) = (register.clone(), Arc::clone(&acknowledged));
        writers.push(tokio::spawn(async move {
            let http = client();
            for n in 0..10_000 {
                let email = format!("w{writer}-{n}@exemplo.com");
                let body = json!({"email": email, "password": "senha_segura", "first_name": "W", "last_name": "N"});
                match http.post(&register).json(&body).send().await {
                    Ok(response) if response.status() == 201 => acknowledged.lock().unwrap().push(email),
                    Ok(response) => panic!("unexpected {} while the server was up", response.status()),
                    Err(_) => return, // the server is gone
                }
            }
        }));
    }

    // Kill the server mid-stream, once a fair number of writes has been acknowledged.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while acknowledged.lock().unwrap().len() < 40 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "writes too slow; log:\n{}",
            server.log_text()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.kill();
    for writer in writers {
        writer.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= 40);

    // The restarted server recovers the database and every acknowledged account is there.
    let server = Server::start_with(&data, &unlimited);
    let store = Store::connect(&format!("sqlite://{}/veloflux.db", data.display()))
        .await
        .unwrap();
    for email in &acknowledged {
        let user = store.user_by_email(&Email::parse(email).unwrap()).await;
        assert!(user.is_ok(), "acknowledged {email} was lost");
    }
    // Seen from outside too: registering an acknowledged address again is a conflict.
    let again = json!({"email": acknowledged[0], "password": "senha_segura", "first_name": "W", "last_name": "N"});
    let response = client()
        .post(server.url("api", "/auth/register"))
        .json(&again)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 409);
}
