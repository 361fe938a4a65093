//! The audit trail as FHIR R4 `AuditEvent`s (IHE Basic Audit Log Patterns, BALP), for privacy
//! officers: `GET [base]/AuditEvent?…` and `GET [base]/AuditEvent/[seq]`.
//!
//! Authorisation is not decided here: these routes are served by [`router`] on its own so the
//! access-policy layer (privacy officers only) can wrap exactly them. The handlers only read the
//! store from [`AppState`].
//!
//! Search parameters (all optional, combined with AND):
//!
//! | parameter | meaning |
//! |---|---|
//! | `patient` | entries that touched this Patient (`id` or `Patient/id`): a person's access report |
//! | `agent` | entries by this principal id (user or system) |
//! | `organization` | entries by principals of this organisation (carerecord id or ODS code) |
//! | `date` | `recorded` with prefix `ge`, `gt`, `le`, `lt` or `eq` (default); repeatable |
//! | `outcome` | `0`, `4`, `8` (or `allowed`, `denied`, `error`) |
//! | `subtype` | carerecord's action code (`read`, `search`, `break-glass`, `login`, `login-failed`, `lockout`, `logout`, `token`, `break-glass-review`, …) |
//! | `rule` | carerecord's decision rule (`deny-training-expired`, `deny-wrong-password`, `account-locked`, …; the `access-decision-rule` extension) |
//! | `_count` | page size; `_cursor` the next page's cursor (newest first, keyset-paged) |
//!
//! The id of an AuditEvent is the entry's sequence number.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use base64::Engine as _;
use carerecord_fhir::{Issue, IssueCode};
use carerecord_search::datetime::DateRange;
use carerecord_store::audit::hash_hex;
use carerecord_store::{
    AuditAction, AuditEntry, AuditFilter, AuditOutcome, AuditRecord, AuditScope, PrincipalKind,
    ResourceStore, StoredResource, format_instant, now_micros,
};
use serde_json::{Value, json};

use super::context::Ctx;
use super::render::{json_response, json_text, paging_links};
use crate::AppState;
use crate::error::ApiError;

/// Base of carerecord's own extension and code system URLs.
const CARERECORD: &str = "https://fhir.carerecord.example";
const DCM: &str = "http://dicom.nema.org/resources/ontology/DCM";
const EVENT_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-event-type";
const RESTFUL: &str = "http://hl7.org/fhir/restful-interaction";
const ENTITY_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-entity-type";
const OBJECT_ROLE: &str = "http://terminology.hl7.org/CodeSystem/object-role";
const PARTICIPATION: &str = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType";
const ROLE_CLASS: &str = "http://terminology.hl7.org/CodeSystem/v3-RoleClass";
const ACT_REASON: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";
const SOURCE_TYPE: &str = "http://terminology.hl7.org/CodeSystem/security-source-type";
const BALP_ENTITY: &str = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType";
const ODS: &str = "https://fhir.nhs.uk/Id/ods-organization-code";

/// The audit routes (mounted under `/fhir` by [`super::router`]).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/AuditEvent", get(search_handler))
        .route("/AuditEvent/{id}", get(read_handler))
}

fn coding(system: &str, code: &str, display: &str) -> Value {
    json!({"system": system, "code": code, "display": display})
}

/// The event type, the RESTful interaction (for REST events), and BALP's action code.
fn classify(a: AuditAction) -> (Value, Option<&'static str>, &'static str) {
    let rest = coding(EVENT_TYPE, "rest", "RESTful Operation");
    let dcm = |code, display| coding(DCM, code, display);
    match a {
        AuditAction::Read => (rest, Some("read"), "R"),
        AuditAction::Vread => (rest, Some("vread"), "R"),
        AuditAction::History => (rest, Some("history-instance"), "R"),
        AuditAction::Search => (rest, Some("search-type"), "E"),
        AuditAction::Everything => (rest, Some("operation"), "E"),
        AuditAction::Create => (rest, Some("create"), "C"),
        AuditAction::Update => (rest, Some("update"), "U"),
        AuditAction::Delete => (rest, Some("delete"), "D"),
        AuditAction::Transaction => (rest, Some("transaction"), "E"),
        AuditAction::Export => (dcm("110106", "Export"), None, "R"),
        AuditAction::Login
        | AuditAction::LoginFailed
        | AuditAction::Logout
        | AuditAction::Token
        | AuditAction::Lockout => (dcm("110114", "User Authentication"), None, "E"),
        AuditAction::BreakGlass | AuditAction::Denial => {
            (dcm("110113", "Security Alert"), None, "E")
        }
        AuditAction::Admin | AuditAction::BreakGlassReview => {
            (dcm("110100", "Application Activity"), None, "E")
        }
    }
}

fn outcome_code(o: AuditOutcome) -> &'static str {
    match o {
        AuditOutcome::Allowed => "0",
        AuditOutcome::Denied => "4",
        AuditOutcome::Error => "8",
    }
}

fn purpose(r: &AuditRecord) -> Option<Value> {
    r.purpose_of_use
        .as_ref()
        .map(|p| json!([{"coding": [{"system": ACT_REASON, "code": p}]}]))
}

fn agents(r: &AuditRecord) -> Vec<Value> {
    let a = &r.agent;
    let id_system = match a.kind {
        PrincipalKind::User => format!("{CARERECORD}/Id/user"),
        PrincipalKind::System => format!("{CARERECORD}/Id/system"),
    };
    let mut who = json!({"identifier": {"system": id_system, "value": a.id}});
    if let Some(n) = &a.name {
        who["display"] = json!(n);
    }
    let mut user = json!({
        "type": {"coding": [coding(PARTICIPATION, "IRCP", "information recipient")]},
        "who": who,
        "requestor": true,
    });
    if let Some(role) = &a.role {
        user["role"] = json!([{"coding": [{"system": format!("{CARERECORD}/CodeSystem/role"), "code": role}]}]);
    }
    if let Some(n) = &a.name {
        user["name"] = json!(n);
    }
    if let Some(addr) = &r.client_address {
        user["network"] = json!({"address": addr, "type": "2"});
    }
    if let Some(p) = purpose(r) {
        user["purposeOfUse"] = p;
    }
    let mut out = vec![user];
    if a.organisation_id.is_some() || a.ods_code.is_some() {
        let mut who = json!({});
        if let Some(id) = &a.organisation_id {
            who["reference"] = json!(format!("Organization/{id}"));
        }
        if let Some(ods) = &a.ods_code {
            who["identifier"] = json!({"system": ODS, "value": ods});
        }
        out.push(json!({
            "type": {"coding": [coding(ROLE_CLASS, "PROV", "healthcare provider")]},
            "who": who,
            "requestor": false,
        }));
    }
    if let Some(p) = &r.on_behalf_of {
        out.push(json!({
            "type": {"coding": [coding(PARTICIPATION, "RESP", "responsible party")]},
            "who": {"identifier": {"system": format!("{CARERECORD}/Id/user"), "value": p}},
            "requestor": false,
        }));
    }
    out
}

fn entities(r: &AuditRecord) -> Vec<Value> {
    let mut out: Vec<Value> = r
        .patient_ids
        .iter()
        .map(|p| {
            json!({
                "what": {"reference": format!("Patient/{p}")},
                "type": coding(ENTITY_TYPE, "1", "Person"),
                "role": coding(OBJECT_ROLE, "1", "Patient"),
            })
        })
        .collect();
    out.extend(r.resources.iter().map(|res| {
        json!({
            "what": {"reference": res},
            "type": coding(ENTITY_TYPE, "2", "System Object"),
            "role": coding(OBJECT_ROLE, "4", "Domain Resource"),
        })
    }));
    if let Some(q) = &r.query {
        out.push(json!({
            "type": coding(ENTITY_TYPE, "2", "System Object"),
            "role": coding(OBJECT_ROLE, "24", "Query"),
            "query": base64::engine::general_purpose::STANDARD.encode(q.as_bytes()),
        }));
    }
    if let Some(id) = &r.request_id {
        out.push(json!({
            "what": {"identifier": {"value": id}},
            "type": {"system": BALP_ENTITY, "code": "XrequestId"},
        }));
    }
    out
}

/// An audit entry as an R4 `AuditEvent` (IHE BALP shape). Pure.
///
/// The sequence number is the id; the decision rule, and the chain's hashes are extensions, so
/// an exported event can be matched to the trail `audit verify` checks.
pub fn render(e: &AuditEntry) -> Value {
    let r = &e.record;
    let (event_type, interaction, action) = classify(r.action);
    let mut subtype = Vec::new();
    if let Some(code) = interaction {
        subtype.push(json!({"system": RESTFUL, "code": code}));
    }
    subtype.push(json!({"system": format!("{CARERECORD}/CodeSystem/audit-action"), "code": r.action.as_str()}));
    let mut extension = vec![
        json!({
            "url": format!("{CARERECORD}/StructureDefinition/access-decision-rule"),
            "valueString": r.rule,
        }),
        json!({
            "url": format!("{CARERECORD}/StructureDefinition/audit-chain"),
            "extension": [
                {"url": "sequence", "valueString": e.seq.to_string()},
                {"url": "previousHash", "valueString": hash_hex(&e.prev_hash)},
                {"url": "hash", "valueString": hash_hex(&e.hash)},
            ],
        }),
        json!({
            "url": format!("{CARERECORD}/StructureDefinition/audit-channel"),
            "valueCode": r.channel.as_str(),
        }),
    ];
    if let Some(b) = &r.break_glass {
        extension.push(json!({
            "url": format!("{CARERECORD}/StructureDefinition/break-glass-reason"),
            "valueCodeableConcept": {
                "coding": [{"system": format!("{CARERECORD}/CodeSystem/break-glass-reason"), "code": b.code}],
                "text": b.text,
            },
        }));
    }
    let mut ev = json!({
        "resourceType": "AuditEvent",
        "id": e.seq.to_string(),
        "extension": extension,
        "type": event_type,
        "subtype": subtype,
        "action": action,
        "recorded": format_instant(r.time),
        "outcome": outcome_code(r.outcome),
        "agent": agents(r),
        "source": {
            "site": "carerecord",
            "observer": {"display": "carerecord"},
            "type": [coding(SOURCE_TYPE, "4", "Application Server")],
        },
    });
    if r.outcome != AuditOutcome::Allowed {
        ev["outcomeDesc"] = json!(format!("{} by rule {}", r.outcome, r.rule));
    }
    if let Some(p) = purpose(r) {
        ev["purposeOfEvent"] = p;
    }
    let ents = entities(r);
    if !ents.is_empty() {
        ev["entity"] = Value::Array(ents);
    }
    ev
}

/// `Type/id/_history/version` of each resource, for [`AuditRecord::resources`].
pub fn touched(resources: &[StoredResource]) -> Vec<String> {
    resources
        .iter()
        .map(|r| {
            format!(
                "{}/{}/_history/{}",
                r.resource_type,
                r.id.as_str(),
                r.version_id.get()
            )
        })
        .collect()
}

/// Records an access outside a write and returns once it is durable — call it before sending
/// the response of a read, search or denial. (Writes use `StoreTx::append_audit`.)
pub async fn record(store: &dyn ResourceStore, record: AuditRecord) -> Result<(), ApiError> {
    store
        .append_audit(vec![record])
        .await
        .map_err(ApiError::from)
}

fn invalid(msg: impl Into<String>) -> ApiError {
    ApiError::bad_request(IssueCode::Value, msg)
}

/// The filter, page size and cursor of an AuditEvent search.
fn parse_search(
    query: &[(String, String)],
    default_count: u32,
    max_count: u32,
) -> Result<(AuditFilter, u32, Option<String>), ApiError> {
    let mut f = AuditFilter::default();
    let mut count = default_count;
    let mut cursor = None;
    for (k, v) in query {
        match k.as_str() {
            "patient" => f.patient_id = Some(v.strip_prefix("Patient/").unwrap_or(v).to_owned()),
            "agent" => f.agent_id = Some(v.clone()),
            "organization" => {
                f.organisation = Some(v.strip_prefix("Organization/").unwrap_or(v).to_owned())
            }
            "outcome" => {
                f.outcome = Some(match v.as_str() {
                    "0" | "allowed" => AuditOutcome::Allowed,
                    "4" | "denied" => AuditOutcome::Denied,
                    "8" | "error" => AuditOutcome::Error,
                    _ => return Err(invalid("outcome must be 0, 4 or 8")),
                })
            }
            "subtype" => {
                f.action = Some(
                    v.parse::<AuditAction>()
                        .map_err(|_| invalid("subtype is not a carerecord audit action code"))?,
                )
            }
            "rule" => f.rule = Some(v.clone()),
            "date" => {
                let (prefix, value) = match v.get(..2) {
                    Some(p @ ("ge" | "gt" | "le" | "lt" | "eq")) => (p, &v[2..]),
                    _ => ("eq", v.as_str()),
                };
                let d = DateRange::parse(value).ok_or_else(|| {
                    invalid("date must be a FHIR date or dateTime, with an optional prefix")
                })?;
                let (since, before) = match prefix {
                    "ge" => (Some(d.low), None),
                    "gt" => (Some(d.high), None),
                    "le" => (None, Some(d.high)),
                    "lt" => (None, Some(d.low)),
                    _ => (Some(d.low), Some(d.high)),
                };
                if let Some(s) = since {
                    f.since = Some(f.since.map_or(s, |x| x.max(s)));
                }
                if let Some(b) = before {
                    f.before = Some(f.before.map_or(b, |x| x.min(b)));
                }
            }
            "_count" => {
                count = v
                    .parse::<u32>()
                    .map_err(|_| invalid("_count must be a whole number"))?
                    .min(max_count);
            }
            "_cursor" => cursor = Some(v.clone()),
            "_format" | "_pretty" => {}
            other => {
                return Err(ApiError::BadRequest(vec![Issue::error(
                    IssueCode::NotSupported,
                    format!(
                        "'{}' is not a search parameter of AuditEvent here",
                        other.chars().take(40).collect::<String>()
                    ),
                )]));
            }
        }
    }
    Ok((f, count.max(1), cursor))
}

async fn search_handler(
    State(state): State<AppState>,
    access: crate::access::Access,
    ctx: Ctx,
) -> Result<Response, ApiError> {
    carerecord_access::policy::may_read_audit(&access.principal, access.now)
        .map_err(ApiError::Denied)?;
    access.refuse_under_grant("The audit trail")?;
    let settings = &state.settings;
    let (mut filter, count, cursor) = parse_search(
        &ctx.query,
        settings.default_page_size,
        settings.max_page_size,
    )?;
    filter.scope = scope(&state, &access);
    let page = state
        .store
        .audit_search(&filter, count, cursor.as_deref())
        .await?;
    let links = paging_links(
        &format!("{}/AuditEvent", ctx.base),
        &ctx.query,
        page.next_cursor.as_deref(),
    );
    let entries: Vec<Value> = page
        .items
        .iter()
        .map(|e| {
            json!({
                "fullUrl": format!("{}/AuditEvent/{}", ctx.base, e.seq),
                "resource": render(e),
                "search": {"mode": "match"},
            })
        })
        .collect();
    let mut bundle = json!({
        "resourceType": "Bundle",
        "id": uuid::Uuid::now_v7().to_string(),
        "meta": {"lastUpdated": format_instant(now_micros())},
        "type": "searchset",
        "link": links,
    });
    if !entries.is_empty() {
        bundle["entry"] = Value::Array(entries);
    }
    Ok(json_response(
        StatusCode::OK,
        json_text(&bundle, ctx.pretty)?,
    ))
}

/// A privacy officer reviews their own organisation's share of the trail: what its staff and
/// systems did, and who looked at the people it cares for. carerecord's service identity sees
/// all of it.
pub fn scope(state: &AppState, access: &crate::access::Access) -> Option<AuditScope> {
    if access.principal.role == carerecord_access::Role::Service {
        return None;
    }
    Some(AuditScope {
        org_id: access.principal.organisation_id.clone(),
        now: access.now,
        encounter_cutoff: state.settings.policy.encounter_cutoff(access.now),
    })
}

async fn read_handler(
    State(state): State<AppState>,
    Path(id): Path<String>,
    access: crate::access::Access,
    ctx: Ctx,
) -> Result<Response, ApiError> {
    carerecord_access::policy::may_read_audit(&access.principal, access.now)
        .map_err(ApiError::Denied)?;
    access.refuse_under_grant("The audit trail")?;
    let seq = id
        .parse::<i64>()
        .ok()
        .filter(|s| *s > 0)
        .ok_or_else(|| ApiError::NotFound("there is no AuditEvent with this id".into()))?;
    let e = match scope(&state, &access) {
        None => state.store.audit_entry(seq).await?,
        Some(sc) => {
            let filter = AuditFilter {
                seq: Some(seq),
                scope: Some(sc),
                ..AuditFilter::default()
            };
            let page = state.store.audit_search(&filter, 1, None).await?;
            page.items.into_iter().next().ok_or_else(|| {
                ApiError::NotFound(
                    "there is no AuditEvent with this id for your organisation".into(),
                )
            })?
        }
    };
    Ok(json_response(
        StatusCode::OK,
        json_text(&render(&e), ctx.pretty)?,
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code")]
mod tests {
    use carerecord_store::audit::{GENESIS, chain};
    use carerecord_store::{AuditAgent, AuditKey, BreakGlass, Channel};

    use super::*;

    fn entry(action: AuditAction, outcome: AuditOutcome) -> AuditEntry {
        let mut r = AuditRecord::new(
            1_764_070_000_123_456,
            action,
            outcome,
            "legitimate-relationship",
            AuditAgent {
                kind: PrincipalKind::User,
                id: "u-1".into(),
                name: Some("Test Clinician".into()),
                role: Some("R8000".into()),
                organisation_id: Some("org-1".into()),
                ods_code: Some("A99999".into()),
            },
            Channel::Portal,
        );
        r.on_behalf_of = Some("u-9".into());
        r.client_address = Some("192.0.2.10".into());
        r.purpose_of_use = Some("ETREAT".into());
        r.break_glass = Some(BreakGlass {
            code: "emergency".into(),
            text: "Synthetic reason".into(),
        });
        r.patient_ids = vec!["pat-1".into()];
        r.resources = vec!["Observation/obs-1/_history/2".into()];
        r.query = Some("Observation?patient=pat-1".into());
        r.request_id = Some("req-1".into());
        let key = AuditKey::new(&[1u8; 32]).unwrap();
        chain(&key, 41, GENESIS, vec![r]).remove(0)
    }

    #[test]
    fn every_kind_of_entry_renders_as_a_valid_r4_audit_event() {
        for a in AuditAction::ALL {
            for o in AuditOutcome::ALL {
                let ev = render(&entry(*a, *o));
                let issues = carerecord_fhir::validate::validate(&ev);
                assert!(issues.is_empty(), "{a} {o}: {issues:?}\n{ev:#}");
            }
        }
        // The validator does look inside: a wrongly shaped element is reported.
        let mut bad = render(&entry(AuditAction::Read, AuditOutcome::Allowed));
        bad["entity"][0]["type"] = json!({"coding": [bad["entity"][0]["type"].clone()]});
        assert!(!carerecord_fhir::validate::validate(&bad).is_empty());
    }

    #[test]
    fn a_read_follows_balp() {
        let ev = render(&entry(AuditAction::Read, AuditOutcome::Allowed));
        assert_eq!(ev["id"], "42");
        assert_eq!(ev["type"]["code"], "rest");
        assert_eq!(ev["subtype"][0]["system"], RESTFUL);
        assert_eq!(ev["subtype"][0]["code"], "read");
        assert_eq!(ev["action"], "R");
        assert_eq!(ev["outcome"], "0");
        assert_eq!(ev["recorded"], format_instant(1_764_070_000_123_456));
        assert_eq!(ev["agent"][0]["requestor"], true);
        assert_eq!(ev["agent"][0]["who"]["identifier"]["value"], "u-1");
        assert_eq!(ev["agent"][0]["network"]["address"], "192.0.2.10");
        assert_eq!(ev["agent"][1]["who"]["identifier"]["value"], "A99999");
        assert_eq!(ev["entity"][0]["what"]["reference"], "Patient/pat-1");
        assert_eq!(ev["entity"][0]["role"]["code"], "1");
        assert_eq!(
            ev["entity"][1]["what"]["reference"],
            "Observation/obs-1/_history/2"
        );
        assert_eq!(ev["entity"][1]["role"]["code"], "4");
        assert_eq!(ev["purposeOfEvent"][0]["coding"][0]["code"], "ETREAT");
        let text = ev.to_string();
        assert!(text.contains("legitimate-relationship"));
        assert!(text.contains("Synthetic reason"));
    }

    #[test]
    fn denials_and_errors_have_their_outcome_codes() {
        let ev = render(&entry(AuditAction::Denial, AuditOutcome::Denied));
        assert_eq!(ev["outcome"], "4");
        assert_eq!(ev["type"]["code"], "110113");
        assert_eq!(
            render(&entry(AuditAction::Update, AuditOutcome::Error))["outcome"],
            "8"
        );
        assert_eq!(
            render(&entry(AuditAction::Create, AuditOutcome::Allowed))["action"],
            "C"
        );
    }

    #[test]
    fn search_parameters_become_a_filter() {
        let q = |pairs: &[(&str, &str)]| {
            let v: Vec<(String, String)> = pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            parse_search(&v, 50, 100)
        };
        let (f, count, cursor) = q(&[
            ("patient", "Patient/pat-1"),
            ("agent", "u-1"),
            ("organization", "A99999"),
            ("date", "ge2026-11-01"),
            ("date", "lt2026-12"),
            ("outcome", "4"),
            ("subtype", "break-glass"),
            ("_count", "500"),
            ("_cursor", "a10"),
        ])
        .unwrap();
        assert_eq!(f.patient_id.as_deref(), Some("pat-1"));
        assert_eq!(f.agent_id.as_deref(), Some("u-1"));
        assert_eq!(f.organisation.as_deref(), Some("A99999"));
        assert_eq!(f.since, DateRange::parse("2026-11-01").map(|d| d.low));
        assert_eq!(f.before, DateRange::parse("2026-12").map(|d| d.low));
        assert_eq!(f.outcome, Some(AuditOutcome::Denied));
        assert_eq!(f.action, Some(AuditAction::BreakGlass));
        assert_eq!(count, 100);
        assert_eq!(cursor.as_deref(), Some("a10"));
        assert!(q(&[("outcome", "2")]).is_err());
        assert!(q(&[("name", "x")]).is_err());
        assert!(q(&[("date", "yesterday")]).is_err());
    }
}
