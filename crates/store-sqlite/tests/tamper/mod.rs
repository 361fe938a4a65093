//! Tampering with the audit trail in the SQLite file directly, as someone holding the file
//! could: the triggers refuse plain changes, and once they are dropped, `verify` names the
//! first changed, deleted, inserted or reordered entry.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use carerecord_store::suite::audit::AUDIT_KEY;
use carerecord_store::suite::audit::{TAMPER_CASES, TAMPER_TRAIL, seed_trail, tamper_found};
use carerecord_store::{AuditKey, ResourceStore};
use carerecord_store_sqlite::SqliteStore;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{AssertSqlSafe, Connection};

struct Db {
    _dir: tempfile::TempDir,
    path: PathBuf,
    store: Arc<dyn ResourceStore>,
}

async fn seeded() -> Db {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("carerecord.db");
    let store: Arc<dyn ResourceStore> = Arc::new(
        SqliteStore::open(&path)
            .await
            .expect("the SQLite store opens")
            .with_audit_key(AuditKey::new(AUDIT_KEY).expect("a valid key")),
    );
    seed_trail(&store).await;
    Db {
        _dir: dir,
        path,
        store,
    }
}

/// A connection of its own to the file, outside carerecord.
async fn raw(path: &Path) -> SqliteConnection {
    SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(path))
        .await
        .expect("a raw connection")
}

async fn run(c: &mut SqliteConnection, sql: &str) -> Result<(), String> {
    sqlx::query(AssertSqlSafe(sql.to_owned()))
        .execute(&mut *c)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn the_database_refuses_to_change_or_delete_audit_entries() {
    let db = seeded().await;
    let mut c = raw(&db.path).await;
    for sql in [
        "UPDATE audit_log SET rule = 'nothing to see' WHERE seq = 3",
        "DELETE FROM audit_log WHERE seq = 3",
        "DELETE FROM audit_log",
        "UPDATE audit_patient SET patient_id = 'pat-x'",
        "DELETE FROM audit_patient",
    ] {
        let e = run(&mut c, sql).await.expect_err(sql);
        assert!(e.contains("append-only"), "{sql}: {e}");
    }
    assert_eq!(tamper_found(&db.store).await, None);
}

#[tokio::test]
async fn verify_names_the_first_tampered_entry_and_the_kind_of_change() {
    for case in TAMPER_CASES {
        let db = seeded().await;
        let mut c = raw(&db.path).await;
        // The attacker first removes the append-only guard.
        for t in [
            "audit_log_no_update",
            "audit_log_no_delete",
            "audit_patient_no_update",
            "audit_patient_no_delete",
        ] {
            run(&mut c, &format!("DROP TRIGGER {t}")).await.expect(t);
        }
        for sql in case.statements {
            run(&mut c, sql).await.expect(sql);
        }
        assert_eq!(
            tamper_found(&db.store).await,
            Some((case.seq, case.kind)),
            "{}",
            case.name
        );
    }
}

#[tokio::test]
async fn removing_the_newest_entries_is_only_visible_against_a_recorded_head() {
    let db = seeded().await;
    let mut c = raw(&db.path).await;
    run(&mut c, "DROP TRIGGER audit_log_no_delete")
        .await
        .expect("drop");
    run(
        &mut c,
        &format!("DELETE FROM audit_log WHERE seq = {TAMPER_TRAIL}"),
    )
    .await
    .expect("delete");
    // The shortened chain is internally consistent: this is why `audit verify` prints the head
    // (count and hash) for operators to keep elsewhere.
    assert_eq!(tamper_found(&db.store).await, None);
    let entries = db.store.audit_entries(0, 100).await.expect("entries");
    assert_eq!(entries.len() as i64, TAMPER_TRAIL - 1);
}
