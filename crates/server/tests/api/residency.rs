//! Keeping the resident list true through the API: a care home's record system admits a person
//! by NHS number and date of birth (an EpisodeOfCare), which lets the home's staff see them,
//! and finishes the stay, which stops it; another home's system can do neither for it; every
//! change is in the audit trail.

use carerecord_access::Role;
use carerecord_identity::{NewUser, totp};
use carerecord_store::now_micros;
use serde_json::{Value, json};

use crate::helpers::{NHS, Resp, TestApp, patient, spawn_app};

const SOURCE_TAG: &str = "https://fhir.carerecord.example/CodeSystem/source-organisation";
const PASSWORD: &str = "a long demo password";
/// A synthetic NHS number (999 range) with a valid check digit, and one with a wrong one.
const NHS_NUMBER: &str = "9990000018";
const BAD_CHECK_DIGIT: &str = "9990000019";
const BORN: &str = "1941-03-02";

/// Two homes and one person, known to the record (from their GP) but in neither home's care.
async fn population(app: &TestApp) -> String {
    for (id, ods) in [("org-home-a", "ZHA1"), ("org-home-b", "ZHB1")] {
        let r = app
            .put(
                &format!("Organization/{id}"),
                &json!({"resourceType": "Organization", "id": id, "name": id,
                        "meta": {"tag": [{"system": SOURCE_TAG, "code": "DIR"}]},
                        "type": [{"coding": [{"system": "https://fhir.carerecord.example/CodeSystem/organisation-kind",
                                               "code": "care-home-nursing"}]}],
                        "identifier": [{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": ods}]}),
            )
            .await;
        assert!(r.status == 200 || r.status == 201, "{}", r.text);
    }
    let mut p = patient(NHS_NUMBER, "Moved", "Iris", BORN);
    p["meta"] = json!({"tag": [{"system": SOURCE_TAG, "code": "ZGP1"}]});
    app.create(&p).await
}

/// A person signed in with one role at `org`.
async fn person(app: &TestApp, username: &str, role: Role, org: &str) -> String {
    let created = app
        .identity
        .create_user(NewUser {
            username: username.into(),
            display_name: "Test Person".into(),
            password: Some(PASSWORD.into()),
            grants: vec![(role, org.to_owned())],
            training_valid_until: None,
        })
        .await
        .unwrap();
    let now = u64::try_from(now_micros() / 1_000_000).unwrap();
    let code = totp::code_at(&created.totp_secret, now).unwrap();
    let r = app
        .send(
            app.anonymous
                .post(format!("{}/auth/login", app.origin))
                .json(&json!({"username": username, "password": PASSWORD, "totp": code})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["access_token"].as_str().unwrap().to_owned()
}

async fn get_as(app: &TestApp, token: &str, path: &str) -> Resp {
    app.send(app.anonymous.get(app.url(path)).bearer_auth(token))
        .await
}

async fn post_as(app: &TestApp, token: &str, path: &str, body: &Value) -> Resp {
    app.send(
        app.anonymous
            .post(app.url(path))
            .bearer_auth(token)
            .header("content-type", "application/fhir+json")
            .body(body.to_string()),
    )
    .await
}

async fn put_as(app: &TestApp, token: &str, path: &str, body: &Value) -> Resp {
    app.send(
        app.anonymous
            .put(app.url(path))
            .bearer_auth(token)
            .header("content-type", "application/fhir+json")
            .body(body.to_string()),
    )
    .await
}

/// An admission to `home` naming the person by NHS number and date of birth.
fn admission(home: &str, nhs: &str, born: &str) -> Value {
    json!({
        "resourceType": "EpisodeOfCare",
        "status": "active",
        "patient": {"reference": format!("Patient?identifier={NHS}|{nhs}&birthdate={born}")},
        "managingOrganization": {"reference": format!("Organization/{home}")},
        "period": {"start": "2026-11-01"}
    })
}

fn today() -> String {
    let d = time::OffsetDateTime::now_utc().date();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

#[tokio::test]
async fn a_care_home_system_admits_a_person_so_its_staff_see_them_until_the_stay_is_finished() {
    let app = spawn_app().await;
    let pid = population(&app).await;
    let system_a = app.system_token("home-a-system", "org-home-a").await;
    let nurse_a = person(&app, "rn.a", Role::RegisteredNurse, "org-home-a").await;

    // Not in the home's care yet: neither the system nor the nurse can read them.
    assert_eq!(
        get_as(&app, &nurse_a, &format!("Patient/{pid}"))
            .await
            .status,
        403
    );

    // A wrong date of birth and an unknown number get the same answer, naming no one.
    let wrong_dob = post_as(
        &app,
        &system_a,
        "EpisodeOfCare",
        &admission("org-home-a", NHS_NUMBER, "1941-03-03"),
    )
    .await;
    let unknown = post_as(
        &app,
        &system_a,
        "EpisodeOfCare",
        &admission("org-home-a", "9990000026", BORN),
    )
    .await;
    assert_eq!(
        (wrong_dob.status, unknown.status),
        (422, 422),
        "{}",
        wrong_dob.text
    );
    assert_eq!(wrong_dob.diagnostics(), unknown.diagnostics());
    assert!(
        wrong_dob
            .diagnostics()
            .contains("no person with this NHS number and date of birth")
    );
    assert!(!wrong_dob.text.contains("Iris") && !wrong_dob.text.contains(&pid));
    let bad = post_as(
        &app,
        &system_a,
        "EpisodeOfCare",
        &admission("org-home-a", BAD_CHECK_DIGIT, BORN),
    )
    .await;
    assert_eq!(bad.status, 422, "{}", bad.text);
    assert!(
        bad.diagnostics().contains("valid 10-digit NHS number"),
        "{}",
        bad.text
    );
    // Without the birth date the NHS number alone is not enough.
    let mut no_dob = admission("org-home-a", NHS_NUMBER, BORN);
    no_dob["patient"]["reference"] = json!(format!("Patient?identifier={NHS}|{NHS_NUMBER}"));
    assert_eq!(
        post_as(&app, &system_a, "EpisodeOfCare", &no_dob)
            .await
            .status,
        422
    );
    // A literal reference to someone it cannot see is refused like a read.
    let mut literal = admission("org-home-a", NHS_NUMBER, BORN);
    literal["patient"]["reference"] = json!(format!("Patient/{pid}"));
    assert_eq!(
        post_as(&app, &system_a, "EpisodeOfCare", &literal)
            .await
            .status,
        403
    );
    assert_eq!(
        get_as(&app, &nurse_a, &format!("Patient/{pid}"))
            .await
            .status,
        403
    );

    // The admission.
    let r = post_as(
        &app,
        &system_a,
        "EpisodeOfCare",
        &admission("org-home-a", NHS_NUMBER, BORN),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let eoc = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["patient"]["reference"], format!("Patient/{pid}"));
    assert_eq!(r.body["patient"]["identifier"]["value"], NHS_NUMBER);
    let tags = r.body["meta"]["tag"].to_string();
    assert!(
        tags.contains("ZHA1"),
        "the home is the stay's source: {tags}"
    );

    let seen = get_as(&app, &nurse_a, &format!("Patient/{pid}")).await;
    assert_eq!(seen.status, 200, "{}", seen.text);
    assert_eq!(
        get_as(&app, &system_a, &format!("Patient/{pid}"))
            .await
            .status,
        200
    );

    // Admitting again changes nothing (200, the same stay).
    let again = post_as(
        &app,
        &system_a,
        "EpisodeOfCare",
        &admission("org-home-a", NHS_NUMBER, BORN),
    )
    .await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.body["id"], eoc.as_str());
    assert_eq!(again.body["meta"]["versionId"], "1");

    // A move-out in the future, or before the stay began, is refused.
    let mut stay = r.body.clone();
    stay["status"] = json!("finished");
    stay["period"]["end"] = json!("2999-01-01");
    assert_eq!(
        put_as(&app, &system_a, &format!("EpisodeOfCare/{eoc}"), &stay)
            .await
            .status,
        422
    );
    stay["period"]["end"] = json!("2026-10-01");
    assert_eq!(
        put_as(&app, &system_a, &format!("EpisodeOfCare/{eoc}"), &stay)
            .await
            .status,
        422
    );

    // The move-out: the stay finishes today, and the home no longer sees the person.
    stay["period"]["end"] = json!(today());
    let out = put_as(&app, &system_a, &format!("EpisodeOfCare/{eoc}"), &stay).await;
    assert_eq!(out.status, 200, "{}", out.text);
    assert_eq!(out.body["meta"]["versionId"], "2");
    assert_eq!(
        get_as(&app, &nurse_a, &format!("Patient/{pid}"))
            .await
            .status,
        403
    );
    assert_eq!(
        get_as(&app, &system_a, &format!("Patient/{pid}"))
            .await
            .status,
        403
    );
    // The home still sees its own record of the stay, and its history keeps every version.
    let history = get_as(&app, &system_a, &format!("EpisodeOfCare/{eoc}/_history")).await;
    assert_eq!(history.status, 200, "{}", history.text);
    assert_eq!(history.body["entry"].as_array().map(Vec::len), Some(2));

    // Undoing the move-out reopens the stay.
    let mut back = out.body.clone();
    back["status"] = json!("active");
    back["period"].as_object_mut().unwrap().remove("end");
    let r = put_as(&app, &system_a, &format!("EpisodeOfCare/{eoc}"), &back).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        get_as(&app, &nurse_a, &format!("Patient/{pid}"))
            .await
            .status,
        200
    );

    // The audit trail holds each change, with the person, as writes by the system.
    let entries = app.store.audit_entries(0, 1_000).await.unwrap();
    let rules: Vec<&str> = entries
        .iter()
        .filter(|e| e.record.agent.id == "home-a-system" && e.record.patient_ids.contains(&pid))
        .map(|e| e.record.rule.as_str())
        .collect();
    for rule in [
        "residency-moved-in",
        "residency-moved-out",
        "residency-move-out-undone",
    ] {
        assert!(rules.contains(&rule), "{rule} missing from {rules:?}");
    }
    let moved_in = entries
        .iter()
        .find(|e| e.record.rule == "residency-moved-in")
        .unwrap();
    assert_eq!(moved_in.record.purpose_of_use.as_deref(), Some("TREAT"));
    assert!(
        moved_in
            .record
            .resources
            .iter()
            .any(|r| r.starts_with(&format!("EpisodeOfCare/{eoc}/_history/1")))
    );
}

#[tokio::test]
async fn a_system_of_one_home_cannot_admit_to_or_discharge_from_another() {
    let app = spawn_app().await;
    let pid = population(&app).await;
    let system_a = app.system_token("home-a-system", "org-home-a").await;
    let system_b = app.system_token("home-b-system", "org-home-b").await;
    let nurse_b = person(&app, "rn.b", Role::RegisteredNurse, "org-home-b").await;

    // Home A's system cannot start a stay at home B.
    let r = post_as(
        &app,
        &system_a,
        "EpisodeOfCare",
        &admission("org-home-b", NHS_NUMBER, BORN),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(r.body["resourceType"], "OperationOutcome");
    assert_eq!(
        get_as(&app, &nurse_b, &format!("Patient/{pid}"))
            .await
            .status,
        403
    );
    // Nor by a Bundle.
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [{
        "resource": admission("org-home-b", NHS_NUMBER, BORN),
        "request": {"method": "POST", "url": "EpisodeOfCare"}}]});
    let r = post_as(&app, &system_a, "", &bundle).await;
    assert!(r.status >= 400, "{}", r.text);
    assert_eq!(
        get_as(&app, &nurse_b, &format!("Patient/{pid}"))
            .await
            .status,
        403
    );

    // Home B admits them; home A cannot finish (or re-point) B's stay.
    let r = post_as(
        &app,
        &system_b,
        "EpisodeOfCare",
        &admission("org-home-b", NHS_NUMBER, BORN),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let eoc = r.body["id"].as_str().unwrap().to_owned();
    let mut finished = r.body.clone();
    finished["status"] = json!("finished");
    finished["period"]["end"] = json!(today());
    let r = put_as(&app, &system_a, &format!("EpisodeOfCare/{eoc}"), &finished).await;
    assert_eq!(r.status, 403, "{}", r.text);
    let mut taken = finished.clone();
    taken["status"] = json!("active");
    taken["managingOrganization"]["reference"] = json!("Organization/org-home-a");
    assert_eq!(
        put_as(&app, &system_a, &format!("EpisodeOfCare/{eoc}"), &taken)
            .await
            .status,
        403
    );
    assert_eq!(
        app.send(
            app.anonymous
                .delete(app.url(&format!("EpisodeOfCare/{eoc}")))
                .bearer_auth(&system_a)
        )
        .await
        .status
            / 100,
        4
    );
    // The stay is untouched and home B still cares for them.
    assert_eq!(
        get_as(&app, &nurse_b, &format!("Patient/{pid}"))
            .await
            .status,
        200
    );
    let current = get_as(&app, &system_b, &format!("EpisodeOfCare/{eoc}")).await;
    assert_eq!(current.body["meta"]["versionId"], "1");
    assert_eq!(current.body["status"], "active");
    // The refusals are audited as denials of home A's system.
    let entries = app.store.audit_entries(0, 1_000).await.unwrap();
    assert!(entries.iter().any(
        |e| e.record.agent.id == "home-a-system" && e.record.rule == "deny-other-organisation"
    ));
}

#[tokio::test]
async fn only_managers_and_systems_record_moves_and_a_manager_may_by_api() {
    let app = spawn_app().await;
    let pid = population(&app).await;
    let carer = person(&app, "cw.a", Role::CareWorker, "org-home-a").await;
    let nurse = person(&app, "rn.a", Role::RegisteredNurse, "org-home-a").await;
    let manager = person(&app, "cm.a", Role::CareHomeManager, "org-home-a").await;
    for who in [&carer, &nurse] {
        let r = post_as(
            &app,
            who,
            "EpisodeOfCare",
            &admission("org-home-a", NHS_NUMBER, BORN),
        )
        .await;
        assert_eq!(r.status, 403, "{}", r.text);
    }
    let r = post_as(
        &app,
        &manager,
        "EpisodeOfCare",
        &admission("org-home-a", NHS_NUMBER, BORN),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        get_as(&app, &nurse, &format!("Patient/{pid}")).await.status,
        200
    );
    // A manager's right to write stops at EpisodeOfCare.
    let obs = json!({"resourceType": "Observation", "status": "final",
        "code": {"text": "Weight"}, "subject": {"reference": format!("Patient/{pid}")}});
    assert_eq!(
        post_as(&app, &manager, "Observation", &obs).await.status,
        403
    );
    // A mistaken admission is withdrawn by marking it entered-in-error.
    let mut wrong = r.body.clone();
    wrong["status"] = json!("entered-in-error");
    let eoc = r.body["id"].as_str().unwrap();
    let r = put_as(&app, &manager, &format!("EpisodeOfCare/{eoc}"), &wrong).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        get_as(&app, &nurse, &format!("Patient/{pid}")).await.status,
        403
    );
}
