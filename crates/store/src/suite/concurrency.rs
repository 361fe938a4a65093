//! Concurrent writers: conditional create, updates and `If-Match` under contention.

use carerecord_access::Visibility;
use std::time::Duration;

use carerecord_fhir::{ResourceType, VersionId};

use crate::model::HistoryQuery;
use crate::{StoreError, write};

use super::{NHS, Store, create, ids, lid, patient, query, update, ver};

pub async fn conditional_create_is_atomic_under_concurrency(store: Store) {
    const TASKS: usize = 8;
    let identifier = format!("{NHS}|9990000034");
    let mut handles = Vec::new();
    for i in 0..TASKS {
        let store = store.clone();
        let identifier = identifier.clone();
        handles.push(tokio::spawn(async move {
            let q = query(ResourceType::Patient, &[("identifier", &identifier)]);
            // Retry if the database says it is busy: that is an allowed answer under contention.
            for _ in 0..20 {
                let attempt = async {
                    let mut tx = store.begin().await?;
                    tx.lock(&format!("Patient?identifier={identifier}")).await?;
                    let found = tx.find(&q, 2).await?;
                    let created = if found.is_empty() {
                        write::create(
                            tx.as_mut(),
                            ResourceType::Patient,
                            &lid(&format!("pat-race-{i}")),
                            patient("9990000034", "Race", "Ada", "1990-01-01", "female"),
                        )
                        .await?;
                        true
                    } else {
                        false
                    };
                    tx.commit().await?;
                    Ok::<bool, StoreError>(created)
                };
                match attempt.await {
                    Ok(created) => return created,
                    Err(StoreError::Busy) => tokio::time::sleep(Duration::from_millis(10)).await,
                    Err(e) => panic!("conditional create failed: {e}"),
                }
            }
            panic!("still busy after 20 attempts");
        }));
    }
    let mut created = 0;
    for h in handles {
        if h.await.unwrap() {
            created += 1;
        }
    }
    assert_eq!(created, 1, "exactly one task creates");
    let found = ids(
        &store,
        ResourceType::Patient,
        &[("identifier", &identifier)],
    )
    .await;
    assert_eq!(found.len(), 1, "{found:?}");
}

/// Retries `f` while the store answers `Busy` (an allowed answer under contention).
async fn retry_busy<F, Fut, T>(mut f: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    for _ in 0..50 {
        match f().await {
            Err(StoreError::Busy) => tokio::time::sleep(Duration::from_millis(5)).await,
            other => return other,
        }
    }
    Err(StoreError::Busy)
}

pub async fn concurrent_updates_of_one_resource_each_get_their_own_version(store: Store) {
    const TASKS: usize = 8;
    // Also races update-as-create: nobody has created the resource yet.
    let mut handles = Vec::new();
    for i in 0..TASKS {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let given = format!("Writer{i}");
            retry_busy(|| {
                update(
                    &store,
                    ResourceType::Patient,
                    "pat-shared",
                    patient("9990000069", "Shared", &given, "1975-05-05", "female"),
                    None,
                )
            })
            .await
            .unwrap()
            .resource
            .version_id
            .get()
        }));
    }
    let mut versions = Vec::new();
    for h in handles {
        versions.push(h.await.unwrap());
    }
    versions.sort_unstable();
    assert_eq!(versions, (1..=TASKS as i64).collect::<Vec<_>>());
    let h = store
        .history(
            Some(ResourceType::Patient),
            Some(&lid("pat-shared")),
            &HistoryQuery {
                count: 100,
                ..HistoryQuery::default()
            },
            &Visibility::All,
        )
        .await
        .unwrap();
    assert_eq!(h.items.len(), TASKS);
    let cur = store
        .read(ResourceType::Patient, &lid("pat-shared"), &Visibility::All)
        .await
        .unwrap();
    assert_eq!(cur.version_id.get(), TASKS as i64);
    assert_eq!(
        ids(&store, ResourceType::Patient, &[("family", "shared")])
            .await
            .len(),
        1
    );
}

pub async fn concurrent_if_match_updates_let_exactly_one_win(store: Store) {
    const TASKS: usize = 8;
    create(
        &store,
        ResourceType::Patient,
        "pat-1",
        patient("9990000018", "Smith", "Jane", "1984-03-12", "female"),
    )
    .await;
    let mut handles = Vec::new();
    for i in 0..TASKS {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let given = format!("Writer{i}");
            retry_busy(|| {
                update(
                    &store,
                    ResourceType::Patient,
                    "pat-1",
                    patient("9990000018", "Smith", &given, "1984-03-12", "female"),
                    Some(VersionId::FIRST),
                )
            })
            .await
        }));
    }
    let (mut won, mut conflicts) = (0, 0);
    for h in handles {
        match h.await.unwrap() {
            Ok(w) => {
                assert_eq!(w.resource.version_id, ver(2));
                won += 1;
            }
            Err(StoreError::VersionConflict { expected, current }) => {
                assert_eq!((expected, current), (VersionId::FIRST, ver(2)));
                conflicts += 1;
            }
            Err(e) => panic!("unexpected error: {e:?}"),
        }
    }
    assert_eq!((won, conflicts), (1, TASKS - 1));
    assert_eq!(
        store
            .read(ResourceType::Patient, &lid("pat-1"), &Visibility::All)
            .await
            .unwrap()
            .version_id,
        ver(2)
    );
}
