//! `GET /fhir/.well-known/smart-configuration` (SMART App Launch 2.x): where to get a token
//! and how to authenticate there. Only the client credentials grant is offered (SMART
//! Backend Services); people sign in at `/auth/login`.

use axum::http::StatusCode;
use axum::response::Response;
use carerecord_identity::oauth::{ASSERTION_ALGORITHMS, AUTH_METHODS};
use serde_json::{Value, json};

use super::{json_ok, token_endpoint_for_base};
use crate::fhir::Ctx;

pub fn configuration(base: &str) -> Value {
    json!({
        "token_endpoint": token_endpoint_for_base(base),
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGORITHMS,
        "grant_types_supported": ["client_credentials"],
        // Client credentials grants system/ scopes only (any type, any of cruds, v1 or v2).
        "scopes_supported": carerecord_access::scope::SCOPES_SUPPORTED
            .iter()
            .filter(|s| s.starts_with("system/"))
            .collect::<Vec<_>>(),
        "capabilities": ["client-confidential-asymmetric", "client-confidential-symmetric"],
    })
}

pub async fn handler(ctx: Ctx) -> Response {
    json_ok(StatusCode::OK, configuration(&ctx.base))
}
