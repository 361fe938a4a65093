use carerecord_hl7::map::{EntryAction, Event, PATIENT_PLACEHOLDER};
use serde_json::Value;

use crate::{assert_provenance, at, map_fixture, s};

const VISITS: &str = "https://fhir.carerecord.example/Id/ZRH01/visit-number";
const ZRH01_REF: &str =
    "Organization?identifier=https://fhir.nhs.uk/Id/ods-organization-code|ZRH01";

fn only_encounter(name: &str) -> (Event, Value, Option<(String, String)>, EntryAction) {
    let m = map_fixture(name, "ZRH01");
    assert_eq!(m.entries.len(), 1, "{name}: one Encounter");
    let e = &m.entries[0];
    assert_eq!(e.resource["resourceType"], "Encounter");
    (m.event, e.resource.clone(), e.key.clone(), e.action)
}

#[test]
fn an_admission_gives_the_person_and_an_in_progress_inpatient_encounter() {
    let m = map_fixture("adt_a01_admit.hl7", "ZRH01");
    assert_eq!(m.event, Event::AdtA01);
    let p = &m.person;
    assert_eq!(p.nhs_number.as_deref(), Some("9990000018"));
    assert_eq!(p.nhs_verification.as_deref(), Some("01"));
    assert_eq!(
        p.local_ids,
        vec![("ZRH01".to_owned(), "RX1234567".to_owned())]
    );
    assert_eq!(p.family.as_deref(), Some("TESTPERSON"));
    assert_eq!(p.given, vec!["ALICE", "MAY"]);
    assert_eq!(p.birth_date.as_deref(), Some("1938-04-12"));
    assert_eq!(p.gender.as_deref(), Some("female"));
    assert_eq!(p.postcode.as_deref(), Some("N1 9ZZ"));

    let patient = &p.patient;
    assert_eq!(patient["resourceType"], "Patient");
    assert_provenance(patient, "ZRH01", "PAS", "ZRH01", "ZRH01-0001");
    assert_eq!(
        s(patient, "/identifier/0/system"),
        "https://fhir.nhs.uk/Id/nhs-number"
    );
    assert_eq!(s(patient, "/identifier/0/value"), "9990000018");
    assert_eq!(
        s(patient, "/identifier/0/extension/0/url"),
        "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus"
    );
    assert_eq!(
        s(
            patient,
            "/identifier/0/extension/0/valueCodeableConcept/coding/0/code"
        ),
        "01"
    );
    assert_eq!(
        s(patient, "/identifier/1/system"),
        "https://fhir.carerecord.example/Id/ZRH01/patient-id"
    );
    assert_eq!(s(patient, "/name/0/use"), "official");
    assert_eq!(s(patient, "/name/0/prefix/0"), "MRS");
    assert_eq!(s(patient, "/birthDate"), "1938-04-12");
    assert_eq!(s(patient, "/address/0/postalCode"), "N1 9ZZ");
    assert_eq!(s(patient, "/address/0/line/0"), "12 SAMPLE STREET");
    assert_eq!(s(patient, "/telecom/0/value"), "020 7946 0000");
    assert_eq!(
        s(patient, "/generalPractitioner/0/identifier/value"),
        "ZGP01"
    );
    assert_eq!(
        s(patient, "/generalPractitioner/0/reference"),
        "Organization?identifier=https://fhir.nhs.uk/Id/ods-organization-code|ZGP01"
    );

    let (_, e, key, action) = only_encounter("adt_a01_admit.hl7");
    assert_provenance(&e, "ZRH01", "PAS", "ZRH01", "ZRH01-0001");
    assert_eq!(key, Some((VISITS.to_owned(), "V2026-0001".to_owned())));
    assert_eq!(action, EntryAction::Upsert);
    assert_eq!(s(&e, "/identifier/0/system"), VISITS);
    assert_eq!(s(&e, "/identifier/0/value"), "V2026-0001");
    assert_eq!(s(&e, "/status"), "in-progress");
    assert_eq!(s(&e, "/class/code"), "IMP");
    assert_eq!(s(&e, "/subject/reference"), PATIENT_PLACEHOLDER);
    // PV1-44 20260715091500 is London summer time.
    assert_eq!(s(&e, "/period/start"), "2026-07-15T09:15:00+01:00");
    assert!(e.pointer("/period/end").is_none());
    assert_eq!(s(&e, "/statusHistory/0/status"), "in-progress");
    assert_eq!(
        s(&e, "/location/0/location/display"),
        "ELM WARD, BAY 2, BED 4"
    );
    assert_eq!(s(&e, "/location/0/status"), "active");
    assert_eq!(s(&e, "/hospitalization/admitSource/coding/0/code"), "19");
    assert_eq!(s(&e, "/serviceProvider/reference"), ZRH01_REF);
}

#[test]
fn a_transfer_moves_the_current_location_and_completes_the_old_one() {
    let (event, e, _, _) = only_encounter("adt_a02_transfer.hl7");
    assert_eq!(event, Event::AdtA02);
    assert_eq!(s(&e, "/status"), "in-progress");
    assert_eq!(
        s(&e, "/location/0/location/display"),
        "OAK WARD, BAY 1, BED 2"
    );
    assert_eq!(s(&e, "/location/0/status"), "active");
    assert_eq!(
        s(&e, "/location/1/location/display"),
        "ELM WARD, BAY 2, BED 4"
    );
    assert_eq!(s(&e, "/location/1/status"), "completed");
    assert_eq!(s(&e, "/location/1/period/end"), "2026-07-16T10:15:00+01:00");
}

#[test]
fn a_discharge_to_a_care_home_names_the_home_as_destination() {
    let (_, e, key, _) = only_encounter("adt_a03_discharge_to_care_home.hl7");
    assert_eq!(
        key.map(|k| k.1).as_deref(),
        Some("V2026-0001"),
        "same key as the admission"
    );
    assert_eq!(s(&e, "/status"), "finished");
    assert_eq!(s(&e, "/period/start"), "2026-07-15T09:15:00+01:00");
    assert_eq!(s(&e, "/period/end"), "2026-07-20T14:30:00+01:00");
    assert_eq!(
        s(&e, "/statusHistory/0/period/end"),
        "2026-07-20T14:30:00+01:00"
    );
    assert_eq!(
        s(&e, "/hospitalization/dischargeDisposition/coding/0/code"),
        "01"
    );
    assert_eq!(
        s(&e, "/hospitalization/dischargeDisposition/coding/0/system"),
        "http://terminology.hl7.org/CodeSystem/v2-0112"
    );
    assert_eq!(
        s(&e, "/hospitalization/destination/identifier/system"),
        "https://fhir.nhs.uk/Id/ods-organization-code"
    );
    assert_eq!(
        s(&e, "/hospitalization/destination/identifier/value"),
        "ZCH01"
    );
    assert_eq!(s(&e, "/location/0/status"), "completed");
}

#[test]
fn registration_and_pre_admission_differ_in_status_and_class() {
    let (_, e, _, _) = only_encounter("adt_a04_register.hl7");
    assert_eq!(
        (s(&e, "/status"), s(&e, "/class/code")),
        ("in-progress", "AMB")
    );
    // No PV1-44: the encounter started when the event was recorded (EVN-2).
    assert_eq!(s(&e, "/period/start"), "2026-08-01T10:00:00+01:00");
    assert_eq!(s(&e, "/identifier/0/value"), "V2026-0444");

    let (_, e, _, _) = only_encounter("adt_a05_preadmit.hl7");
    assert_eq!(
        (s(&e, "/status"), s(&e, "/class/code")),
        ("planned", "PRENC")
    );
    assert!(e.get("period").is_none());
    assert_eq!(s(&e, "/statusHistory/0/status"), "planned");
    assert_eq!(s(&e, "/location/0/status"), "planned");
}

#[test]
fn an_update_keeps_the_encounter_in_progress() {
    let (event, e, key, action) = only_encounter("adt_a08_update.hl7");
    assert_eq!(event, Event::AdtA08);
    assert_eq!(s(&e, "/status"), "in-progress");
    assert_eq!(key.map(|k| k.1).as_deref(), Some("V2026-0001"));
    assert_eq!(action, EntryAction::Upsert);
}

#[test]
fn cancellations_are_cancel_entries_that_revert_the_encounter() {
    let (_, e, key, action) = only_encounter("adt_a11_cancel_admit.hl7");
    assert_eq!(
        (s(&e, "/status"), action),
        ("cancelled", EntryAction::Cancel)
    );
    assert_eq!(key.map(|k| k.1).as_deref(), Some("V2026-0001"));
    assert_eq!(s(&e, "/statusHistory/0/status"), "cancelled");

    let (_, e, _, action) = only_encounter("adt_a12_cancel_transfer.hl7");
    assert_eq!(
        (s(&e, "/status"), action),
        ("in-progress", EntryAction::Cancel)
    );
    assert_eq!(
        s(&e, "/location/0/location/display"),
        "ELM WARD, BAY 2, BED 4"
    );
    assert_eq!(at(&e, "/location").as_array().map(Vec::len), Some(1));

    let (_, e, _, action) = only_encounter("adt_a13_cancel_discharge.hl7");
    assert_eq!(
        (s(&e, "/status"), action),
        ("in-progress", EntryAction::Cancel)
    );
    assert!(e.pointer("/period/end").is_none());
    assert!(e.pointer("/hospitalization/dischargeDisposition").is_none());
    assert!(e.pointer("/hospitalization/destination").is_none());
}

#[test]
fn person_events_carry_no_encounter() {
    let m = map_fixture("adt_a28_add_person.hl7", "ZRH01");
    assert_eq!(m.event, Event::AdtA28);
    assert!(m.entries.is_empty());
    assert_eq!(m.person.nhs_number.as_deref(), Some("9990000026"));
    assert_eq!(m.person.nhs_verification.as_deref(), Some("02"));
    assert_eq!(m.person.gender.as_deref(), Some("male"));
    assert_eq!(m.person.postcode.as_deref(), Some("SE1 9ZZ"));

    let m = map_fixture("adt_a31_update_person.hl7", "ZRH01");
    assert!(m.entries.is_empty());
    assert_eq!(m.person.postcode.as_deref(), Some("SE2 9ZZ"));
    // PID-13 was sent as "" (null): no telecom in the new version.
    assert!(m.person.patient.get("telecom").is_none());
    assert_eq!(
        s(&m.person.patient, "/generalPractitioner/0/identifier/value"),
        "ZGP01"
    );
}

#[test]
fn a_merge_names_the_record_merged_away() {
    let m = map_fixture("adt_a40_merge.hl7", "ZRH01");
    assert_eq!(m.event, Event::AdtA40);
    assert!(m.entries.is_empty());
    assert_eq!(m.person.nhs_number.as_deref(), Some("9990000018"));
    let gone = m.merge_from.expect("merge_from");
    assert_eq!(
        gone.local_ids,
        vec![("ZRH01".to_owned(), "RX7654321".to_owned())]
    );
    assert_eq!(gone.nhs_number, None);
    assert_eq!(gone.family.as_deref(), Some("TESTPERSON"));
    assert_eq!(s(&gone.patient, "/identifier/0/value"), "RX7654321");
}
