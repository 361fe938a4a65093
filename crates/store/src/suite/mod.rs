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
//! The tests live in topic submodules (`crud`, `concurrency`, `search`, `search_refs`, `paging`,
//! `include`, `compartment`, `history`, `audit`, `break_glass`, `directory`, `access`); the fixtures and
//! helpers they share are here.
//!
//! All data is synthetic: NHS numbers are in the 999 test range and pass Modulus 11.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test suite: failing loudly is the point"
)]

use carerecord_access::Visibility;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use carerecord_fhir::{LogicalId, NhsNumber, ResourceType, VersionId};
use carerecord_search::query::{Handling, SearchQuery, parse};
use futures::FutureExt;
use serde_json::{Value, json};

use crate::model::{StoredResource, WriteResult};
use crate::{ResourceStore, StoreError, write};

pub use tokio;

pub mod access;
pub mod audit;
pub mod break_glass;
pub mod compartment;
pub mod concurrency;
pub mod crud;
pub mod directory;
pub mod history;
pub mod include;
pub mod ingest;
pub mod paging;
pub mod search;
pub mod search_refs;
pub mod smart;

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
            crud: [
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
                heads_of_many_resources_come_from_one_look_up,
                rolling_back_to_a_savepoint_undoes_only_what_came_after_it,
            ],
            concurrency: [
                conditional_create_is_atomic_under_concurrency,
                concurrent_updates_of_one_resource_each_get_their_own_version,
                concurrent_if_match_updates_let_exactly_one_win,
            ],
            search: [
                search_by_token_matches_every_system_and_code_form,
                search_by_token_not_excludes_matching_resources,
                search_by_token_text_matches_concept_text_and_display,
                search_by_string_is_prefix_accent_and_case_insensitive,
                search_by_string_exact_and_contains,
                search_by_date_honours_prefixes_on_partial_dates,
                search_by_date_compares_periods,
            ],
            search_refs: [
                search_by_reference_matches_local_references,
                search_by_chained_patient_identifier,
                search_by_reference_identifier_modifier,
                search_by_quantity_with_value_and_unit,
                search_by_id_last_updated_and_tag,
                deleted_and_superseded_versions_do_not_match_searches,
                parameters_stored_as_others_are_searched_through_their_rows,
            ],
            paging: [
                sort_by_date_ascending_and_descending,
                sort_by_multiple_keys,
                keyset_paging_visits_every_match_once_in_order,
                keyset_paging_with_a_sort_visits_every_match_once,
                keyset_paging_by_a_decimal_is_exact_beyond_fifteen_digits,
                paging_does_not_duplicate_when_a_resource_is_created_mid_way,
                an_invalid_cursor_is_rejected,
                total_counts_every_match_not_just_the_page,
            ],
            include: [
                include_and_revinclude_pull_in_related_resources,
                include_iterate_follows_one_more_level,
            ],
            compartment: [
                everything_returns_the_patients_compartment_only,
                everything_filters_by_type_and_pages,
                stored_resources_carry_their_patient,
            ],
            access: [
                authorisation_matrix_reads_and_history,
                authorisation_matrix_searches_counts_and_paging,
                authorisation_matrix_everything_includes_and_chains,
                authorisation_matrix_exercises_every_rule,
                a_search_about_one_person_still_judges_others_rows,
                an_unverified_nhs_number_keeps_the_person_with_each_items_source,
            ],
            ingest: [
                a_message_log_row_commits_with_the_resources_and_rolls_back_with_them,
                dead_letters_keep_the_raw_bytes_whole_until_replayed,
                review_items_are_listed_and_decided_once,
                sending_systems_are_unique_by_application_and_facility,
                each_feed_is_as_fresh_as_its_newest_message,
                merges_are_recorded_and_undone_once,
                reads_in_a_transaction_see_the_writes_it_holds_back,
                message_log_rows_are_looked_up_and_written_together,
            ],
            break_glass: [
                break_glass_grants_are_queued_by_organisation_and_reviewed_once,
                the_review_queue_pages_by_keyset_newest_first,
            ],
            history: [
                history_of_an_instance_lists_versions_newest_first,
                history_of_a_type_honours_since_and_pages,
                read_many_leaves_out_missing_and_deleted_resources,
            ],
            audit: [
                audit_entries_commit_with_their_write_and_roll_back_with_it,
                concurrent_audit_appends_are_gap_free_and_the_chain_verifies,
                audit_search_filters_and_pages_newest_first,
                audit_last_looks_are_each_persons_newest_matching_entry,
                rolling_back_to_a_savepoint_drops_the_audit_records_appended_after_it,
            ],
            directory: [
                users_are_found_by_username_and_id_and_usernames_are_unique,
                role_grants_are_listed_in_order_and_granting_twice_is_harmless,
                failed_sign_ins_lock_the_account_at_the_limit_and_success_clears_them,
                a_totp_step_is_accepted_once_and_never_an_earlier_one,
                password_training_and_disabled_flags_are_updated,
                clients_are_registered_once,
                tokens_are_found_by_hash_touched_revoked_and_purged,
                a_client_assertion_id_is_accepted_once_per_client,
                launch_registrations_are_listed_per_client_and_replaced,
                client_scopes_are_registered_and_replaced,
            ],
            smart: [
                smart_apps_are_registered_once_and_listed,
                an_authorisation_code_is_redeemed_once,
                refresh_tokens_are_spent_once_and_a_family_is_revoked_whole,
                a_launch_context_is_spent_once,
                a_registration_is_written_whole_or_not_at_all_and_listed,
                disabling_a_client_revokes_its_tokens_and_those_issued_through_it,
            ],
        );
    };
    (@tests $make:path; $($module:ident: [$($name:ident),* $(,)?]),* $(,)?) => {
        $($(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $crate::suite::run($make, $crate::suite::$module::$name).await;
            }
        )*)*
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
    let out = store
        .search(&query(rt, pairs), 100, &Visibility::All)
        .await
        .unwrap();
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
