//! SMART App Launch 2.0: carerecord as the authorisation server of its own FHIR API.
//!
//! The protocol without HTTP: registering apps; checking an authorisation request (RFC 6749
//! §4.1 with PKCE, RFC 7636: S256 only); issuing a single-use, one-minute authorisation code
//! for the signed-in person's principal, the granted scopes and the patient in context;
//! redeeming it at the token endpoint for a signed JWT access token (kept, like every bearer
//! token, only as a digest, so revocation and idle expiry work through
//! [`Identity::authenticate`]), an OpenID Connect id token and a refresh token; rotating
//! refresh tokens (a spent one presented again revokes its whole family); revocation (RFC
//! 7009) and introspection (RFC 7662); and the EHR launch contexts the portal opens.
//!
//! Scopes here are only *issued*: what a granted scope permits on a FHIR request is decided
//! by the access crate when the request is made. Scopes only ever narrow the access policy.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use carerecord_access::{Principal, PrincipalId, SmartGrant};
use carerecord_store::{
    AuthCodeRecord, ClientRecord, LaunchContextRecord, RefreshTokenRecord, SmartAppRecord,
    StoreError, TokenRecord, now_micros,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::oauth::{OAuthError, TokenRequest, TokenResponse};
use crate::{CreatedClient, Identity, IdentityError, MICROS_PER_SECOND, bearer, micros, password};

/// The `oauth_clients.role` of an app registered for the authorisation code flow. It is no
/// role of the access crate, so such a client can never get a token by client credentials.
pub const APP_ROLE: &str = "smart-app";

/// How long an authorisation code may be redeemed.
pub const CODE_LIFETIME: Duration = Duration::from_secs(60);
/// How long an EHR launch id may be used.
pub const LAUNCH_LIFETIME: Duration = Duration::from_secs(300);
/// The lifetime of an access token issued to an app.
pub const ACCESS_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
/// The absolute lifetime of a refresh token family with `offline_access`. With
/// `online_access` a family lives as long as a portal session would.
pub const OFFLINE_LIFETIME: Duration = Duration::from_secs(30 * 86_400);

/// The scopes that are not about resources, all of which carerecord understands (the same
/// vocabulary as the access crate's scope grammar, which decides what a granted set permits).
const CONTEXT_SCOPES: [&str; 7] = [
    "launch",
    "launch/patient",
    "openid",
    "fhirUser",
    "profile",
    "offline_access",
    "online_access",
];

/// An app to register.
#[derive(Debug, Clone)]
pub struct NewSmartApp {
    pub client_id: String,
    pub name: String,
    pub redirect_uris: Vec<String>,
    /// The most it may be granted (space-separated).
    pub scopes: String,
    /// Generate a client secret (a confidential app).
    pub secret: bool,
    /// A PEM public key or JWK (Set), for `private_key_jwt` (a confidential app).
    pub public_key: Option<String>,
    pub launch_url: Option<String>,
}

/// Why an authorisation request fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeError {
    /// Before the redirect URI is known to be the app's: shown on a page, never redirected
    /// (RFC 6749 §4.1.2.1), so carerecord cannot be made an open redirector.
    Page(String),
    /// Sent back to the app's redirect URI.
    Redirect {
        redirect_uri: String,
        error: &'static str,
        description: String,
        state: Option<String>,
    },
}

impl AuthorizeError {
    /// Where to send the browser, for a redirected error.
    pub fn location(&self) -> Option<String> {
        match self {
            AuthorizeError::Page(_) => None,
            AuthorizeError::Redirect {
                redirect_uri,
                error,
                description,
                state,
            } => {
                let mut params = vec![
                    ("error", *error),
                    ("error_description", description.as_str()),
                ];
                if let Some(s) = state {
                    params.push(("state", s.as_str()));
                }
                Some(with_query(redirect_uri, &params))
            }
        }
    }
}

impl From<IdentityError> for AuthorizeError {
    fn from(e: IdentityError) -> Self {
        tracing::error!(error = %e, "authorisation request failed");
        AuthorizeError::Page("The request could not be handled. Try again later.".into())
    }
}

impl From<StoreError> for AuthorizeError {
    fn from(e: StoreError) -> Self {
        IdentityError::Store(e).into()
    }
}

/// How the patient in context is decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatientContext {
    /// No patient in context (`user/` scopes only).
    None,
    /// Standalone launch with `launch/patient`: the person picks one of their residents.
    Pick,
    /// EHR launch from the portal: the launch names the patient.
    Launch(LaunchContextRecord),
}

/// A checked authorisation request.
#[derive(Debug, Clone)]
pub struct AuthorizeRequest {
    pub app: SmartAppRecord,
    pub redirect_uri: String,
    pub state: Option<String>,
    /// The scopes that would be granted (requested ∩ registered), space-separated.
    pub scope: String,
    pub code_challenge: String,
    pub nonce: Option<String>,
    pub patient: PatientContext,
}

impl AuthorizeRequest {
    fn error(&self, error: &'static str, description: impl Into<String>) -> AuthorizeError {
        AuthorizeError::Redirect {
            redirect_uri: self.redirect_uri.clone(),
            error,
            description: description.into(),
            state: self.state.clone(),
        }
    }

    /// Where to send the browser when the person says no.
    pub fn denied(&self) -> String {
        self.error("access_denied", "the user did not authorise the app")
            .location()
            .unwrap_or_default()
    }

    /// The granted scopes, one by one.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.split_whitespace()
    }
}

/// What a code or refresh token carries: the principal the tokens act as (with its
/// [`SmartGrant`]), the person, and the OpenID Connect nonce.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Grant {
    principal: Principal,
    user_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nonce: Option<String>,
}

#[derive(Debug, Serialize)]
struct AccessClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
    iat: i64,
    jti: String,
    client_id: &'a str,
    scope: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    patient: Option<&'a str>,
    #[serde(rename = "fhirUser")]
    fhir_user: String,
}

#[derive(Debug, Serialize)]
struct IdClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
    iat: i64,
    #[serde(rename = "fhirUser")]
    fhir_user: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
}

/// The SMART extras of a token response.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SmartTokenFields {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patient: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// `base` with `params` added to its query.
fn with_query(base: &str, params: &[(&str, &str)]) -> String {
    let encoded = serde_urlencoded::to_string(params).unwrap_or_default();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}{encoded}")
}

/// The PKCE S256 transform (RFC 7636 §4.2).
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Whether `verifier` is a well-formed PKCE verifier (43–128 unreserved characters) whose
/// S256 is `challenge`. The comparison is of digests, so its time says nothing useful.
pub fn pkce_verifies(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._~".contains(c));
    well_formed && bearer::digest(&s256(verifier)) == bearer::digest(challenge)
}

/// The letters (`cruds`) of a resource scope's permissions, v1 or v2.
fn permissions(p: &str) -> Option<String> {
    match p {
        "read" => return Some("rs".into()),
        "write" => return Some("cud".into()),
        "*" => return Some("cruds".into()),
        _ => {}
    }
    // v2: a non-empty subsequence of c r u d s, in that order.
    let mut rest = "cruds";
    for c in p.chars() {
        let at = rest.find(c)?;
        rest = &rest[at + 1..];
    }
    (!p.is_empty()).then(|| p.to_owned())
}

/// A resource scope split into context, type and permission letters.
fn resource_scope(s: &str) -> Option<(&str, &str, String, Option<&str>)> {
    let (s, query) = match s.split_once('?') {
        Some((s, q)) => (s, Some(q)),
        None => (s, None),
    };
    let (context, rest) = s.split_once('/')?;
    if !matches!(context, "patient" | "user" | "system") {
        return None;
    }
    let (ty, perms) = rest.split_once('.')?;
    if ty != "*" && ty.parse::<carerecord_fhir::ResourceType>().is_err() {
        return None;
    }
    // The one restriction the access crate enforces: `?category=` on Observation and Condition.
    if let Some(q) = query
        && (!matches!(ty, "Observation" | "Condition")
            || !q.starts_with("category=")
            || q.contains('&'))
    {
        return None;
    }
    Some((context, ty, permissions(perms)?, query))
}

/// Whether `scope` is one carerecord understands.
pub fn scope_is_known(scope: &str) -> bool {
    CONTEXT_SCOPES.contains(&scope) || resource_scope(scope).is_some()
}

/// Whether the registered scopes allow `scope`: listed as such, or a resource scope covered
/// by a registered one of the same context with `*` or the same type and at least the same
/// permissions (and no narrower query).
fn covered(scope: &str, registered: &[&str]) -> bool {
    if registered.contains(&scope) {
        return true;
    }
    let Some((ctx, ty, perms, query)) = resource_scope(scope) else {
        return false;
    };
    registered
        .iter()
        .filter_map(|r| resource_scope(r))
        .any(|(rctx, rty, rperms, rquery)| {
            rctx == ctx
                && (rty == "*" || rty == ty)
                && perms.chars().all(|c| rperms.contains(c))
                && (rquery.is_none() || rquery == query)
        })
}

/// The scopes granted for `requested`: each one the app is registered for, in the order
/// asked. Unknown or malformed scopes are refused (`invalid_scope`); known ones the app may
/// not have are left out, as RFC 6749 §3.3 allows, and the response says what was granted.
///
/// The one place scopes are decided at issue; the access crate's scope module decides what
/// they permit on each FHIR request.
pub fn grant_scopes(requested: &str, registered: &str) -> Result<Vec<String>, String> {
    let registered: Vec<&str> = registered.split_whitespace().collect();
    let mut granted: Vec<String> = Vec::new();
    for s in requested.split_whitespace() {
        if !scope_is_known(s) {
            return Err(format!("the scope {s} is not supported"));
        }
        if s.starts_with("system/") {
            return Err(format!(
                "{s}: system/ scopes are for backend services (client credentials), not for \
                 an app a person authorises"
            ));
        }
        if covered(s, &registered) && !granted.iter().any(|g| g == s) {
            granted.push(s.to_owned());
        }
    }
    Ok(granted)
}

/// A redirect URI an app may register: absolute https, or http on the loopback interface
/// (RFC 8252 §7.3), without a fragment.
pub(crate) fn redirect_uri_allowed(uri: &str) -> bool {
    let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
        .iter()
        .any(|p| {
            uri.strip_prefix(p)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with([':', '/']))
        });
    let https = uri
        .strip_prefix("https://")
        .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'));
    (https || loopback) && !uri.contains('#') && !uri.contains(char::is_whitespace)
}

/// Normalises a FHIR base URL for comparison (`aud`): no trailing slash.
fn same_base(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// The `fhirUser` of a person: their Practitioner URL at this server's FHIR base. carerecord
/// keeps its users in the directory, not as resources, so the URL names the user stably
/// (their directory id) rather than a resource that can be read.
pub fn fhir_user(fhir_base: &str, user_id: &str) -> String {
    format!("{}/Practitioner/{user_id}", fhir_base.trim_end_matches('/'))
}

fn seconds(micros: i64) -> i64 {
    micros / MICROS_PER_SECOND
}

fn internal(e: impl std::fmt::Display) -> IdentityError {
    IdentityError::Internal(e.to_string())
}

impl Identity {
    /// Registers an app for the authorisation code flow (a public app when it has neither a
    /// secret nor a key).
    pub async fn register_smart_app(
        &self,
        new: NewSmartApp,
    ) -> Result<CreatedClient, IdentityError> {
        if new.name.trim().is_empty() || new.name.len() > 200 {
            return Err(IdentityError::Invalid(
                "an app needs a name of 1 to 200 characters".into(),
            ));
        }
        if new.redirect_uris.is_empty() {
            return Err(IdentityError::Invalid(
                "an app needs at least one redirect URI".into(),
            ));
        }
        if let Some(bad) = new.redirect_uris.iter().find(|u| !redirect_uri_allowed(u)) {
            return Err(IdentityError::Invalid(format!(
                "the redirect URI {bad} is not absolute https (or http on 127.0.0.1/localhost) \
                 without a fragment"
            )));
        }
        if let Some(url) = &new.launch_url
            && !redirect_uri_allowed(url)
        {
            return Err(IdentityError::Invalid(format!(
                "the launch URL {url} is not absolute https (or http on 127.0.0.1/localhost)"
            )));
        }
        if let Some(bad) = new.scopes.split_whitespace().find(|s| !scope_is_known(s)) {
            return Err(IdentityError::Invalid(format!(
                "the scope {bad} is not supported"
            )));
        }
        if new
            .scopes
            .split_whitespace()
            .any(|s| s.starts_with("system/"))
        {
            return Err(IdentityError::Invalid(
                "system/ scopes are for backend services: register those with `client add`".into(),
            ));
        }
        if new.client_id.is_empty()
            || new.client_id.len() > 128
            || !new
                .client_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._~".contains(c))
        {
            return Err(IdentityError::Invalid(
                "a client id is 1 to 128 of A-Z a-z 0-9 - . _ ~".into(),
            ));
        }
        if let Some(key) = &new.public_key {
            crate::oauth::check_public_key(key)?;
        }
        let secret = if new.secret {
            Some(bearer::new_secret()?)
        } else {
            None
        };
        let now = now_micros();
        let client = ClientRecord {
            client_id: new.client_id.clone(),
            organisation_id: String::new(),
            role: APP_ROLE.to_owned(),
            secret_hash: secret
                .as_deref()
                .map(|s| password::hash(s, self.settings.password_cost))
                .transpose()?,
            public_key_pem: new.public_key.clone(),
            created: now,
            disabled: false,
        };
        match self.dir.create_client(&client).await {
            Err(StoreError::AlreadyExists) => {
                return Err(IdentityError::AlreadyExists(format!(
                    "the client id {} is taken",
                    new.client_id
                )));
            }
            r => r?,
        }
        self.dir
            .create_smart_app(&SmartAppRecord {
                client_id: new.client_id.clone(),
                name: new.name.trim().to_owned(),
                redirect_uris: new.redirect_uris,
                scopes: new.scopes.split_whitespace().collect::<Vec<_>>().join(" "),
                confidential: new.secret || new.public_key.is_some(),
                launch_url: new.launch_url,
                created: now,
            })
            .await?;
        Ok(CreatedClient {
            client_id: new.client_id,
            secret,
        })
    }

    /// The apps registered with a launch URL, for the portal's "open in an app".
    pub async fn launchable_apps(&self) -> Result<Vec<SmartAppRecord>, IdentityError> {
        let mut apps = self.dir.smart_apps().await?;
        apps.retain(|a| a.launch_url.is_some());
        Ok(apps)
    }

    /// Checks an authorisation request (the query of `GET /auth/authorize`) for the FHIR
    /// API at `fhir_base`. Errors before the redirect URI is known are for a page; later ones
    /// go back to the app.
    pub async fn check_authorize(
        &self,
        params: &[(String, String)],
        fhir_base: &str,
        now: i64,
    ) -> Result<AuthorizeRequest, AuthorizeError> {
        let one = |name: &str| -> Result<Option<String>, String> {
            let mut values = params.iter().filter(|(k, _)| k == name);
            let first = values.next().map(|(_, v)| v.clone());
            if values.next().is_some() {
                return Err(format!("{name} is given more than once"));
            }
            Ok(first.filter(|v| !v.is_empty()))
        };
        let client_id = one("client_id").map_err(AuthorizeError::Page)?;
        let redirect_uri = one("redirect_uri").map_err(AuthorizeError::Page)?;
        let Some(client_id) = client_id else {
            return Err(AuthorizeError::Page(
                "The app did not say who it is (client_id is missing).".into(),
            ));
        };
        let app = self.dir.smart_app(&client_id).await?;
        let client = self.dir.client(&client_id).await?;
        let (Some(app), Some(client)) = (app, client) else {
            return Err(AuthorizeError::Page(
                "This app is not registered with carerecord.".into(),
            ));
        };
        if client.disabled {
            return Err(AuthorizeError::Page(
                "This app has been withdrawn from carerecord.".into(),
            ));
        }
        // RFC 6749 §3.1.2.3 and SMART: the redirect URI must be given and match a
        // registered one exactly.
        let Some(redirect_uri) = redirect_uri.filter(|r| app.redirect_uris.contains(r)) else {
            return Err(AuthorizeError::Page(
                "The app asked to return to an address that is not registered for it, so \
                 carerecord will not send you there."
                    .into(),
            ));
        };
        let state = one("state").ok().flatten();
        let fail = |error: &'static str, description: String| AuthorizeError::Redirect {
            redirect_uri: redirect_uri.clone(),
            error,
            description,
            state: state.clone(),
        };
        let get = |name: &str| one(name).map_err(|m| fail("invalid_request", m));
        match get("response_type")?.as_deref() {
            Some("code") => {}
            Some(_) => {
                return Err(fail(
                    "unsupported_response_type",
                    "only response_type=code is supported".into(),
                ));
            }
            None => return Err(fail("invalid_request", "response_type is required".into())),
        }
        let aud = get("aud")?;
        if !aud.as_deref().is_some_and(|a| same_base(a, fhir_base)) {
            return Err(fail(
                "invalid_request",
                format!("aud must be this server's FHIR base URL, {fhir_base}"),
            ));
        }
        let Some(challenge) = get("code_challenge")? else {
            return Err(fail(
                "invalid_request",
                "PKCE is required: send code_challenge and code_challenge_method=S256".into(),
            ));
        };
        match get("code_challenge_method")?.as_deref() {
            Some("S256") => {}
            _ => {
                return Err(fail(
                    "invalid_request",
                    "code_challenge_method must be S256 (plain is not accepted)".into(),
                ));
            }
        }
        // A S256 challenge is the base64url of 32 bytes.
        if challenge.len() != 43
            || !challenge
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(fail(
                "invalid_request",
                "code_challenge is not a base64url SHA-256".into(),
            ));
        }
        let requested = get("scope")?.unwrap_or_default();
        let granted =
            grant_scopes(&requested, &app.scopes).map_err(|m| fail("invalid_scope", m))?;
        let has = |s: &str| granted.iter().any(|g| g == s);
        if !granted.iter().any(|g| resource_scope(g).is_some()) {
            return Err(fail(
                "invalid_scope",
                "none of the resource scopes asked for is registered for this app".into(),
            ));
        }
        let launch = get("launch")?;
        let patient = match launch {
            Some(id) => {
                let found = self.dir.launch_context(&bearer::digest(&id)).await?;
                let Some(l) = found.filter(|l| l.client_id == app.client_id) else {
                    return Err(fail("invalid_request", "the launch is not known".into()));
                };
                if l.used || now >= l.expires_at {
                    return Err(fail(
                        "invalid_request",
                        "the launch has been used or has expired: launch again".into(),
                    ));
                }
                if !has("launch") {
                    return Err(fail(
                        "invalid_scope",
                        "an EHR launch needs the launch scope".into(),
                    ));
                }
                PatientContext::Launch(l)
            }
            None if has("launch") => {
                return Err(fail(
                    "invalid_request",
                    "the launch scope needs the launch parameter from an EHR launch".into(),
                ));
            }
            None if has("launch/patient") => PatientContext::Pick,
            None => PatientContext::None,
        };
        if patient == PatientContext::None && granted.iter().any(|g| g.starts_with("patient/")) {
            return Err(fail(
                "invalid_scope",
                "patient/ scopes need a patient in context: ask for launch/patient".into(),
            ));
        }
        let nonce = get("nonce")?;
        Ok(AuthorizeRequest {
            app,
            redirect_uri,
            state,
            scope: granted.join(" "),
            code_challenge: challenge,
            nonce,
            patient,
        })
    }

    /// The person (acting as `principal`, as in their portal session) authorises the request,
    /// with `patient` in context (the one they picked, already checked against the access
    /// policy, or the EHR launch's). Returns where to send the browser: the redirect URI with
    /// `code` and `state`.
    pub async fn approve(
        &self,
        req: &AuthorizeRequest,
        principal: &Principal,
        patient: Option<String>,
        now: i64,
    ) -> Result<String, AuthorizeError> {
        let PrincipalId::User(user_id) = &principal.id else {
            return Err(req.error("access_denied", "only people authorise apps"));
        };
        let patient = match &req.patient {
            PatientContext::None => None,
            PatientContext::Pick => match patient {
                Some(p) => Some(p),
                None => return Err(req.error("access_denied", "no patient was chosen")),
            },
            PatientContext::Launch(l) => {
                if &l.user_id != user_id {
                    return Err(
                        req.error("access_denied", "the launch was started by someone else")
                    );
                }
                if !self.dir.use_launch_context(&l.launch_hash).await? {
                    return Err(req.error("invalid_request", "the launch has been used"));
                }
                Some(l.patient_id.clone())
            }
        };
        let mut principal = principal.clone();
        principal.smart = Some(SmartGrant {
            client_id: req.app.client_id.clone(),
            scope: req.scope.clone(),
            patient,
        });
        let grant = Grant {
            principal,
            user_id: user_id.clone(),
            nonce: req.nonce.clone(),
        };
        let code = bearer::new_token()?;
        self.dir
            .create_auth_code(&AuthCodeRecord {
                code_hash: bearer::digest(&code),
                client_id: req.app.client_id.clone(),
                redirect_uri: req.redirect_uri.clone(),
                code_challenge: req.code_challenge.clone(),
                grant: serde_json::to_string(&grant).map_err(internal)?,
                expires_at: now.saturating_add(micros(CODE_LIFETIME)),
                used: false,
            })
            .await?;
        tracing::info!(client_id = %req.app.client_id, user_id = %user_id, "authorisation code issued");
        let mut params = vec![("code", code.as_str())];
        if let Some(s) = &req.state {
            params.push(("state", s));
        }
        Ok(with_query(&req.redirect_uri, &params))
    }

    /// Opens an EHR launch: `user_id` opens `patient_id` in the app `client_id`. Returns the
    /// opaque launch id (given to the app once; stored as a digest).
    pub async fn open_launch(
        &self,
        client_id: &str,
        user_id: &str,
        patient_id: &str,
        now: i64,
    ) -> Result<String, IdentityError> {
        let launch = bearer::new_token()?;
        self.dir
            .create_launch_context(&LaunchContextRecord {
                launch_hash: bearer::digest(&launch),
                client_id: client_id.to_owned(),
                user_id: user_id.to_owned(),
                patient_id: patient_id.to_owned(),
                expires_at: now.saturating_add(micros(LAUNCH_LIFETIME)),
                used: false,
            })
            .await?;
        Ok(launch)
    }

    /// The client making a request at the token, revocation or introspection endpoint:
    /// authenticated (a secret or `private_key_jwt`), or a public app naming itself.
    /// Returns the client id and whether it authenticated.
    async fn calling_client(
        &self,
        req: &TokenRequest,
        token_endpoint: &str,
        now: i64,
    ) -> Result<(String, bool), OAuthError> {
        let form_id = req.field("client_id")?;
        let form_secret = req.field("client_secret")?;
        let assertion = req.field("client_assertion")?;
        let assertion_type = req.field("client_assertion_type")?;
        let methods = [
            req.basic.is_some(),
            form_secret.is_some(),
            assertion.is_some() || assertion_type.is_some(),
        ];
        match methods.iter().filter(|m| **m).count() {
            0 => {
                let id = form_id.ok_or_else(|| OAuthError::request("client_id is required"))?;
                let app = self.dir.smart_app(id).await?;
                let enabled = self.dir.client(id).await?.is_some_and(|c| !c.disabled);
                match app {
                    // A public app identifies itself; PKCE (or the token itself) is its proof.
                    Some(a) if !a.confidential && enabled => Ok((id.to_owned(), false)),
                    _ => Err(OAuthError::client()),
                }
            }
            1 => {
                let id = if let Some((id, secret)) = &req.basic {
                    if form_id.is_some_and(|f| f != id) {
                        return Err(OAuthError::request(
                            "client_id does not match the credentials",
                        ));
                    }
                    self.check_secret(id, secret).await?;
                    id.clone()
                } else if let Some(secret) = form_secret {
                    let id = form_id.ok_or_else(|| OAuthError::request("client_id is required"))?;
                    self.check_secret(id, secret).await?;
                    id.to_owned()
                } else {
                    if assertion_type != Some(crate::oauth::JWT_BEARER) {
                        return Err(OAuthError::request(format!(
                            "client_assertion_type must be {}",
                            crate::oauth::JWT_BEARER
                        )));
                    }
                    let assertion = assertion
                        .ok_or_else(|| OAuthError::request("client_assertion is required"))?;
                    self.check_assertion(assertion, form_id, token_endpoint, now)
                        .await?
                };
                Ok((id, true))
            }
            _ => Err(OAuthError::request(
                "use exactly one client authentication method",
            )),
        }
    }

    /// The app at the token endpoint: a confidential app must authenticate.
    async fn calling_app(
        &self,
        req: &TokenRequest,
        token_endpoint: &str,
        now: i64,
    ) -> Result<SmartAppRecord, OAuthError> {
        let (client_id, authenticated) = self.calling_client(req, token_endpoint, now).await?;
        let Some(app) = self.dir.smart_app(&client_id).await? else {
            return Err(OAuthError::new(
                "unauthorized_client",
                "this client is not registered for the authorisation code flow",
            ));
        };
        if app.confidential && !authenticated {
            return Err(OAuthError::client());
        }
        Ok(app)
    }

    /// `grant_type=authorization_code` and `grant_type=refresh_token`.
    pub(crate) async fn smart_token(
        &self,
        grant_type: &str,
        req: &TokenRequest,
        token_endpoint: &str,
        now: i64,
    ) -> Result<TokenResponse, OAuthError> {
        let app = self.calling_app(req, token_endpoint, now).await?;
        let fhir_base = format!(
            "{}/fhir",
            token_endpoint
                .trim_end_matches('/')
                .trim_end_matches("/auth/token")
        );
        if grant_type == "authorization_code" {
            self.redeem_code(&app, req, &fhir_base, now).await
        } else {
            self.refresh(&app, req, &fhir_base, now).await
        }
    }

    async fn redeem_code(
        &self,
        app: &SmartAppRecord,
        req: &TokenRequest,
        fhir_base: &str,
        now: i64,
    ) -> Result<TokenResponse, OAuthError> {
        let code = req
            .field("code")?
            .ok_or_else(|| OAuthError::request("code is required"))?;
        let verifier = req
            .field("code_verifier")?
            .ok_or_else(|| OAuthError::request("code_verifier is required (PKCE)"))?;
        let redirect_uri = req.field("redirect_uri")?;
        let invalid = |d: &str| OAuthError::new("invalid_grant", d);
        let code_hash = bearer::digest(code);
        let Some(c) = self.dir.use_auth_code(&code_hash, now).await? else {
            return Err(invalid("the code is not valid"));
        };
        if c.used {
            // RFC 6749 §4.1.2: a code used twice revokes what was issued for it.
            self.dir.revoke_family(&code_hash).await?;
            tracing::warn!(client_id = %c.client_id, "authorisation code reused: its tokens are revoked");
            return Err(invalid("the code has been used already"));
        }
        if now >= c.expires_at {
            return Err(invalid("the code has expired"));
        }
        if c.client_id != app.client_id {
            return Err(invalid("the code was issued to another client"));
        }
        if redirect_uri != Some(c.redirect_uri.as_str()) {
            return Err(invalid(
                "redirect_uri must be the one the code was issued for",
            ));
        }
        if !pkce_verifies(verifier, &c.code_challenge) {
            return Err(invalid(
                "the code_verifier does not match the code_challenge",
            ));
        }
        let grant: Grant = serde_json::from_str(&c.grant).map_err(internal)?;
        let family_expiry = if grant_has(&grant, "offline_access") {
            now.saturating_add(micros(OFFLINE_LIFETIME))
        } else {
            now.saturating_add(micros(self.settings.session_lifetime))
        };
        self.issue_smart(app, &grant, &code_hash, family_expiry, fhir_base, now)
            .await
    }

    async fn refresh(
        &self,
        app: &SmartAppRecord,
        req: &TokenRequest,
        fhir_base: &str,
        now: i64,
    ) -> Result<TokenResponse, OAuthError> {
        let token = req
            .field("refresh_token")?
            .ok_or_else(|| OAuthError::request("refresh_token is required"))?;
        let invalid = |d: &str| OAuthError::new("invalid_grant", d);
        let hash = bearer::digest(token);
        let Some(r) = self.dir.refresh_token(&hash).await? else {
            return Err(invalid("the refresh token is not valid"));
        };
        if r.client_id != app.client_id {
            return Err(invalid("the refresh token was issued to another client"));
        }
        if r.revoked {
            return Err(invalid("the refresh token has been revoked"));
        }
        if r.used || !self.dir.use_refresh_token(&hash).await? {
            // A spent token again: it has been copied. Whoever holds the family's newest
            // token may be the thief, so the whole family ends (OAuth 2.0 Security BCP §4.14).
            self.dir.revoke_family(&r.family).await?;
            tracing::warn!(client_id = %r.client_id, "refresh token reused: its family is revoked");
            return Err(invalid("the refresh token has been used already"));
        }
        if now >= r.expires_at {
            return Err(invalid("the refresh token has expired"));
        }
        let mut grant: Grant = serde_json::from_str(&r.grant).map_err(internal)?;
        // The person may have changed since: disabled, role withdrawn, training renewed.
        let user = self.dir.user_by_id(&grant.user_id).await?;
        let Some(user) = user.filter(|u| !u.disabled) else {
            self.dir.revoke_family(&r.family).await?;
            return Err(invalid("the user can no longer sign in"));
        };
        let role = grant.principal.role.as_str();
        let holds = self
            .dir
            .grants(&user.id)
            .await?
            .iter()
            .any(|g| g.role == role && g.organisation_id == grant.principal.organisation_id);
        if !holds {
            self.dir.revoke_family(&r.family).await?;
            return Err(invalid(
                "the user no longer holds the role the app was authorised in",
            ));
        }
        grant.principal.training_valid_until = Some(user.training_valid_until.unwrap_or(0));
        // RFC 6749 §6: a narrower scope may be asked for, never a wider one.
        if let Some(asked) = req.field("scope")? {
            let Some(smart) = grant.principal.smart.as_mut() else {
                return Err(OAuthError::from(internal("a refresh grant without scopes")));
            };
            let had: Vec<&str> = smart.scope.split_whitespace().collect();
            if let Some(extra) = asked.split_whitespace().find(|s| !had.contains(s)) {
                return Err(OAuthError::new(
                    "invalid_scope",
                    format!("{extra} was not granted originally"),
                ));
            }
            smart.scope = asked.split_whitespace().collect::<Vec<_>>().join(" ");
        }
        self.issue_smart(app, &grant, &r.family, r.expires_at, fhir_base, now)
            .await
    }

    /// Issues the access token (and id token and next refresh token, as the scopes say) of
    /// a grant in `family`.
    async fn issue_smart(
        &self,
        app: &SmartAppRecord,
        grant: &Grant,
        family: &str,
        family_expiry: i64,
        fhir_base: &str,
        now: i64,
    ) -> Result<TokenResponse, OAuthError> {
        let smart = grant
            .principal
            .smart
            .clone()
            .ok_or_else(|| OAuthError::from(internal("a grant without scopes")))?;
        let key = self.signing_key()?;
        let lifetime = micros(ACCESS_TOKEN_LIFETIME).min(family_expiry.saturating_sub(now));
        let expires_at = now.saturating_add(lifetime);
        let user_url = fhir_user(fhir_base, &grant.user_id);
        let access_token = key.sign(&AccessClaims {
            iss: fhir_base,
            sub: &grant.user_id,
            aud: fhir_base,
            exp: seconds(expires_at),
            iat: seconds(now),
            jti: bearer::new_token()?,
            client_id: &app.client_id,
            scope: &smart.scope,
            patient: smart.patient.as_deref(),
            fhir_user: user_url.clone(),
        })?;
        let token_hash = bearer::digest(&access_token);
        self.dir
            .create_token(&TokenRecord {
                token_hash: token_hash.clone(),
                subject: grant.user_id.clone(),
                principal: serde_json::to_string(&grant.principal).map_err(internal)?,
                created: now,
                expires_at,
                last_used: now,
                revoked: false,
            })
            .await?;
        self.dir.add_family_token(&token_hash, family).await?;

        let has = |s: &str| smart.scope.split_whitespace().any(|g| g == s);
        let id_token = if has("openid") && (has("fhirUser") || has("profile")) {
            Some(key.sign(&IdClaims {
                iss: fhir_base,
                sub: &grant.user_id,
                aud: &app.client_id,
                exp: seconds(expires_at),
                iat: seconds(now),
                fhir_user: user_url,
                nonce: grant.nonce.as_deref(),
                name: has("profile").then_some(grant.principal.name.as_str()),
            })?)
        } else {
            None
        };
        let refresh_token = if has("offline_access") || has("online_access") {
            let t = bearer::new_token()?;
            self.dir
                .create_refresh_token(&RefreshTokenRecord {
                    token_hash: bearer::digest(&t),
                    family: family.to_owned(),
                    client_id: app.client_id.clone(),
                    subject: grant.user_id.clone(),
                    grant: serde_json::to_string(grant).map_err(internal)?,
                    created: now,
                    expires_at: family_expiry,
                    used: false,
                    revoked: false,
                })
                .await?;
            Some(t)
        } else {
            None
        };
        tracing::info!(client_id = %app.client_id, user_id = %grant.user_id, "SMART access token issued");
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: seconds(lifetime),
            scope: Some(smart.scope.clone()),
            principal: grant.principal.clone(),
            smart: Some(SmartTokenFields {
                patient: smart.patient.clone(),
                id_token,
                refresh_token,
            }),
        })
    }

    /// RFC 7009: revokes `token` if it was issued to the calling client (a refresh token
    /// takes its whole family with it). Unknown tokens are not an error. The answer says what
    /// was done, for the audit trail; it never holds the token.
    pub async fn revoke(
        &self,
        req: &TokenRequest,
        token_endpoint: &str,
        now: i64,
    ) -> Result<Revocation, OAuthError> {
        let (client_id, _) = self.calling_client(req, token_endpoint, now).await?;
        let token = req
            .field("token")?
            .ok_or_else(|| OAuthError::request("token is required"))?;
        let hash = bearer::digest(token);
        let revoked = if let Some(r) = self.dir.refresh_token(&hash).await? {
            if r.client_id == client_id {
                self.dir.revoke_family(&r.family).await?;
                Revoked::Family(r.family)
            } else {
                Revoked::NotOwned
            }
        } else if let Some(t) = self.dir.token(&hash).await? {
            if token_client(&t).as_deref() == Some(client_id.as_str()) {
                self.dir.revoke_token(&hash).await?;
                Revoked::AccessToken
            } else {
                Revoked::NotOwned
            }
        } else {
            Revoked::Unknown
        };
        Ok(Revocation { client_id, revoked })
    }

    /// RFC 7662: what an access or refresh token is, for an authenticated client. A client
    /// learns only about its own tokens, unless it is a `service` (carerecord's own tools).
    pub async fn introspect(
        &self,
        req: &TokenRequest,
        token_endpoint: &str,
        now: i64,
    ) -> Result<Introspection, OAuthError> {
        let (client_id, authenticated) = self.calling_client(req, token_endpoint, now).await?;
        if !authenticated {
            return Err(OAuthError::client());
        }
        let body = self.introspect_for(&client_id, req, now).await?;
        let active = body["active"] == json!(true);
        Ok(Introspection {
            client_id,
            active,
            body,
        })
    }

    /// [`Identity::introspect`]'s answer for the authenticated `client_id`.
    async fn introspect_for(
        &self,
        client_id: &str,
        req: &TokenRequest,
        now: i64,
    ) -> Result<Value, OAuthError> {
        let any = self
            .dir
            .client(client_id)
            .await?
            .is_some_and(|c| c.role == carerecord_access::Role::Service.as_str());
        let token = req
            .field("token")?
            .ok_or_else(|| OAuthError::request("token is required"))?;
        let hash = bearer::digest(token);
        let inactive = json!({"active": false});
        if let Some(t) = self.dir.token(&hash).await? {
            let owner = token_client(&t);
            if !any && owner.as_deref() != Some(client_id) {
                return Ok(inactive);
            }
            let principal: Principal = serde_json::from_str(&t.principal).map_err(internal)?;
            let idle = !principal.role.is_system()
                && now.saturating_sub(t.last_used) > micros(self.settings.session_idle);
            if t.revoked || now >= t.expires_at || idle {
                return Ok(inactive);
            }
            let mut out = json!({
                "active": true,
                "token_type": "Bearer",
                "client_id": owner,
                "sub": t.subject,
                "exp": seconds(t.expires_at),
                "iat": seconds(t.created),
            });
            if let Some(s) = &principal.smart {
                out["scope"] = json!(s.scope);
                if let Some(p) = &s.patient {
                    out["patient"] = json!(p);
                }
            }
            return Ok(out);
        }
        if let Some(r) = self.dir.refresh_token(&hash).await? {
            if (!any && r.client_id != client_id) || r.used || r.revoked || now >= r.expires_at {
                return Ok(inactive);
            }
            let grant: Grant = serde_json::from_str(&r.grant).map_err(internal)?;
            let smart = grant.principal.smart.unwrap_or(SmartGrant {
                client_id: r.client_id.clone(),
                scope: String::new(),
                patient: None,
            });
            let mut out = json!({
                "active": true,
                "token_type": "refresh_token",
                "client_id": r.client_id,
                "sub": r.subject,
                "scope": smart.scope,
                "exp": seconds(r.expires_at),
                "iat": seconds(r.created),
            });
            if let Some(p) = smart.patient {
                out["patient"] = json!(p);
            }
            return Ok(out);
        }
        Ok(inactive)
    }
}

/// What a revocation request did (RFC 7009 answers the same whatever it was).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoked {
    /// A refresh token of the caller: its whole family, named here by the family's id (the
    /// digest of the code that began it, never a token).
    Family(String),
    /// An access token of the caller.
    AccessToken,
    /// A token issued to another client: left alone.
    NotOwned,
    /// No such token.
    Unknown,
}

/// The authenticated caller of `/auth/revoke` and what was done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    pub client_id: String,
    pub revoked: Revoked,
}

/// The authenticated caller of `/auth/introspect` and the RFC 7662 answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Introspection {
    pub client_id: String,
    /// Whether the token was active (and the caller may know of it).
    pub active: bool,
    pub body: Value,
}

/// The client an access token was issued to: the app of a SMART grant, or the system itself.
fn token_client(t: &TokenRecord) -> Option<String> {
    let principal: Principal = serde_json::from_str(&t.principal).ok()?;
    match (principal.smart, principal.id) {
        (Some(s), _) => Some(s.client_id),
        (None, PrincipalId::System(id)) => Some(id),
        (None, PrincipalId::User(_)) => None,
    }
}

fn grant_has(grant: &Grant, scope: &str) -> bool {
    grant
        .principal
        .smart
        .as_ref()
        .is_some_and(|s| s.scope.split_whitespace().any(|g| g == scope))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_matches_rfc_7636_appendix_b_and_nothing_else() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert_eq!(s256(verifier), challenge);
        assert!(pkce_verifies(verifier, challenge));
        // `plain` (the verifier as its own challenge) does not pass.
        assert!(!pkce_verifies(verifier, verifier));
        let other = "eBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert!(!pkce_verifies(other, challenge));
        // Too short, or with characters outside the unreserved set.
        assert!(!pkce_verifies("abc", &s256("abc")));
        let spaced = format!("{verifier} x");
        assert!(!pkce_verifies(&spaced, &s256(&spaced)));
    }

    #[test]
    fn granted_scopes_are_those_asked_for_that_the_app_is_registered_for() {
        let registered = "launch/patient patient/*.rs user/Observation.read openid fhirUser";
        assert_eq!(
            grant_scopes(
                "launch/patient patient/Observation.rs patient/Patient.read openid offline_access",
                registered
            ),
            Ok(vec![
                "launch/patient".to_owned(),
                "patient/Observation.rs".to_owned(),
                "patient/Patient.read".to_owned(),
                "openid".to_owned(),
            ])
        );
        // Write is not covered by read; another context is not covered.
        assert_eq!(
            grant_scopes("patient/Observation.cruds user/Condition.rs", registered),
            Ok(vec![])
        );
        assert_eq!(
            grant_scopes("user/Observation.rs", registered),
            Ok(vec!["user/Observation.rs".to_owned()])
        );
        assert!(grant_scopes("patient/Observation.sr", registered).is_err());
        assert!(grant_scopes("patient/observation.rs", registered).is_err());
        assert!(grant_scopes("patient/Unicorn.rs", registered).is_err());
        assert!(grant_scopes("patient/Patient.rs?name=x", registered).is_err());
        assert!(grant_scopes("launch/encounter", registered).is_err());
        assert_eq!(
            grant_scopes("patient/Observation.rs?category=laboratory", registered),
            Ok(vec![
                "patient/Observation.rs?category=laboratory".to_owned()
            ])
        );
        assert!(grant_scopes("system/*.rs", "system/*.rs").is_err());
        assert!(grant_scopes("admin", registered).is_err());
    }

    #[test]
    fn only_https_or_loopback_redirect_uris_without_fragments_are_registered() {
        assert!(redirect_uri_allowed("https://app.example/callback"));
        assert!(redirect_uri_allowed("http://127.0.0.1:8000/cb"));
        assert!(redirect_uri_allowed("http://localhost/cb"));
        assert!(!redirect_uri_allowed("http://app.example/callback"));
        assert!(!redirect_uri_allowed("http://localhost.evil.example/cb"));
        assert!(!redirect_uri_allowed("https://app.example/cb#frag"));
        assert!(!redirect_uri_allowed("https:///cb"));
    }

    #[test]
    fn a_redirected_error_carries_error_description_and_state() {
        let e = AuthorizeError::Redirect {
            redirect_uri: "https://app.example/cb?x=1".into(),
            error: "access_denied",
            description: "no & no".into(),
            state: Some("s 1".into()),
        };
        assert_eq!(
            e.location().as_deref(),
            Some(
                "https://app.example/cb?x=1&error=access_denied&error_description=no+%26+no&state=s+1"
            )
        );
        assert_eq!(AuthorizeError::Page("x".into()).location(), None);
    }
}
