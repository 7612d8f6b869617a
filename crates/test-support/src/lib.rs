//! Helpers shared by VeloFlux's tests: a fresh database per test on either backend.
//!
//! Only tests depend on this crate. PostgreSQL tests read `TEST_DATABASE_URL` (a server
//! where the user may create databases); each test gets its own database, dropped when the
//! handle is. Without the variable the PostgreSQL half of a suite is skipped with a printed
//! notice, except under `CI=true`, where a missing database is a failure.

use std::path::PathBuf;

use sqlx::{Connection, Executor, PgConnection};
use tempfile::TempDir;

/// A database that exists for one test.
#[derive(Debug)]
pub struct TestDatabase {
    url: String,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Sqlite { dir: TempDir },
    Postgres { server_url: String, name: String },
}

impl TestDatabase {
    /// A SQLite file in a new temporary directory.
    pub fn sqlite() -> TestDatabase {
        let dir = tempfile::tempdir().expect("invariant: the temp dir is writable");
        let url = format!("sqlite://{}/veloflux.db", dir.path().display());
        TestDatabase {
            url,
            kind: Kind::Sqlite { dir },
        }
    }

    /// A new, empty PostgreSQL database on the server of `TEST_DATABASE_URL`, or `None` (with
    /// a notice) when the variable is unset outside CI.
    pub async fn postgres() -> Option<TestDatabase> {
        let server_url = match std::env::var("TEST_DATABASE_URL") {
            Ok(url) if !url.is_empty() => url,
            _ => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "TEST_DATABASE_URL must be set under CI=true"
                );
                eprintln!("notice: TEST_DATABASE_URL is unset; skipping the PostgreSQL half of this test");
                return None;
            }
        };
        let name = format!("veloflux_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::connect(&server_url)
            .await
            .unwrap_or_else(|err| panic!("TEST_DATABASE_URL is set but unreachable: {err}"));
        conn.execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("creating a test database");
        conn.close().await.ok();
        let url = with_database(&server_url, &name);
        Some(TestDatabase {
            url,
            kind: Kind::Postgres { server_url, name },
        })
    }

    /// The connection URL for the store.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// For SQLite, the directory holding the file (usable as a data directory).
    pub fn dir(&self) -> Option<PathBuf> {
        match &self.kind {
            Kind::Sqlite { dir } => Some(dir.path().to_path_buf()),
            Kind::Postgres { .. } => None,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Kind::Postgres { server_url, name } = &self.kind else {
            return;
        };
        let (server_url, name) = (server_url.clone(), name.clone());
        // Drop runs inside the test's runtime, which must not be blocked on; a short-lived
        // thread with its own runtime removes the database.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut conn = PgConnection::connect(&server_url).await.ok()?;
                conn.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                    .await
                    .ok()?;
                conn.close().await.ok()
            })
        });
        let _ = cleanup.join();
    }
}

/// Replaces the database name in a PostgreSQL URL, keeping any query string.
fn with_database(server_url: &str, name: &str) -> String {
    let (base, query) = match server_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (server_url, None),
    };
    let authority_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_end..].find('/') {
        Some(slash) => &base[..authority_end + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn swaps_the_database_name() {
        assert_eq!(
            with_database("postgres://u@127.0.0.1:5432/test", "x"),
            "postgres://u@127.0.0.1:5432/x"
        );
        assert_eq!(with_database("postgres://127.0.0.1", "x"), "postgres://127.0.0.1/x");
        assert_eq!(
            with_database("postgres://127.0.0.1/test?sslmode=disable", "x"),
            "postgres://127.0.0.1/x?sslmode=disable"
        );
    }
}
