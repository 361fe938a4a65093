//! FHIR R4 model pieces that carerecord relies on everywhere.
//!
//! The store keeps resources as the JSON it received (no Rust struct per resource type: see
//! `docs/adr/0001-store-json-not-structs.md`), so this crate holds only the small typed edges:
//! which resource types exist here, what a logical id and version look like, NHS numbers,
//! OperationOutcome issues and structural validation.
#![forbid(unsafe_code)]

pub mod ids;
pub mod nhs_number;
pub mod outcome;
pub mod resource_type;
pub mod validate;
pub mod view;

pub use ids::{IdError, LogicalId, VersionId};
pub use nhs_number::{NHS_NUMBER_SYSTEM, NhsNumber, NhsNumberError};
pub use outcome::{Issue, IssueCode, Severity, operation_outcome};
pub use resource_type::{ResourceType, UnknownResourceType};
