//! Decisions on the identity review queue, made by the server and carried out by
//! `carerecord-ingest` (which owns merging).

use crate::error::StoreError;

/// Who decides on the identity review queue, for the audit entry committed with the decision.
#[derive(Debug, Clone)]
pub struct Decider {
    pub agent: crate::AuditAgent,
    pub channel: crate::Channel,
    pub client_address: Option<String>,
    pub request_id: Option<String>,
}

/// What a decision wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decided {
    /// The merge a link made (the id to undo it with).
    pub merge_id: Option<i64>,
    /// Versions written, as `Type/id/_history/version`.
    pub written: Vec<String>,
}

/// Why a decision was not made.
#[derive(Debug, thiserror::Error)]
pub enum DecisionError {
    /// No such open review item, or no such merge.
    #[error("{0}")]
    NotFound(String),
    /// It cannot be done as asked (e.g. a merge undone already); names why.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Decisions on the identity review queue. Merging is `carerecord-ingest`'s, which implements
/// this; the server, which may not depend on ingest, calls it, and the binary wires the two.
/// Each decision is one transaction with its audit entry.
#[async_trait::async_trait]
pub trait MatchDecisions: Send + Sync {
    /// The same person: review item `id`'s new record is merged into its candidate.
    async fn link(&self, id: i64, who: &Decider) -> Result<Decided, DecisionError>;
    /// Different people: both records stay.
    async fn reject(&self, id: i64, who: &Decider) -> Result<Decided, DecisionError>;
    /// Undoes merge `merge_id` (a linked item or an HL7 A40).
    async fn unmerge(&self, merge_id: i64, who: &Decider) -> Result<Decided, DecisionError>;
}
