//! The identity-matching review queue over HTTP (`docs/integrators/matching.md`).
//!
//! An uncertain match made a separate Patient and a review item. The programme's
//! administrators (the people who run the shared record across organisations; the CLI's
//! `carerecord matches` is theirs too) list the items, link them (a merge: the new record is
//! absorbed into the candidate), reject them (two people), and undo a merge. Privacy officers
//! oversee access, not records, so they do not decide identities.
//!
//! Merging belongs to `carerecord-ingest`; the server may not depend on it, so the decisions
//! come through [`MatchDecisions`] (a store-level trait ingest implements) that the binary
//! hands to [`router`]. Each decision commits in one transaction with its audit entry; listing
//! the queue is audited too (it names people). Errors are `OperationOutcome`s.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use carerecord_access::{Principal, policy};
use carerecord_fhir::IssueCode;
use carerecord_store::ingest::{
    Decided, Decider, DecisionError, MatchDecisions, ReviewItem, ReviewStatus, list_reviews,
};
use carerecord_store::{
    AuditAction, AuditOutcome, Channel, StoreError, format_instant, now_micros,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::audit::{AuditNote, ClientAddress, agent, record};
use crate::auth::SignedIn;
use crate::error::ApiError;

/// Items one page lists at the most.
pub const MAX_PAGE: u32 = 200;

/// The routes, deciding through `decisions` (the binary passes ingest's).
pub fn router(decisions: Arc<dyn MatchDecisions>) -> Router<AppState> {
    Router::new()
        .route("/admin/match-reviews", get(list_handler))
        .route("/admin/match-reviews/{id}/link", post(link_handler))
        .route("/admin/match-reviews/{id}/reject", post(reject_handler))
        .route("/admin/merges/{id}/unmerge", post(unmerge_handler))
        .layer(Extension(decisions))
}

/// Writes the entry for what `who` did (or was refused), outside any write transaction.
async fn audit(
    state: &AppState,
    who: &Principal,
    outcome: AuditOutcome,
    rule: &str,
    note: &AuditNote,
    client: Option<String>,
) -> Result<(), ApiError> {
    let mut r = record(who, AuditAction::Admin, outcome, rule, note, client);
    // Deciding identities is not care: no purpose of use.
    r.purpose_of_use = None;
    state.store.append_audit(vec![r]).await.map_err(store_error)
}

fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Busy => ApiError::Busy,
        e => ApiError::Internal(e.to_string()),
    }
}

/// The policy's answer, a refusal written to the trail before it is answered.
async fn allowed(
    state: &AppState,
    who: &Principal,
    client: &Option<String>,
    target: AuditNote,
) -> Result<(), ApiError> {
    match policy::may_review_matches(who, now_micros()) {
        Ok(()) => Ok(()),
        Err(d) => {
            audit(
                state,
                who,
                AuditOutcome::Denied,
                d.rule(),
                &target,
                client.clone(),
            )
            .await?;
            Err(ApiError::Denied(d))
        }
    }
}

/// A review item as the API shows it.
pub fn item_json(r: &ReviewItem) -> Value {
    json!({
        "id": r.id,
        "status": r.status.as_str(),
        "created_at": format_instant(r.created_at),
        "source_ods": r.source_ods,
        "patient": format!("Patient/{}", r.patient_id),
        "candidate": format!("Patient/{}", r.candidate_id),
        "score": r.score,
        "reasons": r.reasons.split(',').map(str::trim).filter(|s| !s.is_empty()).collect::<Vec<_>>(),
        "decided_at": r.decided_at.map(format_instant),
        "decided_by": r.decided_by,
        "merge_id": r.merge_id,
    })
}

#[derive(Debug, Deserialize)]
pub struct ListParams {
    /// `open` (the default), `linked`, `rejected` or `all`.
    #[serde(default)]
    pub status: Option<String>,
    /// The last id of the previous page.
    #[serde(default)]
    pub after: Option<i64>,
    #[serde(default, rename = "_count")]
    pub count: Option<u32>,
}

/// `GET /admin/match-reviews?status=open|linked|rejected|all&_count=N&after=ID`: oldest
/// first; `next` is the next page's address while there may be more.
pub async fn list_handler(
    State(state): State<AppState>,
    SignedIn(auth): SignedIn,
    ClientAddress(client): ClientAddress,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Ok(Query(params)) = params else {
        return Err(ApiError::bad_request(
            IssueCode::Invalid,
            "status must be open, linked, rejected or all; after and _count whole numbers",
        ));
    };
    let (status, status_text) = match params.status.as_deref().unwrap_or("open") {
        "all" => (None, "all"),
        s => match ReviewStatus::parse(s) {
            Ok(st) => (Some(st), st.as_str()),
            Err(_) => {
                return Err(ApiError::bad_request(
                    IssueCode::Invalid,
                    "status must be open, linked, rejected or all",
                ));
            }
        },
    };
    let who = &auth.principal;
    allowed(&state, who, &client, AuditNote::default()).await?;
    let limit = params.count.unwrap_or(50).clamp(1, MAX_PAGE);
    let after = params.after.unwrap_or(0);
    let items = list_reviews(state.store.as_ref(), status, after, limit)
        .await
        .map_err(store_error)?;
    let mut note = AuditNote {
        action: Some(AuditAction::Admin),
        resources: items
            .iter()
            .map(|r| format!("match-review/{}", r.id))
            .collect(),
        patients: items
            .iter()
            .flat_map(|r| [r.patient_id.clone(), r.candidate_id.clone()])
            .collect(),
        ..AuditNote::default()
    };
    note.patients.sort();
    note.patients.dedup();
    audit(
        &state,
        who,
        AuditOutcome::Allowed,
        "identity-review-queue",
        &note,
        client,
    )
    .await?;
    let next = match items.last() {
        Some(last) if items.len() == limit as usize => Value::String(format!(
            "/admin/match-reviews?status={status_text}&_count={limit}&after={}",
            last.id
        )),
        _ => Value::Null,
    };
    Ok(Json(json!({
        "items": items.iter().map(item_json).collect::<Vec<_>>(),
        "next": next,
    })))
}

fn decision_error(e: DecisionError) -> ApiError {
    match e {
        DecisionError::NotFound(m) => ApiError::NotFound(m),
        DecisionError::Invalid(m) => ApiError::Conflict(m),
        DecisionError::Store(s) => store_error(s),
    }
}

#[derive(Debug, Clone, Copy)]
enum Decision {
    Link,
    Reject,
    Unmerge,
}

async fn decide(
    state: &AppState,
    decisions: &dyn MatchDecisions,
    who: &Principal,
    client: Option<String>,
    id: &str,
    decision: Decision,
) -> Result<Response, ApiError> {
    let (kind, target) = match decision {
        Decision::Unmerge => ("merge", format!("merge/{id}")),
        _ => ("review item", format!("match-review/{id}")),
    };
    let note = AuditNote {
        action: Some(AuditAction::Admin),
        resources: vec![target],
        ..AuditNote::default()
    };
    allowed(state, who, &client, note).await?;
    let Ok(id) = id.parse::<i64>() else {
        return Err(ApiError::NotFound(format!("there is no {kind} {id}")));
    };
    let decider = Decider {
        agent: agent(who),
        channel: Channel::Api,
        client_address: client,
        request_id: crate::request_id::current(),
    };
    let decided: Decided = match decision {
        Decision::Link => decisions.link(id, &decider).await,
        Decision::Reject => decisions.reject(id, &decider).await,
        Decision::Unmerge => decisions.unmerge(id, &decider).await,
    }
    .map_err(decision_error)?;
    let body = match decision {
        Decision::Unmerge => json!({"merge_id": id, "undone": true, "written": decided.written}),
        Decision::Link => json!({"id": id, "status": "linked", "merge_id": decided.merge_id,
            "written": decided.written,
            "undo": decided.merge_id.map(|m| format!("/admin/merges/{m}/unmerge"))}),
        Decision::Reject => json!({"id": id, "status": "rejected"}),
    };
    Ok((StatusCode::OK, Json(body)).into_response())
}

/// `POST /admin/match-reviews/{id}/link`: the same person; the new record is merged into the
/// candidate (answers the merge id, to undo it).
pub async fn link_handler(
    State(state): State<AppState>,
    Extension(decisions): Extension<Arc<dyn MatchDecisions>>,
    SignedIn(auth): SignedIn,
    ClientAddress(client): ClientAddress,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    decide(
        &state,
        decisions.as_ref(),
        &auth.principal,
        client,
        &id,
        Decision::Link,
    )
    .await
}

/// `POST /admin/match-reviews/{id}/reject`: different people; both records stay.
pub async fn reject_handler(
    State(state): State<AppState>,
    Extension(decisions): Extension<Arc<dyn MatchDecisions>>,
    SignedIn(auth): SignedIn,
    ClientAddress(client): ClientAddress,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    decide(
        &state,
        decisions.as_ref(),
        &auth.principal,
        client,
        &id,
        Decision::Reject,
    )
    .await
}

/// `POST /admin/merges/{id}/unmerge`: undoes a merge (a linked item or an HL7 A40).
pub async fn unmerge_handler(
    State(state): State<AppState>,
    Extension(decisions): Extension<Arc<dyn MatchDecisions>>,
    SignedIn(auth): SignedIn,
    ClientAddress(client): ClientAddress,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    decide(
        &state,
        decisions.as_ref(),
        &auth.principal,
        client,
        &id,
        Decision::Unmerge,
    )
    .await
}
