//! `_summary` and `_elements`: returning part of a resource.
//!
//! The summary element lists come from the R4 StructureDefinitions (`isSummary`, `min`), generated
//! by `tools/gen-summary-elements.py` into `summary_elements.json`.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde::Deserialize;
use serde_json::{Map, Value, json};

#[derive(Deserialize)]
struct Lists {
    summary: Vec<String>,
    mandatory: Vec<String>,
}

static LISTS: LazyLock<HashMap<String, Lists>> = LazyLock::new(|| {
    // The embedded file is generated and checked by `summary_lists_cover_every_type`.
    serde_json::from_str(include_str!("summary_elements.json")).unwrap_or_default()
});

/// The `SUBSETTED` tag servers put on partial resources.
const SUBSETTED: &str = r#"{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationValue","code":"SUBSETTED","display":"Resource encoded in summary mode"}"#;

/// Which part of a resource to return.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum View {
    #[default]
    Full,
    /// `_summary=true`: the summary elements.
    Summary,
    /// `_summary=text`: text, id, meta and mandatory elements.
    Text,
    /// `_summary=data`: everything but the narrative.
    Data,
    /// `_elements=a,b`: those top-level elements plus mandatory ones.
    Elements(Vec<String>),
}

impl View {
    pub fn is_full(&self) -> bool {
        matches!(self, View::Full)
    }

    /// Applies the view to `resource` (a resource object), adding the SUBSETTED tag when
    /// anything was left out.
    pub fn apply(&self, resource: &mut Value) {
        let Some(obj) = resource.as_object_mut() else {
            return;
        };
        let rt = obj
            .get("resourceType")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let lists = LISTS.get(&rt);
        let keep = |name: &str| -> bool {
            let base = name.strip_prefix('_').unwrap_or(name);
            if matches!(base, "resourceType" | "id" | "meta") {
                return true;
            }
            let mandatory = lists.is_some_and(|l| l.mandatory.iter().any(|m| is_element(base, m)));
            match self {
                View::Full => true,
                View::Summary => {
                    mandatory
                        || lists.is_some_and(|l| l.summary.iter().any(|m| is_element(base, m)))
                }
                View::Text => base == "text" || mandatory,
                View::Data => base != "text",
                View::Elements(names) => mandatory || names.iter().any(|m| is_element(base, m)),
            }
        };
        let before = obj.len();
        obj.retain(|k, _| keep(k));
        if obj.len() < before && !matches!(self, View::Full) {
            tag_subsetted(obj);
        }
    }
}

/// `valueQuantity` is the element `value`; `status` is `status`.
fn is_element(json_name: &str, element: &str) -> bool {
    json_name == element
        || (json_name.starts_with(element)
            && json_name[element.len()..]
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_uppercase()))
}

fn tag_subsetted(obj: &mut Map<String, Value>) {
    let meta = obj
        .entry("meta")
        .or_insert_with(|| json!({}))
        .as_object_mut();
    if let Some(meta) = meta {
        let tag: Value = serde_json::from_str(SUBSETTED).unwrap_or(Value::Null);
        match meta.get_mut("tag").and_then(Value::as_array_mut) {
            Some(tags) => tags.push(tag),
            None => {
                meta.insert("tag".to_owned(), Value::Array(vec![tag]));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ResourceType;

    #[test]
    fn summary_lists_cover_every_type() {
        for t in ResourceType::ALL {
            let l = &LISTS[t.as_str()];
            assert!(l.summary.iter().any(|s| s == "id"), "{t}");
        }
    }

    #[test]
    fn summary_keeps_summary_elements_and_marks_the_resource_subsetted() {
        let mut p = json!({"resourceType":"Patient","id":"p1","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},
            "name":[{"family":"Smith"}],"birthDate":"1940-01-01","photo":[{"contentType":"image/png"}],"contact":[{"name":{"family":"X"}}]});
        View::Summary.apply(&mut p);
        assert!(p.get("name").is_some() && p.get("birthDate").is_some());
        assert!(p.get("photo").is_none() && p.get("contact").is_none() && p.get("text").is_none());
        assert_eq!(p["meta"]["tag"][0]["code"], "SUBSETTED");
    }

    #[test]
    fn elements_keep_named_and_mandatory_elements_including_choice_types() {
        let mut o = json!({"resourceType":"Observation","id":"o1","status":"final","code":{"text":"Hb"},
            "valueQuantity":{"value":120},"interpretation":[{"text":"normal"}],"note":[{"text":"n"}]});
        View::Elements(vec!["value".into()]).apply(&mut o);
        assert!(o.get("valueQuantity").is_some());
        assert!(
            o.get("status").is_some() && o.get("code").is_some(),
            "mandatory kept"
        );
        assert!(o.get("note").is_none() && o.get("interpretation").is_none());
    }

    #[test]
    fn data_drops_only_the_narrative() {
        let mut o = json!({"resourceType":"Flag","id":"f","status":"active","text":{"status":"generated","div":"<div/>"},"code":{"text":"x"},"subject":{"reference":"Patient/1"}});
        View::Data.apply(&mut o);
        assert!(o.get("text").is_none() && o.get("subject").is_some());
    }
}
