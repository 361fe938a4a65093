//! The command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::Partial;

#[derive(Debug, Parser)]
#[command(
    name = "carerecord",
    version,
    about = "A shared care record: FHIR R4 store and API"
)]
pub struct Cli {
    /// A TOML configuration file (see `carerecord config print-default`).
    #[arg(long, global = true, env = "CARERECORD_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(StoreFlags),
    /// Create or upgrade the database schema, then exit.
    Migrate(StoreFlags),
    /// Show or check the configuration.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Print the default configuration file.
    PrintDefault,
    /// Load the configuration from every source and report problems.
    Check(StoreFlags),
}

#[derive(Debug, Clone, Default, clap::Args)]
pub struct StoreFlags {
    /// Address to listen on.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Directory of the embedded SQLite store.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// `postgres://…` to use PostgreSQL instead of the embedded store.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Address for Prometheus metrics, or `off`.
    #[arg(long)]
    pub metrics_listen: Option<String>,
}

impl From<StoreFlags> for Partial {
    fn from(f: StoreFlags) -> Partial {
        Partial {
            listen: f.listen,
            data_dir: f.data_dir,
            database_url: f.database_url,
            metrics_listen: f.metrics_listen,
            ..Partial::default()
        }
    }
}
