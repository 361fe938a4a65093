//! `GET /auth/whoami`: the principal the bearer token acts as.

use axum::http::StatusCode;
use axum::response::Response;
use carerecord_store::now_micros;
use serde_json::json;

use super::{SignedIn, json_ok, principal_json};

pub async fn handler(SignedIn(auth): SignedIn) -> Response {
    json_ok(
        StatusCode::OK,
        json!({"principal": principal_json(&auth.principal, now_micros())}),
    )
}
