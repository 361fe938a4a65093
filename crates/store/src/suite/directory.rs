//! The directory: users, grants, lockout counting, TOTP step reuse, clients, tokens and
//! client-assertion replay.

use super::Store;
use crate::{ClientRecord, LaunchRegistration, RoleGrant, StoreError, TokenRecord, UserRecord};

fn user(id: &str, username: &str) -> UserRecord {
    UserRecord {
        id: id.to_owned(),
        username: username.to_owned(),
        display_name: "Test User".to_owned(),
        password_hash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA".to_owned(),
        totp_secret: Some("JBSWY3DPEHPK3PXP".to_owned()),
        totp_last_step: None,
        failed_attempts: 0,
        locked_until: None,
        training_valid_until: Some(2_000_000_000_000_000),
        created: 1_764_000_000_000_000,
        disabled: false,
    }
}

fn token(hash: &str, subject: &str, expires_at: i64) -> TokenRecord {
    TokenRecord {
        token_hash: hash.to_owned(),
        subject: subject.to_owned(),
        principal: r#"{"role":"gp"}"#.to_owned(),
        created: 1_000,
        expires_at,
        last_used: 1_000,
        revoked: false,
    }
}

pub async fn users_are_found_by_username_and_id_and_usernames_are_unique(store: Store) {
    let dir = store.directory();
    let u = user("usr-1", "asha.patel");
    dir.create_user(&u).await.unwrap();
    assert_eq!(
        dir.user_by_username("asha.patel").await.unwrap(),
        Some(u.clone())
    );
    assert_eq!(dir.user_by_id("usr-1").await.unwrap(), Some(u));
    assert_eq!(dir.user_by_username("nobody").await.unwrap(), None);
    let err = dir.create_user(&user("usr-2", "asha.patel")).await;
    assert!(matches!(err, Err(StoreError::AlreadyExists)), "{err:?}");
}

pub async fn role_grants_are_listed_in_order_and_granting_twice_is_harmless(store: Store) {
    let dir = store.directory();
    dir.create_user(&user("usr-1", "nurse")).await.unwrap();
    assert!(!dir.role_is_held("registered-nurse").await.unwrap());
    for (role, org) in [
        ("registered-nurse", "org-b"),
        ("care-home-manager", "org-a"),
        ("registered-nurse", "org-b"),
    ] {
        dir.grant_role(&RoleGrant {
            user_id: "usr-1".into(),
            role: role.into(),
            organisation_id: org.into(),
        })
        .await
        .unwrap();
    }
    let grants = dir.grants("usr-1").await.unwrap();
    let pairs: Vec<(&str, &str)> = grants
        .iter()
        .map(|g| (g.organisation_id.as_str(), g.role.as_str()))
        .collect();
    assert_eq!(
        pairs,
        [
            ("org-a", "care-home-manager"),
            ("org-b", "registered-nurse")
        ]
    );
    assert!(dir.role_is_held("registered-nurse").await.unwrap());
    dir.set_user_disabled("usr-1", true).await.unwrap();
    assert!(!dir.role_is_held("registered-nurse").await.unwrap());
}

pub async fn failed_sign_ins_lock_the_account_at_the_limit_and_success_clears_them(store: Store) {
    let dir = store.directory();
    dir.create_user(&user("usr-1", "carer")).await.unwrap();
    for _ in 0..2 {
        assert_eq!(
            dir.record_failed_sign_in("usr-1", 3, 9_000).await.unwrap(),
            None
        );
    }
    dir.record_successful_sign_in("usr-1").await.unwrap();
    for _ in 0..2 {
        assert_eq!(
            dir.record_failed_sign_in("usr-1", 3, 9_000).await.unwrap(),
            None
        );
    }
    assert_eq!(
        dir.record_failed_sign_in("usr-1", 3, 9_000).await.unwrap(),
        Some(9_000)
    );
    let u = dir.user_by_id("usr-1").await.unwrap().unwrap();
    assert_eq!((u.failed_attempts, u.locked_until), (0, Some(9_000)));
    dir.record_successful_sign_in("usr-1").await.unwrap();
    let u = dir.user_by_id("usr-1").await.unwrap().unwrap();
    assert_eq!((u.failed_attempts, u.locked_until), (0, None));
    assert_eq!(
        dir.record_failed_sign_in("nobody", 3, 9_000).await.unwrap(),
        None
    );
}

pub async fn a_totp_step_is_accepted_once_and_never_an_earlier_one(store: Store) {
    let dir = store.directory();
    dir.create_user(&user("usr-1", "gp")).await.unwrap();
    assert!(dir.use_totp_step("usr-1", 100).await.unwrap());
    assert!(!dir.use_totp_step("usr-1", 100).await.unwrap());
    assert!(!dir.use_totp_step("usr-1", 99).await.unwrap());
    assert!(dir.use_totp_step("usr-1", 101).await.unwrap());
    dir.set_totp_secret("usr-1", "KRSXG5CTMVRXEZLU")
        .await
        .unwrap();
    assert!(dir.use_totp_step("usr-1", 50).await.unwrap());
}

pub async fn password_training_and_disabled_flags_are_updated(store: Store) {
    let dir = store.directory();
    dir.create_user(&user("usr-1", "po")).await.unwrap();
    dir.record_failed_sign_in("usr-1", 1, 5_000).await.unwrap();
    dir.set_password("usr-1", "$argon2id$new").await.unwrap();
    dir.set_training_valid_until("usr-1", 42).await.unwrap();
    let u = dir.user_by_id("usr-1").await.unwrap().unwrap();
    assert_eq!(u.password_hash, "$argon2id$new");
    assert_eq!(u.locked_until, None);
    assert_eq!(u.training_valid_until, Some(42));
    assert!(!u.disabled);
}

pub async fn clients_are_registered_once(store: Store) {
    let dir = store.directory();
    let c = ClientRecord {
        client_id: "care-home-system".into(),
        organisation_id: "org-zc0001".into(),
        role: "system".into(),
        secret_hash: None,
        public_key_pem: Some("-----BEGIN PUBLIC KEY-----\n…".into()),
        created: 7,
        disabled: false,
    };
    dir.create_client(&c).await.unwrap();
    assert_eq!(
        dir.client("care-home-system").await.unwrap(),
        Some(c.clone())
    );
    assert_eq!(dir.client("other").await.unwrap(), None);
    assert!(matches!(
        dir.create_client(&c).await,
        Err(StoreError::AlreadyExists)
    ));
}

pub async fn tokens_are_found_by_hash_touched_revoked_and_purged(store: Store) {
    let dir = store.directory();
    dir.create_token(&token("h1", "usr-1", 5_000))
        .await
        .unwrap();
    dir.create_token(&token("h2", "usr-1", 9_000))
        .await
        .unwrap();
    dir.create_token(&token("h3", "client-a", 9_000))
        .await
        .unwrap();
    dir.touch_token("h1", 2_000).await.unwrap();
    dir.update_token_principal("h1", r#"{"role":"nurse"}"#)
        .await
        .unwrap();
    let t = dir.token("h1").await.unwrap().unwrap();
    assert_eq!(
        (t.last_used, t.principal.as_str()),
        (2_000, r#"{"role":"nurse"}"#)
    );
    assert!(!t.revoked);
    dir.revoke_token("h1").await.unwrap();
    assert!(dir.token("h1").await.unwrap().unwrap().revoked);
    dir.revoke_tokens_of("usr-1").await.unwrap();
    assert!(dir.token("h2").await.unwrap().unwrap().revoked);
    assert!(!dir.token("h3").await.unwrap().unwrap().revoked);
    assert_eq!(dir.purge_expired_tokens(6_000).await.unwrap(), 1);
    assert_eq!(dir.token("h1").await.unwrap(), None);
    assert_eq!(dir.token("nope").await.unwrap(), None);
}

pub async fn a_client_assertion_id_is_accepted_once_per_client(store: Store) {
    let dir = store.directory();
    assert!(dir.use_assertion_id("a", "jti-1", 500, 100).await.unwrap());
    assert!(!dir.use_assertion_id("a", "jti-1", 500, 200).await.unwrap());
    assert!(dir.use_assertion_id("b", "jti-1", 500, 200).await.unwrap());
    // Once expired it is forgotten; the token endpoint refuses expired assertions anyway.
    assert!(dir.use_assertion_id("a", "jti-1", 900, 600).await.unwrap());
}

pub async fn client_scopes_are_registered_and_replaced(store: Store) {
    let dir = store.directory();
    dir.create_client(&ClientRecord {
        client_id: "backend".into(),
        organisation_id: "org-zc0001".into(),
        role: "system".into(),
        secret_hash: None,
        public_key_pem: Some("-----BEGIN PUBLIC KEY-----\n…".into()),
        created: 7,
        disabled: false,
    })
    .await
    .unwrap();
    assert_eq!(dir.client_scope("backend").await.unwrap(), None);
    dir.set_client_scope("backend", "system/Patient.rs system/Observation.rs")
        .await
        .unwrap();
    assert_eq!(
        dir.client_scope("backend").await.unwrap().as_deref(),
        Some("system/Patient.rs system/Observation.rs")
    );
    dir.set_client_scope("backend", "system/*.rs")
        .await
        .unwrap();
    assert_eq!(
        dir.client_scope("backend").await.unwrap().as_deref(),
        Some("system/*.rs")
    );
    assert_eq!(dir.client_scope("nobody").await.unwrap(), None);
    // Only a registered client can have scopes.
    assert!(dir.set_client_scope("nobody", "system/*.rs").await.is_err());
}

pub async fn launch_registrations_are_listed_per_client_and_replaced(store: Store) {
    let dir = store.directory();
    for id in ["launcher", "other-launcher"] {
        dir.create_client(&ClientRecord {
            client_id: id.into(),
            organisation_id: "org-zc0001".into(),
            role: "system".into(),
            secret_hash: None,
            public_key_pem: Some("-----BEGIN PUBLIC KEY-----\n…".into()),
            created: 7,
            disabled: false,
        })
        .await
        .unwrap();
    }
    let reg = |client: &str, org: &str, roles: &[&str]| LaunchRegistration {
        client_id: client.into(),
        organisation_id: org.into(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
    };
    assert_eq!(dir.launch_registrations("launcher").await.unwrap(), vec![]);
    dir.register_launch(&reg("launcher", "org-zc0002", &["care-worker"]))
        .await
        .unwrap();
    dir.register_launch(&reg(
        "launcher",
        "org-zc0001",
        &["care-worker", "registered-nurse"],
    ))
    .await
    .unwrap();
    dir.register_launch(&reg("other-launcher", "org-zc0003", &["care-worker"]))
        .await
        .unwrap();
    // Registering an organisation again replaces its roles.
    dir.register_launch(&reg("launcher", "org-zc0002", &["senior-carer"]))
        .await
        .unwrap();
    assert_eq!(
        dir.launch_registrations("launcher").await.unwrap(),
        vec![
            reg(
                "launcher",
                "org-zc0001",
                &["care-worker", "registered-nurse"]
            ),
            reg("launcher", "org-zc0002", &["senior-carer"]),
        ]
    );
    assert_eq!(dir.launch_registrations("nobody").await.unwrap(), vec![]);
}
