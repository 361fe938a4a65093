//! Where each item came from, and how fresh that source is.
//!
//! The source organisation is the `meta.tag` carerecord stamps on every write
//! (`source-organisation`, code = ODS code), named from the directory of organisations; data
//! loaded without it falls back to the resource's own author fields.
//!
//! Freshness: feeds arrive in batches (a GP extract daily, a lab every few hours), so an item
//! can be correct but not the latest. A source is judged by its feed where it has one: when
//! its HL7 v2 feed last delivered a message, for anyone ([`crate::RecordInput::feeds`]) — a
//! hospital that sent nothing about this person for a year is not stale if its feed sent
//! something an hour ago, and one whose feed went quiet yesterday is, however recent this
//! person's last item. A source without a feed (data written through the API or imported)
//! falls back to the newest time anything of this person's arrived from it
//! (`meta.lastUpdated`, which the store stamps on every write). When that time is older than
//! the feed's usual lag, the source's items are marked "may be out of date". Without either
//! we cannot tell when data arrived, so nothing is marked (an item's clinical date says
//! nothing about the feed).

use std::collections::HashMap;

use serde_json::Value;
use time::{Duration, OffsetDateTime};

use crate::read::{self, SOURCE_ORGANISATION_TAG, SOURCE_SYSTEM_TAG, str_of};

/// One source organisation.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    pub(crate) name: String,
    /// The newest time anything arrived from it: from its feed when it has one, else of
    /// this person's.
    pub(crate) last_received: Option<OffsetDateTime>,
    /// Whether `last_received` is its feed's (for everyone), not this person's items'.
    pub(crate) feed: bool,
    /// Its feed's usual lag.
    pub(crate) lag: Duration,
}

impl Source {
    /// When the source is older than its usual lag: the time we last heard from it.
    pub(crate) fn stale_since(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        self.last_received.filter(|t| now - *t > self.lag)
    }
}

/// The usual lag of a kind of source system (`source-system` tag code).
fn lag_of(kind: Option<&str>) -> Duration {
    match kind {
        // Pathology results are sent as they are authorised.
        Some("pathology-lims") => Duration::hours(12),
        // Care homes record as they go; the portal is live.
        Some("care-home-digital-record" | "care-home-portal") => Duration::hours(12),
        // GP extracts and hospital EPR feeds are nightly batches.
        _ => Duration::hours(24),
    }
}

#[derive(Debug, Default)]
pub(crate) struct Sources {
    pub(crate) list: Vec<Source>,
    by_key: HashMap<String, usize>,
}

const AUTHOR_FIELDS: [&str; 11] = [
    "performer",
    "author",
    "recorder",
    "requester",
    "informationSource",
    "serviceProvider",
    "custodian",
    "asserter",
    "managingOrganization",
    "organization",
    "generalPractitioner",
];

impl Sources {
    /// The index of `v`'s source in `list`, adding it the first time it is seen.
    pub(crate) fn add(
        &mut self,
        v: &Value,
        organisations: &HashMap<String, String>,
        feeds: &HashMap<String, OffsetDateTime>,
    ) -> usize {
        let received = read::last_updated(v);
        // The usual case (carerecord's own tag) is looked up without allocating.
        let tagged = read::tag(v, SOURCE_ORGANISATION_TAG).and_then(|t| str_of(t, "code"));
        let found = tagged.and_then(|ods| self.by_key.get(ods).copied());
        let i = match found {
            Some(i) => i,
            None => {
                let (key, name) = identify(v, organisations);
                match self.by_key.get(&key) {
                    Some(i) => *i,
                    None => {
                        let kind = read::tag(v, SOURCE_SYSTEM_TAG).and_then(|t| str_of(t, "code"));
                        let feed = feeds.get(&key).copied();
                        self.list.push(Source {
                            name,
                            last_received: feed,
                            feed: feed.is_some(),
                            lag: lag_of(kind),
                        });
                        let i = self.list.len() - 1;
                        self.by_key.insert(key, i);
                        i
                    }
                }
            }
        };
        if let Some(s) = self.list.get_mut(i)
            && !s.feed
        {
            s.last_received = s.last_received.max(received);
        }
        i
    }

    pub(crate) fn get(&self, i: usize) -> Option<&Source> {
        self.list.get(i)
    }
}

/// A key (ODS code where known) and a name for the organisation `v` came from.
fn identify(v: &Value, organisations: &HashMap<String, String>) -> (String, String) {
    if let Some(t) = read::tag(v, SOURCE_ORGANISATION_TAG)
        && let Some(ods) = str_of(t, "code")
    {
        let name = organisations
            .get(ods)
            .map(String::as_str)
            .or_else(|| str_of(t, "display"))
            .unwrap_or(ods);
        return (ods.to_owned(), name.to_owned());
    }
    for f in AUTHOR_FIELDS {
        let r = match v.get(f) {
            Some(Value::Array(a)) => a.first().map(|x| x.get("actor").unwrap_or(x)),
            Some(r) => Some(r),
            None => None,
        };
        let Some(r) = r else { continue };
        if let Some(ods) = r
            .get("identifier")
            .filter(|i| str_of(i, "system") == Some(read::ODS))
            .and_then(|i| str_of(i, "value"))
        {
            let name = organisations
                .get(ods)
                .cloned()
                .or_else(|| str_of(r, "display").map(str::to_owned))
                .unwrap_or_else(|| ods.to_owned());
            return (ods.to_owned(), name);
        }
        if let Some(name) = read::reference(r) {
            return (format!("ref:{name}"), name);
        }
    }
    if let Some(src) = v.get("meta").and_then(|m| str_of(m, "source")) {
        return (format!("src:{src}"), src.to_owned());
    }
    ("unknown".to_owned(), "Source not recorded".to_owned())
}
