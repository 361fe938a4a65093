//! The write interactions as FHIR defines them, over one store transaction. The single-request
//! handlers and the entries of batch/transaction Bundles both call these, so a rule is written
//! once.

use carerecord_fhir::validate::validate;
use carerecord_fhir::{IssueCode, LogicalId, ResourceType, VersionId};
use carerecord_search::query::{Handling, SearchQuery, parse};
use carerecord_store::{StoreError, StoreTx, StoredResource, WriteKind, WriteResult, write};
use serde_json::Value;

use crate::error::ApiError;

/// What a write did, for the response.
#[derive(Debug, Clone)]
pub enum Written {
    Created(StoredResource),
    Updated(StoredResource),
    /// A conditional create found this existing resource.
    Existing(StoredResource),
    /// A delete; `None` when there was nothing to delete.
    Deleted(Option<StoredResource>),
}

/// A new server-assigned logical id (time-ordered, so id order follows creation order).
pub fn new_id() -> Result<LogicalId, ApiError> {
    // A hyphenated UUID always satisfies the FHIR id rule.
    LogicalId::parse(&uuid::Uuid::now_v7().to_string())
        .map_err(|e| ApiError::Internal(format!("generated id: {e}")))
}

/// Checks a resource body for `rt`: its type, and its structure. Issues that are all business
/// rules (an NHS number's check digit) answer 422; anything structural answers 400.
pub fn check_resource(rt: ResourceType, body: &Value) -> Result<(), ApiError> {
    let declared = body
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or("");
    if declared != rt.as_str() {
        return Err(ApiError::bad_request(
            IssueCode::Invalid,
            format!("the body is a {declared} but the URL is for {rt}: they must be the same type"),
        ));
    }
    let issues = validate(body);
    if issues.is_empty() {
        Ok(())
    } else if issues.iter().all(|i| i.code == IssueCode::BusinessRule) {
        Err(ApiError::Unprocessable(issues))
    } else {
        Err(ApiError::BadRequest(issues))
    }
}

/// Parses a conditional query (`identifier=…`, with or without a leading `?`) strictly.
pub fn conditional_query(
    rt: ResourceType,
    query: &str,
    base: &str,
) -> Result<SearchQuery, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.trim_start_matches('?'))
        .map_err(|_| {
            ApiError::bad_request(
                IssueCode::Invalid,
                "the condition is not valid URL encoding",
            )
        })?;
    if pairs.is_empty() {
        return Err(ApiError::bad_request(
            IssueCode::Invalid,
            "a conditional request needs at least one search parameter",
        ));
    }
    parse(rt, &pairs, Handling::Strict, base).map_err(ApiError::BadRequest)
}

/// Finds at most two matches of a condition, holding a lock on the condition so that two
/// transactions evaluating the same condition cannot both conclude "no match".
pub async fn matches(
    tx: &mut dyn StoreTx,
    rt: ResourceType,
    query: &str,
    base: &str,
) -> Result<Vec<LogicalId>, ApiError> {
    let q = conditional_query(rt, query, base)?;
    let mut pairs: Vec<&str> = query.trim_start_matches('?').split('&').collect();
    pairs.sort_unstable();
    tx.lock(&format!("{rt}?{}", pairs.join("&"))).await?;
    Ok(tx.find(&q, 2).await?.into_iter().map(|k| k.id).collect())
}

/// `create`, optionally conditional (`If-None-Exist`). The id in the body, if any, is ignored:
/// the server assigns ids on create.
pub async fn create(
    tx: &mut dyn StoreTx,
    rt: ResourceType,
    body: Value,
    if_none_exist: Option<&str>,
    base: &str,
    assigned_id: Option<LogicalId>,
) -> Result<Written, ApiError> {
    check_resource(rt, &body)?;
    if let Some(cond) = if_none_exist {
        let found = matches(tx, rt, cond, base).await?;
        match found.as_slice() {
            [] => {}
            [one] => {
                let existing = tx.current(rt, one).await?.ok_or(StoreError::NotFound)?;
                return Ok(Written::Existing(existing));
            }
            _ => {
                return Err(ApiError::PreconditionFailed(
                    "If-None-Exist matched more than one resource".into(),
                ));
            }
        }
    }
    let id = match assigned_id {
        Some(id) => id,
        None => new_id()?,
    };
    let w = write::create_new(tx, rt, &id, body).await?;
    Ok(Written::Created(w.resource))
}

/// The checks `update` makes of a body before writing: it carries the URL's id, and its
/// structure is valid.
pub fn check_update(rt: ResourceType, id: &LogicalId, body: &Value) -> Result<(), ApiError> {
    match body.get("id").and_then(Value::as_str) {
        Some(body_id) if body_id == id.as_str() => {}
        Some(_) => {
            return Err(ApiError::bad_request(
                IssueCode::Invalid,
                "the id in the body does not match the id in the URL",
            ));
        }
        None => {
            return Err(ApiError::bad_request(
                IssueCode::Required,
                "an update must carry the resource's id in the body",
            ));
        }
    }
    check_resource(rt, body)
}

/// `update` of `id`; creates it when absent. The body's id must be the URL's.
pub async fn update(
    tx: &mut dyn StoreTx,
    rt: ResourceType,
    id: &LogicalId,
    body: Value,
    if_match: Option<VersionId>,
) -> Result<Written, ApiError> {
    check_update(rt, id, &body)?;
    let w = write::update(tx, rt, id, body, if_match).await?;
    Ok(written(w))
}

/// A write's result as the response needs it.
pub fn written(w: WriteResult) -> Written {
    match w.kind {
        WriteKind::Created => Written::Created(w.resource),
        _ => Written::Updated(w.resource),
    }
}

/// Conditional update: `PUT [type]?[search]`.
pub async fn conditional_update(
    tx: &mut dyn StoreTx,
    rt: ResourceType,
    condition: &str,
    body: Value,
    base: &str,
) -> Result<Written, ApiError> {
    let found = matches(tx, rt, condition, base).await?;
    let body_id = body.get("id").and_then(Value::as_str).map(str::to_owned);
    match found.as_slice() {
        [] => {
            let id = match body_id {
                Some(s) => LogicalId::parse(&s)
                    .map_err(|e| ApiError::bad_request(IssueCode::Invalid, e.to_string()))?,
                None => new_id()?,
            };
            let mut body = body;
            if let Some(o) = body.as_object_mut() {
                o.insert("id".into(), Value::String(id.as_str().to_owned()));
            }
            update(tx, rt, &id, body, None).await
        }
        [one] => {
            if body_id.as_deref().is_some_and(|b| b != one.as_str()) {
                return Err(ApiError::bad_request(
                    IssueCode::Invalid,
                    "the id in the body is not the id of the resource the condition matched",
                ));
            }
            let mut body = body;
            if let Some(o) = body.as_object_mut() {
                o.insert("id".into(), Value::String(one.as_str().to_owned()));
            }
            update(tx, rt, one, body, None).await
        }
        _ => Err(ApiError::PreconditionFailed(
            "the condition matched more than one resource".into(),
        )),
    }
}

pub async fn delete(
    tx: &mut dyn StoreTx,
    rt: ResourceType,
    id: &LogicalId,
) -> Result<Written, ApiError> {
    Ok(Written::Deleted(
        write::delete(tx, rt, id).await?.map(|w| w.resource),
    ))
}

/// Conditional delete: one match is deleted; several are refused.
pub async fn conditional_delete(
    tx: &mut dyn StoreTx,
    rt: ResourceType,
    condition: &str,
    base: &str,
) -> Result<Written, ApiError> {
    let found = matches(tx, rt, condition, base).await?;
    match found.as_slice() {
        [] => Ok(Written::Deleted(None)),
        [one] => delete(tx, rt, one).await,
        _ => Err(ApiError::PreconditionFailed(
            "the condition matched more than one resource; delete them one by one".into(),
        )),
    }
}

/// Reads `If-Match` (`W/"3"`).
pub fn if_match(value: Option<&str>) -> Result<Option<VersionId>, ApiError> {
    value
        .map(|v| {
            VersionId::from_etag(v).map_err(|_| {
                ApiError::bad_request(
                    IssueCode::Invalid,
                    "If-Match must be a version ETag such as W/\"3\"",
                )
            })
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_are_valid() {
        for _ in 0..100 {
            assert!(new_id().is_ok());
        }
    }
}
