//! The crate's one integration-test binary: fixture-driven mapping, nasty input, property
//! tests and the codec over a real TCP connection.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

mod adt;
mod codec;
mod mdm;
mod nasty;
mod oru;
mod props;

use carerecord_hl7::map::{MapContext, Mapped};
use serde_json::Value;

pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn ctx(ods: &str) -> MapContext {
    MapContext {
        sender_ods: ods.to_owned(),
        sender_system: format!("{ods} TEST"),
        received_at: time::macros::datetime!(2026-07-20 15:00:01 UTC),
        message_id: "m-1".to_owned(),
    }
}

pub fn map_fixture(name: &str, ods: &str) -> Mapped {
    let message = carerecord_hl7::parse(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    carerecord_hl7::map::map(&message, &ctx(ods)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// A JSON pointer that must resolve.
pub fn at<'a>(v: &'a Value, pointer: &str) -> &'a Value {
    v.pointer(pointer)
        .unwrap_or_else(|| panic!("{pointer} missing in {v:#}"))
}

pub fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    at(v, pointer)
        .as_str()
        .unwrap_or_else(|| panic!("{pointer} is not a string in {v:#}"))
}

/// Every resource carries the provenance the access classifier and the portal read.
pub fn assert_provenance(resource: &Value, ods: &str, app: &str, facility: &str, control_id: &str) {
    assert_eq!(
        s(resource, "/meta/source"),
        format!("urn:hl7v2:{app}@{facility}#{control_id}")
    );
    let tags = at(resource, "/meta/tag").as_array().expect("tags");
    assert!(
        tags.iter().any(|t| t["system"]
            == "https://fhir.carerecord.example/CodeSystem/source-organisation"
            && t["code"] == ods),
        "no source-organisation tag {ods} in {resource:#}"
    );
}
