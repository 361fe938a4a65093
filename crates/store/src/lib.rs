//! carerecord's storage boundary.
//!
//! The traits here ([`ResourceStore`], [`StoreTx`]) are all the server knows of storage. Each
//! backend (`carerecord-store-sqlite`, `carerecord-store-postgres`) implements them over the same
//! logical schema; what both share — stamping versions, computing index rows, and compiling a
//! search to SQL — lives here so the backends differ only where their databases do.
#![forbid(unsafe_code)]

pub mod audit;
pub mod break_glass;
pub mod cells;
mod directory;
pub mod directory_sql;
pub mod engine;
mod error;
pub mod group_commit;
pub mod ingest;
mod model;
pub mod pending;
mod prepare;
pub mod smart;
pub mod sql;
mod traits;
pub mod write;

#[cfg(feature = "testsuite")]
pub mod suite;

pub use audit::{
    AuditAction, AuditAgent, AuditEntry, AuditFilter, AuditKey, AuditOutcome, AuditRecord,
    AuditScope, BreakGlass, Channel, PrincipalKind, Tamper, TamperKind, VerifyReport,
};
pub use directory::{
    ClientRecord, Directory, LaunchRegistration, RoleGrant, TokenRecord, UserRecord,
};
pub use error::StoreError;
pub use group_commit::GroupCommit;
pub use model::{
    BreakGlassGrant, BreakGlassRecord, BreakGlassReview, HistoryQuery, Page, ResourceKey,
    ReviewOutcome, ReviewStatus, SearchOutcome, StoredResource, VersionHead, WriteKind,
    WriteResult, format_instant, now_micros, parse_instant,
};
pub use prepare::{PreparedBody, PreparedVersion, prepare_body, prepare_version};
pub use smart::{
    AuthCodeRecord, ClientRegistration, LaunchContextRecord, RefreshTokenRecord, RegisteredClient,
    SmartAppRecord, SmartDirectory,
};
pub use traits::{ResourceStore, StoreTx};
