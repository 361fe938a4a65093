//! AL1 → AllergyIntolerance (ADT A01, A04, A05, A08, A13, A28, A31: the events whose message
//! structure carries AL1).
//!
//! Keyed on the person ([`PATIENT_KEY`], carerecord's id for them) and the allergen (AL1-3),
//! not on AL1-1: the set id only numbers the segments of one message, so a resend listing the
//! allergies in another order would otherwise swap them.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::common::{Ctx, concept_key, obj, put_str};
use super::{Entry, EntryAction, MapError, PATIENT_KEY, PATIENT_PLACEHOLDER};
use crate::message::Segment;

const CLINICAL: &str = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical";
const VERIFICATION: &str = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification";

/// AL1-2 (table 0127; IS in 2.3, CE from 2.4) → (category, type). MC (miscellaneous
/// contraindication) and codes outside the table say neither, so both are left out.
fn allergen_type(code: &str) -> (Option<&'static str>, Option<&'static str>) {
    match code.to_ascii_uppercase().as_str() {
        "DA" => (Some("medication"), Some("allergy")),
        "DI" => (Some("medication"), Some("intolerance")),
        "FA" => (Some("food"), Some("allergy")),
        "FI" => (Some("food"), Some("intolerance")),
        // Environmental, animal, plant, pollen.
        "EA" | "AA" | "PA" | "LA" => (Some("environment"), Some("allergy")),
        "MA" => (None, Some("allergy")),
        "MI" => (None, Some("intolerance")),
        _ => (None, None),
    }
}

/// AL1-4 (table 0128); U (unknown) and other codes give no severity.
fn severity(al1: &Segment) -> Option<&'static str> {
    match al1.text(4)?.to_ascii_uppercase().as_str() {
        "SV" => Some("severe"),
        "MO" => Some("moderate"),
        "MI" => Some("mild"),
        _ => None,
    }
}

fn status(system: &str, code: &str, display: &str) -> Value {
    json!({"coding": [{"system": system, "code": code, "display": display}]})
}

/// One AllergyIntolerance per AL1 naming an allergen.
pub(crate) fn allergies(c: &Ctx<'_>) -> Result<Vec<Entry>, MapError> {
    let system = c.system("allergy");
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for al1 in c.msg.segments("AL1") {
        // An AL1 naming no allergen (some PAS send an empty one as a placeholder) says nothing.
        let Some(code) = c.concept(al1.field(3)) else {
            continue;
        };
        let value = format!("{PATIENT_KEY}|{}", concept_key(&code));
        // The same allergen twice in one message: the first is kept (two entries with one key
        // would be stored as two resources).
        if !seen.insert(value.clone()) {
            continue;
        }
        let (category, kind) = al1
            .field(2)
            .component(1)
            .text()
            .map_or((None, None), |t| allergen_type(&t));

        let mut a = c.resource("AllergyIntolerance");
        a.insert(
            "identifier".into(),
            json!([{"system": system, "value": value}]),
        );
        // AL1 carries no status: an allergy a feed lists is current and was asserted by the
        // sender.
        a.insert(
            "clinicalStatus".into(),
            status(CLINICAL, "active", "Active"),
        );
        a.insert(
            "verificationStatus".into(),
            status(VERIFICATION, "confirmed", "Confirmed"),
        );
        put_str(&mut a, "type", kind.map(str::to_owned));
        if let Some(cat) = category {
            a.insert("category".into(), json!([cat]));
        }
        a.insert("code".into(), code);
        a.insert("patient".into(), json!({"reference": PATIENT_PLACEHOLDER}));
        // AL1-6 is the date the allergy was identified, not when it began.
        put_str(&mut a, "recordedDate", c.date_time(al1, 6)?);
        let manifestations: Vec<Value> = al1
            .field(5)
            .repetitions()
            .filter_map(|r| r.text())
            .map(|t| obj([("text", Value::String(t))]))
            .collect();
        // A reaction needs a manifestation, so AL1-4 without AL1-5 has nowhere to go.
        if !manifestations.is_empty() {
            let mut reaction = serde_json::Map::new();
            reaction.insert("manifestation".into(), Value::Array(manifestations));
            put_str(&mut reaction, "severity", severity(al1).map(str::to_owned));
            a.insert(
                "reaction".into(),
                Value::Array(vec![Value::Object(reaction)]),
            );
        }
        out.push(Entry {
            resource: Value::Object(a),
            key: Some((system.clone(), value)),
            action: EntryAction::Upsert,
        });
    }
    Ok(out)
}
