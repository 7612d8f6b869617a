//! Magic links by outbox and by SMTP, and the promise that no secret reaches the log.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::harness::{Server, client};

/// The sign-in code in an e-mail: the line that is exactly one 43-character token.
fn token_in(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .find(|l| l.len() == 43 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        .unwrap_or_else(|| panic!("no token in:\n{message}"))
        .to_owned()
}

fn outbox(data: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(data.join("outbox")) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    files.sort();
    files.iter().map(|p| std::fs::read_to_string(p).unwrap()).collect()
}

async fn request_link(server: &Server, email: &str) -> (u16, Value) {
    let response = client()
        .post(server.url("api", "/api/v1/auth/magic-link"))
        .json(&json!({"email": email}))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn verify(server: &Server, token: &str) -> (u16, Value) {
    let response = client()
        .post(server.url("api", "/api/v1/auth/verify"))
        .json(&json!({"token": token}))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn a_magic_link_signs_in_once_and_unknown_addresses_look_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data);
    server.sign_up("lia@exemplo.com").await;

    let (status, known) = request_link(&server, "lia@exemplo.com").await;
    assert_eq!(status, 202);
    let (status, unknown) = request_link(&server, "nobody@exemplo.com").await;
    assert_eq!((status, &unknown), (202, &known), "identical answers");
    let mails = outbox(&data);
    assert_eq!(mails.len(), 1, "only the known address gets mail");
    assert!(
        mails[0].contains("To: lia@exemplo.com") && mails[0].contains("Subject: Your VeloFlux sign-in link"),
        "{}",
        mails[0]
    );
    let token = token_in(&mails[0]);

    let (status, session) = verify(&server, &token).await;
    assert_eq!(status, 200, "{session}");
    assert_eq!(session["user"]["email"], "lia@exemplo.com");
    assert!(session["token"].is_string() && session["refresh_token"].is_string());
    let (status, body) = verify(&server, &token).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("INVALID_TOKEN")),
        "single use"
    );
    let (status, _) = verify(&server, "not-a-real-token").await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_magic_link_expires() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start_with(&data, &[("VELOFLUX_AUTH__MAGIC_LINK_TTL", "1s")]);
    server.sign_up("rui@exemplo.com").await;
    request_link(&server, "rui@exemplo.com").await;
    let token = token_in(&outbox(&data)[0]);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let (status, body) = verify(&server, &token).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("INVALID_TOKEN")));
}

/// A minimal SMTP server (RFC 5321 without extensions) that keeps what it receives.
async fn smtp_server() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let received = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&received);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let sink = Arc::clone(&sink);
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 fake.smtp ESMTP\r\n").await.unwrap();
                let mut data: Option<String> = None;
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(body) = data.as_mut() {
                        if line == "." {
                            sink.lock().unwrap().push(data.take().unwrap());
                            write.write_all(b"250 2.0.0 queued\r\n").await.unwrap();
                        } else {
                            body.push_str(&line);
                            body.push('\n');
                        }
                        continue;
                    }
                    let verb = line.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" | "HELO" => b"250 fake.smtp\r\n",
                        "DATA" => {
                            data = Some(String::new());
                            b"354 end with .\r\n"
                        }
                        "QUIT" => {
                            write.write_all(b"221 bye\r\n").await.unwrap();
                            return;
                        }
                        _ => b"250 OK\r\n",
                    };
                    write.write_all(reply).await.unwrap();
                }
            });
        }
    });
    (port, received)
}

#[tokio::test]
async fn magic_links_go_out_by_smtp_when_configured() {
    let (port, received) = smtp_server().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = port.to_string();
    let server = Server::start_with(
        &data,
        &[
            ("VELOFLUX_SMTP__HOST", "127.0.0.1"),
            ("VELOFLUX_SMTP__PORT", &port),
            ("VELOFLUX_SMTP__SECURITY", "none"),
            ("VELOFLUX_SMTP__FROM", "VeloFlux <auth@exemplo.com>"),
        ],
    );
    server.sign_up("mel@exemplo.com").await;
    request_link(&server, "mel@exemplo.com").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let message = loop {
        if let Some(message) = received.lock().unwrap().first().cloned() {
            break message;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no mail arrived; log:\n{}",
            server.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        message.contains("From: VeloFlux <auth@exemplo.com>") && message.contains("To: mel@exemplo.com"),
        "{message}"
    );
    assert!(
        outbox(&data).is_empty(),
        "nothing goes to the outbox when SMTP is configured"
    );
    let (status, _) = verify(&server, &token_in(&message)).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn no_password_token_or_secret_reaches_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start_with(&data, &[("VELOFLUX_LOG", "debug")]);
    let password = "Very-Secret-Passw0rd!";
    let http = client();
    let body = json!({"email": "sec@exemplo.com", "password": password, "first_name": "S", "last_name": "E"});
    assert_eq!(
        http.post(server.url("api", "/auth/register"))
            .json(&body)
            .send()
            .await
            .unwrap()
            .status(),
        201
    );
    let session = server.sign_in("sec@exemplo.com", password, None).await;
    let failed = http
        .post(server.url("api", "/auth/login"))
        .json(&json!({"email": "sec@exemplo.com", "password": "Wrong-Secret-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), 401);
    let refreshed: Value = http
        .post(server.url("api", "/auth/refresh"))
        .bearer_auth(&session.refresh_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    http.get(server.url("api", "/api/profile"))
        .bearer_auth(refreshed["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    request_link(&server, "sec@exemplo.com").await;
    let magic = token_in(&outbox(&data)[0]);
    let magic_session: Value = verify(&server, &magic).await.1;
    let oidc = json!({"provider_url": "https://idp.example.com", "client_id": "cid", "client_secret": "Oidc-Client-Secret-9",
        "redirect_uri": "https://app.example.com/cb"});
    let put = http
        .put(server.url("api", &format!("/api/tenants/{}/oidc/config", session.tenant_id)))
        .bearer_auth(&session.token)
        .json(&oidc)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    http.get(server.url("api", "/api/auth/logout"))
        .bearer_auth(&session.token)
        .send()
        .await
        .unwrap();
    // Give the last log lines a moment to be read from the pipe.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let log = server.log_text();
    assert!(log.contains("signed in"), "the flow was logged at all");
    let secrets = [
        password.to_owned(),
        "Wrong-Secret-1".to_owned(),
        session.token.clone(),
        session.refresh_token.clone(),
        refreshed["token"].as_str().unwrap().to_owned(),
        refreshed["refresh_token"].as_str().unwrap().to_owned(),
        magic,
        magic_session["token"].as_str().unwrap().to_owned(),
        "Oidc-Client-Secret-9".to_owned(),
    ];
    for secret in &secrets {
        assert!(
            !log.contains(secret.as_str()),
            "a secret reached the log: {}…",
            &secret[..8]
        );
    }
    // The stored password is an argon2id hash.
    let store = veloflux_store::Store::connect(&format!("sqlite://{}/veloflux.db", data.display()))
        .await
        .unwrap();
    let user = store
        .user_by_email(&veloflux_domain::Email::parse("sec@exemplo.com").unwrap())
        .await
        .unwrap();
    assert!(
        store
            .password_hash(user.id)
            .await
            .unwrap()
            .unwrap()
            .starts_with("$argon2id$v=19$")
    );
}
