//! Applying one mapped HL7 v2 message inside a write transaction: match the person, merge
//! (A40), then upsert the entries by their identifiers with every placeholder and conditional
//! reference resolved, and retire what a list given in full no longer names.

use std::collections::HashMap;

use carerecord_fhir::{LogicalId, ResourceType};
use carerecord_hl7::map::{EntryAction, Mapped, PATIENT_KEY, PATIENT_PLACEHOLDER};
use carerecord_search::query::{Handling, escape_value, parse};
use carerecord_store::ingest::{self, Hl7System};
use carerecord_store::{StoreTx, write};
use serde_json::{Value, json};

use crate::IngestError;
use crate::matching::{self, IncomingPerson, MatchContext, Outcome};
use crate::merge::{self, Cause};

const ODS_SYSTEM: &str = "https://fhir.nhs.uk/Id/ods-organization-code";

/// What applying a message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub patient_id: String,
    /// Versions written, as `Type/id/_history/version`.
    pub written: Vec<String>,
    pub outcome: Outcome,
}

pub fn person_of(p: &carerecord_hl7::map::IncomingPerson) -> IncomingPerson {
    IncomingPerson {
        nhs_number: p.nhs_number.clone(),
        nhs_verification: p.nhs_verification.clone(),
        local_ids: p.local_ids.clone(),
        family: p.family.clone(),
        given: p.given.clone(),
        birth_date: p.birth_date.clone(),
        gender: p.gender.clone(),
        postcode: p.postcode.clone(),
        patient: p.patient.clone(),
    }
}

fn version(rt: ResourceType, id: &LogicalId, v: i64) -> String {
    format!("{rt}/{}/_history/{v}", id.as_str())
}

/// Decodes `%XX` escapes (the mapping percent-encodes identifier values in references).
fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(h) = b.get(i + 1..i + 3)
            && let Ok(h) = std::str::from_utf8(h)
            && let Ok(v) = u8::from_str_radix(h, 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Fills carerecord's id for the person into an entry's identifiers keyed on them
/// ([`PATIENT_KEY`]).
fn fill_patient_key(body: &mut Value, patient_id: &str) {
    if let Some(Value::Array(ids)) = body.get_mut("identifier") {
        for i in ids {
            if let Some(Value::String(v)) = i.get_mut("value")
                && v.contains(PATIENT_KEY)
            {
                *v = v.replace(PATIENT_KEY, patient_id);
            }
        }
    }
}

/// Sets `active: false` on the person's stored `rt` resources carrying an identifier of
/// `system` that are not among `listed` (the ones this message wrote): the message gave that
/// list in full ([`Mapped::listed_in_full`]). Returns the versions written.
async fn retire_unlisted(
    tx: &mut dyn StoreTx,
    rt: ResourceType,
    system: &str,
    patient_id: &str,
    listed: &[&LogicalId],
) -> Result<Vec<String>, IngestError> {
    let pairs = [
        ("patient".to_owned(), format!("Patient/{patient_id}")),
        (
            "identifier".to_owned(),
            format!("{}|", escape_value(system)),
        ),
    ];
    let query = parse(rt, &pairs, Handling::Strict, "urn:carerecord:ingest")
        .map_err(|issues| IngestError::Internal(format!("retiring query: {issues:?}")))?;
    // A person's contacts from one sender are a handful; the bound is only a guard.
    let mut written = Vec::new();
    for key in tx.find(&query, 1000).await? {
        if listed.contains(&&key.id) {
            continue;
        }
        let Some(stored) = tx.current(rt, &key.id).await? else {
            continue;
        };
        if stored.deleted {
            continue;
        }
        let mut body: Value = serde_json::from_str(&stored.body)
            .map_err(|e| IngestError::Internal(format!("stored body: {e}")))?;
        if body.get("active") == Some(&Value::Bool(false)) {
            continue;
        }
        if let Some(o) = body.as_object_mut() {
            o.insert("active".into(), Value::Bool(false));
        }
        let w = write::update(tx, rt, &key.id, body, None).await?;
        written.push(version(rt, &key.id, w.resource.version_id.get()));
    }
    Ok(written)
}

/// `Type?identifier=system|value` → (type, system, value).
fn conditional(reference: &str) -> Option<(ResourceType, String, String)> {
    let (rt, rest) = reference.split_once("?identifier=")?;
    let rt: ResourceType = rt.parse().ok()?;
    let (system, value) = rest.split_once('|')?;
    Some((rt, system.to_owned(), pct_decode(value)))
}

/// The ids of the stored resources carrying each of `keys` (type, system, value), found in
/// one statement for the whole message: one search and one read per key were the bulk of a
/// message's round trips to the database.
async fn lookup(
    tx: &mut dyn StoreTx,
    keys: Vec<(ResourceType, String, String)>,
) -> Result<HashMap<(ResourceType, String, String), LogicalId>, IngestError> {
    let mut out = HashMap::new();
    for (k, system, value) in ingest::tx_identified(tx, keys).await? {
        out.insert((k.resource_type, system, value), k.id);
    }
    Ok(out)
}

/// Rewrites references: the patient placeholder to the matched Patient, conditional ones to
/// the resource they name (an entry of this message, the sender's own organisation, or a
/// stored resource), and those that name nothing to a logical reference by identifier.
fn rewrite(
    v: &mut Value,
    patient: &str,
    resolved: &HashMap<(ResourceType, String, String), String>,
) {
    match v {
        Value::Object(o) => {
            if let Some(Value::String(r)) = o.get("reference").cloned() {
                if r == PATIENT_PLACEHOLDER {
                    o.insert("reference".into(), json!(format!("Patient/{patient}")));
                } else if let Some((rt, system, value)) = conditional(&r) {
                    match resolved.get(&(rt, system.clone(), value.clone())) {
                        Some(id) => {
                            o.insert("reference".into(), json!(format!("{rt}/{id}")));
                        }
                        None => {
                            o.remove("reference");
                            o.entry("identifier")
                                .or_insert_with(|| json!({"system": system, "value": value}));
                        }
                    }
                }
            }
            for (k, child) in o.iter_mut() {
                if k != "reference" {
                    rewrite(child, patient, resolved);
                }
            }
        }
        Value::Array(a) => {
            for child in a {
                rewrite(child, patient, resolved);
            }
        }
        _ => {}
    }
}

fn collect_conditionals(v: &Value, out: &mut Vec<(ResourceType, String, String)>) {
    match v {
        Value::Object(o) => {
            if let Some(c) = o
                .get("reference")
                .and_then(Value::as_str)
                .and_then(conditional)
                && !out.contains(&c)
            {
                out.push(c);
            }
            for child in o.values() {
                collect_conditionals(child, out);
            }
        }
        Value::Array(a) => {
            for child in a {
                collect_conditionals(child, out);
            }
        }
        _ => {}
    }
}

/// Applies `mapped`, sent by `sender`, inside `tx`.
pub async fn apply(
    tx: &mut dyn StoreTx,
    mapped: &Mapped,
    sender: &Hl7System,
    now: i64,
) -> Result<Applied, IngestError> {
    let ctx = MatchContext {
        source_ods: &sender.ods,
        now,
    };
    let person = person_of(&mapped.person);
    let resolved_person = matching::resolve(tx, &person, &ctx).await?;
    let patient_id = resolved_person.patient_id.clone();
    let mut written = resolved_person.written.clone();

    if let Some(from) = &mapped.merge_from {
        let from = person_of(from);
        if let Some(old) = matching::find_by_keys(tx, &from).await?
            && old.id.as_str() != patient_id
        {
            let survivor =
                LogicalId::parse(&patient_id).map_err(|e| IngestError::Internal(e.to_string()))?;
            let m = merge::merge(tx, &survivor, &old.id, Cause::Hl7A40, &sender.id, now).await?;
            written.extend(m.written);
        }
    }

    // The entries' keys, with carerecord's id for the person filled in.
    let entry_keys: Vec<Option<(String, String)>> = mapped
        .entries
        .iter()
        .map(|e| {
            e.key
                .as_ref()
                .map(|(s, v)| (s.clone(), v.replace(PATIENT_KEY, &patient_id)))
        })
        .collect();
    // Ids: an entry keyed by an identifier already stored replaces that resource.
    let mut by_type: HashMap<ResourceType, Vec<(String, String)>> = HashMap::new();
    let mut types = Vec::with_capacity(mapped.entries.len());
    for (e, key) in mapped.entries.iter().zip(&entry_keys) {
        let rt: ResourceType = e
            .resource
            .get("resourceType")
            .and_then(Value::as_str)
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| IngestError::Internal("a mapped entry has no resource type".into()))?;
        types.push(rt);
        if let Some(k) = key {
            by_type.entry(rt).or_default().push(k.clone());
        }
    }
    // Conditional references to what this message does not carry, looked up together with
    // the entries' own keys.
    let mut wanted = Vec::new();
    for e in &mapped.entries {
        collect_conditionals(&e.resource, &mut wanted);
    }
    let own = |rt: ResourceType, system: &str, value: &str| {
        by_type
            .get(&rt)
            .is_some_and(|ks| ks.iter().any(|(s, v)| s == system && v == value))
    };
    let mut keys: Vec<(ResourceType, String, String)> = Vec::new();
    for (rt, ks) in &by_type {
        for (s, v) in ks {
            keys.push((*rt, s.clone(), v.clone()));
        }
    }
    for (rt, system, value) in &wanted {
        let senders_own =
            *rt == ResourceType::Organization && system == ODS_SYSTEM && *value == sender.ods;
        if !senders_own && !own(*rt, system, value) {
            keys.push((*rt, system.clone(), value.clone()));
        }
    }
    let existing = lookup(tx, keys).await?;
    let mut ids = Vec::with_capacity(mapped.entries.len());
    let mut resolved: HashMap<(ResourceType, String, String), String> = HashMap::new();
    for (key, rt) in entry_keys.iter().zip(&types) {
        let found = key
            .as_ref()
            .and_then(|(s, v)| existing.get(&(*rt, s.clone(), v.clone())).cloned());
        let is_new = found.is_none();
        let id = match found {
            Some(id) => id,
            None => matching::new_id()?,
        };
        if let Some((s, v)) = key {
            resolved.insert((*rt, s.clone(), v.clone()), id.as_str().to_owned());
        }
        ids.push((id, is_new));
    }
    for (rt, system, value) in wanted {
        let key = (rt, system, value);
        if resolved.contains_key(&key) {
            continue;
        }
        if rt == ResourceType::Organization && key.1 == ODS_SYSTEM && key.2 == sender.ods {
            resolved.insert(key, sender.org_id.clone());
            continue;
        }
        if let Some(id) = existing.get(&key) {
            let id = id.as_str().to_owned();
            resolved.insert(key, id);
        }
    }

    let mut kept: Vec<(ResourceType, LogicalId)> = Vec::new();
    for ((e, rt), (id, is_new)) in mapped.entries.iter().zip(&types).zip(ids) {
        let mut body = e.resource.clone();
        rewrite(&mut body, &patient_id, &resolved);
        fill_patient_key(&mut body, &patient_id);
        match (e.action, is_new) {
            // Nothing to cancel: the cancelled event never reached carerecord.
            (EntryAction::Cancel, true) => continue,
            (_, true) => {
                let w = write::create_new(tx, *rt, &id, body).await?;
                written.push(version(*rt, &id, w.resource.version_id.get()));
            }
            (_, false) => {
                let w = write::update(tx, *rt, &id, body, None).await?;
                written.push(version(*rt, &id, w.resource.version_id.get()));
            }
        }
        kept.push((*rt, id));
    }
    for (rt, system) in &mapped.listed_in_full {
        let rt: ResourceType = rt
            .parse()
            .map_err(|_| IngestError::Internal(format!("a list of unknown type {rt}")))?;
        let listed: Vec<&LogicalId> = kept
            .iter()
            .filter(|(t, _)| *t == rt)
            .map(|(_, id)| id)
            .collect();
        written.extend(retire_unlisted(tx, rt, system, &patient_id, &listed).await?);
    }
    Ok(Applied {
        patient_id,
        written,
        outcome: resolved_person.outcome,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditional_references_are_read_with_their_escapes() {
        assert_eq!(
            conditional("Observation?identifier=https://x/Id/ZL/observation|F1%7C2%5E3"),
            Some((
                ResourceType::Observation,
                "https://x/Id/ZL/observation".to_owned(),
                "F1|2^3".to_owned()
            ))
        );
        assert_eq!(conditional("Patient/1"), None);
    }

    #[test]
    fn unresolved_conditionals_become_logical_references() {
        let mut v = json!({"subject": {"reference": PATIENT_PLACEHOLDER},
            "serviceProvider": {"reference": format!("Organization?identifier={ODS_SYSTEM}|ZRH01")},
            "destination": {"reference": format!("Organization?identifier={ODS_SYSTEM}|ZC0001"),
                "identifier": {"system": ODS_SYSTEM, "value": "ZC0001"}}});
        let mut r = HashMap::new();
        r.insert(
            (
                ResourceType::Organization,
                ODS_SYSTEM.to_owned(),
                "ZRH01".to_owned(),
            ),
            "org-1".to_owned(),
        );
        rewrite(&mut v, "p1", &r);
        assert_eq!(v["subject"]["reference"], "Patient/p1");
        assert_eq!(v["serviceProvider"]["reference"], "Organization/org-1");
        assert!(v["destination"].get("reference").is_none());
        assert_eq!(v["destination"]["identifier"]["value"], "ZC0001");
    }
}
