//! What the access policy needs to know about a resource, read from its body when it is
//! written: which organisation it came from, whether it is sensitive, which care relationships
//! it establishes, and whether it records an objection to sharing. The store keeps these next
//! to the resource so the policy can be compiled into its queries.

use std::collections::HashSet;
use std::sync::OnceLock;

use carerecord_fhir::ResourceType;
use carerecord_search::datetime::DateRange;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The tag system naming the organisation (ODS code) a resource came from.
pub const SOURCE_ORGANISATION_TAG: &str =
    "https://fhir.carerecord.example/CodeSystem/source-organisation";
const ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
const CONFIDENTIALITY: &str = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality";
const SNOMED: &str = "http://snomed.info/sct";
const READ_V2: &str = "http://read.info/readv2";
const NHS_NUMBER: &str = "https://fhir.nhs.uk/Id/nhs-number";
const NHS_VERIFICATION: &str =
    "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus";
/// "Number present and verified": the only status under which a person is shared.
const VERIFIED: &str = "01";

/// Why a person is in an organisation's care.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RelationshipKind {
    /// Lives in the care home (an active EpisodeOfCare it manages).
    Residency,
    /// Registered with the GP practice.
    Registration,
    /// A current or recent encounter with the organisation.
    Encounter,
}

impl RelationshipKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RelationshipKind::Residency => "residency",
            RelationshipKind::Registration => "registration",
            RelationshipKind::Encounter => "encounter",
        }
    }
}

/// A care relationship a resource establishes between its patient and an organisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relationship {
    /// The organisation's logical id.
    pub org_id: String,
    pub kind: RelationshipKind,
    /// When it ends (µs since the epoch, exclusive); `None` while open. Encounters count for a
    /// window after this (configurable), the others end here.
    pub ends: Option<i64>,
}

/// The access-relevant facts about one resource version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Classification {
    /// ODS code of the organisation that wrote it (its source-organisation tag).
    pub source_ods: Option<String>,
    /// Only its source organisation may see it.
    pub sensitive: bool,
    pub relationships: Vec<Relationship>,
    /// It records the patient's objection to sharing their record.
    pub objection: bool,
    /// It is a Patient whose NHS number is present but not verified (verification status
    /// other than `01`): until it is verified the person is not shared beyond the source of
    /// each item — the store treats it exactly like an objection.
    pub unverified_identity: bool,
}

/// The configurable code lists behind classification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeLists {
    /// SNOMED CT codes (the RCGP sensitive categories) whose items only their source sees.
    pub sensitive_snomed: Vec<String>,
    /// `meta.security` labels (`system|code`) that make an item sensitive.
    pub sensitive_labels: Vec<String>,
    /// Codes (`system|code`) recording a dissent from sharing (GP dissent codes).
    pub objection_codes: Vec<String>,
}

impl Default for CodeLists {
    fn default() -> Self {
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect();
        CodeLists {
            // A starter set per RCGP category; deployments extend it from their terminology
            // service (the list is configuration, not code).
            sensitive_snomed: s(&[
                "8098009",   // Sexually transmitted infectious disease
                "86406008",  // Human immunodeficiency virus infection
                "165816005", // HIV positive
                "386639001", // Termination of pregnancy
                "52637005",  // In vitro fertilisation
                "93461009",  // Gender dysphoria
                "407374003", // Transsexual
            ]),
            sensitive_labels: vec![
                format!("{ACT_CODE}|STD"),
                format!("{ACT_CODE}|HIV"),
                format!("{ACT_CODE}|SEX"),
                format!("{ACT_CODE}|PSY"),
                format!("{ACT_CODE}|ETH"),
                format!("{CONFIDENTIALITY}|R"),
                format!("{CONFIDENTIALITY}|V"),
            ],
            // Read v2 9Nd1 "no consent for electronic record sharing" and 93C1 "refused
            // consent for upload to local shared electronic record". 9Nu0 (type-1 opt-out) and
            // the National Data Opt-out are deliberately absent: they do not apply to direct care.
            objection_codes: vec![format!("{READ_V2}|9Nd1"), format!("{READ_V2}|93C1")],
        }
    }
}

/// Classifies resources with a set of code lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classifier {
    sensitive_snomed: HashSet<String>,
    sensitive_labels: HashSet<(String, String)>,
    objection_codes: HashSet<(String, String)>,
}

static INSTALLED: OnceLock<Classifier> = OnceLock::new();

fn pairs(v: &[String]) -> HashSet<(String, String)> {
    v.iter()
        .filter_map(|s| s.rsplit_once('|'))
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect()
}

impl Classifier {
    pub fn new(lists: &CodeLists) -> Self {
        Classifier {
            sensitive_snomed: lists.sensitive_snomed.iter().cloned().collect(),
            sensitive_labels: pairs(&lists.sensitive_labels),
            objection_codes: pairs(&lists.objection_codes),
        }
    }

    /// Makes `lists` the process's code lists. The write path classifies every resource from
    /// many call sites (API, Bundles, import, feeds), and the lists are process-wide
    /// configuration, so they are installed once at start-up rather than threaded through each
    /// call. Returns false if lists were already installed (the first ones stay).
    pub fn install(lists: &CodeLists) -> bool {
        INSTALLED.set(Classifier::new(lists)).is_ok()
    }

    /// The installed classifier, or the default lists.
    pub fn current() -> &'static Classifier {
        INSTALLED.get_or_init(|| Classifier::new(&CodeLists::default()))
    }

    /// Classifies `body` (of type `rt`, in the compartment of `patient_id`).
    pub fn classify(
        &self,
        rt: ResourceType,
        body: &Value,
        patient_id: Option<&str>,
    ) -> Classification {
        let source_ods = body
            .pointer("/meta/tag")
            .and_then(Value::as_array)
            .and_then(|tags| {
                tags.iter().find(|t| {
                    t.get("system").and_then(Value::as_str) == Some(SOURCE_ORGANISATION_TAG)
                })
            })
            .and_then(|t| t.get("code"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        Classification {
            source_ods,
            sensitive: self.sensitive(rt, body),
            relationships: if patient_id.is_some() {
                relationships(rt, body)
            } else {
                Vec::new()
            },
            objection: patient_id.is_some() && self.objection(rt, body),
            unverified_identity: patient_id.is_some()
                && rt == ResourceType::Patient
                && unverified_nhs_number(body),
        }
    }

    fn sensitive(&self, rt: ResourceType, body: &Value) -> bool {
        let labelled = body
            .pointer("/meta/security")
            .and_then(Value::as_array)
            .is_some_and(|labels| labels.iter().any(|c| self.has(&self.sensitive_labels, c)));
        if labelled {
            return true;
        }
        if rt == ResourceType::Composition
            && matches!(
                body.get("confidentiality").and_then(Value::as_str),
                Some("R" | "V")
            )
        {
            return true;
        }
        code_fields(rt).iter().any(|field| {
            codings(body.get(*field)).any(|c| {
                c.get("system").and_then(Value::as_str) == Some(SNOMED)
                    && c.get("code")
                        .and_then(Value::as_str)
                        .is_some_and(|code| self.sensitive_snomed.contains(code))
            })
        })
    }

    fn objection(&self, rt: ResourceType, body: &Value) -> bool {
        match rt {
            ResourceType::Consent => {
                body.get("status").and_then(Value::as_str) == Some("active")
                    && body.pointer("/provision/type").and_then(Value::as_str) == Some("deny")
            }
            ResourceType::Observation | ResourceType::Condition | ResourceType::Procedure => {
                let status_ok = !matches!(
                    body.get("status").and_then(Value::as_str),
                    Some("entered-in-error" | "cancelled")
                ) && body
                    .pointer("/verificationStatus/coding/0/code")
                    .and_then(Value::as_str)
                    != Some("entered-in-error");
                status_ok && codings(body.get("code")).any(|c| self.has(&self.objection_codes, c))
            }
            _ => false,
        }
    }

    fn has(&self, set: &HashSet<(String, String)>, coding: &Value) -> bool {
        match (
            coding.get("system").and_then(Value::as_str),
            coding.get("code").and_then(Value::as_str),
        ) {
            (Some(s), Some(c)) => set.contains(&(s.to_owned(), c.to_owned())),
            _ => false,
        }
    }
}

/// A Patient whose NHS number carries a verification status other than `01`. A number without
/// a status (older submissions that do not say) counts as verified, and a person without any
/// NHS number is shared through their relationships as before: only a number a source says is
/// untraced or doubtful holds the person back.
fn unverified_nhs_number(body: &Value) -> bool {
    let Some(ids) = body.get("identifier").and_then(Value::as_array) else {
        return false;
    };
    ids.iter()
        .filter(|i| i.get("system").and_then(Value::as_str) == Some(NHS_NUMBER))
        .any(|i| {
            let status = i
                .get("extension")
                .and_then(Value::as_array)
                .and_then(|exts| {
                    exts.iter()
                        .find(|e| e.get("url").and_then(Value::as_str) == Some(NHS_VERIFICATION))
                })
                .and_then(|e| e.pointer("/valueCodeableConcept/coding/0/code"))
                .and_then(Value::as_str);
            status.is_some_and(|code| code != VERIFIED)
        })
}

/// The elements holding a resource's clinical code(s), checked against the sensitive lists.
fn code_fields(rt: ResourceType) -> &'static [&'static str] {
    match rt {
        ResourceType::Condition
        | ResourceType::Procedure
        | ResourceType::Observation
        | ResourceType::DiagnosticReport
        | ResourceType::AllergyIntolerance => &["code"],
        ResourceType::Encounter => &["reasonCode", "type"],
        ResourceType::MedicationRequest | ResourceType::MedicationStatement => {
            &["medicationCodeableConcept", "reasonCode"]
        }
        ResourceType::DocumentReference | ResourceType::Composition => &["type"],
        ResourceType::CarePlan => &["category"],
        _ => &[],
    }
}

/// The codings of a CodeableConcept or of an array of them.
fn codings(v: Option<&Value>) -> impl Iterator<Item = &Value> {
    let concepts: Vec<&Value> = match v {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(o @ Value::Object(_)) => vec![o],
        _ => Vec::new(),
    };
    concepts
        .into_iter()
        .filter_map(|c| c.get("coding").and_then(Value::as_array))
        .flatten()
}

/// The organisation id of an `Organization/{id}` reference.
fn org_ref(v: Option<&Value>) -> Option<String> {
    let r = v?.get("reference")?.as_str()?;
    let rest = r.rsplit_once("Organization/")?.1;
    let id = rest.split('/').next()?;
    (!id.is_empty()).then(|| id.to_owned())
}

fn relationships(rt: ResourceType, body: &Value) -> Vec<Relationship> {
    let status = body.get("status").and_then(Value::as_str);
    match rt {
        ResourceType::EpisodeOfCare if status == Some("active") => {
            org_ref(body.get("managingOrganization"))
                .map(|org_id| Relationship {
                    org_id,
                    kind: RelationshipKind::Residency,
                    ends: period_end(body.get("period")),
                })
                .into_iter()
                .collect()
        }
        ResourceType::Patient if body.get("active").and_then(Value::as_bool) != Some(false) => body
            .get("generalPractitioner")
            .and_then(Value::as_array)
            .map(|gps| {
                gps.iter()
                    .filter_map(|g| org_ref(Some(g)))
                    .map(|org_id| Relationship {
                        org_id,
                        kind: RelationshipKind::Registration,
                        ends: None,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        ResourceType::Encounter => {
            if matches!(status, Some("cancelled" | "entered-in-error" | "planned")) {
                return Vec::new();
            }
            let Some(org_id) = org_ref(body.get("serviceProvider")) else {
                return Vec::new();
            };
            // A finished encounter without an end counts from its start.
            let ends = period_end(body.get("period")).or_else(|| {
                (status == Some("finished"))
                    .then(|| period_start(body.get("period")))
                    .flatten()
            });
            vec![Relationship {
                org_id,
                kind: RelationshipKind::Encounter,
                ends,
            }]
        }
        _ => Vec::new(),
    }
}

/// The end of a Period as the exclusive upper bound of its (possibly partial) date.
fn period_end(p: Option<&Value>) -> Option<i64> {
    let s = p?.get("end")?.as_str()?;
    DateRange::parse(s).map(|r| r.high)
}

fn period_start(p: Option<&Value>) -> Option<i64> {
    let s = p?.get("start")?.as_str()?;
    DateRange::parse(s).map(|r| r.high)
}
