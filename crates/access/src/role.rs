//! Roles, organisations and the principal a request acts as.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How much of a person's record a role shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum View {
    /// No clinical content at all (privacy officers, administrators).
    None,
    /// The care-home restricted view: summary, allergies, medicines, immunisations, alerts,
    /// care plans and the latest discharge summary's plan and medicines (GP Connect's model).
    Restricted,
    /// The whole record.
    Full,
}

/// A role a user (or system) holds at one organisation. One per session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    CareWorker,
    SeniorCarer,
    RegisteredNurse,
    CareHomeManager,
    Gp,
    HospitalClinician,
    PrivacyOfficer,
    ProgrammeAdmin,
    /// A registered system (a care home record system, a hospital feed) acting for its
    /// organisation: the full view of that organisation's people.
    System,
    /// carerecord's own trusted service identity (loaders, conformance checks): sees and writes
    /// everything, still audited. Only the CLI can make one.
    Service,
}

impl Role {
    pub const ALL: [Role; 10] = [
        Role::CareWorker,
        Role::SeniorCarer,
        Role::RegisteredNurse,
        Role::CareHomeManager,
        Role::Gp,
        Role::HospitalClinician,
        Role::PrivacyOfficer,
        Role::ProgrammeAdmin,
        Role::System,
        Role::Service,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::CareWorker => "care-worker",
            Role::SeniorCarer => "senior-carer",
            Role::RegisteredNurse => "registered-nurse",
            Role::CareHomeManager => "care-home-manager",
            Role::Gp => "gp",
            Role::HospitalClinician => "hospital-clinician",
            Role::PrivacyOfficer => "privacy-officer",
            Role::ProgrammeAdmin => "programme-admin",
            Role::System => "system",
            Role::Service => "service",
        }
    }

    /// Words for screens and audit.
    pub fn display(self) -> &'static str {
        match self {
            Role::CareWorker => "Care worker",
            Role::SeniorCarer => "Senior carer",
            Role::RegisteredNurse => "Registered nurse",
            Role::CareHomeManager => "Care home manager",
            Role::Gp => "GP",
            Role::HospitalClinician => "Hospital clinician",
            Role::PrivacyOfficer => "Privacy officer",
            Role::ProgrammeAdmin => "Programme administrator",
            Role::System => "Registered system",
            Role::Service => "carerecord service",
        }
    }

    /// The national RBAC role code nearest to this role, for audit (`AuditEvent.agent.role`).
    pub fn rbac_code(self) -> Option<&'static str> {
        match self {
            Role::Gp | Role::HospitalClinician => Some("R8000"),
            Role::RegisteredNurse => Some("R8001"),
            Role::PrivacyOfficer => Some("R0001"),
            _ => None,
        }
    }

    pub fn view(self) -> View {
        match self {
            Role::CareWorker | Role::SeniorCarer => View::Restricted,
            Role::RegisteredNurse
            | Role::CareHomeManager
            | Role::Gp
            | Role::HospitalClinician
            | Role::System
            | Role::Service => View::Full,
            Role::PrivacyOfficer | Role::ProgrammeAdmin => View::None,
        }
    }

    /// Roles that show records need a second factor when a person signs in.
    pub fn needs_second_factor(self) -> bool {
        self.view() != View::None || self == Role::PrivacyOfficer
    }

    /// Whether this role is held by a system (token by client credentials) rather than a person.
    pub fn is_system(self) -> bool {
        matches!(self, Role::System | Role::Service)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown role {0:?}")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

/// The kinds of organisation in the programme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OrgKind {
    CareHome,
    GpPractice,
    HospitalTrust,
    Laboratory,
    Ics,
    Programme,
}

/// Who is acting: a user or a system.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "kebab-case")]
pub enum PrincipalId {
    User(String),
    System(String),
}

/// The identity a request acts as, fixed for a session or token: one role at one organisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    pub id: PrincipalId,
    /// A display name, for audit only (never logged).
    pub name: String,
    pub role: Role,
    /// The organisation's logical id (`Organization/{id}` in the store).
    pub organisation_id: String,
    /// Its ODS code, for audit.
    pub organisation_ods: String,
    /// Data-security training is current until this instant (µs since the epoch); `None` for
    /// systems, which are not trained people.
    pub training_valid_until: Option<i64>,
    /// What an OAuth client was granted on top of the access policy, when the principal acts
    /// through one (SMART App Launch or Backend Services). Scopes only ever narrow what the
    /// policy allows; `None` means no narrowing (the portal, signed launch, plain tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smart: Option<SmartGrant>,
}

/// The OAuth grant a token carries: the granted scopes as issued (space-separated, SMART v1 or
/// v2 syntax) and the launch context they apply to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmartGrant {
    /// The client the grant was issued to.
    pub client_id: String,
    /// The granted scope string, exactly as returned in the token response.
    pub scope: String,
    /// The patient in context (a `Patient` logical id), for `patient/` scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<String>,
}

impl Principal {
    /// Whether the data-security training rule lets this principal see records at `now`.
    pub fn training_current(&self, now_micros: i64) -> bool {
        match self.training_valid_until {
            Some(until) => now_micros < until,
            None => self.role.is_system(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().ok(), Some(r));
        }
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn views_follow_the_care_home_model() {
        assert_eq!(Role::CareWorker.view(), View::Restricted);
        assert_eq!(Role::SeniorCarer.view(), View::Restricted);
        assert_eq!(Role::RegisteredNurse.view(), View::Full);
        assert_eq!(Role::PrivacyOfficer.view(), View::None);
        assert_eq!(Role::ProgrammeAdmin.view(), View::None);
    }

    #[test]
    fn people_without_training_see_nothing_systems_need_none() {
        let mut p = Principal {
            id: PrincipalId::User("u1".into()),
            name: "Test".into(),
            role: Role::RegisteredNurse,
            organisation_id: "org".into(),
            organisation_ods: "X1".into(),
            training_valid_until: Some(100),
            smart: None,
        };
        assert!(p.training_current(99));
        assert!(!p.training_current(100));
        p.training_valid_until = None;
        assert!(!p.training_current(0));
        p.role = Role::System;
        assert!(p.training_current(0));
    }
}
