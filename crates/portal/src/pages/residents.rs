//! `/`: My residents — the people living at the signed-in person's care home now (an active
//! EpisodeOfCare managed by it), read through the store with the person's visibility, with
//! their latest events as badges, most recently changed first, and a search within the list.

use std::collections::{HashMap, HashSet};

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use carerecord_access::{Role, Visibility};
use carerecord_fhir::{LogicalId, ResourceType};
use carerecord_search::query::{Handling, Total, parse};
use carerecord_server::AppState;
use carerecord_server::access::Access;
use carerecord_server::audit::agent;
use carerecord_store::{AuditAction, AuditFilter, AuditOutcome, HistoryQuery, StoredResource};
use serde::Deserialize;
use serde_json::Value;

use crate::page::{Chrome, PageError, render};
use crate::record::{self as rec, BadgeKind};
use crate::session::Staff;
use crate::{audit, person};

/// People named in one badge search (`patient=` a list): a bound on the statement's size.
const PEOPLE_PER_QUERY: usize = 200;
/// How far back a viewer's looks at records matter: as long as a care plan change is news.
const LOOK_WINDOW_DAYS: i64 = 8;
const MICROS_PER_DAY: i64 = 86_400 * 1_000_000;
/// Versions of a changed care plan read to find its last change of content: a plan sent
/// again unchanged more often than this in a week shows as changed once more.
const PLAN_VERSIONS: u32 = 10;

pub struct BadgeRow {
    pub text: String,
    pub colour: &'static str,
}

pub struct Row {
    pub id: String,
    pub name: String,
    pub born: String,
    pub nhs_number: String,
    pub gp: String,
    pub badges: Vec<BadgeRow>,
    /// When the newest event a badge is about happened (µs), if any.
    pub changed: Option<i64>,
    pub changed_text: Option<String>,
}

#[derive(Template)]
#[template(path = "residents.html")]
struct ResidentsPage {
    chrome: Chrome,
    q: String,
    rows: Vec<Row>,
    total: usize,
    /// A care home manager records people moving in and out (`pages::moves`).
    records_moves: bool,
}

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    q: String,
}

fn colour(kind: BadgeKind) -> &'static str {
    match kind {
        BadgeKind::InHospital => "nhsuk-tag--red",
        BadgeKind::Discharged => "nhsuk-tag--orange",
        BadgeKind::NewResults => "nhsuk-tag--blue",
        BadgeKind::CarePlanUpdated => "nhsuk-tag--green",
    }
}

/// Whether a row matches the search box: part of the name, or of the NHS number (spaces
/// ignored).
fn matches(row: &Row, q: &str) -> bool {
    let q = q.trim().to_lowercase();
    if q.is_empty() {
        return true;
    }
    let digits: String = q.chars().filter(|c| !c.is_whitespace()).collect();
    row.name.to_lowercase().contains(&q)
        || (!digits.is_empty()
            && digits.chars().all(|c| c.is_ascii_digit())
            && row.nhs_number.replace(' ', "").contains(&digits))
}

pub async fn handler(
    State(state): State<AppState>,
    staff: Staff,
    Query(lq): Query<ListQuery>,
) -> Result<Response, PageError> {
    let access = &staff.access;
    if access.principal.role == Role::PrivacyOfficer {
        return Ok(Redirect::to("/privacy").into_response());
    }
    let vis = access.vis()?;
    let patients = residents(&state, access.principal.organisation_id.as_str(), vis).await?;
    let now_dt = rec_now(access.now);
    let mut recent = events(&state, &patients, now_dt, vis).await?;
    let looks = last_looks(&state, access).await?;
    let mut rows = Vec::with_capacity(patients.len());
    let mut shown = Vec::new();
    for p in &patients {
        let body: Value = serde_json::from_str(&p.body).unwrap_or_default();
        let values = recent.remove(p.id.as_str()).unwrap_or_default();
        let look = looks.get(p.id.as_str()).copied().map(rec_now);
        let badges = rec::badges_since(&values, now_dt, look);
        // What changed lately is the newest event a badge is about (a record loaded or sent
        // again today has not changed for that alone).
        let changed = badges
            .iter()
            .filter_map(|b| b.when)
            .max()
            .map(|t| i64::try_from(t.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX));
        let row = Row {
            id: p.id.as_str().to_owned(),
            name: person::name(&body),
            born: person::born(&body).unwrap_or_else(|| "Not recorded".into()),
            nhs_number: person::nhs_number(&body).unwrap_or_else(|| "Not recorded".into()),
            gp: person::gp(&body).unwrap_or_else(|| "Not recorded".into()),
            badges: badges
                .into_iter()
                .map(|b| BadgeRow {
                    colour: colour(b.kind),
                    text: b.text,
                })
                .collect(),
            changed_text: changed.map(super::when),
            changed,
        };
        if matches(&row, &lq.q) {
            shown.push(p.clone());
            rows.push(row);
        }
    }
    rows.sort_by(|a, b| b.changed.cmp(&a.changed).then(a.name.cmp(&b.name)));
    audit::write(
        &state,
        access,
        staff.client.clone(),
        audit::View {
            action: AuditAction::Search,
            outcome: AuditOutcome::Allowed,
            rule: "allowed",
            resources: &shown,
            patients: Vec::new(),
            emergency: false,
        },
    )
    .await?;
    render(
        StatusCode::OK,
        &ResidentsPage {
            chrome: Chrome::signed_in("My residents", &access.principal, "/"),
            q: lq.q.trim().to_owned(),
            total: patients.len(),
            records_moves: access.principal.role == Role::CareHomeManager,
            rows,
        },
    )
}

/// The people living at care home `org_id` now (an active EpisodeOfCare it manages), as the
/// principal may see them: one search, paged through by its cursor when the home is larger
/// than a page.
async fn residents(
    state: &AppState,
    org_id: &str,
    vis: &Visibility,
) -> Result<Vec<StoredResource>, PageError> {
    let pairs = [
        ("organization".to_owned(), format!("Organization/{org_id}")),
        ("status".to_owned(), "active".to_owned()),
        ("_include".to_owned(), "EpisodeOfCare:patient".to_owned()),
    ];
    let mut query = parse(ResourceType::EpisodeOfCare, &pairs, Handling::Strict, "")
        .map_err(|e| PageError::Internal(format!("residents query: {e:?}")))?;
    query.total = Total::None;
    let mut patients: Vec<StoredResource> = Vec::new();
    let mut seen = HashSet::new();
    loop {
        let out = state
            .store
            .search(&query, state.settings.max_page_size, vis)
            .await?;
        patients.extend(out.included.into_iter().filter(|r| {
            r.resource_type == ResourceType::Patient
                && !r.deleted
                && seen.insert(r.id.as_str().to_owned())
        }));
        match out.next_cursor {
            Some(c) => query.cursor = Some(c),
            None => break,
        }
    }
    Ok(patients)
}

/// What the badges of `patients` are made from, by person: the record crate's searches
/// ([`rec::badge_searches`]), each run for many people at once (`patient=` a list), so the
/// page costs a fixed number of queries — one per search and chunk of people, more only
/// when the matches fill more than a page — not one per resident.
async fn events(
    state: &AppState,
    patients: &[StoredResource],
    now: time::OffsetDateTime,
    vis: &Visibility,
) -> Result<HashMap<String, Vec<Value>>, PageError> {
    let mut out: HashMap<String, Vec<Value>> = HashMap::new();
    if patients.is_empty() {
        return Ok(out);
    }
    let searches = rec::badge_searches(now);
    for chunk in patients.chunks(PEOPLE_PER_QUERY) {
        let people = chunk
            .iter()
            .map(|p| format!("Patient/{}", p.id.as_str()))
            .collect::<Vec<_>>()
            .join(",");
        for s in &searches {
            let mut pairs = s.params.clone();
            pairs.push(("patient".to_owned(), people.clone()));
            let mut query = parse(s.resource_type, &pairs, Handling::Strict, "")
                .map_err(|e| PageError::Internal(format!("badge query: {e:?}")))?;
            query.total = Total::None;
            loop {
                let page = state
                    .store
                    .search(&query, state.settings.max_page_size, vis)
                    .await?;
                for r in page.matches {
                    if let (Some(pid), Ok(v)) =
                        (r.patient_id, serde_json::from_str::<Value>(&r.body))
                    {
                        out.entry(pid).or_default().push(v);
                    }
                }
                match page.next_cursor {
                    Some(c) => query.cursor = Some(c),
                    None => break,
                }
            }
        }
    }
    earlier_plan_versions(state, &mut out, vis).await?;
    Ok(out)
}

/// Adds the earlier versions of every CarePlan found that has them, so that the badges can
/// tell a changed plan from one sent again as it was (`rec::care_plan_changed`). One history
/// read per plan with a second version among those found — plans written or changed in the
/// last week — not per resident.
async fn earlier_plan_versions(
    state: &AppState,
    events: &mut HashMap<String, Vec<Value>>,
    vis: &Visibility,
) -> Result<(), PageError> {
    for values in events.values_mut() {
        let later: Vec<LogicalId> = values
            .iter()
            .filter(|v| v["resourceType"] == "CarePlan")
            .filter(|v| {
                v["meta"]["versionId"]
                    .as_str()
                    .and_then(|n| n.parse::<u64>().ok())
                    .is_some_and(|n| n > 1)
            })
            .filter_map(|v| v["id"].as_str().and_then(|id| LogicalId::parse(id).ok()))
            .collect();
        for id in later {
            let query = HistoryQuery {
                since: None,
                count: PLAN_VERSIONS,
                cursor: None,
            };
            let page = state
                .store
                .history(Some(ResourceType::CarePlan), Some(&id), &query, vis)
                .await?;
            values.extend(
                page.items
                    .iter()
                    .filter(|r| !r.deleted)
                    .filter_map(|r| serde_json::from_str::<Value>(&r.body).ok()),
            );
        }
    }
    Ok(())
}

/// When the signed-in person last opened each person's record (µs), within the window a
/// change stays news: from their own entries in the audit trail (every record page view
/// writes one), one grouped query that reads only each entry's time and people.
async fn last_looks(state: &AppState, access: &Access) -> Result<HashMap<String, i64>, PageError> {
    let filter = AuditFilter {
        agent_id: Some(agent(&access.principal).id),
        action: Some(AuditAction::Everything),
        outcome: Some(AuditOutcome::Allowed),
        since: Some(access.now - LOOK_WINDOW_DAYS * MICROS_PER_DAY),
        ..AuditFilter::default()
    };
    Ok(state
        .store
        .audit_last_looks(&filter)
        .await?
        .into_iter()
        .collect())
}

/// µs since the epoch as the record crate's clock.
pub fn rec_now(micros: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}
