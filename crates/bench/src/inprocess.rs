//! Importing generated Bundles through the store API, without HTTP: what the server's
//! transaction handler does for a Bundle of POSTs (assign ids, rewrite `urn:uuid:` references,
//! validate, `write::create` each resource, commit once).

use std::collections::HashMap;

use anyhow::{Context, bail};
use carerecord_fhir::validate::validate;
use carerecord_fhir::{LogicalId, ResourceType};
use carerecord_store::{ResourceStore, write};
use serde_json::Value;

/// One entry ready to write.
#[derive(Debug, Clone)]
pub struct Entry {
    pub resource_type: ResourceType,
    pub id: LogicalId,
    pub body: Value,
}

/// Gives every entry of a transaction `bundle` (all POSTs) a new time-ordered id, as the server
/// does, and rewrites references to `urn:uuid:` fullUrls into `Type/id`.
pub fn resolve(bundle: &Value) -> anyhow::Result<Vec<Entry>> {
    let raw = bundle
        .get("entry")
        .and_then(Value::as_array)
        .context("a Bundle with entries")?;
    let mut ids = HashMap::new();
    let mut out = Vec::with_capacity(raw.len());
    for e in raw {
        let body = e.get("resource").cloned().context("entry.resource")?;
        let rt: ResourceType = body
            .get("resourceType")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .parse()?;
        let id = LogicalId::parse(&uuid::Uuid::now_v7().to_string())?;
        if let Some(url) = e.get("fullUrl").and_then(Value::as_str) {
            ids.insert(url.to_owned(), format!("{rt}/{id}"));
        }
        out.push(Entry {
            resource_type: rt,
            id,
            body,
        });
    }
    for entry in &mut out {
        rewrite(&mut entry.body, &ids);
    }
    Ok(out)
}

fn rewrite(v: &mut Value, ids: &HashMap<String, String>) {
    match v {
        Value::Object(o) => {
            for (k, child) in o.iter_mut() {
                if k == "reference"
                    && let Value::String(s) = child
                    && let Some(target) = ids.get(s.as_str())
                {
                    *s = target.clone();
                } else {
                    rewrite(child, ids);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|c| rewrite(c, ids)),
        _ => {}
    }
}

/// How each resource is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// `write::create`: looks the id up first, then writes.
    Create,
    /// `write::create_new`: writes without the look-up (what the server does for the ids it
    /// assigns), so the backend may batch a transaction's writes.
    CreateNew,
}

/// Writes one Bundle in one store transaction; returns the Patient's id (the first entry) and
/// the number of resources written. With `validate_each`, every resource is validated first, as
/// the server does on create.
pub async fn import_bundle(
    store: &dyn ResourceStore,
    bundle: &Value,
    validate_each: bool,
    how: Write,
) -> anyhow::Result<(LogicalId, usize)> {
    let entries = resolve(bundle)?;
    let first = entries
        .first()
        .map(|e| e.id.clone())
        .context("empty Bundle")?;
    let n = entries.len();
    let mut tx = store.begin().await?;
    for e in entries {
        if validate_each {
            let issues = validate(&e.body);
            if !issues.is_empty() {
                bail!("{} is invalid: {issues:?}", e.resource_type);
            }
        }
        match how {
            Write::Create => write::create(tx.as_mut(), e.resource_type, &e.id, e.body).await?,
            Write::CreateNew => {
                write::create_new(tx.as_mut(), e.resource_type, &e.id, e.body).await?
            }
        };
    }
    tx.commit().await?;
    Ok((first, n))
}
