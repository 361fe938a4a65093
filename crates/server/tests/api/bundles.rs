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

/// The audit entries appended after sequence number `after`, oldest first.
async fn entries_after(app: &TestApp, after: i64) -> Vec<carerecord_store::AuditEntry> {
    app.store.audit_entries(after, 1_000).await.unwrap()
}

async fn last_seq(app: &TestApp) -> i64 {
    let all = app.store.audit_entries(0, 10_000).await.unwrap();
    all.last().map_or(0, |e| e.seq)
}

#[tokio::test]
async fn each_entry_of_a_transaction_is_audited_with_the_resource_it_wrote() {
    use carerecord_store::{AuditAction, AuditOutcome};
    let app = spawn_app().await;
    let old = app
        .create(&patient("9990000034", "Adeyemi", "Ruth", "1941-09-12"))
        .await;
    let before = last_seq(&app).await;
    let b = transaction(vec![
        json!({"fullUrl": "urn:uuid:9a1f3c1e-0000-4000-8000-000000000001",
               "resource": patient("9990000018", "Okafor", "Grace", "1938-04-02"),
               "request": {"method": "POST", "url": "Patient"}}),
        json!({"resource": {"resourceType": "Observation", "status": "final",
                            "code": {"text": "Sodium"},
                            "subject": {"reference": "urn:uuid:9a1f3c1e-0000-4000-8000-000000000001"},
                            "valueQuantity": {"value": 139, "unit": "mmol/L"}},
               "request": {"method": "POST", "url": "Observation"}}),
        json!({"request": {"method": "DELETE", "url": format!("Patient/{old}")}}),
        json!({"request": {"method": "GET", "url": format!("Patient/{old}/_history/1")}}),
    ]);
    let r = app.post("", &b).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let pid = r.body["entry"][0]["resource"]["id"].as_str().unwrap();
    let oid = r.body["entry"][1]["resource"]["id"].as_str().unwrap();

    let got = entries_after(&app, before).await;
    let summary: Vec<(AuditAction, Vec<String>, Vec<String>)> = got
        .iter()
        .map(|e| {
            assert_eq!(e.record.outcome, AuditOutcome::Allowed);
            (
                e.record.action,
                e.record.resources.clone(),
                e.record.patient_ids.clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                AuditAction::Create,
                vec![format!("Patient/{pid}/_history/1")],
                vec![pid.to_owned()]
            ),
            (
                AuditAction::Create,
                vec![format!("Observation/{oid}/_history/1")],
                vec![pid.to_owned()]
            ),
            (
                AuditAction::Delete,
                vec![format!("Patient/{old}/_history/2")],
                vec![old.clone()]
            ),
            (
                AuditAction::Vread,
                vec![format!("Patient/{old}/_history/1")],
                vec![old.clone()]
            ),
        ],
        "one entry per Bundle entry, in entry order, and none for the Bundle itself"
    );
    // The request id ties them together (BALP's X-Request-Id entity).
    let request = got[0].record.request_id.clone();
    assert!(request.is_some());
    assert!(got.iter().all(|e| e.record.request_id == request));
}

#[tokio::test]
async fn a_failed_transaction_writes_nothing_and_its_failure_is_audited() {
    use carerecord_store::{AuditAction, AuditOutcome};
    let app = spawn_app().await;
    let before = last_seq(&app).await;
    let b = transaction(vec![
        json!({"resource": patient("9990000018", "Okafor", "Grace", "1938-04-02"),
               "request": {"method": "POST", "url": "Patient"}}),
        json!({"resource": {"resourceType": "Observation", "status": "final"},
               "request": {"method": "POST", "url": "Observation"}}),
    ]);
    let r = app.post("", &b).await;
    assert_eq!(r.status, 400, "{}", r.text);
    let got = entries_after(&app, before).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].record.action, AuditAction::Transaction);
    assert_eq!(got[0].record.outcome, AuditOutcome::Error);
    assert!(got[0].record.resources.is_empty(), "nothing was written");
    assert_eq!(
        app.get("Patient?_summary=count").await.body["total"],
        0,
        "the patient of entry 0 was not kept"
    );
}

#[tokio::test]
async fn each_entry_of_a_batch_is_audited_with_its_own_outcome() {
    use carerecord_store::{AuditAction, AuditOutcome};
    let app = spawn_app().await;
    let pid = app
        .create(&patient("9990000018", "Okafor", "Grace", "1938-04-02"))
        .await;
    let before = last_seq(&app).await;
    let b = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": observation(&pid, "2951-2", "139", "mmol/L", "2026-11-20"),
         "request": {"method": "POST", "url": "Observation"}},
        {"resource": {"resourceType": "Observation", "status": "final"},
         "request": {"method": "POST", "url": "Observation"}},
        {"request": {"method": "GET", "url": format!("Patient/{pid}")}},
        {"request": {"method": "GET", "url": "Patient/no-such-patient"}},
        {"request": {"method": "PATCH", "url": "Patient"}},
    ]});
    let r = app.post("", &b).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let status =
        |i: usize| r.body["entry"][i]["response"]["status"].as_str().unwrap()[..3].to_owned();
    assert_eq!(
        (0..5).map(status).collect::<Vec<_>>(),
        ["201", "400", "200", "404", "405"]
    );
    let oid = r.body["entry"][0]["resource"]["id"].as_str().unwrap();

    let got = entries_after(&app, before).await;
    let summary: Vec<(AuditAction, AuditOutcome, Vec<String>)> = got
        .iter()
        .map(|e| {
            (
                e.record.action,
                e.record.outcome,
                e.record.resources.clone(),
            )
        })
        .collect();
    // The write commits with its entry; the others are written before the response leaves.
    assert_eq!(
        summary,
        vec![
            (
                AuditAction::Create,
                AuditOutcome::Allowed,
                vec![format!("Observation/{oid}/_history/1")]
            ),
            (AuditAction::Create, AuditOutcome::Error, vec![]),
            (
                AuditAction::Read,
                AuditOutcome::Allowed,
                vec![format!("Patient/{pid}/_history/1")]
            ),
            (AuditAction::Read, AuditOutcome::Error, vec![]),
            (AuditAction::Transaction, AuditOutcome::Error, vec![]),
        ]
    );
    assert_eq!(got[0].record.patient_ids, vec![pid.clone()]);
}
