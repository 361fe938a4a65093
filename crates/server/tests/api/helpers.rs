use std::sync::Arc;

use carerecord_access::Role;
use carerecord_identity::{Identity, IdentitySettings, NewClient, PasswordCost};
use carerecord_server::{AppState, ServerSettings};
use carerecord_store::{AuditKey, ResourceStore};
use carerecord_store_postgres::test_support;
use serde_json::{Value, json};

pub struct TestApp {
    pub base: String,
    /// The store behind the server, to write what the API does not (audit entries).
    pub store: Arc<dyn ResourceStore>,
    /// The server's origin (`http://127.0.0.1:port`), where `/auth` lives.
    pub origin: String,
    /// Sends the bearer token of a `service` client with every request.
    pub client: reqwest::Client,
    /// Sends no credentials.
    pub anonymous: reqwest::Client,
    /// The server's identity service, to create users and clients directly.
    pub identity: Arc<Identity>,
    _dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    database: Option<test_support::TestDatabase>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(db) = self.database.take() {
            db.drop_blocking();
        }
    }
}

pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The diagnostics of an OperationOutcome body, joined.
    pub fn diagnostics(&self) -> String {
        self.body["issue"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|i| i["diagnostics"].as_str())
                    .collect::<Vec<_>>()
                    .join(" | ")
            })
            .unwrap_or_default()
    }
}

async fn store(
    dir: &tempfile::TempDir,
) -> (Arc<dyn ResourceStore>, Option<test_support::TestDatabase>) {
    if std::env::var("CARERECORD_TEST_BACKEND").as_deref() == Ok("postgres") {
        match test_support::fresh(8).await.expect("a fresh test database") {
            test_support::Fresh::Ready(store, db) => {
                (Arc::new(store.with_audit_key(audit_key())), Some(db))
            }
            test_support::Fresh::Unreachable(e) => {
                panic!("CARERECORD_TEST_BACKEND=postgres but PostgreSQL is unreachable: {e}")
            }
        }
    } else {
        let store = carerecord_store_sqlite::SqliteStore::open(&dir.path().join("t.db"))
            .await
            .expect("open sqlite")
            .with_audit_key(audit_key());
        (Arc::new(store), None)
    }
}

fn audit_key() -> AuditKey {
    AuditKey::new(b"carerecord-api-tests-audit-key!!").expect("a valid key")
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(ServerSettings::default()).await
}

pub async fn spawn_app_with(settings: ServerSettings) -> TestApp {
    spawn_app_full(settings, test_identity_settings()).await
}

/// Identity settings for tests: cheap password hashes, the default policy otherwise.
pub fn test_identity_settings() -> IdentitySettings {
    IdentitySettings {
        password_cost: PasswordCost::Light,
        ..IdentitySettings::default()
    }
}

pub async fn spawn_app_with_identity(identity: IdentitySettings) -> TestApp {
    spawn_app_full(ServerSettings::default(), identity).await
}

pub async fn spawn_app_full(settings: ServerSettings, identity: IdentitySettings) -> TestApp {
    spawn_app_routes(settings, identity, |_| axum::Router::new()).await
}

/// A server with the routes `extra` makes (over the test's store) merged in, as the binary
/// merges the portal and the identity review queue.
pub async fn spawn_app_routes(
    settings: ServerSettings,
    identity: IdentitySettings,
    extra: impl FnOnce(&Arc<dyn ResourceStore>) -> axum::Router<AppState>,
) -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, database) = store(&dir).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let identity = Arc::new(Identity::new(store.clone(), identity));
    let state = AppState {
        store: store.clone(),
        settings: Arc::new(settings),
        identity: identity.clone(),
        people: Some(Arc::new(carerecord_ingest::submission::SubmittedPeople)),
        transactions: carerecord_server::fhir::bundle::SharedTransactions::for_store(&store),
    };
    let extra = extra(&store);
    tokio::spawn(async move {
        let _ = carerecord_server::serve_with(state, extra, listener, async {
            let _ = rx.await;
        })
        .await;
    });
    let origin = format!("http://{addr}");
    let token = service_token(&identity, &origin).await;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().expect("header"),
    );
    TestApp {
        store,
        base: format!("{origin}/fhir"),
        origin,
        client: reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .expect("client"),
        anonymous: reqwest::Client::new(),
        identity,
        _dir: dir,
        shutdown: Some(tx),
        database,
    }
}

/// Registers a `service` client with a secret and gets a token for it at the token endpoint,
/// as a loader or a conformance run would.
async fn service_token(identity: &Identity, origin: &str) -> String {
    let client = identity
        .create_client(NewClient {
            client_id: "test-service".into(),
            role: Role::Service,
            organisation_id: "programme".into(),
            secret: true,
            public_key: None,
        })
        .await
        .expect("register the test service client");
    let resp = reqwest::Client::new()
        .post(format!("{origin}/auth/token"))
        .basic_auth("test-service", client.secret.as_deref())
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("token request");
    assert_eq!(
        resp.status().as_u16(),
        200,
        "token endpoint refused the test client"
    );
    let body: Value = resp.json().await.expect("token JSON");
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_owned()
        } else if path.is_empty() {
            self.base.clone()
        } else {
            format!("{}/{}", self.base, path.trim_start_matches('/'))
        }
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Resp {
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(self.client.get(self.url(path))).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        self.send(
            self.client
                .post(self.url(path))
                .header("content-type", "application/fhir+json")
                .body(body.to_string()),
        )
        .await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Resp {
        self.send(
            self.client
                .put(self.url(path))
                .header("content-type", "application/fhir+json")
                .body(body.to_string()),
        )
        .await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.send(self.client.delete(self.url(path))).await
    }

    /// Creates `body` and returns its id.
    pub async fn create(&self, body: &Value) -> String {
        let rt = body["resourceType"].as_str().expect("resourceType");
        let r = self.post(rt, body).await;
        assert_eq!(r.status, 201, "create {rt}: {}", r.text);
        r.body["id"].as_str().expect("id").to_owned()
    }

    /// All entries' resources of a search, following `next` links.
    /// A registered source system (role `system`) of organisation `org`, and a bearer token
    /// for it from the token endpoint (client credentials with a secret).
    pub async fn system_token(&self, client_id: &str, org: &str) -> String {
        let client = self
            .identity
            .create_client(NewClient {
                client_id: client_id.into(),
                role: Role::System,
                organisation_id: org.into(),
                secret: true,
                public_key: None,
            })
            .await
            .expect("register the system");
        let r = self
            .send(
                self.anonymous
                    .post(format!("{}/auth/token", self.origin))
                    .basic_auth(client_id, client.secret.as_deref())
                    .form(&[("grant_type", "client_credentials")]),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    pub async fn search_all(&self, path: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut url = self.url(path);
        loop {
            let r = self.get(&url).await;
            assert_eq!(r.status, 200, "{url}: {}", r.text);
            for e in r.body["entry"].as_array().cloned().unwrap_or_default() {
                if e["search"]["mode"] == "match" {
                    out.push(e["resource"].clone());
                }
            }
            match next_link(&r.body) {
                Some(n) => url = n,
                None => return out,
            }
        }
    }
}

pub fn next_link(bundle: &Value) -> Option<String> {
    bundle["link"].as_array()?.iter().find_map(|l| {
        (l["relation"] == "next").then(|| l["url"].as_str().unwrap_or_default().to_owned())
    })
}

pub fn ids(bundle: &Value) -> Vec<String> {
    bundle["entry"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|e| e["search"]["mode"] == "match")
                .map(|e| e["resource"]["id"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

pub const NHS: &str = "https://fhir.nhs.uk/Id/nhs-number";

/// A synthetic resident with an NHS number in the 999 test range.
pub fn patient(nhs: &str, family: &str, given: &str, birth: &str) -> Value {
    json!({
        "resourceType": "Patient",
        "identifier": [{"system": NHS, "value": nhs}],
        "name": [{"family": family, "given": [given]}],
        "gender": "female",
        "birthDate": birth,
        "address": [{"line": ["1 Elm Row"], "city": "London", "postalCode": "N1 9GU"}]
    })
}

pub fn observation(patient_id: &str, loinc: &str, value: &str, unit: &str, when: &str) -> Value {
    let v: Value = serde_json::from_str(value).expect("number");
    json!({
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": loinc, "display": "Lab test"}]},
        "subject": {"reference": format!("Patient/{patient_id}")},
        "effectiveDateTime": when,
        "valueQuantity": {"value": v, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}
    })
}
