//! The behavioural suite against PostgreSQL: a fresh database per test.
//!
//! The server is `CARERECORD_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); each test creates `cr_test_<uuid>` there and
//! drops it afterwards. If the server cannot be reached the tests are skipped, unless `CI` is
//! set, in which case they fail.
#![allow(clippy::expect_used, reason = "test fixtures fail loudly")]

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use carerecord_store::suite::Fixture;
use carerecord_store_postgres::PostgresStore;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{AssertSqlSafe, Connection};

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

fn admin_options() -> PgConnectOptions {
    let url =
        std::env::var("CARERECORD_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
    PgConnectOptions::from_str(&url).expect("CARERECORD_TEST_POSTGRES_URL is a postgres:// URL")
}

async fn connect_admin() -> Result<PgConnection, String> {
    match tokio::time::timeout(
        Duration::from_secs(5),
        PgConnection::connect_with(&admin_options()),
    )
    .await
    {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out connecting".to_owned()),
    }
}

async fn fresh() -> Option<Fixture> {
    let mut admin = match connect_admin().await {
        Ok(c) => c,
        Err(e) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "PostgreSQL is unreachable and CI is set: {e}"
            );
            eprintln!("skipped: PostgreSQL is unreachable ({e}); set CARERECORD_TEST_POSTGRES_URL");
            return None;
        }
    };
    let name = format!("cr_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .expect("CREATE DATABASE for the test");
    let _ = admin.close().await;
    let store = PostgresStore::connect_with(admin_options().database(&name), 12)
        .await
        .expect("the PostgreSQL store connects and migrates");
    let closer = store.clone();
    Some(Fixture {
        store: Arc::new(store),
        teardown: Some(Box::pin(async move {
            closer.close().await;
            // Best effort: a leftover database is harmless and named as a test's.
            if let Ok(mut admin) = connect_admin().await {
                let _ = sqlx::query(AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut admin)
                .await;
                let _ = admin.close().await;
            }
        })),
    })
}

carerecord_store::backend_suite!(fresh);
