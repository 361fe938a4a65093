//! The FHIR R4 REST API: one file per interaction.

mod body;
pub mod bundle;
mod capabilities;
mod context;
mod create;
mod delete;
mod everything;
mod history;
pub mod interactions;
mod read;
mod render;
mod search;
mod update;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use carerecord_fhir::{IssueCode, ResourceType};

pub use carerecord_search::query::Handling;
pub use context::{Ctx, PreferReturn};

use crate::AppState;
use crate::error::ApiError;

/// The media type of every FHIR response.
pub const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/metadata", get(capabilities::handler))
        .route(
            "/.well-known/smart-configuration",
            get(crate::auth::smart::handler),
        )
        .route("/", post(bundle::handler))
        .route("/_history", get(history::system))
        .route(
            "/{type}",
            get(search::get_handler)
                .post(create::handler)
                .put(update::conditional_handler)
                .delete(delete::conditional_handler),
        )
        .route("/{type}/_search", post(search::post_handler))
        .route("/{type}/_history", get(history::type_level))
        .route(
            "/{type}/{id}",
            get(read::handler)
                .put(update::handler)
                .delete(delete::handler),
        )
        .route("/{type}/{id}/{sub}", get(read::sub_handler))
        .route("/{type}/{id}/_history/{vid}", get(read::vread_handler))
        // Bodies are read with our own limit so an oversize body gets an OperationOutcome.
        .layer(DefaultBodyLimit::disable())
        .fallback(|| async {
            ApiError::NotFound("there is no FHIR interaction at this address".into())
        })
}

/// The resource type named in a URL; an unknown one is a 404 that says so.
pub fn resource_type(name: &str) -> Result<ResourceType, ApiError> {
    name.parse::<ResourceType>().map_err(|_| {
        ApiError::NotFound(format!(
            "resource type '{name}' is not supported by this server"
        ))
    })
}

/// A logical id from a URL.
pub fn logical_id(s: &str) -> Result<carerecord_fhir::LogicalId, ApiError> {
    carerecord_fhir::LogicalId::parse(s)
        .map_err(|e| ApiError::bad_request(IssueCode::Invalid, e.to_string()))
}
