//! The people in FHIR submissions. When a registered source system (a hospital, a GP practice,
//! a lab: role `system`) creates a Patient — a `POST` entry of a transaction, or `POST
//! [base]/Patient` — the person is resolved by identity matching, exactly as an HL7 v2 `PID`
//! is (`docs/integrators/matching.md`): by verified NHS number, then the source's own
//! identifier, then scored demographics. A known person is not created twice; the Bundle's
//! references to the entry (its `urn:uuid:` fullUrl) then point at the carerecord Patient.
//! People (portal users, SMART apps) and carerecord's own service identity write as sent.
//!
//! Matching is `carerecord-ingest`'s; the server asks for it through the store's
//! [`PersonMatcher`], which the binary supplies in [`AppState::people`].

use std::sync::Arc;

use carerecord_access::Role;
use carerecord_fhir::{Issue, IssueCode, LogicalId, ResourceType, operation_outcome};
use carerecord_store::ingest::{
    PersonFound, PersonMatch, PersonMatchError, PersonMatcher, Submitter,
};
use carerecord_store::{StoreTx, now_micros};
use serde_json::Value;

use axum::http::header::LOCATION;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::context::{Ctx, PreferReturn};
use super::interactions::{self, Written};
use super::render::{json_response, json_text, location, version_headers, write_response};
use crate::AppState;
use crate::access::Access;
use crate::error::ApiError;

/// The matcher for what `access` submits: a source system's Patients are matched; anyone
/// else's are written as sent.
pub(crate) fn matcher_for(state: &AppState, access: &Access) -> Option<Arc<dyn PersonMatcher>> {
    if access.principal.role == Role::System {
        state.people.clone()
    } else {
        None
    }
}

/// Resolves the person `patient` (checked as a create would check it, its source stamped)
/// describes inside `tx`: the Patient it is now, as written or found, and how it was found.
pub(crate) async fn resolve(
    tx: &mut dyn StoreTx,
    matcher: &dyn PersonMatcher,
    access: &Access,
    patient: &Value,
) -> Result<(Written, PersonMatch), ApiError> {
    interactions::check_resource(ResourceType::Patient, patient)?;
    let by = Submitter {
        source_ods: &access.principal.organisation_ods,
        now: now_micros(),
    };
    let m = matcher
        .resolve(tx, patient, by)
        .await
        .map_err(|e| match e {
            PersonMatchError::InvalidNhsNumber(why) => ApiError::Unprocessable(vec![Issue {
                expression: vec!["Patient.identifier".into()],
                ..Issue::error(
                    IssueCode::Value,
                    format!("the NHS number is not valid ({why}); it cannot identify the person"),
                )
            }]),
            PersonMatchError::Store(s) => ApiError::from(s),
            PersonMatchError::Internal(m) => ApiError::Internal(m),
        })?;
    let id = LogicalId::parse(&m.patient_id).map_err(|e| ApiError::Internal(e.to_string()))?;
    let current = tx
        .current(ResourceType::Patient, &id)
        .await?
        .ok_or_else(|| ApiError::Internal("the matched Patient is not there".into()))?;
    let written = if m.found.existing() {
        Written::Existing(current)
    } else {
        Written::Created(current)
    };
    Ok((written, m))
}

/// What the submitter is told about how its person was resolved: an `OperationOutcome` with
/// one information issue (field names and ids only, never who the person is).
pub(crate) fn outcome(m: &PersonMatch) -> Value {
    let id = &m.patient_id;
    let text = match m.found {
        PersonFound::NhsNumber => {
            format!("the person is Patient/{id}, found by their NHS number; not created again")
        }
        PersonFound::LocalId => format!(
            "the person is Patient/{id}, found by this source's own identifier; not created again"
        ),
        PersonFound::Demographics { score } => format!(
            "the person is Patient/{id}, matched on name, birth date and other details \
             (score {score}); not created again"
        ),
        PersonFound::New => format!("no matching person: created Patient/{id}"),
        PersonFound::NewForReview { review } => format!(
            "created Patient/{id}; the person resembles another record, so review item {review} \
             waits for a data-quality decision on whether they are the same"
        ),
    };
    operation_outcome(&[Issue::information(IssueCode::Informational, text)])
}

/// The answer to `POST [base]/Patient` from a source system: a new person as any create
/// (201), a known one as a conditional create that found it (200, `Location` and `ETag` of
/// the Patient) with the [`outcome`] as the body — the Patient as others wrote it is theirs.
pub(crate) fn respond(ctx: &Ctx, written: &Written, m: &PersonMatch) -> Result<Response, ApiError> {
    match written {
        Written::Created(r) => write_response(ctx, StatusCode::CREATED, r, true),
        Written::Existing(r) => {
            let mut resp = if ctx.prefer_return == PreferReturn::Minimal {
                StatusCode::OK.into_response()
            } else {
                json_response(StatusCode::OK, json_text(&outcome(m), ctx.pretty)?)
            };
            version_headers(&mut resp, r);
            if let Ok(v) = HeaderValue::from_str(&location(&ctx.base, r)) {
                resp.headers_mut().insert(LOCATION, v);
            }
            Ok(resp)
        }
        Written::Updated(_) | Written::Deleted(_) => Err(ApiError::Internal(
            "matching returned another outcome".into(),
        )),
    }
}
