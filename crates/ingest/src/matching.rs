//! Identity matching: every incoming person is resolved to one carerecord Patient.
//!
//! In order (the rule and thresholds are documented in `docs/integrators/matching.md`):
//! 1. a **verified NHS number** (Modulus 11 checked — an invalid number is an error, never a key)
//!    already on a Patient; a number without a verification status is a key only together
//!    with an exactly equal birth date (the national "NHS number + date of birth" check);
//! 2. the source's **local identifier** (an MRN under the source's system) already on a Patient;
//! 3. **demographics**, scored ([`score`]): confident → the existing Patient; uncertain → a
//!    separate Patient and a review item; none → a new Patient.
//!
//! A match adds what the existing Patient lacks (the local identifier, the NHS number, a
//! verification that was missing) as a new version; earlier versions are kept. Inactive
//! Patients that a merge replaced are followed to their survivor.

use std::collections::BTreeSet;

use carerecord_fhir::{LogicalId, NhsNumber, NhsNumberError, ResourceType};
use carerecord_search::query::{Handling, SearchQuery, escape_value, parse};
use carerecord_search::text::normalize;
use carerecord_store::ingest::{IngestOp, tx_id};
use carerecord_store::{StoreError, StoreTx, StoredResource, write};
use serde_json::{Value, json};

use crate::IngestError;

pub const NHS_NUMBER_SYSTEM: &str = carerecord_fhir::NHS_NUMBER_SYSTEM;
/// Local hospital numbers live under this prefix followed by the assigning ODS code.
pub const MRN_SYSTEM_PREFIX: &str = "https://fhir.carerecord.example/Id/mrn/";
const VERIFICATION_EXTENSION: &str =
    "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus";
const VERIFICATION_SYSTEM: &str =
    "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland";
/// "Number present and verified".
pub const VERIFIED: &str = "01";

/// A score at or above this links automatically — when family name, first given name and
/// birth date all agree exactly ([`decide`]).
pub const CONFIDENT: i64 = 85;
/// A score at or above this that is not confident creates a review item.
pub const UNCERTAIN: i64 = 70;

/// What a demographic score means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The same person: link.
    Confident,
    /// Perhaps the same person: a separate record and a review item.
    Uncertain,
    /// Somebody else.
    NoMatch,
}

/// The decision for a score and the fields that agreed ([`score`]). Confidence needs the
/// national cross-check fields exactly — family, given, birth date — plus gender or postcode,
/// so twins (same surname, birth date and address) are never linked automatically.
pub fn decide(score: i64, reasons: &[&str]) -> Decision {
    let core = ["family", "given", "birthDate"]
        .iter()
        .all(|f| reasons.contains(f));
    if score >= CONFIDENT && core {
        Decision::Confident
    } else if score >= UNCERTAIN {
        Decision::Uncertain
    } else {
        Decision::NoMatch
    }
}
/// Candidates looked at per demographic search.
const CANDIDATES: u32 = 50;
/// Replaced-by links followed at most (a chain of merges).
const MAX_HOPS: usize = 5;

/// A person as a source sent them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IncomingPerson {
    /// As received (spaces allowed); checked here.
    pub nhs_number: Option<String>,
    /// The verification status code (`01` … `08`), when the source said.
    pub nhs_verification: Option<String>,
    /// (assigning authority — an ODS code or an identifier system —, local number).
    pub local_ids: Vec<(String, String)>,
    pub family: Option<String>,
    pub given: Vec<String>,
    /// `YYYY-MM-DD`.
    pub birth_date: Option<String>,
    /// FHIR administrative gender code.
    pub gender: Option<String>,
    pub postcode: Option<String>,
    /// The Patient resource to store when the person is new (identifiers, names, address…).
    pub patient: Value,
}

impl IncomingPerson {
    /// The person a FHIR Patient describes (a FHIR submission).
    pub fn from_patient(patient: &Value) -> IncomingPerson {
        let mut p = IncomingPerson {
            patient: patient.clone(),
            ..IncomingPerson::default()
        };
        for i in patient
            .get("identifier")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let (Some(system), Some(value)) = (
                i.get("system").and_then(Value::as_str),
                i.get("value").and_then(Value::as_str),
            ) else {
                continue;
            };
            if system == NHS_NUMBER_SYSTEM {
                p.nhs_number = Some(value.to_owned());
                p.nhs_verification = verification_of(i);
            } else {
                p.local_ids.push((system.to_owned(), value.to_owned()));
            }
        }
        let name = first_name(patient);
        p.family = name
            .and_then(|n| n.get("family"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        p.given = name
            .and_then(|n| n.get("given"))
            .and_then(Value::as_array)
            .map(|g| {
                g.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        p.birth_date = patient
            .get("birthDate")
            .and_then(Value::as_str)
            .map(str::to_owned);
        p.gender = patient
            .get("gender")
            .and_then(Value::as_str)
            .map(str::to_owned);
        p.postcode = postcodes(patient).into_iter().next();
        p
    }
}

/// How a person was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchedBy {
    NhsNumber,
    LocalId,
    Demographics { score: i64 },
}

/// The Patient an incoming person resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub patient_id: String,
    pub outcome: Outcome,
    /// Versions written, as `Patient/id/_history/v` (for the audit entry).
    pub written: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// An existing Patient (possibly updated with a new identifier).
    Existing(MatchedBy),
    /// A new Patient; `review` is the review item when it resembled `candidate`.
    Created {
        review: Option<i64>,
        candidate: Option<String>,
    },
}

/// Who is asking, for the records matching writes.
#[derive(Debug, Clone)]
pub struct MatchContext<'a> {
    /// The source's ODS code.
    pub source_ods: &'a str,
    pub now: i64,
}

/// The identifier systems a local id of this assigning authority (an ODS code or a system
/// URL) may be stored under: the HL7 mapping's `…/Id/{ods}/patient-id` and the FHIR
/// submissions' `…/Id/mrn/{ods}`.
pub fn local_systems(authority: &str) -> Vec<String> {
    if authority.contains(':') {
        vec![authority.to_owned()]
    } else {
        vec![
            format!("https://fhir.carerecord.example/Id/{authority}/patient-id"),
            format!("{MRN_SYSTEM_PREFIX}{authority}"),
        ]
    }
}

/// Resolves `person` inside `tx` (so the match and what is written with it commit together),
/// creating a Patient when nobody matches.
pub async fn resolve(
    tx: &mut dyn StoreTx,
    person: &IncomingPerson,
    ctx: &MatchContext<'_>,
) -> Result<Resolved, IngestError> {
    let nhs = checked_nhs_number(person)?;
    if let Some(found) = find_existing(tx, person, nhs.as_ref()).await? {
        let (patient, by) = found;
        let written = enrich(tx, &patient, person, ctx).await?;
        return Ok(Resolved {
            patient_id: patient.id.as_str().to_owned(),
            outcome: Outcome::Existing(by),
            written,
        });
    }
    // Demographics.
    let best = best_candidate(tx, person, nhs.as_ref()).await?;
    if let Some((candidate, score, reasons)) = &best
        && decide(*score, reasons) == Decision::Confident
    {
        let written = enrich(tx, candidate, person, ctx).await?;
        return Ok(Resolved {
            patient_id: candidate.id.as_str().to_owned(),
            outcome: Outcome::Existing(MatchedBy::Demographics { score: *score }),
            written,
        });
    }
    let (patient_id, version) = create(tx, person).await?;
    let mut review = None;
    let mut candidate_id = None;
    if let Some((candidate, score, reasons)) = best
        && decide(score, &reasons) != Decision::NoMatch
    {
        review = Some(
            tx_id(
                tx,
                IngestOp::PutReview {
                    created_at: ctx.now,
                    source_ods: ctx.source_ods.to_owned(),
                    patient_id: patient_id.clone(),
                    candidate_id: candidate.id.as_str().to_owned(),
                    score,
                    reasons: reasons.join(","),
                },
            )
            .await?,
        );
        candidate_id = Some(candidate.id.as_str().to_owned());
    }
    Ok(Resolved {
        patient_id: patient_id.clone(),
        outcome: Outcome::Created {
            review,
            candidate: candidate_id,
        },
        written: vec![version],
    })
}

/// Finds the Patient a person already is, by key only (NHS number or local id): for an HL7
/// merge's `MRG` person, who must exist and is never created.
pub async fn find_by_keys(
    tx: &mut dyn StoreTx,
    person: &IncomingPerson,
) -> Result<Option<StoredResource>, IngestError> {
    let nhs = checked_nhs_number(person)?;
    Ok(find_existing(tx, person, nhs.as_ref())
        .await?
        .map(|(p, _)| p))
}

fn checked_nhs_number(person: &IncomingPerson) -> Result<Option<NhsNumber>, IngestError> {
    match person.nhs_number.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(raw) => NhsNumber::parse(raw)
            .map(Some)
            .map_err(|e: NhsNumberError| IngestError::InvalidNhsNumber(e.to_string())),
    }
}

async fn find_existing(
    tx: &mut dyn StoreTx,
    person: &IncomingPerson,
    nhs: Option<&NhsNumber>,
) -> Result<Option<(StoredResource, MatchedBy)>, IngestError> {
    if let Some(n) = nhs {
        let verified = person.nhs_verification.as_deref() == Some(VERIFIED);
        // Unstated: a key only with the same birth date. Any other status: never a key.
        let unstated = person.nhs_verification.is_none();
        if verified || unstated {
            for p in by_identifier(tx, NHS_NUMBER_SYSTEM, n.as_str()).await? {
                let body = body(&p)?;
                if verified
                    || (person.birth_date.is_some()
                        && body.get("birthDate").and_then(Value::as_str)
                            == person.birth_date.as_deref())
                {
                    return Ok(Some((p, MatchedBy::NhsNumber)));
                }
            }
        }
    }
    for (authority, value) in &person.local_ids {
        for system in local_systems(authority) {
            if let Some(p) = by_identifier(tx, &system, value).await?.into_iter().next() {
                return Ok(Some((p, MatchedBy::LocalId)));
            }
        }
    }
    Ok(None)
}

fn query(pairs: &[(&str, &str)]) -> Result<SearchQuery, IngestError> {
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    parse(
        ResourceType::Patient,
        &pairs,
        Handling::Strict,
        "urn:carerecord:ingest",
    )
    .map_err(|issues| IngestError::Internal(format!("matching query: {issues:?}")))
}

fn body(r: &StoredResource) -> Result<Value, IngestError> {
    serde_json::from_str(&r.body).map_err(|e| IngestError::Internal(format!("stored body: {e}")))
}

/// The active Patients carrying `system|value`, each followed to its survivor if merged.
async fn by_identifier(
    tx: &mut dyn StoreTx,
    system: &str,
    value: &str,
) -> Result<Vec<StoredResource>, IngestError> {
    let token = format!("{}|{}", escape_value(system), escape_value(value));
    let keys = tx.find(&query(&[("identifier", &token)])?, 10).await?;
    let mut out: Vec<StoredResource> = Vec::new();
    for k in keys {
        if let Some(p) = survivor(tx, &k.id).await?
            && !out.iter().any(|o| o.id == p.id)
        {
            out.push(p);
        }
    }
    Ok(out)
}

/// The Patient `id` or, when a merge replaced it, the one that replaced it.
pub async fn survivor(
    tx: &mut dyn StoreTx,
    id: &LogicalId,
) -> Result<Option<StoredResource>, IngestError> {
    let mut id = id.clone();
    for _ in 0..MAX_HOPS {
        let Some(p) = tx.current(ResourceType::Patient, &id).await? else {
            return Ok(None);
        };
        if p.deleted {
            return Ok(None);
        }
        let b = body(&p)?;
        if b.get("active").and_then(Value::as_bool) != Some(false) {
            return Ok(Some(p));
        }
        match replaced_by(&b) {
            Some(next) => id = next,
            // Inactive without a successor: not a match target.
            None => return Ok(None),
        }
    }
    Ok(None)
}

fn replaced_by(b: &Value) -> Option<LogicalId> {
    b.get("link")?
        .as_array()?
        .iter()
        .find(|l| l.get("type").and_then(Value::as_str) == Some("replaced-by"))
        .and_then(|l| l.pointer("/other/reference"))
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("Patient/"))
        .and_then(|id| LogicalId::parse(id).ok())
}

async fn best_candidate(
    tx: &mut dyn StoreTx,
    person: &IncomingPerson,
    nhs: Option<&NhsNumber>,
) -> Result<Option<(StoredResource, i64, Vec<&'static str>)>, IngestError> {
    let mut keys = BTreeSet::new();
    if let Some(d) = &person.birth_date {
        keys.extend(
            tx.find(
                &query(&[("birthdate", d), ("active:not", "false")])?,
                CANDIDATES,
            )
            .await?,
        );
    }
    if let (Some(f), Some(g)) = (&person.family, person.given.first()) {
        keys.extend(
            tx.find(
                &query(&[("family:exact", f), ("given", g), ("active:not", "false")])?,
                CANDIDATES,
            )
            .await?,
        );
    }
    let mut best: Option<(StoredResource, i64, Vec<&'static str>)> = None;
    for k in keys {
        let Some(p) = tx.current(ResourceType::Patient, &k.id).await? else {
            continue;
        };
        if p.deleted {
            continue;
        }
        let b = body(&p)?;
        // Two different NHS numbers are two different people, however alike.
        if let (Some(n), Some(theirs)) = (nhs, nhs_number_of(&b))
            && theirs != n.as_str()
        {
            continue;
        }
        let (s, reasons) = score(person, &b);
        if best.as_ref().is_none_or(|(_, bs, _)| s > *bs) {
            best = Some((p, s, reasons));
        }
    }
    Ok(best)
}

fn first_name(p: &Value) -> Option<&Value> {
    let names = p.get("name")?.as_array()?;
    names
        .iter()
        .find(|n| n.get("use").and_then(Value::as_str) == Some("official"))
        .or_else(|| names.first())
}

fn postcodes(p: &Value) -> Vec<String> {
    p.get("address")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|a| a.get("postalCode").and_then(Value::as_str))
        .map(normal_postcode)
        .collect()
}

fn normal_postcode(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_uppercase()
}

/// The outward code (before the space): `LS1 4AP` → `LS1`.
fn outward(normal: &str) -> &str {
    // The inward code is always three characters.
    normal
        .len()
        .checked_sub(3)
        .and_then(|n| normal.get(..n))
        .unwrap_or(normal)
}

/// Letters and digits only, lower case, accents removed: `O'Brien-Smith` → `obriensmith`.
fn name_key(s: &str) -> String {
    normalize(s)
        .chars()
        .filter(|c| c.is_alphanumeric())
        .collect()
}

fn nhs_number_of(b: &Value) -> Option<String> {
    b.get("identifier")?
        .as_array()?
        .iter()
        .find(|i| i.get("system").and_then(Value::as_str) == Some(NHS_NUMBER_SYSTEM))
        .and_then(|i| i.get("value"))
        .and_then(Value::as_str)
        .map(|v| v.chars().filter(char::is_ascii_digit).collect())
}

fn verification_of(identifier: &Value) -> Option<String> {
    identifier
        .get("extension")?
        .as_array()?
        .iter()
        .find(|e| e.get("url").and_then(Value::as_str) == Some(VERIFICATION_EXTENSION))?
        .pointer("/valueCodeableConcept/coding/0/code")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// The demographic score of `candidate` (a stored Patient) for `person`, with the fields that
/// agreed. Weights (see `docs/integrators/matching.md`): family name 30; first given name 25
/// (its initial alone 10); birth date 25; gender 10, or −20 when both are known and differ;
/// postcode 15 (its outward code alone 5). The most is 105.
pub fn score(person: &IncomingPerson, candidate: &Value) -> (i64, Vec<&'static str>) {
    let mut s = 0;
    let mut reasons = Vec::new();
    let names: Vec<&Value> = candidate
        .get("name")
        .and_then(Value::as_array)
        .map(|n| n.iter().collect())
        .unwrap_or_default();
    if let Some(f) = person
        .family
        .as_deref()
        .map(name_key)
        .filter(|f| !f.is_empty())
        && names.iter().any(|n| {
            n.get("family")
                .and_then(Value::as_str)
                .is_some_and(|cf| name_key(cf) == f)
        })
    {
        s += 30;
        reasons.push("family");
    }
    if let Some(g) = person
        .given
        .first()
        .map(|g| name_key(g))
        .filter(|g| !g.is_empty())
    {
        let theirs: Vec<String> = names
            .iter()
            .filter_map(|n| n.get("given").and_then(Value::as_array))
            .filter_map(|g| g.first().and_then(Value::as_str))
            .map(name_key)
            .collect();
        if theirs.contains(&g) {
            s += 25;
            reasons.push("given");
        } else if theirs
            .iter()
            .any(|t| !t.is_empty() && t.chars().next() == g.chars().next())
        {
            s += 10;
            reasons.push("given-initial");
        }
    }
    if person.birth_date.is_some()
        && candidate.get("birthDate").and_then(Value::as_str) == person.birth_date.as_deref()
    {
        s += 25;
        reasons.push("birthDate");
    }
    let unknown = |g: Option<&str>| matches!(g, None | Some("unknown"));
    let theirs = candidate.get("gender").and_then(Value::as_str);
    let ours = person.gender.as_deref();
    if !unknown(ours) && !unknown(theirs) {
        if ours == theirs {
            s += 10;
            reasons.push("gender");
        } else {
            s -= 20;
        }
    }
    if let Some(pc) = person.postcode.as_deref().map(normal_postcode) {
        let theirs = postcodes(candidate);
        if theirs.contains(&pc) {
            s += 15;
            reasons.push("postcode");
        } else if theirs.iter().any(|t| outward(t) == outward(&pc)) {
            s += 5;
            reasons.push("postcode-district");
        }
    }
    (s, reasons)
}

fn verification_extension(code: &str) -> Value {
    json!([{
        "url": VERIFICATION_EXTENSION,
        "valueCodeableConcept": {"coding": [{"system": VERIFICATION_SYSTEM, "code": code}]}
    }])
}

/// The identifiers `person` brings: those of its Patient, plus its NHS number and local ids
/// if the Patient did not carry them.
fn incoming_identifiers(person: &IncomingPerson) -> Vec<Value> {
    let mut ids: Vec<Value> = person
        .patient
        .get("identifier")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let has = |ids: &[Value], system: &str| {
        ids.iter()
            .any(|i| i.get("system").and_then(Value::as_str) == Some(system))
    };
    if let Some(n) = &person.nhs_number
        && !has(&ids, NHS_NUMBER_SYSTEM)
    {
        let digits: String = n.chars().filter(char::is_ascii_digit).collect();
        let mut id = json!({"system": NHS_NUMBER_SYSTEM, "value": digits});
        if let Some(v) = &person.nhs_verification {
            id["extension"] = verification_extension(v);
        }
        ids.push(id);
    }
    for (authority, value) in &person.local_ids {
        let systems = local_systems(authority);
        let present = ids.iter().any(|i| {
            i.get("system")
                .and_then(Value::as_str)
                .is_some_and(|s| systems.iter().any(|x| x == s))
                && i.get("value").and_then(Value::as_str) == Some(value.as_str())
        });
        if let (false, Some(system)) = (present, systems.into_iter().next()) {
            ids.push(json!({"system": system, "value": value}));
        }
    }
    ids
}

async fn create(
    tx: &mut dyn StoreTx,
    person: &IncomingPerson,
) -> Result<(String, String), IngestError> {
    let mut body = person.patient.clone();
    if !body.is_object() {
        body = json!({});
    }
    body["resourceType"] = json!("Patient");
    body["identifier"] = Value::Array(incoming_identifiers(person));
    let id = new_id()?;
    let w = write::create_new(tx, ResourceType::Patient, &id, body).await?;
    Ok((
        id.as_str().to_owned(),
        format!(
            "Patient/{}/_history/{}",
            id.as_str(),
            w.resource.version_id.get()
        ),
    ))
}

pub(crate) fn new_id() -> Result<LogicalId, IngestError> {
    LogicalId::parse(&uuid::Uuid::new_v4().to_string())
        .map_err(|e| IngestError::Internal(e.to_string()))
}

fn source_of(b: &Value) -> Option<&str> {
    b.pointer("/meta/tag")?
        .as_array()?
        .iter()
        .find(|t| {
            t.get("system").and_then(Value::as_str)
                == Some(carerecord_access::classify::SOURCE_ORGANISATION_TAG)
        })?
        .get("code")?
        .as_str()
}

/// Adds to the existing Patient what the incoming person brings and it lacks: identifiers
/// (a local number, an NHS number), a verification the stored number lacked. When the Patient
/// came from the same source, the source's demographics replace its own earlier ones (an
/// A08/A31 update). Writes a new version only if something changed.
async fn enrich(
    tx: &mut dyn StoreTx,
    existing: &StoredResource,
    person: &IncomingPerson,
    ctx: &MatchContext<'_>,
) -> Result<Vec<String>, IngestError> {
    let before = body(existing)?;
    let mut after = before.clone();
    let mut ids: Vec<Value> = before
        .get("identifier")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for inc in incoming_identifiers(person) {
        let system = inc.get("system").and_then(Value::as_str).unwrap_or("");
        let value = inc.get("value").and_then(Value::as_str).unwrap_or("");
        if system == NHS_NUMBER_SYSTEM {
            match ids
                .iter_mut()
                .find(|i| i.get("system").and_then(Value::as_str) == Some(NHS_NUMBER_SYSTEM))
            {
                Some(mine) => {
                    // The same number, now verified by the source: record the verification.
                    let same = mine.get("value").and_then(Value::as_str) == Some(value);
                    if same
                        && verification_of(&inc).as_deref() == Some(VERIFIED)
                        && verification_of(mine).as_deref() != Some(VERIFIED)
                    {
                        *mine = inc.clone();
                    }
                }
                None => ids.push(inc.clone()),
            }
            continue;
        }
        let present = ids.iter().any(|i| {
            i.get("system").and_then(Value::as_str) == Some(system)
                && i.get("value").and_then(Value::as_str) == Some(value)
        });
        if !present {
            ids.push(inc);
        }
    }
    after["identifier"] = Value::Array(ids);
    if source_of(&before) == Some(ctx.source_ods) {
        for field in ["name", "gender", "birthDate", "address", "telecom"] {
            if let Some(v) = person.patient.get(field) {
                after[field] = v.clone();
            }
        }
    }
    let strip = |mut v: Value| {
        if let Some(o) = v.as_object_mut() {
            o.remove("meta");
        }
        v
    };
    if strip(before) == strip(after.clone()) {
        return Ok(Vec::new());
    }
    let w = write::update(tx, ResourceType::Patient, &existing.id, after, None).await?;
    Ok(vec![format!(
        "Patient/{}/_history/{}",
        existing.id.as_str(),
        w.resource.version_id.get()
    )])
}

impl From<StoreError> for IngestError {
    fn from(e: StoreError) -> Self {
        IngestError::Store(e)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn incoming(family: &str, given: &str, dob: &str, gender: &str, pc: &str) -> IncomingPerson {
        IncomingPerson {
            family: Some(family.into()),
            given: vec![given.into()],
            birth_date: Some(dob.into()),
            gender: Some(gender.into()),
            postcode: Some(pc.into()),
            ..IncomingPerson::default()
        }
    }

    fn stored(family: &str, given: &str, dob: &str, gender: &str, pc: &str) -> Value {
        json!({"resourceType": "Patient", "name": [{"family": family, "given": [given]}],
            "birthDate": dob, "gender": gender, "address": [{"postalCode": pc}]})
    }

    #[test]
    fn the_national_cross_check_fields_agreeing_is_confident() {
        let (s, reasons) = score(
            &incoming("O'Brien", "Zoë", "1940-02-03", "female", "SE1 7EH"),
            &stored("OBRIEN", "zoe", "1940-02-03", "female", "N1 9GU"),
        );
        assert_eq!(s, 30 + 25 + 25 + 10);
        assert_eq!(decide(s, &reasons), Decision::Confident);
        assert_eq!(reasons, vec!["family", "given", "birthDate", "gender"]);
    }

    #[test]
    fn a_different_first_name_is_only_uncertain() {
        // Twins, perhaps: everything agrees but the first name.
        let (s, reasons) = score(
            &incoming("Smith", "Mary", "1940-02-03", "female", "SE1 7EH"),
            &stored("Smith", "Margaret", "1940-02-03", "female", "SE1 7EH"),
        );
        // family + initial + birth date + gender + postcode.
        assert_eq!(s, 30 + 10 + 25 + 10 + 15);
        assert_eq!(decide(s, &reasons), Decision::Uncertain);
    }

    #[test]
    fn a_different_gender_counts_against() {
        let (s, reasons) = score(
            &incoming("Smith", "Alex", "1940-02-03", "male", "SE17 1AA"),
            &stored("Smith", "Alex", "1940-02-03", "female", "SE17 2BB"),
        );
        assert_eq!(s, 30 + 25 + 25 - 20 + 5);
        assert_eq!(decide(s, &reasons), Decision::NoMatch);
    }

    #[test]
    fn a_namesake_born_another_day_is_no_match() {
        let (s, reasons) = score(
            &incoming("Smith", "John", "1950-01-01", "male", "E1 6AN"),
            &stored("Smith", "John", "1951-07-30", "male", "W2 1AA"),
        );
        assert_eq!(decide(s, &reasons), Decision::NoMatch, "{s}");
        // … unless they share a postcode: a mistyped birth date is worth a look.
        let (s, reasons) = score(
            &incoming("Smith", "John", "1950-01-01", "male", "E1 6AN"),
            &stored("Smith", "John", "1951-07-30", "male", "E1 6AN"),
        );
        assert_eq!(decide(s, &reasons), Decision::Uncertain, "{s}");
    }

    #[test]
    fn a_fhir_patient_becomes_an_incoming_person() {
        let p = json!({"resourceType": "Patient",
            "identifier": [
                {"system": NHS_NUMBER_SYSTEM, "value": "9990000018",
                 "extension": verification_extension("02")},
                {"system": "https://fhir.carerecord.example/Id/mrn/ZRH01", "value": "M1"}],
            "name": [{"use": "official", "family": "Smith", "given": ["Jane", "A"]}],
            "birthDate": "1984-03-12", "gender": "female",
            "address": [{"postalCode": "ls1 4ap"}]});
        let i = IncomingPerson::from_patient(&p);
        assert_eq!(i.nhs_number.as_deref(), Some("9990000018"));
        assert_eq!(i.nhs_verification.as_deref(), Some("02"));
        assert_eq!(
            i.local_ids,
            vec![(
                "https://fhir.carerecord.example/Id/mrn/ZRH01".to_owned(),
                "M1".to_owned()
            )]
        );
        assert_eq!(i.given, vec!["Jane", "A"]);
        assert_eq!(i.postcode.as_deref(), Some("LS14AP"));
        assert_eq!(outward("LS14AP"), "LS1");
        assert_eq!(
            local_systems("ZRH01")[1],
            "https://fhir.carerecord.example/Id/mrn/ZRH01"
        );
    }
}
