use carerecord_server::ServerSettings;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn malformed_json_is_a_400_operation_outcome() {
    let app = spawn_app().await;
    let r = app
        .send(
            app.client
                .post(app.url("Patient"))
                .header("content-type", "application/fhir+json")
                .body("{\"resourceType\": \"Patient\", "),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["resourceType"], "OperationOutcome");
    assert!(r.diagnostics().contains("not valid JSON"), "{}", r.text);
}

#[tokio::test]
async fn a_body_of_the_wrong_type_for_the_url_is_refused() {
    let app = spawn_app().await;
    let r = app
        .post(
            "Observation",
            &patient("9990000018", "A", "B", "1950-01-01"),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
}

#[tokio::test]
async fn an_id_mismatch_between_url_and_body_is_refused_and_nothing_changes() {
    let app = spawn_app().await;
    let id = app
        .create(&patient("9990000018", "Okafor", "Grace", "1938-04-02"))
        .await;
    let mut p = patient("9990000018", "Changed", "Grace", "1938-04-02");
    p["id"] = json!("someone-else");
    let r = app.put(&format!("Patient/{id}"), &p).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(
        app.get(&format!("Patient/{id}")).await.body["name"][0]["family"],
        "Okafor"
    );
}

#[tokio::test]
async fn unsupported_resource_types_get_a_404_operation_outcome() {
    let app = spawn_app().await;
    let r = app.get("Questionnaire/1").await;
    assert_eq!(r.status, 404);
    assert!(r.diagnostics().contains("not supported"), "{}", r.text);
    let r = app.get("Questionnaire?name=x").await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn reading_an_unknown_id_is_404() {
    let app = spawn_app().await;
    let r = app.get("Patient/nobody").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.body["resourceType"], "OperationOutcome");
}

#[tokio::test]
async fn structural_errors_are_reported_one_issue_each_with_their_element() {
    let app = spawn_app().await;
    let bad = json!({
        "resourceType": "Patient",
        "birthDate": "1938-13-02",
        "gender": "female",
        "nickname": "Gracie"
    });
    let r = app.post("Patient", &bad).await;
    assert_eq!(r.status, 400, "{}", r.text);
    let exprs: Vec<String> = r.body["issue"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|i| i["expression"].as_array().cloned().unwrap_or_default())
        .map(|e| e.as_str().unwrap().to_owned())
        .collect();
    assert!(exprs.contains(&"Patient.birthDate".to_owned()), "{exprs:?}");
    assert!(exprs.contains(&"Patient.nickname".to_owned()), "{exprs:?}");
}

#[tokio::test]
async fn an_nhs_number_failing_modulus_11_is_unprocessable_and_not_echoed() {
    let app = spawn_app().await;
    let r = app
        .post(
            "Patient",
            &patient("9990000017", "Okafor", "Grace", "1938-04-02"),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(!r.text.contains("9990000017"));
}

#[tokio::test]
async fn an_oversize_body_is_413() {
    let app = spawn_app_with(ServerSettings {
        max_body_bytes: 2_048,
        ..ServerSettings::default()
    })
    .await;
    let mut p = patient("9990000018", "Okafor", "Grace", "1938-04-02");
    p["name"][0]["text"] = json!("x".repeat(5_000));
    let r = app.post("Patient", &p).await;
    assert_eq!(r.status, 413, "{}", r.text);
    assert_eq!(r.body["resourceType"], "OperationOutcome");
}

#[tokio::test]
async fn xml_is_not_acceptable_and_not_accepted() {
    let app = spawn_app().await;
    assert_eq!(app.get("Patient?_format=xml").await.status, 406);
    let r = app
        .send(
            app.client
                .post(app.url("Patient"))
                .header("content-type", "application/fhir+xml")
                .body("<Patient/>"),
        )
        .await;
    assert_eq!(r.status, 415);
}

#[tokio::test]
async fn invalid_search_syntax_is_400_and_unknown_parameters_depend_on_handling() {
    let app = spawn_app().await;
    let r = app.get("Observation?date=gt2026-13-40").await;
    assert_eq!(r.status, 400, "{}", r.text);
    let r = app.get("Observation?colour=blue").await;
    assert_eq!(r.status, 200);
    let outcome = r.body["entry"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["search"]["mode"] == "outcome")
        .expect("an outcome entry reports the ignored parameter");
    assert_eq!(outcome["resource"]["resourceType"], "OperationOutcome");
    let strict = app
        .send(
            app.client
                .get(app.url("Observation?colour=blue"))
                .header("prefer", "handling=strict"),
        )
        .await;
    assert_eq!(strict.status, 400);
}

#[tokio::test]
async fn a_garbled_cursor_is_a_400_not_a_crash() {
    let app = spawn_app().await;
    let r = app.get("Patient?_cursor=not-a-cursor").await;
    assert_eq!(r.status, 400, "{}", r.text);
}

#[tokio::test]
async fn every_error_outcome_names_the_request_id_the_response_header_carries() {
    let app = spawn_app().await;
    let r = app.get("Patient/nobody").await;
    let header = r
        .header("x-request-id")
        .expect("request id header")
        .to_owned();
    assert_eq!(r.body["extension"][0]["valueString"], header.as_str());
    let r = app
        .send(
            app.client
                .get(app.url("Patient/nobody"))
                .header("x-request-id", "ticket-42"),
        )
        .await;
    assert_eq!(r.body["extension"][0]["valueString"], "ticket-42");
}
