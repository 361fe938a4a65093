//! End to end: the record page of a care home resident with 2,000 resources, through the
//! real server over HTTP — the session cookie checked, the person's `$everything` read under
//! the nurse's visibility, the page rendered, and its audit entry written and made durable
//! before the page leaves — timed from the client. Also the residents list of their home.
//!
//! ```sh
//! cargo run --release -p carerecord-portal --example record_page -- 200
//! cargo run --release -p carerecord-portal --example record_page -- 200 results summary
//! ```
//!
//! After the number of requests, the pages to ask for may be named (a section's slug,
//! `summary`, or `residents` for My residents); without names, every one. `RUST_LOG` is
//! honoured: `RUST_LOG=sqlx::query=debug` prints every statement with its time.
//!
//! The data are the benches' (`crates/record/benches/record.rs`): the largest care home
//! resident of a seed-42 synthetic London, grown to 2,000 resources with more of their own lab
//! results, a week further back each round. SQLite in a temporary directory.

use std::error::Error;
use std::sync::Arc;
use std::time::{Duration, Instant};

use carerecord_access::Role;
use carerecord_identity::{Identity, IdentitySettings, NewClient, NewUser, PasswordCost, totp};
use carerecord_server::{AppState, ServerSettings};
use carerecord_store::{AuditKey, ResourceStore, now_micros};
use carerecord_synth::{London, Options};
use serde_json::{Value, json};

// The binary's allocator (`carerecord`'s default `mimalloc` feature): a page builds and frees
// many small blocks, and glibc's allocator would be measured instead of the page.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Result<T> = std::result::Result<T, Box<dyn Error>>;

const TARGET: usize = 2_000;
const PASSWORD: &str = "an end-to-end benchmark password";

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let requests: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(200);
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn ResourceStore> = Arc::new(
        carerecord_store_sqlite::SqliteStore::open(&dir.path().join("bench.db"))
            .await?
            .with_audit_key(AuditKey::new(b"carerecord-record-page-bench-key")?),
    );
    let identity = Arc::new(Identity::new(
        store.clone(),
        IdentitySettings {
            password_cost: PasswordCost::Light,
            ..IdentitySettings::default()
        },
    ));
    let state = AppState {
        store: store.clone(),
        settings: Arc::new(ServerSettings::default()),
        identity: identity.clone(),
        people: None,
        transactions: carerecord_server::fhir::bundle::SharedTransactions::for_store(&store),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let origin = format!("http://{}", listener.local_addr()?);
    tokio::spawn(carerecord_server::serve_with(
        state,
        carerecord_portal::router(),
        listener,
        std::future::pending::<()>(),
    ));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;

    // The data, through the FHIR API as the service identity.
    let service = identity
        .create_client(NewClient {
            client_id: "bench-service".into(),
            role: Role::Service,
            organisation_id: "programme".into(),
            secret: true,
            public_key: None,
        })
        .await?;
    let token: Value = http
        .post(format!("{origin}/auth/token"))
        .basic_auth("bench-service", service.secret.as_deref())
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await?
        .json()
        .await?;
    let token = token["access_token"].as_str().ok_or("no token")?.to_owned();
    let london = London::new(&Options {
        seed: 42,
        patients: 200,
        care_homes: 6,
        ..Options::default()
    });
    let (person, home, bundle) = grown_resident(&london).ok_or("no care home resident")?;
    let resources = bundle["entry"].as_array().map_or(0, Vec::len);
    for b in [organisations_bundle(&london), bundle] {
        let r = http
            .post(format!("{origin}/fhir"))
            .bearer_auth(&token)
            .header("content-type", "application/fhir+json")
            .header("prefer", "return=minimal")
            .body(serde_json::to_vec(&b)?)
            .send()
            .await?;
        if !r.status().is_success() {
            return Err(format!("loading the data: {}", r.status()).into());
        }
    }

    // A nurse of the resident's home, signed in through the form.
    let nurse = identity
        .create_user(NewUser {
            username: "bench-nurse".into(),
            display_name: "Bench Nurse".into(),
            password: Some(PASSWORD.into()),
            grants: vec![(Role::RegisteredNurse, home.clone())],
            training_valid_until: None,
        })
        .await?;
    let code = totp::code_at(&nurse.totp_secret, u64::try_from(now_micros() / 1_000_000)?)?;
    let signed_in = http
        .post(format!("{origin}/sign-in"))
        .header("origin", &origin)
        .form(&[
            ("username", "bench-nurse"),
            ("password", PASSWORD),
            ("totp", code.as_str()),
        ])
        .send()
        .await?;
    let cookie = signed_in
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .ok_or("sign-in set no cookie")?
        .to_owned();

    println!(
        "{requests} requests per page, one at a time, {} build, mimalloc",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    // Every section of the record page (the summary is the page itself), then My residents.
    let only: Vec<String> = std::env::args().skip(2).collect();
    let wanted = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    let paths = std::iter::once(("summary", format!("/residents/{person}")))
        .chain(
            [
                "discharge",
                "results",
                "reports",
                "medicines",
                "problems",
                "care-plans",
                "encounters",
            ]
            .iter()
            .map(|s| (*s, format!("/residents/{person}/{s}"))),
        )
        .chain(std::iter::once(("residents", "/".to_owned())))
        .filter(|(name, _)| wanted(name))
        .map(|(_, path)| path);
    for path in paths {
        let mut times = Vec::with_capacity(requests);
        let mut sizes = (0, 0);
        for i in 0..requests + 5 {
            let started = Instant::now();
            let r = http
                .get(format!("{origin}{path}"))
                .header("cookie", &cookie)
                .header("accept-encoding", "gzip")
                .send()
                .await?;
            if !r.status().is_success() {
                return Err(format!("{path}: {}", r.status()).into());
            }
            let sent = r.bytes().await?.len();
            // The first few warm the caches and are not counted.
            if i >= 5 {
                times.push(started.elapsed());
            }
            sizes.0 = sent;
        }
        let html = http
            .get(format!("{origin}{path}"))
            .header("cookie", &cookie)
            .send()
            .await?
            .bytes()
            .await?
            .len();
        sizes.1 = html;
        times.sort();
        let at = |q: f64| {
            let i = ((times.len() as f64 * q).ceil() as usize).saturating_sub(1);
            times.get(i).copied().unwrap_or(Duration::ZERO)
        };
        println!(
            "{path:<40} p50 {:>8.1?}  p99 {:>8.1?}  max {:>8.1?}  {} bytes gzip ({} bytes HTML)",
            at(0.50),
            at(0.99),
            times.last().copied().unwrap_or(Duration::ZERO),
            sizes.0,
            sizes.1
        );
    }
    println!("the resident's record: {resources} resources");
    Ok(())
}

fn organisations_bundle(london: &London) -> Value {
    let entries: Vec<Value> = london
        .organisations()
        .into_iter()
        .map(|r| {
            let url = format!(
                "{}/{}",
                r["resourceType"].as_str().unwrap_or(""),
                r["id"].as_str().unwrap_or("")
            );
            json!({"resource": r, "request": {"method": "PUT", "url": url}})
        })
        .collect();
    json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
}

/// The care home resident with the most resources, grown to [`TARGET`] with copies of their
/// own lab results, each a new id a week further back; with their home's Organization id and
/// the transaction Bundle that writes them.
fn grown_resident(london: &London) -> Option<(String, String, Value)> {
    let home_of = |b: &Value| -> Option<String> {
        b["entry"].as_array()?.iter().find_map(|e| {
            let r = &e["resource"];
            (r["resourceType"] == "EpisodeOfCare")
                .then(|| r["managingOrganization"]["reference"].as_str())
                .flatten()
                .and_then(|s| s.strip_prefix("Organization/"))
                .map(str::to_owned)
        })
    };
    let (i, home, mut bundle) = (0..london.people())
        .map(|i| (i, london.person_bundle(i)))
        .filter_map(|(i, b)| home_of(&b).map(|h| (i, h, b)))
        .max_by_key(|(_, _, b)| b["entry"].as_array().map_or(0, Vec::len))?;
    let pid = London::patient_id(i);
    let entries = bundle["entry"].as_array_mut()?;
    let labs: Vec<Value> = entries
        .iter()
        .map(|e| &e["resource"])
        .filter(|r| r["resourceType"] == "Observation")
        .cloned()
        .collect();
    let start = time::OffsetDateTime::now_utc();
    let mut week = 0i64;
    while entries.len() < TARGET && !labs.is_empty() {
        week += 1;
        for (k, o) in labs.iter().enumerate() {
            if entries.len() >= TARGET {
                break;
            }
            let mut o = o.clone();
            let id = format!("{pid}-bench-{week}-{k}");
            o["id"] = json!(id);
            let when = start - time::Duration::weeks(week);
            let date = format!(
                "{:04}-{:02}-{:02}T09:00:00Z",
                when.year(),
                u8::from(when.month()),
                when.day()
            );
            o["effectiveDateTime"] = json!(date);
            o["issued"] = json!(date);
            entries.push(json!({"resource": o, "request": {"method": "PUT", "url": format!("Observation/{id}")}}));
        }
    }
    Some((pid, home, bundle))
}
