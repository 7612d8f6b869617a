//! The store's conformance suite: every test runs on SQLite and, when `TEST_DATABASE_URL` is
//! set, on PostgreSQL, through the same code.
#![allow(clippy::unwrap_used, reason = "tests")]

use veloflux_store::Store;
use veloflux_test_support::TestDatabase;

mod audit;
mod auth;
mod edge;
mod migrations;
mod tenants;
mod users;

/// Runs `$test(store)` once per backend.
macro_rules! conformance {
    ($($test:ident),+ $(,)?) => {
        $(
            mod $test {
                #[tokio::test]
                async fn sqlite() {
                    let db = veloflux_test_support::TestDatabase::sqlite();
                    super::$test(crate::migrated(&db).await).await;
                }

                #[tokio::test]
                async fn postgres() {
                    let Some(db) = veloflux_test_support::TestDatabase::postgres().await else { return };
                    super::$test(crate::migrated(&db).await).await;
                }
            }
        )+
    };
}
pub(crate) use conformance;

async fn migrated(db: &TestDatabase) -> Store {
    let store = Store::connect(db.url()).await.unwrap();
    store.migrate().await.unwrap();
    store
}
