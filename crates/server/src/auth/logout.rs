//! `POST /auth/logout`: ends the session of the bearer token sent.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::{SignedIn, internal};
use crate::AppState;

pub async fn handler(State(state): State<AppState>, SignedIn(auth): SignedIn) -> Response {
    match state.identity.logout(&auth).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => internal(&e),
    }
}
