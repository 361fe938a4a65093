//! `GET [base]/metadata`: the CapabilityStatement, generated from what is implemented — the
//! resource types in `ResourceType::ALL` and the search parameters the registry holds.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use carerecord_fhir::ResourceType;
use carerecord_search::registry::{ParamKind, params_for};
use serde_json::{Value, json};

use super::context::Ctx;
use super::render::{json_response, json_text};
use crate::AppState;
use crate::error::ApiError;

/// Search parameter kinds the store can answer.
fn searchable(kind: ParamKind) -> bool {
    !matches!(kind, ParamKind::Composite | ParamKind::Special)
}

pub fn capability_statement(base: &str) -> Value {
    let resources: Vec<Value> = ResourceType::ALL
        .iter()
        .map(|rt| {
            let params: Vec<Value> = params_for(*rt)
                .into_iter()
                .filter(|p| searchable(p.kind))
                .map(|p| json!({"name": p.code, "definition": p.url, "type": p.kind.as_str()}))
                .collect();
            let mut rev: Vec<String> = Vec::new();
            let includes: Vec<String> = params_for(*rt)
                .into_iter()
                .filter(|p| p.kind == ParamKind::Reference)
                .map(|p| format!("{rt}:{}", p.code))
                .collect();
            for other in ResourceType::ALL {
                for p in params_for(*other) {
                    if p.kind == ParamKind::Reference && p.targets.iter().any(|t| t == rt.as_str())
                    {
                        rev.push(format!("{other}:{}", p.code));
                    }
                }
            }
            let mut r = json!({
                "type": rt.as_str(),
                "interaction": [
                    {"code": "read"}, {"code": "vread"}, {"code": "update"}, {"code": "delete"},
                    {"code": "history-instance"}, {"code": "history-type"}, {"code": "create"},
                    {"code": "search-type"}
                ],
                "versioning": "versioned-update",
                "readHistory": true,
                "updateCreate": true,
                "conditionalCreate": true,
                "conditionalRead": "not-supported",
                "conditionalUpdate": true,
                "conditionalDelete": "single",
                "searchInclude": includes,
                "searchRevInclude": rev,
                "searchParam": params,
            });
            if *rt == ResourceType::Patient {
                r["operation"] = json!([{
                    "name": "everything",
                    "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything"
                }]);
            }
            r
        })
        .collect();
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-25",
        "publisher": "carerecord",
        "kind": "instance",
        "software": {"name": "carerecord", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {"description": "carerecord shared care record", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [{
            "mode": "server",
            "security": {
                "extension": [{
                    "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                    "extension": [
                        {"url": "token", "valueUri": crate::auth::token_endpoint_for_base(base)},
                        {"url": "authorize", "valueUri": crate::auth::auth_endpoint_for_base(base, "authorize")},
                        {"url": "revoke", "valueUri": crate::auth::auth_endpoint_for_base(base, "revoke")},
                        {"url": "introspect", "valueUri": crate::auth::auth_endpoint_for_base(base, "introspect")}
                    ]
                }],
                "service": [{
                    "coding": [{
                        "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                        "code": "SMART-on-FHIR"
                    }]
                }],
                "description": "Bearer tokens: systems use OAuth2 client credentials at the token endpoint (private_key_jwt or a client secret), with SMART system/ scopes; SMART apps use the authorisation code flow with PKCE (S256), the person signing in to carerecord; people sign in at /auth/login with a password and a TOTP code. SMART scopes (v1 or v2) only narrow what the access policy allows: a request the policy allows but the scopes do not is refused with 403 naming the missing scope."
            },
            "resource": resources,
            "interaction": [
                {"code": "transaction"}, {"code": "batch"}, {"code": "history-system"}
            ],
        }],
    })
}

pub async fn handler(State(_state): State<AppState>, ctx: Ctx) -> Result<Response, ApiError> {
    Ok(json_response(
        StatusCode::OK,
        json_text(&capability_statement(&ctx.base), ctx.pretty)?,
    ))
}
