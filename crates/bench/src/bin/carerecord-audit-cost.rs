//! What the audit write itself costs a read and a search, over HTTP, in one run.
//!
//! One store (SQLite in a temporary directory, or a fresh PostgreSQL database) holds `--people`
//! synthetic people with `--observations` Observations each. Two servers share it, each on
//! 127.0.0.1:0: the real application, and the same routes without the audit middleware
//! (`carerecord_server::app_unaudited_for_benchmarks`). The same unrestricted service identity
//! sends the same reads (`GET Patient/{id}`) and patient-scoped searches
//! (`GET Observation?subject=Patient/{id}&_count=20`) to each, alternating in rounds, one request
//! at a time; p50/p99 of each and their ratio are printed. The policy is the same on both sides
//! (the service identity sees everything), so the ratio is the audit's cost alone: building the
//! entry, the group commit, and waiting for it to be durable.
//!
//! ```text
//! cargo build --release -p carerecord-bench
//! target/release/carerecord-audit-cost --backend sqlite
//! target/release/carerecord-audit-cost --backend postgres   # CARERECORD_TEST_POSTGRES_URL
//! ```
//!
//! Only synthetic data (NHS numbers are not used at all).

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use carerecord_access::Role;
use carerecord_fhir::{LogicalId, ResourceType};
use carerecord_identity::{Identity, IdentitySettings, NewClient};
use carerecord_server::{AppState, ServerSettings};
use carerecord_store::{AuditKey, ResourceStore, write};
use carerecord_store_postgres::test_support;
use carerecord_store_sqlite::SqliteStore;
use clap::{Parser, ValueEnum};
use serde_json::json;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, value_enum, default_value = "sqlite")]
    backend: Backend,
    /// People in the store.
    #[arg(long, default_value_t = 200)]
    people: usize,
    /// Observations per person.
    #[arg(long, default_value_t = 20)]
    observations: usize,
    /// Requests per side per round: one per person, for this many people.
    #[arg(long, default_value_t = 50)]
    per_round: usize,
    /// Rounds, alternating which side goes first.
    #[arg(long, default_value_t = 6)]
    rounds: usize,
    /// Clients sending at once, each its share of the requests (1: one request at a time,
    /// where group commit has nothing to share).
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.people == 0 || args.per_round == 0 || args.rounds == 0 || args.concurrency == 0 {
        bail!("--people, --per-round, --rounds and --concurrency must be positive");
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(args))
}

fn key() -> anyhow::Result<AuditKey> {
    AuditKey::new(b"carerecord-audit-cost-bench-key!").context("audit key")
}

async fn open(
    backend: Backend,
) -> anyhow::Result<(
    Arc<dyn ResourceStore>,
    Option<test_support::TestDatabase>,
    Option<tempfile::TempDir>,
)> {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir()?;
            let store = SqliteStore::open(&dir.path().join("audit-cost.db"))
                .await?
                .with_audit_key(key()?);
            Ok((Arc::new(store), None, Some(dir)))
        }
        Backend::Postgres => match test_support::fresh(16).await.map_err(anyhow::Error::msg)? {
            test_support::Fresh::Ready(store, db) => {
                Ok((Arc::new(store.with_audit_key(key()?)), Some(db), None))
            }
            test_support::Fresh::Unreachable(e) => bail!("PostgreSQL is unreachable: {e}"),
        },
    }
}

async fn load(store: &Arc<dyn ResourceStore>, args: &Args) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::with_capacity(args.people);
    for p in 0..args.people {
        let pid = format!("pat-{p:05}");
        let mut tx = store.begin().await?;
        write::create(
            tx.as_mut(),
            ResourceType::Patient,
            &LogicalId::parse(&pid)?,
            json!({"resourceType": "Patient", "name": [{"family": "Bench", "given": [format!("P{p}")]}],
                   "birthDate": "1940-01-01"}),
        )
        .await?;
        for o in 0..args.observations {
            write::create(
                tx.as_mut(),
                ResourceType::Observation,
                &LogicalId::parse(&format!("obs-{p:05}-{o:03}"))?,
                json!({"resourceType": "Observation", "status": "final",
                       "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                       "subject": {"reference": format!("Patient/{pid}")},
                       "effectiveDateTime": format!("2026-{:02}-{:02}", 1 + o % 12, 1 + o % 28),
                       "valueQuantity": {"value": 60 + o, "unit": "/min"}}),
            )
            .await?;
        }
        tx.commit().await?;
        ids.push(pid);
    }
    Ok(ids)
}

async fn serve(app: axum::Router) -> anyhow::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await;
    });
    Ok(addr)
}

/// The `q` quantile of `sorted` (nearest rank); 0 for no samples.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (sorted.len() as f64 * q).ceil();
    let i = (rank.max(1.0) as usize).min(sorted.len()) - 1;
    sorted.get(i).copied().unwrap_or(0.0)
}

async fn run(args: Args) -> anyhow::Result<()> {
    let (store, database, _dir) = open(args.backend).await?;
    let started = Instant::now();
    let ids = load(&store, &args).await?;
    eprintln!(
        "loaded {} people x {} observations in {:.1} s",
        args.people,
        args.observations,
        started.elapsed().as_secs_f64()
    );
    let identity = Arc::new(Identity::new(store.clone(), IdentitySettings::default()));
    let state = AppState {
        store: store.clone(),
        settings: Arc::new(ServerSettings::default()),
        identity: identity.clone(),
        people: None,
    };
    let audited = serve(carerecord_server::app(state.clone())).await?;
    let unaudited = serve(carerecord_server::app_unaudited_for_benchmarks(state)).await?;
    let client = identity
        .create_client(NewClient {
            client_id: "audit-cost".into(),
            role: Role::Service,
            organisation_id: "programme".into(),
            secret: true,
            public_key: None,
        })
        .await?;
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("http://{audited}/auth/token"))
        .basic_auth("audit-cost", client.secret.as_deref())
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await?;
    let body: serde_json::Value = resp.json().await?;
    let token = body["access_token"]
        .as_str()
        .context("no access token")?
        .to_owned();

    let targets: Vec<String> = ids.iter().take(args.per_round).cloned().collect();
    let before = store.audit_entries(0, u32::MAX).await?.len();
    println!(
        "backend {:?}, {} people x {} observations, {} requests per side per round, {} rounds, concurrency {}",
        args.backend, args.people, args.observations, args.per_round, args.rounds, args.concurrency
    );
    println!(
        "| request | without audit p50 | p99 | req/s | with audit p50 | p99 | req/s | ratio p50 | ratio p99 |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for kind in ["read", "search"] {
        let (mut with, mut without) = (Vec::new(), Vec::new());
        let (mut with_secs, mut without_secs) = (0.0, 0.0);
        for round in 0..args.rounds {
            let order = if round % 2 == 0 {
                [(unaudited, false), (audited, true)]
            } else {
                [(audited, true), (unaudited, false)]
            };
            for (addr, is_audited) in order {
                let started = Instant::now();
                let mut tasks = Vec::new();
                for k in 0..args.concurrency {
                    let mine: Vec<String> = targets
                        .iter()
                        .skip(k)
                        .step_by(args.concurrency)
                        .cloned()
                        .collect();
                    let (http, token) = (http.clone(), token.clone());
                    tasks.push(tokio::spawn(async move {
                        let mut lat = Vec::with_capacity(mine.len());
                        for id in mine {
                            let path = match kind {
                                "read" => format!("Patient/{id}"),
                                _ => format!("Observation?subject=Patient/{id}&_count=20"),
                            };
                            let t = Instant::now();
                            let r = http
                                .get(format!("http://{addr}/fhir/{path}"))
                                .bearer_auth(&token)
                                .send()
                                .await?;
                            let status = r.status();
                            r.bytes().await?;
                            if !status.is_success() {
                                bail!("{path}: {status}");
                            }
                            lat.push(t.elapsed().as_secs_f64() * 1_000.0);
                        }
                        Ok::<_, anyhow::Error>(lat)
                    }));
                }
                let mut lat = Vec::new();
                for t in tasks {
                    lat.extend(t.await??);
                }
                let secs = started.elapsed().as_secs_f64();
                // The first round warms caches on both sides; it is not counted.
                if round > 0 {
                    if is_audited {
                        with.extend(lat);
                        with_secs += secs;
                    } else {
                        without.extend(lat);
                        without_secs += secs;
                    }
                }
            }
        }
        with.sort_by(f64::total_cmp);
        without.sort_by(f64::total_cmp);
        let (a50, a99) = (percentile(&without, 0.5), percentile(&without, 0.99));
        let (b50, b99) = (percentile(&with, 0.5), percentile(&with, 0.99));
        let rate = |n: usize, secs: f64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
        println!(
            "| {kind} | {a50:.2} ms | {a99:.2} ms | {:.0} | {b50:.2} ms | {b99:.2} ms | {:.0} | {:.2} | {:.2} |",
            rate(without.len(), without_secs),
            rate(with.len(), with_secs),
            b50 / a50,
            b99 / a99
        );
    }
    let after = store.audit_entries(0, u32::MAX).await?.len();
    // The check that the two sides differ in what they should: one entry per audited request.
    let expected = 2 * args.rounds * targets.len();
    eprintln!(
        "audit entries written during the run: {} (expected {expected})",
        after - before
    );
    if after - before != expected {
        bail!(
            "the audited side wrote {} entries, not {expected}",
            after - before
        );
    }
    if let Some(db) = database {
        db.drop_database().await;
    }
    Ok(())
}
