//! DG1 → Condition (ADT A01, A03, A04, A05, A08: the events that upsert the visit).
//!
//! Keyed on the visit (PV1-19, which is the person's) and the diagnosis code, so a resent or
//! updated message replaces the diagnosis rather than adding it again. DG1-1 numbers the
//! segments of one message only.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::common::{Ctx, concept_key, conditional, obj, put, put_str};
use super::{Entry, EntryAction, MapError, PATIENT_PLACEHOLDER};

const CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/condition-category";
const VERIFICATION: &str = "http://terminology.hl7.org/CodeSystem/condition-ver-status";

/// DG1-6 (table 0052): admitting and working diagnoses are provisional, a final one confirmed;
/// anything else says nothing.
fn verification(code: Option<String>) -> Option<Value> {
    let (code, display) = match code?.to_ascii_uppercase().as_str() {
        "A" | "W" => ("provisional", "Provisional"),
        "F" => ("confirmed", "Confirmed"),
        _ => return None,
    };
    Some(json!({"coding": [{"system": VERIFICATION, "code": code, "display": display}]}))
}

/// One Condition per DG1 naming a diagnosis, in the visit `visit` (PV1-19).
pub(crate) fn diagnoses(c: &Ctx<'_>, visit: &str) -> Result<Vec<Entry>, MapError> {
    let system = c.system("diagnosis");
    let enc_system = c.system("visit-number");
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for dg1 in c.msg.segments("DG1") {
        // DG1-3, with DG1-4 (description, deprecated) as its text or in its place.
        let description = dg1.text(4);
        let code = match (c.concept(dg1.field(3)), description) {
            (Some(mut cc), Some(d)) => {
                if let Some(o) = cc.as_object_mut() {
                    o.entry("text").or_insert(Value::String(d));
                }
                cc
            }
            (Some(cc), None) => cc,
            (None, Some(d)) => obj([("text", Value::String(d))]),
            (None, None) => continue,
        };
        let value = format!("{visit}|{}", concept_key(&code));
        if !seen.insert(value.clone()) {
            continue;
        }
        let mut r = c.resource("Condition");
        r.insert(
            "identifier".into(),
            json!([{"system": system, "value": value}]),
        );
        // No clinicalStatus: a diagnosis of a stay says nothing about whether it has resolved.
        put(&mut r, "verificationStatus", verification(dg1.text(6)));
        r.insert(
            "category".into(),
            json!([{"coding": [{"system": CATEGORY, "code": "encounter-diagnosis", "display": "Encounter Diagnosis"}]}]),
        );
        r.insert("code".into(), code);
        r.insert("subject".into(), json!({"reference": PATIENT_PLACEHOLDER}));
        r.insert(
            "encounter".into(),
            json!({
                "reference": conditional("Encounter", &enc_system, visit),
                "identifier": {"system": enc_system, "value": visit},
            }),
        );
        // DG1-5 is when the diagnosis was determined (v2.4), not when the condition began.
        put_str(&mut r, "recordedDate", c.date_time(dg1, 5)?);
        // DG1-16 diagnosing clinician.
        put(
            &mut r,
            "asserter",
            c.practitioner(dg1.field(16).repetition(1), false),
        );
        out.push(Entry {
            resource: Value::Object(r),
            key: Some((system.clone(), value)),
            action: EntryAction::Upsert,
        });
    }
    Ok(out)
}
