//! The embedded SQLite backend.
//!
//! One file under the data directory, in WAL mode so readers never wait for the writer. All
//! writes go through a single-connection pool and start with `BEGIN IMMEDIATE`: SQLite allows
//! one writer at a time anyway, and taking the write lock up front means a search-then-write
//! (conditional create) inside a transaction can never race another writer.
#![forbid(unsafe_code)]

mod audit;
mod directory;
mod smart;

use std::collections::HashMap;
use std::path::Path;
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
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool,
    SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Arguments, AssertSqlSafe, Row as _, Sqlite, Transaction};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The SQLite store. Cheap to clone (pools are shared).
#[derive(Clone)]
pub struct SqliteStore {
    reader: SqlitePool,
    writer: SqlitePool,
    audit: Arc<audit::AuditState>,
    /// Stops the background checkpoints when the last clone is dropped.
    checkpoints: Arc<Checkpoints>,
}

/// How often the WAL is copied into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// How large the write-ahead log may grow before the checkpointer makes the next writer start
/// it again from the beginning, and the size its file is cut back to then.
#[derive(Debug, Clone, Copy)]
struct WalLimit {
    /// Frames (pages) in the log.
    frames: i64,
    /// Bytes the file keeps when the log starts again (`journal_size_limit`).
    keep_bytes: i64,
}

/// 256 MiB of 4 KiB pages (a few seconds of the heaviest import), cut back to 64 MiB. A restart
/// holds the write lock while it waits for readers and syncs the database file, so it must be
/// rare: restarting past 64 MiB cost an HTTP import ≈ 7 % and searches ≈ 0.4 ms at p50
/// (`docs/benchmarks.md`, "A bounded log"); past 256 MiB neither shows.
const WAL_LIMIT: WalLimit = WalLimit {
    frames: 65_536,
    keep_bytes: 64 * 1024 * 1024,
};

/// Copies the write-ahead log into the database file from a connection and task of its own,
/// so the writer never does it inside a commit. With SQLite's automatic checkpoints the commit
/// that crossed 1,000 pages of log paid for copying them and syncing the database file — a
/// sixth of an import's time on its one writer — while the machine's other core waited.
/// `PASSIVE` never blocks readers or the writer; what a reader still needs is left for the
/// next round.
///
/// But SQLite starts the log again from its beginning only when a writer finds every frame
/// already copied and no reader in the log, which under a steady stream of writes almost never
/// happens: a passive checkpoint is always a commit or two behind. The log then grows without
/// end (a gigabyte in ten seconds of import, measured), and so does every reader's search of
/// its index. So once the log holds more than [`WalLimit::frames`], the checkpointer runs a
/// `RESTART` checkpoint, which waits (within the busy timeout) for the writer to finish and the
/// readers to move on, so that the next writer starts the log again and cuts its file back.
struct Checkpoints {
    task: tokio::task::JoinHandle<()>,
    pool: SqlitePool,
}

impl Checkpoints {
    fn start(pool: SqlitePool, limit: WalLimit) -> Checkpoints {
        let task = tokio::spawn({
            let pool = pool.clone();
            async move {
                let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    if let Err(e) = checkpoint(&pool, limit).await {
                        tracing::warn!(error = %e, "WAL checkpoint failed; retrying");
                    }
                }
            }
        });
        Checkpoints { task, pool }
    }

    async fn stop(&self) {
        self.task.abort();
        self.pool.close().await;
    }
}

/// How long a restarting checkpoint waits for the writer and the readers. It holds the write
/// lock while it waits for readers, and a connection that took a read snapshot before asking
/// to write would wait for it in turn: a short wait, tried again next round, keeps that from
/// ever stalling a writer for longer than this.
const CHECKPOINT_PATIENCE: Duration = Duration::from_millis(200);

/// One round: a passive checkpoint, and a restarting one when the log is past `limit`.
async fn checkpoint(pool: &SqlitePool, limit: WalLimit) -> Result<(), sqlx::Error> {
    // (busy, frames in the log, frames copied); -1s when the database is not in WAL mode.
    let (_, frames, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(pool)
        .await?;
    if frames > limit.frames {
        // Blocked (busy = 1) when a reader stayed longer than the patience: next round.
        let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(RESTART)")
            .fetch_one(pool)
            .await?;
        tracing::debug!(frames, blocked = busy != 0, "restarting WAL checkpoint");
    }
    Ok(())
}

impl Drop for Checkpoints {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn db_err(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(d) = &e {
        if d.is_unique_violation() {
            return StoreError::AlreadyExists;
        }
        // SQLITE_BUSY / SQLITE_LOCKED after the busy timeout.
        if matches!(d.code().as_deref(), Some("5") | Some("6")) {
            return StoreError::Busy;
        }
    }
    StoreError::Backend(e.to_string())
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` and applies migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(tuned(SqliteConnectOptions::new().filename(path)), WAL_LIMIT).await
    }

    /// Opens a `sqlite://path` URL, with the same settings as [`SqliteStore::open`].
    pub async fn open_url(url: &str) -> Result<Self, StoreError> {
        Self::open_with(
            tuned(SqliteConnectOptions::from_str(url).map_err(db_err)?),
            WAL_LIMIT,
        )
        .await
    }

    async fn open_with(opts: SqliteConnectOptions, limit: WalLimit) -> Result<Self, StoreError> {
        // The writer cuts the log's file back when it starts the log again.
        let opts = opts.pragma("journal_size_limit", limit.keep_bytes.to_string());
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(60))
            .connect_with(opts.clone())
            .await
            .map_err(db_err)?;
        MIGRATOR
            .run(&writer)
            .await
            .map_err(|e| StoreError::Backend(format!("migration failed: {e}")))?;
        let checkpointer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts.clone().busy_timeout(CHECKPOINT_PATIENCE))
            .await
            .map_err(db_err)?;
        let reader = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(opts.read_only(true))
            .await
            .map_err(db_err)?;
        Ok(SqliteStore {
            reader,
            writer,
            audit: audit::AuditState::new(None),
            checkpoints: Arc::new(Checkpoints::start(checkpointer, limit)),
        })
    }

    /// The store, hashing its audit chain with `key`. Without a key, audit entries cannot be
    /// written (reading and searching them still works).
    pub fn with_audit_key(mut self, key: AuditKey) -> Self {
        self.audit = audit::AuditState::new(Some(key));
        self
    }

    pub async fn close(&self) {
        self.checkpoints.stop().await;
        self.reader.close().await;
        self.writer.close().await;
    }
}

/// WAL so readers never wait for the writer. `FULL` sync: a commit is on disk before it is
/// acknowledged, even across a power cut (`NORMAL` would only survive an application crash) —
/// a source system that was told "stored" must never lose the record. Batched writes keep the
/// cost to one sync per transaction. A generous busy timeout rides out checkpoints.
fn tuned(opts: SqliteConnectOptions) -> SqliteConnectOptions {
    opts.create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true)
        .pragma("cache_size", "-65536")
        .pragma("temp_store", "memory")
        // Checkpoints run in the background (see `Checkpoints`), not in the commit that fills
        // the log.
        .pragma("wal_autocheckpoint", "0")
        // Room for every shape of batched insert and search the store prepares.
        .statement_cache_capacity(512)
}

/// The statement's SQL with `$1, $2, …` written as anonymous `?` placeholders.
///
/// The shared compiler numbers placeholders in order of appearance and uses each once, so
/// `?` binds the same values. It matters for speed: SQLite looks numbered parameters up by name
/// through a linear list, so binding the thousands of values of a batched insert as `$N` costs
/// time quadratic in their number; anonymous ones bind directly. Public for the tests that
/// look at the plans of the statements the store runs.
pub fn positional(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            while chars.peek().is_some_and(char::is_ascii_digit) {
                chars.next();
            }
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

fn arguments(st: &Statement) -> Result<SqliteArguments, StoreError> {
    owned_arguments(st.args.iter().cloned())
}

/// The arguments of a statement the caller owns, moved rather than copied (a batched insert
/// binds thousands of strings).
fn owned_arguments(args: impl Iterator<Item = Arg>) -> Result<SqliteArguments, StoreError> {
    let mut out = SqliteArguments::default();
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

fn decode_row(row: &SqliteRow, extra: usize) -> Result<Row, StoreError> {
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
struct Exec<'c>(&'c mut SqliteConnection);

#[async_trait]
impl SqlExec for Exec<'_> {
    async fn resources(&mut self, st: &Statement, extra: usize) -> Result<Vec<Row>, StoreError> {
        let rows = sqlx::query_with(AssertSqlSafe(positional(&st.sql)), arguments(st)?)
            .fetch_all(&mut *self.0)
            .await
            .map_err(db_err)?;
        rows.iter().map(|r| decode_row(r, extra)).collect()
    }

    async fn keys(&mut self, st: &Statement) -> Result<Vec<ResourceKey>, StoreError> {
        let rows = sqlx::query_with(AssertSqlSafe(positional(&st.sql)), arguments(st)?)
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
        let row = sqlx::query_with(AssertSqlSafe(positional(&st.sql)), arguments(st)?)
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
        let rows = sqlx::query_with(AssertSqlSafe(positional(&st.sql)), arguments(st)?)
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
        let done = sqlx::query_with(AssertSqlSafe(positional(&st.sql)), arguments(st)?)
            .execute(&mut *self.0)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected())
    }

    async fn execute_owned(&mut self, st: Statement) -> Result<u64, StoreError> {
        self.run(positional(&st.sql), st.args).await
    }

    async fn execute_write(&mut self, st: Statement) -> Result<u64, StoreError> {
        self.run(write_sql(&st.sql), st.args).await
    }
}

impl Exec<'_> {
    /// Runs `sql` (already in SQLite's placeholders) with `args`, moved rather than copied.
    async fn run(&mut self, sql: String, args: Vec<Arg>) -> Result<u64, StoreError> {
        let done = sqlx::query_with(AssertSqlSafe(sql), owned_arguments(args.into_iter())?)
            .execute(&mut *self.0)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected())
    }
}

/// A write path statement as SQLite runs it: [`failing_insert`], [`positional`].
fn write_sql(sql: &str) -> String {
    positional(&failing_insert(sql))
}

/// A write path `INSERT` as `INSERT OR FAIL`. Under SQLite's default conflict resolution
/// (`ABORT`), a statement that writes many rows and could break a constraint keeps a statement
/// journal — a copy of every page it changes — to undo itself alone on failure; for the write
/// path's multi-row inserts into tables with primary keys and `NOT NULL` columns that copying
/// cost several per cent of an import. `OR FAIL` stops at the failing row without that journal
/// and leaves the rows before it, which the write path's caller never keeps: a failed flush
/// rolls its transaction back ([`SqlExec::execute_write`]), as PostgreSQL, where an error
/// aborts the whole transaction, requires anyway. An upsert's `ON CONFLICT` clause still
/// decides its key conflicts.
fn failing_insert(sql: &str) -> String {
    match sql.strip_prefix("INSERT INTO ") {
        Some(rest) => format!("INSERT OR FAIL INTO {rest}"),
        None => sql.to_owned(),
    }
}

impl SqliteStore {
    async fn reader(&self) -> Result<sqlx::pool::PoolConnection<Sqlite>, StoreError> {
        self.reader.acquire().await.map_err(db_err)
    }
}

#[async_trait]
impl ResourceStore for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn single_writer(&self) -> bool {
        true
    }

    async fn ready(&self) -> Result<(), StoreError> {
        let mut c = self.reader().await?;
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
        let mut c = self.reader().await?;
        engine::read(&mut Exec(&mut c), rt, id, vis).await
    }

    async fn vread(
        &self,
        rt: ResourceType,
        id: &LogicalId,
        version: VersionId,
        vis: &Visibility,
    ) -> Result<StoredResource, StoreError> {
        let mut c = self.reader().await?;
        engine::vread(&mut Exec(&mut c), rt, id, version, vis).await
    }

    async fn history(
        &self,
        rt: Option<ResourceType>,
        id: Option<&LogicalId>,
        query: &HistoryQuery,
        vis: &Visibility,
    ) -> Result<Page<StoredResource>, StoreError> {
        let mut c = self.reader().await?;
        engine::history(&mut Exec(&mut c), rt, id, query, vis).await
    }

    async fn search(
        &self,
        query: &SearchQuery,
        page_size: u32,
        vis: &Visibility,
    ) -> Result<SearchOutcome, StoreError> {
        let mut c = self.reader().await?;
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
        let mut c = self.reader().await?;
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
        let mut c = self.reader().await?;
        engine::read_many(&mut Exec(&mut c), keys, vis).await
    }

    async fn ingest_read(&self, query: IngestQuery) -> Result<IngestReply, StoreError> {
        let mut c = self.reader().await?;
        ingest::query(&mut Exec(&mut c), query).await
    }

    fn directory(&self) -> std::sync::Arc<dyn carerecord_store::Directory> {
        self.as_directory()
    }

    async fn begin(&self) -> Result<Box<dyn StoreTx>, StoreError> {
        let tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_err)?;
        Ok(Box::new(SqliteTx {
            tx,
            pending: Pending::default(),
            audit: Vec::new(),
            audit_marks: Vec::new(),
            key: self.audit.key.clone(),
        }))
    }

    async fn append_audit(&self, records: Vec<AuditRecord>) -> Result<(), StoreError> {
        audit::append(&self.audit, &self.writer, records).await
    }

    async fn audit_entries(
        &self,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        audit::entries(&self.reader, after_seq, limit).await
    }

    async fn audit_search(
        &self,
        filter: &AuditFilter,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<AuditEntry>, StoreError> {
        audit::search(&self.reader, filter, limit, cursor).await
    }

    async fn break_glass_queue(
        &self,
        org_id: &str,
        status: ReviewStatus,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<BreakGlassRecord>, StoreError> {
        let mut c = self.reader().await?;
        break_glass::queue(&mut Exec(&mut c), org_id, status, limit, cursor).await
    }

    async fn break_glass_grant(
        &self,
        grant_id: &str,
    ) -> Result<Option<BreakGlassRecord>, StoreError> {
        let mut c = self.reader().await?;
        break_glass::grant(&mut Exec(&mut c), grant_id).await
    }

    async fn audit_last_looks(
        &self,
        filter: &AuditFilter,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let mut c = self.reader().await?;
        carerecord_store::sql::audit::last_looks(&mut Exec(&mut c), filter).await
    }

    async fn audit_entry(&self, seq: i64) -> Result<AuditEntry, StoreError> {
        audit::entry(&self.reader, seq).await
    }
}

struct SqliteTx {
    tx: Transaction<'static, Sqlite>,
    pending: Pending,
    /// Audit records for this transaction's writes, chained at commit.
    audit: Vec<AuditRecord>,
    /// How many of `audit` each open savepoint found (innermost last): rolling back to a
    /// savepoint forgets the records appended after it, with the writes they describe.
    audit_marks: Vec<usize>,
    key: Option<AuditKey>,
}

impl SqliteTx {
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
impl StoreTx for SqliteTx {
    async fn current(
        &mut self,
        rt: ResourceType,
        id: &LogicalId,
    ) -> Result<Option<StoredResource>, StoreError> {
        // What is held back is the current version; anything else is as the database has it.
        if let Some(r) = self.pending.current(rt, id) {
            return Ok(Some(r));
        }
        engine::current(&mut Exec(&mut self.tx), rt, id, &Visibility::All).await
    }

    async fn heads(
        &mut self,
        keys: &[ResourceKey],
    ) -> Result<HashMap<ResourceKey, VersionHead>, StoreError> {
        if self.pending.holds_any(keys) {
            self.flush_pending().await?;
        }
        engine::heads(&mut Exec(&mut self.tx), keys, "").await
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

    async fn lock(&mut self, _key: &str) -> Result<(), StoreError> {
        // BEGIN IMMEDIATE already holds SQLite's single write lock for the whole transaction.
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

#[cfg(test)]
mod tests {
    use super::positional;

    /// With SQLite's own checkpoints turned off, the database file only grows when the
    /// background task copies the log into it: without the task it would stay at its size
    /// after the migrations until the store closed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_log_is_checkpointed_in_the_background() {
        use carerecord_fhir::{LogicalId, ResourceType};
        use carerecord_store::{ResourceStore as _, write};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let store = super::SqliteStore::open(&path).await.unwrap();
        // Let a first round copy whatever the migrations left in the log.
        tokio::time::sleep(super::CHECKPOINT_EVERY * 3).await;
        let before = std::fs::metadata(&path).unwrap().len();
        let mut tx = store.begin().await.unwrap();
        for i in 0..400 {
            let id = LogicalId::parse(&format!("p{i}")).unwrap();
            let body = serde_json::json!({"resourceType": "Patient",
                "name": [{"family": "Checkpoint", "given": [format!("Test{i}")]}],
                "birthDate": "1950-01-01"});
            write::create(tx.as_mut(), ResourceType::Patient, &id, body)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
        let mut grown = false;
        for _ in 0..40 {
            tokio::time::sleep(super::CHECKPOINT_EVERY).await;
            if std::fs::metadata(&path).unwrap().len() > before {
                grown = true;
                break;
            }
        }
        assert!(grown, "the database file stayed at {before} bytes");
        store.close().await;
    }

    /// The log's file is cut back once it has grown past the limit, instead of keeping the
    /// size of its largest burst for ever.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_log_is_cut_back_after_a_burst_of_writes() {
        use carerecord_fhir::{LogicalId, ResourceType};
        use carerecord_store::{ResourceStore as _, write};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let wal = dir.path().join("w.db-wal");
        let limit = super::WalLimit {
            frames: 256,
            keep_bytes: 1024 * 1024,
        };
        let opts = super::tuned(super::SqliteConnectOptions::new().filename(&path));
        let store = super::SqliteStore::open_with(opts, limit).await.unwrap();
        let narrative = format!(
            "<div xmlns=\"http://www.w3.org/1999/xhtml\">{}</div>",
            "x".repeat(2_000)
        );
        let write_some = |from: usize, n: usize| {
            let store = store.clone();
            let narrative = narrative.clone();
            async move {
                let mut tx = store.begin().await.unwrap();
                for i in from..from + n {
                    let id = LogicalId::parse(&format!("p{i}")).unwrap();
                    let body = serde_json::json!({"resourceType": "Patient",
                        "text": {"status": "generated", "div": narrative},
                        "birthDate": "1950-01-01"});
                    write::create(tx.as_mut(), ResourceType::Patient, &id, body)
                        .await
                        .unwrap();
                }
                tx.commit().await.unwrap();
            }
        };
        for round in 0..20 {
            write_some(round * 200, 200).await;
        }
        let peak = std::fs::metadata(&wal).unwrap().len();
        assert!(
            peak > 4 * 1024 * 1024,
            "the burst left only {peak} bytes of log"
        );
        let mut size = peak;
        for round in 0..40 {
            tokio::time::sleep(super::CHECKPOINT_EVERY).await;
            write_some(10_000 + round, 1).await;
            size = std::fs::metadata(&wal).unwrap().len();
            if size <= 2 * 1024 * 1024 {
                break;
            }
        }
        assert!(
            size <= 2 * 1024 * 1024,
            "the log stayed at {size} bytes after a {peak}-byte burst"
        );
        store.close().await;
    }

    /// Every statement of the write path, as the store runs it, stops at a failing row
    /// (`OR FAIL`, code 3 in a constraint's halt) rather than aborting (code 2): an aborting
    /// multi-row statement makes SQLite keep a statement journal of every page it changes.
    /// The one exception is the upsert of later versions: SQLite's `DO UPDATE` has no conflict
    /// clause of its own. The shapes cover first versions, a later one (archive, index
    /// clear-out) and every index table the records use, against the real schema.
    #[tokio::test]
    async fn the_write_path_never_pays_for_statement_journals() {
        use carerecord_fhir::{LogicalId, ResourceType, VersionId};
        use carerecord_store::prepare_version;
        use sqlx::Row as _;
        let dir = tempfile::tempdir().unwrap();
        let store = super::SqliteStore::open(&dir.path().join("j.db"))
            .await
            .unwrap();
        let body = |family: &str| {
            serde_json::json!({"resourceType": "Patient", "active": true,
                "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9990000018"}],
                "name": [{"family": family, "given": ["Ada"]}], "birthDate": "1950-01-01",
                "telecom": [{"system": "phone", "value": "020 7946 0000"}],
                "generalPractitioner": [{"reference": "Organization/gp"}],
                "address": [{"postalCode": "SE1 7EH"}]})
        };
        let obs = serde_json::json!({"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "2823-3"}]},
            "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2026-11-01",
            "valueQuantity": {"value": 4.5, "unit": "mmol/L"},
            "meta": {"profile": ["https://fhir.hl7.org.uk/StructureDefinition/UKCore-Observation"]}});
        let versions = vec![
            prepare_version(
                ResourceType::Patient,
                &LogicalId::parse("p1").unwrap(),
                VersionId::FIRST,
                1,
                body("One"),
            ),
            prepare_version(
                ResourceType::Patient,
                &LogicalId::parse("p2").unwrap(),
                VersionId::FIRST.next(),
                2,
                body("Two"),
            ),
            prepare_version(
                ResourceType::Observation,
                &LogicalId::parse("o1").unwrap(),
                VersionId::FIRST,
                3,
                obs,
            ),
        ];
        let statements = carerecord_store::sql::versions_statements(versions);
        let mut halts = 0;
        for w in statements {
            let sql = super::write_sql(&w.statement.sql);
            let args = super::owned_arguments(w.statement.args.into_iter()).unwrap();
            let plan = sqlx::query_with(sqlx::AssertSqlSafe(format!("EXPLAIN {sql}")), args)
                .fetch_all(&store.writer)
                .await
                .unwrap();
            for row in plan {
                let opcode: String = row.get("opcode");
                let (p1, p2): (i64, i64) = (row.get("p1"), row.get("p2"));
                if opcode.starts_with("Halt") && p1 != 0 {
                    halts += 1;
                    assert!(
                        p2 != 2 || sql.contains(" ON CONFLICT "),
                        "{opcode} aborts in: {sql}"
                    );
                }
            }
        }
        assert!(halts > 0, "the statements check their constraints");
        store.close().await;
    }

    #[test]
    fn numbered_placeholders_become_anonymous_ones_in_order() {
        assert_eq!(
            positional("SELECT $1, '$x' WHERE a = $2 AND b IN ($3, $10)"),
            "SELECT ?, '$x' WHERE a = ? AND b IN (?, ?)"
        );
    }
}
