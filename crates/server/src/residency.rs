//! Recording that a person moved in to a care home or moved out: the one operation both
//! channels use — the portal's pages for a care home manager, and `POST`/`PUT EpisodeOfCare`
//! by a care home's registered system. The rules are `carerecord_access::residency`'s; this
//! module reads what they need inside one store transaction, writes the new EpisodeOfCare
//! version through the ordinary write path (so the care relationship is reclassified with it)
//! and commits it together with its audit entry.
//!
//! A person is found by NHS number among everyone (the record of someone not yet in the
//! home's care is not visible to it), but nothing about them is returned unless NHS number and
//! date of birth both match, and never a name: the caller learns only an id it can read once
//! the stay exists.

use carerecord_access::residency::{self, Home, MoveIn, MoveInPlan, PatientNamed, Refusal};
use carerecord_fhir::nhs_number::NHS_NUMBER_SYSTEM;
use carerecord_fhir::{Issue, IssueCode, LogicalId, NhsNumber, ResourceType, VersionId};
use carerecord_search::query::{Handling, parse};
use carerecord_store::{
    AuditAction, AuditOutcome, Channel, ResourceStore, StoreError, StoreTx, StoredResource, write,
};
use serde_json::{Value, json};
use time::Date;

use crate::access::Access;
use crate::audit::{AuditNote, record};
use crate::error::ApiError;
use crate::fhir::interactions::{self, Written};

/// What a recorded change was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    MovedIn,
    /// The person already lived there: nothing was written.
    AlreadyResident,
    MovedOut,
    MoveInUndone,
    MoveOutUndone,
}

impl Change {
    /// The audit rule naming the change.
    pub fn rule(self) -> &'static str {
        match self {
            Change::MovedIn | Change::AlreadyResident => "residency-moved-in",
            Change::MovedOut => "residency-moved-out",
            Change::MoveInUndone => "residency-move-in-undone",
            Change::MoveOutUndone => "residency-move-out-undone",
        }
    }
}

/// A change as written.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub change: Change,
    /// The episode's version after the change.
    pub episode: StoredResource,
    pub patient_id: String,
}

/// Why a change was not recorded: one of the rules, or a failure of the store.
#[derive(Debug)]
pub enum ResidencyError {
    Refused(Refusal),
    Api(ApiError),
}

impl From<ApiError> for ResidencyError {
    fn from(e: ApiError) -> Self {
        ResidencyError::Api(e)
    }
}

impl From<StoreError> for ResidencyError {
    fn from(e: StoreError) -> Self {
        ResidencyError::Api(ApiError::from(e))
    }
}

impl From<Refusal> for ResidencyError {
    fn from(r: Refusal) -> Self {
        ResidencyError::Refused(r)
    }
}

impl From<ResidencyError> for ApiError {
    fn from(e: ResidencyError) -> Self {
        match e {
            ResidencyError::Api(e) => e,
            ResidencyError::Refused(r) => refusal(r),
        }
    }
}

/// A refusal as the API answers it: the policy's denials are 403, the rest 422.
pub fn refusal(r: Refusal) -> ApiError {
    match r {
        Refusal::Denied(d) => ApiError::Denied(d),
        other => {
            ApiError::Unprocessable(vec![Issue::error(IssueCode::BusinessRule, other.message())])
        }
    }
}

/// Whether a write of `rt` by this principal goes through the residency rules: an
/// EpisodeOfCare written by anyone but carerecord's own service identity (its loaders carry
/// the organisations' own data).
pub fn guarded(access: &Access, rt: ResourceType) -> bool {
    rt == ResourceType::EpisodeOfCare && access.principal.role != carerecord_access::Role::Service
}

/// Stays are started and ended only by `POST` and `PUT EpisodeOfCare/{id}`, where the rules
/// are applied: a guarded EpisodeOfCare write any other way (a Bundle entry, a conditional
/// update, a delete) is refused, so no path around them exists. A mistaken stay is marked
/// `entered-in-error`, which keeps its history.
pub fn refuse_indirect(access: &Access, rt: ResourceType) -> Result<(), ApiError> {
    if guarded(access, rt) {
        return Err(ApiError::Unprocessable(vec![Issue::error(
            IssueCode::BusinessRule,
            "an EpisodeOfCare is written on its own with POST [base]/EpisodeOfCare or \
             PUT [base]/EpisodeOfCare/{id}, where admissions and departures are checked; \
             to withdraw one, set its status to entered-in-error",
        )]));
    }
    Ok(())
}

/// Who is recording the change, and through which channel.
pub struct Actor<'a> {
    pub access: &'a Access,
    pub channel: Channel,
    pub client: Option<String>,
}

/// Today's date (UTC, the service's clock) at `now` (µs).
pub fn today(now: i64) -> Date {
    time::OffsetDateTime::from_unix_timestamp(now.div_euclid(1_000_000))
        .map(|t| t.date())
        .unwrap_or(Date::MIN)
}

fn search(
    rt: ResourceType,
    pairs: &[(&str, String)],
) -> Result<carerecord_search::query::SearchQuery, ApiError> {
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    parse(rt, &pairs, Handling::Strict, "")
        .map_err(|e| ApiError::Internal(format!("residency query: {e:?}")))
}

/// The current bodies of the resources matching `query` in the transaction (deleted ones
/// left out).
async fn bodies(
    tx: &mut dyn StoreTx,
    rt: ResourceType,
    pairs: &[(&str, String)],
) -> Result<Vec<(String, Value)>, ResidencyError> {
    let q = search(rt, pairs)?;
    let keys = tx.find(&q, 50).await?;
    let mut out = Vec::with_capacity(keys.len());
    for k in keys {
        if let Some(r) = tx.current(rt, &k.id).await?
            && !r.deleted
        {
            let body = serde_json::from_str(&r.body)
                .map_err(|e| ApiError::Internal(format!("stored body: {e}")))?;
            out.push((k.id.as_str().to_owned(), body));
        }
    }
    Ok(out)
}

/// The one person with this NHS number and date of birth, looked up among everyone.
async fn find_person(
    tx: &mut dyn StoreTx,
    nhs: &NhsNumber,
    born: Date,
) -> Result<String, ResidencyError> {
    let candidates = bodies(
        tx,
        ResourceType::Patient,
        &[(
            "identifier",
            format!("{NHS_NUMBER_SYSTEM}|{}", nhs.as_str()),
        )],
    )
    .await?;
    Ok(residency::choose_person(&candidates, born)?)
}

/// The person's episodes managed by the home, under a lock so that two move-ins of the same
/// person cannot both start a stay.
async fn episodes_at(
    tx: &mut dyn StoreTx,
    home: &str,
    patient: &str,
) -> Result<Vec<(String, Value)>, ResidencyError> {
    tx.lock(&format!("residency:{home}:{patient}")).await?;
    bodies(
        tx,
        ResourceType::EpisodeOfCare,
        &[
            ("patient", format!("Patient/{patient}")),
            ("organization", format!("Organization/{home}")),
        ],
    )
    .await
}

/// Names the writer's organisation as the source, and for the portal the portal as the system.
fn provenance(actor: &Actor<'_>, body: &mut Value) {
    actor.access.stamp_source(body);
    if actor.channel != Channel::Portal {
        return;
    }
    body["meta"]["source"] = json!(residency::PORTAL_SOURCE);
    if let Some(tags) = body.pointer_mut("/meta/tag").and_then(Value::as_array_mut) {
        tags.retain(|t| {
            t.get("system").and_then(Value::as_str) != Some(residency::SOURCE_SYSTEM_TAG)
        });
        tags.push(json!({"system": residency::SOURCE_SYSTEM_TAG, "code": "care-home-portal"}));
    }
}

/// Commits `tx` with the audit entry of `change` to `episode`.
async fn commit(
    mut tx: Box<dyn StoreTx>,
    actor: &Actor<'_>,
    action: AuditAction,
    change: Change,
    episode: &StoredResource,
) -> Result<AuditNote, ResidencyError> {
    let mut note = AuditNote::of(action, std::slice::from_ref(episode));
    let mut r = record(
        &actor.access.principal,
        action,
        AuditOutcome::Allowed,
        change.rule(),
        &note,
        actor.client.clone(),
    );
    r.channel = actor.channel;
    tx.append_audit(vec![r]).await?;
    tx.commit().await?;
    note.recorded = true;
    Ok(note)
}

fn patient_of(episode: &StoredResource) -> String {
    episode.patient_id.clone().unwrap_or_default()
}

/// A person moved in to the principal's own home: starts their stay, reopens an open one, or
/// (already living there) changes nothing.
pub async fn move_in(
    store: &dyn ResourceStore,
    actor: &Actor<'_>,
    m: &MoveIn,
) -> Result<Recorded, ResidencyError> {
    let p = &actor.access.principal;
    let home_id = p.organisation_id.clone();
    residency::may_record(p, actor.access.now, &home_id)?;
    let mut tx = store.begin().await?;
    let patient = find_person(tx.as_mut(), &m.nhs_number, m.born).await?;
    let existing = episodes_at(tx.as_mut(), &home_id, &patient).await?;
    let org = match LogicalId::parse(&home_id) {
        Ok(id) => tx.current(ResourceType::Organization, &id).await?,
        Err(_) => None,
    };
    let org_body: Option<Value> = org
        .filter(|o| !o.deleted)
        .and_then(|o| serde_json::from_str(&o.body).ok());
    let home = Home::from_organization(&home_id, org_body.as_ref());
    let (change, written) = match residency::plan_move_in(&home, &patient, m, &existing) {
        MoveInPlan::AlreadyResident { episode_id } => {
            let id = logical(&episode_id)?;
            let current = tx
                .current(ResourceType::EpisodeOfCare, &id)
                .await?
                .ok_or(StoreError::NotFound)?;
            (Change::AlreadyResident, current)
        }
        MoveInPlan::Reactivate {
            episode_id,
            mut body,
        } => {
            provenance(actor, &mut body);
            let id = logical(&episode_id)?;
            let w =
                write::update(tx.as_mut(), ResourceType::EpisodeOfCare, &id, body, None).await?;
            (Change::MovedIn, w.resource)
        }
        MoveInPlan::Create { mut body } => {
            provenance(actor, &mut body);
            let id = interactions::new_id()?;
            let w = write::create_new(tx.as_mut(), ResourceType::EpisodeOfCare, &id, body).await?;
            (Change::MovedIn, w.resource)
        }
    };
    let action = if written.version_id == VersionId::FIRST {
        AuditAction::Create
    } else {
        AuditAction::Update
    };
    commit(tx, actor, action, change, &written).await?;
    Ok(Recorded {
        change,
        patient_id: patient,
        episode: written,
    })
}

fn logical(id: &str) -> Result<LogicalId, ApiError> {
    LogicalId::parse(id).map_err(|e| ApiError::bad_request(IssueCode::Invalid, e.to_string()))
}

/// The current version of an episode, with the home that manages it checked against the
/// principal. An episode that does not exist reads as another home's.
async fn current_episode(
    tx: &mut dyn StoreTx,
    access: &Access,
    id: &str,
) -> Result<(StoredResource, Value), ResidencyError> {
    let not_theirs = || {
        ResidencyError::Refused(Refusal::Denied(
            carerecord_access::Denial::OtherOrganisation,
        ))
    };
    let lid = LogicalId::parse(id).map_err(|_| not_theirs())?;
    let Some(current) = tx.current(ResourceType::EpisodeOfCare, &lid).await? else {
        return Err(not_theirs());
    };
    if current.deleted {
        return Err(not_theirs());
    }
    let body: Value = serde_json::from_str(&current.body)
        .map_err(|e| ApiError::Internal(format!("stored body: {e}")))?;
    let home = residency::managing_org(&body).unwrap_or_default();
    residency::may_record(&access.principal, access.now, &home)?;
    Ok((current, body))
}

/// Writes `body` as the next version of `current` (no other writer may have come between).
async fn next_version(
    tx: &mut dyn StoreTx,
    current: &StoredResource,
    body: Value,
) -> Result<StoredResource, ResidencyError> {
    let w = write::update(
        tx,
        ResourceType::EpisodeOfCare,
        &current.id,
        body,
        Some(current.version_id),
    )
    .await?;
    Ok(w.resource)
}

/// The person moved out of the home on `left`.
pub async fn move_out(
    store: &dyn ResourceStore,
    actor: &Actor<'_>,
    episode_id: &str,
    left: Date,
) -> Result<Recorded, ResidencyError> {
    let mut tx = store.begin().await?;
    let (current, body) = current_episode(tx.as_mut(), actor.access, episode_id).await?;
    let mut next = residency::move_out(&body, left, today(actor.access.now))?;
    provenance(actor, &mut next);
    let written = next_version(tx.as_mut(), &current, next).await?;
    commit(tx, actor, AuditAction::Update, Change::MovedOut, &written).await?;
    Ok(Recorded {
        change: Change::MovedOut,
        patient_id: patient_of(&written),
        episode: written,
    })
}

/// Undoes the last change to an episode: a current stay was a mistaken move-in (it becomes
/// `entered-in-error`); an ended one a mistaken move-out (it is reopened).
pub async fn undo(
    store: &dyn ResourceStore,
    actor: &Actor<'_>,
    episode_id: &str,
) -> Result<Recorded, ResidencyError> {
    let mut tx = store.begin().await?;
    let (current, body) = current_episode(tx.as_mut(), actor.access, episode_id).await?;
    let (change, mut next) = match body.get("status").and_then(Value::as_str) {
        Some("finished") => (Change::MoveOutUndone, residency::undo_move_out(&body)?),
        _ => (Change::MoveInUndone, residency::undo_move_in(&body)?),
    };
    provenance(actor, &mut next);
    let written = next_version(tx.as_mut(), &current, next).await?;
    commit(tx, actor, AuditAction::Update, change, &written).await?;
    Ok(Recorded {
        change,
        patient_id: patient_of(&written),
        episode: written,
    })
}

/// Resolves how a FHIR client named the person: a literal reference it must already be able
/// to see, or NHS number and birth date resolved among everyone (and written back as a
/// literal reference carrying the NHS number).
async fn resolve_patient(
    store: &dyn ResourceStore,
    tx: &mut dyn StoreTx,
    access: &Access,
    body: &mut Value,
) -> Result<String, ResidencyError> {
    match residency::patient_named(body)? {
        PatientNamed::Literal(id) => {
            let lid = logical(&id)?;
            let vis = access.vis()?;
            store
                .read(ResourceType::Patient, &lid, vis)
                .await
                .map_err(|e| ResidencyError::Api(access.not_found_is_denied(e)))?;
            Ok(id)
        }
        PatientNamed::ByNhsNumber { nhs_number, born } => {
            let id = find_person(tx, &nhs_number, born).await?;
            body["patient"] = residency::patient_reference(&id, &nhs_number);
            Ok(id)
        }
    }
}

/// `POST EpisodeOfCare` by anyone but carerecord's service identity: the home must be the
/// writer's own and the person named as [`resolve_patient`] says. An active stay for a person
/// already living at the home answers the existing episode (200), as a conditional create
/// would: recording a move-in twice changes nothing.
pub async fn fhir_create(
    store: &dyn ResourceStore,
    access: &Access,
    mut body: Value,
    base: &str,
) -> Result<(Written, AuditNote), ApiError> {
    carerecord_access::residency::may_write_episode(&access.principal, access.now)
        .map_err(ApiError::Denied)?;
    interactions::check_resource(ResourceType::EpisodeOfCare, &body)?;
    residency::check_episode_write(
        &access.principal,
        access.now,
        None,
        &body,
        today(access.now),
    )
    .map_err(refusal)?;
    access.stamp_source(&mut body);
    let home = residency::managing_org(&body).unwrap_or_default();
    let mut tx = store.begin().await?;
    let patient = resolve_patient(store, tx.as_mut(), access, &mut body).await?;
    let existing = episodes_at(tx.as_mut(), &home, &patient).await?;
    let active = existing
        .iter()
        .find(|(_, b)| b.get("status").and_then(Value::as_str) == Some("active"));
    if body.get("status").and_then(Value::as_str) == Some("active")
        && let Some((id, _)) = active
    {
        let current = tx
            .current(ResourceType::EpisodeOfCare, &logical(id)?)
            .await?
            .ok_or(StoreError::NotFound)?;
        let note = commit_api(
            tx,
            access,
            AuditAction::Create,
            Change::AlreadyResident,
            &current,
        )
        .await?;
        return Ok((Written::Existing(current), note));
    }
    let written = interactions::create(
        tx.as_mut(),
        ResourceType::EpisodeOfCare,
        body,
        None,
        base,
        None,
    )
    .await?;
    let Written::Created(r) = &written else {
        return Err(ApiError::Internal("create returned another outcome".into()));
    };
    let active_now = serde_json::from_str::<Value>(&r.body)
        .ok()
        .is_some_and(|b| b.get("status").and_then(Value::as_str) == Some("active"));
    // A stay recorded as already ended (or only planned) is an ordinary episode write.
    let rule = if active_now {
        Change::MovedIn.rule()
    } else {
        "write-allowed"
    };
    let note = commit_api_rule(tx, access, AuditAction::Create, rule, r).await?;
    Ok((written, note))
}

/// `PUT EpisodeOfCare/{id}` by anyone but the service identity: finishing a stay (move-out),
/// reopening it, marking it entered-in-error — only for the writer's own home, and never
/// moving it to another person or home.
pub async fn fhir_update(
    store: &dyn ResourceStore,
    access: &Access,
    id: &LogicalId,
    mut body: Value,
    if_match: Option<VersionId>,
) -> Result<(Written, AuditNote), ApiError> {
    carerecord_access::residency::may_write_episode(&access.principal, access.now)
        .map_err(ApiError::Denied)?;
    interactions::check_update(ResourceType::EpisodeOfCare, id, &body)?;
    let mut tx = store.begin().await?;
    let old = tx
        .current(ResourceType::EpisodeOfCare, id)
        .await?
        .filter(|r| !r.deleted);
    let old_body: Option<Value> = match &old {
        Some(r) => Some(
            serde_json::from_str(&r.body)
                .map_err(|e| ApiError::Internal(format!("stored body: {e}")))?,
        ),
        None => None,
    };
    residency::check_episode_write(
        &access.principal,
        access.now,
        old_body.as_ref(),
        &body,
        today(access.now),
    )
    .map_err(refusal)?;
    access.stamp_source(&mut body);
    match &old_body {
        // The person is the one the stay already names (checked above for a literal
        // reference; a reference by NHS number must resolve to them too).
        Some(old) => {
            let old_patient = residency::patient_id(old).unwrap_or_default();
            if let PatientNamed::ByNhsNumber { nhs_number, born } =
                residency::patient_named(&body).map_err(refusal)?
            {
                let found = find_person(tx.as_mut(), &nhs_number, born)
                    .await
                    .map_err(ApiError::from)?;
                if found != old_patient {
                    return Err(refusal(Refusal::Immutable(
                        "an EpisodeOfCare cannot change its patient: mark it entered-in-error and create another",
                    )));
                }
                body["patient"] = residency::patient_reference(&found, &nhs_number);
            }
        }
        None => {
            resolve_patient(store, tx.as_mut(), access, &mut body).await?;
        }
    }
    let written =
        interactions::update(tx.as_mut(), ResourceType::EpisodeOfCare, id, body, if_match).await?;
    let (Written::Created(r) | Written::Updated(r)) = &written else {
        return Err(ApiError::Internal("update returned another outcome".into()));
    };
    let new_status = serde_json::from_str::<Value>(&r.body)
        .ok()
        .and_then(|b| b.get("status").and_then(Value::as_str).map(str::to_owned));
    let old_status = old_body
        .as_ref()
        .and_then(|b| b.get("status").and_then(Value::as_str).map(str::to_owned));
    let rule = match (old_status.as_deref(), new_status.as_deref()) {
        (Some("active"), Some("finished")) => Change::MovedOut.rule(),
        (Some("active"), Some("entered-in-error")) => Change::MoveInUndone.rule(),
        (Some("finished"), Some("active")) => Change::MoveOutUndone.rule(),
        (Some("active"), Some("active")) => "write-allowed",
        (_, Some("active")) => Change::MovedIn.rule(),
        _ => "write-allowed",
    };
    let action = if matches!(written, Written::Created(_)) {
        AuditAction::Create
    } else {
        AuditAction::Update
    };
    let note = commit_api_rule(tx, access, action, rule, r).await?;
    Ok((written, note))
}

async fn commit_api(
    tx: Box<dyn StoreTx>,
    access: &Access,
    action: AuditAction,
    change: Change,
    episode: &StoredResource,
) -> Result<AuditNote, ApiError> {
    commit_api_rule(tx, access, action, change.rule(), episode).await
}

async fn commit_api_rule(
    mut tx: Box<dyn StoreTx>,
    access: &Access,
    action: AuditAction,
    rule: &str,
    episode: &StoredResource,
) -> Result<AuditNote, ApiError> {
    let mut note = AuditNote::of(action, std::slice::from_ref(episode));
    let r = record(
        &access.principal,
        action,
        AuditOutcome::Allowed,
        rule,
        &note,
        None,
    );
    tx.append_audit(vec![r]).await?;
    tx.commit().await?;
    note.recorded = true;
    Ok(note)
}
