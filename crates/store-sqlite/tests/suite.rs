//! The behavioural suite against SQLite: a fresh database file per test.
#![allow(clippy::expect_used, reason = "test fixtures fail loudly")]

use std::sync::Arc;

use carerecord_store::AuditKey;
use carerecord_store::suite::Fixture;
use carerecord_store::suite::audit::AUDIT_KEY;
use carerecord_store_sqlite::SqliteStore;

async fn fresh() -> Option<Fixture> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = SqliteStore::open(&dir.path().join("carerecord.db"))
        .await
        .expect("the SQLite store opens")
        .with_audit_key(AuditKey::new(AUDIT_KEY).expect("a valid key"));
    let closer = store.clone();
    Some(Fixture {
        store: Arc::new(store),
        teardown: Some(Box::pin(async move {
            closer.close().await;
            drop(dir);
        })),
    })
}

carerecord_store::backend_suite!(fresh);

/// A new store's file after its migrations, and a plain connection to it (to look at plans).
async fn migrated_file() -> (tempfile::TempDir, sqlx::SqliteConnection) {
    use sqlx::Connection as _;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("carerecord.db");
    let store = SqliteStore::open(&path)
        .await
        .expect("the SQLite store opens");
    store.close().await;
    let db = sqlx::SqliteConnection::connect_with(
        &sqlx::sqlite::SqliteConnectOptions::new().filename(&path),
    )
    .await
    .expect("a connection to the file");
    (dir, db)
}

mod feed_index;
mod planner;
mod tamper;
