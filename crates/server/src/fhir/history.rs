//! `_history` at instance, type and system level: newest first, keyset-paged, with `_since`
//! and `_count`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use carerecord_access::Visibility;
use carerecord_access::scope::Interaction;
use carerecord_fhir::{IssueCode, LogicalId, ResourceType};
use carerecord_search::datetime::DateRange;
use carerecord_store::{HistoryQuery, StoredResource, format_instant, now_micros};
use serde_json::json;

use super::context::Ctx;
use super::render::{json_response, json_text, paging_links};
use crate::AppState;
use crate::access::Access;
use crate::audit::AuditNote;
use crate::error::ApiError;
use carerecord_store::AuditAction;

pub async fn system(
    State(state): State<AppState>,
    access: Access,
    ctx: Ctx,
) -> Result<Response, ApiError> {
    let n = access.narrow_all(Interaction::HistoryType, None)?;
    run(&state, None, None, &access, n.vis(), &ctx).await
}

pub async fn type_level(
    State(state): State<AppState>,
    Path(type_name): Path<String>,
    access: Access,
    ctx: Ctx,
) -> Result<Response, ApiError> {
    let rt = super::resource_type(&type_name)?;
    let n = access.narrow(rt, Interaction::HistoryType)?;
    n.refuse_restricted()?;
    run(&state, Some(rt), None, &access, n.vis(), &ctx).await
}

pub async fn instance(
    State(state): State<AppState>,
    Path((type_name, id)): Path<(String, String)>,
    access: Access,
    ctx: Ctx,
) -> Result<Response, ApiError> {
    let rt = super::resource_type(&type_name)?;
    let id = super::logical_id(&id)?;
    let n = access.narrow(rt, Interaction::HistoryInstance)?;
    n.refuse_restricted()?;
    // A resource that never existed has no history: 404 rather than an empty Bundle (and
    // one the principal may not see is refused, as if it did not exist).
    match state.store.read(rt, &id, n.vis()).await {
        Ok(_) | Err(carerecord_store::StoreError::Gone(_)) => {}
        Err(e) => return Err(n.not_found_is_denied(e)),
    }
    run(&state, Some(rt), Some(&id), &access, n.vis(), &ctx).await
}

fn history_query(ctx: &Ctx, max: u32, default: u32) -> Result<HistoryQuery, ApiError> {
    let mut q = HistoryQuery {
        since: None,
        count: default,
        cursor: None,
    };
    for (k, v) in &ctx.query {
        match k.as_str() {
            "_since" => {
                let r = DateRange::parse(v).ok_or_else(|| {
                    ApiError::bad_request(
                        IssueCode::Value,
                        format!(
                            "_since must be an instant such as 2026-01-31T09:00:00Z, not '{v}'"
                        ),
                    )
                })?;
                q.since = Some(r.low);
            }
            "_count" => {
                q.count = v.parse::<u32>().map_err(|_| {
                    ApiError::bad_request(IssueCode::Value, "_count must be a whole number")
                })?;
            }
            "_cursor" => q.cursor = Some(v.clone()),
            _ => {}
        }
    }
    q.count = q.count.min(max);
    Ok(q)
}

async fn run(
    state: &AppState,
    rt: Option<ResourceType>,
    id: Option<&LogicalId>,
    access: &Access,
    vis: &Visibility,
    ctx: &Ctx,
) -> Result<Response, ApiError> {
    let q = history_query(
        ctx,
        state.settings.max_page_size,
        state.settings.default_page_size,
    )?;
    let page = state.store.history(rt, id, &q, vis).await?;
    let note = AuditNote::of(AuditAction::History, &page.items);
    let base = &ctx.base;
    let path = match (rt, id) {
        (Some(t), Some(i)) => format!("{base}/{t}/{i}/_history"),
        (Some(t), None) => format!("{base}/{t}/_history"),
        _ => format!("{base}/_history"),
    };
    let links = paging_links(&path, &ctx.query, page.next_cursor.as_deref());
    let entries = page
        .items
        .into_iter()
        .map(|r| access.shown(r))
        .map(|r| history_entry(base, &r))
        .collect::<Result<Vec<_>, _>>()?;
    let mut bundle = json!({
        "resourceType": "Bundle",
        "id": uuid::Uuid::now_v7().to_string(),
        "meta": {"lastUpdated": format_instant(now_micros())},
        "type": "history",
        "link": links,
        "entry": entries,
    });
    if let Some(t) = page.total {
        bundle["total"] = json!(t);
    }
    Ok(note.attach(json_response(
        StatusCode::OK,
        json_text(&bundle, ctx.pretty)?,
    )))
}

fn history_entry(base: &str, r: &StoredResource) -> Result<serde_json::Value, ApiError> {
    let (method, status) = if r.deleted {
        ("DELETE", "204")
    } else if r.version_id.get() == 1 {
        ("POST", "201")
    } else {
        ("PUT", "200")
    };
    let url = if method == "POST" {
        r.resource_type.as_str().to_owned()
    } else {
        format!("{}/{}", r.resource_type, r.id)
    };
    let mut e = json!({
        "fullUrl": format!("{base}/{}/{}", r.resource_type, r.id),
        "request": {"method": method, "url": url},
        "response": {
            "status": status,
            "etag": r.version_id.etag(),
            "lastModified": format_instant(r.last_updated),
        },
    });
    if !r.deleted {
        let body: serde_json::Value = serde_json::from_str(&r.body)
            .map_err(|e| ApiError::Internal(format!("stored JSON: {e}")))?;
        e["resource"] = body;
    }
    Ok(e)
}
