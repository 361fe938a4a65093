//! Privacy officer pages, over the audit trail (scoped to the officer's organisation exactly
//! as the FHIR `AuditEvent` endpoint scopes it): audit search by person, user, organisation,
//! dates and outcome; the emergency-access review queue; and a person's access report, ready
//! to print.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use carerecord_access::Visibility;
use carerecord_access::policy::{self, may_read_audit};
use carerecord_fhir::{LogicalId, NhsNumber, ResourceType};
use carerecord_search::query::{Handling, parse};
use carerecord_server::AppState;
use carerecord_server::admin::break_glass::{self, ReviewError};
use carerecord_server::fhir::audit_event::scope;
use carerecord_store::{
    AuditEntry, AuditFilter, AuditOutcome, Channel, ReviewOutcome, ReviewStatus,
};
use serde::Deserialize;
use serde_json::Value;

use super::{Choice, FieldError};
use crate::page::{Chrome, PageError, render};
use crate::person::{self, NHS_NUMBER_SYSTEM};
use crate::session::Staff;

const PAGE: u32 = 50;
const MICROS_PER_DAY: i64 = 86_400 * 1_000_000;

/// One audit entry as the pages show it.
pub struct EntryRow {
    pub seq: i64,
    pub when: String,
    pub who: String,
    pub role: String,
    pub organisation: String,
    pub action: &'static str,
    pub outcome: &'static str,
    pub outcome_colour: &'static str,
    pub rule: String,
    pub channel: &'static str,
    pub people: Vec<String>,
    pub reason: Option<String>,
}

fn row(e: &AuditEntry) -> EntryRow {
    let r = &e.record;
    let (outcome, colour) = match r.outcome {
        AuditOutcome::Allowed => ("Allowed", "nhsuk-tag--green"),
        AuditOutcome::Denied => ("Refused", "nhsuk-tag--red"),
        AuditOutcome::Error => ("Error", "nhsuk-tag--grey"),
    };
    EntryRow {
        seq: e.seq,
        when: super::when(r.time),
        who: r.agent.name.clone().unwrap_or_else(|| r.agent.id.clone()),
        role: r.agent.role.clone().unwrap_or_default(),
        organisation: r.agent.ods_code.clone().unwrap_or_default(),
        action: r.action.as_str(),
        outcome,
        outcome_colour: colour,
        rule: r.rule.clone(),
        channel: r.channel.as_str(),
        people: r.patient_ids.clone(),
        reason: r
            .break_glass
            .as_ref()
            .map(|b| format!("{}: {}", b.code, b.text)),
    }
}

fn officer(staff: &Staff) -> Result<(), PageError> {
    may_read_audit(&staff.access.principal, staff.access.now)
        .map_err(|d| PageError::Forbidden(d.message()))
}

#[derive(Deserialize, Default)]
pub struct AuditQuery {
    #[serde(default)]
    person: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    organisation: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    cursor: Option<String>,
}

#[derive(Template)]
#[template(path = "privacy_audit.html")]
struct AuditPage {
    chrome: Chrome,
    q: AuditQuery,
    errors: Vec<FieldError>,
    outcomes: Vec<Choice>,
    rows: Vec<EntryRow>,
    searched: bool,
    next: Option<String>,
}

fn day(s: &str) -> Option<i64> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let d = time::Date::parse(s.trim(), &format).ok()?;
    Some(d.midnight().assume_utc().unix_timestamp() * 1_000_000)
}

/// The Patient id a privacy officer means: an NHS number is looked up (their job is to see
/// who looked at a person, not the record), anything else is taken as the id.
async fn person_id(state: &AppState, input: &str) -> Result<Option<String>, PageError> {
    let digits: String = input.chars().filter(|c| !c.is_whitespace()).collect();
    let Ok(nhs) = NhsNumber::parse(&digits) else {
        return Ok(Some(input.trim().to_owned()));
    };
    let pairs = [(
        "identifier".to_owned(),
        format!("{NHS_NUMBER_SYSTEM}|{}", nhs.as_str()),
    )];
    let q = parse(ResourceType::Patient, &pairs, Handling::Strict, "")
        .map_err(|e| PageError::Internal(format!("person query: {e:?}")))?;
    let out = state.store.search(&q, 2, &Visibility::All).await?;
    Ok(out.matches.first().map(|r| r.id.as_str().to_owned()))
}

/// The agent id of the user a privacy officer means: a username is looked up (it is what
/// they know from a rota or a complaint; entries are kept by user id). A user id, a
/// registered client's id or an HL7 v2 sending system's id is taken as it is. `None` when it is none of these: an
/// unknown name must not look like a user who never did anything.
async fn agent_id(state: &AppState, input: &str) -> Result<Option<String>, PageError> {
    let directory = state.store.directory();
    if let Some(u) = directory.user_by_username(input).await? {
        return Ok(Some(u.id));
    }
    if directory.user_by_id(input).await?.is_some()
        || directory.client(input).await?.is_some()
        || carerecord_store::ingest::systems(state.store.as_ref())
            .await?
            .iter()
            .any(|s| s.id == input)
    {
        return Ok(Some(input.to_owned()));
    }
    Ok(None)
}

pub async fn audit_search(
    State(state): State<AppState>,
    staff: Staff,
    Query(q): Query<AuditQuery>,
) -> Result<Response, PageError> {
    officer(&staff)?;
    let searched = !(q.person.is_empty()
        && q.user.is_empty()
        && q.organisation.is_empty()
        && q.from.is_empty()
        && q.to.is_empty()
        && q.outcome.is_empty());
    let mut errors = Vec::new();
    let mut filter = AuditFilter {
        scope: scope(&state, &staff.access),
        ..AuditFilter::default()
    };
    if !q.person.trim().is_empty() {
        // A person with no record matches no entry, rather than every entry.
        filter.patient_id = Some(
            person_id(&state, &q.person)
                .await?
                .unwrap_or_else(|| "-".into()),
        );
    }
    if !q.user.trim().is_empty() {
        match agent_id(&state, q.user.trim()).await? {
            Some(id) => filter.agent_id = Some(id),
            None => errors.push(FieldError {
                field: "user",
                message: "No such user: there is no one with that username".into(),
            }),
        }
    }
    if !q.organisation.trim().is_empty() {
        filter.organisation = Some(q.organisation.trim().to_owned());
    }
    if !q.from.trim().is_empty() {
        match day(&q.from) {
            Some(t) => filter.since = Some(t),
            None => errors.push(FieldError {
                field: "from",
                message: "Enter the start date as a real date".into(),
            }),
        }
    }
    if !q.to.trim().is_empty() {
        match day(&q.to) {
            Some(t) => filter.before = Some(t + MICROS_PER_DAY),
            None => errors.push(FieldError {
                field: "to",
                message: "Enter the end date as a real date".into(),
            }),
        }
    }
    filter.outcome = match q.outcome.as_str() {
        "allowed" => Some(AuditOutcome::Allowed),
        "denied" => Some(AuditOutcome::Denied),
        "error" => Some(AuditOutcome::Error),
        _ => None,
    };
    let (rows, next) = if errors.is_empty() {
        let page = state
            .store
            .audit_search(&filter, PAGE, q.cursor.as_deref())
            .await?;
        (page.items.iter().map(row).collect(), page.next_cursor)
    } else {
        (Vec::new(), None)
    };
    let next = next.map(|c| {
        let pairs = [
            ("person", q.person.as_str()),
            ("user", q.user.as_str()),
            ("organisation", q.organisation.as_str()),
            ("from", q.from.as_str()),
            ("to", q.to.as_str()),
            ("outcome", q.outcome.as_str()),
            ("cursor", c.as_str()),
        ];
        format!(
            "/privacy?{}",
            serde_urlencoded::to_string(pairs).unwrap_or_default()
        )
    });
    let outcomes = [
        ("", "Any"),
        ("allowed", "Allowed"),
        ("denied", "Refused"),
        ("error", "Error"),
    ]
    .iter()
    .map(|(v, l)| Choice {
        value: (*v).to_owned(),
        label: (*l).to_owned(),
        checked: q.outcome == *v,
    })
    .collect();
    render(
        if errors.is_empty() {
            StatusCode::OK
        } else {
            StatusCode::BAD_REQUEST
        },
        &AuditPage {
            chrome: Chrome::signed_in("Audit search", &staff.access.principal, "/privacy"),
            q,
            errors,
            outcomes,
            rows,
            searched,
            next,
        },
    )
}

/// One break-glass grant in the review queue.
pub struct GrantRow {
    pub grant_id: String,
    pub granted: String,
    pub expires: String,
    pub who: String,
    pub patient_id: String,
    pub reason: String,
    pub text: String,
    /// `outcome: note (when)` once reviewed.
    pub review: Option<String>,
    /// The officer may review it (open, and not their own).
    pub reviewable: bool,
}

#[derive(Template)]
#[template(path = "privacy_queue.html")]
struct QueuePage {
    chrome: Chrome,
    status: String,
    statuses: Vec<Choice>,
    outcomes: Vec<Choice>,
    rows: Vec<GrantRow>,
    errors: Vec<FieldError>,
    /// The next page's link, when there are more.
    next: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct QueueQuery {
    #[serde(default)]
    status: String,
    /// Where the previous page stopped.
    #[serde(default)]
    cursor: Option<String>,
}

/// Grants on one page of the review queue.
pub const QUEUE_PAGE: u32 = 50;

fn reason_words(code: &str) -> String {
    carerecord_server::fhir::break_glass::REASONS
        .iter()
        .find(|(c, _)| *c == code)
        .map_or_else(|| code.to_owned(), |(_, l)| (*l).to_owned())
}

async fn queue_page(
    state: &AppState,
    staff: &Staff,
    status_code: &str,
    cursor: Option<&str>,
    errors: Vec<FieldError>,
) -> Result<QueuePage, PageError> {
    let status = ReviewStatus::parse(status_code).unwrap_or(ReviewStatus::Open);
    // The server's queue, as the JSON API lists it: looking is audited there.
    let page = break_glass::queue(
        state,
        &staff.access.principal,
        status,
        QUEUE_PAGE,
        cursor,
        &origin(staff),
    )
    .await
    .map_err(page_error)?;
    let p = &staff.access.principal;
    let rows = page
        .items
        .into_iter()
        .map(|r| {
            let g = &r.grant;
            let reviewable = r.review.is_none()
                && matches!(
                    policy::may_review_grant(p, &g.org_id, &g.principal_key, staff.access.now),
                    Some(Ok(()))
                );
            GrantRow {
                grant_id: g.grant_id.clone(),
                granted: super::when(g.granted_at),
                expires: super::when(g.expires_at),
                who: g
                    .principal_key
                    .strip_prefix("user:")
                    .unwrap_or(&g.principal_key)
                    .to_owned(),
                patient_id: g.patient_id.clone(),
                reason: reason_words(&g.reason_code),
                text: g.reason_text.clone(),
                review: r.review.as_ref().map(|v| {
                    format!(
                        "{}: {} ({})",
                        outcome_words(v.outcome),
                        v.note,
                        super::when(v.reviewed_at)
                    )
                }),
                reviewable,
            }
        })
        .collect();
    let code = match status {
        ReviewStatus::Open => "open",
        ReviewStatus::Reviewed => "reviewed",
        ReviewStatus::Any => "all",
    };
    let next = page.next_cursor.map(|c| {
        format!(
            "/privacy/emergency-access?{}",
            serde_urlencoded::to_string([("status", code), ("cursor", c.as_str())])
                .unwrap_or_default()
        )
    });
    Ok(QueuePage {
        chrome: Chrome::signed_in("Emergency access review", p, "/privacy/emergency-access"),
        status: code.to_owned(),
        statuses: [
            ("open", "Waiting for review"),
            ("reviewed", "Reviewed"),
            ("all", "All"),
        ]
        .iter()
        .map(|(v, l)| Choice {
            value: (*v).to_owned(),
            label: (*l).to_owned(),
            checked: *v == code,
        })
        .collect(),
        outcomes: ReviewOutcome::ALL
            .iter()
            .map(|o| Choice {
                value: o.as_str().to_owned(),
                label: outcome_words(*o).to_owned(),
                checked: false,
            })
            .collect(),
        rows,
        errors,
        next,
    })
}

fn outcome_words(o: ReviewOutcome) -> &'static str {
    match o {
        ReviewOutcome::Appropriate => "Appropriate",
        ReviewOutcome::Inappropriate => "Not appropriate",
        ReviewOutcome::NeedsFollowUp => "Needs follow-up",
    }
}

/// The review queue: emergency access by this organisation's staff, open ones first.
pub async fn queue(
    State(state): State<AppState>,
    staff: Staff,
    Query(q): Query<QueueQuery>,
) -> Result<Response, PageError> {
    officer(&staff)?;
    render(
        StatusCode::OK,
        &queue_page(&state, &staff, &q.status, q.cursor.as_deref(), Vec::new()).await?,
    )
}

#[derive(Deserialize, Default)]
pub struct ReviewForm {
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    note: String,
}

/// Records a review through the server's [`break_glass::review`], the one the JSON API uses:
/// once, never of one's own grant, committed with its audit entry; and every refusal (not a
/// privacy officer, no such grant or another organisation's, already reviewed) is audited the
/// same way, with the portal channel.
pub async fn review(
    State(state): State<AppState>,
    staff: Staff,
    Path(grant_id): Path<String>,
    Form(f): Form<ReviewForm>,
) -> Result<Response, PageError> {
    let mut errors = Vec::new();
    let outcome = ReviewOutcome::parse(&f.outcome);
    if outcome.is_none() {
        errors.push(FieldError {
            field: "outcome",
            message: "Choose whether the emergency access was appropriate".into(),
        });
    }
    // The portal asks for a note even when the access was appropriate: the form says why.
    let note = f.note.trim();
    if note.is_empty() || note.chars().count() > break_glass::MAX_NOTE_CHARS {
        errors.push(FieldError {
            field: "note",
            message: "Write a note of what you found (up to 2,000 characters)".into(),
        });
    }
    let Some(outcome) = outcome.filter(|_| errors.is_empty()) else {
        // The form is shown again with the queue: only to those who may see it.
        officer(&staff)?;
        return render(
            StatusCode::BAD_REQUEST,
            &queue_page(&state, &staff, "open", None, errors).await?,
        );
    };
    break_glass::review(
        &state,
        &staff.access.principal,
        &grant_id,
        outcome,
        note,
        &origin(&staff),
    )
    .await
    .map_err(page_error)?;
    Ok(Redirect::to("/privacy/emergency-access").into_response())
}

/// Where a privacy officer's request came from, for the shared review functions' entries.
fn origin(staff: &Staff) -> break_glass::Origin {
    break_glass::Origin {
        channel: Channel::Portal,
        client_address: staff.client.clone(),
    }
}

/// A review refusal as a page.
fn page_error(e: ReviewError) -> PageError {
    match e {
        ReviewError::Denied(d) => PageError::Forbidden(d.message()),
        ReviewError::NotFound => PageError::NotFound,
        ReviewError::AlreadyReviewed => {
            PageError::BadRequest("This emergency access has already been reviewed.".into())
        }
        ReviewError::Invalid(m) => PageError::BadRequest(m),
        ReviewError::Store(e) => e.into(),
    }
}

#[derive(Template)]
#[template(path = "privacy_report.html")]
struct ReportPage {
    chrome: Chrome,
    id: String,
    name: String,
    nhs_number: String,
    rows: Vec<EntryRow>,
    more: bool,
    printed: String,
}

pub async fn access_report(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    officer(&staff)?;
    let lid = LogicalId::parse(&id).map_err(|_| PageError::NotFound)?;
    let filter = AuditFilter {
        patient_id: Some(id.clone()),
        scope: scope(&state, &staff.access),
        ..AuditFilter::default()
    };
    let page = state.store.audit_search(&filter, 1_000, None).await?;
    // Who the report is about: name and NHS number only, so it can be given to the person.
    let patient: Value = match state
        .store
        .read(ResourceType::Patient, &lid, &Visibility::All)
        .await
    {
        Ok(r) => serde_json::from_str(&r.body).unwrap_or_default(),
        Err(_) => Value::Null,
    };
    render(
        StatusCode::OK,
        &ReportPage {
            chrome: Chrome::signed_in("Access report", &staff.access.principal, ""),
            name: person::name(&patient),
            nhs_number: person::nhs_number(&patient).unwrap_or_else(|| "Not recorded".into()),
            id,
            rows: page.items.iter().map(row).collect(),
            more: page.next_cursor.is_some(),
            printed: super::when(staff.access.now),
        },
    )
}
