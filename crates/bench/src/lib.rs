//! Benchmarks and load testing for carerecord, on the synthetic London of `carerecord-synth`.
//!
//! - [`data`]: the data set (a [`carerecord_synth::London`] sized for the run), its
//!   organisations as transaction Bundles, and what the latency phases need to know about each
//!   person (Patient id, LOINC codes).
//! - [`inprocess`]: writing those Bundles straight through the store API (no HTTP), as the
//!   server's transaction handler would.
//! - [`stats`]: latency percentiles.
//!
//! The `carerecord-load` binary drives a real server over HTTP; the criterion benches under
//! `benches/` measure the pure pieces and in-process import.
#![forbid(unsafe_code)]

pub mod data;
pub mod inprocess;
pub mod stats;
