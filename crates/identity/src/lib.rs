//! Who is asking. People sign in with a password and a TOTP code and choose one of their role
//! grants for the session; systems get tokens by OAuth2 client credentials (a secret or a
//! `private_key_jwt` assertion). Either way the caller holds an opaque bearer token, stored
//! only as a digest, that [`Identity::authenticate`] turns back into the [`Principal`].
//!
//! Also here: lockout after repeated failures, absolute and idle session expiry, and the
//! data-security training rule (training older than twelve months leaves a person able to
//! record new training and nothing else). Knows the store's [`Directory`], not HTTP.
#![forbid(unsafe_code)]

pub mod bearer;
pub mod jwks;
pub mod launch;
mod login;
pub mod oauth;
pub mod password;
pub mod register;
pub mod signing;
pub mod smart;
pub mod totp;

use std::sync::Arc;
use std::time::Duration;

use carerecord_access::{Principal, PrincipalId, Role};
use carerecord_fhir::{LogicalId, ResourceType};
use carerecord_store::{
    ClientRecord, Directory, ResourceStore, RoleGrant, StoreError, TokenRecord, UserRecord,
    now_micros,
};
use serde::Serialize;

pub use launch::{LaunchClaims, LaunchRefusal, VerifiedLaunch};
pub use login::{LoginError, LoginRequest, RoleChoice, SignInAttempt, SignInEvent};
pub use oauth::{OAuthError, TokenRequest, TokenResponse};
pub use password::PasswordCost;
pub use signing::SigningKey;
pub use smart::{
    AuthorizeError, AuthorizeRequest, Introspection, NewSmartApp, PatientContext, Revocation,
    Revoked,
};

/// The ODS code identifier system of an `Organization`.
pub const ODS_SYSTEM: &str = "https://fhir.nhs.uk/Id/ods-organization-code";

const MICROS_PER_SECOND: i64 = 1_000_000;

/// Policy knobs, with the defaults the issue names.
#[derive(Debug, Clone)]
pub struct IdentitySettings {
    /// Failed sign-ins in a row that lock an account.
    pub max_failed_sign_ins: u32,
    /// How long a locked account stays locked.
    pub lockout: Duration,
    /// A person's session ends this long after sign-in, however busy.
    pub session_lifetime: Duration,
    /// … or after this long unused.
    pub session_idle: Duration,
    /// Lifetime of a token issued by client credentials.
    pub system_token_lifetime: Duration,
    /// Cost of new password and client-secret hashes.
    pub password_cost: PasswordCost,
    /// Registered JWKS URLs: which may be fetched, and how long a document is cached.
    pub jwks: jwks::JwksSettings,
}

impl Default for IdentitySettings {
    fn default() -> Self {
        IdentitySettings {
            max_failed_sign_ins: 5,
            lockout: Duration::from_secs(15 * 60),
            session_lifetime: Duration::from_secs(8 * 3600),
            session_idle: Duration::from_secs(30 * 60),
            system_token_lifetime: Duration::from_secs(3600),
            password_cost: PasswordCost::Recommended,
            jwks: jwks::JwksSettings::default(),
        }
    }
}

/// What goes wrong outside sign-in and the token endpoint.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("the bearer token is not valid")]
    InvalidToken,
    #[error("the session has expired")]
    Expired,
    #[error("{0}")]
    Invalid(String),
    #[error("already exists: {0}")]
    AlreadyExists(String),
    #[error("storage: {0}")]
    Store(StoreError),
    #[error("internal: {0}")]
    Internal(String),
}

impl From<StoreError> for IdentityError {
    fn from(e: StoreError) -> Self {
        IdentityError::Store(e)
    }
}

pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], IdentityError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| IdentityError::Internal(format!("getrandom: {e}")))?;
    Ok(b)
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// A bearer token just issued.
#[derive(Debug, Clone, Serialize)]
pub struct Session {
    pub access_token: String,
    /// µs since the epoch.
    pub expires_at: i64,
    pub principal: Principal,
}

/// A request's verified identity.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub principal: Principal,
    /// The digest of the token used (to log out, or to refresh the principal).
    pub token_hash: String,
}

/// A person to create.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub display_name: String,
    /// `None` generates a one-time password.
    pub password: Option<String>,
    pub grants: Vec<(Role, String)>,
    /// `None`: trained today (valid for twelve months).
    pub training_valid_until: Option<i64>,
}

/// A person created, with the secrets shown once.
#[derive(Debug, Clone, Serialize)]
pub struct CreatedUser {
    pub id: String,
    pub username: String,
    pub password: String,
    pub totp_secret: String,
    pub otpauth_uri: String,
}

/// A system to register.
#[derive(Debug, Clone)]
pub struct NewClient {
    pub client_id: String,
    pub role: Role,
    pub organisation_id: String,
    /// Generate a client secret.
    pub secret: bool,
    /// A PEM public key or a JWK / JWK Set (JSON), for `private_key_jwt`.
    pub public_key: Option<String>,
}

/// A registered client, with its secret shown once.
#[derive(Debug, Clone, Serialize)]
pub struct CreatedClient {
    pub client_id: String,
    pub secret: Option<String>,
}

/// The identity service. Cheap to share (`Arc`).
pub struct Identity {
    store: Arc<dyn ResourceStore>,
    dir: Arc<dyn Directory>,
    settings: IdentitySettings,
    /// The key SMART access and id tokens are signed with (see [`signing`]).
    signing: std::sync::OnceLock<SigningKey>,
    /// Keys published at registered JWKS URLs.
    jwks: jwks::JwksCache,
}

/// Midnight UTC twelve months after `now` (29 February becomes 28 February): training done
/// today counts until the same date next year.
pub fn training_valid_until_from(now: i64) -> i64 {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp(now / MICROS_PER_SECOND) else {
        return now;
    };
    let d = t.date();
    let next = d
        .replace_year(d.year() + 1)
        .or_else(|_| d.replace_day(28).and_then(|d| d.replace_year(d.year() + 1)))
        .unwrap_or(d);
    next.midnight().assume_utc().unix_timestamp() * MICROS_PER_SECOND
}

impl Identity {
    pub fn new(store: Arc<dyn ResourceStore>, settings: IdentitySettings) -> Self {
        let dir = store.directory();
        Identity {
            store,
            dir,
            jwks: jwks::JwksCache::new(settings.jwks.clone()),
            settings,
            signing: std::sync::OnceLock::new(),
        }
    }

    /// Installs what fetches registered JWKS URLs (the server's HTTP client). Once only:
    /// `false` if one was installed already. Without one, clients registered with a JWKS URL
    /// are refused as if their keys were unreachable.
    pub fn set_jwks_fetcher(&self, fetcher: Arc<dyn jwks::JwksFetcher>) -> bool {
        self.jwks.set_fetcher(fetcher)
    }

    /// The key of registered client `client` that verifies a token signed with `alg` (and
    /// naming `kid`): its registered key (PEM, JWK or JWK Set) first, then the document at its
    /// JWKS URL, if it registered one.
    pub(crate) async fn client_key(
        &self,
        client: &ClientRecord,
        alg: jsonwebtoken::Algorithm,
        kid: Option<&str>,
    ) -> Result<jsonwebtoken::DecodingKey, jwks::JwksError> {
        if let Some(key) = client
            .public_key_pem
            .as_deref()
            .and_then(|k| oauth::decoding_key(k, alg, kid))
        {
            return Ok(key);
        }
        let uri = self
            .dir
            .client_jwks_uri(&client.client_id)
            .await
            .map_err(|e| jwks::JwksError::Unavailable(format!("storage: {e}")))?;
        match uri {
            Some(uri) => self.jwks.key(&uri, alg, kid).await,
            None => Err(jwks::JwksError::UnknownKey),
        }
    }

    /// Sets the key SMART tokens are signed with. Once only: `false` if one was set (or
    /// made) already.
    pub fn set_signing_key(&self, key: SigningKey) -> bool {
        self.signing.set(key).is_ok()
    }

    /// The signing key; without one set, a key of this process's own is made at first use.
    pub fn signing_key(&self) -> Result<&SigningKey, IdentityError> {
        if let Some(k) = self.signing.get() {
            return Ok(k);
        }
        let (key, _) = SigningKey::generate()?;
        Ok(self.signing.get_or_init(|| key))
    }

    pub fn settings(&self) -> &IdentitySettings {
        &self.settings
    }

    pub fn directory(&self) -> &Arc<dyn Directory> {
        &self.dir
    }

    /// The ODS code of `Organization/{id}`, or `""` when the store has no such organisation
    /// yet (a first administrator may be made before any data is loaded).
    async fn ods_code(&self, organisation_id: &str) -> Result<String, IdentityError> {
        let Ok(id) = LogicalId::parse(organisation_id) else {
            return Ok(String::new());
        };
        let org = match self
            .store
            .read(
                ResourceType::Organization,
                &id,
                &carerecord_access::Visibility::All,
            )
            .await
        {
            Ok(r) => r,
            Err(StoreError::NotFound | StoreError::Gone(_)) => return Ok(String::new()),
            Err(e) => return Err(e.into()),
        };
        let body: serde_json::Value = serde_json::from_str(&org.body).unwrap_or_default();
        Ok(body["identifier"]
            .as_array()
            .and_then(|ids| {
                ids.iter()
                    .find(|i| i["system"] == ODS_SYSTEM)
                    .and_then(|i| i["value"].as_str())
            })
            .unwrap_or_default()
            .to_owned())
    }

    /// Whether the organisation exists in the store.
    pub async fn organisation_exists(&self, organisation_id: &str) -> Result<bool, IdentityError> {
        let id = LogicalId::parse(organisation_id)
            .map_err(|e| IdentityError::Invalid(format!("organisation id: {e}")))?;
        match self
            .store
            .read(
                ResourceType::Organization,
                &id,
                &carerecord_access::Visibility::All,
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(StoreError::NotFound | StoreError::Gone(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    async fn issue(
        &self,
        subject: &str,
        principal: &Principal,
        lifetime: Duration,
        now: i64,
    ) -> Result<Session, IdentityError> {
        let access_token = bearer::new_token()?;
        let expires_at = now.saturating_add(micros(lifetime));
        let principal_json =
            serde_json::to_string(principal).map_err(|e| IdentityError::Internal(e.to_string()))?;
        self.dir
            .create_token(&TokenRecord {
                token_hash: bearer::digest(&access_token),
                subject: subject.to_owned(),
                principal: principal_json,
                created: now,
                expires_at,
                last_used: now,
                revoked: false,
            })
            .await?;
        Ok(Session {
            access_token,
            expires_at,
            principal: principal.clone(),
        })
    }

    /// The principal behind `bearer` at `now`: refused when unknown, revoked, past its
    /// absolute expiry, or (for people) unused for longer than the idle limit.
    pub async fn authenticate(
        &self,
        bearer_token: &str,
        now: i64,
    ) -> Result<Authenticated, IdentityError> {
        let token_hash = bearer::digest(bearer_token);
        let Some(t) = self.dir.token(&token_hash).await? else {
            return Err(IdentityError::InvalidToken);
        };
        if t.revoked {
            return Err(IdentityError::InvalidToken);
        }
        if now >= t.expires_at {
            return Err(IdentityError::Expired);
        }
        let principal: Principal = serde_json::from_str(&t.principal)
            .map_err(|e| IdentityError::Internal(format!("stored principal: {e}")))?;
        if !principal.role.is_system() {
            if now.saturating_sub(t.last_used) > micros(self.settings.session_idle) {
                return Err(IdentityError::Expired);
            }
            // Writing on every request would serialise readers behind SQLite's one writer;
            // once a minute is precise enough for an idle limit of many minutes.
            if now.saturating_sub(t.last_used) > 60 * MICROS_PER_SECOND {
                self.dir.touch_token(&token_hash, now).await?;
            }
        }
        Ok(Authenticated {
            principal,
            token_hash,
        })
    }

    /// Ends the session of `auth`.
    pub async fn logout(&self, auth: &Authenticated) -> Result<(), IdentityError> {
        self.dir.revoke_token(&auth.token_hash).await?;
        Ok(())
    }

    /// Records data-security training completed at `now` by the signed-in person, and
    /// returns the session's refreshed principal.
    pub async fn record_training(
        &self,
        auth: &Authenticated,
        now: i64,
    ) -> Result<Principal, IdentityError> {
        let PrincipalId::User(user_id) = &auth.principal.id else {
            return Err(IdentityError::Invalid(
                "systems do not take data-security training".into(),
            ));
        };
        let until = training_valid_until_from(now);
        self.dir.set_training_valid_until(user_id, until).await?;
        let mut principal = auth.principal.clone();
        principal.training_valid_until = Some(until);
        let json = serde_json::to_string(&principal)
            .map_err(|e| IdentityError::Internal(e.to_string()))?;
        self.dir
            .update_token_principal(&auth.token_hash, &json)
            .await?;
        Ok(principal)
    }

    /// Whether an enabled programme administrator exists.
    pub async fn administrator_exists(&self) -> Result<bool, IdentityError> {
        Ok(self.dir.role_is_held(Role::ProgrammeAdmin.as_str()).await?)
    }

    /// Creates a person with their grants, a password (given or generated) and a TOTP secret.
    pub async fn create_user(&self, new: NewUser) -> Result<CreatedUser, IdentityError> {
        let username = new.username.trim().to_owned();
        if username.is_empty() || username.len() > 128 || username.contains(char::is_whitespace) {
            return Err(IdentityError::Invalid(
                "a username is 1 to 128 characters without spaces".into(),
            ));
        }
        if new.grants.is_empty() {
            return Err(IdentityError::Invalid(
                "a user needs at least one role".into(),
            ));
        }
        if let Some((role, _)) = new.grants.iter().find(|(r, _)| r.is_system()) {
            return Err(IdentityError::Invalid(format!(
                "{role} is a role for systems: register a client instead"
            )));
        }
        let now = now_micros();
        let password = match new.password {
            Some(p) => p,
            None => bearer::new_password()?,
        };
        let totp_secret = totp::new_secret()?;
        let id = format!(
            "usr-{}",
            bearer::digest(&bearer::new_token()?)
                .get(..16)
                .unwrap_or("0")
        );
        let user = UserRecord {
            id: id.clone(),
            username: username.clone(),
            display_name: new.display_name,
            password_hash: password::hash(&password, self.settings.password_cost)?,
            totp_secret: Some(totp_secret.clone()),
            totp_last_step: None,
            failed_attempts: 0,
            locked_until: None,
            training_valid_until: Some(
                new.training_valid_until
                    .unwrap_or_else(|| training_valid_until_from(now)),
            ),
            created: now,
            disabled: false,
        };
        match self.dir.create_user(&user).await {
            Err(StoreError::AlreadyExists) => {
                return Err(IdentityError::AlreadyExists(format!(
                    "the username {username} is taken"
                )));
            }
            r => r?,
        }
        for (role, org) in &new.grants {
            self.dir
                .grant_role(&RoleGrant {
                    user_id: id.clone(),
                    role: role.as_str().to_owned(),
                    organisation_id: org.clone(),
                })
                .await?;
        }
        let otpauth_uri = totp::otpauth_uri(&totp_secret, &username)?;
        Ok(CreatedUser {
            id,
            username,
            password,
            totp_secret,
            otpauth_uri,
        })
    }

    /// Adds a role grant to an existing user.
    pub async fn grant(
        &self,
        username: &str,
        role: Role,
        organisation_id: &str,
    ) -> Result<(), IdentityError> {
        if role.is_system() {
            return Err(IdentityError::Invalid(format!(
                "{role} is a role for systems: register a client instead"
            )));
        }
        let Some(user) = self.dir.user_by_username(username).await? else {
            return Err(IdentityError::Invalid(format!("no user {username}")));
        };
        self.dir
            .grant_role(&RoleGrant {
                user_id: user.id,
                role: role.as_str().to_owned(),
                organisation_id: organisation_id.to_owned(),
            })
            .await?;
        Ok(())
    }

    /// Registers (or replaces) the SMART scopes a client may be granted by client credentials
    /// (`system/Patient.rs system/Observation.rs`): a token request's scopes are cut down to
    /// these, and a request without `scope` gets them all. Refused when the string does not
    /// parse, or names no `system/` scope.
    pub async fn set_client_scope(
        &self,
        client_id: &str,
        scope: &str,
    ) -> Result<String, IdentityError> {
        let set = carerecord_access::ScopeSet::parse(scope)
            .map_err(|e| IdentityError::Invalid(e.to_string()))?;
        if !set.has_context(carerecord_access::ContextKind::System) {
            return Err(IdentityError::Invalid(
                "a client's scopes must include at least one system/ scope".into(),
            ));
        }
        if self.dir.client(client_id).await?.is_none() {
            return Err(IdentityError::Invalid(format!(
                "there is no registered client {client_id}"
            )));
        }
        let canonical = set.to_string();
        self.dir.set_client_scope(client_id, &canonical).await?;
        Ok(canonical)
    }

    /// Registers a system that acts for an organisation.
    pub async fn create_client(&self, new: NewClient) -> Result<CreatedClient, IdentityError> {
        if !new.role.is_system() {
            return Err(IdentityError::Invalid(
                "a client's role is system or service".into(),
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
        if !new.secret && new.public_key.is_none() {
            return Err(IdentityError::Invalid(
                "a client needs a secret or a public key".into(),
            ));
        }
        if let Some(key) = &new.public_key {
            oauth::check_public_key(key)?;
        }
        let secret = if new.secret {
            Some(bearer::new_secret()?)
        } else {
            None
        };
        let record = ClientRecord {
            client_id: new.client_id.clone(),
            organisation_id: new.organisation_id,
            role: new.role.as_str().to_owned(),
            secret_hash: secret
                .as_deref()
                .map(|s| password::hash(s, self.settings.password_cost))
                .transpose()?,
            public_key_pem: new.public_key,
            created: now_micros(),
            disabled: false,
        };
        match self.dir.create_client(&record).await {
            Err(StoreError::AlreadyExists) => Err(IdentityError::AlreadyExists(format!(
                "the client id {} is taken",
                new.client_id
            ))),
            r => {
                r?;
                Ok(CreatedClient {
                    client_id: new.client_id,
                    secret,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i32, m: u8, d: u8) -> i64 {
        let date = time::Date::from_calendar_date(
            y,
            time::Month::try_from(m).unwrap_or(time::Month::January),
            d,
        )
        .unwrap_or(time::Date::MIN);
        date.midnight().assume_utc().unix_timestamp() * MICROS_PER_SECOND
    }

    #[test]
    fn training_done_today_counts_until_the_same_date_next_year() {
        let noon = at(2026, 11, 25) + 12 * 3600 * MICROS_PER_SECOND;
        assert_eq!(training_valid_until_from(noon), at(2027, 11, 25));
        assert_eq!(training_valid_until_from(at(2028, 2, 29)), at(2029, 2, 28));
    }
}
