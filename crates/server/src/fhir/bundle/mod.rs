//! `POST [base]` with a `batch` or `transaction` Bundle.
//!
//! A transaction is all-or-nothing: it runs in one store transaction, processes its entries in
//! the order the specification requires (DELETE, POST, PUT, then GET), gives every `POST`
//! its id before any resource is written so that `urn:uuid:` fullUrls and conditional
//! references (`Patient?identifier=…`) can be rewritten to real references, and answers with
//! the first failing entry's status and OperationOutcome. A batch runs each entry on its own and
//! reports each entry's outcome.
//!
//! Auditing follows IHE BALP, whose RESTful patterns (Create, Update, Delete, Read, Query) each
//! describe one interaction on one resource (`entity[data]` 1..1): every entry of a Bundle is
//! its own audit entry, and the request id they share ties them together. A transaction's write
//! entries are appended inside its store transaction, so they commit with the writes or not at
//! all; a failed transaction writes nothing and its failure is recorded by the `/fhir` audit
//! middleware. A batch records each entry's outcome: a write with its own transaction, a read
//! or a refusal before the response leaves.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use carerecord_fhir::{IssueCode, LogicalId, ResourceType, VersionId};
use carerecord_store::ingest::{PersonMatch, PersonMatcher};
use carerecord_store::{
    AuditAction, AuditOutcome, AuditRecord, PreparedBody, ResourceKey, StoreError, StoreTx,
    StoredResource, VersionHead, format_instant, now_micros, prepare_body, write,
};
use serde_json::{Value, json};

use super::body::FhirBody;
use super::context::{Ctx, PreferReturn, parse_query};
use super::interactions::{self, Written};
use super::render::{json_response, json_text, location};
use crate::AppState;
use crate::access::Access;
use crate::audit::{AuditNote, ClientAddress};
use crate::error::ApiError;
use carerecord_access::scope::Interaction;
use carerecord_search::query::Handling;

mod batch;
mod references;
mod shared;

pub use shared::SharedTransactions;

use batch::batch;
use references::{collect_references, is_conditional_reference, rewrite_local, rewrite_references};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Get,
    Post,
    Put,
    Delete,
}

/// One parsed entry.
#[derive(Debug, Clone)]
struct Entry {
    full_url: Option<String>,
    resource: Option<Value>,
    method: Method,
    rt: ResourceType,
    /// `[type]/[id]…` path segments after the type.
    rest: Vec<String>,
    /// The query part of `request.url`, if any.
    query: Option<String>,
    if_none_exist: Option<String>,
    if_match: Option<String>,
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::bad_request(IssueCode::Invalid, msg)
}

/// Parses entry `e`, taking its resource; `message` names the Bundle it came in (for
/// `meta.source`).
fn parse_entry(
    mut e: Value,
    base: &str,
    access: &Access,
    message: Option<&str>,
) -> Result<Entry, ApiError> {
    let mut resource = e.as_object_mut().and_then(|o| o.remove("resource"));
    let request = e
        .get("request")
        .ok_or_else(|| bad("every entry needs a request (method and url)"))?;
    let method = match request.get("method").and_then(Value::as_str) {
        Some("GET") => Method::Get,
        Some("POST") => Method::Post,
        Some("PUT") => Method::Put,
        Some("DELETE") => Method::Delete,
        Some(other) => {
            return Err(ApiError::MethodNotAllowed(format!(
                "method {other} is not supported in a Bundle entry"
            )));
        }
        None => return Err(bad("request.method is required")),
    };
    let url = request
        .get("url")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("request.url is required"))?;
    let url = url
        .strip_prefix(base)
        .map(|u| u.trim_start_matches('/'))
        .unwrap_or(url);
    let (path, query) = match url.split_once('?') {
        Some((p, q)) => (p, Some(q.to_owned())),
        None => (url, None),
    };
    let mut segments = path.split('/').filter(|s| !s.is_empty());
    let type_name = segments
        .next()
        .ok_or_else(|| bad("request.url must start with a resource type"))?;
    let rt = super::resource_type(type_name)?;
    if !matches!(method, Method::Get) {
        crate::residency::refuse_indirect(access, rt)?;
    }
    if let Some(r) = resource.as_mut()
        && matches!(method, Method::Post | Method::Put)
    {
        access.stamp_source_of(r, message);
    }
    if matches!(method, Method::Post | Method::Put) && resource.is_none() {
        return Err(bad("POST and PUT entries need a resource"));
    }
    let text = |k: &str| request.get(k).and_then(Value::as_str).map(str::to_owned);
    let entry = Entry {
        full_url: e.get("fullUrl").and_then(Value::as_str).map(str::to_owned),
        resource,
        method,
        rt,
        rest: segments.map(str::to_owned).collect(),
        query,
        if_none_exist: text("ifNoneExist"),
        if_match: text("ifMatch"),
    };
    // The token's scopes decide each entry as they would the same request on its own; reads
    // are narrowed when they run, writes are refused here, before anything is written.
    if let Some(i) = write_interaction(entry.method)
        && let Some(n) = access.narrow_write(rt, i)?
        && (entry.query.is_some() || entry.if_none_exist.is_some())
    {
        n.refuse_conditional()?;
    }
    Ok(entry)
}

/// What a submitted Bundle calls itself: its `identifier` value (a sender's message id),
/// else its `id`.
fn message_of(bundle: &Value) -> Option<&str> {
    bundle
        .pointer("/identifier/value")
        .or_else(|| bundle.get("id"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn write_interaction(m: Method) -> Option<Interaction> {
    match m {
        Method::Get => None,
        Method::Post => Some(Interaction::Create),
        Method::Put => Some(Interaction::Update),
        Method::Delete => Some(Interaction::Delete),
    }
}

/// Under a grant that checks resources one by one (a patient in context, a category): `r`,
/// written or about to be replaced by entry `e`, must be within the scopes.
fn check_scoped(ctx: &BundleOptions, e: &Entry, r: &StoredResource) -> Result<(), ApiError> {
    match write_interaction(e.method) {
        Some(i) => match ctx.access.narrow_write(e.rt, i)? {
            Some(n) => n.check(r),
            None => Ok(()),
        },
        None => Ok(()),
    }
}

/// Whether entry `e`'s writes need [`check_scoped`] (so the version it replaces is read
/// first).
fn needs_checks(ctx: &BundleOptions, e: &Entry) -> bool {
    write_interaction(e.method).is_some_and(
        |i| matches!(ctx.access.narrow_write(e.rt, i), Ok(Some(n)) if n.checks_resources()),
    )
}

/// What processing a Bundle needs to know of the request it came in.
#[derive(Debug, Clone)]
pub struct BundleOptions {
    /// The FHIR base URL (absolute references to it are local).
    pub base: String,
    pub prefer_return: PreferReturn,
    pub handling: Handling,
    /// Who is asking: writes need a role that may write, reads see what it may see.
    pub access: Access,
    /// Whether each entry is written to the audit trail: the API's Bundles are; the command
    /// line's import (carerecord's own service identity, many Bundles to one store
    /// transaction) is not.
    pub audited: bool,
    /// The client's network address, for the audit entries.
    pub client_address: Option<String>,
    /// Identity matching for the Patients the Bundle creates, when a source system sends it
    /// (`super::people`); `None` writes them as sent.
    pub people: Option<Arc<dyn PersonMatcher>>,
    /// A transaction whose first entry is a conditional create standing for the whole (a
    /// filed document, `super::document`): when it finds its resource, the rest is not
    /// written — the Bundle was filed before.
    pub once: bool,
}

pub async fn handler(
    State(state): State<AppState>,
    access: Access,
    ctx: Ctx,
    ClientAddress(client_address): ClientAddress,
    FhirBody(bundle): FhirBody,
) -> Result<Response, ApiError> {
    let opts = BundleOptions {
        base: ctx.base.clone(),
        prefer_return: ctx.prefer_return,
        handling: ctx.handling,
        people: super::people::matcher_for(&state, &access),
        once: false,
        access,
        audited: true,
        client_address,
    };
    let response = process(&state, bundle, &opts).await?;
    // Every entry has its own audit entry now; an empty Bundle is left to the middleware, so
    // that the request is still on the trail.
    let recorded = response["entry"].as_array().is_some_and(|e| !e.is_empty());
    let resp = json_response(StatusCode::OK, json_text(&response, ctx.pretty)?);
    Ok(if recorded {
        AuditNote {
            action: Some(AuditAction::Transaction),
            recorded: true,
            ..AuditNote::default()
        }
        .attach(resp)
    } else {
        resp
    })
}

/// Processes a `batch` or `transaction` Bundle and returns the response Bundle. Also the path
/// of `carerecord import`, so that loading files and posting to the API behave the same.
pub async fn process(
    state: &AppState,
    bundle: Value,
    opts: &BundleOptions,
) -> Result<Value, ApiError> {
    process_prepared(state, prepare_owned(bundle, opts), opts).await
}

/// A Bundle taken as far as it can be without the store: its entries parsed and, for a
/// transaction with no conditions in it (the usual import), every entry's target decided and
/// its resource's references rewritten, validated and indexed. That is most of a Bundle's CPU
/// work: doing it first keeps it out of the write transaction (SQLite has a single writer), and
/// lets an importer do it for the next Bundle while the previous one is written.
pub struct PreparedBundle(Result<Prepared, ApiError>);

enum Prepared {
    Transaction {
        entries: Vec<Entry>,
        plan: Option<Plan>,
    },
    Batch {
        entries: Vec<Value>,
        /// What the Bundle calls itself ([`message_of`]).
        message: Option<String>,
    },
}

/// What a transaction without conditions decides before its store transaction starts.
struct Plan {
    targets: HashMap<usize, (LogicalId, bool)>,
    ids: HashMap<String, String>,
    /// Each POST and PUT entry's resource ready to write, or why it is refused — reported when
    /// the entry's turn comes, as if it had been checked then.
    ready: HashMap<usize, Result<Ready, ApiError>>,
}

/// A POST or PUT entry's resource, checked and prepared for writing.
struct Ready {
    body: PreparedBody,
    if_match: Option<VersionId>,
}

/// The first half of [`process`]: everything that needs no store (see [`PreparedBundle`]).
/// CPU only, so an importer may run it on another thread. For a caller that keeps the Bundle
/// (to write it again); [`prepare_owned`] takes it, and copies none of its resources.
pub fn prepare(bundle: &Value, opts: &BundleOptions) -> PreparedBundle {
    prepare_owned(bundle.clone(), opts)
}

/// [`prepare`] of a Bundle the caller is done with: its entries' resources are moved, not
/// copied.
pub fn prepare_owned(bundle: Value, opts: &BundleOptions) -> PreparedBundle {
    PreparedBundle(prepare_inner(bundle, opts))
}

fn prepare_inner(mut bundle: Value, opts: &BundleOptions) -> Result<Prepared, ApiError> {
    if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        return Err(bad(
            "POST to the base URL takes a Bundle of type batch or transaction",
        ));
    }
    let kind = bundle
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let message = message_of(&bundle).map(str::to_owned);
    let raw_entries = match bundle.get_mut("entry").map(Value::take) {
        Some(Value::Array(entries)) => entries,
        _ => Vec::new(),
    };
    let writes = raw_entries
        .iter()
        .any(|e| e.pointer("/request/method").and_then(Value::as_str) != Some("GET"));
    if writes {
        opts.access.check_write()?;
    }
    match kind.as_str() {
        "transaction" => {
            let entries = raw_entries
                .into_iter()
                .enumerate()
                .map(|(i, e)| {
                    parse_entry(e, &opts.base, &opts.access, message.as_deref())
                        .map_err(|err| err.in_entry(i))
                })
                .collect::<Result<Vec<_>, _>>()?;
            // A Patient to match is found or created inside the store transaction, so the
            // entries that refer to it are decided there too.
            let matches_people = opts.people.is_some()
                && entries
                    .iter()
                    .any(|e| e.method == Method::Post && e.rt == ResourceType::Patient);
            let plan = if matches_people { None } else { plan(&entries) };
            Ok(Prepared::Transaction { entries, plan })
        }
        "batch" => Ok(Prepared::Batch {
            entries: raw_entries,
            message,
        }),
        other => Err(bad(format!(
            "the Bundle type must be batch or transaction, not '{other}'"
        ))),
    }
}

/// The second half of [`process`]: runs a prepared Bundle against the store.
pub async fn process_prepared(
    state: &AppState,
    prepared: PreparedBundle,
    opts: &BundleOptions,
) -> Result<Value, ApiError> {
    match prepared.0? {
        Prepared::Transaction { entries, plan } if state.transactions.takes(&entries) => {
            state.transactions.write(entries, plan, opts.clone()).await
        }
        Prepared::Transaction { entries, plan } => transaction(state, opts, &entries, plan).await,
        Prepared::Batch { entries, message } => {
            batch(state, opts, entries, message.as_deref()).await
        }
    }
}

/// Plans a transaction whose targets and references need nothing from the store: no
/// `ifNoneExist`, no conditional `PUT`, no conditional reference. `None` otherwise (the
/// transaction then decides everything inside its store transaction).
fn plan(entries: &[Entry]) -> Option<Plan> {
    let mut targets: HashMap<usize, (LogicalId, bool)> = HashMap::new();
    let mut ids: HashMap<String, String> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        let target = match e.method {
            Method::Post if e.if_none_exist.is_none() => (interactions::new_id().ok()?, false),
            Method::Put if e.query.is_none() => match e.rest.as_slice() {
                [id] => (super::logical_id(id).ok()?, true),
                _ => return None,
            },
            Method::Post | Method::Put => return None,
            _ => continue,
        };
        if let Some(full_url) = &e.full_url {
            ids.insert(full_url.clone(), format!("{}/{}", e.rt, target.0));
        }
        targets.insert(i, target);
    }
    let mut bodies = Vec::with_capacity(targets.len());
    for (i, e) in entries.iter().enumerate() {
        if targets.contains_key(&i) {
            let body = e.resource.clone().unwrap_or(Value::Null);
            let mut refs = Vec::new();
            collect_references(&body, &mut refs);
            if refs.iter().any(|r| is_conditional_reference(r)) {
                return None;
            }
            bodies.push((i, e, refs, body));
        }
    }
    let mut ready = HashMap::with_capacity(bodies.len());
    for (i, e, refs, mut body) in bodies {
        let (id, _) = &targets[&i];
        let r = rewrite_local(&mut body, refs, &ids)
            .and_then(|()| ready_to_write(e, id, body))
            .map_err(|err| err.in_entry(i));
        ready.insert(i, r);
    }
    Some(Plan {
        targets,
        ids,
        ready,
    })
}

/// Checks a POST or PUT entry's resource (its references already rewritten) as `create` or
/// `update` would, and prepares it for writing to `id`.
fn ready_to_write(e: &Entry, id: &LogicalId, mut body: Value) -> Result<Ready, ApiError> {
    if e.method == Method::Post {
        interactions::check_resource(e.rt, &body)?;
        return Ok(Ready {
            body: prepare_body(e.rt, id, body),
            if_match: None,
        });
    }
    if let Some(o) = body.as_object_mut()
        && (e.query.is_some() || !o.contains_key("id"))
    {
        o.insert("id".into(), Value::String(id.as_str().to_owned()));
    }
    let if_match = interactions::if_match(e.if_match.as_deref())?;
    interactions::check_update(e.rt, id, &body)?;
    Ok(Ready {
        body: prepare_body(e.rt, id, body),
        if_match,
    })
}

fn response_bundle(kind: &str, entries: Vec<Value>) -> Value {
    json!({
        "resourceType": "Bundle",
        "id": uuid::Uuid::now_v7().to_string(),
        "meta": {"lastUpdated": format_instant(now_micros())},
        "type": kind,
        "entry": entries,
    })
}

fn status_line(s: StatusCode) -> String {
    format!("{} {}", s.as_u16(), s.canonical_reason().unwrap_or(""))
}

/// The response entry for a write.
fn written_entry(ctx: &BundleOptions, w: &Written) -> Result<Value, ApiError> {
    let (status, r): (StatusCode, Option<&StoredResource>) = match w {
        Written::Created(r) => (StatusCode::CREATED, Some(r)),
        Written::Updated(r) | Written::Existing(r) => (StatusCode::OK, Some(r)),
        Written::Deleted(r) => (StatusCode::NO_CONTENT, r.as_ref()),
    };
    let mut response = json!({"status": status_line(status)});
    let mut entry = json!({});
    if let Some(r) = r {
        response["etag"] = json!(r.version_id.etag());
        response["lastModified"] = json!(format_instant(r.last_updated));
        if !r.deleted {
            response["location"] = json!(location(&ctx.base, r));
            entry["fullUrl"] = json!(format!("{}/{}/{}", ctx.base, r.resource_type, r.id));
            if ctx.prefer_return != PreferReturn::Minimal {
                entry["resource"] = serde_json::from_str(&r.body)
                    .map_err(|e| ApiError::Internal(format!("stored JSON: {e}")))?;
            }
        }
    }
    entry["response"] = response;
    Ok(entry)
}

fn error_entry(e: &ApiError) -> Value {
    json!({"response": {"status": status_line(e.status()), "outcome": e.outcome()}})
}

async fn transaction(
    state: &AppState,
    ctx: &BundleOptions,
    entries: &[Entry],
    plan: Option<Plan>,
) -> Result<Value, ApiError> {
    // Dropping `txb` on an early return rolls the whole transaction back, audit entries too.
    let mut txb = state.store.begin().await?;
    let (mut results, written) = write_entries(txb.as_mut(), ctx, entries, plan).await?;
    let records = write_records(ctx, entries, &written);
    if !records.is_empty() {
        txb.append_audit(records).await?;
    }
    txb.commit().await?;

    // 4. Reads, after the writes are visible.
    let mut read_records = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if e.method == Method::Get {
            let (v, record) = audited_read(state, ctx, e).await;
            results[i] = Some(v);
            read_records.extend(record);
        }
    }
    record_all(state, read_records).await?;
    Ok(transaction_response(results))
}

fn transaction_response(results: Vec<Option<Value>>) -> Value {
    response_bundle(
        "transaction-response",
        results
            .into_iter()
            .map(|r| r.unwrap_or(Value::Null))
            .collect(),
    )
}

impl PreparedBundle {
    /// Whether [`process_within`] can run this Bundle in a transaction shared with others: a
    /// transaction Bundle without reads (those are answered after the commit), or one already
    /// refused.
    pub fn can_share_transaction(&self) -> bool {
        match &self.0 {
            Ok(Prepared::Transaction { entries, .. }) => {
                entries.iter().all(|e| e.method != Method::Get)
            }
            Ok(Prepared::Batch { .. }) => false,
            Err(_) => true,
        }
    }
}

/// Runs a prepared transaction Bundle inside `tx`, a store transaction shared with other
/// Bundles (bulk import amortises its commits so), under a savepoint: when the Bundle is
/// refused everything it wrote is rolled back and `tx` goes on, so it stays all-or-nothing.
/// Its writes last only if `tx` then commits. Only for Bundles that
/// [`PreparedBundle::can_share_transaction`].
pub async fn process_within(
    tx: &mut dyn StoreTx,
    prepared: PreparedBundle,
    opts: &BundleOptions,
) -> Result<Value, ApiError> {
    let Prepared::Transaction { entries, plan } = prepared.0? else {
        return Err(ApiError::Internal(
            "a batch Bundle cannot share a transaction".into(),
        ));
    };
    if entries.iter().any(|e| e.method == Method::Get) {
        return Err(ApiError::Internal(
            "a transaction with reads cannot share a transaction".into(),
        ));
    }
    let (results, _) = write_entries_isolated(tx, opts, &entries, plan).await??;
    Ok(transaction_response(results))
}

/// [`write_entries`] under a savepoint: when the Bundle is refused, everything it wrote is
/// rolled back and `tx` goes on. The outer error is the store's (`tx` cannot go on), the inner
/// one the Bundle's refusal.
async fn write_entries_isolated(
    tx: &mut dyn StoreTx,
    ctx: &BundleOptions,
    entries: &[Entry],
    plan: Option<Plan>,
) -> Result<Result<(Vec<Option<Value>>, WrittenNotes), ApiError>, StoreError> {
    tx.savepoint().await?;
    let written = match write_entries(tx, ctx, entries, plan).await {
        // A version taken by another writer shows at the release at the latest.
        Ok(w) => tx
            .release_savepoint()
            .await
            .map(|()| w)
            .map_err(|e| ApiError::from(write::busy_if_taken(e))),
        Err(e) => Err(e),
    };
    if written.is_err() {
        tx.rollback_to_savepoint().await?;
    }
    Ok(written)
}

/// The audit entries of a written transaction's write entries (`notes`, from
/// [`write_entries`]), when its request is audited: they go into the same store transaction.
fn write_records(ctx: &BundleOptions, entries: &[Entry], notes: &WrittenNotes) -> Vec<AuditRecord> {
    if !ctx.audited {
        return Vec::new();
    }
    notes
        .iter()
        .map(|(i, note)| entry_record(ctx, &entries[*i], note, Ok(())))
        .collect()
}

/// How [`process_unisolated`] refused a Bundle.
#[derive(Debug)]
pub enum Unisolated {
    /// Refused before anything was written (it did not parse, or it cannot share a
    /// transaction): `tx` is as it was.
    Refused(ApiError),
    /// Refused after part of it may have been written into `tx`: the caller rolls `tx` back.
    Abandoned(ApiError),
}

/// [`process_within`] without its savepoint, for a caller that shares one transaction among
/// many Bundles that are almost always accepted (bulk import). A savepoint per Bundle costs
/// SQLite a journal copy of every page the Bundle touches; without it, a Bundle refused
/// midway leaves what it wrote in `tx` ([`Unisolated::Abandoned`]), and the caller must roll
/// `tx` back and run the Bundles again, each with [`process_within`].
pub async fn process_unisolated(
    tx: &mut dyn StoreTx,
    prepared: PreparedBundle,
    opts: &BundleOptions,
) -> Result<Value, Unisolated> {
    let Prepared::Transaction { entries, plan } = prepared.0.map_err(Unisolated::Refused)? else {
        return Err(Unisolated::Refused(ApiError::Internal(
            "a batch Bundle cannot share a transaction".into(),
        )));
    };
    if entries.iter().any(|e| e.method == Method::Get) {
        return Err(Unisolated::Refused(ApiError::Internal(
            "a transaction with reads cannot share a transaction".into(),
        )));
    }
    match write_entries(tx, opts, &entries, plan).await {
        Ok((results, _)) => Ok(transaction_response(results)),
        Err(e) => Err(Unisolated::Abandoned(e)),
    }
}

/// What each write entry touched, by entry index and in entry order, for its audit entry.
type WrittenNotes = Vec<(usize, AuditNote)>;

/// Steps 1–3 of a transaction — deletes, targets, writes — inside `tx`; the response entries
/// of every write (reads are left to the caller) and what each wrote.
async fn write_entries(
    tx: &mut dyn StoreTx,
    ctx: &BundleOptions,
    entries: &[Entry],
    plan: Option<Plan>,
) -> Result<(Vec<Option<Value>>, WrittenNotes), ApiError> {
    let mut results: Vec<Option<Value>> = vec![None; entries.len()];
    let mut notes: WrittenNotes = Vec::new();

    // 1. Deletes.
    for (i, e) in entries.iter().enumerate() {
        if e.method == Method::Delete {
            let w = delete_entry(tx, ctx, e)
                .await
                .map_err(|err| err.in_entry(i))?;
            results[i] = Some(written_entry(ctx, &w)?);
            notes.push((i, write_note(e.method, &w)));
        }
    }

    // 2. Decide every POST's and PUT's target before writing anything, so references between
    //    entries can be rewritten (already done when the transaction was planned).
    let (targets, ids, mut ready, mut people) = match plan {
        Some(p) => (p.targets, p.ids, p.ready, HashMap::new()),
        None => {
            let d = decide_targets(tx, ctx, entries).await?;
            (d.targets, d.ids, HashMap::new(), d.people)
        }
    };
    // Filed before: the first entry's resource is all there is to answer.
    if ctx.once
        && let (Some((id, true)), Some(e)) = (targets.get(&0), entries.first())
        && e.method == Method::Post
        && !people.contains_key(&0)
    {
        let found = tx
            .current(e.rt, id)
            .await?
            .ok_or_else(|| ApiError::Internal("matched resource vanished".into()))?;
        let w = Written::Existing(found);
        results[0] = Some(written_entry(ctx, &w)?);
        notes.push((0, write_note(e.method, &w)));
        return Ok((results, notes));
    }

    // 3. Write: POSTs, then PUTs. Versions are held back and written together (at the flush
    //    after the PUTs); a version a concurrent writer took first shows there, as `Busy`.
    for (i, e) in entries.iter().enumerate() {
        if e.method != Method::Post {
            continue;
        }
        let Some((id, exists)) = targets.get(&i).cloned() else {
            continue;
        };
        // A person matched (or created) when the targets were decided: already written.
        if let Some((w, m)) = people.remove(&i) {
            if let Written::Created(r) | Written::Existing(r) = &w {
                check_scoped(ctx, e, r).map_err(|err| err.in_entry(i))?;
            }
            results[i] = Some(matched_entry(ctx, &w, &m)?);
            notes.push((i, write_note(e.method, &w)));
            continue;
        }
        let r = match ready.remove(&i) {
            Some(r) => r?,
            None => {
                let mut body = e.resource.clone().unwrap_or(Value::Null);
                rewrite_references(tx, ctx, &mut body, &ids)
                    .await
                    .map_err(|err| err.in_entry(i))?;
                if exists {
                    let found = tx
                        .current(e.rt, &id)
                        .await?
                        .ok_or_else(|| ApiError::Internal("matched resource vanished".into()))?;
                    let w = Written::Existing(found);
                    results[i] = Some(written_entry(ctx, &w)?);
                    notes.push((i, write_note(e.method, &w)));
                    continue;
                }
                ready_to_write(e, &id, body).map_err(|err| err.in_entry(i))?
            }
        };
        let w = write::create_prepared(tx, r.body)
            .await
            .map_err(|err| ApiError::from(write::busy_if_taken(err)).in_entry(i))?;
        check_scoped(ctx, e, &w.resource).map_err(|err| err.in_entry(i))?;
        let w = Written::Created(w.resource);
        results[i] = Some(written_entry(ctx, &w)?);
        notes.push((i, write_note(e.method, &w)));
    }

    // Every PUT's current version, looked up at once.
    let put_keys: Vec<ResourceKey> = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e.method == Method::Put)
        .filter_map(|(i, e)| {
            targets.get(&i).map(|(id, _)| ResourceKey {
                resource_type: e.rt,
                id: id.clone(),
            })
        })
        .collect();
    let mut heads = if put_keys.is_empty() {
        HashMap::new()
    } else {
        tx.heads(&put_keys).await.map_err(write::busy_if_taken)?
    };
    for (i, e) in entries.iter().enumerate() {
        if e.method != Method::Put {
            continue;
        }
        let Some((id, _)) = targets.get(&i).cloned() else {
            continue;
        };
        let r = match ready.remove(&i) {
            Some(r) => r?,
            None => {
                // Writes held back so far are written before the look-ups below, so that a
                // version taken by a concurrent writer is reported as such.
                tx.flush().await.map_err(write::busy_if_taken)?;
                let mut body = e.resource.clone().unwrap_or(Value::Null);
                rewrite_references(tx, ctx, &mut body, &ids)
                    .await
                    .map_err(|err| err.in_entry(i))?;
                ready_to_write(e, &id, body).map_err(|err| err.in_entry(i))?
            }
        };
        if needs_checks(ctx, e)
            && let Some(old) = tx.current(e.rt, &id).await?
            && !old.deleted
        {
            check_scoped(ctx, e, &old).map_err(|err| err.in_entry(i))?;
        }
        let key = ResourceKey {
            resource_type: e.rt,
            id,
        };
        let w = write::update_prepared(tx, r.body, heads.get(&key), r.if_match)
            .await
            .map_err(|err| ApiError::from(err).in_entry(i))?;
        check_scoped(ctx, e, &w.resource).map_err(|err| err.in_entry(i))?;
        // A later entry for the same resource writes over this version.
        heads.insert(key, VersionHead::of(&w.resource));
        let w = interactions::written(w);
        results[i] = Some(written_entry(ctx, &w)?);
        notes.push((i, write_note(e.method, &w)));
    }
    tx.flush().await.map_err(write::busy_if_taken)?;
    notes.sort_by_key(|(i, _)| *i);
    Ok((results, notes))
}

/// What a write entry touched: the resource written (or found, or deleted) and its person.
/// The action follows the entry's method, as for single requests.
fn write_note(method: Method, w: &Written) -> AuditNote {
    let r = match w {
        Written::Created(r) | Written::Updated(r) | Written::Existing(r) => Some(r),
        Written::Deleted(r) => r.as_ref(),
    };
    AuditNote::of(
        action_of(method, &[]),
        r.map(std::slice::from_ref).unwrap_or(&[]),
    )
}

/// The audit action of an entry with `method` and path segments `rest` (after the type).
fn action_of(method: Method, rest: &[String]) -> AuditAction {
    match (method, rest) {
        (Method::Get, []) => AuditAction::Search,
        (Method::Get, [_, h, _]) if h == "_history" => AuditAction::Vread,
        (Method::Get, _) => AuditAction::Read,
        (Method::Post, _) => AuditAction::Create,
        (Method::Put, _) => AuditAction::Update,
        (Method::Delete, _) => AuditAction::Delete,
    }
}

/// The audit entry of Bundle entry `e`: what it touched (`note`) and how it ended.
fn entry_record(
    ctx: &BundleOptions,
    e: &Entry,
    note: &AuditNote,
    result: Result<(), &ApiError>,
) -> AuditRecord {
    let (outcome, rule) = match result {
        Ok(()) if e.method == Method::Get => (AuditOutcome::Allowed, "allowed"),
        Ok(()) => (AuditOutcome::Allowed, "write-allowed"),
        Err(err) => crate::audit::outcome_of_error(err),
    };
    let action = note.action.unwrap_or_else(|| action_of(e.method, &e.rest));
    let mut r = crate::audit::record(
        &ctx.access.principal,
        action,
        outcome,
        rule,
        note,
        ctx.client_address.clone(),
    );
    if e.method == Method::Get {
        r.query = e.query.clone();
    }
    r
}

/// A refused entry's note: the resource it named and its person, as the middleware records
/// for a refused plain request.
async fn refused_note(state: &AppState, e: &Entry, err: &ApiError) -> AuditNote {
    let mut note = AuditNote {
        action: Some(action_of(e.method, &e.rest)),
        ..AuditNote::default()
    };
    if let Some(id) = e.rest.first()
        && crate::audit::outcome_of_error(err).0 == AuditOutcome::Denied
    {
        crate::audit::target_of(state, &format!("{}/{id}", e.rt), &mut note).await;
    }
    note
}

/// A GET entry's response entry and, when the Bundle is audited, its audit entry.
async fn audited_read(
    state: &AppState,
    ctx: &BundleOptions,
    e: &Entry,
) -> (Value, Option<AuditRecord>) {
    match read_entry(state, ctx, e).await {
        Ok((v, note)) => {
            let r = ctx.audited.then(|| entry_record(ctx, e, &note, Ok(())));
            (v, r)
        }
        Err(err) => {
            let r = if ctx.audited {
                let note = refused_note(state, e, &err).await;
                Some(entry_record(ctx, e, &note, Err(&err)))
            } else {
                None
            };
            (error_entry(&err), r)
        }
    }
}

/// Writes `records` through the store's group commit and waits until they are durable: the
/// response is not sent before.
async fn record_all(state: &AppState, records: Vec<AuditRecord>) -> Result<(), ApiError> {
    if records.is_empty() {
        return Ok(());
    }
    state.store.append_audit(records).await.map_err(|e| {
        tracing::error!(error = %e, "audit entries not written: the response is withheld");
        ApiError::Internal(format!("audit: {e}"))
    })
}

/// The targets of a transaction's POSTs and PUTs, decided inside its store transaction.
struct Targets {
    /// Each entry's id and whether it exists already.
    targets: HashMap<usize, (LogicalId, bool)>,
    /// fullUrl → `Type/id`.
    ids: HashMap<String, String>,
    /// The Patient entries identity matching has resolved (and written): what each is now.
    people: HashMap<usize, (Written, PersonMatch)>,
}

/// Targets of a transaction's POSTs and PUTs, decided inside its store transaction (for those
/// with conditions, and when a source system's Patients are matched).
async fn decide_targets(
    tx: &mut dyn StoreTx,
    ctx: &BundleOptions,
    entries: &[Entry],
) -> Result<Targets, ApiError> {
    let mut targets: HashMap<usize, (LogicalId, bool)> = HashMap::new(); // (id, exists already)
    let mut ids: HashMap<String, String> = HashMap::new();
    let mut people = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        let target = match e.method {
            // Matching stands in for `ifNoneExist`: the person is found by the national rules,
            // not by whatever condition the source chose.
            Method::Post
                if e.rt == ResourceType::Patient
                    && let Some(matcher) = &ctx.people =>
            {
                let body = e.resource.clone().unwrap_or(Value::Null);
                let (w, m) = super::people::resolve(tx, matcher.as_ref(), &ctx.access, &body)
                    .await
                    .map_err(|err| err.in_entry(i))?;
                let id = LogicalId::parse(&m.patient_id)
                    .map_err(|err| ApiError::Internal(err.to_string()))?;
                people.insert(i, (w, m));
                (id, true)
            }
            Method::Post => {
                let existing = match &e.if_none_exist {
                    Some(cond) => {
                        let found = interactions::matches(tx, e.rt, cond, &ctx.base)
                            .await
                            .map_err(|err| err.in_entry(i))?;
                        if found.len() > 1 {
                            return Err(ApiError::PreconditionFailed(
                                "ifNoneExist matched more than one resource".into(),
                            )
                            .in_entry(i));
                        }
                        found.into_iter().next()
                    }
                    None => None,
                };
                match existing {
                    Some(id) if ctx.once && i == 0 => {
                        // Nothing else is decided (nor matched, nor written).
                        targets.insert(i, (id, true));
                        return Ok(Targets {
                            targets,
                            ids,
                            people,
                        });
                    }
                    Some(id) => (id, true),
                    None => (interactions::new_id()?, false),
                }
            }
            Method::Put => (
                put_target(tx, ctx, e)
                    .await
                    .map_err(|err| err.in_entry(i))?,
                true,
            ),
            _ => continue,
        };
        if let Some(full_url) = &e.full_url {
            ids.insert(full_url.clone(), format!("{}/{}", e.rt, target.0));
        }
        targets.insert(i, target);
    }
    Ok(Targets {
        targets,
        ids,
        people,
    })
}

/// The response entry of a Patient entry identity matching resolved: a new person as any
/// created entry, plus how it was decided; a known one with its location and version and how
/// it was found, not its body (the Patient as others wrote it is theirs).
fn matched_entry(ctx: &BundleOptions, w: &Written, m: &PersonMatch) -> Result<Value, ApiError> {
    let mut entry = written_entry(ctx, w)?;
    if let (Written::Existing(_), Some(o)) = (w, entry.as_object_mut()) {
        o.remove("resource");
    }
    entry["response"]["outcome"] = super::people::outcome(m);
    Ok(entry)
}

/// Where a PUT entry writes: the id in its URL, or the single match of its condition (a new id
/// when nothing matches).
async fn put_target(
    tx: &mut dyn StoreTx,
    ctx: &BundleOptions,
    e: &Entry,
) -> Result<LogicalId, ApiError> {
    if let Some(cond) = &e.query {
        let found = interactions::matches(tx, e.rt, cond, &ctx.base).await?;
        return match found.as_slice() {
            [] => match e
                .resource
                .as_ref()
                .and_then(|r| r.get("id"))
                .and_then(Value::as_str)
            {
                Some(id) => super::logical_id(id),
                None => interactions::new_id(),
            },
            [one] => Ok(one.clone()),
            _ => Err(ApiError::PreconditionFailed(
                "the conditional update matched more than one resource".into(),
            )),
        };
    }
    match e.rest.as_slice() {
        [id] => super::logical_id(id),
        _ => Err(bad(
            "a PUT entry's url must be [type]/[id] or [type]?[search]",
        )),
    }
}

async fn delete_entry(
    tx: &mut dyn StoreTx,
    ctx: &BundleOptions,
    e: &Entry,
) -> Result<Written, ApiError> {
    if let Some(cond) = &e.query {
        return interactions::conditional_delete(tx, e.rt, cond, &ctx.base).await;
    }
    match e.rest.as_slice() {
        [id] => {
            let id = super::logical_id(id)?;
            if needs_checks(ctx, e)
                && let Some(old) = tx.current(e.rt, &id).await?
                && !old.deleted
            {
                check_scoped(ctx, e, &old)?;
            }
            interactions::delete(tx, e.rt, &id).await
        }
        _ => Err(bad(
            "a DELETE entry's url must be [type]/[id] or [type]?[search]",
        )),
    }
}

/// A GET entry: read, vread or search; its response entry and what it returned.
async fn read_entry(
    state: &AppState,
    ctx: &BundleOptions,
    e: &Entry,
) -> Result<(Value, AuditNote), ApiError> {
    let (status, resource, note) = match e.rest.as_slice() {
        [] => {
            let pairs = parse_query(e.query.as_deref())?;
            let (text, note) = super::search::searchset(
                state,
                &ctx.access,
                e.rt,
                &pairs,
                &ctx.base,
                ctx.handling,
                false,
            )
            .await?;
            let v: Value =
                serde_json::from_str(&text).map_err(|err| ApiError::Internal(err.to_string()))?;
            (StatusCode::OK, v, note)
        }
        [id] => {
            let a = &ctx.access;
            let n = a.narrow(e.rt, Interaction::Read)?;
            let r = state
                .store
                .read(e.rt, &super::logical_id(id)?, n.vis())
                .await
                .map_err(|err| n.not_found_is_denied(err))?;
            n.check(&r)?;
            let note = AuditNote::of(AuditAction::Read, std::slice::from_ref(&r));
            (StatusCode::OK, parse_body(&a.shown(r))?, note)
        }
        [id, h, vid] if h == "_history" => {
            let v = VersionId::parse(vid).map_err(|err| bad(err.to_string()))?;
            let a = &ctx.access;
            let n = a.narrow(e.rt, Interaction::Vread)?;
            let r = state
                .store
                .vread(e.rt, &super::logical_id(id)?, v, n.vis())
                .await
                .map_err(|err| n.not_found_is_denied(err))?;
            n.check(&r)?;
            let note = AuditNote::of(AuditAction::Vread, std::slice::from_ref(&r));
            (StatusCode::OK, parse_body(&a.shown(r))?, note)
        }
        _ => return Err(bad("this GET is not supported inside a Bundle")),
    };
    Ok((
        json!({"resource": resource, "response": {"status": status_line(status)}}),
        note,
    ))
}

fn parse_body(r: &StoredResource) -> Result<Value, ApiError> {
    serde_json::from_str(&r.body).map_err(|e| ApiError::Internal(format!("stored JSON: {e}")))
}
