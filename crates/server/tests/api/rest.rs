use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn create_then_read_returns_the_resource_with_version_and_etag() {
    let app = spawn_app().await;
    let r = app
        .post(
            "Patient",
            &patient("9990000018", "Okafor", "Grace", "1938-04-02"),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["meta"]["versionId"], "1");
    assert_eq!(r.header("etag"), Some("W/\"1\""));
    let loc = r.header("location").unwrap();
    assert!(loc.ends_with(&format!("/Patient/{id}/_history/1")), "{loc}");

    let r = app.get(&format!("Patient/{id}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["name"][0]["family"], "Okafor");
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("application/fhir+json")
    );
    assert!(r.header("last-modified").unwrap().ends_with("GMT"));
}

#[tokio::test]
async fn decimals_keep_the_precision_they_were_sent_with() {
    let app = spawn_app().await;
    let pid = app
        .create(&patient("9990000018", "Okafor", "Grace", "1938-04-02"))
        .await;
    let id = app
        .create(&observation(&pid, "2823-3", "4.50", "mmol/L", "2026-11-01"))
        .await;
    let r = app.get(&format!("Observation/{id}")).await;
    assert!(r.text.contains("4.50"), "{}", r.text);
}

#[tokio::test]
async fn update_with_a_stale_if_match_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let id = app
        .create(&patient("9990000018", "Okafor", "Grace", "1938-04-02"))
        .await;
    let mut p = patient("9990000018", "Okafor-Reid", "Grace", "1938-04-02");
    p["id"] = json!(id);
    let ok = app
        .send(
            app.client
                .put(app.url(&format!("Patient/{id}")))
                .header("content-type", "application/fhir+json")
                .header("if-match", "W/\"1\"")
                .body(p.to_string()),
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(ok.body["meta"]["versionId"], "2");

    p["name"][0]["family"] = json!("Stale");
    let stale = app
        .send(
            app.client
                .put(app.url(&format!("Patient/{id}")))
                .header("content-type", "application/fhir+json")
                .header("if-match", "W/\"1\"")
                .body(p.to_string()),
        )
        .await;
    assert_eq!(stale.status, 412, "{}", stale.text);
    assert_eq!(stale.body["resourceType"], "OperationOutcome");
    let now = app.get(&format!("Patient/{id}")).await;
    assert_eq!(now.body["name"][0]["family"], "Okafor-Reid");
}

#[tokio::test]
async fn update_of_an_unknown_id_creates_it() {
    let app = spawn_app().await;
    let mut p = patient("9990000018", "Okafor", "Grace", "1938-04-02");
    p["id"] = json!("resident-1");
    let r = app.put("Patient/resident-1", &p).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(app.get("Patient/resident-1").await.status, 200);
}

#[tokio::test]
async fn delete_makes_read_gone_but_keeps_old_versions_readable() {
    let app = spawn_app().await;
    let id = app
        .create(&patient("9990000018", "Okafor", "Grace", "1938-04-02"))
        .await;
    assert_eq!(app.delete(&format!("Patient/{id}")).await.status, 204);
    let r = app.get(&format!("Patient/{id}")).await;
    assert_eq!(r.status, 410, "{}", r.text);
    assert_eq!(r.body["resourceType"], "OperationOutcome");
    let v1 = app.get(&format!("Patient/{id}/_history/1")).await;
    assert_eq!(v1.status, 200);
    assert_eq!(
        app.get(&format!("Patient/{id}/_history/2")).await.status,
        410
    );
    assert_eq!(
        app.get(&format!("Patient/{id}/_history/9")).await.status,
        404
    );
    // Deleting again is not an error.
    assert_eq!(app.delete(&format!("Patient/{id}")).await.status, 204);
}

#[tokio::test]
async fn conditional_create_returns_the_existing_match() {
    let app = spawn_app().await;
    let body = patient("9990000018", "Okafor", "Grace", "1938-04-02");
    let send = || {
        app.client
            .post(app.url("Patient"))
            .header("content-type", "application/fhir+json")
            .header("if-none-exist", format!("identifier={NHS}|9990000018"))
            .body(body.to_string())
    };
    let first = app.send(send()).await;
    assert_eq!(first.status, 201);
    let second = app.send(send()).await;
    assert_eq!(second.status, 200, "{}", second.text);
    assert_eq!(first.body["id"], second.body["id"]);
}

#[tokio::test]
async fn conditional_create_is_atomic_under_concurrency() {
    let app = std::sync::Arc::new(spawn_app().await);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let body = patient("9990000026", "Begum", "Amina", "1941-07-19");
            app.send(
                app.client
                    .post(app.url("Patient"))
                    .header("content-type", "application/fhir+json")
                    .header("if-none-exist", format!("identifier={NHS}|9990000026"))
                    .body(body.to_string()),
            )
            .await
            .status
        }));
    }
    let mut created = 0;
    for t in tasks {
        let s = t.await.unwrap();
        assert!(s == 200 || s == 201, "status {s}");
        if s == 201 {
            created += 1;
        }
    }
    assert_eq!(created, 1);
    let r = app
        .get(&format!(
            "Patient?identifier={NHS}|9990000026&_total=accurate"
        ))
        .await;
    assert_eq!(r.body["total"], 1, "{}", r.text);
}

#[tokio::test]
async fn conditional_update_updates_the_single_match_or_creates() {
    let app = spawn_app().await;
    let cond = format!("Patient?identifier={NHS}|9990000034");
    let r = app
        .put(&cond, &patient("9990000034", "Nowak", "Jan", "1935-02-11"))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_owned();
    let r = app
        .put(
            &cond,
            &patient("9990000034", "Nowak", "Janek", "1935-02-11"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["id"], id.as_str());
    assert_eq!(r.body["meta"]["versionId"], "2");
}

#[tokio::test]
async fn prefer_return_minimal_and_operation_outcome_are_honoured() {
    let app = spawn_app().await;
    let body = patient("9990000018", "Okafor", "Grace", "1938-04-02");
    let r = app
        .send(
            app.client
                .post(app.url("Patient"))
                .header("content-type", "application/fhir+json")
                .header("prefer", "return=minimal")
                .body(body.to_string()),
        )
        .await;
    assert_eq!(r.status, 201);
    assert!(r.text.is_empty());
    assert!(r.header("location").is_some());
    let r = app
        .send(
            app.client
                .post(app.url("Patient"))
                .header("content-type", "application/fhir+json")
                .header("prefer", "return=OperationOutcome")
                .body(body.to_string()),
        )
        .await;
    assert_eq!(r.body["resourceType"], "OperationOutcome");
}

#[tokio::test]
async fn summary_and_elements_return_part_of_a_resource() {
    let app = spawn_app().await;
    let id = app
        .create(&patient("9990000018", "Okafor", "Grace", "1938-04-02"))
        .await;
    let r = app.get(&format!("Patient/{id}?_elements=birthDate")).await;
    assert_eq!(r.body["birthDate"], "1938-04-02");
    assert!(r.body.get("name").is_none());
    assert_eq!(r.body["meta"]["tag"][0]["code"], "SUBSETTED");
    let r = app
        .get(&format!("Patient/{id}?_summary=true&_pretty=true"))
        .await;
    assert!(r.body.get("name").is_some());
    assert!(r.text.contains("\n  "), "pretty printed");
}

#[tokio::test]
async fn metadata_lists_the_types_interactions_and_search_parameters_implemented() {
    let app = spawn_app().await;
    let r = app.get("metadata").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["resourceType"], "CapabilityStatement");
    assert_eq!(r.body["fhirVersion"], "4.0.1");
    let resources = r.body["rest"][0]["resource"].as_array().unwrap();
    assert_eq!(resources.len(), carerecord_fhir::ResourceType::ALL.len());
    let obs = resources
        .iter()
        .find(|r| r["type"] == "Observation")
        .unwrap();
    let params: Vec<&str> = obs["searchParam"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for p in [
        "code",
        "subject",
        "patient",
        "date",
        "value-quantity",
        "_lastUpdated",
    ] {
        assert!(params.contains(&p), "missing {p}");
    }
    let patient = resources.iter().find(|r| r["type"] == "Patient").unwrap();
    assert_eq!(patient["operation"][0]["name"], "everything");
}

#[tokio::test]
async fn everything_returns_the_patients_compartment_only_and_pages() {
    let app = spawn_app().await;
    let a = app
        .create(&patient("9990000018", "Okafor", "Grace", "1938-04-02"))
        .await;
    let b = app
        .create(&patient("9990000026", "Begum", "Amina", "1941-07-19"))
        .await;
    for i in 0..5 {
        app.create(&observation(
            &a,
            "2823-3",
            &format!("4.{i}"),
            "mmol/L",
            "2026-11-01",
        ))
        .await;
    }
    app.create(&observation(&b, "2823-3", "5.1", "mmol/L", "2026-11-01"))
        .await;
    let all = app
        .search_all(&format!("Patient/{a}/$everything?_count=2"))
        .await;
    assert_eq!(all.len(), 6, "the patient and five observations");
    assert!(
        all.iter()
            .all(|r| r["resourceType"] == "Patient" && r["id"] == a.as_str()
                || r["subject"]["reference"] == format!("Patient/{a}").as_str())
    );
    let only_obs = app
        .search_all(&format!("Patient/{a}/$everything?_type=Observation"))
        .await;
    assert_eq!(only_obs.len(), 5);
}

#[tokio::test]
async fn health_endpoints_answer() {
    let app = spawn_app().await;
    let root = app.base.trim_end_matches("/fhir");
    assert_eq!(app.get(&format!("{root}/health/live")).await.status, 200);
    assert_eq!(app.get(&format!("{root}/health/ready")).await.status, 200);
}
