//! The identity-matching review queue over HTTP (`/admin/match-reviews`, `/admin/merges`),
//! with the ingest's decisions wired in as the binary wires them.

use std::sync::Arc;

use carerecord_access::{Role, Visibility};
use carerecord_fhir::{LogicalId, ResourceType};
use carerecord_ingest::matching::{IncomingPerson, MatchContext, Outcome, resolve};
use carerecord_server::ServerSettings;
use carerecord_store::{AuditOutcome, ResourceStore};
use serde_json::{Value, json};

use crate::helpers::{Resp, TestApp, spawn_app_routes, test_identity_settings};
use crate::oversight::{person, sign_in};

async fn spawn() -> TestApp {
    spawn_app_routes(
        ServerSettings::default(),
        test_identity_settings(),
        |store| {
            carerecord_server::admin::match_reviews::router(Arc::new(
                carerecord_ingest::review::Decisions::new(store.clone()),
            ))
        },
    )
    .await
}

async fn call(app: &TestApp, token: Option<&str>, post: bool, path: &str) -> Resp {
    let url = if path.starts_with('/') {
        format!("{}{path}", app.origin)
    } else {
        format!("{}/admin/{path}", app.origin)
    };
    let mut req = if post {
        app.anonymous.post(url)
    } else {
        app.anonymous.get(url)
    };
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    app.send(req).await
}

/// A stored Patient, and an incoming person from hospital ZRH01 resembling it (same family
/// name, birth date, gender and postcode; another first name): matching makes a new Patient
/// and a review item. Answers (new patient id, review item id).
async fn uncertain_pair(app: &TestApp, existing: &str, family: &str, dob: &str) -> (String, i64) {
    let r = app
        .put(
            &format!("Patient/{existing}"),
            &json!({"resourceType": "Patient", "id": existing,
                "name": [{"family": family, "given": ["Margaret"]}], "gender": "female",
                "birthDate": dob, "address": [{"postalCode": "SE1 7EH"}]}),
        )
        .await;
    assert!(r.status == 201 || r.status == 200, "{}", r.text);
    let incoming = IncomingPerson {
        nhs_number: None,
        nhs_verification: None,
        local_ids: vec![("ZRH01".into(), format!("MRN-{existing}"))],
        family: Some(family.into()),
        given: vec!["Mary".into()],
        birth_date: Some(dob.into()),
        gender: Some("female".into()),
        postcode: Some("SE1 7EH".into()),
        patient: json!({"resourceType": "Patient",
            "name": [{"family": family, "given": ["Mary"]}], "gender": "female",
            "birthDate": dob, "address": [{"postalCode": "SE1 7EH"}]}),
    };
    let mut tx = app.store.begin().await.unwrap();
    let resolved = resolve(
        tx.as_mut(),
        &incoming,
        &MatchContext {
            source_ods: "ZRH01",
            now: 1,
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let Outcome::Created {
        review: Some(item), ..
    } = resolved.outcome
    else {
        panic!("not an uncertain match: {:?}", resolved.outcome);
    };
    (resolved.patient_id, item)
}

async fn patient(store: &Arc<dyn ResourceStore>, id: &str) -> Value {
    let r = store
        .read(
            ResourceType::Patient,
            &LogicalId::parse(id).unwrap(),
            &Visibility::All,
        )
        .await
        .unwrap();
    serde_json::from_str(&r.body).unwrap()
}

fn item_ids(r: &Resp) -> Vec<i64> {
    r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_i64().unwrap())
        .collect()
}

fn is_outcome(r: &Resp) -> bool {
    r.body["resourceType"] == "OperationOutcome"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_programme_administrator_pages_links_rejects_and_unmerges_and_each_decision_is_audited() {
    let app = spawn().await;
    let (new_a, item_a) = uncertain_pair(&app, "pat-a", "Smith", "1940-02-03").await;
    let (new_b, item_b) = uncertain_pair(&app, "pat-b", "Brown", "1941-03-04").await;
    let (admin_id, admin_secret) =
        person(&app, "pa", &[(Role::ProgrammeAdmin, "org-programme")], None).await;
    let admin = sign_in(
        &app,
        "pa",
        &admin_secret,
        Role::ProgrammeAdmin,
        "org-programme",
    )
    .await;

    // Paged, oldest first, following `next`.
    let first = call(&app, Some(&admin), false, "match-reviews?_count=1").await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(item_ids(&first), vec![item_a]);
    assert_eq!(
        first.body["items"][0]["patient"],
        format!("Patient/{new_a}")
    );
    assert_eq!(first.body["items"][0]["candidate"], "Patient/pat-a");
    assert_eq!(first.body["items"][0]["status"], "open");
    let next = first.body["next"].as_str().unwrap().to_owned();
    let second = call(&app, Some(&admin), false, &next).await;
    assert_eq!(item_ids(&second), vec![item_b]);

    // Link: the new record is merged into the candidate, audited in the same transaction.
    let linked = call(
        &app,
        Some(&admin),
        true,
        &format!("match-reviews/{item_a}/link"),
    )
    .await;
    assert_eq!(linked.status, 200, "{}", linked.text);
    let merge_id = linked.body["merge_id"].as_i64().unwrap();
    let merged = patient(&app.store, &new_a).await;
    assert_eq!(merged["active"], false);
    assert_eq!(merged["link"][0]["other"]["reference"], "Patient/pat-a");
    let entries = app.store.audit_entries(0, 1000).await.unwrap();
    let link_entry = entries
        .iter()
        .find(|e| e.record.rule == "identity-review-link")
        .expect("the link is audited");
    assert_eq!(link_entry.record.agent.id, admin_id);
    assert!(link_entry.record.patient_ids.contains(&new_a));
    assert!(link_entry.record.client_address.is_some());
    // Decided once.
    let again = call(
        &app,
        Some(&admin),
        true,
        &format!("match-reviews/{item_a}/link"),
    )
    .await;
    assert_eq!(again.status, 404, "{}", again.text);
    assert!(is_outcome(&again), "{}", again.text);

    // Reject: both records stay as they are.
    let rejected = call(
        &app,
        Some(&admin),
        true,
        &format!("match-reviews/{item_b}/reject"),
    )
    .await;
    assert_eq!(rejected.status, 200, "{}", rejected.text);
    assert_eq!(patient(&app.store, &new_b).await["active"], Value::Null);
    let open = call(&app, Some(&admin), false, "match-reviews").await;
    assert!(item_ids(&open).is_empty(), "{}", open.text);
    let decided = call(&app, Some(&admin), false, "match-reviews?status=all").await;
    let statuses: Vec<&str> = decided.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["linked", "rejected"]);
    assert_eq!(decided.body["items"][0]["merge_id"], merge_id);

    // Unmerge: separate again; a second undo is refused.
    let undone = call(
        &app,
        Some(&admin),
        true,
        &format!("merges/{merge_id}/unmerge"),
    )
    .await;
    assert_eq!(undone.status, 200, "{}", undone.text);
    let separate = patient(&app.store, &new_a).await;
    assert_eq!(separate["active"], true);
    assert!(separate.get("link").is_none());
    let twice = call(
        &app,
        Some(&admin),
        true,
        &format!("merges/{merge_id}/unmerge"),
    )
    .await;
    assert!(twice.status == 404 || twice.status == 409, "{}", twice.text);
    assert!(is_outcome(&twice), "{}", twice.text);
    let entries = app.store.audit_entries(0, 1000).await.unwrap();
    for rule in [
        "identity-review-queue",
        "identity-review-reject",
        "identity-unmerge",
    ] {
        assert!(
            entries
                .iter()
                .any(|e| e.record.rule == rule && e.record.agent.id == admin_id),
            "{rule} is audited"
        );
    }

    // Not a number, not there.
    let nonsense = call(&app, Some(&admin), true, "match-reviews/abc/link").await;
    assert_eq!(nonsense.status, 404);
    assert!(is_outcome(&nonsense));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn privacy_officers_and_care_staff_are_refused_the_review_queue_and_the_refusal_is_audited() {
    let app = spawn().await;
    let (new_a, item_a) = uncertain_pair(&app, "pat-a", "Smith", "1940-02-03").await;
    let (po_id, po_secret) =
        person(&app, "po", &[(Role::PrivacyOfficer, "org-home-a")], None).await;
    let (_, nurse_secret) =
        person(&app, "rn", &[(Role::RegisteredNurse, "org-home-a")], None).await;
    let officer = sign_in(&app, "po", &po_secret, Role::PrivacyOfficer, "org-home-a").await;
    let nurse = sign_in(
        &app,
        "rn",
        &nurse_secret,
        Role::RegisteredNurse,
        "org-home-a",
    )
    .await;

    for token in [&officer, &nurse] {
        let list = call(&app, Some(token), false, "match-reviews").await;
        assert_eq!(list.status, 403, "{}", list.text);
        assert!(is_outcome(&list), "{}", list.text);
        let link = call(
            &app,
            Some(token),
            true,
            &format!("match-reviews/{item_a}/link"),
        )
        .await;
        assert_eq!(link.status, 403, "{}", link.text);
    }
    assert_eq!(
        patient(&app.store, &new_a).await["active"],
        Value::Null,
        "nothing was merged"
    );
    let entries = app.store.audit_entries(0, 1000).await.unwrap();
    assert!(entries.iter().any(|e| e.record.agent.id == po_id
        && e.record.outcome == AuditOutcome::Denied
        && e.record.rule == "deny-match-review-role"));

    let anonymous = call(&app, None, false, "match-reviews").await;
    assert_eq!(anonymous.status, 401);
}
