//! Search criteria on parameters: modifiers, one level of chaining, and `_id`.

use carerecord_fhir::{Issue, IssueCode, ResourceType};

use super::values::{
    parse_quantity, split_prefix, split_unescaped, supported_targets, unescape, valid_id,
};
use super::{Criterion, Ctx, DateValue, NumberValue, StringMode, UriMode};
use crate::datetime::DateRange;
use crate::index::parse_decimal;
use crate::registry::{self, ParamKind, SearchParamDef};
use crate::text::normalize;

impl Ctx<'_> {
    pub(super) fn criterion(
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
}
