//! SMART App Launch through the real server: authorise (sign in, choose a resident, allow),
//! exchange the code, read, refresh, revoke, introspect; and every refusal.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use carerecord_access::Role;
use carerecord_identity::NewSmartApp;
use carerecord_identity::smart::s256;
use serde_json::Value;

use super::common::{App, Page, user};
use super::spawn;

const REDIRECT: &str = "http://127.0.0.1:9/callback";
const VERIFIER: &str = "portal-test-verifier-with-more-than-forty-three-characters";
const SCOPE: &str = "launch/patient patient/*.rs openid fhirUser offline_access";

async fn register(
    app: &App,
    client_id: &str,
    secret: bool,
    launch_url: Option<&str>,
) -> Option<String> {
    app.identity
        .register_smart_app(NewSmartApp {
            client_id: client_id.into(),
            name: format!("App {client_id}"),
            redirect_uris: vec![REDIRECT.into()],
            scopes: format!("{SCOPE} launch user/*.rs"),
            secret,
            public_key: None,
            launch_url: launch_url.map(str::to_owned),
        })
        .await
        .unwrap()
        .secret
}

fn authorize_query(app: &App, client_id: &str, extra: &[(&str, &str)]) -> String {
    let challenge = s256(VERIFIER);
    let base = app.url("/fhir");
    let mut p: Vec<(&str, &str)> = vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT),
        ("scope", SCOPE),
        ("state", "xyz"),
        ("aud", &base),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ];
    for (k, v) in extra {
        p.retain(|(name, _)| name != k);
        if !v.is_empty() {
            p.push((k, v));
        }
    }
    format!(
        "/auth/authorize?{}",
        serde_urlencoded::to_string(&p).unwrap()
    )
}

fn query_of(location: &str) -> Vec<(String, String)> {
    let q = location.split_once('?').map(|(_, q)| q).unwrap_or_default();
    serde_urlencoded::from_str(q).unwrap()
}

fn param(location: &str, name: &str) -> Option<String> {
    query_of(location)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// The hidden fields of the consent form.
fn hidden_fields(page: &Page) -> Vec<(String, String)> {
    page.text
        .split("<input type=\"hidden\" name=\"")
        .skip(1)
        .map(|s| {
            let name = s.split('"').next().unwrap();
            let value = s
                .split("value=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap();
            (unescape(name), unescape(value))
        })
        .collect()
}

fn unescape(s: &str) -> String {
    s.replace("&#x2f;", "/")
        .replace("&#x2F;", "/")
        .replace("&#43;", "+")
        .replace("&#x3d;", "=")
        .replace("&#61;", "=")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Answers the consent page: `decision` and, for a standalone launch, the resident.
async fn decide(
    app: &App,
    cookie: &str,
    page: &Page,
    decision: &str,
    patient: Option<&str>,
) -> Page {
    let mut form = hidden_fields(page);
    form.push(("decision".into(), decision.into()));
    if let Some(p) = patient {
        form.push(("chosen_patient".into(), p.into()));
    }
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    app.post(cookie, "/auth/authorize", &form).await
}

/// Signs the nurse in through an app's authorisation request (unless `signed_in` already:
/// a TOTP code is accepted once) and allows it for `p-here`; returns the code and the
/// session cookie.
async fn authorise(app: &App, client_id: &str, secret: &str) -> (String, String) {
    authorise_as(app, client_id, secret, None).await
}

async fn authorise_as(
    app: &App,
    client_id: &str,
    secret: &str,
    signed_in: Option<&str>,
) -> (String, String) {
    let path = authorize_query(app, client_id, &[]);
    if let Some(cookie) = signed_in {
        let consent = app.get(cookie, &path).await;
        let allowed = decide(app, cookie, &consent, "allow", Some("p-here")).await;
        return (
            param(allowed.header("location"), "code").unwrap(),
            cookie.to_owned(),
        );
    }
    // Not signed in: to the sign-in page, which comes back here.
    let first = app.get("", &path).await;
    assert_eq!(first.status, 303, "{}", first.text);
    let to_sign_in = first.header("location").to_owned();
    assert!(to_sign_in.starts_with("/sign-in?next="), "{to_sign_in}");
    let form = app.get("", &to_sign_in).await;
    assert!(form.text.contains("name=\"next\""), "{}", form.text);
    let now = u64::try_from(carerecord_store::now_micros() / 1_000_000).unwrap();
    let code = carerecord_identity::totp::code_at(secret, now).unwrap();
    let signed = app
        .post(
            "",
            "/sign-in",
            &[
                ("username", "nurse"),
                ("password", super::common::PASSWORD),
                ("totp", &code),
                ("next", &path),
            ],
        )
        .await;
    assert_eq!(signed.status, 303, "{}", signed.text);
    assert_eq!(signed.header("location"), path);
    let cookie = signed
        .header("set-cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned();

    let consent = app.get(&cookie, &path).await;
    assert_eq!(consent.status, 200, "{}", consent.text);
    assert!(consent.text.contains(&format!("App {client_id}")));
    assert!(consent.text.contains("Ada Here"), "her resident is offered");
    assert!(!consent.text.contains("Elsewhere"), "another home's is not");
    assert!(
        consent
            .header("content-security-policy")
            .contains("form-action 'self' http://127.0.0.1:9")
    );
    let allowed = decide(app, &cookie, &consent, "allow", Some("p-here")).await;
    assert_eq!(allowed.status, 303, "{}", allowed.text);
    let location = allowed.header("location");
    assert!(location.starts_with(REDIRECT), "{location}");
    assert_eq!(param(location, "state").as_deref(), Some("xyz"));
    (param(location, "code").unwrap(), cookie)
}

async fn token(app: &App, form: &[(&str, &str)], basic: Option<(&str, &str)>) -> (u16, Value) {
    let mut req = app.http.post(app.url("/auth/token")).form(form);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn exchange(app: &App, client_id: &str, code: &str, verifier: &str) -> (u16, Value) {
    token(
        app,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", client_id),
            ("code", code),
            ("code_verifier", verifier),
            ("redirect_uri", REDIRECT),
        ],
        None,
    )
    .await
}

async fn read(app: &App, bearer: &str, path: &str) -> u16 {
    app.http
        .get(app.url(path))
        .bearer_auth(bearer)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn form_post(
    app: &App,
    path: &str,
    form: &[(&str, &str)],
    basic: (&str, &str),
) -> (u16, Value) {
    let resp = app
        .http
        .post(app.url(path))
        .basic_auth(basic.0, Some(basic.1))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[tokio::test]
async fn a_public_app_is_authorised_for_one_resident_and_its_tokens_refresh_and_revoke() {
    let app = spawn().await;
    let secret = user(&app, "nurse", Role::RegisteredNurse, "home-a", false).await;
    register(&app, "falls", false, None).await;
    let (code, _cookie) = authorise(&app, "falls", &secret).await;

    let (status, t) = exchange(&app, "falls", &code, VERIFIER).await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["patient"], "p-here");
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["scope"], SCOPE);
    let access = t["access_token"].as_str().unwrap().to_owned();
    let c = claims(&access);
    assert_eq!(c["client_id"], "falls");
    assert_eq!(c["patient"], "p-here");
    assert_eq!(c["aud"], app.url("/fhir"));
    let id_token = claims(t["id_token"].as_str().unwrap());
    assert_eq!(id_token["aud"], "falls");
    assert!(
        id_token["fhirUser"]
            .as_str()
            .unwrap()
            .contains("/fhir/Practitioner/usr-")
    );
    // The signature verifies with the published key.
    let jwks: Value = app
        .http
        .get(app.url("/auth/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks).unwrap();
    let key = jsonwebtoken::DecodingKey::from_jwk(&set.keys[0]).unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    v.set_audience(&[app.url("/fhir")]);
    jsonwebtoken::decode::<Value>(&access, &key, &v).unwrap();

    // The token reads the resident in context, as the nurse.
    assert_eq!(read(&app, &access, "/fhir/Patient/p-here").await, 200);

    // The code is spent.
    let (status, again) = exchange(&app, "falls", &code, VERIFIER).await;
    assert_eq!(
        (status, again["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    // …and reusing it revoked what it gave.
    assert_eq!(read(&app, &access, "/fhir/Patient/p-here").await, 401);
}

#[tokio::test]
async fn refresh_rotates_and_revocation_and_introspection_answer_for_the_client() {
    let app = spawn().await;
    let secret = user(&app, "nurse", Role::RegisteredNurse, "home-a", false).await;
    let app_secret = register(&app, "conf", true, None).await.unwrap();
    let (code, cookie) = authorise(&app, "conf", &secret).await;
    let basic = ("conf", app_secret.as_str());
    // A confidential app must authenticate.
    let (status, e) = exchange(&app, "conf", &code, VERIFIER).await;
    assert_eq!((status, e["error"].as_str()), (401, Some("invalid_client")));
    let (code, _) = authorise_as(&app, "conf", &secret, Some(&cookie)).await;
    let (status, t) = token(
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", VERIFIER),
            ("redirect_uri", REDIRECT),
        ],
        Some(basic),
    )
    .await;
    assert_eq!(status, 200, "{t}");
    let access = t["access_token"].as_str().unwrap().to_owned();
    let r1 = t["refresh_token"].as_str().unwrap().to_owned();

    let (status, i) = form_post(&app, "/auth/introspect", &[("token", &access)], basic).await;
    assert_eq!(status, 200);
    assert_eq!(i["active"], true);
    assert_eq!(i["client_id"], "conf");
    assert_eq!(i["patient"], "p-here");
    assert_eq!(i["scope"], SCOPE);
    assert!(i["sub"].as_str().unwrap().starts_with("usr-"));
    assert!(i["exp"].as_i64().unwrap() > 0);

    let refresh = |rt: String| {
        let app = &app;
        async move {
            token(
                app,
                &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
                Some(basic),
            )
            .await
        }
    };
    let (status, t2) = refresh(r1.clone()).await;
    assert_eq!(status, 200, "{t2}");
    assert_eq!(t2["patient"], "p-here");
    let r2 = t2["refresh_token"].as_str().unwrap().to_owned();
    let access2 = t2["access_token"].as_str().unwrap().to_owned();
    assert_ne!(r1, r2);
    assert_eq!(read(&app, &access2, "/fhir/Patient/p-here").await, 200);

    // Revoking the access token ends it; introspection then says inactive.
    let (status, _) = form_post(&app, "/auth/revoke", &[("token", &access2)], basic).await;
    assert_eq!(status, 200);
    assert_eq!(read(&app, &access2, "/fhir/Patient/p-here").await, 401);
    let (_, i) = form_post(&app, "/auth/introspect", &[("token", &access2)], basic).await;
    assert_eq!(i, serde_json::json!({"active": false}));

    // The spent r1 again: refused, and the family (r2 and its tokens) is revoked.
    let (status, e) = refresh(r1).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_grant")));
    let (status, _) = refresh(r2.clone()).await;
    assert_eq!(status, 400);
    let (_, i) = form_post(&app, "/auth/introspect", &[("token", &r2)], basic).await;
    assert_eq!(i["active"], false);
    // Unknown tokens revoke quietly; a wrong secret is refused.
    let (status, _) = form_post(&app, "/auth/revoke", &[("token", "nothing")], basic).await;
    assert_eq!(status, 200);
    // Revoking a refresh token names its family in the trail (the digest of the code that
    // began it), never the token.
    let (status, _) = form_post(&app, "/auth/revoke", &[("token", &r2)], basic).await;
    assert_eq!(status, 200);
    let trail = app.audit().await;
    let family = trail
        .iter()
        .rfind(|r| r.rule == "token-family-revoked")
        .expect("the family revocation is audited");
    assert_eq!(family.agent.id, "conf");
    assert_eq!(
        family.resources,
        [format!(
            "token-family/{}",
            carerecord_identity::bearer::digest(&code)
        )]
    );
    let written = format!("{trail:?}");
    for t in [&access, &access2, &r2] {
        assert!(!written.contains(t.as_str()), "a token is in the trail");
    }
    let (status, _) = form_post(
        &app,
        "/auth/introspect",
        &[("token", &access)],
        ("conf", "wrong"),
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn authorisation_refusals_are_pages_before_the_redirect_is_trusted_and_errors_after() {
    let app = spawn().await;
    let secret = user(&app, "nurse", Role::RegisteredNurse, "home-a", false).await;
    register(&app, "falls", false, None).await;
    register(&app, "other", false, None).await;

    // Unknown app and unregistered redirect URI: a page, never a redirect.
    for path in [
        authorize_query(&app, "nobody", &[]),
        authorize_query(
            &app,
            "falls",
            &[("redirect_uri", "http://127.0.0.1:9/evil")],
        ),
    ] {
        let p = app.get("", &path).await;
        assert_eq!(p.status, 400, "{path}");
        assert_eq!(p.header("location"), "");
        assert!(p.text.contains("There is a problem"));
    }
    // Missing or plain PKCE, wrong aud: back to the app with the error and state.
    for extra in [
        [("code_challenge", ""), ("code_challenge_method", "")],
        [("code_challenge_method", "plain"), ("state", "xyz")],
        [("aud", "http://elsewhere.example/fhir"), ("state", "xyz")],
    ] {
        let p = app.get("", &authorize_query(&app, "falls", &extra)).await;
        assert_eq!(p.status, 303);
        let location = p.header("location");
        assert!(location.starts_with(REDIRECT), "{location}");
        assert_eq!(param(location, "error").as_deref(), Some("invalid_request"));
        assert_eq!(param(location, "state").as_deref(), Some("xyz"));
    }

    let (code, cookie) = authorise(&app, "falls", &secret).await;
    // Wrong verifier, wrong client: refused, and the code is then spent anyway.
    let (status, e) = exchange(
        &app,
        "falls",
        &code,
        "another-verifier-that-is-long-enough-0123456789",
    )
    .await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_grant")));
    let (code, _) = authorise_as(&app, "falls", &secret, Some(&cookie)).await;
    let (status, e) = exchange(&app, "other", &code, VERIFIER).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_grant")));

    // "Do not allow" goes back as access_denied.
    let path = authorize_query(&app, "falls", &[]);
    let consent = app.get(&cookie, &path).await;
    let denied = decide(&app, &cookie, &consent, "deny", None).await;
    assert_eq!(
        param(denied.header("location"), "error").as_deref(),
        Some("access_denied")
    );
    // A resident of another home cannot be chosen.
    let consent = app.get(&cookie, &path).await;
    let other = decide(&app, &cookie, &consent, "allow", Some("p-other")).await;
    assert_eq!(
        param(other.header("location"), "error").as_deref(),
        Some("access_denied")
    );
}

#[tokio::test]
async fn an_ehr_launch_from_the_record_page_gives_the_app_that_resident() {
    let app = spawn().await;
    let secret = user(&app, "nurse", Role::RegisteredNurse, "home-a", false).await;
    register(&app, "chart", false, Some("http://127.0.0.1:9/launch")).await;
    let cookie = app.sign_in("nurse", &secret).await;
    let record = app.get(&cookie, "/residents/p-here").await;
    assert!(record.text.contains("Open in App chart"), "{}", record.text);
    let opened = app.post(&cookie, "/residents/p-here/apps/chart", &[]).await;
    assert_eq!(opened.status, 303, "{}", opened.text);
    let location = opened.header("location").to_owned();
    assert!(
        location.starts_with("http://127.0.0.1:9/launch?"),
        "{location}"
    );
    assert_eq!(param(&location, "iss"), Some(app.url("/fhir")));
    let launch = param(&location, "launch").unwrap();

    let path = authorize_query(
        &app,
        "chart",
        &[
            ("scope", "launch patient/*.rs openid fhirUser"),
            ("launch", &launch),
        ],
    );
    let consent = app.get(&cookie, &path).await;
    assert_eq!(consent.status, 200, "{}", consent.text);
    assert!(consent.text.contains("Ada Here"));
    let allowed = decide(&app, &cookie, &consent, "allow", None).await;
    let code = param(allowed.header("location"), "code").unwrap();
    let (status, t) = exchange(&app, "chart", &code, VERIFIER).await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["patient"], "p-here");
    assert!(
        t.get("refresh_token").is_none(),
        "no offline_access, no refresh token"
    );
    // The launch is spent.
    let again = app.get(&cookie, &path).await;
    assert_eq!(
        param(again.header("location"), "error").as_deref(),
        Some("invalid_request")
    );
    // A resident she cannot see cannot be launched.
    let refused = app
        .post(&cookie, "/residents/p-other/apps/chart", &[])
        .await;
    assert_eq!(refused.status, 403);
}

#[tokio::test]
async fn disabling_an_app_ends_its_tokens_and_authorisations_at_once() {
    let app = spawn().await;
    let secret = user(&app, "nurse", Role::RegisteredNurse, "home-a", false).await;
    register(&app, "falls", false, None).await;
    let (code, cookie) = authorise(&app, "falls", &secret).await;
    let (status, t) = exchange(&app, "falls", &code, VERIFIER).await;
    assert_eq!(status, 200, "{t}");
    let access = t["access_token"].as_str().unwrap().to_owned();
    let refresh = t["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(read(&app, &access, "/fhir/Patient/p-here").await, 200);

    let admin_secret = user(&app, "admin", Role::ProgrammeAdmin, "programme", false).await;
    let admin = app.sign_in("admin", &admin_secret).await;
    let off = app.post(&admin, "/systems/falls/disable", &[]).await;
    assert_eq!(off.status, 303, "{}", off.text);

    // Its live access token is revoked; its refresh token gives nothing more.
    assert_eq!(read(&app, &access, "/fhir/Patient/p-here").await, 401);
    let (status, r) = token(
        &app,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", "falls"),
        ],
        None,
    )
    .await;
    assert_eq!(
        (status, r["error"].as_str()),
        (401, Some("invalid_client")),
        "{r}"
    );
    // And no one can authorise it any more.
    let page = app.get(&cookie, &authorize_query(&app, "falls", &[])).await;
    assert!(
        page.text.contains("withdrawn"),
        "{}: {}",
        page.status,
        page.text
    );
}
