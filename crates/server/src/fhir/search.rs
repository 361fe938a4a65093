//! `GET [base]/[type]?…` and `POST [base]/[type]/_search`: a searchset Bundle, keyset-paged.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::Response;
use carerecord_access::scope::Interaction;
use carerecord_fhir::view::View;
use carerecord_fhir::{IssueCode, ResourceType, operation_outcome};
use carerecord_search::query::{Handling, Summary, Total, parse};
use carerecord_store::{StoredResource, format_instant, now_micros};

use super::body::read_limited;
use super::context::{Ctx, parse_query};
use super::render::{json_response, paging_links, resource_text};
use crate::AppState;
use crate::access::{Access, withheld_issue};
use crate::audit::AuditNote;
use crate::error::ApiError;
use carerecord_store::AuditAction;

pub async fn get_handler(
    State(state): State<AppState>,
    Path(type_name): Path<String>,
    access: Access,
    ctx: Ctx,
) -> Result<Response, ApiError> {
    let rt = super::resource_type(&type_name)?;
    let (text, note) = searchset(
        &state,
        &access,
        rt,
        &ctx.query,
        &ctx.base,
        ctx.handling,
        ctx.pretty,
    )
    .await?;
    Ok(note.attach(json_response(StatusCode::OK, text)))
}

/// `POST _search`: parameters in an `application/x-www-form-urlencoded` body, plus any in the URL.
pub async fn post_handler(
    State(state): State<AppState>,
    Path(type_name): Path<String>,
    access: Access,
    ctx: Ctx,
    req: axum::extract::Request<Body>,
) -> Result<Response, ApiError> {
    let rt = super::resource_type(&type_name)?;
    let ct = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/x-www-form-urlencoded")
        .to_owned();
    if !ct.starts_with("application/x-www-form-urlencoded") {
        return Err(ApiError::UnsupportedMediaType(
            "POST _search takes an application/x-www-form-urlencoded body".into(),
        ));
    }
    let bytes = read_limited(req.into_body(), state.settings.max_body_bytes).await?;
    let body = std::str::from_utf8(&bytes).map_err(|_| {
        ApiError::bad_request(IssueCode::Invalid, "the search body is not UTF-8 text")
    })?;
    let mut pairs = ctx.query.clone();
    pairs.extend(parse_query(Some(body))?);
    let (text, note) = searchset(
        &state,
        &access,
        rt,
        &pairs,
        &ctx.base,
        ctx.handling,
        ctx.pretty,
    )
    .await?;
    Ok(note.attach(json_response(StatusCode::OK, text)))
}

/// Runs a search and writes its searchset Bundle as JSON text, with the audit note of what it
/// returned.
pub async fn searchset(
    state: &AppState,
    access: &Access,
    rt: ResourceType,
    pairs: &[(String, String)],
    base: &str,
    handling: Handling,
    pretty: bool,
) -> Result<(String, AuditNote), ApiError> {
    let n = access.narrow(rt, Interaction::Search)?;
    let vis = n.vis();
    // The scopes' category restriction is one more criterion of the query, so counts and
    // pages are right; the links keep the client's own parameters.
    let mut narrowed_pairs = pairs.to_vec();
    n.restrict(&mut narrowed_pairs);
    let mut q = parse(rt, &narrowed_pairs, handling, base).map_err(ApiError::BadRequest)?;
    let settings = &state.settings;
    let mut page_size = q
        .count
        .unwrap_or(settings.default_page_size)
        .min(settings.max_page_size);
    if q.summary == Some(Summary::Count) {
        page_size = 0;
        q.total = Total::Accurate;
    }
    // Counting every page again is wasted work: the total is reported on the first page.
    if q.cursor.is_some() && q.total != Total::Accurate {
        q.total = Total::None;
    }
    let mut outcome = state.store.search(&q, page_size, vis).await?;
    // Included resources of a category-restricted type are checked one by one (includes are
    // not paged, so nothing is lost from a page).
    outcome.included.retain(|r| n.keeps(r));
    let returned: Vec<StoredResource> = outcome
        .matches
        .iter()
        .chain(&outcome.included)
        .cloned()
        .collect();
    let note = AuditNote::of(AuditAction::Search, &returned);
    let view = match (q.summary, &q.elements) {
        (Some(Summary::True), _) => View::Summary,
        (Some(Summary::Text), _) => View::Text,
        (Some(Summary::Data), _) => View::Data,
        (_, Some(names)) => View::Elements(names.clone()),
        _ => View::Full,
    };

    let links: Vec<String> = paging_links(
        &format!("{base}/{rt}"),
        pairs,
        outcome.next_cursor.as_deref(),
    )
    .iter()
    .map(serde_json::Value::to_string)
    .collect();

    let mut entries = Vec::with_capacity(outcome.matches.len() + outcome.included.len() + 1);
    for r in outcome.matches {
        entries.push(entry(base, &access.shown(r), "match", &view)?);
    }
    for r in outcome.included {
        entries.push(entry(base, &access.shown(r), "include", &view)?);
    }
    let mut issues = q.ignored.clone();
    issues.extend(withheld_issue(outcome.withheld));
    if !issues.is_empty() {
        entries.push(format!(
            r#"{{"resource":{},"search":{{"mode":"outcome"}}}}"#,
            operation_outcome(&issues)
        ));
    }
    let mut text = String::with_capacity(entries.iter().map(String::len).sum::<usize>() + 512);
    text.push_str(&format!(
        r#"{{"resourceType":"Bundle","id":"{}","meta":{{"lastUpdated":"{}"}},"type":"searchset""#,
        uuid::Uuid::now_v7(),
        format_instant(now_micros())
    ));
    if let Some(t) = outcome.total {
        text.push_str(&format!(r#","total":{t}"#));
    }
    text.push_str(&format!(r#","link":[{}]"#, links.join(",")));
    if !entries.is_empty() {
        text.push_str(&format!(r#","entry":[{}]"#, entries.join(",")));
    }
    text.push('}');
    if pretty {
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| ApiError::Internal(e.to_string()))?;
        text = super::render::json_text(&v, true)?;
    }
    Ok((text, note))
}

fn entry(base: &str, r: &StoredResource, mode: &str, view: &View) -> Result<String, ApiError> {
    let full_url = serde_json::Value::String(format!("{base}/{}/{}", r.resource_type, r.id));
    Ok(format!(
        r#"{{"fullUrl":{full_url},"resource":{},"search":{{"mode":"{mode}"}}}}"#,
        resource_text(&r.body, view, false)?
    ))
}
