//! Tampering with the audit trail in PostgreSQL directly, as someone with database access
//! could: the triggers refuse plain changes (TRUNCATE included), and once they are disabled,
//! `verify` names the first changed, deleted, inserted or reordered entry.

use std::sync::Arc;

use carerecord_store::suite::audit::{
    AUDIT_KEY, TAMPER_CASES, TAMPER_TRAIL, seed_trail, tamper_found,
};
use carerecord_store::{AuditKey, ResourceStore};
use carerecord_store_postgres::PostgresStore;
use carerecord_store_postgres::test_support::{Fresh, TestDatabase, fresh};
use sqlx::AssertSqlSafe;

async fn seeded() -> Option<(PostgresStore, Arc<dyn ResourceStore>, TestDatabase)> {
    match fresh(4).await.expect("a fresh test database") {
        Fresh::Unreachable(e) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "PostgreSQL is unreachable and CI is set: {e}"
            );
            eprintln!("skipped: PostgreSQL is unreachable ({e})");
            None
        }
        Fresh::Ready(store, db) => {
            let store = store.with_audit_key(AuditKey::new(AUDIT_KEY).expect("a valid key"));
            let dynstore: Arc<dyn ResourceStore> = Arc::new(store.clone());
            seed_trail(&dynstore).await;
            Some((store, dynstore, db))
        }
    }
}

async fn run(store: &PostgresStore, sql: &str) -> Result<(), String> {
    sqlx::query(AssertSqlSafe(sql.to_owned()))
        .execute(store.pool())
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn the_database_refuses_to_change_or_delete_audit_entries() {
    let Some((store, dynstore, db)) = seeded().await else {
        return;
    };
    for sql in [
        "UPDATE audit_log SET rule = 'nothing to see' WHERE seq = 3",
        "DELETE FROM audit_log WHERE seq = 3",
        "TRUNCATE audit_log",
        "UPDATE audit_patient SET patient_id = 'pat-x'",
        "DELETE FROM audit_patient",
        "TRUNCATE audit_patient",
    ] {
        let e = run(&store, sql).await.expect_err(sql);
        assert!(e.contains("append-only"), "{sql}: {e}");
    }
    assert_eq!(tamper_found(&dynstore).await, None);
    store.close().await;
    db.drop_database().await;
}

#[tokio::test]
async fn verify_names_the_first_tampered_entry_and_the_kind_of_change() {
    for case in TAMPER_CASES {
        let Some((store, dynstore, db)) = seeded().await else {
            return;
        };
        // The attacker first switches the append-only guard off.
        run(&store, "ALTER TABLE audit_log DISABLE TRIGGER USER")
            .await
            .expect("disable triggers");
        for sql in case.statements {
            run(&store, sql).await.expect(sql);
        }
        let found = tamper_found(&dynstore).await;
        store.close().await;
        db.drop_database().await;
        assert_eq!(found, Some((case.seq, case.kind)), "{}", case.name);
    }
}

#[tokio::test]
async fn removing_the_newest_entries_is_only_visible_against_a_recorded_head() {
    let Some((store, dynstore, db)) = seeded().await else {
        return;
    };
    run(&store, "ALTER TABLE audit_log DISABLE TRIGGER USER")
        .await
        .expect("disable triggers");
    run(
        &store,
        &format!("DELETE FROM audit_log WHERE seq = {TAMPER_TRAIL}"),
    )
    .await
    .expect("delete");
    assert_eq!(tamper_found(&dynstore).await, None);
    store.close().await;
    db.drop_database().await;
}
