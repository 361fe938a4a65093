//! `POST /auth/revoke` (RFC 7009) and `POST /auth/introspect` (RFC 7662), form-encoded like
//! the token endpoint and authenticated the same ways; the decisions are the identity
//! service's (`carerecord_identity::smart`).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use carerecord_store::now_micros;

use super::token::{error, invalid_request, read_request};
use super::{json_ok, origin};
use crate::AppState;

/// RFC 7009 §2.2: 200 whether or not the token was known (nothing is learned by asking).
pub async fn revoke(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let req = match read_request(&headers, &body) {
        Ok(r) => r,
        Err(d) => return invalid_request(d),
    };
    let endpoint = format!("{}/auth/token", origin(&state.settings, &headers));
    match state.identity.revoke(&req, &endpoint, now_micros()).await {
        Ok(()) => {
            let mut resp = StatusCode::OK.into_response();
            super::no_store(resp.headers_mut());
            resp
        }
        Err(e) => error(&e),
    }
}

pub async fn introspect(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = match read_request(&headers, &body) {
        Ok(r) => r,
        Err(d) => return invalid_request(d),
    };
    let endpoint = format!("{}/auth/token", origin(&state.settings, &headers));
    match state
        .identity
        .introspect(&req, &endpoint, now_micros())
        .await
    {
        Ok(v) => json_ok(StatusCode::OK, v),
        Err(e) => error(&e),
    }
}

/// `GET /auth/jwks`: the public key SMART access and id tokens are signed with.
pub async fn jwks(State(state): State<AppState>) -> Response {
    match state.identity.signing_key() {
        Ok(k) => (StatusCode::OK, axum::Json(k.jwks())).into_response(),
        Err(e) => super::internal(&e),
    }
}
