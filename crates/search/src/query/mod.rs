//! The typed search query: what a FHIR search URL means, checked against the registry.
//!
//! The parser ([`parse`]) turns `(name, value)` pairs from a query string or a
//! `application/x-www-form-urlencoded` body into a [`SearchQuery`]. Storage compiles it to SQL.
//!
//! - `results`: the parameters that shape the result (`_count`, `_sort`, `_include`,
//!   `_revinclude`, `_summary`, `_total`, `_elements`, `_cursor`) and the dispatch of each pair.
//! - `criteria`: search criteria on parameters (modifiers, chaining, `_id`).
//! - `values`: token, date, number, quantity and reference value syntax, and escapes.

use carerecord_fhir::{Issue, IssueCode, ResourceType};

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
}

mod criteria;
mod results;
mod values;

pub use values::escape as escape_value;

#[cfg(test)]
mod tests;
