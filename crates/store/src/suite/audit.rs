//! The audit trail: appended with writes in one transaction, group-committed for reads, gap-free
//! and chained under concurrency, and searchable the way privacy officers look.
//!
//! A backend's fixture must open its store with [`AUDIT_KEY`].

use carerecord_access::Visibility;
use carerecord_fhir::ResourceType;
use serde_json::json;

use crate::audit::{
    AuditAction, AuditAgent, AuditEntry, AuditFilter, AuditKey, AuditOutcome, AuditRecord,
    BreakGlass, Channel, PrincipalKind, TamperKind, verify, verify_trail,
};
use crate::{StoreError, write};

use super::{Store, lid, patient};

/// The key every suite fixture hashes its audit chain with.
pub const AUDIT_KEY: &[u8; 32] = b"carerecord-suite-audit-key-0001!";

fn key() -> AuditKey {
    AuditKey::new(AUDIT_KEY).unwrap()
}

fn record(
    action: AuditAction,
    outcome: AuditOutcome,
    user: &str,
    org: &str,
    patients: &[&str],
    time: i64,
) -> AuditRecord {
    let mut r = AuditRecord::new(
        time,
        action,
        outcome,
        "legitimate-relationship",
        AuditAgent {
            kind: PrincipalKind::User,
            id: user.to_owned(),
            name: Some("Test Clinician".into()),
            role: Some("R8000".into()),
            organisation_id: Some(format!("org-{org}")),
            ods_code: Some(org.to_owned()),
        },
        Channel::Api,
    );
    r.patient_ids = patients.iter().map(|p| (*p).to_owned()).collect();
    r.resources = patients
        .iter()
        .map(|p| format!("Patient/{p}/_history/1"))
        .collect();
    r.purpose_of_use = Some("TREAT".into());
    r.client_address = Some("192.0.2.10".into());
    r.request_id = Some(format!("req-{time}"));
    r
}

/// The whole trail, read page by page as `audit verify` does.
async fn all_entries(store: &Store) -> Vec<AuditEntry> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = store.audit_entries(after, 7).await.unwrap();
        let Some(last) = page.last() else {
            return out;
        };
        after = last.seq;
        out.extend(page);
    }
}

fn seqs(es: &[AuditEntry]) -> Vec<i64> {
    es.iter().map(|e| e.seq).collect()
}

pub async fn audit_entries_commit_with_their_write_and_roll_back_with_it(store: Store) {
    let rec = record(
        AuditAction::Create,
        AuditOutcome::Allowed,
        "u-1",
        "A99999",
        &["pat-audit"],
        1_000,
    );
    {
        let mut tx = store.begin().await.unwrap();
        write::create(
            tx.as_mut(),
            ResourceType::Patient,
            &lid("pat-audit"),
            patient("9990000018", "Audit", "Ann", "1970-01-01", "female"),
        )
        .await
        .unwrap();
        tx.append_audit(vec![rec.clone()]).await.unwrap();
        // Dropped without commit: neither the Patient nor its audit entry may remain.
    }
    assert!(matches!(
        store
            .read(ResourceType::Patient, &lid("pat-audit"), &Visibility::All)
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(all_entries(&store).await.is_empty());

    let mut tx = store.begin().await.unwrap();
    write::create(
        tx.as_mut(),
        ResourceType::Patient,
        &lid("pat-audit"),
        patient("9990000018", "Audit", "Ann", "1970-01-01", "female"),
    )
    .await
    .unwrap();
    tx.append_audit(vec![rec.clone()]).await.unwrap();
    tx.commit().await.unwrap();

    store
        .read(ResourceType::Patient, &lid("pat-audit"), &Visibility::All)
        .await
        .unwrap();
    let entries = all_entries(&store).await;
    assert_eq!(seqs(&entries), vec![1]);
    assert_eq!(entries[0].record, rec, "every field reads back as written");
    assert_eq!(store.audit_entry(1).await.unwrap(), entries[0]);
    assert!(matches!(
        store.audit_entry(2).await,
        Err(StoreError::NotFound)
    ));
    let report = verify(entries, &key());
    assert!(report.is_intact(), "{report:?}");
}

pub async fn concurrent_audit_appends_are_gap_free_and_the_chain_verifies(store: Store) {
    const READS: i64 = 200;
    const WRITES: i64 = 10;
    let mut handles = Vec::new();
    for i in 0..READS {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let r = record(
                AuditAction::Read,
                AuditOutcome::Allowed,
                &format!("u-{}", i % 7),
                "A99999",
                &[&format!("pat-{}", i % 11)],
                i,
            );
            store.append_audit(vec![r]).await.unwrap();
        }));
    }
    for i in 0..WRITES {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let id = format!("pat-w{i}");
            let mut tx = store.begin().await.unwrap();
            write::create(
                tx.as_mut(),
                ResourceType::Patient,
                &lid(&id),
                json!({"resourceType": "Patient", "active": true}),
            )
            .await
            .unwrap();
            tx.append_audit(vec![record(
                AuditAction::Create,
                AuditOutcome::Allowed,
                "u-writer",
                "A99999",
                &[&id],
                1_000 + i,
            )])
            .await
            .unwrap();
            tx.commit().await.unwrap();
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let entries = all_entries(&store).await;
    let n = READS + WRITES;
    assert_eq!(seqs(&entries), (1..=n).collect::<Vec<_>>());
    let report = verify(entries, &key());
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.verified, n as u64);
    assert_eq!(report.head.map(|(s, _)| s), Some(n));
}

pub async fn audit_last_looks_are_each_persons_newest_matching_entry(store: Store) {
    let r = |outcome, user: &str, patients: &[&str], time| {
        record(AuditAction::Read, outcome, user, "A99999", patients, time)
    };
    store
        .append_audit(vec![
            r(AuditOutcome::Allowed, "u-1", &["pat-b"], 500),
            r(AuditOutcome::Allowed, "u-1", &["pat-a"], 1_000),
            r(AuditOutcome::Allowed, "u-1", &["pat-a", "pat-b"], 2_000),
            // Someone else's look, a refusal, and a look at nobody do not count.
            r(AuditOutcome::Allowed, "u-2", &["pat-a"], 3_000),
            r(AuditOutcome::Denied, "u-1", &["pat-c"], 4_000),
            r(AuditOutcome::Allowed, "u-1", &[], 5_000),
        ])
        .await
        .unwrap();
    let filter = AuditFilter {
        agent_id: Some("u-1".into()),
        outcome: Some(AuditOutcome::Allowed),
        since: Some(600),
        ..AuditFilter::default()
    };
    let mut looks = store.audit_last_looks(&filter).await.unwrap();
    looks.sort();
    assert_eq!(
        looks,
        vec![("pat-a".to_owned(), 2_000), ("pat-b".to_owned(), 2_000)]
    );
    let mut earlier = store
        .audit_last_looks(&AuditFilter {
            before: Some(1_500),
            ..filter
        })
        .await
        .unwrap();
    earlier.sort();
    assert_eq!(earlier, vec![("pat-a".to_owned(), 1_000)]);
}

pub async fn audit_search_filters_and_pages_newest_first(store: Store) {
    let mut denied = record(
        AuditAction::Denial,
        AuditOutcome::Denied,
        "u-2",
        "B88888",
        &["pat-a"],
        3_000,
    );
    denied.rule = "no-relationship".into();
    let mut glass = record(
        AuditAction::BreakGlass,
        AuditOutcome::Allowed,
        "u-2",
        "B88888",
        &["pat-b"],
        4_000,
    );
    glass.purpose_of_use = Some("ETREAT".into());
    glass.break_glass = Some(BreakGlass {
        code: "emergency".into(),
        text: "Unconscious on arrival".into(),
    });
    store
        .append_audit(vec![
            record(
                AuditAction::Read,
                AuditOutcome::Allowed,
                "u-1",
                "A99999",
                &["pat-a"],
                1_000,
            ),
            record(
                AuditAction::Search,
                AuditOutcome::Allowed,
                "u-1",
                "A99999",
                &["pat-a", "pat-b"],
                2_000,
            ),
            denied,
            glass.clone(),
            record(
                AuditAction::Login,
                AuditOutcome::Allowed,
                "u-3",
                "A99999",
                &[],
                5_000,
            ),
        ])
        .await
        .unwrap();

    let find = |f: AuditFilter| {
        let store = store.clone();
        async move { seqs(&store.audit_search(&f, 100, None).await.unwrap().items) }
    };
    assert_eq!(find(AuditFilter::default()).await, vec![5, 4, 3, 2, 1]);
    let by_patient = |p: &str| AuditFilter {
        patient_id: Some(p.to_owned()),
        ..AuditFilter::default()
    };
    assert_eq!(find(by_patient("pat-a")).await, vec![3, 2, 1]);
    assert_eq!(
        find(by_patient("pat-b")).await,
        vec![4, 2],
        "a search that returned two people is in both people's reports"
    );
    assert_eq!(
        find(AuditFilter {
            agent_id: Some("u-2".into()),
            ..AuditFilter::default()
        })
        .await,
        vec![4, 3]
    );
    for org in ["A99999", "org-A99999"] {
        assert_eq!(
            find(AuditFilter {
                organisation: Some(org.into()),
                ..AuditFilter::default()
            })
            .await,
            vec![5, 2, 1],
            "by ODS code or organisation id ({org})"
        );
    }
    assert_eq!(
        find(AuditFilter {
            since: Some(2_000),
            before: Some(4_000),
            ..AuditFilter::default()
        })
        .await,
        vec![3, 2]
    );
    assert_eq!(
        find(AuditFilter {
            outcome: Some(AuditOutcome::Denied),
            ..AuditFilter::default()
        })
        .await,
        vec![3]
    );
    assert_eq!(
        find(AuditFilter {
            action: Some(AuditAction::BreakGlass),
            patient_id: Some("pat-b".into()),
            ..AuditFilter::default()
        })
        .await,
        vec![4]
    );
    let e = store.audit_entry(4).await.unwrap();
    assert_eq!(e.record, glass);

    // Keyset paging: every entry once, newest first.
    let mut cursor: Option<String> = None;
    let mut seen = Vec::new();
    loop {
        let page = store
            .audit_search(&AuditFilter::default(), 2, cursor.as_deref())
            .await
            .unwrap();
        assert!(page.items.len() <= 2);
        seen.extend(seqs(&page.items));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, vec![5, 4, 3, 2, 1]);
    assert!(matches!(
        store
            .audit_search(&AuditFilter::default(), 2, Some("not-a-cursor"))
            .await,
        Err(StoreError::InvalidCursor)
    ));
}

// ---------------------------------------------------------------------------------------------
// Tampering, for the backends' own tests (they need raw SQL access to the database)
// ---------------------------------------------------------------------------------------------

/// Entries [`seed_trail`] appends.
pub const TAMPER_TRAIL: i64 = 10;

/// One attack on the stored trail: SQL run by someone with database access (after they have
/// dropped the append-only triggers), and what `audit verify` must report.
pub struct TamperCase {
    pub name: &'static str,
    /// Statements in the dialect common to SQLite and PostgreSQL.
    pub statements: &'static [&'static str],
    pub seq: i64,
    pub kind: TamperKind,
}

/// A forged entry 4 (linked to entry 3 but hashed without the key), with entries 4… moved up.
const FORGE: &[&str] = &[
    "UPDATE audit_log SET seq = -seq WHERE seq >= 4",
    "UPDATE audit_log SET seq = 1 - seq WHERE seq < 0",
    "INSERT INTO audit_log (seq, recorded, action, outcome, rule, agent_kind, agent_id, \
     agent_name, agent_role, agent_org_id, agent_ods, on_behalf_of, client_address, channel, \
     purpose, break_glass_code, break_glass_text, patient_id, patients, resources, query, \
     request_id, prev_hash, hash) \
     SELECT 4, recorded, action, outcome, 'legitimate-relationship', agent_kind, 'u-forger', \
     agent_name, agent_role, agent_org_id, agent_ods, on_behalf_of, client_address, channel, \
     purpose, break_glass_code, break_glass_text, patient_id, patients, resources, query, \
     request_id, hash, '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff' \
     FROM audit_log WHERE seq = 3",
];

pub const TAMPER_CASES: &[TamperCase] = &[
    TamperCase {
        name: "a field of entry 4 is changed",
        statements: &["UPDATE audit_log SET agent_id = 'u-someone-else' WHERE seq = 4"],
        seq: 4,
        kind: TamperKind::Changed,
    },
    TamperCase {
        name: "entry 4 is deleted",
        statements: &["DELETE FROM audit_log WHERE seq = 4"],
        seq: 4,
        kind: TamperKind::Deleted,
    },
    TamperCase {
        name: "a forged entry is inserted as 4",
        statements: FORGE,
        seq: 4,
        kind: TamperKind::Inserted,
    },
    TamperCase {
        name: "entries 4 and 5 swap places",
        statements: &[
            "UPDATE audit_log SET seq = -1 WHERE seq = 4",
            "UPDATE audit_log SET seq = 4 WHERE seq = 5",
            "UPDATE audit_log SET seq = 5 WHERE seq = -1",
        ],
        seq: 4,
        kind: TamperKind::Reordered,
    },
    TamperCase {
        name: "entry 7's action becomes a code carerecord never writes",
        statements: &["UPDATE audit_log SET action = 'nothing-happened' WHERE seq = 7"],
        seq: 7,
        kind: TamperKind::Changed,
    },
    TamperCase {
        name: "the last entry is changed",
        statements: &["UPDATE audit_log SET outcome = 'denied' WHERE seq = 10"],
        seq: 10,
        kind: TamperKind::Changed,
    },
];

/// Appends [`TAMPER_TRAIL`] entries (in two batches, so the chain spans transactions).
pub async fn seed_trail(store: &Store) {
    for batch in [0..4, 4..TAMPER_TRAIL] {
        let records = batch
            .map(|i| {
                record(
                    AuditAction::Read,
                    AuditOutcome::Allowed,
                    &format!("u-{}", i % 3),
                    "A99999",
                    &[&format!("pat-{i}")],
                    10_000 + i,
                )
            })
            .collect();
        store.append_audit(records).await.unwrap();
    }
    let report = verify_trail(store.as_ref(), &key()).await.unwrap();
    assert!(report.is_intact(), "{report:?}");
}

/// What `audit verify` finds in `store`: `None` when intact.
pub async fn tamper_found(store: &Store) -> Option<(i64, TamperKind)> {
    let report = verify_trail(store.as_ref(), &key()).await.unwrap();
    report.problem.map(|t| (t.seq, t.kind))
}

/// Bulk import runs several Bundles in one transaction, each under a savepoint: the audit
/// records of a Bundle rolled back to its savepoint must go with its writes, and those of the
/// Bundles kept must stay, in order — also with savepoints nested.
pub async fn rolling_back_to_a_savepoint_drops_the_audit_records_appended_after_it(store: Store) {
    let rec = |user: &str, time: i64| {
        record(
            AuditAction::Create,
            AuditOutcome::Allowed,
            user,
            "A99999",
            &[],
            time,
        )
    };
    let mut tx = store.begin().await.unwrap();
    tx.append_audit(vec![rec("kept-before", 1)]).await.unwrap();
    tx.savepoint().await.unwrap();
    tx.append_audit(vec![rec("dropped-1", 2)]).await.unwrap();
    write::create(
        tx.as_mut(),
        ResourceType::Patient,
        &lid("pat-dropped"),
        patient("9990000018", "Dropped", "Dee", "1970-01-01", "female"),
    )
    .await
    .unwrap();
    tx.rollback_to_savepoint().await.unwrap();
    tx.savepoint().await.unwrap();
    tx.append_audit(vec![rec("kept-outer", 3)]).await.unwrap();
    tx.savepoint().await.unwrap();
    tx.append_audit(vec![rec("dropped-inner", 4)])
        .await
        .unwrap();
    tx.rollback_to_savepoint().await.unwrap();
    tx.savepoint().await.unwrap();
    tx.append_audit(vec![rec("kept-inner", 5)]).await.unwrap();
    tx.release_savepoint().await.unwrap();
    tx.release_savepoint().await.unwrap();
    tx.append_audit(vec![rec("kept-after", 6)]).await.unwrap();
    tx.commit().await.unwrap();

    assert!(matches!(
        store
            .read(ResourceType::Patient, &lid("pat-dropped"), &Visibility::All)
            .await,
        Err(StoreError::NotFound)
    ));
    let entries = all_entries(&store).await;
    let users: Vec<&str> = entries.iter().map(|e| e.record.agent.id.as_str()).collect();
    assert_eq!(
        users,
        ["kept-before", "kept-outer", "kept-inner", "kept-after"]
    );
    assert_eq!(
        seqs(&entries),
        vec![1, 2, 3, 4],
        "no gap where records were dropped"
    );
    let report = verify(entries, &key());
    assert!(report.is_intact(), "{report:?}");
}
