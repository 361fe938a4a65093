//! Typed helpers over the two entry points ([`ResourceStore::ingest_read`] and
//! [`StoreTx::ingest`]), so callers never match on replies.

use carerecord_fhir::ResourceType;

use super::{
    DeadLetter, DeadLetterStatus, FeedStatus, Hl7System, IngestOp, IngestQuery, IngestReply,
    MergeRecord, MessageRecord, ReviewItem, ReviewStatus, lookup,
};
use crate::engine::SqlExec;
use crate::error::StoreError;
use crate::model::ResourceKey;
use crate::traits::{ResourceStore, StoreTx};

fn wrong_reply() -> StoreError {
    StoreError::Backend("the store answered an ingest request with the wrong reply".to_owned())
}

pub async fn systems(store: &dyn ResourceStore) -> Result<Vec<Hl7System>, StoreError> {
    match store.ingest_read(IngestQuery::Systems).await? {
        IngestReply::Systems(v) => Ok(v),
        _ => Err(wrong_reply()),
    }
}

/// When each organisation's HL7 v2 feed last delivered a message (see [`FeedStatus`]).
pub async fn feeds(store: &dyn ResourceStore) -> Result<Vec<FeedStatus>, StoreError> {
    match store.ingest_read(IngestQuery::Feeds).await? {
        IngestReply::Feeds(v) => Ok(v),
        _ => Err(wrong_reply()),
    }
}

pub async fn logged_message(
    store: &dyn ResourceStore,
    sender: &str,
    control_id: &str,
) -> Result<Option<MessageRecord>, StoreError> {
    match store
        .ingest_read(IngestQuery::Message {
            sender: sender.to_owned(),
            control_id: control_id.to_owned(),
        })
        .await?
    {
        IngestReply::Message(m) => Ok(m),
        _ => Err(wrong_reply()),
    }
}

pub async fn list_dead_letters(
    store: &dyn ResourceStore,
    status: Option<DeadLetterStatus>,
    after_id: i64,
    limit: u32,
) -> Result<Vec<DeadLetter>, StoreError> {
    match store
        .ingest_read(IngestQuery::DeadLetters {
            status,
            after_id,
            limit,
        })
        .await?
    {
        IngestReply::DeadLetters(v) => Ok(v),
        _ => Err(wrong_reply()),
    }
}

pub async fn dead_letter(store: &dyn ResourceStore, id: i64) -> Result<DeadLetter, StoreError> {
    match store.ingest_read(IngestQuery::DeadLetter { id }).await? {
        IngestReply::DeadLetters(v) => v.into_iter().next().ok_or(StoreError::NotFound),
        _ => Err(wrong_reply()),
    }
}

pub async fn list_reviews(
    store: &dyn ResourceStore,
    status: Option<ReviewStatus>,
    after_id: i64,
    limit: u32,
) -> Result<Vec<ReviewItem>, StoreError> {
    match store
        .ingest_read(IngestQuery::Reviews {
            status,
            after_id,
            limit,
        })
        .await?
    {
        IngestReply::Reviews(v) => Ok(v),
        _ => Err(wrong_reply()),
    }
}

pub async fn review(store: &dyn ResourceStore, id: i64) -> Result<ReviewItem, StoreError> {
    match store.ingest_read(IngestQuery::Review { id }).await? {
        IngestReply::Reviews(v) => v.into_iter().next().ok_or(StoreError::NotFound),
        _ => Err(wrong_reply()),
    }
}

pub async fn merges_of(
    store: &dyn ResourceStore,
    patient_id: &str,
) -> Result<Vec<MergeRecord>, StoreError> {
    match store
        .ingest_read(IngestQuery::Merges {
            patient_id: patient_id.to_owned(),
        })
        .await?
    {
        IngestReply::Merges(v) => Ok(v),
        _ => Err(wrong_reply()),
    }
}

/// [`StoreTx::ingest`] expecting an id back.
pub async fn tx_id(tx: &mut dyn StoreTx, op: IngestOp) -> Result<i64, StoreError> {
    match tx.ingest(op).await? {
        IngestReply::Id(id) => Ok(id),
        _ => Err(wrong_reply()),
    }
}

/// [`StoreTx::ingest`] expecting nothing back.
pub async fn tx_do(tx: &mut dyn StoreTx, op: IngestOp) -> Result<(), StoreError> {
    match tx.ingest(op).await? {
        IngestReply::Done => Ok(()),
        _ => Err(wrong_reply()),
    }
}

pub async fn tx_message(
    tx: &mut dyn StoreTx,
    sender: &str,
    control_id: &str,
) -> Result<Option<MessageRecord>, StoreError> {
    match tx
        .ingest(IngestOp::Message {
            sender: sender.to_owned(),
            control_id: control_id.to_owned(),
        })
        .await?
    {
        IngestReply::Message(m) => Ok(m),
        _ => Err(wrong_reply()),
    }
}

pub async fn tx_review(tx: &mut dyn StoreTx, id: i64) -> Result<ReviewItem, StoreError> {
    match tx.ingest(IngestOp::Review { id }).await? {
        IngestReply::Reviews(v) => v.into_iter().next().ok_or(StoreError::NotFound),
        _ => Err(wrong_reply()),
    }
}

/// [`IngestOp::Identified`] over a connection: the rows as the database has them (a
/// transaction lays what it holds back over them).
pub async fn tx_identified_rows(
    exec: &mut dyn SqlExec,
    keys: &[(ResourceType, String, String)],
) -> Result<Vec<(ResourceKey, String, String)>, StoreError> {
    match lookup::identified(exec, keys).await? {
        IngestReply::Identified(v) => Ok(v),
        _ => Err(wrong_reply()),
    }
}

/// [`IngestOp::Messages`]: the log rows of those of `keys` (sender, control id) processed
/// before.
pub async fn tx_messages(
    tx: &mut dyn StoreTx,
    keys: Vec<(String, String)>,
) -> Result<Vec<MessageRecord>, StoreError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    match tx.ingest(IngestOp::Messages { keys }).await? {
        IngestReply::Messages(v) => Ok(v),
        _ => Err(wrong_reply()),
    }
}

/// [`IngestOp::Identified`]: the resources carrying each `(type, system, value)`.
pub async fn tx_identified(
    tx: &mut dyn StoreTx,
    keys: Vec<(ResourceType, String, String)>,
) -> Result<Vec<(ResourceKey, String, String)>, StoreError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    match tx.ingest(IngestOp::Identified { keys }).await? {
        IngestReply::Identified(v) => Ok(v),
        _ => Err(wrong_reply()),
    }
}

pub async fn tx_compartment(
    tx: &mut dyn StoreTx,
    patient_id: &str,
) -> Result<Vec<ResourceKey>, StoreError> {
    match tx
        .ingest(IngestOp::Compartment {
            patient_id: patient_id.to_owned(),
        })
        .await?
    {
        IngestReply::Keys(v) => Ok(v),
        _ => Err(wrong_reply()),
    }
}

pub async fn tx_merge(tx: &mut dyn StoreTx, id: i64) -> Result<MergeRecord, StoreError> {
    match tx.ingest(IngestOp::Merge { id }).await? {
        IngestReply::Merges(v) => v.into_iter().next().ok_or(StoreError::NotFound),
        _ => Err(wrong_reply()),
    }
}
