//! Reading FHIR JSON the way the reference's display rules say (§4): a CodeableConcept shows its
//! `text`, else the user-selected coding's display, else the first display; a reference shows
//! its `display`, and is still shown when that is missing.

use serde_json::Value;
use time::OffsetDateTime;

use crate::dates;

pub(crate) const SNOMED: &str = "http://snomed.info/sct";
pub(crate) const LOINC: &str = "http://loinc.org";
pub(crate) const DMD: &str = "https://dmd.nhs.uk";
pub(crate) const NHS_NUMBER: &str = "https://fhir.nhs.uk/Id/nhs-number";
pub(crate) const ODS: &str = "https://fhir.nhs.uk/Id/ods-organization-code";
pub(crate) const SOURCE_ORGANISATION_TAG: &str =
    "https://fhir.carerecord.example/CodeSystem/source-organisation";
pub(crate) const SOURCE_SYSTEM_TAG: &str =
    "https://fhir.carerecord.example/CodeSystem/source-system";
pub(crate) const MEDICATION_CHANGE_EXTENSION: &str =
    "https://fhir.carerecord.example/StructureDefinition/medication-change";

/// `v[key]` as a string.
pub(crate) fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// `v[key]` as an array (empty when absent or not an array).
pub(crate) fn arr<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice)
}

pub(crate) fn resource_type(v: &Value) -> &str {
    str_of(v, "resourceType").unwrap_or("")
}

pub(crate) fn id(v: &Value) -> &str {
    str_of(v, "id").unwrap_or("")
}

/// The text of a CodeableConcept.
pub(crate) fn concept(c: &Value) -> Option<String> {
    if let Some(t) = str_of(c, "text") {
        return Some(t.to_owned());
    }
    let codings = arr(c, "coding");
    codings
        .iter()
        .find(|x| x.get("userSelected").and_then(Value::as_bool) == Some(true))
        .and_then(|x| str_of(x, "display"))
        .or_else(|| codings.iter().find_map(|x| str_of(x, "display")))
        .or_else(|| codings.iter().find_map(|x| str_of(x, "code")))
        .map(str::to_owned)
}

/// The text of `v[key]` when it is a CodeableConcept, or of the first one when it is a list.
pub(crate) fn concept_at(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::Array(a) => a.iter().find_map(concept),
        c => concept(c),
    }
}

/// Every `(system, code)` of a CodeableConcept.
pub(crate) fn codes(c: &Value) -> impl Iterator<Item = (&str, &str)> {
    arr(c, "coding")
        .iter()
        .filter_map(|x| Some((str_of(x, "system").unwrap_or(""), str_of(x, "code")?)))
}

/// Whether a CodeableConcept (or any in a list) has `system|code`.
pub(crate) fn has_code(c: Option<&Value>, system: &str, code: &str) -> bool {
    match c {
        Some(Value::Array(a)) => a.iter().any(|x| has_code(Some(x), system, code)),
        Some(c) => codes(c).any(|(s, k)| s == system && k == code),
        None => false,
    }
}

/// Whether any coding in the concept(s) — or the Coding itself — has `code` (whatever its
/// system).
pub(crate) fn has_any_code(c: Option<&Value>, code: &str) -> bool {
    match c {
        Some(Value::Array(a)) => a.iter().any(|x| has_any_code(Some(x), code)),
        Some(c) => {
            str_of(c, "code").is_some_and(|k| k.eq_ignore_ascii_case(code))
                || codes(c).any(|(_, k)| k.eq_ignore_ascii_case(code))
        }
        None => false,
    }
}

/// The code of a `code`-typed field or the first code of a CodeableConcept.
pub(crate) fn status_code(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) => Some(s.clone()),
        c => codes(c).next().map(|(_, k)| k.to_owned()),
    }
}

/// A Reference's words: `display`, else the identifier's value, else the reference itself.
pub(crate) fn reference(r: &Value) -> Option<String> {
    str_of(r, "display")
        .or_else(|| r.get("identifier").and_then(|i| str_of(i, "value")))
        .or_else(|| str_of(r, "reference"))
        .map(str::to_owned)
}

/// The `Type/id` a reference points at (relative or absolute URL), for index lookups.
pub(crate) fn reference_key(r: &Value) -> Option<&str> {
    let s = str_of(r, "reference")?;
    let s = s.split("/_history/").next().unwrap_or(s);
    // The last two path segments of an absolute URL.
    let mut it = s.rsplitn(3, '/');
    let id = it.next()?;
    let ty = it.next()?;
    let start = s.len().checked_sub(id.len() + ty.len() + 1)?;
    s.get(start..)
}

/// A date(-time) field, or the start of a Period field.
pub(crate) fn date_at(v: &Value, key: &str) -> Option<OffsetDateTime> {
    match v.get(key)? {
        Value::String(s) => dates::parse(s),
        p @ Value::Object(_) => str_of(p, "start")
            .or_else(|| str_of(p, "end"))
            .and_then(dates::parse),
        _ => None,
    }
}

/// The end of a Period field.
pub(crate) fn period_end(v: &Value, key: &str) -> Option<OffsetDateTime> {
    v.get(key)
        .and_then(|p| str_of(p, "end"))
        .and_then(dates::parse)
}

/// The date an item is "of", by type: when it was taken, written or happened; else when it
/// was recorded; else when it reached us.
pub(crate) fn item_date(v: &Value) -> Option<OffsetDateTime> {
    let keys: &[&str] = match resource_type(v) {
        "Observation" => &[
            "effectiveDateTime",
            "effectivePeriod",
            "effectiveInstant",
            "issued",
        ],
        "DiagnosticReport" => &["effectiveDateTime", "effectivePeriod", "issued"],
        "Composition" | "DocumentReference" | "Consent" => &["date", "dateTime"],
        "Condition" => &["recordedDate", "onsetDateTime", "onsetPeriod"],
        "AllergyIntolerance" => &["recordedDate", "onsetDateTime"],
        "MedicationRequest" => &["authoredOn"],
        "MedicationStatement" => &["dateAsserted", "effectiveDateTime", "effectivePeriod"],
        "CarePlan" => &["created", "period"],
        "Encounter" | "EpisodeOfCare" | "Flag" => &["period"],
        "Procedure" => &["performedDateTime", "performedPeriod"],
        "Immunization" => &["occurrenceDateTime", "recorded"],
        _ => &["date"],
    };
    keys.iter()
        .find_map(|k| date_at(v, k))
        .or_else(|| last_updated(v))
}

pub(crate) fn last_updated(v: &Value) -> Option<OffsetDateTime> {
    v.get("meta")
        .and_then(|m| str_of(m, "lastUpdated"))
        .and_then(dates::parse)
}

/// The code of the `meta.tag` in `system`.
pub(crate) fn tag<'a>(v: &'a Value, system: &str) -> Option<&'a Value> {
    v.get("meta")
        .map(|m| arr(m, "tag"))
        .unwrap_or(&[])
        .iter()
        .find(|t| str_of(t, "system") == Some(system))
}

/// Plain text of a list of Annotations (`note`).
pub(crate) fn notes(v: &Value) -> Vec<&str> {
    arr(v, "note")
        .iter()
        .filter_map(|n| str_of(n, "text"))
        .collect()
}

/// A Quantity as "5.4 mmol/L", keeping the decimal's text as sent.
pub(crate) fn quantity(q: &Value) -> Option<String> {
    let value = number_text(q.get("value")?)?;
    let unit = str_of(q, "unit").or_else(|| str_of(q, "code"));
    Some(match (str_of(q, "comparator"), unit) {
        (Some(c), Some(u)) => format!("{c}{value} {u}"),
        (Some(c), None) => format!("{c}{value}"),
        (None, Some(u)) => format!("{value} {u}"),
        (None, None) => value,
    })
}

/// A JSON number's text as received (the workspace keeps decimals' text).
pub(crate) fn number_text(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

pub(crate) fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64().or_else(|| n.to_string().parse().ok()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn concept_prefers_text_then_user_selected_then_first_display() {
        assert_eq!(
            concept(&json!({"text": "Falls", "coding": [{"display": "X"}]})).as_deref(),
            Some("Falls")
        );
        assert_eq!(
            concept(&json!({"coding": [{"display": "A"}, {"display": "B", "userSelected": true}]}))
                .as_deref(),
            Some("B")
        );
        assert_eq!(
            concept(&json!({"coding": [{"code": "123"}]})).as_deref(),
            Some("123")
        );
        assert_eq!(concept(&json!({})), None);
    }

    #[test]
    fn reference_keys_of_relative_and_absolute_urls() {
        assert_eq!(
            reference_key(&json!({"reference": "Observation/o1"})),
            Some("Observation/o1")
        );
        assert_eq!(
            reference_key(
                &json!({"reference": "https://x.example/fhir/Observation/o1/_history/2"})
            ),
            Some("Observation/o1")
        );
        assert_eq!(reference_key(&json!({"reference": "o1"})), None);
        assert_eq!(reference_key(&json!({"display": "x"})), None);
    }

    #[test]
    fn quantities_keep_the_decimal_text() {
        let q: Value = serde_json::from_str(r#"{"value": 5.10, "unit": "mmol/L"}"#).unwrap();
        assert_eq!(quantity(&q).as_deref(), Some("5.10 mmol/L"));
    }
}
