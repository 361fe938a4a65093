//! A small FHIRPath subset, enough for the search parameter expressions of carerecord's types.
//!
//! Supported: member paths (arrays are flattened; a choice element `value` matches every
//! `value[x]` property such as `valueQuantity`, remembering the datatype from the suffix),
//! indexers `[n]`, `|` union, `X as T` / `X.as(T)` / `X.ofType(T)` / `X is T` / `X.is(T)`,
//! `where(…)`, `exists()`, `empty()`, `not()`, `first()`, `resolve()` (to the referenced
//! resource *type* only, so `where(resolve() is Patient)` works without a database), `=` / `!=`
//! on primitives, `and` / `or`, string, number and boolean literals.
//!
//! A path whose first name is the resource's type (or `Resource` / `DomainResource`) starts at
//! the resource; other capitalised first names yield nothing.

use serde_json::Value;

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// The focus (`$this`), implicit at the start of a path.
    This,
    Member(Box<Expr>, String),
    Index(Box<Expr>, usize),
    /// `X as T`, `X.as(T)`, `X.ofType(T)`: the items of X that are of type T.
    As(Box<Expr>, String),
    /// `X is T`, `X.is(T)`.
    Is(Box<Expr>, String),
    Where(Box<Expr>, Box<Expr>),
    Exists(Box<Expr>),
    Empty(Box<Expr>),
    Not(Box<Expr>),
    First(Box<Expr>),
    Resolve(Box<Expr>),
    Union(Vec<Expr>),
    Eq(Box<Expr>, Box<Expr>, bool),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Str(String),
    Num(f64),
    Bool(bool),
}

/// One item of a result collection.
#[derive(Debug, Clone, PartialEq)]
pub enum Item<'a> {
    /// A node of the resource. `ty` is the FHIR datatype when a choice suffix told us
    /// (`valueQuantity` → `Quantity`); `elem` is the element name it was reached by.
    Node {
        value: &'a Value,
        ty: Option<&'static str>,
        elem: &'a str,
    },
    Bool(bool),
    Str(String),
    Num(f64),
    /// What `resolve()` gives: the type of the referenced resource.
    Resolved(String),
}

/// An error parsing an expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported FHIRPath at {pos}: {msg}")]
pub struct ExprError {
    pub pos: usize,
    pub msg: String,
}

/// The datatypes a choice suffix may name: (suffix, FHIR type name).
const CHOICE_TYPES: &[(&str, &str)] = &[
    ("Base64Binary", "base64Binary"),
    ("Boolean", "boolean"),
    ("Canonical", "canonical"),
    ("Code", "code"),
    ("Date", "date"),
    ("DateTime", "dateTime"),
    ("Decimal", "decimal"),
    ("Id", "id"),
    ("Instant", "instant"),
    ("Integer", "integer"),
    ("Markdown", "markdown"),
    ("Oid", "oid"),
    ("PositiveInt", "positiveInt"),
    ("String", "string"),
    ("Time", "time"),
    ("UnsignedInt", "unsignedInt"),
    ("Uri", "uri"),
    ("Url", "url"),
    ("Uuid", "uuid"),
    ("Address", "Address"),
    ("Age", "Age"),
    ("Annotation", "Annotation"),
    ("Attachment", "Attachment"),
    ("CodeableConcept", "CodeableConcept"),
    ("Coding", "Coding"),
    ("ContactDetail", "ContactDetail"),
    ("ContactPoint", "ContactPoint"),
    ("Count", "Count"),
    ("DataRequirement", "DataRequirement"),
    ("Distance", "Distance"),
    ("Dosage", "Dosage"),
    ("Duration", "Duration"),
    ("Expression", "Expression"),
    ("HumanName", "HumanName"),
    ("Identifier", "Identifier"),
    ("Meta", "Meta"),
    ("Money", "Money"),
    ("ParameterDefinition", "ParameterDefinition"),
    ("Period", "Period"),
    ("Quantity", "Quantity"),
    ("Range", "Range"),
    ("Ratio", "Ratio"),
    ("Reference", "Reference"),
    ("RelatedArtifact", "RelatedArtifact"),
    ("SampledData", "SampledData"),
    ("Signature", "Signature"),
    ("Timing", "Timing"),
    ("TriggerDefinition", "TriggerDefinition"),
    ("UsageContext", "UsageContext"),
];

fn choice_type(suffix: &str) -> Option<&'static str> {
    CHOICE_TYPES
        .iter()
        .find(|(s, _)| *s == suffix)
        .map(|(_, t)| *t)
}

// ---------------------------------------------------------------------------------------------
// Lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(f64),
    Sym(&'static str),
}

fn lex(s: &str) -> Result<Vec<(usize, Tok)>, ExprError> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let err = |pos: usize, msg: &str| ExprError {
        pos,
        msg: msg.to_owned(),
    };
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_alphabetic() || c == '_' || c == '$' {
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == '$')
            {
                i += 1;
            }
            out.push((start, Tok::Ident(chars[start..i].iter().collect())));
        } else if c.is_ascii_digit() {
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            let n = text.parse().map_err(|_| err(start, "bad number"))?;
            out.push((start, Tok::Num(n)));
        } else if c == '\'' {
            i += 1;
            let mut text = String::new();
            loop {
                match chars.get(i) {
                    None => return Err(err(start, "unterminated string")),
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some('\\') => {
                        if let Some(&n) = chars.get(i + 1) {
                            text.push(n);
                        }
                        i += 2;
                    }
                    Some(&ch) => {
                        text.push(ch);
                        i += 1;
                    }
                }
            }
            out.push((start, Tok::Str(text)));
        } else {
            let sym = match (c, chars.get(i + 1)) {
                ('!', Some('=')) => "!=",
                ('.', _) => ".",
                ('(', _) => "(",
                (')', _) => ")",
                ('[', _) => "[",
                (']', _) => "]",
                ('|', _) => "|",
                ('=', _) => "=",
                (',', _) => ",",
                _ => return Err(err(start, &format!("unexpected character '{c}'"))),
            };
            i += sym.len();
            out.push((start, Tok::Sym(sym)));
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Parser (precedence, lowest first: or, and, = !=, |, as/is, postfix)

struct Parser {
    toks: Vec<(usize, Tok)>,
    pos: usize,
    len: usize,
}

/// Parses an expression of the supported subset.
pub fn parse(s: &str) -> Result<Expr, ExprError> {
    let toks = lex(s)?;
    let mut p = Parser {
        toks,
        pos: 0,
        len: s.len(),
    };
    let e = p.or()?;
    if p.pos < p.toks.len() {
        return Err(p.err("unexpected trailing input"));
    }
    Ok(e)
}

impl Parser {
    fn at(&self) -> usize {
        self.toks.get(self.pos).map_or(self.len, |t| t.0)
    }
    fn err(&self, msg: &str) -> ExprError {
        ExprError {
            pos: self.at(),
            msg: msg.to_owned(),
        }
    }
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.1)
    }
    fn eat_sym(&mut self, sym: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Sym(s)) if *s == sym) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn eat_kw(&mut self, kw: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Ident(s)) if s == kw) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn expect_sym(&mut self, sym: &str) -> Result<(), ExprError> {
        if self.eat_sym(sym) {
            Ok(())
        } else {
            Err(self.err(&format!("expected '{sym}'")))
        }
    }
    fn ident(&mut self) -> Result<String, ExprError> {
        match self.peek() {
            Some(Tok::Ident(s)) => {
                let s = s.clone();
                self.pos += 1;
                Ok(s)
            }
            _ => Err(self.err("expected a name")),
        }
    }
    /// A type name, optionally qualified (`FHIR.Quantity`, `System.String`).
    fn type_name(&mut self) -> Result<String, ExprError> {
        let mut name = self.ident()?;
        while self.eat_sym(".") {
            name = self.ident()?;
        }
        Ok(name)
    }

    fn or(&mut self) -> Result<Expr, ExprError> {
        let mut e = self.and()?;
        while self.eat_kw("or") {
            e = Expr::Or(Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }
    fn and(&mut self) -> Result<Expr, ExprError> {
        let mut e = self.equality()?;
        while self.eat_kw("and") {
            e = Expr::And(Box::new(e), Box::new(self.equality()?));
        }
        Ok(e)
    }
    fn equality(&mut self) -> Result<Expr, ExprError> {
        let mut e = self.union()?;
        loop {
            if self.eat_sym("=") {
                e = Expr::Eq(Box::new(e), Box::new(self.union()?), false);
            } else if self.eat_sym("!=") {
                e = Expr::Eq(Box::new(e), Box::new(self.union()?), true);
            } else {
                return Ok(e);
            }
        }
    }
    fn union(&mut self) -> Result<Expr, ExprError> {
        let first = self.type_expr()?;
        let mut parts = vec![first];
        while self.eat_sym("|") {
            parts.push(self.type_expr()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Expr::Union(parts)
        })
    }
    fn type_expr(&mut self) -> Result<Expr, ExprError> {
        let mut e = self.postfix()?;
        loop {
            if self.eat_kw("as") {
                e = Expr::As(Box::new(e), self.type_name()?);
            } else if self.eat_kw("is") {
                e = Expr::Is(Box::new(e), self.type_name()?);
            } else {
                return Ok(e);
            }
        }
    }
    fn postfix(&mut self) -> Result<Expr, ExprError> {
        let mut e = self.primary()?;
        loop {
            if self.eat_sym(".") {
                let name = self.ident()?;
                e = self.invocation(e, name)?;
            } else if self.eat_sym("[") {
                let n = match self.peek() {
                    Some(Tok::Num(n)) if n.fract() == 0.0 && *n >= 0.0 && *n < 1e9 => *n,
                    _ => return Err(self.err("expected an index")),
                };
                self.pos += 1;
                self.expect_sym("]")?;
                #[allow(
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss,
                    reason = "checked above"
                )]
                let idx = n as usize;
                e = Expr::Index(Box::new(e), idx);
            } else {
                return Ok(e);
            }
        }
    }
    fn primary(&mut self) -> Result<Expr, ExprError> {
        match self.peek().cloned() {
            Some(Tok::Sym("(")) => {
                self.pos += 1;
                let e = self.or()?;
                self.expect_sym(")")?;
                Ok(e)
            }
            Some(Tok::Str(s)) => {
                self.pos += 1;
                Ok(Expr::Str(s))
            }
            Some(Tok::Num(n)) => {
                self.pos += 1;
                Ok(Expr::Num(n))
            }
            Some(Tok::Ident(name)) => {
                self.pos += 1;
                match name.as_str() {
                    "true" => Ok(Expr::Bool(true)),
                    "false" => Ok(Expr::Bool(false)),
                    "$this" => Ok(Expr::This),
                    _ => self.invocation(Expr::This, name),
                }
            }
            _ => Err(self.err("expected an expression")),
        }
    }
    /// `name` or `name(args)` applied to `focus`.
    fn invocation(&mut self, focus: Expr, name: String) -> Result<Expr, ExprError> {
        if !self.eat_sym("(") {
            return Ok(Expr::Member(Box::new(focus), name));
        }
        let f = Box::new(focus);
        let e = match name.as_str() {
            "as" | "ofType" => Expr::As(f, self.type_name()?),
            "is" => Expr::Is(f, self.type_name()?),
            "where" => Expr::Where(f, Box::new(self.or()?)),
            "exists" => {
                if matches!(self.peek(), Some(Tok::Sym(")"))) {
                    Expr::Exists(f)
                } else {
                    Expr::Exists(Box::new(Expr::Where(f, Box::new(self.or()?))))
                }
            }
            "empty" => Expr::Empty(f),
            "not" => Expr::Not(f),
            "first" => Expr::First(f),
            "resolve" => Expr::Resolve(f),
            other => return Err(self.err(&format!("unsupported function {other}()"))),
        };
        self.expect_sym(")")?;
        Ok(e)
    }
}

// ---------------------------------------------------------------------------------------------
// Evaluation

/// Evaluates `expr` with `resource` as the context.
pub fn evaluate<'a>(expr: &Expr, resource: &'a Value) -> Vec<Item<'a>> {
    let focus = vec![Item::Node {
        value: resource,
        ty: None,
        elem: "",
    }];
    eval(expr, &focus)
}

fn eval<'a>(expr: &Expr, focus: &[Item<'a>]) -> Vec<Item<'a>> {
    match expr {
        Expr::This => focus.to_vec(),
        Expr::Member(inner, name) => {
            let base = eval(inner, focus);
            let mut out = Vec::new();
            for item in &base {
                member(item, name, &mut out);
            }
            out
        }
        Expr::Index(inner, i) => eval(inner, focus).into_iter().nth(*i).into_iter().collect(),
        Expr::As(inner, ty) => eval(inner, focus)
            .into_iter()
            .filter(|i| is_type(i, ty))
            .collect(),
        Expr::Is(inner, ty) => {
            let items = eval(inner, focus);
            match items.as_slice() {
                [one] => vec![Item::Bool(is_type(one, ty))],
                _ => Vec::new(),
            }
        }
        Expr::Where(inner, cond) => eval(inner, focus)
            .into_iter()
            .filter(|i| truthy(&eval(cond, std::slice::from_ref(i))) == Some(true))
            .collect(),
        Expr::Exists(inner) => vec![Item::Bool(!eval(inner, focus).is_empty())],
        Expr::Empty(inner) => vec![Item::Bool(eval(inner, focus).is_empty())],
        Expr::Not(inner) => match truthy(&eval(inner, focus)) {
            Some(b) => vec![Item::Bool(!b)],
            None => Vec::new(),
        },
        Expr::First(inner) => eval(inner, focus).into_iter().take(1).collect(),
        Expr::Resolve(inner) => eval(inner, focus)
            .iter()
            .filter_map(|i| match i {
                Item::Node { value, .. } => {
                    let reference = value.get("reference").and_then(Value::as_str)?;
                    reference_type(reference).map(|t| Item::Resolved(t.to_owned()))
                }
                _ => None,
            })
            .collect(),
        Expr::Union(parts) => {
            let mut out: Vec<Item<'a>> = Vec::new();
            for p in parts {
                for item in eval(p, focus) {
                    if !out.contains(&item) {
                        out.push(item);
                    }
                }
            }
            out
        }
        Expr::Eq(a, b, negate) => {
            let (a, b) = (eval(a, focus), eval(b, focus));
            match (a.as_slice(), b.as_slice()) {
                ([x], [y]) => vec![Item::Bool(equal(x, y) != *negate)],
                _ => Vec::new(),
            }
        }
        Expr::And(a, b) => match (truthy(&eval(a, focus)), truthy(&eval(b, focus))) {
            (Some(false), _) | (_, Some(false)) => vec![Item::Bool(false)],
            (Some(true), Some(true)) => vec![Item::Bool(true)],
            _ => Vec::new(),
        },
        Expr::Or(a, b) => match (truthy(&eval(a, focus)), truthy(&eval(b, focus))) {
            (Some(true), _) | (_, Some(true)) => vec![Item::Bool(true)],
            (Some(false), Some(false)) => vec![Item::Bool(false)],
            _ => Vec::new(),
        },
        Expr::Str(s) => vec![Item::Str(s.clone())],
        Expr::Num(n) => vec![Item::Num(*n)],
        Expr::Bool(b) => vec![Item::Bool(*b)],
    }
}

fn member<'a>(item: &Item<'a>, name: &str, out: &mut Vec<Item<'a>>) {
    let Item::Node { value, .. } = item else {
        return;
    };
    let Some(obj) = value.as_object() else {
        return;
    };
    if name.starts_with(|c: char| c.is_ascii_uppercase()) {
        // A type name: the resource itself when it is of that type.
        if let Some(rt) = obj.get("resourceType").and_then(Value::as_str)
            && (rt == name || name == "Resource" || name == "DomainResource")
        {
            out.push(item.clone());
        }
        return;
    }
    let mut push = |v: &'a Value, ty: Option<&'static str>, elem: &'a str| match v {
        Value::Array(items) => out.extend(
            items
                .iter()
                .filter(|v| !v.is_null())
                .map(|value| Item::Node { value, ty, elem }),
        ),
        Value::Null => {}
        value => out.push(Item::Node { value, ty, elem }),
    };
    if let Some((key, v)) = obj.get_key_value(name) {
        push(v, None, key.as_str());
        return;
    }
    // A choice element: `value` → `valueQuantity`, `valueString`, …
    for (key, v) in obj {
        if let Some(suffix) = key.strip_prefix(name)
            && let Some(ty) = choice_type(suffix)
        {
            push(v, Some(ty), key.as_str());
        }
    }
}

/// The datatype of an item: from the choice suffix, else guessed from its JSON shape.
pub fn item_type(item: &Item<'_>) -> Option<&'static str> {
    match item {
        Item::Node { ty: Some(t), .. } => Some(t),
        Item::Node { value, elem, .. } => shape_type(value, elem),
        Item::Bool(_) => Some("boolean"),
        Item::Str(_) => Some("string"),
        Item::Num(_) => Some("decimal"),
        Item::Resolved(_) => None,
    }
}

/// Guesses the FHIR datatype of a JSON value from its shape (and the element name, for
/// `telecom`). Primitives are `string`, `boolean` or `decimal`.
pub fn shape_type(value: &Value, elem: &str) -> Option<&'static str> {
    let obj = match value {
        Value::String(_) => return Some("string"),
        Value::Bool(_) => return Some("boolean"),
        Value::Number(_) => return Some("decimal"),
        Value::Object(o) => o,
        _ => return None,
    };
    let has = |k: &str| obj.contains_key(k);
    if obj.contains_key("resourceType") {
        return Some("Resource");
    }
    if elem == "telecom"
        || (has("value")
            && obj.get("system").and_then(Value::as_str).is_some_and(|s| {
                matches!(
                    s,
                    "phone" | "fax" | "email" | "pager" | "url" | "sms" | "other"
                )
            }))
    {
        return Some("ContactPoint");
    }
    Some(if has("coding") {
        "CodeableConcept"
    } else if has("reference") || obj.get("identifier").is_some_and(Value::is_object) {
        "Reference"
    } else if has("family") || has("given") || has("prefix") || has("suffix") {
        "HumanName"
    } else if has("line")
        || has("city")
        || has("postalCode")
        || has("district")
        || has("state")
        || has("country")
    {
        "Address"
    } else if obj.get("value").is_some_and(Value::is_number) {
        if has("currency") { "Money" } else { "Quantity" }
    } else if has("low") || has("high") {
        "Range"
    } else if has("start") || has("end") {
        "Period"
    } else if has("event") || has("repeat") {
        "Timing"
    } else if has("value") {
        "Identifier"
    } else if has("code") || has("system") {
        "Coding"
    } else if has("text") {
        "CodeableConcept"
    } else if has("display") {
        "Reference"
    } else {
        return None;
    })
}

fn is_type(item: &Item<'_>, ty: &str) -> bool {
    if let Item::Resolved(t) = item {
        return t == ty;
    }
    let Some(actual) = item_type(item) else {
        return false;
    };
    actual.eq_ignore_ascii_case(ty)
        || (ty == "Quantity"
            && matches!(
                actual,
                "Age" | "Duration" | "Distance" | "Count" | "SimpleQuantity"
            ))
        || (ty.eq_ignore_ascii_case("string") && matches!(actual, "code" | "id" | "markdown"))
        || (ty.eq_ignore_ascii_case("uri")
            && matches!(actual, "url" | "canonical" | "oid" | "uuid"))
}

fn truthy(items: &[Item<'_>]) -> Option<bool> {
    match items {
        [] => None,
        [Item::Bool(b)] => Some(*b),
        [
            Item::Node {
                value: Value::Bool(b),
                ..
            },
        ] => Some(*b),
        _ => Some(true),
    }
}

fn primitive(item: &Item<'_>) -> Option<Value> {
    match item {
        Item::Node { value, .. } => match value {
            Value::Object(_) | Value::Array(_) => None,
            v => Some((*v).clone()),
        },
        Item::Bool(b) => Some(Value::Bool(*b)),
        Item::Str(s) => Some(Value::String(s.clone())),
        Item::Num(n) => serde_json::Number::from_f64(*n).map(Value::Number),
        Item::Resolved(_) => None,
    }
}

fn equal(a: &Item<'_>, b: &Item<'_>) -> bool {
    match (primitive(a), primitive(b)) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => x.as_f64() == y.as_f64(),
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

/// The resource type a reference string points at: `Patient/1`, `Patient/1/_history/2`,
/// `https://host/fhir/Patient/1`. `None` for contained (`#x`), `urn:` and unparseable ones.
pub fn reference_type(reference: &str) -> Option<&str> {
    let path = reference.split(['?', '#']).next()?;
    if path.is_empty() || reference.starts_with('#') || reference.starts_with("urn:") {
        return None;
    }
    let segs: Vec<&str> = path.split('/').collect();
    let n = segs.len();
    // Strip a trailing `_history/<vid>`.
    let end = if n >= 4 && segs[n - 2] == "_history" {
        n - 2
    } else {
        n
    };
    if end < 2 {
        return None;
    }
    let ty = segs[end - 2];
    let id = segs[end - 1];
    (ty.starts_with(|c: char| c.is_ascii_uppercase())
        && ty.chars().all(|c| c.is_ascii_alphabetic())
        && !id.is_empty())
    .then_some(ty)
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

    fn values<'a>(expr: &str, r: &'a Value) -> Vec<Item<'a>> {
        evaluate(&parse(expr).unwrap(), r)
    }

    #[test]
    fn paths_flatten_arrays() {
        let p = json!({"resourceType":"Patient","name":[{"given":["A","B"]},{"given":["C"]}]});
        assert_eq!(values("Patient.name.given", &p).len(), 3);
        assert!(values("Observation.code", &p).is_empty());
        assert_eq!(values("Resource.name", &p).len(), 2);
    }

    #[test]
    fn choice_elements_match_every_variant_and_as_filters_them() {
        let o = json!({"resourceType":"Observation","valueQuantity":{"value":5},"effectivePeriod":{"start":"2024"}});
        let v = values("Observation.value", &o);
        assert_eq!(item_type(&v[0]), Some("Quantity"));
        assert_eq!(values("(Observation.value as Quantity)", &o).len(), 1);
        assert_eq!(values("Observation.value.as(Quantity)", &o).len(), 1);
        assert_eq!(values("Observation.value.ofType(Quantity)", &o).len(), 1);
        assert!(values("(Observation.value as string)", &o).is_empty());
        assert_eq!(values("Observation.effective", &o).len(), 1);
    }

    #[test]
    fn where_resolve_is_patient_checks_the_reference_type() {
        let o = json!({"resourceType":"Observation","subject":{"reference":"Patient/1"}});
        assert_eq!(
            values("Observation.subject.where(resolve() is Patient)", &o).len(),
            1
        );
        assert!(values("Observation.subject.where(resolve() is Group)", &o).is_empty());
        let abs = json!({"resourceType":"Observation","subject":{"reference":"https://x/fhir/Patient/1/_history/3"}});
        assert_eq!(
            values("Observation.subject.where(resolve() is Patient)", &abs).len(),
            1
        );
    }

    #[test]
    fn where_with_equality_filters_contact_points() {
        let p = json!({"resourceType":"Patient","telecom":[{"system":"phone","value":"1"},{"system":"email","value":"a@b"}]});
        let v = values("Patient.telecom.where(system='email')", &p);
        assert_eq!(v.len(), 1);
        assert_eq!(item_type(&v[0]), Some("ContactPoint"));
    }

    #[test]
    fn deceased_expression_is_a_boolean() {
        let e = "Patient.deceased.exists() and Patient.deceased != false";
        let alive = json!({"resourceType":"Patient"});
        assert_eq!(values(e, &alive), vec![Item::Bool(false)]);
        let dead = json!({"resourceType":"Patient","deceasedDateTime":"2020"});
        assert_eq!(values(e, &dead), vec![Item::Bool(true)]);
        let no = json!({"resourceType":"Patient","deceasedBoolean":false});
        assert_eq!(values(e, &no), vec![Item::Bool(false)]);
    }

    #[test]
    fn indexers_pick_one_item() {
        let b = json!({"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Composition"}},{"resource":{}}]});
        assert_eq!(values("Bundle.entry[0].resource", &b).len(), 1);
    }

    #[test]
    fn unsupported_functions_are_errors() {
        assert!(parse("Patient.name.select(given)").is_err());
        assert!(parse("Patient.name +").is_err());
    }
}
