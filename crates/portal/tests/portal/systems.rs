//! The programme administrators' pages for registered systems and SMART apps: who may see
//! them, registering whole or not at all, and every view and change in the audit trail.

use carerecord_access::Role;
use carerecord_store::{AuditAction, AuditOutcome, Channel};

use super::common::{App, user};
use super::spawn;

async fn admin(app: &App) -> String {
    let secret = user(app, "admin", Role::ProgrammeAdmin, "programme", false).await;
    app.sign_in("admin", &secret).await
}

async fn admin_entries(app: &App) -> Vec<carerecord_store::AuditRecord> {
    app.audit()
        .await
        .into_iter()
        .filter(|r| r.action == AuditAction::Admin && r.channel == Channel::Portal)
        .collect()
}

#[tokio::test]
async fn only_programme_administrators_see_the_systems_pages_and_refusals_are_audited() {
    let app = spawn().await;
    let nurse_secret = user(&app, "nurse", Role::RegisteredNurse, "home-a", false).await;
    let nurse = app.sign_in("nurse", &nurse_secret).await;
    for path in ["/systems", "/systems/new-system", "/systems/new-app"] {
        let page = app.get(&nurse, path).await;
        assert_eq!(page.status, 403, "{path}: {}", page.text);
        assert!(page.text.contains("You cannot see this page"), "{path}");
    }
    let refused = app.post(&nurse, "/systems/falls/disable", &[]).await;
    assert_eq!(refused.status, 403);
    let residents = app.get(&nurse, "/").await;
    assert!(
        !residents.text.contains("href=\"/systems\""),
        "no link for a nurse"
    );
    let entries = admin_entries(&app).await;
    assert!(
        entries
            .iter()
            .any(|r| r.rule == "deny-client-list-not-programme-admin"
                && r.outcome == AuditOutcome::Denied)
    );
    assert!(
        entries
            .iter()
            .any(|r| r.rule == "deny-client-disable-not-programme-admin")
    );

    let admin = admin(&app).await;
    let list = app.get(&admin, "/systems").await;
    assert_eq!(list.status, 200, "{}", list.text);
    assert!(
        list.text.contains("href=\"/systems\""),
        "the header links the page"
    );
    assert!(
        list.text.contains("portal-service"),
        "the harness's service client is listed"
    );
    assert!(
        admin_entries(&app)
            .await
            .iter()
            .any(|r| r.rule == "client-list" && r.outcome == AuditOutcome::Allowed)
    );
}

#[tokio::test]
async fn an_administrator_registers_a_system_with_a_jwks_url_and_an_app_and_sees_them_listed() {
    let app = spawn().await;
    let admin = admin(&app).await;
    let form = app.get(&admin, "/systems/new-system").await;
    assert_eq!(form.status, 200);
    assert!(form.text.contains("JWKS URL"));
    let done = app
        .post(
            &admin,
            "/systems/new-system",
            &[
                ("client_id", "sunrise-ehr"),
                ("organisations", "home-a\nhome-b"),
                ("launch_roles", "care-worker"),
                ("launch_roles", "registered-nurse"),
                ("scope", "system/Patient.rs system/Observation.rs"),
                ("key_source", "uri"),
                ("jwks_uri", "https://sunrise.example/.well-known/jwks.json"),
            ],
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.text);
    assert!(done.text.contains("System registered"));
    assert!(
        !done.text.contains("Client secret"),
        "no secret was asked for"
    );

    let app_done = app
        .post(
            &admin,
            "/systems/new-app",
            &[
                ("client_id", "falls-risk"),
                ("name", "Falls Risk"),
                (
                    "redirect_uris",
                    "https://falls.example/cb\nhttps://falls.example/cb2",
                ),
                ("launch_url", "https://falls.example/launch"),
                ("scopes", "launch patient/*.rs openid fhirUser"),
                ("confidential", "confidential"),
                ("key_source", "secret"),
            ],
        )
        .await;
    assert_eq!(app_done.status, 200, "{}", app_done.text);
    assert!(app_done.text.contains("Client secret"), "shown once");

    let clients = app.identity.registered_clients().await.unwrap();
    let sys = clients
        .iter()
        .find(|c| c.client.client_id == "sunrise-ehr")
        .unwrap();
    assert_eq!(sys.client.organisation_id, "home-a");
    assert_eq!(
        sys.jwks_uri.as_deref(),
        Some("https://sunrise.example/.well-known/jwks.json")
    );
    assert_eq!(sys.launch.len(), 2);
    assert_eq!(sys.launch[1].organisation_id, "home-b");
    assert_eq!(sys.launch[0].roles, ["care-worker", "registered-nurse"]);
    let falls = clients
        .iter()
        .find(|c| c.client.client_id == "falls-risk")
        .unwrap();
    let a = falls.app.as_ref().unwrap();
    assert!(a.confidential && falls.client.secret_hash.is_some());
    assert_eq!(a.redirect_uris.len(), 2);

    let list = app.get(&admin, "/systems").await;
    for text in [
        "sunrise-ehr",
        "JWKS URL https://sunrise.example/.well-known/jwks.json",
        "Launches into home-b as care-worker",
        "system/Patient.rs",
        "falls-risk",
        "SMART app (confidential)",
        "Redirect: https://falls.example/cb2",
        "Launch: https://falls.example/launch",
    ] {
        assert!(list.text.contains(text), "{text} not listed: {}", list.text);
    }
    let entries = admin_entries(&app).await;
    for id in ["sunrise-ehr", "falls-risk"] {
        assert!(
            entries.iter().any(|r| r.rule == "client-register"
                && r.query.as_deref() == Some(&*format!("client_id={id}"))),
            "{id} registration audited"
        );
    }

    // Disabling: asked first (the list links to the question, which changes nothing), then
    // once, audited; the list says so.
    let list = app.get(&admin, "/systems").await;
    assert!(
        list.text.contains("href=\"/systems/sunrise-ehr/disable\""),
        "{}",
        list.text
    );
    let ask = app.get(&admin, "/systems/sunrise-ehr/disable").await;
    assert_eq!(ask.status, 200, "{}", ask.text);
    assert!(ask.text.contains("Disable sunrise-ehr?"), "{}", ask.text);
    assert!(ask.text.contains("action=\"/systems/sunrise-ehr/disable\""));
    assert!(
        !app.identity
            .directory()
            .client("sunrise-ehr")
            .await
            .unwrap()
            .unwrap()
            .disabled,
        "asking disables nothing"
    );
    assert_eq!(app.get(&admin, "/systems/nobody/disable").await.status, 404);
    let off = app.post(&admin, "/systems/sunrise-ehr/disable", &[]).await;
    assert_eq!(off.status, 303, "{}", off.text);
    assert!(
        app.identity
            .directory()
            .client("sunrise-ehr")
            .await
            .unwrap()
            .unwrap()
            .disabled
    );
    let again = app.post(&admin, "/systems/sunrise-ehr/disable", &[]).await;
    assert_eq!(again.status, 400);
    assert_eq!(
        app.get(&admin, "/systems/sunrise-ehr/disable").await.status,
        400,
        "nothing to confirm once disabled"
    );
    let unknown = app.post(&admin, "/systems/nobody/disable", &[]).await;
    assert_eq!(unknown.status, 404);
    assert!(
        admin_entries(&app)
            .await
            .iter()
            .any(|r| r.rule == "client-disable"
                && r.query.as_deref() == Some("client_id=sunrise-ehr"))
    );
}

#[tokio::test]
async fn a_registration_with_problems_writes_nothing_and_names_each_problem() {
    let app = spawn().await;
    let admin = admin(&app).await;
    let before = app.identity.registered_clients().await.unwrap().len();
    let page = app
        .post(
            &admin,
            "/systems/new-system",
            &[
                ("client_id", "has spaces"),
                ("organisations", "home-a\nno-such-home"),
                ("launch_roles", "care-worker"),
                ("scope", "patient/*.rs"),
                ("key_source", "uri"),
                ("jwks_uri", "http://sunrise.example/jwks.json"),
            ],
        )
        .await;
    assert_eq!(page.status, 400, "{}", page.text);
    assert!(page.text.contains("nhsuk-error-summary"));
    for (anchor, words) in [
        ("#client_id", "Enter a client id"),
        ("#organisations", "There is no organisation no-such-home"),
        ("#scope", "at least one system/ scope"),
        ("#jwks_uri", "must use https://"),
    ] {
        assert!(page.text.contains(anchor), "{anchor}");
        assert!(page.text.contains(words), "{words}: {}", page.text);
    }
    // What was typed comes back.
    assert!(page.text.contains("no-such-home"));

    // A taken client id is refused whole: the first registration stays as it was.
    let taken = app
        .post(
            &admin,
            "/systems/new-app",
            &[
                ("client_id", "portal-service"),
                ("name", "Clash"),
                ("redirect_uris", "https://clash.example/cb"),
                ("scopes", "launch/patient patient/*.rs"),
                ("confidential", "public"),
            ],
        )
        .await;
    assert_eq!(taken.status, 400, "{}", taken.text);
    assert!(taken.text.contains("The client id portal-service is taken"));
    let bad_app = app
        .post(
            &admin,
            "/systems/new-app",
            &[
                ("client_id", "bad-app"),
                ("name", ""),
                ("redirect_uris", "https://bad.example/cb#frag"),
                ("scopes", "system/Patient.rs"),
                ("confidential", "confidential"),
                ("key_source", "document"),
                ("jwks", "{\"keys\": \"not keys\"}"),
            ],
        )
        .await;
    assert_eq!(bad_app.status, 400);
    for anchor in ["#name", "#redirect_uris", "#scopes", "#jwks"] {
        assert!(bad_app.text.contains(anchor), "{anchor}: {}", bad_app.text);
    }
    assert_eq!(
        app.identity.registered_clients().await.unwrap().len(),
        before
    );
    assert!(
        app.identity
            .directory()
            .smart_app("portal-service")
            .await
            .unwrap()
            .is_none()
    );

    // A form from another site is refused before it is read.
    let forged = app
        .page(
            app.http
                .post(app.url("/systems/new-system"))
                .header("cookie", &admin)
                .header("origin", "https://elsewhere.example")
                .form(&[("client_id", "forged")]),
        )
        .await;
    assert_eq!(forged.status, 403);
    assert_eq!(
        app.identity.registered_clients().await.unwrap().len(),
        before
    );
}
