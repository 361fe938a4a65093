//! Section tests over small hand-written FHIR, and the whole crate over synthetic London.

use std::collections::HashMap;

use carerecord_access::View;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::datetime;

use crate::{BadgeKind, RecordInput, RecordView, Section, badges};

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

#[test]
fn header_reads_like_the_wristband() {
    let v = view(&record(), View::Full, 0);
    let h = v.header();
    assert_eq!(h.name, "Mrs Edith Testperson");
    assert_eq!(h.born.as_deref(), Some("3 March 1938"));
    assert_eq!(h.age, Some(88));
    assert_eq!(h.nhs_number_formatted.as_deref(), Some("999 000 0018"));
    assert_eq!(h.gender.as_deref(), Some("Female"));
    assert_eq!(h.gp.as_deref(), Some("Zephyr Road Surgery"));
    assert_eq!(h.room.as_deref(), Some("Room 12"));
    assert_eq!(h.alerts, 1, "the inactive flag is not counted");
}

#[test]
fn summary_shows_dnacpr_allergy_reaction_problems_medicines_and_the_discharge_plan() {
    let s = view(&record(), View::Full, 0).render(Section::Summary);
    assert!(s.contains("nhsuk-warning-callout"));
    assert!(s.contains("Not for resuscitation"));
    assert!(s.contains(">DNACPR<"));
    assert!(s.contains("ReSPECT plan"));
    assert!(!s.contains("Old inactive flag"));
    assert!(s.contains("Penicillin allergy"));
    assert!(s.contains("Anaphylaxis"));
    assert!(s.contains("Severe"));
    assert!(s.contains("High risk"));
    assert!(s.contains("Atrial fibrillation"));
    assert!(
        !s.contains("Urinary tract infection</dt>"),
        "resolved problems are not active"
    );
    assert!(s.contains("Bisoprolol 2.5mg tablets"));
    // The latest summary's plan, not the older one's.
    assert!(s.contains("Zinnia House: keep a fluid chart for 7 days."));
    assert!(!s.contains("Older plan"));
    assert!(s.contains(">Stopped<"));
    assert!(s.contains("Stopped: low blood pressure."));
    // Sources are named from the directory.
    assert!(s.contains("From Zephyr Road Surgery, 1 May 2026"));
    assert!(s.contains("Recent abnormal results"));
    assert!(s.contains("Critically high"));
}

#[test]
fn results_are_grouped_by_test_newest_first_with_flags_in_words_and_a_trend() {
    let s = view(&record(), View::Full, 0).render(Section::Results);
    assert_eq!(
        s.matches("<h3 class=\"nhsuk-heading-s\">Potassium</h3>")
            .count(),
        1
    );
    let table = &s[s.find("<table").unwrap()..];
    let newest = table.find("20 Nov 2026").unwrap();
    let middle = table.find("1 Sep 2026").unwrap();
    let oldest = table.find("1 Jun 2026").unwrap();
    assert!(newest < middle && middle < oldest);
    // The decimal's text as sent, the unit, the range.
    assert!(s.contains("6.80 mmol/L"));
    assert!(s.contains("3.5 to 5.3 mmol/L"));
    assert!(s.contains("nhsuk-tag--red\">Critically high<"));
    // No interpretation sent: worked out from the range.
    assert!(s.contains("nhsuk-tag--orange\">High<"));
    assert!(s.contains("From Zed Pathology"));
    assert!(s.contains("<svg"));
    assert!(s.contains("role=\"img\""));
    assert_eq!(s.matches("cr-trend__point--abnormal").count(), 2);
}

#[test]
fn reports_show_imaging_not_lab_panels() {
    let mut r = record();
    r.push(res("rep-2", LAB, FRESH, json!({
        "resourceType": "DiagnosticReport", "status": "final",
        "category": [concept("http://terminology.hl7.org/CodeSystem/v2-0074", "LAB", "Laboratory")],
        "code": concept("http://loinc.org", "24326-1", "Electrolytes panel")
    })));
    let s = view(&r, View::Full, 0).render(Section::Reports);
    assert!(s.contains("Chest X-ray"));
    assert!(s.contains("No consolidation."));
    assert!(s.contains("Zenith General Hospital"));
    assert!(!s.contains("Electrolytes panel"));
}

#[test]
fn discharge_summaries_follow_prsb_order_newest_first_with_letters() {
    let s = view(&record(), View::Full, 0).render(Section::Discharge);
    let gp = s.find(">GP practice<").unwrap();
    let investigations = s.find(">Investigation results<").unwrap();
    let meds = s.find(">Medications and medical devices<").unwrap();
    let plan = s.find(">Plan and requested actions<").unwrap();
    assert!(gp < investigations && investigations < meds && meds < plan);
    assert!(s.find("28 Nov 2026").unwrap() < s.find("1 Feb 2025").unwrap());
    assert!(s.contains("Cardiology clinic letter"));
    assert!(s.contains("href=\"/residents/pat-1/documents/dr-1\""));
    assert!(s.contains("View letter (PDF)"));

    // A malformed id never becomes a link.
    let mut r = record();
    r.push(res(
        "../../admin",
        TRUST,
        FRESH,
        json!({
            "resourceType": "DocumentReference", "status": "current", "description": "Odd letter",
            "content": [{"attachment": {"contentType": "application/pdf"}}]
        }),
    ));
    let s = view(&r, View::Full, 0).render(Section::Discharge);
    assert!(s.contains("Odd letter"));
    assert!(!s.contains("documents/.."));
}

#[test]
fn medicines_are_one_list_across_gp_and_hospital_with_discharge_changes() {
    let mut r = record();
    let mut codeine = med_statement(
        "ms-0",
        "322696007",
        "Codeine 30mg tablets",
        "active",
        "started",
        "Complete the course.",
    );
    codeine["dateAsserted"] = json!("2025-02-01T12:00:00Z");
    r.push(codeine);
    let s = view(&r, View::Full, 0).render(Section::Medicines);
    assert!(s.contains("Changes at the last discharge"));
    assert!(s.contains("Dose halved; continue."));
    let current = s.find("Current medicines</h2>").unwrap();
    let past = s.find("Stopped and past medicines</h2>").unwrap();
    // One row per medicine, naming both sources.
    assert_eq!(
        s.matches("<strong>Bisoprolol 2.5mg tablets</strong>")
            .count(),
        2
    ); // changes list + table
    let biso = s
        .rfind("<strong>Bisoprolol 2.5mg tablets</strong>")
        .unwrap();
    let furo = s.rfind("<strong>Furosemide 40mg tablets</strong>").unwrap();
    assert!(current < biso && biso < past, "bisoprolol is current");
    assert!(
        furo > past,
        "furosemide was stopped at discharge, which is newer than the GP repeat"
    );
    let codeine = s.find("<strong>Codeine 30mg tablets</strong>").unwrap();
    assert!(
        codeine > past,
        "started at an earlier stay and not on the latest discharge list"
    );
    assert!(s[codeine..].contains("(from an earlier hospital stay)"));
    let row = &s[biso..s[biso..].find("</tr>").unwrap() + biso];
    assert!(row.contains("Zephyr Road Surgery: Repeat prescription"));
    assert!(row.contains("Zenith General Hospital"));
    assert!(
        row.contains("Half a tablet each morning"),
        "the newest dose wins"
    );
}

#[test]
fn a_medicine_named_by_a_contained_or_referenced_medication_is_named() {
    let mut r = record();
    r.push(res("mr-9", GP, FRESH, json!({
        "resourceType": "MedicationRequest", "status": "active",
        "contained": [{"resourceType": "Medication", "id": "m", "code": concept("https://dmd.nhs.uk", "39720311000001101", "Sertraline 50mg tablets")}],
        "medicationReference": {"reference": "#m"},
        "authoredOn": "2026-10-01"
    })));
    r.push(res(
        "med-1",
        GP,
        FRESH,
        json!({
            "resourceType": "Medication",
            "code": concept("https://dmd.nhs.uk", "42206511000001102", "Amlodipine 5mg tablets")
        }),
    ));
    r.push(res(
        "mr-10",
        GP,
        FRESH,
        json!({
            "resourceType": "MedicationRequest", "status": "active",
            "medicationReference": {"reference": "Medication/med-1"},
            "authoredOn": "2026-10-01"
        }),
    ));
    let s = view(&r, View::Full, 0).render(Section::Medicines);
    assert!(s.contains("<strong>Sertraline 50mg tablets</strong>"));
    assert!(s.contains("<strong>Amlodipine 5mg tablets</strong>"));
}

#[test]
fn problems_care_plans_and_encounters() {
    let v = view(&record(), View::Full, 0);
    let p = v.render(Section::Problems);
    assert!(p.find("Atrial fibrillation").unwrap() < p.find("Past and resolved problems").unwrap());
    assert!(
        p.find("Urinary tract infection").unwrap() > p.find("Past and resolved problems").unwrap()
    );
    let c = v.render(Section::CarePlans);
    assert!(c.find("ReSPECT plan").unwrap() < c.find("Personal care and support plan").unwrap());
    assert!(c.contains("Sensor mat at night"));
    assert!(c.contains("From 5 Jan 2026"));
    let e = v.render(Section::Encounters);
    assert!(e.contains("20 Nov 2026 to 28 Nov 2026: Hospital admission"));
    assert!(e.contains("Discharged to Zinnia House Care Home"));
}

#[test]
fn text_from_records_is_escaped() {
    let mut r = record();
    r.push(res(
        "cp-3",
        HOME,
        FRESH,
        json!({
            "resourceType": "CarePlan", "status": "active",
            "title": "<script>alert(1)</script>",
            "description": "Likes <b>tea</b> & \"biscuits\"",
            "text": {"status": "generated", "div": "<div><script>steal()</script><p>x</p></div>"}
        }),
    ));
    let v = view(&r, View::Full, 0);
    for s in Section::all() {
        let html = v.render(*s);
        assert!(!html.contains("<script"), "{s:?} let a script through");
        assert!(!html.contains("steal()"), "{s:?} kept script content");
        assert!(!html.contains("<b>tea"), "{s:?} let markup through");
    }
    let c = v.render(Section::CarePlans);
    assert!(c.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(c.contains("Likes &lt;b&gt;tea&lt;/b&gt; &amp; &quot;biscuits&quot;"));
}

#[test]
fn restricted_view_never_renders_an_observation_value() {
    let v = view(&record(), View::Restricted, 0);
    for s in Section::all() {
        let html = v.render(*s);
        for value in ["6.80", "5.9", "4.2", "987.65", "mmol/L"] {
            assert!(!html.contains(value), "{s:?} shows a result value {value}");
        }
    }
    let summary = v.render(Section::Summary);
    assert!(summary.contains("Zinnia House: keep a fluid chart for 7 days."));
    assert!(summary.contains("Penicillin allergy"));
    assert!(!summary.contains("Recent abnormal results"));
    let discharge = v.render(Section::Discharge);
    assert!(discharge.contains("Zinnia House: keep a fluid chart for 7 days."));
    assert!(!discharge.contains("Older plan"), "only the latest summary");
    assert!(!discharge.contains("Investigation results"));
    assert!(!discharge.contains("Cardiology clinic letter"));
}

#[test]
fn unavailable_sections_say_why_and_nothing_else() {
    let v = view(&record(), View::Restricted, 3);
    for s in [
        Section::Results,
        Section::Reports,
        Section::Problems,
        Section::Encounters,
    ] {
        assert!(!s.available_to(View::Restricted));
        let html = v.render(s);
        assert!(html.contains(s.unavailable_reason().split('.').next().unwrap()));
        assert!(!html.contains("From "), "{s:?} shows an item");
        assert!(!html.contains("withheld"));
    }
    for s in [
        Section::Summary,
        Section::Discharge,
        Section::Medicines,
        Section::CarePlans,
    ] {
        assert!(s.available_to(View::Restricted));
        assert!(v.render(s).contains("3 items withheld by their source"));
    }
    let none = view(&record(), View::None, 0);
    for s in Section::all() {
        assert!(!s.available_to(View::None));
        assert!(!none.render(*s).contains("Penicillin"));
    }
}

#[test]
fn one_withheld_item_is_singular_and_none_says_nothing() {
    assert!(
        view(&record(), View::Full, 1)
            .render(Section::Results)
            .contains("1 item withheld by their source.")
    );
    assert!(
        !view(&record(), View::Full, 0)
            .render(Section::Results)
            .contains("withheld")
    );
}

#[test]
fn a_source_silent_for_longer_than_its_lag_is_marked() {
    let mut r = record();
    // The GP's last extract arrived three days ago.
    for v in r.iter_mut() {
        if v["meta"]["tag"][0]["code"] == GP {
            v["meta"]["lastUpdated"] = json!("2026-11-29T06:00:00Z");
        }
    }
    let s = view(&r, View::Full, 0).render(Section::Summary);
    let allergy = s.find("Penicillin allergy").unwrap();
    let row_end = allergy + s[allergy..].find("</tr>").unwrap();
    assert!(
        s[allergy..row_end]
            .contains("May be out of date: nothing new from this source since 29 Nov 2026")
    );
    // The lab sent this morning: not marked.
    let r = view(&r, View::Full, 0).render(Section::Results);
    assert!(!r.contains("May be out of date"));
}

#[test]
fn a_source_with_a_feed_is_judged_by_its_feed_not_by_this_persons_items() {
    let mut r = record();
    // Nothing about this person from the GP for three days, but the GP's feed delivered a
    // message an hour ago: its items are as fresh as the feed.
    for v in r.iter_mut() {
        if v["meta"]["tag"][0]["code"] == GP {
            v["meta"]["lastUpdated"] = json!("2026-11-29T06:00:00Z");
        }
    }
    // The lab sent this person's results this morning, yet its feed has been silent since:
    // impossible for one feed, so the feed's time is what counts — here a quiet one.
    let feeds: HashMap<String, OffsetDateTime> = [
        (GP.to_owned(), datetime!(2026-12-02 08:00 UTC)),
        (LAB.to_owned(), datetime!(2026-11-30 06:00 UTC)),
    ]
    .into_iter()
    .collect();
    let p = patient();
    let o = orgs();
    let v = RecordView::build(RecordInput {
        patient: &p,
        resources: &r,
        organisations: &o,
        feeds: &feeds,
        now: NOW,
        view: View::Full,
        withheld: 0,
        sources_only: &[],
    });
    let s = v.render(Section::Summary);
    let allergy = s.find("Penicillin allergy").unwrap();
    let row_end = allergy + s[allergy..].find("</tr>").unwrap();
    assert!(!s[allergy..row_end].contains("May be out of date"));
    let results = v.render(Section::Results);
    assert!(results.contains("May be out of date: its feed has sent nothing since 30 Nov 2026"));
    // The summary says when each source last sent anything, and how that is known.
    let sources = &s[s.find("Where this record comes from").unwrap()..];
    assert!(sources.contains(
        "Zephyr Road Surgery</td><td class=\"nhsuk-table__cell\">2 Dec 2026, 08:00 (last message on its feed)"
    ));
    assert!(sources.contains("Zenith General Hospital</td>"));
    assert!(sources.contains("(newest item for this person)"));
}

#[test]
fn build_for_renders_only_the_sections_asked_for() {
    let p = patient();
    let o = orgs();
    let r = record();
    let input = || RecordInput {
        patient: &p,
        resources: &r,
        organisations: &o,
        feeds: &NO_FEEDS,
        now: NOW,
        view: View::Full,
        withheld: 0,
        sources_only: &[],
    };
    let one = RecordView::build_for(input(), &[Section::Medicines]);
    let all = RecordView::build(input());
    assert_eq!(
        one.render(Section::Medicines),
        all.render(Section::Medicines)
    );
    assert!(one.render(Section::Results).is_empty());
    assert!(!all.render(Section::Results).is_empty());
    assert_eq!(one.header(), all.header());
}

#[test]
fn sections_and_slugs_round_trip() {
    for s in Section::all() {
        assert_eq!(Section::from_slug(s.slug()), Some(*s));
        assert!(!s.title().is_empty());
        assert!(s.available_to(View::Full));
    }
    assert_eq!(Section::from_slug("nope"), None);
}

#[test]
fn odd_and_empty_input_renders_without_panicking() {
    let odd = vec![
        json!({}),
        json!(null),
        json!([1, 2]),
        json!({"resourceType": "Observation", "code": "not a concept", "valueQuantity": {"value": "x"}, "referenceRange": "?", "effectiveDateTime": 7}),
        json!({"resourceType": "Observation", "code": {"coding": "x"}, "interpretation": {"text": "Weird"}, "valueQuantity": {"value": 1e308}}),
        json!({"resourceType": "Composition", "type": {"text": "Discharge summary"}, "section": [{"section": [{"section": [{"section": [{"text": {"div": "<p>deep"}}]}]}]}]}),
        json!({"resourceType": "MedicationStatement", "medicationReference": {"reference": "Medication/missing"}}),
        json!({"resourceType": "Encounter", "period": {"start": "not a date"}, "hospitalization": 3}),
        json!({"resourceType": "CarePlan", "activity": [{}, {"detail": 5}]}),
        json!({"resourceType": "Patient"}),
    ];
    let p = json!({"resourceType": "Patient", "name": "nobody", "birthDate": "19xx"});
    let o = HashMap::new();
    for view in [View::Full, View::Restricted, View::None] {
        for resources in [&odd[..], &[][..]] {
            let v = RecordView::build(RecordInput {
                patient: &p,
                resources,
                organisations: &o,
                feeds: &NO_FEEDS,
                now: NOW,
                view,
                withheld: 0,
                sources_only: &[],
            });
            assert_eq!(v.header().name, "Name not recorded");
            for s in Section::all() {
                let _ = v.render(*s);
            }
        }
    }
    let _ = badges(&odd, NOW);
}

#[test]
fn badges_say_what_changed_lately() {
    let b = badges(&record(), NOW);
    let kinds: Vec<BadgeKind> = b.iter().map(|x| x.kind).collect();
    assert_eq!(kinds, vec![BadgeKind::Discharged]);
    assert_eq!(b[0].text, "Discharged 28 Nov — new discharge summary");
    assert_eq!(b[0].when, Some(datetime!(2026-11-28 11:00 UTC)));

    let mut r = record();
    r.push(potassium("obs-9", "2026-12-01T08:00:00Z", "4.0", Some("N")));
    r.push(json!({
        "resourceType": "Encounter", "status": "in-progress",
        "class": {"code": "IMP"}, "period": {"start": "2026-12-01T22:00:00Z"}
    }));
    let b = badges(&r, NOW);
    let kinds: Vec<BadgeKind> = b.iter().map(|x| x.kind).collect();
    assert_eq!(kinds, vec![BadgeKind::InHospital, BadgeKind::NewResults]);
    assert_eq!(b[0].text, "In hospital since 1 Dec");

    // A plan loaded today but written long ago is not news; a second version is.
    let mut r = record();
    r.retain(|x| x["resourceType"] != "CarePlan");
    let mut plan = res(
        "cp-9",
        HOME,
        FRESH,
        json!({
            "resourceType": "CarePlan", "status": "active", "created": "2025-01-01"
        }),
    );
    plan["meta"]["versionId"] = json!("1");
    r.push(plan.clone());
    let plan_updated = |r: &[Value]| {
        badges(r, NOW)
            .iter()
            .any(|b| b.kind == BadgeKind::CarePlanUpdated)
    };
    assert!(!plan_updated(&r));
    plan["meta"]["versionId"] = json!("2");
    assert!(
        plan_updated(&[plan.clone()]),
        "no earlier version to compare with"
    );
    r.push(plan);
    assert!(
        !plan_updated(&r),
        "the same plan sent again (a new version, the same content) is not a change"
    );
    let last = r.len() - 1;
    r[last]["activity"] =
        json!([{"detail": {"status": "in-progress", "description": "Turn every two hours"}}]);
    assert!(plan_updated(&r), "a new version with new content is");

    // A month later nothing is news.
    assert!(badges(&record(), datetime!(2027-01-10 09:00 UTC)).is_empty());
}

/// The demo's synthetic London, loaded "today" (every resource's first version arrived at
/// `now`, as `carerecord demo` writes it), where every tenth resident's home then changed a
/// care plan (a second version today): only they have "care plan updated" — not everyone
/// whose plans were just loaded.
#[test]
fn on_demo_data_only_residents_whose_plan_changed_have_care_plan_updated() {
    use carerecord_synth::{London, Options};
    let london = London::new(&Options::default());
    // The generator's own "today", half a day on.
    let now = datetime!(2026-11-01 12:00 UTC);
    let loaded = "2026-11-01T11:00:00Z";
    let (mut residents, mut changed, mut updated, mut lately) = (0, 0, 0, 0);
    for i in 0..london.people() {
        let mut resources: Vec<Value> = london.person_bundle(i)["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["resource"].clone())
            .collect();
        if !resources
            .iter()
            .any(|r| r["resourceType"] == "EpisodeOfCare")
        {
            continue;
        }
        residents += 1;
        for r in &mut resources {
            r["meta"]["versionId"] = json!("1");
            r["meta"]["lastUpdated"] = json!(loaded);
        }
        let change = residents % 10 == 0;
        if change
            && let Some(plan) = resources
                .iter_mut()
                .find(|r| r["resourceType"] == "CarePlan")
        {
            plan["meta"]["versionId"] = json!("2");
            changed += 1;
        }
        let has = badges(&resources, now)
            .iter()
            .any(|b| b.kind == BadgeKind::CarePlanUpdated);
        // A plan the home wrote (reviewed) in the last week is news too; one loaded today
        // but written earlier is not.
        let written_lately = resources.iter().any(|r| {
            r["resourceType"] == "CarePlan"
                && r["created"]
                    .as_str()
                    .is_some_and(|c| c.get(..10).is_some_and(|d| d >= "2026-10-26"))
        });
        let changed_here = change && resources.iter().any(|r| r["meta"]["versionId"] == "2");
        assert_eq!(has, changed_here || written_lately, "resident {i}");
        updated += usize::from(has && !written_lately);
        lately += usize::from(written_lately);
    }
    assert!(residents > 50, "{residents}");
    assert!(changed > 0);
    assert!(lately < residents / 2, "{lately} of {residents}");
    assert!(updated <= changed, "{updated} of {residents} residents");
}

/// Every person of a small synthetic London renders in every view, and the facts a nurse
/// looks for are there.
#[test]
fn synthetic_london_renders_everyone() {
    use carerecord_synth::{London, Options};
    let london = London::new(&Options {
        seed: 7,
        patients: 40,
        care_homes: 3,
        ..Options::default()
    });
    let orgs: HashMap<String, String> = london
        .organisations()
        .iter()
        .filter_map(|o| {
            let ods = o["identifier"]
                .as_array()?
                .iter()
                .find(|i| i["system"] == carerecord_synth::ODS_SYSTEM)?["value"]
                .as_str()?;
            Some((ods.to_owned(), o["name"].as_str()?.to_owned()))
        })
        .collect();
    assert!(!orgs.is_empty());
    let now = datetime!(2026-11-01 12:00 UTC);
    let (mut with_discharge, mut with_flags, mut with_trend) = (0, 0, 0);
    for i in 0..london.people() {
        let bundle = london.person_bundle(i);
        let resources: Vec<Value> = bundle["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["resource"].clone())
            .collect();
        let pid = London::patient_id(i);
        let patient = resources
            .iter()
            .find(|r| r["resourceType"] == "Patient" && r["id"] == pid.as_str())
            .unwrap()
            .clone();
        let full = RecordView::build(RecordInput {
            patient: &patient,
            resources: &resources,
            organisations: &orgs,
            feeds: &NO_FEEDS,
            now,
            view: View::Full,
            withheld: 0,
            sources_only: &[],
        });
        // The awkward "no NHS number" person has none to show.
        let nhs = patient["identifier"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["system"] == carerecord_synth::NHS_NUMBER_SYSTEM)
            .map(|i| i["value"].as_str().unwrap().to_owned());
        assert_eq!(
            full.header().nhs_number_formatted,
            nhs.map(|n| format!("{} {} {}", &n[..3], &n[3..6], &n[6..]))
        );
        assert_ne!(full.header().name, "Name not recorded");
        let html: HashMap<Section, String> = Section::all()
            .iter()
            .map(|s| (*s, full.render(*s)))
            .collect();
        for (s, h) in &html {
            assert!(!h.contains("<script"), "{s:?}");
            assert!(
                !h.contains("Source not recorded"),
                "{s:?} for {pid} lost a source"
            );
        }
        let has = |rt: &str| resources.iter().any(|r| r["resourceType"] == rt);
        if resources.iter().any(|r| r["resourceType"] == "Composition") {
            with_discharge += 1;
            assert!(html[&Section::Discharge].contains("Plan and requested actions"));
            assert!(html[&Section::Discharge].contains("Person completing record"));
            assert!(
                html[&Section::Summary].contains("Latest discharge: plan and medicine changes")
            );
            // The latest summary's first requested action is on the summary page.
            let latest = resources
                .iter()
                .filter(|r| r["resourceType"] == "Composition")
                .max_by_key(|r| r["date"].as_str().unwrap_or("").to_owned())
                .unwrap();
            let plan = latest["section"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["code"]["coding"][0]["code"] == "887201000000105")
                .unwrap();
            let first = crate::narrative::of(plan).into_iter().next().unwrap();
            assert!(
                html[&Section::Summary].contains(&crate::html::escape(&first)),
                "{pid}: {first}"
            );
        }
        let high = resources.iter().any(|r| {
            r["resourceType"] == "Observation" && r["interpretation"][0]["coding"][0]["code"] == "H"
        });
        if high {
            with_flags += 1;
            assert!(html[&Section::Results].contains("nhsuk-tag--orange\">High<"));
        }
        if html[&Section::Results].contains("<svg") {
            with_trend += 1;
        }
        // Every GP-held active problem names the practice as its source.
        if let Some(gp) = &full.header().gp
            && resources.iter().any(|r| {
                r["resourceType"] == "Condition"
                    && r["clinicalStatus"]["coding"][0]["code"] == "active"
            })
        {
            let from = format!("From {}", crate::html::escape(gp));
            assert!(html[&Section::Problems].contains(&from), "{pid}");
        }
        if has("AllergyIntolerance") {
            assert!(html[&Section::Summary].contains("Allergies and adverse reactions</h2><table"));
        }
        if has("Observation") {
            assert!(
                html[&Section::Results].contains("Pathology")
                    || !orgs.values().any(|n| n.contains("Pathology"))
            );
        }

        let restricted = RecordView::build(RecordInput {
            patient: &patient,
            resources: &resources,
            organisations: &orgs,
            feeds: &NO_FEEDS,
            now,
            view: View::Restricted,
            withheld: 2,
            sources_only: &[],
        });
        for s in Section::all() {
            let h = restricted.render(*s);
            assert!(!h.contains("cr-results"), "{s:?}");
            assert!(!h.contains("<svg"), "{s:?}");
        }
        let _ = badges(&resources, now);
    }
    assert!(with_discharge > 0 && with_flags > 0 && with_trend > 0);
}

mod arbitrary_input {
    use super::*;
    use proptest::prelude::*;

    const TYPES: [&str; 14] = [
        "Observation",
        "DiagnosticReport",
        "Composition",
        "DocumentReference",
        "MedicationRequest",
        "MedicationStatement",
        "Medication",
        "Condition",
        "AllergyIntolerance",
        "CarePlan",
        "Encounter",
        "Flag",
        "Procedure",
        "Immunization",
    ];
    const KEYS: [&str; 24] = [
        "status",
        "code",
        "category",
        "interpretation",
        "valueQuantity",
        "value",
        "referenceRange",
        "low",
        "high",
        "effectiveDateTime",
        "period",
        "start",
        "end",
        "section",
        "entry",
        "reference",
        "text",
        "div",
        "coding",
        "display",
        "meta",
        "tag",
        "medicationReference",
        "extension",
    ];

    /// JSON built from the keys FHIR resources use, so the readers meet odd shapes of the
    /// fields they look for.
    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            "[-0-9T:Z<>&a-z/ ]{0,24}".prop_map(Value::String),
            Just(json!("2026-11-30T10:00:00Z")),
            Just(json!("Observation/o1")),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((prop::sample::select(KEYS.to_vec()), inner), 0..6).prop_map(
                    |kv| {
                        Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
                    }
                ),
            ]
        })
    }

    fn resource() -> impl Strategy<Value = Value> {
        (
            prop::sample::select(TYPES.to_vec()),
            "[a-z0-9]{1,3}",
            json(),
        )
            .prop_map(|(rt, id, body)| {
                let mut o = match body {
                    Value::Object(o) => o,
                    other => [("value".to_owned(), other)].into_iter().collect(),
                };
                o.insert("resourceType".into(), json!(rt));
                o.insert("id".into(), json!(id));
                Value::Object(o)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn any_shape_of_input_renders_without_panicking(resources in prop::collection::vec(resource(), 0..12), patient in json()) {
            let o = orgs();
            for view in [View::Full, View::Restricted] {
                let v = RecordView::build(RecordInput {
                    patient: &patient,
                    resources: &resources,
                    organisations: &o,
                    feeds: &NO_FEEDS,
                    now: NOW,
                    view,
                    withheld: 0,
                    sources_only: &[],
                });
                for s in Section::all() {
                    let html = v.render(*s);
                    prop_assert!(!html.contains("<script"));
                }
            }
            let _ = badges(&resources, NOW);
        }
    }
}

/// The demo anchors the synthetic timeline to the day it runs (`carerecord demo` passes
/// today's date as the generator's "as of" date): loaded that day and viewed at noon, its
/// London has residents with each kind of badge the generator makes — recent discharges,
/// new results and care plans written in the last week — and most residents have none.
#[test]
fn the_demo_anchored_to_a_day_has_each_badge_kind_on_that_day() {
    use carerecord_synth::{AsOf, London, Options};
    for day in ["2026-12-02", "2027-06-30"] {
        let as_of: AsOf = day.parse().unwrap();
        let london = London::new(&Options {
            as_of,
            ..Options::default()
        });
        let now = crate::dates::parse(&format!("{day}T12:00:00Z")).unwrap();
        let loaded = format!("{day}T07:00:00Z");
        let mut kinds: HashMap<&'static str, usize> = HashMap::new();
        let mut residents = 0;
        for i in 0..london.people() {
            let mut resources: Vec<Value> = london.person_bundle(i)["entry"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["resource"].clone())
                .collect();
            if !resources
                .iter()
                .any(|r| r["resourceType"] == "EpisodeOfCare")
            {
                continue;
            }
            residents += 1;
            for r in &mut resources {
                r["meta"]["versionId"] = json!("1");
                r["meta"]["lastUpdated"] = json!(loaded);
            }
            for b in badges(&resources, now) {
                *kinds
                    .entry(match b.kind {
                        BadgeKind::InHospital => "in hospital",
                        BadgeKind::Discharged => "discharged",
                        BadgeKind::NewResults => "new results",
                        BadgeKind::CarePlanUpdated => "care plan updated",
                    })
                    .or_default() += 1;
            }
        }
        for kind in ["discharged", "new results", "care plan updated"] {
            assert!(
                kinds.get(kind).copied().unwrap_or(0) > 0,
                "{day}: no {kind} in {kinds:?}"
            );
        }
        let badged: usize = kinds.values().sum();
        assert!(badged < residents, "{day}: {kinds:?} of {residents}");
    }
}
