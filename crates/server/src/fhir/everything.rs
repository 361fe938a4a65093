//! `GET [base]/Patient/[id]/$everything`: the patient's compartment, paged, with `_since`,
//! `_type` and `_count`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use carerecord_access::scope::Interaction;
use carerecord_fhir::{IssueCode, ResourceType};
use carerecord_search::datetime::DateRange;
use carerecord_store::{format_instant, now_micros};
use serde_json::json;

use super::context::Ctx;
use super::render::{json_response, json_text, paging_links};
use crate::AppState;
use crate::access::{Access, withheld_issue};
use crate::audit::AuditNote;
use crate::error::ApiError;
use carerecord_store::AuditAction;

pub async fn handler(
    State(state): State<AppState>,
    Path(id): Path<String>,
    access: Access,
    ctx: Ctx,
) -> Result<Response, ApiError> {
    let id = super::logical_id(&id)?;
    let n = access.narrow(ResourceType::Patient, Interaction::Read)?;
    // The patient must exist and be visible (a deleted one answers 410); one that is not
    // visible is refused the same way whether or not it exists.
    state
        .store
        .read(ResourceType::Patient, &id, n.vis())
        .await
        .map_err(|e| n.not_found_is_denied(e))?;
    // The compartment, as a search in the context that let the Patient be read: only the
    // types the scopes permit searching without a category restriction.
    let all = access.narrow_all(Interaction::Search, access.context_of(&n))?;
    let vis = all.vis();
    let mut since = None;
    let mut types = Vec::new();
    let mut count = state.settings.default_page_size;
    let mut cursor = None;
    for (k, v) in &ctx.query {
        match k.as_str() {
            "_since" => {
                since = Some(
                    DateRange::parse(v)
                        .ok_or_else(|| {
                            ApiError::bad_request(IssueCode::Value, "_since must be an instant")
                        })?
                        .low,
                );
            }
            "_type" => {
                for t in v.split(',') {
                    types.push(t.trim().parse::<ResourceType>().map_err(|_| {
                        ApiError::bad_request(
                            IssueCode::Value,
                            format!("_type names an unsupported resource type '{t}'"),
                        )
                    })?);
                }
            }
            "_count" => {
                count = v.parse::<u32>().map_err(|_| {
                    ApiError::bad_request(IssueCode::Value, "_count must be a whole number")
                })?;
            }
            "_cursor" => cursor = Some(v.clone()),
            _ => {}
        }
    }
    let count = count.clamp(1, state.settings.max_page_size);
    let page = state
        .store
        .everything(&id, since, &types, count, cursor.as_deref(), vis)
        .await?;
    let base = &ctx.base;
    let path = format!("{base}/Patient/{id}/$everything");
    let links = paging_links(&path, &ctx.query, page.next_cursor.as_deref());
    let note = AuditNote::of(AuditAction::Everything, &page.items);
    let mut entries = page
        .items
        .into_iter()
        .map(|r| access.shown(r))
        .map(|r| {
            let body: serde_json::Value = serde_json::from_str(&r.body)
                .map_err(|e| ApiError::Internal(format!("stored JSON: {e}")))?;
            Ok(json!({
                "fullUrl": format!("{base}/{}/{}", r.resource_type, r.id),
                "resource": body,
                "search": {"mode": "match"},
            }))
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    if let Some(issue) = withheld_issue(page.withheld) {
        entries.push(json!({
            "resource": carerecord_fhir::operation_outcome(&[issue]),
            "search": {"mode": "outcome"},
        }));
    }
    let bundle = json!({
        "resourceType": "Bundle",
        "id": uuid::Uuid::now_v7().to_string(),
        "meta": {"lastUpdated": format_instant(now_micros())},
        "type": "searchset",
        "link": links,
        "entry": entries,
    });
    Ok(note.attach(json_response(
        StatusCode::OK,
        json_text(&bundle, ctx.pretty)?,
    )))
}
