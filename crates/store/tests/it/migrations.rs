use veloflux_store::Store;

use crate::conformance;

conformance!(migrations_are_idempotent, ping_answers);

async fn migrations_are_idempotent(store: Store) {
    assert!(store.is_migrated().await.unwrap());
    assert_eq!(store.migrate().await.unwrap(), 0, "a second run applies nothing");
    assert!(store.is_migrated().await.unwrap());
}

async fn ping_answers(store: Store) {
    store.ping().await.unwrap();
}

#[tokio::test]
async fn a_fresh_sqlite_database_reports_pending_migrations() {
    let db = veloflux_test_support::TestDatabase::sqlite();
    let store = Store::connect(db.url()).await.unwrap();
    assert!(!store.is_migrated().await.unwrap());
    assert!(store.migrate().await.unwrap() >= 1);
    assert!(store.is_migrated().await.unwrap());
}

#[tokio::test]
async fn rejects_unknown_database_schemes() {
    let err = Store::connect("mysql://localhost/x").await.unwrap_err();
    assert!(err.to_string().contains("database error"), "{err}");
}
