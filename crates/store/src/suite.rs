//! The behavioural suite every backend must pass.
//!
//! Each test is a public async function taking a FRESH, empty store. A backend runs them all
//! with [`backend_suite!`](crate::backend_suite), which expands to one `#[tokio::test]` per
//! function:
//!
//! ```ignore
//! async fn fresh() -> Option<carerecord_store::suite::Fixture> { /* … */ }
//! carerecord_store::backend_suite!(fresh);
//! ```
//!
//! All data is synthetic: NHS numbers are in the 999 test range and pass Modulus 11.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test suite: failing loudly is the point"
)]

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use carerecord_fhir::{LogicalId, NhsNumber, ResourceType, VersionId};
use carerecord_search::query::{Handling, SearchQuery, parse};
use futures::FutureExt;
use serde_json::{Value, json};

use crate::model::{HistoryQuery, ResourceKey, StoredResource, WriteKind, WriteResult, now_micros};
use crate::{ResourceStore, StoreError, format_instant, write};

pub use tokio;

/// A fresh store for one test and how to clean it up afterwards.
pub struct Fixture {
    pub store: Arc<dyn ResourceStore>,
    /// Run after the test (also when it failed), e.g. to drop a per-test database.
    pub teardown: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl Fixture {
    pub fn new(store: Arc<dyn ResourceStore>) -> Self {
        Fixture {
            store,
            teardown: None,
        }
    }
}

/// Runs one suite test against a fixture from `make`; `None` from `make` skips the test.
pub async fn run<M, MF, T, TF>(make: M, test: T)
where
    M: FnOnce() -> MF,
    MF: Future<Output = Option<Fixture>>,
    T: FnOnce(Arc<dyn ResourceStore>) -> TF,
    TF: Future<Output = ()>,
{
    let Some(fixture) = make().await else {
        return;
    };
    let outcome = AssertUnwindSafe(test(fixture.store)).catch_unwind().await;
    if let Some(t) = fixture.teardown {
        t.await;
    }
    if let Err(p) = outcome {
        std::panic::resume_unwind(p);
    }
}

/// Expands to one `#[tokio::test]` per suite function, each given a fixture from `$make`
/// (a path to an `async fn() -> Option<Fixture>`). The calling crate needs `tokio` as a
/// dev-dependency (with the `macros` and `rt-multi-thread` features).
#[macro_export]
macro_rules! backend_suite {
    ($make:path) => {
        $crate::backend_suite!(@tests $make;
            created_resources_read_back_as_version_one,
            reading_an_unknown_resource_is_not_found,
            update_bumps_the_version_and_keeps_history,
            if_match_with_a_stale_version_conflicts_and_changes_nothing,
            if_match_with_the_current_version_succeeds,
            delete_makes_read_gone_but_old_versions_still_vread,
            deleting_twice_is_idempotent,
            update_after_delete_recreates_the_resource,
            create_with_a_taken_id_fails_with_already_exists,
            a_transaction_dropped_without_commit_leaves_nothing,
            a_transaction_sees_its_own_writes,
            conditional_create_is_atomic_under_concurrency,
            concurrent_updates_of_one_resource_each_get_their_own_version,
            concurrent_if_match_updates_let_exactly_one_win,
            search_by_token_matches_every_system_and_code_form,
            search_by_token_not_excludes_matching_resources,
            search_by_string_is_prefix_accent_and_case_insensitive,
            search_by_string_exact_and_contains,
            search_by_date_honours_prefixes_on_partial_dates,
            search_by_date_compares_periods,
            search_by_reference_matches_local_references,
            search_by_chained_patient_identifier,
            search_by_reference_identifier_modifier,
            search_by_quantity_with_value_and_unit,
            search_by_id_last_updated_and_tag,
            deleted_and_superseded_versions_do_not_match_searches,
            sort_by_date_ascending_and_descending,
            sort_by_multiple_keys,
            keyset_paging_visits_every_match_once_in_order,
            keyset_paging_with_a_sort_visits_every_match_once,
            keyset_paging_by_a_decimal_is_exact_beyond_fifteen_digits,
            paging_does_not_duplicate_when_a_resource_is_created_mid_way,
            an_invalid_cursor_is_rejected,
            total_counts_every_match_not_just_the_page,
            include_and_revinclude_pull_in_related_resources,
            include_iterate_follows_one_more_level,
            everything_returns_the_patients_compartment_only,
            everything_filters_by_type_and_pages,
            history_of_an_instance_lists_versions_newest_first,
            history_of_a_type_honours_since_and_pages,
            read_many_leaves_out_missing_and_deleted_resources,
        );
    };
    (@tests $make:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $crate::suite::run($make, $crate::suite::$name).await;
            }
        )*
    };
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const BASE_URL: &str = "http://localhost:8080/fhir";
const NHS: &str = "https://fhir.nhs.uk/Id/nhs-number";
const SNOMED: &str = "http://snomed.info/sct";
const LOINC: &str = "http://loinc.org";
const UCUM: &str = "http://unitsofmeasure.org";

type Store = Arc<dyn ResourceStore>;

fn lid(s: &str) -> LogicalId {
    LogicalId::parse(s).unwrap()
}

fn ver(n: i64) -> VersionId {
    VersionId::new(n).unwrap()
}

/// A synthetic NHS number, checked to pass Modulus 11.
fn nhs(n: &str) -> String {
    NhsNumber::parse(n).unwrap_or_else(|e| panic!("{n} is not a valid NHS number: {e}"));
    n.to_owned()
}

fn body_of(r: &StoredResource) -> Value {
    serde_json::from_str(&r.body).unwrap()
}

async fn create(store: &Store, rt: ResourceType, id: &str, body: Value) -> WriteResult {
    let mut tx = store.begin().await.unwrap();
    let r = write::create(tx.as_mut(), rt, &lid(id), body)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    r
}

async fn update(
    store: &Store,
    rt: ResourceType,
    id: &str,
    body: Value,
    if_match: Option<VersionId>,
) -> Result<WriteResult, StoreError> {
    let mut tx = store.begin().await?;
    let r = write::update(tx.as_mut(), rt, &lid(id), body, if_match).await?;
    tx.commit().await?;
    Ok(r)
}

async fn delete(store: &Store, rt: ResourceType, id: &str) -> Option<WriteResult> {
    let mut tx = store.begin().await.unwrap();
    let r = write::delete(tx.as_mut(), rt, &lid(id)).await.unwrap();
    tx.commit().await.unwrap();
    r
}

fn query(rt: ResourceType, pairs: &[(&str, &str)]) -> SearchQuery {
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let q = parse(rt, &pairs, Handling::Strict, BASE_URL)
        .unwrap_or_else(|e| panic!("query {pairs:?} does not parse: {e:?}"));
    assert!(q.ignored.is_empty(), "{:?}", q.ignored);
    q
}

/// The ids of the first page (up to 100) of matches, in the order returned.
async fn ids(store: &Store, rt: ResourceType, pairs: &[(&str, &str)]) -> Vec<String> {
    let out = store.search(&query(rt, pairs), 100).await.unwrap();
    out.matches
        .iter()
        .map(|r| r.id.as_str().to_owned())
        .collect()
}

/// Like [`ids`], sorted, for criteria whose order does not matter.
async fn id_set(store: &Store, rt: ResourceType, pairs: &[(&str, &str)]) -> Vec<String> {
    let mut v = ids(store, rt, pairs).await;
    v.sort();
    v
}

fn keys(rs: &[StoredResource]) -> Vec<String> {
    rs.iter()
        .map(|r| format!("{}/{}", r.resource_type, r.id.as_str()))
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

/// Lets the clock move on, so `lastUpdated` values on either side differ.
async fn tick() {
    tokio::time::sleep(Duration::from_millis(3)).await;
}

fn patient(nhs_number: &str, family: &str, given: &str, birth_date: &str, gender: &str) -> Value {
    json!({
        "resourceType": "Patient",
        "identifier": [{"system": NHS, "value": nhs(nhs_number)}],
        "active": true,
        "name": [{"use": "official", "family": family, "given": [given]}],
        "gender": gender,
        "birthDate": birth_date,
        "address": [{"line": ["1 Test Street"], "city": "Leeds", "postalCode": "LS1 4AP"}],
    })
}

fn observation(patient_id: &str, loinc: &str, value: f64, unit: &str, effective: &str) -> Value {
    json!({
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": loinc}]},
        "subject": {"reference": format!("Patient/{patient_id}")},
        "effectiveDateTime": effective,
        "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
    })
}

fn condition(patient_id: &str, snomed: &str, display: &str) -> Value {
    json!({
        "resourceType": "Condition",
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
        "code": {"coding": [{"system": SNOMED, "code": snomed, "display": display}]},
        "subject": {"reference": format!("Patient/{patient_id}")},
    })
}

fn encounter(patient_id: &str, start: &str, end: Option<&str>) -> Value {
    let mut period = json!({"start": start});
    if let Some(e) = end {
        period["end"] = json!(e);
    }
    json!({
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": format!("Patient/{patient_id}")},
        "period": period,
    })
}

/// Two patients (Jane Smith, 9990000018; John Jones, 9990000026) with a few resources each.
async fn two_patients(store: &Store) {
    create(
        store,
        ResourceType::Patient,
        "pat-jane",
        patient("9990000018", "Smith", "Jane", "1984-03-12", "female"),
    )
    .await;
    create(
        store,
        ResourceType::Patient,
        "pat-john",
        patient("9990000026", "Jones", "John", "1950-11-02", "male"),
    )
    .await;
    create(
        store,
        ResourceType::Observation,
        "obs-jane-hr",
        observation("pat-jane", "8867-4", 72.0, "/min", "2024-05-01T09:30:00Z"),
    )
    .await;
    create(
        store,
        ResourceType::Observation,
        "obs-jane-wt",
        observation("pat-jane", "29463-7", 64.5, "kg", "2024-05-01T09:35:00Z"),
    )
    .await;
    create(
        store,
        ResourceType::Observation,
        "obs-john-hr",
        observation("pat-john", "8867-4", 88.0, "/min", "2023-12-24T18:00:00Z"),
    )
    .await;
    create(
        store,
        ResourceType::Condition,
        "cond-jane-asthma",
        condition("pat-jane", "195967001", "Asthma"),
    )
    .await;
    create(
        store,
        ResourceType::Condition,
        "cond-john-diabetes",
        condition("pat-john", "44054006", "Type 2 diabetes mellitus"),
    )
    .await;
    create(
        store,
        ResourceType::Encounter,
        "enc-jane",
        encounter(
            "pat-jane",
            "2024-05-01T09:00:00Z",
            Some("2024-05-01T10:00:00Z"),
        ),
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// Create, read, vread
// ---------------------------------------------------------------------------------------------

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
        .read(ResourceType::Patient, &lid("pat-1"))
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
        .vread(ResourceType::Patient, &lid("pat-1"), VersionId::FIRST)
        .await
        .unwrap();
    assert_eq!(v, r);
    store.ready().await.unwrap();
    assert!(!store.backend().is_empty());
}

pub async fn reading_an_unknown_resource_is_not_found(store: Store) {
    assert!(matches!(
        store.read(ResourceType::Patient, &lid("nobody")).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store
            .vread(ResourceType::Patient, &lid("nobody"), VersionId::FIRST)
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
        store.read(ResourceType::Observation, &lid("pat-1")).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store
            .vread(ResourceType::Patient, &lid("pat-1"), ver(2))
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
        .read(ResourceType::Patient, &lid("pat-1"))
        .await
        .unwrap();
    assert_eq!(cur.version_id, ver(2));
    assert_eq!(body_of(&cur)["name"][0]["family"], json!("Smith-Jones"));
    assert_eq!(body_of(&cur)["meta"]["versionId"], json!("2"));

    let old = store
        .vread(ResourceType::Patient, &lid("pat-1"), VersionId::FIRST)
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
        .read(ResourceType::Patient, &lid("pat-1"))
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
        .read(ResourceType::Patient, &lid("pat-1"))
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
        store.read(ResourceType::Patient, &lid("pat-2")).await,
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

    match store.read(ResourceType::Patient, &lid("pat-1")).await {
        Err(StoreError::Gone(v)) => assert_eq!(v, ver(2)),
        other => panic!("expected Gone, got {other:?}"),
    }
    let v1 = store
        .vread(ResourceType::Patient, &lid("pat-1"), VersionId::FIRST)
        .await
        .unwrap();
    assert_eq!(body_of(&v1)["name"][0]["family"], json!("Smith"));
    assert!(matches!(
        store
            .vread(ResourceType::Patient, &lid("pat-1"), ver(2))
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
        .read(ResourceType::Patient, &lid("pat-1"))
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
        store.read(ResourceType::Patient, &lid("pat-lost")).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store
            .read(ResourceType::Observation, &lid("obs-lost"))
            .await,
        Err(StoreError::NotFound)
    ));
    let keep = store
        .read(ResourceType::Patient, &lid("pat-keep"))
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
            .read(ResourceType::Patient, &lid("pat-1"))
            .await
            .unwrap()
            .version_id,
        VersionId::FIRST
    );
}

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
        )
        .await
        .unwrap();
    assert_eq!(h.items.len(), TASKS);
    let cur = store
        .read(ResourceType::Patient, &lid("pat-shared"))
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
            .read(ResourceType::Patient, &lid("pat-1"))
            .await
            .unwrap()
            .version_id,
        ver(2)
    );
}

// ---------------------------------------------------------------------------------------------
// Search by parameter type
// ---------------------------------------------------------------------------------------------

pub async fn search_by_token_matches_every_system_and_code_form(store: Store) {
    two_patients(&store).await;
    create(
        &store,
        ResourceType::Observation,
        "obs-local",
        json!({
            "resourceType": "Observation", "status": "final",
            "code": {"coding": [{"code": "8867-4"}]},
            "subject": {"reference": "Patient/pat-jane"},
        }),
    )
    .await;
    let obs = ResourceType::Observation;
    assert_eq!(
        id_set(&store, obs, &[("code", "http://loinc.org|8867-4")]).await,
        strs(&["obs-jane-hr", "obs-john-hr"])
    );
    assert_eq!(
        id_set(&store, obs, &[("code", "8867-4")]).await,
        strs(&["obs-jane-hr", "obs-john-hr", "obs-local"])
    );
    assert_eq!(
        id_set(&store, obs, &[("code", "|8867-4")]).await,
        strs(&["obs-local"])
    );
    assert_eq!(
        id_set(&store, obs, &[("code", "http://loinc.org|")]).await,
        strs(&["obs-jane-hr", "obs-jane-wt", "obs-john-hr"])
    );
    assert_eq!(
        id_set(&store, obs, &[("code", "http://snomed.info/sct|8867-4")]).await,
        Vec::<String>::new()
    );
    // A comma is OR; repeated parameters are AND.
    assert_eq!(
        id_set(
            &store,
            obs,
            &[("code", "http://loinc.org|29463-7,http://loinc.org|8867-4")]
        )
        .await,
        strs(&["obs-jane-hr", "obs-jane-wt", "obs-john-hr"])
    );
    assert_eq!(
        id_set(
            &store,
            obs,
            &[("code", "8867-4"), ("subject", "Patient/pat-john")]
        )
        .await,
        strs(&["obs-john-hr"])
    );
    // Identifiers and plain codes are tokens too.
    let nhs_jane = format!("{NHS}|9990000018");
    assert_eq!(
        ids(&store, ResourceType::Patient, &[("identifier", &nhs_jane)]).await,
        strs(&["pat-jane"])
    );
    assert_eq!(
        ids(&store, ResourceType::Patient, &[("gender", "male")]).await,
        strs(&["pat-john"])
    );
    assert_eq!(
        ids(
            &store,
            ResourceType::Condition,
            &[("code", "http://snomed.info/sct|195967001")]
        )
        .await,
        strs(&["cond-jane-asthma"])
    );
}

pub async fn search_by_token_not_excludes_matching_resources(store: Store) {
    two_patients(&store).await;
    create(&store, ResourceType::Observation, "obs-nocode", json!({"resourceType": "Observation", "status": "final", "code": {"text": "free text only"}})).await;
    let obs = ResourceType::Observation;
    assert_eq!(
        id_set(&store, obs, &[("code:not", "http://loinc.org|8867-4")]).await,
        strs(&["obs-jane-wt", "obs-nocode"])
    );
    assert_eq!(
        id_set(&store, ResourceType::Patient, &[("gender:not", "female")]).await,
        strs(&["pat-john"])
    );
}

pub async fn search_by_string_is_prefix_accent_and_case_insensitive(store: Store) {
    two_patients(&store).await;
    create(
        &store,
        ResourceType::Patient,
        "pat-zoe",
        patient("9990000042", "Brontë", "Zoë", "2001-07-30", "female"),
    )
    .await;
    let p = ResourceType::Patient;
    assert_eq!(
        ids(&store, p, &[("family", "smi")]).await,
        strs(&["pat-jane"])
    );
    assert_eq!(
        ids(&store, p, &[("family", "SMITH")]).await,
        strs(&["pat-jane"])
    );
    assert!(
        ids(&store, p, &[("family", "mith")]).await.is_empty(),
        "default string search is starts-with"
    );
    assert_eq!(
        ids(&store, p, &[("given", "zoe")]).await,
        strs(&["pat-zoe"])
    );
    assert_eq!(
        ids(&store, p, &[("family", "bronte")]).await,
        strs(&["pat-zoe"])
    );
    assert_eq!(
        ids(&store, p, &[("name", "jane")]).await,
        strs(&["pat-jane"])
    );
    assert_eq!(
        id_set(&store, p, &[("address-city", "leeds")]).await,
        strs(&["pat-jane", "pat-john", "pat-zoe"])
    );
    assert_eq!(
        id_set(&store, p, &[("family", "smith,jones")]).await,
        strs(&["pat-jane", "pat-john"])
    );
}

pub async fn search_by_string_exact_and_contains(store: Store) {
    two_patients(&store).await;
    create(
        &store,
        ResourceType::Patient,
        "pat-zoe",
        patient("9990000042", "Brontë", "Zoë", "2001-07-30", "female"),
    )
    .await;
    create(
        &store,
        ResourceType::Patient,
        "pat-pct",
        patient("9990000050", "Per%cent_Name", "Al", "1970-01-01", "male"),
    )
    .await;
    let p = ResourceType::Patient;
    assert_eq!(
        ids(&store, p, &[("family:exact", "Brontë")]).await,
        strs(&["pat-zoe"])
    );
    assert!(
        ids(&store, p, &[("family:exact", "Bronte")])
            .await
            .is_empty()
    );
    assert!(
        ids(&store, p, &[("family:exact", "brontë")])
            .await
            .is_empty()
    );
    assert!(
        ids(&store, p, &[("family:exact", "Bront")])
            .await
            .is_empty()
    );
    assert_eq!(
        ids(&store, p, &[("family:contains", "ONT")]).await,
        strs(&["pat-zoe"])
    );
    assert_eq!(
        ids(&store, p, &[("family:contains", "mit")]).await,
        strs(&["pat-jane"])
    );
    // LIKE wildcards in the value are literal.
    assert_eq!(
        ids(&store, p, &[("family:contains", "%c")]).await,
        strs(&["pat-pct"])
    );
    assert!(
        ids(&store, p, &[("family:contains", "r_c")])
            .await
            .is_empty()
    );
    assert_eq!(
        ids(&store, p, &[("family:contains", "t_n")]).await,
        strs(&["pat-pct"])
    );
}

pub async fn search_by_date_honours_prefixes_on_partial_dates(store: Store) {
    let p = ResourceType::Patient;
    create(
        &store,
        p,
        "pat-1984",
        patient("9990000018", "Smith", "Jane", "1984-03-12", "female"),
    )
    .await;
    create(
        &store,
        p,
        "pat-1950",
        patient("9990000026", "Jones", "John", "1950-11-02", "male"),
    )
    .await;
    create(
        &store,
        p,
        "pat-1984b",
        patient("9990000034", "Patel", "Priya", "1984-12-31", "female"),
    )
    .await;
    create(
        &store,
        p,
        "pat-2001",
        patient("9990000042", "Brontë", "Zoë", "2001-07", "female"),
    )
    .await;

    assert_eq!(
        id_set(&store, p, &[("birthdate", "1984")]).await,
        strs(&["pat-1984", "pat-1984b"])
    );
    assert_eq!(
        id_set(&store, p, &[("birthdate", "eq1984-03")]).await,
        strs(&["pat-1984"])
    );
    assert_eq!(
        id_set(&store, p, &[("birthdate", "1984-03-12")]).await,
        strs(&["pat-1984"])
    );
    assert!(
        id_set(&store, p, &[("birthdate", "1984-03-13")])
            .await
            .is_empty()
    );
    // A month-precision birthDate is not within a single day.
    assert!(
        id_set(&store, p, &[("birthdate", "2001-07-15")])
            .await
            .is_empty()
    );
    assert_eq!(
        id_set(&store, p, &[("birthdate", "2001-07")]).await,
        strs(&["pat-2001"])
    );
    assert_eq!(
        id_set(&store, p, &[("birthdate", "lt1984-03-12")]).await,
        strs(&["pat-1950"])
    );
    assert_eq!(
        id_set(&store, p, &[("birthdate", "le1984-03-12")]).await,
        strs(&["pat-1950", "pat-1984"])
    );
    assert_eq!(
        id_set(&store, p, &[("birthdate", "gt1984-03-12")]).await,
        strs(&["pat-1984b", "pat-2001"])
    );
    assert_eq!(
        id_set(&store, p, &[("birthdate", "ge1984-03-12")]).await,
        strs(&["pat-1984", "pat-1984b", "pat-2001"])
    );
    assert_eq!(
        id_set(&store, p, &[("birthdate", "sa1984")]).await,
        strs(&["pat-2001"])
    );
    assert_eq!(
        id_set(&store, p, &[("birthdate", "eb1984")]).await,
        strs(&["pat-1950"])
    );
    assert_eq!(
        id_set(&store, p, &[("birthdate", "ne1984")]).await,
        strs(&["pat-1950", "pat-2001"])
    );
    // A range as two criteria.
    assert_eq!(
        id_set(
            &store,
            p,
            &[("birthdate", "ge1980"), ("birthdate", "lt1990")]
        )
        .await,
        strs(&["pat-1984", "pat-1984b"])
    );
    // dateTime with a time zone.
    two_patients_observations(&store).await;
    let o = ResourceType::Observation;
    assert_eq!(
        id_set(&store, o, &[("date", "2024-05-01")]).await,
        strs(&["obs-a", "obs-b"])
    );
    assert_eq!(
        id_set(&store, o, &[("date", "gt2024-05-01T09:32:00Z")]).await,
        strs(&["obs-b"])
    );
    assert_eq!(
        id_set(&store, o, &[("date", "lt2024-05-01T10:32:00+01:00")]).await,
        strs(&["obs-a", "obs-c"])
    );
}

async fn two_patients_observations(store: &Store) {
    let o = ResourceType::Observation;
    create(
        store,
        o,
        "obs-a",
        observation("pat-1984", "8867-4", 72.0, "/min", "2024-05-01T09:30:00Z"),
    )
    .await;
    create(
        store,
        o,
        "obs-b",
        observation("pat-1984", "8867-4", 75.0, "/min", "2024-05-01T09:35:00Z"),
    )
    .await;
    create(
        store,
        o,
        "obs-c",
        observation("pat-1950", "8867-4", 88.0, "/min", "2023-12-24T18:00:00Z"),
    )
    .await;
}

pub async fn search_by_date_compares_periods(store: Store) {
    let e = ResourceType::Encounter;
    create(
        &store,
        ResourceType::Patient,
        "pat-jane",
        patient("9990000018", "Smith", "Jane", "1984-03-12", "female"),
    )
    .await;
    // A clinic appointment, an inpatient stay over a month boundary, an open (ongoing) stay.
    create(
        &store,
        e,
        "enc-clinic",
        encounter(
            "pat-jane",
            "2024-05-01T09:00:00Z",
            Some("2024-05-01T09:20:00Z"),
        ),
    )
    .await;
    create(
        &store,
        e,
        "enc-stay",
        encounter(
            "pat-jane",
            "2024-05-28T14:00:00Z",
            Some("2024-06-03T11:00:00Z"),
        ),
    )
    .await;
    create(
        &store,
        e,
        "enc-open",
        encounter("pat-jane", "2024-06-10T08:00:00Z", None),
    )
    .await;

    assert_eq!(
        id_set(&store, e, &[("date", "2024-05-01")]).await,
        strs(&["enc-clinic"])
    );
    // The stay is not within May, nor within June.
    assert_eq!(
        id_set(&store, e, &[("date", "2024-05")]).await,
        strs(&["enc-clinic"])
    );
    assert!(id_set(&store, e, &[("date", "2024-06")]).await.is_empty());
    assert_eq!(
        id_set(&store, e, &[("date", "2024")]).await,
        strs(&["enc-clinic", "enc-stay"])
    );
    // Overlap: some part after / before.
    assert_eq!(
        id_set(&store, e, &[("date", "gt2024-06-01")]).await,
        strs(&["enc-open", "enc-stay"])
    );
    assert_eq!(
        id_set(&store, e, &[("date", "ge2024-06-03")]).await,
        strs(&["enc-open", "enc-stay"])
    );
    assert_eq!(
        id_set(&store, e, &[("date", "lt2024-06-01")]).await,
        strs(&["enc-clinic", "enc-stay"])
    );
    assert_eq!(
        id_set(&store, e, &[("date", "le2024-05-28")]).await,
        strs(&["enc-clinic", "enc-stay"])
    );
    // Entirely after / before.
    assert_eq!(
        id_set(&store, e, &[("date", "sa2024-06-01")]).await,
        strs(&["enc-open"])
    );
    assert_eq!(
        id_set(&store, e, &[("date", "eb2024-06-01")]).await,
        strs(&["enc-clinic"])
    );
    // The open-ended stay extends into the far future.
    assert_eq!(
        id_set(&store, e, &[("date", "gt2090-01-01")]).await,
        strs(&["enc-open"])
    );
}

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
        .search(&query(ResourceType::Observation, &[]), 100)
        .await
        .unwrap();
    assert_eq!(out.total, Some(2));
}

// ---------------------------------------------------------------------------------------------
// Sorting, paging and totals
// ---------------------------------------------------------------------------------------------

async fn dated_observations(store: &Store) {
    create(
        store,
        ResourceType::Patient,
        "pat-jane",
        patient("9990000018", "Smith", "Jane", "1984-03-12", "female"),
    )
    .await;
    let o = ResourceType::Observation;
    create(
        store,
        o,
        "obs-c",
        observation("pat-jane", "8867-4", 70.0, "/min", "2024-03-01T08:00:00Z"),
    )
    .await;
    create(
        store,
        o,
        "obs-a",
        observation("pat-jane", "8867-4", 80.0, "/min", "2024-01-15T08:00:00Z"),
    )
    .await;
    create(
        store,
        o,
        "obs-d",
        observation("pat-jane", "29463-7", 64.0, "kg", "2024-03-01T08:00:00Z"),
    )
    .await;
    create(
        store,
        o,
        "obs-b",
        observation("pat-jane", "29463-7", 65.0, "kg", "2024-02-20T08:00:00Z"),
    )
    .await;
    // No effective date: sorts last either way.
    let mut undated = observation("pat-jane", "8867-4", 60.0, "/min", "2024-01-01");
    undated.as_object_mut().unwrap().remove("effectiveDateTime");
    create(store, o, "obs-e", undated).await;
}

pub async fn sort_by_date_ascending_and_descending(store: Store) {
    dated_observations(&store).await;
    let o = ResourceType::Observation;
    assert_eq!(
        ids(&store, o, &[("_sort", "date")]).await,
        strs(&["obs-a", "obs-b", "obs-c", "obs-d", "obs-e"])
    );
    assert_eq!(
        ids(&store, o, &[("_sort", "-date")]).await,
        strs(&["obs-c", "obs-d", "obs-b", "obs-a", "obs-e"])
    );
    assert_eq!(
        ids(&store, o, &[("_sort", "-_id")]).await,
        strs(&["obs-e", "obs-d", "obs-c", "obs-b", "obs-a"])
    );
    assert_eq!(
        ids(&store, o, &[("_sort", "_lastUpdated")]).await,
        strs(&["obs-c", "obs-a", "obs-d", "obs-b", "obs-e"])
    );
    assert_eq!(
        ids(&store, o, &[("_sort", "-_lastUpdated")]).await,
        strs(&["obs-e", "obs-b", "obs-d", "obs-a", "obs-c"])
    );
    assert_eq!(
        ids(&store, o, &[("_sort", "value-quantity")]).await,
        strs(&["obs-e", "obs-d", "obs-b", "obs-c", "obs-a"])
    );
    assert_eq!(
        ids(&store, o, &[("code", "8867-4"), ("_sort", "-date")]).await,
        strs(&["obs-c", "obs-a", "obs-e"])
    );
}

pub async fn sort_by_multiple_keys(store: Store) {
    dated_observations(&store).await;
    let o = ResourceType::Observation;
    assert_eq!(
        ids(&store, o, &[("_sort", "-date,-_id")]).await,
        strs(&["obs-d", "obs-c", "obs-b", "obs-a", "obs-e"])
    );
    assert_eq!(
        ids(&store, o, &[("_sort", "code,date")]).await,
        strs(&["obs-b", "obs-d", "obs-a", "obs-c", "obs-e"])
    );
    assert_eq!(
        ids(&store, o, &[("_sort", "code,-date")]).await,
        strs(&["obs-d", "obs-b", "obs-c", "obs-a", "obs-e"])
    );
    let p = ResourceType::Patient;
    create(
        &store,
        p,
        "pat-2",
        patient("9990000026", "Smith", "Adam", "1960-01-01", "male"),
    )
    .await;
    create(
        &store,
        p,
        "pat-3",
        patient("9990000034", "Jones", "Zed", "1960-01-01", "male"),
    )
    .await;
    assert_eq!(
        ids(&store, p, &[("_sort", "family,given")]).await,
        strs(&["pat-3", "pat-2", "pat-jane"])
    );
    assert_eq!(
        ids(&store, p, &[("_sort", "birthdate,-family")]).await,
        strs(&["pat-2", "pat-3", "pat-jane"])
    );
}

/// Pages through a search, returning ids in order and the number of pages.
async fn page_through(
    store: &Store,
    rt: ResourceType,
    pairs: &[(&str, &str)],
    size: u32,
) -> (Vec<String>, usize) {
    let mut q = query(rt, pairs);
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let out = store.search(&q, size).await.unwrap();
        pages += 1;
        assert!(out.matches.len() <= size as usize);
        seen.extend(out.matches.iter().map(|r| r.id.as_str().to_owned()));
        match out.next_cursor {
            Some(c) => q.cursor = Some(c),
            None => break,
        }
        assert!(pages < 100, "paging does not end");
    }
    (seen, pages)
}

async fn many_observations(store: &Store, n: usize) -> Vec<String> {
    create(
        store,
        ResourceType::Patient,
        "pat-jane",
        patient("9990000018", "Smith", "Jane", "1984-03-12", "female"),
    )
    .await;
    let mut ids = Vec::new();
    for i in 0..n {
        let id = format!("obs-{i:02}");
        // Dates repeat (every third shares a day) so sort ties are broken by id.
        let day = 1 + (i % 9);
        create(
            store,
            ResourceType::Observation,
            &id,
            observation(
                "pat-jane",
                "8867-4",
                60.0 + i as f64,
                "/min",
                &format!("2024-04-{day:02}T10:00:00Z"),
            ),
        )
        .await;
        ids.push(id);
    }
    ids
}

pub async fn keyset_paging_visits_every_match_once_in_order(store: Store) {
    let all = many_observations(&store, 25).await;
    let (seen, pages) =
        page_through(&store, ResourceType::Observation, &[("code", "8867-4")], 10).await;
    assert_eq!(pages, 3);
    assert_eq!(seen, all, "every match once, in id order");
    // An exact multiple of the page size ends without an empty page.
    let (seen, pages) = page_through(
        &store,
        ResourceType::Observation,
        &[("_id:not", "obs-00,obs-01,obs-02,obs-03,obs-04")],
        10,
    )
    .await;
    assert_eq!(pages, 2);
    assert_eq!(seen.len(), 20);
}

pub async fn keyset_paging_with_a_sort_visits_every_match_once(store: Store) {
    many_observations(&store, 25).await;
    let mut expected = ids(&store, ResourceType::Observation, &[("_sort", "-date")]).await;
    assert_eq!(expected.len(), 25);
    let (seen, _) =
        page_through(&store, ResourceType::Observation, &[("_sort", "-date")], 10).await;
    assert_eq!(seen, expected);
    let (seen, _) = page_through(
        &store,
        ResourceType::Observation,
        &[("_sort", "date,-value-quantity")],
        4,
    )
    .await;
    expected.sort();
    assert_eq!(sorted(seen.clone()), expected);
    assert_eq!(
        seen,
        ids(
            &store,
            ResourceType::Observation,
            &[("_sort", "date,-value-quantity")]
        )
        .await
    );
    let (seen, _) = page_through(
        &store,
        ResourceType::Observation,
        &[("_sort", "-_lastUpdated")],
        7,
    )
    .await;
    assert_eq!(sorted(seen), expected);
}

pub async fn keyset_paging_by_a_decimal_is_exact_beyond_fifteen_digits(store: Store) {
    create(
        &store,
        ResourceType::Patient,
        "pat-jane",
        patient("9990000018", "Smith", "Jane", "1984-03-12", "female"),
    )
    .await;
    let o = ResourceType::Observation;
    // 0.30000000000000004 and 0.3 differ only in the 17th significant digit.
    let values = [
        ("obs-a", "0.30000000000000004"),
        ("obs-b", "0.3"),
        ("obs-c", "0.1"),
        ("obs-d", "0.30000000000000004"),
    ];
    for (id, v) in values {
        let mut body = observation("pat-jane", "8867-4", 0.0, "mmol/L", "2024-05-01");
        body["valueQuantity"]["value"] = serde_json::from_str(v).unwrap();
        create(&store, o, id, body).await;
    }
    let expected = strs(&["obs-c", "obs-b", "obs-a", "obs-d"]);
    assert_eq!(
        ids(&store, o, &[("_sort", "value-quantity")]).await,
        expected
    );
    let (seen, pages) = page_through(&store, o, &[("_sort", "value-quantity")], 1).await;
    assert_eq!(seen, expected);
    assert_eq!(pages, 4);
    let (seen, _) = page_through(&store, o, &[("_sort", "-value-quantity")], 1).await;
    assert_eq!(seen, strs(&["obs-a", "obs-d", "obs-b", "obs-c"]));
}

pub async fn paging_does_not_duplicate_when_a_resource_is_created_mid_way(store: Store) {
    let all = many_observations(&store, 25).await;
    let mut q = query(ResourceType::Observation, &[("code", "8867-4")]);
    let first = store.search(&q, 10).await.unwrap();
    let mut seen: Vec<String> = first
        .matches
        .iter()
        .map(|r| r.id.as_str().to_owned())
        .collect();
    // One sorting before the cursor (not seen), one after (seen once).
    create(
        &store,
        ResourceType::Observation,
        "obs-00a",
        observation("pat-jane", "8867-4", 50.0, "/min", "2024-04-01"),
    )
    .await;
    create(
        &store,
        ResourceType::Observation,
        "obs-99",
        observation("pat-jane", "8867-4", 50.0, "/min", "2024-04-01"),
    )
    .await;
    q.cursor = first.next_cursor;
    while q.cursor.is_some() {
        let out = store.search(&q, 10).await.unwrap();
        seen.extend(out.matches.iter().map(|r| r.id.as_str().to_owned()));
        q.cursor = out.next_cursor;
    }
    let mut expected = all;
    expected.push("obs-99".to_owned());
    assert_eq!(seen, expected);
}

pub async fn an_invalid_cursor_is_rejected(store: Store) {
    many_observations(&store, 3).await;
    let mut q = query(ResourceType::Observation, &[]);
    q.cursor = Some("not-a-cursor".to_owned());
    assert!(matches!(
        store.search(&q, 10).await,
        Err(StoreError::InvalidCursor)
    ));
    // A cursor from a search with another sort.
    let sorted_q = query(ResourceType::Observation, &[("_sort", "date")]);
    let c = store
        .search(&sorted_q, 1)
        .await
        .unwrap()
        .next_cursor
        .unwrap();
    q.cursor = Some(c);
    assert!(matches!(
        store.search(&q, 10).await,
        Err(StoreError::InvalidCursor)
    ));
}

pub async fn total_counts_every_match_not_just_the_page(store: Store) {
    many_observations(&store, 25).await;
    let q = query(
        ResourceType::Observation,
        &[("code", "8867-4"), ("_total", "accurate")],
    );
    let out = store.search(&q, 10).await.unwrap();
    assert_eq!(out.matches.len(), 10);
    assert_eq!(out.total, Some(25));
    let out = store
        .search(
            &query(ResourceType::Observation, &[("date", "2024-04-01")]),
            10,
        )
        .await
        .unwrap();
    assert_eq!(out.total, Some(3));
    let out = store
        .search(&query(ResourceType::Observation, &[("_total", "none")]), 10)
        .await
        .unwrap();
    assert_eq!(out.total, None);
    // _summary=count style: no page at all, just the total.
    let out = store
        .search(
            &query(ResourceType::Observation, &[("_total", "estimate")]),
            0,
        )
        .await
        .unwrap();
    assert!(out.matches.is_empty());
    assert_eq!(out.total, Some(25));
    assert_eq!(
        store
            .search(&query(ResourceType::Patient, &[("family", "nobody")]), 10)
            .await
            .unwrap()
            .total,
        Some(0)
    );
}

// ---------------------------------------------------------------------------------------------
// _include and _revinclude
// ---------------------------------------------------------------------------------------------

pub async fn include_and_revinclude_pull_in_related_resources(store: Store) {
    two_patients(&store).await;
    let o = ResourceType::Observation;
    let out = store
        .search(
            &query(
                o,
                &[("code", "8867-4"), ("_include", "Observation:subject")],
            ),
            100,
        )
        .await
        .unwrap();
    assert_eq!(
        sorted(keys(&out.matches)),
        strs(&["Observation/obs-jane-hr", "Observation/obs-john-hr"])
    );
    assert_eq!(
        sorted(keys(&out.included)),
        strs(&["Patient/pat-jane", "Patient/pat-john"])
    );
    assert_eq!(out.total, Some(2), "included resources are not counted");

    // Target type filter.
    let out = store
        .search(
            &query(
                o,
                &[
                    ("_id", "obs-jane-hr"),
                    ("_include", "Observation:subject:Location"),
                ],
            ),
            100,
        )
        .await
        .unwrap();
    assert!(out.included.is_empty());
    // A resource included twice appears once.
    let out = store
        .search(
            &query(
                o,
                &[("subject", "pat-jane"), ("_include", "Observation:subject")],
            ),
            100,
        )
        .await
        .unwrap();
    assert_eq!(keys(&out.included), strs(&["Patient/pat-jane"]));

    let out = store
        .search(
            &query(
                ResourceType::Patient,
                &[
                    ("_id", "pat-jane"),
                    ("_revinclude", "Observation:subject"),
                    ("_revinclude", "Condition:subject"),
                ],
            ),
            100,
        )
        .await
        .unwrap();
    assert_eq!(keys(&out.matches), strs(&["Patient/pat-jane"]));
    assert_eq!(
        sorted(keys(&out.included)),
        strs(&[
            "Condition/cond-jane-asthma",
            "Observation/obs-jane-hr",
            "Observation/obs-jane-wt"
        ])
    );

    // Deleted resources are not included.
    delete(&store, ResourceType::Patient, "pat-john").await;
    delete(&store, ResourceType::Observation, "obs-jane-wt").await;
    let out = store
        .search(
            &query(
                o,
                &[("code", "8867-4"), ("_include", "Observation:subject")],
            ),
            100,
        )
        .await
        .unwrap();
    assert_eq!(keys(&out.included), strs(&["Patient/pat-jane"]));
    let out = store
        .search(
            &query(
                ResourceType::Patient,
                &[("_id", "pat-jane"), ("_revinclude", "Observation:subject")],
            ),
            100,
        )
        .await
        .unwrap();
    assert_eq!(keys(&out.included), strs(&["Observation/obs-jane-hr"]));
}

pub async fn include_iterate_follows_one_more_level(store: Store) {
    create(&store, ResourceType::Organization, "org-practice", json!({
        "resourceType": "Organization", "name": "Leeds Road Surgery",
        "identifier": [{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "B86001"}],
    })).await;
    let mut jane = patient("9990000018", "Smith", "Jane", "1984-03-12", "female");
    jane["managingOrganization"] = json!({"reference": "Organization/org-practice"});
    create(&store, ResourceType::Patient, "pat-jane", jane).await;
    create(
        &store,
        ResourceType::Observation,
        "obs-1",
        observation("pat-jane", "8867-4", 72.0, "/min", "2024-05-01"),
    )
    .await;

    let out = store
        .search(
            &query(
                ResourceType::Observation,
                &[
                    ("_include", "Observation:subject"),
                    ("_include:iterate", "Patient:organization"),
                ],
            ),
            100,
        )
        .await
        .unwrap();
    assert_eq!(
        sorted(keys(&out.included)),
        strs(&["Organization/org-practice", "Patient/pat-jane"])
    );
    // Without the iterating include the second hop is not taken.
    let out = store
        .search(
            &query(
                ResourceType::Observation,
                &[("_include", "Observation:subject")],
            ),
            100,
        )
        .await
        .unwrap();
    assert_eq!(keys(&out.included), strs(&["Patient/pat-jane"]));
    // Revinclude iterating: Organization ← Patient ← Observation.
    let out = store
        .search(
            &query(
                ResourceType::Organization,
                &[
                    ("_revinclude", "Patient:organization"),
                    ("_revinclude:iterate", "Observation:subject"),
                ],
            ),
            100,
        )
        .await
        .unwrap();
    assert_eq!(
        sorted(keys(&out.included)),
        strs(&["Observation/obs-1", "Patient/pat-jane"])
    );
}

// ---------------------------------------------------------------------------------------------
// Patient compartment
// ---------------------------------------------------------------------------------------------

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
        .everything(&lid("pat-jane"), None, &[], 100, None)
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
        .everything(&lid("pat-john"), None, &[], 100, None)
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
        .everything(&lid("pat-jane"), None, &[], 100, None)
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
            .everything(&lid("pat-nobody"), None, &[], 100, None)
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
        )
        .await
        .unwrap();
    assert_eq!(
        keys(&two.items),
        strs(&["Condition/cond-jane-asthma", "Patient/pat-jane"])
    );
    let since = store
        .everything(&lid("pat-jane"), Some(mid), &[], 100, None)
        .await
        .unwrap();
    assert_eq!(keys(&since.items), strs(&["Observation/obs-jane-bp"]));

    // Pages of two.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = store
            .everything(&lid("pat-jane"), None, &[], 2, cursor.as_deref())
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
            .everything(&lid("pat-jane"), None, &[], 2, Some("garbage"))
            .await,
        Err(StoreError::InvalidCursor)
    ));
}

// ---------------------------------------------------------------------------------------------
// History
// ---------------------------------------------------------------------------------------------

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
            .history(Some(p), Some(&lid("pat-1")), &q)
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
        store.history(Some(p), Some(&lid("pat-1")), &bad).await,
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
        let page = store.history(Some(p), None, &q).await.unwrap();
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
        .read_many(&[
            key(ResourceType::Patient, "pat-jane"),
            key(ResourceType::Observation, "obs-jane-wt"),
            key(ResourceType::Observation, "obs-jane-hr"),
            key(ResourceType::Patient, "pat-nobody"),
            key(ResourceType::Condition, "cond-john-diabetes"),
        ])
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
    assert!(store.read_many(&[]).await.unwrap().is_empty());
}
