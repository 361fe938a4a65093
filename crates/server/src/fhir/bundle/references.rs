//! References inside a transaction: `urn:uuid:` fullUrls and conditional references
//! (`Patient?identifier=…`) rewritten to the resources they name.

use super::*;

/// Replaces references to other entries' fullUrls with their ids, and resolves conditional
/// references (`Patient?identifier=…`) to the one resource they match.
pub(super) async fn rewrite_references(
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
            return Err(unresolved(&r));
        } else if let Some((type_name, cond)) = r.split_once('?') {
            if type_name.contains('/') || type_name.contains(':') {
                continue;
            }
            let rt = crate::fhir::resource_type(type_name)?;
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

/// A reference to the one resource a search matches (`Patient?identifier=…`).
pub(super) fn is_conditional_reference(r: &str) -> bool {
    r.split_once('?')
        .is_some_and(|(type_name, _)| !type_name.contains('/') && !type_name.contains(':'))
}

/// [`rewrite_references`] for a body without conditional references: needs no store.
pub(super) fn rewrite_local(
    v: &mut Value,
    refs: Vec<String>,
    ids: &HashMap<String, String>,
) -> Result<(), ApiError> {
    let mut resolved: HashMap<String, String> = HashMap::new();
    for r in refs {
        if let Some(target) = ids.get(&r) {
            resolved.insert(r, target.clone());
        } else if r.starts_with("urn:uuid:") || r.starts_with("urn:oid:") {
            return Err(unresolved(&r));
        }
    }
    replace_references(v, &resolved);
    Ok(())
}

fn unresolved(r: &str) -> ApiError {
    bad(format!(
        "the reference {r} does not match the fullUrl of any entry in this transaction"
    ))
}

pub(super) fn collect_references(v: &Value, out: &mut Vec<String>) {
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
