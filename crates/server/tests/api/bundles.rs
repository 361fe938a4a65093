use serde_json::{Value, json};

use crate::helpers::*;

fn transaction(entries: Vec<Value>) -> Value {
    json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
}

#[tokio::test]
async fn a_transaction_resolves_urn_uuid_references_between_its_entries() {
    let app = spawn_app().await;
    let b = transaction(vec![
        json!({"fullUrl": "urn:uuid:9a1f3c1e-0000-4000-8000-000000000001",
               "resource": patient("9990000018", "Okafor", "Grace", "1938-04-02"),
               "request": {"method": "POST", "url": "Patient"}}),
        json!({"fullUrl": "urn:uuid:9a1f3c1e-0000-4000-8000-000000000002",
               "resource": {"resourceType": "Observation", "status": "final",
                            "code": {"text": "Sodium"},
                            "subject": {"reference": "urn:uuid:9a1f3c1e-0000-4000-8000-000000000001"},
                            "valueQuantity": {"value": 139, "unit": "mmol/L"}},
               "request": {"method": "POST", "url": "Observation"}}),
    ]);
    let r = app.post("", &b).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["type"], "transaction-response");
    let entries = r.body["entry"].as_array().unwrap();
    assert!(
        entries[0]["response"]["status"]
            .as_str()
            .unwrap()
            .starts_with("201")
    );
    let pid = entries[0]["resource"]["id"].as_str().unwrap();
    assert_eq!(
        entries[1]["resource"]["subject"]["reference"],
        format!("Patient/{pid}").as_str()
    );
    let found = app.get(&format!("Observation?subject=Patient/{pid}")).await;
    assert_eq!(ids(&found.body).len(), 1);
}

#[tokio::test]
async fn a_failing_entry_rolls_back_the_whole_transaction() {
    let app = spawn_app().await;
    let b = transaction(vec![
        json!({"resource": patient("9990000018", "Okafor", "Grace", "1938-04-02"),
               "request": {"method": "POST", "url": "Patient"}}),
        json!({"resource": {"resourceType": "Observation", "status": "final"},
               "request": {"method": "POST", "url": "Observation"}}),
    ]);
    let r = app.post("", &b).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.diagnostics().contains("entry 1"), "{}", r.text);
    let all = app.get("Patient?_summary=count").await;
    assert_eq!(all.body["total"], 0, "the patient of entry 0 was not kept");
}

#[tokio::test]
async fn conditional_references_resolve_to_the_single_match() {
    let app = spawn_app().await;
    let pid = app
        .create(&patient("9990000018", "Okafor", "Grace", "1938-04-02"))
        .await;
    let b = transaction(vec![json!({
        "resource": {"resourceType": "Condition",
                     "code": {"text": "Heart failure"},
                     "subject": {"reference": format!("Patient?identifier={NHS}|9990000018")}},
        "request": {"method": "POST", "url": "Condition"}})]);
    let r = app.post("", &b).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body["entry"][0]["resource"]["subject"]["reference"],
        format!("Patient/{pid}").as_str()
    );
    let missing = transaction(vec![json!({
        "resource": {"resourceType": "Condition", "code": {"text": "x"},
                     "subject": {"reference": format!("Patient?identifier={NHS}|9990000026")}},
        "request": {"method": "POST", "url": "Condition"}})]);
    assert_eq!(app.post("", &missing).await.status, 412);
}

#[tokio::test]
async fn transaction_entries_run_deletes_before_creates_and_reads_last() {
    let app = spawn_app().await;
    let old = app
        .create(&patient("9990000018", "Okafor", "Grace", "1938-04-02"))
        .await;
    let b = transaction(vec![
        json!({"request": {"method": "GET", "url": format!("Patient/{old}")}}),
        json!({"resource": patient("9990000018", "Okafor", "Grace", "1938-04-02"),
               "request": {"method": "POST", "url": "Patient", "ifNoneExist": format!("identifier={NHS}|9990000018")}}),
        json!({"request": {"method": "DELETE", "url": format!("Patient/{old}")}}),
    ]);
    let r = app.post("", &b).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let e = r.body["entry"].as_array().unwrap();
    // The delete ran first, so the conditional create found nothing and created.
    assert!(
        e[1]["response"]["status"]
            .as_str()
            .unwrap()
            .starts_with("201"),
        "{}",
        r.text
    );
    // The read ran last and saw the deletion.
    assert!(
        e[0]["response"]["status"]
            .as_str()
            .unwrap()
            .starts_with("410"),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn a_batch_reports_each_entry_on_its_own() {
    let app = spawn_app().await;
    let b = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": patient("9990000018", "Okafor", "Grace", "1938-04-02"),
         "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Observation", "status": "final"},
         "request": {"method": "POST", "url": "Observation"}},
        {"request": {"method": "GET", "url": "Patient/nobody"}}
    ]});
    let r = app.post("", &b).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["type"], "batch-response");
    let e = r.body["entry"].as_array().unwrap();
    assert!(
        e[0]["response"]["status"]
            .as_str()
            .unwrap()
            .starts_with("201")
    );
    assert!(
        e[1]["response"]["status"]
            .as_str()
            .unwrap()
            .starts_with("400")
    );
    assert_eq!(
        e[1]["response"]["outcome"]["resourceType"],
        "OperationOutcome"
    );
    assert!(
        e[2]["response"]["status"]
            .as_str()
            .unwrap()
            .starts_with("404")
    );
    assert_eq!(app.get("Patient?_summary=count").await.body["total"], 1);
}
