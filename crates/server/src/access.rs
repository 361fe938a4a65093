//! The access policy at the HTTP edge: turns the request's [`Principal`] into what it may see
//! (asking [`carerecord_access::policy`] once per request) and maps each refusal to a 403
//! OperationOutcome in words a care worker understands.
//!
//! The principal is put in the request's extensions by authentication; a request without one
//! never reaches the record.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use carerecord_access::classify::SOURCE_ORGANISATION_TAG;
use carerecord_access::policy::{self, Denial};
use carerecord_access::{Principal, Visibility};
use carerecord_fhir::ResourceType;
use carerecord_store::{StoreError, StoredResource, now_micros};
use serde_json::Value;

use crate::AppState;
use crate::error::ApiError;

/// Who is asking and what they may see, decided once for the request.
#[derive(Debug, Clone)]
pub struct Access {
    pub principal: Principal,
    /// `Err` when the principal may see no records at all (kept, not raised, so handlers
    /// that are not about records — audit, training — can still run).
    pub visibility: Result<Visibility, Denial>,
    pub now: i64,
}

impl Access {
    /// Decides for `principal` now.
    pub fn new(principal: Principal, settings: &policy::PolicySettings) -> Self {
        let now = now_micros();
        let visibility = policy::visibility(&principal, now, settings);
        Access {
            principal,
            visibility,
            now,
        }
    }

    /// carerecord acting for itself on a trusted local path (the command line's import and
    /// demo preload): sees and writes everything.
    pub fn service(name: &str) -> Self {
        Access::new(
            Principal {
                id: carerecord_access::PrincipalId::System(name.to_owned()),
                name: name.to_owned(),
                role: carerecord_access::Role::Service,
                organisation_id: "carerecord".to_owned(),
                organisation_ods: "CARERECORD".to_owned(),
                training_valid_until: None,
                smart: None,
            },
            &policy::PolicySettings::default(),
        )
    }

    /// What may be seen, or the 403 that says why nothing may.
    pub fn vis(&self) -> Result<&Visibility, ApiError> {
        self.visibility.as_ref().map_err(|d| ApiError::Denied(*d))
    }

    /// For a request about one type: refused up front when the role's view excludes it.
    pub fn vis_for(&self, rt: ResourceType) -> Result<&Visibility, ApiError> {
        let vis = self.vis()?;
        policy::check_type(vis, rt).map_err(ApiError::Denied)?;
        Ok(vis)
    }

    /// Writes need a role that may write.
    pub fn check_write(&self) -> Result<(), ApiError> {
        policy::may_write(&self.principal, self.now).map_err(ApiError::Denied)
    }

    /// Names the principal's organisation as the source of what it writes (the
    /// source-organisation tag, replacing any the body claims): who may see an item depends on
    /// its source, so a writer must not choose it. carerecord's own service identity (loaders
    /// of data from the organisations themselves) keeps the tag it is given.
    pub fn stamp_source(&self, body: &mut Value) {
        if self.principal.role == carerecord_access::Role::Service {
            return;
        }
        let Some(obj) = body.as_object_mut() else {
            return;
        };
        let meta = obj
            .entry("meta")
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
        let Some(meta) = meta.as_object_mut() else {
            return;
        };
        let tags = meta
            .entry("tag")
            .or_insert_with(|| Value::Array(Vec::new()));
        let Some(tags) = tags.as_array_mut() else {
            return;
        };
        tags.retain(|t| t.get("system").and_then(Value::as_str) != Some(SOURCE_ORGANISATION_TAG));
        tags.push(serde_json::json!({
            "system": SOURCE_ORGANISATION_TAG,
            "code": self.principal.organisation_ods,
        }));
    }

    /// Maps a read of something not visible to the same refusal whether or not it exists.
    pub fn not_found_is_denied(&self, e: StoreError) -> ApiError {
        match (e, self.visibility.as_ref()) {
            (StoreError::NotFound, Ok(Visibility::Scoped(_))) => {
                ApiError::Denied(Denial::NotInCare)
            }
            (e, _) => ApiError::from(e),
        }
    }

    /// The resource as this principal may see it (a restricted view trims discharge
    /// summaries to their plan and medicines).
    pub fn shown(&self, r: StoredResource) -> StoredResource {
        let Ok(vis) = self.visibility.as_ref() else {
            return r;
        };
        if !matches!(vis, Visibility::Scoped(s) if s.latest_discharge_only)
            || r.resource_type != ResourceType::Composition
            || r.deleted
        {
            return r;
        }
        let Ok(mut body) = serde_json::from_str::<Value>(&r.body) else {
            return r;
        };
        policy::trim_for_view(vis, r.resource_type, &mut body);
        StoredResource {
            body: body.to_string(),
            ..r
        }
    }
}

impl FromRequestParts<AppState> for Access {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(a) = parts.extensions.get::<Access>() {
            return Ok(a.clone());
        }
        let principal = parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or_else(|| {
                ApiError::Unauthorized(
                    "sign in first: this request needs a valid bearer token".into(),
                )
            })?;
        let access = Access::new(principal, &state.settings.policy);
        parts.extensions.insert(access.clone());
        Ok(access)
    }
}

/// The information issue a search or `$everything` carries when sensitive items were withheld.
pub fn withheld_issue(n: u64) -> Option<carerecord_fhir::Issue> {
    (n > 0).then(|| {
        carerecord_fhir::Issue::information(
            carerecord_fhir::IssueCode::Suppressed,
            format!(
                "{n} item{} withheld: {} sensitive and can only be seen by the organisation that recorded {}.",
                if n == 1 { " is" } else { "s are" },
                if n == 1 { "it is" } else { "they are" },
                if n == 1 { "it" } else { "them" },
            ),
        )
    })
}
