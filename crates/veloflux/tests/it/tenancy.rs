//! Tenants, members and roles: isolation between tenants and the permission matrix, walked
//! over every tenant-scoped route the OpenAPI document lists.

use serde_json::{Value, json};

use crate::harness::{Server, Session, call, client};

/// Every (method, path) of the document that is scoped to one tenant and needs a token
/// (the OIDC sign-in routes are tenant-scoped but public by nature).
async fn tenant_routes(server: &Server) -> Vec<(String, String)> {
    let doc: Value = client()
        .get(server.url("api", "/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut routes = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.contains("{tenant_id}") {
            continue;
        }
        for (method, operation) in item.as_object().unwrap() {
            if operation.get("security").is_some() {
                routes.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    assert!(routes.len() >= 8, "{routes:?}");
    routes
}

fn concrete(path: &str, tenant: &str, user: &str) -> String {
    path.replace("{tenant_id}", tenant).replace("{user_id}", user)
}

#[tokio::test]
async fn another_tenants_routes_answer_403_or_404_and_no_data() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let alice = server.sign_up("alice@empresa-a.com").await;
    let bob = server.sign_up("bob@empresa-b.com").await;

    for (method, path) in tenant_routes(&server).await {
        let url = concrete(&path, &bob.tenant_id, &bob.user_id);
        let body = Some(
            json!({"name": "stolen", "email": "x@x.com", "role": "viewer", "provider_url": "https://idp.example.com",
            "client_id": "c", "client_secret": "s", "redirect_uri": "https://app.example.com/cb"}),
        );
        let (status, response) = call(&server, &method, &url, &alice.token, body).await;
        assert!(status == 403 || status == 404, "{method} {path}: {status} {response}");
        let text = response.to_string();
        assert!(
            !text.contains("bob@empresa-b.com") && !text.contains(&bob.user_id),
            "{method} {path} leaked: {text}"
        );
    }
    // Bob's tenant is unchanged and still his.
    let (status, tenant) = call(
        &server,
        "GET",
        &format!("/api/tenants/{}", bob.tenant_id),
        &bob.token,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(tenant["name"], "Test User");
    assert_eq!(tenant["user_count"], 1);
    // Alice's list shows only her tenant.
    let (_, list) = call(&server, "GET", "/api/tenants", &alice.token, None).await;
    let ids: Vec<&str> = list["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [alice.tenant_id.as_str()]);
}

#[tokio::test]
async fn a_viewer_gets_403_on_every_write() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let owner = server.sign_up("owner@empresa.com").await;
    let (status, added) = call(
        &server,
        "POST",
        &format!("/api/tenants/{}/users", owner.tenant_id),
        &owner.token,
        Some(json!({"email": "viewer@empresa.com", "first_name": "Vera", "last_name": "Lima", "role": "viewer", "password": "senha_segura"})),
    )
    .await;
    assert_eq!(status, 201, "{added}");
    assert_eq!(added["role"], "viewer");
    let viewer = server
        .sign_in("viewer@empresa.com", "senha_segura", Some(&owner.tenant_id))
        .await;

    let mut writes = 0;
    for (method, path) in tenant_routes(&server).await {
        let url = concrete(&path, &owner.tenant_id, &owner.user_id);
        let (status, body) = call(&server, &method, &url, &viewer.token, None).await;
        if method == "GET" {
            assert!(
                status == 200 || path.contains("oidc"),
                "{method} {path}: {status} {body}"
            );
            continue;
        }
        writes += 1;
        assert_eq!(status, 403, "{method} {path}: {body}");
        assert_eq!(body["code"], "INSUFFICIENT_PERMISSIONS");
    }
    assert!(writes >= 7, "{writes}");
    for (method, path) in [
        ("GET", "/api/admin/users"),
        ("GET", "/api/admin/stats"),
        ("GET", "/api/admin/logs"),
        ("POST", "/api/tenants"),
    ] {
        let (status, _) = call(
            &server,
            method,
            path,
            &owner.token,
            Some(json!({"email": "a@b.com", "name": "x"})),
        )
        .await;
        assert_eq!(status, 403, "{method} {path} is for platform administrators");
    }
}

#[tokio::test]
async fn owners_manage_members_and_roles_within_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let owner = server.sign_up("dono@empresa.com").await;
    let users = format!("/api/tenants/{}/users", owner.tenant_id);
    let add = |email: &str, role: &str| json!({"email": email, "first_name": "N", "last_name": "M", "role": role, "password": "senha_segura"});

    let (status, admin) = call(
        &server,
        "POST",
        &users,
        &owner.token,
        Some(add("admin@empresa.com", "admin")),
    )
    .await;
    assert_eq!(status, 201);
    let admin_session: Session = server
        .sign_in("admin@empresa.com", "senha_segura", Some(&owner.tenant_id))
        .await;
    // An admin manages members but cannot touch ownership.
    let (status, member) = call(
        &server,
        "POST",
        &users,
        &admin_session.token,
        Some(add("membro@empresa.com", "member")),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = call(
        &server,
        "POST",
        &users,
        &admin_session.token,
        Some(add("outro@empresa.com", "owner")),
    )
    .await;
    assert_eq!(status, 403);
    let owner_path = format!("{users}/{}", owner.user_id);
    let (status, _) = call(&server, "DELETE", &owner_path, &admin_session.token, None).await;
    assert_eq!(status, 403);
    // Duplicates and bad roles are refused with clear errors.
    let (status, body) = call(
        &server,
        "POST",
        &users,
        &owner.token,
        Some(add("membro@empresa.com", "member")),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (409, Some("CONFLICT")));
    let (status, body) = call(
        &server,
        "POST",
        &users,
        &owner.token,
        Some(add("novo@empresa.com", "superuser")),
    )
    .await;
    assert_eq!((status, body["details"]["field"].as_str()), (422, Some("role")));
    // The last owner stays.
    let (status, _) = call(
        &server,
        "PUT",
        &owner_path,
        &owner.token,
        Some(json!({"role": "admin"})),
    )
    .await;
    assert_eq!(status, 409);
    // Role change takes effect at once, also for tokens already issued.
    let member_path = format!("{users}/{}", member["user_id"].as_str().unwrap());
    let member_session = server
        .sign_in("membro@empresa.com", "senha_segura", Some(&owner.tenant_id))
        .await;
    let (status, changed) = call(
        &server,
        "PUT",
        &member_path,
        &owner.token,
        Some(json!({"role": "viewer", "first_name": "Nome Atualizado"})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        (changed["role"].as_str(), changed["first_name"].as_str()),
        (Some("viewer"), Some("Nome Atualizado"))
    );
    let (status, _) = call(
        &server,
        "POST",
        &users,
        &member_session.token,
        Some(add("x@empresa.com", "viewer")),
    )
    .await;
    assert_eq!(status, 403);
    // Removal revokes access immediately.
    let (status, _) = call(&server, "DELETE", &member_path, &owner.token, None).await;
    assert_eq!(status, 204);
    let (status, body) = call(&server, "GET", "/api/profile", &member_session.token, None).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("INVALID_TOKEN")));

    let (_, list) = call(&server, "GET", &users, &owner.token, None).await;
    let roles: Vec<&str> = list["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["owner", "admin"]);
    assert_eq!(admin["email"], "admin@empresa.com");

    // Role changes are audited.
    let root = server.sign_in("root@exemplo.com", "root-password-1", None).await;
    let (_, logs) = call(
        &server,
        "GET",
        &format!("/api/admin/logs?tenant_id={}", owner.tenant_id),
        &root.token,
        None,
    )
    .await;
    let actions: Vec<&str> = logs["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in [
        "user.registered",
        "auth.login",
        "user.added",
        "user.role_changed",
        "user.removed",
    ] {
        assert!(actions.contains(&action), "{action} missing from {actions:?}");
    }
}

#[tokio::test]
async fn platform_admins_create_and_manage_tenants() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let root = server.sign_in("root@exemplo.com", "root-password-1", None).await;
    let body = json!({"name": "Nova Empresa", "plan": "professional", "admin_email": "admin@novaempresa.com",
        "settings": {"max_users": 50, "max_requests_per_month": 500000}});
    let (status, tenant) = call(&server, "POST", "/api/tenants", &root.token, Some(body)).await;
    assert_eq!(status, 201, "{tenant}");
    assert_eq!(tenant["plan"], "professional");
    assert_eq!(tenant["status"], "active");
    assert_eq!(tenant["user_count"], 1);
    assert_eq!(tenant["usage"], json!({"requests_per_month": 0, "bandwidth_gb": 0.0}));
    assert_eq!(tenant["settings"]["max_users"], 50);
    let id = tenant["id"].as_str().unwrap();

    let (status, updated) = call(
        &server,
        "PUT",
        &format!("/api/tenants/{id}"),
        &root.token,
        Some(json!({"name": "Nome da Empresa Atualizado", "plan": "enterprise", "settings": {"max_users": 100}})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        (updated["name"].as_str(), updated["plan"].as_str()),
        (Some("Nome da Empresa Atualizado"), Some("enterprise"))
    );
    assert_eq!(
        updated["settings"],
        json!({"max_users": 100, "max_requests_per_month": 500000})
    );
    let (status, body) = call(
        &server,
        "PUT",
        &format!("/api/tenants/{id}"),
        &root.token,
        Some(json!({"settings": {"max_users": "many"}})),
    )
    .await;
    assert_eq!(
        (status, body["details"]["field"].as_str()),
        (422, Some("settings.max_users"))
    );

    let (_, all) = call(&server, "GET", "/api/tenants", &root.token, None).await;
    assert_eq!(all["tenants"].as_array().unwrap().len(), 2, "default and the new one");
    let (_, stats) = call(&server, "GET", "/api/admin/stats", &root.token, None).await;
    assert_eq!(
        (
            stats["tenants"].as_i64(),
            stats["users"].as_i64(),
            stats["platform_admins"].as_i64()
        ),
        (Some(2), Some(2), Some(1))
    );
    let (_, accounts) = call(&server, "GET", "/api/admin/users", &root.token, None).await;
    assert_eq!(accounts["users"].as_array().unwrap().len(), 2);

    let (status, _) = call(&server, "DELETE", &format!("/api/tenants/{id}"), &root.token, None).await;
    assert_eq!(status, 204);
    let (status, body) = call(&server, "GET", &format!("/api/tenants/{id}"), &root.token, None).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("TENANT_NOT_FOUND")));
    let (status, _) = call(
        &server,
        "DELETE",
        &format!("/api/tenants/{}", root.tenant_id),
        &root.token,
        None,
    )
    .await;
    assert_eq!(status, 409, "the default tenant stays");
}

#[tokio::test]
async fn cors_follows_the_platform_and_each_tenants_allowed_origins() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        &dir.path().join("data"),
        &[("VELOFLUX_API__CORS_ALLOWED_ORIGINS", "https://console.veloflux.example")],
    );
    let a = server.sign_up("a@empresa-a.com").await;
    let b = server.sign_up("b@empresa-b.com").await;
    let (status, _) = call(
        &server,
        "PUT",
        &format!("/api/tenants/{}", a.tenant_id),
        &a.token,
        Some(json!({"settings": {"allowed_origins": ["https://app.empresa-a.com"]}})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = call(
        &server,
        "PUT",
        &format!("/api/tenants/{}", a.tenant_id),
        &a.token,
        Some(json!({"settings": {"allowed_origins": ["not an origin"]}})),
    )
    .await;
    assert_eq!(
        (status, body["details"]["field"].as_str()),
        (422, Some("settings.allowed_origins"))
    );

    let http = client();
    let preflight = |origin: &'static str| {
        http.request(reqwest::Method::OPTIONS, server.url("api", "/auth/login"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let allowed = preflight("https://app.empresa-a.com").await.unwrap();
    assert_eq!(allowed.status(), 204);
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.empresa-a.com"
    );
    assert_eq!(allowed.headers()["access-control-max-age"], "86400");
    assert!(
        allowed.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("Authorization")
    );
    let refused = preflight("https://evil.example").await.unwrap();
    assert!(!refused.headers().contains_key("access-control-allow-origin"));
    let platform = preflight("https://console.veloflux.example").await.unwrap();
    assert_eq!(
        platform.headers()["access-control-allow-origin"],
        "https://console.veloflux.example"
    );

    let get = |token: String| {
        http.get(server.url("api", "/api/profile"))
            .bearer_auth(token)
            .header("origin", "https://app.empresa-a.com")
            .send()
    };
    let own = get(a.token.clone()).await.unwrap();
    assert_eq!(
        own.headers()["access-control-allow-origin"],
        "https://app.empresa-a.com"
    );
    assert!(
        own.headers()["access-control-expose-headers"]
            .to_str()
            .unwrap()
            .contains("X-Request-ID")
    );
    let foreign = get(b.token.clone()).await.unwrap();
    assert_eq!(foreign.status(), 200);
    assert!(
        !foreign.headers().contains_key("access-control-allow-origin"),
        "tenant B does not allow A's origin"
    );
}
