//! SMART App Launch without HTTP: authorisation codes (single use, a minute, bound to the
//! client, redirect URI and PKCE challenge) and refresh tokens (rotated; a spent one presented
//! again revokes the family).

use carerecord_identity::smart::s256;
use carerecord_identity::{
    AuthorizeError, Identity, IdentityError, NewSmartApp, OAuthError, PatientContext, TokenRequest,
    TokenResponse,
};

use super::{MIN, T0, identity, nurse, req};

const BASE: &str = "http://cr.example/fhir";
const TOKEN_ENDPOINT: &str = "http://cr.example/auth/token";
const REDIRECT: &str = "http://127.0.0.1:7000/callback";
const VERIFIER: &str = "a-verifier-that-is-long-enough-for-pkce-0123456789";

async fn app(id: &Identity, client_id: &str) {
    id.register_smart_app(NewSmartApp {
        client_id: client_id.into(),
        name: "Falls Risk".into(),
        redirect_uris: vec![REDIRECT.into()],
        scopes: "launch/patient patient/*.rs openid fhirUser offline_access".into(),
        secret: false,
        public_key: None,
        launch_url: None,
    })
    .await
    .unwrap();
}

fn params(client_id: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let challenge = s256(VERIFIER);
    let mut p: Vec<(String, String)> = [
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT),
        (
            "scope",
            "launch/patient patient/*.rs openid fhirUser offline_access",
        ),
        ("state", "st-1"),
        ("aud", BASE),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    for (k, v) in extra {
        p.retain(|(name, _)| name != k);
        if !v.is_empty() {
            p.push(((*k).to_owned(), (*v).to_owned()));
        }
    }
    p
}

fn query_value(location: &str, name: &str) -> Option<String> {
    let query = location.split_once('?')?.1;
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// Signs the nurse in, authorises `client_id` for patient `pat-1` and returns the code.
async fn code_for(id: &Identity, secret: &str, client_id: &str, now: i64) -> String {
    let session = id.login(&req("pw", secret, now), now).await.unwrap();
    let checked = id
        .check_authorize(&params(client_id, &[]), BASE, now)
        .await
        .unwrap();
    assert_eq!(checked.patient, PatientContext::Pick);
    let location = id
        .approve(&checked, &session.principal, Some("pat-1".into()), now)
        .await
        .unwrap();
    assert!(location.starts_with(REDIRECT));
    assert_eq!(query_value(&location, "state").as_deref(), Some("st-1"));
    query_value(&location, "code").unwrap()
}

fn exchange(client_id: &str, code: &str, verifier: &str, redirect: &str) -> TokenRequest {
    TokenRequest {
        form: [
            ("grant_type", "authorization_code"),
            ("client_id", client_id),
            ("code", code),
            ("code_verifier", verifier),
            ("redirect_uri", redirect),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect(),
        basic: None,
    }
}

fn refresh(client_id: &str, token: &str) -> TokenRequest {
    TokenRequest {
        form: vec![
            ("grant_type".into(), "refresh_token".into()),
            ("client_id".into(), client_id.into()),
            ("refresh_token".into(), token.into()),
        ],
        basic: None,
    }
}

fn error_of(r: Result<TokenResponse, OAuthError>) -> &'static str {
    match r {
        Ok(_) => "issued",
        Err(e) => e.error,
    }
}

#[tokio::test]
async fn a_code_is_exchanged_once_for_a_patient_scoped_signed_token() {
    let dir = tempfile::tempdir().unwrap();
    let id = identity(&dir).await;
    app(&id, "falls").await;
    let secret = nurse(&id).await;
    let code = code_for(&id, &secret, "falls", T0).await;
    let t = id
        .token(
            &exchange("falls", &code, VERIFIER, REDIRECT),
            TOKEN_ENDPOINT,
            T0,
        )
        .await
        .unwrap();
    let body = serde_json::to_value(&t).unwrap();
    assert_eq!(body["patient"], "pat-1");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(
        body["scope"],
        "launch/patient patient/*.rs openid fhirUser offline_access"
    );
    assert!(body["id_token"].as_str().is_some());
    assert!(body["refresh_token"].as_str().is_some());
    // A JWT, and a bearer token the identity service knows, acting as the nurse with the grant.
    assert_eq!(t.access_token.split('.').count(), 3);
    let auth = id.authenticate(&t.access_token, T0 + MIN).await.unwrap();
    let smart = auth.principal.smart.unwrap();
    assert_eq!(smart.client_id, "falls");
    assert_eq!(smart.patient.as_deref(), Some("pat-1"));
    assert_eq!(
        auth.principal.role,
        carerecord_access::Role::RegisteredNurse
    );

    // The same code again is refused, and what it was exchanged for is revoked.
    let again = id
        .token(
            &exchange("falls", &code, VERIFIER, REDIRECT),
            TOKEN_ENDPOINT,
            T0,
        )
        .await;
    assert_eq!(error_of(again), "invalid_grant");
    assert!(matches!(
        id.authenticate(&t.access_token, T0 + MIN).await,
        Err(IdentityError::InvalidToken)
    ));
}

#[tokio::test]
async fn a_code_is_bound_to_its_client_redirect_uri_verifier_and_minute() {
    let dir = tempfile::tempdir().unwrap();
    let id = identity(&dir).await;
    app(&id, "falls").await;
    app(&id, "other").await;
    let secret = nurse(&id).await;
    let cases: [(&str, &str, &str, i64); 4] = [
        ("other", VERIFIER, REDIRECT, T0),
        (
            "falls",
            "b-verifier-that-is-long-enough-for-pkce-0123456789",
            REDIRECT,
            T0,
        ),
        ("falls", VERIFIER, "http://127.0.0.1:7000/elsewhere", T0),
        ("falls", VERIFIER, REDIRECT, T0 + MIN),
    ];
    for (i, (client, verifier, redirect, at)) in cases.into_iter().enumerate() {
        let now = T0 + i64::try_from(i).unwrap() * 2 * MIN;
        let code = code_for(&id, &secret, "falls", now).await;
        let r = id
            .token(
                &exchange(client, &code, verifier, redirect),
                TOKEN_ENDPOINT,
                at - T0 + now,
            )
            .await;
        assert_eq!(error_of(r), "invalid_grant", "case {i}");
    }
    // An unknown code, and a confidential-only field from a public app.
    let r = id
        .token(
            &exchange("falls", "made-up", VERIFIER, REDIRECT),
            TOKEN_ENDPOINT,
            T0,
        )
        .await;
    assert_eq!(error_of(r), "invalid_grant");
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_spent_one_revokes_the_family() {
    let dir = tempfile::tempdir().unwrap();
    let id = identity(&dir).await;
    app(&id, "falls").await;
    let secret = nurse(&id).await;
    let code = code_for(&id, &secret, "falls", T0).await;
    let first = id
        .token(
            &exchange("falls", &code, VERIFIER, REDIRECT),
            TOKEN_ENDPOINT,
            T0,
        )
        .await
        .unwrap();
    let r1 = first.smart.clone().unwrap().refresh_token.unwrap();
    let second = id
        .token(&refresh("falls", &r1), TOKEN_ENDPOINT, T0 + MIN)
        .await
        .unwrap();
    let r2 = second.smart.clone().unwrap().refresh_token.unwrap();
    assert_ne!(r1, r2);
    assert_eq!(
        second.smart.clone().unwrap().patient.as_deref(),
        Some("pat-1")
    );
    id.authenticate(&second.access_token, T0 + 2 * MIN)
        .await
        .unwrap();
    // Another client cannot use it.
    app(&id, "other").await;
    assert_eq!(
        error_of(
            id.token(&refresh("other", &r2), TOKEN_ENDPOINT, T0 + 2 * MIN)
                .await
        ),
        "invalid_grant"
    );
    // The spent r1 again: refused, and r2 and every access token of the family die with it.
    assert_eq!(
        error_of(
            id.token(&refresh("falls", &r1), TOKEN_ENDPOINT, T0 + 3 * MIN)
                .await
        ),
        "invalid_grant"
    );
    assert_eq!(
        error_of(
            id.token(&refresh("falls", &r2), TOKEN_ENDPOINT, T0 + 3 * MIN)
                .await
        ),
        "invalid_grant"
    );
    for t in [&first.access_token, &second.access_token] {
        assert!(id.authenticate(t, T0 + 3 * MIN).await.is_err());
    }
}

#[tokio::test]
async fn authorisation_requests_are_refused_on_a_page_or_back_at_the_app() {
    let dir = tempfile::tempdir().unwrap();
    let id = identity(&dir).await;
    app(&id, "falls").await;
    let check = |p: Vec<(String, String)>| {
        let id = &id;
        async move { id.check_authorize(&p, BASE, T0).await }
    };
    // Unknown client or redirect URI: a page, never a redirect.
    for p in [
        params("nobody", &[]),
        params("falls", &[("redirect_uri", "http://127.0.0.1:7000/evil")]),
        params("falls", &[("redirect_uri", "")]),
    ] {
        assert!(matches!(check(p).await, Err(AuthorizeError::Page(_))));
    }
    let redirected = |r: Result<_, AuthorizeError>| match r {
        Err(AuthorizeError::Redirect { error, state, .. }) => {
            assert_eq!(state.as_deref(), Some("st-1"));
            error
        }
        Err(AuthorizeError::Page(m)) => panic!("a page: {m}"),
        Ok(_) => "accepted",
    };
    let plain = [("code_challenge_method", "plain")];
    let cases: [(&[(&str, &str)], &str); 7] = [
        (&[("code_challenge", "")], "invalid_request"),
        (&plain, "invalid_request"),
        (&[("code_challenge_method", "")], "invalid_request"),
        (
            &[("aud", "http://elsewhere.example/fhir")],
            "invalid_request",
        ),
        (&[("response_type", "token")], "unsupported_response_type"),
        (&[("scope", "patient/*.rs")], "invalid_scope"),
        (
            &[("scope", "launch/patient patient/*.rs made/up")],
            "invalid_scope",
        ),
    ];
    for (extra, want) in cases {
        assert_eq!(
            redirected(check(params("falls", extra)).await),
            want,
            "{extra:?}"
        );
    }
    // A trailing slash on aud is the same base.
    assert!(
        check(params("falls", &[("aud", "http://cr.example/fhir/")]))
            .await
            .is_ok()
    );
}
