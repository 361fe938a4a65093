//! The care home portal: server-rendered pages in the NHS.UK design system for care home
//! staff on a tablet or a PC, served at `/` beside the FHIR API.
//!
//! Every page works without JavaScript (navigation is links, actions are forms). People sign
//! in with password and TOTP ([`carerecord_identity::Identity::login`]); the session is the
//! identity service's own opaque token (stored hashed, idle and absolute expiry) in an
//! `HttpOnly; SameSite=Strict` cookie. Every POST passes the [`csrf`] check. What a page
//! shows is read through the store with the principal's `Visibility` (the access policy
//! compiled into the query), and every view of clinical content is written to the audit trail
//! with the portal as the channel before the page is sent ([`audit`]).
#![forbid(unsafe_code)]

pub mod assets;
mod audit;
pub mod csrf;
mod page;
mod pages;
mod person;
mod session;

/// The view model and HTML fragments of one person's record.
use carerecord_record as record;

use axum::Router;
use axum::middleware;
use axum::routing::{get, post};
use carerecord_server::AppState;
use tower_http::compression::CompressionLayer;

/// The portal's routes, to merge beside the API with [`carerecord_server::app_with`].
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::residents::handler))
        .route(
            "/sign-in",
            get(pages::sign_in::form).post(pages::sign_in::submit),
        )
        .route("/sign-out", post(pages::sign_in::sign_out))
        .route("/signed-out", get(pages::sign_in::signed_out))
        .route(
            "/training",
            get(pages::training::form).post(pages::training::submit),
        )
        .route(
            "/moves/in",
            get(pages::moves::move_in_form).post(pages::moves::move_in_submit),
        )
        .route(
            "/moves/out/{patient}",
            get(pages::moves::move_out_form).post(pages::moves::move_out_submit),
        )
        .route("/moves/done/{episode}", get(pages::moves::done))
        .route("/moves/undo/{episode}", post(pages::moves::undo))
        .route("/moves", get(pages::moves::recent))
        .route("/residents/{id}", get(pages::record::summary))
        .route("/residents/{id}/{section}", get(pages::record::section))
        .route(
            "/residents/{id}/apps/{client_id}",
            post(pages::authorize::launch_app),
        )
        .route("/launch", post(pages::launch::handler))
        .route(
            "/auth/authorize",
            get(pages::authorize::start).post(pages::authorize::decide),
        )
        .route("/find", get(pages::find::form).post(pages::find::submit))
        .route("/find/emergency-access", post(pages::find::break_glass))
        .route("/privacy", get(pages::privacy::audit_search))
        .route("/privacy/emergency-access", get(pages::privacy::queue))
        .route(
            "/privacy/emergency-access/{grant}",
            post(pages::privacy::review),
        )
        .route("/privacy/people/{id}", get(pages::privacy::access_report))
        .route("/systems", get(pages::systems::list))
        .route(
            "/systems/new-system",
            get(pages::systems::system_form).post(pages::systems::system_submit),
        )
        .route(
            "/systems/new-app",
            get(pages::systems::app_form).post(pages::systems::app_submit),
        )
        .route(
            "/systems/{client_id}/disable",
            get(pages::systems::disable_confirm).post(pages::systems::disable),
        )
        .route("/assets/{version}/{*path}", get(assets::handler))
        .fallback(page::not_found)
        .layer(middleware::from_fn(csrf::layer))
        .layer(middleware::from_fn(page::security_headers))
        .layer(CompressionLayer::new())
}
