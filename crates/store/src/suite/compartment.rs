//! The patient compartment (`$everything`).

use carerecord_access::Visibility;
use carerecord_fhir::ResourceType;
use serde_json::json;

use crate::StoreError;
use crate::model::now_micros;

use super::{Store, create, delete, keys, lid, observation, strs, tick, two_patients, update};

pub async fn everything_returns_the_patients_compartment_only(store: Store) {
    two_patients(&store).await;
    create(
        &store,
        ResourceType::Organization,
        "org-practice",
        json!({"resourceType": "Organization", "name": "Leeds Road Surgery"}),
    )
    .await;
    let page = store
        .everything(&lid("pat-jane"), None, &[], 100, None, &Visibility::All)
        .await
        .unwrap();
    assert_eq!(
        keys(&page.items),
        strs(&[
            "Condition/cond-jane-asthma",
            "Encounter/enc-jane",
            "Observation/obs-jane-hr",
            "Observation/obs-jane-wt",
            "Patient/pat-jane",
        ])
    );
    assert!(page.next_cursor.is_none());
    let john = store
        .everything(&lid("pat-john"), None, &[], 100, None, &Visibility::All)
        .await
        .unwrap();
    assert_eq!(
        keys(&john.items),
        strs(&[
            "Condition/cond-john-diabetes",
            "Observation/obs-john-hr",
            "Patient/pat-john"
        ])
    );
    // Deleted resources leave the compartment; moved resources move.
    delete(&store, ResourceType::Condition, "cond-jane-asthma").await;
    update(
        &store,
        ResourceType::Observation,
        "obs-jane-wt",
        observation("pat-john", "29463-7", 80.0, "kg", "2024-05-01"),
        None,
    )
    .await
    .unwrap();
    let page = store
        .everything(&lid("pat-jane"), None, &[], 100, None, &Visibility::All)
        .await
        .unwrap();
    assert_eq!(
        keys(&page.items),
        strs(&[
            "Encounter/enc-jane",
            "Observation/obs-jane-hr",
            "Patient/pat-jane"
        ])
    );
    assert!(
        store
            .everything(&lid("pat-nobody"), None, &[], 100, None, &Visibility::All)
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

pub async fn everything_filters_by_type_and_pages(store: Store) {
    two_patients(&store).await;
    tick().await;
    let mid = now_micros();
    tick().await;
    create(
        &store,
        ResourceType::Observation,
        "obs-jane-bp",
        observation("pat-jane", "8480-6", 120.0, "mm[Hg]", "2024-05-02"),
    )
    .await;

    let obs = store
        .everything(
            &lid("pat-jane"),
            None,
            &[ResourceType::Observation],
            100,
            None,
            &Visibility::All,
        )
        .await
        .unwrap();
    assert_eq!(
        keys(&obs.items),
        strs(&[
            "Observation/obs-jane-bp",
            "Observation/obs-jane-hr",
            "Observation/obs-jane-wt"
        ])
    );
    let two = store
        .everything(
            &lid("pat-jane"),
            None,
            &[ResourceType::Patient, ResourceType::Condition],
            100,
            None,
            &Visibility::All,
        )
        .await
        .unwrap();
    assert_eq!(
        keys(&two.items),
        strs(&["Condition/cond-jane-asthma", "Patient/pat-jane"])
    );
    let since = store
        .everything(
            &lid("pat-jane"),
            Some(mid),
            &[],
            100,
            None,
            &Visibility::All,
        )
        .await
        .unwrap();
    assert_eq!(keys(&since.items), strs(&["Observation/obs-jane-bp"]));

    // Pages of two.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = store
            .everything(
                &lid("pat-jane"),
                None,
                &[],
                2,
                cursor.as_deref(),
                &Visibility::All,
            )
            .await
            .unwrap();
        assert!(page.items.len() <= 2);
        seen.extend(keys(&page.items));
        pages += 1;
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
        assert!(pages < 20);
    }
    assert_eq!(pages, 3);
    assert_eq!(
        seen,
        strs(&[
            "Condition/cond-jane-asthma",
            "Encounter/enc-jane",
            "Observation/obs-jane-bp",
            "Observation/obs-jane-hr",
            "Observation/obs-jane-wt",
            "Patient/pat-jane",
        ])
    );
    assert!(matches!(
        store
            .everything(
                &lid("pat-jane"),
                None,
                &[],
                2,
                Some("garbage"),
                &Visibility::All
            )
            .await,
        Err(StoreError::InvalidCursor)
    ));
}
