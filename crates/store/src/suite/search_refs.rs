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
    // Every resource has a time, though it is not kept as an index row.
    assert_eq!(
        id_set(&store, p, &[("_lastUpdated:missing", "false")]).await,
        strs(&["pat-a", "pat-b"])
    );
    assert!(
        id_set(&store, p, &[("_lastUpdated:missing", "true")])
            .await
            .is_empty()
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

/// `patient`, `combo-code`, `combo-value-quantity` and `phonetic` have no index rows of their
/// own (they repeat `subject`, `code`/`component-code`, `value-quantity`/`component-value-quantity`
/// and `name`): every way of searching them still finds what their expressions select, and
/// nothing else.
pub async fn parameters_stored_as_others_are_searched_through_their_rows(store: Store) {
    two_patients(&store).await;
    let o = ResourceType::Observation;
    // A blood pressure panel: its codes and values are in components.
    let mut bp = observation("pat-john", "85354-9", 0.0, "mm[Hg]", "2024-01-02T10:00:00Z");
    if let Some(b) = bp.as_object_mut() {
        b.remove("valueQuantity");
    }
    bp["component"] = json!([
        {"code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
         "valueQuantity": {"value": 141, "unit": "mm[Hg]", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},
    ]);
    create(&store, o, "obs-john-bp", bp).await;
    // About a place, not a patient: `subject` finds it, `patient` must not.
    let mut group = observation("x", "8867-4", 70.0, "/min", "2024-01-03T10:00:00Z");
    group["subject"] = json!({"reference": "Location/ward-7"});
    create(&store, o, "obs-group", group).await;

    assert_eq!(
        id_set(&store, o, &[("combo-code", &format!("{LOINC}|8867-4"))]).await,
        strs(&["obs-group", "obs-jane-hr", "obs-john-hr"])
    );
    assert_eq!(
        id_set(&store, o, &[("combo-code", "8480-6")]).await,
        strs(&["obs-john-bp"])
    );
    assert_eq!(
        id_set(&store, o, &[("code", "8480-6")]).await,
        Vec::<String>::new()
    );
    assert_eq!(
        id_set(&store, o, &[("combo-code:not", "8867-4")]).await,
        strs(&["obs-jane-wt", "obs-john-bp"])
    );
    assert_eq!(
        id_set(&store, o, &[("combo-value-quantity", "gt140")]).await,
        strs(&["obs-john-bp"])
    );
    assert_eq!(
        id_set(&store, o, &[("combo-value-quantity", "gt70")]).await,
        strs(&["obs-jane-hr", "obs-john-bp", "obs-john-hr"])
    );
    assert_eq!(
        id_set(&store, o, &[("patient", "Patient/pat-john")]).await,
        strs(&["obs-john-bp", "obs-john-hr"])
    );
    assert_eq!(
        id_set(&store, o, &[("subject", "Location/ward-7")]).await,
        strs(&["obs-group"])
    );
    assert_eq!(
        id_set(&store, o, &[("patient", "Location/ward-7")]).await,
        Vec::<String>::new()
    );
    assert_eq!(
        id_set(&store, o, &[("patient:missing", "true")]).await,
        strs(&["obs-group"])
    );
    assert_eq!(
        id_set(&store, o, &[("combo-code:missing", "true")]).await,
        Vec::<String>::new()
    );
    let jane = format!("{NHS}|9990000018");
    assert_eq!(
        id_set(&store, o, &[("patient.identifier", &jane)]).await,
        strs(&["obs-jane-hr", "obs-jane-wt"])
    );
    assert_eq!(
        id_set(&store, ResourceType::Patient, &[("phonetic", "smi")]).await,
        strs(&["pat-jane"])
    );
    // Sorted by a parameter stored as another: by the other's values.
    assert_eq!(
        super::ids(
            &store,
            o,
            &[("patient", "pat-john"), ("_sort", "-combo-value-quantity")]
        )
        .await,
        strs(&["obs-john-bp", "obs-john-hr"])
    );

    let out = store
        .search(
            &query(
                o,
                &[("code", "8867-4"), ("_include", "Observation:patient")],
            ),
            100,
            &Visibility::All,
        )
        .await
        .unwrap();
    let mut inc: Vec<String> = out
        .included
        .iter()
        .map(|r| format!("{}/{}", r.resource_type, r.id.as_str()))
        .collect();
    inc.sort();
    assert_eq!(inc, strs(&["Patient/pat-jane", "Patient/pat-john"]));
    let out = store
        .search(
            &query(
                ResourceType::Patient,
                &[("_id", "pat-john"), ("_revinclude", "Observation:patient")],
            ),
            100,
            &Visibility::All,
        )
        .await
        .unwrap();
    let mut rev: Vec<String> = out
        .included
        .iter()
        .map(|r| r.id.as_str().to_owned())
        .collect();
    rev.sort();
    assert_eq!(rev, strs(&["obs-john-bp", "obs-john-hr"]));
}
