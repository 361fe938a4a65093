//! Matching the people in FHIR submissions: the server takes a source system's Bundle, and
//! `carerecord-ingest` (which owns identity matching) resolves each Patient in it to one
//! carerecord Patient inside the Bundle's own transaction. The server may not depend on the
//! ingest, so it calls this trait and the binary wires the two, as for [`MatchDecisions`].
//!
//! [`MatchDecisions`]: super::MatchDecisions

use serde_json::Value;

use crate::error::StoreError;
use crate::traits::StoreTx;

/// Who sent the person, for what matching writes and records.
#[derive(Debug, Clone, Copy)]
pub struct Submitter<'a> {
    /// The source organisation's ODS code (the writer's own, never the body's).
    pub source_ods: &'a str,
    /// Microseconds since the Unix epoch.
    pub now: i64,
}

/// How a submitted person was resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PersonFound {
    /// An existing Patient, by its verified NHS number (or the number and birth date).
    NhsNumber,
    /// An existing Patient, by the source's own identifier already linked to it.
    LocalId,
    /// An existing Patient, by a confident demographic score.
    Demographics { score: i64 },
    /// Nobody matched: a new Patient.
    New,
    /// A new Patient that resembles another: review item `review` waits for a decision.
    NewForReview { review: i64 },
}

impl PersonFound {
    /// Whether the Patient existed before this submission.
    pub fn existing(self) -> bool {
        matches!(
            self,
            PersonFound::NhsNumber | PersonFound::LocalId | PersonFound::Demographics { .. }
        )
    }
}

/// The Patient a submitted person resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonMatch {
    /// The Patient's logical id.
    pub patient_id: String,
    pub found: PersonFound,
    /// Versions matching wrote (the new Patient, or a new version of the existing one with the
    /// source's identifier), as `Patient/id/_history/version`.
    pub written: Vec<String>,
}

/// Why a submitted person could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum PersonMatchError {
    /// An NHS number that fails the Modulus 11 check: an error, never a match key.
    #[error("invalid NHS number: {0}")]
    InvalidNhsNumber(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Internal(String),
}

/// Resolves the person a submitted Patient describes. Implemented by `carerecord-ingest`.
#[async_trait::async_trait]
pub trait PersonMatcher: Send + Sync + std::fmt::Debug {
    /// Resolves `patient` (a FHIR Patient as the source sent it, its source tag stamped)
    /// inside `tx`, creating a Patient when nobody matches; what it writes commits or rolls
    /// back with the rest of the submission.
    async fn resolve(
        &self,
        tx: &mut dyn StoreTx,
        patient: &Value,
        by: Submitter<'_>,
    ) -> Result<PersonMatch, PersonMatchError>;
}
