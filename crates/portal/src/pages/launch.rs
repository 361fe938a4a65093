//! `POST /launch`: signed context launch from a care home record system (issue 7;
//! `docs/integrating.md`). The identity service verifies the token and maps the user into the
//! home (`carerecord_identity::launch`); here the resident is checked — the NHS number and
//! date of birth must be the same Patient, and the person must be in the home's care (else the
//! emergency access offer) — the portal session opens and the browser goes to the record.
//! Every outcome is audited with the launch channel before the page leaves; nothing
//! identifying is put in a URL or a log.

use std::net::SocketAddr;

use askama::Template;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use carerecord_access::{Principal, Visibility};
use carerecord_fhir::{LogicalId, NhsNumber, ResourceType};
use carerecord_identity::{LaunchRefusal, VerifiedLaunch};
use carerecord_search::query::{Handling, parse};
use carerecord_server::AppState;
use carerecord_server::access::Access;
use carerecord_store::{
    AuditAction, AuditAgent, AuditOutcome, AuditRecord, Channel, PrincipalKind, StoreError,
    now_micros,
};
use serde::Deserialize;

use crate::page::{Chrome, PageError};
use crate::person::NHS_NUMBER_SYSTEM;
use crate::session::cookie_for;

#[derive(Deserialize, Default)]
pub struct LaunchForm {
    #[serde(default)]
    launch_token: String,
}

impl std::fmt::Debug for LaunchForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token names a person and a resident: never logged.
        f.debug_struct("LaunchForm").finish_non_exhaustive()
    }
}

#[derive(Template)]
#[template(path = "launch_refused.html")]
struct RefusedPage {
    chrome: Chrome,
    heading: String,
    message: String,
    code: &'static str,
    reference: Option<String>,
}

/// Who a refusal is recorded against: the person once the token has verified, otherwise the
/// system the token claims to come from (unverified, and recorded as a claim only).
enum Actor<'a> {
    Claimed(Option<String>),
    Person(&'a Principal),
}

fn agent(actor: &Actor<'_>) -> AuditAgent {
    match actor {
        Actor::Person(p) => carerecord_server::audit::agent(p),
        Actor::Claimed(iss) => AuditAgent {
            kind: PrincipalKind::System,
            id: iss.clone().unwrap_or_else(|| "unknown".to_owned()),
            name: None,
            role: None,
            organisation_id: None,
            ods_code: None,
        },
    }
}

async fn audit(
    state: &AppState,
    actor: &Actor<'_>,
    action: AuditAction,
    outcome: AuditOutcome,
    rule: &str,
    patients: Vec<String>,
    client: Option<String>,
) -> Result<(), PageError> {
    let mut r = AuditRecord::new(
        now_micros(),
        action,
        outcome,
        rule,
        agent(actor),
        Channel::Launch,
    );
    r.client_address = client;
    r.request_id = carerecord_server::request_id::current();
    r.patient_ids = patients;
    if matches!(action, AuditAction::Read) {
        r.purpose_of_use = Some("TREAT".to_owned());
    }
    state
        .store
        .append_audit(vec![r])
        .await
        .map_err(|e| PageError::Internal(format!("audit: {e}")))
}

/// The refusal, audited, as its page.
async fn refuse(
    state: &AppState,
    actor: Actor<'_>,
    refusal: LaunchRefusal,
    patients: Vec<String>,
    client: Option<String>,
) -> Response {
    let code = refusal.code();
    let (status, reference) = match &refusal {
        LaunchRefusal::Internal(e) => {
            let id = carerecord_server::request_id::current().unwrap_or_default();
            tracing::error!(request_id = %id, detail = %e, "context launch failed");
            (StatusCode::INTERNAL_SERVER_ERROR, Some(id))
        }
        LaunchRefusal::NotInCare => (StatusCode::FORBIDDEN, None),
        // The system's key server is down: a refusal, not a fault of this service.
        LaunchRefusal::KeysUnavailable => (StatusCode::SERVICE_UNAVAILABLE, None),
        LaunchRefusal::UnknownIssuer
        | LaunchRefusal::UnknownKey
        | LaunchRefusal::BadSignature
        | LaunchRefusal::Expired
        | LaunchRefusal::Replayed
        | LaunchRefusal::WrongAudience => (StatusCode::UNAUTHORIZED, None),
        LaunchRefusal::OrganisationNotRegistered
        | LaunchRefusal::RoleNotAllowed
        | LaunchRefusal::UserDisabled
        | LaunchRefusal::TrainingExpired => (StatusCode::FORBIDDEN, None),
        _ => (StatusCode::BAD_REQUEST, None),
    };
    // Only the reason code is logged: the token's claims name people.
    tracing::info!(rule = code, "context launch refused");
    if let Err(e) = audit(
        state,
        &actor,
        AuditAction::Login,
        AuditOutcome::Denied,
        code,
        patients,
        client,
    )
    .await
    {
        // A refusal that cannot be recorded is still a refusal; the failure is the server's.
        return e.into_response();
    }
    let (heading, message) = refusal.explanation();
    let page = RefusedPage {
        chrome: Chrome::anonymous(heading),
        heading: heading.to_owned(),
        message,
        code,
        reference,
    };
    match page.render() {
        Ok(html) => (status, axum::response::Html(html)).into_response(),
        Err(_) => (status, heading).into_response(),
    }
}

/// The Patient (any visibility: this is the check, not a view) with this NHS number.
async fn patient_by_nhs_number(
    state: &AppState,
    nhs: &NhsNumber,
) -> Result<Option<(LogicalId, serde_json::Value)>, PageError> {
    let pairs = [(
        "identifier".to_owned(),
        format!("{NHS_NUMBER_SYSTEM}|{}", nhs.as_str()),
    )];
    let q = parse(ResourceType::Patient, &pairs, Handling::Strict, "")
        .map_err(|e| PageError::Internal(format!("launch query: {e:?}")))?;
    let out = state.store.search(&q, 2, &Visibility::All).await?;
    let Some(p) = out.matches.into_iter().find(|r| !r.deleted) else {
        return Ok(None);
    };
    let id = LogicalId::parse(p.id.as_str()).map_err(|e| PageError::Internal(e.to_string()))?;
    let body = serde_json::from_str(&p.body).map_err(|e| PageError::Internal(e.to_string()))?;
    Ok(Some((id, body)))
}

fn parse_birth_date(s: &str) -> Option<time::Date> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s.trim(), &format).ok()
}

pub async fn handler(
    State(state): State<AppState>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    form: Result<Form<LaunchForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let client = connect.map(|Extension(ConnectInfo(a))| a.ip().to_string());
    let token = form.map(|Form(f)| f.launch_token).unwrap_or_default();
    let claimed = carerecord_identity::launch::claimed_issuer(&token);
    if token.trim().is_empty() {
        return refuse(
            &state,
            Actor::Claimed(claimed),
            LaunchRefusal::Malformed("the form has no launch_token".into()),
            Vec::new(),
            client,
        )
        .await;
    }
    let launch_url = format!(
        "{}/launch",
        carerecord_server::auth::origin(&state.settings, &headers)
    );
    let now = now_micros();
    let launch = match state.identity.verify_launch(&token, &launch_url, now).await {
        Ok(l) => l,
        Err(r) => return refuse(&state, Actor::Claimed(claimed), r, Vec::new(), client).await,
    };
    match open(&state, &launch, client.clone(), now).await {
        Ok(resp) => resp,
        Err(Refused(r, patients)) => {
            refuse(
                &state,
                Actor::Person(&launch.principal),
                r,
                patients,
                client,
            )
            .await
        }
    }
}

/// A refusal after the token verified, with the people it concerns (for their access report).
struct Refused(LaunchRefusal, Vec<String>);

impl From<PageError> for Refused {
    fn from(e: PageError) -> Self {
        Refused(
            LaunchRefusal::Internal(carerecord_identity::IdentityError::Internal(format!(
                "{e:?}"
            ))),
            Vec::new(),
        )
    }
}

impl From<StoreError> for Refused {
    fn from(e: StoreError) -> Self {
        Refused(LaunchRefusal::from(e), Vec::new())
    }
}

async fn open(
    state: &AppState,
    launch: &VerifiedLaunch,
    client: Option<String>,
    now: i64,
) -> Result<Response, Refused> {
    let p = &launch.principal;
    if launch.user_created || launch.role_granted {
        // The just-in-time mapping is an account change: recorded as such.
        audit(
            state,
            &Actor::Person(p),
            AuditAction::Admin,
            AuditOutcome::Allowed,
            if launch.user_created {
                "launch-user-created"
            } else {
                "launch-role-granted"
            },
            Vec::new(),
            client.clone(),
        )
        .await?;
    }
    if !p.training_current(now) {
        return Err(Refused(LaunchRefusal::TrainingExpired, Vec::new()));
    }
    let (Ok(nhs), Some(born)) = (
        NhsNumber::parse(launch.claims.nhs_number.trim()),
        parse_birth_date(&launch.claims.birth_date),
    ) else {
        return Err(Refused(LaunchRefusal::BadResident, Vec::new()));
    };
    let Some((id, body)) = patient_by_nhs_number(state, &nhs).await? else {
        return Err(Refused(LaunchRefusal::NoSuchPerson, Vec::new()));
    };
    let patients = vec![id.as_str().to_owned()];
    if body["birthDate"].as_str().and_then(parse_birth_date) != Some(born) {
        return Err(Refused(LaunchRefusal::DifferentPeople, patients));
    }
    let access = Access::new(p.clone(), &state.settings.policy);
    let vis = access.vis().map_err(PageError::from)?.clone();
    let in_care = match state.store.read(ResourceType::Patient, &id, &vis).await {
        Ok(_) => true,
        Err(StoreError::NotFound | StoreError::Gone(_)) => false,
        Err(e) => return Err(e.into()),
    };
    let session = state
        .identity
        .launch_session(launch, now)
        .await
        .map_err(|e| Refused(LaunchRefusal::Internal(e), Vec::new()))?;
    let Some(cookie) = cookie_for(state, &session.access_token) else {
        return Err(PageError::Internal("session cookie".into()).into());
    };
    if !in_care {
        // The person is real and matched, but not this home's: the session opens (the user
        // is who their system says) on the emergency access offer, the portal's own path.
        audit(
            state,
            &Actor::Person(p),
            AuditAction::Login,
            AuditOutcome::Denied,
            LaunchRefusal::NotInCare.code(),
            patients,
            client,
        )
        .await?;
        // A page, not a redirect: the browser's next request (the emergency access form) starts
        // from this page, so it carries the session.
        let mut resp = super::find::emergency_access_offer(p, &nhs, born)?;
        resp.headers_mut().insert(header::SET_COOKIE, cookie);
        return Ok(resp);
    }
    audit(
        state,
        &Actor::Person(p),
        AuditAction::Login,
        AuditOutcome::Allowed,
        "context-launch",
        patients,
        client,
    )
    .await?;
    let mut resp = Redirect::to(&format!("/residents/{}", id.as_str())).into_response();
    resp.headers_mut().insert(header::SET_COOKIE, cookie);
    resp.headers_mut()
        .append(header::SET_COOKIE, crate::session::launch_marker());
    Ok(resp)
}
