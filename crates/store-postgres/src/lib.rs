//! The PostgreSQL backend.
//!
//! The same logical schema as SQLite (see `migrations/`), and the same shape of
//! implementation: the read side is `carerecord_store::engine` over [`SqlExec`], writes are the
//! shared statements of `carerecord_store::sql`. Transactions run at READ COMMITTED (the
//! default); a search-then-write (conditional create/update) is made safe by
//! [`StoreTx::lock`], a transaction-scoped advisory lock on the search's key, and by the
//! primary keys, whose violations surface as [`StoreError::AlreadyExists`].
#![forbid(unsafe_code)]

mod audit;
mod directory;
mod smart;

pub mod test_support;

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use carerecord_access::Visibility;
use carerecord_fhir::{LogicalId, ResourceType, VersionId};
use carerecord_search::query::SearchQuery;
use carerecord_store::break_glass;
use carerecord_store::cells::{Cell, Kind};
use carerecord_store::engine::{self, Row, SqlExec, decode_key, decode_resource};
use carerecord_store::ingest::{self, IngestOp, IngestQuery, IngestReply};
use carerecord_store::pending::Pending;
use carerecord_store::sql::{self, Arg, Statement};
use carerecord_store::{
    AuditEntry, AuditFilter, AuditKey, AuditRecord, HistoryQuery, Page, PreparedVersion,
    ResourceKey, ResourceStore, SearchOutcome, StoreError, StoreTx, StoredResource, VersionHead,
};
use carerecord_store::{BreakGlassGrant, BreakGlassRecord, BreakGlassReview, ReviewStatus};
use sqlx::postgres::{PgArguments, PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::{Arguments, AssertSqlSafe, Postgres, Row as _, Transaction};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Connections a pool opens at most unless told otherwise.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 16;

/// The PostgreSQL store. Cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    audit: Arc<audit::AuditState>,
}

/// Translates a driver error. SQLSTATEs: 23505 unique violation; 40001 serialization failure,
/// 40P01 deadlock, 55P03 lock not available — all worth retrying, so `Busy`.
fn db_err(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(d) = &e {
        if d.is_unique_violation() {
            return StoreError::AlreadyExists;
        }
        if matches!(d.code().as_deref(), Some("40001" | "40P01" | "55P03")) {
            return StoreError::Busy;
        }
    }
    if matches!(e, sqlx::Error::PoolTimedOut) {
        return StoreError::Busy;
    }
    StoreError::Backend(e.to_string())
}

impl PostgresStore {
    /// Connects to a `postgres://` URL and applies migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let opts = PgConnectOptions::from_str(url).map_err(db_err)?;
        Self::connect_with(opts, DEFAULT_MAX_CONNECTIONS).await
    }

    /// Connects with explicit options and pool size, and applies migrations.
    pub async fn connect_with(
        opts: PgConnectOptions,
        max_connections: u32,
    ) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(30))
            // Room for every shape of batched insert and search the store prepares.
            .connect_with(opts.statement_cache_capacity(512))
            .await
            .map_err(db_err)?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Backend(format!("migration failed: {e}")))?;
        Ok(PostgresStore {
            pool,
            audit: audit::AuditState::new(None),
        })
    }

    /// The store, hashing its audit chain with `key`. Without a key, audit entries cannot be
    /// written (reading and searching them still works).
    pub fn with_audit_key(mut self, key: AuditKey) -> Self {
        self.audit = audit::AuditState::new(Some(key));
        self
    }

    /// The pool, for administration and tests.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn conn(&self) -> Result<sqlx::pool::PoolConnection<Postgres>, StoreError> {
        self.pool.acquire().await.map_err(db_err)
    }
}

fn arguments(st: &Statement) -> Result<PgArguments, StoreError> {
    owned_arguments(st.args.iter().cloned())
}

/// The arguments of a statement the caller owns, moved rather than copied (a batched insert
/// binds thousands of strings).
fn owned_arguments(args: impl Iterator<Item = Arg>) -> Result<PgArguments, StoreError> {
    let mut out = PgArguments::default();
    for a in args {
        let r = match a {
            Arg::Text(s) => out.add(s),
            Arg::Int(i) => out.add(i),
            Arg::Real(f) => out.add(f),
            Arg::Bool(v) => out.add(v),
            Arg::Bytes(b) => out.add(b),
            Arg::Null => out.add(Option::<String>::None),
        };
        r.map_err(|e| StoreError::Backend(e.to_string()))?;
    }
    Ok(out)
}

fn decode_row(row: &PgRow, extra: usize) -> Result<Row, StoreError> {
    let rt: String = row.try_get(0).map_err(db_err)?;
    let resource = decode_resource(
        &rt,
        row.try_get(1).map_err(db_err)?,
        row.try_get(2).map_err(db_err)?,
        row.try_get(3).map_err(db_err)?,
        row.try_get(4).map_err(db_err)?,
        row.try_get(5).map_err(db_err)?,
        row.try_get(6).map_err(db_err)?,
    )?;
    let extra = (0..extra)
        .map(|i| match row.try_get::<Option<String>, _>(7 + i) {
            Ok(v) => Ok(v),
            // A real sort value: written exactly, so the cursor compares equal to the row.
            Err(_) => row
                .try_get::<Option<f64>, _>(7 + i)
                .map(|v| v.map(|f| f.to_string()))
                .map_err(db_err),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Row { resource, extra })
}

/// [`SqlExec`] over one connection (pooled or inside a transaction).
struct Exec<'c>(&'c mut PgConnection);

#[async_trait]
impl SqlExec for Exec<'_> {
    async fn resources(&mut self, st: &Statement, extra: usize) -> Result<Vec<Row>, StoreError> {
        let rows = sqlx::query_with(AssertSqlSafe(st.sql.clone()), arguments(st)?)
            .fetch_all(&mut *self.0)
            .await
            .map_err(db_err)?;
        rows.iter().map(|r| decode_row(r, extra)).collect()
    }

    async fn keys(&mut self, st: &Statement) -> Result<Vec<ResourceKey>, StoreError> {
        let rows = sqlx::query_with(AssertSqlSafe(st.sql.clone()), arguments(st)?)
            .fetch_all(&mut *self.0)
            .await
            .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                let t: String = r.try_get(0).map_err(db_err)?;
                let id: String = r.try_get(1).map_err(db_err)?;
                decode_key(&t, &id)
            })
            .collect()
    }

    async fn scalar(&mut self, st: &Statement) -> Result<i64, StoreError> {
        let row = sqlx::query_with(AssertSqlSafe(st.sql.clone()), arguments(st)?)
            .fetch_one(&mut *self.0)
            .await
            .map_err(db_err)?;
        row.try_get(0).map_err(db_err)
    }

    async fn cells(
        &mut self,
        st: &Statement,
        kinds: &[Kind],
    ) -> Result<Vec<Vec<Cell>>, StoreError> {
        let rows = sqlx::query_with(AssertSqlSafe(st.sql.clone()), arguments(st)?)
            .fetch_all(&mut *self.0)
            .await
            .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                kinds
                    .iter()
                    .enumerate()
                    .map(|(i, k)| {
                        let cell = match k {
                            Kind::Int => r.try_get::<Option<i64>, _>(i).map(|v| v.map(Cell::Int)),
                            Kind::Text => {
                                r.try_get::<Option<String>, _>(i).map(|v| v.map(Cell::Text))
                            }
                            Kind::Bytes => r
                                .try_get::<Option<Vec<u8>>, _>(i)
                                .map(|v| v.map(Cell::Bytes)),
                            Kind::Bool => r
                                .try_get::<Option<bool>, _>(i)
                                .map(|v| v.map(|b| Cell::Int(i64::from(b)))),
                        };
                        cell.map(|c| c.unwrap_or(Cell::Null)).map_err(db_err)
                    })
                    .collect()
            })
            .collect()
    }

    async fn execute(&mut self, st: &Statement) -> Result<u64, StoreError> {
        let done = sqlx::query_with(AssertSqlSafe(st.sql.clone()), arguments(st)?)
            .execute(&mut *self.0)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected())
    }

    async fn execute_owned(&mut self, st: Statement) -> Result<u64, StoreError> {
        let done = sqlx::query_with(AssertSqlSafe(st.sql), owned_arguments(st.args.into_iter())?)
            .execute(&mut *self.0)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected())
    }
}

#[async_trait]
impl ResourceStore for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn ready(&self) -> Result<(), StoreError> {
        let mut c = self.conn().await?;
        sqlx::query("SELECT 1")
            .execute(&mut *c)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn read(
        &self,
        rt: ResourceType,
        id: &LogicalId,
        vis: &Visibility,
    ) -> Result<StoredResource, StoreError> {
        let mut c = self.conn().await?;
        engine::read(&mut Exec(&mut c), rt, id, vis).await
    }

    async fn vread(
        &self,
        rt: ResourceType,
        id: &LogicalId,
        version: VersionId,
        vis: &Visibility,
    ) -> Result<StoredResource, StoreError> {
        let mut c = self.conn().await?;
        engine::vread(&mut Exec(&mut c), rt, id, version, vis).await
    }

    async fn history(
        &self,
        rt: Option<ResourceType>,
        id: Option<&LogicalId>,
        query: &HistoryQuery,
        vis: &Visibility,
    ) -> Result<Page<StoredResource>, StoreError> {
        let mut c = self.conn().await?;
        engine::history(&mut Exec(&mut c), rt, id, query, vis).await
    }

    async fn search(
        &self,
        query: &SearchQuery,
        page_size: u32,
        vis: &Visibility,
    ) -> Result<SearchOutcome, StoreError> {
        let mut c = self.conn().await?;
        engine::search(&mut Exec(&mut c), query, page_size, vis).await
    }

    async fn everything(
        &self,
        patient_id: &LogicalId,
        since: Option<i64>,
        types: &[ResourceType],
        count: u32,
        cursor: Option<&str>,
        vis: &Visibility,
    ) -> Result<Page<StoredResource>, StoreError> {
        let mut c = self.conn().await?;
        engine::everything(
            &mut Exec(&mut c),
            patient_id,
            since,
            types,
            count,
            cursor,
            vis,
        )
        .await
    }

    async fn read_many(
        &self,
        keys: &[ResourceKey],
        vis: &Visibility,
    ) -> Result<Vec<StoredResource>, StoreError> {
        let mut c = self.conn().await?;
        engine::read_many(&mut Exec(&mut c), keys, vis).await
    }

    async fn ingest_read(&self, query: IngestQuery) -> Result<IngestReply, StoreError> {
        let mut c = self.conn().await?;
        ingest::query(&mut Exec(&mut c), query).await
    }

    fn directory(&self) -> std::sync::Arc<dyn carerecord_store::Directory> {
        self.as_directory()
    }

    async fn begin(&self) -> Result<Box<dyn StoreTx>, StoreError> {
        let tx = self.pool.begin().await.map_err(db_err)?;
        Ok(Box::new(PostgresTx {
            tx,
            pending: Pending::default(),
            audit: Vec::new(),
            audit_marks: Vec::new(),
            key: self.audit.key.clone(),
        }))
    }

    async fn append_audit(&self, records: Vec<AuditRecord>) -> Result<(), StoreError> {
        audit::append(&self.audit, &self.pool, records).await
    }

    async fn audit_entries(
        &self,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        audit::entries(&self.pool, after_seq, limit).await
    }

    async fn audit_search(
        &self,
        filter: &AuditFilter,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<AuditEntry>, StoreError> {
        audit::search(&self.pool, filter, limit, cursor).await
    }

    async fn break_glass_queue(
        &self,
        org_id: &str,
        status: ReviewStatus,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<BreakGlassRecord>, StoreError> {
        let mut c = self.conn().await?;
        break_glass::queue(&mut Exec(&mut c), org_id, status, limit, cursor).await
    }

    async fn break_glass_grant(
        &self,
        grant_id: &str,
    ) -> Result<Option<BreakGlassRecord>, StoreError> {
        let mut c = self.conn().await?;
        break_glass::grant(&mut Exec(&mut c), grant_id).await
    }

    async fn audit_last_looks(
        &self,
        filter: &AuditFilter,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let mut c = self.conn().await?;
        carerecord_store::sql::audit::last_looks(&mut Exec(&mut c), filter).await
    }

    async fn audit_entry(&self, seq: i64) -> Result<AuditEntry, StoreError> {
        audit::entry(&self.pool, seq).await
    }
}

struct PostgresTx {
    tx: Transaction<'static, Postgres>,
    pending: Pending,
    /// Audit records for this transaction's writes, chained at commit (under the chain lock,
    /// taken then so it is held as briefly as possible).
    audit: Vec<AuditRecord>,
    /// How many of `audit` each open savepoint found (innermost last): rolling back to a
    /// savepoint forgets the records appended after it, with the writes they describe.
    audit_marks: Vec<usize>,
    key: Option<AuditKey>,
}

impl PostgresTx {
    /// Runs one statement; answers how many rows it changed.
    async fn exec(&mut self, st: Statement) -> Result<u64, StoreError> {
        Exec(&mut self.tx).execute_owned(st).await
    }

    /// Runs a statement without arguments as plain SQL (transaction control).
    async fn exec_raw(&mut self, sql: &'static str) -> Result<(), StoreError> {
        sqlx::raw_sql(sql)
            .execute(&mut *self.tx)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    /// Writes the versions kept back by `put`.
    async fn flush_pending(&mut self) -> Result<(), StoreError> {
        self.pending.flush(&mut Exec(&mut self.tx)).await
    }
}

#[async_trait]
impl StoreTx for PostgresTx {
    async fn current(
        &mut self,
        rt: ResourceType,
        id: &LogicalId,
    ) -> Result<Option<StoredResource>, StoreError> {
        // What is held back is the current version (this transaction wrote it, after reading
        // and locking any row it replaces); anything else is as the database has it.
        if let Some(r) = self.pending.current(rt, id) {
            return Ok(Some(r));
        }
        // Lock the row for the rest of the transaction, so that concurrent updates of one
        // resource serialise: the second waits, then reads the version the first wrote (READ
        // COMMITTED re-reads a row it waited for) and writes the next one — and If-Match is
        // checked against what is really current.
        let mut st = engine::current_statement(rt, id);
        st.sql.push_str(" FOR UPDATE");
        let rows = Exec(&mut self.tx).resources(&st, 0).await?;
        Ok(rows.into_iter().next().map(|r| r.resource))
    }

    async fn heads(
        &mut self,
        keys: &[ResourceKey],
    ) -> Result<HashMap<ResourceKey, VersionHead>, StoreError> {
        if self.pending.holds_any(keys) {
            self.flush_pending().await?;
        }
        // Locked as `current` locks, in key order so that two transactions locking overlapping
        // sets wait for each other instead of deadlocking.
        engine::heads(
            &mut Exec(&mut self.tx),
            keys,
            " ORDER BY r.resource_type, r.id FOR UPDATE OF r",
        )
        .await
    }

    async fn find(
        &mut self,
        query: &SearchQuery,
        limit: u32,
    ) -> Result<Vec<ResourceKey>, StoreError> {
        if self.pending.affects(query) {
            self.flush_pending().await?;
        }
        let st = sql::keys_statement(query, limit, &Visibility::All)?;
        Exec(&mut self.tx).keys(&st).await
    }

    async fn lock(&mut self, key: &str) -> Result<(), StoreError> {
        // Held until the transaction ends; under READ COMMITTED the `find` that follows sees
        // everything committed by whoever held the lock before.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(key)
            .execute(&mut *self.tx)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn put(&mut self, v: PreparedVersion) -> Result<(), StoreError> {
        if self.pending.must_flush_before(&v) {
            self.flush_pending().await?;
        }
        self.pending.push(v);
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), StoreError> {
        self.flush_pending().await
    }

    async fn put_deleted(
        &mut self,
        rt: ResourceType,
        id: &LogicalId,
        version: VersionId,
        last_updated: i64,
    ) -> Result<(), StoreError> {
        self.flush_pending().await?;
        for st in sql::deletion_statements(rt, id, version, last_updated) {
            self.exec(st).await?;
        }
        Ok(())
    }

    async fn put_break_glass(&mut self, grant: &BreakGlassGrant) -> Result<(), StoreError> {
        self.exec(sql::break_glass_statement(grant)).await.map(drop)
    }

    async fn review_break_glass(
        &mut self,
        grant_id: &str,
        review: &BreakGlassReview,
    ) -> Result<bool, StoreError> {
        break_glass::review(&mut Exec(&mut self.tx), grant_id, review).await
    }

    async fn append_audit(&mut self, records: Vec<AuditRecord>) -> Result<(), StoreError> {
        if self.key.is_none() {
            return Err(audit::no_key());
        }
        self.audit.extend(records);
        Ok(())
    }

    async fn savepoint(&mut self) -> Result<(), StoreError> {
        self.flush_pending().await?;
        self.exec_raw("SAVEPOINT carerecord_bundle").await?;
        self.audit_marks.push(self.audit.len());
        Ok(())
    }

    async fn release_savepoint(&mut self) -> Result<(), StoreError> {
        self.flush_pending().await?;
        self.exec_raw("RELEASE SAVEPOINT carerecord_bundle").await?;
        // The records stay, now part of the enclosing savepoint (or of the transaction).
        self.audit_marks.pop();
        Ok(())
    }

    async fn rollback_to_savepoint(&mut self) -> Result<(), StoreError> {
        self.pending.clear();
        if let Some(mark) = self.audit_marks.pop() {
            self.audit.truncate(mark);
        }
        // ROLLBACK TO keeps the savepoint; RELEASE then forgets it.
        self.exec_raw("ROLLBACK TO SAVEPOINT carerecord_bundle")
            .await?;
        self.exec_raw("RELEASE SAVEPOINT carerecord_bundle").await
    }

    async fn ingest(&mut self, op: IngestOp) -> Result<IngestReply, StoreError> {
        match op {
            // Read without a flush, with what is held back laid over the answer.
            IngestOp::Identified { keys } => {
                let found = ingest::tx_identified_rows(&mut Exec(&mut self.tx), &keys).await?;
                Ok(IngestReply::Identified(
                    self.pending.overlay_identified(&keys, found),
                ))
            }
            op => {
                if op.reads_resources() {
                    self.flush_pending().await?;
                }
                ingest::run(&mut Exec(&mut self.tx), op).await
            }
        }
    }

    async fn commit(mut self: Box<Self>) -> Result<(), StoreError> {
        self.flush_pending().await?;
        if let Some(key) = &self.key {
            let records = std::mem::take(&mut self.audit);
            audit::write_chained(&mut self.tx, key, records).await?;
        }
        self.tx.commit().await.map_err(db_err)
    }
}
