//! Search value syntax: tokens, prefixes, quantities, references, ids and escapes.

use carerecord_fhir::ResourceType;

use super::{Ctx, Prefix, QuantityValue, ReferenceValue, TokenSystem, TokenValue};
use crate::index::parse_decimal;
use crate::registry::SearchParamDef;

impl Ctx<'_> {
    pub(super) fn reference_value(
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

    pub(super) fn tokens(&mut self, name: &str, raw_values: &[&str]) -> Option<Vec<TokenValue>> {
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
pub(super) fn supported_targets(def: &SearchParamDef) -> Vec<ResourceType> {
    def.targets
        .iter()
        .filter_map(|t| t.parse::<ResourceType>().ok())
        .collect()
}

/// A FHIR id: 1–64 of `[A-Za-z0-9-.]`.
pub(super) fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// Splits on `sep` where it is not escaped with `\`; the parts keep their escapes.
pub(super) fn split_unescaped(s: &str, sep: char) -> Vec<&str> {
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

/// Escapes a value for a search parameter (`,` `|` `$` `\` get a `\`), so that
/// [`unescape`] gives it back whole: an identifier value that contains a `|` is one value.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, ',' | '|' | '$' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Removes search escapes: `\,` `\|` `\$` `\\`.
pub(super) fn unescape(s: &str) -> String {
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

pub(super) fn split_prefix(v: &str) -> (Prefix, &str) {
    for (p, prefix) in PREFIXES {
        if let Some(rest) = v.strip_prefix(p) {
            return (*prefix, rest);
        }
    }
    (Prefix::Eq, v)
}

pub(super) fn parse_quantity(raw: &str) -> Option<QuantityValue> {
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
