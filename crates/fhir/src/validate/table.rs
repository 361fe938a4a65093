//! The element table generated from the FHIR R4 StructureDefinition snapshots by
//! `tools/gen-validation-tables.py` and embedded in the binary.

use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

const ELEMENTS_JSON: &str = include_str!("elements.json");

/// One element of a type: `[min, max, type, choiceGroup]` in the JSON.
#[derive(Debug, Deserialize)]
pub(crate) struct ElementDef(pub u32, pub String, pub String, pub Option<String>);

impl ElementDef {
    pub(crate) fn min(&self) -> u32 {
        self.0
    }

    /// `None` for an unbounded (`*`) maximum.
    pub(crate) fn max(&self) -> Option<u32> {
        if self.1 == "*" {
            None
        } else {
            // The generator writes only "*" or a decimal number; an unreadable value is
            // treated as repeating, which is the lenient reading.
            self.1.parse().ok()
        }
    }

    /// Whether the element is a JSON array (any maximum other than 1).
    pub(crate) fn repeats(&self) -> bool {
        self.max() != Some(1)
    }

    pub(crate) fn type_code(&self) -> &str {
        &self.2
    }

    /// For an expanded choice element such as `valueQuantity`, the group (`value`).
    pub(crate) fn choice_group(&self) -> Option<&str> {
        self.3.as_deref()
    }
}

/// The elements of one type, and what of them an object of the type must have.
#[derive(Debug)]
pub(crate) struct TypeDef {
    pub(crate) elements: HashMap<String, ElementDef>,
    /// Sorted by label, the order in which missing elements are reported.
    pub(crate) required: Vec<Required>,
}

/// A required element, or a required choice group (satisfied by any of its types).
#[derive(Debug)]
pub(crate) struct Required {
    /// How diagnostics name it: `status`, or `medication[x]` for a choice group.
    pub(crate) label: String,
    /// Where it is reported: the element's name, or the choice group's.
    pub(crate) at: String,
    /// The keys any of which satisfies it: each element name and its `_name` sibling. Built
    /// here so that checking an object formats nothing.
    pub(crate) keys: Vec<String>,
}

impl TypeDef {
    fn new(elements: HashMap<String, ElementDef>) -> Self {
        let with_ext = |name: &str| [name.to_owned(), format!("_{name}")];
        let mut required: Vec<Required> = Vec::new();
        for (name, def) in &elements {
            if def.min() == 0 {
                continue;
            }
            let r = match def.choice_group() {
                Some(group) => {
                    let label = format!("{group}[x]");
                    if required.iter().any(|r| r.label == label) {
                        continue;
                    }
                    let keys = elements
                        .iter()
                        .filter(|(_, d)| d.choice_group() == Some(group))
                        .flat_map(|(n, _)| with_ext(n))
                        .collect();
                    Required {
                        label,
                        at: group.to_owned(),
                        keys,
                    }
                }
                None => Required {
                    label: name.clone(),
                    at: name.clone(),
                    keys: with_ext(name).into(),
                },
            };
            required.push(r);
        }
        required.sort_by(|a, b| (&a.label, &a.at).cmp(&(&b.label, &b.at)));
        TypeDef { elements, required }
    }
}

#[derive(Debug, Deserialize)]
struct RawTable {
    primitives: Vec<String>,
    resources: Vec<String>,
    types: HashMap<String, HashMap<String, ElementDef>>,
}

/// The parsed table.
#[derive(Debug)]
pub(crate) struct Table {
    primitives: HashSet<String>,
    resources: HashSet<String>,
    types: HashMap<String, TypeDef>,
}

impl Table {
    pub(crate) fn is_primitive(&self, code: &str) -> bool {
        self.primitives.contains(code)
    }

    pub(crate) fn is_resource(&self, name: &str) -> bool {
        self.resources.contains(name)
    }

    pub(crate) fn type_def(&self, type_name: &str) -> Option<&TypeDef> {
        self.types.get(type_name)
    }

    #[cfg(test)]
    pub(crate) fn elements(&self, type_name: &str) -> Option<&HashMap<String, ElementDef>> {
        self.type_def(type_name).map(|t| &t.elements)
    }
}

fn parse(text: &str) -> Result<Table, serde_json::Error> {
    let raw: RawTable = serde_json::from_str(text)?;
    Ok(Table {
        primitives: raw.primitives.into_iter().collect(),
        resources: raw.resources.into_iter().collect(),
        types: raw
            .types
            .into_iter()
            .map(|(name, elements)| (name, TypeDef::new(elements)))
            .collect(),
    })
}

#[allow(
    clippy::expect_used,
    reason = "the embedded table is generated and checked by tests::embedded_table_parses"
)]
pub(crate) static TABLE: LazyLock<Table> =
    LazyLock::new(|| parse(ELEMENTS_JSON).expect("embedded elements.json is valid"));

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code")]
mod tests {
    use super::*;
    use crate::resource_type::ResourceType;

    #[test]
    fn embedded_table_parses() {
        let table = parse(ELEMENTS_JSON).unwrap();
        for t in ResourceType::ALL {
            assert!(table.is_resource(t.as_str()), "{t} missing from resources");
            assert!(table.elements(t.as_str()).is_some(), "{t} has no elements");
        }
        // AuditEvent is rendered from the audit trail, never stored: it is in the table so that
        // what carerecord emits is checked by the same validator.
        assert!(table.is_resource("AuditEvent"));
        assert_eq!(table.resources.len(), ResourceType::ALL.len() + 1);
    }

    #[test]
    fn every_referenced_type_is_defined() {
        let table = parse(ELEMENTS_JSON).unwrap();
        for (name, t) in &table.types {
            for (elem, def) in &t.elements {
                let code = def.type_code();
                assert!(
                    code == "Resource"
                        || table.is_primitive(code)
                        || table.elements(code).is_some(),
                    "{name}.{elem} has undefined type {code}"
                );
            }
        }
    }

    #[test]
    fn choice_and_content_reference_elements_are_expanded() {
        let table = parse(ELEMENTS_JSON).unwrap();
        let obs = table.elements("Observation").unwrap();
        assert_eq!(obs["valueQuantity"].type_code(), "Quantity");
        assert_eq!(obs["valueQuantity"].choice_group(), Some("value"));
        assert!(!obs.contains_key("value[x]"));
        let entry = table.elements("Bundle.entry").unwrap();
        assert_eq!(entry["link"].type_code(), "Bundle.link");
        assert!(entry["link"].repeats());
        assert_eq!(table.elements("Patient").unwrap()["id"].type_code(), "id");
    }
}
