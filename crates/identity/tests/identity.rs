//! The identity service over a real (SQLite) directory, with the clock given explicitly so
//! expiry and lockout are tested without waiting.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed expectation is a failed test"
)]

use std::sync::Arc;

use carerecord_access::Role;
use carerecord_identity::{
    Identity, IdentityError, IdentitySettings, LoginError, LoginRequest, NewUser, PasswordCost,
    totp,
};
use carerecord_store_sqlite::SqliteStore;

const MIN: i64 = 60 * 1_000_000;
/// 2026-11-25T12:00:00Z in µs.
const T0: i64 = 1_764_072_000 * 1_000_000;

async fn identity(dir: &tempfile::TempDir) -> Identity {
    let store = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
    Identity::new(
        Arc::new(store),
        IdentitySettings {
            password_cost: PasswordCost::Light,
            ..IdentitySettings::default()
        },
    )
}

async fn nurse(id: &Identity) -> String {
    id.create_user(NewUser {
        username: "nurse".into(),
        display_name: "N".into(),
        password: Some("pw".into()),
        grants: vec![(Role::RegisteredNurse, "org-a".into())],
        training_valid_until: Some(T0 + 100 * 24 * 60 * MIN),
    })
    .await
    .unwrap()
    .totp_secret
}

fn req(password: &str, secret: &str, now: i64) -> LoginRequest {
    serde_json::from_value(serde_json::json!({
        "username": "nurse",
        "password": password,
        "totp": totp::code_at(secret, u64::try_from(now / 1_000_000).unwrap()).unwrap(),
    }))
    .unwrap()
}

#[tokio::test]
async fn a_session_ends_after_thirty_idle_minutes_or_eight_hours_whichever_is_first() {
    let dir = tempfile::tempdir().unwrap();
    let id = identity(&dir).await;
    let secret = nurse(&id).await;
    let s = id.login(&req("pw", &secret, T0), T0).await.unwrap();
    assert_eq!(s.expires_at, T0 + 8 * 60 * MIN);
    // Used every 20 minutes, it lives until the absolute limit…
    let mut t = T0;
    while t + 20 * MIN < s.expires_at {
        t += 20 * MIN;
        id.authenticate(&s.access_token, t).await.unwrap();
    }
    assert!(matches!(
        id.authenticate(&s.access_token, s.expires_at).await,
        Err(IdentityError::Expired)
    ));
    // …and a session left alone for 31 minutes is over.
    let later = T0 + 9 * 60 * MIN;
    let s2 = id.login(&req("pw", &secret, later), later).await.unwrap();
    assert!(matches!(
        id.authenticate(&s2.access_token, later + 31 * MIN).await,
        Err(IdentityError::Expired)
    ));
    assert!(matches!(
        id.authenticate("made-up", later).await,
        Err(IdentityError::InvalidToken)
    ));
}

#[tokio::test]
async fn a_lock_lasts_fifteen_minutes_then_the_right_password_works_again() {
    let dir = tempfile::tempdir().unwrap();
    let id = identity(&dir).await;
    let secret = nurse(&id).await;
    for i in 0..4 {
        let r = id.login(&req("wrong", &secret, T0), T0 + i).await;
        assert!(matches!(r, Err(LoginError::InvalidCredentials)), "{r:?}");
    }
    let r = id.login(&req("wrong", &secret, T0), T0 + 5).await;
    assert!(
        matches!(r, Err(LoginError::Locked { minutes: 15 })),
        "{r:?}"
    );
    // Locked at T0 + 5 µs; a minute and nothing is left 14 minutes later.
    let r = id
        .login(&req("pw", &secret, T0 + 14 * MIN), T0 + 5 + 14 * MIN)
        .await;
    assert!(matches!(r, Err(LoginError::Locked { minutes: 1 })), "{r:?}");
    let t = T0 + 16 * MIN;
    id.login(&req("pw", &secret, t), t).await.unwrap();
}

#[tokio::test]
async fn training_recorded_today_makes_a_lapsed_principal_current_for_a_year() {
    let dir = tempfile::tempdir().unwrap();
    let id = identity(&dir).await;
    let secret = nurse(&id).await;
    let late = T0 + 200 * 24 * 60 * MIN;
    let s = id.login(&req("pw", &secret, late), late).await.unwrap();
    assert!(!s.principal.training_current(late));
    let auth = id.authenticate(&s.access_token, late).await.unwrap();
    let p = id.record_training(&auth, late).await.unwrap();
    assert!(p.training_current(late + 364 * 24 * 60 * MIN));
    assert!(!p.training_current(late + 366 * 24 * 60 * MIN));
    let again = id.authenticate(&s.access_token, late + MIN).await.unwrap();
    assert_eq!(again.principal, p);
}

#[path = "identity/smart.rs"]
mod smart;
