//! Signing and scopes as an operator sets them up: a managed SMART signing key named in the
//! configuration, and a client registered with `client add --scope`, each then used through
//! a real server on port 0 over the same data directory.
#![allow(
    clippy::panic,
    reason = "test code: a failed expectation is a failed test"
)]

use carerecord::config::{Config, SmartConfig};
use carerecord_access::{Principal, PrincipalId, Role};
use serde_json::Value;
use std::path::Path;

use super::{carerecord, stdout_of};

/// A server over the store `config` names, as `carerecord serve` wires it (signing key
/// included), listening on port 0. Dropping the sender stops it.
struct Server {
    origin: String,
    state: carerecord_server::AppState,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn serve(config: &Config) -> Server {
    let store = carerecord::open_store(config).await.unwrap();
    let state = carerecord::app_state(config, store.clone());
    carerecord::install_signing_key(config, &state).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(carerecord_server::serve_with(
        state.clone(),
        axum::Router::new(),
        listener,
        async move {
            let _ = stopped.await;
        },
    ));
    Server {
        origin,
        state,
        _stop: stop,
    }
}

fn config_in(dir: &Path) -> Config {
    Config {
        data_dir: dir.to_owned(),
        metrics_listen: None,
        ..Config::default()
    }
}

const REDIRECT: &str = "http://127.0.0.1:9/callback";
const VERIFIER: &str = "a-pkce-code-verifier-that-is-long-enough-for-s256-0123456789";

/// A SMART access token issued by `server` for a nurse through an app: the authorisation is
/// approved in process (the portal's pages are tested elsewhere), the code is exchanged at
/// the real `/auth/token`.
async fn smart_access_token(server: &Server) -> String {
    let identity = &server.state.identity;
    identity
        .register_smart_app(carerecord_identity::NewSmartApp {
            client_id: "falls".into(),
            name: "Falls risk".into(),
            redirect_uris: vec![REDIRECT.into()],
            scopes: "openid fhirUser user/*.rs".into(),
            secret: false,
            public_key: None,
            launch_url: None,
        })
        .await
        .unwrap();
    let fhir_base = format!("{}/fhir", server.origin);
    let challenge = carerecord_identity::smart::s256(VERIFIER);
    let params: Vec<(String, String)> = [
        ("response_type", "code"),
        ("client_id", "falls"),
        ("redirect_uri", REDIRECT),
        ("scope", "openid fhirUser user/Observation.rs"),
        ("state", "xyz"),
        ("aud", fhir_base.as_str()),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let now = carerecord_store::now_micros();
    let req = identity
        .check_authorize(&params, &fhir_base, now)
        .await
        .unwrap();
    let nurse = Principal {
        id: PrincipalId::User("usr-nurse".into()),
        name: "Test Nurse".into(),
        role: Role::RegisteredNurse,
        organisation_id: "home-a".into(),
        organisation_ods: "ZHOME1".into(),
        training_valid_until: Some(now + 86_400_000_000),
        smart: None,
    };
    let location = identity.approve(&req, &nurse, None, now).await.unwrap();
    let code = location
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("code="))
        .unwrap()
        .to_owned();
    let t: Value = reqwest::Client::new()
        .post(format!("{}/auth/token", server.origin))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", "falls"),
            ("code", &code),
            ("code_verifier", VERIFIER),
            ("redirect_uri", REDIRECT),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    t["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no access token: {t}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_configured_signing_key_is_published_at_jwks_and_signs_the_tokens() {
    let t = tempfile::tempdir().unwrap();
    let (key, pem) = carerecord_identity::SigningKey::generate().unwrap();
    let managed = t.path().join("managed").join("smart.pem");
    std::fs::create_dir_all(managed.parent().unwrap()).unwrap();
    std::fs::write(&managed, &pem).unwrap();
    let data = t.path().join("data");
    let config = Config {
        smart: SmartConfig {
            signing_key_file: Some(managed.clone()),
        },
        ..config_in(&data)
    };
    let server = serve(&config).await;

    let jwks: Value = reqwest::get(format!("{}/auth/jwks", server.origin))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["kid"], key.kid(), "{jwks}");
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);

    let access = smart_access_token(&server).await;
    let header = jsonwebtoken::decode_header(&access).unwrap();
    assert_eq!(header.kid.as_deref(), Some(key.kid()));
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks).unwrap();
    let decoding = jsonwebtoken::DecodingKey::from_jwk(&set.keys[0]).unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    v.set_audience(&[format!("{}/fhir", server.origin)]);
    let claims = jsonwebtoken::decode::<Value>(&access, &decoding, &v).unwrap();
    assert_eq!(claims.claims["client_id"], "falls");
    // The managed key is used as it is: none is made in the data directory.
    assert!(!data.join("smart-signing-key.pem").exists());
    drop(server);

    // Without the key, the data directory's own key is made and published instead.
    let server = serve(&config_in(&data)).await;
    let jwks: Value = reqwest::get(format!("{}/auth/jwks", server.origin))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(data.join("smart-signing-key.pem").exists());
    assert_ne!(jwks["keys"][0]["kid"], key.kid());
}

#[test]
fn config_check_refuses_an_unreadable_or_invalid_signing_key_naming_the_key() {
    let t = tempfile::tempdir().unwrap();
    let config = t.path().join("carerecord.toml");
    let key = t.path().join("smart.pem");
    std::fs::write(
        &config,
        format!("[smart]\nsigning_key_file = {:?}\n", key.to_str().unwrap()),
    )
    .unwrap();
    let check = || carerecord(&["config", "check", "--config", config.to_str().unwrap()]);

    let missing = check();
    assert_eq!(missing.status.code(), Some(1));
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        err.contains("smart.signing_key_file: cannot read") && err.contains("smart.pem"),
        "{err}"
    );

    std::fs::write(
        &key,
        "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let invalid = check();
    assert_eq!(invalid.status.code(), Some(1));
    let err = String::from_utf8_lossy(&invalid.stderr);
    assert!(
        err.contains("smart.signing_key_file") && err.contains("is not an EC P-256 private key"),
        "{err}"
    );

    let (_, pem) = carerecord_identity::SigningKey::generate().unwrap();
    std::fs::write(&key, pem).unwrap();
    let ok = check();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    // The environment names the file too, and the printed default shows the key.
    let env = std::process::Command::new(env!("CARGO_BIN_EXE_carerecord"))
        .args(["config", "check"])
        .env(
            "CARERECORD_SMART_SIGNING_KEY_FILE",
            t.path().join("absent.pem"),
        )
        .output()
        .unwrap();
    assert!(!env.status.success());
    assert!(String::from_utf8_lossy(&env.stderr).contains("smart.signing_key_file"));
    let default = stdout_of(&carerecord(&["config", "print-default"]));
    assert!(default.contains("signing_key_file"), "{default}");
}

#[test]
fn client_add_with_scopes_registers_them_refuses_bad_ones_and_tokens_get_the_intersection() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().to_str().unwrap();
    let add = |id: &str, scope: &str| {
        carerecord(&[
            "client",
            "add",
            "--client-id",
            id,
            "--role",
            "system",
            "--org",
            "org-home",
            "--secret",
            "--scope",
            scope,
            "--data-dir",
            dir,
        ])
    };
    // Refused with a message naming the flag and what is wrong, and nothing registered.
    for (scope, says) in [
        ("system/Patient.rx", "malformed scope"),
        ("system/NoSuchType.rs", "does not hold"),
        ("user/Patient.rs", "give at least one system/ scope"),
        ("", "give at least one system/ scope"),
    ] {
        let out = add("home-system", scope);
        assert_eq!(out.status.code(), Some(1), "{scope:?} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{scope:?}: {err}");
        assert!(err.contains("--scope"), "{scope:?}: {err}");
    }
    let out = stdout_of(&add(
        "home-system",
        "system/Patient.rs system/Observation.rs",
    ));
    assert!(
        out.contains("scope: system/Patient.rs system/Observation.rs"),
        "{out}"
    );
    let secret = out
        .lines()
        .find_map(|l| l.strip_prefix("client_secret: "))
        .unwrap()
        .to_owned();

    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let server = serve(&config_in(t.path())).await;
        let token = |scope: Option<&'static str>| {
            let (origin, secret) = (server.origin.clone(), secret.clone());
            async move {
                let mut form = vec![("grant_type", "client_credentials")];
                if let Some(s) = scope {
                    form.push(("scope", s));
                }
                let r = reqwest::Client::new()
                    .post(format!("{origin}/auth/token"))
                    .basic_auth("home-system", Some(secret))
                    .form(&form)
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                (status, r.json::<Value>().await.unwrap())
            }
        };
        // Registered ∩ requested: Condition was never registered, write never granted.
        let (status, t) = token(Some(
            "system/Patient.rs system/Condition.rs system/Observation.cruds",
        ))
        .await;
        assert_eq!(status, 200, "{t}");
        let mut granted: Vec<&str> = t["scope"].as_str().unwrap().split(' ').collect();
        granted.sort_unstable();
        assert_eq!(
            granted,
            ["system/Observation.rs", "system/Patient.rs"],
            "{t}"
        );
        // Nothing asked: what is registered.
        let (status, t) = token(None).await;
        assert_eq!(status, 200, "{t}");
        let mut granted: Vec<&str> = t["scope"].as_str().unwrap().split(' ').collect();
        granted.sort_unstable();
        assert_eq!(
            granted,
            ["system/Observation.rs", "system/Patient.rs"],
            "{t}"
        );
        // Nothing of what is asked is registered: refused, saying what may be granted.
        let (status, t) = token(Some("system/Condition.rs")).await;
        assert_eq!(
            (status, t["error"].as_str()),
            (400, Some("invalid_scope")),
            "{t}"
        );
        assert!(
            t["error_description"]
                .as_str()
                .unwrap()
                .contains("system/Patient.rs")
        );
        // The grant is what the token carries to /fhir: a Condition search is refused.
        let (_, t) = token(Some("system/Patient.rs")).await;
        let access = t["access_token"].as_str().unwrap();
        let http = reqwest::Client::new();
        let get = |path: &str| {
            http.get(format!("{}/fhir/{path}", server.origin))
                .bearer_auth(access)
                .send()
        };
        assert_eq!(get("Patient").await.unwrap().status().as_u16(), 200);
        assert_eq!(get("Condition").await.unwrap().status().as_u16(), 403);
    });
}
