//! A person signs in: password, then TOTP code, then one of their role grants.
//!
//! Every refusal before the password is known to be right says the same thing, so the
//! answer never tells whether a username exists. A locked account says so (and for how
//! long) without checking the password, so guesses during a lock cost nothing and tell
//! nothing.

use carerecord_access::{Principal, PrincipalId, Role};
use serde::{Deserialize, Serialize};

use crate::{Identity, IdentityError, MICROS_PER_SECOND, Session, micros, password, totp};

/// `POST /auth/login`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
    /// The 6-digit code from the authenticator app.
    #[serde(default)]
    pub totp: Option<String>,
    /// The organisation (logical id) to act for, when the user holds roles at several.
    #[serde(default)]
    pub organisation: Option<String>,
    /// The role to act in, when the user holds several.
    #[serde(default)]
    pub role: Option<Role>,
}

/// Shows no username, password or code, so a stray `{:?}` cannot put them in a log.
impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest")
            .field("organisation", &self.organisation)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// One of the grants a user may choose from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoleChoice {
    pub organisation: String,
    pub role: Role,
}

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Wrong username, password or code: one message for all.
    #[error("the username, password or code is not right")]
    InvalidCredentials,
    /// The account is locked for this many more minutes.
    #[error("the account is locked; try again in {minutes} minutes")]
    Locked { minutes: i64 },
    /// The password was right but a TOTP code is required for this role.
    #[error("a code from your authenticator app is required")]
    SecondFactorRequired,
    /// The user holds several roles and must choose one.
    #[error("choose the organisation and role to act in")]
    ChooseRole(Vec<RoleChoice>),
    /// The organisation or role asked for is not one the user holds.
    #[error("you do not hold that role at that organisation")]
    NoSuchRole,
    #[error(transparent)]
    Other(#[from] IdentityError),
}

impl From<carerecord_store::StoreError> for LoginError {
    fn from(e: carerecord_store::StoreError) -> Self {
        LoginError::Other(IdentityError::Store(e))
    }
}

/// How a sign-in attempt ended, for the audit trail. Each has a stable rule id a privacy
/// officer can search for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInEvent {
    SignedIn,
    /// The username names no enabled account.
    UnknownUser,
    /// The account exists but is disabled.
    Disabled,
    WrongPassword,
    /// A TOTP code that is wrong, or was used already.
    WrongCode,
    /// The password was right; a code is still needed. Not a failure.
    CodeRequired,
    /// This failure locked the account.
    LockedOut,
    /// Refused because the account was already locked (the password was not checked).
    WhileLocked,
    NoSuchRole,
    /// The password and code were right; the user must choose a role. Not a failure.
    ChooseRole,
    /// Storage failed.
    Error,
}

impl SignInEvent {
    pub fn rule(self) -> &'static str {
        match self {
            SignInEvent::SignedIn => "sign-in",
            SignInEvent::UnknownUser => "deny-unknown-user",
            SignInEvent::Disabled => "deny-account-disabled",
            SignInEvent::WrongPassword => "deny-wrong-password",
            SignInEvent::WrongCode => "deny-wrong-second-factor",
            SignInEvent::CodeRequired => "second-factor-required",
            SignInEvent::LockedOut => "account-locked",
            SignInEvent::WhileLocked => "deny-account-locked",
            SignInEvent::NoSuchRole => "deny-no-such-role",
            SignInEvent::ChooseRole => "choose-role",
            SignInEvent::Error => "error",
        }
    }
}

/// Who a sign-in attempt was about and how it ended: what the server writes to the audit
/// trail. It never holds what was typed — not the password or code, and not the username:
/// an unknown username is often a password typed into the wrong box, or another service's
/// login, and the trail keeps everything for ever (`docs/adr/0003-audit-trail.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInAttempt {
    /// The account the username named, when one does (its id, never the username).
    pub user_id: Option<String>,
    pub display_name: Option<String>,
    /// The organisation the attempt is accounted to, so its privacy officer sees it: the one
    /// the user asked for (if they hold a role there) or their only one.
    pub organisation_id: Option<String>,
    pub event: SignInEvent,
}

impl SignInAttempt {
    fn unknown() -> Self {
        SignInAttempt {
            user_id: None,
            display_name: None,
            organisation_id: None,
            event: SignInEvent::Error,
        }
    }
}

fn minutes_left(locked_until: i64, now: i64) -> i64 {
    let left = locked_until.saturating_sub(now);
    (left + 60 * MICROS_PER_SECOND - 1) / (60 * MICROS_PER_SECOND)
}

impl Identity {
    /// Counts a failure; the error to answer with.
    async fn failed(&self, user_id: &str, now: i64) -> LoginError {
        let until = now.saturating_add(micros(self.settings.lockout));
        let max = i64::from(self.settings.max_failed_sign_ins.max(1));
        match self.dir.record_failed_sign_in(user_id, max, until).await {
            Ok(Some(locked)) if locked > now => {
                tracing::warn!(user_id, "account locked after repeated failed sign-ins");
                LoginError::Locked {
                    minutes: minutes_left(locked, now),
                }
            }
            Ok(_) => LoginError::InvalidCredentials,
            Err(e) => e.into(),
        }
    }

    /// Signs a person in at `now` and issues a session token.
    pub async fn login(&self, req: &LoginRequest, now: i64) -> Result<Session, LoginError> {
        self.sign_in(req, now).await.0
    }

    /// Like [`Identity::login`], and says who the attempt was about and how it ended, for
    /// the audit trail.
    pub async fn sign_in(
        &self,
        req: &LoginRequest,
        now: i64,
    ) -> (Result<Session, LoginError>, SignInAttempt) {
        let mut attempt = SignInAttempt::unknown();
        let result = self.login_inner(req, now, &mut attempt).await;
        attempt.event = match &result {
            Ok(_) => SignInEvent::SignedIn,
            Err(LoginError::Locked { .. }) if attempt.event == SignInEvent::WrongPassword => {
                SignInEvent::LockedOut
            }
            Err(LoginError::Locked { .. }) if attempt.event == SignInEvent::WrongCode => {
                SignInEvent::LockedOut
            }
            Err(LoginError::SecondFactorRequired) => SignInEvent::CodeRequired,
            Err(LoginError::ChooseRole(_)) => SignInEvent::ChooseRole,
            Err(LoginError::NoSuchRole) => SignInEvent::NoSuchRole,
            Err(LoginError::Other(_)) => SignInEvent::Error,
            Err(_) => attempt.event,
        };
        if let Some(user_id) = attempt.user_id.clone()
            && attempt.organisation_id.is_none()
        {
            attempt.organisation_id = self.accountable_organisation(&user_id, req).await;
        }
        (result, attempt)
    }

    /// The organisation a failed attempt is accounted to: the one asked for, if the user holds
    /// a role there, or the only one they hold roles at. `None` when that is ambiguous.
    async fn accountable_organisation(&self, user_id: &str, req: &LoginRequest) -> Option<String> {
        let grants = self.dir.grants(user_id).await.ok()?;
        if let Some(asked) = &req.organisation
            && grants.iter().any(|g| g.organisation_id == *asked)
        {
            return Some(asked.clone());
        }
        let first = grants.first()?.organisation_id.clone();
        grants
            .iter()
            .all(|g| g.organisation_id == first)
            .then_some(first)
    }

    async fn login_inner(
        &self,
        req: &LoginRequest,
        now: i64,
        attempt: &mut SignInAttempt,
    ) -> Result<Session, LoginError> {
        let user = self.dir.user_by_username(req.username.trim()).await?;
        attempt.event = SignInEvent::UnknownUser;
        let Some(user) = user else {
            password::verify_dummy(&req.password);
            return Err(LoginError::InvalidCredentials);
        };
        attempt.user_id = Some(user.id.clone());
        attempt.display_name = Some(user.display_name.clone());
        if user.disabled {
            attempt.event = SignInEvent::Disabled;
            password::verify_dummy(&req.password);
            return Err(LoginError::InvalidCredentials);
        }
        if let Some(locked) = user.locked_until.filter(|l| *l > now) {
            attempt.event = SignInEvent::WhileLocked;
            return Err(LoginError::Locked {
                minutes: minutes_left(locked, now),
            });
        }
        if !password::verify(&user.password_hash, &req.password) {
            attempt.event = SignInEvent::WrongPassword;
            return Err(self.failed(&user.id, now).await);
        }
        attempt.event = SignInEvent::WrongCode;

        let grants: Vec<RoleChoice> = self
            .dir
            .grants(&user.id)
            .await?
            .into_iter()
            .filter_map(|g| {
                Some(RoleChoice {
                    role: g.role.parse().ok()?,
                    organisation: g.organisation_id,
                })
            })
            .collect();
        let candidates: Vec<RoleChoice> = grants
            .iter()
            .filter(|g| {
                req.organisation
                    .as_ref()
                    .is_none_or(|o| *o == g.organisation)
            })
            .filter(|g| req.role.is_none_or(|r| r == g.role))
            .cloned()
            .collect();

        // The second factor is checked before anything about the user's roles is revealed;
        // its step is spent only once a role is settled, so a user asked to choose can send
        // the same code again with their choice.
        let mut step = None;
        if grants.iter().any(|g| g.role.needs_second_factor()) {
            let Some(code) = req.totp.as_deref().filter(|c| !c.trim().is_empty()) else {
                return Err(LoginError::SecondFactorRequired);
            };
            let Some(secret) = user.totp_secret.as_deref() else {
                tracing::warn!(user_id = %user.id, "sign-in refused: no TOTP secret enrolled");
                return Err(LoginError::InvalidCredentials);
            };
            let seconds = u64::try_from(now / MICROS_PER_SECOND).unwrap_or(0);
            let Some(s) = totp::check(secret, code, seconds) else {
                return Err(self.failed(&user.id, now).await);
            };
            step = Some(i64::try_from(s).unwrap_or(i64::MAX));
        }
        let chosen = match candidates.as_slice() {
            [one] => one.clone(),
            [] => return Err(LoginError::NoSuchRole),
            _ => return Err(LoginError::ChooseRole(candidates)),
        };
        if let Some(step) = step
            && !self.dir.use_totp_step(&user.id, step).await?
        {
            // RFC 6238 §5.2: a code already used is refused, like a wrong one.
            return Err(self.failed(&user.id, now).await);
        }
        self.dir.record_successful_sign_in(&user.id).await?;
        attempt.organisation_id = Some(chosen.organisation.clone());

        let principal = Principal {
            id: PrincipalId::User(user.id.clone()),
            name: user.display_name.clone(),
            role: chosen.role,
            organisation_ods: self.ods_code(&chosen.organisation).await?,
            organisation_id: chosen.organisation,
            training_valid_until: Some(user.training_valid_until.unwrap_or(0)),
            smart: None,
        };
        tracing::info!(user_id = %user.id, role = %principal.role, organisation = %principal.organisation_id, "signed in");
        Ok(self
            .issue(&user.id, &principal, self.settings.session_lifetime, now)
            .await?)
    }
}
