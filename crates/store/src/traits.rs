use std::collections::HashMap;

use async_trait::async_trait;
use carerecord_fhir::{LogicalId, ResourceType, VersionId};
use carerecord_search::query::SearchQuery;

use crate::error::StoreError;
use crate::model::{HistoryQuery, Page, ResourceKey, SearchOutcome, StoredResource, VersionHead};
use crate::prepare::PreparedVersion;

/// Reads, searches and opens write transactions. Held as `Arc<dyn ResourceStore>`.
#[async_trait]
pub trait ResourceStore: Send + Sync + 'static {
    /// The backend's name for logs and health (`sqlite`, `postgres`).
    fn backend(&self) -> &'static str;

    /// Succeeds when the database answers.
    async fn ready(&self) -> Result<(), StoreError>;

    /// The current version; `Gone` when it is deleted, `NotFound` when it never existed.
    async fn read(&self, rt: ResourceType, id: &LogicalId) -> Result<StoredResource, StoreError>;

    /// One version; a deletion marker reads as `Gone`.
    async fn vread(
        &self,
        rt: ResourceType,
        id: &LogicalId,
        version: VersionId,
    ) -> Result<StoredResource, StoreError>;

    /// Versions newest first: of one resource (`id` set), of one type (`rt` set), or of all.
    async fn history(
        &self,
        rt: Option<ResourceType>,
        id: Option<&LogicalId>,
        query: &HistoryQuery,
    ) -> Result<Page<StoredResource>, StoreError>;

    /// Runs a search: one page of matches (keyset-paged), its includes and the total.
    async fn search(
        &self,
        query: &SearchQuery,
        page_size: u32,
    ) -> Result<SearchOutcome, StoreError>;

    /// Everything in one patient's compartment (the Patient itself included), by type and id.
    async fn everything(
        &self,
        patient_id: &LogicalId,
        since: Option<i64>,
        types: &[ResourceType],
        count: u32,
        cursor: Option<&str>,
    ) -> Result<Page<StoredResource>, StoreError>;

    /// Reads several current resources by key (missing and deleted ones are left out).
    async fn read_many(&self, keys: &[ResourceKey]) -> Result<Vec<StoredResource>, StoreError>;

    /// Starts a write transaction. Dropping it without `commit` rolls everything back.
    async fn begin(&self) -> Result<Box<dyn StoreTx>, StoreError>;
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

    async fn commit(self: Box<Self>) -> Result<(), StoreError>;
}
