//! SMART App Launch storage: apps, single-use codes, refresh token families and launch
//! contexts.

use super::Store;
use crate::{
    AuthCodeRecord, ClientRecord, ClientRegistration, LaunchContextRecord, LaunchRegistration,
    RefreshTokenRecord, SmartAppRecord, StoreError, TokenRecord,
};

async fn register_app(store: &Store, client_id: &str, launch_url: Option<&str>) -> SmartAppRecord {
    let dir = store.directory();
    dir.create_client(&ClientRecord {
        client_id: client_id.into(),
        organisation_id: String::new(),
        role: "smart-app".into(),
        secret_hash: None,
        public_key_pem: None,
        created: 1,
        disabled: false,
    })
    .await
    .unwrap();
    let app = SmartAppRecord {
        client_id: client_id.into(),
        name: "Falls Risk".into(),
        redirect_uris: vec![
            "https://app.example/callback".into(),
            "http://127.0.0.1:9/cb".into(),
        ],
        scopes: "launch/patient patient/*.rs openid fhirUser offline_access".into(),
        confidential: false,
        launch_url: launch_url.map(str::to_owned),
        created: 2,
    };
    dir.create_smart_app(&app).await.unwrap();
    app
}

pub async fn smart_apps_are_registered_once_and_listed(store: Store) {
    let dir = store.directory();
    let b = register_app(&store, "b-app", Some("https://b.example/launch")).await;
    let a = register_app(&store, "a-app", None).await;
    assert_eq!(dir.smart_app("b-app").await.unwrap(), Some(b.clone()));
    assert_eq!(dir.smart_app("nobody").await.unwrap(), None);
    assert_eq!(dir.smart_apps().await.unwrap(), vec![a, b.clone()]);
    assert!(matches!(
        dir.create_smart_app(&b).await,
        Err(StoreError::AlreadyExists)
    ));
}

pub async fn an_authorisation_code_is_redeemed_once(store: Store) {
    let dir = store.directory();
    let code = AuthCodeRecord {
        code_hash: "c1".into(),
        client_id: "app".into(),
        redirect_uri: "https://app.example/callback".into(),
        code_challenge: "challenge".into(),
        grant: "{}".into(),
        expires_at: 60_000_000,
        used: false,
    };
    dir.create_auth_code(&code).await.unwrap();
    assert_eq!(
        dir.use_auth_code("c1", 1).await.unwrap(),
        Some(code.clone())
    );
    let again = dir.use_auth_code("c1", 2).await.unwrap().unwrap();
    assert!(again.used, "a second redemption is seen as one");
    assert_eq!(dir.use_auth_code("unknown", 2).await.unwrap(), None);
    // Long after expiry, a code is forgotten.
    let later = 60_000_000 + 2 * 86_400 * 1_000_000;
    assert_eq!(dir.use_auth_code("c1", later).await.unwrap(), None);
}

pub async fn refresh_tokens_are_spent_once_and_a_family_is_revoked_whole(store: Store) {
    let dir = store.directory();
    let refresh = |hash: &str, family: &str| RefreshTokenRecord {
        token_hash: hash.into(),
        family: family.into(),
        client_id: "app".into(),
        subject: "usr-1".into(),
        grant: "{}".into(),
        created: 1,
        expires_at: 9_000,
        used: false,
        revoked: false,
    };
    let access = |hash: &str| TokenRecord {
        token_hash: hash.into(),
        subject: "usr-1".into(),
        principal: "{}".into(),
        created: 1,
        expires_at: 9_000,
        last_used: 1,
        revoked: false,
    };
    for (r, a, family) in [("r1", "a1", "f1"), ("r2", "a2", "f1"), ("r3", "a3", "f2")] {
        dir.create_refresh_token(&refresh(r, family)).await.unwrap();
        dir.create_token(&access(a)).await.unwrap();
        dir.add_family_token(a, family).await.unwrap();
    }
    assert_eq!(
        dir.refresh_token("r1").await.unwrap(),
        Some(refresh("r1", "f1"))
    );
    assert!(dir.use_refresh_token("r1").await.unwrap());
    assert!(!dir.use_refresh_token("r1").await.unwrap());
    assert!(dir.refresh_token("r1").await.unwrap().unwrap().used);
    assert!(!dir.use_refresh_token("unknown").await.unwrap());

    dir.revoke_family("f1").await.unwrap();
    assert!(dir.refresh_token("r2").await.unwrap().unwrap().revoked);
    assert!(dir.token("a1").await.unwrap().unwrap().revoked);
    assert!(dir.token("a2").await.unwrap().unwrap().revoked);
    // Another family is untouched.
    assert!(!dir.refresh_token("r3").await.unwrap().unwrap().revoked);
    assert!(!dir.token("a3").await.unwrap().unwrap().revoked);
}

pub async fn a_launch_context_is_spent_once(store: Store) {
    let dir = store.directory();
    let l = LaunchContextRecord {
        launch_hash: "l1".into(),
        client_id: "app".into(),
        user_id: "usr-1".into(),
        patient_id: "pat-1".into(),
        expires_at: 300,
        used: false,
    };
    dir.create_launch_context(&l).await.unwrap();
    assert_eq!(dir.launch_context("l1").await.unwrap(), Some(l));
    assert!(dir.use_launch_context("l1").await.unwrap());
    assert!(!dir.use_launch_context("l1").await.unwrap());
    assert!(dir.launch_context("l1").await.unwrap().unwrap().used);
    assert_eq!(dir.launch_context("l2").await.unwrap(), None);
}

fn system(client_id: &str) -> ClientRegistration {
    ClientRegistration {
        client: ClientRecord {
            client_id: client_id.into(),
            organisation_id: "org-home-a".into(),
            role: "system".into(),
            secret_hash: None,
            public_key_pem: None,
            created: 5,
            disabled: false,
        },
        scope: Some("system/Patient.rs".into()),
        launch: vec![
            LaunchRegistration {
                client_id: client_id.into(),
                organisation_id: "org-home-a".into(),
                roles: vec!["carer".into(), "nurse".into()],
            },
            LaunchRegistration {
                client_id: client_id.into(),
                organisation_id: "org-home-b".into(),
                roles: vec!["carer".into()],
            },
        ],
        jwks_uri: Some("https://ehr.example/jwks.json".into()),
        app: None,
    }
}

pub async fn a_registration_is_written_whole_or_not_at_all_and_listed(store: Store) {
    let dir = store.directory();
    let sys = system("care-sys");
    dir.register_client(&sys).await.unwrap();
    let app_client = ClientRecord {
        client_id: "app-1".into(),
        organisation_id: String::new(),
        role: "smart-app".into(),
        secret_hash: None,
        public_key_pem: Some("{\"keys\":[]}".into()),
        created: 6,
        disabled: false,
    };
    let app = SmartAppRecord {
        client_id: "app-1".into(),
        name: "Falls Risk".into(),
        redirect_uris: vec!["https://app.example/cb".into()],
        scopes: "launch patient/*.rs".into(),
        confidential: true,
        launch_url: Some("https://app.example/launch".into()),
        created: 6,
    };
    dir.register_client(&ClientRegistration {
        client: app_client.clone(),
        scope: None,
        launch: vec![],
        jwks_uri: None,
        app: Some(app.clone()),
    })
    .await
    .unwrap();
    assert_eq!(
        dir.client_jwks_uri("care-sys").await.unwrap().as_deref(),
        Some("https://ehr.example/jwks.json")
    );
    assert_eq!(dir.client_jwks_uri("app-1").await.unwrap(), None);
    assert_eq!(dir.smart_app("app-1").await.unwrap(), Some(app.clone()));

    let all = dir.registered_clients().await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].client, app_client);
    assert_eq!(all[0].app, Some(app));
    assert!(all[0].launch.is_empty());
    assert_eq!(all[1].client, sys.client);
    assert_eq!(all[1].scope, sys.scope);
    assert_eq!(all[1].launch, sys.launch);
    assert_eq!(all[1].jwks_uri, sys.jwks_uri);
    assert_eq!(all[1].app, None);

    // A second registration under a taken id fails on its first row; one whose later row
    // fails (a launch organisation twice) leaves nothing behind.
    assert!(matches!(
        dir.register_client(&sys).await,
        Err(StoreError::AlreadyExists)
    ));
    let mut broken = system("half-sys");
    let again = broken.launch[0].clone();
    broken.launch.push(again);
    assert!(dir.register_client(&broken).await.is_err());
    assert_eq!(dir.client("half-sys").await.unwrap(), None);
    assert_eq!(dir.client_scope("half-sys").await.unwrap(), None);
    assert_eq!(dir.registered_clients().await.unwrap().len(), 2);
}

pub async fn disabling_a_client_revokes_its_tokens_and_those_issued_through_it(store: Store) {
    let dir = store.directory();
    dir.register_client(&system("care-sys")).await.unwrap();
    dir.register_client(&system("other-sys")).await.unwrap();
    let token = |hash: &str, subject: &str| TokenRecord {
        token_hash: hash.into(),
        subject: subject.into(),
        principal: "{}".into(),
        created: 1,
        expires_at: 9_000,
        last_used: 1,
        revoked: false,
    };
    // Its own client-credentials token; a person's token from a code it was issued; one from
    // a refresh family of it; another client's; a launch context not yet spent.
    dir.create_token(&token("own", "care-sys")).await.unwrap();
    dir.create_token(&token("by-code", "usr-1")).await.unwrap();
    dir.create_token(&token("by-refresh", "usr-1"))
        .await
        .unwrap();
    dir.create_token(&token("other", "other-sys"))
        .await
        .unwrap();
    dir.create_token(&token("other-app", "usr-1"))
        .await
        .unwrap();
    dir.create_auth_code(&AuthCodeRecord {
        code_hash: "code-1".into(),
        client_id: "care-sys".into(),
        redirect_uri: "https://x/cb".into(),
        code_challenge: "c".into(),
        grant: "{}".into(),
        expires_at: i64::MAX / 2,
        used: true,
    })
    .await
    .unwrap();
    dir.add_family_token("by-code", "code-1").await.unwrap();
    dir.create_refresh_token(&RefreshTokenRecord {
        token_hash: "r1".into(),
        family: "fam-2".into(),
        client_id: "care-sys".into(),
        subject: "usr-1".into(),
        grant: "{}".into(),
        created: 1,
        expires_at: 9_000,
        used: false,
        revoked: false,
    })
    .await
    .unwrap();
    dir.add_family_token("by-refresh", "fam-2").await.unwrap();
    dir.add_family_token("other-app", "fam-3").await.unwrap();
    dir.create_launch_context(&LaunchContextRecord {
        launch_hash: "l1".into(),
        client_id: "care-sys".into(),
        user_id: "usr-1".into(),
        patient_id: "pat-1".into(),
        expires_at: 300,
        used: false,
    })
    .await
    .unwrap();

    assert!(dir.disable_client("care-sys").await.unwrap());
    assert!(dir.client("care-sys").await.unwrap().unwrap().disabled);
    for t in ["own", "by-code", "by-refresh"] {
        assert!(
            dir.token(t).await.unwrap().unwrap().revoked,
            "{t} is revoked"
        );
    }
    for t in ["other", "other-app"] {
        assert!(!dir.token(t).await.unwrap().unwrap().revoked, "{t} is kept");
    }
    assert!(dir.refresh_token("r1").await.unwrap().unwrap().revoked);
    assert!(!dir.use_launch_context("l1").await.unwrap());
    assert!(!dir.client("other-sys").await.unwrap().unwrap().disabled);
    // Once only; an unknown client is not an error.
    assert!(!dir.disable_client("care-sys").await.unwrap());
    assert!(!dir.disable_client("nobody").await.unwrap());
}
