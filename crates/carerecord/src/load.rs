//! Loading FHIR data: `carerecord import` (files of Bundles or resources) and the demo's
//! preload. Everything goes through the same Bundle processing as `POST /fhir`, so a file
//! and the API accept and refuse exactly the same things.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use carerecord_server::AppState;
use carerecord_server::error::ApiError;
use carerecord_server::fhir::bundle::{
    BundleOptions, PreparedBundle, Unisolated, prepare, process_prepared, process_unisolated,
    process_within,
};
use carerecord_server::fhir::{Handling, PreferReturn};
use carerecord_store::{
    AuditAction, AuditAgent, AuditOutcome, AuditRecord, Channel, PrincipalKind, ResourceStore,
    StoreTx, now_micros,
};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// Plain resources (not in a Bundle) are written this many to a transaction.
const RESOURCES_PER_TRANSACTION: usize = 200;

/// Transaction Bundles share one store transaction until it holds this many resources or has
/// been open this long; then it commits (see [`Group`] for how a refused Bundle is kept out). Commits — an fsync
/// each, and on SQLite every page touched written to the log again — are the largest cost of a
/// small transaction; an interrupted import loses only what was not yet committed, and none
/// of it was reported as accepted.
const GROUP_RESOURCES: u64 = 5_000;
const GROUP_TIME: Duration = Duration::from_secs(1);

/// One refused item, located in its file.
#[derive(Debug, Clone)]
pub struct Rejection {
    pub file: String,
    pub line: usize,
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct Report {
    pub files: usize,
    pub bundles: u64,
    pub accepted: u64,
    pub rejected: Vec<Rejection>,
    pub elapsed: Duration,
}

impl Report {
    pub fn rate(&self) -> f64 {
        self.accepted as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Receives progress: items done so far and resources accepted so far.
pub trait Progress {
    fn advance(&mut self, items: u64, accepted: u64);
}

impl Progress for () {
    fn advance(&mut self, _: u64, _: u64) {}
}

/// The Bundle processing options for loading: nothing echoed back.
fn options() -> BundleOptions {
    BundleOptions {
        base: "urn:carerecord:import".to_owned(),
        prefer_return: PreferReturn::Minimal,
        handling: Handling::Strict,
        access: carerecord_server::access::Access::service("carerecord-import"),
        audited: false,
        client_address: None,
        // The import is carerecord's own service identity loading files it trusts.
        people: None,
        once: false,
    }
}

/// The `.json` and `.ndjson` files under `paths` (directories are walked), sorted.
pub fn files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        collect(p, &mut out).with_context(|| format!("cannot read {}", p.display()))?;
    }
    out.sort();
    Ok(out)
}

fn collect(p: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if p.is_dir() {
        for entry in std::fs::read_dir(p)? {
            collect(&entry?.path(), out)?;
        }
    } else if p.is_file() {
        if matches!(
            p.extension().and_then(|e| e.to_str()),
            Some("json") | Some("ndjson")
        ) {
            out.push(p.to_owned());
        }
    } else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no such file or directory",
        ));
    }
    Ok(())
}

/// How many items (lines of NDJSON, whole JSON files) `files` hold, for the progress bar.
pub fn count_items(files: &[PathBuf]) -> anyhow::Result<u64> {
    let mut n = 0;
    for f in files {
        if is_ndjson(f) {
            let file = std::fs::File::open(f)?;
            n += BufReader::new(file)
                .lines()
                .map_while(Result::ok)
                .filter(|l| !l.trim().is_empty())
                .count() as u64;
        } else {
            n += 1;
        }
    }
    Ok(n)
}

fn is_ndjson(f: &Path) -> bool {
    f.extension().and_then(|e| e.to_str()) == Some("ndjson")
}

/// Who runs an import, for its audit entries: `cli:{name}`, as the other commands record
/// the command line (`--operator`, else the OS user).
pub fn operator(given: Option<&str>) -> String {
    let name = given
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .or_else(|| std::env::var("USER").ok().filter(|s| !s.is_empty()))
        .or_else(|| std::env::var("LOGNAME").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "unknown".to_owned());
    format!("cli:{name}")
}

/// An import's audit entry with rule `rule`, naming `operator`; its text (`query`) says the rest.
fn import_record(operator: &str, rule: &str) -> AuditRecord {
    AuditRecord::new(
        now_micros(),
        AuditAction::Admin,
        AuditOutcome::Allowed,
        rule,
        AuditAgent {
            kind: PrincipalKind::User,
            id: operator.to_owned(),
            name: None,
            role: None,
            organisation_id: None,
            ods_code: None,
        },
        Channel::Cli,
    )
}

/// The audit entry of one imported file (or the demo's generated data), written when it
/// ends: who, which source, how many resources were accepted and items refused. What each
/// commit wrote has its own entry in the same transaction ([`batch_record`]), so an import
/// that is interrupted is accounted for up to its last commit. Entries per file and per
/// commit, not per resource, so auditing costs an import nothing measurable
/// (`docs/adr/0003-audit-trail.md`).
pub fn file_record(operator: &str, source: &str, accepted: u64, rejected: usize) -> AuditRecord {
    let mut r = import_record(operator, IMPORT_RULE);
    // The source and counts are searchable text of the entry, kept in the audit table only.
    r.query = Some(format!(
        "source={source} accepted={accepted} rejected={rejected}"
    ));
    r
}

/// The audit entry of one commit of an import, written inside its transaction: the source
/// file, the lines it covers and the resources it wrote.
fn batch_record(
    operator: &str,
    source: &str,
    lines: (usize, usize),
    resources: u64,
) -> AuditRecord {
    let mut r = import_record(operator, BATCH_RULE);
    r.query = Some(format!(
        "source={source} lines={}-{} resources={resources}",
        lines.0, lines.1
    ));
    r
}

/// The rule of an import's entry per file.
pub const IMPORT_RULE: &str = "import-file";

/// The rule of an import's entry per commit.
pub const BATCH_RULE: &str = "import-batch";

/// Loads every file. A refused item is reported and the rest go on. Each commit writes an
/// audit entry in its own transaction (the file, its lines and resources), so what is stored is
/// accounted for even if the import is interrupted; a batch Bundle or a transaction with reads
/// runs as the API runs it, audited by the file's entry only. Each file is committed when it
/// ends and then audited as one entry naming `operator` (see [`operator`]), the file and its
/// counts; an entry that cannot be written stops the import.
pub async fn import_files(
    state: &AppState,
    files: &[PathBuf],
    operator: &str,
    progress: &mut dyn Progress,
) -> anyhow::Result<Report> {
    let started = Instant::now();
    let mut loader = Loader {
        state,
        operator: Arc::from(operator),
        report: Report::default(),
        pending: Vec::new(),
        items: 0,
        writing: None,
        group: None,
    };
    for f in files {
        loader.report.files += 1;
        let name = f.display().to_string();
        let (accepted_before, rejected_before) =
            (loader.report.accepted, loader.report.rejected.len());
        if is_ndjson(f) {
            let file = std::fs::File::open(f).with_context(|| format!("cannot open {name}"))?;
            for (i, line) in BufReader::new(file).lines().enumerate() {
                let line = line.with_context(|| format!("cannot read {name}"))?;
                if line.trim().is_empty() {
                    continue;
                }
                loader.item(&name, i + 1, &line).await;
                progress.advance(loader.items, loader.report.accepted);
            }
        } else {
            let text = std::fs::read_to_string(f).with_context(|| format!("cannot read {name}"))?;
            loader.item(&name, 1, &text).await;
            progress.advance(loader.items, loader.report.accepted);
        }
        // Everything of the file is committed (and counted) before its entry is written: the
        // shared transaction does not run on into the next file.
        loader.finish().await;
        let entry = file_record(
            operator,
            &name,
            loader.report.accepted - accepted_before,
            loader.report.rejected.len() - rejected_before,
        );
        state
            .store
            .append_audit(vec![entry])
            .await
            .with_context(|| format!("cannot write the audit entry of {name}: import stopped"))?;
    }
    progress.advance(loader.items, loader.report.accepted);
    loader.report.elapsed = started.elapsed();
    loader
        .report
        .rejected
        .sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    Ok(loader.report)
}

/// Loads Bundles that are already in memory (the demo's preload), audited as one entry by
/// `operator` with the source `(generated)`.
pub async fn import_values(
    state: &AppState,
    items: impl Iterator<Item = Value>,
    operator: &str,
    progress: &mut dyn Progress,
) -> anyhow::Result<Report> {
    let started = Instant::now();
    let mut loader = Loader {
        state,
        operator: Arc::from(operator),
        report: Report::default(),
        pending: Vec::new(),
        items: 0,
        writing: None,
        group: None,
    };
    for (i, v) in items.enumerate() {
        loader.value(GENERATED, i + 1, v).await;
        progress.advance(loader.items, loader.report.accepted);
    }
    loader.finish().await;
    let entry = file_record(
        operator,
        GENERATED,
        loader.report.accepted,
        loader.report.rejected.len(),
    );
    state
        .store
        .append_audit(vec![entry])
        .await
        .context("cannot write the audit entry of the generated data")?;
    progress.advance(loader.items, loader.report.accepted);
    loader.report.elapsed = started.elapsed();
    Ok(loader.report)
}

/// The source of the demo's generated data.
const GENERATED: &str = "(generated)";

struct Loader<'a> {
    state: &'a AppState,
    /// Named by each commit's audit entry.
    operator: Arc<str>,
    report: Report,
    /// Plain resources waiting to be written together: (file, line, resource).
    pending: Vec<(String, usize, Value)>,
    items: u64,
    /// The task writing the latest Bundle into the open group, while the next is prepared.
    writing: Option<JoinHandle<Written>>,
    /// The open group, when no task is writing into it.
    group: Option<Group>,
}

/// What a write task hands back: the group, unless it committed, and the Bundles whose fate
/// is now settled (committed, or refused and rolled back).
type Written = (Option<Group>, Vec<Done>);

/// A Bundle written: where it came from, its number of entries, its response or why it was
/// refused.
struct Done {
    file: String,
    line: usize,
    entries: u64,
    outcome: Result<Value, String>,
    /// The Bundle as read, kept until its group commits, in case the group must be written
    /// again Bundle by Bundle.
    source: Arc<Value>,
}

/// Bundles sharing one store transaction. Almost every Bundle is accepted, so a group is first
/// written without savepoints: a savepoint per Bundle cost SQLite a journal copy of every page
/// the Bundle touched (`docs/benchmarks.md`). When a Bundle is refused after writing part of
/// itself, the transaction is rolled back and the group written again, from then on each
/// Bundle under its own savepoint, so that only the refused one is left out.
struct Group {
    tx: Box<dyn StoreTx>,
    /// Named by the audit entry the commit writes.
    operator: Arc<str>,
    started: Instant,
    resources: u64,
    /// Bundles written and waiting for the commit.
    written: Vec<Done>,
    /// Whether each Bundle is written under its own savepoint.
    isolated: bool,
}

impl Group {
    fn new(tx: Box<dyn StoreTx>, operator: Arc<str>) -> Group {
        Group {
            tx,
            operator,
            started: Instant::now(),
            resources: 0,
            written: Vec::new(),
            isolated: false,
        }
    }

    /// Writes one Bundle into the group; commits when the group is full.
    async fn write(
        mut self,
        mut done: Done,
        prepared: PreparedBundle,
        store: Arc<dyn ResourceStore>,
    ) -> Written {
        let mut settled = Vec::new();
        let outcome = if self.isolated {
            process_within(self.tx.as_mut(), prepared, &options())
                .await
                .map_err(Unisolated::Refused)
        } else {
            process_unisolated(self.tx.as_mut(), prepared, &options()).await
        };
        match outcome {
            Ok(response) => {
                done.outcome = Ok(response);
                self.resources += done.entries;
                self.written.push(done);
            }
            Err(Unisolated::Refused(e)) => {
                done.outcome = Err(reason(&e));
                settled.push(done);
            }
            Err(Unisolated::Abandoned(_)) => {
                // Part of it may be in the transaction: start again, isolating each Bundle.
                let Group {
                    tx,
                    operator,
                    started,
                    written: mut again,
                    ..
                } = self;
                // Rolled back, and the writer is free for the next transaction (SQLite has one).
                drop(tx);
                again.push(done);
                let (group, refused) =
                    Group::isolating(store.as_ref(), operator, started, again).await;
                settled.extend(refused);
                match group {
                    Some(g) => self = g,
                    None => return (None, settled),
                }
            }
        }
        if self.resources >= GROUP_RESOURCES || self.started.elapsed() >= GROUP_TIME {
            settled.extend(self.commit().await);
            (None, settled)
        } else {
            (Some(self), settled)
        }
    }

    /// A new group (the earlier attempt's transaction dropped, so rolled back) with `bundles`
    /// written again, each under its own savepoint; and those refused. When no transaction can
    /// be begun, no group, and every Bundle refused.
    async fn isolating(
        store: &dyn ResourceStore,
        operator: Arc<str>,
        started: Instant,
        bundles: Vec<Done>,
    ) -> (Option<Group>, Vec<Done>) {
        let mut refused = Vec::new();
        let tx = match store.begin().await {
            Ok(tx) => tx,
            Err(e) => {
                let why = reason(&ApiError::from(e));
                return (
                    None,
                    bundles
                        .into_iter()
                        .map(|d| Done {
                            outcome: Err(why.clone()),
                            ..d
                        })
                        .collect(),
                );
            }
        };
        let mut g = Group {
            started,
            isolated: true,
            ..Group::new(tx, operator)
        };
        for mut d in bundles {
            let prepared = prepare(&d.source, &options());
            match process_within(g.tx.as_mut(), prepared, &options()).await {
                Ok(response) => {
                    d.outcome = Ok(response);
                    g.resources += d.entries;
                    g.written.push(d);
                }
                Err(e) => {
                    d.outcome = Err(reason(&e));
                    refused.push(d);
                }
            }
        }
        (Some(g), refused)
    }

    /// Commits the group with its audit entry: its Bundles are accepted, or all refused if
    /// the entry or the commit fails.
    async fn commit(mut self) -> Vec<Done> {
        let committed = match self.written.first() {
            Some(first) => {
                // A group never runs on into the next file (the loader commits at each end).
                let lines = self
                    .written
                    .iter()
                    .fold((first.line, first.line), |(a, b), d| {
                        (a.min(d.line), b.max(d.line))
                    });
                let entry = batch_record(&self.operator, &first.file, lines, self.resources);
                match self.tx.append_audit(vec![entry]).await {
                    Ok(()) => self.tx.commit().await,
                    Err(e) => Err(e),
                }
            }
            None => self.tx.commit().await,
        };
        match committed {
            Ok(()) => self.written,
            Err(e) => {
                let why = reason(&ApiError::from(e));
                self.written
                    .into_iter()
                    .map(|d| Done {
                        outcome: Err(format!("not kept: the commit failed ({why})")),
                        ..d
                    })
                    .collect()
            }
        }
    }
}

fn reason(e: &ApiError) -> String {
    e.issues()
        .iter()
        .map(|i| match i.expression.first() {
            Some(at) => format!("{} (at {at})", i.diagnostics),
            None => i.diagnostics.clone(),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

impl Loader<'_> {
    async fn item(&mut self, file: &str, line: usize, text: &str) {
        match serde_json::from_str::<Value>(text) {
            Ok(v) => self.value(file, line, v).await,
            Err(e) => {
                self.items += 1;
                self.reject(file, line, format!("not valid JSON ({e})"));
            }
        }
    }

    /// Writes a transaction Bundle of plain resources in a store transaction of its own, with
    /// its audit entry.
    async fn audited_transaction(
        &self,
        bundle: &Value,
        file: &str,
        lines: (usize, usize),
        resources: u64,
    ) -> Result<(), ApiError> {
        let mut tx = self.state.store.begin().await?;
        process_within(tx.as_mut(), prepare(bundle, &options()), &options()).await?;
        let entry = batch_record(&self.operator, file, lines, resources);
        tx.append_audit(vec![entry]).await?;
        tx.commit().await?;
        Ok(())
    }

    fn reject(&mut self, file: &str, line: usize, reason: String) {
        self.report.rejected.push(Rejection {
            file: file.to_owned(),
            line,
            reason,
        });
    }

    async fn value(&mut self, file: &str, line: usize, v: Value) {
        self.items += 1;
        let is_bundle = v.get("resourceType").and_then(Value::as_str) == Some("Bundle");
        let kind = v.get("type").and_then(Value::as_str).unwrap_or("");
        if is_bundle && matches!(kind, "transaction" | "batch") {
            self.bundle(file, line, v).await;
        } else if v.get("resourceType").and_then(Value::as_str).is_some() {
            self.pending.push((file.to_owned(), line, v));
            if self.pending.len() >= RESOURCES_PER_TRANSACTION {
                self.flush().await;
            }
        } else {
            self.reject(
                file,
                line,
                "not a FHIR resource (no resourceType)".to_owned(),
            );
        }
    }

    /// Bundles are pipelined: this one is prepared (parsed, validated, indexed — the CPU work)
    /// here while the one before it is written on its own task, then written once that one is
    /// done. Writes stay one at a time and in order. Transaction Bundles are written into a
    /// shared transaction ([`Group`]), each all-or-nothing; others (with
    /// reads, or batches) after the group commits, in transactions of their own.
    async fn bundle(&mut self, file: &str, line: usize, v: Value) {
        let entries = v.get("entry").and_then(Value::as_array).map_or(0, Vec::len) as u64;
        let prepared = prepare(&v, &options());
        self.settle_write().await;
        let mut done = Done {
            file: file.to_owned(),
            line,
            entries,
            outcome: Ok(Value::Null),
            source: Arc::new(v),
        };
        if !prepared.can_share_transaction() {
            self.commit_group().await;
            done.outcome = process_prepared(self.state, prepared, &options())
                .await
                .map_err(|e| reason(&e));
            self.record(done);
            return;
        }
        let group = match self.group.take() {
            Some(g) => g,
            None => match self.state.store.begin().await {
                Ok(tx) => Group::new(tx, self.operator.clone()),
                Err(e) => {
                    done.outcome = Err(reason(&ApiError::from(e)));
                    self.record(done);
                    return;
                }
            },
        };
        let store = self.state.store.clone();
        self.writing = Some(tokio::spawn(group.write(done, prepared, store)));
    }

    /// Waits for the Bundle being written, and records what is settled.
    async fn settle_write(&mut self) {
        let Some(task) = self.writing.take() else {
            return;
        };
        match task.await {
            Ok((group, settled)) => {
                self.group = group;
                for d in settled {
                    self.record(d);
                }
            }
            Err(e) => self.reject(
                "(import)",
                0,
                format!(
                    "the import task failed ({e}): Bundles since the last commit were not kept"
                ),
            ),
        }
    }

    /// Commits the open group, if any.
    async fn commit_group(&mut self) {
        self.settle_write().await;
        if let Some(g) = self.group.take() {
            for d in g.commit().await {
                self.record(d);
            }
        }
    }

    fn record(&mut self, d: Done) {
        match d.outcome {
            Ok(response) => {
                self.report.bundles += 1;
                let statuses: Vec<&str> = response["entry"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|e| e["response"]["status"].as_str().unwrap_or(""))
                            .collect()
                    })
                    .unwrap_or_default();
                let mut refused = Vec::new();
                for (i, status) in statuses.iter().enumerate() {
                    if status.starts_with('2') {
                        self.report.accepted += 1;
                    } else {
                        let outcome = &response["entry"][i]["response"]["outcome"];
                        let why = outcome["issue"][0]["diagnostics"]
                            .as_str()
                            .unwrap_or(status)
                            .to_owned();
                        refused.push(format!("entry {i}: {why}"));
                    }
                }
                if statuses.is_empty() {
                    self.report.accepted += d.entries;
                }
                for why in refused {
                    self.reject(&d.file, d.line, why);
                }
            }
            Err(why) => self.reject(&d.file, d.line, why),
        }
    }

    /// Writes everything still waiting: the open group, and plain resources.
    async fn finish(&mut self) {
        self.commit_group().await;
        self.flush().await;
    }

    /// Writes waiting plain resources as one transaction; if it is refused, one by one so that
    /// only the bad ones are rejected.
    async fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        self.commit_group().await;
        let pending = std::mem::take(&mut self.pending);
        let entry = |r: &Value| {
            let rt = r["resourceType"].as_str().unwrap_or("");
            match r.get("id").and_then(Value::as_str) {
                Some(id) => {
                    json!({"resource": r, "request": {"method": "PUT", "url": format!("{rt}/{id}")}})
                }
                None => json!({"resource": r, "request": {"method": "POST", "url": rt}}),
            }
        };
        let all = json!({"resourceType": "Bundle", "type": "transaction",
            "entry": pending.iter().map(|(_, _, r)| entry(r)).collect::<Vec<_>>()});
        let lines = pending
            .iter()
            .fold((usize::MAX, 0), |(a, b), (_, l, _)| (a.min(*l), b.max(*l)));
        let file = pending
            .first()
            .map(|(f, _, _)| f.clone())
            .unwrap_or_default();
        if self
            .audited_transaction(&all, &file, lines, pending.len() as u64)
            .await
            .is_ok()
        {
            self.report.accepted += pending.len() as u64;
            return;
        }
        for (file, line, r) in pending {
            let one =
                json!({"resourceType": "Bundle", "type": "transaction", "entry": [entry(&r)]});
            match self.audited_transaction(&one, &file, (line, line), 1).await {
                Ok(()) => self.report.accepted += 1,
                Err(e) => {
                    // The error is worded for a Bundle entry: say it of the line's resource.
                    let rt = r["resourceType"].as_str().unwrap_or("resource");
                    let why = reason(&e)
                        .replace("entry 0: ", "")
                        .replace("Bundle.entry[0].resource", rt);
                    self.reject(&file, line, why);
                }
            }
        }
    }
}
