//! `/admin`: small JSON APIs for the people who run and oversee carerecord (not FHIR): the
//! privacy officers' break-glass review queue (`docs/integrators/break-glass-review.md`), and
//! the identity-matching review queue ([`match_reviews`], whose router the binary merges in
//! with the ingest's decisions; `docs/integrators/matching.md`).
//!
//! Each handler authenticates the bearer token itself (a person whose training lapsed gets a
//! policy refusal that is audited, not a silent 401), and answers errors as
//! `{"error", "error_description"}`, like `/auth`.

pub mod break_glass;
pub mod match_reviews;

use axum::Router;
use axum::routing::{get, post};

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/break-glass", get(break_glass::queue_handler))
        .route(
            "/admin/break-glass/{id}/review",
            post(break_glass::review_handler),
        )
}
