//! `POST /auth/token`: OAuth2 client credentials (RFC 6749 §4.4) and, for SMART apps, the
//! authorisation code and refresh token grants (`carerecord_identity::smart`), form-encoded.

use axum::extract::State;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use carerecord_identity::oauth::parse_basic;
use carerecord_identity::{OAuthError, TokenRequest};
use carerecord_store::now_micros;

use super::{json_ok, origin};
use crate::AppState;
use crate::audit::{ClientAddress, token_record};

pub(super) fn error(e: &OAuthError) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut resp = json_ok(status, e.body());
    if status == StatusCode::UNAUTHORIZED && e.basic_used {
        // RFC 6749 §5.2: a client that tried Basic is told the scheme again.
        resp.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"carerecord\""),
        );
    }
    resp
}

pub(super) fn invalid_request(description: &str) -> Response {
    let body = serde_json::json!({"error": "invalid_request", "error_description": description});
    json_ok(StatusCode::BAD_REQUEST, body)
}

/// The form of a request to the token, revocation or introspection endpoint (RFC 6749 §3.2:
/// form-encoded), with any `Authorization: Basic` credentials.
/// A refusal is the `invalid_request` description.
pub(super) fn read_request(headers: &HeaderMap, body: &[u8]) -> Result<TokenRequest, &'static str> {
    let form_encoded = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form_encoded {
        return Err("the body must be application/x-www-form-urlencoded");
    }
    let Ok(form) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(body) else {
        return Err("the body is not valid form encoding");
    };
    let basic = match headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        None => None,
        Some(v) => match parse_basic(v) {
            Some(c) => Some(c),
            None => {
                return Err("the Authorization header is not valid Basic");
            }
        },
    };
    Ok(TokenRequest { form, basic })
}

/// The client a request says it is (Basic credentials' id, else the form's `client_id`), for
/// the audit entry of a refusal: client ids are not secrets.
pub(super) fn claimed_client(req: &TokenRequest) -> Option<String> {
    req.basic.as_ref().map(|(id, _)| id.clone()).or_else(|| {
        req.form
            .iter()
            .find(|(k, _)| k == "client_id")
            .map(|(_, v)| v.clone())
    })
}

pub async fn handler(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = match read_request(&headers, &body) {
        Ok(r) => r,
        Err(d) => return invalid_request(d),
    };
    let endpoint = format!("{}/auth/token", origin(&state.settings, &headers));
    let claimed = claimed_client(&req);
    let result = state.identity.token(&req, &endpoint, now_micros()).await;
    // Issued or refused, the request is in the audit trail before it is answered.
    let entry = match &result {
        Ok(t) => token_record(&state, Some(&t.principal), None, None, client).await,
        Err(e) => token_record(&state, None, claimed.as_deref(), Some(e.error), client).await,
    };
    if let Err(e) = state.store.append_audit(vec![entry]).await {
        return super::internal(&e);
    }
    match result {
        Ok(t) => json_ok(StatusCode::OK, serde_json::to_value(&t).unwrap_or_default()),
        Err(e) => error(&e),
    }
}
