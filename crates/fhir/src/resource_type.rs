//! The resource types carerecord stores.

use std::fmt;
use std::str::FromStr;

macro_rules! resource_types {
    ($($variant:ident),+ $(,)?) => {
        /// A FHIR R4 resource type that carerecord supports.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum ResourceType {
            $($variant),+
        }

        impl ResourceType {
            /// Every supported type, in a stable order.
            pub const ALL: &'static [ResourceType] = &[$(ResourceType::$variant),+];

            /// The name as written in `resourceType` and URLs.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ResourceType::$variant => stringify!($variant)),+
                }
            }
        }

        impl FromStr for ResourceType {
            type Err = UnknownResourceType;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $(stringify!($variant) => Ok(ResourceType::$variant),)+
                    other => Err(UnknownResourceType(other.to_owned())),
                }
            }
        }
    };
}

resource_types!(
    AllergyIntolerance,
    Binary,
    Bundle,
    CarePlan,
    Composition,
    Condition,
    Consent,
    DiagnosticReport,
    DocumentReference,
    Encounter,
    EpisodeOfCare,
    Flag,
    Immunization,
    Location,
    Medication,
    MedicationRequest,
    MedicationStatement,
    Observation,
    Organization,
    Patient,
    Practitioner,
    PractitionerRole,
    Procedure,
    Provenance,
    RelatedPerson,
);

impl fmt::Display for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `resourceType` that carerecord does not store (or that does not exist).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("resource type '{0}' is not supported by this server")]
pub struct UnknownResourceType(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_round_trips_through_its_name() {
        for t in ResourceType::ALL {
            assert_eq!(t.as_str().parse::<ResourceType>(), Ok(*t));
        }
    }

    #[test]
    fn unknown_and_wrongly_cased_types_are_rejected() {
        assert!("Patients".parse::<ResourceType>().is_err());
        assert!("patient".parse::<ResourceType>().is_err());
        assert!("Questionnaire".parse::<ResourceType>().is_err());
    }
}
