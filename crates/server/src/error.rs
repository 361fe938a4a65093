//! One mapping from every error to an HTTP status and an `OperationOutcome`, shared by plain
//! requests and by the entries of batch and transaction Bundles.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use carerecord_access::Denial;
use carerecord_fhir::{Issue, IssueCode, operation_outcome};
use carerecord_store::StoreError;

use crate::request_id;

/// The extension on every error `OperationOutcome` that names the request.
pub const REQUEST_ID_EXTENSION: &str =
    "https://fhir.carerecord.example/StructureDefinition/request-id";

/// The audit rule of a refusal by the token's scopes.
pub const SCOPE_RULE: &str = "deny-scope-not-granted";

/// An error answered to a FHIR client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("bad request")]
    BadRequest(Vec<Issue>),
    /// No usable bearer token: 401 with `WWW-Authenticate: Bearer`.
    #[error("unauthorized")]
    Unauthorized(String),
    /// Authenticated but not allowed (e.g. data-security training has lapsed).
    #[error("forbidden")]
    Forbidden(String),
    #[error("not found")]
    NotFound(String),
    #[error("gone")]
    Gone(String),
    #[error("method not allowed")]
    MethodNotAllowed(String),
    #[error("not acceptable")]
    NotAcceptable(String),
    #[error("conflict")]
    Conflict(String),
    #[error("precondition failed")]
    PreconditionFailed(String),
    #[error("payload too large")]
    PayloadTooLarge(usize),
    #[error("unsupported media type")]
    UnsupportedMediaType(String),
    #[error("unprocessable")]
    Unprocessable(Vec<Issue>),
    #[error("busy")]
    Busy,
    /// An error about one entry of a Bundle: the entry's status and issues.
    #[error("bundle entry failed")]
    Entry(StatusCode, Vec<Issue>),
    /// The access policy refused; the denial names its rule and says why in plain words.
    #[error("denied: {}", .0.rule())]
    Denied(Denial),
    /// The policy allowed it but the token's SMART scopes do not; the message names the
    /// scope that is missing.
    #[error("denied: {SCOPE_RULE}")]
    ScopeDenied(String),
    /// Internal detail is logged with the request id and never sent to the client.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn bad_request(code: IssueCode, msg: impl Into<String>) -> Self {
        ApiError::BadRequest(vec![Issue::error(code, msg)])
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Gone(_) => StatusCode::GONE,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Denied(_) | ApiError::ScopeDenied(_) => StatusCode::FORBIDDEN,
            ApiError::Entry(status, _) => *status,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The issues to report.
    pub fn issues(&self) -> Vec<Issue> {
        let one = |code, msg: &str| vec![Issue::error(code, msg)];
        match self {
            ApiError::BadRequest(issues)
            | ApiError::Unprocessable(issues)
            | ApiError::Entry(_, issues) => issues.clone(),
            ApiError::NotFound(m) => one(IssueCode::NotFound, m),
            ApiError::Unauthorized(m) => one(IssueCode::Login, m),
            ApiError::Forbidden(m) | ApiError::ScopeDenied(m) => one(IssueCode::Forbidden, m),
            ApiError::Gone(m) => one(IssueCode::Deleted, m),
            ApiError::MethodNotAllowed(m) | ApiError::NotAcceptable(m) => {
                one(IssueCode::NotSupported, m)
            }
            ApiError::UnsupportedMediaType(m) => one(IssueCode::NotSupported, m),
            ApiError::Conflict(m) => one(IssueCode::Conflict, m),
            ApiError::PreconditionFailed(m) => one(IssueCode::Conflict, m),
            ApiError::PayloadTooLarge(limit) => one(
                IssueCode::TooLong,
                &format!("the request body is larger than the limit of {limit} bytes"),
            ),
            ApiError::Busy => one(
                IssueCode::Transient,
                "the server is busy; please try again in a moment",
            ),
            ApiError::Denied(d) => one(IssueCode::Forbidden, &d.message()),
            ApiError::Internal(_) => {
                let id = request_id::current().unwrap_or_default();
                one(
                    IssueCode::Exception,
                    &format!("an internal error occurred (request id {id})"),
                )
            }
        }
    }

    /// The same error, said of entry `index` of a Bundle.
    pub fn in_entry(self, index: usize) -> ApiError {
        if let ApiError::Internal(_) = self {
            return self;
        }
        let status = self.status();
        let issues = self
            .issues()
            .into_iter()
            .map(|mut i| {
                i.diagnostics = format!("entry {index}: {}", i.diagnostics);
                i.expression = if i.expression.is_empty() {
                    vec![format!("Bundle.entry[{index}]")]
                } else {
                    i.expression
                        .iter()
                        .map(|e| match e.split_once('.') {
                            Some((_, rest)) => format!("Bundle.entry[{index}].resource.{rest}"),
                            None => format!("Bundle.entry[{index}].resource"),
                        })
                        .collect()
                };
                i
            })
            .collect();
        ApiError::Entry(status, issues)
    }

    /// The `OperationOutcome` body.
    /// Carries the request id in an extension, so a support desk can find the log lines of
    /// any refused request from what the client saw.
    pub fn outcome(&self) -> serde_json::Value {
        let mut oo = operation_outcome(&self.issues());
        if let Some(id) = request_id::current() {
            oo["extension"] = serde_json::json!([{
                "url": REQUEST_ID_EXTENSION,
                "valueString": id,
            }]);
        }
        oo
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::NotFound("the resource was not found".into()),
            StoreError::Gone(v) => {
                ApiError::Gone(format!("the resource was deleted (version {v})"))
            }
            StoreError::VersionConflict { expected, current } => ApiError::PreconditionFailed(
                format!("version {expected} was expected but the current version is {current}"),
            ),
            StoreError::AlreadyExists => {
                ApiError::Conflict("a resource with this id already exists".into())
            }
            StoreError::MultipleMatches => ApiError::PreconditionFailed(
                "the conditional request matched more than one resource".into(),
            ),
            StoreError::InvalidCursor => ApiError::bad_request(
                IssueCode::Invalid,
                "the paging cursor is not valid for this search; start the search again",
            ),
            StoreError::UnsupportedSearch(m) => ApiError::bad_request(IssueCode::NotSupported, m),
            StoreError::Busy => ApiError::Busy,
            StoreError::Backend(m) => ApiError::Internal(m),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let ApiError::Internal(detail) = &self {
            tracing::error!(request_id = %request_id::current().unwrap_or_default(), %detail, "internal error");
        } else {
            tracing::debug!(status = status.as_u16(), "request refused");
        }
        let mut resp = (status, self.outcome().to_string()).into_response();
        if let ApiError::Denied(d) = &self {
            resp.extensions_mut()
                .insert(crate::audit::DeniedBy(d.rule()));
        }
        if let ApiError::ScopeDenied(_) = &self {
            resp.extensions_mut()
                .insert(crate::audit::DeniedBy(SCOPE_RULE));
        }
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(crate::fhir::FHIR_JSON),
        );
        if let ApiError::Unauthorized(_) = &self {
            // RFC 6750 §3: a 401 names the scheme the client should use.
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"carerecord\""),
            );
        }
        resp
    }
}
