//! Fresh, uniquely named databases for tests (this crate's suite and the API tests).
//!
//! The server is `CARERECORD_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); each test gets `cr_test_<uuid>` and drops it
//! afterwards. When the server cannot be reached, [`fresh`] answers `Unreachable` so the caller
//! can skip — or fail, when `CI` is set.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{AssertSqlSafe, Connection};

use crate::PostgresStore;

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// What [`fresh`] gives.
pub enum Fresh {
    Ready(PostgresStore, TestDatabase),
    Unreachable(String),
}

/// A test database; call [`TestDatabase::drop_database`] (or `drop_blocking`) when done.
pub struct TestDatabase {
    pub name: String,
}

fn admin_options() -> Result<PgConnectOptions, String> {
    let url =
        std::env::var("CARERECORD_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
    PgConnectOptions::from_str(&url)
        .map_err(|e| format!("CARERECORD_TEST_POSTGRES_URL is not a postgres:// URL: {e}"))
}

async fn connect_admin() -> Result<PgConnection, String> {
    let opts = admin_options()?;
    match tokio::time::timeout(Duration::from_secs(5), PgConnection::connect_with(&opts)).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out connecting".to_owned()),
    }
}

/// Creates a new empty database and opens a migrated store on it.
pub async fn fresh(max_connections: u32) -> Result<Fresh, String> {
    let mut admin = match connect_admin().await {
        Ok(c) => c,
        Err(e) => return Ok(Fresh::Unreachable(e)),
    };
    let name = format!("cr_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .map_err(|e| format!("CREATE DATABASE: {e}"))?;
    let _ = admin.close().await;
    let store = PostgresStore::connect_with(admin_options()?.database(&name), max_connections)
        .await
        .map_err(|e| format!("connect and migrate: {e}"))?;
    Ok(Fresh::Ready(store, TestDatabase { name }))
}

impl TestDatabase {
    /// Drops the database (best effort: a leftover one is harmless and named as a test's).
    pub async fn drop_database(self) {
        if let Ok(mut admin) = connect_admin().await {
            let _ = sqlx::query(AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            )))
            .execute(&mut admin)
            .await;
            let _ = admin.close().await;
        }
    }

    /// Drops the database from synchronous code (a `Drop` impl), on a thread of its own.
    pub fn drop_blocking(self) {
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(self.drop_database());
            }
        })
        .join();
    }
}
