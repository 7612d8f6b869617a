use serde_json::json;
use veloflux_domain::{Plan, TenantId, TenantName, TenantStatus};
use veloflux_store::{NewTenant, PageRequest, Store, StoreError, TenantUpdate};

use crate::conformance;

conformance!(
    creates_and_reads_a_tenant,
    updates_merge_settings_and_keep_other_fields,
    deletes_tenants_and_reports_missing_ones,
    lists_tenants_in_pages,
    the_default_tenant_is_created_once,
);

pub(crate) fn new_tenant(name: &str) -> NewTenant {
    NewTenant {
        name: TenantName::parse(name).unwrap(),
        plan: Plan::Professional,
        settings: json!({"max_users": 50}),
    }
}

async fn creates_and_reads_a_tenant(store: Store) {
    let created = store.create_tenant(&new_tenant("Nova Empresa")).await.unwrap();
    assert_eq!(created.name, "Nova Empresa");
    assert_eq!(created.plan, Plan::Professional);
    assert_eq!(created.status, TenantStatus::Active);
    assert_eq!(created.settings, json!({"max_users": 50}));
    assert_eq!(created.user_count, 0);
    assert_eq!(store.tenant(created.id).await.unwrap(), created);
}

async fn updates_merge_settings_and_keep_other_fields(store: Store) {
    let created = store.create_tenant(&new_tenant("Empresa")).await.unwrap();
    let mut settings = serde_json::Map::new();
    settings.insert("max_users".into(), json!(100));
    settings.insert("max_requests_per_month".into(), json!(500_000));
    let updated = store
        .update_tenant(
            created.id,
            &TenantUpdate {
                plan: Some(Plan::Enterprise),
                settings: Some(settings),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.name, "Empresa");
    assert_eq!(updated.plan, Plan::Enterprise);
    assert_eq!(
        updated.settings,
        json!({"max_users": 100, "max_requests_per_month": 500_000})
    );
    assert!(updated.updated_at >= created.updated_at);

    let mut removal = serde_json::Map::new();
    removal.insert("max_users".into(), serde_json::Value::Null);
    let updated = store
        .update_tenant(
            created.id,
            &TenantUpdate {
                settings: Some(removal),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.settings, json!({"max_requests_per_month": 500_000}));

    let missing = store.update_tenant(TenantId::new(), &TenantUpdate::default()).await;
    assert!(matches!(missing, Err(StoreError::NotFound)));
}

async fn deletes_tenants_and_reports_missing_ones(store: Store) {
    let created = store.create_tenant(&new_tenant("Gone")).await.unwrap();
    store.delete_tenant(created.id).await.unwrap();
    assert!(matches!(store.tenant(created.id).await, Err(StoreError::NotFound)));
    assert!(matches!(
        store.delete_tenant(created.id).await,
        Err(StoreError::NotFound)
    ));
}

async fn lists_tenants_in_pages(store: Store) {
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(store.create_tenant(&new_tenant(&format!("T{i}"))).await.unwrap().id);
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .list_tenants(&PageRequest {
                limit: Some(2),
                cursor: cursor.clone(),
            })
            .await
            .unwrap();
        assert!(page.items.len() <= 2);
        seen.extend(page.items.iter().map(|t| t.id));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, ids, "every tenant once, in creation order");
}

async fn the_default_tenant_is_created_once(store: Store) {
    assert_eq!(store.default_tenant().await.unwrap(), None);
    let first = store.ensure_default_tenant().await.unwrap();
    let second = store.ensure_default_tenant().await.unwrap();
    assert_eq!(first, second);
    assert_eq!(store.tenant(first).await.unwrap().name, "default");
    assert_eq!(
        store.list_tenants(&PageRequest::default()).await.unwrap().items.len(),
        1
    );
}
