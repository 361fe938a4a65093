//! The people in FHIR submissions: the store's [`PersonMatcher`], through which the server has
//! each Patient a source system sends resolved by the same rules as an HL7 v2 `PID`
//! ([`crate::matching`]).

use carerecord_store::StoreTx;
use carerecord_store::ingest::{
    PersonFound, PersonMatch, PersonMatchError, PersonMatcher, Submitter,
};
use serde_json::Value;

use crate::IngestError;
use crate::matching::{self, IncomingPerson, MatchContext, MatchedBy, Outcome};

/// Identity matching for FHIR submissions; the binary hands it to the server.
#[derive(Debug, Clone, Copy, Default)]
pub struct SubmittedPeople;

#[async_trait::async_trait]
impl PersonMatcher for SubmittedPeople {
    async fn resolve(
        &self,
        tx: &mut dyn StoreTx,
        patient: &Value,
        by: Submitter<'_>,
    ) -> Result<PersonMatch, PersonMatchError> {
        let person = IncomingPerson::from_patient(patient);
        let ctx = MatchContext {
            source_ods: by.source_ods,
            now: by.now,
        };
        let resolved = matching::resolve(tx, &person, &ctx)
            .await
            .map_err(|e| match e {
                IngestError::InvalidNhsNumber(m) => PersonMatchError::InvalidNhsNumber(m),
                IngestError::Store(s) => PersonMatchError::Store(s),
                other => PersonMatchError::Internal(other.to_string()),
            })?;
        let found = match resolved.outcome {
            Outcome::Existing(MatchedBy::NhsNumber) => PersonFound::NhsNumber,
            Outcome::Existing(MatchedBy::LocalId) => PersonFound::LocalId,
            Outcome::Existing(MatchedBy::Demographics { score }) => {
                PersonFound::Demographics { score }
            }
            Outcome::Created {
                review: Some(review),
                ..
            } => PersonFound::NewForReview { review },
            Outcome::Created { review: None, .. } => PersonFound::New,
        };
        Ok(PersonMatch {
            patient_id: resolved.patient_id,
            found,
            written: resolved.written,
        })
    }
}
