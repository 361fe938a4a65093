//! `carerecord-load`: imports a synthetic London (`carerecord-synth`, planned for the largest of
//! `--sizes` people) into a real carerecord server (in-process, on 127.0.0.1:0) over HTTP: first
//! its organisations, then its people, growing the store through each of `--sizes`, and after
//! each step measures read, patient-scoped search and `$everything` latency. Prints a markdown
//! table.
//!
//! ```sh
//! cargo build --release -p carerecord-bench
//! target/release/carerecord-load --backend sqlite --sizes 1000,4000,16000
//! target/release/carerecord-load --backend postgres --sizes 1000,4000,16000
//! ```
//!
//! Everything is bounded: `sizes` patients are imported, `samples` requests are made per
//! measurement, every request has a timeout, and the server is shut down at the end (a fresh
//! PostgreSQL test database is dropped).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use carerecord_access::Role;
use carerecord_bench::data::{self, Person};
use carerecord_bench::inprocess::{Write, import_bundle};
use carerecord_bench::stats::{Percentiles, ms};
use carerecord_identity::{Identity, IdentitySettings, NewClient};
use carerecord_server::{AppState, ServerSettings};
use carerecord_store::{AuditKey, ResourceStore};
use carerecord_store_postgres::{PostgresStore, test_support};
use carerecord_store_sqlite::SqliteStore;
use carerecord_synth::London;
use clap::{Parser, ValueEnum};
use tokio::sync::Mutex;

// The allocator the `carerecord` binary ships with (its default `mimalloc` feature), so the
// figures are the binary's and not glibc's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ImportVia {
    /// POST transaction Bundles (of PUTs) to the server (the measurement the targets are about).
    Http,
    /// Write the same Bundles straight through the store API in this process (no HTTP, no
    /// Bundle parsing): shows how much of import time is the store's.
    Store,
}

/// Load-tests carerecord over HTTP with a synthetic London's people and care-home residents.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[arg(long, value_enum, default_value = "sqlite")]
    backend: Backend,
    /// PostgreSQL URL; default: a fresh test database (CARERECORD_TEST_POSTGRES_URL's server),
    /// dropped at the end.
    #[arg(long)]
    database_url: Option<String>,
    /// Directory for the SQLite file; default: a temporary directory, removed at the end.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Cumulative store sizes, in patients, to measure at.
    #[arg(long, value_delimiter = ',', default_value = "1000,4000,16000,64000")]
    sizes: Vec<u64>,
    /// Concurrent client tasks (import and latency phases).
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Requests per latency measurement.
    #[arg(long, default_value_t = 2000)]
    samples: usize,
    /// Data set seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// How to import.
    #[arg(long, value_enum, default_value = "http")]
    import_via: ImportVia,
    /// Requests before each latency measurement that are not counted (connection set-up).
    #[arg(long, default_value_t = 50)]
    warmup: usize,
    /// A latency measurement stops after this many seconds even if fewer than `samples`
    /// requests were made (the tables say how many were).
    #[arg(long, default_value_t = 120)]
    phase_seconds: u64,
    /// An import step stops after this many seconds; later sizes are then skipped.
    #[arg(long, default_value_t = 1800)]
    import_seconds: u64,
}

const PREFER_MINIMAL: &str = "return=minimal";

struct Step {
    patients: u64,
    resources: u64,
    import_secs: f64,
    step_resources: u64,
    read: Percentiles,
    search: Percentiles,
    everything: Percentiles,
    db_bytes: Option<u64>,
}

struct Shared {
    base: String,
    client: reqwest::Client,
    store: Arc<dyn ResourceStore>,
    /// The data set, planned for the largest size.
    london: London,
    /// Imported people by index: Patient id and LOINC codes.
    patients: Mutex<Vec<Option<Person>>>,
}

/// A small deterministic PRNG (SplitMix64) for choosing patients and codes.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`0` when `n == 0`).
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        (self.next_u64() % n as u64) as usize
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.sizes.is_empty() || args.concurrency == 0 {
        bail!("--sizes and --concurrency must be non-empty and positive");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(args))
}

async fn open_store(
    args: &Args,
) -> anyhow::Result<(
    Arc<dyn ResourceStore>,
    Option<test_support::TestDatabase>,
    Option<tempfile::TempDir>,
    Option<PathBuf>,
)> {
    match args.backend {
        Backend::Sqlite => {
            let (dir, root) = match &args.data_dir {
                Some(d) => {
                    std::fs::create_dir_all(d)?;
                    (None, d.clone())
                }
                None => {
                    let t = tempfile::tempdir()?;
                    let p = t.path().to_owned();
                    (Some(t), p)
                }
            };
            let file = root.join("carerecord-load.db");
            let store = SqliteStore::open(&file).await?.with_audit_key(audit_key()?);
            Ok((Arc::new(store), None, dir, Some(file)))
        }
        Backend::Postgres => match &args.database_url {
            Some(url) => Ok((
                Arc::new(
                    PostgresStore::connect(url)
                        .await?
                        .with_audit_key(audit_key()?),
                ),
                None,
                None,
                None,
            )),
            None => {
                let pool = u32::try_from(args.concurrency * 2).unwrap_or(8).max(8);
                match test_support::fresh(pool)
                    .await
                    .map_err(anyhow::Error::msg)?
                {
                    test_support::Fresh::Ready(store, db) => {
                        eprintln!("using fresh test database {}", db.name);
                        Ok((
                            Arc::new(store.with_audit_key(audit_key()?)),
                            Some(db),
                            None,
                            None,
                        ))
                    }
                    test_support::Fresh::Unreachable(e) => {
                        bail!("PostgreSQL is unreachable: {e}")
                    }
                }
            }
        },
    }
}

/// Every request is audited, as in the binary (token grants, reads, searches and writes
/// alike), so the store needs a key to chain the trail with.
fn audit_key() -> anyhow::Result<AuditKey> {
    AuditKey::new(b"carerecord-load-benchmark-key-32").context("audit key")
}

fn file_bytes(f: &Path) -> Option<u64> {
    let mut total = 0;
    for suffix in ["", "-wal", "-shm"] {
        let mut p = f.to_path_buf().into_os_string();
        p.push(suffix);
        total += std::fs::metadata(PathBuf::from(p)).map_or(0, |m| m.len());
    }
    Some(total)
}

/// Registers a `service` client and gets a bearer token for it at the token endpoint, as any
/// loader does: the measured requests pay the same authentication as real ones.
async fn service_token(identity: &Identity, addr: std::net::SocketAddr) -> anyhow::Result<String> {
    let client = identity
        .create_client(NewClient {
            client_id: "carerecord-load".into(),
            role: Role::Service,
            organisation_id: "programme".into(),
            secret: true,
            public_key: None,
        })
        .await
        .context("register the load client")?;
    let resp = reqwest::Client::new()
        .post(format!("http://{addr}/auth/token"))
        .basic_auth("carerecord-load", client.secret.as_deref())
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await?;
    anyhow::ensure!(
        resp.status().is_success(),
        "token endpoint: {}",
        resp.status()
    );
    let body: serde_json::Value = resp.json().await?;
    body["access_token"]
        .as_str()
        .map(str::to_owned)
        .context("no access_token in the token response")
}

async fn run(args: Args) -> anyhow::Result<()> {
    let (store, database, dir, db_file) = open_store(&args).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let identity = Arc::new(Identity::new(store.clone(), IdentitySettings::default()));
    let state = AppState {
        store: store.clone(),
        settings: Arc::new(ServerSettings::default()),
        identity: identity.clone(),
        people: None,
        transactions: carerecord_server::fhir::bundle::SharedTransactions::for_store(&store),
    };
    let server = tokio::spawn(async move {
        carerecord_server::serve(state, listener, async {
            let _ = stopped.await;
        })
        .await
    });
    let token = service_token(&identity, addr).await?;
    let mut auth = reqwest::header::HeaderMap::new();
    auth.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse()?,
    );
    let client = reqwest::Client::builder()
        .default_headers(auth)
        .timeout(Duration::from_secs(120))
        .pool_max_idle_per_host(args.concurrency * 2)
        .build()?;
    let max = args.sizes.iter().copied().max().unwrap_or(0);
    let plan_start = Instant::now();
    let london = data::london(
        args.seed,
        u32::try_from(max).context("--sizes must be below 2^32")?,
    );
    eprintln!(
        "planned a London of {} people in {:.1} s",
        london.people(),
        plan_start.elapsed().as_secs_f64()
    );
    let shared = Arc::new(Shared {
        base: format!("http://{addr}/fhir"),
        client,
        store: store.clone(),
        london,
        patients: Mutex::new(vec![None; usize::try_from(max)?]),
    });

    let gen_start = Instant::now();
    let gen_n = shared.london.people().clamp(1, 200);
    let mut gen_bytes = 0usize;
    for i in 0..gen_n {
        gen_bytes += shared.london.person_bundle(i).to_string().len();
    }
    let gen_each = gen_start.elapsed().as_secs_f64() / f64::from(gen_n);
    eprintln!(
        "generating + serialising one Bundle takes {:.3} ms on this machine (mean body {} KiB); \
         it is inside the import timing",
        gen_each * 1000.0,
        gen_bytes / gen_n as usize / 1024
    );

    let result = match load_organisations(&args, &shared).await {
        Ok(()) => measure(&args, &shared, db_file.as_ref()).await,
        Err(e) => Err(e),
    };

    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(30), server).await;
    // The store's pools close when the last clone drops.
    drop(shared);
    drop(store);
    if let Some(db) = database {
        db.drop_database().await;
    }
    drop(dir);
    let steps = result?;
    print_report(&args, &steps);
    Ok(())
}

/// Loads the London's organisations (and care home Locations), which people's records
/// reference, as transaction Bundles of PUTs; not part of any measurement.
async fn load_organisations(args: &Args, shared: &Shared) -> anyhow::Result<()> {
    let t = Instant::now();
    let mut n = 0;
    for bundle in data::organisation_bundles(&shared.london) {
        n += data::resource_count(&bundle);
        match args.import_via {
            ImportVia::Http => post_bundle(shared, &bundle).await?,
            ImportVia::Store => {
                import_bundle(shared.store.as_ref(), &bundle, true, Write::Batched).await?;
            }
        }
    }
    eprintln!(
        "loaded {n} organisations and locations in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn measure(
    args: &Args,
    shared: &Arc<Shared>,
    db_file: Option<&PathBuf>,
) -> anyhow::Result<Vec<Step>> {
    let mut steps = Vec::new();
    let mut done = 0u64;
    let mut total_resources = 0u64;
    let mut sizes = args.sizes.clone();
    sizes.sort_unstable();
    sizes.dedup();
    for size in sizes {
        eprintln!(
            "importing patients {done}..{size} via {:?}",
            args.import_via
        );
        let t = Instant::now();
        let (resources, reached) = import(args, shared, done, size).await?;
        let secs = t.elapsed().as_secs_f64();
        total_resources += resources;
        let cut_short = reached < size;
        if cut_short {
            eprintln!(
                "  import stopped at {reached} patients after --import-seconds {}",
                args.import_seconds
            );
        }
        let size = reached;
        done = size;
        eprintln!(
            "  {resources} resources in {secs:.1} s = {:.0} resources/s",
            resources as f64 / secs
        );
        let people: Vec<Person> = shared
            .patients
            .lock()
            .await
            .iter()
            .take(usize::try_from(size)?)
            .flatten()
            .cloned()
            .collect();
        if people.is_empty() {
            bail!("no patients were imported");
        }
        // Searches are for people with lab results, each for one of their own LOINC codes.
        let with_labs: Vec<Person> = people
            .iter()
            .filter(|p| !p.loinc.is_empty())
            .cloned()
            .collect();
        if with_labs.is_empty() {
            bail!("no imported patient has lab results to search for");
        }
        let (people, with_labs) = (Arc::new(people), Arc::new(with_labs));
        let read = latency(args, shared, &people, Kind::Read).await?;
        let search = latency(args, shared, &with_labs, Kind::Search).await?;
        let everything = latency(args, shared, &people, Kind::Everything).await?;
        eprintln!(
            "  read p50/p99 {}/{} ms, search {}/{} ms, $everything {}/{} ms",
            ms(read.p50),
            ms(read.p99),
            ms(search.p50),
            ms(search.p99),
            ms(everything.p50),
            ms(everything.p99)
        );
        steps.push(Step {
            patients: size,
            resources: total_resources,
            import_secs: secs,
            step_resources: resources,
            read,
            search,
            everything,
            db_bytes: db_file.and_then(|f| file_bytes(f)),
        });
        if cut_short {
            break;
        }
    }
    Ok(steps)
}

/// Imports patients `from..to` from `concurrency` tasks; returns the resources written.
async fn import(
    args: &Args,
    shared: &Arc<Shared>,
    from: u64,
    to: u64,
) -> anyhow::Result<(u64, u64)> {
    let next = Arc::new(AtomicU64::new(from));
    let written = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let (next, written, failures, shared) = (
            next.clone(),
            written.clone(),
            failures.clone(),
            shared.clone(),
        );
        let via = args.import_via;
        let deadline = Instant::now() + Duration::from_secs(args.import_seconds);
        tasks.push(tokio::spawn(async move {
            loop {
                if Instant::now() >= deadline {
                    return;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= to {
                    return;
                }
                let bundle = match u32::try_from(i) {
                    Ok(i) => shared.london.person_bundle(i),
                    Err(_) => return,
                };
                let n = data::resource_count(&bundle) as u64;
                let outcome = match Person::of(&bundle) {
                    None => Err(anyhow::anyhow!("the generated Bundle has no Patient")),
                    Some(person) => match via {
                        ImportVia::Http => post_bundle(&shared, &bundle).await,
                        ImportVia::Store => {
                            import_bundle(shared.store.as_ref(), &bundle, true, Write::Batched)
                                .await
                                .map(|_| ())
                        }
                    }
                    .map(|()| person),
                };
                match outcome {
                    Ok(person) => {
                        written.fetch_add(n, Ordering::Relaxed);
                        if let Ok(slot) = usize::try_from(i) {
                            let mut p = shared.patients.lock().await;
                            if let Some(s) = p.get_mut(slot) {
                                *s = Some(person);
                            }
                        }
                    }
                    Err(e) => {
                        if failures.fetch_add(1, Ordering::Relaxed) < 5 {
                            eprintln!("  patient {i} failed: {e:#}");
                        }
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let f = failures.load(Ordering::Relaxed);
    if f > 0 {
        eprintln!("  {f} Bundles failed");
        if f as u64 * 100 > to - from {
            bail!("more than 1% of Bundles failed to import");
        }
    }
    // Patients handed out (imported or failed): less than `to` when the deadline struck.
    let reached = next.load(Ordering::Relaxed).min(to);
    Ok((written.load(Ordering::Relaxed), reached))
}

/// POSTs one transaction Bundle, retrying a busy store (503) a few times, and checks that the
/// response has an entry for each of the Bundle's.
async fn post_bundle(shared: &Shared, bundle: &serde_json::Value) -> anyhow::Result<()> {
    let body = bundle.to_string();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let resp = shared
            .client
            .post(&shared.base)
            .header("content-type", "application/fhir+json")
            .header("prefer", PREFER_MINIMAL)
            .body(body.clone())
            .send()
            .await?;
        let status = resp.status();
        let text = resp.text().await?;
        if status.as_u16() == 503 && attempt < 5 {
            tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
            continue;
        }
        if !status.is_success() {
            bail!(
                "HTTP {status}: {}",
                text.chars().take(400).collect::<String>()
            );
        }
        let v: serde_json::Value = serde_json::from_str(&text)?;
        let (sent, got) = (data::resource_count(bundle), data::resource_count(&v));
        if sent != got {
            bail!("{sent} entries sent, {got} in the transaction-response");
        }
        return Ok(());
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Read,
    Search,
    Everything,
}

fn url(base: &str, kind: Kind, person: &Person, rng: &mut Rng) -> String {
    let id = &person.patient_id;
    match kind {
        Kind::Read => format!("{base}/Patient/{id}"),
        Kind::Search => format!(
            "{base}/Observation?subject=Patient/{id}&code=http://loinc.org%7C{}&_sort=-date&_count=20",
            person
                .loinc
                .get(rng.below(person.loinc.len()))
                .map_or("2951-2", String::as_str)
        ),
        Kind::Everything => format!("{base}/Patient/{id}/$everything?_count=50"),
    }
}

/// `samples` requests of `kind` for random people of `ids` from `concurrency` tasks.
async fn latency(
    args: &Args,
    shared: &Arc<Shared>,
    ids: &Arc<Vec<Person>>,
    kind: Kind,
) -> anyhow::Result<Percentiles> {
    let warm = Arc::new(AtomicUsize::new(0));
    let remaining = Arc::new(AtomicUsize::new(0));
    let empty = Arc::new(AtomicUsize::new(0));
    let samples = Arc::new(Mutex::new(Vec::with_capacity(args.samples)));
    warm.store(args.warmup, Ordering::Relaxed);
    remaining.store(args.samples, Ordering::Relaxed);
    let mut tasks = Vec::new();
    for t in 0..args.concurrency {
        let (warm, remaining, empty, samples, shared, ids) = (
            warm.clone(),
            remaining.clone(),
            empty.clone(),
            samples.clone(),
            shared.clone(),
            ids.clone(),
        );
        let mut rng = Rng::new(args.seed ^ (t as u64 + 1).wrapping_mul(0x5851_F42D_4C95_7F2D));
        let deadline = Instant::now() + Duration::from_secs(args.phase_seconds);
        let start_all = Instant::now();
        let warm_for = Duration::from_secs(args.phase_seconds) / 10;
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                if Instant::now() >= deadline {
                    break;
                }
                // Warm-up stops after a tenth of the phase, so slow requests leave time to measure.
                if start_all.elapsed() >= warm_for {
                    warm.store(0, Ordering::Relaxed);
                }
                let counted = if warm
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |w| w.checked_sub(1))
                    .is_ok()
                {
                    false
                } else if remaining
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |w| w.checked_sub(1))
                    .is_ok()
                {
                    true
                } else {
                    break;
                };
                let Some(person) = ids.get(rng.below(ids.len())) else {
                    break;
                };
                let u = url(&shared.base, kind, person, &mut rng);
                let start = Instant::now();
                let resp = shared.client.get(&u).send().await?;
                let status = resp.status();
                let bytes = resp.bytes().await?;
                let took = start.elapsed();
                if !status.is_success() {
                    bail!(
                        "GET {u}: HTTP {status}: {}",
                        String::from_utf8_lossy(&bytes)
                            .chars()
                            .take(300)
                            .collect::<String>()
                    );
                }
                if matches!(kind, Kind::Search | Kind::Everything)
                    && !bytes.windows(8).any(|w| w == b"\"entry\":")
                {
                    empty.fetch_add(1, Ordering::Relaxed);
                }
                if counted {
                    mine.push(took);
                }
            }
            samples.lock().await.extend(mine);
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let e = empty.load(Ordering::Relaxed);
    if e > 0 {
        eprintln!("  warning: {e} {kind:?} responses had no entries");
    }
    let all = std::mem::take(&mut *samples.lock().await);
    Ok(Percentiles::of(all))
}

fn print_report(args: &Args, steps: &[Step]) {
    let backend = match args.backend {
        Backend::Sqlite => "SQLite",
        Backend::Postgres => "PostgreSQL",
    };
    println!(
        "\n### {backend} — import via {:?}, concurrency {}, {} samples per latency, seed {}\n",
        args.import_via, args.concurrency, args.samples, args.seed
    );
    println!(
        "| patients | resources | import res/s (step) | read p50 / p99 ms | search p50 / p99 ms | $everything p50 / p99 ms |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    for s in steps {
        println!(
            "| {} | {} | {:.0} | {} / {} | {} / {} | {} / {} |",
            s.patients,
            s.resources,
            s.step_resources as f64 / s.import_secs,
            ms(s.read.p50),
            ms(s.read.p99),
            ms(s.search.p50),
            ms(s.search.p99),
            ms(s.everything.p50),
            ms(s.everything.p99),
        );
    }
    println!("\np95 and max (ms):\n");
    println!(
        "| patients | read p95 / max (n) | search p95 / max (n) | $everything p95 / max (n) | import s (step) | db size MiB |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    for s in steps {
        println!(
            "| {} | {} / {} ({}) | {} / {} ({}) | {} / {} ({}) | {:.1} | {} |",
            s.patients,
            ms(s.read.p95),
            ms(s.read.max),
            s.read.count,
            ms(s.search.p95),
            ms(s.search.max),
            s.search.count,
            ms(s.everything.p95),
            ms(s.everything.max),
            s.everything.count,
            s.import_secs,
            s.db_bytes.map_or_else(
                || "—".to_owned(),
                |b| format!("{:.0}", b as f64 / 1048576.0)
            ),
        );
    }
    if let (Some(first), Some(last)) = (steps.first(), steps.last())
        && steps.len() > 1
    {
        let ratio =
            |a: &Percentiles, b: &Percentiles| b.p99.as_secs_f64() / a.p99.as_secs_f64().max(1e-9);
        println!(
            "\np99 growth {} → {} patients: read {:.2}×, search {:.2}×, $everything {:.2}×",
            first.patients,
            last.patients,
            ratio(&first.read, &last.read),
            ratio(&first.search, &last.search),
            ratio(&first.everything, &last.everything),
        );
    }
}
