//! The carerecord program: configuration and wiring. `main.rs` only parses the command line.
#![forbid(unsafe_code)]

pub mod cli;
pub mod config;

use std::sync::Arc;

use anyhow::Context;
use carerecord_server::{AppState, ServerSettings};
use carerecord_store::ResourceStore;
use carerecord_store_postgres::PostgresStore;
use carerecord_store_sqlite::SqliteStore;

use crate::config::{Config, redact_url};

/// Opens the configured store, applying its migrations.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn ResourceStore>> {
    match config.database_url.as_deref() {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            let store = PostgresStore::connect(url)
                .await
                .with_context(|| format!("cannot open PostgreSQL at {}", redact_url(url)))?;
            Ok(Arc::new(store))
        }
        Some(url) => {
            let store = SqliteStore::open_url(url)
                .await
                .with_context(|| format!("cannot open SQLite at {url}"))?;
            Ok(Arc::new(store))
        }
        None => {
            std::fs::create_dir_all(&config.data_dir).with_context(|| {
                format!(
                    "cannot create the data directory {}",
                    config.data_dir.display()
                )
            })?;
            let path = config.data_dir.join("carerecord.db");
            let store = SqliteStore::open(&path)
                .await
                .with_context(|| format!("cannot open SQLite at {}", path.display()))?;
            Ok(Arc::new(store))
        }
    }
}

pub fn app_state(config: &Config, store: Arc<dyn ResourceStore>) -> AppState {
    AppState {
        store,
        settings: Arc::new(ServerSettings {
            public_base_url: config.public_base_url.clone(),
            max_body_bytes: config.max_body_bytes,
            default_page_size: config.default_page_size,
            max_page_size: config.max_page_size,
        }),
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

/// Serves Prometheus metrics on their own listener.
pub async fn serve_metrics(listener: tokio::net::TcpListener) -> anyhow::Result<()> {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let h = handle.clone();
            async move { h.render() }
        }),
    );
    axum::serve(listener, app).await.context("metrics server")?;
    Ok(())
}

/// `carerecord serve`.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    if let Some(addr) = config.metrics_listen {
        let ml = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen for metrics on {addr}"))?;
        tracing::info!(%addr, "metrics at /metrics");
        tokio::spawn(async move {
            if let Err(e) = serve_metrics(ml).await {
                tracing::error!(error = %e, "metrics server stopped");
            }
        });
    }
    let addr = listener.local_addr()?;
    tracing::info!(%addr, backend = store.backend(), "carerecord listening; FHIR base http://{addr}/fhir");
    carerecord_server::serve(app_state(&config, store), listener, shutdown_signal()).await?;
    Ok(())
}
