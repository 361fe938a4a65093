//! `POST /auth/logout`: ends the session of the bearer token sent.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::{SignedIn, internal};
use carerecord_store::{AuditAction, AuditOutcome};

use crate::AppState;
use crate::audit::{AuditNote, ClientAddress, record};

pub async fn handler(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    SignedIn(auth): SignedIn,
) -> Response {
    if let Err(e) = state.identity.logout(&auth).await {
        return internal(&e);
    }
    let mut r = record(
        &auth.principal,
        AuditAction::Logout,
        AuditOutcome::Allowed,
        "sign-out",
        &AuditNote::default(),
        client,
    );
    // Signing out is not care: no purpose of use, as for signing in.
    r.purpose_of_use = None;
    match state.store.append_audit(vec![r]).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => internal(&e),
    }
}
