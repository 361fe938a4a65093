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
//!
//! This module holds the shared types and constants; the work is split by step:
//! [`scopes`] (what may be granted), [`authorize`] (registering apps, the authorisation
//! request, consent and EHR launch contexts), [`token`] (client authentication, code
//! redemption, refresh rotation and issuing tokens) and [`revoke`] (revocation and
//! introspection).

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

mod authorize;
mod revoke;
mod scopes;
mod token;

pub(crate) use authorize::redirect_uri_allowed;
pub use revoke::{Introspection, Revocation, Revoked};
use scopes::resource_scope;
pub use scopes::{grant_scopes, scope_is_known};

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
