//! HL7 v2 messages to FHIR R4 resources. `docs/integrators/hl7v2.md` has the table of
//! segment/field → resource/element.
//!
//! The mapping knows nothing of the store: the person is handed back as an
//! [`IncomingPerson`] for the ingest to match, every reference to them is
//! [`PATIENT_PLACEHOLDER`], references to organisations, observations and encounters are
//! conditional (`Organization?identifier=…`) for the ingest to resolve, and every entry that
//! must replace an earlier version of itself carries the identifier to upsert by.

mod adt;
mod allergy;
mod common;
mod diagnosis;
mod kin;
mod mdm;
mod oru;
mod person;

use carerecord_fhir::NhsNumberError;
use serde_json::Value;

use crate::Message;
use crate::ack::{AckCode, AckError};

pub use common::{SOURCE_ORGANISATION_TAG, identifier_system};

/// Stands for the matched Patient in every `subject`/`patient` reference of the entries; the
/// ingest replaces it with `Patient/{id}` once it knows who the person is.
pub const PATIENT_PLACEHOLDER: &str = "urn:carerecord:incoming-patient";

/// Stands for the matched Patient's id in the keys of entries that belong to the person but
/// that nothing in the message makes unique (allergies by allergen, contacts by name): the
/// ingest replaces it, in the key and in the identifier that carries it, once it knows who the
/// person is. The message's own identifiers for the person would not do: a sender may first
/// send only an NHS number and later its MRN too, and each would key the same allergy anew.
pub const PATIENT_KEY: &str = "{patient}";

/// What the mapping needs to know about where a message came from.
#[derive(Debug, Clone)]
pub struct MapContext {
    /// ODS code of the sending organisation (from the system registry, not from MSH-4).
    pub sender_ods: String,
    /// The registered sending system, e.g. `ZRH01 PAS`.
    pub sender_system: String,
    pub received_at: time::OffsetDateTime,
    /// The ingest's own id for this message (for its Provenance; not written here).
    pub message_id: String,
}

/// The event a message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    AdtA01,
    AdtA02,
    AdtA03,
    AdtA04,
    AdtA05,
    AdtA08,
    AdtA11,
    AdtA12,
    AdtA13,
    AdtA28,
    AdtA31,
    AdtA40,
    OruR01,
    MdmT02,
}

impl Event {
    /// From MSH-9.1 and MSH-9.2.
    pub fn from_msh(code: &str, trigger: &str) -> Option<Event> {
        Some(match (code, trigger) {
            ("ADT", "A01") => Event::AdtA01,
            ("ADT", "A02") => Event::AdtA02,
            ("ADT", "A03") => Event::AdtA03,
            ("ADT", "A04") => Event::AdtA04,
            ("ADT", "A05") => Event::AdtA05,
            ("ADT", "A08") => Event::AdtA08,
            ("ADT", "A11") => Event::AdtA11,
            ("ADT", "A12") => Event::AdtA12,
            ("ADT", "A13") => Event::AdtA13,
            ("ADT", "A28") => Event::AdtA28,
            ("ADT", "A31") => Event::AdtA31,
            ("ADT", "A40") => Event::AdtA40,
            ("ORU", "R01") => Event::OruR01,
            ("MDM", "T02") => Event::MdmT02,
            _ => return None,
        })
    }

    /// `ADT^A01` etc.
    pub fn as_str(self) -> &'static str {
        match self {
            Event::AdtA01 => "ADT^A01",
            Event::AdtA02 => "ADT^A02",
            Event::AdtA03 => "ADT^A03",
            Event::AdtA04 => "ADT^A04",
            Event::AdtA05 => "ADT^A05",
            Event::AdtA08 => "ADT^A08",
            Event::AdtA11 => "ADT^A11",
            Event::AdtA12 => "ADT^A12",
            Event::AdtA13 => "ADT^A13",
            Event::AdtA28 => "ADT^A28",
            Event::AdtA31 => "ADT^A31",
            Event::AdtA40 => "ADT^A40",
            Event::OruR01 => "ORU^R01",
            Event::MdmT02 => "MDM^T02",
        }
    }
}

/// A person as a message describes them, for the ingest to match to a carerecord Patient.
#[derive(Debug, Clone, PartialEq)]
pub struct IncomingPerson {
    /// The NHS number as received (spaces removed), already Modulus 11 checked.
    pub nhs_number: Option<String>,
    /// The NHS number verification status (`01`…`08`) from PID-32, when sent.
    pub nhs_verification: Option<String>,
    /// (assigning authority, identifier) for each local identifier (MRN); the authority is
    /// CX-4 or, when absent, the sender's ODS code.
    pub local_ids: Vec<(String, String)>,
    pub family: Option<String>,
    pub given: Vec<String>,
    /// `YYYY-MM-DD` (or less precise, as sent).
    pub birth_date: Option<String>,
    /// FHIR administrative gender code.
    pub gender: Option<String>,
    pub postcode: Option<String>,
    /// The FHIR Patient built from PID (and PD1).
    pub patient: Value,
}

/// One resource to store.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub resource: Value,
    /// Identifier (system, value) the resource is upserted by: an existing resource of the
    /// same type with this identifier is replaced by a new version.
    pub key: Option<(String, String)>,
    pub action: EntryAction,
}

/// What the ingest does with an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryAction {
    /// Create, or replace the resource with the same key.
    Upsert,
    /// A cancellation (A11/A12/A13): replace the resource with the same key by this reverted
    /// version; there should be one to revert (the ingest decides what to do if there is not).
    Cancel,
}

/// The result of mapping one message.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    pub event: Event,
    pub person: IncomingPerson,
    /// A40: the person merged into `person` (from MRG).
    pub merge_from: Option<IncomingPerson>,
    /// In dependency order: Observations before the DiagnosticReport that references them.
    pub entries: Vec<Entry>,
    /// (resource type, identifier system) of the lists this message gives in full for the
    /// person: the stored resources of that type carrying that system for them that the
    /// message no longer lists are no longer current. Only contacts: the NK1 segments of an
    /// ADT message are the sender's current next of kin, while its AL1 segments may be a
    /// partial list (an allergy is never retired because a message left it out).
    pub listed_in_full: Vec<(String, String)>,
}

/// Where in the message an error is: segment id, its sequence among segments of that id (from
/// 1), field and component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub segment: String,
    pub sequence: u32,
    pub field: Option<u32>,
    pub component: Option<u32>,
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.segment)?;
        if let Some(n) = self.field {
            write!(f, "-{n}")?;
            if let Some(c) = self.component {
                write!(f, ".{c}")?;
            }
        }
        if self.sequence > 1 {
            write!(f, " (segment {} of its kind)", self.sequence)?;
        }
        Ok(())
    }
}

/// Why a message could not be mapped. Texts name positions and rules, never the values (they
/// may be personal or clinical).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    #[error("MSH-9: message type {code}^{trigger} is not one carerecord accepts")]
    UnsupportedMessage { code: String, trigger: String },
    #[error("the {segment} segment is missing")]
    MissingSegment { segment: String },
    #[error("{0}: segment out of sequence")]
    OutOfSequence(Position),
    #[error("{0}: required value missing")]
    MissingField(Position),
    #[error("{at}: {reason}")]
    InvalidValue { at: Position, reason: String },
    #[error("{at}: code not in HL7 table {table}")]
    UnknownCode { at: Position, table: &'static str },
    #[error("{at}: invalid NHS number ({reason})")]
    InvalidNhsNumber {
        at: Position,
        reason: NhsNumberError,
    },
}

impl MapError {
    /// AR when the message as a whole is unacceptable, AE when its content is in error.
    pub fn ack_code(&self) -> AckCode {
        match self {
            MapError::UnsupportedMessage { .. } => AckCode::AR,
            _ => AckCode::AE,
        }
    }

    /// The ERR segment content for this error.
    pub fn to_ack_error(&self) -> AckError {
        let (pos, code) = match self {
            MapError::UnsupportedMessage { .. } => (
                Position {
                    segment: "MSH".into(),
                    sequence: 1,
                    field: Some(9),
                    component: None,
                },
                "200",
            ),
            MapError::MissingSegment { segment } => (
                Position {
                    segment: segment.clone(),
                    sequence: 1,
                    field: None,
                    component: None,
                },
                "100",
            ),
            MapError::OutOfSequence(p) => (p.clone(), "100"),
            MapError::MissingField(p) => (p.clone(), "101"),
            MapError::InvalidValue { at, .. } | MapError::InvalidNhsNumber { at, .. } => {
                (at.clone(), "102")
            }
            MapError::UnknownCode { at, .. } => (at.clone(), "103"),
        };
        AckError {
            segment: pos.segment,
            sequence: Some(pos.sequence),
            field: pos.field,
            component: pos.component,
            code: code.to_owned(),
            severity: 'E',
            text: self.to_string(),
        }
    }
}

/// Maps a parsed message to FHIR.
pub fn map(message: &Message, ctx: &MapContext) -> Result<Mapped, MapError> {
    let h = message.header();
    let event = Event::from_msh(&h.message_code, &h.trigger_event).ok_or_else(|| {
        MapError::UnsupportedMessage {
            code: h.message_code.clone(),
            trigger: h.trigger_event.clone(),
        }
    })?;
    // One person per message: a second PID (a batch of patients' results, several merges)
    // would otherwise have its data filed under the first person.
    if let Some(second) = message.segments("PID").nth(1) {
        return Err(MapError::OutOfSequence(Position {
            segment: "PID".into(),
            sequence: second.sequence(),
            field: None,
            component: None,
        }));
    }
    let c = common::Ctx::new(message, ctx);
    match event {
        Event::OruR01 => oru::map(&c, event),
        Event::MdmT02 => mdm::map(&c, event),
        _ => adt::map(&c, event),
    }
}
