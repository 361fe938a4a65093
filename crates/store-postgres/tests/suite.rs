//! The behavioural suite against PostgreSQL: a fresh database per test.
//!
//! The server is `CARERECORD_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); each test creates `cr_test_<uuid>` there and
//! drops it afterwards. If the server cannot be reached the tests are skipped, unless `CI` is
//! set, in which case they fail.
#![allow(clippy::expect_used, reason = "test fixtures fail loudly")]

use std::sync::Arc;

use carerecord_store::AuditKey;
use carerecord_store::suite::Fixture;
use carerecord_store::suite::audit::AUDIT_KEY;
use carerecord_store_postgres::test_support::{Fresh, fresh};

async fn fresh_fixture() -> Option<Fixture> {
    match fresh(12).await.expect("a fresh test database") {
        Fresh::Unreachable(e) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "PostgreSQL is unreachable and CI is set: {e}"
            );
            eprintln!("skipped: PostgreSQL is unreachable ({e}); set CARERECORD_TEST_POSTGRES_URL");
            None
        }
        Fresh::Ready(store, db) => {
            let store = store.with_audit_key(AuditKey::new(AUDIT_KEY).expect("a valid key"));
            let closer = store.clone();
            Some(Fixture {
                store: Arc::new(store),
                teardown: Some(Box::pin(async move {
                    closer.close().await;
                    db.drop_database().await;
                })),
            })
        }
    }
}

carerecord_store::backend_suite!(fresh_fixture);

mod tamper;
