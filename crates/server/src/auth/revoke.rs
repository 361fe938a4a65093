//! `POST /auth/revoke` (RFC 7009) and `POST /auth/introspect` (RFC 7662), form-encoded like
//! the token endpoint and authenticated the same ways; the decisions are the identity
//! service's (`carerecord_identity::smart`).
//!
//! Both are security administration and are audited before they are answered: the calling
//! client, the outcome and, for a revocation, what was revoked (a refresh token's family by
//! its id) — never the token itself. A failed client authentication is a denial.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use carerecord_identity::{OAuthError, Revoked, TokenRequest};
use carerecord_store::{AuditAction, AuditOutcome, AuditRecord, Channel, now_micros};

use super::token::{claimed_client, error, invalid_request, read_request};
use super::{json_ok, origin};
use crate::AppState;
use crate::audit::{ClientAddress, client_agent};

/// What the trail calls a refresh token family (`token-family/{id}`), as it calls a
/// break-glass grant `break-glass/{id}`.
const TOKEN_FAMILY: &str = "token-family";

/// Which endpoint an entry is about.
#[derive(Debug, Clone, Copy)]
enum Endpoint {
    Revoke,
    Introspect,
}

impl Endpoint {
    fn name(self) -> &'static str {
        match self {
            Endpoint::Revoke => "revoke",
            Endpoint::Introspect => "introspect",
        }
    }
}

/// The entry of a refused request: the client it
/// claimed to be (when registered) and the OAuth error as the rule, e.g.
/// `deny-revoke-invalid-client`.
async fn refused_record(
    state: &AppState,
    endpoint: Endpoint,
    req: &TokenRequest,
    e: &OAuthError,
    client: Option<String>,
) -> AuditRecord {
    let claimed = claimed_client(req);
    let (outcome, rule) = if e.error == "server_error" {
        (AuditOutcome::Error, "error".to_owned())
    } else {
        (
            AuditOutcome::Denied,
            format!("deny-{}-{}", endpoint.name(), e.error.replace('_', "-")),
        )
    };
    entry(state, claimed.as_deref(), outcome, rule, client).await
}

async fn entry(
    state: &AppState,
    client_id: Option<&str>,
    outcome: AuditOutcome,
    rule: String,
    client: Option<String>,
) -> AuditRecord {
    let mut r = AuditRecord::new(
        now_micros(),
        AuditAction::Admin,
        outcome,
        rule,
        client_agent(state, client_id).await,
        Channel::Api,
    );
    r.client_address = client;
    r.request_id = crate::request_id::current();
    r
}

/// Writes `r` and then answers `resp`; an entry that cannot be written withholds the answer.
async fn audited(state: &AppState, r: AuditRecord, resp: Response) -> Response {
    match state.store.append_audit(vec![r]).await {
        Ok(()) => resp,
        Err(e) => super::internal(&e),
    }
}

/// RFC 7009 §2.2: 200 whether or not the token was known (nothing is learned by asking).
pub async fn revoke(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = match read_request(&headers, &body) {
        Ok(r) => r,
        // As at the token endpoint: a body that is not a form names no client to record.
        Err(d) => return invalid_request(d),
    };
    let endpoint = format!("{}/auth/token", origin(&state.settings, &headers));
    match state.identity.revoke(&req, &endpoint, now_micros()).await {
        Ok(done) => {
            let (outcome, rule) = match &done.revoked {
                Revoked::Family(_) => (AuditOutcome::Allowed, "token-family-revoked"),
                Revoked::AccessToken => (AuditOutcome::Allowed, "access-token-revoked"),
                Revoked::Unknown => (AuditOutcome::Allowed, "revoke-unknown-token"),
                // Another client's token: refused, though RFC 7009 answers the same.
                Revoked::NotOwned => (AuditOutcome::Denied, "deny-revoke-not-issued-to-client"),
            };
            let mut r = entry(
                &state,
                Some(&done.client_id),
                outcome,
                rule.to_owned(),
                client,
            )
            .await;
            if let Revoked::Family(family) = &done.revoked {
                r.resources = vec![format!("{TOKEN_FAMILY}/{family}")];
            }
            let mut resp = StatusCode::OK.into_response();
            super::no_store(resp.headers_mut());
            audited(&state, r, resp).await
        }
        Err(e) => {
            let r = refused_record(&state, Endpoint::Revoke, &req, &e, client).await;
            audited(&state, r, error(&e)).await
        }
    }
}

pub async fn introspect(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = match read_request(&headers, &body) {
        Ok(r) => r,
        // As at the token endpoint: a body that is not a form names no client to record.
        Err(d) => return invalid_request(d),
    };
    let endpoint = format!("{}/auth/token", origin(&state.settings, &headers));
    match state
        .identity
        .introspect(&req, &endpoint, now_micros())
        .await
    {
        Ok(i) => {
            let mut r = entry(
                &state,
                Some(&i.client_id),
                AuditOutcome::Allowed,
                "token-introspected".to_owned(),
                client,
            )
            .await;
            // Whether the client learned of a live token; which token is never recorded.
            r.query = Some(format!("active={}", i.active));
            audited(&state, r, json_ok(StatusCode::OK, i.body)).await
        }
        Err(e) => {
            let r = refused_record(&state, Endpoint::Introspect, &req, &e, client).await;
            audited(&state, r, error(&e)).await
        }
    }
}

/// `GET /auth/jwks`: the public key SMART access and id tokens are signed with.
pub async fn jwks(State(state): State<AppState>) -> Response {
    match state.identity.signing_key() {
        Ok(k) => (StatusCode::OK, axum::Json(k.jwks())).into_response(),
        Err(e) => super::internal(&e),
    }
}
