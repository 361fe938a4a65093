//! `POST [base]/[type]`: create, and conditional create with `If-None-Exist`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use carerecord_access::scope::Interaction;

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
    access.check_write()?;
    access.stamp_source(&mut body);
    let rt = super::resource_type(&type_name)?;
    let scopes = access.narrow_write(rt, Interaction::Create)?;
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
    // What was written (or found) must be within the scopes: the patient in context, the
    // category. Refusing drops the transaction.
    if let (Some(n), Written::Created(r) | Written::Existing(r)) = (&scopes, &written) {
        n.check(r)?;
    }
    let note = commit_audited(tx, &access, AuditAction::Create, &written).await?;
    let resp = match written {
        Written::Created(r) => write_response(&ctx, StatusCode::CREATED, &r, true),
        Written::Existing(r) => write_response(&ctx, StatusCode::OK, &r, true),
        Written::Updated(_) | Written::Deleted(_) => {
            Err(ApiError::Internal("create returned another outcome".into()))
        }
    }?;
    Ok(note.attach(resp))
}
