//! `PUT [base]/[type]/[id]` (update, with `If-Match`) and `PUT [base]/[type]?[search]`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use carerecord_access::scope::Interaction;
use carerecord_fhir::IssueCode;

use super::body::FhirBody;
use super::context::Ctx;
use super::interactions::{self, Written};
use super::render::write_response;
use crate::AppState;
use crate::access::Access;
use crate::audit::commit_audited;
use crate::error::ApiError;
use carerecord_store::AuditAction;

fn respond(ctx: &Ctx, written: Written) -> Result<Response, ApiError> {
    match written {
        Written::Created(r) => write_response(ctx, StatusCode::CREATED, &r, true),
        Written::Updated(r) | Written::Existing(r) => {
            write_response(ctx, StatusCode::OK, &r, false)
        }
        Written::Deleted(_) => Err(ApiError::Internal("update returned a deletion".into())),
    }
}

pub async fn handler(
    State(state): State<AppState>,
    access: Access,
    Path((type_name, id)): Path<(String, String)>,
    ctx: Ctx,
    FhirBody(mut body): FhirBody,
) -> Result<Response, ApiError> {
    let rt = super::resource_type(&type_name)?;
    let id = super::logical_id(&id)?;
    let if_match = interactions::if_match(ctx.header("if-match"))?;
    if crate::residency::guarded(&access, rt) {
        super::create::residency_scopes(&access, rt, Interaction::Update)?;
        let (written, note) =
            crate::residency::fhir_update(state.store.as_ref(), &access, &id, body, if_match)
                .await?;
        return Ok(note.attach(respond(&ctx, written)?));
    }
    let scopes = access.narrow_write(rt, Interaction::Update)?;
    access.check_write()?;
    access.stamp_source(&mut body);
    let mut tx = state.store.begin().await?;
    if let Some(n) = &scopes {
        // The version replaced must be within the scopes too, not only the new one.
        if n.checks_resources()
            && let Some(old) = tx.current(rt, &id).await?
            && !old.deleted
        {
            n.check(&old)?;
        }
    }
    let written = interactions::update(tx.as_mut(), rt, &id, body, if_match).await?;
    if let (Some(n), Written::Created(r) | Written::Updated(r)) = (&scopes, &written) {
        n.check(r)?;
    }
    let note = commit_audited(tx, &access, AuditAction::Update, &written).await?;
    Ok(note.attach(respond(&ctx, written)?))
}

pub async fn conditional_handler(
    State(state): State<AppState>,
    access: Access,
    Path(type_name): Path<String>,
    ctx: Ctx,
    FhirBody(mut body): FhirBody,
) -> Result<Response, ApiError> {
    access.check_write()?;
    access.stamp_source(&mut body);
    let rt = super::resource_type(&type_name)?;
    crate::residency::refuse_indirect(&access, rt)?;
    let condition = serde_urlencoded::to_string(&ctx.query).unwrap_or_default();
    if ctx.query.is_empty() {
        return Err(ApiError::bad_request(
            IssueCode::Invalid,
            "PUT needs an id in the URL or search parameters for a conditional update",
        ));
    }
    if let Some(n) = access.narrow_write(rt, Interaction::Update)? {
        n.refuse_conditional()?;
    }
    let mut tx = state.store.begin().await?;
    let written =
        interactions::conditional_update(tx.as_mut(), rt, &condition, body, &ctx.base).await?;
    let note = commit_audited(tx, &access, AuditAction::Update, &written).await?;
    Ok(note.attach(respond(&ctx, written)?))
}
