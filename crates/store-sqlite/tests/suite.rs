//! The behavioural suite against SQLite: a fresh database file per test.
#![allow(clippy::expect_used, reason = "test fixtures fail loudly")]

use std::sync::Arc;

use carerecord_store::suite::Fixture;
use carerecord_store_sqlite::SqliteStore;

async fn fresh() -> Option<Fixture> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = SqliteStore::open(&dir.path().join("carerecord.db"))
        .await
        .expect("the SQLite store opens");
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
