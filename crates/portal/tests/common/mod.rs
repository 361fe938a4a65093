//! The harness both portal test binaries share: a real server on port 0 over SQLite in a
//! temporary directory, with the portal merged in; a service token to write the population
//! through the FHIR API; people with roles; and requests as a browser without JavaScript
//! sends them (forms, redirects not followed, a session cookie).
//!
//! The store is wrapped in [`Counting`], which counts the reads a page asks the store for, so
//! a test can show that a page's cost does not grow with the number of people on it.

#![allow(
    dead_code,
    reason = "each test binary uses its own part of the shared harness"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use carerecord_access::{Role, Visibility};
use carerecord_fhir::{LogicalId, ResourceType, VersionId};
use carerecord_identity::{Identity, IdentitySettings, NewClient, NewUser, PasswordCost, totp};
use carerecord_search::query::SearchQuery;
use carerecord_server::{AppState, ServerSettings};
use carerecord_store::ingest::{IngestQuery, IngestReply};
use carerecord_store::{
    AuditEntry, AuditFilter, AuditKey, AuditRecord, BreakGlassRecord, Directory, HistoryQuery,
    Page as StorePage, ResourceKey, ResourceStore, ReviewStatus, SearchOutcome, StoreError,
    StoreTx, StoredResource, now_micros,
};
use serde_json::{Value, json};

pub const PASSWORD: &str = "a long portal test password";
pub const SOURCE_TAG: &str = "https://fhir.carerecord.example/CodeSystem/source-organisation";
pub const NHS: &str = "https://fhir.nhs.uk/Id/nhs-number";
pub const ODS: &str = "https://fhir.nhs.uk/Id/ods-organization-code";

pub struct App {
    pub origin: String,
    /// A service client's bearer token, to write the test population through the API.
    pub token: String,
    pub store: Arc<dyn ResourceStore>,
    /// The same store, counting the reads asked of it.
    pub counting: Arc<Counting>,
    pub identity: Arc<Identity>,
    pub http: reqwest::Client,
    _dir: tempfile::TempDir,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

pub struct Page {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Page {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// The session cookie the page set, as a browser sends it back.
    pub fn cookie(&self) -> String {
        self.header("set-cookie")
            .split(';')
            .next()
            .unwrap()
            .to_owned()
    }
}

/// A server with no one in it but a service client (`{name}-service`) whose token is
/// `app.token`.
pub async fn spawn(name: &str) -> App {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = carerecord_store_sqlite::SqliteStore::open(&dir.path().join("t.db"))
        .await
        .unwrap()
        .with_audit_key(
            AuditKey::new(format!("carerecord-{name}-tests-audit-key").as_bytes()).unwrap(),
        );
    let counting = Arc::new(Counting::new(Arc::new(sqlite)));
    let store: Arc<dyn ResourceStore> = counting.clone();
    let identity = Arc::new(Identity::new(
        store.clone(),
        IdentitySettings {
            password_cost: PasswordCost::Light,
            // Test key servers listen on loopback http; every check fetches again, so a key
            // withdrawn is seen at once (the cache's own rules are unit-tested).
            jwks: carerecord_identity::jwks::JwksSettings {
                cache_ttl: std::time::Duration::ZERO,
                refetch_interval: std::time::Duration::ZERO,
                allow_loopback_http: true,
            },
            ..IdentitySettings::default()
        },
    ));
    identity.set_jwks_fetcher(Arc::new(
        carerecord_server::jwks::HttpJwksFetcher::new().unwrap(),
    ));
    let state = AppState {
        store: store.clone(),
        settings: Arc::new(ServerSettings::default()),
        identity: identity.clone(),
        people: None,
        transactions: carerecord_server::fhir::bundle::SharedTransactions::for_store(&store),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ =
            carerecord_server::serve_with(state, carerecord_portal::router(), listener, async {
                let _ = rx.await;
            })
            .await;
    });
    let mut app = App {
        token: String::new(),
        origin,
        store,
        counting,
        identity,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        _dir: dir,
        _shutdown: tx,
    };
    app.token = service_token(&app, &format!("{name}-service")).await;
    app
}

async fn service_token(app: &App, client_id: &str) -> String {
    let client = app
        .identity
        .create_client(NewClient {
            client_id: client_id.into(),
            role: Role::Service,
            organisation_id: "programme".into(),
            secret: true,
            public_key: None,
        })
        .await
        .unwrap();
    let resp = app
        .http
        .post(app.url("/auth/token"))
        .basic_auth(client_id, client.secret.as_deref())
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// Writes `body` through the FHIR API as carerecord's service identity (which keeps the
/// source it is given), keeping any security labels it has.
pub async fn put(app: &App, body: Value, source: &str) {
    let mut body = body;
    let security = body["meta"]["security"].clone();
    body["meta"] = json!({"tag": [{"system": SOURCE_TAG, "code": source}]});
    if !security.is_null() {
        body["meta"]["security"] = security;
    }
    let path = format!(
        "/fhir/{}/{}",
        body["resourceType"].as_str().unwrap(),
        body["id"].as_str().unwrap()
    );
    let r = app
        .http
        .put(app.url(&path))
        .bearer_auth(&app.token)
        .header("content-type", "application/fhir+json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "{path}: {}",
        r.text().await.unwrap()
    );
}

/// The two care homes every test uses: home A (ZHA1) and home B (ZHB1).
pub async fn homes(app: &App) {
    for (id, ods, name) in [("home-a", "ZHA1", "Home A"), ("home-b", "ZHB1", "Home B")] {
        put(
            app,
            json!({"resourceType": "Organization", "id": id, "name": name,
                   "identifier": [{"system": ODS, "value": ods}]}),
            "ZDIR",
        )
        .await;
    }
}

/// A resident of `home` (its ODS code `ods`): the Patient (from the GP, ZGP1) and an active
/// EpisodeOfCare managed by the home.
pub struct Resident<'a> {
    pub id: &'a str,
    pub home: &'a str,
    pub ods: &'a str,
    pub nhs: &'a str,
    pub born: &'a str,
    pub family: &'a str,
}

pub async fn resident(app: &App, r: &Resident<'_>) {
    put(
        app,
        json!({"resourceType": "Patient", "id": r.id, "birthDate": r.born,
               "identifier": [{"system": NHS, "value": r.nhs}],
               "name": [{"use": "official", "family": r.family, "given": ["Ada"]}],
               "generalPractitioner": [{"display": "Zed Practice"}]}),
        "ZGP1",
    )
    .await;
    put(
        app,
        json!({"resourceType": "EpisodeOfCare", "id": format!("{}-eoc", r.id), "status": "active",
               "patient": {"reference": format!("Patient/{}", r.id)},
               "managingOrganization": {"reference": format!("Organization/{}", r.home)},
               "period": {"start": "2025-01-01"}}),
        r.ods,
    )
    .await;
}

/// Creates a person with one role at `org`; returns their TOTP secret.
pub async fn user(app: &App, username: &str, role: Role, org: &str, lapsed: bool) -> String {
    let created = app
        .identity
        .create_user(NewUser {
            username: username.into(),
            display_name: format!("Test {username}"),
            password: Some(PASSWORD.into()),
            grants: vec![(role, org.to_owned())],
            training_valid_until: lapsed.then(|| now_micros() - 1_000_000),
        })
        .await
        .unwrap();
    created.totp_secret
}

/// A system's key server on port 0: serves whatever `doc` holds at `/jwks.json`; its URL.
pub async fn jwks_server(doc: Arc<std::sync::Mutex<String>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    let router = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let doc = doc.clone();
            async move { doc.lock().unwrap().clone() }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    url
}

/// A URL on loopback where nothing listens.
pub fn closed_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}/jwks.json", l.local_addr().unwrap())
}

impl App {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }

    pub async fn page(&self, req: reqwest::RequestBuilder) -> Page {
        let resp = req.send().await.unwrap();
        Page {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            text: resp.text().await.unwrap(),
        }
    }

    pub async fn get(&self, cookie: &str, path: &str) -> Page {
        self.page(self.http.get(self.url(path)).header("cookie", cookie))
            .await
    }

    /// A form POST as a browser on the portal's own page sends it.
    pub async fn post(&self, cookie: &str, path: &str, form: &[(&str, &str)]) -> Page {
        self.page(
            self.http
                .post(self.url(path))
                .header("cookie", cookie)
                .header("origin", &self.origin)
                .form(form),
        )
        .await
    }

    /// Signs in through the form; returns the cookie to send.
    pub async fn sign_in(&self, username: &str, secret: &str) -> String {
        let now = u64::try_from(now_micros() / 1_000_000).unwrap();
        let code = totp::code_at(secret, now).unwrap();
        let p = self
            .post(
                "",
                "/sign-in",
                &[
                    ("username", username),
                    ("password", PASSWORD),
                    ("totp", &code),
                ],
            )
            .await;
        assert_eq!(p.status, 303, "sign-in: {}", p.text);
        let cookie = p.header("set-cookie").to_owned();
        assert!(cookie.contains("HttpOnly"), "{cookie}");
        assert!(cookie.contains("SameSite=Strict"), "{cookie}");
        p.cookie()
    }

    /// The audit trail so far, oldest first.
    pub async fn audit(&self) -> Vec<AuditRecord> {
        self.store
            .audit_entries(0, 10_000)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.record)
            .collect()
    }
}

/// A store that counts the record reads asked of it (reads, searches, `$everything`, reads of
/// many) and passes everything on.
pub struct Counting {
    inner: Arc<dyn ResourceStore>,
    reads: AtomicU64,
}

impl Counting {
    fn new(inner: Arc<dyn ResourceStore>) -> Counting {
        Counting {
            inner,
            reads: AtomicU64::new(0),
        }
    }

    /// How many record reads were asked for so far.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::SeqCst)
    }

    fn count(&self) {
        self.reads.fetch_add(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl ResourceStore for Counting {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    fn single_writer(&self) -> bool {
        self.inner.single_writer()
    }

    async fn ready(&self) -> Result<(), StoreError> {
        self.inner.ready().await
    }

    async fn read(
        &self,
        rt: ResourceType,
        id: &LogicalId,
        vis: &Visibility,
    ) -> Result<StoredResource, StoreError> {
        self.count();
        self.inner.read(rt, id, vis).await
    }

    async fn vread(
        &self,
        rt: ResourceType,
        id: &LogicalId,
        version: VersionId,
        vis: &Visibility,
    ) -> Result<StoredResource, StoreError> {
        self.count();
        self.inner.vread(rt, id, version, vis).await
    }

    async fn history(
        &self,
        rt: Option<ResourceType>,
        id: Option<&LogicalId>,
        query: &HistoryQuery,
        vis: &Visibility,
    ) -> Result<StorePage<StoredResource>, StoreError> {
        self.count();
        self.inner.history(rt, id, query, vis).await
    }

    async fn search(
        &self,
        query: &SearchQuery,
        page_size: u32,
        vis: &Visibility,
    ) -> Result<SearchOutcome, StoreError> {
        self.count();
        self.inner.search(query, page_size, vis).await
    }

    async fn everything(
        &self,
        patient_id: &LogicalId,
        since: Option<i64>,
        types: &[ResourceType],
        count: u32,
        cursor: Option<&str>,
        vis: &Visibility,
    ) -> Result<StorePage<StoredResource>, StoreError> {
        self.count();
        self.inner
            .everything(patient_id, since, types, count, cursor, vis)
            .await
    }

    async fn read_many(
        &self,
        keys: &[ResourceKey],
        vis: &Visibility,
    ) -> Result<Vec<StoredResource>, StoreError> {
        self.count();
        self.inner.read_many(keys, vis).await
    }

    async fn begin(&self) -> Result<Box<dyn StoreTx>, StoreError> {
        self.inner.begin().await
    }

    async fn append_audit(&self, records: Vec<AuditRecord>) -> Result<(), StoreError> {
        self.inner.append_audit(records).await
    }

    async fn audit_entries(
        &self,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        self.inner.audit_entries(after_seq, limit).await
    }

    async fn audit_search(
        &self,
        filter: &AuditFilter,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<StorePage<AuditEntry>, StoreError> {
        self.inner.audit_search(filter, limit, cursor).await
    }

    async fn audit_entry(&self, seq: i64) -> Result<AuditEntry, StoreError> {
        self.inner.audit_entry(seq).await
    }

    async fn audit_last_looks(
        &self,
        filter: &AuditFilter,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        self.inner.audit_last_looks(filter).await
    }

    async fn break_glass_queue(
        &self,
        org_id: &str,
        status: ReviewStatus,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<carerecord_store::Page<BreakGlassRecord>, StoreError> {
        self.inner
            .break_glass_queue(org_id, status, limit, cursor)
            .await
    }

    async fn break_glass_grant(
        &self,
        grant_id: &str,
    ) -> Result<Option<BreakGlassRecord>, StoreError> {
        self.inner.break_glass_grant(grant_id).await
    }

    async fn ingest_read(&self, query: IngestQuery) -> Result<IngestReply, StoreError> {
        self.inner.ingest_read(query).await
    }

    fn directory(&self) -> Arc<dyn Directory> {
        self.inner.directory()
    }
}
