//! `/find`: someone not on my list, by NHS number and date of birth. When the principal may
//! see them, the record opens; when not, the page says so — in the same words whether or not
//! such a person exists — and offers emergency access (break-glass: a coded reason and the
//! person's own words), granted by the API's own break-glass code and reviewed by the privacy
//! officer.

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use carerecord_access::Visibility;
use carerecord_fhir::{LogicalId, NhsNumber, ResourceType};
use carerecord_search::query::{Handling, parse};
use carerecord_server::AppState;
use carerecord_server::fhir::break_glass::{REASONS, check_reason, grant};
use carerecord_store::{AuditAction, AuditOutcome, Channel, StoredResource};
use serde::Deserialize;

use super::{Choice, FieldError};
use crate::audit;
use crate::page::{Chrome, PageError, render};
use crate::person::NHS_NUMBER_SYSTEM;
use crate::session::Staff;

#[derive(Template)]
#[template(path = "find.html")]
struct FindPage {
    chrome: Chrome,
    errors: Vec<FieldError>,
    nhs: String,
    day: String,
    month: String,
    year: String,
    /// Set once a search found nothing the principal may see: offer emergency access.
    not_found: bool,
    reasons: Vec<Choice>,
    text: String,
}

#[derive(Deserialize, Default)]
pub struct FindForm {
    #[serde(default)]
    nhs: String,
    #[serde(default)]
    day: String,
    #[serde(default)]
    month: String,
    #[serde(default)]
    year: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    text: String,
}

fn page(staff: &Staff, f: &FindForm, errors: Vec<FieldError>, not_found: bool) -> FindPage {
    page_for(&staff.access.principal, f, errors, not_found)
}

fn page_for(
    principal: &carerecord_access::Principal,
    f: &FindForm,
    errors: Vec<FieldError>,
    not_found: bool,
) -> FindPage {
    FindPage {
        chrome: Chrome::signed_in("Find someone", principal, "/find"),
        errors,
        nhs: f.nhs.clone(),
        day: f.day.clone(),
        month: f.month.clone(),
        year: f.year.clone(),
        not_found,
        reasons: REASONS
            .iter()
            .map(|(code, label)| Choice {
                value: (*code).to_owned(),
                label: (*label).to_owned(),
                checked: f.reason.as_deref() == Some(code),
            })
            .collect(),
        text: f.text.clone(),
    }
}

/// The "not on your list" page with the emergency access form for this NHS number and date
/// of birth: where a context launch for someone not in the home's care lands.
pub fn emergency_access_offer(
    principal: &carerecord_access::Principal,
    nhs: &NhsNumber,
    born: time::Date,
) -> Result<Response, PageError> {
    let f = FindForm {
        nhs: nhs.as_str().to_owned(),
        day: born.day().to_string(),
        month: u8::from(born.month()).to_string(),
        year: born.year().to_string(),
        ..FindForm::default()
    };
    render(StatusCode::OK, &page_for(principal, &f, Vec::new(), true))
}

pub async fn form(staff: Staff) -> Result<Response, PageError> {
    staff.access.vis()?;
    render(
        StatusCode::OK,
        &page(&staff, &FindForm::default(), Vec::new(), false),
    )
}

/// The NHS number and date of birth of the form, or what is wrong with them.
fn details(f: &FindForm) -> Result<(NhsNumber, time::Date), Vec<FieldError>> {
    let mut errors = Vec::new();
    let nhs = NhsNumber::parse(&f.nhs.replace([' ', '-'], ""));
    if nhs.is_err() {
        errors.push(FieldError {
            field: "nhs",
            message: "Enter a valid 10-digit NHS number, like 999 123 4567".into(),
        });
    }
    let date = (|| {
        let d: u8 = f.day.trim().parse().ok()?;
        let m: u8 = f.month.trim().parse().ok()?;
        let y: i32 = f.year.trim().parse().ok()?;
        time::Date::from_calendar_date(y, time::Month::try_from(m).ok()?, d).ok()
    })();
    if date.is_none() {
        errors.push(FieldError {
            field: "dob-day",
            message: "Enter a real date of birth, for example 27 3 1941".into(),
        });
    }
    match (nhs, date) {
        (Ok(n), Some(d)) if errors.is_empty() => Ok((n, d)),
        _ => Err(errors),
    }
}

/// The Patient with this NHS number and date of birth, as `vis` may see them.
async fn lookup(
    state: &AppState,
    nhs: &NhsNumber,
    born: time::Date,
    vis: &Visibility,
) -> Result<Option<StoredResource>, PageError> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let pairs = [
        (
            "identifier".to_owned(),
            format!("{NHS_NUMBER_SYSTEM}|{}", nhs.as_str()),
        ),
        (
            "birthdate".to_owned(),
            born.format(&format).unwrap_or_default(),
        ),
    ];
    let q = parse(ResourceType::Patient, &pairs, Handling::Strict, "")
        .map_err(|e| PageError::Internal(format!("find query: {e:?}")))?;
    let out = state.store.search(&q, 2, vis).await?;
    Ok(out.matches.into_iter().find(|r| !r.deleted))
}

pub async fn submit(
    State(state): State<AppState>,
    staff: Staff,
    Form(f): Form<FindForm>,
) -> Result<Response, PageError> {
    let vis = staff.access.vis()?.clone();
    let (nhs, born) = match details(&f) {
        Ok(d) => d,
        Err(errors) => return render(StatusCode::BAD_REQUEST, &page(&staff, &f, errors, false)),
    };
    if let Some(p) = lookup(&state, &nhs, born, &vis).await? {
        return Ok(Redirect::to(&format!("/residents/{}", p.id.as_str())).into_response());
    }
    // The refusal names the person in the audit trail (for their access report) when they
    // exist; the page does not say whether they do.
    let hidden = lookup(&state, &nhs, born, &Visibility::All).await?;
    audit::write(
        &state,
        &staff.access,
        staff.client.clone(),
        audit::View {
            action: AuditAction::Search,
            outcome: AuditOutcome::Denied,
            rule: carerecord_access::Denial::NotInCare.rule(),
            resources: &[],
            patients: hidden
                .map(|p| p.id.as_str().to_owned())
                .into_iter()
                .collect(),
            emergency: false,
        },
    )
    .await?;
    render(StatusCode::OK, &page(&staff, &f, Vec::new(), true))
}

pub async fn break_glass(
    State(state): State<AppState>,
    staff: Staff,
    Form(f): Form<FindForm>,
) -> Result<Response, PageError> {
    staff.access.vis()?;
    let (nhs, born) = match details(&f) {
        Ok(d) => d,
        Err(errors) => return render(StatusCode::BAD_REQUEST, &page(&staff, &f, errors, false)),
    };
    let (code, text) = match check_reason(f.reason.as_deref(), Some(&f.text)) {
        Ok(r) => r,
        Err(e) => {
            let field = if f.reason.as_deref().is_none_or(str::is_empty) {
                "reason"
            } else {
                "text"
            };
            let message = match PageError::from(e) {
                PageError::BadRequest(m) => m,
                other => return Err(other),
            };
            return render(
                StatusCode::BAD_REQUEST,
                &page(&staff, &f, vec![FieldError { field, message }], true),
            );
        }
    };
    let Some(p) = lookup(&state, &nhs, born, &Visibility::All).await? else {
        return Err(PageError::BadRequest(
            "No record matches that NHS number and date of birth. Check them with the person, \
             their family or their GP practice."
                .into(),
        ));
    };
    let id = LogicalId::parse(p.id.as_str()).map_err(|e| PageError::Internal(e.to_string()))?;
    grant(
        &state,
        &staff.access,
        &id,
        code,
        text,
        Channel::Portal,
        staff.client.clone(),
    )
    .await?;
    Ok(Redirect::to(&format!("/residents/{}", id.as_str())).into_response())
}
