//! `/`: My residents — the people living at the signed-in person's care home now (an active
//! EpisodeOfCare managed by it), read through the store with the person's visibility, with
//! their latest events as badges, most recently changed first, and a search within the list.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use carerecord_access::Role;
use carerecord_fhir::ResourceType;
use carerecord_search::query::{Handling, parse};
use carerecord_server::AppState;
use carerecord_store::{AuditAction, AuditOutcome, StoredResource};
use serde::Deserialize;
use serde_json::Value;

use crate::page::{Chrome, PageError, render};
use crate::record::{self as rec, BadgeKind};
use crate::session::Staff;
use crate::{audit, person};

/// How far back the list looks for events to badge.
const RECENT_DAYS: i64 = 30;
const MICROS_PER_DAY: i64 = 86_400 * 1_000_000;

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
    pub changed: i64,
    pub changed_text: String,
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
    let pairs = [
        (
            "organization".to_owned(),
            format!("Organization/{}", access.principal.organisation_id),
        ),
        ("status".to_owned(), "active".to_owned()),
        ("_include".to_owned(), "EpisodeOfCare:patient".to_owned()),
    ];
    let query = parse(ResourceType::EpisodeOfCare, &pairs, Handling::Strict, "")
        .map_err(|e| PageError::Internal(format!("residents query: {e:?}")))?;
    let out = state
        .store
        .search(&query, state.settings.max_page_size, vis)
        .await?;
    let patients: Vec<StoredResource> = out
        .included
        .into_iter()
        .filter(|r| r.resource_type == ResourceType::Patient && !r.deleted)
        .collect();
    let now_dt = rec_now(access.now);
    let since = access.now - RECENT_DAYS * MICROS_PER_DAY;
    // Concurrently: the store's connection pool bounds how many run at once.
    let recents = futures::future::join_all(patients.iter().map(|p| {
        let store = state.store.clone();
        let vis = vis.clone();
        let id = p.id.clone();
        async move {
            store
                .everything(&id, Some(since), &[], 500, None, &vis)
                .await
        }
    }))
    .await;
    let mut rows = Vec::with_capacity(patients.len());
    let mut shown = Vec::new();
    for (p, recent) in patients.iter().zip(recents) {
        let body: Value = serde_json::from_str(&p.body).unwrap_or_default();
        let recent = recent?;
        let changed = recent
            .items
            .iter()
            .map(|r| r.last_updated)
            .chain(std::iter::once(p.last_updated))
            .max()
            .unwrap_or(p.last_updated);
        let values: Vec<Value> = recent
            .items
            .iter()
            .filter(|r| r.resource_type != ResourceType::Patient)
            .filter_map(|r| serde_json::from_str(&r.body).ok())
            .collect();
        let row = Row {
            id: p.id.as_str().to_owned(),
            name: person::name(&body),
            born: person::born(&body).unwrap_or_else(|| "Not recorded".into()),
            nhs_number: person::nhs_number(&body).unwrap_or_else(|| "Not recorded".into()),
            gp: person::gp(&body).unwrap_or_else(|| "Not recorded".into()),
            badges: rec::badges(&values, now_dt)
                .into_iter()
                .map(|b| BadgeRow {
                    colour: colour(b.kind),
                    text: b.text,
                })
                .collect(),
            changed,
            changed_text: super::when(changed),
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

/// µs since the epoch as the record crate's clock.
pub fn rec_now(micros: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}
