//! `GET /fhir/.well-known/smart-configuration` (SMART App Launch 2.x): what works here and
//! where. Apps people authorise use the authorisation code flow with PKCE (S256) at
//! `/auth/authorize` (the portal's pages); systems use client credentials (SMART Backend
//! Services). Everything listed is implemented; nothing else is.

use axum::http::StatusCode;
use axum::response::Response;
use carerecord_identity::oauth::{ASSERTION_ALGORITHMS, AUTH_METHODS};
use serde_json::{Value, json};

use super::{auth_endpoint_for_base, json_ok, token_endpoint_for_base};
use crate::fhir::Ctx;

/// The capabilities of SMART App Launch 2.0 §Capabilities that carerecord has.
pub const CAPABILITIES: [&str; 14] = [
    "launch-ehr",
    "launch-standalone",
    "client-public",
    "client-confidential-symmetric",
    "client-confidential-asymmetric",
    "context-ehr-patient",
    "context-standalone-patient",
    "permission-v1",
    "permission-v2",
    "permission-patient",
    "permission-user",
    "permission-offline",
    "permission-online",
    "sso-openid-connect",
];

pub fn configuration(base: &str) -> Value {
    let base = base.trim_end_matches('/');
    json!({
        "issuer": base,
        "jwks_uri": auth_endpoint_for_base(base, "jwks"),
        "authorization_endpoint": auth_endpoint_for_base(base, "authorize"),
        "token_endpoint": token_endpoint_for_base(base),
        "revocation_endpoint": auth_endpoint_for_base(base, "revoke"),
        "introspection_endpoint": auth_endpoint_for_base(base, "introspect"),
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGORITHMS,
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "id_token_signing_alg_values_supported": ["ES256"],
        // Client credentials grants system/ scopes only; apps patient/ and user/ ones.
        "scopes_supported": carerecord_access::scope::SCOPES_SUPPORTED,
        "capabilities": CAPABILITIES,
    })
}

pub async fn handler(ctx: Ctx) -> Response {
    json_ok(StatusCode::OK, configuration(&ctx.base))
}
