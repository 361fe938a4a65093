//! `POST [base]/Patient/[id]/$break-glass`: emergency access to someone outside the
//! organisation's care. The user gives a coded reason and their own words; the grant lasts a
//! limited time (configurable, 4 hours by default), never overrides an objection (the policy's
//! visibility keeps objections out regardless of grants), and is written to the audit trail
//! for the privacy officers of the user's organisation to review.
//!
//! The answer never says whether the person exists: a grant for an unknown id shows nothing.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use carerecord_access::policy;
use carerecord_fhir::IssueCode;
use carerecord_store::{BreakGlassGrant, format_instant};
use serde_json::{Value, json};

use super::body::FhirBody;
use super::context::Ctx;
use super::render::{json_response, json_text};
use crate::AppState;
use crate::access::Access;
use crate::audit::AuditNote;
use crate::error::ApiError;
use carerecord_store::{AuditAction, AuditOutcome, BreakGlass};

/// The coded reasons a user may give (reference.md §2).
pub const REASONS: [(&str, &str); 3] = [
    ("emergency", "Emergency care"),
    (
        "lacks-capacity",
        "The person lacks capacity and needs care now",
    ),
    ("other", "Other reason, explained in the text"),
];

/// Reads `reason` (a code) and `text` from a FHIR `Parameters` body.
fn reason(body: &Value) -> Result<(String, String), ApiError> {
    if body.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
        return Err(ApiError::bad_request(
            IssueCode::Invalid,
            "$break-glass takes a Parameters resource with 'reason' and 'text'",
        ));
    }
    let params = body
        .get("parameter")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let find = |name: &str| {
        params
            .iter()
            .find(|p| p.get("name").and_then(Value::as_str) == Some(name))
            .cloned()
    };
    let code = find("reason").and_then(|p| {
        p.get("valueCode")
            .or_else(|| p.pointer("/valueCoding/code"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    let text = find("text").and_then(|p| {
        p.get("valueString")
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    check_reason(code.as_deref(), text.as_deref())
}

/// Checks a break-glass reason (a code from [`REASONS`] and the user's own words), wherever
/// it came from (the API's Parameters, the portal's form). Returns the code and trimmed text.
pub fn check_reason(code: Option<&str>, text: Option<&str>) -> Result<(String, String), ApiError> {
    let bad = |m: &str| ApiError::bad_request(IssueCode::Required, m);
    let code = code
        .filter(|c| !c.is_empty())
        .ok_or_else(|| bad("give a reason: emergency, lacks-capacity or other"))?;
    if !REASONS.iter().any(|(c, _)| *c == code) {
        return Err(ApiError::bad_request(
            IssueCode::Value,
            "the reason must be emergency, lacks-capacity or other",
        ));
    }
    let text = text
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| bad("say in your own words why you need emergency access"))?;
    if text.chars().count() > 2_000 {
        return Err(ApiError::bad_request(
            IssueCode::TooLong,
            "keep the reason under 2,000 characters",
        ));
    }
    Ok((code.to_owned(), text.to_owned()))
}

/// Grants `access`'s principal emergency access to `patient_id` for the configured time, with
/// its audit entry (the alert in the privacy officers' review queue) in the same transaction.
/// `channel` says where the request came from (the API or the portal). The reason must have
/// passed [`check_reason`].
pub async fn grant(
    state: &AppState,
    access: &Access,
    patient_id: &carerecord_fhir::LogicalId,
    reason_code: String,
    reason_text: String,
    channel: carerecord_store::Channel,
    client: Option<String>,
) -> Result<(BreakGlassGrant, AuditNote), ApiError> {
    policy::may_break_glass(&access.principal, access.now).map_err(ApiError::Denied)?;
    // Emergency access is a person's decision, with a reason, not an app's.
    access.refuse_under_grant("Emergency access")?;
    let expires_at = access.now + state.settings.policy.break_glass_micros();
    let grant = BreakGlassGrant {
        grant_id: uuid::Uuid::now_v7().to_string(),
        principal_key: policy::principal_key(&access.principal),
        org_id: access.principal.organisation_id.clone(),
        patient_id: patient_id.as_str().to_owned(),
        reason_code,
        reason_text,
        granted_at: access.now,
        expires_at,
    };
    // The grant and its audit entry (the alert in the privacy officers' review queue, found
    // by `AuditEvent?subtype=break-glass&organization=…`) commit together.
    let note = AuditNote {
        action: Some(AuditAction::BreakGlass),
        patients: vec![patient_id.as_str().to_owned()],
        break_glass: Some(BreakGlass {
            code: grant.reason_code.clone(),
            text: grant.reason_text.clone(),
        }),
        recorded: true,
        ..AuditNote::default()
    };
    let mut record = crate::audit::record(
        &access.principal,
        AuditAction::BreakGlass,
        AuditOutcome::Allowed,
        "break-glass-granted",
        &note,
        client,
    );
    record.channel = channel;
    let mut tx = state.store.begin().await?;
    tx.put_break_glass(&grant).await?;
    tx.append_audit(vec![record]).await?;
    tx.commit().await?;
    Ok((grant, note))
}

pub async fn handler(
    State(state): State<AppState>,
    Path(id): Path<String>,
    access: Access,
    ctx: Ctx,
    FhirBody(body): FhirBody,
) -> Result<Response, ApiError> {
    let id = super::logical_id(&id)?;
    policy::may_break_glass(&access.principal, access.now).map_err(ApiError::Denied)?;
    access.refuse_under_grant("Emergency access")?;
    let (reason_code, reason_text) = reason(&body)?;
    let (grant, note) = grant(
        &state,
        &access,
        &id,
        reason_code,
        reason_text,
        carerecord_store::Channel::Api,
        None,
    )
    .await?;
    let expires_at = grant.expires_at;
    let out = json!({
        "resourceType": "Parameters",
        "parameter": [
            {"name": "grant", "valueString": grant.grant_id},
            {"name": "patient", "valueReference": {"reference": format!("Patient/{id}")}},
            {"name": "expires", "valueInstant": format_instant(expires_at)},
            {"name": "notice", "valueString": "Emergency access is recorded and will be reviewed by your organisation's privacy officer."}
        ]
    });
    Ok(note.attach(json_response(StatusCode::OK, json_text(&out, ctx.pretty)?)))
}
