//! The identity review queue: uncertain matches waiting for a person to decide.
//!
//! Functions over the store that the CLI (`carerecord matches list|link|reject|unmerge`)
//! calls, and [`Decisions`], the same decisions behind the store's [`MatchDecisions`] trait
//! for the server's `/admin/match-reviews` (the server may not depend on ingest; the binary
//! wires them). Each decision is one transaction with its audit entry.

use std::sync::Arc;

use carerecord_fhir::LogicalId;
use carerecord_store::ingest::{
    self, Decided, DecisionError, IngestOp, MatchDecisions, ReviewItem, ReviewStatus, tx_do,
};
use carerecord_store::{
    AuditAction, AuditOutcome, AuditRecord, ResourceStore, StoreError, now_micros,
};

use crate::IngestError;
use crate::merge::{self, Cause};

/// Who decides, and through which channel, for the audit trail.
pub use carerecord_store::ingest::Decider as Reviewer;

/// Review items, oldest first, after `after_id`; of one status or all.
pub async fn list(
    store: &dyn ResourceStore,
    status: Option<ReviewStatus>,
    after_id: i64,
    limit: u32,
) -> Result<Vec<ReviewItem>, IngestError> {
    Ok(ingest::list_reviews(store, status, after_id, limit).await?)
}

fn not_open(id: i64) -> IngestError {
    IngestError::NotFound(format!(
        "review item {id} does not exist or is already decided"
    ))
}

fn lid(s: &str) -> Result<LogicalId, IngestError> {
    LogicalId::parse(s).map_err(|e| IngestError::Internal(e.to_string()))
}

fn record(
    who: &Reviewer,
    rule: &str,
    now: i64,
    patients: Vec<String>,
    resources: Vec<String>,
) -> AuditRecord {
    let mut r = AuditRecord::new(
        now,
        AuditAction::Admin,
        AuditOutcome::Allowed,
        rule,
        who.agent.clone(),
        who.channel,
    );
    r.patient_ids = patients;
    r.resources = resources;
    r.client_address = who.client_address.clone();
    r.request_id = who.request_id.clone();
    r
}

/// The reviewer confirms the match: the new record is merged into the candidate.
pub async fn link(
    store: &dyn ResourceStore,
    id: i64,
    who: &Reviewer,
) -> Result<merge::Merged, IngestError> {
    let now = now_micros();
    let mut tx = store.begin().await?;
    let item = ingest::tx_review(tx.as_mut(), id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => not_open(id),
            e => e.into(),
        })?;
    if item.status != ReviewStatus::Open {
        return Err(not_open(id));
    }
    let merged = merge::merge(
        tx.as_mut(),
        &lid(&item.candidate_id)?,
        &lid(&item.patient_id)?,
        Cause::Review,
        &who.agent.id,
        now,
    )
    .await?;
    tx_do(
        tx.as_mut(),
        IngestOp::DecideReview {
            id,
            status: ReviewStatus::Linked,
            by: who.agent.id.clone(),
            at: now,
            merge_id: Some(merged.merge_id),
        },
    )
    .await?;
    tx.append_audit(vec![record(
        who,
        "identity-review-link",
        now,
        vec![item.candidate_id.clone(), item.patient_id.clone()],
        merged.written.clone(),
    )])
    .await?;
    tx.commit().await?;
    Ok(merged)
}

/// The reviewer says they are different people: both records stay as they are.
pub async fn reject(store: &dyn ResourceStore, id: i64, who: &Reviewer) -> Result<(), IngestError> {
    let now = now_micros();
    let mut tx = store.begin().await?;
    let item = ingest::tx_review(tx.as_mut(), id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => not_open(id),
            e => e.into(),
        })?;
    tx_do(
        tx.as_mut(),
        IngestOp::DecideReview {
            id,
            status: ReviewStatus::Rejected,
            by: who.agent.id.clone(),
            at: now,
            merge_id: None,
        },
    )
    .await
    .map_err(|e| match e {
        StoreError::NotFound => not_open(id),
        e => e.into(),
    })?;
    tx.append_audit(vec![record(
        who,
        "identity-review-reject",
        now,
        vec![item.candidate_id, item.patient_id],
        Vec::new(),
    )])
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Undoes a merge (a linked review item or an HL7 A40): the records are separate again.
pub async fn unmerge(
    store: &dyn ResourceStore,
    merge_id: i64,
    who: &Reviewer,
) -> Result<Vec<String>, IngestError> {
    let now = now_micros();
    let mut tx = store.begin().await?;
    let m = ingest::tx_merge(tx.as_mut(), merge_id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => {
                IngestError::NotFound(format!("merge {merge_id} does not exist"))
            }
            e => e.into(),
        })?;
    let written = merge::undo(tx.as_mut(), merge_id, now).await?;
    tx.append_audit(vec![record(
        who,
        "identity-unmerge",
        now,
        vec![m.survivor_id, m.merged_id],
        written.clone(),
    )])
    .await?;
    tx.commit().await?;
    Ok(written)
}

/// The decisions above for the server, over one store.
pub struct Decisions {
    store: Arc<dyn ResourceStore>,
}

impl Decisions {
    pub fn new(store: Arc<dyn ResourceStore>) -> Decisions {
        Decisions { store }
    }
}

fn decision_error(e: IngestError) -> DecisionError {
    match e {
        IngestError::NotFound(m) => DecisionError::NotFound(m),
        IngestError::Invalid(m) => DecisionError::Invalid(m),
        IngestError::InvalidNhsNumber(m) => {
            DecisionError::Invalid(format!("invalid NHS number: {m}"))
        }
        IngestError::Store(s) => DecisionError::Store(s),
        IngestError::Internal(m) => DecisionError::Store(StoreError::Backend(m)),
    }
}

#[async_trait::async_trait]
impl MatchDecisions for Decisions {
    async fn link(&self, id: i64, who: &Reviewer) -> Result<Decided, DecisionError> {
        let m = link(self.store.as_ref(), id, who)
            .await
            .map_err(decision_error)?;
        Ok(Decided {
            merge_id: Some(m.merge_id),
            written: m.written,
        })
    }

    async fn reject(&self, id: i64, who: &Reviewer) -> Result<Decided, DecisionError> {
        reject(self.store.as_ref(), id, who)
            .await
            .map_err(decision_error)?;
        Ok(Decided::default())
    }

    async fn unmerge(&self, merge_id: i64, who: &Reviewer) -> Result<Decided, DecisionError> {
        let written = unmerge(self.store.as_ref(), merge_id, who)
            .await
            .map_err(decision_error)?;
        Ok(Decided {
            merge_id: Some(merge_id),
            written,
        })
    }
}
