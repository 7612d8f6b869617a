use serde_json::json;
use veloflux_store::{NewAuditEntry, PageRequest, Store};

use crate::conformance;
use crate::tenants::new_tenant;

conformance!(audit_entries_are_kept_per_tenant_in_order);

async fn audit_entries_are_kept_per_tenant_in_order(store: Store) {
    let a = store.create_tenant(&new_tenant("A")).await.unwrap();
    let b = store.create_tenant(&new_tenant("B")).await.unwrap();
    let entry = |tenant, action: &str| NewAuditEntry {
        tenant_id: Some(tenant),
        actor_user_id: None,
        action: action.into(),
        target: Some("x".into()),
        ip: Some("127.0.0.1".into()),
        details: json!({"n": 1}),
    };
    let first = store.record_audit(&entry(a.id, "auth.login")).await.unwrap();
    store.record_audit(&entry(b.id, "auth.login")).await.unwrap();
    store.record_audit(&entry(a.id, "auth.login_failed")).await.unwrap();

    let page = store.audit_log(Some(a.id), &PageRequest::default()).await.unwrap();
    let actions: Vec<&str> = page.items.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["auth.login", "auth.login_failed"]);
    assert_eq!(page.items[0], first);

    let all = store
        .audit_log(
            None,
            &PageRequest {
                limit: Some(2),
                cursor: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(all.items.len(), 2);
    assert!(all.next_cursor.is_some());
}
