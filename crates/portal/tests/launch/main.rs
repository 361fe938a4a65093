//! Signed context launch (`POST /launch`) through a real server on port 0 (SQLite in a
//! temporary directory): the happy path and one test per refusal, each checked on the page a
//! browser would show and in the audit trail.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation is a failed test"
)]

#[path = "../common/mod.rs"]
mod common;

use carerecord_access::Role;
use carerecord_identity::LaunchClaims;
use carerecord_identity::NewClient;
use carerecord_identity::launch::{generate_es256_key_pair, launch_username, sign_launch_token};
use carerecord_store::{AuditAction, AuditOutcome, Channel, now_micros};
use common::{Page, Resident, resident};
use serde_json::{Value, json};

const SYSTEM: &str = "sunrise-care-system";

/// The shared harness, and the registered care home system's private key (PKCS#8 PEM).
struct App {
    base: common::App,
    key: String,
}

impl std::ops::Deref for App {
    type Target = common::App;
    fn deref(&self) -> &common::App {
        &self.base
    }
}

async fn spawn() -> App {
    let base = common::spawn("launch").await;
    population(&base).await;
    let (private, public) = generate_es256_key_pair().unwrap();
    base.identity
        .create_client(NewClient {
            client_id: SYSTEM.into(),
            role: Role::System,
            organisation_id: "home-a".into(),
            secret: false,
            public_key: Some(public),
        })
        .await
        .unwrap();
    base.identity
        .register_launch(SYSTEM, "home-a", &[Role::CareWorker, Role::RegisteredNurse])
        .await
        .unwrap();
    App { base, key: private }
}

/// Two homes with a resident each (different birth dates); the launching system is
/// registered for home A only.
async fn population(app: &common::App) {
    common::homes(app).await;
    for (id, home, ods, nhs, born, family) in [
        (
            "p-here",
            "home-a",
            "ZHA1",
            "9990000018",
            "1941-03-27",
            "Here",
        ),
        (
            "p-other",
            "home-b",
            "ZHB1",
            "9990000026",
            "1936-05-12",
            "Elsewhere",
        ),
    ] {
        resident(
            app,
            &Resident {
                id,
                home,
                ods,
                nhs,
                born,
                family,
            },
        )
        .await;
    }
}

impl App {
    /// Claims for a care worker of home A opening the home's resident, issued now.
    fn claims(&self) -> LaunchClaims {
        let now = now_micros() / 1_000_000;
        LaunchClaims {
            iss: SYSTEM.into(),
            aud: json!(format!("{}/launch", self.origin)),
            iat: now,
            exp: now + 120,
            jti: format!("jti-{}", now_micros()),
            sub: "staff-0042".into(),
            name: "Test Carer".into(),
            role: "care-worker".into(),
            ods: "ZHA1".into(),
            nhs_number: "9990000018".into(),
            birth_date: "1941-03-27".into(),
            training_completed: Some(
                time::OffsetDateTime::now_utc()
                    .date()
                    .previous_day()
                    .unwrap()
                    .to_string(),
            ),
        }
    }

    fn sign(&self, claims: &LaunchClaims) -> String {
        sign_launch_token(claims, &self.key, None).unwrap()
    }

    /// The care home system's page posts the form from its own site.
    async fn launch(&self, token: &str) -> Page {
        self.page(
            self.http
                .post(self.url("/launch"))
                .header("sec-fetch-site", "cross-site")
                .header("origin", "https://sunrise-care.example")
                .form(&[("launch_token", token)]),
        )
        .await
    }

    async fn launch_entries(&self) -> Vec<carerecord_store::AuditRecord> {
        self.audit()
            .await
            .into_iter()
            .filter(|r| r.channel == Channel::Launch)
            .collect()
    }

    /// The launch was refused with `code`: said on the page, no session, and audited.
    async fn assert_refused(&self, page: &Page, status: u16, code: &str) {
        assert_eq!(page.status, status, "{code}: {}", page.text);
        assert!(
            page.text.contains(&format!(">{code}<")),
            "{code} not on the page: {}",
            page.text
        );
        assert!(
            page.text.contains("nhsuk-header"),
            "the portal's page style"
        );
        assert_eq!(page.header("set-cookie"), "", "{code} opened a session");
        assert!(
            self.launch_entries().await.iter().any(|r| r.rule == code
                && r.outcome == AuditOutcome::Denied
                && r.action == AuditAction::Login),
            "{code} not audited"
        );
    }
}

#[tokio::test]
async fn a_launch_opens_the_residents_record_in_a_new_session_and_maps_the_user_once() {
    let app = spawn().await;
    let page = app.launch(&app.sign(&app.claims())).await;
    assert_eq!(page.status, 303, "{}", page.text);
    assert_eq!(page.header("location"), "/residents/p-here");
    let set_cookie = page.header("set-cookie").to_owned();
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"));
    let cookie = page.cookie();

    // A browser follows the redirect as part of the care home system's navigation and leaves
    // the Strict session cookie out; the Lax launch marker makes the page reload itself once.
    let markers: Vec<&str> = page
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter(|v| v.starts_with("carerecord_launch=1"))
        .collect();
    assert_eq!(markers.len(), 1);
    assert!(markers[0].contains("SameSite=Lax"));
    let cross_site = app.get("carerecord_launch=1", "/residents/p-here").await;
    assert_eq!(cross_site.status, 200);
    assert_eq!(cross_site.header("refresh"), "0; url=/residents/p-here");
    assert!(
        !cross_site.text.contains("Here"),
        "no record without the session"
    );
    // Without the marker, no session is the sign-in page as ever.
    let nobody = app.get("", "/residents/p-here").await;
    assert_eq!(nobody.status, 303);
    assert_eq!(nobody.header("location"), "/sign-in");

    let record = app.get(&cookie, "/residents/p-here").await;
    assert_eq!(record.status, 200, "{}", record.text);
    assert!(record.text.contains("Here"), "the resident's record");
    assert!(
        record.text.contains("Test Carer"),
        "the launched user in the header"
    );
    // The session is the home's, with the asserted role: the other home's resident is not open.
    let other = app.get(&cookie, "/residents/p-other").await;
    assert_eq!(other.status, 403);

    // The user was mapped just in time: a user row for the system's user id with the grant.
    let user = app
        .identity
        .directory()
        .user_by_username(&launch_username(SYSTEM, "staff-0042"))
        .await
        .unwrap()
        .expect("launched user recorded");
    let grants = app.identity.directory().grants(&user.id).await.unwrap();
    assert_eq!(grants.len(), 1);
    assert_eq!(
        (grants[0].role.as_str(), grants[0].organisation_id.as_str()),
        ("care-worker", "home-a")
    );

    // A second launch of the same user reuses the row (and records no new mapping).
    let again = app.launch(&app.sign(&app.claims())).await;
    assert_eq!(again.status, 303, "{}", again.text);
    let entries = app.launch_entries().await;
    let created: Vec<_> = entries
        .iter()
        .filter(|r| r.rule == "launch-user-created")
        .collect();
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].agent.id, user.id);
    let opened: Vec<_> = entries
        .iter()
        .filter(|r| r.rule == "context-launch" && r.outcome == AuditOutcome::Allowed)
        .collect();
    assert_eq!(opened.len(), 2);
    assert_eq!(opened[0].patient_ids, ["p-here"]);
    assert_eq!(opened[0].agent.ods_code.as_deref(), Some("ZHA1"));
    // Nothing identifying went into a URL.
    assert!(!page.header("location").contains("9990000018"));
}

#[tokio::test]
async fn a_token_signed_with_another_key_is_refused() {
    let app = spawn().await;
    let (other_key, _) = generate_es256_key_pair().unwrap();
    let token = sign_launch_token(&app.claims(), &other_key, None).unwrap();
    let page = app.launch(&token).await;
    app.assert_refused(&page, 401, "launch-bad-signature").await;
}

#[tokio::test]
async fn a_tampered_token_is_refused() {
    let app = spawn().await;
    let token = app.sign(&app.claims());
    // Another resident's NHS number spliced into the signed claims.
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut claims: Value = serde_json::from_slice(&b64.decode(&parts[1]).unwrap()).unwrap();
    claims["nhs_number"] = json!("9990000026");
    parts[1] = b64.encode(claims.to_string());
    let page = app.launch(&parts.join(".")).await;
    app.assert_refused(&page, 401, "launch-bad-signature").await;
}

#[tokio::test]
async fn an_unknown_issuer_is_refused() {
    let app = spawn().await;
    let mut c = app.claims();
    c.iss = "unregistered-system".into();
    let page = app.launch(&app.sign(&c)).await;
    app.assert_refused(&page, 401, "launch-unknown-issuer")
        .await;
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let app = spawn().await;
    let mut c = app.claims();
    c.iat -= 600;
    c.exp = c.iat + 120;
    let page = app.launch(&app.sign(&c)).await;
    app.assert_refused(&page, 401, "launch-expired").await;
}

#[tokio::test]
async fn a_token_living_longer_than_five_minutes_is_refused() {
    let app = spawn().await;
    let mut c = app.claims();
    c.exp = c.iat + 301;
    let page = app.launch(&app.sign(&c)).await;
    app.assert_refused(&page, 400, "launch-too-long").await;
}

#[tokio::test]
async fn a_replayed_token_is_refused() {
    let app = spawn().await;
    let token = app.sign(&app.claims());
    assert_eq!(app.launch(&token).await.status, 303);
    let page = app.launch(&token).await;
    app.assert_refused(&page, 401, "launch-replayed").await;
}

#[tokio::test]
async fn a_token_for_another_audience_is_refused() {
    let app = spawn().await;
    let mut c = app.claims();
    c.aud = json!("https://another-record.example/launch");
    let page = app.launch(&app.sign(&c)).await;
    app.assert_refused(&page, 401, "launch-wrong-audience")
        .await;
}

#[tokio::test]
async fn an_nhs_number_and_birth_date_of_different_people_are_refused() {
    let app = spawn().await;
    let mut c = app.claims();
    // p-here's NHS number with p-other's date of birth.
    c.birth_date = "1936-05-12".into();
    let page = app.launch(&app.sign(&c)).await;
    app.assert_refused(&page, 400, "launch-different-people")
        .await;
    assert!(!page.text.contains("9990000018"), "the page names no one");
    let entries = app.launch_entries().await;
    let e = entries
        .iter()
        .find(|r| r.rule == "launch-different-people")
        .unwrap();
    // Recorded against the person whose NHS number was used, for their access report.
    assert_eq!(e.patient_ids, ["p-here"]);
}

#[tokio::test]
async fn a_resident_not_in_the_homes_care_leads_to_the_emergency_access_offer() {
    let app = spawn().await;
    let mut c = app.claims();
    c.nhs_number = "9990000026".into();
    c.birth_date = "1936-05-12".into();
    let page = app.launch(&app.sign(&c)).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("action=\"/find/emergency-access\""));
    assert!(page.text.contains("We cannot show you a record"));
    assert!(
        app.launch_entries()
            .await
            .iter()
            .any(|r| r.rule == "launch-not-in-care"
                && r.outcome == AuditOutcome::Denied
                && r.patient_ids == ["p-other"])
    );
    // The session is open (the user is who their system says), but the record is not.
    let cookie = page.cookie();
    assert_eq!(app.get(&cookie, "/").await.status, 200);
    assert_eq!(app.get(&cookie, "/residents/p-other").await.status, 403);
}

#[tokio::test]
async fn lapsed_training_is_refused() {
    let app = spawn().await;
    let mut c = app.claims();
    c.training_completed = Some("2020-01-06".into());
    let page = app.launch(&app.sign(&c)).await;
    app.assert_refused(&page, 403, "launch-training-expired")
        .await;
    // Without a date from the system, a new user has no training on record either.
    let mut c = app.claims();
    c.sub = "staff-0099".into();
    c.training_completed = None;
    let page = app.launch(&app.sign(&c)).await;
    app.assert_refused(&page, 403, "launch-training-expired")
        .await;
}

#[tokio::test]
async fn an_organisation_the_system_is_not_registered_for_is_refused() {
    let app = spawn().await;
    let mut c = app.claims();
    c.ods = "ZHB1".into();
    c.nhs_number = "9990000026".into();
    c.birth_date = "1936-05-12".into();
    let page = app.launch(&app.sign(&c)).await;
    app.assert_refused(&page, 403, "launch-organisation-not-registered")
        .await;
}

#[tokio::test]
async fn a_role_the_system_may_not_assert_is_refused() {
    let app = spawn().await;
    let mut c = app.claims();
    c.role = "care-home-manager".into();
    let page = app.launch(&app.sign(&c)).await;
    app.assert_refused(&page, 403, "launch-role-not-allowed")
        .await;
    let mut c = app.claims();
    c.role = "privacy-officer".into();
    let page = app.launch(&app.sign(&c)).await;
    app.assert_refused(&page, 403, "launch-role-not-allowed")
        .await;
}

#[tokio::test]
async fn a_form_without_a_token_or_with_garbage_is_refused() {
    let app = spawn().await;
    let page = app.launch("").await;
    app.assert_refused(&page, 400, "launch-malformed").await;
    let page = app.launch("not.a.jwt").await;
    app.assert_refused(&page, 400, "launch-malformed").await;
}

/// Registers `client_id` for home A (care workers) with its keys at `url`, through the
/// administrators' registration.
async fn register_with_jwks_url(app: &App, client_id: &str, url: &str) {
    app.identity
        .register_system(carerecord_identity::register::NewSystem {
            client_id: client_id.into(),
            organisations: vec!["home-a".into()],
            launch_roles: vec![Role::CareWorker],
            scope: None,
            keys: carerecord_identity::register::Keys::Uri(url.into()),
            secret: false,
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn a_system_with_a_jwks_url_launches_until_its_key_is_removed_from_the_document() {
    let app = spawn().await;
    let (private, public) = generate_es256_key_pair().unwrap();
    let jwk = carerecord_identity::jwks::es256_public_jwk(&public, "k1").unwrap();
    let doc = std::sync::Arc::new(std::sync::Mutex::new(json!({"keys": [jwk]}).to_string()));
    let url = common::jwks_server(doc.clone()).await;
    register_with_jwks_url(&app, "jwks-ehr", &url).await;
    let claims = |jti: &str| LaunchClaims {
        iss: "jwks-ehr".into(),
        jti: jti.into(),
        ..app.claims()
    };
    let token = sign_launch_token(&claims("jwks-1"), &private, Some("k1")).unwrap();
    let page = app.launch(&token).await;
    assert_eq!(page.status, 303, "{}", page.text);
    assert_eq!(page.header("location"), "/residents/p-here");

    // The system rotates k1 out: a token signed with it no longer verifies.
    *doc.lock().unwrap() = json!({"keys": []}).to_string();
    let token = sign_launch_token(&claims("jwks-2"), &private, Some("k1")).unwrap();
    let page = app.launch(&token).await;
    app.assert_refused(&page, 401, "launch-unknown-key").await;
}

#[tokio::test]
async fn an_unreachable_jwks_url_is_a_clear_audited_refusal() {
    let app = spawn().await;
    let (private, _) = generate_es256_key_pair().unwrap();
    register_with_jwks_url(&app, "gone-ehr", &common::closed_url()).await;
    let claims = LaunchClaims {
        iss: "gone-ehr".into(),
        ..app.claims()
    };
    let page = app
        .launch(&sign_launch_token(&claims, &private, None).unwrap())
        .await;
    app.assert_refused(&page, 503, "launch-keys-unavailable")
        .await;
    assert!(
        page.text.contains("could not fetch your system"),
        "{}",
        page.text
    );
}
