//! `POST [base]/[type]`: create, and conditional create with `If-None-Exist`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::body::FhirBody;
use super::context::Ctx;
use super::interactions::{self, Written};
use super::render::write_response;
use crate::AppState;
use crate::access::Access;
use crate::audit::commit_audited;
use crate::error::ApiError;
use carerecord_store::AuditAction;

pub async fn handler(
    State(state): State<AppState>,
    access: Access,
    Path(type_name): Path<String>,
    ctx: Ctx,
    FhirBody(mut body): FhirBody,
) -> Result<Response, ApiError> {
    let rt = super::resource_type(&type_name)?;
    if crate::residency::guarded(&access, rt) {
        // A care home's stay grants its staff the person's record: its own rules.
        let (written, note) =
            crate::residency::fhir_create(state.store.as_ref(), &access, body, &ctx.base).await?;
        return Ok(note.attach(respond(&ctx, written)?));
    }
    access.check_write()?;
    access.stamp_source(&mut body);
    let mut tx = state.store.begin().await?;
    let written = interactions::create(
        tx.as_mut(),
        rt,
        body,
        ctx.header("if-none-exist"),
        &ctx.base,
        None,
    )
    .await?;
    let note = commit_audited(tx, &access, AuditAction::Create, &written).await?;
    Ok(note.attach(respond(&ctx, written)?))
}

fn respond(ctx: &Ctx, written: Written) -> Result<Response, ApiError> {
    match written {
        Written::Created(r) => write_response(ctx, StatusCode::CREATED, &r, true),
        Written::Existing(r) => write_response(ctx, StatusCode::OK, &r, true),
        Written::Updated(_) | Written::Deleted(_) => {
            Err(ApiError::Internal("create returned another outcome".into()))
        }
    }
}
