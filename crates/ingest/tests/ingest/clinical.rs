//! What an admission carries besides the stay: allergies (AL1), diagnoses (DG1) and next of kin
//! (NK1), filed under the matched person and upserted, not duplicated, when sent again.

use carerecord_fhir::ResourceType;
use serde_json::Value;
use tokio::net::TcpStream;

use super::{NHS, edited, exchange, fixture, msa, search, spawn_app};

async fn counts(app: &super::App, pid: &str) -> (usize, usize, usize) {
    let of = |rt, param: &'static str| {
        let subject = format!("Patient/{pid}");
        let store = app.store.clone();
        async move { search(&store, rt, &[(param, subject.as_str())]).await.len() }
    };
    (
        of(ResourceType::AllergyIntolerance, "patient").await,
        of(ResourceType::Condition, "subject").await,
        of(ResourceType::RelatedPerson, "patient").await,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allergies_diagnoses_and_next_of_kin_are_filed_under_the_person_once() {
    let app = spawn_app().await;
    let mut conn = TcpStream::connect(app.addr).await.unwrap();
    let a01 = fixture("adt_a01_allergies_diagnoses_kin");
    let ack = exchange(&mut conn, &a01).await;
    assert_eq!(msa(&ack).0, "AA", "{}", String::from_utf8_lossy(&ack));

    let patients = search(
        &app.store,
        ResourceType::Patient,
        &[("identifier", &format!("{NHS}|9990000034"))],
    )
    .await;
    assert_eq!(patients.len(), 1);
    let pid = patients[0]["id"].as_str().unwrap().to_owned();

    // Four distinct allergens (penicillin twice, one empty AL1), four distinct diagnoses (I10
    // twice, one empty DG1), two people (David sent twice, one empty NK1).
    assert_eq!(counts(&app, &pid).await, (4, 4, 2));
    let allergies = search(
        &app.store,
        ResourceType::AllergyIntolerance,
        &[("patient", &format!("Patient/{pid}"))],
    )
    .await;
    let severe: Vec<&Value> = allergies
        .iter()
        .filter(|a| a["reaction"][0]["severity"] == "severe")
        .collect();
    assert_eq!(severe.len(), 1, "{allergies:?}");
    assert_eq!(severe[0]["category"][0], "medication");

    // Each condition belongs to the stay the message records.
    let stays = search(
        &app.store,
        ResourceType::Encounter,
        &[("subject", &format!("Patient/{pid}"))],
    )
    .await;
    assert_eq!(stays.len(), 1);
    let stay = format!("Encounter/{}", stays[0]["id"].as_str().unwrap());
    let conditions = search(
        &app.store,
        ResourceType::Condition,
        &[("subject", &format!("Patient/{pid}"))],
    )
    .await;
    assert!(
        conditions
            .iter()
            .all(|c| c["encounter"]["reference"] == stay),
        "{conditions:?}"
    );
    assert!(
        stays[0]["participant"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["type"][0]["coding"][0]["code"] == "ATND"),
        "{}",
        stays[0]
    );

    // An update of the same stay (a new message id): the same items, not copies.
    let a08 = edited(&a01, "ZRH01-0101", "ZRH01-0102");
    let ack = exchange(&mut conn, &a08).await;
    assert_eq!(msa(&ack).0, "AA", "{}", String::from_utf8_lossy(&ack));
    assert_eq!(counts(&app, &pid).await, (4, 4, 2));
}
