//! Every request to `/fhir` that a principal makes is written to the audit trail before its
//! response leaves: the handler says what it touched (an [`AuditNote`] in the response's
//! extensions), this middleware adds who, from where, the outcome and the rule, and waits until
//! the entry is durable (the store group-commits concurrent entries). Writes record their entry
//! inside their own transaction instead and mark the note as recorded.
//!
//! If the entry cannot be written, the response is not sent: an access that cannot be accounted
//! for does not happen.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use carerecord_access::{Principal, PrincipalId};
use carerecord_fhir::ResourceType;
use carerecord_store::{
    AuditAction, AuditAgent, AuditOutcome, AuditRecord, BreakGlass, Channel, PrincipalKind,
    StoredResource, now_micros,
};

use crate::AppState;
use crate::error::ApiError;
use crate::request_id;

/// What a handler touched, for its audit entry.
#[derive(Debug, Clone, Default)]
pub struct AuditNote {
    pub action: Option<AuditAction>,
    /// `Type/id/_history/version` of each resource returned or written.
    pub resources: Vec<String>,
    /// The people whose records those belong to.
    pub patients: Vec<String>,
    pub break_glass: Option<BreakGlass>,
    /// The entry was already written (with a write, in its transaction).
    pub recorded: bool,
}

impl AuditNote {
    pub fn of(action: AuditAction, resources: &[StoredResource]) -> Self {
        let mut patients: Vec<String> = resources.iter().filter_map(patient_of).collect();
        patients.sort();
        patients.dedup();
        AuditNote {
            action: Some(action),
            resources: resources
                .iter()
                .map(|r| format!("{}/{}/_history/{}", r.resource_type, r.id, r.version_id))
                .collect(),
            patients,
            break_glass: None,
            recorded: false,
        }
    }

    /// Puts the note on `resp`.
    pub fn attach(self, mut resp: Response) -> Response {
        resp.extensions_mut().insert(self);
        resp
    }
}

/// The person a stored resource is about (its Patient compartment), as the store keeps it
/// beside the row: the audit of a search of 1,000 resources must not parse 1,000 bodies again.
fn patient_of(r: &StoredResource) -> Option<String> {
    if r.resource_type == ResourceType::Patient {
        return Some(r.id.as_str().to_owned());
    }
    r.patient_id.clone()
}

/// The client's network address, for audit entries of handlers outside `/fhir` (where the
/// middleware reads it itself). Never refuses: `None` when the server runs without
/// connection info.
#[derive(Debug, Clone)]
pub struct ClientAddress(pub Option<String>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientAddress(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string()),
        ))
    }
}

/// The rule a denial was decided by, carried on the refused response.
#[derive(Debug, Clone, Copy)]
pub struct DeniedBy(pub &'static str);

/// The agent of an entry.
pub fn agent(p: &Principal) -> AuditAgent {
    let (kind, id) = match &p.id {
        PrincipalId::User(u) => (PrincipalKind::User, u.clone()),
        PrincipalId::System(s) => (PrincipalKind::System, s.clone()),
    };
    AuditAgent {
        kind,
        id,
        name: Some(p.name.clone()),
        role: Some(p.role.rbac_code().unwrap_or(p.role.as_str()).to_owned()),
        organisation_id: Some(p.organisation_id.clone()),
        ods_code: Some(p.organisation_ods.clone()),
    }
}

/// A record for `p` doing `action` now.
pub fn record(
    p: &Principal,
    action: AuditAction,
    outcome: AuditOutcome,
    rule: &str,
    note: &AuditNote,
    client: Option<String>,
) -> AuditRecord {
    let mut r = AuditRecord::new(now_micros(), action, outcome, rule, agent(p), Channel::Api);
    r.client_address = client;
    r.request_id = request_id::current();
    r.patient_ids = note.patients.clone();
    r.resources = note.resources.clone();
    r.purpose_of_use = Some(
        if note.break_glass.is_some() {
            "ETREAT"
        } else {
            "TREAT"
        }
        .to_owned(),
    );
    r.break_glass = note.break_glass.clone();
    r
}

/// What a request without a note attempted, from its method and path.
pub(crate) fn action_of(method: &Method, path: &str) -> AuditAction {
    let segments: Vec<&str> = path
        .trim_start_matches("/fhir")
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    match (method.as_str(), segments.as_slice()) {
        ("GET", [_, _, "_history", _]) => AuditAction::Vread,
        ("GET", [.., "_history"]) => AuditAction::History,
        ("GET", [_, _, "$everything"]) => AuditAction::Everything,
        ("GET", [_, _]) => AuditAction::Read,
        ("GET", _) => AuditAction::Search,
        ("POST", []) => AuditAction::Transaction,
        ("POST", [_, "_search"]) => AuditAction::Search,
        ("POST", [_, _, "$break-glass"]) => AuditAction::BreakGlass,
        ("POST", _) => AuditAction::Create,
        ("PUT", _) => AuditAction::Update,
        ("DELETE", _) => AuditAction::Delete,
        _ => AuditAction::Read,
    }
}

/// The middleware (inside authentication, so the principal is known).
pub async fn middleware(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let principal = req.extensions().get::<Principal>().cloned();
    let client = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    let resp = next.run(req).await;
    let Some(principal) = principal else {
        return resp;
    };
    let note = resp
        .extensions()
        .get::<AuditNote>()
        .cloned()
        .unwrap_or_default();
    if note.recorded {
        return resp;
    }
    let status = resp.status();
    let (outcome, rule) = if status.is_success() || status.is_redirection() {
        (AuditOutcome::Allowed, "allowed")
    } else if let Some(DeniedBy(rule)) = resp.extensions().get::<DeniedBy>() {
        (AuditOutcome::Denied, *rule)
    } else if status == StatusCode::FORBIDDEN || status == StatusCode::UNAUTHORIZED {
        (AuditOutcome::Denied, "denied")
    } else {
        (AuditOutcome::Error, "error")
    };
    let action = note.action.unwrap_or_else(|| action_of(&method, &path));
    let mut note = note;
    if outcome == AuditOutcome::Denied && note.patients.is_empty() {
        // The refused person, for their access report: the refusal said nothing about them,
        // but the trail (which only privacy officers read) must.
        target_of(&state, &path, &mut note).await;
    }
    let mut r = record(&principal, action, outcome, rule, &note, client);
    r.query = query;
    match state.store.append_audit(vec![r]).await {
        Ok(()) => resp,
        Err(e) => {
            tracing::error!(error = %e, "audit entry not written: the response is withheld");
            ApiError::Internal(format!("audit: {e}")).into_response()
        }
    }
}

/// Commits a write transaction together with its audit entry, so both land or neither; the
/// returned note (marked recorded) goes on the response.
pub async fn commit_audited(
    mut tx: Box<dyn carerecord_store::StoreTx>,
    access: &crate::access::Access,
    action: AuditAction,
    written: &crate::fhir::interactions::Written,
) -> Result<AuditNote, ApiError> {
    use crate::fhir::interactions::Written;
    let resources: Vec<StoredResource> = match written {
        Written::Created(r) | Written::Updated(r) | Written::Existing(r) => vec![r.clone()],
        Written::Deleted(Some(r)) => vec![r.clone()],
        Written::Deleted(None) => Vec::new(),
    };
    let mut note = AuditNote::of(action, &resources);
    let r = record(
        &access.principal,
        action,
        AuditOutcome::Allowed,
        "write-allowed",
        &note,
        None,
    );
    tx.append_audit(vec![r]).await?;
    tx.commit().await?;
    note.recorded = true;
    Ok(note)
}

/// The outcome and rule of a request that failed with `e`, as the middleware records them for
/// a refused response (also for the entries of a Bundle).
pub(crate) fn outcome_of_error(e: &ApiError) -> (AuditOutcome, &'static str) {
    match e {
        ApiError::Denied(d) => (AuditOutcome::Denied, d.rule()),
        e if matches!(e.status(), StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED) => {
            (AuditOutcome::Denied, "denied")
        }
        _ => (AuditOutcome::Error, "error"),
    }
}

/// For a refused request about one resource (`[type]/[id]…`): that resource and its person,
/// looked up without restriction for the audit entry only.
pub(crate) async fn target_of(state: &AppState, path: &str, note: &mut AuditNote) {
    let segments: Vec<&str> = path
        .trim_start_matches("/fhir")
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let [type_name, id, ..] = segments.as_slice() else {
        return;
    };
    let (Ok(rt), Ok(lid)) = (
        type_name.parse::<ResourceType>(),
        carerecord_fhir::LogicalId::parse(id),
    ) else {
        return;
    };
    note.resources.push(format!("{rt}/{id}"));
    if rt == ResourceType::Patient {
        note.patients.push((*id).to_owned());
    } else if let Ok(r) = state
        .store
        .read(rt, &lid, &carerecord_access::Visibility::All)
        .await
    {
        note.patients.extend(patient_of(&r));
    }
}

/// Stands in for the agent of an attempt that named no known account. What was typed is not
/// recorded (see [`carerecord_identity::SignInAttempt`]); the parentheses keep it apart from
/// every real id, which never contain them.
pub const UNKNOWN_USER: &str = "(unknown user)";
/// The same for a token request naming no registered client.
pub const UNKNOWN_CLIENT: &str = "(unknown client)";

/// The entry of a sign-in attempt (`POST /auth/login`), or `None` for the intermediate steps
/// that are not outcomes (a code or a role still to give, after a right password).
pub fn sign_in_record(
    attempt: &carerecord_identity::SignInAttempt,
    principal: Option<&Principal>,
    client: Option<String>,
) -> Option<AuditRecord> {
    use carerecord_identity::SignInEvent as E;
    let (action, outcome) = match attempt.event {
        E::SignedIn => (AuditAction::Login, AuditOutcome::Allowed),
        E::CodeRequired | E::ChooseRole => return None,
        E::LockedOut => (AuditAction::Lockout, AuditOutcome::Denied),
        E::Error => (AuditAction::LoginFailed, AuditOutcome::Error),
        _ => (AuditAction::LoginFailed, AuditOutcome::Denied),
    };
    let agent = match principal {
        Some(p) => agent(p),
        None => AuditAgent {
            kind: PrincipalKind::User,
            id: attempt
                .user_id
                .clone()
                .unwrap_or_else(|| UNKNOWN_USER.to_owned()),
            name: attempt.display_name.clone(),
            role: None,
            organisation_id: attempt.organisation_id.clone(),
            ods_code: None,
        },
    };
    let mut r = AuditRecord::new(
        now_micros(),
        action,
        outcome,
        attempt.event.rule(),
        agent,
        Channel::Api,
    );
    r.client_address = client;
    r.request_id = request_id::current();
    Some(r)
}

/// The entry of a token request (`POST /auth/token`): the issued token's principal, or, for a
/// refusal, the registered client the request claimed to be (client ids are not secrets) —
/// an unregistered one is not recorded, as with usernames.
pub async fn token_record(
    state: &AppState,
    issued: Option<&Principal>,
    claimed_client: Option<&str>,
    refusal: Option<&str>,
    client: Option<String>,
) -> AuditRecord {
    let (outcome, rule) = match (issued, refusal) {
        (Some(_), _) => (AuditOutcome::Allowed, "token-issued".to_owned()),
        (None, Some("server_error")) => (AuditOutcome::Error, "error".to_owned()),
        (None, e) => (
            AuditOutcome::Denied,
            format!("deny-token-{}", e.unwrap_or("refused").replace('_', "-")),
        ),
    };
    let agent = match issued {
        Some(p) => agent(p),
        None => client_agent(state, claimed_client).await,
    };
    let mut r = AuditRecord::new(
        now_micros(),
        AuditAction::Token,
        outcome,
        rule,
        agent,
        Channel::Api,
    );
    r.client_address = client;
    r.request_id = request_id::current();
    r
}

/// The agent of an `/auth` request by an OAuth client: the registered client `client_id`
/// names (client ids are not secrets), or [`UNKNOWN_CLIENT`] — what an unregistered one typed
/// is not recorded, as with usernames.
pub async fn client_agent(state: &AppState, client_id: Option<&str>) -> AuditAgent {
    let known = match client_id {
        Some(id) => state.store.directory().client(id).await.ok().flatten(),
        None => None,
    };
    AuditAgent {
        kind: PrincipalKind::System,
        id: known
            .as_ref()
            .map_or_else(|| UNKNOWN_CLIENT.to_owned(), |c| c.client_id.clone()),
        name: None,
        role: None,
        organisation_id: known.map(|c| c.organisation_id),
        ods_code: None,
    }
}
