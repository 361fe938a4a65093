//! `POST [base]` with a `batch` or `transaction` Bundle.
//!
//! A transaction is all-or-nothing: it runs in one store transaction, processes its entries in
//! the order the specification requires (DELETE, POST, PUT, then GET), gives every `POST`
//! its id before any resource is written so that `urn:uuid:` fullUrls and conditional
//! references (`Patient?identifier=…`) can be rewritten to real references, and answers with
//! the first failing entry's status and OperationOutcome. A batch runs each entry on its own and
//! reports each entry's outcome.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use carerecord_fhir::{IssueCode, LogicalId, ResourceType, VersionId};
use carerecord_store::{StoreTx, StoredResource, format_instant, now_micros};
use serde_json::{Value, json};

use super::body::FhirBody;
use super::context::{Ctx, PreferReturn, parse_query};
use super::interactions::{self, Written};
use super::render::{json_response, json_text, location};
use crate::AppState;
use crate::access::Access;
use crate::error::ApiError;
use carerecord_search::query::Handling;

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

fn parse_entry(e: &Value, base: &str) -> Result<Entry, ApiError> {
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
    let resource = e.get("resource").cloned();
    if matches!(method, Method::Post | Method::Put) && resource.is_none() {
        return Err(bad("POST and PUT entries need a resource"));
    }
    let text = |k: &str| request.get(k).and_then(Value::as_str).map(str::to_owned);
    Ok(Entry {
        full_url: e.get("fullUrl").and_then(Value::as_str).map(str::to_owned),
        resource,
        method,
        rt,
        rest: segments.map(str::to_owned).collect(),
        query,
        if_none_exist: text("ifNoneExist"),
        if_match: text("ifMatch"),
    })
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
}

pub async fn handler(
    State(state): State<AppState>,
    access: Access,
    ctx: Ctx,
    FhirBody(bundle): FhirBody,
) -> Result<Response, ApiError> {
    let opts = BundleOptions {
        base: ctx.base.clone(),
        prefer_return: ctx.prefer_return,
        handling: ctx.handling,
        access,
    };
    let response = process(&state, &bundle, &opts).await?;
    Ok(json_response(
        StatusCode::OK,
        json_text(&response, ctx.pretty)?,
    ))
}

/// Processes a `batch` or `transaction` Bundle and returns the response Bundle. Also the path
/// of `carerecord import`, so that loading files and posting to the API behave the same.
pub async fn process(
    state: &AppState,
    bundle: &Value,
    opts: &BundleOptions,
) -> Result<Value, ApiError> {
    if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        return Err(bad(
            "POST to the base URL takes a Bundle of type batch or transaction",
        ));
    }
    let kind = bundle.get("type").and_then(Value::as_str).unwrap_or("");
    let empty = Vec::new();
    let raw_entries = bundle
        .get("entry")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let writes = raw_entries
        .iter()
        .any(|e| e.pointer("/request/method").and_then(Value::as_str) != Some("GET"));
    if writes {
        opts.access.check_write()?;
    }
    match kind {
        "transaction" => transaction(state, opts, raw_entries).await,
        "batch" => Ok(batch(state, opts, raw_entries).await),
        other => Err(bad(format!(
            "the Bundle type must be batch or transaction, not '{other}'"
        ))),
    }
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
    raw: &[Value],
) -> Result<Value, ApiError> {
    let entries = raw
        .iter()
        .enumerate()
        .map(|(i, e)| parse_entry(e, &ctx.base).map_err(|err| err.in_entry(i)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut results: Vec<Option<Value>> = vec![None; entries.len()];
    // Dropping `txb` on an early return rolls the whole transaction back.
    let mut txb = state.store.begin().await?;
    let tx = txb.as_mut();

    // 1. Deletes.
    for (i, e) in entries.iter().enumerate() {
        if e.method == Method::Delete {
            let w = delete_entry(tx, ctx, e)
                .await
                .map_err(|err| err.in_entry(i))?;
            results[i] = Some(written_entry(ctx, &w)?);
        }
    }

    // 2. Decide every POST's and PUT's target before writing anything, so references between
    //    entries can be rewritten.
    let mut targets: HashMap<usize, (LogicalId, bool)> = HashMap::new(); // (id, exists already)
    let mut ids: HashMap<String, String> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        let target = match e.method {
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

    // 3. Rewrite references, then write: POSTs, then PUTs.
    for pass in [Method::Post, Method::Put] {
        for (i, e) in entries.iter().enumerate() {
            if e.method != pass {
                continue;
            }
            let Some((id, exists)) = targets.get(&i).cloned() else {
                continue;
            };
            let mut body = e.resource.clone().unwrap_or(Value::Null);
            rewrite_references(tx, ctx, &mut body, &ids)
                .await
                .map_err(|err| err.in_entry(i))?;
            let w = match pass {
                Method::Post if exists => Written::Existing(
                    tx.current(e.rt, &id)
                        .await?
                        .ok_or_else(|| ApiError::Internal("matched resource vanished".into()))?,
                ),
                Method::Post => interactions::create(tx, e.rt, body, None, &ctx.base, Some(id))
                    .await
                    .map_err(|err| err.in_entry(i))?,
                _ => {
                    if let Some(o) = body.as_object_mut()
                        && (e.query.is_some() || !o.contains_key("id"))
                    {
                        o.insert("id".into(), Value::String(id.as_str().to_owned()));
                    }
                    let if_match = interactions::if_match(e.if_match.as_deref())
                        .map_err(|err| err.in_entry(i))?;
                    interactions::update(tx, e.rt, &id, body, if_match)
                        .await
                        .map_err(|err| err.in_entry(i))?
                }
            };
            results[i] = Some(written_entry(ctx, &w)?);
        }
    }
    txb.commit().await?;

    // 4. Reads, after the writes are visible.
    for (i, e) in entries.iter().enumerate() {
        if e.method == Method::Get {
            results[i] = Some(match read_entry(state, ctx, e).await {
                Ok(v) => v,
                Err(err) => error_entry(&err),
            });
        }
    }
    Ok(response_bundle(
        "transaction-response",
        results
            .into_iter()
            .map(|r| r.unwrap_or(Value::Null))
            .collect(),
    ))
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
        [id] => interactions::delete(tx, e.rt, &super::logical_id(id)?).await,
        _ => Err(bad(
            "a DELETE entry's url must be [type]/[id] or [type]?[search]",
        )),
    }
}

/// Replaces references to other entries' fullUrls with their ids, and resolves conditional
/// references (`Patient?identifier=…`) to the one resource they match.
async fn rewrite_references(
    tx: &mut dyn StoreTx,
    ctx: &BundleOptions,
    v: &mut Value,
    ids: &HashMap<String, String>,
) -> Result<(), ApiError> {
    // Collect the references first (the walk is synchronous), then resolve them.
    let mut refs: Vec<String> = Vec::new();
    collect_references(v, &mut refs);
    let mut resolved: HashMap<String, String> = HashMap::new();
    for r in refs {
        if resolved.contains_key(&r) {
            continue;
        }
        if let Some(target) = ids.get(&r) {
            resolved.insert(r, target.clone());
        } else if r.starts_with("urn:uuid:") || r.starts_with("urn:oid:") {
            return Err(bad(format!(
                "the reference {r} does not match the fullUrl of any entry in this transaction"
            )));
        } else if let Some((type_name, cond)) = r.split_once('?') {
            if type_name.contains('/') || type_name.contains(':') {
                continue;
            }
            let rt = super::resource_type(type_name)?;
            let found = interactions::matches(tx, rt, cond, &ctx.base).await?;
            match found.as_slice() {
                [one] => {
                    resolved.insert(r.clone(), format!("{rt}/{one}"));
                }
                [] => {
                    return Err(ApiError::PreconditionFailed(format!(
                        "the conditional reference to {rt} matched no resource"
                    )));
                }
                _ => {
                    return Err(ApiError::PreconditionFailed(format!(
                        "the conditional reference to {rt} matched more than one resource"
                    )));
                }
            }
        }
    }
    replace_references(v, &resolved);
    Ok(())
}

fn collect_references(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            for (k, child) in o {
                match (k.as_str(), child) {
                    ("reference", Value::String(s)) => out.push(s.clone()),
                    _ => collect_references(child, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|c| collect_references(c, out)),
        _ => {}
    }
}

fn replace_references(v: &mut Value, map: &HashMap<String, String>) {
    match v {
        Value::Object(o) => {
            for (k, child) in o.iter_mut() {
                if k == "reference" {
                    if let Value::String(s) = child
                        && let Some(new) = map.get(s.as_str())
                    {
                        *s = new.clone();
                    }
                } else {
                    replace_references(child, map);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|c| replace_references(c, map)),
        _ => {}
    }
}

/// A GET entry: read, vread or search.
async fn read_entry(state: &AppState, ctx: &BundleOptions, e: &Entry) -> Result<Value, ApiError> {
    let (status, resource) = match e.rest.as_slice() {
        [] => {
            let pairs = parse_query(e.query.as_deref())?;
            let (text, _) = super::search::searchset(
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
            (StatusCode::OK, v)
        }
        [id] => {
            let a = &ctx.access;
            let r = state
                .store
                .read(e.rt, &super::logical_id(id)?, a.vis_for(e.rt)?)
                .await
                .map_err(|err| a.not_found_is_denied(err))?;
            (StatusCode::OK, parse_body(&a.shown(r))?)
        }
        [id, h, vid] if h == "_history" => {
            let v = VersionId::parse(vid).map_err(|err| bad(err.to_string()))?;
            let a = &ctx.access;
            let r = state
                .store
                .vread(e.rt, &super::logical_id(id)?, v, a.vis_for(e.rt)?)
                .await
                .map_err(|err| a.not_found_is_denied(err))?;
            (StatusCode::OK, parse_body(&a.shown(r))?)
        }
        _ => return Err(bad("this GET is not supported inside a Bundle")),
    };
    Ok(json!({"resource": resource, "response": {"status": status_line(status)}}))
}

fn parse_body(r: &StoredResource) -> Result<Value, ApiError> {
    serde_json::from_str(&r.body).map_err(|e| ApiError::Internal(format!("stored JSON: {e}")))
}

async fn batch(state: &AppState, ctx: &BundleOptions, raw: &[Value]) -> Value {
    let mut out = Vec::with_capacity(raw.len());
    for e in raw {
        let result = async {
            let e = parse_entry(e, &ctx.base)?;
            if e.method == Method::Get {
                return read_entry(state, ctx, &e).await;
            }
            let mut tx = state.store.begin().await?;
            let w = match e.method {
                Method::Delete => delete_entry(tx.as_mut(), ctx, &e).await?,
                Method::Post => {
                    let body = e.resource.clone().unwrap_or(Value::Null);
                    interactions::create(
                        tx.as_mut(),
                        e.rt,
                        body,
                        e.if_none_exist.as_deref(),
                        &ctx.base,
                        None,
                    )
                    .await?
                }
                _ => {
                    let body = e.resource.clone().unwrap_or(Value::Null);
                    match &e.query {
                        Some(cond) => {
                            interactions::conditional_update(
                                tx.as_mut(),
                                e.rt,
                                cond,
                                body,
                                &ctx.base,
                            )
                            .await?
                        }
                        None => {
                            let id = put_target(tx.as_mut(), ctx, &e).await?;
                            let if_match = interactions::if_match(e.if_match.as_deref())?;
                            interactions::update(tx.as_mut(), e.rt, &id, body, if_match).await?
                        }
                    }
                }
            };
            tx.commit().await?;
            written_entry(ctx, &w)
        }
        .await;
        out.push(match result {
            Ok(v) => v,
            Err(err) => error_entry(&err),
        });
    }
    response_bundle("batch-response", out)
}
