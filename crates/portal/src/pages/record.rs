//! `/residents/{id}` and `/residents/{id}/{section}`: one person's record, a section per page
//! (real links, so everything works without JavaScript), rendered by the record crate from
//! everything the principal may see of the person (the store's `$everything` with the
//! principal's visibility). A restricted view lists the sections its role cannot see and why;
//! a record open under emergency access says so, and until when.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use carerecord_access::Visibility;
use carerecord_access::classify::SOURCE_ORGANISATION_TAG;
use carerecord_access::policy::Denial;
use carerecord_fhir::{LogicalId, ResourceType};
use carerecord_search::query::{Handling, parse};
use carerecord_server::AppState;
use carerecord_server::access::Access;
use carerecord_store::{
    AuditAction, AuditFilter, AuditOutcome, StoreError, StoredResource, ingest,
};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::residents::rec_now;
use crate::page::{Chrome, PageError, render};
use crate::record::{
    PersonHeader, RESULTS_SHOWN_PER_TEST, RecordInput, RecordView, Section, Unparsed,
};
use crate::session::Staff;
use crate::{audit, person};

/// Resources read per page of `$everything`.
const PAGE: u32 = 1_000;

pub struct SectionLink {
    pub href: String,
    pub title: &'static str,
    pub current: bool,
    pub available: bool,
}

#[derive(Template)]
#[template(path = "record.html")]
struct RecordPage {
    chrome: Chrome,
    header: PersonHeader,
    section_title: &'static str,
    sections: Vec<SectionLink>,
    /// The section's HTML fragment, escaped by the record crate.
    body: String,
    available: bool,
    reason: &'static str,
    emergency_until: Option<String>,
    unavailable: Vec<(&'static str, &'static str)>,
    /// Registered SMART apps with a launch URL: (client id, name), for "Open in …".
    apps: Vec<(String, String)>,
    /// The person's logical id, for the launch forms.
    header_id: String,
}

pub async fn summary(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    show(&state, &staff, &id, Section::Summary).await
}

pub async fn section(
    State(state): State<AppState>,
    staff: Staff,
    Path((id, slug)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let section = Section::from_slug(&slug).ok_or(PageError::NotFound)?;
    show(&state, &staff, &id, section).await
}

/// What the principal may see of one person: the Patient, the rest of their record, and
/// how many items were withheld as sensitive.
pub struct Loaded {
    pub patient: StoredResource,
    pub resources: Vec<StoredResource>,
    pub withheld: u64,
}

/// Reads the person's record as `access` may see it; `NotFound` when they may not see the
/// person at all (whether or not the person exists).
pub async fn load(state: &AppState, access: &Access, id: &LogicalId) -> Result<Loaded, PageError> {
    let vis = access.vis()?;
    let patient = state.store.read(ResourceType::Patient, id, vis).await?;
    let mut resources = Vec::new();
    let mut withheld = 0;
    let mut cursor: Option<String> = None;
    loop {
        let page = state
            .store
            .everything(id, None, &[], PAGE, cursor.as_deref(), vis)
            .await?;
        withheld += page.withheld;
        resources.extend(
            page.items
                .into_iter()
                .filter(|r| !r.deleted && r.resource_type != ResourceType::Patient)
                .map(|r| access.shown(r)),
        );
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    Ok(Loaded {
        patient,
        resources,
        withheld,
    })
}

/// How much of a resource a section's page parses.
enum Parse<'a> {
    /// The whole body, to show it.
    Whole,
    /// Only its source and arrival (its `meta`, for [`StandIns`]), so that the page still
    /// judges each source's freshness over everything the person has from it.
    SourceOnly(GlanceMeta<'a>),
}

/// What a page keeps of the resources it does not parse: one [`Unparsed`] per group of alike
/// ones — the same type and source tags and, for results, the same test (`code` as written)
/// and status — standing for all of them, with the latest arrival among them. A long
/// record's two thousand results come from a few sources and tests: a few stand-ins, not two
/// thousand `Value`s built and freed.
#[derive(Default)]
struct StandIns<'a> {
    groups: HashMap<Alike<'a>, Latest<'a>>,
}

#[derive(PartialEq, Eq, Hash)]
struct Alike<'a> {
    resource_type: ResourceType,
    tags: Vec<&'a str>,
    /// A result's test and status, so that the results section still counts it.
    test: Option<(Option<&'a str>, Option<Cow<'a, str>>)>,
}

struct Latest<'a> {
    /// `meta.lastUpdated` as written, and as a time to compare (`None`: not readable).
    last_updated: Option<Cow<'a, str>>,
    at: Option<time::OffsetDateTime>,
    count: usize,
}

impl<'a> StandIns<'a> {
    fn add(
        &mut self,
        resource_type: ResourceType,
        meta: GlanceMeta<'a>,
        test: Option<(Option<&'a RawValue>, Option<Cow<'a, str>>)>,
    ) {
        let key = Alike {
            resource_type,
            tags: meta.tag.iter().map(|t| t.get()).collect(),
            test: test.map(|(code, status)| (code.map(RawValue::get), status)),
        };
        let at = meta.last_updated.as_deref().and_then(|t| {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
        });
        let latest = self.groups.entry(key).or_insert(Latest {
            last_updated: None,
            at: None,
            count: 0,
        });
        latest.count += 1;
        if latest.count == 1 || at > latest.at {
            latest.last_updated = meta.last_updated;
            latest.at = at;
        }
    }

    fn into_unparsed(self) -> Vec<Unparsed> {
        let parse = |raw: &str| serde_json::from_str::<Value>(raw).unwrap_or(Value::Null);
        self.groups
            .into_iter()
            .map(|(alike, latest)| {
                let tags: Vec<Value> = alike.tags.iter().map(|t| parse(t)).collect();
                let mut value = serde_json::json!({
                    "resourceType": alike.resource_type.as_str(),
                    "meta": {"lastUpdated": latest.last_updated, "tag": tags},
                });
                if let (Some((code, status)), Some(o)) = (alike.test, value.as_object_mut()) {
                    o.insert("code".into(), code.map_or(Value::Null, parse));
                    o.insert("status".into(), serde_json::json!(status));
                }
                Unparsed {
                    value,
                    count: latest.count,
                }
            })
            .collect()
    }
}

/// The summary shows abnormal results of the last 90 days (`carerecord_record`'s summary):
/// a day more, as a `YYYY-MM-DD` prefix to compare dates with before parsing anything.
fn summary_results_cutoff(now_micros: i64) -> String {
    let t = rec_now(now_micros) - time::Duration::days(91);
    let d = t.date();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// What `section`'s page parses of `r`. Observations are most of a long record (a lab sends
/// many a week): the results page needs each test's newest ([`results_shown`]); the discharge
/// page only those a discharge summary's sections list ([`referenced_by_compositions`]) —
/// either way `shown`, as `Observation/{id}`; the summary those of the last 90 days; the
/// reports page (imaging and other non-laboratory reports, shown by their conclusions) and the
/// medicines, problems, care plans and encounters pages none. Everything else is parsed
/// whole. When in doubt (a body it cannot read), the whole.
fn parse_for<'a>(
    section: Section,
    r: &'a StoredResource,
    cutoff: &str,
    shown: &HashSet<String>,
) -> Parse<'a> {
    if r.resource_type != ResourceType::Observation {
        return Parse::Whole;
    }
    let Ok(g) = serde_json::from_str::<Glance<'_>>(&r.body) else {
        return Parse::Whole;
    };
    let needed = match section {
        Section::Results | Section::Discharge => shown.contains(&format!("Observation/{}", r.id)),
        Section::Reports => false,
        // The record crate dates a result by the first of these it can read, else by its
        // arrival: parse it when any of them may be recent (a superset of what it shows).
        Section::Summary => {
            let period = g.effective_period.as_ref();
            let clinical = [
                g.effective_date_time.as_deref(),
                g.effective_instant.as_deref(),
                g.issued.as_deref(),
                period.and_then(|p| p.start.as_deref()),
                period.and_then(|p| p.end.as_deref()),
            ];
            let recent = |d: &str| d.get(..10).is_none_or(|day| day >= cutoff);
            if clinical.iter().all(Option::is_none) {
                g.meta
                    .as_ref()
                    .and_then(|m| m.last_updated.as_deref())
                    .is_none_or(recent)
            } else {
                clinical.iter().flatten().any(|d| recent(d))
            }
        }
        Section::Medicines | Section::Problems | Section::CarePlans | Section::Encounters => false,
    };
    match (needed, g.meta) {
        (false, Some(meta)) if !meta.tag.is_empty() => Parse::SourceOnly(meta),
        _ => Parse::Whole,
    }
}

/// Every `Type/id` the Compositions among `resources` refer to (their sections' entries
/// among them), for the discharge page: the Observations it may show.
fn referenced_by_compositions(resources: &[StoredResource]) -> HashSet<String> {
    fn walk(v: &Value, out: &mut HashSet<String>) {
        match v {
            Value::Object(o) => {
                if let Some(Value::String(r)) = o.get("reference") {
                    // `Type/id`, also of an absolute or versioned reference.
                    let r = r.split("/_history/").next().unwrap_or(r);
                    let mut parts = r.rsplit('/');
                    if let (Some(id), Some(rt)) = (parts.next(), parts.next()) {
                        out.insert(format!("{rt}/{id}"));
                    }
                }
                o.values().for_each(|c| walk(c, out));
            }
            Value::Array(a) => a.iter().for_each(|c| walk(c, out)),
            _ => {}
        }
    }
    let mut out = HashSet::new();
    for r in resources
        .iter()
        .filter(|r| r.resource_type == ResourceType::Composition)
    {
        if let Ok(v) = serde_json::from_str::<Value>(&r.body) {
            walk(&v, &mut out);
        }
    }
    out
}

/// The Observations the results page may show, as `Observation/{id}`: of each test, at least
/// its newest [`RESULTS_SHOWN_PER_TEST`] results — a superset, read from a glance at each
/// one's code, status and dates, never from a whole parse.
///
/// The page groups results by test (a function of `code`) and orders them by the first
/// clinical date it can read, else their arrival (`carerecord_record`). Here, results are
/// grouped by their `code` exactly as written (a finer grouping than the page's, so each
/// page group's newest are among its parts' newest), and each is given the earliest and the
/// latest day among its clinical dates (its arrival when it has none), one of which is the
/// page's (stored dates are valid FHIR dates: the write path checks them). If a group's
/// `RESULTS_SHOWN_PER_TEST`-th latest *earliest* day is `L`, at least that many results are
/// of `L` or later, so every result the page shows is of `L` or later, and so has a *latest*
/// day of `L` or later: those are kept, with a day's margin for time zones. Results that
/// cannot be dated (or carry a partial date), grouped or read, and those the page leaves out
/// (cancelled, entered in error), are kept too, and do not count towards `L`.
///
/// Returns the ids to parse whole; every other result is added to `stand_ins` with its source,
/// test and status — from the same one glance. Each result is in exactly one of the two.
fn results_shown<'a>(
    resources: &'a [StoredResource],
    stand_ins: &mut StandIns<'a>,
) -> HashSet<String> {
    let mut shown = HashSet::new();
    let mut groups: HashMap<&str, Vec<(String, String, String, ResultGlance<'_>)>> = HashMap::new();
    for r in resources
        .iter()
        .filter(|r| r.resource_type == ResourceType::Observation && !r.deleted)
    {
        let key = format!("Observation/{}", r.id);
        let Ok(g) = serde_json::from_str::<ResultGlance<'_>>(&r.body) else {
            shown.insert(key);
            continue;
        };
        if matches!(g.status.as_deref(), Some("cancelled" | "entered-in-error")) {
            shown.insert(key);
            continue;
        }
        let period = g.effective_period.as_ref();
        let mut dates: Vec<&str> = [
            g.effective_date_time.as_deref(),
            g.effective_instant.as_deref(),
            g.issued.as_deref(),
            period.and_then(|p| p.start.as_deref()),
            period.and_then(|p| p.end.as_deref()),
        ]
        .into_iter()
        .flatten()
        .collect();
        // The arrival only dates a result with no clinical date (as on the page): an import
        // of years of results arrives in one day.
        if dates.is_empty() {
            dates.extend(g.meta.as_ref().and_then(|m| m.last_updated.as_deref()));
        }
        // A partial date ("2019-05") may be the one the page goes by: not judged here.
        let days: Vec<&str> = dates.iter().filter_map(|d| d.get(..10)).collect();
        if days.len() != dates.len() {
            shown.insert(key);
            continue;
        }
        let (Some(lo), Some(hi)) = (days.iter().min(), days.iter().max()) else {
            shown.insert(key);
            continue;
        };
        let (lo, hi) = ((*lo).to_owned(), (*hi).to_owned());
        // The code as written: the finest grouping there is, and no `Value` to build.
        let test = g.code.map(RawValue::get).unwrap_or_default();
        groups.entry(test).or_default().push((key, lo, hi, g));
    }
    for (_, mut list) in groups {
        let threshold = if list.len() <= RESULTS_SHOWN_PER_TEST {
            None
        } else {
            list.sort_by(|a, b| b.1.cmp(&a.1));
            // Not a day: keep them all.
            Some(
                list.get(RESULTS_SHOWN_PER_TEST - 1)
                    .and_then(|(_, lo, _, _)| day_before(lo))
                    .unwrap_or_default(),
            )
        };
        for (key, _, hi, g) in list {
            let kept = threshold.as_deref().is_none_or(|t| hi.as_str() >= t);
            // Left out, it stands in with its source and arrival (for each source's
            // freshness), its test and status (so the page still says how many results of the
            // test there are) — unless it has no `meta` to say where it came from.
            match (kept, g.meta) {
                (false, Some(meta)) => {
                    stand_ins.add(ResourceType::Observation, meta, Some((g.code, g.status)));
                }
                _ => {
                    shown.insert(key);
                }
            }
        }
    }
    shown
}

/// The day before `YYYY-MM-DD`, in the same form; `None` if it is not such a day.
fn day_before(day: &str) -> Option<String> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let d = time::Date::parse(day, &format).ok()?.previous_day()?;
    Some(format!(
        "{:04}-{:02}-{:02}",
        d.year(),
        u8::from(d.month()),
        d.day()
    ))
}

/// What [`results_shown`] reads of an Observation: [`Glance`]'s dates plus the test and the
/// status (`code` as its raw JSON text, parsed only for a stand-in).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResultGlance<'a> {
    #[serde(borrow)]
    code: Option<&'a RawValue>,
    #[serde(borrow)]
    status: Option<Cow<'a, str>>,
    #[serde(borrow)]
    meta: Option<GlanceMeta<'a>>,
    #[serde(borrow)]
    effective_date_time: Option<Cow<'a, str>>,
    #[serde(borrow)]
    effective_instant: Option<Cow<'a, str>>,
    #[serde(borrow)]
    effective_period: Option<GlancePeriod<'a>>,
    #[serde(borrow)]
    issued: Option<Cow<'a, str>>,
}

/// The few fields of an Observation that [`parse_for`] looks at, read without building the
/// rest (serde skips it).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Glance<'a> {
    #[serde(borrow)]
    meta: Option<GlanceMeta<'a>>,
    #[serde(borrow)]
    effective_date_time: Option<Cow<'a, str>>,
    #[serde(borrow)]
    effective_instant: Option<Cow<'a, str>>,
    #[serde(borrow)]
    effective_period: Option<GlancePeriod<'a>>,
    #[serde(borrow)]
    issued: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GlanceMeta<'a> {
    #[serde(borrow)]
    last_updated: Option<Cow<'a, str>>,
    /// Source tags are what says where it came from; kept as written.
    #[serde(borrow, default)]
    tag: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
struct GlancePeriod<'a> {
    #[serde(borrow)]
    start: Option<Cow<'a, str>>,
    #[serde(borrow)]
    end: Option<Cow<'a, str>>,
}

/// Whether the principal sees this person only through an emergency-access grant, and if so
/// until when (µs): the same visibility without grants must not see them.
async fn emergency_until(
    state: &AppState,
    access: &Access,
    id: &LogicalId,
) -> Result<Option<i64>, PageError> {
    let Ok(Visibility::Scoped(scope)) = access.visibility.as_ref() else {
        return Ok(None);
    };
    let mut without = scope.clone();
    without.principal_key = String::new();
    match state
        .store
        .read(ResourceType::Patient, id, &Visibility::Scoped(without))
        .await
    {
        Ok(_) => return Ok(None),
        Err(StoreError::NotFound | StoreError::Gone(_)) => {}
        Err(e) => return Err(e.into()),
    }
    // The grant's time is its audit entry's (they commit together).
    let length = state.settings.policy.break_glass_micros();
    let filter = AuditFilter {
        patient_id: Some(id.as_str().to_owned()),
        agent_id: Some(agent_id(access)),
        action: Some(AuditAction::BreakGlass),
        outcome: Some(AuditOutcome::Allowed),
        since: Some(access.now - length),
        ..AuditFilter::default()
    };
    let page = state.store.audit_search(&filter, 1, None).await?;
    Ok(Some(
        page.items
            .first()
            .map_or(access.now, |e| e.record.time + length),
    ))
}

fn agent_id(access: &Access) -> String {
    match &access.principal.id {
        carerecord_access::PrincipalId::User(u) | carerecord_access::PrincipalId::System(u) => {
            u.clone()
        }
    }
}

/// ODS code → organisation name for the sources of `resources`, read in one search.
async fn organisations(
    state: &AppState,
    access: &Access,
    resources: &[StoredResource],
    bodies: &[Value],
) -> Result<HashMap<String, String>, PageError> {
    let mut codes: Vec<String> = bodies
        .iter()
        .filter_map(|b| b["meta"]["tag"].as_array())
        .flatten()
        .filter(|t| t["system"] == SOURCE_ORGANISATION_TAG)
        .filter_map(|t| t["code"].as_str().map(str::to_owned))
        .collect();
    codes.sort();
    codes.dedup();
    let mut out = HashMap::new();
    for r in resources
        .iter()
        .filter(|r| r.resource_type == ResourceType::Organization)
    {
        add_org(&mut out, &r.body);
    }
    codes.retain(|c| !out.contains_key(c));
    if codes.is_empty() {
        return Ok(out);
    }
    let value = codes
        .iter()
        .map(|c| format!("{}|{c}", carerecord_identity::ODS_SYSTEM))
        .collect::<Vec<_>>()
        .join(",");
    let q = parse(
        ResourceType::Organization,
        &[("identifier".to_owned(), value)],
        Handling::Strict,
        "",
    )
    .map_err(|e| PageError::Internal(format!("organisations query: {e:?}")))?;
    let found = state
        .store
        .search(&q, state.settings.max_page_size, access.vis()?)
        .await?;
    for r in &found.matches {
        add_org(&mut out, &r.body);
    }
    Ok(out)
}

/// When each organisation's HL7 v2 feed last delivered a message (one query over the message
/// log), so that "may be out of date" says whether the feed is alive, not how long ago this
/// person last had news. Nothing personal: the times are of whole feeds.
async fn feeds(state: &AppState) -> Result<HashMap<String, time::OffsetDateTime>, PageError> {
    Ok(ingest::feeds(state.store.as_ref())
        .await?
        .into_iter()
        .filter_map(|f| Some((f.ods, rec_now(f.last_received?))))
        .collect())
}

fn add_org(out: &mut HashMap<String, String>, body: &str) {
    let Ok(v) = serde_json::from_str::<Value>(body) else {
        return;
    };
    let name = v["name"].as_str().unwrap_or_default();
    for i in v["identifier"].as_array().into_iter().flatten() {
        if i["system"] == carerecord_identity::ODS_SYSTEM
            && let Some(code) = i["value"].as_str()
        {
            out.insert(code.to_owned(), name.to_owned());
        }
    }
}

/// A refused look is audited (naming the person, for their access report) and answered
/// with the same words whether or not the person exists.
pub async fn refuse(
    state: &AppState,
    staff: &Staff,
    id: &str,
    action: AuditAction,
) -> Result<Response, PageError> {
    audit::write(
        state,
        &staff.access,
        staff.client.clone(),
        audit::View {
            action,
            outcome: AuditOutcome::Denied,
            rule: Denial::NotInCare.rule(),
            resources: &[],
            patients: vec![id.to_owned()],
            emergency: false,
        },
    )
    .await?;
    Err(PageError::Forbidden(Denial::NotInCare.message()))
}

async fn show(
    state: &AppState,
    staff: &Staff,
    id: &str,
    section: Section,
) -> Result<Response, PageError> {
    let access = &staff.access;
    // The role's own refusal (no clinical view, training) comes first and names no one.
    access.vis()?;
    let Ok(lid) = LogicalId::parse(id) else {
        return Err(PageError::NotFound);
    };
    let loaded = match load(state, access, &lid).await {
        Ok(l) => l,
        Err(PageError::NotFound) => return refuse(state, staff, id, AuditAction::Read).await,
        Err(e) => return Err(e),
    };
    let emergency = emergency_until(state, access, &lid).await?;
    let view = access.principal.role.view();
    let patient: Value = serde_json::from_str(&loaded.patient.body).unwrap_or_default();
    // Parsing a body into a `Value` (and freeing it) is most of what a long record costs, so
    // only what the section shows is parsed; of the rest only the source is read.
    let cutoff = summary_results_cutoff(access.now);
    let mut stand_ins = StandIns::default();
    // The results page's selection and its stand-ins come from one glance at each result.
    let shown = match section {
        Section::Discharge => referenced_by_compositions(&loaded.resources),
        Section::Results => results_shown(&loaded.resources, &mut stand_ins),
        _ => HashSet::new(),
    };
    let mut bodies: Vec<Value> = Vec::new();
    for r in &loaded.resources {
        if section == Section::Results && r.resource_type == ResourceType::Observation {
            // Already sorted: parsed whole, or standing in.
            if shown.contains(&format!("Observation/{}", r.id)) {
                bodies.extend(serde_json::from_str::<Value>(&r.body).ok());
            }
            continue;
        }
        match parse_for(section, r, &cutoff, &shown) {
            Parse::Whole => bodies.extend(serde_json::from_str::<Value>(&r.body).ok()),
            Parse::SourceOnly(meta) => stand_ins.add(r.resource_type, meta, None),
        }
    }
    let glanced = stand_ins.into_unparsed();
    let orgs = organisations(state, access, &loaded.resources, &bodies).await?;
    let feeds = feeds(state).await?;
    let record = RecordView::build_for(
        RecordInput {
            patient: &patient,
            resources: &bodies,
            organisations: &orgs,
            feeds: &feeds,
            now: rec_now(access.now),
            view,
            withheld: loaded.withheld,
            sources_only: &glanced,
        },
        &[section],
    );
    drop(glanced);
    drop(bodies);
    let available = section.available_to(view);
    let patient_row = loaded.patient;
    let mut read = Vec::with_capacity(loaded.resources.len() + 1);
    read.push(patient_row);
    if available {
        read.extend(loaded.resources);
    }
    audit::write(
        state,
        access,
        staff.client.clone(),
        audit::View {
            action: AuditAction::Everything,
            outcome: AuditOutcome::Allowed,
            rule: if emergency.is_some() {
                "break-glass"
            } else {
                "allowed"
            },
            resources: &read,
            patients: Vec::new(),
            emergency: emergency.is_some(),
        },
    )
    .await?;
    let mut header = record.header().clone();
    if header.name.is_empty() || header.name == lid.as_str() {
        header.name = person::name(&patient);
    }
    let sections = Section::all()
        .iter()
        .map(|s| SectionLink {
            href: if *s == Section::Summary {
                format!("/residents/{id}")
            } else {
                format!("/residents/{id}/{}", s.slug())
            },
            title: s.title(),
            current: *s == section,
            available: s.available_to(view),
        })
        .collect();
    let unavailable = Section::all()
        .iter()
        .filter(|s| !s.available_to(view))
        .map(|s| (s.title(), s.unavailable_reason()))
        .collect();
    let apps = state
        .identity
        .launchable_apps()
        .await
        .map_err(|e| PageError::Internal(e.to_string()))?
        .into_iter()
        .filter_map(|a| Some((a.client_id, a.name, a.launch_url?)))
        .collect::<Vec<_>>();
    let launch_urls: Vec<String> = apps.iter().map(|(_, _, u)| u.clone()).collect();
    let apps = apps.into_iter().map(|(id, name, _)| (id, name)).collect();
    let mut resp = render(
        StatusCode::OK,
        &RecordPage {
            apps,
            header_id: id.to_owned(),
            chrome: Chrome::signed_in(
                format!("{} – {}", section.title(), header.name),
                &access.principal,
                "/",
            ),
            section_title: section.title(),
            body: if available {
                record.render(section)
            } else {
                String::new()
            },
            available,
            reason: section.unavailable_reason(),
            emergency_until: emergency.map(super::when),
            unavailable,
            sections,
            header,
        },
    )?;
    super::authorize::allow_form_to(&mut resp, launch_urls.iter().map(String::as_str));
    Ok(resp)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use carerecord_fhir::VersionId;

    fn row(rt: ResourceType, id: &str, body: Value) -> StoredResource {
        StoredResource {
            resource_type: rt,
            id: LogicalId::parse(id).unwrap(),
            version_id: VersionId::FIRST,
            last_updated: 0,
            deleted: false,
            body: body.to_string(),
            patient_id: Some("p1".into()),
        }
    }

    fn observation(id: &str) -> StoredResource {
        row(
            ResourceType::Observation,
            id,
            serde_json::json!({"resourceType": "Observation", "id": id, "status": "final",
                "effectiveDateTime": "2020-01-01",
                "meta": {"tag": [{"system": "https://fhir.carerecord.example/CodeSystem/source-organisation", "code": "LAB1"}]}}),
        )
    }

    fn whole(p: &Parse) -> bool {
        matches!(p, Parse::Whole)
    }

    #[test]
    fn each_page_parses_only_the_observations_it_shows() {
        let summary = row(
            ResourceType::Composition,
            "c1",
            serde_json::json!({"resourceType": "Composition", "section": [
                {"entry": [{"reference": "Observation/o1"}]},
                {"section": [{"entry": [{"reference": "https://h.example/fhir/Observation/o2/_history/3"}]}]}]}),
        );
        let rows = vec![
            summary,
            observation("o1"),
            observation("o2"),
            observation("o3"),
        ];
        let listed = referenced_by_compositions(&rows);
        assert!(listed.contains("Observation/o1") && listed.contains("Observation/o2"));
        let cutoff = "2026-01-01";
        let parsed = |section, r: &StoredResource| whole(&parse_for(section, r, cutoff, &listed));
        // The discharge page: what a summary lists; the results page: every result; the
        // reports page (imaging, by conclusion) and the summary (old results): none.
        assert!(parsed(Section::Discharge, &rows[1]));
        assert!(parsed(Section::Discharge, &rows[2]));
        assert!(!parsed(Section::Discharge, &rows[3]));
        let results = results_shown(&rows, &mut StandIns::default());
        assert!(
            rows[1..]
                .iter()
                .all(|r| whole(&parse_for(Section::Results, r, cutoff, &results))),
            "a few results: all of them"
        );
        assert!(rows[1..].iter().all(|r| !parsed(Section::Reports, r)));
        assert!(!parsed(Section::Summary, &rows[3]));
        assert!(parsed(Section::Reports, &rows[0]), "not an Observation");
    }

    #[test]
    fn alike_resources_stand_in_once_with_their_latest_arrival() {
        let from = |id: &str, ods: &str, when: &str| {
            row(
                ResourceType::Observation,
                id,
                serde_json::json!({"resourceType": "Observation", "id": id, "status": "final",
                    "effectiveDateTime": "2020-01-01",
                    "meta": {"lastUpdated": when, "tag": [{"system": SOURCE_ORGANISATION_TAG, "code": ods}]}}),
            )
        };
        let rows = [
            from("a1", "LAB1", "2026-01-01T10:00:00Z"),
            // The latest of LAB1's, though not the last written nor the greatest text.
            from("a2", "LAB1", "2026-03-01T00:30:00+01:00"),
            from("a3", "LAB1", "2026-03-01T00:40:00+02:00"),
            from("b1", "LAB2", "2025-06-01T10:00:00Z"),
        ];
        let mut stand_ins = StandIns::default();
        for r in &rows {
            match parse_for(Section::Medicines, r, "2026-01-01", &HashSet::new()) {
                Parse::SourceOnly(meta) => stand_ins.add(r.resource_type, meta, None),
                Parse::Whole => panic!("the medicines page parsed {}", r.id),
            }
        }
        let mut unparsed = stand_ins.into_unparsed();
        unparsed.sort_by_key(|u| u.count);
        assert_eq!(unparsed.len(), 2, "{unparsed:?}");
        assert_eq!(unparsed[0].count, 1);
        assert_eq!(unparsed[0].value["meta"]["tag"][0]["code"], "LAB2");
        assert_eq!(unparsed[1].count, 3);
        assert_eq!(unparsed[1].value["meta"]["tag"][0]["code"], "LAB1");
        assert_eq!(
            unparsed[1].value["meta"]["lastUpdated"],
            "2026-03-01T00:30:00+01:00"
        );
        // Not results: nothing for the results section to count.
        assert!(unparsed.iter().all(|u| u.value.get("code").is_none()));
    }

    fn result(id: &str, code: &str, when: &str) -> StoredResource {
        row(
            ResourceType::Observation,
            id,
            serde_json::json!({"resourceType": "Observation", "id": id, "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
                "effectiveDateTime": when,
                "meta": {"lastUpdated": "2026-12-02T10:00:00Z"}}),
        )
    }

    #[test]
    fn the_results_page_parses_each_tests_newest_and_whatever_it_cannot_judge() {
        let n = RESULTS_SHOWN_PER_TEST;
        // 2n daily potassium results (newest last), a handful of sodium, and odd ones.
        let day = |k: usize| {
            let d = time::Date::from_calendar_date(2020, time::Month::January, 1).unwrap()
                + time::Duration::days(k as i64);
            format!("{}T09:00:00Z", d)
        };
        let mut rows: Vec<StoredResource> = (0..2 * n)
            .map(|k| result(&format!("k{k}"), "2823-3", &day(k)))
            .collect();
        rows.extend((0..5).map(|k| result(&format!("na{k}"), "2951-2", &day(k))));
        rows.push(result("partial", "2823-3", "2019-05"));
        let mut cancelled = result("cancelled", "2823-3", &day(0));
        cancelled.body = cancelled.body.replace("\"final\"", "\"cancelled\"");
        rows.push(cancelled);
        let mut stand_ins = StandIns::default();
        let shown = results_shown(&rows, &mut stand_ins);
        let stand_ins = stand_ins.into_unparsed();
        let has = |id: &str| shown.contains(&format!("Observation/{id}"));
        // Every one of the newest n potassium results, and none much older.
        assert!((n..2 * n).all(|k| has(&format!("k{k}"))));
        assert!(!has("k0") && !has(&format!("k{}", n - 3)));
        assert!(shown.len() < 2 * n, "older results are left unparsed");
        // A test with few results: all of them. What cannot be judged: kept.
        assert!((0..5).all(|k| has(&format!("na{k}"))));
        assert!(has("partial") && has("cancelled"));
        // Every result is either parsed or stands in with its test (so it is still counted):
        // the older potassium results, alike, all by one stand-in.
        let standing: usize = stand_ins.iter().map(|u| u.count).sum();
        assert_eq!(shown.len() + standing, rows.len());
        assert_eq!(stand_ins.len(), 1);
        let v = &stand_ins[0].value;
        assert!(v["code"]["coding"][0]["code"] == "2823-3" && v["status"] == "final");
        assert_eq!(day_before("2021-03-01").as_deref(), Some("2021-02-28"));
        assert_eq!(day_before("not a day"), None);
    }
}
