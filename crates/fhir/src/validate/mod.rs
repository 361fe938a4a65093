//! Structural validation of incoming resources.
//!
//! The rules come from the FHIR R4 StructureDefinition snapshots, compiled into `elements.json`
//! by `tools/gen-validation-tables.py`: element names, cardinality, types (choice elements
//! expanded, `contentReference` resolved) and primitive formats. Terminology bindings and
//! invariants (FHIRPath constraints) are not checked.
//!
//! Diagnostics name elements and rules, never values: a resource is personal data.

mod primitives;
mod table;

use crate::nhs_number::{NHS_NUMBER_SYSTEM, NhsNumber, NhsNumberError};
use crate::outcome::{Issue, IssueCode};
use serde_json::{Map, Value};
use std::collections::HashMap;
use table::{ElementDef, TABLE};

/// At most this many issues are reported for one resource.
pub const MAX_ISSUES: usize = 100;

/// Objects nested deeper than this are rejected rather than walked (bounds recursion).
pub const MAX_DEPTH: usize = 100;

/// Checks `resource` against the structure of its type; returns one issue per problem (empty when
/// the resource is structurally valid).
pub fn validate(resource: &Value) -> Vec<Issue> {
    let mut v = Validator {
        issues: Vec::new(),
        depth: 0,
    };
    match resource {
        Value::Object(obj) => v.resource(obj, None),
        _ => v.push(Issue::error(
            IssueCode::Structure,
            "a resource must be a JSON object",
        )),
    }
    v.issues
}

struct Validator {
    issues: Vec<Issue>,
    /// Objects currently being walked.
    depth: usize,
}

/// A user-supplied name, repeated in diagnostics only when it looks like a FHIR name.
fn show_name(name: &str) -> String {
    if !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        format!("'{name}'")
    } else {
        "this name".to_owned()
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl Validator {
    fn full(&self) -> bool {
        self.issues.len() >= MAX_ISSUES
    }

    fn push(&mut self, issue: Issue) {
        match self.issues.len() {
            n if n < MAX_ISSUES - 1 => self.issues.push(issue),
            n if n == MAX_ISSUES - 1 => self.issues.push(Issue::error(
                IssueCode::TooCostly,
                format!("validation stopped after {MAX_ISSUES} issues; there may be more"),
            )),
            _ => {}
        }
    }

    /// A resource at `at` (`None` for the top level, whose path starts with its type).
    fn resource(&mut self, obj: &Map<String, Value>, at: Option<&str>) {
        let rt = match obj.get("resourceType") {
            Some(Value::String(rt)) => rt.as_str(),
            Some(_) => {
                let path = at.map_or_else(
                    || "resourceType".to_owned(),
                    |p| format!("{p}.resourceType"),
                );
                self.push(
                    Issue::error(IssueCode::Structure, "resourceType must be a string").at(path),
                );
                return;
            }
            None => {
                let issue = Issue::error(IssueCode::Required, "the resource has no resourceType");
                self.push(match at {
                    Some(p) => issue.at(p),
                    None => issue,
                });
                return;
            }
        };
        if !TABLE.is_resource(rt) {
            let path = at.map_or_else(
                || "resourceType".to_owned(),
                |p| format!("{p}.resourceType"),
            );
            self.push(
                Issue::error(
                    IssueCode::Invalid,
                    format!(
                        "resource type {} is not supported by this server",
                        show_name(rt)
                    ),
                )
                .at(path),
            );
            return;
        }
        let path = at.map_or_else(|| rt.to_owned(), str::to_owned);
        self.complex(obj, rt, &path, true);
    }

    /// An object of complex type `type_name` (a datatype, an inline backbone element path such
    /// as `Patient.contact`, or a resource type).
    fn complex(
        &mut self,
        obj: &Map<String, Value>,
        type_name: &str,
        path: &str,
        is_resource: bool,
    ) {
        let Some(defs) = TABLE.elements(type_name) else {
            // Unreachable with the embedded table (tested); do not fail open silently.
            self.push(
                Issue::error(
                    IssueCode::Exception,
                    "the validator has no definition for this element's type",
                )
                .at(path),
            );
            return;
        };
        if self.depth >= MAX_DEPTH {
            self.push(
                Issue::error(
                    IssueCode::Structure,
                    format!("elements are nested more than {MAX_DEPTH} levels deep"),
                )
                .at(path),
            );
            return;
        }
        self.depth += 1;
        self.complex_fields(obj, defs, type_name, path, is_resource);
        self.depth -= 1;
    }

    fn complex_fields(
        &mut self,
        obj: &Map<String, Value>,
        defs: &HashMap<String, ElementDef>,
        type_name: &str,
        path: &str,
        is_resource: bool,
    ) {
        if obj.is_empty() {
            self.push(
                Issue::error(
                    IssueCode::Structure,
                    "an object must not be empty: leave the element out instead",
                )
                .at(path),
            );
            return;
        }
        for (key, value) in obj {
            if self.full() {
                return;
            }
            if is_resource && key == "resourceType" {
                continue;
            }
            if let Some(base) = key.strip_prefix('_') {
                match defs.get(base) {
                    Some(def) if TABLE.is_primitive(def.type_code()) => {
                        self.primitive_extension(def, value, &format!("{path}.{base}"), obj.get(base));
                    }
                    _ => self.push(
                        Issue::error(
                            IssueCode::Structure,
                            format!(
                                "{} is not a known element here: '_' is only allowed before the name of a primitive element",
                                show_name(key)
                            ),
                        )
                        .at(format!("{path}.{key}")),
                    ),
                }
                continue;
            }
            let Some(def) = defs.get(key.as_str()) else {
                self.push(
                    Issue::error(
                        IssueCode::Structure,
                        format!("{} is not a known element of {}", show_name(key), type_name),
                    )
                    .at(format!("{path}.{key}")),
                );
                continue;
            };
            let elem_path = format!("{path}.{key}");
            let has_ext = obj.contains_key(&format!("_{key}"));
            self.element(def, value, &elem_path, has_ext);
        }
        self.one_choice_each(obj, defs, path);
        self.required(obj, defs, path);
        match type_name {
            "Reference" => self.reference(obj, path),
            "Identifier" => self.identifier(obj, path),
            _ => {}
        }
    }

    /// A choice element (`value[x]`) appears with at most one type.
    fn one_choice_each(
        &mut self,
        obj: &Map<String, Value>,
        defs: &HashMap<String, ElementDef>,
        path: &str,
    ) {
        let mut pairs: Vec<(&str, &str)> = obj
            .keys()
            .filter_map(|key| {
                let name = key.strip_prefix('_').unwrap_or(key);
                let (name, def) = defs.get_key_value(name)?;
                Some((def.choice_group()?, name.as_str()))
            })
            .collect();
        pairs.sort_unstable();
        pairs.dedup();
        let mut groups: Vec<&str> = pairs.iter().map(|(g, _)| *g).collect();
        let all = groups.len();
        groups.dedup();
        if groups.len() == all {
            return;
        }
        for group in groups {
            if pairs.iter().filter(|(g, _)| *g == group).count() > 1 {
                self.push(
                    Issue::error(
                        IssueCode::Structure,
                        format!("'{group}[x]' may be given with only one type"),
                    )
                    .at(format!("{path}.{group}")),
                );
            }
        }
    }

    /// Required elements (min ≥ 1) are present; a choice group counts once.
    fn required(
        &mut self,
        obj: &Map<String, Value>,
        defs: &HashMap<String, ElementDef>,
        path: &str,
    ) {
        let mut missing: Vec<(String, String)> = Vec::new();
        for (name, def) in defs {
            if def.min() == 0 {
                continue;
            }
            match def.choice_group() {
                Some(group) => {
                    let present = defs.iter().any(|(n, d)| {
                        d.choice_group() == Some(group)
                            && (obj.contains_key(n) || obj.contains_key(&format!("_{n}")))
                    });
                    let label = format!("{group}[x]");
                    if !present && !missing.iter().any(|(n, _)| *n == label) {
                        missing.push((label, group.to_owned()));
                    }
                }
                None => {
                    let present = obj.contains_key(name) || obj.contains_key(&format!("_{name}"));
                    if !present {
                        missing.push((name.clone(), name.clone()));
                    }
                }
            }
        }
        missing.sort();
        for (label, at) in missing {
            self.push(
                Issue::error(
                    IssueCode::Required,
                    format!("required element '{label}' is missing"),
                )
                .at(format!("{path}.{at}")),
            );
        }
    }

    /// The value of one element: shape (array or not) and then each item.
    fn element(&mut self, def: &ElementDef, value: &Value, path: &str, has_ext: bool) {
        if def.repeats() {
            let Value::Array(items) = value else {
                self.push(
                    Issue::error(
                        IssueCode::Structure,
                        format!(
                            "this element repeats, so it must be a JSON array, not {}",
                            json_kind(value)
                        ),
                    )
                    .at(path),
                );
                return;
            };
            if items.is_empty() {
                self.push(
                    Issue::error(
                        IssueCode::Structure,
                        "an array must not be empty: leave the element out instead",
                    )
                    .at(path),
                );
                return;
            }
            if let Some(max) = def.max()
                && items.len() > max as usize
            {
                {
                    self.push(
                        Issue::error(
                            IssueCode::Structure,
                            format!("this element allows at most {max} items"),
                        )
                        .at(path),
                    );
                }
            }
            if items.len() < def.min() as usize {
                self.push(
                    Issue::error(
                        IssueCode::Required,
                        format!("this element needs at least {} items", def.min()),
                    )
                    .at(path),
                );
            }
            for (i, item) in items.iter().enumerate() {
                if self.full() {
                    return;
                }
                let item_path = format!("{path}[{i}]");
                if item.is_null() && has_ext && TABLE.is_primitive(def.type_code()) {
                    // A null placeholder: the value's extension is in the `_name` array.
                    continue;
                }
                self.item(def.type_code(), item, &item_path);
            }
        } else {
            if value.is_array() {
                self.push(
                    Issue::error(
                        IssueCode::Structure,
                        "this element does not repeat, so it must not be a JSON array",
                    )
                    .at(path),
                );
                return;
            }
            self.item(def.type_code(), value, path);
        }
    }

    /// One value of type `code`.
    fn item(&mut self, code: &str, value: &Value, path: &str) {
        if TABLE.is_primitive(code) {
            if value.is_object() || value.is_array() || value.is_null() {
                self.push(
                    Issue::error(
                        IssueCode::Structure,
                        format!(
                            "this element is a primitive ({code}), so it must not be {}",
                            json_kind(value)
                        ),
                    )
                    .at(path),
                );
                return;
            }
            if let Err(reason) = primitives::check(code, value) {
                self.push(
                    Issue::error(IssueCode::Value, format!("the {code} value {reason}")).at(path),
                );
            }
            return;
        }
        let Value::Object(obj) = value else {
            self.push(
                Issue::error(
                    IssueCode::Structure,
                    format!(
                        "this element has type {code}, so it must be a JSON object, not {}",
                        json_kind(value)
                    ),
                )
                .at(path),
            );
            return;
        };
        if code == "Resource" {
            self.resource(obj, Some(path));
        } else {
            self.complex(obj, code, path, false);
        }
    }

    /// `_name`: the id and extensions of primitive element `name` (`value` is its JSON value).
    fn primitive_extension(
        &mut self,
        def: &ElementDef,
        ext: &Value,
        path: &str,
        value: Option<&Value>,
    ) {
        if def.repeats() {
            let Value::Array(items) = ext else {
                self.push(
                    Issue::error(
                        IssueCode::Structure,
                        "this element repeats, so its '_' extension sibling must be a JSON array",
                    )
                    .at(path),
                );
                return;
            };
            let values = value.and_then(Value::as_array);
            if let Some(values) = values
                && values.len() != items.len()
            {
                {
                    self.push(
                        Issue::error(
                            IssueCode::Structure,
                            "the '_' extension array must have as many items as the value array",
                        )
                        .at(path),
                    );
                }
            }
            if items.iter().all(Value::is_null) {
                self.push(
                    Issue::error(
                        IssueCode::Structure,
                        "the '_' extension array must not hold only nulls",
                    )
                    .at(path),
                );
            }
            for (i, item) in items.iter().enumerate() {
                let value_is_null = values.and_then(|v| v.get(i)).is_none_or(Value::is_null);
                match item {
                    Value::Null if value_is_null => self.push(
                        Issue::error(
                            IssueCode::Structure,
                            "an item must have a value, an extension, or both",
                        )
                        .at(format!("{path}[{i}]")),
                    ),
                    Value::Null => {}
                    _ => self.item("Element", item, &format!("{path}[{i}]")),
                }
            }
        } else {
            self.item("Element", ext, path);
        }
    }

    /// `Reference.reference` is a relative, absolute, `urn:` or local (`#id`) reference.
    fn reference(&mut self, obj: &Map<String, Value>, path: &str) {
        let Some(Value::String(r)) = obj.get("reference") else {
            return;
        };
        if r.is_empty() || is_reference(r) {
            return; // empty strings are already reported
        }
        self.push(
            Issue::error(
                IssueCode::Value,
                "the reference must be Type/id, Type/id/_history/version, an absolute URL, a urn:uuid: or urn:oid:, or #id for a contained resource",
            )
            .at(format!("{path}.reference")),
        );
    }

    /// An NHS number identifier has a value with a valid Modulus 11 check digit.
    fn identifier(&mut self, obj: &Map<String, Value>, path: &str) {
        if obj.get("system").and_then(Value::as_str) != Some(NHS_NUMBER_SYSTEM) {
            return;
        }
        match obj.get("value") {
            Some(Value::String(v)) => {
                if let Err(e) = NhsNumber::parse(v) {
                    // Our own wording: never risk echoing the number.
                    let why = match e {
                        NhsNumberError::WrongLength => "an NHS number has exactly 10 digits",
                        NhsNumberError::NotDigits => {
                            "an NHS number contains only digits (and optional spaces)"
                        }
                        NhsNumberError::CheckDigit => "the NHS number's check digit is wrong",
                        NhsNumberError::AllZeros => "an NHS number cannot be all zeros",
                    };
                    self.push(
                        Issue::error(
                            IssueCode::BusinessRule,
                            format!("invalid NHS number: {why}"),
                        )
                        .at(format!("{path}.value")),
                    );
                }
            }
            Some(_) => {} // wrong JSON type: already reported
            None => self.push(
                Issue::error(
                    IssueCode::Required,
                    "an identifier with the NHS number system must have a value",
                )
                .at(format!("{path}.value")),
            ),
        }
    }
}

/// A resource type name as used in references: `[A-Z][A-Za-z]*`.
fn is_type_name(s: &str) -> bool {
    let mut b = s.bytes();
    b.next().is_some_and(|c| c.is_ascii_uppercase()) && b.all(|c| c.is_ascii_alphabetic())
}

fn is_reference(r: &str) -> bool {
    if let Some(local) = r.strip_prefix('#') {
        return local.is_empty() || primitives::is_id(local);
    }
    if r.starts_with("urn:uuid:") {
        return primitives::is_uuid(r);
    }
    if r.starts_with("urn:oid:") {
        return primitives::is_oid(r);
    }
    if r.chars().any(char::is_whitespace) {
        return false;
    }
    // Conditional reference in a transaction: Type?search
    if let Some((t, query)) = r.split_once('?')
        && is_type_name(t)
    {
        return !query.is_empty();
    }
    if let Some((scheme, rest)) = r.split_once("://") {
        return !scheme.is_empty()
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.')
            && !rest.is_empty();
    }
    let parts: Vec<&str> = r.split('/').collect();
    match parts.as_slice() {
        [t, id] => is_type_name(t) && primitives::is_id(id),
        [t, id, "_history", v] => is_type_name(t) && primitives::is_id(id) && primitives::is_id(v),
        _ => false,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "test code")]
mod tests;
