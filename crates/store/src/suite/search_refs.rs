//! Search by parameter type, continued: references, chains, quantities, `_id`/`_lastUpdated`/`_tag`,
//! and versions that no longer match.

use carerecord_access::Visibility;
use carerecord_fhir::ResourceType;
use serde_json::json;

use crate::format_instant;
use crate::model::now_micros;

use super::{
    BASE_URL, LOINC, NHS, Store, create, delete, id_set, nhs, observation, patient, query, strs,
    tick, two_patients, update,
};

pub async fn search_by_reference_matches_local_references(store: Store) {
    two_patients(&store).await;
    let o = ResourceType::Observation;
    assert_eq!(
        id_set(&store, o, &[("subject", "Patient/pat-jane")]).await,
        strs(&["obs-jane-hr", "obs-jane-wt"])
    );
    assert_eq!(
        id_set(&store, o, &[("subject", "pat-john")]).await,
        strs(&["obs-john-hr"])
    );
    assert_eq!(
        id_set(&store, o, &[("patient", "pat-john")]).await,
        strs(&["obs-john-hr"])
    );
    assert_eq!(
        id_set(&store, o, &[("subject:Patient", "pat-john")]).await,
        strs(&["obs-john-hr"])
    );
    assert_eq!(
        id_set(
            &store,
            o,
            &[("subject", &format!("{BASE_URL}/Patient/pat-jane"))]
        )
        .await,
        strs(&["obs-jane-hr", "obs-jane-wt"])
    );
    assert!(
        id_set(&store, o, &[("subject", "Patient/nobody")])
            .await
            .is_empty()
    );
}

pub async fn search_by_chained_patient_identifier(store: Store) {
    two_patients(&store).await;
    let o = ResourceType::Observation;
    let jane = format!("{NHS}|9990000018");
    assert_eq!(
        id_set(&store, o, &[("subject:Patient.identifier", &jane)]).await,
        strs(&["obs-jane-hr", "obs-jane-wt"])
    );
    assert_eq!(
        id_set(&store, o, &[("patient.identifier", &jane)]).await,
        strs(&["obs-jane-hr", "obs-jane-wt"])
    );
    assert_eq!(
        id_set(
            &store,
            ResourceType::Condition,
            &[("subject:Patient.family", "jones")]
        )
        .await,
        strs(&["cond-john-diabetes"])
    );
    assert_eq!(
        id_set(
            &store,
            o,
            &[("subject:Patient.birthdate", "lt1960"), ("code", "8867-4")]
        )
        .await,
        strs(&["obs-john-hr"])
    );
    assert!(
        id_set(
            &store,
            o,
            &[("subject:Patient.identifier", &format!("{NHS}|9990000034"))]
        )
        .await
        .is_empty()
    );
    // A deleted patient no longer matches through the chain.
    delete(&store, ResourceType::Patient, "pat-jane").await;
    assert!(
        id_set(&store, o, &[("subject:Patient.identifier", &jane)])
            .await
            .is_empty()
    );
}

pub async fn search_by_reference_identifier_modifier(store: Store) {
    two_patients(&store).await;
    let o = ResourceType::Observation;
    create(
        &store,
        o,
        "obs-by-identifier",
        json!({
            "resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": LOINC, "code": "8867-4"}]},
            "subject": {"identifier": {"system": NHS, "value": nhs("9990000026")}},
        }),
    )
    .await;
    assert_eq!(
        id_set(
            &store,
            o,
            &[("subject:identifier", &format!("{NHS}|9990000026"))]
        )
        .await,
        strs(&["obs-by-identifier"])
    );
    assert!(
        id_set(
            &store,
            o,
            &[("subject:identifier", &format!("{NHS}|9990000018"))]
        )
        .await
        .is_empty()
    );
}

pub async fn search_by_quantity_with_value_and_unit(store: Store) {
    two_patients(&store).await;
    let o = ResourceType::Observation;
    create(
        &store,
        o,
        "obs-jane-wt-lb",
        observation("pat-jane", "29463-7", 64.5, "[lb_av]", "2024-05-02"),
    )
    .await;
    assert_eq!(
        id_set(
            &store,
            o,
            &[("value-quantity", "64.5|http://unitsofmeasure.org|kg")]
        )
        .await,
        strs(&["obs-jane-wt"])
    );
    assert_eq!(
        id_set(&store, o, &[("value-quantity", "64.5||kg")]).await,
        strs(&["obs-jane-wt"])
    );
    assert_eq!(
        id_set(&store, o, &[("value-quantity", "64.5")]).await,
        strs(&["obs-jane-wt", "obs-jane-wt-lb"])
    );
    assert_eq!(
        id_set(&store, o, &[("value-quantity", "gt80")]).await,
        strs(&["obs-john-hr"])
    );
    assert_eq!(
        id_set(
            &store,
            o,
            &[("value-quantity", "le72|http://unitsofmeasure.org|/min")]
        )
        .await,
        strs(&["obs-jane-hr"])
    );
    assert_eq!(
        id_set(&store, o, &[("value-quantity", "lt100||/min")]).await,
        strs(&["obs-jane-hr", "obs-john-hr"])
    );
    // Equality honours the precision written: 64 is [63.5, 64.5).
    assert!(
        id_set(&store, o, &[("value-quantity", "64||kg")])
            .await
            .is_empty()
    );
    assert_eq!(
        id_set(&store, o, &[("value-quantity", "65||kg")]).await,
        strs(&["obs-jane-wt"])
    );
}

pub async fn search_by_id_last_updated_and_tag(store: Store) {
    let p = ResourceType::Patient;
    create(
        &store,
        p,
        "pat-a",
        patient("9990000018", "Smith", "Jane", "1984-03-12", "female"),
    )
    .await;
    tick().await;
    let mid = now_micros();
    tick().await;
    let mut tagged = patient("9990000026", "Jones", "John", "1950-11-02", "male");
    tagged["meta"] =
        json!({"tag": [{"system": "https://example.invalid/tags", "code": "synthetic"}]});
    create(&store, p, "pat-b", tagged).await;

    assert_eq!(
        id_set(&store, p, &[("_id", "pat-a")]).await,
        strs(&["pat-a"])
    );
    assert_eq!(
        id_set(&store, p, &[("_id", "pat-a,pat-b,pat-none")]).await,
        strs(&["pat-a", "pat-b"])
    );
    assert!(
        id_set(&store, ResourceType::Observation, &[("_id", "pat-a")])
            .await
            .is_empty()
    );
    let mid_s = format_instant(mid);
    assert_eq!(
        id_set(&store, p, &[("_lastUpdated", &format!("gt{mid_s}"))]).await,
        strs(&["pat-b"])
    );
    assert_eq!(
        id_set(&store, p, &[("_lastUpdated", &format!("lt{mid_s}"))]).await,
        strs(&["pat-a"])
    );
    assert_eq!(
        id_set(&store, p, &[("_lastUpdated", "ge2000-01-01")]).await,
        strs(&["pat-a", "pat-b"])
    );
    assert_eq!(
        id_set(
            &store,
            p,
            &[("_tag", "https://example.invalid/tags|synthetic")]
        )
        .await,
        strs(&["pat-b"])
    );
    assert_eq!(
        id_set(&store, p, &[("_tag", "synthetic")]).await,
        strs(&["pat-b"])
    );
    assert_eq!(
        id_set(&store, p, &[("_tag:not", "synthetic")]).await,
        strs(&["pat-a"])
    );
}

pub async fn deleted_and_superseded_versions_do_not_match_searches(store: Store) {
    two_patients(&store).await;
    update(
        &store,
        ResourceType::Observation,
        "obs-jane-hr",
        observation("pat-jane", "8867-4", 99.0, "/min", "2024-05-01T09:30:00Z"),
        None,
    )
    .await
    .unwrap();
    assert!(
        id_set(
            &store,
            ResourceType::Observation,
            &[("value-quantity", "72")]
        )
        .await
        .is_empty()
    );
    assert_eq!(
        id_set(
            &store,
            ResourceType::Observation,
            &[("value-quantity", "99")]
        )
        .await,
        strs(&["obs-jane-hr"])
    );
    delete(&store, ResourceType::Observation, "obs-jane-hr").await;
    assert!(
        id_set(
            &store,
            ResourceType::Observation,
            &[("value-quantity", "99")]
        )
        .await
        .is_empty()
    );
    assert_eq!(
        id_set(&store, ResourceType::Observation, &[("code", "8867-4")]).await,
        strs(&["obs-john-hr"])
    );
    let out = store
        .search(
            &query(ResourceType::Observation, &[]),
            100,
            &Visibility::All,
        )
        .await
        .unwrap();
    assert_eq!(out.total, Some(2));
}
