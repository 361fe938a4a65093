use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use carerecord_hl7::map::{Event, PATIENT_PLACEHOLDER};

use crate::{assert_provenance, at, fixture, map_fixture, s};

const DOCS: &str = "https://fhir.carerecord.example/Id/ZRH01/document-number";

#[test]
fn a_text_document_becomes_a_document_reference_with_the_text_inline() {
    let m = map_fixture("mdm_t02_text.hl7", "ZRH01");
    assert_eq!(m.event, Event::MdmT02);
    assert_eq!(m.entries.len(), 1);
    let d = &m.entries[0].resource;
    assert_eq!(d["resourceType"], "DocumentReference");
    assert_provenance(d, "ZRH01", "EPR", "ZRH01", "ZRH01-T02-0001");
    assert_eq!(
        m.entries[0].key,
        Some((DOCS.to_owned(), "DOC-0001".to_owned()))
    );
    assert_eq!(s(d, "/masterIdentifier/value"), "DOC-0001");
    assert_eq!(s(d, "/status"), "current");
    assert_eq!(s(d, "/docStatus"), "final");
    assert_eq!(s(d, "/type/coding/0/code"), "DS");
    assert_eq!(s(d, "/subject/reference"), PATIENT_PLACEHOLDER);
    assert_eq!(s(d, "/date"), "2026-07-20T13:55:00+01:00");
    assert_eq!(s(d, "/custodian/identifier/value"), "ZRH01");
    assert_eq!(s(d, "/context/encounter/0/identifier/value"), "V2026-0001");
    assert_eq!(
        s(d, "/content/0/attachment/contentType"),
        "text/plain; charset=utf-8"
    );
    let text = STANDARD
        .decode(s(d, "/content/0/attachment/data"))
        .expect("base64");
    let expected = "Discharged to care home ZCH01.\nPlan^ continue current medication.\nReview by GP in two weeks.";
    assert_eq!(String::from_utf8(text).expect("utf-8"), expected);
    assert_eq!(
        at(d, "/content/0/attachment/size").as_u64(),
        Some(expected.len() as u64)
    );
}

#[test]
fn a_pdf_document_is_carried_byte_for_byte() {
    let m = map_fixture("mdm_t02_pdf.hl7", "ZRH01");
    let d = &m.entries[0].resource;
    assert_eq!(s(d, "/content/0/attachment/contentType"), "application/pdf");
    let pdf = STANDARD
        .decode(s(d, "/content/0/attachment/data"))
        .expect("base64");
    assert!(pdf.starts_with(b"%PDF-1.4"));
    // The same bytes as the base64 in the fixture's OBX-5.5, decoded independently here.
    let raw = String::from_utf8(fixture("mdm_t02_pdf.hl7")).expect("ascii");
    let b64 = raw
        .split("Base64^")
        .nth(1)
        .and_then(|r| r.split('|').next())
        .expect("ED data");
    assert_eq!(pdf, STANDARD.decode(b64).expect("fixture base64"));
    assert_eq!(
        at(d, "/content/0/attachment/size").as_u64(),
        Some(pdf.len() as u64)
    );
}
