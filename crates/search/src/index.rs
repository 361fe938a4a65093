//! Index rows: what one resource contributes to search.
//!
//! Every row names the search parameter `code` it belongs to (e.g. `"code"`, `"subject"`,
//! `"_lastUpdated"`). Storage writes these rows in the same transaction as the resource.
//!
//! Each parameter's (reduced) FHIRPath expression is evaluated over the resource JSON; the
//! datatype of each value comes from its choice suffix when there is one (`valueQuantity` →
//! Quantity), else from its JSON shape (`coding` → CodeableConcept, `reference` → Reference,
//! `family`/`given` → HumanName, `start`/`end` → Period, a numeric `value` → Quantity, a
//! `telecom` element or a `system` of phone/email/… → ContactPoint, `system`+`value` →
//! Identifier, `system`/`code` → Coding, …). The parameter's type then decides which rows a
//! value gives; values that make no sense for the parameter type are skipped. Composite and
//! special parameters are not extracted, nor are the values a parameter repeats from another
//! (`combo-code`, `patient`: see [`crate::registry::Stored`]), which are searched through the
//! other's rows.

use carerecord_fhir::ResourceType;
use serde_json::Value;

use crate::datetime::DateRange;
use crate::registry::expr::{self, Item};
use crate::registry::{self, ParamKind, SearchParamDef, Stored};
use crate::text::normalize;

/// All index rows for one resource version.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IndexEntries {
    pub strings: Vec<StringEntry>,
    pub tokens: Vec<TokenEntry>,
    pub dates: Vec<DateEntry>,
    pub references: Vec<ReferenceEntry>,
    pub numbers: Vec<NumberEntry>,
    pub quantities: Vec<QuantityEntry>,
    pub uris: Vec<UriEntry>,
}

/// A string parameter value (HumanName parts, Address parts, plain strings, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StringEntry {
    pub param: String,
    /// [`crate::text::normalize`]d: lower case, accents removed — for the default and `:contains`.
    pub normalized: String,
    /// As in the resource — for `:exact`.
    pub exact: String,
}

/// A token: a Coding, Identifier, ContactPoint, code, boolean, … .
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenEntry {
    pub param: String,
    pub system: Option<String>,
    pub code: Option<String>,
    /// Normalized display / CodeableConcept.text / Identifier.type.text, for `:text`.
    pub text: Option<String>,
}

/// A date, dateTime, instant, Period or Timing as a `[low, high)` range of microseconds since the
/// Unix epoch (UTC). An open end is `i64::MIN` / `i64::MAX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateEntry {
    pub param: String,
    pub low: i64,
    pub high: i64,
}

/// A reference to another resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferenceEntry {
    pub param: String,
    /// For relative (`Patient/123`) references, and absolute ones whose base is this server.
    pub target_type: Option<ResourceType>,
    pub target_id: Option<String>,
    /// The reference as written, for absolute URLs (and canonical references).
    pub url: Option<String>,
    /// `Reference.identifier`, for the `:identifier` modifier.
    pub identifier_system: Option<String>,
    pub identifier_value: Option<String>,
}

/// A number (decimal or integer) with the range its written precision implies.
#[derive(Debug, Clone, PartialEq)]
pub struct NumberEntry {
    pub param: String,
    pub value: f64,
    pub low: f64,
    pub high: f64,
}

/// A Quantity (including SimpleQuantity, Age, Duration, Money, and Range as two ends).
#[derive(Debug, Clone, PartialEq)]
pub struct QuantityEntry {
    pub param: String,
    pub value: f64,
    pub low: f64,
    pub high: f64,
    pub system: Option<String>,
    pub code: Option<String>,
    pub unit: Option<String>,
}

/// A uri / url / canonical value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriEntry {
    pub param: String,
    pub value: String,
}

/// Extracts every index row of `resource` (a resource of type `resource_type`) for every search
/// parameter the registry defines for that type.
pub fn extract(resource_type: ResourceType, resource: &Value) -> IndexEntries {
    let mut out = IndexEntries::default();
    for (def, parsed, stored) in registry::indexed_params(resource_type) {
        let before = out.references.len();
        for item in expr::evaluate(parsed, resource) {
            add_item(&mut out, def, &item);
        }
        if matches!(stored, Stored::Resolved { .. }) {
            // Found through the other parameter's rows by their target type (see `Stored`).
            let mut i = 0;
            out.references.retain(|r| {
                i += 1;
                i <= before || r.target_type.is_none()
            });
        }
    }
    out
}

fn add_item(out: &mut IndexEntries, def: &SearchParamDef, item: &Item<'_>) {
    let param = &def.code;
    let ty = expr::item_type(item);
    // Nodes are borrowed from the resource (a clone of each would copy whole sub-trees).
    let made;
    let value: &Value = match item {
        Item::Node { value, .. } => value,
        Item::Bool(b) => {
            made = Value::Bool(*b);
            &made
        }
        Item::Str(s) => {
            made = Value::String(s.clone());
            &made
        }
        Item::Num(n) => {
            made = serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number);
            &made
        }
        Item::Resolved(_) => return,
    };
    match def.kind {
        ParamKind::String => add_strings(out, param, ty, value),
        ParamKind::Token => add_tokens(out, param, ty, value),
        ParamKind::Date => add_dates(out, param, ty, value),
        ParamKind::Reference => add_reference(out, param, ty, value),
        ParamKind::Number => {
            if let Some((v, low, high)) = number_of(value) {
                out.numbers.push(NumberEntry {
                    param: param.clone(),
                    value: v,
                    low,
                    high,
                });
            }
        }
        ParamKind::Quantity => add_quantity(out, param, ty, value),
        ParamKind::Uri => {
            if let Some(s) = value.as_str() {
                out.uris.push(UriEntry {
                    param: param.clone(),
                    value: s.to_owned(),
                });
            }
        }
        ParamKind::Composite | ParamKind::Special => {}
    }
}

fn str_field<'v>(v: &'v Value, key: &str) -> Option<&'v str> {
    v.get(key).and_then(Value::as_str)
}

/// A string field, or each string of an array field.
fn str_fields<'v>(v: &'v Value, key: &str) -> Vec<&'v str> {
    match v.get(key) {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn add_strings(out: &mut IndexEntries, param: &str, ty: Option<&str>, value: &Value) {
    let fields: &[&str] = match ty {
        _ if value.is_string() => {
            push_string(out, param, value.as_str().unwrap_or_default());
            return;
        }
        Some("HumanName") => &["family", "given", "prefix", "suffix", "text"],
        Some("Address") => &[
            "line",
            "city",
            "district",
            "state",
            "postalCode",
            "country",
            "text",
        ],
        Some("ContactPoint" | "Identifier") => &["value"],
        Some("CodeableConcept" | "Annotation") => &["text"],
        Some("Coding") => &["display"],
        _ => return,
    };
    for f in fields {
        for s in str_fields(value, f) {
            push_string(out, param, s);
        }
    }
}

fn push_string(out: &mut IndexEntries, param: &str, s: &str) {
    if s.trim().is_empty() {
        return;
    }
    out.strings.push(StringEntry {
        param: param.to_owned(),
        normalized: normalize(s),
        exact: s.to_owned(),
    });
}

fn token(param: &str, system: Option<&str>, code: Option<&str>, text: Option<&str>) -> TokenEntry {
    TokenEntry {
        param: param.to_owned(),
        system: system.map(str::to_owned),
        code: code.map(str::to_owned),
        text: text.map(normalize),
    }
}

fn add_tokens(out: &mut IndexEntries, param: &str, ty: Option<&str>, value: &Value) {
    match value {
        Value::String(s) => out.tokens.push(token(param, None, Some(s), None)),
        Value::Bool(b) => out.tokens.push(token(
            param,
            None,
            Some(if *b { "true" } else { "false" }),
            None,
        )),
        Value::Number(n) => out
            .tokens
            .push(token(param, None, Some(&n.to_string()), None)),
        Value::Object(_) => match ty {
            Some("Coding") => push_coding(out, param, value),
            Some("CodeableConcept") => {
                if let Some(Value::Array(codings)) = value.get("coding") {
                    for c in codings {
                        push_coding(out, param, c);
                    }
                }
                if let Some(text) = str_field(value, "text") {
                    out.tokens.push(token(param, None, None, Some(text)));
                }
            }
            Some("Identifier") => {
                let text = value.get("type").and_then(|t| str_field(t, "text"));
                let system = str_field(value, "system");
                let code = str_field(value, "value");
                if system.is_some() || code.is_some() {
                    out.tokens.push(token(param, system, code, text));
                }
            }
            Some("ContactPoint") => {
                if let Some(v) = str_field(value, "value") {
                    out.tokens.push(token(param, None, Some(v), None));
                }
            }
            _ => {}
        },
        _ => {}
    }
}

fn push_coding(out: &mut IndexEntries, param: &str, coding: &Value) {
    let system = str_field(coding, "system");
    let code = str_field(coding, "code");
    let display = str_field(coding, "display");
    if system.is_some() || code.is_some() || display.is_some() {
        out.tokens.push(token(param, system, code, display));
    }
}

fn add_dates(out: &mut IndexEntries, param: &str, ty: Option<&str>, value: &Value) {
    let mut push = |low: i64, high: i64| {
        out.dates.push(DateEntry {
            param: param.to_owned(),
            low,
            high,
        });
    };
    if let Some(s) = value.as_str() {
        if let Some(r) = DateRange::parse(s) {
            push(r.low, r.high);
        }
        return;
    }
    match ty {
        Some("Period") => {
            if let Some((low, high)) = period(value) {
                push(low, high);
            }
        }
        Some("Timing") => {
            let events: Vec<DateRange> = str_fields(value, "event")
                .into_iter()
                .filter_map(DateRange::parse)
                .collect();
            let low = events.iter().map(|r| r.low).min();
            let high = events.iter().map(|r| r.high).max();
            if let (Some(low), Some(high)) = (low, high) {
                push(low, high);
            } else if let Some(bounds) = value.get("repeat").and_then(|r| r.get("boundsPeriod"))
                && let Some((low, high)) = period(bounds)
            {
                push(low, high);
            }
        }
        _ => {}
    }
}

/// A Period as `[start.low, end.high)`, open ends as `i64::MIN` / `i64::MAX`; `None` when it has
/// neither a valid start nor a valid end.
fn period(value: &Value) -> Option<(i64, i64)> {
    let start = str_field(value, "start").and_then(DateRange::parse);
    let end = str_field(value, "end").and_then(DateRange::parse);
    if start.is_none() && end.is_none() {
        return None;
    }
    Some((
        start.map_or(i64::MIN, |r| r.low),
        end.map_or(i64::MAX, |r| r.high),
    ))
}

/// The parts of a reference string.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParsedReference {
    pub target_type: Option<ResourceType>,
    pub target_id: Option<String>,
    pub url: Option<String>,
}

/// Splits a reference string: relative `Type/id` (history stripped) gives type and id; absolute
/// URLs keep the URL and also give the trailing `Type/id` when there is one; `urn:` and other
/// strings keep the URL only. Contained references (`#x`) give `None`. A relative reference to a
/// type this server does not store keeps the id and the reference as the URL.
pub fn parse_reference(reference: &str) -> Option<ParsedReference> {
    if reference.is_empty() || reference.starts_with('#') {
        return None;
    }
    let tail = expr::reference_type(reference).and_then(|ty| {
        let path = reference.split(['?', '#']).next()?;
        let segs: Vec<&str> = path.split('/').collect();
        let n = segs.len();
        let end = if n >= 4 && segs[n - 2] == "_history" {
            n - 2
        } else {
            n
        };
        Some((ty, segs.get(end.checked_sub(1)?)?.to_string(), end == 2))
    });
    let absolute = reference.contains("://");
    Some(match tail {
        Some((ty, id, relative)) if relative || absolute => {
            let target_type = ty.parse::<ResourceType>().ok();
            ParsedReference {
                url: (absolute || target_type.is_none()).then(|| reference.to_owned()),
                target_type,
                target_id: Some(id),
            }
        }
        _ => ParsedReference {
            url: Some(reference.to_owned()),
            ..ParsedReference::default()
        },
    })
}

fn add_reference(out: &mut IndexEntries, param: &str, ty: Option<&str>, value: &Value) {
    let (reference, identifier) = match value {
        Value::String(s) => (Some(s.as_str()), None),
        Value::Object(_) if ty == Some("Reference") => {
            (str_field(value, "reference"), value.get("identifier"))
        }
        _ => return,
    };
    let parsed = match reference {
        Some(r) => match parse_reference(r) {
            Some(p) => Some(p),
            // Contained: nothing to search on.
            None => return,
        },
        None => None,
    };
    let identifier_system = identifier
        .and_then(|i| str_field(i, "system"))
        .map(str::to_owned);
    let identifier_value = identifier
        .and_then(|i| str_field(i, "value"))
        .map(str::to_owned);
    if parsed.is_none() && identifier_value.is_none() && identifier_system.is_none() {
        return;
    }
    let parsed = parsed.unwrap_or_default();
    out.references.push(ReferenceEntry {
        param: param.to_owned(),
        target_type: parsed.target_type,
        target_id: parsed.target_id,
        url: parsed.url,
        identifier_system,
        identifier_value,
    });
}

/// Parses a FHIR decimal as written and the range its precision implies: `100` → `(100, 99.5,
/// 100.5)`, `1.5` → `(1.5, 1.45, 1.55)`, `1e2` → `(100, 50, 150)`. `None` when it is not a
/// decimal (`-?digits[.digits][e±digits]`).
pub fn parse_decimal(text: &str) -> Option<(f64, f64, f64)> {
    let (mantissa, exp) = match text.find(['e', 'E']) {
        Some(i) => (&text[..i], Some(&text[i + 1..])),
        None => (text, None),
    };
    let unsigned = mantissa.strip_prefix('-').unwrap_or(mantissa);
    let (int, frac) = match unsigned.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (unsigned, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || frac.is_some_and(|f| !digits(f)) {
        return None;
    }
    let exp: i32 = match exp {
        Some(e) => {
            let body = e.strip_prefix(['+', '-']).unwrap_or(e);
            if !digits(body) || body.len() > 4 {
                return None;
            }
            e.parse().ok()?
        }
        None => 0,
    };
    let value: f64 = text.parse().ok()?;
    if !value.is_finite() {
        return None;
    }
    let decimals = i32::try_from(frac.map_or(0, str::len)).ok()?;
    let half = 0.5 * 10f64.powi(exp - decimals);
    Some((value, value - half, value + half))
}

fn number_of(value: &Value) -> Option<(f64, f64, f64)> {
    match value {
        Value::Number(n) => parse_decimal(&n.to_string()),
        _ => None,
    }
}

fn add_quantity(out: &mut IndexEntries, param: &str, ty: Option<&str>, value: &Value) {
    let quantity = |q: &Value| -> Option<QuantityEntry> {
        let (v, low, high) = number_of(q.get("value")?)?;
        let (system, code) = match str_field(q, "currency") {
            Some(c) => (Some("urn:iso:std:iso:4217"), Some(c)),
            None => (str_field(q, "system"), str_field(q, "code")),
        };
        Some(QuantityEntry {
            param: param.to_owned(),
            value: v,
            low,
            high,
            system: system.map(str::to_owned),
            code: code.map(str::to_owned),
            unit: str_field(q, "unit").map(str::to_owned),
        })
    };
    match ty {
        Some("Range") => {
            // One row spanning the range: `[low.value, high.value]`, open ends unbounded.
            let low = value.get("low").and_then(quantity);
            let high = value.get("high").and_then(quantity);
            let Some(first) = low.clone().or_else(|| high.clone()) else {
                return;
            };
            out.quantities.push(QuantityEntry {
                low: low.map_or(f64::MIN, |q| q.value),
                high: high.map_or(f64::MAX, |q| q.value),
                ..first
            });
        }
        _ if value.is_object() => {
            if let Some(q) = quantity(value) {
                out.quantities.push(q);
            }
        }
        _ => {
            if let Some((v, low, high)) = number_of(value) {
                out.quantities.push(QuantityEntry {
                    param: param.to_owned(),
                    value: v,
                    low,
                    high,
                    system: None,
                    code: None,
                    unit: None,
                });
            }
        }
    }
}

#[cfg(test)]
#[allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests"
)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tokens<'a>(e: &'a IndexEntries, param: &str) -> Vec<&'a TokenEntry> {
        e.tokens.iter().filter(|t| t.param == param).collect()
    }
    fn strings(e: &IndexEntries, param: &str) -> Vec<String> {
        e.strings
            .iter()
            .filter(|t| t.param == param)
            .map(|s| s.normalized.clone())
            .collect()
    }
    fn refs<'a>(e: &'a IndexEntries, param: &str) -> Vec<&'a ReferenceEntry> {
        e.references.iter().filter(|t| t.param == param).collect()
    }
    fn dates<'a>(e: &'a IndexEntries, param: &str) -> Vec<&'a DateEntry> {
        e.dates.iter().filter(|t| t.param == param).collect()
    }
    fn range(s: &str) -> DateRange {
        DateRange::parse(s).unwrap()
    }

    fn patient() -> Value {
        json!({
            "resourceType": "Patient",
            "id": "p1",
            "meta": {
                "lastUpdated": "2024-03-01T10:00:00Z",
                "profile": ["https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient"],
                "tag": [{"system": "https://example.org/tags", "code": "synthetic"}],
                "source": "urn:uuid:0b5e1c1e-0000-4000-8000-000000000001"
            },
            "identifier": [{
                "system": "https://fhir.nhs.uk/Id/nhs-number",
                "value": "9990000018",
                "type": {"text": "NHS Number"}
            }],
            "active": true,
            "name": [{"use": "official", "family": "Ó Briain", "given": ["Zoë", "Anne"], "prefix": ["Ms"]}],
            "telecom": [
                {"system": "phone", "value": "01632 960000", "use": "home"},
                {"system": "email", "value": "zoe@example.org"}
            ],
            "gender": "female",
            "birthDate": "1980-02-14",
            "address": [{"line": ["1 High Street"], "city": "Leeds", "postalCode": "LS1 1AA", "country": "GB"}],
            "generalPractitioner": [{"reference": "Organization/gp1"}],
            "managingOrganization": {"identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "Y12345"}}
        })
    }

    #[test]
    fn patient_nhs_number_is_an_identifier_token_with_type_text() {
        let e = extract(ResourceType::Patient, &patient());
        let ids = tokens(&e, "identifier");
        assert_eq!(ids.len(), 1);
        assert_eq!(
            ids[0].system.as_deref(),
            Some("https://fhir.nhs.uk/Id/nhs-number")
        );
        assert_eq!(ids[0].code.as_deref(), Some("9990000018"));
        assert_eq!(ids[0].text.as_deref(), Some("nhs number"));
    }

    #[test]
    fn human_name_parts_are_normalized_string_rows() {
        let e = extract(ResourceType::Patient, &patient());
        let names = strings(&e, "name");
        assert_eq!(names, vec!["o briain", "zoe", "anne", "ms"]);
        assert_eq!(strings(&e, "family"), vec!["o briain"]);
        assert!(
            e.strings
                .iter()
                .any(|s| s.param == "given" && s.exact == "Zoë")
        );
        assert!(strings(&e, "address").contains(&"ls1 1aa".to_owned()));
        assert_eq!(strings(&e, "address-city"), vec!["leeds"]);
    }

    #[test]
    fn contact_points_are_tokens_on_the_value_without_system() {
        let e = extract(ResourceType::Patient, &patient());
        let email = tokens(&e, "email");
        assert_eq!(email.len(), 1);
        assert_eq!(email[0].code.as_deref(), Some("zoe@example.org"));
        assert_eq!(email[0].system, None);
        assert_eq!(tokens(&e, "telecom").len(), 2);
        assert_eq!(tokens(&e, "phone")[0].code.as_deref(), Some("01632 960000"));
    }

    #[test]
    fn codes_booleans_and_base_parameters_are_indexed() {
        let e = extract(ResourceType::Patient, &patient());
        assert_eq!(tokens(&e, "gender")[0].code.as_deref(), Some("female"));
        assert_eq!(tokens(&e, "active")[0].code.as_deref(), Some("true"));
        assert_eq!(tokens(&e, "_id")[0].code.as_deref(), Some("p1"));
        assert_eq!(tokens(&e, "_tag")[0].code.as_deref(), Some("synthetic"));
        assert_eq!(tokens(&e, "deceased")[0].code.as_deref(), Some("false"));
        let lu = dates(&e, "_lastUpdated");
        assert_eq!(lu[0].low, range("2024-03-01T10:00:00Z").low);
        assert_eq!(dates(&e, "birthdate")[0].high, range("1980-02-14").high);
        assert!(
            e.uris
                .iter()
                .any(|u| u.param == "_profile" && u.value.contains("UKCore-Patient"))
        );
        assert!(e.uris.iter().any(|u| u.param == "_source"));
    }

    #[test]
    fn references_split_type_and_id_and_keep_logical_identifiers() {
        let e = extract(ResourceType::Patient, &patient());
        let gp = refs(&e, "general-practitioner");
        assert_eq!(gp[0].target_type, Some(ResourceType::Organization));
        assert_eq!(gp[0].target_id.as_deref(), Some("gp1"));
        assert_eq!(gp[0].url, None);
        let org = refs(&e, "organization");
        assert_eq!(org[0].identifier_value.as_deref(), Some("Y12345"));
        assert_eq!(org[0].target_id, None);
    }

    #[test]
    fn reference_strings_of_every_form_are_parsed() {
        let p = parse_reference("Patient/1/_history/2").unwrap();
        assert_eq!(
            (p.target_type, p.target_id.as_deref(), p.url),
            (Some(ResourceType::Patient), Some("1"), None)
        );
        let a = parse_reference("https://other.example/fhir/Patient/9").unwrap();
        assert_eq!(a.target_type, Some(ResourceType::Patient));
        assert_eq!(a.target_id.as_deref(), Some("9"));
        assert_eq!(
            a.url.as_deref(),
            Some("https://other.example/fhir/Patient/9")
        );
        let u = parse_reference("urn:uuid:1234").unwrap();
        assert_eq!(
            (u.target_type, u.url.as_deref()),
            (None, Some("urn:uuid:1234"))
        );
        assert_eq!(parse_reference("#contained"), None);
        let g = parse_reference("Group/5").unwrap();
        assert_eq!(
            (g.target_type, g.target_id.as_deref(), g.url.as_deref()),
            (None, Some("5"), Some("Group/5"))
        );
    }

    #[test]
    fn observation_value_quantity_has_a_precision_range_and_units() {
        let o = json!({
            "resourceType": "Observation", "id": "o1", "status": "final",
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "271649006", "display": "Systolic blood pressure"}], "text": "Systolic BP"},
            "subject": {"reference": "Patient/p1"},
            "effectiveDateTime": "2024-03-01T09:30:00+00:00",
            "performer": [{"reference": "Practitioner/dr1"}],
            "valueQuantity": {"value": 120, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}
        });
        let e = extract(ResourceType::Observation, &o);
        let q: Vec<_> = e
            .quantities
            .iter()
            .filter(|q| q.param == "value-quantity")
            .collect();
        assert_eq!(q.len(), 1);
        assert_eq!((q[0].value, q[0].low, q[0].high), (120.0, 119.5, 120.5));
        assert_eq!(q[0].code.as_deref(), Some("mm[Hg]"));
        assert_eq!(q[0].unit.as_deref(), Some("mmHg"));
        let code = tokens(&e, "code");
        assert_eq!(code.len(), 2);
        assert_eq!(code[0].code.as_deref(), Some("271649006"));
        assert_eq!(code[0].text.as_deref(), Some("systolic blood pressure"));
        assert_eq!(code[1].text.as_deref(), Some("systolic bp"));
        assert_eq!(refs(&e, "subject")[0].target_id.as_deref(), Some("p1"));
        assert_eq!(dates(&e, "date")[0].low, range("2024-03-01T09:30:00Z").low);
        // `patient` and `combo-*` repeat `subject`, `code` and `value-quantity`: not stored again.
        assert!(refs(&e, "patient").is_empty());
        assert!(tokens(&e, "combo-code").is_empty());
        assert!(e.quantities.iter().all(|q| q.param == "value-quantity"));
    }

    #[test]
    fn a_patient_reference_without_a_target_type_keeps_its_own_patient_row() {
        let with = |reference: &str| {
            let o = json!({"resourceType": "Observation", "status": "final",
                "code": {"text": "x"}, "subject": {"reference": reference}});
            extract(ResourceType::Observation, &o)
        };
        // An absolute URL has a target type: found through `subject`.
        let e = with("https://elsewhere.example/fhir/Patient/7");
        assert!(refs(&e, "patient").is_empty());
        assert_eq!(
            refs(&e, "subject")[0].target_type,
            Some(ResourceType::Patient)
        );
        // A relative path of another shape resolves to a Patient but has no target type.
        let e = with("a/Patient/7");
        let p = refs(&e, "patient");
        assert_eq!(p.len(), 1);
        assert_eq!(
            (p[0].target_type, p[0].url.as_deref()),
            (None, Some("a/Patient/7"))
        );
        assert!(refs(&with("a/Group/7"), "patient").is_empty());
    }

    #[test]
    fn encounter_period_gives_one_open_ended_date_range() {
        let enc = json!({"resourceType": "Encounter", "status": "in-progress",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
            "subject": {"reference": "Patient/p1"},
            "period": {"start": "2024-03-01T08:00:00Z"}});
        let e = extract(ResourceType::Encounter, &enc);
        let d = dates(&e, "date");
        assert_eq!(d.len(), 1);
        assert_eq!(
            (d[0].low, d[0].high),
            (range("2024-03-01T08:00:00Z").low, i64::MAX)
        );
        assert_eq!(tokens(&e, "class")[0].code.as_deref(), Some("IMP"));
    }

    #[test]
    fn condition_code_and_onset_date_time_are_indexed() {
        let c = json!({"resourceType": "Condition",
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006", "display": "Diabetes mellitus type 2"}]},
            "subject": {"reference": "Patient/p1"}, "onsetDateTime": "2019-06"});
        let e = extract(ResourceType::Condition, &c);
        assert_eq!(tokens(&e, "code")[0].code.as_deref(), Some("44054006"));
        assert_eq!(
            tokens(&e, "clinical-status")[0].code.as_deref(),
            Some("active")
        );
        let onset = dates(&e, "onset-date");
        assert_eq!(
            (onset[0].low, onset[0].high),
            (range("2019-06").low, range("2019-06").high)
        );
    }

    #[test]
    fn medication_request_dmd_code_is_a_code_token_not_a_reference() {
        let m = json!({"resourceType": "MedicationRequest", "status": "active", "intent": "order",
            "medicationCodeableConcept": {"coding": [{"system": "https://dmd.nhs.uk", "code": "39720311000001101", "display": "Paracetamol 500mg tablets"}]},
            "subject": {"reference": "Patient/p1"}, "authoredOn": "2024-02-01"});
        let e = extract(ResourceType::MedicationRequest, &m);
        let code = tokens(&e, "code");
        assert_eq!(code[0].system.as_deref(), Some("https://dmd.nhs.uk"));
        assert_eq!(code[0].code.as_deref(), Some("39720311000001101"));
        assert!(refs(&e, "medication").is_empty());
        assert_eq!(dates(&e, "authoredon").len(), 1);
    }

    #[test]
    fn decimals_carry_their_written_precision() {
        assert_eq!(parse_decimal("100"), Some((100.0, 99.5, 100.5)));
        let (v, lo, hi) = parse_decimal("1.5").unwrap();
        assert!((v - 1.5).abs() < 1e-12 && (lo - 1.45).abs() < 1e-12 && (hi - 1.55).abs() < 1e-12);
        assert_eq!(parse_decimal("1e2"), Some((100.0, 50.0, 150.0)));
        for bad in ["", "-", "1.", ".5", "1e", "abc", "1,5", "NaN", "inf"] {
            assert_eq!(parse_decimal(bad), None, "{bad}");
        }
    }
}
