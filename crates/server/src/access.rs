//! The access policy at the HTTP edge: turns the request's [`Principal`] into what it may see
//! (asking [`carerecord_access::policy`] once per request) and maps each refusal to a 403
//! OperationOutcome in words a care worker understands.
//!
//! The principal is put in the request's extensions by authentication; a request without one
//! never reaches the record.
//!
//! A token issued through SMART (App Launch or Backend Services) also carries its granted
//! scopes. They are applied after the policy and only ever narrow it: [`Access::narrow`]
//! turns the policy's [`Visibility`] for one interaction into a smaller one (the types the
//! scopes permit, the patient in context), which the store compiles into the query like the
//! rest of the policy, and leaves only what SQL cannot say (a `?category=` restriction, the
//! compartment of a resource being written) to be checked per resource.

use std::borrow::Cow;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use carerecord_access::classify::SOURCE_ORGANISATION_TAG;
use carerecord_access::policy::{self, Denial};
use carerecord_access::scope::{ContextKind, Interaction, Permit, Restriction, ScopeSet};
use carerecord_access::{Principal, PrincipalId, Visibility};
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
    /// The token's SMART grant, parsed; `None` when the principal acts without one.
    pub grant: Option<Grant>,
}

/// The SMART grant of a token, parsed once for the request.
#[derive(Debug, Clone)]
pub struct Grant {
    scopes: ScopeSet,
    /// The context of the principal's own scopes: `user/` for a person, `system/` for a
    /// system.
    own: ContextKind,
    /// The patient in context, which `patient/` scopes are about.
    patient: Option<String>,
}

impl Grant {
    fn of(p: &Principal) -> Option<Grant> {
        let smart = p.smart.as_ref()?;
        // Granted strings were produced by the parser; one that no longer parses grants
        // nothing rather than everything.
        let scopes = ScopeSet::parse(&smart.scope).unwrap_or_default();
        let own = match p.id {
            PrincipalId::User(_) => ContextKind::User,
            PrincipalId::System(_) => ContextKind::System,
        };
        Some(Grant {
            scopes,
            own,
            patient: smart.patient.clone(),
        })
    }

    /// The context whose scopes permit `i` on `rt`, and how. The principal's own context
    /// first; `patient/` scopes only with a patient in context. A token holding both kinds
    /// gets one of them per request, never their union: narrower, never wider.
    fn decide(&self, rt: ResourceType, i: Interaction) -> Option<(ContextKind, Permit)> {
        match self.scopes.permits(self.own, rt, i) {
            Permit::Denied => {}
            p => return Some((self.own, p)),
        }
        self.patient.as_ref()?;
        match self.scopes.permits(ContextKind::Patient, rt, i) {
            Permit::Denied => None,
            p => Some((ContextKind::Patient, p)),
        }
    }

    /// Every type the `ctx/` scopes permit `i` on without a restriction.
    fn granted_types(&self, ctx: ContextKind, i: Interaction) -> Vec<ResourceType> {
        ResourceType::ALL
            .iter()
            .copied()
            .filter(|t| self.scopes.permits(ctx, *t, i) == Permit::Granted)
            .collect()
    }

    fn refusal(&self, what: String) -> ApiError {
        ApiError::ScopeDenied(format!(
            "This token's scopes do not allow this: it needs {what}. Granted: {}.",
            if self.scopes.is_empty() {
                "none".to_owned()
            } else {
                self.scopes.to_string()
            }
        ))
    }
}

/// What one interaction may touch: the policy's visibility narrowed by the token's scopes,
/// and the checks that remain for each resource. Without a grant it is the policy's
/// visibility and checks nothing.
#[derive(Debug, Clone)]
pub struct Narrow<'a> {
    access: &'a Access,
    vis: Cow<'a, Visibility>,
    /// The type asked about, which `only` applies to.
    rt: Option<ResourceType>,
    /// Resources of `rt` must match one of these (`?category=` scopes); empty for no check.
    only: Vec<Restriction>,
    /// Resources must be in this patient's compartment (or in none).
    patient: Option<String>,
    /// Resources must be of these types: set only for the service identity, whose `All` the
    /// query cannot narrow by type.
    types: Option<Vec<ResourceType>>,
    /// The scope that would have permitted what a check refuses, for its message.
    needed: String,
}

impl Narrow<'_> {
    pub fn vis(&self) -> &Visibility {
        &self.vis
    }

    /// Whether resources need checking one by one (a category restriction, a patient in
    /// context): then writes must look at what they change.
    pub fn checks_resources(&self) -> bool {
        !self.only.is_empty() || self.patient.is_some()
    }

    /// Whether `r` is within the grant: in the patient's compartment when there is one, and
    /// matching a category restriction on its type.
    pub fn keeps(&self, r: &StoredResource) -> bool {
        if let Some(types) = &self.types
            && !types.contains(&r.resource_type)
        {
            return false;
        }
        if let (Some(p), Some(of)) = (&self.patient, &r.patient_id)
            && p != of
        {
            return false;
        }
        if self.only.is_empty() || Some(r.resource_type) != self.rt {
            return true;
        }
        // A deletion marker has no category to match.
        serde_json::from_str::<Value>(&r.body)
            .is_ok_and(|body| self.only.iter().any(|x| x.matches(&body)))
    }

    /// [`Self::keeps`], refusing with the scope that is missing.
    pub fn check(&self, r: &StoredResource) -> Result<(), ApiError> {
        if self.keeps(r) {
            return Ok(());
        }
        let Some(g) = &self.access.grant else {
            return Ok(());
        };
        Err(g.refusal(if self.patient.is_some() {
            format!(
                "{} for a resource of another patient than the one in context",
                self.needed
            )
        } else {
            format!("{} without a category restriction", self.needed)
        }))
    }

    /// Refuses an interaction that cannot apply a category restriction (history is not
    /// searchable by category): it needs the scope without one.
    pub fn refuse_restricted(&self) -> Result<(), ApiError> {
        match &self.access.grant {
            Some(g) if !self.only.is_empty() => Err(g.refusal(format!(
                "{} without a category restriction (history cannot be limited to a category)",
                self.needed
            ))),
            _ => Ok(()),
        }
    }

    /// Refuses a conditional write when resources need checking one by one (the match is
    /// only known inside the write): it needs a scope without a restriction or patient.
    pub fn refuse_conditional(&self) -> Result<(), ApiError> {
        match &self.access.grant {
            Some(g) if self.checks_resources() => Err(g.refusal(format!(
                "{} in the user/ or system/ context without a category restriction for a conditional write",
                self.needed
            ))),
            _ => Ok(()),
        }
    }

    /// Adds the category restriction to a search's parameters, so the query itself (and its
    /// count and paging) only sees what the scopes permit. A second `category` parameter is
    /// an AND with whatever the client asked.
    pub fn restrict(&self, pairs: &mut Vec<(String, String)>) {
        if !self.only.is_empty() {
            let values: Vec<String> = self.only.iter().map(Restriction::search_value).collect();
            pairs.push((self.only[0].param().to_owned(), values.join(",")));
        }
    }

    /// A read that found nothing visible: under a patient in context, the refusal says the
    /// token is for one patient; otherwise as [`Access::not_found_is_denied`].
    pub fn not_found_is_denied(&self, e: StoreError) -> ApiError {
        match (&e, &self.patient, &self.access.grant) {
            (StoreError::NotFound, Some(_), Some(g)) => g.refusal(format!(
                "{} for this resource: the token's patient/ scopes cover only the patient in its launch context",
                self.needed
            )),
            _ => self.access.not_found_is_denied(e),
        }
    }
}

/// `vis` narrowed to `types` and, when given, one patient's compartment. The service
/// identity's `All` has no types to narrow in SQL: it stays `All`, and the types are returned
/// to be checked per resource (its includes) or demanded whole (see [`Access::narrow_all`]).
fn narrowed(
    vis: &Visibility,
    types: &[ResourceType],
    patient: Option<String>,
) -> Result<(Visibility, Option<Vec<ResourceType>>), ApiError> {
    match vis {
        Visibility::All if patient.is_none() => Ok((Visibility::All, Some(types.to_vec()))),
        Visibility::All => Err(ApiError::Forbidden(
            "carerecord's own service identity has no patient context".into(),
        )),
        Visibility::Scoped(s) => {
            let mut s = s.clone();
            s.types = Some(match &s.types {
                Some(allowed) => types
                    .iter()
                    .copied()
                    .filter(|t| allowed.contains(t))
                    .collect(),
                None => types.to_vec(),
            });
            s.patient = patient;
            Ok((Visibility::Scoped(s), None))
        }
    }
}

impl Access {
    /// Decides for `principal` now.
    pub fn new(principal: Principal, settings: &policy::PolicySettings) -> Self {
        let now = now_micros();
        let visibility = policy::visibility(&principal, now, settings);
        let grant = Grant::of(&principal);
        Access {
            principal,
            visibility,
            now,
            grant,
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

    /// What interaction `i` on `rt` may touch: the policy first (its refusals come first),
    /// then the token's scopes, which refuse with the scope that is missing or narrow the
    /// visibility to the types they permit for `i` and the patient in context.
    pub fn narrow(&self, rt: ResourceType, i: Interaction) -> Result<Narrow<'_>, ApiError> {
        let vis = self.vis_for(rt)?;
        let Some(g) = &self.grant else {
            return Ok(self.unnarrowed(vis));
        };
        let Some((ctx, permit)) = g.decide(rt, i) else {
            return Err(g.refusal(i.needed_scope(g.own, rt)));
        };
        let mut types = g.granted_types(ctx, i);
        let only = match permit {
            Permit::Restricted(only) => {
                types.push(rt);
                only
            }
            Permit::Granted | Permit::Denied => Vec::new(),
        };
        let patient = if ctx == ContextKind::Patient {
            g.patient.clone()
        } else {
            None
        };
        let (vis, types) = narrowed(vis, &types, patient.clone())?;
        Ok(Narrow {
            access: self,
            vis: Cow::Owned(vis),
            rt: Some(rt),
            only,
            patient,
            types,
            needed: i.needed_scope(ctx, rt),
        })
    }

    /// Refuses what no SMART scope names (emergency access, the audit trail) to a token that
    /// carries a grant: an app acts within its scopes, and these are outside every scope.
    pub fn refuse_under_grant(&self, what: &str) -> Result<(), ApiError> {
        match &self.grant {
            Some(_) => Err(ApiError::ScopeDenied(format!(
                "{what} is not available to a token issued through SMART: no scope grants it."
            ))),
            None => Ok(()),
        }
    }

    /// The scopes' say on a write (`create`, `update`, `delete`): `None` without a grant, so
    /// writes by principals without one are decided by the policy's write rule alone, as
    /// before. The policy's write rule is checked by the caller first.
    pub fn narrow_write(
        &self,
        rt: ResourceType,
        i: Interaction,
    ) -> Result<Option<Narrow<'_>>, ApiError> {
        if self.grant.is_none() {
            return Ok(None);
        }
        self.narrow(rt, i).map(Some)
    }

    /// Like [`Self::narrow`] for an interaction over every type (system history,
    /// `$everything`'s compartment): the types the scopes permit `i` on without a restriction
    /// (types granted only with a `?category=` are left out), in `ctx` when given, else in the
    /// principal's own context or, failing that, the patient in context.
    pub fn narrow_all(
        &self,
        i: Interaction,
        ctx: Option<ContextKind>,
    ) -> Result<Narrow<'_>, ApiError> {
        let vis = self.vis()?;
        let Some(g) = &self.grant else {
            return Ok(self.unnarrowed(vis));
        };
        let ctx = ctx.unwrap_or_else(|| {
            if g.granted_types(g.own, i).is_empty() && g.patient.is_some() {
                ContextKind::Patient
            } else {
                g.own
            }
        });
        let types = g.granted_types(ctx, i);
        let needed = format!("{}/*.{}", ctx.as_str(), i.letter());
        if types.is_empty() {
            return Err(g.refusal(needed));
        }
        let patient = if ctx == ContextKind::Patient {
            g.patient.clone()
        } else {
            None
        };
        let (vis, only_types) = narrowed(vis, &types, patient.clone())?;
        // A page over every type cannot be narrowed after the fact without breaking paging.
        if only_types.is_some() && types.len() != ResourceType::ALL.len() {
            return Err(g.refusal(needed));
        }
        Ok(Narrow {
            access: self,
            vis: Cow::Owned(vis),
            rt: None,
            only: Vec::new(),
            patient,
            types: None,
            needed,
        })
    }

    /// The context `narrow(rt, i)` decided by (`$everything` reads the compartment in the
    /// context that let it read the Patient).
    pub fn context_of(&self, n: &Narrow<'_>) -> Option<ContextKind> {
        let g = self.grant.as_ref()?;
        Some(if n.patient.is_some() {
            ContextKind::Patient
        } else {
            g.own
        })
    }

    fn unnarrowed<'a>(&'a self, vis: &'a Visibility) -> Narrow<'a> {
        Narrow {
            access: self,
            vis: Cow::Borrowed(vis),
            rt: None,
            only: Vec::new(),
            patient: None,
            types: None,
            needed: String::new(),
        }
    }

    /// Names the principal's organisation as the source of what it writes (the
    /// source-organisation tag, replacing any the body claims): who may see an item depends on
    /// its source, so a writer must not choose it. carerecord's own service identity (loaders
    /// of data from the organisations themselves) keeps the tag it is given.
    pub fn stamp_source(&self, body: &mut Value) {
        self.stamp_source_of(body, None);
    }

    /// [`stamp_source`](Self::stamp_source), and for a registered source system also
    /// `meta.source`: `urn:carerecord:system:{client id}`, with `#{message}` when the resource
    /// came in a submission that names itself (a Bundle's identifier or id), as an HL7 v2
    /// message's resources carry `urn:hl7v2:{application}@{facility}#{control id}`.
    pub fn stamp_source_of(&self, body: &mut Value, message: Option<&str>) {
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
        if let (carerecord_access::Role::System, carerecord_access::PrincipalId::System(client)) =
            (self.principal.role, &self.principal.id)
        {
            let mut source = format!("urn:carerecord:system:{}", uri_part(client));
            if let Some(m) = message {
                source.push('#');
                source.push_str(&uri_part(m));
            }
            meta.insert("source".into(), Value::String(source));
        }
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

/// `s` with everything but URI unreserved characters percent-encoded, so it fits in a URN.
fn uri_part(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
