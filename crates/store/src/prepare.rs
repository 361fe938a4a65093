use carerecord_access::{Classification, Classifier};
use carerecord_fhir::{LogicalId, ResourceType, VersionId};
use carerecord_search::index::{IndexEntries, extract};
use carerecord_search::registry::patient_compartment;
use serde_json::{Map, Value};

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

/// Stamps `id`, `meta.versionId` and `meta.lastUpdated` into `body` and computes its index rows.
///
/// The body otherwise stays as received (element order and decimal text are preserved by
/// serde_json's `preserve_order` and `arbitrary_precision`).
pub fn prepare_version(
    resource_type: ResourceType,
    id: &LogicalId,
    version_id: VersionId,
    last_updated: i64,
    mut body: Value,
) -> PreparedVersion {
    if let Some(obj) = body.as_object_mut() {
        stamp(obj, id, version_id, last_updated);
    }
    let mut index = extract(resource_type, &body);
    slim(&mut index);
    let patient_id = patient_compartment(resource_type, id.as_str(), &body);
    let class = Classifier::current().classify(resource_type, &body, patient_id.as_deref());
    PreparedVersion {
        resource_type,
        id: id.clone(),
        version_id,
        last_updated,
        body: body.to_string(),
        index,
        patient_id,
        class,
    }
}

/// Drops index rows that search never reads: `_id` is matched on the resource row itself, and
/// a value indexed twice for one parameter (a code repeated in two codings) matches once.
fn slim(index: &mut IndexEntries) {
    index.tokens.retain(|t| t.param != "_id");
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
