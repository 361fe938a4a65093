//! The privacy officers' break-glass review queue.
//!
//! Every emergency ("break-glass") grant raises an alert for the privacy officers of the
//! organisation whose staff member used it. They list the grants (`open`, `reviewed`, `all`) and
//! mark each reviewed once, with an outcome (appropriate, inappropriate, needs follow-up) and a
//! note. Only privacy officers of that organisation with current training may; nobody reviews
//! their own grant; another organisation's grant answers as if it did not exist.
//!
//! [`queue`] and [`review`] are the plain functions (the portal calls them with its own
//! channel); the handlers are their JSON API. Both write an audit entry: looking at the queue is
//! an access to who was looked at, and a review commits in one transaction with its entry.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use carerecord_access::{Denial, Principal, policy};
use carerecord_store::{
    AuditAction, AuditOutcome, BreakGlassRecord, BreakGlassReview, Channel, Page, ReviewOutcome,
    ReviewStatus, StoreError, format_instant, now_micros,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::audit::{AuditNote, ClientAddress, record};
use crate::auth::{SignedIn, internal, json_error, json_ok};

/// The most grants one queue request lists.
pub const MAX_QUEUE: u32 = 500;
/// The longest review note accepted, in characters.
pub const MAX_NOTE_CHARS: usize = 2_000;

/// Why a queue or review request was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// The policy refused (not a privacy officer, training lapsed, their own grant).
    #[error("denied: {}", .0.rule())]
    Denied(Denial),
    /// No such grant, or another organisation's.
    #[error("no such break-glass grant")]
    NotFound,
    /// Someone reviewed it first; reviews are not changed.
    #[error("the grant was already reviewed")]
    AlreadyReviewed,
    /// The request itself is wrong (e.g. a missing note).
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where a request came from, for its audit entries.
#[derive(Debug, Clone)]
pub struct Origin {
    pub channel: Channel,
    pub client_address: Option<String>,
}

async fn audit(
    state: &AppState,
    officer: &Principal,
    action: AuditAction,
    outcome: AuditOutcome,
    rule: &str,
    note: &AuditNote,
    origin: &Origin,
) -> Result<(), StoreError> {
    let mut r = record(
        officer,
        action,
        outcome,
        rule,
        note,
        origin.client_address.clone(),
    );
    r.channel = origin.channel;
    // Overseeing access is not care: no purpose of use.
    r.purpose_of_use = None;
    state.store.append_audit(vec![r]).await
}

/// The refusal, written to the trail before it is answered.
async fn refuse(
    state: &AppState,
    officer: &Principal,
    action: AuditAction,
    denial: Denial,
    note: AuditNote,
    origin: &Origin,
) -> ReviewError {
    refuse_as(
        state,
        officer,
        action,
        denial.rule(),
        note,
        origin,
        ReviewError::Denied(denial),
    )
    .await
}

/// A refusal by `rule` that answers `err`, written to the trail first.
async fn refuse_as(
    state: &AppState,
    officer: &Principal,
    action: AuditAction,
    rule: &str,
    note: AuditNote,
    origin: &Origin,
    err: ReviewError,
) -> ReviewError {
    match audit(
        state,
        officer,
        action,
        AuditOutcome::Denied,
        rule,
        &note,
        origin,
    )
    .await
    {
        Ok(()) => err,
        Err(e) => e.into(),
    }
}

/// The rule of a review of a grant that does not exist or is another organisation's. One rule
/// for both, and no person named: the officer's own organisation reads its staff's entries, and
/// the trail must not tell them what the 404 did not (that the grant exists, and whose it is).
/// The grant id is kept, so the programme can still tell the two apart.
pub const NO_SUCH_GRANT: &str = "deny-no-such-grant";
/// The rule of a second review of a grant: reviews are not changed.
pub const ALREADY_REVIEWED: &str = "deny-already-reviewed";

fn grant_ref(grant_id: &str) -> String {
    format!("break-glass/{grant_id}")
}

/// A page of the grants of `officer`'s organisation in `status`, newest first (at most
/// [`MAX_QUEUE`] to a page), after `cursor` (the previous page's `next_cursor`).
pub async fn queue(
    state: &AppState,
    officer: &Principal,
    status: ReviewStatus,
    limit: u32,
    cursor: Option<&str>,
    origin: &Origin,
) -> Result<Page<BreakGlassRecord>, ReviewError> {
    if let Err(d) = policy::may_review_break_glass(officer, now_micros()) {
        return Err(refuse(
            state,
            officer,
            AuditAction::Admin,
            d,
            AuditNote::default(),
            origin,
        )
        .await);
    }
    let page = state
        .store
        .break_glass_queue(
            &officer.organisation_id,
            status,
            limit.clamp(1, MAX_QUEUE),
            cursor,
        )
        .await
        .map_err(|e| match e {
            StoreError::InvalidCursor => {
                ReviewError::Invalid("the _cursor is not one this queue gave; start again".into())
            }
            e => e.into(),
        })?;
    let grants = &page.items;
    let mut note = AuditNote {
        action: Some(AuditAction::Admin),
        resources: grants
            .iter()
            .map(|g| grant_ref(&g.grant.grant_id))
            .collect(),
        patients: grants.iter().map(|g| g.grant.patient_id.clone()).collect(),
        ..AuditNote::default()
    };
    note.patients.sort();
    note.patients.dedup();
    audit(
        state,
        officer,
        AuditAction::Admin,
        AuditOutcome::Allowed,
        "break-glass-queue",
        &note,
        origin,
    )
    .await?;
    Ok(page)
}

/// Marks grant `grant_id` reviewed by `officer` with `outcome` and `note`; returns it reviewed.
/// A note is required unless the access was appropriate.
pub async fn review(
    state: &AppState,
    officer: &Principal,
    grant_id: &str,
    outcome: ReviewOutcome,
    note: &str,
    origin: &Origin,
) -> Result<BreakGlassRecord, ReviewError> {
    let now = now_micros();
    let target = |patient: Option<&str>| AuditNote {
        action: Some(AuditAction::BreakGlassReview),
        resources: vec![grant_ref(grant_id)],
        patients: patient.map(str::to_owned).into_iter().collect(),
        ..AuditNote::default()
    };
    if let Err(d) = policy::may_review_break_glass(officer, now) {
        return Err(refuse(
            state,
            officer,
            AuditAction::BreakGlassReview,
            d,
            target(None),
            origin,
        )
        .await);
    }
    let note = note.trim();
    if note.chars().count() > MAX_NOTE_CHARS {
        return Err(ReviewError::Invalid(format!(
            "keep the note under {MAX_NOTE_CHARS} characters"
        )));
    }
    if note.is_empty() && outcome != ReviewOutcome::Appropriate {
        return Err(ReviewError::Invalid(
            "say in a note what was inappropriate or what needs following up".into(),
        ));
    }
    let absent = || {
        refuse_as(
            state,
            officer,
            AuditAction::BreakGlassReview,
            NO_SUCH_GRANT,
            target(None),
            origin,
            ReviewError::NotFound,
        )
    };
    let Some(found) = state.store.break_glass_grant(grant_id).await? else {
        return Err(absent().await);
    };
    match policy::may_review_grant(
        officer,
        &found.grant.org_id,
        &found.grant.principal_key,
        now,
    ) {
        None => return Err(absent().await),
        Some(Err(d)) => {
            return Err(refuse(
                state,
                officer,
                AuditAction::BreakGlassReview,
                d,
                target(Some(&found.grant.patient_id)),
                origin,
            )
            .await);
        }
        Some(Ok(())) => {}
    }
    if found.review.is_some() {
        return Err(refuse_as(
            state,
            officer,
            AuditAction::BreakGlassReview,
            ALREADY_REVIEWED,
            target(Some(&found.grant.patient_id)),
            origin,
            ReviewError::AlreadyReviewed,
        )
        .await);
    }
    let review = BreakGlassReview {
        reviewer_key: policy::principal_key(officer),
        reviewed_at: now,
        outcome,
        note: note.to_owned(),
    };
    let audit_note = target(Some(&found.grant.patient_id));
    let mut entry = record(
        officer,
        AuditAction::BreakGlassReview,
        AuditOutcome::Allowed,
        "break-glass-reviewed",
        &audit_note,
        origin.client_address.clone(),
    );
    entry.channel = origin.channel;
    entry.purpose_of_use = None;
    // The outcome is searchable in the trail; the note stays with the grant.
    entry.query = Some(format!("outcome={}", outcome.as_str()));
    let mut tx = state.store.begin().await?;
    if !tx.review_break_glass(grant_id, &review).await? {
        // Another officer got there between the look-up and now.
        return Err(ReviewError::AlreadyReviewed);
    }
    tx.append_audit(vec![entry]).await?;
    tx.commit().await?;
    Ok(BreakGlassRecord {
        grant: found.grant,
        review: Some(review),
    })
}

/// A grant as the JSON API shows it.
pub fn grant_json(g: &BreakGlassRecord) -> Value {
    json!({
        "id": g.grant.grant_id,
        "status": if g.review.is_some() { "reviewed" } else { "open" },
        "patient": format!("Patient/{}", g.grant.patient_id),
        "organisation": g.grant.org_id,
        "granted_to": g.grant.principal_key,
        "reason": g.grant.reason_code,
        "reason_text": g.grant.reason_text,
        "granted_at": format_instant(g.grant.granted_at),
        "expires_at": format_instant(g.grant.expires_at),
        "review": g.review.as_ref().map(|r| json!({
            "reviewed_by": r.reviewer_key,
            "reviewed_at": format_instant(r.reviewed_at),
            "outcome": r.outcome.as_str(),
            "note": r.note,
        })),
    })
}

fn error_response(e: &ReviewError) -> Response {
    match e {
        ReviewError::Denied(d) => json_error(StatusCode::FORBIDDEN, d.rule(), &d.message()),
        ReviewError::NotFound => json_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "there is no break-glass grant with that id for your organisation",
        ),
        ReviewError::AlreadyReviewed => json_error(
            StatusCode::CONFLICT,
            "already_reviewed",
            "this emergency access has already been reviewed",
        ),
        ReviewError::Invalid(m) => json_error(StatusCode::BAD_REQUEST, "invalid_request", m),
        ReviewError::Store(StoreError::Busy) => json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "the store is busy; try again",
        ),
        ReviewError::Store(s) => internal(s),
    }
}

#[derive(Debug, Deserialize)]
pub struct QueueParams {
    /// `open` (the default), `reviewed` or `all`.
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default, rename = "_count")]
    pub count: Option<u32>,
    /// Where the previous page stopped (from its `next` link).
    #[serde(default, rename = "_cursor")]
    pub cursor: Option<String>,
}

/// `GET /admin/break-glass?status=open|reviewed|all&_count=N[&_cursor=…]`: a page of grants and,
/// when there are more, the `next` page's link (keyset-paged, as FHIR searches are).
pub async fn queue_handler(
    State(state): State<AppState>,
    SignedIn(auth): SignedIn,
    ClientAddress(client): ClientAddress,
    params: Result<Query<QueueParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(params)) = params else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "status must be open, reviewed or all, and _count a whole number",
        );
    };
    let status = match params.status.as_deref() {
        None => ReviewStatus::Open,
        Some(s) => match ReviewStatus::parse(s) {
            Some(s) => s,
            None => {
                return json_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "status must be open, reviewed or all",
                );
            }
        },
    };
    let origin = Origin {
        channel: Channel::Api,
        client_address: client,
    };
    let limit = params.count.unwrap_or(100).clamp(1, MAX_QUEUE);
    match queue(
        &state,
        &auth.principal,
        status,
        limit,
        params.cursor.as_deref(),
        &origin,
    )
    .await
    {
        Ok(page) => {
            let mut body = json!({"grants": page.items.iter().map(grant_json).collect::<Vec<_>>()});
            if let Some(c) = page.next_cursor {
                let status = params.status.as_deref().unwrap_or("open");
                let count = limit.to_string();
                let query = serde_urlencoded::to_string([
                    ("status", status),
                    ("_count", count.as_str()),
                    ("_cursor", c.as_str()),
                ])
                .unwrap_or_default();
                body["next"] = json!(format!("/admin/break-glass?{query}"));
            }
            json_ok(StatusCode::OK, body)
        }
        Err(e) => error_response(&e),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewBody {
    /// `appropriate`, `inappropriate` or `needs-follow-up`.
    pub outcome: String,
    #[serde(default)]
    pub note: String,
}

/// `POST /admin/break-glass/{id}/review` with `{"outcome", "note"}`.
pub async fn review_handler(
    State(state): State<AppState>,
    SignedIn(auth): SignedIn,
    ClientAddress(client): ClientAddress,
    Path(id): Path<String>,
    body: Result<Json<ReviewBody>, JsonRejection>,
) -> Response {
    let Ok(Json(body)) = body else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "send JSON: {\"outcome\": \"appropriate\" | \"inappropriate\" | \"needs-follow-up\", \"note\": \"…\"}",
        );
    };
    let Some(outcome) = ReviewOutcome::parse(&body.outcome) else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "outcome must be appropriate, inappropriate or needs-follow-up",
        );
    };
    let origin = Origin {
        channel: Channel::Api,
        client_address: client,
    };
    match review(&state, &auth.principal, &id, outcome, &body.note, &origin).await {
        Ok(g) => json_ok(StatusCode::OK, grant_json(&g)),
        Err(e) => error_response(&e),
    }
}
