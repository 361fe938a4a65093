//! End-to-end tests of the FHIR API through a real server on port 0.
//!
//! The store is SQLite in a temporary directory, or PostgreSQL (a fresh database per test) when
//! `CARERECORD_TEST_BACKEND=postgres`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation is a failed test"
)]

mod helpers;

mod access;
mod audit;
mod auth;
mod bundles;
mod errors;
mod history;
mod match_reviews;
mod oversight;
mod residency;
mod rest;
mod scopes;
mod search;
mod submissions;
