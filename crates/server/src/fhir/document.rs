//! `POST [base]/Bundle` with a `document` Bundle: a clinical document — a hospital discharge
//! summary, a letter — filed into the record.
//!
//! A FHIR document is a Bundle whose first entry is a Composition and whose other entries are
//! what its sections refer to (R4 §3.3). Care staff read the record, not Bundles: the portal
//! shows a discharge summary from its Composition and the resources it points at. So the
//! document is filed as one transaction: its Composition (given the document's identifier
//! when it has none, so that the document can be found by it), every other entry created, the
//! Patient resolved by identity matching when a source system sends it (`super::people`), the
//! organisations, practitioners, locations and devices it names found by their first
//! identifier rather than created again, every reference between entries rewritten to the
//! stored resource, and a Provenance naming the document and its sender. Sending the same
//! document again (same identifier, same source) files nothing and answers where it was
//! filed. The answer is the transaction-response Bundle: where each entry went.

use axum::http::header::LOCATION;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use carerecord_fhir::{Issue, IssueCode, ResourceType, operation_outcome};
use carerecord_search::query::escape_value;
use carerecord_store::{AuditAction, format_instant, now_micros};
use serde_json::{Value, json};

use super::bundle::{BundleOptions, process};
use super::context::Ctx;
use super::render::{json_response, json_text};
use crate::AppState;
use crate::access::Access;
use crate::audit::AuditNote;
use crate::error::ApiError;

const ODS_SYSTEM: &str = "https://fhir.nhs.uk/Id/ods-organization-code";

/// Whether `body` is a document Bundle (which [`file`] takes instead of a plain create).
pub(crate) fn is_document(body: &Value) -> bool {
    body.get("resourceType").and_then(Value::as_str) == Some("Bundle")
        && body.get("type").and_then(Value::as_str) == Some("document")
}

fn invalid(expression: &str, msg: impl Into<String>) -> ApiError {
    ApiError::BadRequest(vec![Issue {
        expression: vec![expression.to_owned()],
        ..Issue::error(IssueCode::Invalid, msg)
    }])
}

/// A token search value, escaped and percent-encoded for a query string.
fn token_value(s: &str) -> String {
    let escaped = escape_value(s);
    let mut out = String::with_capacity(escaped.len());
    for b in escaped.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn identifier_condition(identifier: &Value) -> Option<String> {
    let system = identifier.get("system").and_then(Value::as_str)?;
    let value = identifier.get("value").and_then(Value::as_str)?;
    Some(format!(
        "identifier={}|{}",
        token_value(system),
        token_value(value)
    ))
}

/// The transaction that files `document`, sent by `access`: checked against the R4 rules a
/// document must meet (bdl-9: an identifier with system and value; bdl-11: a Composition
/// first; every entry a resource with a fullUrl).
pub(crate) fn transaction_of(document: &Value, access: &Access) -> Result<Value, ApiError> {
    let identifier = document
        .get("identifier")
        .filter(|i| identifier_condition(i).is_some())
        .cloned()
        .ok_or_else(|| {
            invalid(
                "Bundle.identifier",
                "a document needs an identifier with a system and a value (bdl-9)",
            )
        })?;
    let entries = document
        .get("entry")
        .and_then(Value::as_array)
        .filter(|e| !e.is_empty())
        .ok_or_else(|| invalid("Bundle.entry", "a document has at least a Composition"))?;
    let mut out = Vec::with_capacity(entries.len() + 1);
    let mut targets = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let at = format!("Bundle.entry[{i}]");
        let mut resource = e
            .get("resource")
            .filter(|r| r.is_object())
            .cloned()
            .ok_or_else(|| invalid(&at, "every entry of a document has a resource"))?;
        let full_url = e
            .get("fullUrl")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(&at, "every entry of a document has a fullUrl"))?;
        let type_name = resource
            .get("resourceType")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let rt = super::resource_type(&type_name)?;
        if i == 0 && rt != ResourceType::Composition {
            return Err(invalid(
                "Bundle.entry[0]",
                "the first entry of a document is its Composition (bdl-11)",
            ));
        }
        // The server assigns ids on create; the fullUrl is how entries refer to each other.
        if let Some(o) = resource.as_object_mut() {
            o.remove("id");
        }
        let mut request = json!({"method": "POST", "url": type_name});
        match rt {
            ResourceType::Composition if i == 0 => {
                if resource.get("identifier").is_none() {
                    resource["identifier"] = identifier.clone();
                }
                // Filed once: a document sent again finds its Composition (see `once`).
                let cond = identifier_condition(&resource["identifier"]).ok_or_else(|| {
                    invalid(
                        "Bundle.entry[0].resource.identifier",
                        "the Composition's identifier needs a system and a value",
                    )
                })?;
                request["ifNoneExist"] = json!(cond);
            }
            ResourceType::Organization
            | ResourceType::Practitioner
            | ResourceType::Location
            | ResourceType::PractitionerRole => {
                if let Some(cond) = resource
                    .pointer("/identifier/0")
                    .and_then(identifier_condition)
                {
                    request["ifNoneExist"] = json!(cond);
                }
            }
            _ => {}
        }
        targets.push(json!({"reference": full_url}));
        out.push(json!({"fullUrl": full_url, "resource": resource, "request": request}));
    }
    out.push(json!({
        "fullUrl": format!("urn:uuid:{}", uuid::Uuid::new_v4()),
        "resource": provenance(&identifier, access, targets),
        "request": {"method": "POST", "url": "Provenance"}
    }));
    Ok(
        json!({"resourceType": "Bundle", "type": "transaction", "identifier": identifier,
              "entry": out}),
    )
}

/// Where a filed document came from: its sender (the writer's organisation, by ODS code) and
/// the document itself (by identifier), naming everything filed from it.
fn provenance(identifier: &Value, access: &Access, targets: Vec<Value>) -> Value {
    let ods = &access.principal.organisation_ods;
    json!({
        "resourceType": "Provenance",
        "target": targets,
        "recorded": format_instant(now_micros()),
        "activity": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
            "code": "CREATE", "display": "create"}]},
        "agent": [{
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                "code": "author", "display": "Author"}]},
            "who": {"identifier": {"system": ODS_SYSTEM, "value": ods}, "display": ods}
        }],
        "entity": [{"role": "source", "what": {"identifier": identifier, "type": "Bundle"}}]
    })
}

/// Files `document` (see the module's documentation): 201 with the Composition's `Location`
/// when it is new, 200 when the same document was filed before; the transaction-response
/// Bundle either way.
pub(crate) async fn file(
    state: &AppState,
    access: Access,
    ctx: &Ctx,
    client_address: Option<String>,
    document: &Value,
) -> Result<Response, ApiError> {
    access.check_write()?;
    let transaction = transaction_of(document, &access)?;
    let opts = BundleOptions {
        base: ctx.base.clone(),
        prefer_return: ctx.prefer_return,
        handling: ctx.handling,
        people: super::people::matcher_for(state, &access),
        once: true,
        access,
        audited: true,
        client_address,
    };
    let response = process(state, transaction, &opts).await?;
    let first = &response["entry"][0]["response"];
    let filed_now = first["status"]
        .as_str()
        .is_some_and(|s| s.starts_with("201"));
    let mut resp = if filed_now {
        json_response(StatusCode::CREATED, json_text(&response, ctx.pretty)?)
    } else {
        // Filed before: nothing else was written, so there is no more to say.
        let said = format!(
            "this document was filed before, as {}; nothing was written",
            first["location"].as_str().unwrap_or("a Composition")
        );
        let oo = operation_outcome(&[Issue::information(IssueCode::Informational, said)]);
        json_response(StatusCode::OK, json_text(&oo, ctx.pretty)?)
    };
    if let Some(l) = first["location"]
        .as_str()
        .and_then(|l| HeaderValue::from_str(l).ok())
    {
        resp.headers_mut().insert(LOCATION, l);
    }
    Ok(AuditNote {
        action: Some(AuditAction::Transaction),
        recorded: true,
        ..AuditNote::default()
    }
    .attach(resp))
}
