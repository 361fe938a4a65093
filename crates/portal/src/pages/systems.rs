//! The programme administrators' pages for registered systems and SMART apps (issue 7): the
//! list of every registered client and what it may do, registering a care home record system
//! (its organisations, the roles it may launch staff with, its `system/` scopes, and its
//! public keys as a pasted JWK Set or a JWKS URL), registering a SMART app, and disabling one
//! (which revokes its tokens at once: `Identity::disable_client`).
//!
//! Only programme administrators: anyone else gets the kind "not allowed" page, and the
//! refusal is audited. Every view and change is audited too (`AuditAction::Admin`, portal
//! channel, the client id as the entry's query), before the page leaves. A registration is
//! checked whole and written in one transaction: a form with a problem writes nothing and
//! comes back with the NHS.UK error summary.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use carerecord_access::Role;
use carerecord_identity::register::{Keys, NewApp, NewSystem, Problem, RegisterError};
use carerecord_server::AppState;
use carerecord_server::audit::{AuditNote, record};
use carerecord_store::{AuditAction, AuditOutcome, Channel, RegisteredClient};

use super::{Choice, FieldError};
use crate::page::{Chrome, PageError, render};
use crate::session::Staff;

/// The roles a launching system may assert, as the form offers them.
const LAUNCH_ROLES: [Role; 4] = [
    Role::CareWorker,
    Role::SeniorCarer,
    Role::RegisteredNurse,
    Role::CareHomeManager,
];

/// Writes the administration entry for what the administrator did (or was refused), naming
/// the client it was about.
async fn audit(
    state: &AppState,
    staff: &Staff,
    outcome: AuditOutcome,
    rule: &str,
    client_id: Option<&str>,
) -> Result<(), PageError> {
    let mut r = record(
        &staff.access.principal,
        AuditAction::Admin,
        outcome,
        rule,
        &AuditNote::default(),
        staff.client.clone(),
    );
    r.channel = Channel::Portal;
    // Registering systems is not care: no purpose of use.
    r.purpose_of_use = None;
    r.query = client_id.map(|c| format!("client_id={c}"));
    state
        .store
        .append_audit(vec![r])
        .await
        .map_err(|e| PageError::Internal(format!("audit: {e}")))
}

/// Programme administrators only; a refusal is audited before its page.
async fn administrator(state: &AppState, staff: &Staff, what: &str) -> Result<(), PageError> {
    if staff.access.principal.role == Role::ProgrammeAdmin {
        return Ok(());
    }
    audit(
        state,
        staff,
        AuditOutcome::Denied,
        &format!("deny-{what}-not-programme-admin"),
        None,
    )
    .await?;
    Err(PageError::Forbidden(
        "Only the programme's administrators can see and change registered systems and apps. \
         If you need a system registered, ask them."
            .into(),
    ))
}

/// One registered client as the list shows it.
pub struct ClientRow {
    pub client_id: String,
    pub kind: String,
    pub organisations: Vec<String>,
    pub scopes: String,
    pub keys: String,
    pub addresses: Vec<String>,
    pub created: String,
    pub disabled: bool,
}

fn client_row(c: &RegisteredClient) -> ClientRow {
    let kind = match (&c.app, c.client.role.as_str()) {
        (Some(a), _) if a.confidential => "SMART app (confidential)".to_owned(),
        (Some(_), _) => "SMART app (public)".to_owned(),
        (None, "system") => "System".to_owned(),
        (None, "service") => "carerecord service".to_owned(),
        (None, other) => other.to_owned(),
    };
    let mut organisations = Vec::new();
    if !c.client.organisation_id.is_empty() {
        organisations.push(format!("Acts for {}", c.client.organisation_id));
    }
    for l in &c.launch {
        organisations.push(format!(
            "Launches into {} as {}",
            l.organisation_id,
            l.roles.join(", ")
        ));
    }
    let scopes = match (&c.app, &c.scope) {
        (Some(a), _) => a.scopes.clone(),
        (None, Some(s)) => s.clone(),
        (None, None) => "Any system/ scope the policy allows".to_owned(),
    };
    let mut keys = Vec::new();
    if c.client.public_key_pem.is_some() {
        keys.push("Registered public keys".to_owned());
    }
    if let Some(u) = &c.jwks_uri {
        keys.push(format!("JWKS URL {u}"));
    }
    if c.client.secret_hash.is_some() {
        keys.push("Client secret".to_owned());
    }
    if keys.is_empty() {
        keys.push("None (public app, PKCE)".to_owned());
    }
    let mut addresses = Vec::new();
    if let Some(a) = &c.app {
        if let Some(l) = &a.launch_url {
            addresses.push(format!("Launch: {l}"));
        }
        addresses.extend(a.redirect_uris.iter().map(|u| format!("Redirect: {u}")));
    }
    ClientRow {
        client_id: c.client.client_id.clone(),
        kind,
        organisations,
        scopes,
        keys: keys.join("; "),
        addresses,
        created: super::when(c.client.created),
        disabled: c.client.disabled,
    }
}

#[derive(Template)]
#[template(path = "systems_list.html")]
struct ListPage {
    chrome: Chrome,
    rows: Vec<ClientRow>,
}

/// `GET /systems`: every registered system, service and app.
pub async fn list(State(state): State<AppState>, staff: Staff) -> Result<Response, PageError> {
    administrator(&state, &staff, "client-list").await?;
    let clients = state
        .identity
        .registered_clients()
        .await
        .map_err(|e| PageError::Internal(e.to_string()))?;
    audit(&state, &staff, AuditOutcome::Allowed, "client-list", None).await?;
    render(
        StatusCode::OK,
        &ListPage {
            chrome: Chrome::signed_in("Systems and apps", &staff.access.principal, "/systems"),
            rows: clients.iter().map(client_row).collect(),
        },
    )
}

/// The system form's fields, as typed.
#[derive(Default)]
pub struct SystemFields {
    pub client_id: String,
    pub organisations: String,
    pub scope: String,
    pub key_source: String,
    pub jwks: String,
    pub jwks_uri: String,
    pub secret: bool,
}

#[derive(Template)]
#[template(path = "systems_new_system.html")]
struct SystemPage {
    chrome: Chrome,
    f: SystemFields,
    roles: Vec<Choice>,
    errors: Vec<FieldError>,
}

impl SystemPage {
    fn error(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|e| e.field == field)
            .map(|e| e.message.as_str())
    }
}

fn role_choices(checked: &[Role]) -> Vec<Choice> {
    LAUNCH_ROLES
        .iter()
        .map(|r| Choice {
            value: r.as_str().to_owned(),
            label: r.display().to_owned(),
            checked: checked.contains(r),
        })
        .collect()
}

/// The value of form field `name` (the last, if repeated), and every value of it.
fn field(form: &[(String, String)], name: &str) -> String {
    form.iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

fn fields<'a>(form: &'a [(String, String)], name: &'a str) -> impl Iterator<Item = &'a str> {
    form.iter()
        .filter(move |(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Problems as the error summary shows them (the field names are the form's ids).
fn field_errors(problems: Vec<Problem>) -> Vec<FieldError> {
    problems
        .into_iter()
        .map(|p| FieldError {
            // "Give the keys" is about the key source choice.
            field: if p.field == "keys" {
                "key_source"
            } else {
                p.field
            },
            message: p.message,
        })
        .collect()
}

fn system_page(
    staff: &Staff,
    f: SystemFields,
    roles: &[Role],
    errors: Vec<FieldError>,
) -> SystemPage {
    SystemPage {
        chrome: Chrome::signed_in(
            "Register a care home system",
            &staff.access.principal,
            "/systems",
        ),
        f,
        roles: role_choices(roles),
        errors,
    }
}

/// `GET /systems/new-system`.
pub async fn system_form(
    State(state): State<AppState>,
    staff: Staff,
) -> Result<Response, PageError> {
    administrator(&state, &staff, "client-register").await?;
    let f = SystemFields {
        key_source: "uri".into(),
        ..SystemFields::default()
    };
    render(StatusCode::OK, &system_page(&staff, f, &[], Vec::new()))
}

#[derive(Template)]
#[template(path = "systems_done.html")]
struct DonePage {
    chrome: Chrome,
    heading: String,
    client_id: String,
    secret: Option<String>,
}

/// `POST /systems/new-system`.
pub async fn system_submit(
    State(state): State<AppState>,
    staff: Staff,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    administrator(&state, &staff, "client-register").await?;
    let f = SystemFields {
        client_id: field(&form, "client_id").trim().to_owned(),
        organisations: field(&form, "organisations"),
        scope: field(&form, "scope"),
        key_source: field(&form, "key_source"),
        jwks: field(&form, "jwks"),
        jwks_uri: field(&form, "jwks_uri").trim().to_owned(),
        secret: field(&form, "secret") == "yes",
    };
    let mut problems = Vec::new();
    let roles: Vec<Role> = fields(&form, "launch_roles")
        .filter_map(|r| LAUNCH_ROLES.iter().copied().find(|l| l.as_str() == r))
        .collect();
    let keys = match f.key_source.as_str() {
        "uri" => Keys::Uri(f.jwks_uri.clone()),
        "document" => Keys::Document(f.jwks.clone()),
        "none" => Keys::None,
        _ => {
            problems.push(Problem {
                field: "key_source",
                message: "Choose where the system's public keys are".into(),
            });
            Keys::None
        }
    };
    let result = if problems.is_empty() {
        state
            .identity
            .register_system(NewSystem {
                client_id: f.client_id.clone(),
                organisations: f
                    .organisations
                    .split(|c: char| c == ',' || c.is_whitespace())
                    .filter(|o| !o.is_empty())
                    .map(str::to_owned)
                    .collect(),
                launch_roles: roles.clone(),
                scope: Some(f.scope.clone()),
                keys,
                secret: f.secret,
            })
            .await
    } else {
        Err(RegisterError::Invalid(problems))
    };
    answer_registration(
        &state,
        &staff,
        result,
        ("System registered", "System registered"),
        |errors| system_page(&staff, f, &roles, errors),
    )
    .await
}

/// The app form's fields, as typed.
#[derive(Default)]
pub struct AppFields {
    pub client_id: String,
    pub name: String,
    pub redirect_uris: String,
    pub launch_url: String,
    pub scopes: String,
    pub confidential: String,
    pub key_source: String,
    pub jwks: String,
    pub jwks_uri: String,
}

#[derive(Template)]
#[template(path = "systems_new_app.html")]
struct AppPage {
    chrome: Chrome,
    f: AppFields,
    errors: Vec<FieldError>,
}

impl AppPage {
    fn error(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|e| e.field == field)
            .map(|e| e.message.as_str())
    }
}

fn app_page(staff: &Staff, f: AppFields, errors: Vec<FieldError>) -> AppPage {
    AppPage {
        chrome: Chrome::signed_in("Register a SMART app", &staff.access.principal, "/systems"),
        f,
        errors,
    }
}

/// `GET /systems/new-app`.
pub async fn app_form(State(state): State<AppState>, staff: Staff) -> Result<Response, PageError> {
    administrator(&state, &staff, "client-register").await?;
    let f = AppFields {
        confidential: "public".into(),
        key_source: "secret".into(),
        ..AppFields::default()
    };
    render(StatusCode::OK, &app_page(&staff, f, Vec::new()))
}

/// `POST /systems/new-app`.
pub async fn app_submit(
    State(state): State<AppState>,
    staff: Staff,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    administrator(&state, &staff, "client-register").await?;
    let f = AppFields {
        client_id: field(&form, "client_id").trim().to_owned(),
        name: field(&form, "name"),
        redirect_uris: field(&form, "redirect_uris"),
        launch_url: field(&form, "launch_url").trim().to_owned(),
        scopes: field(&form, "scopes"),
        confidential: field(&form, "confidential"),
        key_source: field(&form, "key_source"),
        jwks: field(&form, "jwks"),
        jwks_uri: field(&form, "jwks_uri").trim().to_owned(),
    };
    let mut problems = Vec::new();
    let confidential = match f.confidential.as_str() {
        "public" => false,
        "confidential" => true,
        _ => {
            problems.push(Problem {
                field: "confidential",
                message: "Choose whether the app is public or confidential".into(),
            });
            false
        }
    };
    let keys = if !confidential {
        Keys::None
    } else {
        match f.key_source.as_str() {
            "uri" => Keys::Uri(f.jwks_uri.clone()),
            "document" => Keys::Document(f.jwks.clone()),
            "secret" => Keys::None,
            _ => {
                problems.push(Problem {
                    field: "key_source",
                    message: "Choose how the app authenticates".into(),
                });
                Keys::None
            }
        }
    };
    let result = if problems.is_empty() {
        state
            .identity
            .register_app(NewApp {
                client_id: f.client_id.clone(),
                name: f.name.clone(),
                redirect_uris: f
                    .redirect_uris
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect(),
                launch_url: Some(f.launch_url.clone()),
                scopes: f.scopes.clone(),
                confidential,
                keys,
            })
            .await
    } else {
        Err(RegisterError::Invalid(problems))
    };
    answer_registration(
        &state,
        &staff,
        result,
        ("App registered", "SMART app registered"),
        |errors| app_page(&staff, f, errors),
    )
    .await
}

/// The answer to a registration form: audited and the done page (showing a generated secret
/// once), or the same form again with each problem beside its field; nothing was written then.
async fn answer_registration<T: Template>(
    state: &AppState,
    staff: &Staff,
    result: Result<carerecord_identity::CreatedClient, RegisterError>,
    (title, heading): (&str, &str),
    form_again: impl FnOnce(Vec<FieldError>) -> T,
) -> Result<Response, PageError> {
    match result {
        Ok(created) => {
            audit(
                state,
                staff,
                AuditOutcome::Allowed,
                "client-register",
                Some(&created.client_id),
            )
            .await?;
            render(
                StatusCode::OK,
                &DonePage {
                    chrome: Chrome::signed_in(title, &staff.access.principal, "/systems"),
                    heading: heading.into(),
                    client_id: created.client_id,
                    secret: created.secret,
                },
            )
        }
        Err(RegisterError::Invalid(problems)) => {
            render(StatusCode::BAD_REQUEST, &form_again(field_errors(problems)))
        }
        Err(RegisterError::Failed(e)) => Err(PageError::Internal(e.to_string())),
    }
}

#[derive(Template)]
#[template(path = "systems_disable.html")]
struct DisablePage {
    chrome: Chrome,
    r: ClientRow,
}

/// `GET /systems/{client_id}/disable`: what disabling will do, and the button that does it —
/// a hospital feed or a home's record system stops at once, so it is never one click from the
/// list. A client already disabled, or unknown, has nothing to confirm.
pub async fn disable_confirm(
    State(state): State<AppState>,
    staff: Staff,
    Path(client_id): Path<String>,
) -> Result<Response, PageError> {
    administrator(&state, &staff, "client-disable").await?;
    let clients = state
        .identity
        .registered_clients()
        .await
        .map_err(|e| PageError::Internal(e.to_string()))?;
    let Some(c) = clients.iter().find(|c| c.client.client_id == client_id) else {
        return Err(PageError::NotFound);
    };
    if c.client.disabled {
        return Err(PageError::BadRequest(
            "This system or app was disabled already.".into(),
        ));
    }
    audit(
        &state,
        &staff,
        AuditOutcome::Allowed,
        "client-disable-confirm",
        Some(&client_id),
    )
    .await?;
    render(
        StatusCode::OK,
        &DisablePage {
            chrome: Chrome::signed_in(
                "Disable a system or app",
                &staff.access.principal,
                "/systems",
            ),
            r: client_row(c),
        },
    )
}

/// `POST /systems/{client_id}/disable`: no more tokens, launches or authorisations, and its
/// live tokens revoked, at once.
pub async fn disable(
    State(state): State<AppState>,
    staff: Staff,
    Path(client_id): Path<String>,
) -> Result<Response, PageError> {
    administrator(&state, &staff, "client-disable").await?;
    let done = state
        .identity
        .disable_client(&client_id)
        .await
        .map_err(|e| PageError::Internal(e.to_string()))?;
    if !done {
        let known = state
            .identity
            .registered_clients()
            .await
            .map_err(|e| PageError::Internal(e.to_string()))?
            .iter()
            .any(|c| c.client.client_id == client_id);
        audit(
            &state,
            &staff,
            AuditOutcome::Denied,
            "client-disable-no-change",
            Some(&client_id),
        )
        .await?;
        return Err(if known {
            PageError::BadRequest("This system or app was disabled already.".into())
        } else {
            PageError::NotFound
        });
    }
    audit(
        &state,
        &staff,
        AuditOutcome::Allowed,
        "client-disable",
        Some(&client_id),
    )
    .await?;
    Ok(Redirect::to("/systems").into_response())
}
