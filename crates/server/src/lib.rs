//! carerecord's HTTP server: the FHIR REST API under `/fhir` (behind bearer tokens), sign-in
//! and the token endpoint under `/auth`, and health checks.
//!
//! [`serve`] runs the application on a listener the caller bound (tests bind `127.0.0.1:0`),
//! until `shutdown` resolves, then drains in-flight requests.
#![forbid(unsafe_code)]

pub mod access;
pub mod admin;
pub mod audit;
pub mod auth;
pub mod error;
pub mod fhir;
mod health;
pub mod jwks;
pub mod metrics;
pub mod request_id;
pub mod residency;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::middleware;
use carerecord_identity::Identity;
use carerecord_store::ResourceStore;
use tokio::net::TcpListener;

/// Settings the server needs (the binary fills them from its configuration).
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// The public FHIR base URL (`http://host:port/fhir`); `None` derives it from `Host`.
    pub public_base_url: Option<String>,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Page size when `_count` is absent.
    pub default_page_size: u32,
    /// Largest page size honoured.
    pub max_page_size: u32,
    /// The access policy's settings (encounter window, break-glass duration).
    pub policy: carerecord_access::PolicySettings,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            public_base_url: None,
            max_body_bytes: 16 * 1024 * 1024,
            default_page_size: 50,
            max_page_size: 1_000,
            policy: carerecord_access::PolicySettings::default(),
        }
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn ResourceStore>,
    pub settings: Arc<ServerSettings>,
    /// Sign-in, tokens and the principal behind a bearer token.
    pub identity: Arc<Identity>,
    /// Identity matching for the Patients source systems submit (`fhir::people`): the
    /// ingest's, which the binary supplies. `None` writes them as sent (tests of other things,
    /// benchmarks).
    pub people: Option<Arc<dyn carerecord_store::ingest::PersonMatcher>>,
    /// The writer that transaction Bundles share on a single-writer store
    /// (`SharedTransactions::for_store(&store)`).
    pub transactions: fhir::bundle::SharedTransactions,
}

/// The whole application router.
pub fn app(state: AppState) -> Router {
    app_with(state, Router::new())
}

/// The application router with `extra` routes merged beside the API (the binary passes the
/// care home portal here, so the server never depends on it). `extra` gets the request-id and
/// metrics layers; it does its own authentication and audit.
pub fn app_with(state: AppState, extra: Router<AppState>) -> Router {
    // Layers run outermost-last: authentication first, then the audit of what the
    // authenticated principal did.
    let fhir = fhir::router()
        .layer(middleware::from_fn_with_state(
            state.clone(),
            audit::middleware,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_principal,
        ));
    Router::new()
        .nest("/fhir", fhir)
        .merge(auth::router())
        .merge(admin::router())
        .merge(health::router())
        .merge(extra)
        .layer(middleware::from_fn(metrics::track))
        .layer(middleware::from_fn(request_id::layer))
        .with_state(state)
}

/// The application without the audit middleware, to measure the audit write's own cost
/// (`carerecord-audit-cost`, `docs/benchmarks.md`). Only built with the `bench-unaudited`
/// feature, which only the benchmark crate enables: the carerecord binary never serves a read
/// that is not audited. Writes and break-glass still audit inside their own transactions.
#[cfg(feature = "bench-unaudited")]
pub fn app_unaudited_for_benchmarks(state: AppState) -> Router {
    let fhir = fhir::router().layer(middleware::from_fn_with_state(
        state.clone(),
        auth::require_principal,
    ));
    Router::new()
        .nest("/fhir", fhir)
        .merge(auth::router())
        .merge(health::router())
        .layer(middleware::from_fn(metrics::track))
        .layer(middleware::from_fn(request_id::layer))
        .with_state(state)
}

/// Serves `state` on `listener` until `shutdown` completes.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(state, Router::new(), listener, shutdown).await
}

/// [`serve`] with `extra` routes merged in (see [`app_with`]).
pub async fn serve_with(
    state: AppState,
    extra: Router<AppState>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        app_with(state, extra).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
