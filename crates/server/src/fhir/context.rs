//! What every FHIR handler reads from the request besides its body: the base URL, the query
//! parameters, `Prefer`, `_format`/`_pretty`, `_summary`/`_elements`.

use axum::extract::FromRequestParts;
use axum::http::header::{ACCEPT, HOST};
use axum::http::request::Parts;
use carerecord_fhir::IssueCode;
use carerecord_fhir::view::View;
use carerecord_search::query::Handling;

use crate::AppState;
use crate::error::ApiError;

/// `Prefer: return=…`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PreferReturn {
    Minimal,
    #[default]
    Representation,
    OperationOutcome,
}

#[derive(Debug, Clone)]
pub struct Ctx {
    /// The FHIR base URL, without a trailing slash.
    pub base: String,
    /// Query parameters in order, decoded.
    pub query: Vec<(String, String)>,
    pub prefer_return: PreferReturn,
    pub handling: Handling,
    pub pretty: bool,
    /// `_summary` / `_elements` for reads (searches parse their own).
    pub view: View,
    pub headers: axum::http::HeaderMap,
}

impl Ctx {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub fn parse_query(raw: Option<&str>) -> Result<Vec<(String, String)>, ApiError> {
    match raw {
        None | Some("") => Ok(Vec::new()),
        Some(q) => serde_urlencoded::from_str::<Vec<(String, String)>>(q).map_err(|_| {
            ApiError::bad_request(
                IssueCode::Invalid,
                "the query string is not valid URL encoding",
            )
        }),
    }
}

fn is_json_format(f: &str) -> bool {
    let f = f.split(';').next().unwrap_or("").trim();
    matches!(
        f,
        "json" | "application/json" | "application/fhir+json" | "application/json+fhir"
    )
}

/// Reads `_summary` and `_elements` into a view for reads.
pub fn view_from(query: &[(String, String)]) -> Result<View, ApiError> {
    let mut view = View::Full;
    for (k, v) in query {
        match k.as_str() {
            "_summary" => {
                view = match v.as_str() {
                    "true" => View::Summary,
                    "text" => View::Text,
                    "data" => View::Data,
                    // `count` only means something to a search, which reads it itself.
                    "false" | "count" => View::Full,
                    other => {
                        return Err(ApiError::bad_request(
                            IssueCode::Value,
                            format!(
                                "_summary must be true, text, data, count or false, not '{other}'"
                            ),
                        ));
                    }
                }
            }
            "_elements" => {
                view = View::Elements(
                    v.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect(),
                );
            }
            _ => {}
        }
    }
    Ok(view)
}

impl FromRequestParts<AppState> for Ctx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let query = parse_query(parts.uri.query())?;
        let base = match &state.settings.public_base_url {
            Some(b) => b.trim_end_matches('/').to_owned(),
            None => {
                let host = parts
                    .headers
                    .get(HOST)
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or("localhost");
                format!("http://{host}/fhir")
            }
        };
        let mut pretty = false;
        for (k, v) in &query {
            match k.as_str() {
                "_format" if !is_json_format(v) => {
                    return Err(ApiError::NotAcceptable(format!(
                        "this server answers in JSON only; _format '{v}' is not supported"
                    )));
                }
                "_pretty" => pretty = v == "true",
                _ => {}
            }
        }
        if let Some(accept) = parts.headers.get(ACCEPT).and_then(|h| h.to_str().ok()) {
            let wants_xml_only =
                accept.contains("xml") && !accept.contains("json") && !accept.contains("*/*");
            if wants_xml_only {
                return Err(ApiError::NotAcceptable(
                    "this server answers in JSON only (application/fhir+json)".into(),
                ));
            }
        }
        let mut prefer_return = PreferReturn::default();
        let mut handling = Handling::default();
        for v in parts.headers.get_all("prefer") {
            let Ok(v) = v.to_str() else { continue };
            for token in v.split([',', ';']).map(str::trim) {
                match token {
                    "return=minimal" => prefer_return = PreferReturn::Minimal,
                    "return=representation" => prefer_return = PreferReturn::Representation,
                    "return=OperationOutcome" => prefer_return = PreferReturn::OperationOutcome,
                    "handling=strict" => handling = Handling::Strict,
                    "handling=lenient" => handling = Handling::Lenient,
                    _ => {}
                }
            }
        }
        let view = view_from(&query)?;
        Ok(Ctx {
            base,
            query,
            prefer_return,
            handling,
            pretty,
            view,
            headers: parts.headers.clone(),
        })
    }
}
