//! FHIR submissions from source systems: the Patients a hospital or GP system sends are resolved
//! by identity matching (verified NHS number, the source's own identifier, scored
//! demographics) inside the submission's transaction, what refers to them is filed under the
//! person carerecord already knows, and every resource carries where it came from.

use serde_json::{Value, json};

use crate::helpers::{NHS, Resp, TestApp, spawn_app};

const SOURCE_TAG: &str = "https://fhir.carerecord.example/CodeSystem/source-organisation";
const ODS: &str = "https://fhir.nhs.uk/Id/ods-organization-code";
const VERIFICATION: &str =
    "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus";
const MRN: &str = "https://fhir.carerecord.example/Id/mrn/RHO";

fn verified(nhs: &str) -> Value {
    json!({"system": NHS, "value": nhs, "extension": [{"url": VERIFICATION,
        "valueCodeableConcept": {"coding": [{
            "system": "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland",
            "code": "01"}]}}]})
}

/// A hospital (ODS `RHO`) and a person its feed has never sent: known to their GP practice.
async fn known_person(app: &TestApp) {
    for (id, ods) in [("org-hosp", "RHO"), ("org-gp", "GP1")] {
        let r = app
            .put(
                &format!("Organization/{id}"),
                &json!({"resourceType": "Organization", "id": id, "name": id,
                        "identifier": [{"system": ODS, "value": ods}]}),
            )
            .await;
        assert!(r.status == 201 || r.status == 200, "{}", r.text);
    }
    let r = app
        .put(
            "Patient/p-known",
            &json!({"resourceType": "Patient", "id": "p-known",
                "meta": {"tag": [{"system": SOURCE_TAG, "code": "GP1"}]},
                "identifier": [verified("9990000018")],
                "name": [{"family": "Quill", "given": ["Ada"]}], "gender": "female",
                "birthDate": "1938-04-02",
                "address": [{"postalCode": "N1 9GU"}]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
}

async fn post_as(app: &TestApp, token: &str, path: &str, body: &Value) -> Resp {
    app.send(
        app.anonymous
            .post(app.url(path))
            .bearer_auth(token)
            .header("content-type", "application/fhir+json")
            .json(body),
    )
    .await
}

/// An admission as a hospital system sends it: the person (with its own MRN), the stay and a
/// result, tied together by `urn:uuid:` fullUrls.
fn admission(identifiers: Value, bundle_id: &str) -> Value {
    let p = "urn:uuid:3f1d3c0e-0b7a-4d8e-9a55-2c6f1e7d9b01";
    json!({"resourceType": "Bundle", "type": "transaction",
        "identifier": {"system": "https://rho.example/messages", "value": bundle_id},
        "entry": [
        {"fullUrl": p, "request": {"method": "POST", "url": "Patient"},
         "resource": {"resourceType": "Patient", "identifier": identifiers,
            "name": [{"family": "Quill", "given": ["Ada"]}], "gender": "female",
            "birthDate": "1938-04-02"}},
        {"fullUrl": "urn:uuid:3f1d3c0e-0b7a-4d8e-9a55-2c6f1e7d9b02",
         "request": {"method": "POST", "url": "Encounter"},
         "resource": {"resourceType": "Encounter", "status": "in-progress",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
            "subject": {"reference": p}, "period": {"start": "2026-11-30T09:00:00Z"}}},
        {"fullUrl": "urn:uuid:3f1d3c0e-0b7a-4d8e-9a55-2c6f1e7d9b03",
         "request": {"method": "POST", "url": "Observation"},
         "resource": {"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "2823-3"}]},
            "subject": {"reference": p}, "effectiveDateTime": "2026-11-30T10:00:00Z",
            "valueQuantity": {"value": 5.9, "unit": "mmol/L",
                "system": "http://unitsofmeasure.org", "code": "mmol/L"}}}
    ]})
}

async fn patients_named(app: &TestApp, family: &str) -> Vec<Value> {
    app.search_all(&format!("Patient?family={family}")).await
}

#[tokio::test]
async fn a_hospitals_transaction_is_filed_under_the_person_found_by_nhs_number() {
    let app = spawn_app().await;
    known_person(&app).await;
    let feed = app.system_token("rho-pas", "org-hosp").await;
    let ids = json!([verified("9990000018"), {"system": MRN, "value": "RHO-77"}]);
    let r = post_as(&app, &feed, "", &admission(ids, "msg-1")).await;
    assert_eq!(r.status, 200, "{}", r.text);

    let person = &r.body["entry"][0];
    assert_eq!(person["response"]["status"], "200 OK", "{}", r.text);
    assert!(
        person["response"]["location"]
            .as_str()
            .unwrap()
            .contains("Patient/p-known/_history/2"),
        "{person}"
    );
    assert!(
        person.get("resource").is_none(),
        "another source's Patient is not handed back: {person}"
    );
    let said = person["response"]["outcome"]["issue"][0]["diagnostics"]
        .as_str()
        .unwrap();
    assert!(said.contains("NHS number"), "{said}");
    assert_eq!(
        r.body["entry"][1]["resource"]["subject"]["reference"],
        "Patient/p-known"
    );

    // One person, now carrying the hospital's number as well; their first version kept.
    let people = patients_named(&app, "Quill").await;
    assert_eq!(people.len(), 1, "{people:?}");
    let ids: Vec<&str> = people[0]["identifier"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["value"].as_str())
        .collect();
    assert_eq!(ids, ["9990000018", "RHO-77"]);
    assert_eq!(app.get("Patient/p-known/_history/1").await.status, 200);

    // Where each item came from: the hospital's ODS code and the system and message.
    let stays = app.search_all("Encounter?subject=Patient/p-known").await;
    assert_eq!(stays.len(), 1);
    assert_eq!(
        stays[0]["meta"]["source"],
        "urn:carerecord:system:rho-pas#msg-1"
    );
    assert!(
        stays[0]["meta"]["tag"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["system"] == SOURCE_TAG && t["code"] == "RHO"),
        "{}",
        stays[0]
    );
    let results = app.search_all("Observation?subject=Patient/p-known").await;
    assert_eq!(results.len(), 1);
}

#[tokio::test]
async fn a_resent_submission_and_one_with_only_the_local_number_find_the_same_person() {
    let app = spawn_app().await;
    known_person(&app).await;
    let feed = app.system_token("rho-pas", "org-hosp").await;
    let ids = json!([verified("9990000018"), {"system": MRN, "value": "RHO-77"}]);
    assert_eq!(
        post_as(&app, &feed, "", &admission(ids.clone(), "msg-1"))
            .await
            .status,
        200
    );
    let again = post_as(&app, &feed, "", &admission(ids, "msg-1")).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.body["entry"][0]["response"]["status"], "200 OK");

    // Later the hospital sends only its own number.
    let local = post_as(
        &app,
        &feed,
        "",
        &admission(json!([{"system": MRN, "value": "RHO-77"}]), "msg-2"),
    )
    .await;
    assert_eq!(local.status, 200, "{}", local.text);
    let said = local.body["entry"][0]["response"]["outcome"]["issue"][0]["diagnostics"]
        .as_str()
        .unwrap();
    assert!(said.contains("own identifier"), "{said}");
    assert_eq!(patients_named(&app, "Quill").await.len(), 1);
    assert_eq!(
        app.search_all("Encounter?subject=Patient/p-known")
            .await
            .len(),
        3
    );
}

#[tokio::test]
async fn an_invalid_nhs_number_refuses_the_submission_and_writes_nothing() {
    let app = spawn_app().await;
    known_person(&app).await;
    let feed = app.system_token("rho-pas", "org-hosp").await;
    // 9990000019 fails the Modulus 11 check.
    let r = post_as(
        &app,
        &feed,
        "",
        &admission(json!([{"system": NHS, "value": "9990000019"}]), "msg-3"),
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.text);
    let issue = &r.body["issue"][0];
    assert!(
        issue["diagnostics"]
            .as_str()
            .unwrap()
            .contains("invalid NHS number"),
        "{issue}"
    );
    assert!(
        issue["expression"][0]
            .as_str()
            .unwrap()
            .starts_with("Bundle.entry[0].resource.identifier"),
        "{issue}"
    );
    assert_eq!(patients_named(&app, "Quill").await.len(), 1);
    assert!(app.search_all("Encounter").await.is_empty());
}

#[tokio::test]
async fn someone_who_only_resembles_a_known_person_is_a_new_record_and_a_review_item() {
    let app = spawn_app().await;
    known_person(&app).await;
    let feed = app.system_token("rho-pas", "org-hosp").await;
    // Same family name, birth date, gender and postcode; another first name; no NHS number.
    let mut bundle = admission(json!([{"system": MRN, "value": "RHO-90"}]), "msg-4");
    bundle["entry"][0]["resource"]["name"] = json!([{"family": "Quill", "given": ["Alma"]}]);
    bundle["entry"][0]["resource"]["address"] = json!([{"postalCode": "N1 9GU"}]);
    let r = post_as(&app, &feed, "", &bundle).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let person = &r.body["entry"][0];
    assert_eq!(person["response"]["status"], "201 Created", "{person}");
    let said = person["response"]["outcome"]["issue"][0]["diagnostics"]
        .as_str()
        .unwrap();
    assert!(said.contains("review item"), "{said}");
    let people = patients_named(&app, "Quill").await;
    assert_eq!(people.len(), 2);
    let new_id = person["resource"]["id"].as_str().unwrap();
    assert_eq!(
        r.body["entry"][1]["resource"]["subject"]["reference"],
        format!("Patient/{new_id}")
    );
}

#[tokio::test]
async fn a_source_systems_patient_create_is_matched_but_a_services_is_written_as_sent() {
    let app = spawn_app().await;
    known_person(&app).await;
    let feed = app.system_token("rho-pas", "org-hosp").await;
    let body = json!({"resourceType": "Patient", "identifier": [verified("9990000018")],
        "name": [{"family": "Quill", "given": ["Ada"]}], "birthDate": "1938-04-02"});
    let r = post_as(&app, &feed, "Patient", &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.header("location")
            .unwrap()
            .contains("/Patient/p-known/_history/"),
        "{:?}",
        r.header("location")
    );
    assert_eq!(r.body["resourceType"], "OperationOutcome", "{}", r.text);
    assert_eq!(patients_named(&app, "Quill").await.len(), 1);

    // carerecord's own service identity (a loader) writes what it is given.
    let r = app.post("Patient", &body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(patients_named(&app, "Quill").await.len(), 2);
}

/// A discharge summary as a FHIR document: the Composition first, then the person, the
/// hospital and what the sections point at, tied together by `urn:uuid:` fullUrls.
fn discharge_document(identifier: Option<&str>) -> Value {
    let p = "urn:uuid:6b0e2c1a-9f3d-4e7b-8c2a-1d5f7e9a3b01";
    let org = "urn:uuid:6b0e2c1a-9f3d-4e7b-8c2a-1d5f7e9a3b02";
    let med = "urn:uuid:6b0e2c1a-9f3d-4e7b-8c2a-1d5f7e9a3b03";
    let mut doc = json!({"resourceType": "Bundle", "type": "document",
        "timestamp": "2026-11-30T16:00:00Z",
        "entry": [
        {"fullUrl": "urn:uuid:6b0e2c1a-9f3d-4e7b-8c2a-1d5f7e9a3b00",
         "resource": {"resourceType": "Composition", "status": "final",
            "type": {"coding": [{"system": "http://snomed.info/sct", "code": "373942005",
                "display": "Discharge summary"}]},
            "subject": {"reference": p}, "date": "2026-11-30T16:00:00Z",
            "author": [{"reference": org}], "title": "Discharge summary",
            "section": [{"title": "Medications and medical devices",
                "code": {"coding": [{"system": "http://snomed.info/sct", "code": "933361000000108"}]},
                "text": {"status": "generated",
                    "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Started.</div>"},
                "entry": [{"reference": med}]}]}},
        {"fullUrl": p,
         "resource": {"resourceType": "Patient", "identifier": [verified("9990000018")],
            "name": [{"family": "Quill", "given": ["Ada"]}], "gender": "female",
            "birthDate": "1938-04-02"}},
        {"fullUrl": org,
         "resource": {"resourceType": "Organization", "name": "Royal Hospital",
            "identifier": [{"system": ODS, "value": "RHO"}]}},
        {"fullUrl": med,
         "resource": {"resourceType": "MedicationStatement", "status": "active",
            "medicationCodeableConcept": {"coding": [{"system": "https://dmd.nhs.uk",
                "code": "39732311000001104", "display": "Apixaban 2.5mg tablets"}]},
            "subject": {"reference": p}}}
    ]});
    if let Some(id) = identifier {
        doc["identifier"] = json!({"system": "https://rho.example/documents", "value": id});
    }
    doc
}

#[tokio::test]
async fn a_discharge_summary_document_is_filed_under_the_person_once() {
    let app = spawn_app().await;
    known_person(&app).await;
    let feed = app.system_token("rho-pas", "org-hosp").await;
    let r = post_as(&app, &feed, "Bundle", &discharge_document(Some("DS-1"))).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["type"], "transaction-response", "{}", r.text);
    let location = r.header("location").unwrap().to_owned();
    assert!(location.contains("/Composition/"), "{location}");

    let docs = app.search_all("Composition?subject=Patient/p-known").await;
    assert_eq!(docs.len(), 1, "filed under the person carerecord knows");
    let doc = &docs[0];
    assert_eq!(doc["identifier"]["value"], "DS-1");
    assert_eq!(doc["author"][0]["reference"], "Organization/org-hosp");
    assert_eq!(doc["meta"]["source"], "urn:carerecord:system:rho-pas#DS-1");
    let med_ref = doc["section"][0]["entry"][0]["reference"].as_str().unwrap();
    assert!(med_ref.starts_with("MedicationStatement/"), "{med_ref}");
    let med = app.get(med_ref).await;
    assert_eq!(med.body["subject"]["reference"], "Patient/p-known");
    // The hospital is the one already known, not a copy; the person is not created again.
    assert_eq!(
        app.search_all(&format!("Organization?identifier={ODS}|RHO"))
            .await
            .len(),
        1
    );
    assert_eq!(patients_named(&app, "Quill").await.len(), 1);
    // Where it came from.
    let provenance = app.search_all("Provenance?patient=Patient/p-known").await;
    assert_eq!(provenance.len(), 1);
    assert_eq!(
        provenance[0]["entity"][0]["what"]["identifier"]["value"],
        "DS-1"
    );
    let doc_id = doc["id"].as_str().unwrap();
    assert!(
        provenance[0]["target"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["reference"] == format!("Composition/{doc_id}")),
        "{}",
        provenance[0]
    );

    // Sent again: nothing more is filed.
    let again = post_as(&app, &feed, "Bundle", &discharge_document(Some("DS-1"))).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert!(
        again.diagnostics().contains("filed before"),
        "{}",
        again.text
    );
    assert_eq!(
        app.search_all("Composition?subject=Patient/p-known")
            .await
            .len(),
        1
    );
    assert_eq!(app.search_all("MedicationStatement").await.len(), 1);
    assert_eq!(app.search_all("Provenance").await.len(), 1);
}

#[tokio::test]
async fn a_document_without_an_identifier_or_a_composition_first_is_refused() {
    let app = spawn_app().await;
    known_person(&app).await;
    let feed = app.system_token("rho-pas", "org-hosp").await;
    let r = post_as(&app, &feed, "Bundle", &discharge_document(None)).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.body["issue"][0]["expression"][0], "Bundle.identifier");

    let mut doc = discharge_document(Some("DS-2"));
    doc["entry"].as_array_mut().unwrap().swap(0, 1);
    let r = post_as(&app, &feed, "Bundle", &doc).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.diagnostics().contains("bdl-11"), "{}", r.text);
    assert!(app.search_all("Composition").await.is_empty());
    assert!(app.search_all("Encounter").await.is_empty());
}
