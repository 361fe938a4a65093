//! One Patient absorbing another: an HL7 `ADT^A40` (the sender says two of its records are one
//! person) or a review item a person linked.
//!
//! Every resource in the merged Patient's compartment is re-pointed to the survivor as a new
//! version; the merged Patient becomes `active: false` with a `replaced-by` link, the survivor
//! gets a `replaces` link. Nothing is deleted and every earlier version stays readable. The
//! merge is recorded (`patient_merges`) with the versions it wrote, so [`undo`] can re-point
//! them back. Entries keyed on the person (an HL7 sender's allergies and contacts, see
//! [`rekey`]) are re-keyed on the survivor, so that its next message updates them instead of
//! adding copies.

use std::collections::HashSet;

use carerecord_fhir::{LogicalId, ResourceType};
use carerecord_store::ingest::{self, IngestOp, tx_do, tx_id};
use carerecord_store::{StoreTx, write};
use serde_json::{Value, json};

use crate::IngestError;

/// What a merge did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    pub merge_id: i64,
    /// Versions written, as `Type/id/_history/version`.
    pub written: Vec<String>,
}

/// Why a merge happened, for its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    Hl7A40,
    Review,
}

impl Cause {
    fn as_str(self) -> &'static str {
        match self {
            Cause::Hl7A40 => "hl7-a40",
            Cause::Review => "review",
        }
    }
}

fn parse_body(s: &str) -> Result<Value, IngestError> {
    serde_json::from_str(s).map_err(|e| IngestError::Internal(format!("stored body: {e}")))
}

/// Rewrites every `reference` equal to (or ending in) `Patient/{from}` to `Patient/{to}`;
/// answers whether anything changed.
pub fn repoint(v: &mut Value, from: &str, to: &str) -> bool {
    let old = format!("Patient/{from}");
    let old_abs = format!("/Patient/{from}");
    let new = format!("Patient/{to}");
    let mut changed = false;
    match v {
        Value::Object(o) => {
            for (k, child) in o.iter_mut() {
                if k == "reference"
                    && let Value::String(s) = child
                    && (*s == old || s.ends_with(&old_abs))
                {
                    *s = new.clone();
                    changed = true;
                } else {
                    changed |= repoint(child, from, to);
                }
            }
        }
        Value::Array(a) => {
            for child in a {
                changed |= repoint(child, from, to);
            }
        }
        _ => {}
    }
    changed
}

/// The identifier values an entry is keyed on for one person start with carerecord's id for
/// them and `|` (`carerecord_hl7::map::PATIENT_KEY`, filled in by the ingest): an allergy
/// from an AL1 is `<person>|<code system>|<code>`.
fn person_key_prefix(patient: &str) -> String {
    format!("{patient}|")
}

/// Each `(system, value)` of `v`'s identifiers.
fn identifiers(v: &Value) -> impl Iterator<Item = (&str, &str)> {
    v.get("identifier")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|i| Some((i.get("system")?.as_str()?, i.get("value")?.as_str()?)))
}

/// Rewrites the identifiers of `v` keyed on person `from` to be keyed on `to`, so that `to`'s
/// next message finds the entry, except where `taken` (`to`'s own keys) already has the
/// rewritten one: then two entries would share a key, and this one keeps its own. Answers
/// whether anything changed.
pub fn rekey(v: &mut Value, from: &str, to: &str, taken: &HashSet<(String, String)>) -> bool {
    let (old, new) = (person_key_prefix(from), person_key_prefix(to));
    let mut changed = false;
    let Some(Value::Array(ids)) = v.get_mut("identifier") else {
        return false;
    };
    for i in ids {
        let system = i.get("system").and_then(Value::as_str).map(str::to_owned);
        if let (Some(system), Some(Value::String(value))) = (system, i.get_mut("value"))
            && let Some(rest) = value.strip_prefix(&old)
        {
            let rekeyed = format!("{new}{rest}");
            if !taken.contains(&(system, rekeyed.clone())) {
                *value = rekeyed;
                changed = true;
            }
        }
    }
    changed
}

/// The keys (`system`, `value`) of `patient`'s entries that are keyed on them.
async fn keys_of(
    tx: &mut dyn StoreTx,
    patient: &LogicalId,
) -> Result<HashSet<(String, String)>, IngestError> {
    let prefix = person_key_prefix(patient.as_str());
    let mut keys = HashSet::new();
    for key in ingest::tx_compartment(tx, patient.as_str()).await? {
        let Some(current) = tx.current(key.resource_type, &key.id).await? else {
            continue;
        };
        // Most of a record is keyed on nothing of the person's: not parsed.
        if current.deleted || !current.body.contains(&prefix) {
            continue;
        }
        let body = parse_body(&current.body)?;
        keys.extend(
            identifiers(&body)
                .filter(|(_, v)| v.starts_with(&prefix))
                .map(|(s, v)| (s.to_owned(), v.to_owned())),
        );
    }
    Ok(keys)
}

async fn write_body(
    tx: &mut dyn StoreTx,
    rt: ResourceType,
    id: &LogicalId,
    body: Value,
) -> Result<String, IngestError> {
    let w = write::update(tx, rt, id, body, None).await?;
    Ok(format!(
        "{rt}/{}/_history/{}",
        id.as_str(),
        w.resource.version_id.get()
    ))
}

async fn patient_body(tx: &mut dyn StoreTx, id: &LogicalId) -> Result<Value, IngestError> {
    match tx.current(ResourceType::Patient, id).await? {
        Some(p) if !p.deleted => parse_body(&p.body),
        _ => Err(IngestError::NotFound(format!(
            "Patient/{} does not exist",
            id.as_str()
        ))),
    }
}

fn links(b: &Value) -> Vec<Value> {
    b.get("link")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// Merges `merged` into `survivor` inside `tx`.
pub async fn merge(
    tx: &mut dyn StoreTx,
    survivor: &LogicalId,
    merged: &LogicalId,
    cause: Cause,
    actor: &str,
    now: i64,
) -> Result<Merged, IngestError> {
    if survivor == merged {
        return Err(IngestError::Invalid(
            "a Patient cannot be merged into itself".to_owned(),
        ));
    }
    let mut survivor_body = patient_body(tx, survivor).await?;
    let mut merged_body = patient_body(tx, merged).await?;
    let taken = keys_of(tx, survivor).await?;
    let mut written = Vec::new();
    for key in ingest::tx_compartment(tx, merged.as_str()).await? {
        if key.resource_type == ResourceType::Patient && key.id == *merged {
            continue;
        }
        let Some(current) = tx.current(key.resource_type, &key.id).await? else {
            continue;
        };
        let mut body = parse_body(&current.body)?;
        // Both, always: `repoint(..) || rekey(..)` would not re-key an entry it re-pointed.
        let repointed = repoint(&mut body, merged.as_str(), survivor.as_str());
        let rekeyed = rekey(&mut body, merged.as_str(), survivor.as_str(), &taken);
        if repointed || rekeyed {
            written.push(write_body(tx, key.resource_type, &key.id, body).await?);
        }
    }
    let mut l = links(&merged_body);
    l.push(json!({"other": {"reference": format!("Patient/{}", survivor.as_str())}, "type": "replaced-by"}));
    merged_body["link"] = Value::Array(l);
    merged_body["active"] = json!(false);
    written.push(write_body(tx, ResourceType::Patient, merged, merged_body).await?);
    let mut l = links(&survivor_body);
    l.push(
        json!({"other": {"reference": format!("Patient/{}", merged.as_str())}, "type": "replaces"}),
    );
    survivor_body["link"] = Value::Array(l);
    written.push(write_body(tx, ResourceType::Patient, survivor, survivor_body).await?);
    let merge_id = tx_id(
        tx,
        IngestOp::PutMerge {
            at: now,
            survivor_id: survivor.as_str().to_owned(),
            merged_id: merged.as_str().to_owned(),
            cause: cause.as_str().to_owned(),
            actor: actor.to_owned(),
            moved: written.clone(),
        },
    )
    .await?;
    Ok(Merged { merge_id, written })
}

/// Undoes merge `merge_id` inside `tx`: the resources it re-pointed point at the merged
/// Patient again (as new versions), the merged Patient is active again and both links go.
pub async fn undo(
    tx: &mut dyn StoreTx,
    merge_id: i64,
    now: i64,
) -> Result<Vec<String>, IngestError> {
    let m = ingest::tx_merge(tx, merge_id).await.map_err(|e| match e {
        carerecord_store::StoreError::NotFound => {
            IngestError::NotFound(format!("merge {merge_id} does not exist"))
        }
        e => e.into(),
    })?;
    if m.undone_at.is_some() {
        return Err(IngestError::NotFound(format!(
            "merge {merge_id} was undone already"
        )));
    }
    let survivor =
        LogicalId::parse(&m.survivor_id).map_err(|e| IngestError::Internal(e.to_string()))?;
    let merged =
        LogicalId::parse(&m.merged_id).map_err(|e| IngestError::Internal(e.to_string()))?;
    let mut written = Vec::new();
    for entry in &m.moved {
        let mut parts = entry.split('/');
        let (Some(rt), Some(id)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Ok(rt) = rt.parse::<ResourceType>() else {
            continue;
        };
        let Ok(id) = LogicalId::parse(id) else {
            continue;
        };
        if rt == ResourceType::Patient {
            continue;
        }
        let Some(current) = tx.current(rt, &id).await? else {
            continue;
        };
        if current.deleted {
            continue;
        }
        let mut body = parse_body(&current.body)?;
        let repointed = repoint(&mut body, survivor.as_str(), merged.as_str());
        // What the merge re-keyed goes back; an entry whose key it kept has nothing to undo.
        let rekeyed = rekey(
            &mut body,
            survivor.as_str(),
            merged.as_str(),
            &HashSet::new(),
        );
        if repointed || rekeyed {
            written.push(write_body(tx, rt, &id, body).await?);
        }
    }
    let drop_link = |b: &mut Value, other: &str| {
        let target = format!("Patient/{other}");
        let kept: Vec<Value> = links(b)
            .into_iter()
            .filter(|l| l.pointer("/other/reference").and_then(Value::as_str) != Some(&target))
            .collect();
        if let Some(o) = b.as_object_mut() {
            if kept.is_empty() {
                o.remove("link");
            } else {
                o.insert("link".to_owned(), Value::Array(kept));
            }
        }
    };
    let mut merged_body = patient_body(tx, &merged).await?;
    drop_link(&mut merged_body, survivor.as_str());
    merged_body["active"] = json!(true);
    written.push(write_body(tx, ResourceType::Patient, &merged, merged_body).await?);
    let mut survivor_body = patient_body(tx, &survivor).await?;
    drop_link(&mut survivor_body, merged.as_str());
    written.push(write_body(tx, ResourceType::Patient, &survivor, survivor_body).await?);
    tx_do(
        tx,
        IngestOp::UndoMerge {
            id: merge_id,
            at: now,
        },
    )
    .await?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_to_the_merged_patient_are_repointed_and_others_left() {
        let mut v = json!({"subject": {"reference": "Patient/old"},
            "performer": [{"reference": "http://x/fhir/Patient/old"}, {"reference": "Patient/older"}],
            "note": [{"text": "Patient/old"}]});
        assert!(repoint(&mut v, "old", "new"));
        assert_eq!(v["subject"]["reference"], "Patient/new");
        assert_eq!(v["performer"][0]["reference"], "Patient/new");
        assert_eq!(v["performer"][1]["reference"], "Patient/older");
        assert_eq!(v["note"][0]["text"], "Patient/old");
        assert!(!repoint(&mut v, "old", "new"));
    }

    #[test]
    fn keys_on_the_merged_person_move_to_the_survivor_unless_it_has_them() {
        let system = "https://fhir.carerecord.example/Id/ZRH01/allergy";
        let mut latex = json!({"identifier": [
            {"system": system, "value": "old|LOCAL|LTX"},
            {"system": "https://x.example/other", "value": "old-not-a-key"}]});
        assert!(rekey(&mut latex, "old", "new", &HashSet::new()));
        assert_eq!(latex["identifier"][0]["value"], "new|LOCAL|LTX");
        assert_eq!(latex["identifier"][1]["value"], "old-not-a-key");
        assert!(!rekey(&mut latex, "old", "new", &HashSet::new()));
        // The survivor has its own penicillin allergy from the same sender: kept apart.
        let taken = HashSet::from([(system.to_owned(), "new|LOCAL|PEN".to_owned())]);
        let mut penicillin = json!({"identifier": [{"system": system, "value": "old|LOCAL|PEN"}]});
        assert!(!rekey(&mut penicillin, "old", "new", &taken));
        assert_eq!(penicillin["identifier"][0]["value"], "old|LOCAL|PEN");
    }
}
