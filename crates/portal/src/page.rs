//! What every page shares: the layout's data ([`Chrome`]), rendering, the kind error pages
//! and the security headers.

use askama::Template;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use carerecord_access::Principal;
use carerecord_server::error::ApiError;
use carerecord_store::StoreError;

use crate::assets;

/// A link in the header's navigation.
pub struct NavItem {
    pub href: &'static str,
    pub text: &'static str,
    pub current: bool,
}

/// The signed-in person, as the header shows them.
pub struct UserNav {
    pub name: String,
    pub role: &'static str,
    pub organisation: String,
}

/// The layout's data: the page title, who is signed in and the navigation.
pub struct Chrome {
    pub title: String,
    pub user: Option<UserNav>,
    pub nav: Vec<NavItem>,
}

impl Chrome {
    /// A page for someone not signed in.
    pub fn anonymous(title: impl Into<String>) -> Self {
        Chrome {
            title: title.into(),
            user: None,
            nav: Vec::new(),
        }
    }

    /// A page for `p`; `current` is the href of the navigation item this page belongs to.
    pub fn signed_in(title: impl Into<String>, p: &Principal, current: &str) -> Self {
        let items: &[(&'static str, &'static str)] = match p.role {
            carerecord_access::Role::PrivacyOfficer => &[
                ("/privacy", "Audit search"),
                ("/privacy/emergency-access", "Emergency access review"),
            ],
            carerecord_access::Role::ProgrammeAdmin => &[("/systems", "Systems and apps")],
            _ => &[("/", "My residents"), ("/find", "Find someone")],
        };
        Chrome {
            title: title.into(),
            user: Some(UserNav {
                name: p.name.clone(),
                role: p.role.display(),
                organisation: p.organisation_ods.clone(),
            }),
            nav: items
                .iter()
                .map(|(href, text)| NavItem {
                    href,
                    text,
                    current: *href == current,
                })
                .collect(),
        }
    }

    /// The URL of an embedded asset (`portal.css` → `/assets/{hash}/portal.css`).
    pub fn asset(&self, path: &str) -> String {
        assets::url(path)
    }
}

/// Renders a page.
pub fn render<T: Template>(status: StatusCode, page: &T) -> Result<Response, PageError> {
    let html = page
        .render()
        .map_err(|e| PageError::Internal(format!("template: {e}")))?;
    Ok((status, Html(html)).into_response())
}

/// Why a page could not be shown; each becomes a kind page (or a redirect to sign in).
#[derive(Debug)]
pub enum PageError {
    /// Not signed in: go to the sign-in page.
    SignIn,
    /// The session ended (idle too long, or past its lifetime).
    SessionExpired,
    /// Data-security training is due: nothing but the training page until it is recorded.
    TrainingDue,
    /// Not allowed, in words for the person.
    Forbidden(String),
    NotFound,
    /// The request could not be understood, in words for the person.
    BadRequest(String),
    /// Logged with the request id; the page shows only the id.
    Internal(String),
    /// The first request after a context launch arrived without the session cookie (see
    /// `session::LAUNCH_MARKER`): reload this path from the portal's own page.
    LaunchContinue(String),
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::Denied(d) => PageError::Forbidden(d.message()),
            ApiError::Forbidden(m) | ApiError::ScopeDenied(m) => PageError::Forbidden(m),
            ApiError::Unauthorized(_) => PageError::SessionExpired,
            ApiError::NotFound(_) | ApiError::Gone(_) => PageError::NotFound,
            ApiError::BadRequest(issues) | ApiError::Unprocessable(issues) => {
                PageError::BadRequest(
                    issues
                        .iter()
                        .map(|i| i.diagnostics.as_str())
                        .collect::<Vec<_>>()
                        .join(" "),
                )
            }
            other => PageError::Internal(other.to_string()),
        }
    }
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> Self {
        PageError::from(ApiError::from(e))
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    chrome: Chrome,
    heading: String,
    message: String,
    reference: Option<String>,
    sign_in: bool,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, heading, message, reference, sign_in) = match self {
            PageError::SignIn => return Redirect::to("/sign-in").into_response(),
            PageError::TrainingDue => return Redirect::to("/training").into_response(),
            PageError::LaunchContinue(path) => return launch_continue(&path),
            PageError::SessionExpired => (
                StatusCode::UNAUTHORIZED,
                "You have been signed out",
                "For your security, you were signed out because you had not used the service \
                 for a while, or your session reached its time limit. Nothing you saved has \
                 been lost."
                    .to_owned(),
                None,
                true,
            ),
            PageError::Forbidden(m) => (
                StatusCode::FORBIDDEN,
                "You cannot see this page",
                m,
                None,
                false,
            ),
            PageError::NotFound => (
                StatusCode::NOT_FOUND,
                "Page not found",
                "If you typed the web address, check it is correct. If you pasted the web \
                 address, check you copied the entire address."
                    .to_owned(),
                None,
                false,
            ),
            PageError::BadRequest(m) => (
                StatusCode::BAD_REQUEST,
                "There is a problem",
                m,
                None,
                false,
            ),
            PageError::Internal(detail) => {
                let id = carerecord_server::request_id::current().unwrap_or_default();
                tracing::error!(request_id = %id, detail = %detail, "portal page failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Sorry, there is a problem with the service",
                    "Try again later. If you call the service desk, give them the reference \
                     below."
                        .to_owned(),
                    Some(id),
                    false,
                )
            }
        };
        let page = ErrorPage {
            chrome: Chrome::anonymous(heading),
            heading: heading.to_owned(),
            message,
            reference,
            sign_in,
        };
        match page.render() {
            Ok(html) => (status, Html(html)).into_response(),
            Err(_) => (status, heading).into_response(),
        }
    }
}

/// A page that reloads `path` at once from the portal's own origin (`Refresh`, and a link for
/// a browser that does not refresh), and clears the launch marker.
fn launch_continue(path: &str) -> Response {
    let page = ErrorPage {
        chrome: Chrome::anonymous("Opening the record"),
        heading: "Opening the record".to_owned(),
        message: "Your care record system has signed you in. If the record does not open by \
                  itself, go to the start page."
            .to_owned(),
        reference: None,
        sign_in: false,
    };
    let Ok(html) = page.render() else {
        return Redirect::to("/").into_response();
    };
    let mut resp = (StatusCode::OK, Html(html)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("0; url={path}")) {
        resp.headers_mut().insert("refresh", v);
    }
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("carerecord_launch=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax"),
    );
    resp
}

/// The portal's fallback: a kind "not found" page.
pub async fn not_found() -> Response {
    PageError::NotFound.into_response()
}

/// Security headers on every portal response: a strict Content-Security-Policy (nothing
/// from elsewhere, no inline script), no sniffing, no referrer; and pages (not assets) are
/// never cached, because a shared tablet must not show a record from its cache.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    // A page may widen `form-action` for itself (the SMART consent form redirects to the app).
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self'; \
                 object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
            ),
        );
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}
