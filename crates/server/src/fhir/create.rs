//! `POST [base]/[type]`: create, and conditional create with `If-None-Exist`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use carerecord_access::scope::Interaction;
use carerecord_fhir::ResourceType;

use super::body::FhirBody;
use super::context::Ctx;
use super::interactions::{self, Written};
use super::render::write_response;
use crate::AppState;
use crate::access::Access;
use crate::audit::{ClientAddress, commit_audited};
use crate::error::ApiError;
use carerecord_store::AuditAction;

pub async fn handler(
    State(state): State<AppState>,
    access: Access,
    Path(type_name): Path<String>,
    ctx: Ctx,
    ClientAddress(client_address): ClientAddress,
    FhirBody(mut body): FhirBody,
) -> Result<Response, ApiError> {
    let rt = super::resource_type(&type_name)?;
    // A document is filed into the record, not kept as a Bundle nobody reads.
    if rt == ResourceType::Bundle && super::document::is_document(&body) {
        return super::document::file(&state, access, &ctx, client_address, &body).await;
    }
    if crate::residency::guarded(&access, rt) {
        residency_scopes(&access, rt, Interaction::Create)?;
        // A care home's stay grants its staff the person's record: its own rules.
        let (written, note) =
            crate::residency::fhir_create(state.store.as_ref(), &access, body, &ctx.base).await?;
        return Ok(note.attach(respond(&ctx, written)?));
    }
    access.check_write()?;
    access.stamp_source(&mut body);
    let scopes = access.narrow_write(rt, Interaction::Create)?;
    let mut tx = state.store.begin().await?;
    // A source system's Patient is the person it names: matched, not created twice.
    if rt == ResourceType::Patient
        && let Some(matcher) = super::people::matcher_for(&state, &access)
    {
        let (written, matched) =
            super::people::resolve(tx.as_mut(), matcher.as_ref(), &access, &body).await?;
        if let (Some(n), Written::Created(r) | Written::Existing(r)) = (&scopes, &written) {
            n.check(r)?;
        }
        let note = commit_audited(tx, &access, AuditAction::Create, &written).await?;
        return Ok(note.attach(super::people::respond(&ctx, &written, &matched)?));
    }
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

/// A token with scopes records a stay only when its scopes allow the interaction on
/// `EpisodeOfCare` without a patient or category restriction: the residency operation finds the
/// person itself and commits with its audit entry, so there is no later point to check the
/// written stay against a narrower grant.
pub(super) fn residency_scopes(
    access: &crate::access::Access,
    rt: carerecord_fhir::ResourceType,
    i: Interaction,
) -> Result<(), ApiError> {
    match access.narrow_write(rt, i)? {
        Some(n) if n.checks_resources() => Err(ApiError::ScopeDenied(
            "Recording a move in or out needs EpisodeOfCare scopes without a patient or \
             category restriction."
                .to_owned(),
        )),
        _ => Ok(()),
    }
}
