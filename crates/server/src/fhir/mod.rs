//! The FHIR R4 REST API: one file per interaction.

pub mod audit_event;
mod body;
pub mod break_glass;
pub mod bundle;
mod capabilities;
mod context;
mod create;
mod delete;
mod document;
mod everything;
mod history;
pub mod interactions;
mod people;
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
        // The audit trail (privacy officers): a router of its own, so the access policy can
        // wrap exactly these routes.
        .merge(audit_event::router())
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
        .route(
            "/{type}/{id}/{sub}",
            get(read::sub_handler).post(operation_handler),
        )
        .route("/{type}/{id}/_history/{vid}", get(read::vread_handler))
        // Bodies are read with our own limit so an oversize body gets an OperationOutcome.
        .layer(DefaultBodyLimit::disable())
        .fallback(|| async {
            ApiError::NotFound("there is no FHIR interaction at this address".into())
        })
}

/// `POST [type]/[id]/$operation`: instance-level operations.
async fn operation_handler(
    state: axum::extract::State<AppState>,
    axum::extract::Path((type_name, id, op)): axum::extract::Path<(String, String, String)>,
    access: crate::access::Access,
    ctx: Ctx,
    body: body::FhirBody,
) -> Result<axum::response::Response, ApiError> {
    match (type_name.as_str(), op.as_str()) {
        ("Patient", "$break-glass") => {
            break_glass::handler(state, axum::extract::Path(id), access, ctx, body).await
        }
        _ => Err(ApiError::NotFound(format!(
            "'{op}' is not an operation supported on {type_name}"
        ))),
    }
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
