//! Cross-site request forgery protection for every portal POST. The session cookie is
//! `SameSite=Strict`, so a browser does not send it with another site's request; this check
//! is the second lock: a state-changing request must come from the portal's own pages, as the
//! browser tells with `Sec-Fetch-Site` (or, from browsers that do not send it, `Origin`).
//! A request with neither is refused: every browser sends `Origin` with a POST.

use axum::extract::Request;
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::page::PageError;

/// Whether a request with these headers may change state.
pub fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        // `none`: the user typed the address or used a bookmark, which cannot carry a form.
        return matches!(site.to_str(), Ok("same-origin" | "none"));
    }
    let (Some(origin), Some(host)) = (
        headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        headers.get(header::HOST).and_then(|v| v.to_str().ok()),
    ) else {
        return false;
    };
    let origin_host = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    origin_host == Some(host)
}

/// The one POST that comes from another site by design: a care home system's signed context
/// launch. It carries no cookie and changes nothing on the strength of one; the signed,
/// audience-bound, single-use token in the form is its proof of origin.
const CROSS_SITE_POSTS: [&str; 1] = ["/launch"];

pub async fn layer(req: Request, next: Next) -> Response {
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe && !CROSS_SITE_POSTS.contains(&req.uri().path()) && !same_origin(req.headers()) {
        return PageError::Forbidden(
            "This form was sent from somewhere other than this service, so it was not accepted. \
             Go back to the page, reload it and try again."
                .into(),
        )
        .into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn only_requests_from_the_portal_itself_may_post() {
        assert!(same_origin(&headers(&[("sec-fetch-site", "same-origin")])));
        assert!(!same_origin(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(!same_origin(&headers(&[("sec-fetch-site", "same-site")])));
        assert!(same_origin(&headers(&[
            ("origin", "http://care.example:8080"),
            ("host", "care.example:8080")
        ])));
        assert!(!same_origin(&headers(&[
            ("origin", "http://evil.example"),
            ("host", "care.example:8080")
        ])));
        assert!(!same_origin(&headers(&[("host", "care.example:8080")])));
        assert!(!same_origin(&headers(&[
            ("origin", "null"),
            ("host", "care.example")
        ])));
    }
}
