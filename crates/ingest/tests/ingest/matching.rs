//! Identity matching against stored Patients, one path per test.

use std::sync::Arc;

use carerecord_access::Visibility;
use carerecord_fhir::ResourceType;
use carerecord_ingest::IngestError;
use carerecord_ingest::matching::{
    IncomingPerson, MatchContext, MatchedBy, Outcome, Resolved, resolve,
};
use carerecord_ingest::review::{self, Reviewer};
use carerecord_store::ingest::{self, ReviewStatus};
use carerecord_store::{AuditAgent, Channel, PrincipalKind, ResourceStore, write};
use serde_json::{Value, json};

use super::{NHS, body, lid, search, spawn_app};

const MRN_ZRH01: &str = "https://fhir.carerecord.example/Id/mrn/ZRH01";
const STATUS_EXT: &str =
    "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus";
const STATUS_SYSTEM: &str =
    "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland";

fn stored_patient(
    nhs: Option<(&str, &str)>,
    mrn: Option<&str>,
    family: &str,
    given: &str,
    dob: &str,
    gender: &str,
    postcode: &str,
) -> Value {
    let mut ids = Vec::new();
    if let Some((n, status)) = nhs {
        ids.push(
            json!({"system": NHS, "value": n, "extension": [{"url": STATUS_EXT,
            "valueCodeableConcept": {"coding": [{"system": STATUS_SYSTEM, "code": status}]}}]}),
        );
    }
    if let Some(m) = mrn {
        ids.push(json!({"system": MRN_ZRH01, "value": m}));
    }
    json!({"resourceType": "Patient", "identifier": ids,
        "meta": {"tag": [{"system": "https://fhir.carerecord.example/CodeSystem/source-organisation", "code": "ZGP01"}]},
        "name": [{"use": "official", "family": family, "given": [given]}],
        "gender": gender, "birthDate": dob, "address": [{"postalCode": postcode}]})
}

async fn put(store: &Arc<dyn ResourceStore>, id: &str, body: Value) {
    let mut tx = store.begin().await.unwrap();
    write::update(tx.as_mut(), ResourceType::Patient, &lid(id), body, None)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

async fn resolved(
    store: &Arc<dyn ResourceStore>,
    person: &IncomingPerson,
) -> Result<Resolved, IngestError> {
    let mut tx = store.begin().await.unwrap();
    let r = resolve(
        tx.as_mut(),
        person,
        &MatchContext {
            source_ods: "ZRH01",
            now: 1,
        },
    )
    .await?;
    tx.commit().await.unwrap();
    Ok(r)
}

fn incoming(
    nhs: Option<(&str, Option<&str>)>,
    mrn: Option<&str>,
    family: &str,
    given: &str,
    dob: &str,
    gender: &str,
    postcode: &str,
) -> IncomingPerson {
    let mut ids = Vec::new();
    if let Some(m) = mrn {
        ids.push(json!({"system": MRN_ZRH01, "value": m}));
    }
    IncomingPerson {
        nhs_number: nhs.map(|(n, _)| n.to_owned()),
        nhs_verification: nhs.and_then(|(_, s)| s.map(str::to_owned)),
        local_ids: mrn
            .map(|m| vec![("ZRH01".to_owned(), m.to_owned())])
            .unwrap_or_default(),
        family: Some(family.into()),
        given: vec![given.into()],
        birth_date: Some(dob.into()),
        gender: Some(gender.into()),
        postcode: Some(postcode.into()),
        patient: json!({"resourceType": "Patient", "identifier": ids,
            "meta": {"tag": [{"system": "https://fhir.carerecord.example/CodeSystem/source-organisation", "code": "ZRH01"}]},
            "name": [{"family": family, "given": [given]}], "gender": gender, "birthDate": dob,
            "address": [{"postalCode": postcode}]}),
    }
}

async fn patient(store: &Arc<dyn ResourceStore>, id: &str) -> Value {
    body(
        &store
            .read(ResourceType::Patient, &lid(id), &Visibility::All)
            .await
            .unwrap(),
    )
}

fn has_identifier(p: &Value, system: &str, value: &str) -> bool {
    p["identifier"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["system"] == system && i["value"] == value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_nhs_number_finds_the_person_whatever_the_demographics_say() {
    let app = spawn_app().await;
    put(
        &app.store,
        "p1",
        stored_patient(
            Some(("9990000018", "01")),
            None,
            "Smith",
            "Jane",
            "1984-03-12",
            "female",
            "LS1 4AP",
        ),
    )
    .await;
    // A new surname (marriage) and a new address: the verified number decides.
    let r = resolved(
        &app.store,
        &incoming(
            Some(("999 000 0018", Some("01"))),
            Some("M1"),
            "Jones",
            "Jane",
            "1984-03-12",
            "female",
            "E1 6AN",
        ),
    )
    .await
    .unwrap();
    assert_eq!(r.patient_id, "p1");
    assert_eq!(r.outcome, Outcome::Existing(MatchedBy::NhsNumber));
    // The hospital's number is added to the record as a new version.
    let p = patient(&app.store, "p1").await;
    assert!(has_identifier(&p, MRN_ZRH01, "M1"));
    assert_eq!(p["meta"]["versionId"], "2");
    assert_eq!(
        p["name"][0]["family"], "Smith",
        "another source's demographics are left alone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unverified_nhs_number_is_not_a_key() {
    let app = spawn_app().await;
    put(
        &app.store,
        "p1",
        stored_patient(
            Some(("9990000018", "01")),
            None,
            "Smith",
            "Jane",
            "1984-03-12",
            "female",
            "LS1 4AP",
        ),
    )
    .await;
    // Status 02 (not traced) with nothing else in common: a new person.
    let r = resolved(
        &app.store,
        &incoming(
            Some(("9990000018", Some("02"))),
            None,
            "Brown",
            "Ann",
            "1990-01-01",
            "female",
            "E1 6AN",
        ),
    )
    .await
    .unwrap();
    assert_ne!(r.patient_id, "p1");
    assert!(matches!(r.outcome, Outcome::Created { review: None, .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_nhs_number_is_an_error_and_nothing_is_written() {
    let app = spawn_app().await;
    let r = resolved(
        &app.store,
        &incoming(
            Some(("9990000019", Some("01"))),
            Some("M1"),
            "Smith",
            "Jane",
            "1984-03-12",
            "female",
            "LS1 4AP",
        ),
    )
    .await;
    assert!(matches!(r, Err(IngestError::InvalidNhsNumber(_))), "{r:?}");
    assert!(
        search(&app.store, ResourceType::Patient, &[])
            .await
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sources_local_identifier_finds_the_person() {
    let app = spawn_app().await;
    put(
        &app.store,
        "p1",
        stored_patient(
            None,
            Some("M1"),
            "Smith",
            "Jane",
            "1984-03-12",
            "female",
            "LS1 4AP",
        ),
    )
    .await;
    let r = resolved(
        &app.store,
        &incoming(
            None,
            Some("M1"),
            "Smyth",
            "J",
            "1984-03-21",
            "unknown",
            "E1 6AN",
        ),
    )
    .await
    .unwrap();
    assert_eq!(r.patient_id, "p1");
    assert_eq!(r.outcome, Outcome::Existing(MatchedBy::LocalId));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confident_demographics_link_and_add_the_local_identifier() {
    let app = spawn_app().await;
    put(
        &app.store,
        "p1",
        stored_patient(
            None,
            None,
            "O'Brien",
            "Zoë",
            "1940-02-03",
            "female",
            "SE1 7EH",
        ),
    )
    .await;
    let r = resolved(
        &app.store,
        &incoming(
            None,
            Some("M7"),
            "OBRIEN",
            "Zoe",
            "1940-02-03",
            "female",
            "SE1 7EH",
        ),
    )
    .await
    .unwrap();
    assert_eq!(r.patient_id, "p1");
    assert!(
        matches!(r.outcome, Outcome::Existing(MatchedBy::Demographics { score }) if score >= 85)
    );
    assert!(has_identifier(
        &patient(&app.store, "p1").await,
        MRN_ZRH01,
        "M7"
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uncertain_match_creates_a_separate_person_and_a_review_item_that_can_be_linked_and_undone()
 {
    let app = spawn_app().await;
    put(
        &app.store,
        "p1",
        stored_patient(
            None,
            None,
            "Smith",
            "Margaret",
            "1940-02-03",
            "female",
            "SE1 7EH",
        ),
    )
    .await;
    let r = resolved(
        &app.store,
        &incoming(
            None,
            Some("M9"),
            "Smith",
            "Mary",
            "1940-02-03",
            "female",
            "SE1 7EH",
        ),
    )
    .await
    .unwrap();
    assert_ne!(r.patient_id, "p1");
    let Outcome::Created {
        review: Some(item),
        candidate,
    } = r.outcome.clone()
    else {
        panic!("{:?}", r.outcome);
    };
    assert_eq!(candidate.as_deref(), Some("p1"));
    let open = ingest::list_reviews(app.store.as_ref(), Some(ReviewStatus::Open), 0, 10)
        .await
        .unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(
        (open[0].id, open[0].patient_id.as_str()),
        (item, r.patient_id.as_str())
    );

    // A reviewer says they are the same person: the new record is merged into the old one.
    let who = Reviewer {
        agent: AuditAgent {
            kind: PrincipalKind::User,
            id: "dq-officer".into(),
            name: None,
            role: None,
            organisation_id: None,
            ods_code: None,
        },
        channel: Channel::Cli,
        client_address: None,
        request_id: None,
    };
    let merged = review::link(app.store.as_ref(), item, &who).await.unwrap();
    let new = patient(&app.store, &r.patient_id).await;
    assert_eq!(new["active"], false);
    assert_eq!(new["link"][0]["other"]["reference"], "Patient/p1");
    assert_eq!(new["meta"]["versionId"], "2", "the earlier version is kept");
    assert!(
        review::link(app.store.as_ref(), item, &who).await.is_err(),
        "decided once"
    );
    let decided = ingest::review(app.store.as_ref(), item).await.unwrap();
    assert_eq!(decided.status, ReviewStatus::Linked);
    assert_eq!(decided.merge_id, Some(merged.merge_id));
    // A later message under the new record's number reaches the survivor.
    let again = resolved(
        &app.store,
        &incoming(
            None,
            Some("M9"),
            "Smith",
            "Mary",
            "1940-02-03",
            "female",
            "SE1 7EH",
        ),
    )
    .await
    .unwrap();
    assert_eq!(again.patient_id, "p1");

    // Undone: separate again, both active, no links.
    review::unmerge(app.store.as_ref(), merged.merge_id, &who)
        .await
        .unwrap();
    let new = patient(&app.store, &r.patient_id).await;
    assert_eq!(new["active"], true);
    assert!(new.get("link").is_none());
    assert!(patient(&app.store, "p1").await.get("link").is_none());
    assert!(
        review::unmerge(app.store.as_ref(), merged.merge_id, &who)
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_review_item_leaves_both_records_alone() {
    let app = spawn_app().await;
    put(
        &app.store,
        "p1",
        stored_patient(
            None,
            None,
            "Smith",
            "Margaret",
            "1940-02-03",
            "female",
            "SE1 7EH",
        ),
    )
    .await;
    let r = resolved(
        &app.store,
        &incoming(
            None,
            None,
            "Smith",
            "Mary",
            "1940-02-03",
            "female",
            "SE1 7EH",
        ),
    )
    .await
    .unwrap();
    let Outcome::Created {
        review: Some(item), ..
    } = r.outcome
    else {
        panic!("{:?}", r.outcome);
    };
    let who = Reviewer {
        agent: AuditAgent {
            kind: PrincipalKind::User,
            id: "dq-officer".into(),
            name: None,
            role: None,
            organisation_id: None,
            ods_code: None,
        },
        channel: Channel::Cli,
        client_address: None,
        request_id: None,
    };
    review::reject(app.store.as_ref(), item, &who)
        .await
        .unwrap();
    assert_eq!(
        ingest::review(app.store.as_ref(), item)
            .await
            .unwrap()
            .status,
        ReviewStatus::Rejected
    );
    assert_eq!(
        patient(&app.store, &r.patient_id).await["meta"]["versionId"],
        "1"
    );
    assert!(
        review::reject(app.store.as_ref(), item, &who)
            .await
            .is_err()
    );
}
