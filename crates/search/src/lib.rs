//! FHIR R4 search, without I/O.
//!
//! - [`registry`]: the search parameters the R4 specification defines for carerecord's types,
//!   generated from the specification's SearchParameter resources, and the Patient compartment.
//! - [`index`]: what a stored resource contributes to each parameter's index (extraction).
//! - [`query`]: the typed search-query tree, and the parser from URL parameters to it.
//! - [`datetime`]: FHIR partial dates as `[low, high)` instants.
//!
//! Storage backends compile a [`query::SearchQuery`] to SQL over the rows of [`index::IndexEntries`].
#![forbid(unsafe_code)]

pub mod datetime;
pub mod index;
pub mod query;
pub mod registry;
pub mod text;
