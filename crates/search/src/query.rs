//! The typed search query: what a FHIR search URL means, checked against the registry.
//!
//! The parser ([`parse`]) turns `(name, value)` pairs from a query string or a
//! `application/x-www-form-urlencoded` body into a [`SearchQuery`]. Storage compiles it to SQL.

use carerecord_fhir::{Issue, IssueCode, ResourceType};

use crate::datetime::DateRange;
use crate::index::parse_decimal;
use crate::registry::{self, ParamKind, SearchParamDef};
use crate::text::normalize;

/// A parsed search on one resource type. `criteria` are ANDed; the values inside one
/// criterion are ORed (comma-separated in the URL).
#[derive(Debug, Clone, PartialEq)]
pub struct SearchQuery {
    pub resource_type: ResourceType,
    pub criteria: Vec<Criterion>,
    /// `_count` (capped by the server; `None` means the server default).
    pub count: Option<u32>,
    pub sort: Vec<SortKey>,
    pub include: Vec<Include>,
    pub revinclude: Vec<Include>,
    pub summary: Option<Summary>,
    /// `_elements`, top-level element names.
    pub elements: Option<Vec<String>>,
    pub total: Total,
    /// The opaque `_cursor` the server handed out for the next page.
    pub cursor: Option<String>,
    /// Unknown or unsupported parameters that were ignored (lenient handling): reported back in
    /// the search Bundle's OperationOutcome.
    pub ignored: Vec<Issue>,
}

/// One search condition on one parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Criterion {
    /// `_id`.
    Id { values: Vec<String>, negate: bool },
    /// Token parameters, including `_tag`, `_security`; `:not` sets `negate`.
    Token {
        param: String,
        values: Vec<TokenValue>,
        negate: bool,
    },
    /// `:text` on a token parameter: starts-with on the normalized text.
    TokenText { param: String, values: Vec<String> },
    /// String parameters. `values` are normalized for `StartsWith`/`Contains`, raw for `Exact`.
    String {
        param: String,
        mode: StringMode,
        values: Vec<String>,
    },
    /// Date parameters, including `_lastUpdated`.
    Date {
        param: String,
        values: Vec<DateValue>,
    },
    Number {
        param: String,
        values: Vec<NumberValue>,
    },
    Quantity {
        param: String,
        values: Vec<QuantityValue>,
    },
    /// Reference parameters compared with the reference itself.
    Reference {
        param: String,
        values: Vec<ReferenceValue>,
    },
    /// `param:identifier=system|value`.
    ReferenceIdentifier {
        param: String,
        values: Vec<TokenValue>,
    },
    /// `param:Type.chained=value` or `param.chained=value` (one level): resources whose `param`
    /// references a `target_type` resource matching `inner`.
    Chain {
        param: String,
        target_type: ResourceType,
        inner: Box<Criterion>,
    },
    /// uri parameters (including `_profile`, `_source`).
    Uri {
        param: String,
        mode: UriMode,
        values: Vec<String>,
    },
    /// `param:missing=true|false`.
    Missing { param: String, missing: bool },
}

/// A token value as written: `code`, `|code`, `system|code`, `system|`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenValue {
    pub system: TokenSystem,
    pub code: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSystem {
    /// `code`: any system.
    Any,
    /// `|code`: no system.
    None,
    /// `system|code` or `system|`.
    Is(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringMode {
    StartsWith,
    Exact,
    Contains,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UriMode {
    Exact,
    Below,
    Above,
}

/// The comparison prefixes of date, number and quantity parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefix {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
    Sa,
    Eb,
    Ap,
}

/// A date search value: the prefix and the `[low, high)` range (µs since the epoch, UTC) its
/// precision implies (`2024-03` → all of March 2024).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateValue {
    pub prefix: Prefix,
    pub low: i64,
    pub high: i64,
}

/// A number search value with its implied precision range (`100` → `[99.5, 100.5)`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NumberValue {
    pub prefix: Prefix,
    pub value: f64,
    pub low: f64,
    pub high: f64,
}

/// `[prefix]number|system|code` (system and code optional; `number||unit` matches code or unit).
#[derive(Debug, Clone, PartialEq)]
pub struct QuantityValue {
    pub prefix: Prefix,
    pub value: f64,
    pub low: f64,
    pub high: f64,
    pub system: Option<String>,
    pub code: Option<String>,
}

/// A reference search value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReferenceValue {
    /// `Type/id`, or a bare `id` (with `target_type` from a `:Type` modifier or the parameter's
    /// single target, else `None`).
    Local {
        target_type: Option<ResourceType>,
        id: String,
    },
    /// An absolute URL that is not this server's.
    Url(String),
}

/// One `_sort` key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    /// A search parameter code, or `_id` / `_lastUpdated`.
    pub param: String,
    pub descending: bool,
}

/// `_include=Source:param[:Target]` or `_revinclude=…`, with `:iterate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Include {
    pub source_type: ResourceType,
    /// A reference parameter code of `source_type`, or `*` for all of them.
    pub param: String,
    pub target_type: Option<ResourceType>,
    pub iterate: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Summary {
    True,
    Text,
    Data,
    Count,
    False,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Total {
    None,
    Estimate,
    #[default]
    Accurate,
}

/// How to treat unknown or unsupported parameters (`Prefer: handling=strict|lenient`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Handling {
    Strict,
    #[default]
    Lenient,
}

/// Parses search parameters for `resource_type`.
///
/// `base_url` is this server's FHIR base (`http://host:port/fhir`), so absolute references to
/// it become local ones. Malformed values are always an error; unknown parameters are an error
/// under [`Handling::Strict`] and are listed in [`SearchQuery::ignored`] otherwise. Parameters
/// the server handles itself (`_format`, `_pretty`) are skipped silently.
///
/// Every problem is reported, not just the first. A bare reference id takes its target type from
/// a `:Type` modifier, else from the parameter's targets when exactly one of them is a type this
/// server stores (so `patient=123` means `Patient/123` although R4 also allows `Group`).
pub fn parse(
    resource_type: ResourceType,
    pairs: &[(String, String)],
    handling: Handling,
    base_url: &str,
) -> Result<SearchQuery, Vec<Issue>> {
    let mut q = SearchQuery {
        resource_type,
        criteria: Vec::new(),
        count: None,
        sort: Vec::new(),
        include: Vec::new(),
        revinclude: Vec::new(),
        summary: None,
        elements: None,
        total: Total::default(),
        cursor: None,
        ignored: Vec::new(),
    };
    let mut cx = Ctx {
        handling,
        base_url: base_url.trim_end_matches('/'),
        errors: Vec::new(),
        ignored: Vec::new(),
    };
    for (name, value) in pairs {
        cx.pair(&mut q, name, value);
    }
    q.ignored = cx.ignored;
    if cx.errors.is_empty() {
        Ok(q)
    } else {
        Err(cx.errors)
    }
}

struct Ctx<'a> {
    handling: Handling,
    base_url: &'a str,
    errors: Vec<Issue>,
    ignored: Vec<Issue>,
}

impl Ctx<'_> {
    fn invalid(&mut self, msg: String) {
        self.errors.push(Issue::error(IssueCode::Invalid, msg));
    }
    fn bad_value(&mut self, msg: String) {
        self.errors.push(Issue::error(IssueCode::Value, msg));
    }
    /// An unknown parameter or an unsupported feature: an error when strict, else ignored.
    fn unsupported(&mut self, msg: String) {
        match self.handling {
            Handling::Strict => self.errors.push(Issue::error(IssueCode::NotSupported, msg)),
            Handling::Lenient => self.ignored.push(Issue::warning(
                IssueCode::NotSupported,
                format!("{msg}; it was ignored"),
            )),
        }
    }

    fn pair(&mut self, q: &mut SearchQuery, name: &str, value: &str) {
        let rt = q.resource_type;
        match name {
            "_format" | "_pretty" => {}
            "_count" => match value.parse::<u32>() {
                Ok(n) => q.count = Some(n),
                Err(_) => self.bad_value(format!(
                    "_count must be a non-negative integer, not '{value}'"
                )),
            },
            "_sort" => self.sort(q, value),
            "_include" | "_include:iterate" | "_include:recurse" => {
                let iterate = name != "_include";
                if let Some(i) = self.include("_include", rt, value, iterate) {
                    q.include.push(i);
                }
            }
            "_revinclude" | "_revinclude:iterate" | "_revinclude:recurse" => {
                let iterate = name != "_revinclude";
                if let Some(i) = self.include("_revinclude", rt, value, iterate) {
                    q.revinclude.push(i);
                }
            }
            "_summary" => match value {
                "true" => q.summary = Some(Summary::True),
                "text" => q.summary = Some(Summary::Text),
                "data" => q.summary = Some(Summary::Data),
                "count" => q.summary = Some(Summary::Count),
                "false" => q.summary = Some(Summary::False),
                _ => self.bad_value(format!(
                    "_summary must be one of true, text, data, count, false, not '{value}'"
                )),
            },
            "_total" => match value {
                "none" => q.total = Total::None,
                "estimate" => q.total = Total::Estimate,
                "accurate" => q.total = Total::Accurate,
                _ => self.bad_value(format!(
                    "_total must be one of none, estimate, accurate, not '{value}'"
                )),
            },
            "_elements" => {
                let mut names = Vec::new();
                for e in value.split(',').map(str::trim) {
                    let ok = e.starts_with(|c: char| c.is_ascii_alphabetic())
                        && e.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                    if ok {
                        names.push(e.to_owned());
                    } else {
                        self.bad_value(format!("_elements contains an invalid element name '{e}'"));
                    }
                }
                q.elements = Some(names);
            }
            "_cursor" => {
                if value.is_empty() {
                    self.bad_value("_cursor must not be empty".to_owned());
                } else {
                    q.cursor = Some(value.to_owned());
                }
            }
            _ => {
                if let Some(c) = self.criterion(rt, name, value, 0) {
                    q.criteria.push(c);
                }
            }
        }
    }

    fn sort(&mut self, q: &mut SearchQuery, value: &str) {
        for key in value.split(',').map(str::trim) {
            let (param, descending) = match key.strip_prefix('-') {
                Some(k) => (k, true),
                None => (key, false),
            };
            if param.is_empty() {
                self.bad_value(format!("_sort has an empty sort key in '{value}'"));
                continue;
            }
            match registry::lookup(q.resource_type, param) {
                Some(def) if !matches!(def.kind, ParamKind::Composite | ParamKind::Special) => {
                    q.sort.push(SortKey {
                        param: param.to_owned(),
                        descending,
                    });
                }
                _ => self.unsupported(format!(
                    "_sort key '{param}' is not a sortable search parameter of {}",
                    q.resource_type
                )),
            }
        }
    }

    fn include(
        &mut self,
        name: &str,
        rt: ResourceType,
        value: &str,
        iterate: bool,
    ) -> Option<Include> {
        if value == "*" {
            return Some(Include {
                source_type: rt,
                param: "*".to_owned(),
                target_type: None,
                iterate,
            });
        }
        let parts: Vec<&str> = value.split(':').collect();
        let (source, param, target) = match parts.as_slice() {
            [s, p] => (*s, *p, None),
            [s, p, t] => (*s, *p, Some(*t)),
            _ => {
                self.bad_value(format!(
                    "{name} must be 'Type:parameter[:Target]' or '*', not '{value}'"
                ));
                return None;
            }
        };
        let Ok(source_type) = source.parse::<ResourceType>() else {
            self.bad_value(format!(
                "{name}: '{source}' is not a resource type this server supports"
            ));
            return None;
        };
        if name == "_include" && !iterate && source_type != rt {
            self.invalid(format!(
                "_include source type {source_type} must be the searched type {rt} (use _include:iterate)"
            ));
            return None;
        }
        let mut targets: &[String] = &[];
        if param != "*" {
            match registry::lookup(source_type, param) {
                Some(def) if def.kind == ParamKind::Reference => targets = &def.targets,
                _ => {
                    self.bad_value(format!(
                        "{name}: '{param}' is not a reference search parameter of {source_type}"
                    ));
                    return None;
                }
            }
        }
        let target_type = match target {
            None => None,
            Some(t) => match t.parse::<ResourceType>() {
                Ok(tt) if param == "*" || targets.iter().any(|x| x == t) => Some(tt),
                _ => {
                    self.bad_value(format!(
                        "{name}: '{t}' is not a target type of {source_type}:{param}"
                    ));
                    return None;
                }
            },
        };
        Some(Include {
            source_type,
            param: param.to_owned(),
            target_type,
            iterate,
        })
    }

    fn criterion(
        &mut self,
        rt: ResourceType,
        name: &str,
        value: &str,
        depth: usize,
    ) -> Option<Criterion> {
        let (head, chain) = match name.split_once('.') {
            Some((h, c)) => (h, Some(c)),
            None => (name, None),
        };
        let (code, modifier) = match head.split_once(':') {
            Some((c, m)) => (c, Some(m)),
            None => (head, None),
        };
        if code == "_id" && chain.is_none() {
            return self.id(name, modifier, value);
        }
        let Some(def) = registry::lookup(rt, code) else {
            self.unsupported(format!("Unknown search parameter '{code}' for {rt}"));
            return None;
        };
        if let Some(rest) = chain {
            return self.chain(rt, def, name, modifier, rest, value, depth);
        }
        if value.is_empty() {
            self.bad_value(format!("Search parameter '{name}' has no value"));
            return None;
        }
        if modifier == Some("missing") {
            return match value {
                "true" | "false" => Some(Criterion::Missing {
                    param: code.to_owned(),
                    missing: value == "true",
                }),
                _ => {
                    self.bad_value(format!("'{name}' must be true or false, not '{value}'"));
                    None
                }
            };
        }
        let raw_values = split_unescaped(value, ',');
        if raw_values.iter().any(|v| v.is_empty()) {
            self.bad_value(format!(
                "Search parameter '{name}' has an empty value in '{value}'"
            ));
            return None;
        }
        let param = code.to_owned();
        let unsupported_modifier = |cx: &mut Self| {
            cx.unsupported(format!(
                "The modifier ':{}' is not supported on the {} parameter '{code}'",
                modifier.unwrap_or_default(),
                def.kind.as_str()
            ));
            None
        };
        match def.kind {
            ParamKind::Token => {
                let negate = match modifier {
                    None => false,
                    Some("not") => true,
                    Some("text") => {
                        return Some(Criterion::TokenText {
                            param,
                            values: raw_values.iter().map(|v| normalize(&unescape(v))).collect(),
                        });
                    }
                    Some(_) => return unsupported_modifier(self),
                };
                let values = self.tokens(name, &raw_values)?;
                Some(Criterion::Token {
                    param,
                    values,
                    negate,
                })
            }
            ParamKind::String => {
                let mode = match modifier {
                    None => StringMode::StartsWith,
                    Some("exact") => StringMode::Exact,
                    Some("contains") => StringMode::Contains,
                    Some(_) => return unsupported_modifier(self),
                };
                let values = raw_values
                    .iter()
                    .map(|v| {
                        let v = unescape(v);
                        if mode == StringMode::Exact {
                            v
                        } else {
                            normalize(&v)
                        }
                    })
                    .collect();
                Some(Criterion::String {
                    param,
                    mode,
                    values,
                })
            }
            ParamKind::Uri => {
                let mode = match modifier {
                    None => UriMode::Exact,
                    Some("below") => UriMode::Below,
                    Some("above") => UriMode::Above,
                    Some(_) => return unsupported_modifier(self),
                };
                let values = raw_values.iter().map(|v| unescape(v)).collect();
                Some(Criterion::Uri {
                    param,
                    mode,
                    values,
                })
            }
            ParamKind::Date | ParamKind::Number | ParamKind::Quantity if modifier.is_some() => {
                unsupported_modifier(self)
            }
            ParamKind::Date => {
                let mut values = Vec::new();
                let mut ok = true;
                for raw in &raw_values {
                    let v = unescape(raw);
                    let (prefix, rest) = split_prefix(&v);
                    match DateRange::parse(rest) {
                        Some(r) => values.push(DateValue {
                            prefix,
                            low: r.low,
                            high: r.high,
                        }),
                        None => {
                            ok = false;
                            self.bad_value(format!(
                                "'{v}' is not a valid date for search parameter '{name}'"
                            ));
                        }
                    }
                }
                ok.then_some(Criterion::Date { param, values })
            }
            ParamKind::Number => {
                let mut values = Vec::new();
                let mut ok = true;
                for raw in &raw_values {
                    let v = unescape(raw);
                    let (prefix, rest) = split_prefix(&v);
                    match parse_decimal(rest) {
                        Some((value, low, high)) => values.push(NumberValue {
                            prefix,
                            value,
                            low,
                            high,
                        }),
                        None => {
                            ok = false;
                            self.bad_value(format!(
                                "'{v}' is not a valid number for search parameter '{name}'"
                            ));
                        }
                    }
                }
                ok.then_some(Criterion::Number { param, values })
            }
            ParamKind::Quantity => {
                let mut values = Vec::new();
                let mut ok = true;
                for raw in &raw_values {
                    match parse_quantity(raw) {
                        Some(q) => values.push(q),
                        None => {
                            ok = false;
                            self.bad_value(format!(
                                "'{}' is not a valid quantity ([prefix]number[|system|code]) for search parameter '{name}'",
                                unescape(raw)
                            ));
                        }
                    }
                }
                ok.then_some(Criterion::Quantity { param, values })
            }
            ParamKind::Reference => {
                let type_modifier = match modifier {
                    None => None,
                    Some("identifier") => {
                        let values = self.tokens(name, &raw_values)?;
                        return Some(Criterion::ReferenceIdentifier { param, values });
                    }
                    Some(m) => Some(self.target_type(def, name, m)?),
                };
                let mut values = Vec::new();
                let mut ok = true;
                for raw in &raw_values {
                    match self.reference_value(def, type_modifier, &unescape(raw)) {
                        Ok(v) => values.push(v),
                        Err(msg) => {
                            ok = false;
                            self.bad_value(format!("Search parameter '{name}': {msg}"));
                        }
                    }
                }
                ok.then_some(Criterion::Reference { param, values })
            }
            ParamKind::Composite | ParamKind::Special => {
                self.unsupported(format!(
                    "The {} search parameter '{code}' is not supported",
                    def.kind.as_str()
                ));
                None
            }
        }
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "one call site; a struct would only rename them"
    )]
    fn chain(
        &mut self,
        rt: ResourceType,
        def: &SearchParamDef,
        name: &str,
        modifier: Option<&str>,
        rest: &str,
        value: &str,
        depth: usize,
    ) -> Option<Criterion> {
        if def.kind != ParamKind::Reference {
            self.invalid(format!(
                "'{name}': only reference parameters can be chained, and '{}' of {rt} is a {} parameter",
                def.code,
                def.kind.as_str()
            ));
            return None;
        }
        if depth > 0 || rest.contains('.') {
            self.unsupported(format!("'{name}': only one level of chaining is supported"));
            return None;
        }
        let target_type = match modifier {
            Some(m) => self.target_type(def, name, m)?,
            None => {
                let supported = supported_targets(def);
                match supported.as_slice() {
                    [one] => *one,
                    _ => {
                        self.invalid(format!(
                            "'{name}': the chained parameter '{}' may refer to several types ({}); name one, e.g. '{}:{}.{rest}'",
                            def.code,
                            def.targets.join(", "),
                            def.code,
                            supported.first().map_or("Patient", |t| t.as_str())
                        ));
                        return None;
                    }
                }
            }
        };
        let inner = self.criterion(target_type, rest, value, depth + 1)?;
        Some(Criterion::Chain {
            param: def.code.clone(),
            target_type,
            inner: Box::new(inner),
        })
    }

    /// A `:Type` modifier of a reference parameter.
    fn target_type(&mut self, def: &SearchParamDef, name: &str, m: &str) -> Option<ResourceType> {
        if !def.targets.iter().any(|t| t == m) {
            if m.starts_with(|c: char| c.is_ascii_uppercase()) {
                self.invalid(format!(
                    "'{name}': {m} is not a target type of the reference parameter '{}' ({})",
                    def.code,
                    def.targets.join(", ")
                ));
            } else {
                self.unsupported(format!(
                    "The modifier ':{m}' is not supported on the reference parameter '{}'",
                    def.code
                ));
            }
            return None;
        }
        match m.parse::<ResourceType>() {
            Ok(t) => Some(t),
            Err(_) => {
                self.errors.push(Issue::error(
                    IssueCode::NotSupported,
                    format!("'{name}': resource type {m} is not supported by this server"),
                ));
                None
            }
        }
    }

    fn reference_value(
        &self,
        def: &SearchParamDef,
        type_modifier: Option<ResourceType>,
        v: &str,
    ) -> Result<ReferenceValue, String> {
        let local = if !self.base_url.is_empty()
            && let Some(rest) = v.strip_prefix(self.base_url)
            && let Some(path) = rest.strip_prefix('/')
        {
            path
        } else if v.contains("://") || v.starts_with("urn:") {
            return Ok(ReferenceValue::Url(v.to_owned()));
        } else {
            v
        };
        let segs: Vec<&str> = local.split('/').collect();
        let (ty, id) = match segs.as_slice() {
            [id] => (None, *id),
            [ty, id] | [ty, id, "_history", _] => (Some(*ty), *id),
            _ => {
                return Err(format!(
                    "'{v}' is not a valid reference ([Type/]id or a URL)"
                ));
            }
        };
        if !valid_id(id) {
            return Err(format!("'{id}' is not a valid resource id"));
        }
        let target_type = match ty {
            Some(t) => {
                let parsed = t
                    .parse::<ResourceType>()
                    .map_err(|_| format!("resource type '{t}' is not supported by this server"))?;
                if type_modifier.is_some_and(|m| m != parsed) {
                    return Err(format!("'{v}' does not match the type modifier"));
                }
                Some(parsed)
            }
            None => type_modifier.or_else(|| match supported_targets(def).as_slice() {
                [one] => Some(*one),
                _ => None,
            }),
        };
        Ok(ReferenceValue::Local {
            target_type,
            id: id.to_owned(),
        })
    }

    fn id(&mut self, name: &str, modifier: Option<&str>, value: &str) -> Option<Criterion> {
        let negate = match modifier {
            None => false,
            Some("not") => true,
            Some(m) => {
                self.unsupported(format!("The modifier ':{m}' is not supported on '_id'"));
                return None;
            }
        };
        let mut values = Vec::new();
        let mut ok = true;
        for raw in split_unescaped(value, ',') {
            let v = unescape(raw);
            if valid_id(&v) {
                values.push(v);
            } else {
                ok = false;
                self.bad_value(format!("'{name}': '{v}' is not a valid resource id"));
            }
        }
        ok.then_some(Criterion::Id { values, negate })
    }

    fn tokens(&mut self, name: &str, raw_values: &[&str]) -> Option<Vec<TokenValue>> {
        let mut values = Vec::new();
        let mut ok = true;
        for raw in raw_values {
            match parse_token(raw) {
                Some(t) => values.push(t),
                None => {
                    ok = false;
                    self.bad_value(format!(
                        "'{}' is not a valid token (code, |code, system|code or system|) for search parameter '{name}'",
                        unescape(raw)
                    ));
                }
            }
        }
        ok.then_some(values)
    }
}

/// The parameter's targets that this server stores.
fn supported_targets(def: &SearchParamDef) -> Vec<ResourceType> {
    def.targets
        .iter()
        .filter_map(|t| t.parse::<ResourceType>().ok())
        .collect()
}

/// A FHIR id: 1–64 of `[A-Za-z0-9-.]`.
fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// Splits on `sep` where it is not escaped with `\`; the parts keep their escapes.
fn split_unescaped(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            parts.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&s[start..]);
    parts
}

/// Removes search escapes: `\,` `\|` `\$` `\\`.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(n) => out.push(n),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn parse_token(raw: &str) -> Option<TokenValue> {
    let parts = split_unescaped(raw, '|');
    let non_empty = |s: &str| (!s.is_empty()).then(|| unescape(s));
    match parts.as_slice() {
        [code] => Some(TokenValue {
            system: TokenSystem::Any,
            code: Some(non_empty(code)?),
        }),
        ["", code] => Some(TokenValue {
            system: TokenSystem::None,
            code: Some(non_empty(code)?),
        }),
        [system, code] => Some(TokenValue {
            system: TokenSystem::Is(unescape(system)),
            code: non_empty(code),
        }),
        _ => None,
    }
}

const PREFIXES: &[(&str, Prefix)] = &[
    ("eq", Prefix::Eq),
    ("ne", Prefix::Ne),
    ("lt", Prefix::Lt),
    ("gt", Prefix::Gt),
    ("le", Prefix::Le),
    ("ge", Prefix::Ge),
    ("sa", Prefix::Sa),
    ("eb", Prefix::Eb),
    ("ap", Prefix::Ap),
];

fn split_prefix(v: &str) -> (Prefix, &str) {
    for (p, prefix) in PREFIXES {
        if let Some(rest) = v.strip_prefix(p) {
            return (*prefix, rest);
        }
    }
    (Prefix::Eq, v)
}

fn parse_quantity(raw: &str) -> Option<QuantityValue> {
    let parts = split_unescaped(raw, '|');
    let opt = |s: &str| (!s.is_empty()).then(|| unescape(s));
    let (number, system, code) = match parts.as_slice() {
        [n] => (unescape(n), None, None),
        [n, s, c] => (unescape(n), opt(s), opt(c)),
        _ => return None,
    };
    if system.is_some() && code.is_none() {
        return None;
    }
    let (prefix, rest) = split_prefix(&number);
    let (value, low, high) = parse_decimal(rest)?;
    Some(QuantityValue {
        prefix,
        value,
        low,
        high,
        system,
        code,
    })
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
    use carerecord_fhir::Severity;
    use proptest::prelude::*;

    const BASE: &str = "https://cr.example.nhs.uk/fhir";

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }
    fn ok(rt: ResourceType, p: &[(&str, &str)]) -> SearchQuery {
        parse(rt, &pairs(p), Handling::Strict, BASE).unwrap_or_else(|e| panic!("{e:?}"))
    }
    fn err(rt: ResourceType, p: &[(&str, &str)]) -> Vec<Issue> {
        parse(rt, &pairs(p), Handling::Lenient, BASE).expect_err("should fail")
    }

    #[test]
    fn token_forms_give_the_right_systems() {
        let q = ok(
            ResourceType::Patient,
            &[(
                "identifier",
                "https://fhir.nhs.uk/Id/nhs-number|9990000018,|x,abc,http://s|",
            )],
        );
        let Criterion::Token { values, negate, .. } = &q.criteria[0] else {
            panic!()
        };
        assert!(!negate);
        assert_eq!(
            values,
            &vec![
                TokenValue {
                    system: TokenSystem::Is("https://fhir.nhs.uk/Id/nhs-number".into()),
                    code: Some("9990000018".into())
                },
                TokenValue {
                    system: TokenSystem::None,
                    code: Some("x".into())
                },
                TokenValue {
                    system: TokenSystem::Any,
                    code: Some("abc".into())
                },
                TokenValue {
                    system: TokenSystem::Is("http://s".into()),
                    code: None
                },
            ]
        );
    }

    #[test]
    fn escaped_commas_and_pipes_stay_in_the_value() {
        let q = ok(
            ResourceType::Patient,
            &[("family", "a\\,b,c"), ("identifier", "s\\|x|1")],
        );
        assert_eq!(
            q.criteria[0],
            Criterion::String {
                param: "family".into(),
                mode: StringMode::StartsWith,
                values: vec!["a,b".into(), "c".into()]
            }
        );
        let Criterion::Token { values, .. } = &q.criteria[1] else {
            panic!()
        };
        assert_eq!(values[0].system, TokenSystem::Is("s|x".into()));
    }

    #[test]
    fn token_modifiers_not_text_and_missing() {
        let q = ok(
            ResourceType::Observation,
            &[
                ("code:not", "1"),
                ("code:text", "Blood Préssure"),
                ("code:missing", "true"),
            ],
        );
        assert!(matches!(
            &q.criteria[0],
            Criterion::Token { negate: true, .. }
        ));
        assert_eq!(
            q.criteria[1],
            Criterion::TokenText {
                param: "code".into(),
                values: vec!["blood pressure".into()]
            }
        );
        assert_eq!(
            q.criteria[2],
            Criterion::Missing {
                param: "code".into(),
                missing: true
            }
        );
        assert!(!err(ResourceType::Observation, &[("code:missing", "yes")]).is_empty());
    }

    #[test]
    fn string_modifiers_choose_the_mode_and_normalization() {
        let q = ok(
            ResourceType::Patient,
            &[
                ("name", "Zoë"),
                ("name:exact", "Zoë"),
                ("name:contains", "OË"),
            ],
        );
        let modes: Vec<_> = q
            .criteria
            .iter()
            .map(|c| match c {
                Criterion::String { mode, values, .. } => (*mode, values[0].clone()),
                _ => panic!(),
            })
            .collect();
        assert_eq!(
            modes,
            vec![
                (StringMode::StartsWith, "zoe".into()),
                (StringMode::Exact, "Zoë".into()),
                (StringMode::Contains, "oe".into())
            ]
        );
    }

    #[test]
    fn dates_take_prefixes_and_precision_ranges() {
        let q = ok(
            ResourceType::Observation,
            &[
                ("date", "ge2024-03,lt2024-04-01T10:00Z"),
                ("_lastUpdated", "gt2024"),
            ],
        );
        let Criterion::Date { values, .. } = &q.criteria[0] else {
            panic!()
        };
        let march = DateRange::parse("2024-03").unwrap();
        assert_eq!(
            values[0],
            DateValue {
                prefix: Prefix::Ge,
                low: march.low,
                high: march.high
            }
        );
        assert_eq!(values[1].prefix, Prefix::Lt);
        assert!(matches!(&q.criteria[1], Criterion::Date { param, .. } if param == "_lastUpdated"));
        let e = err(
            ResourceType::Observation,
            &[("date", "2024-13"), ("date", "xx2024")],
        );
        assert_eq!(e.len(), 2);
        assert!(
            e.iter()
                .all(|i| i.code == IssueCode::Value && i.diagnostics.contains("date"))
        );
    }

    #[test]
    fn quantities_parse_number_system_and_code() {
        let q = ok(
            ResourceType::Observation,
            &[(
                "value-quantity",
                "gt5.4|http://unitsofmeasure.org|mg,100||mmHg,7",
            )],
        );
        let Criterion::Quantity { values, .. } = &q.criteria[0] else {
            panic!()
        };
        assert_eq!(values[0].prefix, Prefix::Gt);
        assert!((values[0].low - 5.35).abs() < 1e-9);
        assert_eq!(
            values[0].system.as_deref(),
            Some("http://unitsofmeasure.org")
        );
        assert_eq!(
            (values[1].system.as_deref(), values[1].code.as_deref()),
            (None, Some("mmHg"))
        );
        assert_eq!((values[2].low, values[2].high), (6.5, 7.5));
        assert!(!err(ResourceType::Observation, &[("value-quantity", "5|mg")]).is_empty());
    }

    #[test]
    fn reference_values_become_local_or_url() {
        let q = ok(
            ResourceType::Observation,
            &[(
                "subject",
                "Patient/1,https://cr.example.nhs.uk/fhir/Patient/2/_history/3,https://other.org/fhir/Patient/3,Patient/4/_history/1",
            )],
        );
        let Criterion::Reference { values, .. } = &q.criteria[0] else {
            panic!()
        };
        let local = |id: &str| ReferenceValue::Local {
            target_type: Some(ResourceType::Patient),
            id: id.into(),
        };
        assert_eq!(
            values,
            &vec![
                local("1"),
                local("2"),
                ReferenceValue::Url("https://other.org/fhir/Patient/3".into()),
                local("4")
            ]
        );
    }

    #[test]
    fn bare_reference_ids_take_the_type_from_modifier_or_single_supported_target() {
        let q = ok(
            ResourceType::Observation,
            &[
                ("patient", "123"),
                ("subject:Patient", "9"),
                ("subject", "5"),
            ],
        );
        let get = |i: usize| match &q.criteria[i] {
            Criterion::Reference { values, .. } => values[0].clone(),
            _ => panic!(),
        };
        assert_eq!(
            get(0),
            ReferenceValue::Local {
                target_type: Some(ResourceType::Patient),
                id: "123".into()
            }
        );
        assert_eq!(
            get(1),
            ReferenceValue::Local {
                target_type: Some(ResourceType::Patient),
                id: "9".into()
            }
        );
        assert!(matches!(
            get(2),
            ReferenceValue::Local {
                target_type: None,
                ..
            }
        ));
        assert!(
            !err(
                ResourceType::Observation,
                &[("subject:Patient", "Practitioner/1")]
            )
            .is_empty()
        );
        assert!(!err(ResourceType::Observation, &[("subject", "Group/1")]).is_empty());
    }

    #[test]
    fn reference_identifier_modifier_gives_token_values() {
        let q = ok(
            ResourceType::Observation,
            &[(
                "subject:identifier",
                "https://fhir.nhs.uk/Id/nhs-number|9990000018",
            )],
        );
        assert!(
            matches!(&q.criteria[0], Criterion::ReferenceIdentifier { param, values } if param == "subject" && values.len() == 1)
        );
    }

    #[test]
    fn chains_parse_the_inner_criterion_against_the_target_type() {
        let q = ok(
            ResourceType::Observation,
            &[
                (
                    "subject:Patient.identifier",
                    "https://fhir.nhs.uk/Id/nhs-number|9990000018",
                ),
                ("patient.name", "smith"),
            ],
        );
        let Criterion::Chain {
            param,
            target_type,
            inner,
        } = &q.criteria[0]
        else {
            panic!()
        };
        assert_eq!(
            (param.as_str(), *target_type),
            ("subject", ResourceType::Patient)
        );
        assert!(matches!(inner.as_ref(), Criterion::Token { param, .. } if param == "identifier"));
        assert!(matches!(
            &q.criteria[1],
            Criterion::Chain {
                target_type: ResourceType::Patient,
                ..
            }
        ));
        let ambiguous = err(ResourceType::Observation, &[("subject.name", "x")]);
        assert!(ambiguous[0].diagnostics.contains("several types"));
        assert!(!err(ResourceType::Observation, &[("code.name", "x")]).is_empty());
        let deep = parse(
            ResourceType::Observation,
            &pairs(&[("patient.organization.name", "x")]),
            Handling::Strict,
            BASE,
        );
        assert!(deep.is_err());
    }

    #[test]
    fn id_numbers_and_uris_are_parsed() {
        let q = ok(
            ResourceType::Patient,
            &[
                ("_id", "a,b"),
                ("_id:not", "c"),
                (
                    "_profile:below",
                    "https://fhir.hl7.org.uk/StructureDefinition",
                ),
            ],
        );
        assert_eq!(
            q.criteria[0],
            Criterion::Id {
                values: vec!["a".into(), "b".into()],
                negate: false
            }
        );
        assert_eq!(
            q.criteria[1],
            Criterion::Id {
                values: vec!["c".into()],
                negate: true
            }
        );
        assert!(matches!(
            &q.criteria[2],
            Criterion::Uri {
                mode: UriMode::Below,
                ..
            }
        ));
        assert!(!err(ResourceType::Patient, &[("_id", "bad id!")]).is_empty());
    }

    #[test]
    fn result_parameters_are_parsed_and_validated() {
        let q = ok(
            ResourceType::Observation,
            &[
                ("_count", "20"),
                ("_sort", "-date,_id,code"),
                ("_include", "Observation:subject:Patient"),
                ("_include:iterate", "Patient:general-practitioner"),
                ("_revinclude", "Provenance:target"),
                ("_include", "*"),
                ("_summary", "count"),
                ("_elements", "id, code"),
                ("_total", "none"),
                ("_cursor", "abc=="),
                ("_format", "json"),
                ("_pretty", "true"),
            ],
        );
        assert_eq!(q.count, Some(20));
        assert_eq!(
            q.sort[0],
            SortKey {
                param: "date".into(),
                descending: true
            }
        );
        assert_eq!(q.sort.len(), 3);
        assert_eq!(
            q.include[0],
            Include {
                source_type: ResourceType::Observation,
                param: "subject".into(),
                target_type: Some(ResourceType::Patient),
                iterate: false
            }
        );
        assert!(q.include[1].iterate);
        assert_eq!(q.include[2].param, "*");
        assert_eq!(q.revinclude[0].source_type, ResourceType::Provenance);
        assert_eq!(q.summary, Some(Summary::Count));
        assert_eq!(q.elements, Some(vec!["id".into(), "code".into()]));
        assert_eq!(q.total, Total::None);
        assert_eq!(q.cursor.as_deref(), Some("abc=="));
        assert!(q.ignored.is_empty());
    }

    #[test]
    fn every_malformed_value_is_reported_not_just_the_first() {
        let e = err(
            ResourceType::Observation,
            &[
                ("_count", "-1"),
                ("_summary", "maybe"),
                ("_total", "all"),
                ("_include", "Observation:code"),
                ("_include", "Nope:subject"),
                ("value-quantity", "abc"),
                ("code", "a|b|c"),
                ("code", "|"),
            ],
        );
        assert_eq!(e.len(), 8, "{e:#?}");
        assert!(e.iter().all(|i| i.severity == Severity::Error));
    }

    #[test]
    fn unknown_parameters_and_modifiers_are_ignored_when_lenient_and_errors_when_strict() {
        let p = pairs(&[
            ("foo", "1"),
            ("code:below", "x"),
            ("Code", "y"),
            ("_has:Observation:patient:code", "1"),
        ]);
        let q = parse(ResourceType::Observation, &p, Handling::Lenient, BASE).unwrap();
        assert_eq!(q.ignored.len(), 4);
        assert!(
            q.ignored
                .iter()
                .all(|i| i.severity == Severity::Warning && i.code == IssueCode::NotSupported)
        );
        assert!(q.criteria.is_empty());
        let e = parse(ResourceType::Observation, &p, Handling::Strict, BASE).unwrap_err();
        assert_eq!(e.len(), 4);
    }

    proptest! {
        #[test]
        fn parse_never_panics(name in "\\PC{0,30}", value in "\\PC{0,40}") {
            for handling in [Handling::Strict, Handling::Lenient] {
                let _ = parse(ResourceType::Observation, &[(name.clone(), value.clone())], handling, BASE);
            }
        }

        #[test]
        fn parse_never_panics_on_known_names(
            name in prop::sample::select(vec![
                "code", "subject", "date", "value-quantity", "patient.name", "subject:Patient.identifier",
                "_sort", "_include", "_count", "_id", "code:text", "combo-code-value-quantity", "status:missing",
                "_lastUpdated", "_elements", "subject:identifier",
            ]),
            value in "[a-zA-Z0-9|,\\\\:/._\\-]{0,30}",
        ) {
            let _ = parse(ResourceType::Observation, &[(name.to_owned(), value)], Handling::Strict, BASE);
        }

        #[test]
        fn system_and_code_tokens_round_trip(system in "[a-z:/.]{1,20}", code in "[A-Za-z0-9]{1,10}") {
            let q = parse(ResourceType::Observation, &[("code".to_owned(), format!("{system}|{code}"))], Handling::Strict, BASE);
            let Ok(q) = q else { return Err(TestCaseError::fail("should parse")) };
            prop_assert_eq!(
                &q.criteria[0],
                &Criterion::Token {
                    param: "code".into(),
                    values: vec![TokenValue { system: TokenSystem::Is(system), code: Some(code) }],
                    negate: false,
                }
            );
        }
    }
}
