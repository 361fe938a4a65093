//! Data-security training: a person whose training has lapsed sees this page and nothing else
//! until they record that they have completed it again.

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use carerecord_server::AppState;
use carerecord_store::now_micros;
use serde::Deserialize;

use super::FieldError;
use crate::page::{Chrome, PageError, render};
use crate::session::SignedIn;

#[derive(Template)]
#[template(path = "training.html")]
struct TrainingPage {
    chrome: Chrome,
    due: bool,
    valid_until: String,
    errors: Vec<FieldError>,
}

fn page(s: &SignedIn, errors: Vec<FieldError>) -> TrainingPage {
    let p = &s.auth.principal;
    TrainingPage {
        chrome: Chrome::signed_in("Data security training", p, ""),
        due: !p.training_current(now_micros()),
        valid_until: p.training_valid_until.map(super::when).unwrap_or_default(),
        errors,
    }
}

pub async fn form(s: SignedIn) -> Result<Response, PageError> {
    render(StatusCode::OK, &page(&s, Vec::new()))
}

#[derive(Deserialize)]
pub struct TrainingForm {
    #[serde(default)]
    confirm: Option<String>,
}

pub async fn submit(
    State(state): State<AppState>,
    s: SignedIn,
    Form(f): Form<TrainingForm>,
) -> Result<Response, PageError> {
    if f.confirm.as_deref() != Some("yes") {
        return render(
            StatusCode::BAD_REQUEST,
            &page(
                &s,
                vec![FieldError {
                    field: "confirm",
                    message: "Confirm that you have completed your data security training".into(),
                }],
            ),
        );
    }
    state
        .identity
        .record_training(&s.auth, now_micros())
        .await
        .map_err(|e| PageError::Internal(e.to_string()))?;
    Ok(Redirect::to("/").into_response())
}
