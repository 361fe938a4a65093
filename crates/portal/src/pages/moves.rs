//! Keeping the resident list true, for a care home manager: "a resident moved in" (by NHS
//! number and date of birth), "moved out" (with a date), a confirmation with "Undo", and the
//! home's recent moves, each with "Undo". Every change is the server's one residency operation
//! (`carerecord_server::residency`), written and audited in one transaction with the portal as
//! the channel. Nothing names a person before their stay exists: a move-in that does not match
//! says only that no person has this NHS number and date of birth.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use carerecord_access::Role;
use carerecord_access::residency::{MoveIn, Refusal, format_date};
use carerecord_fhir::{LogicalId, NhsNumber, ResourceType};
use carerecord_search::query::{Handling, parse};
use carerecord_server::AppState;
use carerecord_server::residency::{self, Actor, Change, ResidencyError};
use carerecord_store::{AuditAction, AuditOutcome, Channel, StoredResource};
use serde::Deserialize;
use serde_json::Value;
use time::Date;

use super::FieldError;
use crate::page::{Chrome, PageError, render};
use crate::session::Staff;
use crate::{audit, person};

/// How far back "recent moves" looks.
const RECENT_DAYS: i64 = 14;
const MICROS_PER_DAY: i64 = 86_400 * 1_000_000;

/// Only a care home manager records moves in the portal (a home's record system uses the API).
fn manager(staff: &Staff) -> Result<(), PageError> {
    staff.access.vis()?;
    if staff.access.principal.role != Role::CareHomeManager {
        return Err(PageError::Forbidden(
            "Only your care home's manager can record people moving in or out.".into(),
        ));
    }
    Ok(())
}

/// A day, month and year typed into an NHS.UK date input.
#[derive(Deserialize, Default, Clone)]
pub struct DateFields {
    #[serde(default)]
    day: String,
    #[serde(default)]
    month: String,
    #[serde(default)]
    year: String,
}

impl DateFields {
    fn of(d: Date) -> Self {
        DateFields {
            day: d.day().to_string(),
            month: u8::from(d.month()).to_string(),
            year: d.year().to_string(),
        }
    }

    fn date(&self) -> Option<Date> {
        let d: u8 = self.day.trim().parse().ok()?;
        let m: u8 = self.month.trim().parse().ok()?;
        let y: i32 = self.year.trim().parse().ok()?;
        if !(1850..=9999).contains(&y) {
            return None;
        }
        Date::from_calendar_date(y, time::Month::try_from(m).ok()?, d).ok()
    }
}

/// `2 December 2026`.
fn long_date(d: Date) -> String {
    format!("{} {} {}", d.day(), d.month(), d.year())
}

fn today(staff: &Staff) -> Date {
    residency::today(staff.access.now)
}

fn actor(staff: &Staff) -> Actor<'_> {
    Actor {
        access: &staff.access,
        channel: Channel::Portal,
        client: staff.client.clone(),
    }
}

/// Writes the audit entry of a refused change (who tried, and the rule), naming no one.
async fn audit_refusal(state: &AppState, staff: &Staff, r: &Refusal) -> Result<(), PageError> {
    let rule = match r {
        Refusal::Denied(d) => d.rule(),
        Refusal::NoSuchPerson | Refusal::InvalidNhsNumber => "residency-no-such-person",
        Refusal::Ambiguous => "residency-ambiguous-person",
        _ => "residency-refused",
    };
    audit::write(
        state,
        &staff.access,
        staff.client.clone(),
        audit::View {
            action: AuditAction::Update,
            outcome: AuditOutcome::Denied,
            rule,
            resources: &[],
            patients: Vec::new(),
            emergency: false,
        },
    )
    .await
}

// ---------------------------------------------------------------------------------------
// A resident moved in.

#[derive(Template)]
#[template(path = "moves_in.html")]
struct MoveInPage {
    chrome: Chrome,
    errors: Vec<FieldError>,
    nhs: String,
    born: DateFields,
    moved: DateFields,
}

impl MoveInPage {
    fn error(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|e| e.field == field)
            .map(|e| e.message.as_str())
    }
}

#[derive(Deserialize, Default)]
pub struct MoveInForm {
    #[serde(default)]
    nhs: String,
    #[serde(default, rename = "born-day")]
    born_day: String,
    #[serde(default, rename = "born-month")]
    born_month: String,
    #[serde(default, rename = "born-year")]
    born_year: String,
    #[serde(default, rename = "moved-day")]
    moved_day: String,
    #[serde(default, rename = "moved-month")]
    moved_month: String,
    #[serde(default, rename = "moved-year")]
    moved_year: String,
}

fn move_in_page(staff: &Staff, f: &MoveInForm, errors: Vec<FieldError>) -> MoveInPage {
    MoveInPage {
        chrome: Chrome::signed_in("A resident moved in", &staff.access.principal, "/"),
        errors,
        nhs: f.nhs.clone(),
        born: DateFields {
            day: f.born_day.clone(),
            month: f.born_month.clone(),
            year: f.born_year.clone(),
        },
        moved: DateFields {
            day: f.moved_day.clone(),
            month: f.moved_month.clone(),
            year: f.moved_year.clone(),
        },
    }
}

pub async fn move_in_form(staff: Staff) -> Result<Response, PageError> {
    manager(&staff)?;
    let t = DateFields::of(today(&staff));
    let f = MoveInForm {
        moved_day: t.day,
        moved_month: t.month,
        moved_year: t.year,
        ..MoveInForm::default()
    };
    render(StatusCode::OK, &move_in_page(&staff, &f, Vec::new()))
}

/// The field a refusal belongs to.
fn field_of(r: &Refusal) -> &'static str {
    match r {
        Refusal::InvalidNhsNumber | Refusal::NoSuchPerson | Refusal::Ambiguous => "nhs",
        Refusal::DateInFuture("date of birth") => "born-day",
        _ => "moved-day",
    }
}

pub async fn move_in_submit(
    State(state): State<AppState>,
    staff: Staff,
    Form(f): Form<MoveInForm>,
) -> Result<Response, PageError> {
    manager(&staff)?;
    let born = DateFields {
        day: f.born_day.clone(),
        month: f.born_month.clone(),
        year: f.born_year.clone(),
    }
    .date();
    let moved_fields = DateFields {
        day: f.moved_day.clone(),
        month: f.moved_month.clone(),
        year: f.moved_year.clone(),
    };
    let moved_blank = [&f.moved_day, &f.moved_month, &f.moved_year]
        .iter()
        .all(|s| s.trim().is_empty());
    let moved = moved_fields.date();
    let mut errors = Vec::new();
    if f.nhs.trim().is_empty() {
        errors.push(FieldError {
            field: "nhs",
            message: "Enter their NHS number".into(),
        });
    } else if NhsNumber::parse(&f.nhs.replace([' ', '-'], "")).is_err() {
        errors.push(FieldError {
            field: "nhs",
            message: Refusal::InvalidNhsNumber.message(),
        });
    }
    if born.is_none() {
        errors.push(FieldError {
            field: "born-day",
            message: "Enter a real date of birth, for example 27 3 1941".into(),
        });
    }
    if moved.is_none() && !moved_blank {
        errors.push(FieldError {
            field: "moved-day",
            message: "Enter a real date they moved in, for example 1 12 2026".into(),
        });
    }
    let m = match born {
        Some(born) if errors.is_empty() => MoveIn::new(&f.nhs, born, moved, today(&staff)),
        _ => Err(Vec::new()),
    };
    let m = match m {
        Ok(m) => m,
        Err(refusals) => {
            errors.extend(refusals.iter().map(|r| FieldError {
                field: field_of(r),
                message: r.message(),
            }));
            return render(StatusCode::BAD_REQUEST, &move_in_page(&staff, &f, errors));
        }
    };
    match residency::move_in(state.store.as_ref(), &actor(&staff), &m).await {
        Ok(rec) => {
            let did = if rec.change == Change::AlreadyResident {
                "already"
            } else {
                "in"
            };
            Ok(Redirect::to(&format!(
                "/moves/done/{}?did={did}",
                rec.episode.id.as_str()
            ))
            .into_response())
        }
        Err(ResidencyError::Refused(Refusal::Denied(d))) => {
            audit_refusal(&state, &staff, &Refusal::Denied(d)).await?;
            Err(PageError::Forbidden(d.message()))
        }
        Err(ResidencyError::Refused(r)) => {
            audit_refusal(&state, &staff, &r).await?;
            let errors = vec![FieldError {
                field: field_of(&r),
                message: r.message(),
            }];
            render(StatusCode::BAD_REQUEST, &move_in_page(&staff, &f, errors))
        }
        Err(ResidencyError::Api(e)) => Err(e.into()),
    }
}

// ---------------------------------------------------------------------------------------
// A resident moved out.

#[derive(Template)]
#[template(path = "moves_out.html")]
struct MoveOutPage {
    chrome: Chrome,
    errors: Vec<FieldError>,
    patient_id: String,
    name: String,
    nhs_number: String,
    since: String,
    moved: DateFields,
}

impl MoveOutPage {
    fn error(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|e| e.field == field)
            .map(|e| e.message.as_str())
    }
}

#[derive(Deserialize, Default)]
pub struct MoveOutForm {
    #[serde(default, rename = "moved-day")]
    moved_day: String,
    #[serde(default, rename = "moved-month")]
    moved_month: String,
    #[serde(default, rename = "moved-year")]
    moved_year: String,
}

/// The resident (as the manager may see them) and their current stay at the home.
async fn resident(
    state: &AppState,
    staff: &Staff,
    patient_id: &str,
) -> Result<(StoredResource, Value, StoredResource, Value), PageError> {
    let vis = staff.access.vis()?;
    let id = LogicalId::parse(patient_id).map_err(|_| PageError::NotFound)?;
    let patient = state
        .store
        .read(ResourceType::Patient, &id, vis)
        .await
        .map_err(|_| PageError::NotFound)?;
    let pairs = [
        ("patient".to_owned(), format!("Patient/{patient_id}")),
        (
            "organization".to_owned(),
            format!("Organization/{}", staff.access.principal.organisation_id),
        ),
        ("status".to_owned(), "active".to_owned()),
    ];
    let q = parse(ResourceType::EpisodeOfCare, &pairs, Handling::Strict, "")
        .map_err(|e| PageError::Internal(format!("moves query: {e:?}")))?;
    let out = state.store.search(&q, 2, vis).await?;
    let Some(stay) = out.matches.into_iter().find(|r| !r.deleted) else {
        return Err(PageError::BadRequest(
            "This person is not living at your care home according to the record.".into(),
        ));
    };
    let pb = serde_json::from_str(&patient.body).unwrap_or_default();
    let sb = serde_json::from_str(&stay.body).unwrap_or_default();
    Ok((patient, pb, stay, sb))
}

fn move_out_page(
    staff: &Staff,
    patient_id: &str,
    patient: &Value,
    stay: &Value,
    moved: DateFields,
    errors: Vec<FieldError>,
) -> MoveOutPage {
    MoveOutPage {
        chrome: Chrome::signed_in("A resident moved out", &staff.access.principal, "/"),
        errors,
        patient_id: patient_id.to_owned(),
        name: person::name(patient),
        nhs_number: person::nhs_number(patient).unwrap_or_else(|| "Not recorded".into()),
        since: stay
            .pointer("/period/start")
            .and_then(Value::as_str)
            .and_then(carerecord_access::residency::parse_date)
            .map(long_date)
            .unwrap_or_else(|| "Not recorded".into()),
        moved,
    }
}

async fn audit_read(
    state: &AppState,
    staff: &Staff,
    resources: &[StoredResource],
) -> Result<(), PageError> {
    audit::write(
        state,
        &staff.access,
        staff.client.clone(),
        audit::View {
            action: AuditAction::Read,
            outcome: AuditOutcome::Allowed,
            rule: "allowed",
            resources,
            patients: Vec::new(),
            emergency: false,
        },
    )
    .await
}

pub async fn move_out_form(
    State(state): State<AppState>,
    staff: Staff,
    Path(patient_id): Path<String>,
) -> Result<Response, PageError> {
    manager(&staff)?;
    let (p, pb, s, sb) = resident(&state, &staff, &patient_id).await?;
    audit_read(&state, &staff, &[p, s]).await?;
    let page = move_out_page(
        &staff,
        &patient_id,
        &pb,
        &sb,
        DateFields::of(today(&staff)),
        Vec::new(),
    );
    render(StatusCode::OK, &page)
}

pub async fn move_out_submit(
    State(state): State<AppState>,
    staff: Staff,
    Path(patient_id): Path<String>,
    Form(f): Form<MoveOutForm>,
) -> Result<Response, PageError> {
    manager(&staff)?;
    let (p, pb, s, sb) = resident(&state, &staff, &patient_id).await?;
    let fields = DateFields {
        day: f.moved_day,
        month: f.moved_month,
        year: f.moved_year,
    };
    let again = |message: String, p: StoredResource, s: StoredResource| {
        let state = state.clone();
        let staff = &staff;
        let fields = fields.clone();
        let (pb, sb) = (&pb, &sb);
        let patient_id = &patient_id;
        async move {
            audit_read(&state, staff, &[p, s]).await?;
            let errors = vec![FieldError {
                field: "moved-day",
                message,
            }];
            render(
                StatusCode::BAD_REQUEST,
                &move_out_page(staff, patient_id, pb, sb, fields, errors),
            )
        }
    };
    let Some(left) = fields.date() else {
        return again(
            "Enter a real date they moved out, for example 1 12 2026".into(),
            p,
            s,
        )
        .await;
    };
    match residency::move_out(state.store.as_ref(), &actor(&staff), s.id.as_str(), left).await {
        Ok(rec) => Ok(
            Redirect::to(&format!("/moves/done/{}?did=out", rec.episode.id.as_str()))
                .into_response(),
        ),
        Err(ResidencyError::Refused(Refusal::Denied(d))) => {
            audit_refusal(&state, &staff, &Refusal::Denied(d)).await?;
            Err(PageError::Forbidden(d.message()))
        }
        Err(ResidencyError::Refused(r)) => {
            audit_refusal(&state, &staff, &r).await?;
            again(r.message(), p, s).await
        }
        Err(ResidencyError::Api(e)) => Err(e.into()),
    }
}

// ---------------------------------------------------------------------------------------
// Confirmation, undo and recent moves.

#[derive(Template)]
#[template(path = "moves_done.html")]
struct DonePage {
    chrome: Chrome,
    title: String,
    body: String,
    episode_id: String,
    /// Which undo applies now, if any.
    undo: Option<&'static str>,
}

#[derive(Deserialize)]
pub struct DoneQuery {
    #[serde(default)]
    did: String,
}

/// Who an episode is about, in words the manager may see: the name when the record is
/// visible to them, else the NHS number the home itself recorded on the stay.
async fn who(state: &AppState, staff: &Staff, stay: &Value) -> Result<String, PageError> {
    let vis = staff.access.vis()?;
    if let Some(pid) = carerecord_access::residency::patient_id(stay)
        && let Ok(id) = LogicalId::parse(&pid)
        && let Ok(p) = state.store.read(ResourceType::Patient, &id, vis).await
        && let Ok(body) = serde_json::from_str::<Value>(&p.body)
    {
        return Ok(person::name(&body));
    }
    Ok(nhs_on_stay(stay)
        .map(|n| format!("The person with NHS number {n}"))
        .unwrap_or_else(|| "The person".into()))
}

fn nhs_on_stay(stay: &Value) -> Option<String> {
    let v = stay.pointer("/patient/identifier/value")?.as_str()?;
    NhsNumber::parse(v).ok().map(|n| n.formatted())
}

fn undo_label(status: &str) -> Option<&'static str> {
    match status {
        "active" => Some("Undo: they did not move in"),
        "finished" => Some("Undo: they did not move out"),
        _ => None,
    }
}

/// The home's own episode (its source is the home, so the manager always sees it).
async fn own_episode(
    state: &AppState,
    staff: &Staff,
    episode_id: &str,
) -> Result<(StoredResource, Value), PageError> {
    let vis = staff.access.vis()?;
    let id = LogicalId::parse(episode_id).map_err(|_| PageError::NotFound)?;
    let stay = state
        .store
        .read(ResourceType::EpisodeOfCare, &id, vis)
        .await
        .map_err(|_| PageError::NotFound)?;
    let body: Value = serde_json::from_str(&stay.body).unwrap_or_default();
    if carerecord_access::residency::managing_org(&body).as_deref()
        != Some(staff.access.principal.organisation_id.as_str())
    {
        return Err(PageError::NotFound);
    }
    Ok((stay, body))
}

pub async fn done(
    State(state): State<AppState>,
    staff: Staff,
    Path(episode_id): Path<String>,
    Query(q): Query<DoneQuery>,
) -> Result<Response, PageError> {
    manager(&staff)?;
    let (stay, body) = own_episode(&state, &staff, &episode_id).await?;
    let name = who(&state, &staff, &body).await?;
    let status = body.get("status").and_then(Value::as_str).unwrap_or("");
    let date = |p: &str| {
        body.pointer(p)
            .and_then(Value::as_str)
            .and_then(carerecord_access::residency::parse_date)
            .map(long_date)
            .unwrap_or_default()
    };
    let (title, text) = match (q.did.as_str(), status) {
        ("already", "active") => (
            format!("{name} already lives here"),
            format!(
                "They have been on your list since {}. Nothing was changed.",
                date("/period/start")
            ),
        ),
        ("in", "active") => (
            format!("{name} has moved in"),
            format!(
                "They moved in on {}. They are now on your list of residents, and your staff can see their record.",
                date("/period/start")
            ),
        ),
        ("out", "finished") => (
            format!("{name} has moved out"),
            format!(
                "They moved out on {}. They are no longer on your list of residents, and your staff can no longer see their record.",
                date("/period/end")
            ),
        ),
        ("undo", "active") => (
            format!("{name} is back on your list"),
            "The move out was undone. Your staff can see their record again.".to_owned(),
        ),
        ("undo", "entered-in-error") => (
            "The move in was undone".to_owned(),
            "The person is no longer on your list of residents. The mistaken entry is kept in the record's history.".to_owned(),
        ),
        (_, "active") => (
            format!("{name} lives here"),
            format!("They moved in on {}.", date("/period/start")),
        ),
        (_, "finished") => (
            format!("{name} has moved out"),
            format!("They moved out on {}.", date("/period/end")),
        ),
        _ => (
            "This stay was recorded by mistake".to_owned(),
            "It is kept in the record's history.".to_owned(),
        ),
    };
    if status == "active" {
        audit_read(&state, &staff, &[stay]).await?;
    }
    render(
        StatusCode::OK,
        &DonePage {
            chrome: Chrome::signed_in("Resident list updated", &staff.access.principal, "/"),
            title,
            body: text,
            episode_id,
            undo: undo_label(status),
        },
    )
}

pub async fn undo(
    State(state): State<AppState>,
    staff: Staff,
    Path(episode_id): Path<String>,
) -> Result<Response, PageError> {
    manager(&staff)?;
    own_episode(&state, &staff, &episode_id).await?;
    match residency::undo(state.store.as_ref(), &actor(&staff), &episode_id).await {
        Ok(rec) => Ok(
            Redirect::to(&format!("/moves/done/{}?did=undo", rec.episode.id.as_str()))
                .into_response(),
        ),
        Err(ResidencyError::Refused(r)) => {
            audit_refusal(&state, &staff, &r).await?;
            match r {
                Refusal::Denied(d) => Err(PageError::Forbidden(d.message())),
                other => Err(PageError::BadRequest(other.message())),
            }
        }
        Err(ResidencyError::Api(e)) => Err(e.into()),
    }
}

pub struct RecentRow {
    pub episode_id: String,
    pub who: String,
    pub what: String,
    pub when: String,
    pub undo: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "moves_list.html")]
struct RecentPage {
    chrome: Chrome,
    days: i64,
    rows: Vec<RecentRow>,
}

pub async fn recent(State(state): State<AppState>, staff: Staff) -> Result<Response, PageError> {
    manager(&staff)?;
    let vis = staff.access.vis()?;
    let since = staff.access.now - RECENT_DAYS * MICROS_PER_DAY;
    let since_date = format_date(residency::today(since));
    let pairs = [
        (
            "organization".to_owned(),
            format!("Organization/{}", staff.access.principal.organisation_id),
        ),
        ("_lastUpdated".to_owned(), format!("ge{since_date}")),
        ("_sort".to_owned(), "-_lastUpdated".to_owned()),
    ];
    let q = parse(ResourceType::EpisodeOfCare, &pairs, Handling::Strict, "")
        .map_err(|e| PageError::Internal(format!("moves query: {e:?}")))?;
    let out = state.store.search(&q, 100, vis).await?;
    let mut rows = Vec::new();
    let mut shown = Vec::new();
    for stay in out.matches.into_iter().filter(|r| !r.deleted) {
        let body: Value = serde_json::from_str(&stay.body).unwrap_or_default();
        let status = body.get("status").and_then(Value::as_str).unwrap_or("");
        let date = |p: &str| {
            body.pointer(p)
                .and_then(Value::as_str)
                .and_then(carerecord_access::residency::parse_date)
                .map(long_date)
                .unwrap_or_else(|| "date not recorded".into())
        };
        let what = match status {
            "active" => format!("Moved in on {}", date("/period/start")),
            "finished" => format!("Moved out on {}", date("/period/end")),
            "entered-in-error" => "Move in undone (recorded by mistake)".to_owned(),
            other => format!("Stay {other}"),
        };
        rows.push(RecentRow {
            episode_id: stay.id.as_str().to_owned(),
            who: who(&state, &staff, &body).await?,
            what,
            when: super::when(stay.last_updated),
            undo: undo_label(status),
        });
        shown.push(stay);
    }
    audit::write(
        &state,
        &staff.access,
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
        &RecentPage {
            chrome: Chrome::signed_in("Recent moves", &staff.access.principal, "/"),
            days: RECENT_DAYS,
            rows,
        },
    )
}
