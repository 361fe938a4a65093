//! Oversight through the HTTP API: the privacy officers' break-glass review queue
//! (`/admin/break-glass`), and the audit of sign-in, lockout, tokens, sign-out and
//! lapsed-training refusals — searchable by a privacy officer, and holding no secret.

use carerecord_access::Role;
use carerecord_identity::{IdentitySettings, NewClient, NewUser, totp};
use carerecord_store::now_micros;
use serde_json::{Value, json};

use crate::helpers::{Resp, TestApp, spawn_app, spawn_app_with_identity, test_identity_settings};

const PASSWORD: &str = "a long demo password";

/// Creates a user holding `grants`; returns (user id, TOTP secret).
pub(crate) async fn person(
    app: &TestApp,
    username: &str,
    grants: &[(Role, &str)],
    trained: Option<i64>,
) -> (String, String) {
    let u = app
        .identity
        .create_user(NewUser {
            username: username.into(),
            display_name: "Test Person".into(),
            password: Some(PASSWORD.into()),
            grants: grants.iter().map(|(r, o)| (*r, (*o).to_owned())).collect(),
            training_valid_until: trained,
        })
        .await
        .unwrap();
    (u.id, u.totp_secret)
}

/// The TOTP code `steps` steps from now: a code is accepted once, so a second sign-in of one
/// person in the same 30 s uses the next step's (accepted within ±1 step).
fn code(secret: &str, steps: u64) -> String {
    let now = u64::try_from(now_micros() / 1_000_000).unwrap();
    totp::code_at(secret, now + 30 * steps).unwrap()
}

async fn login(app: &TestApp, body: Value) -> Resp {
    app.send(
        app.anonymous
            .post(format!("{}/auth/login", app.origin))
            .json(&body),
    )
    .await
}

/// Signs in as `role` at `org` and returns the access token.
pub(crate) async fn sign_in(
    app: &TestApp,
    username: &str,
    secret: &str,
    role: Role,
    org: &str,
) -> String {
    sign_in_at(app, username, secret, role, org, 0).await
}

async fn sign_in_at(
    app: &TestApp,
    username: &str,
    secret: &str,
    role: Role,
    org: &str,
    steps: u64,
) -> String {
    let r = login(
        app,
        json!({"username": username, "password": PASSWORD, "totp": code(secret, steps),
               "organisation": org, "role": role}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["access_token"].as_str().unwrap().to_owned()
}

async fn admin_get(app: &TestApp, token: &str, path: &str) -> Resp {
    app.send(
        app.anonymous
            .get(format!("{}/admin/{path}", app.origin))
            .bearer_auth(token),
    )
    .await
}

async fn review(app: &TestApp, token: &str, grant: &str, body: Value) -> Resp {
    app.send(
        app.anonymous
            .post(format!("{}/admin/break-glass/{grant}/review", app.origin))
            .bearer_auth(token)
            .json(&body),
    )
    .await
}

async fn break_glass(app: &TestApp, token: &str, patient: &str) -> String {
    let r = app
        .send(
            app.anonymous
                .post(app.url(&format!("Patient/{patient}/$break-glass")))
                .bearer_auth(token)
                .json(&json!({"resourceType": "Parameters", "parameter": [
                    {"name": "reason", "valueCode": "emergency"},
                    {"name": "text", "valueString": "Collapsed in the lounge; needed allergies"}]})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["parameter"][0]["valueString"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn grant_ids(r: &Resp) -> Vec<String> {
    r.body["grants"]
        .as_array()
        .unwrap_or_else(|| panic!("no grants: {}", r.text))
        .iter()
        .map(|g| g["id"].as_str().unwrap().to_owned())
        .collect()
}

/// The AuditEvents a search finds, as the token's holder may see them.
async fn audit_events(app: &TestApp, token: Option<&str>, query: &str) -> Vec<Value> {
    let url = app.url(&format!("AuditEvent?{query}&_count=200"));
    let r = match token {
        Some(t) => app.send(app.anonymous.get(url).bearer_auth(t)).await,
        None => app.send(app.client.get(url)).await,
    };
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["entry"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|e| e["resource"].clone())
        .collect()
}

fn rule_of(ev: &Value) -> String {
    ev["extension"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|x| {
            x["url"]
                .as_str()
                .is_some_and(|u| u.ends_with("access-decision-rule"))
        })
        .and_then(|x| x["valueString"].as_str())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn privacy_officers_review_their_own_organisations_break_glass_once_and_it_is_audited() {
    let app = spawn_app().await;
    let (_, nurse_s) = person(&app, "rn.a", &[(Role::RegisteredNurse, "org-home-a")], None).await;
    let (_, po_s) = person(&app, "po.a", &[(Role::PrivacyOfficer, "org-home-a")], None).await;
    let (po_b, po_b_s) = person(&app, "po.b", &[(Role::PrivacyOfficer, "org-home-b")], None).await;
    // A nurse who is also a privacy officer at the same home.
    let (_, both_s) = person(
        &app,
        "rn.po.a",
        &[
            (Role::RegisteredNurse, "org-home-a"),
            (Role::PrivacyOfficer, "org-home-a"),
        ],
        None,
    )
    .await;
    let nurse = sign_in(&app, "rn.a", &nurse_s, Role::RegisteredNurse, "org-home-a").await;
    let officer = sign_in(&app, "po.a", &po_s, Role::PrivacyOfficer, "org-home-a").await;
    let officer_b = sign_in(&app, "po.b", &po_b_s, Role::PrivacyOfficer, "org-home-b").await;

    let grant = break_glass(&app, &nurse, "p-visitor").await;
    let queue = admin_get(&app, &officer, "break-glass").await;
    assert_eq!(queue.status, 200, "{}", queue.text);
    assert_eq!(grant_ids(&queue), vec![grant.clone()]);
    let g = &queue.body["grants"][0];
    assert_eq!(g["status"], "open");
    assert_eq!(g["patient"], "Patient/p-visitor");
    assert_eq!(g["reason"], "emergency");
    assert_eq!(
        g["reason_text"],
        "Collapsed in the lounge; needed allergies"
    );

    // Nobody but the home's privacy officers.
    assert_eq!(admin_get(&app, &nurse, "break-glass").await.status, 403);
    let r = review(&app, &nurse, &grant, json!({"outcome": "appropriate"})).await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(r.body["error"], "deny-review-role");
    assert!(grant_ids(&admin_get(&app, &officer_b, "break-glass").await).is_empty());
    let r = review(&app, &officer_b, &grant, json!({"outcome": "appropriate"})).await;
    assert_eq!(
        r.status, 404,
        "another home's grant is not theirs: {}",
        r.text
    );
    assert_eq!(
        review(
            &app,
            &officer,
            "no-such-grant",
            json!({"outcome": "appropriate"})
        )
        .await
        .status,
        404
    );
    assert_eq!(
        app.send(
            app.anonymous
                .get(format!("{}/admin/break-glass", app.origin))
        )
        .await
        .status,
        401
    );

    // Bad requests change nothing.
    assert_eq!(
        review(&app, &officer, &grant, json!({"outcome": "fine"}))
            .await
            .status,
        400
    );
    let r = review(
        &app,
        &officer,
        &grant,
        json!({"outcome": "inappropriate", "note": "  "}),
    )
    .await;
    assert_eq!(r.status, 400, "a finding needs a note: {}", r.text);
    assert_eq!(
        admin_get(&app, &officer, "break-glass?status=bogus")
            .await
            .status,
        400
    );
    assert_eq!(
        grant_ids(&admin_get(&app, &officer, "break-glass").await),
        vec![grant.clone()]
    );

    // An officer's own emergency access is for another officer to review.
    let as_nurse = sign_in(
        &app,
        "rn.po.a",
        &both_s,
        Role::RegisteredNurse,
        "org-home-a",
    )
    .await;
    let own = break_glass(&app, &as_nurse, "p-visitor-2").await;
    let as_officer = sign_in_at(
        &app,
        "rn.po.a",
        &both_s,
        Role::PrivacyOfficer,
        "org-home-a",
        1,
    )
    .await;
    let r = review(&app, &as_officer, &own, json!({"outcome": "appropriate"})).await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(r.body["error"], "deny-review-own-grant");
    // … who may review the first grant.
    let r = review(
        &app,
        &as_officer,
        &grant,
        json!({"outcome": "needs-follow-up", "note": "Ask the nurse which allergy record she needed"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "reviewed");
    assert_eq!(r.body["review"]["outcome"], "needs-follow-up");
    // Once.
    let again = review(&app, &officer, &grant, json!({"outcome": "appropriate"})).await;
    assert_eq!(again.status, 409, "{}", again.text);

    assert_eq!(
        grant_ids(&admin_get(&app, &officer, "break-glass").await),
        vec![own.clone()]
    );
    let reviewed = admin_get(&app, &officer, "break-glass?status=reviewed").await;
    assert_eq!(grant_ids(&reviewed), vec![grant.clone()]);
    assert_eq!(
        reviewed.body["grants"][0]["review"]["note"],
        "Ask the nurse which allergy record she needed"
    );
    assert_eq!(
        grant_ids(&admin_get(&app, &officer, "break-glass?status=all").await),
        [own.clone(), grant.clone()]
    );
    let r = review(&app, &officer, &own, json!({"outcome": "appropriate"})).await;
    assert_eq!(r.status, 200, "{}", r.text);

    // The reviews and the refused one are in the trail, for the home's officers to search.
    let events = audit_events(&app, Some(&officer), "subtype=break-glass-review").await;
    let mut rules: Vec<String> = events.iter().map(rule_of).collect();
    rules.sort();
    assert_eq!(
        rules,
        [
            "break-glass-reviewed",
            "break-glass-reviewed",
            "deny-already-reviewed",
            "deny-no-such-grant",
            "deny-review-own-grant",
            "deny-review-role"
        ]
    );
    let own_refusal = audit_events(&app, Some(&officer), "rule=deny-review-own-grant").await;
    assert_eq!(own_refusal.len(), 1);
    assert!(own_refusal[0].to_string().contains("p-visitor-2"));
    // A review of a grant that does not exist names the officer and what they tried.
    let unknown = audit_events(&app, Some(&officer), "rule=deny-no-such-grant").await;
    assert_eq!(unknown.len(), 1);
    assert_eq!(unknown[0]["outcome"], "4");
    assert!(
        unknown[0].to_string().contains("break-glass/no-such-grant"),
        "{}",
        unknown[0]
    );
    // Another home's officer who tried this home's grant: on their own home's share of the
    // trail, saying no more than their 404 did (not whose grant it is).
    let tried = audit_events(&app, Some(&officer_b), "subtype=break-glass-review").await;
    assert_eq!(tried.len(), 1, "{tried:?}");
    assert_eq!(rule_of(&tried[0]), "deny-no-such-grant");
    let text = tried[0].to_string();
    assert!(text.contains(&format!("break-glass/{grant}")), "{text}");
    assert_eq!(
        tried[0]["agent"][0]["who"]["identifier"]["value"],
        po_b.as_str(),
        "who tried"
    );
    assert!(
        !text.contains("p-visitor"),
        "the person is not named: {text}"
    );
}

#[tokio::test]
async fn the_review_queue_is_paged_with_next_links_newest_first() {
    let app = spawn_app().await;
    let (_, po_s) = person(&app, "po.a", &[(Role::PrivacyOfficer, "org-home-a")], None).await;
    let officer = sign_in(&app, "po.a", &po_s, Role::PrivacyOfficer, "org-home-a").await;
    let n: i64 = 7;
    let mut tx = app.store.begin().await.unwrap();
    for i in 0..n {
        // Two grants share each second but the last, so ties are broken by id.
        let at = now_micros() - 1_000_000 * (i / 2);
        tx.put_break_glass(&carerecord_store::BreakGlassGrant {
            grant_id: format!("bg-{i}"),
            principal_key: "user:someone@org-home-a".into(),
            org_id: "org-home-a".into(),
            patient_id: "p-visitor".into(),
            reason_code: "emergency".into(),
            reason_text: "Collapsed in the lounge".into(),
            granted_at: at,
            expires_at: at + 3_600_000_000,
        })
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();

    let mut seen: Vec<String> = Vec::new();
    let mut pages = 0;
    let mut path = "break-glass?_count=3".to_owned();
    loop {
        let r = admin_get(&app, &officer, &path).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let ids = grant_ids(&r);
        assert!(ids.len() <= 3, "{ids:?}");
        seen.extend(ids);
        pages += 1;
        match r.body["next"].as_str() {
            Some(next) => {
                path = next
                    .strip_prefix("/admin/")
                    .expect("a link to the queue")
                    .to_owned()
            }
            None => break,
        }
        assert!(pages < 10, "the pages never end");
    }
    assert_eq!(pages, 3);
    // Newest first; within a second, the greater id first.
    assert_eq!(
        seen,
        ["bg-1", "bg-0", "bg-3", "bg-2", "bg-5", "bg-4", "bg-6"]
    );
    let bad = admin_get(&app, &officer, "break-glass?_cursor=nonsense").await;
    assert_eq!(bad.status, 400, "{}", bad.text);
}

#[tokio::test]
async fn sign_ins_lockouts_tokens_sign_outs_and_lapsed_training_are_audited_without_secrets() {
    let app = spawn_app_with_identity(IdentitySettings {
        max_failed_sign_ins: 2,
        ..test_identity_settings()
    })
    .await;
    let (nurse_id, _) = person(&app, "rn.a", &[(Role::RegisteredNurse, "org-home-a")], None).await;
    let (carer_id, carer_s) = person(&app, "cw.a", &[(Role::CareWorker, "org-home-a")], None).await;
    let (_, po_s) = person(&app, "po.a", &[(Role::PrivacyOfficer, "org-home-a")], None).await;
    let (lapsed_id, lapsed_s) = person(
        &app,
        "rn.lapsed",
        &[(Role::RegisteredNurse, "org-home-a")],
        Some(1),
    )
    .await;

    // A wrong password twice locks the account; a username nobody has is refused alike.
    let wrong = "Wrong-Password-Typed-1";
    for _ in 0..2 {
        let r = login(
            &app,
            json!({"username": "rn.a", "password": wrong, "totp": "000000"}),
        )
        .await;
        assert!(r.status == 401 || r.status == 423, "{}", r.text);
    }
    let typo = "my-Secret-Passw0rd-in-the-wrong-box";
    let r = login(&app, json!({"username": typo, "password": wrong})).await;
    assert_eq!(r.status, 401);

    let carer = sign_in(&app, "cw.a", &carer_s, Role::CareWorker, "org-home-a").await;
    let r = app
        .send(
            app.anonymous
                .post(format!("{}/auth/logout", app.origin))
                .bearer_auth(&carer),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);

    let client = app
        .identity
        .create_client(NewClient {
            client_id: "home-a-system".into(),
            role: Role::System,
            organisation_id: "org-home-a".into(),
            secret: true,
            public_key: None,
        })
        .await
        .unwrap();
    let token = |secret: String| {
        app.anonymous
            .post(format!("{}/auth/token", app.origin))
            .basic_auth("home-a-system", Some(secret))
            .form(&[("grant_type", "client_credentials")])
    };
    assert_eq!(
        app.send(token(client.secret.clone().unwrap())).await.status,
        200
    );
    assert_eq!(app.send(token("not-the-secret".into())).await.status, 401);

    let lapsed = sign_in(
        &app,
        "rn.lapsed",
        &lapsed_s,
        Role::RegisteredNurse,
        "org-home-a",
    )
    .await;
    let r = app
        .send(
            app.anonymous
                .get(app.url("Patient?name=x"))
                .bearer_auth(&lapsed),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);

    // The whole trail, as the service sees it: every event, and no secret in any of it.
    let all = audit_events(&app, None, "date=ge2000").await;
    let text = serde_json::to_string(&all).unwrap();
    for secret in [
        wrong,
        typo,
        PASSWORD,
        client.secret.as_deref().unwrap(),
        "not-the-secret",
    ] {
        assert!(!text.contains(secret), "the trail holds a secret: {secret}");
    }
    let failed = audit_events(&app, None, "subtype=login-failed").await;
    let failed_text = serde_json::to_string(&failed).unwrap();
    assert_eq!(failed.len(), 2, "{failed_text}");
    assert!(failed_text.contains(&nurse_id), "{failed_text}");
    assert!(failed_text.contains("(unknown user)"), "{failed_text}");
    assert_eq!(
        audit_events(&app, None, "rule=deny-wrong-password")
            .await
            .len(),
        1
    );
    let locked = audit_events(&app, None, "subtype=lockout").await;
    assert_eq!(locked.len(), 1);
    assert!(locked[0].to_string().contains(&nurse_id));
    let logins = serde_json::to_string(&audit_events(&app, None, "subtype=login").await).unwrap();
    assert!(
        logins.contains(&carer_id) && logins.contains(&lapsed_id),
        "{logins}"
    );
    let logouts = audit_events(&app, None, "subtype=logout").await;
    assert_eq!(logouts.len(), 1);
    assert!(logouts[0].to_string().contains(&carer_id));
    let issued = audit_events(&app, None, "subtype=token&outcome=0").await;
    assert!(
        issued
            .iter()
            .any(|e| e.to_string().contains("home-a-system"))
    );
    let refused = audit_events(&app, None, "subtype=token&outcome=4").await;
    assert_eq!(refused.len(), 1);
    assert!(refused[0].to_string().contains("home-a-system"));
    let training = audit_events(&app, None, "rule=deny-training-expired").await;
    assert_eq!(training.len(), 1);
    assert!(training[0].to_string().contains(&lapsed_id));

    // The home's privacy officer finds its own staff's failures, not the stranger's attempt.
    let officer = sign_in(&app, "po.a", &po_s, Role::PrivacyOfficer, "org-home-a").await;
    let theirs = audit_events(&app, Some(&officer), "subtype=login-failed").await;
    assert_eq!(theirs.len(), 1);
    assert!(theirs[0].to_string().contains(&nurse_id));
    assert_eq!(
        audit_events(&app, Some(&officer), "subtype=lockout")
            .await
            .len(),
        1
    );
}
