//! Section tests over small hand-written FHIR, and the whole crate over synthetic London.
//!
//! This module holds the hand-written record and its helpers; the tests are in
//! [`sections`] (what each section shows), [`event_badges`] (My residents' event badges),
//! [`synthetic`] (every synthetic Londoner renders) and [`arbitrary_input`] (property tests:
//! nothing panics).

use std::collections::HashMap;

use carerecord_access::View;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::datetime;

use crate::{BadgeKind, RecordInput, RecordView, Section, badges};

mod arbitrary_input;
mod event_badges;
mod sections;
mod synthetic;

const NOW: OffsetDateTime = datetime!(2026-12-02 09:00 UTC);
/// No source with an HL7 v2 feed: freshness is judged from each person's items.
static NO_FEEDS: std::sync::LazyLock<HashMap<String, OffsetDateTime>> =
    std::sync::LazyLock::new(HashMap::new);
const GP: &str = "ZGP001";
const TRUST: &str = "ZTR001";
const LAB: &str = "ZLB001";
const HOME: &str = "ZCH001";

fn orgs() -> HashMap<String, String> {
    [
        (GP, "Zephyr Road Surgery"),
        (TRUST, "Zenith General Hospital"),
        (LAB, "Zed Pathology"),
        (HOME, "Zinnia House Care Home"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// `body` with `id` and the source tags carerecord stamps, received at `received`.
fn res(id: &str, src: &str, received: &str, mut body: Value) -> Value {
    let kind = match src {
        GP => "gp-clinical-system",
        LAB => "pathology-lims",
        HOME => "care-home-digital-record",
        _ => "hospital-epr",
    };
    let o = body.as_object_mut().unwrap();
    o.insert("id".into(), json!(id));
    o.insert(
        "meta".into(),
        json!({
            "lastUpdated": received,
            "tag": [
                {"system": crate::read::SOURCE_ORGANISATION_TAG, "code": src},
                {"system": crate::read::SOURCE_SYSTEM_TAG, "code": kind}
            ]
        }),
    );
    body
}

fn concept(system: &str, code: &str, display: &str) -> Value {
    json!({"coding": [{"system": system, "code": code, "display": display}], "text": display})
}

fn patient() -> Value {
    json!({
        "resourceType": "Patient",
        "id": "pat-1",
        "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9990000018"}],
        "name": [{"use": "official", "prefix": ["Mrs"], "given": ["Edith"], "family": "Testperson"}],
        "gender": "female",
        "birthDate": "1938-03-03",
        "address": [{"line": ["Zinnia House", "Room 12"], "city": "London", "postalCode": "ZZ1 1ZZ"}],
        "generalPractitioner": [{"reference": "Organization/org-gp", "display": "Zephyr Road Surgery"}]
    })
}

const FRESH: &str = "2026-12-02T06:00:00Z";

fn potassium(id: &str, when: &str, value: &str, interp: Option<&str>) -> Value {
    let mut o: Value = serde_json::from_str(&format!(
        r#"{{"resourceType": "Observation", "status": "final",
            "category": [{{"coding": [{{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}}]}}],
            "code": {{"coding": [{{"system": "http://loinc.org", "code": "2823-3", "display": "Potassium"}}], "text": "Potassium"}},
            "subject": {{"reference": "Patient/pat-1"}},
            "effectiveDateTime": "{when}",
            "valueQuantity": {{"value": {value}, "unit": "mmol/L"}},
            "referenceRange": [{{"low": {{"value": 3.5, "unit": "mmol/L"}}, "high": {{"value": 5.3, "unit": "mmol/L"}}}}]}}"#
    ))
    .unwrap();
    if let Some(code) = interp {
        o["interpretation"] = json!([{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": code}]}]);
    }
    res(id, LAB, FRESH, o)
}

fn discharge_summary(id: &str, date: &str, plan: &str, meds: &[&str]) -> Value {
    let section = |code: &str, title: &str, text: &str, entries: &[&str]| {
        let mut s = json!({
            "title": title,
            "code": concept("http://snomed.info/sct", code, title),
            "text": {"status": "generated", "div": format!("<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>{text}</p></div>")}
        });
        if !entries.is_empty() {
            s["entry"] = json!(
                entries
                    .iter()
                    .map(|e| json!({"reference": e}))
                    .collect::<Vec<_>>()
            );
        }
        s
    };
    res(
        id,
        TRUST,
        FRESH,
        json!({
            "resourceType": "Composition",
            "status": "final",
            "type": concept("http://snomed.info/sct", "373942005", "Discharge summary"),
            "subject": {"reference": "Patient/pat-1"},
            "date": date,
            "title": "Discharge summary",
            // Deliberately out of PRSB order.
            "section": [
                section("887201000000105", "Plan and requested actions", plan, &[]),
                section("1082101000000102", "Investigation results", "Potassium 987.65 mmol/L on admission.", &[]),
                section("933361000000108", "Medications and medical devices", "See entries.", meds),
                section("886711000000101", "GP practice", "Zephyr Road Surgery", &[]),
            ]
        }),
    )
}

fn med_request(id: &str, code: &str, name: &str, authored: &str, status: &str) -> Value {
    res(
        id,
        GP,
        FRESH,
        json!({
            "resourceType": "MedicationRequest",
            "status": status,
            "intent": "order",
            "medicationCodeableConcept": concept("https://dmd.nhs.uk", code, name),
            "subject": {"reference": "Patient/pat-1"},
            "authoredOn": authored,
            "courseOfTherapyType": {"coding": [{"code": "continuous"}]},
            "dosageInstruction": [{"text": "One tablet each morning"}]
        }),
    )
}

fn med_statement(
    id: &str,
    code: &str,
    name: &str,
    status: &str,
    change: &str,
    note: &str,
) -> Value {
    res(
        id,
        TRUST,
        FRESH,
        json!({
            "resourceType": "MedicationStatement",
            "extension": [{"url": crate::read::MEDICATION_CHANGE_EXTENSION, "valueCode": change}],
            "status": status,
            "medicationCodeableConcept": concept("https://dmd.nhs.uk", code, name),
            "subject": {"reference": "Patient/pat-1"},
            "category": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/medication-statement-category", "code": "inpatient"}]},
            "dateAsserted": "2026-11-28T12:00:00Z",
            "dosage": [{"text": "Half a tablet each morning"}],
            "note": [{"text": note}]
        }),
    )
}

/// A small record with something in every section.
fn record() -> Vec<Value> {
    vec![
        res(
            "flag-1",
            GP,
            FRESH,
            json!({
                "resourceType": "Flag", "status": "active",
                "code": concept("http://snomed.info/sct", "304253006", "Not for resuscitation"),
                "subject": {"reference": "Patient/pat-1"}, "period": {"start": "2026-05-01"}
            }),
        ),
        res(
            "flag-2",
            HOME,
            FRESH,
            json!({
                "resourceType": "Flag", "status": "inactive",
                "code": concept("http://snomed.info/sct", "129839007", "Old inactive flag"),
                "subject": {"reference": "Patient/pat-1"}
            }),
        ),
        res(
            "allergy-1",
            GP,
            FRESH,
            json!({
                "resourceType": "AllergyIntolerance",
                "clinicalStatus": {"coding": [{"code": "active"}]},
                "criticality": "high",
                "code": concept("http://snomed.info/sct", "91936005", "Penicillin allergy"),
                "patient": {"reference": "Patient/pat-1"},
                "recordedDate": "2001-04-01",
                "reaction": [{"manifestation": [concept("http://snomed.info/sct", "39579001", "Anaphylaxis")], "severity": "severe"}]
            }),
        ),
        res(
            "cond-1",
            GP,
            FRESH,
            json!({
                "resourceType": "Condition",
                "clinicalStatus": {"coding": [{"code": "active"}]},
                "code": concept("http://snomed.info/sct", "49436004", "Atrial fibrillation"),
                "subject": {"reference": "Patient/pat-1"},
                "onsetDateTime": "2019-06-01"
            }),
        ),
        res(
            "cond-2",
            TRUST,
            FRESH,
            json!({
                "resourceType": "Condition",
                "clinicalStatus": {"coding": [{"code": "resolved"}]},
                "code": concept("http://snomed.info/sct", "68566005", "Urinary tract infection"),
                "subject": {"reference": "Patient/pat-1"},
                "onsetDateTime": "2026-11-20", "abatementDateTime": "2026-11-28",
                "note": [{"text": "<script>alert('x')</script> treated"}]
            }),
        ),
        potassium("obs-1", "2026-06-01T10:00:00Z", "4.2", Some("N")),
        potassium("obs-2", "2026-11-20T10:00:00Z", "6.80", Some("HH")),
        potassium("obs-3", "2026-09-01T10:00:00Z", "5.9", None),
        res(
            "rep-1",
            TRUST,
            FRESH,
            json!({
                "resourceType": "DiagnosticReport", "status": "final",
                "category": [concept("http://terminology.hl7.org/CodeSystem/v2-0074", "RAD", "Radiology")],
                "code": concept("http://loinc.org", "36643-5", "Chest X-ray"),
                "effectiveDateTime": "2026-11-20T12:00:00Z",
                "conclusion": "No consolidation."
            }),
        ),
        med_request(
            "mr-1",
            "318248001",
            "Bisoprolol 2.5mg tablets",
            "2025-01-10T09:00:00Z",
            "active",
        ),
        med_request(
            "mr-2",
            "322236009",
            "Furosemide 40mg tablets",
            "2025-01-10T09:00:00Z",
            "active",
        ),
        med_statement(
            "ms-1",
            "318248001",
            "Bisoprolol 2.5mg tablets",
            "active",
            "changed",
            "Dose halved; continue.",
        ),
        med_statement(
            "ms-2",
            "322236009",
            "Furosemide 40mg tablets",
            "stopped",
            "stopped",
            "Stopped: low blood pressure.",
        ),
        discharge_summary(
            "doc-1",
            "2026-11-28T12:00:00Z",
            "Zinnia House: keep a fluid chart for 7 days.",
            &["MedicationStatement/ms-1", "MedicationStatement/ms-2"],
        ),
        discharge_summary(
            "doc-0",
            "2025-02-01T12:00:00Z",
            "Older plan: daily weights.",
            &[],
        ),
        res(
            "dr-1",
            TRUST,
            FRESH,
            json!({
                "resourceType": "DocumentReference", "status": "current",
                "type": concept("http://snomed.info/sct", "371531000", "Clinic letter"),
                "description": "Cardiology clinic letter",
                "date": "2026-10-01T09:00:00Z",
                "content": [{"attachment": {"contentType": "application/pdf", "url": "Binary/bin-1"}}]
            }),
        ),
        res(
            "cp-1",
            GP,
            FRESH,
            json!({
                "resourceType": "CarePlan", "status": "active", "intent": "plan",
                "category": [concept("http://snomed.info/sct", "1382601000000107", "ReSPECT")],
                "title": "ReSPECT plan",
                "description": "Prioritise comfort. CPR is not recommended.",
                "period": {"start": "2026-05-01"}
            }),
        ),
        res(
            "cp-2",
            HOME,
            FRESH,
            json!({
                "resourceType": "CarePlan", "status": "active", "intent": "plan",
                "title": "Personal care and support plan",
                "period": {"start": "2026-01-05"},
                "author": {"display": "Zinnia House Care Home"},
                "activity": [{"detail": {"status": "in-progress", "description": "Sensor mat at night"}}]
            }),
        ),
        res(
            "enc-1",
            TRUST,
            FRESH,
            json!({
                "resourceType": "Encounter", "status": "finished",
                "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
                "type": [concept("http://snomed.info/sct", "32485007", "Hospital admission")],
                "period": {"start": "2026-11-20T10:00:00Z", "end": "2026-11-28T11:00:00Z"},
                "reasonCode": [concept("http://snomed.info/sct", "68566005", "Urinary tract infection")],
                "hospitalization": {"dischargeDisposition": {"text": "Discharged to Zinnia House Care Home"}}
            }),
        ),
    ]
}

fn view(resources: &[Value], view: View, withheld: u64) -> RecordView {
    let p = patient();
    let o = orgs();
    RecordView::build(RecordInput {
        patient: &p,
        resources,
        organisations: &o,
        feeds: &NO_FEEDS,
        now: NOW,
        view,
        withheld,
        sources_only: &[],
    })
}
