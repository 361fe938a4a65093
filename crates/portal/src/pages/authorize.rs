//! `/auth/authorize`: the pages of the SMART App Launch authorisation code flow. The
//! protocol (checking the request, issuing the code) is the identity service's
//! (`carerecord_identity::smart`); these pages are the person's part: signing in (the
//! portal's own sign-in, which returns here), seeing which app asks for what, choosing one
//! of their residents for a standalone launch, and saying yes or no.
//!
//! A request that cannot be trusted to go back to the app (unknown app, unregistered redirect
//! URI) is explained on a page; every other refusal goes back to the app as an OAuth error.
//! Decisions are audited (`token`, with the person in context) before the browser is sent on.

use askama::Template;
use axum::Form;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use carerecord_fhir::{LogicalId, ResourceType};
use carerecord_identity::{AuthorizeError, AuthorizeRequest, PatientContext};
use carerecord_search::query::{Handling, parse};
use carerecord_server::AppState;
use carerecord_server::access::Access;
use carerecord_store::{AuditAction, AuditOutcome, StoredResource, now_micros};
use serde_json::Value;

use super::Choice;
use crate::page::{Chrome, PageError, render};
use crate::session::{SignedIn, Staff};
use crate::{audit, person};

/// The form fields the consent page adds to the authorisation request's own.
const DECISION: &str = "decision";
const CHOSEN: &str = "chosen_patient";

/// One thing the app asks for, in words.
pub struct Ask {
    pub text: String,
}

#[derive(Template)]
#[template(path = "authorize.html")]
struct ConsentPage {
    chrome: Chrome,
    app_name: String,
    asks: Vec<Ask>,
    /// The authorisation request, carried through the form unchanged.
    hidden: Vec<(String, String)>,
    /// Standalone launch: the residents to choose from.
    pick: bool,
    residents: Vec<Choice>,
    /// EHR launch: the person already chosen.
    launched: Option<String>,
}

fn fhir_base(state: &AppState, headers: &HeaderMap) -> String {
    format!(
        "{}/fhir",
        carerecord_server::auth::origin(&state.settings, headers)
    )
}

/// What a scope lets the app do, for a person to read.
fn describe(scope: &str) -> Option<String> {
    let fixed = match scope {
        "launch/patient" => Some("Work with one resident you choose below"),
        "launch" => Some("Work with the resident you opened it from"),
        "openid" => Some("Know who you are"),
        "fhirUser" | "profile" => None,
        "offline_access" => Some(
            "Keep its access for up to 30 days when you are not using it, until it is withdrawn",
        ),
        "online_access" => Some("Keep its access while you are signed in"),
        _ => None,
    };
    if let Some(f) = fixed {
        return Some(f.to_owned());
    }
    let (context, rest) = scope.split_once('/')?;
    let (ty, perms) = rest.split_once('.')?;
    let perms = match perms.split('?').next().unwrap_or_default() {
        "read" => "rs",
        "write" => "cud",
        "*" => "cruds",
        p => p,
    };
    let mut verbs = Vec::new();
    for (letter, verb) in [
        ('r', "read"),
        ('s', "search"),
        ('c', "add"),
        ('u', "change"),
        ('d', "delete"),
    ] {
        if perms.contains(letter) {
            verbs.push(verb);
        }
    }
    let what = if ty == "*" {
        "all records".to_owned()
    } else {
        format!("{ty} records")
    };
    let whose = if context == "patient" {
        "of that resident"
    } else {
        "you can see"
    };
    Some(format!("{} {what} {whose}", capitalise(&verbs.join(", "))))
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// The origin (`scheme://host:port`) of an absolute URL.
fn origin_of(url: &str) -> Option<&str> {
    let after = url.find("://")? + 3;
    let end = url[after..]
        .find(['/', '?'])
        .map_or(url.len(), |i| after + i);
    Some(&url[..end])
}

/// The refusal of a request, as a page or a redirect back to the app.
fn refused(e: &AuthorizeError) -> Response {
    match (e.location(), e) {
        (Some(location), _) => Redirect::to(&location).into_response(),
        (None, AuthorizeError::Page(m)) => PageError::BadRequest(m.clone()).into_response(),
        (None, _) => {
            PageError::BadRequest("The request could not be handled.".into()).into_response()
        }
    }
}

/// The residents of the person's organisation (active EpisodeOfCare there), as the access
/// policy lets them see them.
async fn residents(state: &AppState, access: &Access) -> Result<Vec<StoredResource>, PageError> {
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
    let mut people: Vec<StoredResource> = out
        .included
        .into_iter()
        .filter(|r| r.resource_type == ResourceType::Patient && !r.deleted)
        .collect();
    people.sort_by_key(|p| person::name(&serde_json::from_str(&p.body).unwrap_or_default()));
    Ok(people)
}

/// The Patient `id` as `access` may see it, or `None`.
async fn visible_patient(
    state: &AppState,
    access: &Access,
    id: &str,
) -> Result<Option<StoredResource>, PageError> {
    let Ok(id) = LogicalId::parse(id) else {
        return Ok(None);
    };
    match state
        .store
        .read(ResourceType::Patient, &id, access.vis()?)
        .await
    {
        Ok(p) => Ok(Some(p)),
        Err(e) => match PageError::from(e) {
            PageError::Forbidden(_) | PageError::NotFound => Ok(None),
            other => Err(other),
        },
    }
}

fn label(p: &StoredResource) -> String {
    let body: Value = serde_json::from_str(&p.body).unwrap_or_default();
    let born = person::born(&body)
        .map(|b| format!(", born {b}"))
        .unwrap_or_default();
    let nhs = person::nhs_number(&body)
        .map(|n| format!(", NHS number {n}"))
        .unwrap_or_default();
    format!("{}{born}{nhs}", person::name(&body))
}

/// `GET /auth/authorize`: checks the request, has the person sign in, and asks them.
pub async fn start(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    signed_in: Result<SignedIn, PageError>,
) -> Result<Response, PageError> {
    let raw = query.unwrap_or_default();
    let Ok(params) = serde_urlencoded::from_str::<Vec<(String, String)>>(&raw) else {
        return Err(PageError::BadRequest(
            "The app's request is not valid URL encoding.".into(),
        ));
    };
    let now = now_micros();
    let req = match state
        .identity
        .check_authorize(&params, &fhir_base(&state, &headers), now)
        .await
    {
        Ok(r) => r,
        Err(e) => return Ok(refused(&e)),
    };
    let here = format!("/auth/authorize?{raw}");
    let s = match signed_in {
        Ok(s) => s,
        Err(PageError::SignIn | PageError::SessionExpired) => {
            return Ok(sign_in_first(&headers, &here));
        }
        Err(e) => return Err(e),
    };
    if !s.auth.principal.training_current(now) {
        return Err(PageError::TrainingDue);
    }
    let access = Access::new(s.auth.principal, &state.settings.policy);
    let (pick, residents, launched, shown) = match &req.patient {
        PatientContext::None => (false, Vec::new(), None, Vec::new()),
        PatientContext::Pick => {
            let people = residents(&state, &access).await?;
            let choices = people
                .iter()
                .map(|p| Choice {
                    value: p.id.as_str().to_owned(),
                    label: label(p),
                    checked: people.len() == 1,
                })
                .collect();
            (true, choices, None, people)
        }
        PatientContext::Launch(l) => match visible_patient(&state, &access, &l.patient_id).await? {
            Some(p) => (false, Vec::new(), Some(label(&p)), vec![p]),
            None => {
                return Ok(refused(&req_error(
                    &req,
                    "access_denied",
                    "you cannot see the resident the app was opened for",
                )));
            }
        },
    };
    // The residents named on the page are a look at who lives there: audited like the list.
    if !shown.is_empty() {
        audit::write(
            &state,
            &access,
            s.client.clone(),
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
    }
    let page = ConsentPage {
        chrome: Chrome::signed_in(
            format!("Allow {} to use your care records", req.app.name),
            &access.principal,
            "",
        ),
        app_name: req.app.name.clone(),
        asks: req
            .scopes()
            .filter_map(describe)
            .map(|text| Ask { text })
            .collect(),
        // The page's own fields are never taken from the app's request.
        hidden: params
            .into_iter()
            .filter(|(k, _)| k != DECISION && k != CHOSEN)
            .collect(),
        pick,
        residents,
        launched,
    };
    let mut resp = render(StatusCode::OK, &page)?;
    allow_form_to(&mut resp, [req.redirect_uri.as_str()]);
    Ok(resp)
}

/// The page that reloads the request from the portal's own origin (the error layout).
#[derive(Template)]
#[template(path = "error.html")]
struct ContinuePage {
    chrome: Chrome,
    heading: String,
    message: String,
    reference: Option<String>,
    sign_in: bool,
}

fn req_error(req: &AuthorizeRequest, error: &'static str, description: &str) -> AuthorizeError {
    AuthorizeError::Redirect {
        redirect_uri: req.redirect_uri.clone(),
        error,
        description: description.to_owned(),
        state: req.state.clone(),
    }
}

/// A form on the page answers with a redirect to an app (the consent form to its redirect
/// URI, "Open in …" to its launch URL), which a browser checks against the page's
/// `form-action`: the page allows those origins beside the portal itself.
pub(crate) fn allow_form_to<'a>(resp: &mut Response, urls: impl IntoIterator<Item = &'a str>) {
    let mut origins: Vec<&str> = urls.into_iter().filter_map(origin_of).collect();
    origins.sort_unstable();
    origins.dedup();
    if origins.is_empty() {
        return;
    }
    let csp = format!(
        "default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self'; \
         object-src 'none'; base-uri 'none'; form-action 'self' {}; frame-ancestors 'none'",
        origins.join(" ")
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        resp.headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, v);
    }
}

/// Not signed in. An app's link is a navigation from another site, which a browser sends
/// without the `SameSite=Strict` session cookie; reloading once from the portal's own page
/// sends it. Otherwise (no cookie even from here) the person signs in and comes back.
fn sign_in_first(headers: &HeaderMap, here: &str) -> Response {
    let from_elsewhere = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|s| matches!(s, "cross-site" | "same-site"));
    if from_elsewhere {
        let page = ContinuePage {
            chrome: Chrome::anonymous("Continue to carerecord"),
            heading: "Continue to carerecord".to_owned(),
            message: "An app has asked to use your care records. If this page does not move \
                      on by itself, go to the start page and sign in."
                .to_owned(),
            reference: None,
            sign_in: false,
        };
        let Ok(mut resp) = render(StatusCode::OK, &page) else {
            return Redirect::to(here).into_response();
        };
        if let Ok(v) = HeaderValue::from_str(&format!("0; url={here}")) {
            resp.headers_mut().insert("refresh", v);
        }
        return resp;
    }
    let next = serde_urlencoded::to_string([("next", here)]).unwrap_or_default();
    Redirect::to(&format!("/sign-in?{next}")).into_response()
}

/// `POST /auth/authorize`: the person's answer.
pub async fn decide(
    State(state): State<AppState>,
    headers: HeaderMap,
    staff: Staff,
    Form(mut form): Form<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    // The page's own fields; given more than once (an app cannot add them, but a forged
    // form could) they count as a refusal.
    let take = |form: &mut Vec<(String, String)>, name: &str| {
        let values: Vec<String> = form
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect();
        form.retain(|(k, _)| k != name);
        match values.as_slice() {
            [one] => Some(one.clone()),
            _ => None,
        }
    };
    let decision = take(&mut form, DECISION);
    let chosen = take(&mut form, CHOSEN);
    let now = now_micros();
    let req = match state
        .identity
        .check_authorize(&form, &fhir_base(&state, &headers), now)
        .await
    {
        Ok(r) => r,
        Err(e) => return Ok(refused(&e)),
    };
    let access = &staff.access;
    let record = |outcome: AuditOutcome, rule: &'static str, patient: Option<String>| audit::View {
        action: AuditAction::Token,
        outcome,
        rule,
        resources: &[],
        patients: patient.into_iter().collect(),
        emergency: false,
    };
    if decision.as_deref() != Some("allow") {
        audit::write(
            &state,
            access,
            staff.client.clone(),
            record(AuditOutcome::Denied, "smart-authorisation-refused", None),
        )
        .await?;
        return Ok(Redirect::to(&req.denied()).into_response());
    }
    let patient = match &req.patient {
        PatientContext::None => None,
        PatientContext::Pick => {
            let Some(id) = chosen.filter(|c| !c.is_empty()) else {
                return Err(PageError::BadRequest(
                    "Choose the resident the app will work with, then select Allow.".into(),
                ));
            };
            Some(id)
        }
        PatientContext::Launch(l) => Some(l.patient_id.clone()),
    };
    if let Some(id) = &patient
        && visible_patient(&state, access, id).await?.is_none()
    {
        audit::write(
            &state,
            access,
            staff.client.clone(),
            record(
                AuditOutcome::Denied,
                "smart-patient-not-visible",
                Some(id.clone()),
            ),
        )
        .await?;
        return Ok(refused(&req_error(
            &req,
            "access_denied",
            "the chosen resident is not one the user may see",
        )));
    }
    let location = match state
        .identity
        .approve(&req, &access.principal, patient.clone(), now)
        .await
    {
        Ok(l) => l,
        Err(e) => return Ok(refused(&e)),
    };
    audit::write(
        &state,
        access,
        staff.client.clone(),
        record(AuditOutcome::Allowed, "smart-authorised", patient),
    )
    .await?;
    Ok(Redirect::to(&location).into_response())
}

/// `POST /residents/{id}/apps/{client_id}`: an EHR launch. Opens a short-lived launch bound
/// to the person, the app and the resident (whom the person must be able to see), and sends
/// the browser to the app's launch URL with `iss` and `launch`.
pub async fn launch_app(
    State(state): State<AppState>,
    headers: HeaderMap,
    staff: Staff,
    Path((id, client_id)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let access = &staff.access;
    let carerecord_access::PrincipalId::User(user_id) = &access.principal.id else {
        return Err(PageError::Forbidden("Only people open apps.".into()));
    };
    let app = state
        .identity
        .launchable_apps()
        .await
        .map_err(|e| PageError::Internal(e.to_string()))?
        .into_iter()
        .find(|a| a.client_id == client_id);
    let Some((app, launch_url)) = app.and_then(|a| a.launch_url.clone().map(|u| (a, u))) else {
        return Err(PageError::NotFound);
    };
    let record = |outcome: AuditOutcome, rule: &'static str| audit::View {
        action: AuditAction::Token,
        outcome,
        rule,
        resources: &[],
        patients: vec![id.clone()],
        emergency: false,
    };
    if visible_patient(&state, access, &id).await?.is_none() {
        audit::write(
            &state,
            access,
            staff.client.clone(),
            record(AuditOutcome::Denied, "smart-patient-not-visible"),
        )
        .await?;
        return Err(PageError::Forbidden(
            "This person's record is not available to you, so it cannot be opened in an app."
                .into(),
        ));
    }
    let launch = state
        .identity
        .open_launch(&app.client_id, user_id, &id, now_micros())
        .await
        .map_err(|e| PageError::Internal(e.to_string()))?;
    audit::write(
        &state,
        access,
        staff.client.clone(),
        record(AuditOutcome::Allowed, "smart-ehr-launch"),
    )
    .await?;
    let query = serde_urlencoded::to_string([
        ("iss", fhir_base(&state, &headers).as_str()),
        ("launch", launch.as_str()),
    ])
    .unwrap_or_default();
    let sep = if launch_url.contains('?') { '&' } else { '?' };
    Ok(Redirect::to(&format!("{launch_url}{sep}{query}")).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_described_in_words() {
        assert_eq!(
            describe("patient/Observation.rs").as_deref(),
            Some("Read, search Observation records of that resident")
        );
        assert_eq!(
            describe("user/*.read").as_deref(),
            Some("Read, search all records you can see")
        );
        assert_eq!(describe("fhirUser"), None);
        assert_eq!(
            origin_of("http://127.0.0.1:9000/cb?x=1"),
            Some("http://127.0.0.1:9000")
        );
        assert_eq!(
            origin_of("https://app.example"),
            Some("https://app.example")
        );
    }
}
