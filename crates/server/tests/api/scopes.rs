//! SMART scopes narrowing the access policy through the HTTP API: Backend Services tokens of
//! care home systems (`system/…`, by client credentials at the token endpoint), and tokens of
//! people carrying `user/…` or `patient/…` grants (made here through the directory, as the
//! authorisation-code flow would store them). Scopes only narrow: what the policy refuses stays
//! refused, and what it allows is cut down to the types, interactions and patient granted.

use carerecord_access::{Principal, PrincipalId, Role, SmartGrant};
use carerecord_identity::{NewClient, bearer};
use carerecord_store::{AuditFilter, TokenRecord, now_micros};
use serde_json::{Value, json};

use crate::helpers::{Resp, TestApp, spawn_app};

const SOURCE_TAG: &str = "https://fhir.carerecord.example/CodeSystem/source-organisation";
const CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";

async fn put(app: &TestApp, mut body: Value, source: &str) {
    body["meta"] = json!({"tag": [{"system": SOURCE_TAG, "code": source}]});
    let path = format!(
        "{}/{}",
        body["resourceType"].as_str().unwrap(),
        body["id"].as_str().unwrap()
    );
    let r = app.put(&path, &body).await;
    assert!(r.status == 200 || r.status == 201, "{path}: {}", r.text);
}

/// Two care homes; residents `p-x` and `p-y` at home A, `p-b` at home B; each with a lab
/// result, a vital sign and a problem.
async fn population(app: &TestApp) {
    for (id, ods) in [("org-home-a", "HA1"), ("org-home-b", "HB1")] {
        put(
            app,
            json!({"resourceType": "Organization", "id": id, "name": id,
                   "identifier": [{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": ods}]}),
            "DIR",
        )
        .await;
    }
    for (p, home, ods) in [
        ("p-x", "org-home-a", "HA1"),
        ("p-y", "org-home-a", "HA1"),
        ("p-b", "org-home-b", "HB1"),
    ] {
        put(
            app,
            json!({"resourceType": "Patient", "id": p, "name": [{"family": "Scopes", "given": [p]}]}),
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
        for (kind, code) in [("lab", "laboratory"), ("vital", "vital-signs")] {
            put(
                app,
                json!({"resourceType": "Observation", "id": format!("{p}-{kind}"), "status": "final",
                       "category": [{"coding": [{"system": CATEGORY, "code": code}]}],
                       "code": {"coding": [{"system": "http://loinc.org", "code": "2823-3"}]},
                       "subject": {"reference": format!("Patient/{p}")},
                       "valueQuantity": {"value": 4.2, "unit": "mmol/L"}}),
                "LAB1",
            )
            .await;
        }
        put(
            app,
            json!({"resourceType": "Condition", "id": format!("{p}-problem"),
                   "code": {"coding": [{"system": "http://snomed.info/sct", "code": "52448006"}]},
                   "subject": {"reference": format!("Patient/{p}")}}),
            "GPG",
        )
        .await;
    }
}

/// A token for a person (a registered nurse at home A) carrying a SMART grant, stored through
/// the directory exactly as an authorisation-code exchange would store it.
async fn person_token(app: &TestApp, scope: &str, patient: Option<&str>) -> String {
    token_as(app, Role::RegisteredNurse, scope, patient).await
}

/// [`person_token`] for someone of home A in `role`.
async fn token_as(app: &TestApp, role: Role, scope: &str, patient: Option<&str>) -> String {
    let principal = Principal {
        id: PrincipalId::User("rn-a".into()),
        name: "Test Nurse".into(),
        role,
        organisation_id: "org-home-a".into(),
        organisation_ods: "HA1".into(),
        training_valid_until: Some(now_micros() + 86_400_000_000),
        smart: Some(SmartGrant {
            client_id: "test-app".into(),
            scope: scope.into(),
            patient: patient.map(str::to_owned),
        }),
    };
    let token = bearer::new_token().unwrap();
    let now = now_micros();
    app.identity
        .directory()
        .create_token(&TokenRecord {
            token_hash: bearer::digest(&token),
            subject: "rn-a".into(),
            principal: serde_json::to_string(&principal).unwrap(),
            created: now,
            expires_at: now + 3_600_000_000,
            last_used: now,
            revoked: false,
        })
        .await
        .unwrap();
    token
}

/// Registers a care home system of home A (optionally with registered scopes) and asks the
/// token endpoint for a token with `scope` (none when `None`).
async fn system_token(app: &TestApp, registered: Option<&str>, scope: Option<&str>) -> Resp {
    let client = app
        .identity
        .create_client(NewClient {
            client_id: "home-a-system".into(),
            role: Role::System,
            organisation_id: "org-home-a".into(),
            secret: true,
            public_key: None,
        })
        .await
        .unwrap();
    if let Some(r) = registered {
        app.identity
            .set_client_scope("home-a-system", r)
            .await
            .unwrap();
    }
    let mut form = vec![("grant_type", "client_credentials")];
    if let Some(s) = scope {
        form.push(("scope", s));
    }
    app.send(
        app.anonymous
            .post(format!("{}/auth/token", app.origin))
            .basic_auth("home-a-system", client.secret.as_deref())
            .form(&form),
    )
    .await
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

fn ids(bundle: &Value, mode: &str) -> Vec<String> {
    let mut v: Vec<String> = bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["search"]["mode"] == mode)
        .filter_map(|e| e["resource"]["id"].as_str().map(str::to_owned))
        .collect();
    v.sort();
    v
}

fn new_observation(patient: &str) -> Value {
    json!({"resourceType": "Observation", "status": "final",
           "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
           "subject": {"reference": format!("Patient/{patient}")},
           "valueQuantity": {"value": 72, "unit": "/min"}})
}

/// Entries audited as refused by the scopes.
async fn scope_refusals(app: &TestApp) -> Vec<carerecord_store::AuditRecord> {
    app.store
        .audit_search(
            &AuditFilter {
                rule: Some("deny-scope-not-granted".into()),
                ..AuditFilter::default()
            },
            100,
            None,
        )
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| e.record)
        .collect()
}

#[tokio::test]
async fn a_home_a_system_with_system_read_scopes_cannot_read_or_search_home_b_residents() {
    let app = spawn_app().await;
    population(&app).await;
    let r = system_token(&app, None, Some("system/*.rs")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["scope"], "system/*.rs");
    let token = r.body["access_token"].as_str().unwrap().to_owned();

    assert_eq!(get_as(&app, &token, "Patient/p-x").await.status, 200);
    let other = get_as(&app, &token, "Patient/p-b").await;
    assert_eq!(other.status, 403, "{}", other.text);
    assert_eq!(
        get_as(&app, &token, "Observation/p-b-lab").await.status,
        403
    );

    let r = get_as(&app, &token, "Patient").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(ids(&r.body, "match"), vec!["p-x", "p-y"]);
    let r = get_as(&app, &token, "Observation?subject=Patient/p-b").await;
    assert_eq!(ids(&r.body, "match"), Vec::<String>::new());
    let r = get_as(&app, &token, "Patient/p-b/$everything").await;
    assert_eq!(r.status, 403);

    // Read scopes: nothing may be written, though the policy lets a system write.
    let r = post_as(&app, &token, "Observation", &new_observation("p-x")).await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(
        r.diagnostics().contains("system/Observation.c"),
        "{}",
        r.diagnostics()
    );
    let refusals = scope_refusals(&app).await;
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert_eq!(refusals[0].agent.id, "home-a-system");
}

#[tokio::test]
async fn system_observation_rs_cannot_read_a_patient_or_create_anything() {
    let app = spawn_app().await;
    population(&app).await;
    // Registered for Observation only; asking for no scope gets the registered ones.
    let r = system_token(&app, Some("system/Observation.rs"), None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["scope"], "system/Observation.rs");
    let token = r.body["access_token"].as_str().unwrap().to_owned();

    assert_eq!(
        get_as(&app, &token, "Observation/p-x-lab").await.status,
        200
    );
    let r = get_as(&app, &token, "Patient/p-x").await;
    assert_eq!(r.status, 403);
    assert!(
        r.diagnostics().contains("system/Patient.r"),
        "{}",
        r.diagnostics()
    );
    assert_eq!(get_as(&app, &token, "Patient").await.status, 403);
    assert_eq!(
        get_as(&app, &token, "Condition/p-x-problem").await.status,
        403
    );
    assert_eq!(
        get_as(&app, &token, "Patient/p-x/$everything").await.status,
        403
    );

    // Includes of a type outside the scopes are left out by the query.
    let r = get_as(
        &app,
        &token,
        "Observation?subject=Patient/p-x&_include=Observation:subject",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(ids(&r.body, "match"), vec!["p-x-lab", "p-x-vital"]);
    assert_eq!(ids(&r.body, "include"), Vec::<String>::new());

    // Nothing may be created: not on its own, not in a transaction, not in a batch.
    let r = post_as(&app, &token, "Observation", &new_observation("p-x")).await;
    assert_eq!(r.status, 403, "{}", r.text);
    let tx = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": new_observation("p-x"), "request": {"method": "POST", "url": "Observation"}}]});
    let r = post_as(&app, &token, "", &tx).await;
    assert_eq!(r.status, 403, "{}", r.text);
    let batch = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": new_observation("p-x"), "request": {"method": "POST", "url": "Observation"}},
        {"request": {"method": "GET", "url": "Observation/p-x-lab"}},
        {"request": {"method": "GET", "url": "Patient/p-x"}}]});
    let r = post_as(&app, &token, "", &batch).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let statuses: Vec<&str> = r.body["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["response"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, vec!["403 Forbidden", "200 OK", "403 Forbidden"]);
    let r = get_as(&app, &token, "Observation?subject=Patient/p-x&_count=50").await;
    assert_eq!(ids(&r.body, "match").len(), 2, "nothing was written");
}

#[tokio::test]
async fn a_request_beyond_the_registration_or_malformed_is_invalid_scope() {
    let app = spawn_app().await;
    let r = system_token(
        &app,
        Some("system/Observation.rs"),
        Some("system/Condition.rs"),
    )
    .await;
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (400, Some("invalid_scope")),
        "{}",
        r.text
    );
    let config = app
        .send(
            app.anonymous
                .get(app.url(".well-known/smart-configuration")),
        )
        .await;
    let supported = config.body["scopes_supported"].to_string();
    assert!(supported.contains("system/*.rs"), "{supported}");
}

#[tokio::test]
async fn a_patient_scoped_token_cannot_read_another_patient_or_search_outside_its_patient() {
    let app = spawn_app().await;
    population(&app).await;
    let token = person_token(&app, "launch/patient patient/*.rs", Some("p-x")).await;

    assert_eq!(get_as(&app, &token, "Patient/p-x").await.status, 200);
    // p-y is a resident of the same home: the policy alone would show them.
    let r = get_as(&app, &token, "Patient/p-y").await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(r.diagnostics().contains("patient"), "{}", r.diagnostics());
    assert_eq!(
        get_as(&app, &token, "Observation/p-y-lab").await.status,
        403
    );
    assert_eq!(
        get_as(&app, &token, "Patient/p-y/$everything").await.status,
        403
    );
    assert_eq!(
        get_as(&app, &token, "Patient/p-y/_history").await.status,
        403
    );

    let r = get_as(&app, &token, "Patient").await;
    assert_eq!(ids(&r.body, "match"), vec!["p-x"]);
    let r = get_as(&app, &token, "Observation").await;
    assert_eq!(r.body["total"], 2, "{}", r.text);
    assert_eq!(ids(&r.body, "match"), vec!["p-x-lab", "p-x-vital"]);
    let r = get_as(&app, &token, "Observation?subject=Patient/p-y").await;
    assert_eq!(ids(&r.body, "match"), Vec::<String>::new());
    // Paging stays right: the narrowing is in the query.
    let r = get_as(&app, &token, "Condition?_count=1").await;
    assert_eq!(ids(&r.body, "match"), vec!["p-x-problem"]);
    assert!(
        !r.text.contains("\"next\""),
        "one match, one page: {}",
        r.text
    );

    let r = get_as(&app, &token, "Patient/p-x/$everything").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let everything = ids(&r.body, "match");
    assert!(everything.contains(&"p-x-lab".to_owned()), "{everything:?}");
    assert!(
        everything.iter().all(|id| id.starts_with("p-x")),
        "{everything:?}"
    );
    let r = get_as(&app, &token, "_history").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        !r.text.contains("p-y"),
        "system history leaked another patient"
    );

    // Read scopes only: nothing may be written, even for the patient in context.
    let r = post_as(&app, &token, "Observation", &new_observation("p-x")).await;
    assert_eq!(r.status, 403, "{}", r.text);
    // Nor can an app's token open emergency access to someone else.
    let reason = json!({"resourceType": "Parameters", "parameter": [
        {"name": "reason", "valueCode": "emergency"},
        {"name": "text", "valueString": "Found unwell at a day centre; no one else available"}]});
    let r = post_as(&app, &token, "Patient/p-b/$break-glass", &reason).await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(r.diagnostics().contains("SMART"), "{}", r.diagnostics());
}

#[tokio::test]
async fn a_patient_scoped_writer_writes_only_its_patients_resources() {
    let app = spawn_app().await;
    population(&app).await;
    let token = person_token(&app, "patient/Observation.cruds", Some("p-x")).await;
    let r = post_as(&app, &token, "Observation", &new_observation("p-x")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = post_as(&app, &token, "Observation", &new_observation("p-y")).await;
    assert_eq!(r.status, 403, "{}", r.text);
    // Nor may it move another patient's resource into its patient's compartment.
    let mut moved = new_observation("p-x");
    moved["id"] = json!("p-y-lab");
    let r = app
        .send(
            app.anonymous
                .put(app.url("Observation/p-y-lab"))
                .bearer_auth(&token)
                .header("content-type", "application/fhir+json")
                .body(moved.to_string()),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    let r = app
        .send(
            app.anonymous
                .delete(app.url("Observation/p-y-lab"))
                .bearer_auth(&token),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    let r = app.get("Observation/p-y-lab").await;
    assert_eq!(r.status, 200, "still there");
    assert_eq!(r.body["subject"]["reference"], "Patient/p-y");
}

#[tokio::test]
async fn a_user_observation_token_cannot_read_a_condition() {
    let app = spawn_app().await;
    population(&app).await;
    let token = person_token(&app, "openid fhirUser user/Observation.rs", None).await;

    assert_eq!(
        get_as(&app, &token, "Observation/p-x-lab").await.status,
        200
    );
    assert_eq!(
        get_as(&app, &token, "Observation/p-y-lab").await.status,
        200
    );
    // The policy still applies underneath: home B's resident stays refused.
    assert_eq!(
        get_as(&app, &token, "Observation/p-b-lab").await.status,
        403
    );

    let r = get_as(&app, &token, "Condition/p-x-problem").await;
    assert_eq!(r.status, 403);
    assert!(
        r.diagnostics().contains("user/Condition.r"),
        "{}",
        r.diagnostics()
    );
    assert_eq!(get_as(&app, &token, "Condition").await.status, 403);
    let r = get_as(
        &app,
        &token,
        "Patient?_id=p-x&_revinclude=Condition:subject",
    )
    .await;
    assert_eq!(r.status, 403, "a Patient search needs user/Patient.s");
    let r = get_as(
        &app,
        &token,
        "Observation?subject=Patient/p-x&_include=Observation:subject",
    )
    .await;
    assert_eq!(ids(&r.body, "include"), Vec::<String>::new());

    let refusals = scope_refusals(&app).await;
    assert!(
        refusals
            .iter()
            .any(|r| r.patient_ids.contains(&"p-x".to_owned())),
        "the refused read names the person: {refusals:?}"
    );
}

#[tokio::test]
async fn a_category_restricted_scope_sees_only_that_category() {
    let app = spawn_app().await;
    population(&app).await;
    let token = person_token(
        &app,
        &format!("user/Observation.rs?category={CATEGORY}|laboratory user/Patient.rs"),
        None,
    )
    .await;
    assert_eq!(
        get_as(&app, &token, "Observation/p-x-lab").await.status,
        200
    );
    let r = get_as(&app, &token, "Observation/p-x-vital").await;
    assert_eq!(r.status, 403, "{}", r.text);
    let r = get_as(&app, &token, "Observation?subject=Patient/p-x").await;
    assert_eq!(r.body["total"], 1, "{}", r.text);
    assert_eq!(ids(&r.body, "match"), vec!["p-x-lab"]);
    // History cannot be limited to a category: refused rather than filtered.
    assert_eq!(
        get_as(&app, &token, "Observation/p-x-lab/_history")
            .await
            .status,
        403
    );
    // $everything leaves out a type granted only with a restriction.
    let r = get_as(&app, &token, "Patient/p-x/$everything").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(ids(&r.body, "match"), vec!["p-x"]);
}

#[tokio::test]
async fn a_stay_is_recorded_with_a_token_only_when_its_scopes_are_not_limited_to_one_patient() {
    let app = spawn_app().await;
    population(&app).await;
    let stay = json!({"resourceType": "EpisodeOfCare", "status": "active",
        "patient": {"reference": "Patient/p-x"},
        "managingOrganization": {"reference": "Organization/org-home-a"},
        "period": {"start": "2025-01-01"}});
    // The residency operation commits with its audit entry: a patient-limited grant cannot be
    // checked against the stay afterwards, so it is refused before anything is written.
    let limited = token_as(
        &app,
        Role::CareHomeManager,
        "patient/EpisodeOfCare.cruds",
        Some("p-x"),
    )
    .await;
    let r = post_as(&app, &limited, "EpisodeOfCare", &stay).await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(r.text.contains("move in or out"), "{}", r.text);
    // Without EpisodeOfCare in the grant at all, the scopes refuse too.
    let other = token_as(&app, Role::CareHomeManager, "user/Observation.rs", None).await;
    assert_eq!(
        post_as(&app, &other, "EpisodeOfCare", &stay).await.status,
        403
    );
    let user = token_as(
        &app,
        Role::CareHomeManager,
        "user/EpisodeOfCare.cruds",
        None,
    )
    .await;
    let r = post_as(&app, &user, "EpisodeOfCare", &stay).await;
    assert!(r.status == 200 || r.status == 201, "{}", r.text);
}
