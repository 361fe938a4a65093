//! Importing generated Bundles through the store API, without HTTP: what the server's
//! transaction handler does for a Bundle of `PUT [type]/[id]` entries (validate, write each
//! resource under the id in its URL, commit once).

use anyhow::{Context, bail};
use carerecord_fhir::validate::validate;
use carerecord_fhir::{LogicalId, ResourceType};
use carerecord_store::{ResourceKey, ResourceStore, prepare_body, write};
use serde_json::Value;

/// One entry ready to write.
#[derive(Debug, Clone)]
pub struct Entry {
    pub resource_type: ResourceType,
    pub id: LogicalId,
    pub body: Value,
}

/// The entries of a transaction `bundle` of `PUT [type]/[id]` entries (as `carerecord-synth`
/// makes them), with the type and id from each entry's URL, which must agree with the resource.
pub fn entries(bundle: &Value) -> anyhow::Result<Vec<Entry>> {
    let raw = bundle
        .get("entry")
        .and_then(Value::as_array)
        .context("a Bundle with entries")?;
    let mut out = Vec::with_capacity(raw.len());
    for e in raw {
        let body = e.get("resource").cloned().context("entry.resource")?;
        let method = e["request"]["method"].as_str().unwrap_or_default();
        let url = e["request"]["url"].as_str().unwrap_or_default();
        let (type_name, id) = match (method, url.split_once('/')) {
            ("PUT", Some((t, id))) if !id.contains('/') => (t, id),
            _ => bail!("expected a PUT [type]/[id] entry, got {method} {url}"),
        };
        if body.get("resourceType").and_then(Value::as_str) != Some(type_name)
            || body.get("id").and_then(Value::as_str) != Some(id)
        {
            bail!("the resource in the entry for {url} is not {url}");
        }
        out.push(Entry {
            resource_type: type_name.parse()?,
            id: LogicalId::parse(id)?,
            body,
        });
    }
    Ok(out)
}

/// How each resource is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// `write::update`: what the server does for a PUT (looks the id up, writes a new version
    /// or version 1, and flushes each write).
    Update,
    /// `write::create`: looks the id up first (and refuses one that exists), then writes.
    Create,
    /// `write::create_new`: writes version 1 without the look-up, so the backend may batch a
    /// transaction's writes. Only for ids not yet in the store.
    CreateNew,
    /// What the server's transaction handler now does for PUTs: every body prepared (indexed)
    /// before the transaction begins, the current versions of all ids in one look-up
    /// (`StoreTx::heads`), every version written together (`write::update_prepared`).
    Batched,
}

/// Writes one Bundle in one store transaction; returns the number of resources written. With
/// `validate_each`, every resource is validated first, as the server does.
pub async fn import_bundle(
    store: &dyn ResourceStore,
    bundle: &Value,
    validate_each: bool,
    how: Write,
) -> anyhow::Result<usize> {
    let entries = entries(bundle)?;
    if entries.is_empty() {
        bail!("empty Bundle");
    }
    let n = entries.len();
    if how == Write::Batched {
        let mut prepared = Vec::with_capacity(n);
        for e in entries {
            if validate_each {
                let issues = validate(&e.body);
                if !issues.is_empty() {
                    bail!("{}/{} is invalid: {issues:?}", e.resource_type, e.id);
                }
            }
            prepared.push(prepare_body(e.resource_type, &e.id, e.body));
        }
        let keys: Vec<ResourceKey> = prepared
            .iter()
            .map(|p| ResourceKey {
                resource_type: p.resource_type,
                id: p.id.clone(),
            })
            .collect();
        let mut tx = store.begin().await?;
        let heads = tx.heads(&keys).await?;
        for (p, k) in prepared.into_iter().zip(&keys) {
            write::update_prepared(tx.as_mut(), p, heads.get(k), None).await?;
        }
        tx.commit().await?;
        return Ok(n);
    }
    let mut tx = store.begin().await?;
    for e in entries {
        if validate_each {
            let issues = validate(&e.body);
            if !issues.is_empty() {
                bail!("{}/{} is invalid: {issues:?}", e.resource_type, e.id);
            }
        }
        match how {
            Write::Update => {
                write::update(tx.as_mut(), e.resource_type, &e.id, e.body, None).await?
            }
            Write::Create => write::create(tx.as_mut(), e.resource_type, &e.id, e.body).await?,
            Write::CreateNew | Write::Batched => {
                write::create_new(tx.as_mut(), e.resource_type, &e.id, e.body).await?
            }
        };
    }
    tx.commit().await?;
    Ok(n)
}
