//! Keeping the resident list true: the rules of recording that a person moved in to a care
//! home or moved out, as `EpisodeOfCare` versions. A care home's care relationship with a
//! resident (what lets its staff see the record) is an `active` EpisodeOfCare it manages
//! ([`crate::classify`]), so these rules decide who may start and end one and what the
//! episode says. The portal ("a resident moved in", "moved out", "undo") and the FHIR API
//! (`POST`/`PUT EpisodeOfCare` by a care home's system) both apply them; the server does the
//! reading and writing. Pure: bodies in, bodies out.
//!
//! When a stay ends, the relationship ends with it: a `finished` episode grants nothing. The
//! reference (§2) grants a care home the people who *currently* live there; the retrospective
//! window the policy keeps for encounters is for a hospital following up a discharge, and has
//! no counterpart for a home someone has left (which asks for emergency access if it must look
//! again). An `active` episode with a `period.end` still counts until that end.

use carerecord_fhir::NhsNumber;
use carerecord_fhir::nhs_number::NHS_NUMBER_SYSTEM;
use serde_json::{Value, json};
use time::Date;

use crate::policy::Denial;
use crate::role::{Principal, Role};

/// `EpisodeOfCare.type` codes for a care home stay: `residential`, `nursing`.
pub const RESIDENCY_TYPE_SYSTEM: &str =
    "https://fhir.carerecord.example/CodeSystem/care-home-residency";
/// `Organization.type` codes of the programme's organisations (`care-home-nursing`, …).
pub const ORGANISATION_KIND_SYSTEM: &str =
    "https://fhir.carerecord.example/CodeSystem/organisation-kind";
/// `meta.tag` system naming the kind of system a version came from.
pub const SOURCE_SYSTEM_TAG: &str = "https://fhir.carerecord.example/CodeSystem/source-system";
/// `meta.source` of versions the portal writes.
pub const PORTAL_SOURCE: &str = "https://fhir.carerecord.example/portal";

/// Why a move could not be recorded. Each says what to do in words for the person (or the
/// integrator); none reveals a name, and a person who does not match reads the same whichever
/// detail was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The access policy refused (role, training, another organisation).
    Denied(Denial),
    /// The NHS number fails its check digit (or is not ten digits).
    InvalidNhsNumber,
    /// No one person has this NHS number and this date of birth.
    NoSuchPerson,
    /// The NHS number and date of birth match more than one record (a data-quality problem).
    Ambiguous,
    /// A date after today where only past or present dates make sense.
    DateInFuture(&'static str),
    /// A move-out dated before the stay began.
    EndBeforeStart,
    /// A date that is not a full date (`YYYY-MM-DD`) where one is needed.
    BadDate(&'static str),
    /// The episode is not in a state the change applies to (e.g. moving out someone whose stay
    /// already ended).
    WrongState(String),
    /// The episode's patient cannot change, nor can it move to another home.
    Immutable(&'static str),
}

impl Refusal {
    /// Words for the person or integrator.
    pub fn message(&self) -> String {
        match self {
            Refusal::Denied(d) => d.message(),
            Refusal::InvalidNhsNumber => {
                "Enter a valid 10-digit NHS number, like 999 123 4567".to_owned()
            }
            Refusal::NoSuchPerson => "There is no person with this NHS number and date of birth. \
                Check both against the person's documents."
                .to_owned(),
            Refusal::Ambiguous => "This NHS number and date of birth match more than one record. \
                Ask the record's data quality team to resolve it before recording the move."
                .to_owned(),
            Refusal::DateInFuture(what) => format!("The {what} must be today or in the past"),
            Refusal::EndBeforeStart => {
                "The date they moved out must be on or after the date they moved in".to_owned()
            }
            Refusal::BadDate(what) => format!("The {what} must be a real date"),
            Refusal::WrongState(m) => m.clone(),
            Refusal::Immutable(m) => (*m).to_owned(),
        }
    }
}

/// Whether `principal` may record admissions to and departures from `home_org_id`: a care home
/// manager or the home's registered record system, for their own organisation only.
pub fn may_record(principal: &Principal, now: i64, home_org_id: &str) -> Result<(), Refusal> {
    if principal.role == Role::Service {
        return Ok(());
    }
    if !principal.training_current(now) {
        return Err(Refusal::Denied(Denial::TrainingExpired));
    }
    if !matches!(principal.role, Role::CareHomeManager | Role::System) {
        return Err(Refusal::Denied(Denial::WriteNotAllowed));
    }
    if principal.organisation_id != home_org_id {
        return Err(Refusal::Denied(Denial::OtherOrganisation));
    }
    Ok(())
}

/// Whether `principal` may write an EpisodeOfCare at all (before its body is looked at): the
/// roles that may record moves, besides those that may write anything.
pub fn may_write_episode(principal: &Principal, now: i64) -> Result<(), Denial> {
    match crate::policy::may_write(principal, now) {
        Ok(()) => Ok(()),
        Err(Denial::WriteNotAllowed) if principal.role == Role::CareHomeManager => Ok(()),
        Err(d) => Err(d),
    }
}

/// A full date `YYYY-MM-DD` (the date part of a dateTime is taken).
pub fn parse_date(s: &str) -> Option<Date> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(s.get(..10)?, &format).ok()
}

/// `YYYY-MM-DD`.
pub fn format_date(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// What a move-in names: the person by NHS number and date of birth, and the day they came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveIn {
    pub nhs_number: NhsNumber,
    pub born: Date,
    pub admitted: Date,
}

impl MoveIn {
    /// Checks the details as typed: the NHS number's check digit, and an admission date (today
    /// when not given) neither in the future nor before the person was born.
    pub fn new(
        nhs_number: &str,
        born: Date,
        admitted: Option<Date>,
        today: Date,
    ) -> Result<MoveIn, Vec<Refusal>> {
        let mut errors = Vec::new();
        let nhs = NhsNumber::parse(&nhs_number.replace([' ', '-'], ""));
        if nhs.is_err() {
            errors.push(Refusal::InvalidNhsNumber);
        }
        if born > today {
            errors.push(Refusal::DateInFuture("date of birth"));
        }
        let admitted = admitted.unwrap_or(today);
        if admitted > today {
            errors.push(Refusal::DateInFuture("date they moved in"));
        }
        match nhs {
            Ok(nhs_number) if errors.is_empty() => Ok(MoveIn {
                nhs_number,
                born,
                admitted,
            }),
            _ => Err(errors),
        }
    }
}

/// Whether a Patient body is the person a move names: the exact date of birth, and a record
/// still in use (not marked inactive, not replaced by a merge).
pub fn is_person(patient: &Value, born: Date) -> bool {
    let birth = patient
        .get("birthDate")
        .and_then(Value::as_str)
        .filter(|s| s.len() == 10)
        .and_then(parse_date);
    let replaced = patient
        .get("link")
        .and_then(Value::as_array)
        .is_some_and(|links| {
            links
                .iter()
                .any(|l| l.get("type").and_then(Value::as_str) == Some("replaced-by"))
        });
    birth == Some(born)
        && patient.get("active").and_then(Value::as_bool) != Some(false)
        && !replaced
}

/// The one person among `candidates` (`(id, body)` of Patients with the NHS number) with the
/// date of birth. Which detail failed is never said.
pub fn choose_person(candidates: &[(String, Value)], born: Date) -> Result<String, Refusal> {
    let mut found = candidates.iter().filter(|(_, b)| is_person(b, born));
    match (found.next(), found.next()) {
        (Some((id, _)), None) => Ok(id.clone()),
        (Some(_), Some(_)) => Err(Refusal::Ambiguous),
        (None, _) => Err(Refusal::NoSuchPerson),
    }
}

/// The care home whose resident list changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home {
    pub org_id: String,
    /// A care home with nursing (`care-home-nursing`), else residential.
    pub nursing: bool,
}

impl Home {
    /// The home from its `Organization` resource (its type says whether it provides nursing).
    pub fn from_organization(org_id: &str, org: Option<&Value>) -> Home {
        let nursing = org
            .and_then(|o| o.get("type"))
            .and_then(Value::as_array)
            .is_some_and(|types| {
                types
                    .iter()
                    .filter_map(|t| t.get("coding").and_then(Value::as_array))
                    .flatten()
                    .any(|c| {
                        c.get("system").and_then(Value::as_str) == Some(ORGANISATION_KIND_SYSTEM)
                            && c.get("code").and_then(Value::as_str) == Some("care-home-nursing")
                    })
            });
        Home {
            org_id: org_id.to_owned(),
            nursing,
        }
    }

    fn residency_type(&self) -> Value {
        let (code, display) = if self.nursing {
            ("nursing", "Care home with nursing")
        } else {
            ("residential", "Residential care home")
        };
        json!([{"coding": [{"system": RESIDENCY_TYPE_SYSTEM, "code": code, "display": display}],
                "text": display}])
    }
}

/// What a move-in does, given the person's episodes at the home.
#[derive(Debug, Clone, PartialEq)]
pub enum MoveInPlan {
    /// Already living there: nothing to write (recording it twice changes nothing).
    AlreadyResident { episode_id: String },
    /// An open episode not yet active (planned, waiting list, on hold) becomes active.
    Reactivate { episode_id: String, body: Value },
    /// A new stay.
    Create { body: Value },
}

/// Whether an episode is still open: not ended and not withdrawn.
fn is_open(episode: &Value) -> bool {
    matches!(
        episode.get("status").and_then(Value::as_str),
        Some("planned" | "waitlist" | "active" | "onhold")
    ) && episode.pointer("/period/end").is_none()
}

/// Decides a move-in of `patient_id` to `home`, given the person's current episodes there
/// (`(id, body)`). The person's NHS number goes on the reference: it is what the home itself
/// gave, and it lets the home's list of recent changes name someone who has moved out without
/// reading their record.
pub fn plan_move_in(
    home: &Home,
    patient_id: &str,
    m: &MoveIn,
    existing: &[(String, Value)],
) -> MoveInPlan {
    let mut open: Vec<&(String, Value)> = existing.iter().filter(|(_, b)| is_open(b)).collect();
    // The active one first, then the earliest id (stable).
    open.sort_by_key(|(id, b)| {
        (
            b.get("status").and_then(Value::as_str) != Some("active"),
            id.clone(),
        )
    });
    match open.first() {
        Some((id, b)) if b.get("status").and_then(Value::as_str) == Some("active") => {
            MoveInPlan::AlreadyResident {
                episode_id: id.clone(),
            }
        }
        Some((id, b)) => {
            let mut body = b.clone();
            body["status"] = json!("active");
            if body.pointer("/period/start").is_none() {
                body["period"] = json!({"start": format_date(m.admitted)});
            }
            MoveInPlan::Reactivate {
                episode_id: id.clone(),
                body,
            }
        }
        None => MoveInPlan::Create {
            body: json!({
                "resourceType": "EpisodeOfCare",
                "status": "active",
                "type": home.residency_type(),
                "patient": patient_reference(patient_id, &m.nhs_number),
                "managingOrganization": {"reference": format!("Organization/{}", home.org_id)},
                "period": {"start": format_date(m.admitted)},
            }),
        },
    }
}

/// A reference to the person by id, carrying their NHS number.
pub fn patient_reference(patient_id: &str, nhs: &NhsNumber) -> Value {
    json!({
        "reference": format!("Patient/{patient_id}"),
        "identifier": {"system": NHS_NUMBER_SYSTEM, "value": nhs.as_str()},
    })
}

fn status(episode: &Value) -> &str {
    episode.get("status").and_then(Value::as_str).unwrap_or("")
}

fn start(episode: &Value) -> Option<Date> {
    episode
        .pointer("/period/start")
        .and_then(Value::as_str)
        .and_then(parse_date)
}

/// A move-out on `left`: the stay ends (status `finished`, `period.end`). The date may not be
/// after today nor before the stay began.
pub fn move_out(episode: &Value, left: Date, today: Date) -> Result<Value, Refusal> {
    if status(episode) != "active" {
        return Err(Refusal::WrongState(
            "This person is not living at the home according to the record, so they cannot move out."
                .to_owned(),
        ));
    }
    if left > today {
        return Err(Refusal::DateInFuture("date they moved out"));
    }
    if start(episode).is_some_and(|s| left < s) {
        return Err(Refusal::EndBeforeStart);
    }
    let mut body = episode.clone();
    body["status"] = json!("finished");
    if !body.get("period").is_some_and(Value::is_object) {
        body["period"] = json!({});
    }
    body["period"]["end"] = json!(format_date(left));
    Ok(body)
}

/// Undoes a move-in recorded by mistake: the episode is marked `entered-in-error` (a new
/// version; the mistaken one stays in its history).
pub fn undo_move_in(episode: &Value) -> Result<Value, Refusal> {
    if status(episode) != "active" {
        return Err(Refusal::WrongState(
            "Only a current stay can be undone as a mistaken move-in.".to_owned(),
        ));
    }
    let mut body = episode.clone();
    body["status"] = json!("entered-in-error");
    Ok(body)
}

/// Undoes a move-out recorded by mistake: the stay is open again (`active`, no end).
pub fn undo_move_out(episode: &Value) -> Result<Value, Refusal> {
    if status(episode) != "finished" {
        return Err(Refusal::WrongState(
            "Only a stay that has ended can be reopened.".to_owned(),
        ));
    }
    let mut body = episode.clone();
    body["status"] = json!("active");
    if let Some(p) = body.get_mut("period").and_then(Value::as_object_mut) {
        p.remove("end");
    }
    Ok(body)
}

/// The organisation id an episode's `managingOrganization` names (`Organization/{id}`).
pub fn managing_org(episode: &Value) -> Option<String> {
    let r = episode
        .pointer("/managingOrganization/reference")?
        .as_str()?;
    let id = r.rsplit_once("Organization/")?.1.split('/').next()?;
    (!id.is_empty()).then(|| id.to_owned())
}

/// The patient id an episode's literal `patient.reference` names (`Patient/{id}`).
pub fn patient_id(episode: &Value) -> Option<String> {
    let r = episode.pointer("/patient/reference")?.as_str()?;
    if r.contains('?') {
        return None;
    }
    let id = r.rsplit_once("Patient/")?.1.split('/').next()?;
    (!id.is_empty()).then(|| id.to_owned())
}

/// How a FHIR client names the person in a new episode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatientNamed {
    /// `Patient/{id}`: the client must already be able to see them.
    Literal(String),
    /// `Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|{n}&birthdate={YYYY-MM-DD}`: the
    /// server resolves it against everyone, without widening what the client may read.
    ByNhsNumber { nhs_number: NhsNumber, born: Date },
}

/// Reads `patient.reference` of an episode a FHIR client sent.
pub fn patient_named(episode: &Value) -> Result<PatientNamed, Refusal> {
    let bad = || {
        Refusal::Immutable(
            "patient.reference must be Patient/{id} or \
             Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|{NHS number}&birthdate={YYYY-MM-DD}",
        )
    };
    let r = episode
        .pointer("/patient/reference")
        .and_then(Value::as_str)
        .ok_or_else(bad)?;
    let Some(query) = r.strip_prefix("Patient?") else {
        return patient_id(episode)
            .map(PatientNamed::Literal)
            .ok_or_else(bad);
    };
    let mut nhs = None;
    let mut born = None;
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').ok_or_else(bad)?;
        let v = v.replace("%7C", "|").replace("%7c", "|");
        match k {
            "identifier" => {
                let n = v
                    .strip_prefix(&format!("{NHS_NUMBER_SYSTEM}|"))
                    .ok_or_else(bad)?;
                nhs = Some(NhsNumber::parse(n).map_err(|_| Refusal::InvalidNhsNumber)?);
            }
            "birthdate" => {
                if v.len() != 10 {
                    return Err(Refusal::BadDate("birthdate"));
                }
                born = Some(parse_date(&v).ok_or(Refusal::BadDate("birthdate"))?);
            }
            _ => return Err(bad()),
        }
    }
    match (nhs, born) {
        (Some(nhs_number), Some(born)) => Ok(PatientNamed::ByNhsNumber { nhs_number, born }),
        _ => Err(bad()),
    }
}

/// The rules an EpisodeOfCare written through the FHIR API keeps, given the current version
/// (`None` for a new one): the home stays the same and is the writer's, the person stays the
/// same, and the dates are possible (an end not before the start; a finished stay ended by
/// today).
pub fn check_episode_write(
    principal: &Principal,
    now: i64,
    old: Option<&Value>,
    new: &Value,
    today: Date,
) -> Result<(), Refusal> {
    let home = managing_org(new).ok_or(Refusal::Immutable(
        "an EpisodeOfCare needs managingOrganization: Organization/{your organisation's id}",
    ))?;
    may_record(principal, now, &home)?;
    if let Some(old) = old {
        // The home that owns the stay decides about it, and a stay cannot move to someone else.
        let old_home = managing_org(old).unwrap_or_default();
        may_record(principal, now, &old_home)?;
        if old_home != home {
            return Err(Refusal::Immutable(
                "an EpisodeOfCare cannot move to another organisation: finish it and start a new one",
            ));
        }
        let same_person = match patient_named(new)? {
            PatientNamed::Literal(id) => patient_id(old).as_deref() == Some(id.as_str()),
            // Checked against the resolved person by the caller.
            PatientNamed::ByNhsNumber { .. } => true,
        };
        if !same_person {
            return Err(Refusal::Immutable(
                "an EpisodeOfCare cannot change its patient: mark it entered-in-error and create another",
            ));
        }
    }
    let start = match new.pointer("/period/start").and_then(Value::as_str) {
        Some(s) => Some(parse_date(s).ok_or(Refusal::BadDate("period.start"))?),
        None => None,
    };
    let end = match new.pointer("/period/end").and_then(Value::as_str) {
        Some(s) => Some(parse_date(s).ok_or(Refusal::BadDate("period.end"))?),
        None => None,
    };
    if let (Some(s), Some(e)) = (start, end)
        && e < s
    {
        return Err(Refusal::EndBeforeStart);
    }
    if status(new) == "finished" {
        match end {
            None => {
                return Err(Refusal::WrongState(
                    "a finished EpisodeOfCare needs period.end: the day the person moved out"
                        .to_owned(),
                ));
            }
            Some(e) if e > today => return Err(Refusal::DateInFuture("period.end")),
            Some(_) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::role::PrincipalId;
    use time::macros::date;

    const TODAY: Date = date!(2026 - 12 - 02);

    fn manager(org: &str) -> Principal {
        Principal {
            id: PrincipalId::User("m".into()),
            name: "Manager".into(),
            role: Role::CareHomeManager,
            organisation_id: org.into(),
            organisation_ods: "ZH1".into(),
            training_valid_until: Some(i64::MAX),
            smart: None,
        }
    }

    fn move_in() -> MoveIn {
        MoveIn::new("999 000 0018", date!(1941 - 03 - 02), None, TODAY).unwrap()
    }

    fn home() -> Home {
        Home {
            org_id: "org-home-a".into(),
            nursing: true,
        }
    }

    fn created() -> Value {
        match plan_move_in(&home(), "p1", &move_in(), &[]) {
            MoveInPlan::Create { body } => body,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_bad_check_digit_is_refused_before_anyone_is_looked_up() {
        assert_eq!(
            MoveIn::new("999 000 0019", date!(1941 - 03 - 02), None, TODAY),
            Err(vec![Refusal::InvalidNhsNumber])
        );
        assert_eq!(
            MoveIn::new("0000000000", date!(1941 - 03 - 02), None, TODAY),
            Err(vec![Refusal::InvalidNhsNumber])
        );
        let ok = move_in();
        assert_eq!(ok.admitted, TODAY, "the admission date defaults to today");
        assert_eq!(
            MoveIn::new(
                "9990000018",
                date!(1941 - 03 - 02),
                Some(date!(2026 - 12 - 03)),
                TODAY
            ),
            Err(vec![Refusal::DateInFuture("date they moved in")])
        );
    }

    #[test]
    fn a_date_of_birth_that_does_not_match_reads_like_an_unknown_number() {
        let people = vec![
            ("p1".to_owned(), json!({"birthDate": "1941-03-02"})),
            (
                "old".to_owned(),
                json!({"birthDate": "1941-03-02",
                "link": [{"type": "replaced-by", "other": {"reference": "Patient/p1"}}]}),
            ),
        ];
        assert_eq!(
            choose_person(&people, date!(1941 - 03 - 02)),
            Ok("p1".into())
        );
        let wrong_dob = choose_person(&people, date!(1941 - 03 - 03));
        let nobody = choose_person(&[], date!(1941 - 03 - 02));
        assert_eq!(wrong_dob, Err(Refusal::NoSuchPerson));
        assert_eq!(wrong_dob, nobody);
        // A partial birth date is not an exact match.
        let partial = vec![("p2".to_owned(), json!({"birthDate": "1941"}))];
        assert_eq!(
            choose_person(&partial, date!(1941 - 01 - 01)),
            Err(Refusal::NoSuchPerson)
        );
        let twins = vec![
            ("a".to_owned(), json!({"birthDate": "1941-03-02"})),
            ("b".to_owned(), json!({"birthDate": "1941-03-02"})),
        ];
        assert_eq!(
            choose_person(&twins, date!(1941 - 03 - 02)),
            Err(Refusal::Ambiguous)
        );
    }

    #[test]
    fn a_move_in_creates_an_active_stay_of_the_homes_kind() {
        let body = created();
        assert_eq!(body["status"], "active");
        assert_eq!(body["type"][0]["coding"][0]["code"], "nursing");
        assert_eq!(
            body["managingOrganization"]["reference"],
            "Organization/org-home-a"
        );
        assert_eq!(body["patient"]["reference"], "Patient/p1");
        assert_eq!(body["patient"]["identifier"]["value"], "9990000018");
        assert_eq!(body["period"]["start"], "2026-12-02");
        assert_eq!(patient_id(&body).as_deref(), Some("p1"));
        let residential = Home::from_organization(
            "o",
            Some(
                &json!({"type": [{"coding": [{"system": ORGANISATION_KIND_SYSTEM, "code": "care-home-residential"}]}]}),
            ),
        );
        assert!(!residential.nursing);
        let nursing = Home::from_organization(
            "o",
            Some(
                &json!({"type": [{"coding": [{"system": ORGANISATION_KIND_SYSTEM, "code": "care-home-nursing"}]}]}),
            ),
        );
        assert!(nursing.nursing);
    }

    #[test]
    fn moving_in_twice_is_idempotent_and_an_open_plan_is_reactivated() {
        let active = created();
        assert_eq!(
            plan_move_in(&home(), "p1", &move_in(), &[("e1".into(), active.clone())]),
            MoveInPlan::AlreadyResident {
                episode_id: "e1".into()
            }
        );
        let mut planned = active.clone();
        planned["status"] = json!("planned");
        match plan_move_in(&home(), "p1", &move_in(), &[("e2".into(), planned)]) {
            MoveInPlan::Reactivate { episode_id, body } => {
                assert_eq!(episode_id, "e2");
                assert_eq!(body["status"], "active");
            }
            other => panic!("{other:?}"),
        }
        // A finished stay or a mistaken one is not reopened by a new move-in: a new stay starts.
        let finished = move_out(&active, TODAY, TODAY).unwrap();
        let wrong = undo_move_in(&active).unwrap();
        assert!(matches!(
            plan_move_in(
                &home(),
                "p1",
                &move_in(),
                &[("e3".into(), finished), ("e4".into(), wrong)]
            ),
            MoveInPlan::Create { .. }
        ));
    }

    #[test]
    fn a_move_out_is_dated_between_the_start_and_today() {
        let mut stay = created();
        stay["period"]["start"] = json!("2026-11-01");
        let out = move_out(&stay, date!(2026 - 11 - 30), TODAY).unwrap();
        assert_eq!(out["status"], "finished");
        assert_eq!(out["period"]["end"], "2026-11-30");
        assert_eq!(out["period"]["start"], "2026-11-01");
        assert_eq!(
            move_out(&stay, date!(2026 - 11 - 01), TODAY).map(|b| b["status"].clone()),
            Ok(json!("finished"))
        );
        assert_eq!(
            move_out(&stay, date!(2026 - 12 - 03), TODAY),
            Err(Refusal::DateInFuture("date they moved out"))
        );
        assert_eq!(
            move_out(&stay, date!(2026 - 10 - 31), TODAY),
            Err(Refusal::EndBeforeStart)
        );
        assert!(matches!(
            move_out(&out, TODAY, TODAY),
            Err(Refusal::WrongState(_))
        ));
    }

    #[test]
    fn the_relationship_ends_with_the_stay() {
        let classify = |b: &Value| {
            crate::classify::Classifier::current()
                .classify(carerecord_fhir::ResourceType::EpisodeOfCare, b, Some("p1"))
                .relationships
        };
        let stay = created();
        let rel = classify(&stay);
        assert_eq!(rel.len(), 1);
        assert_eq!((rel[0].org_id.as_str(), rel[0].ends), ("org-home-a", None));
        let out = move_out(&stay, TODAY, TODAY).unwrap();
        assert!(classify(&out).is_empty(), "a finished stay grants nothing");
        assert!(classify(&undo_move_in(&stay).unwrap()).is_empty());
        assert_eq!(classify(&undo_move_out(&out).unwrap()).len(), 1);
    }

    #[test]
    fn undo_marks_a_mistaken_move_in_and_reopens_a_mistaken_move_out() {
        let stay = created();
        let wrong = undo_move_in(&stay).unwrap();
        assert_eq!(wrong["status"], "entered-in-error");
        assert!(matches!(undo_move_in(&wrong), Err(Refusal::WrongState(_))));
        let out = move_out(&stay, TODAY, TODAY).unwrap();
        let back = undo_move_out(&out).unwrap();
        assert_eq!(back["status"], "active");
        assert!(back.pointer("/period/end").is_none());
        assert_eq!(back["period"]["start"], stay["period"]["start"]);
        assert!(matches!(undo_move_out(&stay), Err(Refusal::WrongState(_))));
    }

    #[test]
    fn only_a_manager_or_system_of_the_home_records_its_moves() {
        assert_eq!(may_record(&manager("org-home-a"), 0, "org-home-a"), Ok(()));
        assert_eq!(
            may_record(&manager("org-home-b"), 0, "org-home-a"),
            Err(Refusal::Denied(Denial::OtherOrganisation))
        );
        let carer = Principal {
            role: Role::CareWorker,
            ..manager("org-home-a")
        };
        assert_eq!(
            may_record(&carer, 0, "org-home-a"),
            Err(Refusal::Denied(Denial::WriteNotAllowed))
        );
        let lapsed = Principal {
            training_valid_until: Some(0),
            ..manager("org-home-a")
        };
        assert_eq!(
            may_record(&lapsed, 0, "org-home-a"),
            Err(Refusal::Denied(Denial::TrainingExpired))
        );
        assert_eq!(may_write_episode(&manager("x"), 0), Ok(()));
        assert_eq!(may_write_episode(&carer, 0), Err(Denial::WriteNotAllowed));
    }

    #[test]
    fn the_api_names_a_person_by_nhs_number_and_birth_date_or_by_id() {
        let by_id = json!({"patient": {"reference": "Patient/p1"}});
        assert_eq!(
            patient_named(&by_id),
            Ok(PatientNamed::Literal("p1".into()))
        );
        let by_nhs = json!({"patient": {"reference":
            "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9990000018&birthdate=1941-03-02"}});
        match patient_named(&by_nhs) {
            Ok(PatientNamed::ByNhsNumber { nhs_number, born }) => {
                assert_eq!(nhs_number.as_str(), "9990000018");
                assert_eq!(born, date!(1941 - 03 - 02));
            }
            other => panic!("{other:?}"),
        }
        // The birth date is required, and the check digit is checked.
        let no_dob = json!({"patient": {"reference":
            "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9990000018"}});
        assert!(patient_named(&no_dob).is_err());
        let bad = json!({"patient": {"reference":
            "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9990000019&birthdate=1941-03-02"}});
        assert_eq!(patient_named(&bad), Err(Refusal::InvalidNhsNumber));
        let other_param =
            json!({"patient": {"reference": "Patient?name=Smith&birthdate=1941-03-02"}});
        assert!(patient_named(&other_param).is_err());
    }

    #[test]
    fn api_writes_keep_the_home_the_person_and_possible_dates() {
        let m = manager("org-home-a");
        let stay = created();
        assert_eq!(check_episode_write(&m, 0, None, &stay, TODAY), Ok(()));
        let mut elsewhere = stay.clone();
        elsewhere["managingOrganization"]["reference"] = json!("Organization/org-home-b");
        assert_eq!(
            check_episode_write(&m, 0, None, &elsewhere, TODAY),
            Err(Refusal::Denied(Denial::OtherOrganisation))
        );
        // Home B's stay cannot be finished by home A, even by naming home A in the new body.
        assert_eq!(
            check_episode_write(&m, 0, Some(&elsewhere), &stay, TODAY),
            Err(Refusal::Denied(Denial::OtherOrganisation))
        );
        let mut someone_else = stay.clone();
        someone_else["patient"] = json!({"reference": "Patient/p2"});
        assert!(matches!(
            check_episode_write(&m, 0, Some(&stay), &someone_else, TODAY),
            Err(Refusal::Immutable(_))
        ));
        let out = move_out(&stay, TODAY, TODAY).unwrap();
        assert_eq!(check_episode_write(&m, 0, Some(&stay), &out, TODAY), Ok(()));
        let mut no_end = out.clone();
        no_end["period"] = json!({"start": "2026-12-02"});
        assert!(matches!(
            check_episode_write(&m, 0, Some(&stay), &no_end, TODAY),
            Err(Refusal::WrongState(_))
        ));
        let mut future = out.clone();
        future["period"]["end"] = json!("2027-01-01");
        assert_eq!(
            check_episode_write(&m, 0, Some(&stay), &future, TODAY),
            Err(Refusal::DateInFuture("period.end"))
        );
        let mut early = out;
        early["period"]["end"] = json!("2026-01-01");
        assert_eq!(
            check_episode_write(&m, 0, Some(&stay), &early, TODAY),
            Err(Refusal::EndBeforeStart)
        );
    }

    #[test]
    fn the_codes_are_the_synthetic_generators() {
        assert_eq!(
            RESIDENCY_TYPE_SYSTEM,
            carerecord_synth::RESIDENCY_TYPE_SYSTEM
        );
        assert_eq!(
            ORGANISATION_KIND_SYSTEM,
            carerecord_synth::ORGANISATION_KIND_SYSTEM
        );
        assert_eq!(SOURCE_SYSTEM_TAG, carerecord_synth::SOURCE_SYSTEM_TAG);
    }
}
