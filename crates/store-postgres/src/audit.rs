//! The audit trail on PostgreSQL: the shared statements of `carerecord_store::sql::audit`.
//!
//! Appends to the chain are serialised by a transaction-level advisory lock ([`CHAIN_LOCK`]):
//! whoever holds it reads the head (under READ COMMITTED each statement sees everything
//! committed before it, so the previous holder's entries), inserts after it, and keeps the lock
//! until commit. The lock is taken as late as possible — at commit, after the transaction's
//! resource writes are flushed — because it serialises every committing writer for the time
//! between taking it and committing: a few milliseconds of chain insert and fsync, never the
//! whole write. The price is that audited commits are one at a time; group commit of reads
//! (many entries per lock) keeps that cheap.

use std::sync::{Arc, OnceLock};

use carerecord_store::audit::{AuditKey, GENESIS, Hash, chain, parse_hash};
use carerecord_store::sql::Statement;
use carerecord_store::sql::audit::decode_row_for_verify;
use carerecord_store::sql::audit::{
    AUDIT_TEXT_COLUMNS, AuditRow, HEAD_SQL, decode_cursor, decode_row, entries_statement,
    entry_statement, insert_statements, into_page, search_statement,
};
use carerecord_store::{AuditEntry, AuditFilter, AuditRecord, GroupCommit, Page, StoreError};
use sqlx::postgres::{PgConnection, PgPool, PgRow};
use sqlx::{AssertSqlSafe, Row as _};

use crate::{arguments, db_err};

/// The advisory lock key of the audit chain (an arbitrary constant; conditional-write locks use
/// `hashtextextended` of their search key, a collision with this is harmless but for a wait).
pub(crate) const CHAIN_LOCK: i64 = 0x6361_7265_6175_6474; // "careaudt"

/// The key the chain is hashed with, and the group-commit writer (started on first use, on the
/// runtime of the first caller).
pub(crate) struct AuditState {
    pub key: Option<AuditKey>,
    group: OnceLock<GroupCommit>,
}

impl AuditState {
    pub fn new(key: Option<AuditKey>) -> Arc<Self> {
        Arc::new(AuditState {
            key,
            group: OnceLock::new(),
        })
    }
}

pub(crate) fn no_key() -> StoreError {
    StoreError::Backend(
        "the store was opened without an audit key; audit entries cannot be written".into(),
    )
}

/// Chains `records` after the current head and inserts them, inside the caller's write
/// transaction, after taking the chain lock.
pub(crate) async fn write_chained(
    conn: &mut PgConnection,
    key: &AuditKey,
    records: Vec<AuditRecord>,
) -> Result<(), StoreError> {
    if records.is_empty() {
        return Ok(());
    }
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(CHAIN_LOCK)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    let head = sqlx::query(HEAD_SQL)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?;
    let (seq, hash): (i64, Hash) = match head {
        None => (0, GENESIS),
        Some(r) => {
            let h: String = r.try_get(1).map_err(db_err)?;
            // An unreadable head (tampering) is chained onto as it is; verification names it.
            (
                r.try_get(0).map_err(db_err)?,
                parse_hash(&h).unwrap_or([0xff; 32]),
            )
        }
    };
    for st in insert_statements(&chain(key, seq, hash, records)) {
        exec(conn, &st).await?;
    }
    Ok(())
}

async fn exec(conn: &mut PgConnection, st: &Statement) -> Result<(), StoreError> {
    sqlx::query_with(AssertSqlSafe(st.sql.clone()), arguments(st)?)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    Ok(())
}

fn raw(row: &PgRow) -> Result<AuditRow, StoreError> {
    let text = (2..2 + AUDIT_TEXT_COLUMNS)
        .map(|i| row.try_get::<Option<String>, _>(i).map_err(db_err))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(AuditRow {
        seq: row.try_get(0).map_err(db_err)?,
        recorded: row.try_get(1).map_err(db_err)?,
        text,
    })
}

fn decode(row: &PgRow) -> Result<AuditEntry, StoreError> {
    decode_row(raw(row)?)
}

/// Rows of `st`, each decoded with `decode`.
async fn fetch_with(
    pool: &PgPool,
    st: &Statement,
    decode: fn(&PgRow) -> Result<AuditEntry, StoreError>,
) -> Result<Vec<AuditEntry>, StoreError> {
    let mut c = pool.acquire().await.map_err(db_err)?;
    let rows = sqlx::query_with(AssertSqlSafe(st.sql.clone()), arguments(st)?)
        .fetch_all(&mut *c)
        .await
        .map_err(db_err)?;
    rows.iter().map(decode).collect()
}

async fn fetch(pool: &PgPool, st: &Statement) -> Result<Vec<AuditEntry>, StoreError> {
    fetch_with(pool, st, decode).await
}

/// `ResourceStore::append_audit`: through the group-commit writer.
pub(crate) async fn append(
    state: &AuditState,
    writer: &PgPool,
    records: Vec<AuditRecord>,
) -> Result<(), StoreError> {
    let key = state.key.clone().ok_or_else(no_key)?;
    let group = state.group.get_or_init(|| {
        let writer = writer.clone();
        GroupCommit::start(move |batch| {
            let writer = writer.clone();
            let key = key.clone();
            async move {
                let mut tx = writer.begin().await.map_err(db_err)?;
                write_chained(&mut tx, &key, batch).await?;
                tx.commit().await.map_err(db_err)
            }
        })
    });
    group.append(records).await
}

pub(crate) async fn entries(
    pool: &PgPool,
    after_seq: i64,
    limit: u32,
) -> Result<Vec<AuditEntry>, StoreError> {
    // Read for verification: an unreadable row is reported by `verify`, not a read error.
    fetch_with(pool, &entries_statement(after_seq, limit), |r| {
        raw(r).map(decode_row_for_verify)
    })
    .await
}

pub(crate) async fn entry(pool: &PgPool, seq: i64) -> Result<AuditEntry, StoreError> {
    fetch(pool, &entry_statement(seq))
        .await?
        .into_iter()
        .next()
        .ok_or(StoreError::NotFound)
}

pub(crate) async fn search(
    pool: &PgPool,
    filter: &AuditFilter,
    limit: u32,
    cursor: Option<&str>,
) -> Result<Page<AuditEntry>, StoreError> {
    let before = cursor.map(decode_cursor).transpose()?;
    let items = fetch(pool, &search_statement(filter, limit, before)).await?;
    Ok(into_page(items, limit))
}
