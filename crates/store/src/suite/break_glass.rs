//! The privacy officers' break-glass review queue: grants listed by organisation and status,
//! reviewed once, each review committed with its audit entry or not at all.

use crate::audit::{AuditAction, AuditAgent, AuditOutcome, AuditRecord, Channel, PrincipalKind};
use crate::model::{BreakGlassGrant, BreakGlassReview, ReviewOutcome, ReviewStatus};

use super::Store;

fn grant(id: &str, org: &str, user: &str, patient: &str, at: i64) -> BreakGlassGrant {
    BreakGlassGrant {
        grant_id: id.to_owned(),
        principal_key: format!("user:{user}@{org}"),
        org_id: org.to_owned(),
        patient_id: patient.to_owned(),
        reason_code: "emergency".to_owned(),
        reason_text: "Found unresponsive; needed the medicines list".to_owned(),
        granted_at: at,
        expires_at: at + 4 * 3_600_000_000,
    }
}

fn review(outcome: ReviewOutcome, at: i64) -> BreakGlassReview {
    BreakGlassReview {
        reviewer_key: "user:po-1@org-a".to_owned(),
        reviewed_at: at,
        outcome,
        note: "Spoke to the nurse; a 999 call was logged".to_owned(),
    }
}

fn review_record(grant_id: &str) -> AuditRecord {
    let mut r = AuditRecord::new(
        9_000,
        AuditAction::BreakGlassReview,
        AuditOutcome::Allowed,
        "break-glass-reviewed",
        AuditAgent {
            kind: PrincipalKind::User,
            id: "po-1".into(),
            name: Some("Test Officer".into()),
            role: Some("R0001".into()),
            organisation_id: Some("org-a".into()),
            ods_code: Some("ZA001".into()),
        },
        Channel::Api,
    );
    r.resources = vec![format!("break-glass/{grant_id}")];
    r
}

async fn queue(store: &Store, org: &str, status: ReviewStatus) -> Vec<String> {
    store
        .break_glass_queue(org, status, 50, None)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|g| g.grant.grant_id)
        .collect()
}

pub async fn break_glass_grants_are_queued_by_organisation_and_reviewed_once(store: Store) {
    let mut tx = store.begin().await.unwrap();
    for g in [
        grant("g-a1", "org-a", "nurse-1", "pat-1", 1_000),
        grant("g-a2", "org-a", "carer-2", "pat-2", 2_000),
        grant("g-b1", "org-b", "nurse-9", "pat-1", 1_500),
    ] {
        tx.put_break_glass(&g).await.unwrap();
    }
    tx.commit().await.unwrap();

    assert_eq!(
        queue(&store, "org-a", ReviewStatus::Open).await,
        ["g-a2", "g-a1"]
    );
    assert_eq!(queue(&store, "org-b", ReviewStatus::Open).await, ["g-b1"]);
    assert!(
        queue(&store, "org-a", ReviewStatus::Reviewed)
            .await
            .is_empty()
    );
    let open = store.break_glass_grant("g-a1").await.unwrap().unwrap();
    assert_eq!(
        open.grant,
        grant("g-a1", "org-a", "nurse-1", "pat-1", 1_000)
    );
    assert_eq!(open.review, None);
    assert_eq!(store.break_glass_grant("g-none").await.unwrap(), None);

    // A review dropped without commit leaves the grant open and the trail empty.
    {
        let mut tx = store.begin().await.unwrap();
        assert!(
            tx.review_break_glass("g-a1", &review(ReviewOutcome::Appropriate, 5_000))
                .await
                .unwrap()
        );
        tx.append_audit(vec![review_record("g-a1")]).await.unwrap();
    }
    assert_eq!(
        queue(&store, "org-a", ReviewStatus::Open).await,
        ["g-a2", "g-a1"]
    );
    assert!(store.audit_entries(0, 10).await.unwrap().is_empty());

    let mut tx = store.begin().await.unwrap();
    assert!(
        tx.review_break_glass("g-a1", &review(ReviewOutcome::NeedsFollowUp, 6_000))
            .await
            .unwrap()
    );
    tx.append_audit(vec![review_record("g-a1")]).await.unwrap();
    tx.commit().await.unwrap();

    // A second review (another officer, a double click) changes nothing.
    let mut tx = store.begin().await.unwrap();
    assert!(
        !tx.review_break_glass("g-a1", &review(ReviewOutcome::Inappropriate, 7_000))
            .await
            .unwrap()
    );
    assert!(
        !tx.review_break_glass("g-none", &review(ReviewOutcome::Inappropriate, 7_000))
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();

    assert_eq!(queue(&store, "org-a", ReviewStatus::Open).await, ["g-a2"]);
    assert_eq!(
        queue(&store, "org-a", ReviewStatus::Reviewed).await,
        ["g-a1"]
    );
    assert_eq!(
        queue(&store, "org-a", ReviewStatus::Any).await,
        ["g-a2", "g-a1"]
    );
    assert_eq!(queue(&store, "org-b", ReviewStatus::Open).await, ["g-b1"]);
    let reviewed = store.break_glass_grant("g-a1").await.unwrap().unwrap();
    assert_eq!(
        reviewed.review,
        Some(review(ReviewOutcome::NeedsFollowUp, 6_000))
    );
    let trail = store.audit_entries(0, 10).await.unwrap();
    assert_eq!(trail.len(), 1, "one review, one entry");
    assert_eq!(trail[0].record.action, AuditAction::BreakGlassReview);
    assert_eq!(trail[0].record.resources, ["break-glass/g-a1"]);
}

pub async fn the_review_queue_pages_by_keyset_newest_first(store: Store) {
    // 7 grants, three made in the same microsecond: the id breaks the tie.
    let at = [1_000, 2_000, 3_000, 3_000, 3_000, 4_000, 5_000];
    let mut tx = store.begin().await.unwrap();
    for (i, t) in at.iter().enumerate() {
        tx.put_break_glass(&grant(&format!("g-{i}"), "org-a", "nurse-1", "pat-1", *t))
            .await
            .unwrap();
    }
    tx.put_break_glass(&grant("g-b", "org-b", "nurse-9", "pat-1", 3_000))
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut pages: Vec<Vec<String>> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store
            .break_glass_queue("org-a", ReviewStatus::Open, 3, cursor.as_deref())
            .await
            .unwrap();
        assert!(page.items.len() <= 3);
        pages.push(page.items.into_iter().map(|g| g.grant.grant_id).collect());
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
        assert!(pages.len() < 10, "the pages never end");
    }
    assert_eq!(
        pages,
        [
            vec!["g-6", "g-5", "g-4"],
            vec!["g-3", "g-2", "g-1"],
            vec!["g-0"]
        ]
    );
    // A page that ends exactly at the last grant has no next page.
    let all = store
        .break_glass_queue("org-a", ReviewStatus::Any, 7, None)
        .await
        .unwrap();
    assert_eq!(all.items.len(), 7);
    assert_eq!(all.next_cursor, None);
    assert!(matches!(
        store
            .break_glass_queue("org-a", ReviewStatus::Open, 3, Some("not-a-cursor"))
            .await,
        Err(crate::StoreError::InvalidCursor)
    ));
}
