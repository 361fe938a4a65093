//! Turning stored resources into responses: headers, views, `Prefer: return`.

use axum::http::header::{CONTENT_TYPE, ETAG, LAST_MODIFIED, LOCATION};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use carerecord_fhir::view::View;
use carerecord_fhir::{Issue, IssueCode, operation_outcome};
use carerecord_store::StoredResource;
use serde_json::Value;

use super::FHIR_JSON;
use super::context::{Ctx, PreferReturn};
use crate::error::ApiError;

/// `Wed, 25 Nov 2026 11:45:00 GMT` for `Last-Modified`.
pub fn http_date(micros: i64) -> String {
    let fmt = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::OffsetDateTime::from_unix_timestamp(micros.div_euclid(1_000_000))
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_default()
}

/// The `self` and `next` links of a paged Bundle at `path`: the request's parameters (less
/// `_cursor` and formatting ones), and for `next` the cursor of the following page.
pub fn paging_links(
    path: &str,
    query: &[(String, String)],
    next_cursor: Option<&str>,
) -> Vec<Value> {
    let kept: Vec<(String, String)> = query
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "_cursor" | "_format" | "_pretty"))
        .cloned()
        .collect();
    let url = |q: &[(String, String)]| {
        format!(
            "{path}?{}",
            serde_urlencoded::to_string(q).unwrap_or_default()
        )
    };
    let mut links = vec![serde_json::json!({"relation": "self", "url": url(&kept)})];
    if let Some(c) = next_cursor {
        let mut next = kept.clone();
        next.push(("_cursor".into(), c.to_owned()));
        links.push(serde_json::json!({"relation": "next", "url": url(&next)}));
    }
    links
}

/// The resource's JSON text as the client asked for it (view applied, pretty or compact).
/// The stored text is sent untouched when nothing changes it.
pub fn resource_text(body: &str, view: &View, pretty: bool) -> Result<String, ApiError> {
    if view.is_full() && !pretty {
        return Ok(body.to_owned());
    }
    let mut v: Value =
        serde_json::from_str(body).map_err(|e| ApiError::Internal(format!("stored JSON: {e}")))?;
    view.apply(&mut v);
    json_text(&v, pretty)
}

pub fn json_text(v: &Value, pretty: bool) -> Result<String, ApiError> {
    if pretty {
        serde_json::to_string_pretty(v).map_err(|e| ApiError::Internal(e.to_string()))
    } else {
        Ok(v.to_string())
    }
}

pub fn json_response(status: StatusCode, text: String) -> Response {
    let mut resp = (status, text).into_response();
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    resp
}

pub fn version_headers(resp: &mut Response, r: &StoredResource) {
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&r.version_id.etag()) {
        h.insert(ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&http_date(r.last_updated)) {
        h.insert(LAST_MODIFIED, v);
    }
}

pub fn location(base: &str, r: &StoredResource) -> String {
    format!(
        "{base}/{}/{}/_history/{}",
        r.resource_type, r.id, r.version_id
    )
}

/// A read's response: 200 with the resource, ETag and Last-Modified.
pub fn read_response(ctx: &Ctx, r: &StoredResource) -> Result<Response, ApiError> {
    let text = resource_text(&r.body, &ctx.view, ctx.pretty)?;
    let mut resp = json_response(StatusCode::OK, text);
    version_headers(&mut resp, r);
    Ok(resp)
}

/// A write's response, honouring `Prefer: return`.
pub fn write_response(
    ctx: &Ctx,
    status: StatusCode,
    r: &StoredResource,
    with_location: bool,
) -> Result<Response, ApiError> {
    let mut resp = match ctx.prefer_return {
        PreferReturn::Minimal => {
            let mut resp = status.into_response();
            resp.headers_mut().remove(CONTENT_TYPE);
            resp
        }
        PreferReturn::Representation => {
            json_response(status, resource_text(&r.body, &View::Full, ctx.pretty)?)
        }
        PreferReturn::OperationOutcome => {
            let what = match status {
                StatusCode::CREATED => "created",
                _ => "updated",
            };
            let oo = operation_outcome(&[Issue::information(
                IssueCode::Informational,
                format!(
                    "{} {} {what} as version {}",
                    r.resource_type, r.id, r.version_id
                ),
            )]);
            json_response(status, json_text(&oo, ctx.pretty)?)
        }
    };
    version_headers(&mut resp, r);
    if with_location && let Ok(v) = HeaderValue::from_str(&location(&ctx.base, r)) {
        resp.headers_mut().insert(LOCATION, v);
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_use_the_imf_fixdate_form() {
        // 2025-11-25T11:45:00Z
        assert_eq!(
            http_date(1_764_071_100_000_000),
            "Tue, 25 Nov 2025 11:45:00 GMT"
        );
    }
}
