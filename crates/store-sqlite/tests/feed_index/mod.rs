//! The query behind `carerecord_store::ingest::feeds` (how fresh each feed is, read on every
//! record page) is answered from the `(sender, received_at)` index of migration 0017, not by
//! reading every message a sender ever sent.

use sqlx::Row;

use super::migrated_file;

/// The statement of `carerecord_store::ingest`'s feed status, as the store runs it.
const FEEDS: &str = "SELECT s.ods, MAX((SELECT MAX(m.received_at) FROM hl7_messages m WHERE m.sender = s.id)) \
                     FROM hl7_systems s GROUP BY s.ods ORDER BY s.ods";

#[tokio::test]
async fn the_newest_message_of_each_feed_is_read_from_the_sender_and_time_index() {
    let (_dir, mut db) = migrated_file().await;
    let plan: Vec<String> = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {FEEDS}")))
        .fetch_all(&mut db)
        .await
        .expect("the plan")
        .iter()
        .map(|r| r.get::<String, _>("detail"))
        .collect();
    assert!(
        plan.iter()
            .any(|d| d.contains("hl7_messages_sender_received")),
        "{plan:#?}"
    );
}
