//! End-to-end tests of the FHIR API through a real server on port 0.
//!
//! The store is SQLite in a temporary directory, or PostgreSQL (a fresh database per test) when
//! `CARERECORD_TEST_BACKEND=postgres`.

mod helpers;

mod bundles;
mod errors;
mod history;
mod rest;
mod search;
