//! Create, read, vread, update, delete, and what a transaction sees.

use carerecord_access::Visibility;
use carerecord_fhir::{ResourceType, VersionId};
use serde_json::json;

use crate::model::{HistoryQuery, ResourceKey, WriteKind, now_micros};
use crate::{StoreError, format_instant, write};

use super::{
    NHS, Store, body_of, create, delete, ids, keys, lid, observation, patient, query, strs, update,
    ver,
};

pub async fn created_resources_read_back_as_version_one(store: Store) {
    let before = now_micros();
    let w = create(
        &store,
        ResourceType::Patient,
        "pat-1",
        patient("9990000018", "Smith", "Jane", "1984-03-12", "female"),
    )
    .await;
    assert_eq!(w.kind, WriteKind::Created);
    assert_eq!(w.resource.version_id, VersionId::FIRST);
    assert!(w.resource.last_updated >= before);

    let r = store
        .read(ResourceType::Patient, &lid("pat-1"), &Visibility::All)
        .await
        .unwrap();
    assert_eq!(r, w.resource, "read returns exactly what was written");
    assert!(!r.deleted);
    let b = body_of(&r);
    assert_eq!(b["id"], json!("pat-1"));
    assert_eq!(b["meta"]["versionId"], json!("1"));
    assert_eq!(
        b["meta"]["lastUpdated"],
        json!(format_instant(r.last_updated))
    );
    assert_eq!(b["identifier"][0]["value"], json!("9990000018"));

    let v = store
        .vread(
            ResourceType::Patient,
            &lid("pat-1"),
            VersionId::FIRST,
            &Visibility::All,
        )
        .await
        .unwrap();
    assert_eq!(v, r);
    store.ready().await.unwrap();
    assert!(!store.backend().is_empty());
}

pub async fn reading_an_unknown_resource_is_not_found(store: Store) {
    assert!(matches!(
        store
            .read(ResourceType::Patient, &lid("nobody"), &Visibility::All)
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store
            .vread(
                ResourceType::Patient,
                &lid("nobody"),
                VersionId::FIRST,
                &Visibility::All
            )
            .await,
        Err(StoreError::NotFound)
    ));
    create(
        &store,
        ResourceType::Patient,
        "pat-1",
        patient("9990000018", "Smith", "Jane", "1984-03-12", "female"),
    )
    .await;
    // Same id, other type: a different resource.
    assert!(matches!(
        store
            .read(ResourceType::Observation, &lid("pat-1"), &Visibility::All)
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store
            .vread(
                ResourceType::Patient,
                &lid("pat-1"),
                ver(2),
                &Visibility::All
            )
            .await,
        Err(StoreError::NotFound)
    ));
}

pub async fn update_bumps_the_version_and_keeps_history(store: Store) {
    let v1 = create(
        &store,
        ResourceType::Patient,
        "pat-1",
        patient("9990000018", "Smith", "Jane", "1984-03-12", "female"),
    )
    .await;
    let v2 = update(
        &store,
        ResourceType::Patient,
        "pat-1",
        patient("9990000018", "Smith-Jones", "Jane", "1984-03-12", "female"),
        None,
    )
    .await
    .unwrap();
    assert_eq!(v2.kind, WriteKind::Updated);
    assert_eq!(v2.resource.version_id, ver(2));
    assert!(v2.resource.last_updated > v1.resource.last_updated);

    let cur = store
        .read(ResourceType::Patient, &lid("pat-1"), &Visibility::All)
        .await
        .unwrap();
    assert_eq!(cur.version_id, ver(2));
    assert_eq!(body_of(&cur)["name"][0]["family"], json!("Smith-Jones"));
    assert_eq!(body_of(&cur)["meta"]["versionId"], json!("2"));

    let old = store
        .vread(
            ResourceType::Patient,
            &lid("pat-1"),
            VersionId::FIRST,
            &Visibility::All,
        )
        .await
        .unwrap();
    assert_eq!(old, v1.resource);
    assert_eq!(body_of(&old)["name"][0]["family"], json!("Smith"));

    // Searches see only the current version.
    assert_eq!(
        ids(&store, ResourceType::Patient, &[("family", "smith-jones")]).await,
        strs(&["pat-1"])
    );
    assert!(
        ids(&store, ResourceType::Patient, &[("family:exact", "Smith")])
            .await
            .is_empty()
    );
}

pub async fn if_match_with_a_stale_version_conflicts_and_changes_nothing(store: Store) {
    create(
        &store,
        ResourceType::Patient,
        "pat-1",
        patient("9990000018", "Smith", "Jane", "1984-03-12", "female"),
    )
    .await;
    update(
        &store,
        ResourceType::Patient,
        "pat-1",
        patient("9990000018", "Smith", "Janet", "1984-03-12", "female"),
        None,
    )
    .await
    .unwrap();
    let before = store
        .read(ResourceType::Patient, &lid("pat-1"), &Visibility::All)
        .await
        .unwrap();

    let err = update(
        &store,
        ResourceType::Patient,
        "pat-1",
        patient("9990000018", "Brown", "Jane", "1984-03-12", "female"),
        Some(VersionId::FIRST),
    )
    .await
    .unwrap_err();
    match err {
        StoreError::VersionConflict { expected, current } => {
            assert_eq!(expected, VersionId::FIRST);
            assert_eq!(current, ver(2));
        }
        other => panic!("expected a version conflict, got {other:?}"),
    }
    let after = store
        .read(ResourceType::Patient, &lid("pat-1"), &Visibility::All)
        .await
        .unwrap();
    assert_eq!(after, before, "a conflicting update changes nothing");
    let h = store
        .history(
            Some(ResourceType::Patient),
            Some(&lid("pat-1")),
            &HistoryQuery {
                count: 10,
                ..HistoryQuery::default()
            },
            &Visibility::All,
        )
        .await
        .unwrap();
    assert_eq!(h.items.len(), 2);
    assert!(
        ids(&store, ResourceType::Patient, &[("family", "brown")])
            .await
            .is_empty()
    );

    // If-Match on a resource that does not exist.
    let err = update(
        &store,
        ResourceType::Patient,
        "pat-2",
        patient("9990000026", "Jones", "John", "1950-11-02", "male"),
        Some(VersionId::FIRST),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    assert!(matches!(
        store
            .read(ResourceType::Patient, &lid("pat-2"), &Visibility::All)
            .await,
        Err(StoreError::NotFound)
    ));
}

pub async fn if_match_with_the_current_version_succeeds(store: Store) {
    create(
        &store,
        ResourceType::Patient,
        "pat-1",
        patient("9990000018", "Smith", "Jane", "1984-03-12", "female"),
    )
    .await;
    let w = update(
        &store,
        ResourceType::Patient,
        "pat-1",
        patient("9990000018", "Smith", "Janet", "1984-03-12", "female"),
        Some(VersionId::FIRST),
    )
    .await
    .unwrap();
    assert_eq!(w.resource.version_id, ver(2));
}

pub async fn delete_makes_read_gone_but_old_versions_still_vread(store: Store) {
    create(
        &store,
        ResourceType::Patient,
        "pat-1",
        patient("9990000018", "Smith", "Jane", "1984-03-12", "female"),
    )
    .await;
    let d = delete(&store, ResourceType::Patient, "pat-1")
        .await
        .expect("something was deleted");
    assert_eq!(d.kind, WriteKind::Deleted);
    assert_eq!(d.resource.version_id, ver(2));
    assert!(d.resource.deleted);

    match store
        .read(ResourceType::Patient, &lid("pat-1"), &Visibility::All)
        .await
    {
        Err(StoreError::Gone(v)) => assert_eq!(v, ver(2)),
        other => panic!("expected Gone, got {other:?}"),
    }
    let v1 = store
        .vread(
            ResourceType::Patient,
            &lid("pat-1"),
            VersionId::FIRST,
            &Visibility::All,
        )
        .await
        .unwrap();
    assert_eq!(body_of(&v1)["name"][0]["family"], json!("Smith"));
    assert!(matches!(
        store
            .vread(
                ResourceType::Patient,
                &lid("pat-1"),
                ver(2),
                &Visibility::All
            )
            .await,
        Err(StoreError::Gone(_))
    ));

    let h = store
        .history(
            Some(ResourceType::Patient),
            Some(&lid("pat-1")),
            &HistoryQuery {
                count: 10,
                ..HistoryQuery::default()
            },
            &Visibility::All,
        )
        .await
        .unwrap();
    let versions: Vec<(i64, bool)> = h
        .items
        .iter()
        .map(|r| (r.version_id.get(), r.deleted))
        .collect();
    assert_eq!(versions, vec![(2, true), (1, false)]);
    assert_eq!(h.total, Some(2));
    assert!(h.items[0].body.is_empty());

    // In a transaction the deletion marker is the current version.
    let mut tx = store.begin().await.unwrap();
    let cur = tx
        .current(ResourceType::Patient, &lid("pat-1"))
        .await
        .unwrap()
        .unwrap();
    assert!(cur.deleted);
    assert_eq!(cur.version_id, ver(2));
}

pub async fn deleting_twice_is_idempotent(store: Store) {
    assert!(
        delete(&store, ResourceType::Patient, "never-existed")
            .await
            .is_none()
    );
    create(
        &store,
        ResourceType::Patient,
        "pat-1",
        patient("9990000018", "Smith", "Jane", "1984-03-12", "female"),
    )
    .await;
    assert!(
        delete(&store, ResourceType::Patient, "pat-1")
            .await
            .is_some()
    );
    assert!(
        delete(&store, ResourceType::Patient, "pat-1")
            .await
            .is_none()
    );
    let h = store
        .history(
            Some(ResourceType::Patient),
            Some(&lid("pat-1")),
            &HistoryQuery {
                count: 10,
                ..HistoryQuery::default()
            },
            &Visibility::All,
        )
        .await
        .unwrap();
    assert_eq!(h.items.len(), 2);
}

pub async fn update_after_delete_recreates_the_resource(store: Store) {
    create(
        &store,
        ResourceType::Patient,
        "pat-1",
        patient("9990000018", "Smith", "Jane", "1984-03-12", "female"),
    )
    .await;
    delete(&store, ResourceType::Patient, "pat-1").await;
    assert!(
        ids(&store, ResourceType::Patient, &[("family", "smith")])
            .await
            .is_empty()
    );

    let w = update(
        &store,
        ResourceType::Patient,
        "pat-1",
        patient("9990000018", "Smith", "Jane", "1984-03-12", "female"),
        None,
    )
    .await
    .unwrap();
    assert_eq!(w.kind, WriteKind::Created);
    assert_eq!(w.resource.version_id, ver(3));
    let r = store
        .read(ResourceType::Patient, &lid("pat-1"), &Visibility::All)
        .await
        .unwrap();
    assert_eq!(r.version_id, ver(3));
    assert!(!r.deleted);
    assert_eq!(
        ids(&store, ResourceType::Patient, &[("family", "smith")]).await,
        strs(&["pat-1"])
    );
    let h = store
        .history(
            Some(ResourceType::Patient),
            Some(&lid("pat-1")),
            &HistoryQuery {
                count: 10,
                ..HistoryQuery::default()
            },
            &Visibility::All,
        )
        .await
        .unwrap();
    let versions: Vec<(i64, bool)> = h
        .items
        .iter()
        .map(|r| (r.version_id.get(), r.deleted))
        .collect();
    assert_eq!(versions, vec![(3, false), (2, true), (1, false)]);
}

pub async fn create_with_a_taken_id_fails_with_already_exists(store: Store) {
    create(
        &store,
        ResourceType::Patient,
        "pat-1",
        patient("9990000018", "Smith", "Jane", "1984-03-12", "female"),
    )
    .await;
    let mut tx = store.begin().await.unwrap();
    let err = write::create(
        tx.as_mut(),
        ResourceType::Patient,
        &lid("pat-1"),
        patient("9990000026", "Jones", "John", "1950-11-02", "male"),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists), "{err:?}");
    drop(tx);
    // Not even a deleted resource's id is reused by create.
    delete(&store, ResourceType::Patient, "pat-1").await;
    let mut tx = store.begin().await.unwrap();
    let err = write::create(
        tx.as_mut(),
        ResourceType::Patient,
        &lid("pat-1"),
        patient("9990000026", "Jones", "John", "1950-11-02", "male"),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists), "{err:?}");
    drop(tx);
    // The same id under another type is free.
    create(
        &store,
        ResourceType::Practitioner,
        "pat-1",
        json!({"resourceType": "Practitioner", "name": [{"family": "Khan"}]}),
    )
    .await;
}

pub async fn a_transaction_dropped_without_commit_leaves_nothing(store: Store) {
    create(
        &store,
        ResourceType::Patient,
        "pat-keep",
        patient("9990000018", "Smith", "Jane", "1984-03-12", "female"),
    )
    .await;
    {
        let mut tx = store.begin().await.unwrap();
        write::create(
            tx.as_mut(),
            ResourceType::Patient,
            &lid("pat-lost"),
            patient("9990000026", "Jones", "John", "1950-11-02", "male"),
        )
        .await
        .unwrap();
        write::update(
            tx.as_mut(),
            ResourceType::Patient,
            &lid("pat-keep"),
            patient("9990000018", "Changed", "Jane", "1984-03-12", "female"),
            None,
        )
        .await
        .unwrap();
        write::create(
            tx.as_mut(),
            ResourceType::Observation,
            &lid("obs-lost"),
            observation("pat-lost", "8867-4", 70.0, "/min", "2024-01-01"),
        )
        .await
        .unwrap();
        // Dropped here without commit.
    }
    assert!(matches!(
        store
            .read(ResourceType::Patient, &lid("pat-lost"), &Visibility::All)
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store
            .read(
                ResourceType::Observation,
                &lid("obs-lost"),
                &Visibility::All
            )
            .await,
        Err(StoreError::NotFound)
    ));
    let keep = store
        .read(ResourceType::Patient, &lid("pat-keep"), &Visibility::All)
        .await
        .unwrap();
    assert_eq!(keep.version_id, VersionId::FIRST);
    assert!(
        ids(&store, ResourceType::Patient, &[("family", "changed")])
            .await
            .is_empty()
    );
    assert!(
        ids(&store, ResourceType::Observation, &[("code", "8867-4")])
            .await
            .is_empty()
    );
    let h = store
        .history(
            None,
            None,
            &HistoryQuery {
                count: 10,
                ..HistoryQuery::default()
            },
            &Visibility::All,
        )
        .await
        .unwrap();
    assert_eq!(keys(&h.items), strs(&["Patient/pat-keep"]));
    // And the store is still writable afterwards (no lock is left behind).
    create(
        &store,
        ResourceType::Patient,
        "pat-lost",
        patient("9990000026", "Jones", "John", "1950-11-02", "male"),
    )
    .await;
}

pub async fn a_transaction_sees_its_own_writes(store: Store) {
    let mut tx = store.begin().await.unwrap();
    write::create(
        tx.as_mut(),
        ResourceType::Patient,
        &lid("pat-1"),
        patient("9990000018", "Smith", "Jane", "1984-03-12", "female"),
    )
    .await
    .unwrap();
    let found = tx
        .find(
            &query(
                ResourceType::Patient,
                &[("identifier", &format!("{NHS}|9990000018"))],
            ),
            2,
        )
        .await
        .unwrap();
    assert_eq!(
        found,
        vec![ResourceKey {
            resource_type: ResourceType::Patient,
            id: lid("pat-1")
        }]
    );
    let cur = tx
        .current(ResourceType::Patient, &lid("pat-1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cur.version_id, VersionId::FIRST);
    tx.commit().await.unwrap();
    assert_eq!(
        store
            .read(ResourceType::Patient, &lid("pat-1"), &Visibility::All)
            .await
            .unwrap()
            .version_id,
        VersionId::FIRST
    );
}

pub async fn heads_of_many_resources_come_from_one_look_up(store: Store) {
    create(
        &store,
        ResourceType::Patient,
        "pat-1",
        patient("9990000018", "Smith", "Jane", "1984-03-12", "female"),
    )
    .await;
    let obs = observation("pat-1", "2823-3", 4.5, "mmol/L", "2026-11-01");
    create(&store, ResourceType::Observation, "obs-1", obs.clone()).await;
    let gone = delete(&store, ResourceType::Observation, "obs-1")
        .await
        .unwrap();
    let key = |rt, id: &str| ResourceKey {
        resource_type: rt,
        id: lid(id),
    };
    let mut tx = store.begin().await.unwrap();
    // A write held back in the transaction is seen too.
    write::create_new(tx.as_mut(), ResourceType::Observation, &lid("obs-2"), obs)
        .await
        .unwrap();
    let keys: Vec<ResourceKey> = vec![
        key(ResourceType::Patient, "pat-1"),
        key(ResourceType::Observation, "obs-1"),
        key(ResourceType::Observation, "obs-2"),
        key(ResourceType::Patient, "pat-missing"),
        key(ResourceType::Observation, "pat-1"),
    ];
    let heads = tx.heads(&keys).await.unwrap();
    assert_eq!(heads.len(), 3, "absent keys are left out: {heads:?}");
    let p = heads[&key(ResourceType::Patient, "pat-1")];
    assert_eq!((p.version_id, p.deleted), (VersionId::FIRST, false));
    let o = heads[&key(ResourceType::Observation, "obs-1")];
    assert_eq!(o.version_id, gone.resource.version_id);
    assert!(o.deleted);
    assert_eq!(o.last_updated, gone.resource.last_updated);
    assert!(!heads[&key(ResourceType::Observation, "obs-2")].deleted);
    // Many keys: more than one statement's worth.
    let many: Vec<ResourceKey> = (0..300)
        .map(|i| key(ResourceType::Patient, &format!("p{i}")))
        .chain([key(ResourceType::Patient, "pat-1")])
        .collect();
    assert_eq!(tx.heads(&many).await.unwrap().len(), 1);
}

pub async fn rolling_back_to_a_savepoint_undoes_only_what_came_after_it(store: Store) {
    let pat = |n: &str| patient(n, "Smith", "Jane", "1984-03-12", "female");
    let mut tx = store.begin().await.unwrap();
    write::create_new(
        tx.as_mut(),
        ResourceType::Patient,
        &lid("pat-1"),
        pat("9990000018"),
    )
    .await
    .unwrap();
    tx.savepoint().await.unwrap();
    // One write flushed, one still held back: both are undone.
    write::create_new(
        tx.as_mut(),
        ResourceType::Patient,
        &lid("pat-2"),
        pat("9990000026"),
    )
    .await
    .unwrap();
    tx.flush().await.unwrap();
    write::create_new(
        tx.as_mut(),
        ResourceType::Patient,
        &lid("pat-3"),
        pat("9990000034"),
    )
    .await
    .unwrap();
    tx.rollback_to_savepoint().await.unwrap();
    tx.savepoint().await.unwrap();
    write::create_new(
        tx.as_mut(),
        ResourceType::Patient,
        &lid("pat-4"),
        pat("9990000042"),
    )
    .await
    .unwrap();
    tx.release_savepoint().await.unwrap();
    tx.commit().await.unwrap();
    for (id, kept) in [
        ("pat-1", true),
        ("pat-2", false),
        ("pat-3", false),
        ("pat-4", true),
    ] {
        let r = store
            .read(ResourceType::Patient, &lid(id), &Visibility::All)
            .await;
        assert_eq!(r.is_ok(), kept, "{id}: {r:?}");
    }
    let found = store
        .search(
            &query(ResourceType::Patient, &[("family", "smith")]),
            10,
            &Visibility::All,
        )
        .await
        .unwrap();
    assert_eq!(found.matches.len(), 2, "index rows rolled back too");
}
