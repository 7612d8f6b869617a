//! Sign-in, tokens and sessions, as the seed's clients use them.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Server, client};

async fn json_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The seed's client (veloflux-api-reference.md, `VeloFluxAPI`): log in, keep both tokens,
/// call `/api/profile`, and on a 401 renew with the refresh token and retry.
#[tokio::test]
async fn the_seed_client_flow_renews_an_expired_token() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(&dir.path().join("data"), &[("VELOFLUX_AUTH__ACCESS_TOKEN_TTL", "1s")]);
    server.sign_up("joao@exemplo.com").await;
    let http = client();

    let login = json!({"email": "joao@exemplo.com", "password": "senha_segura", "tenant_id": null});
    let (status, data) = json_of(
        http.post(server.url("api", "/auth/login"))
            .json(&login)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(data["success"], true);
    assert_eq!(data["expires_in"], 1);
    assert_eq!(data["user"]["email"], "joao@exemplo.com");
    assert_eq!(data["user"]["role"], "owner");
    for field in ["user_id", "tenant_id", "first_name", "last_name"] {
        assert!(data["user"][field].is_string(), "{field}");
    }
    let mut token = data["token"].as_str().unwrap().to_owned();
    let refresh_token = data["refresh_token"].as_str().unwrap().to_owned();
    assert!(refresh_token.starts_with("refresh_"));

    tokio::time::sleep(Duration::from_millis(2100)).await;
    let profile = http
        .get(server.url("api", "/api/profile"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(profile).await;
    assert_eq!(status, 401);
    assert_eq!(body["code"], "TOKEN_EXPIRED");

    let renewed = http
        .post(server.url("api", "/auth/refresh"))
        .bearer_auth(&refresh_token)
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    let (status, data) = json_of(renewed).await;
    assert_eq!(status, 200, "{data}");
    token = data["token"].as_str().unwrap().to_owned();
    let (status, profile) = json_of(
        http.get(server.url("api", "/api/profile"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(profile["email"], "joao@exemplo.com");
    assert!(profile["last_login"].as_str().unwrap().ends_with('Z'));
    assert!(profile["created_at"].is_string());
    let (status, _) = json_of(
        http.get(server.url("api", "/api/v1/profile"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_replay_revokes_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let session = server.sign_up("ana@exemplo.com").await;
    let http = client();
    let refresh = |token: String| {
        let http = http.clone();
        let url = server.url("api", "/api/auth/refresh");
        async move { json_of(http.post(url).bearer_auth(token).send().await.unwrap()).await }
    };

    let (status, first) = refresh(session.refresh_token.clone()).await;
    assert_eq!(status, 200);
    let next_refresh = first["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(
        next_refresh, session.refresh_token,
        "every refresh returns a new refresh token"
    );
    assert_ne!(first["token"], session.token.as_str());

    // The old refresh token again: reuse. The whole family dies, including the new pair.
    let (status, body) = refresh(session.refresh_token.clone()).await;
    assert_eq!(status, 401);
    assert_eq!(body["code"], "INVALID_TOKEN");
    let (status, _) = refresh(next_refresh).await;
    assert_eq!(status, 401, "the rotated token belongs to the revoked family");
    let (status, body) = json_of(
        http.get(server.url("api", "/api/profile"))
            .bearer_auth(first["token"].as_str().unwrap())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401, "access tokens of a revoked session stop working: {body}");

    // The reuse is a security event in the audit log.
    let admin = server.sign_in("root@exemplo.com", "root-password-1", None).await;
    let (_, logs) = json_of(
        http.get(server.url("api", "/api/admin/logs"))
            .bearer_auth(&admin.token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let reuse = logs["logs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "auth.refresh_token_reused")
        .expect("audited");
    assert_eq!(reuse["actor_user_id"], session.user_id.as_str());
    assert_eq!(reuse["ip"], "127.0.0.1");
}

#[tokio::test]
async fn logout_ends_the_session_for_both_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let session = server.sign_up("bia@exemplo.com").await;
    let other = server.sign_in("bia@exemplo.com", "senha_segura", None).await;
    let http = client();
    let (status, body) = json_of(
        http.get(server.url("api", "/api/auth/logout"))
            .bearer_auth(&session.token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body["success"].clone()), (200, json!(true)));
    let (status, _) = json_of(
        http.get(server.url("api", "/api/profile"))
            .bearer_auth(&session.token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = json_of(
        http.post(server.url("api", "/auth/refresh"))
            .bearer_auth(&session.refresh_token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);
    // Another session of the same user is untouched; POST works too.
    let (status, _) = json_of(
        http.get(server.url("api", "/api/profile"))
            .bearer_auth(&other.token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = json_of(
        http.post(server.url("api", "/api/auth/logout"))
            .bearer_auth(&other.refresh_token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = json_of(
        http.get(server.url("api", "/api/profile"))
            .bearer_auth(&other.token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn tampered_forged_and_missing_tokens_are_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let session = server.sign_up("caio@exemplo.com").await;
    let http = client();
    let parts: Vec<&str> = session.token.split('.').collect();
    assert_eq!(parts.len(), 3);

    // A payload claiming the platform-admin flag, with the original signature.
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut claims: Value = serde_json::from_slice(&engine.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(claims["iss"], "veloflux");
    claims["pa"] = json!(true);
    let tampered = format!("{}.{}.{}", parts[0], engine.encode(claims.to_string()), parts[2]);
    let unsigned = format!("{}.{}.", engine.encode(r#"{"alg":"none","typ":"JWT"}"#), parts[1]);
    for token in [tampered.as_str(), unsigned.as_str(), "garbage", &session.refresh_token] {
        let (status, body) = json_of(
            http.get(server.url("api", "/api/profile"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((status, body["code"].as_str()), (401, Some("INVALID_TOKEN")), "{token}");
    }
    let (status, body) = json_of(http.get(server.url("api", "/api/profile")).send().await.unwrap()).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("INVALID_TOKEN")));
}

#[tokio::test]
async fn rotating_keys_logs_nobody_out() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let user = server.sign_up("dora@exemplo.com").await;
    let admin = server.sign_in("root@exemplo.com", "root-password-1", None).await;
    let http = client();
    let kid_of = |token: &str| -> String {
        use base64::Engine as _;
        let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap();
        serde_json::from_slice::<Value>(&header).unwrap()["kid"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let old_kid = kid_of(&user.token);

    let (status, _) = json_of(
        http.post(server.url("api", "/api/admin/keys/rotate"))
            .bearer_auth(&user.token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 403, "only platform administrators rotate keys");
    let (status, rotated) = json_of(
        http.post(server.url("api", "/api/admin/keys/rotate"))
            .bearer_auth(&admin.token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let new_kid = rotated["kid"].as_str().unwrap().to_owned();
    assert_ne!(new_kid, old_kid);

    let (status, _) = json_of(
        http.get(server.url("api", "/api/profile"))
            .bearer_auth(&user.token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "a token signed by the retired key still works");
    let fresh = server.sign_in("dora@exemplo.com", "senha_segura", None).await;
    assert_eq!(kid_of(&fresh.token), new_kid);
    let (_, jwks) = json_of(
        http.get(server.url("api", "/.well-known/jwks.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(
        kids.contains(&old_kid.as_str()) && kids.contains(&new_kid.as_str()),
        "{kids:?}"
    );
    assert!(
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["kty"] == "OKP" && k["alg"] == "EdDSA" && k.get("d").is_none())
    );
}

#[tokio::test]
async fn repeated_failures_lock_the_account_whether_or_not_it_exists() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        &dir.path().join("data"),
        &[("VELOFLUX_AUTH__MAX_FAILURES_PER_ACCOUNT", "3")],
    );
    server.sign_up("eva@exemplo.com").await;
    server.sign_up("fabio@exemplo.com").await;
    let http = client();
    let attempt = |email: &'static str, password: &'static str| {
        let (http, url) = (http.clone(), server.url("api", "/auth/login"));
        async move {
            let response = http
                .post(url)
                .json(&json!({"email": email, "password": password}))
                .send()
                .await
                .unwrap();
            let retry_after = response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            let (status, body) = json_of(response).await;
            (status, body, retry_after)
        }
    };
    for email in ["eva@exemplo.com", "ghost@exemplo.com"] {
        for _ in 0..3 {
            let (status, body, _) = attempt(email, "wrong-password").await;
            assert_eq!((status, body["code"].as_str()), (401, Some("AUTHENTICATION_FAILED")));
            assert_eq!(
                body["message"], "invalid email or password",
                "the same answer for unknown accounts"
            );
        }
        let (status, body, retry_after) = attempt(email, "senha_segura").await;
        assert_eq!(status, 429, "locked even with the right password: {body}");
        assert_eq!(body["code"], "RATE_LIMIT_EXCEEDED");
        let wait: u64 = retry_after.unwrap().parse().unwrap();
        assert!(wait > 800 && wait <= 900, "{wait}");
    }
    let (status, _, _) = attempt("fabio@exemplo.com", "senha_segura").await;
    assert_eq!(status, 200, "other accounts are not affected");
}

#[tokio::test]
async fn api_requests_are_limited_per_token_by_plan() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(&dir.path().join("data"), &[("VELOFLUX_RATE_LIMITS__FREE", "3")]);
    let session = server.sign_up("gil@exemplo.com").await;
    let http = client();
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let response = http
            .get(server.url("api", "/api/profile"))
            .bearer_auth(&session.token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-ratelimit-limit"], "3");
        assert_eq!(response.headers()["x-ratelimit-window"], "3600");
        assert!(
            response.headers()["x-ratelimit-reset"]
                .to_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
                % 3600
                == 0
        );
        remaining.push(response.headers()["x-ratelimit-remaining"].to_str().unwrap().to_owned());
    }
    assert_eq!(remaining, ["2", "1", "0"]);
    let response = http
        .get(server.url("api", "/api/profile"))
        .bearer_auth(&session.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    let retry: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=3600).contains(&retry));
    let (_, body) = json_of(response).await;
    assert_eq!(body["code"], "RATE_LIMIT_EXCEEDED");
}

#[tokio::test]
async fn sign_in_routes_have_a_per_ip_limit() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(&dir.path().join("data"), &[("VELOFLUX_RATE_LIMITS__AUTH_PER_IP", "2")]);
    let http = client();
    let body = json!({"email": "x@exemplo.com", "password": "whatever-1"});
    for _ in 0..2 {
        let response = http
            .post(server.url("api", "/api/auth/login"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
        assert!(response.headers().contains_key("x-ratelimit-remaining"));
    }
    let response = http
        .post(server.url("api", "/api/auth/login"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
}
