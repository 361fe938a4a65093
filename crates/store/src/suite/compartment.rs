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

/// Every read path hands back the Patient compartment stored beside the row, so the audit of a
/// read need not parse bodies: the Patient's own id for a Patient, the subject for the rest,
/// none for a resource outside any compartment.
pub async fn stored_resources_carry_their_patient(store: Store) {
    two_patients(&store).await;
    create(
        &store,
        ResourceType::Organization,
        "org-practice",
        json!({"resourceType": "Organization", "name": "Leeds Road Surgery"}),
    )
    .await;
    let expect = |r: &crate::model::StoredResource| -> Option<&'static str> {
        match (r.resource_type, r.id.as_str()) {
            (ResourceType::Organization, _) => None,
            (_, id) if id.contains("jane") => Some("pat-jane"),
            (_, id) if id.contains("john") => Some("pat-john"),
            (rt, id) => panic!("unexpected {rt}/{id}"),
        }
    };
    let check = |rs: &[crate::model::StoredResource]| {
        assert!(!rs.is_empty());
        for r in rs {
            assert_eq!(
                r.patient_id.as_deref(),
                expect(r),
                "{}/{}",
                r.resource_type,
                r.id
            );
        }
    };
    let vis = Visibility::All;
    for (rt, id) in [
        (ResourceType::Patient, "pat-jane"),
        (ResourceType::Observation, "obs-john-hr"),
        (ResourceType::Organization, "org-practice"),
    ] {
        let r = store.read(rt, &lid(id), &vis).await.unwrap();
        check(std::slice::from_ref(&r));
        let v = store.vread(rt, &lid(id), r.version_id, &vis).await.unwrap();
        check(&[v]);
    }
    let found = store
        .search(
            &super::query(
                ResourceType::Observation,
                &[("_include", "Observation:subject"), ("_sort", "-date")],
            ),
            2,
            &vis,
        )
        .await
        .unwrap();
    check(&found.matches);
    check(&found.included);
    let history = store
        .history(
            None,
            None,
            &crate::model::HistoryQuery {
                count: 100,
                ..Default::default()
            },
            &vis,
        )
        .await
        .unwrap();
    check(&history.items);
    let all = store
        .everything(&lid("pat-john"), None, &[], 100, None, &vis)
        .await
        .unwrap();
    check(&all.items);
    let mut tx = store.begin().await.unwrap();
    let current = tx
        .current(ResourceType::Condition, &lid("cond-jane-asthma"))
        .await
        .unwrap();
    check(&current.into_iter().collect::<Vec<_>>());
    drop(tx);
    // A deletion reports the person the deleted resource belonged to.
    let gone = delete(&store, ResourceType::Observation, "obs-jane-hr")
        .await
        .unwrap();
    assert_eq!(gone.resource.patient_id.as_deref(), Some("pat-jane"));
}
