//! The command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{Partial, PartialAudit};

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
    /// Start on a fresh embedded store preloaded with a small synthetic London.
    Demo(DemoArgs),
    /// Write a synthetic London as FHIR transaction Bundles (organisations.json, people.ndjson).
    Generate(GenerateArgs),
    /// Load NDJSON or JSON files of Bundles or resources into the configured store.
    Import(ImportArgs),
    /// Show or check the configuration.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Work with the audit trail.
    Audit {
        #[command(subcommand)]
        action: AuditCommand,
    },
    /// Programme administrators.
    Admin {
        #[command(subcommand)]
        action: AdminAction,
    },
    /// People who sign in.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Registered systems (OAuth2 clients).
    Client {
        #[command(subcommand)]
        action: ClientAction,
    },
    /// Print a signed context launch token (a test tool for integrators: docs/integrating.md).
    LaunchToken(LaunchTokenArgs),
    /// Sending systems of HL7 v2 feeds (known by MSH-3/MSH-4).
    Systems {
        #[command(subcommand)]
        action: SystemsAction,
    },
    /// The identity review queue: uncertain matches of incoming people.
    Matches {
        #[command(subcommand)]
        action: MatchesAction,
    },
    /// HL7 v2 feeds: dead letters and their replay.
    Hl7 {
        #[command(subcommand)]
        action: Hl7Action,
    },
}

#[derive(Debug, Subcommand)]
pub enum SystemsAction {
    /// Register a system that sends HL7 v2 for an organisation.
    Add(SystemsAddArgs),
    /// List the registered sending systems.
    List(StoreFlags),
}

#[derive(Debug, Clone, clap::Args)]
pub struct SystemsAddArgs {
    /// A name for people (e.g. "ZRH01 PAS").
    #[arg(long)]
    pub name: String,
    /// The organisation's logical id (`Organization/{id}`; its ODS code is the source).
    #[arg(long)]
    pub organisation: String,
    /// MSH-3, the sending application.
    #[arg(long)]
    pub msh_application: String,
    /// MSH-4, the sending facility.
    #[arg(long)]
    pub msh_facility: String,
    #[command(flatten)]
    pub store: StoreFlags,
}

#[derive(Debug, Subcommand)]
pub enum MatchesAction {
    /// List review items (open ones unless `--all`).
    List {
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        store: StoreFlags,
    },
    /// The same person: merge the new record into the candidate.
    Link {
        id: i64,
        #[command(flatten)]
        store: StoreFlags,
    },
    /// Different people: keep both records.
    Reject {
        id: i64,
        #[command(flatten)]
        store: StoreFlags,
    },
    /// Undo a merge (of a linked item or an HL7 A40) by its merge id.
    Unmerge {
        merge_id: i64,
        #[command(flatten)]
        store: StoreFlags,
    },
}

#[derive(Debug, Subcommand)]
pub enum Hl7Action {
    /// List dead letters (open ones unless `--all`).
    DeadLetters {
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        store: StoreFlags,
    },
    /// Process dead letters again (after a fix); those accepted are resolved.
    Replay {
        #[arg(long, conflicts_with = "all")]
        id: Option<i64>,
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        store: StoreFlags,
    },
}

#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Also write the demo accounts (usernames, passwords, TOTP secrets, the service client)
    /// as JSON to this file, for browser tests that sign in.
    #[arg(long)]
    pub accounts_file: Option<PathBuf>,
    #[command(flatten)]
    pub store: StoreFlags,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the audit trail's hash chain. Exits 0 when intact; 3 when an entry was changed,
    /// deleted, inserted or reordered (the first one is named).
    Verify(VerifyArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// A head printed by an earlier run, `SEQ:HASH`, kept outside the database: shows entries
    /// removed from the end (or a chain rebuilt), which the chain alone cannot.
    #[arg(long)]
    pub anchor: Option<String>,
    #[command(flatten)]
    pub store: StoreFlags,
}

#[derive(Debug, Subcommand)]
pub enum AdminAction {
    /// Create the first programme administrator; prints a one-time password and the TOTP
    /// secret. Refuses when an administrator exists, unless `--force`.
    Create(AdminCreateArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct AdminCreateArgs {
    #[arg(long)]
    pub username: String,
    /// The administrator's name, as screens and audit show it.
    #[arg(long)]
    pub name: String,
    /// The programme organisation's logical id.
    #[arg(long, default_value = "programme")]
    pub org: String,
    /// Create another administrator even though one exists.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub store: StoreFlags,
}

#[derive(Debug, Subcommand)]
pub enum UserAction {
    /// Create a user with a role at an organisation (prints a one-time password and the TOTP
    /// secret), or grant an existing user another role.
    Add(UserAddArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct UserAddArgs {
    #[arg(long)]
    pub username: String,
    /// The person's name (needed for a new user).
    #[arg(long)]
    pub name: Option<String>,
    /// care-worker, senior-carer, registered-nurse, care-home-manager, gp,
    /// hospital-clinician, privacy-officer or programme-admin.
    #[arg(long)]
    pub role: String,
    /// The organisation's logical id (`Organization/{id}`).
    #[arg(long)]
    pub org: String,
    #[command(flatten)]
    pub store: StoreFlags,
}

#[derive(Debug, Subcommand)]
pub enum ClientAction {
    /// Register a system that gets tokens by client credentials (prints its secret once).
    Add(ClientAddArgs),
    /// Let a registered system (with a public key) launch its staff into a care home
    /// (signed context launch: docs/integrating.md). Again for the same home replaces its roles.
    AddLaunch(ClientAddLaunchArgs),
    /// Register a SMART app that people authorise (authorisation code flow with PKCE):
    /// public unless given a secret or a key (docs/integrating.md).
    AddSmart(ClientAddSmartArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct ClientAddSmartArgs {
    #[arg(long)]
    pub client_id: String,
    /// The app's name, shown to people when they are asked to authorise it.
    #[arg(long)]
    pub name: String,
    /// A redirect URI (https, or http on 127.0.0.1/localhost), matched exactly; repeatable.
    #[arg(long = "redirect-uri", required = true)]
    pub redirect_uris: Vec<String>,
    /// The most the app may be granted, space-separated (e.g. "launch/patient patient/*.rs
    /// openid fhirUser offline_access").
    #[arg(long)]
    pub scope: String,
    /// Where the portal sends people to open a resident in the app (EHR launch).
    #[arg(long)]
    pub launch_url: Option<String>,
    /// A confidential app with a client secret (client_secret_basic / client_secret_post).
    #[arg(long)]
    pub secret: bool,
    /// A confidential app with a JWK or JWK Set file (private_key_jwt).
    #[arg(long, conflicts_with = "public_key_pem")]
    pub jwk_file: Option<PathBuf>,
    /// A confidential app with a PEM public key (private_key_jwt).
    #[arg(long)]
    pub public_key_pem: Option<PathBuf>,
    #[command(flatten)]
    pub store: StoreFlags,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ClientAddLaunchArgs {
    #[arg(long)]
    pub client_id: String,
    /// The care home organisation's logical id.
    #[arg(long)]
    pub org: String,
    /// The roles the system may assert there, comma-separated (care-worker, senior-carer,
    /// registered-nurse, care-home-manager).
    #[arg(long, value_delimiter = ',', required = true)]
    pub roles: Vec<String>,
    #[command(flatten)]
    pub store: StoreFlags,
}

#[derive(Debug, Clone, clap::Args)]
pub struct LaunchTokenArgs {
    /// The system's private key: PKCS#8 PEM, EC P-256 (signs ES256) or RSA (signs RS256).
    #[arg(long)]
    pub key: PathBuf,
    /// The system's client id (`iss`).
    #[arg(long)]
    pub client_id: String,
    /// carerecord's launch URL (`aud`), e.g. http://127.0.0.1:8080/launch.
    #[arg(long)]
    pub aud: String,
    /// The user's id in the care home system (`sub`).
    #[arg(long)]
    pub user_id: String,
    /// The user's name.
    #[arg(long)]
    pub name: String,
    /// The user's role (care-worker, senior-carer, registered-nurse, care-home-manager).
    #[arg(long)]
    pub role: String,
    /// The care home's ODS code.
    #[arg(long)]
    pub ods: String,
    /// The resident's NHS number.
    #[arg(long)]
    pub nhs_number: String,
    /// The resident's date of birth (YYYY-MM-DD).
    #[arg(long)]
    pub birth_date: String,
    /// When the user last completed data-security training (YYYY-MM-DD).
    #[arg(long)]
    pub training_completed: Option<String>,
    /// Seconds until the token expires (at most 300).
    #[arg(long, default_value_t = 120)]
    pub lifetime: i64,
    /// A `kid` header naming the key in the system's JWK Set.
    #[arg(long)]
    pub kid: Option<String>,
    /// Print an HTML page with the form that posts the token (open it in a browser), instead
    /// of the bare token.
    #[arg(long)]
    pub html: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ClientAddArgs {
    #[arg(long)]
    pub client_id: String,
    /// `system` (acts for its organisation) or `service` (carerecord's own trusted tools).
    #[arg(long)]
    pub role: String,
    /// The organisation's logical id.
    #[arg(long)]
    pub org: String,
    /// Generate a client secret (client_secret_basic / client_secret_post).
    #[arg(long)]
    pub secret: bool,
    /// A JWK or JWK Set file with the client's public key (private_key_jwt).
    #[arg(long, conflicts_with = "public_key_pem")]
    pub jwk_file: Option<PathBuf>,
    /// A PEM file with the client's RSA, EC P-384 or (for launches) EC P-256 public key.
    #[arg(long)]
    pub public_key_pem: Option<PathBuf>,
    /// An https URL where the system publishes its public keys (a JWK Set), fetched and
    /// cached by carerecord, instead of a key file (role system only).
    #[arg(long, conflicts_with_all = ["jwk_file", "public_key_pem"])]
    pub jwks_uri: Option<String>,
    /// The SMART scopes it may be granted by client credentials, space-separated (e.g.
    /// "system/Patient.rs system/Observation.rs"). Without it, any system/ scope it asks for,
    /// within the access policy.
    #[arg(long)]
    pub scope: Option<String>,
    #[command(flatten)]
    pub store: StoreFlags,
}

#[derive(Debug, Subcommand)]
#[expect(
    clippy::large_enum_variant,
    reason = "parsed once per process; boxing the flags would only complicate clap's derive"
)]
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
    /// The audit chain's key file (default `<data-dir>/audit.key`).
    #[arg(long)]
    pub audit_key_file: Option<PathBuf>,
    /// Address for HL7 v2 over MLLP (`serve`, `demo`), or `off`. `demo` listens on
    /// 127.0.0.1:2575 unless told otherwise; `serve` only when given.
    #[arg(long, env = "CARERECORD_MLLP_LISTEN")]
    pub mllp_listen: Option<String>,
    /// MLLP over TLS: the server's PEM certificate chain (with `--mllp-tls-key`). Without it,
    /// MLLP is plain TCP (for a loopback or an already-encrypted network only).
    #[arg(long, env = "CARERECORD_MLLP_TLS_CERT", requires = "mllp_tls_key")]
    pub mllp_tls_cert: Option<PathBuf>,
    /// MLLP over TLS: the PEM private key of `--mllp-tls-cert`.
    #[arg(long, env = "CARERECORD_MLLP_TLS_KEY", requires = "mllp_tls_cert")]
    pub mllp_tls_key: Option<PathBuf>,
    /// MLLP over TLS: a PEM CA bundle; senders must then present a certificate it issued
    /// (mutual TLS).
    #[arg(
        long,
        env = "CARERECORD_MLLP_TLS_CLIENT_CA",
        requires = "mllp_tls_cert"
    )]
    pub mllp_tls_client_ca: Option<PathBuf>,
}

impl From<StoreFlags> for Partial {
    fn from(f: StoreFlags) -> Partial {
        Partial {
            listen: f.listen,
            data_dir: f.data_dir,
            database_url: f.database_url,
            metrics_listen: f.metrics_listen,
            audit: f.audit_key_file.map(|k| PartialAudit { key_file: Some(k) }),
            ..Partial::default()
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct GenerateArgs {
    /// Directory to write into.
    #[arg(long, default_value = "synthetic-london")]
    pub out: PathBuf,
    /// How many people.
    #[arg(long, default_value_t = 400)]
    pub patients: u32,
    /// How many care homes.
    #[arg(long, default_value_t = 12)]
    pub care_homes: u32,
    /// The seed: the same seed (and `--as-of`) writes byte-identical files.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// "Today" for the records (YYYY-MM-DD): every date runs back from it. The default is a
    /// fixed date, so the output never depends on the clock.
    #[arg(long, value_name = "DATE", default_value_t = carerecord_synth::AsOf::default())]
    pub as_of: carerecord_synth::AsOf,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ImportArgs {
    /// Files or directories of `.json` / `.ndjson`.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Who runs the import, as the audit trail names them (one entry per file); the OS user
    /// when not given.
    #[arg(long)]
    pub operator: Option<String>,
    #[command(flatten)]
    pub store: StoreFlags,
}
