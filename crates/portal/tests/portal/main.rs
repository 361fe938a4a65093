//! The portal through a real server on port 0 (SQLite in a temporary directory), as a browser
//! without JavaScript uses it: forms, redirects and a session cookie.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation is a failed test"
)]

use std::sync::Arc;

use carerecord_access::Role;
use carerecord_identity::{Identity, IdentitySettings, NewUser, PasswordCost, totp};
use carerecord_server::{AppState, ServerSettings};
use carerecord_store::{AuditKey, Channel, ResourceStore, now_micros};
use serde_json::{Value, json};

const PASSWORD: &str = "a long portal test password";
const SOURCE_TAG: &str = "https://fhir.carerecord.example/CodeSystem/source-organisation";
const NHS: &str = "https://fhir.nhs.uk/Id/nhs-number";

struct App {
    origin: String,
    /// A service client's bearer token, to write the test population through the API.
    token: String,
    store: Arc<dyn ResourceStore>,
    identity: Arc<Identity>,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

struct Page {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Page {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

async fn spawn() -> App {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ResourceStore> = Arc::new(
        carerecord_store_sqlite::SqliteStore::open(&dir.path().join("t.db"))
            .await
            .unwrap()
            .with_audit_key(AuditKey::new(b"carerecord-portal-tests-audit-key").unwrap()),
    );
    let identity = Arc::new(Identity::new(
        store.clone(),
        IdentitySettings {
            password_cost: PasswordCost::Light,
            ..IdentitySettings::default()
        },
    ));
    let state = AppState {
        store: store.clone(),
        settings: Arc::new(ServerSettings::default()),
        identity: identity.clone(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ =
            carerecord_server::serve_with(state, carerecord_portal::router(), listener, async {
                let _ = rx.await;
            })
            .await;
    });
    let mut app = App {
        token: String::new(),
        origin,
        store,
        identity,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        _dir: dir,
        _shutdown: tx,
    };
    app.token = service_token(&app).await;
    population(&app).await;
    app
}

/// Writes `body` through the FHIR API as carerecord's service identity (which keeps the
/// source it is given).
async fn put(app: &App, body: Value, source: &str) {
    let mut body = body;
    let security = body["meta"]["security"].clone();
    body["meta"] = json!({"tag": [{"system": SOURCE_TAG, "code": source}]});
    if !security.is_null() {
        body["meta"]["security"] = security;
    }
    let path = format!(
        "/fhir/{}/{}",
        body["resourceType"].as_str().unwrap(),
        body["id"].as_str().unwrap()
    );
    let r = app
        .http
        .put(app.url(&path))
        .bearer_auth(&app.token)
        .header("content-type", "application/fhir+json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "{path}: {}",
        r.text().await.unwrap()
    );
}

async fn service_token(app: &App) -> String {
    let client = app
        .identity
        .create_client(carerecord_identity::NewClient {
            client_id: "portal-test-service".into(),
            role: Role::Service,
            organisation_id: "programme".into(),
            secret: true,
            public_key: None,
        })
        .await
        .unwrap();
    let resp = app
        .http
        .post(app.url("/auth/token"))
        .basic_auth("portal-test-service", client.secret.as_deref())
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// Two homes, a resident of each; the resident of home A has a discharge summary, a lab
/// result and a sensitive item from a clinic.
async fn population(app: &App) {
    for (id, ods, name) in [("home-a", "ZHA1", "Home A"), ("home-b", "ZHB1", "Home B")] {
        put(
            app,
            json!({"resourceType": "Organization", "id": id, "name": name,
                   "identifier": [{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": ods}]}),
            "ZDIR",
        )
        .await;
    }
    for (p, home, ods, nhs, family) in [
        ("p-here", "home-a", "ZHA1", "9990000018", "Here"),
        ("p-other", "home-b", "ZHB1", "9990000026", "Elsewhere"),
    ] {
        put(
            app,
            json!({"resourceType": "Patient", "id": p, "birthDate": "1941-03-27",
                   "identifier": [{"system": NHS, "value": nhs}],
                   "name": [{"use": "official", "family": family, "given": ["Ada"]}],
                   "generalPractitioner": [{"display": "Zed Practice"}]}),
            "ZGP1",
        )
        .await;
        put(
            app,
            json!({"resourceType": "EpisodeOfCare", "id": format!("{p}-eoc"), "status": "active",
                   "patient": {"reference": format!("Patient/{p}")},
                   "managingOrganization": {"reference": format!("Organization/{home}")},
                   "period": {"start": "2025-01-01"}}),
            ods,
        )
        .await;
        put(
            app,
            json!({"resourceType": "Observation", "id": format!("{p}-lab"), "status": "final",
                   "code": {"coding": [{"system": "http://loinc.org", "code": "2823-3", "display": "Potassium"}]},
                   "subject": {"reference": format!("Patient/{p}")},
                   "effectiveDateTime": "2026-11-20T09:00:00Z",
                   "valueQuantity": {"value": 6.2, "unit": "mmol/L"},
                   "interpretation": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": "H"}]}],
                   "referenceRange": [{"low": {"value": 3.5}, "high": {"value": 5.3}}]}),
            "ZLAB1",
        )
        .await;
    }
    put(
        app,
        json!({"resourceType": "Condition", "id": "p-here-sensitive",
               "meta": {"security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "STD"}]},
               "code": {"coding": [{"system": "http://snomed.info/sct", "code": "8098009"}]},
               "subject": {"reference": "Patient/p-here"}}),
        "ZGUM1",
    )
    .await;
}

/// Creates a person with one role at `org`.
async fn user(app: &App, username: &str, role: Role, org: &str, lapsed: bool) -> String {
    let created = app
        .identity
        .create_user(NewUser {
            username: username.into(),
            display_name: format!("Test {username}"),
            password: Some(PASSWORD.into()),
            grants: vec![(role, org.to_owned())],
            training_valid_until: lapsed.then(|| now_micros() - 1_000_000),
        })
        .await
        .unwrap();
    created.totp_secret
}

impl App {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }

    async fn page(&self, req: reqwest::RequestBuilder) -> Page {
        let resp = req.send().await.unwrap();
        Page {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            text: resp.text().await.unwrap(),
        }
    }

    async fn get(&self, cookie: &str, path: &str) -> Page {
        self.page(self.http.get(self.url(path)).header("cookie", cookie))
            .await
    }

    /// A form POST as a browser on the portal's own page sends it.
    async fn post(&self, cookie: &str, path: &str, form: &[(&str, &str)]) -> Page {
        self.page(
            self.http
                .post(self.url(path))
                .header("cookie", cookie)
                .header("origin", &self.origin)
                .form(form),
        )
        .await
    }

    /// Signs in through the form; returns the cookie to send.
    async fn sign_in(&self, username: &str, secret: &str) -> String {
        let now = u64::try_from(now_micros() / 1_000_000).unwrap();
        let code = totp::code_at(secret, now).unwrap();
        let p = self
            .post(
                "",
                "/sign-in",
                &[
                    ("username", username),
                    ("password", PASSWORD),
                    ("totp", &code),
                ],
            )
            .await;
        assert_eq!(p.status, 303, "sign-in: {}", p.text);
        let cookie = p.header("set-cookie").to_owned();
        assert!(cookie.contains("HttpOnly"), "{cookie}");
        assert!(cookie.contains("SameSite=Strict"), "{cookie}");
        cookie.split(';').next().unwrap().to_owned()
    }
}

#[tokio::test]
async fn the_design_system_is_served_from_the_binary_with_long_cache_headers() {
    let app = spawn().await;
    let p = app.get("", "/sign-in").await;
    assert_eq!(p.status, 200);
    let href = p
        .text
        .split("href=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap())
        .find(|h| h.ends_with("nhsuk-frontend.min.css"))
        .expect("the stylesheet link");
    assert!(href.starts_with("/assets/"), "{href}");
    let css = app.get("", href).await;
    assert_eq!(css.status, 200);
    assert!(css.header("content-type").starts_with("text/css"));
    assert!(css.header("cache-control").contains("immutable"));
    assert!(css.text.contains(".nhsuk-header"));
    assert!(!p.text.contains("://assets.nhs.uk"));
    assert!(
        p.header("content-security-policy")
            .contains("default-src 'self'")
    );
    let old = app.get("", "/assets/0000/nhsuk-frontend.min.css").await;
    assert_eq!(old.status, 404);
}

#[tokio::test]
async fn a_nurse_signs_in_and_sees_her_residents_and_not_another_homes() {
    let app = spawn().await;
    let secret = user(&app, "nurse", Role::RegisteredNurse, "home-a", false).await;

    let anonymous = app.get("", "/").await;
    assert_eq!(anonymous.status, 303);
    assert_eq!(anonymous.header("location"), "/sign-in");

    let wrong = app
        .post(
            "",
            "/sign-in",
            &[
                ("username", "nurse"),
                ("password", "wrong"),
                ("totp", "000000"),
            ],
        )
        .await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.text.contains("nhsuk-error-summary"));

    let cookie = app.sign_in("nurse", &secret).await;
    let home = app.get(&cookie, "/").await;
    assert_eq!(home.status, 200, "{}", home.text);
    assert!(home.text.contains("Ada Here"), "{}", home.text);
    assert!(home.text.contains("999 000 0018"));
    assert!(home.text.contains("27 March 1941"));
    assert!(home.text.contains("Zed Practice"));
    assert!(!home.text.contains("Elsewhere"));
    assert_eq!(home.header("cache-control"), "no-store");

    let filtered = app.get(&cookie, "/?q=nobody").await;
    assert!(!filtered.text.contains("Ada Here"));
    let by_number = app.get(&cookie, "/?q=000+0018").await;
    assert!(by_number.text.contains("Ada Here"));

    let record = app.get(&cookie, "/residents/p-here/results").await;
    assert_eq!(record.status, 200, "{}", record.text);
    assert!(
        record.text.contains("withheld by their source"),
        "{}",
        record.text
    );
    assert!(!record.text.contains("not available to your role"));

    let other = app.get(&cookie, "/residents/p-other").await;
    assert_eq!(other.status, 403);
    assert!(other.text.contains("not available to you"));
    let unknown = app.get(&cookie, "/residents/no-such-person").await;
    assert_eq!(
        unknown.status, 403,
        "the same answer whether or not they exist"
    );

    // Every look went to the audit trail through the portal channel, the refusal included.
    let entries = app.store.audit_entries(0, 1_000).await.unwrap();
    let portal: Vec<_> = entries
        .iter()
        .filter(|e| e.record.channel == Channel::Portal)
        .collect();
    assert!(portal.iter().any(|e| {
        e.record.patient_ids == ["p-here"]
            && e.record
                .resources
                .iter()
                .any(|r| r.starts_with("Observation/p-here-lab"))
    }));
    assert!(portal.iter().any(|e| e.record.patient_ids == ["p-other"]
        && e.record.outcome == carerecord_store::AuditOutcome::Denied));
}

#[tokio::test]
async fn a_care_worker_is_told_which_sections_her_role_cannot_see() {
    let app = spawn().await;
    let secret = user(&app, "carer", Role::CareWorker, "home-a", false).await;
    let cookie = app.sign_in("carer", &secret).await;
    let home = app.get(&cookie, "/").await;
    assert!(home.text.contains("Ada Here"), "{}", home.text);
    let results = app.get(&cookie, "/residents/p-here/results").await;
    assert_eq!(results.status, 200, "{}", results.text);
    assert!(results.text.contains("section-unavailable"));
    assert!(results.text.contains("not available to your role"));
    let summary = app.get(&cookie, "/residents/p-here").await;
    assert!(
        summary
            .text
            .contains("Parts of the record your role cannot see")
    );
    // What was read for her is only what her view includes: no lab result.
    let entries = app.store.audit_entries(0, 1_000).await.unwrap();
    assert!(
        entries
            .iter()
            .filter(|e| e.record.channel == Channel::Portal)
            .all(|e| !e
                .record
                .resources
                .iter()
                .any(|r| r.starts_with("Observation/")))
    );
}

#[tokio::test]
async fn forms_from_another_site_are_refused() {
    let app = spawn().await;
    let secret = user(&app, "nurse", Role::RegisteredNurse, "home-a", false).await;
    let cookie = app.sign_in("nurse", &secret).await;
    let forged = app
        .page(
            app.http
                .post(app.url("/sign-out"))
                .header("cookie", &cookie)
                .header("origin", "http://evil.example"),
        )
        .await;
    assert_eq!(forged.status, 403);
    let no_origin = app
        .page(
            app.http
                .post(app.url("/sign-out"))
                .header("cookie", &cookie),
        )
        .await;
    assert_eq!(no_origin.status, 403);
    // The session survived both.
    assert_eq!(app.get(&cookie, "/").await.status, 200);
}

#[tokio::test]
async fn signing_out_ends_the_session_for_good() {
    let app = spawn().await;
    let secret = user(&app, "nurse", Role::RegisteredNurse, "home-a", false).await;
    let cookie = app.sign_in("nurse", &secret).await;
    let out = app.post(&cookie, "/sign-out", &[]).await;
    assert_eq!(out.status, 303);
    assert!(out.header("set-cookie").contains("Max-Age=0"));
    let after = app.get(&cookie, "/").await;
    assert_eq!(after.status, 401);
    assert!(after.text.contains("You have been signed out"));
}

#[tokio::test]
async fn lapsed_training_shows_nothing_until_it_is_recorded() {
    let app = spawn().await;
    let secret = user(&app, "late", Role::RegisteredNurse, "home-a", true).await;
    let cookie = app.sign_in("late", &secret).await;
    let home = app.get(&cookie, "/").await;
    assert_eq!(home.status, 303);
    assert_eq!(home.header("location"), "/training");
    let record = app.get(&cookie, "/residents/p-here").await;
    assert_eq!(record.status, 303);
    let unconfirmed = app.post(&cookie, "/training", &[]).await;
    assert_eq!(unconfirmed.status, 400);
    let done = app.post(&cookie, "/training", &[("confirm", "yes")]).await;
    assert_eq!(done.status, 303);
    // The session's principal is refreshed by the identity service.
    let home = app.get(&cookie, "/").await;
    assert_eq!(home.status, 200, "{}", home.text);
}

#[tokio::test]
async fn emergency_access_opens_a_record_with_a_banner_and_reaches_the_review_queue() {
    let app = spawn().await;
    let secret = user(&app, "nurse", Role::RegisteredNurse, "home-a", false).await;
    let po_secret = user(&app, "privacy", Role::PrivacyOfficer, "home-a", false).await;
    let cookie = app.sign_in("nurse", &secret).await;

    let bad = app
        .post(
            &cookie,
            "/find",
            &[
                ("nhs", "123"),
                ("day", "40"),
                ("month", "1"),
                ("year", "1941"),
            ],
        )
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.text.contains("valid 10-digit NHS number"));

    let mine = app
        .post(
            &cookie,
            "/find",
            &[
                ("nhs", "999 000 0018"),
                ("day", "27"),
                ("month", "3"),
                ("year", "1941"),
            ],
        )
        .await;
    assert_eq!(mine.status, 303);
    assert_eq!(mine.header("location"), "/residents/p-here");

    let form = [
        ("nhs", "9990000026"),
        ("day", "27"),
        ("month", "3"),
        ("year", "1941"),
    ];
    let theirs = app.post(&cookie, "/find", &form).await;
    assert_eq!(theirs.status, 200);
    assert!(theirs.text.contains("Emergency access"));
    let nobody = app
        .post(
            &cookie,
            "/find",
            &[
                ("nhs", "9990000026"),
                ("day", "1"),
                ("month", "1"),
                ("year", "1950"),
            ],
        )
        .await;
    assert_eq!(
        nobody.text.contains("We cannot show you a record"),
        theirs.text.contains("We cannot show you a record"),
        "the page does not say whether the person exists"
    );

    let mut no_reason = form.to_vec();
    no_reason.push(("text", "fell at the day centre"));
    let refused = app
        .post(&cookie, "/find/emergency-access", &no_reason)
        .await;
    assert_eq!(refused.status, 400);
    assert!(refused.text.contains("give a reason"));

    let mut full = form.to_vec();
    full.push(("reason", "emergency"));
    full.push((
        "text",
        "fell at the day centre, staff need the medicines list",
    ));
    let granted = app.post(&cookie, "/find/emergency-access", &full).await;
    assert_eq!(granted.status, 303, "{}", granted.text);
    assert_eq!(granted.header("location"), "/residents/p-other");
    let record = app.get(&cookie, "/residents/p-other").await;
    assert_eq!(record.status, 200, "{}", record.text);
    assert!(record.text.contains("id=\"emergency-access\""));
    assert!(record.text.contains("under emergency access until"));
    // Her own resident opens without the banner.
    let own = app.get(&cookie, "/residents/p-here").await;
    assert!(!own.text.contains("id=\"emergency-access\""));

    let po = app.sign_in("privacy", &po_secret).await;
    let home = app.get(&po, "/").await;
    assert_eq!(home.header("location"), "/privacy");
    let queue = app.get(&po, "/privacy/emergency-access").await;
    assert_eq!(queue.status, 200, "{}", queue.text);
    assert!(queue.text.contains("fell at the day centre"));
    assert!(queue.text.contains("/privacy/people/p-other"));
    // The officer records a review; the grant leaves the open queue and cannot be reviewed
    // twice.
    let grant = queue
        .text
        .split("action=\"/privacy/emergency-access/")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a review form")
        .to_owned();
    let path = format!("/privacy/emergency-access/{grant}");
    let empty = app.post(&po, &path, &[("outcome", "appropriate")]).await;
    assert_eq!(empty.status, 400, "a review needs a note");
    let by_nurse = app
        .post(
            &cookie,
            &path,
            &[("outcome", "appropriate"), ("note", "mine")],
        )
        .await;
    assert_eq!(by_nurse.status, 403);
    let reviewed = app
        .post(
            &po,
            &path,
            &[
                ("outcome", "appropriate"),
                ("note", "checked with the nurse"),
            ],
        )
        .await;
    assert_eq!(reviewed.status, 303, "{}", reviewed.text);
    let open = app.get(&po, "/privacy/emergency-access").await;
    assert!(!open.text.contains(&grant));
    let done = app
        .get(&po, "/privacy/emergency-access?status=reviewed")
        .await;
    assert!(done.text.contains("checked with the nurse"));
    let again = app
        .post(
            &po,
            &path,
            &[("outcome", "inappropriate"), ("note", "again")],
        )
        .await;
    assert_eq!(again.status, 400);
    let report = app.get(&po, "/privacy/people/p-other").await;
    assert_eq!(report.status, 200);
    assert!(report.text.contains("999 000 0026"));
    assert!(report.text.contains("break-glass"));
    let search = app
        .get(&po, "/privacy?person=9990000026&outcome=denied")
        .await;
    assert_eq!(search.status, 200);
    assert!(
        search.text.contains("Refused"),
        "the refused find is in the trail"
    );
    // The officer sees no records.
    let refused = app.get(&po, "/residents/p-here").await;
    assert_eq!(refused.status, 403);
    // And staff see no audit.
    assert_eq!(app.get(&cookie, "/privacy").await.status, 403);
}

#[tokio::test]
async fn unknown_pages_and_sections_are_kind_not_found_pages() {
    let app = spawn().await;
    let secret = user(&app, "nurse", Role::RegisteredNurse, "home-a", false).await;
    let cookie = app.sign_in("nurse", &secret).await;
    let p = app.get(&cookie, "/no/such/page").await;
    assert_eq!(p.status, 404);
    assert!(p.text.contains("Page not found"));
    let s = app.get(&cookie, "/residents/p-here/nonsense").await;
    assert_eq!(s.status, 404);
    // The FHIR API keeps its own answers.
    let fhir = app.get("", "/fhir/metadata").await;
    assert_eq!(fhir.status, 200);
    assert!(fhir.header("content-type").contains("fhir+json"));
}

#[tokio::test]
async fn a_manager_records_a_move_in_by_nhs_number_and_birth_date_then_a_move_out_and_undoes_it() {
    let app = spawn().await;
    population(&app).await;
    let manager = user(&app, "manager", Role::CareHomeManager, "home-a", false).await;
    let nurse = user(&app, "nurse", Role::RegisteredNurse, "home-a", false).await;
    let manager = app.sign_in("manager", &manager).await;
    let nurse = app.sign_in("nurse", &nurse).await;

    let list = app.get(&manager, "/").await;
    assert!(list.text.contains("href=\"/moves/in\""), "{}", list.text);
    assert!(
        !app.get(&nurse, "/")
            .await
            .text
            .contains("href=\"/moves/in\"")
    );
    assert_eq!(app.get(&nurse, "/moves/in").await.status, 403);
    assert_eq!(app.get(&manager, "/moves/in").await.status, 200);

    let form = |nhs: &'static str, year: &'static str| {
        vec![
            ("nhs", nhs),
            ("born-day", "27"),
            ("born-month", "3"),
            ("born-year", year),
            ("moved-day", ""),
            ("moved-month", ""),
            ("moved-year", ""),
        ]
    };
    // A bad check digit, a wrong date of birth: refused, naming no one.
    let bad = app
        .post(&manager, "/moves/in", &form("999 000 0027", "1941"))
        .await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.text.contains("valid 10-digit NHS number"),
        "{}",
        bad.text
    );
    let wrong = app
        .post(&manager, "/moves/in", &form("999 000 0026", "1942"))
        .await;
    assert_eq!(wrong.status, 400);
    assert!(
        wrong
            .text
            .contains("no person with this NHS number and date of birth")
    );
    assert!(!wrong.text.contains("Elsewhere"));
    // From another site: refused before anything happens.
    let forged = app
        .page(
            app.http
                .post(app.url("/moves/in"))
                .header("cookie", &manager)
                .header("origin", "https://evil.example")
                .form(&form("999 000 0026", "1941")),
        )
        .await;
    assert_eq!(forged.status, 403);
    assert_eq!(app.get(&nurse, "/residents/p-other").await.status, 403);

    // The right details: they move in today, and the home's nurse now sees them.
    let done = app
        .post(&manager, "/moves/in", &form("999 000 0026", "1941"))
        .await;
    assert_eq!(done.status, 303, "{}", done.text);
    let location = done.header("location").to_owned();
    assert!(location.starts_with("/moves/done/"), "{location}");
    let confirmation = app.get(&manager, &location).await;
    assert!(
        confirmation.text.contains("Ada Elsewhere has moved in"),
        "{}",
        confirmation.text
    );
    assert!(app.get(&nurse, "/").await.text.contains("Ada Elsewhere"));
    assert_eq!(app.get(&nurse, "/residents/p-other").await.status, 200);
    // Twice changes nothing.
    let again = app
        .post(&manager, "/moves/in", &form("999 000 0026", "1941"))
        .await;
    assert!(again.header("location").contains("did=already"));

    // Moved out: a date in the future is refused; today ends the stay.
    let out = app.get(&manager, "/moves/out/p-other").await;
    assert_eq!(out.status, 200, "{}", out.text);
    let future = app
        .post(
            &manager,
            "/moves/out/p-other",
            &[
                ("moved-day", "1"),
                ("moved-month", "1"),
                ("moved-year", "2999"),
            ],
        )
        .await;
    assert_eq!(future.status, 400);
    assert!(
        future.text.contains("today or in the past"),
        "{}",
        future.text
    );
    let today = time::OffsetDateTime::now_utc().date();
    let (d, m, y) = (
        today.day().to_string(),
        u8::from(today.month()).to_string(),
        today.year().to_string(),
    );
    let gone = app
        .post(
            &manager,
            "/moves/out/p-other",
            &[("moved-day", &d), ("moved-month", &m), ("moved-year", &y)],
        )
        .await;
    assert_eq!(gone.status, 303, "{}", gone.text);
    let episode = gone
        .header("location")
        .trim_start_matches("/moves/done/")
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    assert!(!app.get(&nurse, "/").await.text.contains("Ada Elsewhere"));
    assert_eq!(app.get(&nurse, "/residents/p-other").await.status, 403);
    // The home's recent moves name the person by the NHS number it gave, not their name.
    let recent = app.get(&manager, "/moves").await;
    assert!(recent.text.contains("999 000 0026"), "{}", recent.text);
    assert!(!recent.text.contains("Ada Elsewhere"));

    // Undo: back on the list.
    let undone = app
        .post(&manager, &format!("/moves/undo/{episode}"), &[])
        .await;
    assert_eq!(undone.status, 303, "{}", undone.text);
    assert_eq!(app.get(&nurse, "/residents/p-other").await.status, 200);

    // Each change is a portal write in the audit trail, with the person.
    let entries = app.store.audit_entries(0, 1_000).await.unwrap();
    let rules: Vec<&str> = entries
        .iter()
        .filter(|e| e.record.channel == Channel::Portal && e.record.patient_ids == ["p-other"])
        .map(|e| e.record.rule.as_str())
        .collect();
    for rule in [
        "residency-moved-in",
        "residency-moved-out",
        "residency-move-out-undone",
    ] {
        assert!(rules.contains(&rule), "{rule}: {rules:?}");
    }
}
