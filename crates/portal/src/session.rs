//! The portal session: the identity service's own opaque token (only its SHA-256 is stored;
//! idle and absolute expiry are the identity service's) carried in an `HttpOnly;
//! SameSite=Strict` cookie, `Secure` (and `__Host-` prefixed) when the portal is served over
//! https.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use carerecord_identity::{Authenticated, IdentityError};
use carerecord_server::AppState;
use carerecord_server::access::Access;
use carerecord_store::now_micros;

use crate::page::PageError;

const COOKIE: &str = "carerecord_session";
/// Set beside the session by a context launch, `SameSite=Lax` and for a minute: the browser
/// follows the launch's redirect as part of a navigation that another site started, so it
/// leaves the `Strict` session cookie out of that one request. This marker (sent, being
/// `Lax`) tells the page to reload itself once from its own origin, which does carry the
/// session. Without it, a request with no session goes to sign-in as always.
pub const LAUNCH_MARKER: &str = "carerecord_launch";
const SECURE_COOKIE: &str = "__Host-carerecord_session";

/// Whether the portal is served over https (from the configured public base URL).
fn secure(state: &AppState) -> bool {
    state
        .settings
        .public_base_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"))
}

/// The `Set-Cookie` value that starts a session.
pub fn cookie_for(state: &AppState, token: &str) -> Option<HeaderValue> {
    let v = if secure(state) {
        format!("{SECURE_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Secure")
    } else {
        format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict")
    };
    HeaderValue::from_str(&v).ok()
}

/// The `Set-Cookie` value that ends it.
pub fn clearing_cookie(state: &AppState) -> HeaderValue {
    if secure(state) {
        HeaderValue::from_static(
            "__Host-carerecord_session=; Path=/; HttpOnly; SameSite=Strict; Secure; Max-Age=0",
        )
    } else {
        HeaderValue::from_static(
            "carerecord_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
        )
    }
}

/// The session token from the request's cookies.
fn token(headers: &HeaderMap) -> Option<&str> {
    cookie(headers, &[COOKIE, SECURE_COOKIE])
}

fn cookie<'h>(headers: &'h HeaderMap, names: &[&str]) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| names.contains(name))
        .map(|(_, value)| value.trim())
        .filter(|v| !v.is_empty())
}

/// The `Set-Cookie` value of the launch marker ([`LAUNCH_MARKER`]).
pub fn launch_marker() -> HeaderValue {
    HeaderValue::from_static("carerecord_launch=1; Path=/; Max-Age=60; HttpOnly; SameSite=Lax")
}

/// A signed-in person, whether or not their training is current (the training page needs
/// this much and no more).
pub struct SignedIn {
    pub auth: Authenticated,
    pub client: Option<String>,
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        let Some(token) = token(&parts.headers) else {
            let path = parts.uri.path();
            if parts.method == axum::http::Method::GET
                && cookie(&parts.headers, &[LAUNCH_MARKER]).is_some()
                && path.starts_with('/')
                && !path.starts_with("//")
            {
                return Err(PageError::LaunchContinue(path.to_owned()));
            }
            return Err(PageError::SignIn);
        };
        let auth = match state.identity.authenticate(token, now_micros()).await {
            Ok(a) => a,
            // An unknown token is a session that ended (signed out elsewhere, or the store
            // was replaced): the same kind page as an expired one.
            Err(IdentityError::InvalidToken | IdentityError::Expired) => {
                return Err(PageError::SessionExpired);
            }
            Err(e) => return Err(PageError::Internal(e.to_string())),
        };
        if auth.principal.role.is_system() {
            return Err(PageError::SessionExpired);
        }
        let client = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string());
        Ok(SignedIn { auth, client })
    }
}

/// A signed-in person whose data-security training is current, with what they may see
/// decided once for the request.
pub struct Staff {
    pub access: Access,
    pub client: Option<String>,
}

impl FromRequestParts<AppState> for Staff {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        let s = SignedIn::from_request_parts(parts, state).await?;
        if !s.auth.principal.training_current(now_micros()) {
            return Err(PageError::TrainingDue);
        }
        Ok(Staff {
            access: Access::new(s.auth.principal, &state.settings.policy),
            client: s.client,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_token_is_found_among_other_cookies() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; carerecord_session=tok123; b=2"),
        );
        assert_eq!(token(&h), Some("tok123"));
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("carerecord_session="),
        );
        assert_eq!(token(&h), None);
        assert_eq!(token(&HeaderMap::new()), None);
    }
}
