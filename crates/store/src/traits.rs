use std::collections::HashMap;

use async_trait::async_trait;
use carerecord_access::Visibility;
use carerecord_fhir::{LogicalId, ResourceType, VersionId};
use carerecord_search::query::SearchQuery;

use crate::audit::{AuditEntry, AuditFilter, AuditRecord};
use crate::directory::Directory;
use crate::error::StoreError;
use crate::ingest::{IngestOp, IngestQuery, IngestReply};
use crate::model::{
    BreakGlassGrant, BreakGlassRecord, BreakGlassReview, HistoryQuery, Page, ResourceKey,
    ReviewStatus, SearchOutcome, StoredResource, VersionHead,
};
use crate::prepare::PreparedVersion;

/// Reads, searches and opens write transactions. Held as `Arc<dyn ResourceStore>`.
///
/// Every method that reads records takes the principal's [`Visibility`], which the store
/// compiles into its queries: what the principal may not see is never read, so it cannot leak
/// through a count, a page, a cursor or an include. A resource that exists but is not visible
/// reads as `NotFound`, like one that does not exist.
#[async_trait]
pub trait ResourceStore: Send + Sync + 'static {
    /// The backend's name for logs and health (`sqlite`, `postgres`).
    fn backend(&self) -> &'static str;

    /// Whether the database runs one write transaction at a time (SQLite). Writers of such a
    /// store gain by sharing one transaction among many requests — one commit, one sync, and
    /// every page the requests have in common written to the log once — and lose nothing,
    /// since they would wait for each other anyway. Where writers run side by side
    /// (PostgreSQL), sharing would put them in a queue.
    fn single_writer(&self) -> bool {
        false
    }

    /// Succeeds when the database answers.
    async fn ready(&self) -> Result<(), StoreError>;

    /// The current version; `Gone` when it is deleted, `NotFound` when it never existed.
    async fn read(
        &self,
        rt: ResourceType,
        id: &LogicalId,
        vis: &Visibility,
    ) -> Result<StoredResource, StoreError>;

    /// One version; a deletion marker reads as `Gone`.
    async fn vread(
        &self,
        rt: ResourceType,
        id: &LogicalId,
        version: VersionId,
        vis: &Visibility,
    ) -> Result<StoredResource, StoreError>;

    /// Versions newest first: of one resource (`id` set), of one type (`rt` set), or of all.
    async fn history(
        &self,
        rt: Option<ResourceType>,
        id: Option<&LogicalId>,
        query: &HistoryQuery,
        vis: &Visibility,
    ) -> Result<Page<StoredResource>, StoreError>;

    /// Runs a search: one page of matches (keyset-paged), its includes and the total.
    async fn search(
        &self,
        query: &SearchQuery,
        page_size: u32,
        vis: &Visibility,
    ) -> Result<SearchOutcome, StoreError>;

    /// Everything in one patient's compartment (the Patient itself included), by type and id.
    async fn everything(
        &self,
        patient_id: &LogicalId,
        since: Option<i64>,
        types: &[ResourceType],
        count: u32,
        cursor: Option<&str>,
        vis: &Visibility,
    ) -> Result<Page<StoredResource>, StoreError>;

    /// Reads several current resources by key (missing and deleted ones are left out).
    async fn read_many(
        &self,
        keys: &[ResourceKey],
        vis: &Visibility,
    ) -> Result<Vec<StoredResource>, StoreError>;

    /// Starts a write transaction. Dropping it without `commit` rolls everything back.
    async fn begin(&self) -> Result<Box<dyn StoreTx>, StoreError>;

    /// Appends audit entries outside a write (reads, searches, logins, denials) and returns
    /// only once they are durable: send a read's response after this returns. Concurrent calls
    /// are group-committed (one transaction for many callers). Fails when the store was opened
    /// without an audit key.
    async fn append_audit(&self, records: Vec<AuditRecord>) -> Result<(), StoreError>;

    /// Up to `limit` audit entries with sequence numbers above `after_seq`, oldest first — the
    /// whole trail, page by page, for verification.
    async fn audit_entries(
        &self,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError>;

    /// Audit entries matching `filter`, newest first, keyset-paged (`cursor` from the previous
    /// page's `next_cursor`). `total` is not counted.
    async fn audit_search(
        &self,
        filter: &AuditFilter,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<AuditEntry>, StoreError>;

    /// One audit entry by sequence number.
    async fn audit_entry(&self, seq: i64) -> Result<AuditEntry, StoreError>;

    /// For each person the entries matching `filter` touched, the time (µs) of the newest —
    /// "when did this member of staff last open each record" — without reading the entries.
    async fn audit_last_looks(
        &self,
        filter: &AuditFilter,
    ) -> Result<Vec<(String, i64)>, StoreError>;

    /// The privacy officers' review queue: break-glass grants made by organisation `org_id`'s
    /// staff, in `status`, newest first, `limit` to a page, keyset-paged (`cursor` from the
    /// previous page's `next_cursor`; `total` is not counted).
    async fn break_glass_queue(
        &self,
        org_id: &str,
        status: ReviewStatus,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<BreakGlassRecord>, StoreError>;

    /// One break-glass grant, reviewed or not.
    async fn break_glass_grant(
        &self,
        grant_id: &str,
    ) -> Result<Option<BreakGlassRecord>, StoreError>;
    /// Reads the gathering tables: registered HL7 v2 senders, the message log, dead letters,
    /// the identity-matching review queue and merges (see [`crate::ingest`] for typed helpers).
    async fn ingest_read(&self, query: IngestQuery) -> Result<IngestReply, StoreError>;

    /// The directory of users, clients and tokens kept in the same database.
    fn directory(&self) -> std::sync::Arc<dyn Directory>;
}

/// A write transaction: every change in it lands together or not at all.
#[async_trait]
pub trait StoreTx: Send {
    /// The current version (a deletion marker included), inside the transaction.
    async fn current(
        &mut self,
        rt: ResourceType,
        id: &LogicalId,
    ) -> Result<Option<StoredResource>, StoreError>;

    /// The current version heads (no bodies) of many resources at once, deletion markers
    /// included; keys with no resource are absent from the map. Like `current`, it sees the
    /// transaction's own writes, and where the backend locks rows `current` would lock, these
    /// are locked too, for the rest of the transaction.
    async fn heads(
        &mut self,
        keys: &[ResourceKey],
    ) -> Result<HashMap<ResourceKey, VersionHead>, StoreError>;

    /// Keys of current resources matching `query`, at most `limit`, inside the transaction.
    async fn find(
        &mut self,
        query: &SearchQuery,
        limit: u32,
    ) -> Result<Vec<ResourceKey>, StoreError>;

    /// Serialises transactions that take the same `key` until this one ends, so that a
    /// search-then-write (conditional create/update) cannot race another.
    async fn lock(&mut self, key: &str) -> Result<(), StoreError>;

    /// Writes a new version: history row, current row and index rows (replacing the old ones).
    /// The write may be held back and batched with others until the transaction next reads,
    /// deletes, flushes or commits; errors such as a taken id may surface then.
    async fn put(&mut self, version: PreparedVersion) -> Result<(), StoreError>;

    /// Writes everything `put` has held back.
    async fn flush(&mut self) -> Result<(), StoreError>;

    /// Writes a deletion marker as version `version` and removes the resource's index rows.
    async fn put_deleted(
        &mut self,
        rt: ResourceType,
        id: &LogicalId,
        version: VersionId,
        last_updated: i64,
    ) -> Result<(), StoreError>;

    /// Records a break-glass grant: from now until it expires, its principal sees the person
    /// (unless they objected). Commits with the transaction — and so with its audit entry.
    async fn put_break_glass(&mut self, grant: &BreakGlassGrant) -> Result<(), StoreError>;

    /// Records a privacy officer's review of grant `grant_id` if it is still open. `false`
    /// when no open grant has that id (unknown, or reviewed already — a review is written
    /// once, so two officers cannot both review one grant). Commits with the transaction,
    /// and so with the review's own audit entry. Who may review is the caller's policy.
    async fn review_break_glass(
        &mut self,
        grant_id: &str,
        review: &BreakGlassReview,
    ) -> Result<bool, StoreError>;
    /// Records audit entries for this transaction's writes: they are chained and stored when
    /// the transaction commits, in the same database transaction, so the writes and their
    /// entries land together or not at all.
    async fn append_audit(&mut self, records: Vec<AuditRecord>) -> Result<(), StoreError>;

    /// Marks a point this transaction can roll back to (savepoints nest). Bulk import runs
    /// several Bundles in one transaction, each under a savepoint, so that a refused Bundle
    /// leaves nothing behind while the others still commit together.
    async fn savepoint(&mut self) -> Result<(), StoreError>;

    /// Keeps what was written since the newest savepoint and forgets that savepoint. Writes
    /// held back are written first, so that their errors show here.
    async fn release_savepoint(&mut self) -> Result<(), StoreError>;

    /// Undoes everything written since the newest savepoint (writes held back included) and
    /// forgets that savepoint; the transaction goes on.
    async fn rollback_to_savepoint(&mut self) -> Result<(), StoreError>;

    /// Changes (or reads) the gathering tables inside this transaction, so that a message's log
    /// row, its review item or a merge record commit with the resources it wrote. Writes held
    /// back are written first.
    async fn ingest(&mut self, op: IngestOp) -> Result<IngestReply, StoreError>;

    async fn commit(self: Box<Self>) -> Result<(), StoreError>;
}
