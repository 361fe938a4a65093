//! `POST /auth/training`: the signed-in person records data-security training completed
//! today. The one thing a person whose training has lapsed can do.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use carerecord_identity::IdentityError;
use carerecord_store::{format_instant, now_micros};
use serde_json::json;

use super::{SignedIn, internal, json_error, json_ok, principal_json};
use crate::AppState;

pub async fn handler(State(state): State<AppState>, SignedIn(auth): SignedIn) -> Response {
    let now = now_micros();
    match state.identity.record_training(&auth, now).await {
        Ok(p) => json_ok(
            StatusCode::OK,
            json!({
                "training_valid_until": p.training_valid_until.map(format_instant),
                "principal": principal_json(&p, now),
            }),
        ),
        Err(IdentityError::Invalid(m)) => {
            json_error(StatusCode::BAD_REQUEST, "invalid_request", &m)
        }
        Err(e) => internal(&e),
    }
}
