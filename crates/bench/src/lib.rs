//! Benchmarks and load testing for carerecord.
//!
//! - [`synth`]: a deterministic generator of synthetic care-home resident records, one FHIR R4
//!   transaction Bundle per resident.
//! - [`inprocess`]: writing those Bundles straight through the store API (no HTTP), as the
//!   server's transaction handler would.
//! - [`stats`]: latency percentiles.
//!
//! The `carerecord-load` binary drives a real server over HTTP; the criterion benches under
//! `benches/` measure the pure pieces and in-process import.
#![forbid(unsafe_code)]

pub mod inprocess;
pub mod stats;
pub mod synth;
