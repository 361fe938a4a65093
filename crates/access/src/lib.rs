//! Appropriate access: who is asking ([`Principal`]), in which [`Role`], for which organisation;
//! what the policy needs to know about each resource ([`classify`]); and what a principal may
//! see ([`Visibility`]), which the store compiles into its queries. Pure: no I/O.

pub mod classify;
pub mod policy;
pub mod residency;
mod role;
pub mod scope;
mod visibility;

pub use classify::{Classification, Classifier, CodeLists, Relationship, RelationshipKind};
pub use policy::{Denial, PolicySettings};
pub use role::{OrgKind, Principal, PrincipalId, Role, SmartGrant, View};
pub use scope::{ContextKind, Interaction, Permit, ScopeError, ScopeSet};
pub use visibility::{
    DISCHARGE_SUMMARY_LOINC, DISCHARGE_SUMMARY_SNOMED, KnownCare, Scope, Visibility,
};
