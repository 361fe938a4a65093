//! Searches with several criteria are planned from the statistics migration 0018 gives every
//! store: the criteria a search does not start from are tested on each candidate through the
//! index rows of *that* resource (`…_owner`), not by reading every row with the value.

use carerecord_access::Visibility;
use carerecord_fhir::ResourceType;
use carerecord_search::query::{Handling, parse};
use carerecord_store::sql::page_statement;
use carerecord_store_sqlite::positional;
use sqlx::Row;
use sqlx::sqlite::SqliteConnection;

use super::migrated_file;

async fn plan_of(db: &mut SqliteConnection, rt: ResourceType, params: &[(&str, &str)]) -> String {
    let pairs: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let q = parse(rt, &pairs, Handling::Strict, "").expect("a valid search");
    let st = page_statement(&q, 20, None, &Visibility::All).expect("a statement");
    // Unbound: the plan does not depend on the values.
    let sql = format!("EXPLAIN QUERY PLAN {}", positional(&st.statement.sql));
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(db)
        .await
        .expect("the plan")
        .iter()
        .map(|r| r.get::<String, _>("detail"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn the_other_criteria_of_a_search_are_tested_through_each_candidates_own_rows() {
    let (_dir, mut db) = migrated_file().await;
    // The residents list's results search: one person's results, laboratory ones, recent.
    let plan = plan_of(
        &mut db,
        ResourceType::Observation,
        &[
            ("patient", "Patient/p1"),
            ("category", "laboratory,LAB"),
            ("date", "ge2026-11-01"),
        ],
    )
    .await;
    assert!(plan.contains("search_reference_target"), "{plan}");
    assert!(plan.contains("search_token_owner"), "{plan}");
    assert!(!plan.contains("search_token_value"), "{plan}");
    assert!(plan.contains("search_date_owner"), "{plan}");
    // A person's medicines of one code in any system: tested on the person's own. (With a
    // system, the value index finds the one row by code, system and id: as good.)
    let plan = plan_of(
        &mut db,
        ResourceType::MedicationRequest,
        &[("subject", "Patient/p1"), ("code", "322236009")],
    )
    .await;
    assert!(plan.contains("search_token_owner"), "{plan}");
    assert!(!plan.contains("search_token_value"), "{plan}");
}
