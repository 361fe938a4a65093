//! The request body of a write: FHIR JSON, within the size limit, parsed once.

use axum::body::{Body, to_bytes};
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use carerecord_fhir::{Issue, IssueCode};
use serde_json::Value;

use crate::AppState;
use crate::error::ApiError;

/// A JSON resource body (an object with a `resourceType`).
pub struct FhirBody(pub Value);

/// Reads at most `limit` bytes of `body`.
pub async fn read_limited(body: Body, limit: usize) -> Result<bytes::Bytes, ApiError> {
    to_bytes(body, limit).await.map_err(|e| {
        // Both an over-long body and a body cut off mid-way end here; length is what we can tell.
        let too_long = std::error::Error::source(&e)
            .is_some_and(|s| s.to_string().contains("length limit"))
            || e.to_string().contains("length limit");
        if too_long {
            ApiError::PayloadTooLarge(limit)
        } else {
            ApiError::bad_request(IssueCode::Structure, "the request body could not be read")
        }
    })
}

/// Parses JSON bytes into a resource object.
pub fn parse_resource(bytes: &[u8]) -> Result<Value, ApiError> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::BadRequest(vec![Issue::error(
            IssueCode::Structure,
            format!(
                "the body is not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            ),
        )])
    })?;
    match v.get("resourceType") {
        Some(Value::String(_)) => Ok(v),
        _ => Err(ApiError::BadRequest(vec![
            Issue::error(
                IssueCode::Required,
                "the body must be a FHIR resource with a resourceType",
            )
            .at("resourceType"),
        ])),
    }
}

impl FromRequest<AppState> for FhirBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        if let Some(ct) = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
        {
            let media = ct
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if !matches!(
                media.as_str(),
                "application/fhir+json" | "application/json" | "application/json+fhir"
            ) {
                return Err(ApiError::UnsupportedMediaType(format!(
                    "send resources as application/fhir+json, not '{media}'"
                )));
            }
        }
        let bytes = read_limited(req.into_body(), state.settings.max_body_bytes).await?;
        parse_resource(&bytes).map(FhirBody)
    }
}
