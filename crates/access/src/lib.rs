//! Appropriate access: who is asking ([`Principal`]), in which [`Role`], for which organisation,
//! and — in [`policy`] — the one decision about what they may see. Pure: the store compiles the
//! decision's visibility into its queries, the server maps denials to OperationOutcomes.

mod role;

pub use role::{OrgKind, Principal, PrincipalId, Role, View};
