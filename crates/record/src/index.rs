//! Everything given to [`crate::RecordView::build`], indexed once: by type, by `Type/id`, with
//! each item's source and date worked out a single time. Sections then only look things up.

use std::collections::HashMap;

use carerecord_access::View;
use carerecord_access::policy::RESTRICTED_TYPES;
use carerecord_access::{DISCHARGE_SUMMARY_LOINC, DISCHARGE_SUMMARY_SNOMED};
use serde_json::Value;
use time::OffsetDateTime;

use crate::RecordInput;
use crate::read::{self, LOINC, SNOMED};
use crate::sources::{Source, Sources};

/// One resource with what every section needs to show it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Item<'a> {
    pub(crate) v: &'a Value,
    pub(crate) src: usize,
    pub(crate) date: Option<OffsetDateTime>,
}

pub(crate) struct Index<'a> {
    pub(crate) patient: &'a Value,
    pub(crate) now: OffsetDateTime,
    pub(crate) view: View,
    pub(crate) withheld: u64,
    pub(crate) organisations: &'a HashMap<String, String>,
    pub(crate) sources: Sources,
    /// Per resource type, newest first (undated last).
    by_type: HashMap<&'a str, Vec<Item<'a>>>,
    /// `(type, id)` → item, borrowed from the resources (no allocation per resource).
    by_ref: HashMap<(&'a str, &'a str), Item<'a>>,
    /// Results the caller did not parse (read for their source, test and status only), per
    /// test: the results section still says how many there are.
    unparsed_results: HashMap<(String, String), usize>,
}

const EMPTY: &[Item<'static>] = &[];

impl<'a> Index<'a> {
    pub(crate) fn new(input: &RecordInput<'a>) -> Index<'a> {
        let mut idx = Index {
            patient: input.patient,
            now: input.now,
            view: input.view,
            withheld: input.withheld,
            organisations: input.organisations,
            sources: Sources::default(),
            by_type: HashMap::new(),
            by_ref: HashMap::with_capacity(input.resources.len()),
            unparsed_results: HashMap::new(),
        };
        if input.view == View::None {
            return idx;
        }
        for v in input.resources {
            let rt = read::resource_type(v);
            // The store already withholds what the role may not see; this keeps the page
            // honest even if it is handed more (defence in depth).
            if input.view == View::Restricted && !RESTRICTED_TYPES.iter().any(|t| t.as_str() == rt)
            {
                continue;
            }
            let item = Item {
                v,
                src: idx.sources.add(v, input.organisations, input.feeds),
                date: read::item_date(v),
            };
            let id = read::id(v);
            if !id.is_empty() {
                idx.by_ref.insert((rt, id), item);
            }
            idx.by_type.entry(rt).or_default().push(item);
        }
        for u in input.sources_only {
            let v = &u.value;
            if input.view == View::Restricted
                && !RESTRICTED_TYPES
                    .iter()
                    .any(|t| t.as_str() == read::resource_type(v))
            {
                continue;
            }
            idx.sources.add(v, input.organisations, input.feeds);
            if read::resource_type(v) == "Observation"
                && v.get("code").is_some()
                && crate::sections::results::is_result(v)
            {
                let (system, code) = crate::sections::results::test_key(v);
                *idx.unparsed_results
                    .entry((system.to_owned(), code.into_owned()))
                    .or_default() += u.count;
            }
        }
        for list in idx.by_type.values_mut() {
            // Newest first; undated at the end.
            list.sort_by_key(|b| std::cmp::Reverse(b.date));
        }
        idx
    }

    /// How many results of test `key` (the results section's grouping) were left unparsed.
    pub(crate) fn unparsed_results(&self, key: &(&str, std::borrow::Cow<'_, str>)) -> usize {
        self.unparsed_results
            .get(&(key.0.to_owned(), key.1.to_string()))
            .copied()
            .unwrap_or(0)
    }

    /// Items of a type, newest first.
    pub(crate) fn of(&self, rt: &str) -> &[Item<'a>] {
        self.by_type.get(rt).map_or(EMPTY, Vec::as_slice)
    }

    /// The item a Reference points at, when we have it.
    pub(crate) fn resolve(&self, r: &Value) -> Option<Item<'a>> {
        read::reference_key(r)
            .and_then(|k| k.split_once('/'))
            .and_then(|k| self.by_ref.get(&k))
            .copied()
    }

    /// What `owner`'s Reference `r` points at: a contained resource (`#id`), else an item.
    pub(crate) fn resolve_from<'v>(&self, owner: &'v Value, r: &Value) -> Option<&'v Value>
    where
        'a: 'v,
    {
        match read::str_of(r, "reference").and_then(|s| s.strip_prefix('#')) {
            Some(local) => read::arr(owner, "contained")
                .iter()
                .find(|c| read::id(c) == local),
            None => self.resolve(r).map(|i| i.v),
        }
    }

    pub(crate) fn source(&self, item: &Item<'_>) -> Option<&Source> {
        self.sources.get(item.src)
    }

    pub(crate) fn patient_id(&self) -> &str {
        read::id(self.patient)
    }

    /// Discharge summaries (Compositions typed as one, or with discharge headings), newest
    /// first.
    pub(crate) fn discharge_summaries(&self) -> impl Iterator<Item = &Item<'a>> {
        self.of("Composition")
            .iter()
            .filter(|c| is_discharge_summary(c.v))
    }

    /// The latest discharge summary.
    pub(crate) fn latest_discharge(&self) -> Option<&Item<'a>> {
        self.discharge_summaries().next()
    }

    pub(crate) fn restricted(&self) -> bool {
        self.view != View::Full
    }
}

pub(crate) fn is_discharge_summary(c: &Value) -> bool {
    let t = c.get("type");
    read::has_code(t, SNOMED, DISCHARGE_SUMMARY_SNOMED)
        || read::has_code(t, LOINC, DISCHARGE_SUMMARY_LOINC)
        || read::concept_at(c, "type").is_some_and(|t| t.to_ascii_lowercase().contains("discharge"))
}
