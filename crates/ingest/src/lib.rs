//! Gathering from source systems: the I/O side.
//!
//! - [`matching`]: every incoming person resolved to one Patient (NHS number, local id,
//!   demographics), uncertain ones queued for review;
//! - [`merge`]: one Patient absorbing another (HL7 A40, a linked review item), reversible;
//! - [`review`]: the data-quality queue (list, link, reject) as functions the CLI and the
//!   server call;
//! - [`submission`]: the same matching for the Patients in FHIR submissions, which the server
//!   asks for through the store's `PersonMatcher`.
//!
//! Nothing here knows HTTP or a particular database: it works over the store's traits.
#![forbid(unsafe_code)]

pub mod apply;
pub mod matching;
pub mod merge;
pub mod mllp;
pub mod pipeline;
pub mod review;
pub mod submission;
pub mod systems;

/// What can go wrong while gathering.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// An NHS number failed the Modulus 11 check (or is not ten digits): never a match key.
    #[error("invalid NHS number: {0}")]
    InvalidNhsNumber(String),
    /// A review item or merge that is not there or was already decided.
    #[error("{0}")]
    NotFound(String),
    /// The request cannot be carried out as asked (names what is wrong).
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(carerecord_store::StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}
