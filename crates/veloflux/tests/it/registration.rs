use serde_json::{Value, json};
use veloflux_domain::{Email, TenantId};
use veloflux_store::{PageRequest, Store, TenantUpdate};

use crate::harness::{Server, client};

fn body(email: &str, tenant_id: Option<&str>) -> Value {
    json!({"email": email, "password": "senha_segura", "first_name": "Maria", "last_name": "Santos", "tenant_id": tenant_id})
}

#[tokio::test]
async fn registering_creates_an_owned_tenant_and_audits_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let response = client()
        .post(server.url("api", "/auth/register"))
        .json(&body("Maria@Exemplo.com", None))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    assert_eq!(created["success"], true);
    assert_eq!(created["user"]["email"], "maria@exemplo.com");
    assert_eq!(created["user"]["role"], "owner");
    assert_eq!(created["user"]["first_name"], "Maria");

    let store = Store::connect(&format!("sqlite://{}/veloflux.db", data.display()))
        .await
        .unwrap();
    let user = store
        .user_by_email(&Email::parse("maria@exemplo.com").unwrap())
        .await
        .unwrap();
    assert_eq!(user.id.to_string(), created["user"]["user_id"]);
    let hash = store.password_hash(user.id).await.unwrap().unwrap();
    assert!(hash.starts_with("$argon2id$"), "only an argon2id hash is stored");
    let tenant_id = TenantId::parse(created["user"]["tenant_id"].as_str().unwrap()).unwrap();
    assert_eq!(store.tenant(tenant_id).await.unwrap().name, "Maria Santos");
    let audit = store.audit_log(Some(tenant_id), &PageRequest::default()).await.unwrap();
    assert_eq!(audit.items.len(), 1);
    assert_eq!(audit.items[0].action, "user.registered");
    assert_eq!(audit.items[0].ip.as_deref(), Some("127.0.0.1"));

    let again = client()
        .post(server.url("api", "/api/auth/register"))
        .json(&body("maria@exemplo.com", None))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409);
}

#[tokio::test]
async fn joining_a_tenant_requires_its_consent() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let store = Store::connect(&format!("sqlite://{}/veloflux.db", data.display()))
        .await
        .unwrap();
    let tenant = store.default_tenant().await.unwrap().unwrap();
    let register = server.url("api", "/auth/register");

    let refused = client()
        .post(&register)
        .json(&body("a@exemplo.com", Some(&tenant.to_string())))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let refused: Value = refused.json().await.unwrap();
    assert_eq!(refused["code"], "INSUFFICIENT_PERMISSIONS");

    let mut settings = serde_json::Map::new();
    settings.insert("allow_self_signup".into(), json!(true));
    store
        .update_tenant(
            tenant,
            &TenantUpdate {
                settings: Some(settings),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let joined = client()
        .post(&register)
        .json(&body("a@exemplo.com", Some(&tenant.to_string())))
        .send()
        .await
        .unwrap();
    assert_eq!(joined.status(), 201);
    let joined: Value = joined.json().await.unwrap();
    assert_eq!(joined["user"]["role"], "member");
    assert_eq!(joined["user"]["tenant_id"], tenant.to_string());

    let missing = client()
        .post(&register)
        .json(&body("b@exemplo.com", Some(&TenantId::new().to_string())))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let missing: Value = missing.json().await.unwrap();
    assert_eq!(missing["code"], "TENANT_NOT_FOUND");

    let malformed = client()
        .post(&register)
        .json(&body("c@exemplo.com", Some("tenant_123")))
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 422);
    let malformed: Value = malformed.json().await.unwrap();
    assert_eq!(malformed["details"]["field"], "tenant_id");
}
