//! `GET [base]/[type]/[id]` (read), `…/_history/[vid]` (vread), and the instance-level
//! sub-paths `…/_history` and `Patient/[id]/$everything`.

use axum::extract::{Path, State};
use axum::response::Response;
use carerecord_access::scope::Interaction;
use carerecord_fhir::{IssueCode, VersionId};

use super::context::Ctx;
use super::render::read_response;
use crate::AppState;
use crate::access::Access;
use crate::audit::AuditNote;
use crate::error::ApiError;
use carerecord_store::AuditAction;

pub async fn handler(
    State(state): State<AppState>,
    Path((type_name, id)): Path<(String, String)>,
    access: Access,
    ctx: Ctx,
) -> Result<Response, ApiError> {
    let rt = super::resource_type(&type_name)?;
    let id = super::logical_id(&id)?;
    let n = access.narrow(rt, Interaction::Read)?;
    let r = state
        .store
        .read(rt, &id, n.vis())
        .await
        .map_err(|e| n.not_found_is_denied(e))?;
    n.check(&r)?;
    let note = AuditNote::of(AuditAction::Read, std::slice::from_ref(&r));
    Ok(note.attach(read_response(&ctx, &access.shown(r))?))
}

pub async fn vread_handler(
    State(state): State<AppState>,
    Path((type_name, id, vid)): Path<(String, String, String)>,
    access: Access,
    ctx: Ctx,
) -> Result<Response, ApiError> {
    let rt = super::resource_type(&type_name)?;
    let id = super::logical_id(&id)?;
    let v = VersionId::parse(&vid)
        .map_err(|e| ApiError::bad_request(IssueCode::Invalid, e.to_string()))?;
    let n = access.narrow(rt, Interaction::Vread)?;
    let r = state
        .store
        .vread(rt, &id, v, n.vis())
        .await
        .map_err(|e| n.not_found_is_denied(e))?;
    n.check(&r)?;
    let note = AuditNote::of(AuditAction::Vread, std::slice::from_ref(&r));
    Ok(note.attach(read_response(&ctx, &access.shown(r))?))
}

pub async fn sub_handler(
    state: State<AppState>,
    Path((type_name, id, sub)): Path<(String, String, String)>,
    access: Access,
    ctx: Ctx,
) -> Result<Response, ApiError> {
    match sub.as_str() {
        "_history" => super::history::instance(state, Path((type_name, id)), access, ctx).await,
        "$everything" if type_name == "Patient" => {
            super::everything::handler(state, Path(id), access, ctx).await
        }
        other => Err(ApiError::NotFound(format!(
            "'{other}' is not an operation or interaction supported on {type_name}"
        ))),
    }
}
