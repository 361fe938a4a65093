//! History, and reading many resources at once.

use carerecord_access::Visibility;
use carerecord_fhir::ResourceType;
use serde_json::json;

use crate::StoreError;
use crate::model::{HistoryQuery, ResourceKey, now_micros};

use super::{
    Store, body_of, create, delete, keys, lid, observation, patient, sorted, strs, tick,
    two_patients, update,
};

pub async fn history_of_an_instance_lists_versions_newest_first(store: Store) {
    let p = ResourceType::Patient;
    create(
        &store,
        p,
        "pat-1",
        patient("9990000018", "Smith", "Jane", "1984-03-12", "female"),
    )
    .await;
    for given in ["Janet", "Janey", "Jan"] {
        update(
            &store,
            p,
            "pat-1",
            patient("9990000018", "Smith", given, "1984-03-12", "female"),
            None,
        )
        .await
        .unwrap();
    }
    delete(&store, p, "pat-1").await;
    create(
        &store,
        p,
        "pat-other",
        patient("9990000026", "Jones", "John", "1950-11-02", "male"),
    )
    .await;

    let all = store
        .history(
            Some(p),
            Some(&lid("pat-1")),
            &HistoryQuery {
                count: 100,
                ..HistoryQuery::default()
            },
            &Visibility::All,
        )
        .await
        .unwrap();
    let versions: Vec<i64> = all.items.iter().map(|r| r.version_id.get()).collect();
    assert_eq!(versions, vec![5, 4, 3, 2, 1]);
    assert_eq!(all.total, Some(5));
    assert!(all.next_cursor.is_none());
    assert!(
        all.items
            .windows(2)
            .all(|w| w[0].last_updated > w[1].last_updated)
    );
    assert_eq!(body_of(&all.items[1])["name"][0]["given"][0], json!("Jan"));

    // Paged by two.
    let mut q = HistoryQuery {
        count: 2,
        ..HistoryQuery::default()
    };
    let mut seen = Vec::new();
    loop {
        let page = store
            .history(Some(p), Some(&lid("pat-1")), &q, &Visibility::All)
            .await
            .unwrap();
        seen.extend(page.items.iter().map(|r| r.version_id.get()));
        match page.next_cursor {
            Some(c) => q.cursor = Some(c),
            None => break,
        }
        assert!(seen.len() < 20);
    }
    assert_eq!(seen, vec![5, 4, 3, 2, 1]);

    // Since the third version.
    let since = all.items[2].last_updated;
    let recent = store
        .history(
            Some(p),
            Some(&lid("pat-1")),
            &HistoryQuery {
                since: Some(since),
                count: 100,
                cursor: None,
            },
            &Visibility::All,
        )
        .await
        .unwrap();
    let versions: Vec<i64> = recent.items.iter().map(|r| r.version_id.get()).collect();
    assert_eq!(versions, vec![5, 4, 3]);
    assert_eq!(recent.total, Some(3));
    let bad = HistoryQuery {
        count: 2,
        cursor: Some("nonsense".to_owned()),
        since: None,
    };
    assert!(matches!(
        store
            .history(Some(p), Some(&lid("pat-1")), &bad, &Visibility::All)
            .await,
        Err(StoreError::InvalidCursor)
    ));
}

pub async fn history_of_a_type_honours_since_and_pages(store: Store) {
    let p = ResourceType::Patient;
    create(
        &store,
        p,
        "pat-a",
        patient("9990000018", "Smith", "Jane", "1984-03-12", "female"),
    )
    .await;
    create(
        &store,
        p,
        "pat-b",
        patient("9990000026", "Jones", "John", "1950-11-02", "male"),
    )
    .await;
    create(
        &store,
        ResourceType::Observation,
        "obs-1",
        observation("pat-a", "8867-4", 72.0, "/min", "2024-05-01"),
    )
    .await;
    tick().await;
    let mid = now_micros();
    tick().await;
    update(
        &store,
        p,
        "pat-a",
        patient("9990000018", "Smith", "Janet", "1984-03-12", "female"),
        None,
    )
    .await
    .unwrap();
    create(
        &store,
        p,
        "pat-c",
        patient("9990000034", "Patel", "Priya", "1992-06-30", "female"),
    )
    .await;
    delete(&store, p, "pat-b").await;

    let page = store
        .history(
            Some(p),
            None,
            &HistoryQuery {
                count: 100,
                ..HistoryQuery::default()
            },
            &Visibility::All,
        )
        .await
        .unwrap();
    let got: Vec<String> = page
        .items
        .iter()
        .map(|r| format!("{}/{}", r.id.as_str(), r.version_id.get()))
        .collect();
    assert_eq!(
        got,
        strs(&["pat-b/2", "pat-c/1", "pat-a/2", "pat-b/1", "pat-a/1"])
    );
    assert_eq!(page.total, Some(5));

    let since = store
        .history(
            Some(p),
            None,
            &HistoryQuery {
                since: Some(mid),
                count: 100,
                cursor: None,
            },
            &Visibility::All,
        )
        .await
        .unwrap();
    let got: Vec<String> = since
        .items
        .iter()
        .map(|r| format!("{}/{}", r.id.as_str(), r.version_id.get()))
        .collect();
    assert_eq!(got, strs(&["pat-b/2", "pat-c/1", "pat-a/2"]));
    assert!(since.items[0].deleted);

    // Paging through the type's history with since, pages of two.
    let mut q = HistoryQuery {
        since: Some(mid),
        count: 2,
        cursor: None,
    };
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = store
            .history(Some(p), None, &q, &Visibility::All)
            .await
            .unwrap();
        pages += 1;
        seen.extend(
            page.items
                .iter()
                .map(|r| format!("{}/{}", r.id.as_str(), r.version_id.get())),
        );
        match page.next_cursor {
            Some(c) => q.cursor = Some(c),
            None => break,
        }
        assert!(pages < 20);
    }
    assert_eq!(pages, 2);
    assert_eq!(seen, strs(&["pat-b/2", "pat-c/1", "pat-a/2"]));

    // System-level history covers every type.
    let all = store
        .history(
            None,
            None,
            &HistoryQuery {
                count: 100,
                ..HistoryQuery::default()
            },
            &Visibility::All,
        )
        .await
        .unwrap();
    assert_eq!(all.items.len(), 6);
    assert_eq!(all.total, Some(6));
}

pub async fn read_many_leaves_out_missing_and_deleted_resources(store: Store) {
    two_patients(&store).await;
    delete(&store, ResourceType::Observation, "obs-jane-wt").await;
    let key = |t: ResourceType, id: &str| ResourceKey {
        resource_type: t,
        id: lid(id),
    };
    let got = store
        .read_many(
            &[
                key(ResourceType::Patient, "pat-jane"),
                key(ResourceType::Observation, "obs-jane-wt"),
                key(ResourceType::Observation, "obs-jane-hr"),
                key(ResourceType::Patient, "pat-nobody"),
                key(ResourceType::Condition, "cond-john-diabetes"),
            ],
            &Visibility::All,
        )
        .await
        .unwrap();
    assert_eq!(
        sorted(keys(&got)),
        strs(&[
            "Condition/cond-john-diabetes",
            "Observation/obs-jane-hr",
            "Patient/pat-jane"
        ])
    );
    assert!(
        store
            .read_many(&[], &Visibility::All)
            .await
            .unwrap()
            .is_empty()
    );
}
