use std::collections::HashSet;

use carerecord_hl7::map::{EntryAction, Event, PATIENT_PLACEHOLDER};
use serde_json::Value;

use crate::{assert_provenance, at, map_fixture, s};

const OBS: &str = "https://fhir.carerecord.example/Id/ZLB01/observation";
const UCUM: &str = "http://unitsofmeasure.org";

fn by_type<'a>(entries: &'a [carerecord_hl7::map::Entry], rt: &str) -> Vec<&'a Value> {
    entries
        .iter()
        .map(|e| &e.resource)
        .filter(|r| r["resourceType"] == rt)
        .collect()
}

#[test]
fn results_become_observations_before_the_reports_that_reference_them() {
    let m = map_fixture("oru_r01_results.hl7", "ZLB01");
    assert_eq!(m.event, Event::OruR01);
    assert_eq!(m.person.nhs_number.as_deref(), Some("9990000018"));
    assert_eq!(
        m.person.local_ids,
        vec![("ZLB01".to_owned(), "L778899".to_owned())]
    );
    let types: Vec<&str> = m
        .entries
        .iter()
        .map(|e| e.resource["resourceType"].as_str().unwrap_or(""))
        .collect();
    let mut expected = vec!["Observation"; 9];
    expected.push("DiagnosticReport");
    expected.extend(["Observation", "Observation", "DiagnosticReport"]);
    assert_eq!(types, expected);
    assert!(m.entries.iter().all(|e| e.action == EntryAction::Upsert));

    let reports = by_type(&m.entries, "DiagnosticReport");
    let r = reports[0];
    assert_provenance(r, "ZLB01", "WINPATH", "ZLB01", "ZLB01-0001");
    assert_eq!(
        s(r, "/identifier/0/system"),
        "https://fhir.carerecord.example/Id/ZLB01/filler-order-number"
    );
    assert_eq!(s(r, "/identifier/0/value"), "FL0001");
    assert_eq!(s(r, "/identifier/1/value"), "PL0001");
    assert_eq!(s(r, "/status"), "final");
    assert_eq!(s(r, "/code/coding/0/code"), "UE");
    assert_eq!(
        s(r, "/code/coding/0/system"),
        "https://fhir.carerecord.example/CodeSystem/ZLB01/winpath"
    );
    assert_eq!(s(r, "/code/text"), "Urea and electrolytes");
    assert_eq!(s(r, "/category/0/coding/0/code"), "CH");
    assert_eq!(s(r, "/subject/reference"), PATIENT_PLACEHOLDER);
    assert_eq!(s(r, "/effectiveDateTime"), "2026-07-16T08:30:00+01:00");
    assert_eq!(s(r, "/issued"), "2026-07-16T11:00:00+01:00");
    assert_eq!(s(r, "/conclusion"), "Report comment");
    let refs: Vec<&str> = at(r, "/result")
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|x| x["reference"].as_str())
        .collect();
    assert_eq!(refs.len(), 9);
    assert_eq!(
        refs[0],
        format!("Observation?identifier={OBS}|FL0001:2951-2:1")
    );
    // Each reference names an Observation of this message by its key.
    let keys: HashSet<String> = m
        .entries
        .iter()
        .filter_map(|e| e.key.clone())
        .map(|(sys, v)| format!("Observation?identifier={sys}|{v}"))
        .collect();
    assert!(refs.iter().all(|r| keys.contains(*r)));
    assert_eq!(s(reports[1], "/status"), "preliminary");
    assert_eq!(s(reports[1], "/category/0/coding/0/code"), "HM");
}

#[test]
fn each_value_type_lands_in_its_fhir_element() {
    let m = map_fixture("oru_r01_results.hl7", "ZLB01");
    let o = by_type(&m.entries, "Observation");

    let sodium = o[0];
    assert_provenance(sodium, "ZLB01", "WINPATH", "ZLB01", "ZLB01-0001");
    assert_eq!(s(sodium, "/identifier/0/system"), OBS);
    assert_eq!(s(sodium, "/identifier/0/value"), "FL0001:2951-2:1");
    assert_eq!(
        m.entries[0].key,
        Some((OBS.to_owned(), "FL0001:2951-2:1".to_owned()))
    );
    assert_eq!(s(sodium, "/status"), "final");
    assert_eq!(s(sodium, "/code/coding/0/system"), "http://loinc.org");
    assert_eq!(at(sodium, "/valueQuantity/value").to_string(), "128");
    assert_eq!(s(sodium, "/valueQuantity/system"), UCUM);
    assert_eq!(s(sodium, "/valueQuantity/code"), "mmol/L");
    assert_eq!(at(sodium, "/referenceRange/0/low/value").to_string(), "133");
    assert_eq!(
        at(sodium, "/referenceRange/0/high/value").to_string(),
        "146"
    );
    assert_eq!(s(sodium, "/interpretation/0/coding/0/code"), "L");
    assert_eq!(s(sodium, "/note/0/text"), "Result checked\nRepeat advised");
    assert_eq!(s(sodium, "/effectiveDateTime"), "2026-07-16T08:30:00+01:00");

    let potassium = o[1];
    assert_eq!(
        at(potassium, "/valueQuantity/value").to_string(),
        "5.90",
        "decimal text kept"
    );
    assert_eq!(s(potassium, "/valueQuantity/code"), "mmol/L");
    assert_eq!(s(potassium, "/interpretation/0/coding/0/code"), "H");

    let egfr = o[2];
    assert_eq!(s(egfr, "/valueQuantity/comparator"), ">");
    assert_eq!(at(egfr, "/valueQuantity/value").to_string(), "90");
    assert_eq!(s(egfr, "/valueQuantity/code"), "mL/min/{1.73_m2}");
    assert_eq!(at(egfr, "/referenceRange/0/low/value").to_string(), "60");
    assert!(egfr.pointer("/referenceRange/0/high").is_none());

    assert_eq!(at(o[3], "/valueRange/low/value").to_string(), "10");
    assert_eq!(at(o[3], "/valueRange/high/value").to_string(), "20");
    assert_eq!(at(o[4], "/valueRatio/numerator/value").to_string(), "1");
    assert_eq!(at(o[4], "/valueRatio/denominator/value").to_string(), "128");
    assert_eq!(s(o[5], "/valueString"), "Haemolysed sample|repeat advised");
    assert_eq!(s(o[6], "/valueString"), "Line one\nLine two");
    assert_eq!(
        s(o[7], "/valueCodeableConcept/coding/0/system"),
        "http://snomed.info/sct"
    );
    assert_eq!(s(o[7], "/valueCodeableConcept/coding/0/code"), "260385009");

    let not_obtained = o[8];
    assert_eq!(s(not_obtained, "/status"), "cancelled");
    assert!(
        not_obtained
            .as_object()
            .expect("object")
            .keys()
            .all(|k| !k.starts_with("value"))
    );
    assert_eq!(
        s(not_obtained, "/dataAbsentReason/coding/0/code"),
        "not-performed"
    );

    let wcc = o[10];
    assert_eq!(s(wcc, "/status"), "preliminary");
    assert_eq!(s(wcc, "/valueQuantity/unit"), "x10^9/L");
    assert_eq!(s(wcc, "/valueQuantity/code"), "10*9/L");
    assert_eq!(s(o[9], "/interpretation/0/coding/0/code"), "LL");
}

#[test]
fn a_correction_is_keyed_on_the_result_it_supersedes() {
    let original = map_fixture("oru_r01_results.hl7", "ZLB01");
    let corrected = map_fixture("oru_r01_correction.hl7", "ZLB01");
    let potassium_key = original.entries[1].key.clone();
    assert_eq!(
        potassium_key.as_ref().map(|k| k.1.as_str()),
        Some("FL0001:2823-3:1")
    );
    assert_eq!(corrected.entries[0].key, potassium_key);
    assert_eq!(s(&corrected.entries[0].resource, "/status"), "amended");
    assert_eq!(
        at(&corrected.entries[0].resource, "/valueQuantity/value").to_string(),
        "4.10"
    );
    let report_key = original.entries[9].key.clone();
    assert_eq!(corrected.entries[1].key, report_key);
    assert_eq!(s(&corrected.entries[1].resource, "/status"), "corrected");
}

#[test]
fn a_report_with_500_results_maps_every_one_with_its_own_key() {
    let m = map_fixture("oru_r01_500_obx.hl7", "ZLB01");
    assert_eq!(m.entries.len(), 501);
    let keys: HashSet<_> = m.entries.iter().filter_map(|e| e.key.clone()).collect();
    assert_eq!(keys.len(), 501);
    let report = &m.entries[500].resource;
    assert_eq!(at(report, "/result").as_array().map(Vec::len), Some(500));
    assert_eq!(
        at(&m.entries[499].resource, "/valueQuantity/value").to_string(),
        "500.0"
    );
}
