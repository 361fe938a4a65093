//! What the access policy and the audit write cost a read and a search, over HTTP, in one run.
//!
//! One store (SQLite in a temporary directory, or a fresh PostgreSQL database) holds `--people`
//! synthetic people with `--observations` Observations each, all residents of one care home (an
//! active EpisodeOfCare it manages). Two servers share it, each on 127.0.0.1:0: the real
//! application, and the same routes without the audit middleware
//! (`carerecord_server::app_unaudited_for_benchmarks`). Three sides send the same reads
//! (`GET Patient/{id}`) and patient-scoped searches (`GET Observation?subject=Patient/{id}&_count=20`),
//! alternating in rounds:
//!
//! - `none`: the unrestricted service identity, without the audit middleware (no product
//!   configuration runs like this; it is the floor);
//! - `service`: the same identity through the real application (audited; the policy lets it
//!   see everything) — the issue's "same request by an unrestricted system identity";
//! - `nurse`: a registered nurse at the care home, signed in with password and TOTP, through the
//!   real application: every query carries her compiled visibility rules (relationship,
//!   objection, sensitivity, source and break-glass probes) and is audited.
//!
//! p50/p99 and requests/second of each are printed with the ratios nurse/service (the policy),
//! service/none (the audit write: building the entry, the group commit, waiting until it is
//! durable) and nurse/none (both).
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
use carerecord_identity::{Identity, IdentitySettings, NewClient, NewUser, totp};
use carerecord_server::{AppState, ServerSettings};
use carerecord_store::{AuditKey, ResourceStore, write};
use carerecord_store_postgres::test_support;
use carerecord_store_sqlite::SqliteStore;
use clap::{Parser, ValueEnum};
use serde_json::json;

// The allocator the `carerecord` binary ships with (its default `mimalloc` feature), so the
// figures are the binary's and not glibc's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

/// The care home every bench person lives in (the nurse's organisation).
const HOME: &str = "org-bench-home";

async fn load(store: &Arc<dyn ResourceStore>, args: &Args) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::with_capacity(args.people);
    let mut tx = store.begin().await?;
    write::create(
        tx.as_mut(),
        ResourceType::Organization,
        &LogicalId::parse(HOME)?,
        json!({"resourceType": "Organization", "name": "Bench Care Home",
               "identifier": [{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "VBENCH"}]}),
    )
    .await?;
    tx.commit().await?;
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
        write::create(
            tx.as_mut(),
            ResourceType::EpisodeOfCare,
            &LogicalId::parse(&format!("eoc-{p:05}"))?,
            json!({"resourceType": "EpisodeOfCare", "status": "active",
                   "patient": {"reference": format!("Patient/{pid}")},
                   "managingOrganization": {"reference": format!("Organization/{HOME}")},
                   "period": {"start": "2025-01-01"}}),
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
        transactions: carerecord_server::fhir::bundle::SharedTransactions::for_store(&store),
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

    let nurse = sign_in_nurse(&identity, &http, audited).await?;
    let sides = [
        Side {
            name: "none",
            addr: unaudited,
            token: token.clone(),
            audited: false,
        },
        Side {
            name: "service",
            addr: audited,
            token,
            audited: true,
        },
        Side {
            name: "nurse",
            addr: audited,
            token: nurse,
            audited: true,
        },
    ];

    let targets: Vec<String> = ids.iter().take(args.per_round).cloned().collect();
    let before = store.audit_entries(0, u32::MAX).await?.len();
    println!(
        "backend {:?}, {} people x {} observations, {} requests per side per round, {} rounds, concurrency {}",
        args.backend,
        args.people,
        args.observations,
        targets.len(),
        args.rounds,
        args.concurrency
    );
    // Over `service`: the policy's cost (nurse); over `none`: the audit's (service) and both.
    println!(
        "| request | side | p50 | p99 | req/s | p50 / service | req/s / service | p50 / none | req/s / none | CPU ms/req, this process | CPU ms/req, PostgreSQL |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for kind in ["read", "search"] {
        let mut lat: Vec<Vec<f64>> = vec![Vec::new(); sides.len()];
        let mut secs = vec![0.0f64; sides.len()];
        let mut cpu = vec![(0u64, 0u64); sides.len()];
        for round in 0..args.rounds {
            // Each round starts with a different side, so none is always first or last.
            for k in 0..sides.len() {
                let i = (round + k) % sides.len();
                let ticks = cpu_ticks();
                let (l, s) = one_side(&http, &sides[i], kind, &targets, args.concurrency).await?;
                let used = cpu_ticks();
                // The first round warms caches on every side; it is not counted.
                if round > 0 {
                    cpu[i].0 += used.0.saturating_sub(ticks.0);
                    cpu[i].1 += used.1.saturating_sub(ticks.1);
                    lat[i].extend(l);
                    secs[i] += s;
                }
            }
        }
        let mut stats = Vec::new();
        for (i, l) in lat.iter_mut().enumerate() {
            l.sort_by(f64::total_cmp);
            let rate = if secs[i] > 0.0 {
                l.len() as f64 / secs[i]
            } else {
                0.0
            };
            // CPU per request, ms: this process (server and clients) and PostgreSQL's.
            let per = |t: u64| {
                if l.is_empty() {
                    0.0
                } else {
                    t as f64 * 1_000.0 / TICKS_PER_SECOND / l.len() as f64
                }
            };
            stats.push((
                percentile(l, 0.5),
                percentile(l, 0.99),
                rate,
                per(cpu[i].0),
                per(cpu[i].1),
            ));
        }
        for (i, side) in sides.iter().enumerate() {
            let (p50, p99, rate, cpu_self, cpu_pg) = stats[i];
            // p50 and throughput of this side over side `j`'s.
            let ratio = |j: usize| {
                let (b50, _, brate, _, _) = stats[j];
                let p = if b50 > 0.0 { p50 / b50 } else { 0.0 };
                let t = if brate > 0.0 { rate / brate } else { 0.0 };
                format!("{p:.2} | {t:.2}")
            };
            println!(
                "| {kind} | {} | {p50:.2} ms | {p99:.2} ms | {rate:.0} | {} | {} | {cpu_self:.3} | {cpu_pg:.3} |",
                side.name,
                ratio(1),
                ratio(0)
            );
        }
    }
    let after = store.audit_entries(0, u32::MAX).await?.len();
    // The check that the sides differ in what they should: one entry per request to the real
    // application, none from the routes without the audit middleware.
    let audited_sides = sides.iter().filter(|s| s.audited).count();
    let expected = 2 * audited_sides * args.rounds * targets.len();
    eprintln!(
        "audit entries written during the run: {} (expected {expected})",
        after - before
    );
    if after - before != expected {
        bail!(
            "the audited sides wrote {} entries, not {expected}",
            after - before
        );
    }
    if let Some(db) = database {
        db.drop_database().await;
    }
    Ok(())
}

/// Linux's clock ticks per second for `/proc` CPU times (`USER_HZ`, 100 on every
/// architecture Linux exposes to user space).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU time used so far, in clock ticks (user + system): by this process (the server and the
/// clients) and by every PostgreSQL process on the machine (its server processes are where a
/// statement's work is done). Zero where `/proc` cannot say.
fn cpu_ticks() -> (u64, u64) {
    fn ticks(stat: &str) -> u64 {
        // Fields after the parenthesised command: state is the 3rd, utime the 14th, stime the 15th.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            return 0;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        n(11) + n(12)
    }
    let own = std::fs::read_to_string("/proc/self/stat")
        .map(|s| ticks(&s))
        .unwrap_or(0);
    let mut pg = 0;
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let path = e.path();
            if std::fs::read_to_string(path.join("comm")).is_ok_and(|c| c.trim() == "postgres") {
                pg += std::fs::read_to_string(path.join("stat"))
                    .map(|s| ticks(&s))
                    .unwrap_or(0);
            }
        }
    }
    (own, pg)
}

/// Who sends the requests, and to which server.
struct Side {
    name: &'static str,
    addr: std::net::SocketAddr,
    token: String,
    audited: bool,
}

/// A registered nurse at the bench's care home, signed in over HTTP (password and TOTP); her
/// bearer token.
async fn sign_in_nurse(
    identity: &Identity,
    http: &reqwest::Client,
    addr: std::net::SocketAddr,
) -> anyhow::Result<String> {
    const PASSWORD: &str = "bench-nurse-password-0001";
    let created = identity
        .create_user(NewUser {
            username: "bench-nurse".into(),
            display_name: "Bench Nurse".into(),
            password: Some(PASSWORD.into()),
            grants: vec![(Role::RegisteredNurse, HOME.to_owned())],
            training_valid_until: None,
        })
        .await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let code = totp::code_at(&created.totp_secret, now)?;
    let resp = http
        .post(format!("http://{addr}/auth/login"))
        .json(&json!({"username": "bench-nurse", "password": PASSWORD, "totp": code}))
        .send()
        .await?;
    let status = resp.status();
    let body: serde_json::Value = resp.json().await?;
    if !status.is_success() {
        bail!("the nurse could not sign in: {status} {body}");
    }
    Ok(body["access_token"]
        .as_str()
        .context("no access token for the nurse")?
        .to_owned())
}

/// One side's share of a round: every target once, from `concurrency` clients. The latencies
/// (ms) and the round's wall-clock seconds. A request that is not answered 200 with what was
/// asked for (the nurse must see every resident) stops the run.
async fn one_side(
    http: &reqwest::Client,
    side: &Side,
    kind: &'static str,
    targets: &[String],
    concurrency: usize,
) -> anyhow::Result<(Vec<f64>, f64)> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for k in 0..concurrency {
        let mine: Vec<String> = targets
            .iter()
            .skip(k)
            .step_by(concurrency)
            .cloned()
            .collect();
        let (http, token, addr) = (http.clone(), side.token.clone(), side.addr);
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
                let body = r.bytes().await?;
                lat.push(t.elapsed().as_secs_f64() * 1_000.0);
                if !status.is_success() {
                    bail!("{path}: {status}");
                }
                // A search that silently returned nothing would be cheaper, not comparable.
                const MATCH: &[u8] = br#""resourceType":"Observation""#;
                if kind == "search" && !body.windows(MATCH.len()).any(|w| w == MATCH) {
                    bail!("{path}: no Observation in the answer");
                }
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await??);
    }
    Ok((lat, started.elapsed().as_secs_f64()))
}
