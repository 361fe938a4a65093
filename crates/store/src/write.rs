//! The write interactions, written once over [`StoreTx`]: versioning rules live here, not in
//! the backends.

use carerecord_fhir::{LogicalId, ResourceType, VersionId};
use serde_json::Value;

use crate::error::StoreError;
use crate::model::{StoredResource, VersionHead, WriteKind, WriteResult, now_micros};
use crate::prepare::{PreparedBody, PreparedVersion, prepare_body};
use crate::traits::StoreTx;

fn stored(p: &PreparedVersion) -> StoredResource {
    StoredResource {
        resource_type: p.resource_type,
        id: p.id.clone(),
        version_id: p.version_id,
        last_updated: p.last_updated,
        deleted: false,
        body: p.body.clone(),
        patient_id: p.patient_id.clone(),
    }
}

/// Creates `id` as version 1. Fails with `AlreadyExists` if the id is taken (even by a deleted
/// resource: ids are never reused by create).
pub async fn create(
    tx: &mut dyn StoreTx,
    rt: ResourceType,
    id: &LogicalId,
    body: Value,
) -> Result<WriteResult, StoreError> {
    if tx.current(rt, id).await?.is_some() {
        return Err(StoreError::AlreadyExists);
    }
    create_new(tx, rt, id, body).await
}

/// Creates `id` as version 1 without first looking for it: for ids the server has just made
/// (UUIDs), where a collision cannot happen in practice and would still be refused by the
/// database's key when the write is flushed. Skipping the look-up lets a transaction's creates
/// be written together.
pub async fn create_new(
    tx: &mut dyn StoreTx,
    rt: ResourceType,
    id: &LogicalId,
    body: Value,
) -> Result<WriteResult, StoreError> {
    create_prepared(tx, prepare_body(rt, id, body)).await
}

/// [`create_new`] of a body prepared in advance ([`prepare_body`]).
pub async fn create_prepared(
    tx: &mut dyn StoreTx,
    body: PreparedBody,
) -> Result<WriteResult, StoreError> {
    let p = body.into_version(VersionId::FIRST, now_micros());
    let resource = stored(&p);
    tx.put(p).await?;
    Ok(WriteResult {
        kind: WriteKind::Created,
        resource,
    })
}

/// The version an update writes over `current` (creating when absent or deleted — update as
/// create), and its time. With `if_match`, the current version must be exactly that one.
fn next_version(
    current: Option<&VersionHead>,
    if_match: Option<VersionId>,
) -> Result<(VersionId, WriteKind, i64), StoreError> {
    if let Some(expected) = if_match {
        match current {
            Some(c) if !c.deleted && c.version_id == expected => {}
            Some(c) => {
                return Err(StoreError::VersionConflict {
                    expected,
                    current: c.version_id,
                });
            }
            None => return Err(StoreError::NotFound),
        }
    }
    let (version, kind) = match current {
        Some(c) if c.deleted => (c.version_id.next(), WriteKind::Created),
        Some(c) => (c.version_id.next(), WriteKind::Updated),
        None => (VersionId::FIRST, WriteKind::Created),
    };
    // A version is never older than the one before it, even if the clock stepped back.
    let mut now = now_micros();
    if let Some(c) = current {
        now = now.max(c.last_updated + 1);
    }
    Ok((version, kind, now))
}

/// Writes a new version of `id` (creating it when absent — update as create). With
/// `if_match`, the current version must be exactly that one.
pub async fn update(
    tx: &mut dyn StoreTx,
    rt: ResourceType,
    id: &LogicalId,
    body: Value,
    if_match: Option<VersionId>,
) -> Result<WriteResult, StoreError> {
    let current = tx.current(rt, id).await?.map(|c| VersionHead::of(&c));
    let (version, kind, now) = next_version(current.as_ref(), if_match)?;
    let p = prepare_body(rt, id, body).into_version(version, now);
    let resource = stored(&p);
    // Written at once, so that a version already taken shows here: it means a concurrent
    // writer got there first (two updates creating the same id) — not a conflict with the
    // client's view, so worth a retry.
    let written = match tx.put(p).await {
        Ok(()) => tx.flush().await,
        Err(e) => Err(e),
    };
    written.map_err(busy_if_taken)?;
    Ok(WriteResult { kind, resource })
}

/// [`update`] of a body prepared in advance, over `current` — the head [`StoreTx::heads`]
/// reported for it in this transaction (`None`: no such resource). Unlike `update` the write
/// is held back like any `put`, so that many updates are written together: a version that a
/// concurrent writer took first surfaces at the next flush as `AlreadyExists`, which the caller
/// should treat as `Busy` ([`busy_if_taken`]).
pub async fn update_prepared(
    tx: &mut dyn StoreTx,
    body: PreparedBody,
    current: Option<&VersionHead>,
    if_match: Option<VersionId>,
) -> Result<WriteResult, StoreError> {
    let (version, kind, now) = next_version(current, if_match)?;
    let p = body.into_version(version, now);
    let resource = stored(&p);
    tx.put(p).await.map_err(busy_if_taken)?;
    Ok(WriteResult { kind, resource })
}

/// A version (or id) that is already taken when an update or delete is written means that a
/// concurrent writer got there first: not a conflict with what the client saw, so `Busy` — worth
/// a retry.
pub fn busy_if_taken(e: StoreError) -> StoreError {
    match e {
        StoreError::AlreadyExists => StoreError::Busy,
        e => e,
    }
}

/// Deletes `id`, writing a deletion marker as a new version. `None` when there was nothing to
/// delete (absent or already deleted): deleting is idempotent.
pub async fn delete(
    tx: &mut dyn StoreTx,
    rt: ResourceType,
    id: &LogicalId,
) -> Result<Option<WriteResult>, StoreError> {
    match tx.current(rt, id).await? {
        Some(c) if !c.deleted => {
            let version = c.version_id.next();
            let now = now_micros().max(c.last_updated + 1);
            tx.put_deleted(rt, id, version, now)
                .await
                .map_err(busy_if_taken)?;
            Ok(Some(WriteResult {
                kind: WriteKind::Deleted,
                resource: StoredResource {
                    resource_type: rt,
                    id: id.clone(),
                    version_id: version,
                    last_updated: now,
                    deleted: true,
                    body: String::new(),
                    patient_id: c.patient_id,
                },
            }))
        }
        _ => Ok(None),
    }
}
