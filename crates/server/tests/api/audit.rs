//! `GET /fhir/AuditEvent`: the audit trail as IHE BALP AuditEvents, searchable by the person,
//! the user, the organisation, time and outcome, newest first.

use carerecord_store::{
    AuditAction, AuditAgent, AuditOutcome, AuditRecord, Channel, PrincipalKind,
};

use crate::helpers::{ids, next_link, spawn_app};

fn record(
    action: AuditAction,
    outcome: AuditOutcome,
    user: &str,
    ods: &str,
    patient: &str,
) -> AuditRecord {
    let mut r = AuditRecord::new(
        1_764_070_000_000_000,
        action,
        outcome,
        "legitimate-relationship",
        AuditAgent {
            kind: PrincipalKind::User,
            id: user.to_owned(),
            name: Some("Test Clinician".into()),
            role: Some("R8000".into()),
            organisation_id: None,
            ods_code: Some(ods.to_owned()),
        },
        Channel::Api,
    );
    r.patient_ids = vec![patient.to_owned()];
    r.resources = vec![format!("Patient/{patient}/_history/1")];
    r.purpose_of_use = Some("TREAT".into());
    r
}

#[tokio::test]
async fn a_persons_access_report_lists_who_looked_newest_first_as_valid_audit_events() {
    let app = spawn_app().await;
    // The trail already holds the test client's token issue: number from where it ends.
    let base = app.store.audit_entries(0, 100).await.unwrap().len();
    let seq = |n: usize| (base + n).to_string();
    app.store
        .append_audit(vec![
            record(
                AuditAction::Read,
                AuditOutcome::Allowed,
                "u-1",
                "A99999",
                "pat-a",
            ),
            record(
                AuditAction::Read,
                AuditOutcome::Allowed,
                "u-2",
                "B88888",
                "pat-b",
            ),
            record(
                AuditAction::Search,
                AuditOutcome::Allowed,
                "u-2",
                "B88888",
                "pat-a",
            ),
            record(
                AuditAction::Denial,
                AuditOutcome::Denied,
                "u-3",
                "C77777",
                "pat-a",
            ),
        ])
        .await
        .unwrap();

    let r = app.get("AuditEvent?patient=pat-a").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["type"], "searchset");
    assert_eq!(ids(&r.body), vec![seq(4), seq(3), seq(1)]);
    for e in r.body["entry"].as_array().unwrap() {
        let issues = carerecord_fhir::validate::validate(&e["resource"]);
        assert!(issues.is_empty(), "{issues:?}");
    }

    assert_eq!(
        ids(&app.get("AuditEvent?agent=u-2").await.body),
        vec![seq(3), seq(2)]
    );
    assert_eq!(
        ids(&app.get("AuditEvent?organization=B88888").await.body),
        vec![seq(3), seq(2)]
    );
    assert_eq!(
        ids(&app.get("AuditEvent?outcome=4").await.body),
        vec![seq(4)]
    );
    assert_eq!(
        ids(&app
            .get("AuditEvent?date=ge2025-11-25&date=lt2025-11-26&subtype=read")
            .await
            .body),
        vec![seq(2), seq(1)]
    );
    assert!(ids(&app.get("AuditEvent?date=ge2030").await.body).is_empty());

    // Keyset pages of one.
    let first = app.get("AuditEvent?patient=pat-a&_count=1").await;
    assert_eq!(ids(&first.body), vec![seq(4)]);
    let second = app.get(&next_link(&first.body).expect("a next page")).await;
    assert_eq!(ids(&second.body), vec![seq(3)]);

    let one = app.get(&format!("AuditEvent/{}", seq(3))).await;
    assert_eq!(one.status, 200, "{}", one.text);
    assert_eq!(one.body["resourceType"], "AuditEvent");
    assert_eq!(one.body["subtype"][0]["code"], "search-type");
    assert_eq!(app.get("AuditEvent/99").await.status, 404);
    assert_eq!(app.get("AuditEvent/x").await.status, 404);
    assert_eq!(app.get("AuditEvent?outcome=2").await.status, 400);
}
