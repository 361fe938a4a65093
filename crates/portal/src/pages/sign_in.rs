//! Sign in (password and TOTP code; the organisation and role when a person holds several),
//! sign out, and the page after signing out.

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use carerecord_access::Role;
use carerecord_identity::{LoginError, LoginRequest, RoleChoice};
use carerecord_server::AppState;
use carerecord_server::audit::{ClientAddress, sign_in_record};
use carerecord_store::{Channel, now_micros};
use serde::Deserialize;

use super::{Choice, FieldError};
use crate::page::{Chrome, PageError, render};
use crate::session::{self, SignedIn};

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage {
    chrome: Chrome,
    username: String,
    errors: Vec<FieldError>,
    roles: Vec<Choice>,
    /// Where to go once signed in (an app's authorisation request), if not the start page.
    next: String,
}

/// `?next=`: a path on this site to return to after signing in.
#[derive(Deserialize)]
pub struct NextQuery {
    #[serde(default)]
    next: String,
}

/// `next` when it is a path on this site (never another site: `//host` or `/\host` are
/// read by browsers as one), else nothing.
fn local_path(next: &str) -> Option<&str> {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && !next.chars().any(|c| c.is_control() || c.is_whitespace());
    ok.then_some(next)
}

pub async fn form(Query(q): Query<NextQuery>) -> Result<Response, PageError> {
    render(
        StatusCode::OK,
        &SignInPage {
            chrome: Chrome::anonymous("Sign in"),
            username: String::new(),
            errors: Vec::new(),
            roles: Vec::new(),
            next: local_path(&q.next).unwrap_or_default().to_owned(),
        },
    )
}

#[derive(Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    totp: String,
    /// `organisation|role`, when the person was asked to choose.
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    next: String,
}

fn choice_value(organisation: &str, role: Role) -> String {
    format!("{organisation}|{role}")
}

pub async fn submit(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    Form(f): Form<SignInForm>,
) -> Result<Response, PageError> {
    let (organisation, role) = match f.role.as_deref().and_then(|c| c.split_once('|')) {
        Some((o, r)) => (Some(o.to_owned()), r.parse::<Role>().ok()),
        None => (None, None),
    };
    let chosen = f.role.clone();
    let next = local_path(&f.next).unwrap_or_default().to_owned();
    let req = LoginRequest {
        username: f.username.trim().to_owned(),
        password: f.password,
        totp: Some(f.totp.trim().to_owned()).filter(|t| !t.is_empty()),
        organisation,
        role,
    };
    let now = now_micros();
    let again = |errors: Vec<FieldError>, choices: &[RoleChoice]| {
        render(
            StatusCode::UNAUTHORIZED,
            &SignInPage {
                chrome: Chrome::anonymous("Sign in"),
                username: req.username.clone(),
                next: next.clone(),
                errors,
                roles: choices
                    .iter()
                    .map(|c| {
                        let value = choice_value(&c.organisation, c.role);
                        Choice {
                            checked: chosen.as_deref() == Some(value.as_str()),
                            label: format!("{} at {}", c.role.display(), c.organisation),
                            value,
                        }
                    })
                    .collect(),
            },
        )
    };
    let err = |field: &'static str, message: &str| {
        vec![FieldError {
            field,
            message: message.to_owned(),
        }]
    };
    let (result, attempt) = state.identity.sign_in(&req, now).await;
    // Every outcome — signed in, refused, locked out — is in the audit trail before the page
    // is answered, written as `POST /auth/login` writes it (never the password, the code or
    // an unknown username), with the portal as the channel.
    let principal = result.as_ref().ok().map(|s| &s.principal);
    if let Some(mut r) = sign_in_record(&attempt, principal, client) {
        r.channel = Channel::Portal;
        state
            .store
            .append_audit(vec![r])
            .await
            .map_err(|e| PageError::Internal(format!("audit: {e}")))?;
    }
    match result {
        Ok(s) => {
            let to = match (s.principal.training_current(now), next.as_str()) {
                (false, _) => "/training",
                (true, "") => "/",
                (true, n) => n,
            };
            let mut resp = Redirect::to(to).into_response();
            if let Some(c) = session::cookie_for(&state, &s.access_token) {
                resp.headers_mut().insert(header::SET_COOKIE, c);
            }
            Ok(resp)
        }
        Err(LoginError::InvalidCredentials) => again(
            err(
                "username",
                "Your username, password or security code is not right. Check them and try again.",
            ),
            &[],
        ),
        Err(LoginError::SecondFactorRequired) => again(
            err(
                "totp",
                "Enter the 6-digit security code from your authenticator app",
            ),
            &[],
        ),
        Err(LoginError::Locked { minutes }) => again(
            err(
                "username",
                &format!(
                    "Your account is locked after too many attempts. Try again in {minutes} minute{}.",
                    if minutes == 1 { "" } else { "s" }
                ),
            ),
            &[],
        ),
        Err(LoginError::ChooseRole(choices)) => again(
            err(
                "role",
                "You work in more than one role. Choose the one you are working in now, and enter your password and a new security code again.",
            ),
            &choices,
        ),
        Err(LoginError::NoSuchRole) => again(
            err("role", "You do not hold that role at that organisation"),
            &[],
        ),
        Err(LoginError::Other(e)) => Err(PageError::Internal(e.to_string())),
    }
}

/// Ends the session (the token is revoked, not just forgotten by the browser).
pub async fn sign_out(State(state): State<AppState>, s: Result<SignedIn, PageError>) -> Response {
    if let Ok(s) = s
        && let Err(e) = state.identity.logout(&s.auth).await
    {
        return PageError::Internal(e.to_string()).into_response();
    }
    let mut resp = Redirect::to("/signed-out").into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, session::clearing_cookie(&state));
    resp
}

#[derive(Template)]
#[template(path = "signed_out.html")]
struct SignedOutPage {
    chrome: Chrome,
}

pub async fn signed_out() -> Result<Response, PageError> {
    render(
        StatusCode::OK,
        &SignedOutPage {
            chrome: Chrome::anonymous("You have signed out"),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_on_this_site_are_returned_to_after_sign_in() {
        assert_eq!(
            local_path("/auth/authorize?client_id=a"),
            Some("/auth/authorize?client_id=a")
        );
        for bad in [
            "",
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example",
            "/a b",
        ] {
            assert_eq!(local_path(bad), None, "{bad}");
        }
    }
}
