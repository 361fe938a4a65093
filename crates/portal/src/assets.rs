//! The embedded assets (the NHS.UK design system's compiled CSS, JS and icons, and the
//! portal's own few files), served under `/assets/{version}/…`. The version is a hash of
//! their content, so a URL's bytes never change and browsers may keep them for a year.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/assets.rs"));
}

pub use embedded::VERSION;

/// The URL of an embedded asset.
pub fn url(path: &str) -> String {
    format!("/assets/{VERSION}/{path}")
}

/// The bytes and media type of an embedded asset.
pub fn get(path: &str) -> Option<(&'static str, &'static [u8])> {
    embedded::FILES
        .iter()
        .find(|(p, _, _)| *p == path)
        .map(|(_, m, b)| (*m, *b))
}

pub async fn handler(Path((version, path)): Path<(String, String)>) -> Response {
    // An old version's URL is not served: its bytes are no longer in this binary.
    let found = (version == VERSION).then(|| get(&path)).flatten();
    let Some((mime, bytes)) = found else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let mut resp = bytes.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_design_system_is_embedded_without_reaching_for_a_cdn() {
        let (mime, css) = get("nhsuk-frontend.min.css").unwrap();
        assert!(mime.starts_with("text/css"));
        let css = std::str::from_utf8(css).unwrap();
        assert!(css.contains(".nhsuk-header"), "the real stylesheet");
        assert!(!css.contains("://"), "no absolute URL left in the CSS");
        assert!(
            css.contains("url(images/"),
            "icons relative to the stylesheet"
        );
        assert!(get("nhsuk-frontend.min.js").is_some());
        assert!(get("images/favicon.ico").is_some());
        assert!(get("portal.css").is_some());
    }
}
