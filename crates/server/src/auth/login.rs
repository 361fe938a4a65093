//! `POST /auth/login`: a person signs in with username, password, TOTP code and — when they
//! hold several — the organisation and role to act in.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::Response;
use carerecord_identity::{LoginError, LoginRequest};
use carerecord_store::{format_instant, now_micros};
use serde_json::json;

use super::{internal, json_error, json_ok, principal_json};
use crate::AppState;
use crate::audit::{ClientAddress, sign_in_record};

pub async fn handler(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    body: Result<Json<LoginRequest>, JsonRejection>,
) -> Response {
    let Ok(Json(req)) = body else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "send JSON: {\"username\", \"password\", \"totp\", and \"organisation\" and \"role\" when you hold several}",
        );
    };
    let now = now_micros();
    let (result, attempt) = state.identity.sign_in(&req, now).await;
    // Every outcome is in the audit trail before it is answered (never the password, the
    // code or an unknown username); an attempt that cannot be accounted for is not answered.
    let principal = result.as_ref().ok().map(|s| &s.principal);
    if let Some(r) = sign_in_record(&attempt, principal, client)
        && let Err(e) = state.store.append_audit(vec![r]).await
    {
        return internal(&e);
    }
    match result {
        Ok(s) => json_ok(
            StatusCode::OK,
            json!({
                "access_token": s.access_token,
                "token_type": "bearer",
                "expires_at": format_instant(s.expires_at),
                "expires_in": (s.expires_at - now) / 1_000_000,
                "principal": principal_json(&s.principal, now),
            }),
        ),
        Err(LoginError::InvalidCredentials) => json_error(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "the username, password or code is not right",
        ),
        Err(LoginError::SecondFactorRequired) => json_error(
            StatusCode::UNAUTHORIZED,
            "totp_required",
            "a code from your authenticator app is required",
        ),
        Err(LoginError::Locked { minutes }) => {
            let mut resp = json_ok(
                StatusCode::LOCKED,
                json!({
                    "error": "account_locked",
                    "error_description": format!(
                        "the account is locked after repeated failed sign-ins; try again in {minutes} minute{}",
                        if minutes == 1 { "" } else { "s" }
                    ),
                    "retry_after_minutes": minutes,
                }),
            );
            if let Ok(v) = axum::http::HeaderValue::from_str(&(minutes * 60).to_string()) {
                resp.headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, v);
            }
            resp
        }
        Err(LoginError::ChooseRole(choices)) => json_ok(
            StatusCode::BAD_REQUEST,
            json!({
                "error": "choose_role",
                "error_description": "you hold several roles: send organisation and role with your sign-in",
                "choices": choices,
            }),
        ),
        Err(LoginError::NoSuchRole) => json_error(
            StatusCode::FORBIDDEN,
            "no_such_role",
            "you do not hold that role at that organisation",
        ),
        Err(LoginError::Other(e)) => internal(&e),
    }
}
