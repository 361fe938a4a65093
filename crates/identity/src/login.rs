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
        let user = self.dir.user_by_username(req.username.trim()).await?;
        let Some(user) = user.filter(|u| !u.disabled) else {
            password::verify_dummy(&req.password);
            return Err(LoginError::InvalidCredentials);
        };
        if let Some(locked) = user.locked_until.filter(|l| *l > now) {
            return Err(LoginError::Locked {
                minutes: minutes_left(locked, now),
            });
        }
        if !password::verify(&user.password_hash, &req.password) {
            return Err(self.failed(&user.id, now).await);
        }

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

        let principal = Principal {
            id: PrincipalId::User(user.id.clone()),
            name: user.display_name.clone(),
            role: chosen.role,
            organisation_ods: self.ods_code(&chosen.organisation).await?,
            organisation_id: chosen.organisation,
            training_valid_until: Some(user.training_valid_until.unwrap_or(0)),
        };
        tracing::info!(user_id = %user.id, role = %principal.role, organisation = %principal.organisation_id, "signed in");
        Ok(self
            .issue(&user.id, &principal, self.settings.session_lifetime, now)
            .await?)
    }
}
