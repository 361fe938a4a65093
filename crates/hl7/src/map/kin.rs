//! NK1 → RelatedPerson (ADT A01, A04, A05, A08, A13, A28, A31).
//!
//! The key is the person ([`PATIENT_KEY`], carerecord's id for them), the contact's normalised
//! name and relationship (NK1-3). NK1-1 only numbers the segments of one message and v2.4 feeds
//! rarely send NK1-33 (the contact's identifiers), so nothing else is stable: keyed on the set
//! id, a resend listing the contacts in another order would put one contact's phone numbers
//! under another's name. A contact whose name or relationship is corrected therefore becomes a
//! new RelatedPerson; the old one is retired (`active: false`) because a message that names
//! contacts lists them all ([`super::Mapped::listed_in_full`]).

use std::collections::HashSet;

use serde_json::{Map, Value, json};

use super::common::{Ctx, concept_key, normalised, put_str};
use super::{Entry, EntryAction, MapError, PATIENT_KEY, PATIENT_PLACEHOLDER, person};

const RELATIONSHIP: &str = "http://terminology.hl7.org/CodeSystem/v2-0063";
const CONTACT_ROLE: &str = "http://terminology.hl7.org/CodeSystem/v2-0131";

/// The family and given names of a mapped HumanName, normalised for a key.
fn name_key(name: &Value) -> String {
    let mut parts: Vec<&str> = Vec::new();
    if let Some(f) = name.get("family").and_then(Value::as_str) {
        parts.push(f);
    }
    if let Some(given) = name.get("given").and_then(Value::as_array) {
        parts.extend(given.iter().filter_map(Value::as_str));
    }
    normalised(&parts.join(" "))
}

/// One RelatedPerson per NK1 naming someone, each `active`.
pub(crate) fn contacts(c: &Ctx<'_>) -> Result<Vec<Entry>, MapError> {
    let system = c.system("related-person");
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for nk1 in c.msg.segments("NK1") {
        // An NK1 naming nobody (an organisation in NK1-13, or an empty placeholder) is not
        // mapped.
        let names = person::human_names(nk1.field(2));
        let Some(first) = names.first() else {
            continue;
        };
        let relationship = c.concept_in(nk1.field(3), Some(RELATIONSHIP));
        let role = c.concept_in(nk1.field(7), Some(CONTACT_ROLE));
        let value = format!(
            "{PATIENT_KEY}|{}|{}",
            name_key(first),
            relationship.as_ref().map(concept_key).unwrap_or_default()
        );
        if !seen.insert(value.clone()) {
            continue;
        }
        let mut r = c.resource("RelatedPerson");
        r.insert(
            "identifier".into(),
            json!([{"system": system, "value": value}]),
        );
        // Said outright: a contact a later message drops is set inactive, and a resent one
        // must then become active again.
        r.insert("active".into(), Value::Bool(true));
        r.insert("patient".into(), json!({"reference": PATIENT_PLACEHOLDER}));
        let relationships: Vec<Value> = relationship.into_iter().chain(role).collect();
        if !relationships.is_empty() {
            r.insert("relationship".into(), Value::Array(relationships));
        }
        r.insert("name".into(), Value::Array(names));
        let telecom = person::telecoms(nk1, &[(5, "home"), (6, "work")]);
        if !telecom.is_empty() {
            r.insert("telecom".into(), Value::Array(telecom));
        }
        put_str(&mut r, "birthDate", c.date(nk1, 16)?);
        let address = person::addresses(nk1.field(4));
        if !address.is_empty() {
            r.insert("address".into(), Value::Array(address));
        }
        let mut period = Map::new();
        put_str(&mut period, "start", c.date_time(nk1, 8)?);
        put_str(&mut period, "end", c.date_time(nk1, 9)?);
        if !period.is_empty() {
            r.insert("period".into(), Value::Object(period));
        }
        out.push(Entry {
            resource: Value::Object(r),
            key: Some((system.clone(), value)),
            action: EntryAction::Upsert,
        });
    }
    Ok(out)
}
