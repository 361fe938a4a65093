//! The search parameters of the FHIR R4 specification for carerecord's resource types, and the
//! Patient compartment (which patient's compartment a resource belongs to).

pub mod expr;

use std::collections::HashMap;
use std::sync::LazyLock;

use carerecord_fhir::ResourceType;
use serde::Deserialize;
use serde_json::Value;

/// A search parameter type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParamKind {
    Number,
    Date,
    String,
    Token,
    Reference,
    Composite,
    Quantity,
    Uri,
    Special,
}

impl ParamKind {
    /// Parses the SearchParameter `type` code.
    pub fn from_code(s: &str) -> Option<ParamKind> {
        Some(match s {
            "number" => ParamKind::Number,
            "date" => ParamKind::Date,
            "string" => ParamKind::String,
            "token" => ParamKind::Token,
            "reference" => ParamKind::Reference,
            "composite" => ParamKind::Composite,
            "quantity" => ParamKind::Quantity,
            "uri" => ParamKind::Uri,
            "special" => ParamKind::Special,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ParamKind::Number => "number",
            ParamKind::Date => "date",
            ParamKind::String => "string",
            ParamKind::Token => "token",
            ParamKind::Reference => "reference",
            ParamKind::Composite => "composite",
            ParamKind::Quantity => "quantity",
            ParamKind::Uri => "uri",
            ParamKind::Special => "special",
        }
    }
}

/// One search parameter as it applies to one resource type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchParamDef {
    pub code: String,
    pub kind: ParamKind,
    /// The canonical URL of the SearchParameter resource.
    pub url: String,
    /// The FHIRPath expression, reduced to the parts for this resource type.
    pub expression: String,
    /// For reference parameters, the resource types they may point to.
    pub targets: Vec<String>,
}

/// The generated table (see `tools/gen-search-params.py`).
const TABLE: &str = include_str!("registry/search_parameters.json");

#[derive(Deserialize)]
struct RawTable {
    compartment: HashMap<String, Vec<String>>,
    params: HashMap<String, Vec<RawParam>>,
}

#[derive(Deserialize)]
struct RawParam {
    code: String,
    expression: String,
    targets: Vec<String>,
    #[serde(rename = "type")]
    kind: String,
    url: String,
}

/// A parameter definition with its parsed expression.
struct Entry {
    def: SearchParamDef,
    expr: Option<expr::Expr>,
}

struct Registry {
    /// Per type: the type's own parameters and the `Resource` ones, sorted by code.
    by_type: HashMap<ResourceType, Vec<Entry>>,
    compartment: HashMap<ResourceType, Vec<String>>,
}

fn load(table: &str) -> Result<Registry, String> {
    let raw: RawTable = serde_json::from_str(table).map_err(|e| e.to_string())?;
    let convert = |p: &RawParam| -> Result<Entry, String> {
        let kind = ParamKind::from_code(&p.kind).ok_or_else(|| format!("bad type {}", p.kind))?;
        let parsed = if p.expression.is_empty() {
            None
        } else {
            Some(expr::parse(&p.expression).map_err(|e| format!("{}: {e}", p.code))?)
        };
        Ok(Entry {
            def: SearchParamDef {
                code: p.code.clone(),
                kind,
                url: p.url.clone(),
                expression: p.expression.clone(),
                targets: p.targets.clone(),
            },
            expr: parsed,
        })
    };
    let base = raw
        .params
        .get("Resource")
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut by_type = HashMap::new();
    for &rt in ResourceType::ALL {
        let own = raw
            .params
            .get(rt.as_str())
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut entries = base
            .iter()
            .chain(own)
            .map(convert)
            .collect::<Result<Vec<_>, _>>()?;
        entries.sort_by(|a, b| a.def.code.cmp(&b.def.code));
        by_type.insert(rt, entries);
    }
    let mut compartment = HashMap::new();
    for (t, params) in raw.compartment {
        if let Ok(rt) = t.parse::<ResourceType>() {
            compartment.insert(rt, params);
        }
    }
    Ok(Registry {
        by_type,
        compartment,
    })
}

#[allow(
    clippy::expect_used,
    reason = "the embedded table is generated and `embedded_table_parses` proves it loads"
)]
static REGISTRY: LazyLock<Registry> =
    LazyLock::new(|| load(TABLE).expect("embedded search parameter table is valid"));

fn entries(resource_type: ResourceType) -> &'static [Entry] {
    REGISTRY
        .by_type
        .get(&resource_type)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// The parameter `code` of `resource_type` (including the `Resource`-level ones such as `_id`,
/// `_lastUpdated`, `_tag`, `_security`, `_profile`, `_source`).
pub fn lookup(resource_type: ResourceType, code: &str) -> Option<&'static SearchParamDef> {
    let list = entries(resource_type);
    list.binary_search_by(|e| e.def.code.as_str().cmp(code))
        .ok()
        .map(|i| &list[i].def)
}

/// Every parameter of `resource_type`, sorted by code.
pub fn params_for(resource_type: ResourceType) -> Vec<&'static SearchParamDef> {
    entries(resource_type).iter().map(|e| &e.def).collect()
}

/// Every parameter of `resource_type` with its parsed expression (`None` when the parameter has
/// no expression, e.g. some special ones).
pub fn params_with_expressions(
    resource_type: ResourceType,
) -> impl Iterator<Item = (&'static SearchParamDef, Option<&'static expr::Expr>)> {
    entries(resource_type)
        .iter()
        .map(|e| (&e.def, e.expr.as_ref()))
}

/// Evaluates the expression of parameter `code` of `resource_type` over `resource`.
pub fn evaluate<'a>(
    resource_type: ResourceType,
    code: &str,
    resource: &'a Value,
) -> Vec<expr::Item<'a>> {
    let list = entries(resource_type);
    match list.binary_search_by(|e| e.def.code.as_str().cmp(code)) {
        Ok(i) => list[i]
            .expr
            .as_ref()
            .map(|e| expr::evaluate(e, resource))
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

/// The Patient compartment parameter codes of `resource_type` (empty when it has none).
pub fn compartment_params(resource_type: ResourceType) -> &'static [String] {
    REGISTRY
        .compartment
        .get(&resource_type)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// The id of the patient whose compartment `resource` belongs to (FHIR R4 Patient
/// CompartmentDefinition; the first compartment parameter that names a Patient wins). A Patient
/// belongs to its own compartment. `None` for resources outside every patient compartment
/// (Organization, Practitioner, Medication, …).
pub fn patient_compartment(
    resource_type: ResourceType,
    id: &str,
    resource: &Value,
) -> Option<String> {
    if resource_type == ResourceType::Patient {
        return Some(id.to_owned());
    }
    for code in compartment_params(resource_type) {
        for item in evaluate(resource_type, code, resource) {
            let expr::Item::Node { value, .. } = item else {
                continue;
            };
            let Some(reference) = value.get("reference").and_then(Value::as_str) else {
                continue;
            };
            if expr::reference_type(reference) == Some("Patient")
                && let Some(pid) = reference_id(reference)
            {
                return Some(pid.to_owned());
            }
        }
    }
    None
}

/// The id part of a `Type/id[/_history/v]` reference (relative or absolute).
fn reference_id(reference: &str) -> Option<&str> {
    let path = reference.split(['?', '#']).next()?;
    let segs: Vec<&str> = path.split('/').collect();
    let n = segs.len();
    let end = if n >= 4 && segs[n - 2] == "_history" {
        n - 2
    } else {
        n
    };
    segs.get(end.checked_sub(1)?)
        .copied()
        .filter(|s| !s.is_empty())
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

    #[test]
    fn embedded_table_parses_including_every_expression() {
        let reg = load(TABLE).unwrap_or_else(|e| panic!("{e}"));
        for (rt, entries) in &reg.by_type {
            for e in entries {
                if !e.def.expression.is_empty() {
                    assert!(e.expr.is_some(), "{rt} {}", e.def.code);
                }
            }
        }
        assert_eq!(reg.by_type.len(), ResourceType::ALL.len());
    }

    #[test]
    fn every_searchable_parameter_has_an_expression() {
        for &rt in ResourceType::ALL {
            for (def, e) in params_with_expressions(rt) {
                if !matches!(def.kind, ParamKind::Special | ParamKind::Composite) {
                    assert!(e.is_some(), "{rt}.{} has no expression", def.code);
                }
            }
        }
    }

    #[test]
    fn base_parameters_apply_to_every_type() {
        for &rt in ResourceType::ALL {
            for code in [
                "_id",
                "_lastUpdated",
                "_tag",
                "_security",
                "_profile",
                "_source",
            ] {
                assert!(lookup(rt, code).is_some(), "{rt} {code}");
            }
            assert!(lookup(rt, "_text").is_none());
            let codes: Vec<_> = params_for(rt).iter().map(|p| p.code.clone()).collect();
            let mut sorted = codes.clone();
            sorted.sort();
            assert_eq!(codes, sorted);
        }
    }

    #[test]
    fn expressions_are_reduced_to_the_type() {
        let p = lookup(ResourceType::Observation, "patient").unwrap();
        assert_eq!(p.kind, ParamKind::Reference);
        assert_eq!(
            p.expression,
            "Observation.subject.where(resolve() is Patient)"
        );
        assert_eq!(p.targets, vec!["Group".to_owned(), "Patient".to_owned()]);
        let code = lookup(ResourceType::Condition, "code").unwrap();
        assert_eq!(code.expression, "Condition.code");
        assert_eq!(
            lookup(ResourceType::Patient, "identifier").unwrap().kind,
            ParamKind::Token
        );
        assert!(lookup(ResourceType::Patient, "Identifier").is_none());
    }

    #[test]
    fn observation_compartment_follows_subject_then_performer() {
        let o = json!({"resourceType":"Observation","subject":{"reference":"Group/g"},
            "performer":[{"reference":"Practitioner/p"},{"reference":"Patient/42"}]});
        assert_eq!(
            patient_compartment(ResourceType::Observation, "o1", &o),
            Some("42".to_owned())
        );
        let s =
            json!({"resourceType":"Observation","subject":{"reference":"Patient/7/_history/2"}});
        assert_eq!(
            patient_compartment(ResourceType::Observation, "o1", &s),
            Some("7".to_owned())
        );
    }

    #[test]
    fn patients_are_in_their_own_compartment_and_organizations_in_none() {
        let p = json!({"resourceType":"Patient"});
        assert_eq!(
            patient_compartment(ResourceType::Patient, "9", &p),
            Some("9".to_owned())
        );
        let o = json!({"resourceType":"Organization","partOf":{"reference":"Patient/1"}});
        assert_eq!(
            patient_compartment(ResourceType::Organization, "x", &o),
            None
        );
        let m = json!({"resourceType":"MedicationRequest","subject":{"reference":"https://a/fhir/Patient/5"}});
        assert_eq!(
            patient_compartment(ResourceType::MedicationRequest, "m", &m),
            Some("5".to_owned())
        );
    }
}
