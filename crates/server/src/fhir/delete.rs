//! `DELETE [base]/[type]/[id]` and conditional delete `DELETE [base]/[type]?[search]`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use carerecord_access::scope::Interaction;
use carerecord_fhir::IssueCode;

use super::context::Ctx;
use super::interactions::{self, Written};
use super::render::version_headers;
use crate::AppState;
use crate::access::Access;
use crate::audit::commit_audited;
use crate::error::ApiError;
use carerecord_store::AuditAction;

fn respond(written: Written) -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    if let Written::Deleted(Some(r)) = &written {
        version_headers(&mut resp, r);
    }
    resp
}

pub async fn handler(
    State(state): State<AppState>,
    access: Access,
    Path((type_name, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    access.check_write()?;
    let rt = super::resource_type(&type_name)?;
    crate::residency::refuse_indirect(&access, rt)?;
    let id = super::logical_id(&id)?;
    let scopes = access.narrow_write(rt, Interaction::Delete)?;
    let mut tx = state.store.begin().await?;
    if let Some(n) = &scopes
        && n.checks_resources()
        && let Some(old) = tx.current(rt, &id).await?
        && !old.deleted
    {
        n.check(&old)?;
    }
    let written = interactions::delete(tx.as_mut(), rt, &id).await?;
    let note = commit_audited(tx, &access, AuditAction::Delete, &written).await?;
    Ok(note.attach(respond(written)))
}

pub async fn conditional_handler(
    State(state): State<AppState>,
    access: Access,
    Path(type_name): Path<String>,
    ctx: Ctx,
) -> Result<Response, ApiError> {
    access.check_write()?;
    let rt = super::resource_type(&type_name)?;
    crate::residency::refuse_indirect(&access, rt)?;
    if ctx.query.is_empty() {
        return Err(ApiError::bad_request(
            IssueCode::Invalid,
            "DELETE needs an id in the URL or search parameters for a conditional delete",
        ));
    }
    if let Some(n) = access.narrow_write(rt, Interaction::Delete)? {
        n.refuse_conditional()?;
    }
    let condition = serde_urlencoded::to_string(&ctx.query).unwrap_or_default();
    let mut tx = state.store.begin().await?;
    let written = interactions::conditional_delete(tx.as_mut(), rt, &condition, &ctx.base).await?;
    let note = commit_audited(tx, &access, AuditAction::Delete, &written).await?;
    Ok(note.attach(respond(written)))
}
