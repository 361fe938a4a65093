//! `/auth`: the OAuth2 token endpoint (client credentials for systems; authorisation code and
//! refresh token for SMART apps), revocation, introspection and the JWK Set of the key tokens
//! are signed with, sign-in for people, sign-out, recording
//! data-security training and "who am I"; and the middleware that turns a bearer token into
//! the [`Principal`] every `/fhir` handler can read from the request's extensions.

mod login;
mod logout;
mod revoke;
pub mod smart;
mod token;
mod training;
mod whoami;

use axum::Router;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, HOST, PRAGMA, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use carerecord_access::Principal;
use carerecord_identity::{Authenticated, IdentityError};
use carerecord_store::now_micros;
use serde_json::json;

use crate::error::ApiError;
use crate::{AppState, ServerSettings};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/token", post(token::handler))
        .route("/auth/revoke", post(revoke::revoke))
        .route("/auth/introspect", post(revoke::introspect))
        .route("/auth/jwks", get(revoke::jwks))
        .route("/auth/login", post(login::handler))
        .route("/auth/logout", post(logout::handler))
        .route("/auth/training", post(training::handler))
        .route("/auth/whoami", get(whoami::handler))
}

/// The server's origin (`http://host:port`), from the configured public base URL or `Host`.
pub fn origin(settings: &ServerSettings, headers: &HeaderMap) -> String {
    match &settings.public_base_url {
        Some(b) => b.trim_end_matches('/').trim_end_matches("/fhir").to_owned(),
        None => {
            let host = headers
                .get(HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("localhost");
            format!("http://{host}")
        }
    }
}

/// The token endpoint's URL for a FHIR base URL (`…/fhir` → `…/auth/token`).
pub fn token_endpoint_for_base(base: &str) -> String {
    format!(
        "{}/auth/token",
        base.trim_end_matches('/').trim_end_matches("/fhir")
    )
}

/// The URL of another `/auth` endpoint beside the FHIR base (`authorize`, `revoke`, …).
pub fn auth_endpoint_for_base(base: &str, name: &str) -> String {
    format!(
        "{}/auth/{name}",
        base.trim_end_matches('/').trim_end_matches("/fhir")
    )
}

/// The token of an `Authorization: Bearer …` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
}

/// Why a bearer token was refused, in words for the client.
fn refusal(e: IdentityError) -> ApiError {
    match e {
        IdentityError::InvalidToken => ApiError::Unauthorized(
            "a valid bearer token is required: get one from /auth/token or /auth/login".into(),
        ),
        IdentityError::Expired => {
            ApiError::Unauthorized("the session has expired: sign in again".into())
        }
        IdentityError::Store(e) => e.into(),
        other => ApiError::Internal(other.to_string()),
    }
}

async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Authenticated, ApiError> {
    let Some(token) = bearer(headers) else {
        return Err(ApiError::Unauthorized(
            "this request needs an Authorization: Bearer token (see /auth/token and /auth/login)"
                .into(),
        ));
    };
    state
        .identity
        .authenticate(token, now_micros())
        .await
        .map_err(refusal)
}

/// What is served without a token under `/fhir`: the CapabilityStatement and the SMART
/// configuration, which clients read to learn how to get one.
fn is_open(method: &Method, path: &str) -> bool {
    let path = path.strip_prefix("/fhir").unwrap_or(path);
    (method == Method::GET || method == Method::HEAD)
        && matches!(path, "/metadata" | "/.well-known/smart-configuration")
}

/// Middleware for `/fhir`: requires a bearer token, refuses people whose data-security
/// training has lapsed, and puts the [`Principal`] (and the [`Authenticated`] token) in the
/// request's extensions. What each principal may see is decided by the handlers' policy.
pub async fn require_principal(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    if is_open(req.method(), req.uri().path()) {
        return next.run(req).await;
    }
    let auth = match authenticate(&state, req.headers()).await {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    if !auth.principal.training_current(now_micros()) {
        // The refusal is audited here: the audit middleware runs inside this one.
        let client = req
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip().to_string());
        let action = crate::audit::action_of(req.method(), req.uri().path());
        let mut r = crate::audit::record(
            &auth.principal,
            action,
            carerecord_store::AuditOutcome::Denied,
            carerecord_access::Denial::TrainingExpired.rule(),
            &crate::audit::AuditNote::default(),
            client,
        );
        r.query = req.uri().query().map(str::to_owned);
        if let Err(e) = state.store.append_audit(vec![r]).await {
            return ApiError::from(e).into_response();
        }
        return ApiError::Forbidden(
            "your data-security training has expired: renew it (POST /auth/training) before \
             records can be shown"
                .into(),
        )
        .into_response();
    }
    req.extensions_mut().insert(auth.principal.clone());
    req.extensions_mut().insert(auth);
    next.run(req).await
}

/// The principal of an authenticated `/fhir` request, for handlers.
#[derive(Debug, Clone)]
pub struct CurrentPrincipal(pub Principal);

impl FromRequestParts<AppState> for CurrentPrincipal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .map(CurrentPrincipal)
            .ok_or_else(|| ApiError::Unauthorized("a valid bearer token is required".into()))
    }
}

/// A bearer token checked for the `/auth` endpoints, which answer plain JSON and let a person
/// with lapsed training in (to renew it).
pub struct SignedIn(pub Authenticated);

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Some(token) = bearer(&parts.headers) else {
            return Err(json_error(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "an Authorization: Bearer token is required",
            ));
        };
        match state.identity.authenticate(token, now_micros()).await {
            Ok(a) => Ok(SignedIn(a)),
            Err(IdentityError::InvalidToken) => Err(json_error(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "the bearer token is not valid",
            )),
            Err(IdentityError::Expired) => Err(json_error(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "the session has expired: sign in again",
            )),
            Err(e) => Err(internal(&e)),
        }
    }
}

/// A plain JSON error for `/auth` (these endpoints are not FHIR). Never cached.
pub(crate) fn json_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut resp = (
        status,
        axum::Json(json!({"error": error, "error_description": description})),
    )
        .into_response();
    no_store(resp.headers_mut());
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"carerecord\""),
        );
    }
    resp
}

pub(crate) fn internal(e: &dyn std::fmt::Display) -> Response {
    let id = crate::request_id::current().unwrap_or_default();
    tracing::error!(request_id = %id, detail = %e, "internal error in /auth");
    json_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        &format!("an internal error occurred (request id {id})"),
    )
}

/// RFC 6749 §5.1: responses carrying tokens must not be cached.
pub(crate) fn no_store(headers: &mut HeaderMap) {
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
}

/// A JSON answer that must not be cached.
pub(crate) fn json_ok(status: StatusCode, body: serde_json::Value) -> Response {
    let mut resp = (status, axum::Json(body)).into_response();
    no_store(resp.headers_mut());
    resp
}

/// The principal as `/auth` shows it, with readable instants.
pub(crate) fn principal_json(p: &Principal, now: i64) -> serde_json::Value {
    json!({
        "id": p.id,
        "name": p.name,
        "role": p.role,
        "role_display": p.role.display(),
        "organisation": p.organisation_id,
        "organisation_ods": p.organisation_ods,
        "training_valid_until": p.training_valid_until.map(carerecord_store::format_instant),
        "training_current": p.training_current(now),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_metadata_and_smart_configuration_are_open() {
        assert!(is_open(&Method::GET, "/metadata"));
        assert!(is_open(&Method::GET, "/fhir/metadata"));
        assert!(is_open(&Method::GET, "/.well-known/smart-configuration"));
        assert!(!is_open(&Method::POST, "/metadata"));
        assert!(!is_open(&Method::GET, "/Patient"));
        assert!(!is_open(&Method::GET, "/Patient/metadata"));
    }

    #[test]
    fn the_token_endpoint_sits_beside_the_fhir_base() {
        assert_eq!(
            token_endpoint_for_base("https://cr.example/fhir/"),
            "https://cr.example/auth/token"
        );
    }
}
