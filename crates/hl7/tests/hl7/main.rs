//! The crate's one integration-test binary: fixture-driven mapping, nasty input, property
//! tests and the codec over a real TCP connection.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

mod adt;
mod adt_clinical;
mod codec;
mod errors;
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

/// Every resource mapped from every well-formed fixture is structurally valid FHIR R4 once the
/// ingest has put the matched patient in place of the placeholder.
#[test]
fn every_mapped_resource_is_valid_fhir() {
    let good = [
        ("adt_a01_admit.hl7", "ZRH01"),
        ("adt_a02_transfer.hl7", "ZRH01"),
        ("adt_a03_discharge_to_care_home.hl7", "ZRH01"),
        ("adt_a04_register.hl7", "ZRH01"),
        ("adt_a05_preadmit.hl7", "ZRH01"),
        ("adt_a08_update.hl7", "ZRH01"),
        ("adt_a11_cancel_admit.hl7", "ZRH01"),
        ("adt_a12_cancel_transfer.hl7", "ZRH01"),
        ("adt_a13_cancel_discharge.hl7", "ZRH01"),
        ("adt_a28_add_person.hl7", "ZRH01"),
        ("adt_a31_update_person.hl7", "ZRH01"),
        ("adt_a40_merge.hl7", "ZRH01"),
        ("adt_a01_allergies_diagnoses_kin.hl7", "ZRH01"),
        ("adt_a28_empty_al1.hl7", "ZRH01"),
        ("oru_r01_results.hl7", "ZLB01"),
        ("oru_r01_correction.hl7", "ZLB01"),
        ("oru_r01_500_obx.hl7", "ZLB01"),
        ("mdm_t02_text.hl7", "ZRH01"),
        ("mdm_t02_pdf.hl7", "ZRH01"),
        ("nasty_escapes.hl7", "ZRH01"),
        ("nasty_repeats.hl7", "ZRH01"),
        ("nasty_latin1_declared.hl7", "ZRH01"),
        ("nasty_zsegments.hl7", "ZRH01"),
        ("nasty_lf_separators.hl7", "ZRH01"),
    ];
    for (name, ods) in good {
        let m = map_fixture(name, ods);
        let mut resources = vec![m.person.patient.clone()];
        resources.extend(m.merge_from.iter().map(|p| p.patient.clone()));
        resources.extend(m.entries.iter().map(|e| e.resource.clone()));
        for r in resources {
            let text = r
                .to_string()
                .replace(carerecord_hl7::map::PATIENT_PLACEHOLDER, "Patient/p1");
            let r: Value = serde_json::from_str(&text).expect("json");
            let issues = carerecord_fhir::validate::validate(&r);
            assert!(
                issues.is_empty(),
                "{name}: {} {issues:?}",
                r["resourceType"]
            );
        }
    }
}
