//! OIDC per tenant against a loopback provider that issues real ES256-signed ID tokens and
//! checks PKCE, like a real one.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use serde_json::{Value, json};
use sqlx::Connection as _;

use crate::harness::{Server, client};

const CLIENT_ID: &str = "veloflux-client";
const CLIENT_SECRET: &str = "provider-client-secret-123";

struct Pending {
    nonce: String,
    challenge: String,
    redirect_uri: String,
}

struct Provider {
    base: String,
    key: jsonwebtoken::EncodingKey,
    jwk: Value,
    pending: Mutex<HashMap<String, Pending>>,
    nonce_override: Mutex<Option<String>>,
    email: String,
}

type Shared = Arc<Provider>;

async fn discovery(State(p): State<Shared>) -> axum::Json<Value> {
    axum::Json(json!({
        "issuer": p.base, "authorization_endpoint": format!("{}/authorize", p.base), "token_endpoint": format!("{}/token", p.base),
        "jwks_uri": format!("{}/jwks", p.base), "response_types_supported": ["code"], "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"], "code_challenge_methods_supported": ["S256"]
    }))
}

async fn jwks(State(p): State<Shared>) -> axum::Json<Value> {
    axum::Json(json!({"keys": [p.jwk]}))
}

/// Stands in for the user approving the sign-in at the provider.
async fn authorize(State(p): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    if q.get("client_id").map(String::as_str) != Some(CLIENT_ID)
        || q.get("code_challenge_method").map(String::as_str) != Some("S256")
    {
        return (StatusCode::BAD_REQUEST, "invalid_request").into_response();
    }
    let code = format!("code-{}", uuid::Uuid::new_v4().simple());
    let redirect_uri = q["redirect_uri"].clone();
    p.pending.lock().unwrap().insert(
        code.clone(),
        Pending {
            nonce: q["nonce"].clone(),
            challenge: q["code_challenge"].clone(),
            redirect_uri: redirect_uri.clone(),
        },
    );
    Redirect::to(&format!("{redirect_uri}?code={code}&state={}", q["state"])).into_response()
}

async fn token(State(p): State<Shared>, headers: HeaderMap, Form(form): Form<HashMap<String, String>>) -> Response {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
    );
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "invalid_client"}))).into_response();
    }
    let Some(pending) = p
        .pending
        .lock()
        .unwrap()
        .remove(form.get("code").map(String::as_str).unwrap_or(""))
    else {
        return (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "invalid_grant"}))).into_response();
    };
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()));
    if challenge != pending.challenge || form.get("redirect_uri") != Some(&pending.redirect_uri) {
        return (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "invalid_grant"}))).into_response();
    }
    let nonce = p.nonce_override.lock().unwrap().clone().unwrap_or(pending.nonce);
    let now = chrono_now();
    let claims = json!({"iss": p.base, "aud": CLIENT_ID, "sub": "provider-user-42", "email": p.email, "email_verified": true,
        "given_name": "Olivia", "family_name": "Idp", "nonce": nonce, "iat": now, "exp": now + 300});
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some("provider-key-1".into());
    let id_token = jsonwebtoken::encode(&header, &claims, &p.key).unwrap();
    axum::Json(json!({"access_token": "at", "token_type": "Bearer", "expires_in": 300, "id_token": id_token}))
        .into_response()
}

fn chrono_now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

async fn start_provider(email: &str) -> Shared {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let point = pair.public_key().as_ref();
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let jwk = json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..65]), "kid": "provider-key-1", "alg": "ES256", "use": "sig"});
    let provider = Arc::new(Provider {
        base: format!("http://{addr}"),
        key: jsonwebtoken::EncodingKey::from_ec_der(pkcs8.as_ref()),
        jwk,
        pending: Mutex::new(HashMap::new()),
        nonce_override: Mutex::new(None),
        email: email.to_owned(),
    });
    let app = axum::Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .route("/authorize", get(authorize))
        .route("/token", post(token))
        .with_state(Arc::clone(&provider));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    provider
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Configures OIDC for the owner's tenant, pointing back at VeloFlux's callback.
async fn configure(server: &Server, provider: &Provider, token: &str, tenant: &str) -> Value {
    let body = json!({"provider_url": provider.base, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
        "redirect_uri": server.url("api", &format!("/api/auth/oidc/{tenant}/callback")), "scopes": ["openid", "profile", "email"]});
    let response = client()
        .put(server.url("api", &format!("/api/tenants/{tenant}/oidc/config")))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Runs the browser's part of the flow and returns the callback URL the provider sent it to.
async fn browser_login(server: &Server, tenant: &str) -> String {
    let http = no_redirects();
    let start = http
        .get(server.url("api", &format!("/api/auth/oidc/{tenant}/login")))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 302);
    let authorize = start.headers()["location"].to_str().unwrap().to_owned();
    let url = reqwest::Url::parse(&authorize).unwrap();
    let params: HashMap<String, String> = url.query_pairs().into_owned().collect();
    for key in ["state", "nonce", "code_challenge"] {
        assert!(params[key].len() >= 32, "{key}");
    }
    assert_eq!(params["code_challenge_method"], "S256");
    let consent = http.get(authorize).send().await.unwrap();
    assert_eq!(consent.status(), 303);
    consent.headers()["location"].to_str().unwrap().to_owned()
}

const PRIVATE_OK: [(&str, &str); 1] = [("VELOFLUX_OIDC__ALLOW_PRIVATE_TARGETS", "true")];

#[tokio::test]
async fn a_tenant_signs_in_through_its_oidc_provider() {
    let provider = start_provider("olivia@idp.example.com").await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start_with(&data, &PRIVATE_OK);
    let owner = server.sign_up("owner@empresa.com").await;

    let config = configure(&server, &provider, &owner.token, &owner.tenant_id).await;
    assert_eq!(config["client_secret"], "***");
    let shown = client()
        .get(server.url("api", &format!("/api/tenants/{}/oidc/config", owner.tenant_id)))
        .bearer_auth(&owner.token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !shown.contains(CLIENT_SECRET) && shown.contains("\"client_secret\":\"***\""),
        "{shown}"
    );
    let mut db = sqlx::SqliteConnection::connect(&format!("sqlite://{}/veloflux.db", data.display()))
        .await
        .unwrap();
    let stored: String = sqlx::query_scalar("SELECT client_secret FROM tenant_oidc")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert!(
        stored.starts_with("v1.") && !stored.contains(CLIENT_SECRET),
        "sealed at rest"
    );

    let test: Value = client()
        .post(server.url("api", &format!("/api/tenants/{}/oidc/test", owner.tenant_id)))
        .bearer_auth(&owner.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(test["success"], true, "{test}");
    assert_eq!(test["keys"], 1);
    assert_eq!(test["issuer"], provider.base.as_str());

    let callback = browser_login(&server, &owner.tenant_id).await;
    let response = client().get(&callback).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let session: Value = response.json().await.unwrap();
    assert_eq!(session["user"]["email"], "olivia@idp.example.com");
    assert_eq!(session["user"]["role"], "member");
    assert_eq!(session["user"]["tenant_id"], owner.tenant_id.as_str());
    let profile: Value = client()
        .get(server.url("api", "/api/profile"))
        .bearer_auth(session["token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(profile["first_name"], "Olivia");

    // A second sign-in finds the same account through the linked identity; replaying the
    // used callback fails.
    let again: Value = client()
        .get(browser_login(&server, &owner.tenant_id).await)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["user"]["user_id"], session["user"]["user_id"]);
    let replay = client().get(&callback).send().await.unwrap();
    assert_eq!(replay.status(), 401);
}

#[tokio::test]
async fn a_wrong_state_or_nonce_is_rejected() {
    let provider = start_provider("nina@idp.example.com").await;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(&dir.path().join("data"), &PRIVATE_OK);
    let owner = server.sign_up("owner@empresa.com").await;
    configure(&server, &provider, &owner.token, &owner.tenant_id).await;

    let callback = browser_login(&server, &owner.tenant_id).await;
    let forged = reqwest::Url::parse(&callback).unwrap();
    let code = forged.query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
    let bad_state = server.url(
        "api",
        &format!(
            "/api/auth/oidc/{}/callback?code={code}&state=forged-state",
            owner.tenant_id
        ),
    );
    let response = client().get(bad_state).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "AUTHENTICATION_FAILED");

    *provider.nonce_override.lock().unwrap() = Some("someone-elses-nonce".into());
    let callback = browser_login(&server, &owner.tenant_id).await;
    let response = client().get(&callback).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("nonce"), "{body}");
}

#[tokio::test]
async fn providers_on_private_addresses_are_refused_by_default() {
    let provider = start_provider("x@idp.example.com").await;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let owner = server.sign_up("owner@empresa.com").await;
    configure(&server, &provider, &owner.token, &owner.tenant_id).await;
    let test: Value = client()
        .post(server.url("api", &format!("/api/tenants/{}/oidc/test", owner.tenant_id)))
        .bearer_auth(&owner.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(test["success"], false);
    assert!(
        test["error"].as_str().unwrap().contains("private or loopback"),
        "{test}"
    );
}
