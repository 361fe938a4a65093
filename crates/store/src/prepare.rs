use carerecord_access::{Classification, Classifier};
use carerecord_fhir::{LogicalId, ResourceType, VersionId};
use carerecord_search::index::{IndexEntries, extract};
use carerecord_search::registry::patient_compartment;
use serde_json::{Map, Value};
use std::ops::Range;

use crate::model::format_instant;

/// A resource version ready to be written by any backend: stamped body, index rows, and the
/// patient whose compartment it belongs to (the future shard key).
#[derive(Debug, Clone)]
pub struct PreparedVersion {
    pub resource_type: ResourceType,
    pub id: LogicalId,
    pub version_id: VersionId,
    pub last_updated: i64,
    pub body: String,
    pub index: IndexEntries,
    pub patient_id: Option<String>,
    /// What the access policy needs: source, sensitivity, relationships, objection.
    pub class: Classification,
}

/// A resource body made ready to become a version: `id` stamped, index rows computed, patient
/// compartment found, the body serialised — everything except the version id and time, which
/// only the write transaction can decide, and which are then spliced into the text. This is
/// the CPU work of a write, so it can be done before the transaction starts (or on another
/// core while an earlier one writes): a single-writer store's one writer only copies text.
#[derive(Debug, Clone)]
pub struct PreparedBody {
    pub resource_type: ResourceType,
    pub id: LogicalId,
    /// The stamped body as compact JSON, with placeholders for the version id and time.
    text: String,
    /// Where the placeholders' JSON strings (quotes included) are in `text`: `meta.versionId`'s
    /// and `meta.lastUpdated`'s. `None` for a body that is not an object (refused before it
    /// gets here), which has nowhere to hold them.
    stamps: Option<[Range<usize>; 2]>,
    index: IndexEntries,
    patient_id: Option<String>,
    class: Classification,
}

/// The index parameter whose value is the version's own time (`meta.lastUpdated`).
const LAST_UPDATED: &str = "_lastUpdated";

/// Stamps `id` into `body` and computes its index rows and compartment.
pub fn prepare_body(resource_type: ResourceType, id: &LogicalId, mut body: Value) -> PreparedBody {
    if let Some(obj) = body.as_object_mut() {
        // A placeholder version and time, so that `meta` takes its final place and shape; both
        // are overwritten by `into_version`.
        stamp(obj, id, VersionId::FIRST, 0);
    }
    let mut index = extract(resource_type, &body);
    slim(&mut index);
    let patient_id = patient_compartment(resource_type, id.as_str(), &body);
    let class = Classifier::current().classify(resource_type, &body, patient_id.as_deref());
    let (text, stamps) = serialize_stamped(&body);
    PreparedBody {
        resource_type,
        id: id.clone(),
        text,
        stamps,
        index,
        patient_id,
        class,
    }
}

/// `body` as compact JSON — the same text as `body.to_string()` — and where the values of its
/// `meta.versionId` and `meta.lastUpdated` are in it (when it has both).
fn serialize_stamped(body: &Value) -> (String, Option<[Range<usize>; 2]>) {
    let Some(obj) = body.as_object() else {
        return (body.to_string(), None);
    };
    let mut out: Vec<u8> = Vec::with_capacity(2048);
    let (mut version, mut time) = (None, None);
    put_object(&mut out, obj, |out, key, value| match (key, value) {
        ("meta", Value::Object(meta)) => put_object(out, meta, |out, key, value| {
            let start = out.len();
            put_json(out, value);
            match key {
                "versionId" => version = Some(start..out.len()),
                "lastUpdated" => time = Some(start..out.len()),
                _ => {}
            }
        }),
        _ => put_json(out, value),
    });
    match (String::from_utf8(out), version, time) {
        (Ok(text), Some(v), Some(t)) => (text, Some([v, t])),
        (Ok(text), _, _) => (text, None),
        // serde_json writes UTF-8; should it ever not, its own serialisation is the answer.
        (Err(_), _, _) => (body.to_string(), None),
    }
}

/// Appends `obj` as a compact JSON object, each member's value written by `value`.
fn put_object(
    out: &mut Vec<u8>,
    obj: &Map<String, Value>,
    mut value: impl FnMut(&mut Vec<u8>, &str, &Value),
) {
    out.push(b'{');
    for (i, (k, v)) in obj.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        put_key(out, k);
        out.push(b':');
        value(out, k, v);
    }
    out.push(b'}');
}

/// Appends `v` as compact JSON. A JSON value always serialises (its keys are strings), and a
/// `Vec` cannot fail to take the bytes.
fn put_json(out: &mut Vec<u8>, v: &Value) {
    let _ = serde_json::to_writer(out, v);
}

/// Appends `key` as a JSON string (see [`put_json`]).
fn put_key(out: &mut Vec<u8>, key: &str) {
    let _ = serde_json::to_writer(out, key);
}

impl PreparedBody {
    /// The version to write: the version id and time spliced into the text serialised when the
    /// body was prepared (copying text only, on the writer).
    pub fn into_version(self, version_id: VersionId, last_updated: i64) -> PreparedVersion {
        let body = match self.stamps {
            Some([version, time]) => {
                // Both values are JSON strings of digits, `-`, `:`, `.`, `T` and `Z`: nothing
                // to escape.
                let mut pieces = [
                    (version, version_id.get().to_string()),
                    (time, format_instant(last_updated)),
                ];
                pieces.sort_by_key(|(at, _)| at.start);
                let mut body = String::with_capacity(self.text.len() + 16);
                let mut from = 0;
                for (at, value) in pieces {
                    body.push_str(&self.text[from..at.start]);
                    body.push('"');
                    body.push_str(&value);
                    body.push('"');
                    from = at.end;
                }
                body.push_str(&self.text[from..]);
                body
            }
            None => self.text,
        };
        PreparedVersion {
            resource_type: self.resource_type,
            id: self.id,
            version_id,
            last_updated,
            body,
            index: self.index,
            patient_id: self.patient_id,
            class: self.class,
        }
    }
}

/// Stamps `id`, `meta.versionId` and `meta.lastUpdated` into `body` and computes its index rows.
///
/// The body otherwise stays as received (element order and decimal text are preserved by
/// serde_json's `preserve_order` and `arbitrary_precision`).
pub fn prepare_version(
    resource_type: ResourceType,
    id: &LogicalId,
    version_id: VersionId,
    last_updated: i64,
    body: Value,
) -> PreparedVersion {
    prepare_body(resource_type, id, body).into_version(version_id, last_updated)
}

/// Drops index rows that search never reads: `_id` and `_lastUpdated` are matched on the
/// resource row itself (its id and `last_updated` columns, which sorting uses too), a value
/// indexed twice for one parameter (a code repeated in two codings) matches once, and a
/// CodeableConcept's `text` that one of its parameter's codings already displays (after
/// normalising) adds nothing: `:text` matches that coding's row alike, and nothing else reads
/// a row without system and code (`:not` and sorting look at codes).
fn slim(index: &mut IndexEntries) {
    index.tokens.retain(|t| t.param != "_id");
    index.dates.retain(|d| d.param != LAST_UPDATED);
    let displayed: std::collections::HashSet<(String, String)> = index
        .tokens
        .iter()
        .filter(|t| t.system.is_some() || t.code.is_some())
        .filter_map(|t| t.text.as_ref().map(|x| (t.param.clone(), x.clone())))
        .collect();
    index.tokens.retain(|t| {
        let text_only = t.system.is_none() && t.code.is_none();
        !(text_only
            && t.text
                .as_ref()
                .is_some_and(|x| displayed.contains(&(t.param.clone(), x.clone()))))
    });
    let mut seen = std::collections::HashSet::new();
    index.tokens.retain(|t| {
        seen.insert((
            t.param.clone(),
            t.system.clone(),
            t.code.clone(),
            t.text.clone(),
        ))
    });
    let mut seen = std::collections::HashSet::new();
    index.references.retain(|r| {
        seen.insert((
            r.param.clone(),
            r.target_type,
            r.target_id.clone(),
            r.url.clone(),
            r.identifier_system.clone(),
            r.identifier_value.clone(),
        ))
    });
    let mut seen = std::collections::HashSet::new();
    index
        .strings
        .retain(|s| seen.insert((s.param.clone(), s.exact.clone())));
}

fn stamp(obj: &mut Map<String, Value>, id: &LogicalId, version_id: VersionId, last_updated: i64) {
    // Keep `resourceType` first and `id` second, as FHIR JSON conventionally reads.
    let mut out = Map::with_capacity(obj.len() + 2);
    if let Some(rt) = obj.remove("resourceType") {
        out.insert("resourceType".to_owned(), rt);
    }
    obj.remove("id");
    out.insert("id".to_owned(), Value::String(id.as_str().to_owned()));
    let mut meta = match obj.remove("meta") {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    meta.insert(
        "versionId".to_owned(),
        Value::String(version_id.get().to_string()),
    );
    meta.insert(
        "lastUpdated".to_owned(),
        Value::String(format_instant(last_updated)),
    );
    out.insert("meta".to_owned(), Value::Object(meta));
    out.extend(std::mem::take(obj));
    *obj = out;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A concept's text that a coding already displays is not a row of its own; a different
    /// text is.
    #[test]
    fn a_concept_text_its_coding_displays_is_not_indexed_twice() {
        let id = LogicalId::parse("o").unwrap();
        let text_rows = |text: &str| {
            let body = json!({"resourceType": "Observation", "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "2823-3",
                                     "display": "Serum potassium"}], "text": text}});
            let p = prepare_body(ResourceType::Observation, &id, body);
            p.index
                .tokens
                .iter()
                .filter(|t| t.param == "code" && t.code.is_none() && t.system.is_none())
                .count()
        };
        assert_eq!(text_rows("SERUM POTASSIUM"), 0);
        assert_eq!(text_rows("Potassium, serum"), 1);
    }

    #[test]
    fn id_rows_and_repeated_values_are_not_indexed() {
        let id = LogicalId::parse("c1").unwrap();
        let body = json!({"resourceType": "Condition", "subject": {"reference": "Patient/p"},
            "code": {"coding": [
                {"system": "http://snomed.info/sct", "code": "52448006"},
                {"system": "http://snomed.info/sct", "code": "52448006"}]}});
        let p = prepare_version(ResourceType::Condition, &id, VersionId::FIRST, 0, body);
        assert!(p.index.tokens.iter().all(|t| t.param != "_id"));
        let codes = p
            .index
            .tokens
            .iter()
            .filter(|t| t.param == "code" && t.code.as_deref() == Some("52448006"))
            .count();
        assert_eq!(codes, 1);
        assert_eq!(p.patient_id.as_deref(), Some("p"));
    }

    #[test]
    fn a_body_prepared_in_advance_becomes_the_same_version_as_one_prepared_at_once() {
        let id = LogicalId::parse("obs-2").unwrap();
        let body: Value = serde_json::from_str(
            r#"{"resourceType":"Observation","status":"final","meta":{"source":"urn:x","lastUpdated":"2001-01-01T00:00:00Z"},"subject":{"reference":"Patient/p"},"effectiveDateTime":"2026-11-01","valueQuantity":{"value":1.50}}"#,
        )
        .unwrap();
        let at = 1_764_000_000_123_456;
        let version = VersionId::FIRST.next();
        let direct = {
            let mut b = body.clone();
            stamp(b.as_object_mut().unwrap(), &id, version, at);
            let mut index = extract(ResourceType::Observation, &b);
            slim(&mut index);
            (b.to_string(), index)
        };
        let p = prepare_body(ResourceType::Observation, &id, body).into_version(version, at);
        assert_eq!(p.body, direct.0);
        assert_eq!(p.index, direct.1);
        assert!(!p.index.dates.iter().any(|d| d.param == "_lastUpdated"));
        assert_eq!(p.patient_id.as_deref(), Some("p"));
    }

    /// The text a prepared body becomes is exactly serde_json's for the stamped body, whatever
    /// the shape of the `meta` it came with, and with text that needs escaping around it.
    #[test]
    fn a_version_spliced_into_the_prepared_text_is_the_stamped_body_serialised() {
        let id = LogicalId::parse("p-1").unwrap();
        let at = 1_764_000_000_000_001;
        let bodies = [
            json!({"resourceType": "Patient"}),
            json!({"resourceType": "Patient", "meta": "not an object",
                "name": [{"text": "Zoë \"Quote\" \\ \n \u{1F600} </script>"}]}),
            json!({"meta": {"lastUpdated": "2001-01-01T00:00:00Z", "tag": [{"code": "a"}],
                "versionId": "7", "source": "urn:\"x\""}, "resourceType": "Patient",
                "id": "other", "birthDate": "1950-01-01"}),
            json!({"resourceType": "Patient", "meta": {"security": [{"code": "R"}]},
                "extension": [{"url": "u", "valueString": "meta"}], "meta2": {"versionId": "x"}}),
        ];
        for body in bodies {
            for version in [VersionId::FIRST, VersionId::FIRST.next()] {
                let mut b = body.clone();
                stamp(b.as_object_mut().unwrap(), &id, version, at);
                let p = prepare_body(ResourceType::Patient, &id, body.clone())
                    .into_version(version, at);
                assert_eq!(p.body, b.to_string());
            }
        }
        let not_object = prepare_body(ResourceType::Patient, &id, json!([1, "two"]))
            .into_version(VersionId::FIRST, at);
        assert_eq!(not_object.body, r#"[1,"two"]"#);
    }

    #[test]
    fn stamping_sets_id_and_meta_and_keeps_decimal_text() {
        let id = LogicalId::parse("obs-1").unwrap();
        let body: Value = serde_json::from_str(
            r#"{"resourceType":"Observation","status":"final","meta":{"source":"urn:x"},"valueQuantity":{"value":1.50}}"#,
        )
        .unwrap();
        let p = prepare_version(ResourceType::Observation, &id, VersionId::FIRST, 0, body);
        let v: Value = serde_json::from_str(&p.body).unwrap();
        assert_eq!(v["id"], json!("obs-1"));
        assert_eq!(v["meta"]["versionId"], json!("1"));
        assert_eq!(v["meta"]["source"], json!("urn:x"));
        assert!(p.body.contains("1.50"), "decimal text kept: {}", p.body);
        assert!(
            p.body
                .starts_with(r#"{"resourceType":"Observation","id":"obs-1""#)
        );
    }
}
