//! The one access policy. Every request that touches the record asks it, once, what the
//! principal may see; the answer is either a [`Visibility`] the store compiles into its
//! queries, or a [`Denial`] naming the rule that refused, in words a care worker understands.

use carerecord_fhir::ResourceType;
use serde_json::Value;

use crate::role::{Principal, Role, View};
use crate::visibility::{Scope, Visibility};

const DAY_MICROS: i64 = 86_400_000_000;
const HOUR_MICROS: i64 = 3_600_000_000;

/// The policy's tunable parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicySettings {
    /// How long after an encounter ends the hospital (or team) still counts as caring.
    pub encounter_window_days: u32,
    /// How long a break-glass grant lasts.
    pub break_glass_hours: u32,
}

impl Default for PolicySettings {
    fn default() -> Self {
        PolicySettings {
            encounter_window_days: 30,
            break_glass_hours: 4,
        }
    }
}

impl PolicySettings {
    pub fn break_glass_micros(&self) -> i64 {
        i64::from(self.break_glass_hours) * HOUR_MICROS
    }

    /// Encounters that ended at or after this instant still count as care at `now`.
    pub fn encounter_cutoff(&self, now: i64) -> i64 {
        now.saturating_sub(i64::from(self.encounter_window_days) * DAY_MICROS)
    }
}

/// The types the restricted (care-home) view shows: the person and their summary — problems,
/// allergies, medicines, immunisations, alerts, care plans, their residency — the latest
/// discharge summary (trimmed to its plan and medicines), and the directory entries those
/// refer to. GP Connect's care-home access model is the anchor; lab results, reports,
/// encounters, documents and procedures need the full view.
pub const RESTRICTED_TYPES: [ResourceType; 16] = [
    ResourceType::Patient,
    ResourceType::RelatedPerson,
    ResourceType::AllergyIntolerance,
    ResourceType::Condition,
    ResourceType::Medication,
    ResourceType::MedicationRequest,
    ResourceType::MedicationStatement,
    ResourceType::Immunization,
    ResourceType::CarePlan,
    ResourceType::Flag,
    ResourceType::Composition,
    ResourceType::EpisodeOfCare,
    ResourceType::Organization,
    ResourceType::Practitioner,
    ResourceType::PractitionerRole,
    ResourceType::Location,
];

/// The discharge-summary sections the restricted view keeps (PRSB headings, SNOMED CT).
pub const RESTRICTED_SECTIONS: [&str; 2] = [
    "887201000000105", // Plan and requested actions
    "933361000000108", // Medications and medical devices
];

/// Why a request was refused. Each has a stable rule id (for audit) and a message for the
/// person who asked; none says whether the person or record exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// Data-security training is out of date.
    TrainingExpired,
    /// The role shows no clinical records (privacy officer, administrator).
    NoClinicalView,
    /// The role's view does not include this kind of information.
    CategoryNotInView(ResourceType),
    /// The person is not in the organisation's care, or objected, or it is not there.
    NotInCare,
    /// Break-glass is not open to this role.
    BreakGlassNotAllowed,
    /// The role may not change records.
    WriteNotAllowed,
    /// Audit is for privacy officers.
    AuditNotAllowed,
    /// Break-glass grants are reviewed by privacy officers.
    ReviewNotAllowed,
    /// Nobody reviews their own emergency access.
    OwnGrant,
    /// Identity matches are decided by the programme's administrators.
    MatchReviewNotAllowed,
    /// Admissions and departures are recorded only for one's own organisation.
    OtherOrganisation,
}

impl Denial {
    pub fn rule(self) -> &'static str {
        match self {
            Denial::TrainingExpired => "deny-training-expired",
            Denial::NoClinicalView => "deny-role-no-clinical-view",
            Denial::CategoryNotInView(_) => "deny-category-not-in-role-view",
            Denial::NotInCare => "deny-no-care-relationship",
            Denial::BreakGlassNotAllowed => "deny-break-glass-role",
            Denial::WriteNotAllowed => "deny-write-role",
            Denial::AuditNotAllowed => "deny-audit-role",
            Denial::ReviewNotAllowed => "deny-review-role",
            Denial::OwnGrant => "deny-review-own-grant",
            Denial::MatchReviewNotAllowed => "deny-match-review-role",
            Denial::OtherOrganisation => "deny-other-organisation",
        }
    }

    pub fn message(self) -> String {
        match self {
            Denial::TrainingExpired => "Your data security training is out of date, so records are not shown. \
                Record your renewed training to see records again."
                .to_owned(),
            Denial::NoClinicalView => {
                "Your role does not include seeing people's health and care records.".to_owned()
            }
            Denial::CategoryNotInView(rt) => format!(
                "Your role does not include this kind of information ({}). A registered nurse or clinician can see it.",
                category_words(rt)
            ),
            Denial::NotInCare => "This record is not available to you. You can see the records of people \
                your organisation is caring for. In an emergency, use emergency access and give a reason."
                .to_owned(),
            Denial::BreakGlassNotAllowed => {
                "Emergency access is only for staff who look after people directly.".to_owned()
            }
            Denial::WriteNotAllowed => "Your role cannot change records here.".to_owned(),
            Denial::AuditNotAllowed => {
                "Only privacy officers can see who has looked at records.".to_owned()
            }
            Denial::ReviewNotAllowed => {
                "Only your organisation's privacy officers can review emergency access.".to_owned()
            }
            Denial::OwnGrant => "You cannot review your own emergency access: another privacy \
                officer must review it."
                .to_owned(),
            Denial::MatchReviewNotAllowed => {
                "Only the shared record's programme administrators decide whether two records \
                are the same person."
                    .to_owned()
            }
            Denial::OtherOrganisation => "You can only record people moving in to or out of \
                your own organisation."
                .to_owned(),
        }
    }
}

fn category_words(rt: ResourceType) -> &'static str {
    match rt {
        ResourceType::Observation => "test results and observations",
        ResourceType::DiagnosticReport => "test and imaging reports",
        ResourceType::Encounter => "hospital and GP visits",
        ResourceType::Procedure => "procedures",
        ResourceType::DocumentReference | ResourceType::Binary => "documents",
        ResourceType::Consent => "consent records",
        ResourceType::Provenance => "record sources",
        _ => "this information",
    }
}

/// What `principal` may see at `now`, or why they may see nothing.
pub fn visibility(
    principal: &Principal,
    now: i64,
    settings: &PolicySettings,
) -> Result<Visibility, Denial> {
    if principal.role == Role::Service {
        return Ok(Visibility::All);
    }
    if !principal.training_current(now) {
        return Err(Denial::TrainingExpired);
    }
    let restricted = match principal.role.view() {
        View::None => return Err(Denial::NoClinicalView),
        View::Restricted => true,
        View::Full => false,
    };
    Ok(Visibility::Scoped(Scope {
        org_id: principal.organisation_id.clone(),
        org_ods: principal.organisation_ods.clone(),
        principal_key: principal_key(principal),
        types: restricted.then(|| RESTRICTED_TYPES.to_vec()),
        latest_discharge_only: restricted,
        now,
        encounter_cutoff: settings.encounter_cutoff(now),
        patient: None,
        known: None,
    }))
}

/// A type-level request (search, type history) for `rt`: refused up front when the role's
/// view cannot include the type at all, so the answer says why instead of being empty.
pub fn check_type(vis: &Visibility, rt: ResourceType) -> Result<(), Denial> {
    match vis {
        Visibility::All => Ok(()),
        Visibility::Scoped(s) => match &s.types {
            Some(types) if !types.contains(&rt) => Err(Denial::CategoryNotInView(rt)),
            _ => Ok(()),
        },
    }
}

/// Whether `principal` may ask for emergency access.
pub fn may_break_glass(principal: &Principal, now: i64) -> Result<(), Denial> {
    if !principal.training_current(now) {
        return Err(Denial::TrainingExpired);
    }
    match principal.role {
        Role::CareWorker
        | Role::SeniorCarer
        | Role::RegisteredNurse
        | Role::CareHomeManager
        | Role::Gp
        | Role::HospitalClinician => Ok(()),
        _ => Err(Denial::BreakGlassNotAllowed),
    }
}

/// Whether `principal` may write records (FHIR create, update, delete, Bundles).
pub fn may_write(principal: &Principal, now: i64) -> Result<(), Denial> {
    if principal.role == Role::Service {
        return Ok(());
    }
    if !principal.training_current(now) {
        return Err(Denial::TrainingExpired);
    }
    match principal.role {
        // Feeds and care-home systems write for their organisation; clinicians and nurses
        // record through their own systems or the portal.
        Role::System | Role::RegisteredNurse | Role::Gp | Role::HospitalClinician => Ok(()),
        _ => Err(Denial::WriteNotAllowed),
    }
}

/// Whether `principal` may read the audit trail.
pub fn may_read_audit(principal: &Principal, now: i64) -> Result<(), Denial> {
    if principal.role == Role::Service {
        return Ok(());
    }
    if !principal.training_current(now) {
        return Err(Denial::TrainingExpired);
    }
    if principal.role == Role::PrivacyOfficer {
        Ok(())
    } else {
        Err(Denial::AuditNotAllowed)
    }
}

/// Whether `principal` may see their organisation's break-glass review queue and review its
/// grants: privacy officers (R0001) with current training. A person, not a system, is
/// accountable for a review, so the service identity may not.
pub fn may_review_break_glass(principal: &Principal, now: i64) -> Result<(), Denial> {
    if principal.role != Role::PrivacyOfficer {
        return Err(Denial::ReviewNotAllowed);
    }
    if !principal.training_current(now) {
        return Err(Denial::TrainingExpired);
    }
    Ok(())
}

/// Whether `principal` may list and decide the identity-matching review queue: a programme
/// administrator with current training. Linking merges records from every organisation, so
/// it is the programme's data-quality task, not one organisation's (privacy officers oversee
/// access, not records).
pub fn may_review_matches(principal: &Principal, now: i64) -> Result<(), Denial> {
    if principal.role != Role::ProgrammeAdmin {
        return Err(Denial::MatchReviewNotAllowed);
    }
    if !principal.training_current(now) {
        return Err(Denial::TrainingExpired);
    }
    Ok(())
}

/// Whether `reviewer` may review the grant that `grant_principal_key` received at
/// `grant_org_id`. `None` when the grant is not their organisation's: the caller answers as
/// for a grant that does not exist. A user holding roles at several organisations is one
/// person, so their own grant made in another role is still their own.
pub fn may_review_grant(
    reviewer: &Principal,
    grant_org_id: &str,
    grant_principal_key: &str,
    now: i64,
) -> Option<Result<(), Denial>> {
    if grant_org_id != reviewer.organisation_id {
        return None;
    }
    if let Err(d) = may_review_break_glass(reviewer, now) {
        return Some(Err(d));
    }
    let own = match &reviewer.id {
        crate::role::PrincipalId::User(u) => grant_principal_key
            .strip_prefix("user:")
            .and_then(|k| k.strip_suffix(&format!("@{grant_org_id}")))
            .is_some_and(|granted_to| granted_to == u),
        crate::role::PrincipalId::System(_) => false,
    };
    Some(if own { Err(Denial::OwnGrant) } else { Ok(()) })
}

/// The key break-glass grants name a principal by.
pub fn principal_key(p: &Principal) -> String {
    match &p.id {
        crate::role::PrincipalId::User(u) => format!("user:{u}@{}", p.organisation_id),
        crate::role::PrincipalId::System(s) => format!("system:{s}@{}", p.organisation_id),
    }
}

/// Trims a Composition for a restricted view: only the plan and medication sections remain.
/// The narrative summary of the whole document goes too, since it may say more.
pub fn trim_for_view(vis: &Visibility, rt: ResourceType, body: &mut Value) {
    let Visibility::Scoped(s) = vis else { return };
    if !s.latest_discharge_only || rt != ResourceType::Composition {
        return;
    }
    let Some(obj) = body.as_object_mut() else {
        return;
    };
    obj.remove("text");
    if let Some(Value::Array(sections)) = obj.get_mut("section") {
        sections.retain(|sec| {
            sec.pointer("/code/coding")
                .and_then(Value::as_array)
                .is_some_and(|cs| {
                    cs.iter().any(|c| {
                        c.get("code")
                            .and_then(Value::as_str)
                            .is_some_and(|code| RESTRICTED_SECTIONS.contains(&code))
                    })
                })
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::role::PrincipalId;

    fn who(role: Role) -> Principal {
        Principal {
            id: PrincipalId::User("u".into()),
            name: "n".into(),
            role,
            organisation_id: "org-a".into(),
            organisation_ods: "A1".into(),
            training_valid_until: Some(1_000),
            smart: None,
        }
    }

    #[test]
    fn only_another_privacy_officer_of_the_same_organisation_reviews_a_grant() {
        let officer = Principal {
            id: PrincipalId::User("po".into()),
            ..who(Role::PrivacyOfficer)
        };
        let nurse_key = principal_key(&who(Role::RegisteredNurse));
        assert_eq!(
            may_review_grant(&officer, "org-a", &nurse_key, 10),
            Some(Ok(()))
        );
        // Another organisation's grant is not theirs to see.
        assert_eq!(
            may_review_grant(&officer, "org-b", "user:u@org-b", 10),
            None
        );
        // Their own grant, made while acting in another role.
        assert_eq!(
            may_review_grant(&officer, "org-a", "user:po@org-a", 10),
            Some(Err(Denial::OwnGrant))
        );
        // A user id that merely starts like theirs is someone else.
        assert_eq!(
            may_review_grant(&officer, "org-a", "user:po2@org-a", 10),
            Some(Ok(()))
        );
        let nurse = who(Role::RegisteredNurse);
        assert_eq!(
            may_review_grant(&nurse, "org-a", "user:x@org-a", 10),
            Some(Err(Denial::ReviewNotAllowed))
        );
        assert_eq!(
            may_review_grant(&officer, "org-a", &nurse_key, 1_000),
            Some(Err(Denial::TrainingExpired))
        );
        assert_eq!(
            may_review_break_glass(&who(Role::Service), 10),
            Err(Denial::ReviewNotAllowed)
        );
    }

    #[test]
    fn each_role_gets_its_view() {
        let s = PolicySettings::default();
        for role in Role::ALL {
            let v = visibility(&who(role), 10, &s);
            match role.view() {
                View::None if role != Role::Service => {
                    assert_eq!(v, Err(Denial::NoClinicalView))
                }
                View::Restricted => match v {
                    Ok(Visibility::Scoped(sc)) => {
                        assert!(sc.types.is_some() && sc.latest_discharge_only)
                    }
                    other => panic!("{role}: {other:?}"),
                },
                _ if role == Role::Service => assert_eq!(v, Ok(Visibility::All)),
                _ => match v {
                    Ok(Visibility::Scoped(sc)) => assert!(sc.types.is_none()),
                    other => panic!("{role}: {other:?}"),
                },
            }
        }
    }

    #[test]
    fn expired_training_sees_nothing_and_cannot_break_glass() {
        let s = PolicySettings::default();
        let p = who(Role::RegisteredNurse);
        assert_eq!(visibility(&p, 1_000, &s), Err(Denial::TrainingExpired));
        assert_eq!(may_break_glass(&p, 1_000), Err(Denial::TrainingExpired));
        assert!(may_break_glass(&p, 999).is_ok());
    }

    #[test]
    fn restricted_views_refuse_lab_results_up_front() {
        let v = visibility(&who(Role::CareWorker), 0, &PolicySettings::default()).unwrap();
        assert_eq!(
            check_type(&v, ResourceType::Observation),
            Err(Denial::CategoryNotInView(ResourceType::Observation))
        );
        assert!(check_type(&v, ResourceType::MedicationRequest).is_ok());
    }

    #[test]
    fn restricted_compositions_keep_plan_and_medicines_only() {
        let v = visibility(&who(Role::CareWorker), 0, &PolicySettings::default()).unwrap();
        let sec = |code: &str| serde_json::json!({"code": {"coding": [{"code": code}]}});
        let mut body = serde_json::json!({"resourceType": "Composition", "text": {"div": "x"},
            "section": [sec("887201000000105"), sec("887161000000102"), sec("933361000000108")]});
        trim_for_view(&v, ResourceType::Composition, &mut body);
        assert!(body.get("text").is_none());
        assert_eq!(body["section"].as_array().map(Vec::len), Some(2));
    }
}
