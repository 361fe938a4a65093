//! Bearer tokens in front of `/fhir`: the token endpoint (secrets and private_key_jwt), sign-in
//! with TOTP, lockout, expiry, logout and the data-security training rule.

use std::time::Duration;

use carerecord_access::Role;
use carerecord_identity::{IdentitySettings, NewClient, NewUser, totp};
use carerecord_store::now_micros;
use p384::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use serde_json::{Value, json};

use crate::helpers::{Resp, TestApp, spawn_app, spawn_app_with_identity, test_identity_settings};

const PASSWORD: &str = "a long demo password";

/// A person with one role; returns their TOTP secret.
async fn person(
    app: &TestApp,
    username: &str,
    grants: &[(Role, &str)],
    trained: Option<i64>,
) -> String {
    app.identity
        .create_user(NewUser {
            username: username.into(),
            display_name: "Test Person".into(),
            password: Some(PASSWORD.into()),
            grants: grants.iter().map(|(r, o)| (*r, (*o).to_owned())).collect(),
            training_valid_until: trained,
        })
        .await
        .unwrap()
        .totp_secret
}

fn code(secret: &str) -> String {
    let now = u64::try_from(now_micros() / 1_000_000).unwrap();
    totp::code_at(secret, now).unwrap()
}

async fn login(app: &TestApp, body: Value) -> Resp {
    app.send(
        app.anonymous
            .post(format!("{}/auth/login", app.origin))
            .json(&body),
    )
    .await
}

async fn token_form(app: &TestApp, form: &[(&str, &str)]) -> Resp {
    app.send(
        app.anonymous
            .post(format!("{}/auth/token", app.origin))
            .form(form),
    )
    .await
}

async fn get_as(app: &TestApp, token: &str, url: &str) -> Resp {
    app.send(app.anonymous.get(url).bearer_auth(token)).await
}

#[tokio::test]
async fn fhir_requests_without_a_valid_token_get_401_with_www_authenticate() {
    let app = spawn_app().await;
    for token in [None, Some("not-a-token")] {
        let mut req = app.anonymous.get(app.url("Patient"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = app.send(req).await;
        assert_eq!(r.status, 401, "{}", r.text);
        assert_eq!(r.body["resourceType"], "OperationOutcome");
        assert_eq!(r.body["issue"][0]["code"], "login");
        assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
    }
    // The service client's token passes.
    assert_eq!(app.get("Patient").await.status, 200);
}

#[tokio::test]
async fn metadata_and_smart_configuration_are_open_and_name_the_token_endpoint() {
    let app = spawn_app().await;
    let token_url = format!("{}/auth/token", app.origin);
    let r = app.send(app.anonymous.get(app.url("metadata"))).await;
    assert_eq!(r.status, 200);
    let security = &r.body["rest"][0]["security"];
    assert_eq!(security["extension"][0]["extension"][0]["url"], "token");
    assert_eq!(
        security["extension"][0]["extension"][0]["valueUri"],
        token_url
    );
    let r = app
        .send(
            app.anonymous
                .get(app.url(".well-known/smart-configuration")),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["token_endpoint"], token_url);
    let methods = r.body["token_endpoint_auth_methods_supported"].to_string();
    assert!(methods.contains("private_key_jwt") && methods.contains("client_secret_basic"));
}

#[tokio::test]
async fn a_client_secret_gets_a_token_by_basic_or_post_and_a_wrong_one_is_invalid_client() {
    let app = spawn_app().await;
    let c = app
        .identity
        .create_client(NewClient {
            client_id: "home-system".into(),
            role: Role::System,
            organisation_id: "org-zc0001".into(),
            secret: true,
            public_key: None,
        })
        .await
        .unwrap();
    let secret = c.secret.unwrap();

    let r = app
        .send(
            app.anonymous
                .post(format!("{}/auth/token", app.origin))
                .basic_auth("home-system", Some(&secret))
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("scope", "system/*.rs"),
                ]),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["token_type"], "bearer");
    assert_eq!(r.body["scope"], "system/*.rs");
    assert!(r.body["expires_in"].as_i64().unwrap() > 0);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let token = r.body["access_token"].as_str().unwrap().to_owned();
    let who = get_as(&app, &token, &format!("{}/auth/whoami", app.origin)).await;
    assert_eq!(who.body["principal"]["role"], "system");
    assert_eq!(who.body["principal"]["organisation"], "org-zc0001");
    assert_eq!(get_as(&app, &token, &app.url("Patient")).await.status, 200);

    let r = token_form(
        &app,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "home-system"),
            ("client_secret", &secret),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);

    for (form, status, error) in [
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", "home-system"),
                ("client_secret", "wrong"),
            ],
            401,
            "invalid_client",
        ),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", "nobody"),
                ("client_secret", "wrong"),
            ],
            401,
            "invalid_client",
        ),
        (
            vec![("grant_type", "password")],
            400,
            "unsupported_grant_type",
        ),
        (vec![("client_id", "home-system")], 400, "invalid_request"),
    ] {
        let r = token_form(&app, &form).await;
        assert_eq!(r.status, status, "{form:?}: {}", r.text);
        assert_eq!(r.body["error"], error, "{form:?}");
    }
    let r = app
        .send(
            app.anonymous
                .post(format!("{}/auth/token", app.origin))
                .basic_auth("home-system", Some("wrong"))
                .form(&[("grant_type", "client_credentials")]),
        )
        .await;
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").unwrap().starts_with("Basic"));
    let r = app
        .send(
            app.anonymous
                .post(format!("{}/auth/token", app.origin))
                .json(&json!({"grant_type": "client_credentials"})),
        )
        .await;
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (400, Some("invalid_request"))
    );
}

/// A fresh EC P-384 key pair: (private PKCS#8 PEM, public SPKI PEM).
fn p384_key() -> (String, String) {
    let mut bytes = [0u8; 48];
    let key = loop {
        getrandom::fill(&mut bytes).unwrap();
        if let Ok(k) = p384::SecretKey::from_slice(&bytes) {
            break k;
        }
    };
    let private = key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
    let public = key.public_key().to_public_key_pem(LineEnding::LF).unwrap();
    (private, public)
}

fn assertion(private_pem: &str, client_id: &str, aud: &str, lifetime: i64, jti: &str) -> String {
    let now = now_micros() / 1_000_000;
    let claims = json!({
        "iss": client_id, "sub": client_id, "aud": aud,
        "exp": now + lifetime, "iat": now, "jti": jti,
    });
    let key = jsonwebtoken::EncodingKey::from_ec_pem(private_pem.as_bytes()).unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES384);
    header.kid = Some("key-1".into());
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

#[tokio::test]
async fn private_key_jwt_gets_a_token_once_per_assertion_for_the_right_audience_only() {
    let app = spawn_app().await;
    let (private, public) = p384_key();
    app.identity
        .create_client(NewClient {
            client_id: "hospital-feed".into(),
            role: Role::System,
            organisation_id: "org-zt0001".into(),
            secret: false,
            public_key: Some(public),
        })
        .await
        .unwrap();
    let aud = format!("{}/auth/token", app.origin);
    let jwt_bearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
    let ask = |a: String| {
        let app = &app;
        async move {
            token_form(
                app,
                &[
                    ("grant_type", "client_credentials"),
                    ("client_assertion_type", jwt_bearer),
                    ("client_assertion", &a),
                    ("scope", "system/*.rs"),
                ],
            )
            .await
        }
    };

    let good = assertion(&private, "hospital-feed", &aud, 240, "jti-1");
    let r = ask(good.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let token = r.body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(get_as(&app, &token, &app.url("Patient")).await.status, 200);

    let replay = ask(good).await;
    assert_eq!(
        (replay.status, replay.body["error"].as_str()),
        (401, Some("invalid_client"))
    );

    for (what, a) in [
        (
            "wrong audience",
            assertion(
                &private,
                "hospital-feed",
                "https://elsewhere.example/token",
                240,
                "jti-2",
            ),
        ),
        (
            "too long-lived",
            assertion(&private, "hospital-feed", &aud, 3600, "jti-3"),
        ),
        (
            "expired",
            assertion(&private, "hospital-feed", &aud, -120, "jti-4"),
        ),
        (
            "another key",
            assertion(&p384_key().0, "hospital-feed", &aud, 240, "jti-5"),
        ),
        (
            "unknown client",
            assertion(&private, "nobody", &aud, 240, "jti-6"),
        ),
    ] {
        let r = ask(a).await;
        assert_eq!(
            (r.status, r.body["error"].as_str()),
            (401, Some("invalid_client")),
            "{what}: {}",
            r.text
        );
    }
}

#[tokio::test]
async fn a_person_signs_in_with_password_and_totp_code_and_a_code_works_once() {
    let app = spawn_app().await;
    let secret = person(
        &app,
        "nurse.one",
        &[(Role::RegisteredNurse, "org-zc0001")],
        None,
    )
    .await;

    let r = login(&app, json!({"username": "nurse.one", "password": PASSWORD})).await;
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (401, Some("totp_required"))
    );

    let c = code(&secret);
    let r = login(
        &app,
        json!({"username": "nurse.one", "password": PASSWORD, "totp": c}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["principal"]["role"], "registered-nurse");
    assert_eq!(r.body["principal"]["organisation"], "org-zc0001");
    assert_eq!(r.body["principal"]["training_current"], true);
    let token = r.body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(get_as(&app, &token, &app.url("Patient")).await.status, 200);
    let who = get_as(&app, &token, &format!("{}/auth/whoami", app.origin)).await;
    assert_eq!(who.body["principal"]["id"]["kind"], "user");

    // RFC 6238 §5.2: the same code is not accepted twice.
    let r = login(
        &app,
        json!({"username": "nurse.one", "password": PASSWORD, "totp": c}),
    )
    .await;
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (401, Some("invalid_credentials"))
    );
}

#[tokio::test]
async fn an_unknown_username_gets_the_same_answer_as_a_wrong_password() {
    let app = spawn_app().await;
    person(&app, "carer.one", &[(Role::CareWorker, "org-zc0001")], None).await;
    let wrong = login(
        &app,
        json!({"username": "carer.one", "password": "nope", "totp": "123456"}),
    )
    .await;
    let unknown = login(
        &app,
        json!({"username": "no.one", "password": "nope", "totp": "123456"}),
    )
    .await;
    assert_eq!(wrong.status, 401);
    assert_eq!((wrong.status, &wrong.body), (unknown.status, &unknown.body));
}

#[tokio::test]
async fn five_failed_sign_ins_lock_the_account_and_say_for_how_long() {
    let app = spawn_app().await;
    let secret = person(&app, "gp.one", &[(Role::Gp, "org-zp0001")], None).await;
    for attempt in 1..=4 {
        let r = login(
            &app,
            json!({"username": "gp.one", "password": "guess", "totp": code(&secret)}),
        )
        .await;
        assert_eq!(r.status, 401, "attempt {attempt}: {}", r.text);
    }
    let r = login(
        &app,
        json!({"username": "gp.one", "password": "guess", "totp": code(&secret)}),
    )
    .await;
    assert_eq!(r.status, 423, "{}", r.text);
    assert_eq!(r.body["error"], "account_locked");
    assert_eq!(r.body["retry_after_minutes"], 15);
    assert!(
        r.body["error_description"]
            .as_str()
            .unwrap()
            .contains("15 minutes")
    );
    // Even the right password and code are refused while locked.
    let r = login(
        &app,
        json!({"username": "gp.one", "password": PASSWORD, "totp": code(&secret)}),
    )
    .await;
    assert_eq!(r.status, 423, "{}", r.text);
}

#[tokio::test]
async fn wrong_totp_codes_count_towards_the_lockout_too() {
    let app = spawn_app_with_identity(IdentitySettings {
        max_failed_sign_ins: 2,
        ..test_identity_settings()
    })
    .await;
    person(
        &app,
        "senior.one",
        &[(Role::SeniorCarer, "org-zc0001")],
        None,
    )
    .await;
    let r = login(
        &app,
        json!({"username": "senior.one", "password": PASSWORD, "totp": "000000"}),
    )
    .await;
    assert_eq!(r.status, 401);
    let r = login(
        &app,
        json!({"username": "senior.one", "password": PASSWORD, "totp": "000001"}),
    )
    .await;
    assert_eq!(r.status, 423, "{}", r.text);
}

#[tokio::test]
async fn an_expired_session_is_refused_with_401() {
    let app = spawn_app_with_identity(IdentitySettings {
        session_lifetime: Duration::ZERO,
        ..test_identity_settings()
    })
    .await;
    let secret = person(
        &app,
        "nurse.two",
        &[(Role::RegisteredNurse, "org-zc0001")],
        None,
    )
    .await;
    let r = login(
        &app,
        json!({"username": "nurse.two", "password": PASSWORD, "totp": code(&secret)}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let token = r.body["access_token"].as_str().unwrap();
    let r = get_as(&app, token, &app.url("Patient")).await;
    assert_eq!(r.status, 401, "{}", r.text);
    assert!(r.diagnostics().contains("expired"), "{}", r.diagnostics());
}

#[tokio::test]
async fn logout_ends_the_session() {
    let app = spawn_app().await;
    let secret = person(
        &app,
        "manager.one",
        &[(Role::CareHomeManager, "org-zc0001")],
        None,
    )
    .await;
    let r = login(
        &app,
        json!({"username": "manager.one", "password": PASSWORD, "totp": code(&secret)}),
    )
    .await;
    let token = r.body["access_token"].as_str().unwrap().to_owned();
    let out = app
        .send(
            app.anonymous
                .post(format!("{}/auth/logout", app.origin))
                .bearer_auth(&token),
        )
        .await;
    assert_eq!(out.status, 204);
    assert_eq!(get_as(&app, &token, &app.url("Patient")).await.status, 401);
}

#[tokio::test]
async fn a_user_with_several_roles_chooses_one_and_may_resend_the_same_code() {
    let app = spawn_app().await;
    let secret = person(
        &app,
        "nurse.three",
        &[
            (Role::RegisteredNurse, "org-zc0001"),
            (Role::RegisteredNurse, "org-zc0002"),
        ],
        None,
    )
    .await;
    let c = code(&secret);
    let r = login(
        &app,
        json!({"username": "nurse.three", "password": PASSWORD, "totp": c}),
    )
    .await;
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (400, Some("choose_role")),
        "{}",
        r.text
    );
    assert_eq!(r.body["choices"].as_array().unwrap().len(), 2);
    let r = login(
        &app,
        json!({"username": "nurse.three", "password": PASSWORD, "totp": c,
               "organisation": "org-zc0002", "role": "registered-nurse"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["principal"]["organisation"], "org-zc0002");
}

#[tokio::test]
async fn a_person_whose_training_has_lapsed_sees_no_records_until_they_record_training() {
    let app = spawn_app().await;
    let a_year_ago = now_micros() - 366 * 24 * 3600 * 1_000_000;
    let secret = person(
        &app,
        "carer.two",
        &[(Role::CareWorker, "org-zc0001")],
        Some(a_year_ago),
    )
    .await;
    let r = login(
        &app,
        json!({"username": "carer.two", "password": PASSWORD, "totp": code(&secret)}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["principal"]["training_current"], false);
    let token = r.body["access_token"].as_str().unwrap().to_owned();

    let r = get_as(&app, &token, &app.url("Patient")).await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(r.body["resourceType"], "OperationOutcome");
    assert!(r.diagnostics().contains("training"), "{}", r.diagnostics());

    let r = app
        .send(
            app.anonymous
                .post(format!("{}/auth/training", app.origin))
                .bearer_auth(&token),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["principal"]["training_current"], true);
    assert_eq!(get_as(&app, &token, &app.url("Patient")).await.status, 200);
}

/// `POST` a form to an `/auth` endpoint with Basic credentials.
async fn auth_form(
    app: &TestApp,
    endpoint: &str,
    form: &[(&str, &str)],
    basic: (&str, &str),
) -> Resp {
    app.send(
        app.anonymous
            .post(format!("{}/auth/{endpoint}", app.origin))
            .basic_auth(basic.0, Some(basic.1))
            .form(form),
    )
    .await
}

/// The audit entries written after `after`.
async fn entries_after(app: &TestApp, after: i64) -> Vec<carerecord_store::AuditEntry> {
    app.store.audit_entries(after, 1_000).await.unwrap()
}

async fn last_seq(app: &TestApp) -> i64 {
    entries_after(app, 0).await.last().map_or(0, |e| e.seq)
}

#[tokio::test]
async fn revocation_and_introspection_are_audited_with_the_client_and_outcome_never_the_token() {
    use carerecord_store::{AuditAction, AuditOutcome};
    let app = spawn_app().await;
    let mut secrets = Vec::new();
    for id in ["home-system", "other-system"] {
        let c = app
            .identity
            .create_client(NewClient {
                client_id: id.into(),
                role: Role::System,
                organisation_id: "org-zc0001".into(),
                secret: true,
                public_key: None,
            })
            .await
            .unwrap();
        secrets.push(c.secret.unwrap());
    }
    let home = ("home-system", secrets[0].as_str());
    let other = ("other-system", secrets[1].as_str());
    let token = |basic: (&'static str, String)| {
        let app = &app;
        async move {
            let r = auth_form(
                app,
                "token",
                &[("grant_type", "client_credentials")],
                (basic.0, basic.1.as_str()),
            )
            .await;
            assert_eq!(r.status, 200, "{}", r.text);
            r.body["access_token"].as_str().unwrap().to_owned()
        }
    };
    let t1 = token(("home-system", secrets[0].clone())).await;
    let t2 = token(("home-system", secrets[0].clone())).await;

    // Each request leaves exactly one entry: (endpoint, form, credentials) → (status, outcome, rule, agent).
    /// (endpoint, form, Basic credentials, status, outcome, rule, agent).
    type Case<'a> = (
        &'a str,
        Vec<(&'a str, &'a str)>,
        (&'a str, &'a str),
        u16,
        AuditOutcome,
        &'a str,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "introspect",
            vec![("token", t1.as_str())],
            home,
            200,
            AuditOutcome::Allowed,
            "token-introspected",
            "home-system",
        ),
        (
            "revoke",
            vec![("token", t1.as_str())],
            home,
            200,
            AuditOutcome::Allowed,
            "access-token-revoked",
            "home-system",
        ),
        (
            "revoke",
            vec![("token", "no-such-token")],
            home,
            200,
            AuditOutcome::Allowed,
            "revoke-unknown-token",
            "home-system",
        ),
        // Another client's token is left alone (RFC 7009 still answers 200).
        (
            "revoke",
            vec![("token", t2.as_str())],
            other,
            200,
            AuditOutcome::Denied,
            "deny-revoke-not-issued-to-client",
            "other-system",
        ),
        (
            "revoke",
            vec![("token", t2.as_str())],
            ("home-system", "wrong"),
            401,
            AuditOutcome::Denied,
            "deny-revoke-invalid-client",
            "home-system",
        ),
        (
            "introspect",
            vec![("token", t2.as_str())],
            ("home-system", "wrong"),
            401,
            AuditOutcome::Denied,
            "deny-introspect-invalid-client",
            "home-system",
        ),
        (
            "revoke",
            vec![("token", t2.as_str())],
            ("nobody", "wrong"),
            401,
            AuditOutcome::Denied,
            "deny-revoke-invalid-client",
            "(unknown client)",
        ),
        (
            "introspect",
            vec![],
            home,
            400,
            AuditOutcome::Denied,
            "deny-introspect-invalid-request",
            "home-system",
        ),
    ];
    for (endpoint, form, basic, status, outcome, rule, agent) in cases {
        let before = last_seq(&app).await;
        let r = auth_form(&app, endpoint, &form, basic).await;
        assert_eq!(r.status, status, "{endpoint} {form:?}: {}", r.text);
        let entries = entries_after(&app, before).await;
        assert_eq!(entries.len(), 1, "{endpoint} {rule}: {entries:#?}");
        let e = &entries[0].record;
        assert_eq!(
            (e.action, e.outcome, e.rule.as_str(), e.agent.id.as_str()),
            (AuditAction::Admin, outcome, rule, agent),
            "{endpoint} {form:?}"
        );
        let written = format!("{e:?}");
        for t in [&t1, &t2] {
            assert!(
                !written.contains(t.as_str()),
                "the token is in the trail: {written}"
            );
        }
        assert!(!written.contains(basic.1), "the secret is in the trail");
    }
    // The revocations did what the trail says: t1 is gone, t2 (another client's) still works.
    assert_eq!(get_as(&app, &t1, &app.url("Patient")).await.status, 401);
    assert_eq!(get_as(&app, &t2, &app.url("Patient")).await.status, 200);
    let before = last_seq(&app).await;
    let r = auth_form(&app, "introspect", &[("token", t1.as_str())], home).await;
    assert_eq!(r.body["active"], false);
    assert_eq!(
        entries_after(&app, before).await[0].record.query.as_deref(),
        Some("active=false")
    );
}

/// The public JWK of a P-384 key (SPKI PEM), as a system publishes it at its JWKS URL.
fn p384_jwk(public_pem: &str, kid: &str) -> Value {
    use base64::Engine as _;
    use p384::elliptic_curve::sec1::ToEncodedPoint as _;
    use p384::pkcs8::DecodePublicKey as _;
    let point = p384::PublicKey::from_public_key_pem(public_pem)
        .unwrap()
        .to_encoded_point(false);
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    json!({"kty": "EC", "crv": "P-384", "kid": kid, "use": "sig",
           "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap())})
}

/// A system's key server on port 0: serves whatever document `doc` holds at `/jwks.json`.
async fn jwks_server(doc: std::sync::Arc<std::sync::Mutex<String>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    let router = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let doc = doc.clone();
            async move { doc.lock().unwrap().clone() }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    url
}

#[tokio::test]
async fn private_key_jwt_verifies_with_a_key_fetched_from_the_registered_jwks_url() {
    let app = spawn_app_with_identity(IdentitySettings {
        // Every check fetches again (the cache's own rules are unit-tested), on loopback http.
        jwks: carerecord_identity::jwks::JwksSettings {
            cache_ttl: Duration::ZERO,
            refetch_interval: Duration::ZERO,
            allow_loopback_http: true,
        },
        ..test_identity_settings()
    })
    .await;
    assert!(app.identity.set_jwks_fetcher(std::sync::Arc::new(
        carerecord_server::jwks::HttpJwksFetcher::new().unwrap()
    )));
    let (private, public) = p384_key();
    let doc = std::sync::Arc::new(std::sync::Mutex::new(
        json!({"keys": [p384_jwk(&public, "key-1")]}).to_string(),
    ));
    let url = jwks_server(doc.clone()).await;
    let register = |id: &str, uri: &str| carerecord_store::ClientRegistration {
        client: carerecord_store::ClientRecord {
            client_id: id.into(),
            organisation_id: "org-zt0001".into(),
            role: "system".into(),
            secret_hash: None,
            public_key_pem: None,
            created: now_micros(),
            disabled: false,
        },
        scope: None,
        launch: vec![],
        jwks_uri: Some(uri.into()),
        app: None,
    };
    let dir = app.store.directory();
    dir.register_client(&register("jwks-feed", &url))
        .await
        .unwrap();
    let aud = format!("{}/auth/token", app.origin);
    let ask = |a: String| {
        let app = &app;
        async move {
            token_form(
                app,
                &[
                    ("grant_type", "client_credentials"),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", &a),
                    ("scope", "system/*.rs"),
                ],
            )
            .await
        }
    };
    let r = ask(assertion(&private, "jwks-feed", &aud, 240, "jwks-1")).await;
    assert_eq!(r.status, 200, "{}", r.text);

    // The system withdraws the key from its document: it stops working.
    *doc.lock().unwrap() = json!({"keys": []}).to_string();
    let r = ask(assertion(&private, "jwks-feed", &aud, 240, "jwks-2")).await;
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (401, Some("invalid_client"))
    );

    // A JWKS URL nobody answers at: a clear refusal, not a server error.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/jwks.json", l.local_addr().unwrap())
    };
    dir.register_client(&register("gone-feed", &closed))
        .await
        .unwrap();
    let r = ask(assertion(&private, "gone-feed", &aud, 240, "jwks-3")).await;
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (401, Some("invalid_client")),
        "{}",
        r.text
    );
    assert!(
        r.body["error_description"]
            .as_str()
            .unwrap_or_default()
            .contains("JWKS URL"),
        "{}",
        r.text
    );
}
