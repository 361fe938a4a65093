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
use std::fmt;
use table::{ElementDef, Required, TABLE, TypeDef};

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

/// Where an element is: a chain of segments, each borrowed from the caller's stack frame or the
/// resource. Validation runs on every write and most resources are valid, so the FHIRPath
/// expression (`Patient.name[0].given`) is rendered only when an issue names it.
#[derive(Clone, Copy)]
enum Path<'a> {
    /// The resource at the top: its type.
    Root(&'a str),
    Child(&'a Path<'a>, &'a str),
    Item(&'a Path<'a>, usize),
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root(name) => f.write_str(name),
            Path::Child(parent, name) => write!(f, "{parent}.{name}"),
            Path::Item(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

/// The choice elements met in one object, kept without allocating (no type has more than two
/// choice groups) so that the full check runs only when two types of one group may be present.
struct Choices<'a> {
    /// `(group, element name)` pairs.
    seen: [(&'a str, &'a str); 4],
    len: usize,
    /// A group was met with two element names, or there were more groups than `seen` holds.
    suspect: bool,
}

impl<'a> Choices<'a> {
    fn new() -> Self {
        Choices {
            seen: [("", ""); 4],
            len: 0,
            suspect: false,
        }
    }

    fn note(&mut self, group: &'a str, name: &'a str) {
        match self.seen[..self.len].iter().find(|(g, _)| *g == group) {
            Some((_, seen)) => self.suspect |= *seen != name,
            None if self.len < self.seen.len() => {
                self.seen[self.len] = (group, name);
                self.len += 1;
            }
            None => self.suspect = true,
        }
    }
}

/// Whether `obj` has `_name`, the extension sibling of element `name` (without building the key).
fn has_extension_sibling(obj: &Map<String, Value>, name: &str) -> bool {
    obj.keys().any(|k| k.strip_prefix('_') == Some(name))
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
    fn resource(&mut self, obj: &Map<String, Value>, at: Option<&Path<'_>>) {
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
                    Some(p) => issue.at(p.to_string()),
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
        let root = Path::Root(rt);
        self.complex(obj, rt, at.unwrap_or(&root), true);
    }

    /// An object of complex type `type_name` (a datatype, an inline backbone element path such
    /// as `Patient.contact`, or a resource type).
    fn complex(
        &mut self,
        obj: &Map<String, Value>,
        type_name: &str,
        path: &Path<'_>,
        is_resource: bool,
    ) {
        let Some(type_def) = TABLE.type_def(type_name) else {
            // Unreachable with the embedded table (tested); do not fail open silently.
            self.push(
                Issue::error(
                    IssueCode::Exception,
                    "the validator has no definition for this element's type",
                )
                .at(path.to_string()),
            );
            return;
        };
        if self.depth >= MAX_DEPTH {
            self.push(
                Issue::error(
                    IssueCode::Structure,
                    format!("elements are nested more than {MAX_DEPTH} levels deep"),
                )
                .at(path.to_string()),
            );
            return;
        }
        self.depth += 1;
        self.complex_fields(obj, type_def, type_name, path, is_resource);
        self.depth -= 1;
    }

    fn complex_fields(
        &mut self,
        obj: &Map<String, Value>,
        type_def: &TypeDef,
        type_name: &str,
        path: &Path<'_>,
        is_resource: bool,
    ) {
        let defs = &type_def.elements;
        if obj.is_empty() {
            self.push(
                Issue::error(
                    IssueCode::Structure,
                    "an object must not be empty: leave the element out instead",
                )
                .at(path.to_string()),
            );
            return;
        }
        let mut choices = Choices::new();
        for (key, value) in obj {
            if self.full() {
                return;
            }
            if is_resource && key == "resourceType" {
                continue;
            }
            if let Some(base) = key.strip_prefix('_') {
                let def = defs.get(base);
                // Noted even when the key is reported below: `_valueBoolean` beside `valueString`
                // is still two types of `value[x]`.
                if let Some(group) = def.and_then(ElementDef::choice_group) {
                    choices.note(group, base);
                }
                match def {
                    Some(def) if TABLE.is_primitive(def.type_code()) => {
                        self.primitive_extension(
                            def,
                            value,
                            &Path::Child(path, base),
                            obj.get(base),
                        );
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
            if let Some(group) = def.choice_group() {
                choices.note(group, key);
            }
            self.element(def, value, &Path::Child(path, key), obj, key);
        }
        if choices.suspect {
            self.one_choice_each(obj, defs, path);
        }
        self.required(obj, &type_def.required, path);
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
        path: &Path<'_>,
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

    /// Required elements (min ≥ 1) are present; a choice group counts once. `required` is
    /// worked out once per type, in the order issues are reported.
    fn required(&mut self, obj: &Map<String, Value>, required: &[Required], path: &Path<'_>) {
        for r in required {
            if !r.keys.iter().any(|k| obj.contains_key(k.as_str())) {
                self.push(
                    Issue::error(
                        IssueCode::Required,
                        format!("required element '{}' is missing", r.label),
                    )
                    .at(format!("{path}.{}", r.at)),
                );
            }
        }
    }

    /// The value of element `name` of `obj`: shape (array or not) and then each item.
    fn element(
        &mut self,
        def: &ElementDef,
        value: &Value,
        path: &Path<'_>,
        obj: &Map<String, Value>,
        name: &str,
    ) {
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
                    .at(path.to_string()),
                );
                return;
            };
            if items.is_empty() {
                self.push(
                    Issue::error(
                        IssueCode::Structure,
                        "an array must not be empty: leave the element out instead",
                    )
                    .at(path.to_string()),
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
                        .at(path.to_string()),
                    );
                }
            }
            if items.len() < def.min() as usize {
                self.push(
                    Issue::error(
                        IssueCode::Required,
                        format!("this element needs at least {} items", def.min()),
                    )
                    .at(path.to_string()),
                );
            }
            for (i, item) in items.iter().enumerate() {
                if self.full() {
                    return;
                }
                if item.is_null()
                    && TABLE.is_primitive(def.type_code())
                    && has_extension_sibling(obj, name)
                {
                    // A null placeholder: the value's extension is in the `_name` array.
                    continue;
                }
                self.item(def.type_code(), item, &Path::Item(path, i));
            }
        } else {
            if value.is_array() {
                self.push(
                    Issue::error(
                        IssueCode::Structure,
                        "this element does not repeat, so it must not be a JSON array",
                    )
                    .at(path.to_string()),
                );
                return;
            }
            self.item(def.type_code(), value, path);
        }
    }

    /// One value of type `code`.
    fn item(&mut self, code: &str, value: &Value, path: &Path<'_>) {
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
                    .at(path.to_string()),
                );
                return;
            }
            if let Err(reason) = primitives::check(code, value) {
                self.push(
                    Issue::error(IssueCode::Value, format!("the {code} value {reason}"))
                        .at(path.to_string()),
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
                .at(path.to_string()),
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
        path: &Path<'_>,
        value: Option<&Value>,
    ) {
        if def.repeats() {
            let Value::Array(items) = ext else {
                self.push(
                    Issue::error(
                        IssueCode::Structure,
                        "this element repeats, so its '_' extension sibling must be a JSON array",
                    )
                    .at(path.to_string()),
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
                        .at(path.to_string()),
                    );
                }
            }
            if items.iter().all(Value::is_null) {
                self.push(
                    Issue::error(
                        IssueCode::Structure,
                        "the '_' extension array must not hold only nulls",
                    )
                    .at(path.to_string()),
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
                    _ => self.item("Element", item, &Path::Item(path, i)),
                }
            }
        } else {
            self.item("Element", ext, path);
        }
    }

    /// `Reference.reference` is a relative, absolute, `urn:` or local (`#id`) reference.
    fn reference(&mut self, obj: &Map<String, Value>, path: &Path<'_>) {
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
    fn identifier(&mut self, obj: &Map<String, Value>, path: &Path<'_>) {
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
    let mut parts = r.split('/');
    // The first five segments, `None` past the end: enough to tell the two forms from the rest.
    match [(); 5].map(|()| parts.next()) {
        [Some(t), Some(id), None, ..] => is_type_name(t) && primitives::is_id(id),
        [Some(t), Some(id), Some("_history"), Some(v), None] => {
            is_type_name(t) && primitives::is_id(id) && primitives::is_id(v)
        }
        _ => false,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "test code")]
mod tests;
