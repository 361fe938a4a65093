//! What an admission carries besides the stay: allergies (AL1), diagnoses (DG1) and next of kin
//! (NK1), filed under the matched person and upserted, not duplicated, when sent again.

use carerecord_fhir::ResourceType;
use serde_json::Value;
use tokio::net::TcpStream;

use super::{NHS, edited, exchange, fixture, msa, search, spawn_app};

/// The id of the one Patient with NHS number `nhs`.
async fn the_person(app: &super::App, nhs: &str) -> String {
    let patients = search(
        &app.store,
        ResourceType::Patient,
        &[("identifier", &format!("{NHS}|{nhs}"))],
    )
    .await;
    assert_eq!(patients.len(), 1);
    patients[0]["id"].as_str().unwrap().to_owned()
}

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

    let pid = the_person(&app, "9990000034").await;

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

async fn accepted(conn: &mut TcpStream, message: Vec<u8>) {
    let ack = exchange(conn, &message).await;
    assert_eq!(msa(&ack).0, "AA", "{}", String::from_utf8_lossy(&ack));
}

/// A sender that first knows the person only by NHS number and later sends its own MRN too
/// updates the same allergy and contacts (their keys name carerecord's id for the person, not
/// the message's identifiers); a contact the later message no longer lists is retired, and
/// comes back when listed again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allergies_and_contacts_keep_their_records_when_the_sender_adds_its_own_id() {
    let app = spawn_app().await;
    let mut conn = TcpStream::connect(app.addr).await.unwrap();
    let message = |id: &str, pid3: &str, nk1: &str| {
        format!(
            "MSH|^~\\&|PAS|ZRH01|CARERECORD|ZCR01|20260801100000||ADT^A31^ADT_A05|{id}|P|2.4\r\
             EVN|A31|20260801100000\r\
             PID|1||{pid3}||SAMPLE^CAROL||19450203|F|||7 EXAMPLE LANE^^LONDON^^E1 9ZZ\r\
             {nk1}AL1|1|DA|PEN^Penicillin^LOCAL|SV|Rash\r"
        )
        .into_bytes()
    };
    let both = "NK1|1|SAMPLE^DAVID|SPO\rNK1|2|SAMPLE^EMMA|CHD\r";
    accepted(&mut conn, message("K1", "9990000034^^^NHS^NH", both)).await;
    let pid = the_person(&app, "9990000034").await;
    assert_eq!(counts(&app, &pid).await, (1, 0, 2));

    let active = |app: &super::App| {
        let store = app.store.clone();
        let subject = format!("Patient/{pid}");
        async move {
            let mut v: Vec<(String, bool)> = search(
                &store,
                ResourceType::RelatedPerson,
                &[("patient", subject.as_str())],
            )
            .await
            .iter()
            .map(|r| {
                (
                    r["name"][0]["given"][0]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    r["active"].as_bool().unwrap_or(true),
                )
            })
            .collect();
            v.sort();
            v
        }
    };
    // Now with the MRN, and only David: the same allergy and David updated, Emma retired.
    accepted(
        &mut conn,
        message(
            "K2",
            "9990000034^^^NHS^NH~RX3333333^^^ZRH01^MR",
            "NK1|1|SAMPLE^DAVID|SPO\r",
        ),
    )
    .await;
    assert_eq!(counts(&app, &pid).await, (1, 0, 2));
    assert_eq!(
        active(&app).await,
        [("DAVID".to_owned(), true), ("EMMA".to_owned(), false)]
    );
    let allergy = search(
        &app.store,
        ResourceType::AllergyIntolerance,
        &[("patient", &format!("Patient/{pid}"))],
    )
    .await;
    assert_eq!(allergy[0]["meta"]["versionId"], "2", "{:?}", allergy[0]);

    // A message naming no contact says nothing about them.
    accepted(&mut conn, message("K3", "RX3333333^^^ZRH01^MR", "")).await;
    assert_eq!(
        active(&app).await,
        [("DAVID".to_owned(), true), ("EMMA".to_owned(), false)]
    );
    // Listed again: active again, still two records.
    accepted(&mut conn, message("K4", "RX3333333^^^ZRH01^MR", both)).await;
    assert_eq!(counts(&app, &pid).await, (1, 0, 2));
    assert_eq!(
        active(&app).await,
        [("DAVID".to_owned(), true), ("EMMA".to_owned(), true)]
    );
}

/// After an A40 merge, the survivor's next message updates the allergies it absorbed instead
/// of adding copies: an allergy the merged record had is re-keyed on the survivor, unless the
/// survivor had its own for the same allergen (then both stay, as the sender sent them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merged_records_allergies_are_updated_by_the_survivors_next_message() {
    let app = spawn_app().await;
    let mut conn = TcpStream::connect(app.addr).await.unwrap();
    let a31 = |id: &str, pid: &str, al1: &str| {
        format!(
            "MSH|^~\\&|PAS|ZRH01|CARERECORD|ZCR01|20260801100000||ADT^A31^ADT_A05|{id}|P|2.4\r\
             EVN|A31|20260801100000\r\
             {pid}\r\
             {al1}"
        )
        .into_bytes()
    };
    let latex = "AL1|1|MA|LTX^Latex^LOCAL|MO|Hives\r";
    let penicillin = "AL1|2|DA|PEN^Penicillin^LOCAL|SV|Rash\r";
    // The record to be merged away: known by the MRN only, a latex and a penicillin allergy.
    accepted(
        &mut conn,
        a31(
            "M1",
            "PID|1||RX7777777^^^ZRH01^MR||OTHER^CARRIE||19500101|F",
            &format!("{latex}{penicillin}"),
        ),
    )
    .await;
    // The survivor, with its own penicillin allergy.
    let survivor = "PID|1||9990000034^^^NHS^NH~RX3333333^^^ZRH01^MR||SAMPLE^CAROL||19450203|F";
    accepted(&mut conn, a31("S1", survivor, penicillin)).await;
    let pid = the_person(&app, "9990000034").await;
    assert_eq!(counts(&app, &pid).await.0, 1);

    let a40 = format!(
        "MSH|^~\\&|PAS|ZRH01|CARERECORD|ZCR01|20260802090000||ADT^A40^ADT_A39|M2|P|2.4\r\
         EVN|A40|20260802090000\r\
         {survivor}\r\
         MRG|RX7777777^^^ZRH01^MR||||||OTHER^CARRIE\r"
    );
    accepted(&mut conn, a40.into_bytes()).await;
    // Absorbed: latex and both penicillin allergies.
    assert_eq!(counts(&app, &pid).await.0, 3);

    // The survivor's next message names latex and penicillin: no copies.
    accepted(
        &mut conn,
        a31("S2", survivor, &format!("{latex}{penicillin}")),
    )
    .await;
    let allergies = search(
        &app.store,
        ResourceType::AllergyIntolerance,
        &[("patient", &format!("Patient/{pid}"))],
    )
    .await;
    let named = |code: &str| {
        allergies
            .iter()
            .filter(|a| a["code"]["coding"][0]["code"] == code)
            .count()
    };
    assert_eq!((named("LTX"), named("PEN")), (1, 2), "{allergies:#?}");
}
