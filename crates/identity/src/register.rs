//! Registering systems and SMART apps whole, as the administrators' portal pages (and the CLI
//! for a JWKS URL) do: every field is checked first, each problem named against its field,
//! and then everything — the client, its scopes, the care homes it may launch into, its JWKS
//! URL, the app — is written in one store transaction, so a refused registration leaves
//! nothing behind. Disabling one ends its tokens at once.

use carerecord_access::{ContextKind, Role, ScopeSet};
use carerecord_store::{
    ClientRecord, ClientRegistration, LaunchRegistration, RegisteredClient, SmartAppRecord,
    StoreError, now_micros,
};

use crate::smart::{APP_ROLE, redirect_uri_allowed, scope_is_known};
use crate::{CreatedClient, Identity, IdentityError, bearer, jwks, oauth, password};

/// Where a client's public keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keys {
    /// None (a public app, or a client with a secret only).
    None,
    /// A JWK Set (or a JWK, or a PEM key) pasted in.
    Document(String),
    /// A JWKS URL carerecord fetches.
    Uri(String),
}

/// A care home record system: acts for its organisations (backend services) and may launch
/// their staff into the portal.
#[derive(Debug, Clone)]
pub struct NewSystem {
    pub client_id: String,
    /// The care home organisations (logical ids); the first is the one it acts for with
    /// client credentials; it may launch staff into each of them.
    pub organisations: Vec<String>,
    /// The roles it may assert at a launch (none: it does not launch).
    pub launch_roles: Vec<Role>,
    /// The `system/` scopes it may be granted; `None` for any, within the policy.
    pub scope: Option<String>,
    pub keys: Keys,
    /// Also generate a client secret.
    pub secret: bool,
}

/// A SMART app (authorisation code flow with PKCE).
#[derive(Debug, Clone)]
pub struct NewApp {
    pub client_id: String,
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub launch_url: Option<String>,
    pub scopes: String,
    /// Confidential apps authenticate at the token endpoint with a secret (generated) or a key.
    pub confidential: bool,
    pub keys: Keys,
}

/// One thing wrong with a registration, against the form field it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub field: &'static str,
    pub message: String,
}

/// Why a registration was refused.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("{}", .0.iter().map(|p| p.message.as_str()).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<Problem>),
    #[error(transparent)]
    Failed(#[from] IdentityError),
}

impl From<StoreError> for RegisterError {
    fn from(e: StoreError) -> Self {
        RegisterError::Failed(IdentityError::Store(e))
    }
}

fn problem(field: &'static str, message: impl Into<String>) -> Problem {
    Problem {
        field,
        message: message.into(),
    }
}

fn check_client_id(id: &str, problems: &mut Vec<Problem>) {
    if id.is_empty()
        || id.len() > 128
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._~".contains(c))
    {
        problems.push(problem(
            "client_id",
            "Enter a client id of 1 to 128 letters, digits and - . _ ~",
        ));
    }
}

/// The key fields, checked: `(public key, JWKS URL)`.
fn check_keys(
    keys: &Keys,
    allow_loopback_http: bool,
    problems: &mut Vec<Problem>,
) -> (Option<String>, Option<String>) {
    match keys {
        Keys::None => (None, None),
        Keys::Document(doc) => {
            if oauth::check_public_key(doc).is_err() {
                problems.push(problem(
                    "jwks",
                    "Paste a JWK Set with an RSA, EC P-256 or EC P-384 public key",
                ));
            } else if doc.contains("\"d\"") {
                // A private JWK has `d`: refuse it rather than keep a secret in the directory.
                problems.push(problem(
                    "jwks",
                    "That is a private key: paste the public keys only",
                ));
            }
            (Some(doc.trim().to_owned()), None)
        }
        Keys::Uri(uri) => {
            if let Err(e) = jwks::check_jwks_uri(uri, allow_loopback_http) {
                problems.push(problem("jwks_uri", format!("Enter a JWKS URL: {e}")));
            }
            (None, Some(uri.trim().to_owned()))
        }
    }
}

impl Identity {
    /// Registers a care home record system whole, or nothing. Its secret, if any, is shown once.
    pub async fn register_system(&self, new: NewSystem) -> Result<CreatedClient, RegisterError> {
        let mut problems = Vec::new();
        check_client_id(&new.client_id, &mut problems);
        let mut organisations: Vec<String> = Vec::new();
        for o in &new.organisations {
            let o = o.trim();
            if !o.is_empty() && !organisations.iter().any(|x| x == o) {
                organisations.push(o.to_owned());
            }
        }
        if organisations.is_empty() {
            problems.push(problem(
                "organisations",
                "Enter the care home organisations the system works for",
            ));
        }
        for o in &organisations {
            if !self.organisation_exists(o).await? {
                problems.push(problem(
                    "organisations",
                    format!("There is no organisation {o} in the record"),
                ));
            }
        }
        if let Some(r) = new
            .launch_roles
            .iter()
            .find(|r| !crate::launch::launchable(**r))
        {
            problems.push(problem(
                "launch_roles",
                format!("{r} cannot be asserted by a launching system"),
            ));
        }
        let scope = match new
            .scope
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            None => None,
            Some(s) => match ScopeSet::parse(s) {
                Ok(set) if set.has_context(ContextKind::System) => Some(set.to_string()),
                Ok(_) => {
                    problems.push(problem(
                        "scope",
                        "A system's scopes must include at least one system/ scope",
                    ));
                    None
                }
                Err(e) => {
                    problems.push(problem("scope", format!("The scopes are not valid: {e}")));
                    None
                }
            },
        };
        let allow = self.settings.jwks.allow_loopback_http;
        let (public_key, jwks_uri) = check_keys(&new.keys, allow, &mut problems);
        if public_key.is_none() && jwks_uri.is_none() && !new.secret {
            problems.push(problem(
                "keys",
                "Give the system's public keys (a JWK Set or a JWKS URL)",
            ));
        }
        if !new.launch_roles.is_empty() && public_key.is_none() && jwks_uri.is_none() {
            problems.push(problem(
                "keys",
                "A system that launches its staff needs public keys to sign with",
            ));
        }
        if !problems.is_empty() {
            return Err(RegisterError::Invalid(problems));
        }
        let mut roles: Vec<String> = new
            .launch_roles
            .iter()
            .map(|r| r.as_str().to_owned())
            .collect();
        roles.sort();
        roles.dedup();
        let launch = if roles.is_empty() {
            Vec::new()
        } else {
            organisations
                .iter()
                .map(|o| LaunchRegistration {
                    client_id: new.client_id.clone(),
                    organisation_id: o.clone(),
                    roles: roles.clone(),
                })
                .collect()
        };
        let secret = new.secret.then(bearer::new_secret).transpose()?;
        let registration = ClientRegistration {
            client: ClientRecord {
                client_id: new.client_id.clone(),
                organisation_id: organisations.first().cloned().unwrap_or_default(),
                role: Role::System.as_str().to_owned(),
                secret_hash: secret
                    .as_deref()
                    .map(|s| password::hash(s, self.settings.password_cost))
                    .transpose()?,
                public_key_pem: public_key,
                created: now_micros(),
                disabled: false,
            },
            scope,
            launch,
            jwks_uri,
            app: None,
        };
        self.write_registration(&registration).await?;
        Ok(CreatedClient {
            client_id: new.client_id,
            secret,
        })
    }

    /// Registers a SMART app whole, or nothing. Its secret, if any, is shown once.
    pub async fn register_app(&self, new: NewApp) -> Result<CreatedClient, RegisterError> {
        let mut problems = Vec::new();
        check_client_id(&new.client_id, &mut problems);
        let name = new.name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            problems.push(problem(
                "name",
                "Enter the app's name (up to 200 characters)",
            ));
        }
        let uris: Vec<String> = new
            .redirect_uris
            .iter()
            .map(|u| u.trim().to_owned())
            .filter(|u| !u.is_empty())
            .collect();
        if uris.is_empty() {
            problems.push(problem("redirect_uris", "Enter at least one redirect URI"));
        }
        if let Some(bad) = uris.iter().find(|u| !redirect_uri_allowed(u)) {
            problems.push(problem(
                "redirect_uris",
                format!("The redirect URI {bad} must be https (or http on 127.0.0.1/localhost), without a fragment"),
            ));
        }
        let launch_url = new
            .launch_url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_owned);
        if let Some(u) = &launch_url
            && !redirect_uri_allowed(u)
        {
            problems.push(problem(
                "launch_url",
                "The launch URL must be https (or http on 127.0.0.1/localhost)",
            ));
        }
        let scopes: Vec<&str> = new.scopes.split_whitespace().collect();
        if scopes.is_empty() {
            problems.push(problem("scopes", "Enter the scopes the app may be granted"));
        } else if let Some(bad) = scopes.iter().find(|s| !scope_is_known(s)) {
            problems.push(problem(
                "scopes",
                format!("The scope {bad} is not supported"),
            ));
        } else if scopes.iter().any(|s| s.starts_with("system/")) {
            problems.push(problem(
                "scopes",
                "system/ scopes are for backend services: register a system instead",
            ));
        }
        let allow = self.settings.jwks.allow_loopback_http;
        let (public_key, jwks_uri) = if new.confidential {
            check_keys(&new.keys, allow, &mut problems)
        } else {
            if new.keys != Keys::None {
                problems.push(problem(
                    "confidential",
                    "A public app has no keys: choose confidential to register them",
                ));
            }
            (None, None)
        };
        if !problems.is_empty() {
            return Err(RegisterError::Invalid(problems));
        }
        // A confidential app without keys authenticates with a generated secret.
        let secret = (new.confidential && public_key.is_none() && jwks_uri.is_none())
            .then(bearer::new_secret)
            .transpose()?;
        let now = now_micros();
        let registration = ClientRegistration {
            client: ClientRecord {
                client_id: new.client_id.clone(),
                organisation_id: String::new(),
                role: APP_ROLE.to_owned(),
                secret_hash: secret
                    .as_deref()
                    .map(|s| password::hash(s, self.settings.password_cost))
                    .transpose()?,
                public_key_pem: public_key,
                created: now,
                disabled: false,
            },
            scope: None,
            launch: Vec::new(),
            jwks_uri,
            app: Some(SmartAppRecord {
                client_id: new.client_id.clone(),
                name: name.to_owned(),
                redirect_uris: uris,
                scopes: scopes.join(" "),
                confidential: new.confidential,
                launch_url,
                created: now,
            }),
        };
        self.write_registration(&registration).await?;
        Ok(CreatedClient {
            client_id: new.client_id,
            secret,
        })
    }

    async fn write_registration(&self, r: &ClientRegistration) -> Result<(), RegisterError> {
        match self.dir.register_client(r).await {
            Err(StoreError::AlreadyExists) => Err(RegisterError::Invalid(vec![problem(
                "client_id",
                format!("The client id {} is taken", r.client.client_id),
            )])),
            other => Ok(other?),
        }
    }

    /// Every registered system, service and app.
    pub async fn registered_clients(&self) -> Result<Vec<RegisteredClient>, IdentityError> {
        Ok(self.dir.registered_clients().await?)
    }

    /// Disables a client: it gets no more tokens, launches and authorisations are refused,
    /// and every token it holds or was issued through it is revoked, at once. `false` when
    /// it is unknown or was disabled already.
    pub async fn disable_client(&self, client_id: &str) -> Result<bool, IdentityError> {
        Ok(self.dir.disable_client(client_id).await?)
    }
}
