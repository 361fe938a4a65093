//! The access policy through the HTTP API, as people signed in with their roles meet it: who
//! sees whom, the restricted view, sensitive items withheld (and said so), denials that do not
//! reveal whether a record exists, break-glass, and the audit trail only privacy officers read.

use carerecord_access::Role;
use carerecord_identity::{NewUser, totp};
use carerecord_store::now_micros;
use serde_json::{Value, json};

use crate::helpers::{Resp, TestApp, spawn_app};

const PASSWORD: &str = "a long demo password";
const SOURCE_TAG: &str = "https://fhir.carerecord.example/CodeSystem/source-organisation";

fn meta(source: &str) -> Value {
    json!({"tag": [{"system": SOURCE_TAG, "code": source}]})
}

async fn put(app: &TestApp, mut body: Value, source: &str) {
    if body.get("meta").is_none() {
        body["meta"] = meta(source);
    }
    let path = format!(
        "{}/{}",
        body["resourceType"].as_str().unwrap(),
        body["id"].as_str().unwrap()
    );
    let r = app.put(&path, &body).await;
    assert!(r.status == 200 || r.status == 201, "{path}: {}", r.text);
}

fn section(code: &str, title: &str) -> Value {
    json!({"title": title, "code": {"coding": [{"system": "http://snomed.info/sct", "code": code}]},
           "text": {"status": "generated", "div": format!("<div xmlns=\"http://www.w3.org/1999/xhtml\">{title}</div>")}})
}

/// Two homes, a resident of each, and the resident of home A's record.
async fn population(app: &TestApp) {
    for (id, ods, name) in [
        ("org-home-a", "HA1", "Home A"),
        ("org-home-b", "HB1", "Home B"),
    ] {
        put(
            app,
            json!({"resourceType": "Organization", "id": id, "name": name,
                   "identifier": [{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": ods}]}),
            "DIR",
        )
        .await;
    }
    for (p, home, ods) in [
        ("p-here", "org-home-a", "HA1"),
        ("p-other", "org-home-b", "HB1"),
    ] {
        put(
            app,
            json!({"resourceType": "Patient", "id": p, "name": [{"family": "Access", "given": [p]}]}),
            "GPG",
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
                   "code": {"coding": [{"system": "http://loinc.org", "code": "2823-3"}]},
                   "subject": {"reference": format!("Patient/{p}")},
                   "valueQuantity": {"value": 4.2, "unit": "mmol/L"}}),
            "LAB1",
        )
        .await;
        for (n, date) in [(1, "2026-01-10"), (2, "2026-06-20")] {
            put(
                app,
                json!({"resourceType": "Composition", "id": format!("{p}-ds{n}"), "status": "final",
                       "type": {"coding": [{"system": "http://snomed.info/sct", "code": "373942005"}]},
                       "subject": {"reference": format!("Patient/{p}")}, "date": date,
                       "author": [{"display": "Dr Test"}], "title": "Discharge summary",
                       "section": [section("887161000000102", "Diagnoses"),
                                   section("887201000000105", "Plan and requested actions"),
                                   section("933361000000108", "Medications and medical devices")]}),
                "HOSH",
            )
            .await;
        }
    }
    put(
        app,
        json!({"resourceType": "Condition", "id": "p-here-sensitive",
               "meta": {"tag": [{"system": SOURCE_TAG, "code": "GUM1"}],
                        "security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "STD"}]},
               "code": {"coding": [{"system": "http://snomed.info/sct", "code": "8098009"}]},
               "subject": {"reference": "Patient/p-here"}}),
        "GUM1",
    )
    .await;
    put(
        app,
        json!({"resourceType": "Condition", "id": "p-here-problem",
               "code": {"coding": [{"system": "http://snomed.info/sct", "code": "52448006"}]},
               "subject": {"reference": "Patient/p-here"}}),
        "GPG",
    )
    .await;
}

/// Creates a person with one role at `org` and signs them in; returns their bearer token.
async fn signed_in(app: &TestApp, username: &str, role: Role, org: &str) -> String {
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

fn match_ids(bundle: &Value) -> Vec<String> {
    bundle["entry"]
        .as_array()
        .map(|es| {
            es.iter()
                .filter(|e| e["search"]["mode"] == "match")
                .filter_map(|e| e["resource"]["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn outcome_text(bundle: &Value) -> String {
    bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["search"]["mode"] == "outcome")
        .flat_map(|e| {
            e["resource"]["issue"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|i| i["diagnostics"].as_str().map(str::to_owned))
        .collect::<Vec<_>>()
        .join(" | ")
}

#[tokio::test]
async fn a_nurse_sees_her_residents_not_others_and_is_told_what_is_withheld() {
    let app = spawn_app().await;
    population(&app).await;
    let nurse = signed_in(&app, "rn.a", Role::RegisteredNurse, "org-home-a").await;

    let r = get_as(&app, &nurse, "Observation?subject=Patient/p-here").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(match_ids(&r.body), vec!["p-here-lab".to_owned()]);

    let r = get_as(&app, &nurse, "Condition?subject=Patient/p-here").await;
    assert_eq!(match_ids(&r.body), vec!["p-here-problem".to_owned()]);
    assert!(
        outcome_text(&r.body).contains("1 item is withheld"),
        "{}",
        r.text
    );
    assert!(
        !r.text.contains("8098009"),
        "the withheld item's code leaked"
    );

    // Someone else's resident and an id that does not exist get the same answer.
    let other = get_as(&app, &nurse, "Observation/p-other-lab").await;
    let missing = get_as(&app, &nurse, "Observation/no-such-thing").await;
    assert_eq!((other.status, missing.status), (403, 403));
    assert_eq!(other.diagnostics(), missing.diagnostics());
    assert!(
        other.diagnostics().contains("not available to you"),
        "{}",
        other.text
    );
    let r = get_as(&app, &nurse, "Patient/p-other/$everything").await;
    assert_eq!(r.status, 403);
    let r = get_as(&app, &nurse, "Observation?_total=accurate").await;
    assert_eq!(r.body["total"], 1, "{}", r.text);
}

#[tokio::test]
async fn a_care_worker_gets_the_restricted_view() {
    let app = spawn_app().await;
    population(&app).await;
    let carer = signed_in(&app, "cw.a", Role::CareWorker, "org-home-a").await;

    let r = get_as(&app, &carer, "Observation?subject=Patient/p-here").await;
    assert_eq!(r.status, 403);
    assert!(
        r.diagnostics()
            .contains("does not include this kind of information"),
        "{}",
        r.text
    );
    let r = get_as(&app, &carer, "Composition?subject=Patient/p-here").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(match_ids(&r.body), vec!["p-here-ds2".to_owned()]);
    let composition = &r.body["entry"][0]["resource"];
    let titles: Vec<&str> = composition["section"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["title"].as_str())
        .collect();
    assert_eq!(
        titles,
        vec![
            "Plan and requested actions",
            "Medications and medical devices"
        ]
    );
    assert_eq!(
        get_as(&app, &carer, "Composition/p-here-ds1").await.status,
        403
    );
}

#[tokio::test]
async fn break_glass_opens_one_record_for_a_while_and_is_in_the_audit_trail() {
    let app = spawn_app().await;
    population(&app).await;
    let nurse = signed_in(&app, "rn.a", Role::RegisteredNurse, "org-home-a").await;
    let officer = signed_in(&app, "po.a", Role::PrivacyOfficer, "org-home-a").await;

    assert_eq!(
        get_as(&app, &nurse, "Observation/p-other-lab").await.status,
        403
    );
    let params = json!({"resourceType": "Parameters", "parameter": [
        {"name": "reason", "valueCode": "emergency"},
        {"name": "text", "valueString": "Found unwell at a day centre; no one else available"}]});
    let refused = app
        .send(
            app.anonymous
                .post(app.url("Patient/p-other/$break-glass"))
                .bearer_auth(&nurse)
                .json(&json!({"resourceType": "Parameters", "parameter": [
                    {"name": "reason", "valueCode": "emergency"}]})),
        )
        .await;
    assert_eq!(refused.status, 400, "a reason in words is required");
    let r = app
        .send(
            app.anonymous
                .post(app.url("Patient/p-other/$break-glass"))
                .bearer_auth(&nurse)
                .json(&params),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        get_as(&app, &nurse, "Observation/p-other-lab").await.status,
        200
    );

    // The privacy officer sees the break-glass and the earlier denial; the nurse may not look.
    assert_eq!(
        get_as(&app, &nurse, "AuditEvent?patient=p-other")
            .await
            .status,
        403
    );
    let r = get_as(&app, &officer, "AuditEvent?patient=p-other&_count=50").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let text = r.text.clone();
    assert!(text.contains("break-glass"), "{text}");
    assert!(text.contains("Found unwell at a day centre"), "{text}");
    let denied = get_as(&app, &officer, "AuditEvent?patient=p-other&outcome=4").await;
    assert!(
        denied.body["entry"]
            .as_array()
            .is_some_and(|e| !e.is_empty()),
        "the refused read is in the trail: {}",
        denied.text
    );
    // A privacy officer sees audit, not records.
    assert_eq!(
        get_as(&app, &officer, "Observation/p-here-lab")
            .await
            .status,
        403
    );

    // Each organisation reviews its own share: home B's officer sees the break-glass into its
    // resident's record by home A's nurse, but nothing about home A's resident.
    let officer_b = signed_in(&app, "po.b", Role::PrivacyOfficer, "org-home-b").await;
    let r = get_as(
        &app,
        &officer_b,
        "AuditEvent?patient=p-other&subtype=break-glass",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let seq = r.body["entry"][0]["resource"]["id"]
        .as_str()
        .expect("home B sees the break-glass into its resident's record")
        .to_owned();
    assert_eq!(
        get_as(&app, &nurse, "Observation/p-here-lab").await.status,
        200
    );
    let r = get_as(&app, &officer_b, "AuditEvent?patient=p-here").await;
    assert!(
        r.body["entry"].is_null(),
        "home B saw home A's resident: {}",
        r.text
    );
    let reads = get_as(&app, &officer, "AuditEvent?patient=p-here&subtype=read").await;
    let read_seq = reads.body["entry"][0]["resource"]["id"]
        .as_str()
        .expect("home A sees its nurse's read")
        .to_owned();
    assert_eq!(
        get_as(&app, &officer_b, &format!("AuditEvent/{read_seq}"))
            .await
            .status,
        404
    );
    assert_eq!(
        get_as(&app, &officer_b, &format!("AuditEvent/{seq}"))
            .await
            .status,
        200
    );
}

fn source_of(resource: &Value) -> Vec<String> {
    resource["meta"]["tag"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["system"] == SOURCE_TAG)
        .filter_map(|t| t["code"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn a_system_writes_as_its_own_organisation_whatever_the_body_claims() {
    let app = spawn_app().await;
    population(&app).await;
    let feed = app.system_token("home-b-system", "org-home-b").await;
    let claimed = json!({"resourceType": "Observation", "id": "claimed-source", "status": "final",
        "meta": {"tag": [{"system": SOURCE_TAG, "code": "HA1"}]},
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": "Patient/p-here"}});
    let r = app
        .send(
            app.anonymous
                .put(app.url("Observation/claimed-source"))
                .bearer_auth(&feed)
                .json(&claimed),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [{
        "fullUrl": "urn:uuid:7d3c2f0e-2a8b-4c55-9d5e-0c1f3e9b8a11",
        "resource": {"resourceType": "Observation", "status": "final",
            "meta": {"tag": [{"system": SOURCE_TAG, "code": "HA1"}]},
            "code": {"coding": [{"system": "http://loinc.org", "code": "8310-5"}]},
            "subject": {"reference": "Patient/p-here"}},
        "request": {"method": "POST", "url": "Observation"}}]});
    let r = app
        .send(
            app.anonymous
                .post(app.url(""))
                .bearer_auth(&feed)
                .json(&bundle),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // Read back as carerecord's service identity: both carry home B as their source.
    let one = app.get("Observation/claimed-source").await;
    assert_eq!(source_of(&one.body), vec!["HB1".to_owned()]);
    let found = app.get("Observation?code=http://loinc.org|8310-5").await;
    let created = &found.body["entry"][0]["resource"];
    assert_eq!(source_of(created), vec!["HB1".to_owned()], "{}", found.text);
    // Home B's system has no relationship with p-here, yet sees what it wrote: the source rule.
    let r = app
        .send(
            app.anonymous
                .get(app.url("Observation/claimed-source"))
                .bearer_auth(&feed),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}
