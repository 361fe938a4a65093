//! Event badges for the residents list: what changed lately, at a glance.

use carerecord_fhir::ResourceType;
use serde_json::Value;
use time::{Duration, OffsetDateTime};

use crate::index::is_discharge_summary;
use crate::read::{self, str_of};
use crate::{Badge, BadgeKind, dates};

/// How long a discharge stays news.
const DISCHARGE_NEWS: Duration = Duration::days(14);
/// How long results and care plan changes stay news.
const NEWS: Duration = Duration::days(7);

/// How long after a sample its result may be reported and still be news when it arrives: a
/// result is searched for by when it was taken (`Observation.effective`, the `date`
/// parameter), while the badge counts from when it was issued.
const REPORTING_DELAY: Duration = Duration::days(14);

/// One search the residents list runs to find what [`badges`] looks at, for many people at
/// once: the caller adds the `patient` parameter (a list of people) and pages through the
/// matches. Each search finds a superset of what can make a badge at `now`; [`badges`]
/// decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadgeSearch {
    pub resource_type: ResourceType,
    pub params: Vec<(String, String)>,
}

/// The searches that find everything [`badges`] needs at `now`, one per resource type, so
/// that badging a list of people costs the same few queries however many people there are.
/// They search by the clinical dates the badges are about (an encounter's period, a result's
/// date), not by when data arrived: a record loaded today is not news for that alone.
pub fn badge_searches(now: OffsetDateTime) -> Vec<BadgeSearch> {
    let day = |t: OffsetDateTime| {
        let d = t.date();
        format!(
            "ge{:04}-{:02}-{:02}",
            d.year(),
            u8::from(d.month()),
            d.day()
        )
    };
    let search = |rt: ResourceType, params: &[(&str, String)]| BadgeSearch {
        resource_type: rt,
        params: params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
    };
    // A day more than each window: the searches compare dates, the badges instants.
    let discharge_since = day(now - DISCHARGE_NEWS - Duration::days(2));
    let results_since = day(now - NEWS - REPORTING_DELAY - Duration::days(1));
    let lab = "laboratory,LAB".to_owned();
    vec![
        // Periods overlapping the window: stays still open (no end) and recent discharges.
        search(
            ResourceType::Encounter,
            &[("date", discharge_since.clone())],
        ),
        search(ResourceType::Composition, &[("date", discharge_since)]),
        search(
            ResourceType::Observation,
            &[("category", lab.clone()), ("date", results_since.clone())],
        ),
        search(
            ResourceType::DiagnosticReport,
            &[("category", lab), ("date", results_since)],
        ),
        // A plan written or changed within the window arrived within it.
        search(
            ResourceType::CarePlan,
            &[("_lastUpdated", day(now - NEWS - Duration::days(1)))],
        ),
    ]
}

fn is_inpatient(enc: &Value) -> bool {
    let class = enc.get("class");
    ["IMP", "ACUTE", "NONAC"]
        .iter()
        .any(|c| read::has_any_code(class, c))
        || read::has_code(enc.get("type"), read::SNOMED, "32485007")
}

fn is_lab(v: &Value) -> bool {
    let cat = v.get("category");
    read::has_any_code(cat, "LAB") || read::has_any_code(cat, "laboratory")
}

/// The badges for a person's resources at `now`, in a fixed order: in hospital, discharged,
/// new results, care plan updated. A person in hospital gets no "discharged" badge.
pub fn badges(resources: &[Value], now: OffsetDateTime) -> Vec<Badge> {
    badges_since(resources, now, None)
}

/// Like [`badges`], for a viewer who last opened this person's record at `last_look`: a care
/// plan change that arrived before then is one they have seen, and is not news to them.
///
/// `resources` may hold earlier versions of a CarePlan beside its current one (the same id,
/// a lower `meta.versionId`): a later version counts as a change only when its content
/// differs from the version before it ([`care_plan_changed`]). Without the version before
/// it, a later version is taken to be a change.
pub fn badges_since(
    resources: &[Value],
    now: OffsetDateTime,
    last_look: Option<OffsetDateTime>,
) -> Vec<Badge> {
    let mut in_hospital: Option<OffsetDateTime> = None;
    let mut discharged: Option<OffsetDateTime> = None;
    let mut newest_summary: Option<OffsetDateTime> = None;
    let mut new_results: Option<OffsetDateTime> = None;
    let mut plan_updated: Option<OffsetDateTime> = None;
    let mut plans: Vec<&Value> = Vec::new();
    let recent = |t: Option<OffsetDateTime>, window: Duration| {
        t.filter(|t| *t <= now + Duration::hours(1) && now - *t <= window)
    };
    // Most results are old: a string comparison of their date rejects them before any parsing.
    let news_cutoff = {
        let d = (now - NEWS - Duration::days(1)).date();
        format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
    };
    for v in resources {
        match read::resource_type(v) {
            "Encounter" if is_inpatient(v) => {
                let status = str_of(v, "status").unwrap_or("");
                let start = read::date_at(v, "period");
                let end = read::period_end(v, "period");
                let ongoing = matches!(status, "in-progress" | "arrived" | "onleave")
                    || (end.is_none()
                        && !matches!(status, "finished" | "cancelled" | "entered-in-error"));
                if ongoing {
                    if let Some(s) = start.filter(|s| *s <= now) {
                        in_hospital = Some(in_hospital.map_or(s, |h| h.max(s)));
                    }
                } else if status != "cancelled"
                    && status != "entered-in-error"
                    && let Some(e) = recent(end, DISCHARGE_NEWS)
                {
                    discharged = discharged.max(Some(e));
                }
            }
            "Composition" if is_discharge_summary(v) => {
                newest_summary = newest_summary.max(read::item_date(v));
            }
            "Observation" | "DiagnosticReport" => {
                // The date first: most results are old, and a string comparison rejects them
                // before the category is read or anything is parsed.
                let text = str_of(v, "issued").or_else(|| str_of(v, "effectiveDateTime"));
                if text
                    .and_then(|t| t.get(..10))
                    .is_some_and(|day| day < news_cutoff.as_str())
                    || !is_lab(v)
                {
                    continue;
                }
                let when = text.and_then(dates::parse).or_else(|| read::item_date(v));
                new_results = new_results.max(recent(when, NEWS));
            }
            "CarePlan" => plans.push(v),
            _ => {}
        }
    }
    for versions in plan_versions(&plans) {
        let Some(current) = versions.first() else {
            continue;
        };
        // A new plan counts from when it was written; a changed one from when the change
        // arrived. The first version's arrival time is only when it was loaded, which would
        // make every imported plan look new; a version that only re-sent the same plan is
        // not a change either.
        let written =
            read::date_at(current, "created").or_else(|| read::date_at(current, "period"));
        let changed = content_changed_at(&versions);
        // Seen already if the change (or, unchanged, the plan) arrived before the viewer last
        // opened the record.
        let arrived = changed.or_else(|| versions.last().and_then(|v| read::last_updated(v)));
        let unseen = match (last_look, arrived) {
            (Some(look), Some(arrived)) => arrived > look,
            _ => true,
        };
        if unseen {
            plan_updated = plan_updated.max(recent(written.max(changed), NEWS));
        }
    }
    let mut out = Vec::new();
    if let Some(s) = in_hospital {
        out.push(Badge {
            kind: BadgeKind::InHospital,
            text: format!("In hospital since {}", dates::day_month(s)),
            when: Some(s),
        });
    } else if let Some(d) = discharged {
        // A summary written on or after the day of discharge belongs to it.
        let has_summary = newest_summary.is_some_and(|s| s >= d - Duration::days(1));
        out.push(Badge {
            kind: BadgeKind::Discharged,
            text: if has_summary {
                format!("Discharged {} — new discharge summary", dates::day_month(d))
            } else {
                format!("Discharged {}", dates::day_month(d))
            },
            when: Some(d),
        });
    }
    if let Some(t) = new_results {
        out.push(Badge {
            kind: BadgeKind::NewResults,
            text: "New results".to_owned(),
            when: Some(t),
        });
    }
    if let Some(t) = plan_updated {
        out.push(Badge {
            kind: BadgeKind::CarePlanUpdated,
            text: "Care plan updated".to_owned(),
            when: Some(t),
        });
    }
    out
}

/// Whether a CarePlan's content differs between two versions: everything but `meta`, which
/// describes the copy (its version, when it arrived, its tags), not the plan. A plan sent
/// again as it was is a new version with the same content.
pub fn care_plan_changed(previous: &Value, current: &Value) -> bool {
    match (previous.as_object(), current.as_object()) {
        (Some(a), Some(b)) => {
            let content = |m: &'_ serde_json::Map<String, Value>| {
                m.len() - usize::from(m.contains_key("meta"))
            };
            content(a) != content(b)
                || a.iter()
                    .filter(|(k, _)| k.as_str() != "meta")
                    .any(|(k, v)| b.get(k) != Some(v))
        }
        _ => previous != current,
    }
}

fn version_of(v: &Value) -> Option<u64> {
    v.get("meta")
        .and_then(|m| str_of(m, "versionId"))
        .and_then(|n| n.parse::<u64>().ok())
}

/// The CarePlans among `plans` grouped by id, each newest version first (one version of
/// each number). A plan without an id stands alone.
fn plan_versions<'a>(plans: &[&'a Value]) -> Vec<Vec<&'a Value>> {
    let mut groups: Vec<Vec<&'a Value>> = Vec::new();
    let mut by_id: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for v in plans {
        let id = read::id(v);
        match by_id.get(id).and_then(|i| groups.get_mut(*i)) {
            Some(g) if !id.is_empty() => g.push(v),
            _ => {
                if !id.is_empty() {
                    by_id.insert(id, groups.len());
                }
                groups.push(vec![v]);
            }
        }
    }
    for g in &mut groups {
        g.sort_by_key(|v| std::cmp::Reverse(version_of(v)));
        g.dedup_by_key(|v| version_of(v));
    }
    groups
}

/// When the plan's content last changed, from its versions newest first: when the newest
/// version whose content differs from the one before it arrived. `None` when every version
/// given has the first version's content. A later version whose predecessor is not given is
/// taken to be a change (nothing shows it was not).
fn content_changed_at(versions: &[&Value]) -> Option<OffsetDateTime> {
    for (k, newer) in versions.iter().enumerate() {
        let n = version_of(newer).filter(|n| *n > 1)?;
        let changed = match versions.get(k + 1) {
            Some(older) if version_of(older) == Some(n - 1) => care_plan_changed(older, newer),
            _ => true,
        };
        if changed {
            return read::last_updated(newer);
        }
    }
    None
}
