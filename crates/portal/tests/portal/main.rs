//! The portal through a real server on port 0 (SQLite in a temporary directory), as a browser
//! without JavaScript uses it: forms, redirects and a session cookie.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation is a failed test"
)]

#[path = "../common/mod.rs"]
mod common;
mod smart;
mod systems;

use carerecord_access::Role;
use carerecord_store::{AuditAction, AuditOutcome, Channel, now_micros};
use common::{App, Resident, put, resident, user};
use serde_json::json;

async fn spawn() -> App {
    let app = common::spawn("portal").await;
    population(&app).await;
    app
}

/// Two homes, a resident of each; the resident of home A has a discharge summary, a lab
/// result and a sensitive item from a clinic.
async fn population(app: &App) {
    common::homes(app).await;
    for (p, home, ods, nhs, family) in [
        ("p-here", "home-a", "ZHA1", "9990000018", "Here"),
        ("p-other", "home-b", "ZHB1", "9990000026", "Elsewhere"),
    ] {
        resident(
            app,
            &Resident {
                id: p,
                home,
                ods,
                nhs,
                born: "1941-03-27",
                family,
            },
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
async fn the_emergency_access_queue_is_paged_with_a_link_to_older_grants() {
    let app = spawn().await;
    let po_secret = user(&app, "privacy", Role::PrivacyOfficer, "home-a", false).await;
    // One page (50 grants, the portal's page size) and three more.
    let n = 53;
    let mut tx = app.store.begin().await.unwrap();
    for i in 0..n {
        let at = now_micros() - 1_000_000 * i64::try_from(i).unwrap();
        tx.put_break_glass(&carerecord_store::BreakGlassGrant {
            grant_id: format!("bg-{i:03}"),
            principal_key: "user:someone@home-a".into(),
            org_id: "home-a".into(),
            patient_id: "p-other".into(),
            reason_code: "emergency".into(),
            reason_text: format!("reason number {i:03}"),
            granted_at: at,
            expires_at: at + 3_600_000_000,
        })
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();

    let po = app.sign_in("privacy", &po_secret).await;
    let shown = |text: &str| -> Vec<usize> {
        (0..n)
            .filter(|i| text.contains(&format!("reason number {i:03}")))
            .collect()
    };
    let first = app.get(&po, "/privacy/emergency-access").await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(
        shown(&first.text),
        (0..n - 3).collect::<Vec<_>>(),
        "the newest page"
    );
    let next = first
        .text
        .split("<a href=\"/privacy/emergency-access?")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a link to older grants")
        // The link is HTML-escaped in the page, as a browser reads it.
        .replace("&amp;", "&")
        .replace("&#38;", "&");
    let second = app
        .get(&po, &format!("/privacy/emergency-access?{next}"))
        .await;
    assert_eq!(second.status, 200, "{}", second.text);
    assert_eq!(shown(&second.text), (n - 3..n).collect::<Vec<_>>());
    assert!(!second.text.contains("Older emergency access"));
}

#[tokio::test]
async fn the_review_form_audits_unknown_foreign_and_repeated_reviews_as_the_api_does() {
    let app = spawn().await;
    let po_secret = user(&app, "privacy", Role::PrivacyOfficer, "home-a", false).await;
    let nurse_secret = user(&app, "nurse", Role::RegisteredNurse, "home-a", false).await;
    let mut tx = app.store.begin().await.unwrap();
    let at = now_micros();
    for (grant_id, org_id) in [("bg-ours", "home-a"), ("bg-theirs", "home-b")] {
        tx.put_break_glass(&carerecord_store::BreakGlassGrant {
            grant_id: grant_id.into(),
            principal_key: format!("user:someone@{org_id}"),
            org_id: org_id.into(),
            patient_id: "p-other".into(),
            reason_code: "emergency".into(),
            reason_text: "fell at the day centre".into(),
            granted_at: at,
            expires_at: at + 3_600_000_000,
        })
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    let po = app.sign_in("privacy", &po_secret).await;
    let nurse = app.sign_in("nurse", &nurse_secret).await;
    let form = [
        ("outcome", "appropriate"),
        ("note", "checked with the nurse"),
    ];

    // (who, grant) → the page's status and the one entry it leaves.
    for (cookie, grant, status, outcome, rule, patients) in [
        (
            &po,
            "bg-none",
            404,
            AuditOutcome::Denied,
            "deny-no-such-grant",
            vec![],
        ),
        // Another organisation's grant reads as absent, and the trail names nobody.
        (
            &po,
            "bg-theirs",
            404,
            AuditOutcome::Denied,
            "deny-no-such-grant",
            vec![],
        ),
        (
            &nurse,
            "bg-ours",
            403,
            AuditOutcome::Denied,
            "deny-review-role",
            vec![],
        ),
        (
            &po,
            "bg-ours",
            303,
            AuditOutcome::Allowed,
            "break-glass-reviewed",
            vec!["p-other".to_owned()],
        ),
        (
            &po,
            "bg-ours",
            400,
            AuditOutcome::Denied,
            "deny-already-reviewed",
            vec!["p-other".to_owned()],
        ),
    ] {
        let before = app.audit().await.len();
        let page = app
            .post(cookie, &format!("/privacy/emergency-access/{grant}"), &form)
            .await;
        assert_eq!(page.status, status, "{grant}: {}", page.text);
        let trail = app.audit().await;
        let new = &trail[before..];
        assert_eq!(new.len(), 1, "{grant} {rule}: {new:#?}");
        let e = &new[0];
        assert_eq!(
            (e.action, e.outcome, e.rule.as_str(), e.channel),
            (
                AuditAction::BreakGlassReview,
                outcome,
                rule,
                Channel::Portal
            ),
            "{grant}"
        );
        assert_eq!(e.resources, [format!("break-glass/{grant}")]);
        assert_eq!(e.patient_ids, patients, "{grant} {rule}");
    }
    // Looking at the queue is audited as the API's listing is.
    let before = app.audit().await.len();
    let queue = app.get(&po, "/privacy/emergency-access?status=all").await;
    assert_eq!(queue.status, 200, "{}", queue.text);
    let trail = app.audit().await;
    let listed = trail[before..]
        .iter()
        .find(|e| e.rule == "break-glass-queue")
        .expect("the queue view is audited");
    assert_eq!(
        (listed.channel, listed.action),
        (Channel::Portal, AuditAction::Admin)
    );
    assert_eq!(listed.resources, ["break-glass/bg-ours"]);
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

/// `now` moved by `days` (negative: in the past), as a FHIR dateTime.
fn days_from_now(days: i64) -> String {
    let t = time::OffsetDateTime::now_utc() + time::Duration::days(days);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// A resident of home A with something that makes each badge, and things that must not.
async fn eventful_resident(app: &App, i: u32) {
    let id = format!("p-a{i:02}");
    let nhs = format!("99900{:05}", 100 + i);
    // Any valid check digit will do for a test population: pick the variant that has one.
    let nhs = (0..10)
        .map(|d| format!("{}{d}", &nhs[..9]))
        .find(|n| carerecord_fhir::NhsNumber::parse(n).is_ok())
        .unwrap();
    resident(
        app,
        &Resident {
            id: &id,
            home: "home-a",
            ods: "ZHA1",
            nhs: &nhs,
            born: "1940-01-01",
            family: &format!("Resident{i:02}"),
        },
    )
    .await;
    let subject = json!({"reference": format!("Patient/{id}")});
    // A plan written years ago and loaded today is not news.
    put(
        app,
        json!({"resourceType": "CarePlan", "id": format!("{id}-old-plan"), "status": "active",
               "intent": "plan", "subject": subject, "created": "2023-05-01",
               "period": {"start": "2023-05-01"}}),
        "ZHA1",
    )
    .await;
    // Old results are not news either.
    put(
        app,
        json!({"resourceType": "Observation", "id": format!("{id}-old-lab"), "status": "final",
               "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
               "code": {"text": "Sodium"}, "subject": subject,
               "effectiveDateTime": "2024-02-01T09:00:00Z", "valueQuantity": {"value": 139, "unit": "mmol/L"}}),
        "ZLAB1",
    )
    .await;
    match i % 3 {
        0 => {
            put(
                app,
                json!({"resourceType": "Encounter", "id": format!("{id}-adm"), "status": "in-progress",
                       "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
                       "subject": subject, "period": {"start": days_from_now(-2)}}),
                "ZTR1",
            )
            .await;
        }
        1 => {
            put(
                app,
                json!({"resourceType": "Observation", "id": format!("{id}-new-lab"), "status": "final",
                       "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
                       "code": {"text": "Potassium"}, "subject": subject,
                       "effectiveDateTime": days_from_now(-1), "valueQuantity": {"value": 4.1, "unit": "mmol/L"}}),
                "ZLAB1",
            )
            .await;
        }
        _ => {
            put(
                app,
                json!({"resourceType": "CarePlan", "id": format!("{id}-new-plan"), "status": "active",
                       "intent": "plan", "subject": subject, "created": days_from_now(-1)}),
                "ZHA1",
            )
            .await;
        }
    }
}

#[tokio::test]
async fn the_residents_list_costs_the_same_reads_for_three_residents_as_for_fifteen() {
    let app = spawn().await;
    let secret = user(&app, "nurse", Role::RegisteredNurse, "home-a", false).await;
    let cookie = app.sign_in("nurse", &secret).await;
    for i in 0..2 {
        eventful_resident(&app, i).await;
    }
    let before = app.counting.reads();
    let few = app.get(&cookie, "/").await;
    let few_reads = app.counting.reads() - before;
    assert_eq!(few.status, 200, "{}", few.text);
    assert_eq!(few.text.matches("href=\"/residents/").count(), 3);

    for i in 2..14 {
        eventful_resident(&app, i).await;
    }
    let before = app.counting.reads();
    let many = app.get(&cookie, "/").await;
    let many_reads = app.counting.reads() - before;
    assert_eq!(many.text.matches("href=\"/residents/").count(), 15);
    assert_eq!(
        few_reads, many_reads,
        "the list's reads must not grow with its residents"
    );

    // Each badge is where its event is, and nowhere else: 5 in hospital, 5 with new results,
    // 4 with a plan written yesterday (of 14), none for what is old but loaded today.
    assert_eq!(many.text.matches("In hospital since").count(), 5);
    assert_eq!(many.text.matches(">New results<").count(), 5);
    assert_eq!(many.text.matches(">Care plan updated<").count(), 4);
    // Who has news comes first; the resident with nothing new (p-here's only result is
    // not from the last week) comes last.
    let first_quiet = many.text.find("Nothing new").unwrap();
    assert!(many.text[..first_quiet].contains("In hospital since"));
    assert!(!many.text[first_quiet..].contains("nhsuk-tag"));
    assert!(
        many.text.find("Ada Here").unwrap() > many.text.rfind("nhsuk-tag").unwrap(),
        "{}",
        many.text
    );

    // Once she has opened a record, its care plan change is no longer news to her.
    assert_eq!(app.get(&cookie, "/residents/p-a02").await.status, 200);
    let after = app.get(&cookie, "/").await;
    assert_eq!(after.text.matches(">Care plan updated<").count(), 3);
    assert_eq!(after.text.matches(">New results<").count(), 5);
}

/// A care plan sent again as it was (a new version, the same content) is not a change; a
/// version with new content is, until she opens the record; sent again after that, still not.
#[tokio::test]
async fn a_care_plan_sent_again_unchanged_is_not_news_and_a_changed_one_is() {
    let app = spawn().await;
    let secret = user(&app, "nurse", Role::RegisteredNurse, "home-a", false).await;
    let cookie = app.sign_in("nurse", &secret).await;
    resident(
        &app,
        &Resident {
            id: "p-plan",
            home: "home-a",
            ods: "ZHA1",
            nhs: "9990001251",
            born: "1938-03-03",
            family: "Planned",
        },
    )
    .await;
    let plan = json!({"resourceType": "CarePlan", "id": "p-plan-cp", "status": "active",
                      "intent": "plan", "subject": {"reference": "Patient/p-plan"},
                      "created": "2023-05-01", "description": "Walks with a frame."});
    async fn plan_badges(app: &App, cookie: &str) -> usize {
        app.get(cookie, "/")
            .await
            .text
            .matches(">Care plan updated<")
            .count()
    }
    put(&app, plan.clone(), "ZHA1").await;
    assert_eq!(
        plan_badges(&app, &cookie).await,
        0,
        "written long ago, loaded today"
    );
    put(&app, plan.clone(), "ZHA1").await;
    put(&app, plan.clone(), "ZHA1").await;
    assert_eq!(
        plan_badges(&app, &cookie).await,
        0,
        "versions 2 and 3 are the same plan"
    );

    let mut changed = plan.clone();
    changed["description"] = json!("Walks with a frame and one carer.");
    put(&app, changed.clone(), "ZHA1").await;
    assert_eq!(
        plan_badges(&app, &cookie).await,
        1,
        "version 4 changed the plan"
    );
    put(&app, changed.clone(), "ZHA1").await;
    assert_eq!(
        plan_badges(&app, &cookie).await,
        1,
        "version 5 re-sent version 4: still news"
    );

    assert_eq!(app.get(&cookie, "/residents/p-plan").await.status, 200);
    assert_eq!(plan_badges(&app, &cookie).await, 0, "seen");
    put(&app, changed, "ZHA1").await;
    assert_eq!(
        plan_badges(&app, &cookie).await,
        0,
        "sent again after she saw it: nothing new to see"
    );
}

#[tokio::test]
async fn a_source_with_a_quiet_feed_is_marked_and_a_live_one_is_not() {
    use carerecord_store::ingest::{Hl7System, IngestOp, MessageRecord, tx_do};
    let app = spawn().await;
    let secret = user(&app, "nurse", Role::RegisteredNurse, "home-a", false).await;
    let cookie = app.sign_in("nurse", &secret).await;
    let message = |control_id: &str, received_at: i64| MessageRecord {
        sender: "sys-zlab1".into(),
        control_id: control_id.into(),
        received_at,
        ack_code: "AA".into(),
        ack: b"ack".to_vec(),
        patient_id: None,
    };
    let now = carerecord_store::now_micros();
    let day = 86_400 * 1_000_000;
    let mut tx = app.store.begin().await.unwrap();
    tx_do(
        tx.as_mut(),
        IngestOp::PutSystem(Hl7System {
            id: "sys-zlab1".into(),
            name: "Zed lab LIMS".into(),
            org_id: "lab".into(),
            ods: "ZLAB1".into(),
            msh_application: "LIMS".into(),
            msh_facility: "ZLAB1".into(),
            created: now - 10 * day,
        }),
    )
    .await
    .unwrap();
    tx_do(
        tx.as_mut(),
        IngestOp::PutMessage(message("M1", now - 3 * day)),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    // The lab's result for this person arrived just now (through the API), but the lab's
    // feed has been quiet for three days: its items may be out of date.
    let results = app.get(&cookie, "/residents/p-here/results").await;
    assert_eq!(results.status, 200, "{}", results.text);
    assert!(
        results
            .text
            .contains("May be out of date: its feed has sent nothing since"),
        "{}",
        results.text
    );

    // A message from the feed, for anyone, an hour ago: the feed is alive.
    let mut tx = app.store.begin().await.unwrap();
    tx_do(
        tx.as_mut(),
        IngestOp::PutMessage(message("M2", now - day / 24)),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let results = app.get(&cookie, "/residents/p-here/results").await;
    assert!(
        !results.text.contains("May be out of date"),
        "{}",
        results.text
    );
    let summary = app.get(&cookie, "/residents/p-here").await;
    assert!(summary.text.contains("Where this record comes from"));
    assert!(summary.text.contains("(last message on its feed)"));
}

#[tokio::test]
async fn failed_portal_sign_ins_are_audited_without_what_was_typed() {
    let app = spawn().await;
    let secret = user(&app, "nurse", Role::RegisteredNurse, "home-a", false).await;
    let wrong = app
        .post(
            "",
            "/sign-in",
            &[
                ("username", "nurse"),
                ("password", "not the password"),
                ("totp", "000000"),
            ],
        )
        .await;
    assert_eq!(wrong.status, 401);
    let unknown = app
        .post(
            "",
            "/sign-in",
            &[
                ("username", "typed-into-the-wrong-box"),
                ("password", "not the password"),
                ("totp", "000000"),
            ],
        )
        .await;
    assert_eq!(unknown.status, 401);
    app.sign_in("nurse", &secret).await;

    let nurse_id = app
        .identity
        .directory()
        .user_by_username("nurse")
        .await
        .unwrap()
        .unwrap()
        .id;
    let sign_ins: Vec<_> = app
        .audit()
        .await
        .into_iter()
        .filter(|r| r.channel == Channel::Portal)
        .collect();
    let outcomes: Vec<(AuditAction, AuditOutcome, &str, &str)> = sign_ins
        .iter()
        .map(|r| (r.action, r.outcome, r.rule.as_str(), r.agent.id.as_str()))
        .collect();
    assert_eq!(
        outcomes,
        vec![
            (
                AuditAction::LoginFailed,
                AuditOutcome::Denied,
                "deny-wrong-password",
                nurse_id.as_str()
            ),
            (
                AuditAction::LoginFailed,
                AuditOutcome::Denied,
                "deny-unknown-user",
                carerecord_server::audit::UNKNOWN_USER
            ),
            (
                AuditAction::Login,
                AuditOutcome::Allowed,
                "sign-in",
                nurse_id.as_str()
            ),
        ]
    );
    let trail = format!("{sign_ins:?}");
    assert!(!trail.contains("typed-into-the-wrong-box"));
    assert!(!trail.contains("not the password"));
}

#[tokio::test]
async fn the_privacy_officer_searches_the_audit_by_username() {
    let app = spawn().await;
    let secret = user(&app, "nurse", Role::RegisteredNurse, "home-a", false).await;
    let po_secret = user(&app, "privacy", Role::PrivacyOfficer, "home-a", false).await;
    let cookie = app.sign_in("nurse", &secret).await;
    assert_eq!(app.get(&cookie, "/residents/p-here").await.status, 200);
    let po = app.sign_in("privacy", &po_secret).await;

    let by_name = app.get(&po, "/privacy?user=nurse").await;
    assert_eq!(by_name.status, 200, "{}", by_name.text);
    assert!(by_name.text.contains("Test nurse"), "{}", by_name.text);
    assert!(!by_name.text.contains("There is a problem"));
    // Another user's search finds none of the nurse's entries.
    let officer = app.get(&po, "/privacy?user=privacy").await;
    assert!(!officer.text.contains("Test nurse"), "{}", officer.text);

    let unknown = app.get(&po, "/privacy?user=nobody-by-that-name").await;
    assert_eq!(unknown.status, 400);
    assert!(unknown.text.contains("No such user"), "{}", unknown.text);
    assert!(!unknown.text.contains("No entries match"));
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
