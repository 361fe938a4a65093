//! Signed context launch (issue 7): a care home record system sends its user's browser to
//! carerecord with a short-lived JWT it signed (RS256 or ES256), naming the user and the
//! resident. This module checks everything about the token and the user that needs no
//! record: the signature with the registered client's key, audience, lifetime, single use of
//! the `jti` (the same store as client assertions), the organisation the system is
//! registered for, the role it may assert there, and training; then maps the user
//! just-in-time into that organisation with that role. The portal checks the resident (same
//! person, in the home's care) and opens the session.
//!
//! The registry is the identity crate's own: a launching system is a registered client with a
//! public key, plus one [`LaunchRegistration`] per care home organisation naming the roles it
//! may assert there.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use carerecord_access::{Principal, PrincipalId, Role};
use carerecord_store::{LaunchRegistration, RoleGrant, UserRecord};
use jsonwebtoken::{Algorithm, Validation};
use serde::{Deserialize, Serialize};

use crate::{
    Identity, IdentityError, MICROS_PER_SECOND, Session, bearer, password,
    training_valid_until_from,
};

/// Signing algorithms a launch token may use.
pub const LAUNCH_ALGORITHMS: [&str; 2] = ["RS256", "ES256"];
/// Longest a launch token may live (`exp` − `iat`), as the issue requires.
pub const MAX_LAUNCH_LIFETIME_SECONDS: i64 = 300;
/// Clock difference tolerated between the care home system and carerecord.
const LEEWAY_SECONDS: i64 = 30;
/// Longest user id (`sub`) accepted from a launching system.
const MAX_SUBJECT_LEN: usize = 64;

/// The claims of a launch token. Everything but `training_completed` is required.
#[derive(Clone, Serialize, Deserialize)]
pub struct LaunchClaims {
    /// The launching system's client id.
    pub iss: String,
    /// carerecord's launch URL (a string or an array holding it).
    pub aud: serde_json::Value,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    /// The user's id in the care home system.
    pub sub: String,
    /// The user's display name (for the audit trail and the page header).
    pub name: String,
    /// The role, as carerecord names it (`care-worker`, `registered-nurse`, …).
    pub role: String,
    /// The ODS code of the care home the user works at now.
    pub ods: String,
    /// The resident's NHS number (ten digits).
    pub nhs_number: String,
    /// The resident's date of birth (`YYYY-MM-DD`).
    pub birth_date: String,
    /// When the user last completed data-security training (`YYYY-MM-DD`), as their employer
    /// records it; valid for twelve months.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training_completed: Option<String>,
}

impl std::fmt::Debug for LaunchClaims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names and NHS numbers never reach a log.
        f.debug_struct("LaunchClaims")
            .field("iss", &self.iss)
            .finish_non_exhaustive()
    }
}

/// Why a launch was refused. Each has a code (the audit entry's rule) and words for the page.
#[derive(Debug, thiserror::Error)]
pub enum LaunchRefusal {
    #[error("the launch token is malformed: {0}")]
    Malformed(String),
    #[error("the launch token's issuer is not a registered launching system")]
    UnknownIssuer,
    #[error("no registered key of the issuer matches the launch token")]
    UnknownKey,
    #[error("the issuer's keys could not be fetched from its registered JWKS URL")]
    KeysUnavailable,
    #[error("the launch token's signature does not verify")]
    BadSignature,
    #[error("the launch token is for another service")]
    WrongAudience,
    #[error("the launch token has expired")]
    Expired,
    #[error("the launch token lives longer than five minutes")]
    TooLong,
    #[error("the launch token has been used already")]
    Replayed,
    #[error("the system is not registered for the user's organisation")]
    OrganisationNotRegistered,
    #[error("the system may not assert the user's role there")]
    RoleNotAllowed,
    #[error("the user's account here is disabled")]
    UserDisabled,
    #[error("the user's data-security training is not current")]
    TrainingExpired,
    #[error("the NHS number or date of birth is not valid")]
    BadResident,
    #[error("no record has that NHS number")]
    NoSuchPerson,
    #[error("the NHS number and date of birth belong to different people")]
    DifferentPeople,
    #[error("the person is not in the home's care")]
    NotInCare,
    #[error(transparent)]
    Internal(#[from] IdentityError),
}

impl From<carerecord_store::StoreError> for LaunchRefusal {
    fn from(e: carerecord_store::StoreError) -> Self {
        LaunchRefusal::Internal(IdentityError::Store(e))
    }
}

impl LaunchRefusal {
    /// The audit entry's rule.
    pub fn code(&self) -> &'static str {
        match self {
            LaunchRefusal::Malformed(_) => "launch-malformed",
            LaunchRefusal::UnknownIssuer => "launch-unknown-issuer",
            LaunchRefusal::UnknownKey => "launch-unknown-key",
            LaunchRefusal::KeysUnavailable => "launch-keys-unavailable",
            LaunchRefusal::BadSignature => "launch-bad-signature",
            LaunchRefusal::WrongAudience => "launch-wrong-audience",
            LaunchRefusal::Expired => "launch-expired",
            LaunchRefusal::TooLong => "launch-too-long",
            LaunchRefusal::Replayed => "launch-replayed",
            LaunchRefusal::OrganisationNotRegistered => "launch-organisation-not-registered",
            LaunchRefusal::RoleNotAllowed => "launch-role-not-allowed",
            LaunchRefusal::UserDisabled => "launch-user-disabled",
            LaunchRefusal::TrainingExpired => "launch-training-expired",
            LaunchRefusal::BadResident => "launch-bad-resident",
            LaunchRefusal::NoSuchPerson => "launch-no-such-person",
            LaunchRefusal::DifferentPeople => "launch-different-people",
            LaunchRefusal::NotInCare => "launch-not-in-care",
            LaunchRefusal::Internal(_) => "launch-error",
        }
    }

    /// A heading and an explanation for the person in front of the screen, who can do little
    /// about most of these but tell their system's support desk which one it was.
    pub fn explanation(&self) -> (&'static str, String) {
        let support = "Tell your care record system's support desk, quoting the reason above. \
                       Nothing has been opened.";
        let (heading, reason) = match self {
            LaunchRefusal::Malformed(detail) => (
                "The link from your care record system could not be read",
                format!("Reason: the launch request is not in the agreed form ({detail})."),
            ),
            LaunchRefusal::UnknownIssuer => (
                "Your care record system is not registered",
                "Reason: the system that sent you here is not registered to open records in \
                 this service."
                    .to_owned(),
            ),
            LaunchRefusal::UnknownKey => (
                "Your care record system could not be identified",
                "Reason: the launch request was signed with a key this service does not know \
                 for your system."
                    .to_owned(),
            ),
            LaunchRefusal::KeysUnavailable => (
                "Your care record system could not be checked just now",
                "Reason: this service could not fetch your system's published keys, so it \
                 cannot check the launch request. Try again in a few minutes."
                    .to_owned(),
            ),
            LaunchRefusal::BadSignature => (
                "The link from your care record system could not be trusted",
                "Reason: the launch request's signature is not valid, so it may have been \
                 altered on the way."
                    .to_owned(),
            ),
            LaunchRefusal::WrongAudience => (
                "The link from your care record system was meant for another service",
                "Reason: the launch request names a different service as its destination."
                    .to_owned(),
            ),
            LaunchRefusal::Expired => (
                "The link from your care record system has expired",
                "Reason: a launch request is only valid for a few minutes. Go back to your \
                 care record system and open the shared record again."
                    .to_owned(),
            ),
            LaunchRefusal::TooLong => (
                "The link from your care record system could not be accepted",
                "Reason: the launch request is valid for longer than five minutes, which this \
                 service does not accept."
                    .to_owned(),
            ),
            LaunchRefusal::Replayed => (
                "This link has been used already",
                "Reason: each launch request opens a record once. Go back to your care record \
                 system and open the shared record again."
                    .to_owned(),
            ),
            LaunchRefusal::OrganisationNotRegistered => (
                "Your care home is not set up for this",
                "Reason: your care record system is not registered to open records for the \
                 care home you are working at."
                    .to_owned(),
            ),
            LaunchRefusal::RoleNotAllowed => (
                "Your role is not set up for this",
                "Reason: your care record system is not registered to open records for staff \
                 in your role at this care home."
                    .to_owned(),
            ),
            LaunchRefusal::UserDisabled => (
                "Your access has been switched off",
                "Reason: your account in this service has been disabled. Speak to your care \
                 home manager."
                    .to_owned(),
            ),
            LaunchRefusal::TrainingExpired => (
                "Your data-security training is due",
                "Reason: you can open shared records only while your data-security training \
                 is up to date (it lasts twelve months). Complete it, make sure your care \
                 record system has the date, then try again."
                    .to_owned(),
            ),
            LaunchRefusal::BadResident => (
                "The resident's details could not be read",
                "Reason: the NHS number or date of birth sent by your care record system is \
                 not valid. Check them in your system."
                    .to_owned(),
            ),
            LaunchRefusal::NoSuchPerson | LaunchRefusal::DifferentPeople => (
                "The resident's details do not match a record",
                "Reason: the NHS number and date of birth sent by your care record system do \
                 not belong to the same person here. Check both in your system against the \
                 resident's NHS letters or their GP practice."
                    .to_owned(),
            ),
            LaunchRefusal::NotInCare => (
                "This person is not recorded as in your home's care",
                "Reason: this service has no record that the person lives at your care home."
                    .to_owned(),
            ),
            LaunchRefusal::Internal(_) => (
                "Sorry, there is a problem with the service",
                "Reason: the launch request could not be checked just now. Try again later."
                    .to_owned(),
            ),
        };
        let advice = match self {
            LaunchRefusal::Expired
            | LaunchRefusal::Replayed
            | LaunchRefusal::TrainingExpired
            | LaunchRefusal::UserDisabled
            | LaunchRefusal::NotInCare
            | LaunchRefusal::Internal(_) => "",
            _ => support,
        };
        let text = if advice.is_empty() {
            reason
        } else {
            format!("{reason} {advice}")
        };
        (heading, text)
    }
}

/// A launch token that verified, the user mapped into the organisation, and their principal.
#[derive(Debug, Clone)]
pub struct VerifiedLaunch {
    pub claims: LaunchClaims,
    pub principal: Principal,
    /// The user row was created by this launch (just-in-time).
    pub user_created: bool,
    /// The role grant at the organisation was added by this launch.
    pub role_granted: bool,
}

#[derive(Deserialize)]
struct UnverifiedClaims {
    #[serde(default)]
    iss: Option<String>,
}

/// The issuer a token claims, unverified: for the audit entry of a refusal only, cut short so
/// a hostile token cannot fill the trail.
pub fn claimed_issuer(token: &str) -> Option<String> {
    let claims: UnverifiedClaims = token
        .trim()
        .split('.')
        .nth(1)
        .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())?;
    claims.iss.map(|i| i.chars().take(128).collect())
}

/// The username a launched user is known by: the system's client id and the system's own id
/// for the user, so two systems' users never meet. Such users have no usable password or TOTP
/// secret: they come in only through their system's launches.
pub fn launch_username(client_id: &str, subject: &str) -> String {
    format!("launch:{client_id}:{subject}")
}

fn parse_date(s: &str) -> Option<time::Date> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s.trim(), &format).ok()
}

fn audience_matches(aud: &serde_json::Value, launch_url: &str) -> bool {
    match aud {
        serde_json::Value::String(s) => s == launch_url,
        serde_json::Value::Array(items) => items.iter().any(|a| a.as_str() == Some(launch_url)),
        _ => false,
    }
}

/// A fresh EC P-256 key pair for ES256 launch tokens: (private PKCS#8 PEM, public SPKI PEM).
/// For the demo and the tests; a real system makes its own keys.
pub fn generate_es256_key_pair() -> Result<(String, String), IdentityError> {
    use p256::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _, LineEnding};
    // A random 32-byte string is a valid scalar but with negligible probability; retry then.
    let key = loop {
        let bytes = crate::random_bytes::<32>()?;
        if let Ok(k) = p256::SecretKey::from_slice(&bytes) {
            break k;
        }
    };
    let private = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| IdentityError::Internal(format!("key encoding: {e}")))?
        .to_string();
    let public = key
        .public_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| IdentityError::Internal(format!("key encoding: {e}")))?;
    Ok((private, public))
}

/// Signs `claims` as a launch token with a PEM private key (RSA → RS256, EC P-256 → ES256).
/// The test tool (`carerecord launch-token`) and the tests use it.
pub fn sign_launch_token(
    claims: &LaunchClaims,
    private_key_pem: &str,
    kid: Option<&str>,
) -> Result<String, IdentityError> {
    let (alg, key) = if private_key_pem.contains("RSA PRIVATE KEY")
        || jsonwebtoken::EncodingKey::from_ec_pem(private_key_pem.as_bytes()).is_err()
    {
        (
            Algorithm::RS256,
            jsonwebtoken::EncodingKey::from_rsa_pem(private_key_pem.as_bytes()).map_err(|e| {
                IdentityError::Invalid(format!("the private key is not RSA or EC P-256 PEM: {e}"))
            })?,
        )
    } else {
        (
            Algorithm::ES256,
            jsonwebtoken::EncodingKey::from_ec_pem(private_key_pem.as_bytes())
                .map_err(|e| IdentityError::Invalid(format!("EC private key: {e}")))?,
        )
    };
    let mut header = jsonwebtoken::Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &key)
        .map_err(|e| IdentityError::Invalid(format!("signing failed: {e}")))
}

impl Identity {
    /// Records that `client_id` (a registered client with a public key) may launch users into
    /// `organisation_id` with `roles`. Replaces that organisation's roles if registered already.
    pub async fn register_launch(
        &self,
        client_id: &str,
        organisation_id: &str,
        roles: &[Role],
    ) -> Result<(), IdentityError> {
        let Some(client) = self.dir.client(client_id).await? else {
            return Err(IdentityError::Invalid(format!(
                "no client {client_id}: register it first (carerecord client add … --public-key)"
            )));
        };
        if client.public_key_pem.is_none() && self.dir.client_jwks_uri(client_id).await?.is_none() {
            return Err(IdentityError::Invalid(format!(
                "the client {client_id} has no public key or JWKS URL to verify launch tokens with"
            )));
        }
        if roles.is_empty() {
            return Err(IdentityError::Invalid(
                "name at least one role the system may assert".into(),
            ));
        }
        if let Some(r) = roles.iter().find(|r| !launchable(**r)) {
            return Err(IdentityError::Invalid(format!(
                "{r} cannot be asserted by a launching system (only care home staff roles)"
            )));
        }
        if !self.organisation_exists(organisation_id).await? {
            return Err(IdentityError::Invalid(format!(
                "no Organization/{organisation_id} in the store"
            )));
        }
        let mut names: Vec<String> = roles.iter().map(|r| r.as_str().to_owned()).collect();
        names.sort();
        names.dedup();
        self.dir
            .register_launch(&LaunchRegistration {
                client_id: client_id.to_owned(),
                organisation_id: organisation_id.to_owned(),
                roles: names,
            })
            .await?;
        Ok(())
    }

    /// Verifies a launch token posted to `launch_url` at `now` (µs) and maps its user into
    /// the organisation. The resident is the caller's to check.
    pub async fn verify_launch(
        &self,
        token: &str,
        launch_url: &str,
        now: i64,
    ) -> Result<VerifiedLaunch, LaunchRefusal> {
        let token = token.trim();
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| LaunchRefusal::Malformed("not a signed JWT".into()))?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(LaunchRefusal::Malformed(
                "launch tokens are signed with RS256 or ES256".into(),
            ));
        }
        // The issuer names the key; nothing else is read before the signature is checked.
        let unverified: UnverifiedClaims = token
            .split('.')
            .nth(1)
            .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| LaunchRefusal::Malformed("the claims are not JSON".into()))?;
        let client_id = unverified.iss.ok_or(LaunchRefusal::UnknownIssuer)?;
        let Some(client) = self.dir.client(&client_id).await?.filter(|c| !c.disabled) else {
            return Err(LaunchRefusal::UnknownIssuer);
        };
        let registrations = self.dir.launch_registrations(&client_id).await?;
        if registrations.is_empty() {
            return Err(LaunchRefusal::UnknownIssuer);
        }
        let key = match self
            .client_key(&client, header.alg, header.kid.as_deref())
            .await
        {
            Ok(key) => key,
            Err(crate::jwks::JwksError::UnknownKey) => return Err(LaunchRefusal::UnknownKey),
            Err(crate::jwks::JwksError::Unavailable(why)) => {
                tracing::warn!(client_id = %client_id, reason = %why, "launching system's keys unavailable");
                return Err(LaunchRefusal::KeysUnavailable);
            }
        };
        let mut v = Validation::new(header.alg);
        // Each claim is checked below, so that each refusal can say which it was.
        v.validate_exp = false;
        v.validate_nbf = false;
        v.validate_aud = false;
        v.required_spec_claims.clear();
        let claims = jsonwebtoken::decode::<LaunchClaims>(token, &key, &v)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => LaunchRefusal::BadSignature,
                jsonwebtoken::errors::ErrorKind::Json(e) => {
                    LaunchRefusal::Malformed(format!("a claim is missing or wrong: {e}"))
                }
                _ => LaunchRefusal::BadSignature,
            })?
            .claims;
        if !audience_matches(&claims.aud, launch_url) {
            return Err(LaunchRefusal::WrongAudience);
        }
        let now_s = now / MICROS_PER_SECOND;
        if claims.exp <= now_s - LEEWAY_SECONDS {
            return Err(LaunchRefusal::Expired);
        }
        if claims.iat > now_s + LEEWAY_SECONDS {
            return Err(LaunchRefusal::Malformed(
                "it was issued in the future".into(),
            ));
        }
        if claims.exp - claims.iat > MAX_LAUNCH_LIFETIME_SECONDS
            || claims.exp > now_s + MAX_LAUNCH_LIFETIME_SECONDS + LEEWAY_SECONDS
        {
            return Err(LaunchRefusal::TooLong);
        }
        if claims.jti.is_empty() || claims.jti.len() > 256 {
            return Err(LaunchRefusal::Malformed(
                "the jti must be 1 to 256 characters".into(),
            ));
        }
        let sub_ok = !claims.sub.is_empty()
            && claims.sub.len() <= MAX_SUBJECT_LEN
            && claims
                .sub
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._~@".contains(c));
        if !sub_ok {
            return Err(LaunchRefusal::Malformed(
                "sub is 1 to 64 of A-Z a-z 0-9 - . _ ~ @".into(),
            ));
        }
        if claims.name.trim().is_empty() {
            return Err(LaunchRefusal::Malformed("name is empty".into()));
        }
        // Single use: spent now, once everything about the token itself has checked out, so a
        // token refused above can be corrected and sent again within its minutes.
        let keep_until = (claims.exp + LEEWAY_SECONDS) * MICROS_PER_SECOND;
        if !self
            .dir
            .use_assertion_id(&client_id, &claims.jti, keep_until, now)
            .await?
        {
            return Err(LaunchRefusal::Replayed);
        }

        let mut organisation = None;
        for r in &registrations {
            let ods = self.ods_code(&r.organisation_id).await?;
            if !ods.is_empty() && ods.eq_ignore_ascii_case(claims.ods.trim()) {
                organisation = Some((r, ods));
                break;
            }
        }
        let Some((registration, ods)) = organisation else {
            return Err(LaunchRefusal::OrganisationNotRegistered);
        };
        let role = claims
            .role
            .parse::<Role>()
            .ok()
            .filter(|r| launchable(*r) && registration.roles.iter().any(|n| n == r.as_str()))
            .ok_or(LaunchRefusal::RoleNotAllowed)?;

        let training_claim = match claims.training_completed.as_deref() {
            None => None,
            Some(s) => Some(parse_date(s).ok_or_else(|| {
                LaunchRefusal::Malformed("training_completed is not a YYYY-MM-DD date".into())
            })?),
        };
        let training_claim_until = training_claim.map(|d| {
            training_valid_until_from(
                d.midnight().assume_utc().unix_timestamp() * MICROS_PER_SECOND,
            )
        });

        let (user, user_created) = self
            .launch_user(&client_id, &claims, training_claim_until, now)
            .await?;
        if user.disabled {
            return Err(LaunchRefusal::UserDisabled);
        }
        let grant = RoleGrant {
            user_id: user.id.clone(),
            role: role.as_str().to_owned(),
            organisation_id: registration.organisation_id.clone(),
        };
        let role_granted = !self.dir.grants(&user.id).await?.contains(&grant);
        if role_granted {
            self.dir.grant_role(&grant).await?;
        }
        let principal = Principal {
            id: PrincipalId::User(user.id.clone()),
            name: claims.name.trim().to_owned(),
            role,
            organisation_id: registration.organisation_id.clone(),
            organisation_ods: ods,
            training_valid_until: user.training_valid_until,
            smart: None,
        };
        Ok(VerifiedLaunch {
            claims,
            principal,
            user_created,
            role_granted,
        })
    }

    /// The launched user's row, created on first launch; a later training date from the
    /// system moves their training forward (never back).
    async fn launch_user(
        &self,
        client_id: &str,
        claims: &LaunchClaims,
        training_until: Option<i64>,
        now: i64,
    ) -> Result<(UserRecord, bool), LaunchRefusal> {
        let username = launch_username(client_id, &claims.sub);
        if let Some(mut user) = self.dir.user_by_username(&username).await? {
            if let Some(until) = training_until
                && user.training_valid_until.is_none_or(|t| t < until)
            {
                self.dir.set_training_valid_until(&user.id, until).await?;
                user.training_valid_until = Some(until);
            }
            return Ok((user, false));
        }
        // No password sign-in: the password is random and never shown, and there is no TOTP
        // secret, so the account can only be used through its system's launches.
        let unusable = bearer::new_token()?;
        let user = UserRecord {
            id: format!(
                "usr-{}",
                bearer::digest(&bearer::new_token()?)
                    .get(..16)
                    .unwrap_or("0")
            ),
            username,
            display_name: claims.name.trim().to_owned(),
            password_hash: password::hash(&unusable, self.settings.password_cost)?,
            totp_secret: None,
            totp_last_step: None,
            failed_attempts: 0,
            locked_until: None,
            training_valid_until: training_until,
            created: now,
            disabled: false,
        };
        match self.dir.create_user(&user).await {
            Ok(()) => Ok((user, true)),
            // Two first launches of the same user at once: the other one made the row.
            Err(carerecord_store::StoreError::AlreadyExists) => {
                let again = self.dir.user_by_username(&user.username).await?;
                again.map(|u| (u, false)).ok_or_else(|| {
                    LaunchRefusal::Internal(IdentityError::Internal(
                        "launched user vanished".into(),
                    ))
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Opens a person's session for a verified launch (same lifetime and idle limit as a
    /// password sign-in).
    pub async fn launch_session(
        &self,
        launch: &VerifiedLaunch,
        now: i64,
    ) -> Result<Session, IdentityError> {
        let PrincipalId::User(user_id) = &launch.principal.id else {
            return Err(IdentityError::Internal("a launch is for a person".into()));
        };
        self.issue(
            user_id,
            &launch.principal,
            self.settings.session_lifetime,
            now,
        )
        .await
    }
}

/// Roles a care home system may assert for its staff.
pub(crate) fn launchable(role: Role) -> bool {
    matches!(
        role,
        Role::CareWorker | Role::SeniorCarer | Role::RegisteredNurse | Role::CareHomeManager
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth;

    #[test]
    fn the_audience_may_be_a_string_or_an_array() {
        let url = "https://care.example/launch";
        assert!(audience_matches(&serde_json::json!(url), url));
        assert!(audience_matches(&serde_json::json!(["x", url]), url));
        assert!(!audience_matches(
            &serde_json::json!("https://other/launch"),
            url
        ));
        assert!(!audience_matches(&serde_json::json!(42), url));
    }

    #[test]
    fn only_care_home_staff_roles_are_launchable() {
        assert!(launchable(Role::CareWorker));
        assert!(launchable(Role::RegisteredNurse));
        assert!(!launchable(Role::PrivacyOfficer));
        assert!(!launchable(Role::Service));
        assert!(!launchable(Role::Gp));
    }

    #[test]
    fn a_generated_key_signs_a_token_its_public_half_verifies() {
        let (private, public) = generate_es256_key_pair().unwrap();
        let claims = LaunchClaims {
            iss: "sys".into(),
            aud: serde_json::json!("https://care.example/launch"),
            iat: 1,
            exp: 2,
            jti: "j".into(),
            sub: "u".into(),
            name: "N".into(),
            role: "care-worker".into(),
            ods: "ZC001".into(),
            nhs_number: "9990000018".into(),
            birth_date: "1940-01-01".into(),
            training_completed: None,
        };
        let token = sign_launch_token(&claims, &private, None).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::ES256);
        let key = oauth::decoding_key(&public, Algorithm::ES256, None).unwrap();
        let mut v = Validation::new(Algorithm::ES256);
        v.validate_exp = false;
        v.validate_aud = false;
        v.required_spec_claims.clear();
        let back = jsonwebtoken::decode::<LaunchClaims>(&token, &key, &v).unwrap();
        assert_eq!(back.claims.nhs_number, "9990000018");
        let (_, other_public) = generate_es256_key_pair().unwrap();
        let other = oauth::decoding_key(&other_public, Algorithm::ES256, None).unwrap();
        assert!(jsonwebtoken::decode::<LaunchClaims>(&token, &other, &v).is_err());
    }
}
