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
    stored: Stored,
}

/// Where a parameter's index rows are kept.
///
/// Several R4 parameters are, by their expressions, the same values as others: `combo-code` is
/// `code | component-code`, `phonetic` is `name`, and `patient` is `subject` where the reference
/// is to a Patient. Writing their rows again costs every write a fifth or more of its index rows
/// (an Observation's `patient`, `combo-code` and `combo-value-quantity` repeat `subject`, `code`
/// and `value-quantity`), so such a parameter is stored as the rows of the others and searched
/// through them. Which parameters qualify is derived from the expressions when the table is
/// loaded, not listed by hand, so it stays true if the table is regenerated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// Rows under the parameter's own code.
    Own,
    /// No rows of its own: its expression is the union of these parameters' expressions (same
    /// type), so its values are exactly their rows.
    As(Vec<String>),
    /// Its expression is `param`'s with `.where(resolve() is target_type)`: the rows of `param`
    /// whose `target_type` is `target_type`, plus rows under its own code for the references
    /// whose type is known only from the URL (absolute references to another server, which
    /// carry no `target_type`).
    Resolved { param: String, target_type: String },
}

/// The top-level parts of a FHIRPath union `a | b | (c | d)` → `["a", "b", "(c | d)"]`.
fn union_parts(expression: &str) -> Vec<&str> {
    let (mut depth, mut quoted, mut start) = (0i32, false, 0);
    let mut parts = Vec::new();
    for (i, ch) in expression.char_indices() {
        match ch {
            '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth -= 1,
            '|' if !quoted && depth == 0 => {
                parts.push(expression[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(expression[start..].trim());
    parts.retain(|p| !p.is_empty());
    parts
}

/// Decides [`Stored`] for each of one type's entries (see there). Parameters are settled in
/// order of fewer union parts first, then by code, so that of two with the same expression the
/// first by code keeps the rows, a filtered reference comes after the one it filters, and a parameter is only ever stored as ones that keep theirs.
fn settle_storage(entries: &mut [Entry]) {
    let indexed = |e: &Entry| {
        !matches!(e.def.kind, ParamKind::Composite | ParamKind::Special) && e.expr.is_some()
    };
    let parts: Vec<Vec<&str>> = entries
        .iter()
        .map(|e| union_parts(&e.def.expression))
        .collect();
    // `X.where(resolve() is T)` is settled after `X`'s parameter, whatever their codes.
    let filtered = |i: usize| parts[i].len() == 1 && parts[i][0].contains(".where(resolve() is ");
    let mut order: Vec<usize> = (0..entries.len())
        .filter(|&i| indexed(&entries[i]))
        .collect();
    order.sort_by_key(|&i| (filtered(i), parts[i].len(), &entries[i].def.code));
    let mut stored = vec![Stored::Own; entries.len()];
    let mut settled: Vec<usize> = Vec::new();
    for &p in &order {
        let kind = entries[p].def.kind;
        let own = |q: usize| entries[q].def.kind == kind && stored[q] == Stored::Own;
        if let [only] = parts[p].as_slice()
            && let Some(rest) = only.strip_suffix(')')
            && let Some((base, target)) = rest.rsplit_once(".where(resolve() is ")
            && let Some(&q) = settled
                .iter()
                .find(|&&q| own(q) && parts[q].as_slice() == [base])
        {
            stored[p] = Stored::Resolved {
                param: entries[q].def.code.clone(),
                target_type: target.to_owned(),
            };
        } else {
            let within: Vec<usize> = settled
                .iter()
                .copied()
                .filter(|&q| own(q) && parts[q].iter().all(|x| parts[p].contains(x)))
                .collect();
            let covered = parts[p]
                .iter()
                .all(|x| within.iter().any(|&q| parts[q].contains(x)));
            if !within.is_empty() && covered {
                let mut codes: Vec<String> = within
                    .iter()
                    .map(|&q| entries[q].def.code.clone())
                    .collect();
                codes.sort();
                stored[p] = Stored::As(codes);
            }
        }
        settled.push(p);
    }
    for (e, s) in entries.iter_mut().zip(stored) {
        e.stored = s;
    }
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
            stored: Stored::Own,
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
        settle_storage(&mut entries);
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

/// Every parameter of `resource_type` that has index rows of its own to extract (not composite,
/// special or [`Stored::As`] others), with its parsed expression and whether it is
/// [`Stored::Resolved`] (its rows with a known target type are then not kept: see there).
pub fn indexed_params(
    resource_type: ResourceType,
) -> impl Iterator<
    Item = (
        &'static SearchParamDef,
        &'static expr::Expr,
        &'static Stored,
    ),
> {
    entries(resource_type).iter().filter_map(|e| {
        let parsed = e.expr.as_ref()?;
        let indexed = !matches!(e.def.kind, ParamKind::Composite | ParamKind::Special)
            && !matches!(e.stored, Stored::As(_));
        indexed.then_some((&e.def, parsed, &e.stored))
    })
}

/// Where the rows of parameter `code` of `resource_type` are kept ([`Stored::Own`] for a code the
/// type does not have).
pub fn stored(resource_type: ResourceType, code: &str) -> &'static Stored {
    static OWN: Stored = Stored::Own;
    let list = entries(resource_type);
    match list.binary_search_by(|e| e.def.code.as_str().cmp(code)) {
        Ok(i) => &list[i].stored,
        Err(_) => &OWN,
    }
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
    fn parameters_that_repeat_others_are_stored_as_them() {
        let o = ResourceType::Observation;
        let codes = |v: &[&str]| Stored::As(v.iter().map(|s| (*s).to_owned()).collect());
        assert_eq!(stored(o, "code"), &Stored::Own);
        assert_eq!(stored(o, "combo-code"), &codes(&["code", "component-code"]));
        assert_eq!(
            stored(o, "combo-value-quantity"),
            &codes(&["component-value-quantity", "value-quantity"])
        );
        assert_eq!(
            stored(o, "patient"),
            &Stored::Resolved {
                param: "subject".into(),
                target_type: "Patient".into()
            }
        );
        assert_eq!(stored(o, "subject"), &Stored::Own);
        assert_eq!(stored(ResourceType::Patient, "name"), &Stored::Own);
        assert_eq!(stored(ResourceType::Patient, "phonetic"), &codes(&["name"]));
        // `AllergyIntolerance.patient` is its own element, not a filtered `subject`.
        assert_eq!(
            stored(ResourceType::AllergyIntolerance, "patient"),
            &Stored::Own
        );
        // Nothing is ever stored as a parameter that is itself stored elsewhere.
        for &rt in ResourceType::ALL {
            for def in params_for(rt) {
                let others = match stored(rt, &def.code) {
                    Stored::Own => continue,
                    Stored::As(v) => v.clone(),
                    Stored::Resolved { param, .. } => vec![param.clone()],
                };
                for q in others {
                    assert_eq!(stored(rt, &q), &Stored::Own, "{rt}.{} as {q}", def.code);
                    assert_eq!(lookup(rt, &q).map(|d| d.kind), Some(def.kind));
                }
            }
        }
    }

    #[test]
    fn union_parts_split_only_at_the_top_level() {
        assert_eq!(
            union_parts("(A.value as Quantity) | A.b.where(c = 'x|y') | (A.c | A.d)"),
            vec![
                "(A.value as Quantity)",
                "A.b.where(c = 'x|y')",
                "(A.c | A.d)"
            ]
        );
        assert_eq!(union_parts("A.code"), vec!["A.code"]);
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
