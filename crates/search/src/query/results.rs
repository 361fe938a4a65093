//! Result parameters (`_count`, `_sort`, `_include`, `_summary`, …) and the dispatch of each
//! `(name, value)` pair.

use carerecord_fhir::ResourceType;

use super::{Ctx, Include, SearchQuery, SortKey, Summary, Total};
use crate::registry::{self, ParamKind};

impl Ctx<'_> {
    pub(super) fn pair(&mut self, q: &mut SearchQuery, name: &str, value: &str) {
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
}
