//! The carerecord program: configuration and wiring. `main.rs` only parses the command line.
#![forbid(unsafe_code)]

pub mod accounts;
pub mod audit_key;
pub mod cli;
pub mod config;
pub mod generate;
pub mod ingest;
pub mod load;

use std::sync::Arc;

use anyhow::Context;
use carerecord_identity::{Identity, IdentitySettings};
use carerecord_server::{AppState, ServerSettings};
use carerecord_store::audit::{Hash, VerifyReport, parse_hash, verify_trail_anchored};
use carerecord_store::{AuditKey, ResourceStore, Tamper};
use carerecord_store_postgres::PostgresStore;
use carerecord_store_sqlite::SqliteStore;

use crate::config::{Config, redact_url};

/// Opens the configured store, applying its migrations, with the audit key from
/// `audit.key_file` (created with a random key when missing).
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn ResourceStore>> {
    let key = audit_key::load_or_create(&config.audit_key_file())?;
    open_store_with_key(config, key).await
}

/// Opens the configured store with `key` for its audit chain.
pub async fn open_store_with_key(
    config: &Config,
    key: AuditKey,
) -> anyhow::Result<Arc<dyn ResourceStore>> {
    match config.database_url.as_deref() {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            let store = PostgresStore::connect(url)
                .await
                .with_context(|| format!("cannot open PostgreSQL at {}", redact_url(url)))?;
            Ok(Arc::new(store.with_audit_key(key)))
        }
        Some(url) => {
            let store = SqliteStore::open_url(url)
                .await
                .with_context(|| format!("cannot open SQLite at {url}"))?;
            Ok(Arc::new(store.with_audit_key(key)))
        }
        None => {
            std::fs::create_dir_all(&config.data_dir).with_context(|| {
                format!(
                    "cannot create the data directory {}",
                    config.data_dir.display()
                )
            })?;
            let path = config.data_dir.join("carerecord.db");
            let store = SqliteStore::open(&path)
                .await
                .with_context(|| format!("cannot open SQLite at {}", path.display()))?;
            Ok(Arc::new(store.with_audit_key(key)))
        }
    }
}

/// Installs the configured code lists as the process's classifier. Call once, before any
/// resource is written; a second call with other lists is an error, not a silent no-op.
pub fn install_code_lists(config: &Config) -> anyhow::Result<()> {
    let lists = config.policy.code_lists()?;
    if !carerecord_access::Classifier::install(&lists)
        && carerecord_access::Classifier::current() != &carerecord_access::Classifier::new(&lists)
    {
        anyhow::bail!("the classifier's code lists were already installed with other codes");
    }
    Ok(())
}

/// The sign-in and token policy from the configuration.
pub fn identity_settings(config: &Config) -> IdentitySettings {
    let minutes = |m: u64| std::time::Duration::from_secs(m.saturating_mul(60));
    IdentitySettings {
        max_failed_sign_ins: config.lockout_failures,
        lockout: minutes(config.lockout_minutes),
        session_lifetime: minutes(config.session_hours.saturating_mul(60)),
        session_idle: minutes(config.session_idle_minutes),
        system_token_lifetime: minutes(config.system_token_minutes),
        jwks: carerecord_identity::jwks::JwksSettings {
            allow_loopback_http: config.jwks_allow_loopback_http,
            ..carerecord_identity::jwks::JwksSettings::default()
        },
        ..IdentitySettings::default()
    }
}

/// The identity service, with the HTTP client that fetches registered JWKS URLs.
pub fn identity(config: &Config, store: Arc<dyn ResourceStore>) -> Arc<Identity> {
    let identity = Arc::new(Identity::new(store, identity_settings(config)));
    match carerecord_server::jwks::HttpJwksFetcher::new() {
        Ok(f) => {
            identity.set_jwks_fetcher(Arc::new(f));
        }
        // Clients with a JWKS URL are then refused as if their keys were unreachable.
        Err(e) => tracing::error!(error = %e, "JWKS URLs cannot be fetched"),
    }
    identity
}

pub fn app_state(config: &Config, store: Arc<dyn ResourceStore>) -> AppState {
    AppState {
        identity: identity(config, store.clone()),
        transactions: carerecord_server::fhir::bundle::SharedTransactions::for_store(&store),
        store,
        settings: Arc::new(ServerSettings {
            public_base_url: config.public_base_url.clone(),
            max_body_bytes: config.max_body_bytes,
            default_page_size: config.default_page_size,
            max_page_size: config.max_page_size,
            policy: config.policy.settings(),
        }),
        people: Some(Arc::new(carerecord_ingest::submission::SubmittedPeople)),
    }
}

/// Gives the identity service the key SMART access and id tokens are signed with: the
/// configured `[smart] signing_key_file` (a managed key, never written here), or else
/// `<data_dir>/smart-signing-key.pem` (EC P-256, PKCS#8), made on first start, readable by
/// its owner only. Servers that share a database must share the key too, or tokens one
/// issues will not verify at another's `/auth/jwks`.
pub fn install_signing_key(config: &Config, state: &AppState) -> anyhow::Result<()> {
    if let Some(key) = config.smart.signing_key()? {
        state.identity.set_signing_key(key);
        return Ok(());
    }
    let path = config.data_dir.join("smart-signing-key.pem");
    if !path.exists() {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
        let (_, pem) = carerecord_identity::SigningKey::generate()?;
        let mut opts = std::fs::OpenOptions::new();
        // `create_new`: two processes starting together must not each write a different key.
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        match opts.open(&path) {
            Ok(mut f) => std::io::Write::write_all(&mut f, pem.as_bytes())
                .and_then(|()| f.sync_all())
                .with_context(|| format!("cannot write {}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("cannot create {}", path.display())),
        }
    }
    let pem = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read the SMART signing key {}", path.display()))?;
    let key = carerecord_identity::SigningKey::from_pem(&pem)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    state.identity.set_signing_key(key);
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

/// Serves Prometheus metrics on their own listener.
pub async fn serve_metrics(listener: tokio::net::TcpListener) -> anyhow::Result<()> {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let h = handle.clone();
            async move { h.render() }
        }),
    );
    axum::serve(listener, app).await.context("metrics server")?;
    Ok(())
}

/// What the binary merges beside the server's own routes: the care home portal, and the
/// identity review queue's decisions (`/admin/match-reviews`), which are the ingest's (the
/// server does not depend on either).
fn extra_routes(store: &Arc<dyn ResourceStore>) -> axum::Router<carerecord_server::AppState> {
    let decisions = Arc::new(carerecord_ingest::review::Decisions::new(store.clone()));
    carerecord_portal::router().merge(carerecord_server::admin::match_reviews::router(decisions))
}

/// `carerecord serve`.
pub async fn serve(config: Config, mllp: Option<ingest::Mllp>) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    if let Some(m) = &mllp {
        ingest::start_mllp(store.clone(), m).await?;
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    if let Some(addr) = config.metrics_listen {
        let ml = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen for metrics on {addr}"))?;
        tracing::info!(%addr, "metrics at /metrics");
        tokio::spawn(async move {
            if let Err(e) = serve_metrics(ml).await {
                tracing::error!(error = %e, "metrics server stopped");
            }
        });
    }
    let addr = listener.local_addr()?;
    tracing::info!(%addr, backend = store.backend(), "carerecord listening; FHIR base http://{addr}/fhir");
    let extra = extra_routes(&store);
    let state = app_state(&config, store);
    install_signing_key(&config, &state)?;
    carerecord_server::serve_with(state, extra, listener, shutdown_signal()).await?;
    Ok(())
}

/// `carerecord audit verify` found the trail tampered with (main exits with
/// [`AUDIT_TAMPERED_EXIT`]).
#[derive(Debug, thiserror::Error)]
#[error("the audit trail was tampered with: entry {} was {}", .0.seq, .0.kind)]
pub struct AuditTampered(pub Tamper);

/// The exit code of `carerecord audit verify` when the trail was tampered with.
pub const AUDIT_TAMPERED_EXIT: u8 = 3;

/// Parses an anchor `SEQ:HASH` as `audit verify` prints the head.
pub fn parse_anchor(s: &str) -> anyhow::Result<(i64, Hash)> {
    s.split_once(':')
        .and_then(|(seq, hash)| Some((seq.trim().parse().ok()?, parse_hash(hash.trim())?)))
        .filter(|(seq, _)| *seq > 0)
        .ok_or_else(|| {
            anyhow::anyhow!("--anchor must be SEQ:HASH (a sequence number and 64 hex characters)")
        })
}

/// `carerecord audit verify`: reads the whole trail with the configured key (which must
/// exist: verifying never creates one), and checks it against `anchor` if given.
pub async fn audit_verify(
    config: &Config,
    anchor: Option<(i64, Hash)>,
) -> anyhow::Result<VerifyReport> {
    let key = audit_key::load(&config.audit_key_file())?;
    let store = open_store_with_key(config, key.clone()).await?;
    let report = verify_trail_anchored(store.as_ref(), &key, anchor)
        .await
        .context("cannot read the audit trail")?;
    Ok(report)
}

/// A progress bar on a terminal; a line every few seconds otherwise (CI logs, pipes).
pub struct Bar {
    bar: indicatif::ProgressBar,
    last_line: std::time::Instant,
    started: std::time::Instant,
    total: u64,
}

impl Bar {
    pub fn new(total: u64, what: &str) -> Bar {
        let bar = indicatif::ProgressBar::new(total);
        let style = indicatif::ProgressStyle::with_template(&format!(
            "{{bar:40}} {{pos}}/{{len}} {what} · {{msg}} · ETA {{eta}}"
        ))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        bar.set_style(style);
        Bar {
            bar,
            last_line: std::time::Instant::now(),
            started: std::time::Instant::now(),
            total,
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl load::Progress for Bar {
    fn advance(&mut self, items: u64, accepted: u64) {
        let rate = accepted as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
        self.bar.set_position(items);
        self.bar
            .set_message(format!("{accepted} resources, {rate:.0}/s"));
        if self.bar.is_hidden() && self.last_line.elapsed().as_secs() >= 5 {
            self.last_line = std::time::Instant::now();
            eprintln!(
                "{items}/{} items, {accepted} resources, {rate:.0} resources/s",
                self.total
            );
        }
    }
}

/// `carerecord import`.
/// `carerecord import`: each file is audited as one entry by `operator` (`--operator`, else
/// the OS user; see [`load::operator`]).
pub async fn import(
    config: &Config,
    paths: &[std::path::PathBuf],
    operator: Option<&str>,
) -> anyhow::Result<load::Report> {
    let files = load::files(paths)?;
    if files.is_empty() {
        anyhow::bail!("no .json or .ndjson files in the paths given");
    }
    let total = load::count_items(&files)?;
    let store = open_store(config).await?;
    let state = app_state(config, store);
    let mut bar = Bar::new(total, "items");
    let report = load::import_files(&state, &files, &load::operator(operator), &mut bar).await?;
    bar.finish();
    Ok(report)
}

/// The generator's "today" for a demo started on `today`.
pub fn demo_as_of(today: time::Date) -> carerecord_synth::AsOf {
    carerecord_synth::AsOf::new(today.year(), u8::from(today.month()), today.day())
        .unwrap_or_default()
}

/// `carerecord demo`: a fresh store (a temporary directory unless `--data-dir` names one),
/// preloaded with the default synthetic London, then served.
pub async fn demo(
    mut config: Config,
    data_dir_given: bool,
    accounts_file: Option<std::path::PathBuf>,
    mllp: Option<ingest::Mllp>,
) -> anyhow::Result<()> {
    let temp = tempfile::tempdir().context("cannot create a temporary directory")?;
    if !data_dir_given {
        config.data_dir = temp.path().to_owned();
    }
    config.database_url = None;
    let existing = config.data_dir.join("carerecord.db").exists();
    let store = open_store(&config).await?;
    let state = app_state(&config, store.clone());
    install_signing_key(&config, &state)?;
    // The synthetic timeline ends today, so that the demo has recent events (discharges, new
    // results, changed care plans) whenever it is run; the generator itself never reads the
    // clock and stays deterministic for a given date.
    let opts = carerecord_synth::Options {
        as_of: demo_as_of(time::OffsetDateTime::now_utc().date()),
        ..carerecord_synth::Options::default()
    };
    let london = carerecord_synth::London::new(&opts);
    if existing {
        eprintln!(
            "using the demo data already in {}",
            config.data_dir.display()
        );
    } else {
        eprintln!(
            "loading a synthetic London: {} people, {} care homes…",
            london.people(),
            opts.care_homes
        );
        let items = std::iter::once(generate::organisations_bundle(&london))
            .chain((0..london.people()).map(|i| london.person_bundle(i)));
        let mut bar = Bar::new(u64::from(london.people()) + 1, "bundles");
        let report =
            load::import_values(&state, items, &load::operator(Some("demo")), &mut bar).await?;
        bar.finish();
        eprintln!(
            "loaded {} resources in {:.1} s ({:.0}/s){}",
            report.accepted,
            report.elapsed.as_secs_f64(),
            report.rate(),
            if report.rejected.is_empty() {
                String::new()
            } else {
                format!("; {} refused", report.rejected.len())
            }
        );
    }
    let orgs = accounts::demo_orgs(&london);
    let accounts = if existing {
        None
    } else {
        Some(accounts::demo_accounts(store.clone(), &orgs).await?)
    };
    let launch = accounts::demo_launch(
        store.clone(),
        &london,
        &orgs.care_home,
        &config.data_dir,
        !existing,
    )
    .await?;
    if let (Some(path), Some((users, client))) = (&accounts_file, &accounts) {
        accounts::write_demo_accounts(path, users, client, launch.as_ref())?;
    }
    let feeds = ingest::demo_systems(store.as_ref(), &london).await?;
    let mllp_addr = match &mllp {
        Some(m) => Some(ingest::start_mllp(store.clone(), m).await?),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    println!(
        "\ncarerecord demo is ready: the care home portal at http://{addr}/ and the FHIR API at http://{addr}/fhir\n"
    );
    if let Some(a) = mllp_addr {
        println!(
            "HL7 v2 over MLLP at {a} from the registered feeds (MSH-3^MSH-4): {}\n",
            feeds.join(", ")
        );
    }
    match &accounts {
        Some((users, client)) => {
            println!(
                "Demo users (sign in at POST http://{addr}/auth/login; every role but the programme administrator also needs the TOTP code):"
            );
            for u in users {
                println!(
                    "  {:<10} {:<24} at {:<14} password {}  TOTP secret {}{}",
                    u.user.username,
                    u.role.display(),
                    u.organisation,
                    u.user.password,
                    u.user.totp_secret,
                    if u.note.is_empty() {
                        String::new()
                    } else {
                        format!("  ({})", u.note)
                    }
                );
            }
            println!(
                "\nSign in at http://{addr}/ as the nurse or a carer: My residents shows a resident in hospital now and one just back with a new discharge summary (every home has both)."
            );
            let secret = client.secret.as_deref().unwrap_or_default();
            println!(
                "\nA service client (sees everything): {} / {secret}",
                client.client_id
            );
            println!("\nGet a token and try:");
            println!(
                "  TOKEN=$(curl -s -u {}:{secret} -d grant_type=client_credentials http://{addr}/auth/token | sed 's/.*\"access_token\":\"\\([^\"]*\\)\".*/\\1/')",
                client.client_id
            );
        }
        None => println!(
            "The demo users and the demo-service client were printed when this data directory was made.\nGet a token (see docs/integrators/authentication.md) and try:"
        ),
    }
    println!("  curl http://{addr}/fhir/metadata");
    println!(
        "  curl -H \"Authorization: Bearer $TOKEN\" 'http://{addr}/fhir/Organization?_count=5'"
    );
    println!(
        "  curl -H \"Authorization: Bearer $TOKEN\" 'http://{addr}/fhir/Patient?_count=5&_sort=family'"
    );
    println!(
        "  curl -H \"Authorization: Bearer $TOKEN\" 'http://{addr}/fhir/Patient/pat-000010/$everything'"
    );
    println!(
        "  curl -H \"Authorization: Bearer $TOKEN\" 'http://{addr}/fhir/Composition?subject=Patient/pat-000010'"
    );
    if let Some(l) = &launch {
        let today = time::OffsetDateTime::now_utc().date();
        println!(
            "\nA care home record system ({}, signed context launch: docs/integrating.md) may open records at Organization/{} ({}); its private key is {}. Make a launch page and open it in a browser:",
            l.client_id,
            orgs.care_home,
            l.ods,
            l.key_file.display()
        );
        println!(
            "  carerecord launch-token --html --key {} --client-id {} --aud http://{addr}/launch --user-id staff-1 --name 'Demo Launched Carer' --role care-worker --ods {} --nhs-number {} --birth-date {} --training-completed {today} > launch.html",
            l.key_file.display(),
            l.client_id,
            l.ods,
            l.nhs_number,
            l.birth_date
        );
    }
    println!("\nThe awkward cases:");
    for (what, id) in london.awkward_cases() {
        println!("  Patient/{id}: {what}");
    }
    println!("\nStop with Ctrl-C.");
    let extra = extra_routes(&state.store);
    carerecord_server::serve_with(state, extra, listener, shutdown_signal()).await?;
    drop(temp);
    Ok(())
}
