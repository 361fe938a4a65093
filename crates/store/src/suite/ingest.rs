//! The gathering tables: the message log commits with the resources a message carries, dead
//! letters keep their bytes, review items and merges are decided once.

use carerecord_access::Visibility;
use carerecord_fhir::ResourceType;

use super::{Store, lid, observation, patient, query};
use crate::ingest::{
    self, DeadLetterStatus, Hl7System, IngestOp, MessageRecord, ReviewStatus, tx_do, tx_id,
};
use crate::model::{ResourceKey, VersionHead};
use crate::prepare::prepare_body;
use crate::{StoreError, write};

fn message(control_id: &str, ack: &[u8]) -> MessageRecord {
    MessageRecord {
        sender: "sys-zrh01-pas".into(),
        control_id: control_id.into(),
        received_at: 1_795_608_000_000_000,
        ack_code: "AA".into(),
        ack: ack.to_vec(),
        patient_id: Some("pat-msg".into()),
    }
}

pub async fn a_message_log_row_commits_with_the_resources_and_rolls_back_with_them(store: Store) {
    let ack =
        b"MSH|^~\\&|CARERECORD|ZCR|PAS|ZRH01|20261125120000||ACK^A01^ACK|A1|P|2.4\rMSA|AA|MSG1\r";
    // Dropped without commit: neither the Patient nor the log row exists.
    let mut tx = store.begin().await.unwrap();
    write::update(
        tx.as_mut(),
        ResourceType::Patient,
        &lid("pat-msg"),
        patient("9990000018", "Smith", "Jane", "1984-03-12", "female"),
        None,
    )
    .await
    .unwrap();
    tx_do(tx.as_mut(), IngestOp::PutMessage(message("MSG1", ack)))
        .await
        .unwrap();
    // Inside the transaction the row is already there (the dedupe check of a group commit).
    assert!(
        ingest::tx_message(tx.as_mut(), "sys-zrh01-pas", "MSG1")
            .await
            .unwrap()
            .is_some()
    );
    drop(tx);
    assert!(
        ingest::logged_message(store.as_ref(), "sys-zrh01-pas", "MSG1")
            .await
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        store
            .read(ResourceType::Patient, &lid("pat-msg"), &Visibility::All)
            .await,
        Err(StoreError::NotFound)
    ));

    // Committed: both exist, and the ACK comes back byte for byte.
    let mut tx = store.begin().await.unwrap();
    write::update(
        tx.as_mut(),
        ResourceType::Patient,
        &lid("pat-msg"),
        patient("9990000018", "Smith", "Jane", "1984-03-12", "female"),
        None,
    )
    .await
    .unwrap();
    tx_do(tx.as_mut(), IngestOp::PutMessage(message("MSG1", ack)))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let logged = ingest::logged_message(store.as_ref(), "sys-zrh01-pas", "MSG1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(logged, message("MSG1", ack));
    store
        .read(ResourceType::Patient, &lid("pat-msg"), &Visibility::All)
        .await
        .unwrap();

    // The same sender and control id cannot be logged twice; another sender can use it.
    let mut tx = store.begin().await.unwrap();
    let again = tx_do(tx.as_mut(), IngestOp::PutMessage(message("MSG1", b"x"))).await;
    assert!(matches!(again, Err(StoreError::AlreadyExists)), "{again:?}");
    drop(tx);
    let mut tx = store.begin().await.unwrap();
    let mut other = message("MSG1", b"y");
    other.sender = "sys-zlab1-lims".into();
    tx_do(tx.as_mut(), IngestOp::PutMessage(other))
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

pub async fn dead_letters_keep_the_raw_bytes_whole_until_replayed(store: Store) {
    // ISO-8859-1 bytes, a NUL and carriage returns: kept exactly.
    let raw: Vec<u8> = b"MSH|^~\\&|PAS|ZRH01|||x||ADT^A01|M9|P|2.4\rPID|||\xe9t\xe9\x00\r".to_vec();
    let mut tx = store.begin().await.unwrap();
    let first = tx_id(
        tx.as_mut(),
        IngestOp::PutDeadLetter {
            received_at: 10,
            sender: Some("sys-zrh01-pas".into()),
            control_id: Some("M9".into()),
            reason: "PID-3: invalid NHS number".into(),
            raw: raw.clone(),
        },
    )
    .await
    .unwrap();
    let second = tx_id(
        tx.as_mut(),
        IngestOp::PutDeadLetter {
            received_at: 11,
            sender: None,
            control_id: None,
            reason: "MSH: unreadable".into(),
            raw: b"garbage".to_vec(),
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert!(second > first);

    let open = ingest::list_dead_letters(store.as_ref(), Some(DeadLetterStatus::Open), 0, 10)
        .await
        .unwrap();
    assert_eq!(
        open.iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![first, second]
    );
    assert_eq!(open[0].raw, raw);
    assert_eq!(open[0].control_id.as_deref(), Some("M9"));
    assert_eq!(open[1].sender, None);

    // A failed replay keeps it open with the new reason; a successful one resolves it.
    let mut tx = store.begin().await.unwrap();
    tx_do(
        tx.as_mut(),
        IngestOp::ReplayedDeadLetter {
            id: first,
            at: 20,
            failure: Some("PID-3: still invalid".into()),
        },
    )
    .await
    .unwrap();
    tx_do(
        tx.as_mut(),
        IngestOp::ReplayedDeadLetter {
            id: second,
            at: 21,
            failure: None,
        },
    )
    .await
    .unwrap();
    let missing = tx_do(
        tx.as_mut(),
        IngestOp::ReplayedDeadLetter {
            id: second + 100,
            at: 21,
            failure: None,
        },
    )
    .await;
    assert!(matches!(missing, Err(StoreError::NotFound)));
    tx.commit().await.unwrap();

    let d1 = ingest::dead_letter(store.as_ref(), first).await.unwrap();
    assert_eq!(
        (d1.status, d1.attempts, d1.reason.as_str(), d1.resolved_at),
        (DeadLetterStatus::Open, 1, "PID-3: still invalid", None)
    );
    assert_eq!(d1.raw, raw);
    let d2 = ingest::dead_letter(store.as_ref(), second).await.unwrap();
    assert_eq!(
        (d2.status, d2.resolved_at),
        (DeadLetterStatus::Replayed, Some(21))
    );
    let open = ingest::list_dead_letters(store.as_ref(), Some(DeadLetterStatus::Open), 0, 10)
        .await
        .unwrap();
    assert_eq!(open.iter().map(|d| d.id).collect::<Vec<_>>(), vec![first]);
    let all = ingest::list_dead_letters(store.as_ref(), None, first, 10)
        .await
        .unwrap();
    assert_eq!(all.iter().map(|d| d.id).collect::<Vec<_>>(), vec![second]);
    assert!(matches!(
        ingest::dead_letter(store.as_ref(), second + 100).await,
        Err(StoreError::NotFound)
    ));
}

pub async fn review_items_are_listed_and_decided_once(store: Store) {
    let mut tx = store.begin().await.unwrap();
    let mut ids = Vec::new();
    for (p, c) in [("pat-new-1", "pat-old-1"), ("pat-new-2", "pat-old-2")] {
        ids.push(
            tx_id(
                tx.as_mut(),
                IngestOp::PutReview {
                    created_at: 5,
                    source_ods: "ZRH01".into(),
                    patient_id: p.into(),
                    candidate_id: c.into(),
                    score: 70,
                    reasons: "family,birthDate".into(),
                },
            )
            .await
            .unwrap(),
        );
    }
    tx.commit().await.unwrap();
    let open = ingest::list_reviews(store.as_ref(), Some(ReviewStatus::Open), 0, 10)
        .await
        .unwrap();
    assert_eq!(open.iter().map(|r| r.id).collect::<Vec<_>>(), ids);
    assert_eq!(open[0].candidate_id, "pat-old-1");
    assert_eq!(open[0].score, 70);

    let mut tx = store.begin().await.unwrap();
    tx_do(
        tx.as_mut(),
        IngestOp::DecideReview {
            id: ids[0],
            status: ReviewStatus::Linked,
            by: "cli".into(),
            at: 9,
            merge_id: Some(4),
        },
    )
    .await
    .unwrap();
    // Deciding it again finds nothing open.
    let again = tx_do(
        tx.as_mut(),
        IngestOp::DecideReview {
            id: ids[0],
            status: ReviewStatus::Rejected,
            by: "cli".into(),
            at: 10,
            merge_id: None,
        },
    )
    .await;
    assert!(matches!(again, Err(StoreError::NotFound)), "{again:?}");
    let inside = ingest::tx_review(tx.as_mut(), ids[0]).await.unwrap();
    assert_eq!(inside.status, ReviewStatus::Linked);
    tx.commit().await.unwrap();

    let open = ingest::list_reviews(store.as_ref(), Some(ReviewStatus::Open), 0, 10)
        .await
        .unwrap();
    assert_eq!(open.iter().map(|r| r.id).collect::<Vec<_>>(), vec![ids[1]]);
    let decided = ingest::review(store.as_ref(), ids[0]).await.unwrap();
    assert_eq!(
        (
            decided.status,
            decided.decided_by.as_deref(),
            decided.decided_at,
            decided.merge_id
        ),
        (ReviewStatus::Linked, Some("cli"), Some(9), Some(4))
    );
}

fn system(id: &str, app: &str, facility: &str) -> Hl7System {
    Hl7System {
        id: id.into(),
        name: format!("{id} system"),
        org_id: "org-zrh01".into(),
        ods: "ZRH01".into(),
        msh_application: app.into(),
        msh_facility: facility.into(),
        created: 1,
    }
}

pub async fn sending_systems_are_unique_by_application_and_facility(store: Store) {
    let mut tx = store.begin().await.unwrap();
    tx_do(
        tx.as_mut(),
        IngestOp::PutSystem(system("sys-b", "PAS", "ZRH01")),
    )
    .await
    .unwrap();
    tx_do(
        tx.as_mut(),
        IngestOp::PutSystem(system("sys-a", "LIMS", "ZRH01")),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let mut tx = store.begin().await.unwrap();
    let taken = tx_do(
        tx.as_mut(),
        IngestOp::PutSystem(system("sys-c", "PAS", "ZRH01")),
    )
    .await;
    assert!(matches!(taken, Err(StoreError::AlreadyExists)), "{taken:?}");
    drop(tx);
    let all = ingest::systems(store.as_ref()).await.unwrap();
    assert_eq!(
        all,
        vec![
            system("sys-a", "LIMS", "ZRH01"),
            system("sys-b", "PAS", "ZRH01")
        ]
    );
}

pub async fn each_feed_is_as_fresh_as_its_newest_message(store: Store) {
    assert!(ingest::feeds(store.as_ref()).await.unwrap().is_empty());
    let mut tx = store.begin().await.unwrap();
    // Two systems of one hospital (PAS and LIMS), and a GP system that has sent nothing yet.
    for s in [
        system("sys-pas", "PAS", "ZRH01"),
        system("sys-lims", "LIMS", "ZRH01"),
        Hl7System {
            ods: "ZGP01".into(),
            org_id: "org-zgp01".into(),
            ..system("sys-gp", "GPSYS", "ZGP01")
        },
    ] {
        tx_do(tx.as_mut(), IngestOp::PutSystem(s)).await.unwrap();
    }
    for (sender, id, at) in [
        ("sys-pas", "P1", 1_000),
        ("sys-pas", "P2", 3_000),
        ("sys-lims", "L1", 5_000),
        ("sys-lims", "L2", 4_000),
        // Another sender's message says nothing about these feeds.
        ("sys-unregistered", "X1", 9_000),
    ] {
        let mut m = message(id, b"ack");
        m.sender = sender.into();
        m.received_at = at;
        tx_do(tx.as_mut(), IngestOp::PutMessage(m)).await.unwrap();
    }
    tx.commit().await.unwrap();
    assert_eq!(
        ingest::feeds(store.as_ref()).await.unwrap(),
        vec![
            ingest::FeedStatus {
                ods: "ZGP01".into(),
                last_received: None
            },
            ingest::FeedStatus {
                ods: "ZRH01".into(),
                last_received: Some(5_000)
            },
        ]
    );
}

pub async fn merges_are_recorded_and_undone_once(store: Store) {
    let moved = vec![
        "Observation/o1/_history/2".to_owned(),
        "Patient/p-old/_history/3".to_owned(),
    ];
    let mut tx = store.begin().await.unwrap();
    let id = tx_id(
        tx.as_mut(),
        IngestOp::PutMerge {
            at: 7,
            survivor_id: "p-new".into(),
            merged_id: "p-old".into(),
            cause: "hl7-a40".into(),
            actor: "sys-zrh01-pas".into(),
            moved: moved.clone(),
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    for who in ["p-new", "p-old"] {
        let ms = ingest::merges_of(store.as_ref(), who).await.unwrap();
        assert_eq!(ms.len(), 1, "{who}");
        assert_eq!(ms[0].moved, moved);
        assert_eq!(ms[0].undone_at, None);
    }
    assert!(
        ingest::merges_of(store.as_ref(), "p-other")
            .await
            .unwrap()
            .is_empty()
    );
    let mut tx = store.begin().await.unwrap();
    tx_do(tx.as_mut(), IngestOp::UndoMerge { id, at: 8 })
        .await
        .unwrap();
    let twice = tx_do(tx.as_mut(), IngestOp::UndoMerge { id, at: 9 }).await;
    assert!(matches!(twice, Err(StoreError::NotFound)));
    assert_eq!(
        ingest::tx_merge(tx.as_mut(), id).await.unwrap().undone_at,
        Some(8)
    );
    tx.commit().await.unwrap();
}

const OBS_SYSTEM: &str = "https://fhir.carerecord.example/Id/ZLB01/observation";

fn identified_observation(value: &str) -> serde_json::Value {
    let mut o = observation("pat-held", "2951-2", 140.0, "mmol/L", "2026-11-25");
    o["identifier"] = serde_json::json!([{"system": OBS_SYSTEM, "value": value}]);
    o
}

async fn found_by_identifier(tx: &mut dyn crate::StoreTx, value: &str) -> Vec<String> {
    ingest::tx_identified(
        tx,
        vec![(ResourceType::Observation, OBS_SYSTEM.into(), value.into())],
    )
    .await
    .unwrap()
    .into_iter()
    .map(|(k, _, _)| k.id.as_str().to_owned())
    .collect()
}

/// Writes a transaction holds back (to write many together) are seen by its own reads: a
/// read of the resource, an identifier look-up and a search — before and after they are
/// written, and a held-back new version replaces what the database has.
pub async fn reads_in_a_transaction_see_the_writes_it_holds_back(store: Store) {
    let mut tx = store.begin().await.unwrap();
    write::create_new(
        tx.as_mut(),
        ResourceType::Observation,
        &lid("obs-held"),
        identified_observation("A1"),
    )
    .await
    .unwrap();
    let current = tx
        .current(ResourceType::Observation, &lid("obs-held"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(current.version_id.get(), 1);
    assert!(current.body.contains("\"A1\""));
    assert_eq!(
        found_by_identifier(tx.as_mut(), "A1").await,
        vec!["obs-held"]
    );
    let token = format!("{OBS_SYSTEM}|A1");
    let q = query(ResourceType::Observation, &[("identifier", &token)]);
    let keys = tx.find(&q, 10).await.unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    tx.commit().await.unwrap();

    // A new version held back with another identifier: the old one no longer finds it.
    let mut tx = store.begin().await.unwrap();
    let key = ResourceKey {
        resource_type: ResourceType::Observation,
        id: lid("obs-held"),
    };
    let heads = tx.heads(std::slice::from_ref(&key)).await.unwrap();
    let head: Option<&VersionHead> = heads.get(&key);
    write::update_prepared(
        tx.as_mut(),
        prepare_body(
            ResourceType::Observation,
            &lid("obs-held"),
            identified_observation("A2"),
        ),
        head,
        None,
    )
    .await
    .unwrap();
    assert!(found_by_identifier(tx.as_mut(), "A1").await.is_empty());
    assert_eq!(
        found_by_identifier(tx.as_mut(), "A2").await,
        vec!["obs-held"]
    );
    let current = tx
        .current(ResourceType::Observation, &lid("obs-held"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(current.version_id.get(), 2);
    // A search of another type reads nothing held back (and writes nothing); of this type,
    // it sees the held-back version.
    tx.find(&query(ResourceType::Patient, &[]), 10)
        .await
        .unwrap();
    let token = format!("{OBS_SYSTEM}|A2");
    let q = query(ResourceType::Observation, &[("identifier", &token)]);
    assert_eq!(tx.find(&q, 10).await.unwrap().len(), 1);
    tx.commit().await.unwrap();
    let stored = store
        .read(
            ResourceType::Observation,
            &lid("obs-held"),
            &Visibility::All,
        )
        .await
        .unwrap();
    assert_eq!(stored.version_id.get(), 2);
}

/// A batch's message log rows are looked up in one statement and written in one.
pub async fn message_log_rows_are_looked_up_and_written_together(store: Store) {
    let ack = b"MSA|AA|\r";
    let mut tx = store.begin().await.unwrap();
    let rows: Vec<MessageRecord> = (0..5).map(|i| message(&format!("B{i}"), ack)).collect();
    tx_do(tx.as_mut(), IngestOp::PutMessages(rows.clone()))
        .await
        .unwrap();
    let keys: Vec<(String, String)> = ["B0", "B3", "NOPE", "B4"]
        .iter()
        .map(|c| ("sys-zrh01-pas".to_owned(), (*c).to_owned()))
        .collect();
    let mut found = ingest::tx_messages(tx.as_mut(), keys.clone())
        .await
        .unwrap();
    found.sort_by(|a, b| a.control_id.cmp(&b.control_id));
    assert_eq!(
        found,
        vec![rows[0].clone(), rows[3].clone(), rows[4].clone()]
    );
    tx.commit().await.unwrap();
    assert_eq!(
        ingest::logged_message(store.as_ref(), "sys-zrh01-pas", "B2")
            .await
            .unwrap(),
        Some(rows[2].clone())
    );
    // Logged twice: refused, like one row.
    let mut tx = store.begin().await.unwrap();
    let again = tx_do(
        tx.as_mut(),
        IngestOp::PutMessages(vec![message("B9", ack), message("B1", ack)]),
    )
    .await;
    assert!(matches!(again, Err(StoreError::AlreadyExists)), "{again:?}");
}
