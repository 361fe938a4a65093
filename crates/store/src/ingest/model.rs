//! The rows of the gathering tables, as callers see them.

use crate::error::StoreError;

/// A sending system, known by its `MSH-3` (application) and `MSH-4` (facility).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hl7System {
    pub id: String,
    pub name: String,
    /// The organisation it sends for (`Organization/{org_id}`).
    pub org_id: String,
    /// That organisation's ODS code: the source of what the system sends.
    pub ods: String,
    pub msh_application: String,
    pub msh_facility: String,
    pub created: i64,
}

/// A processed message and the acknowledgement it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRecord {
    /// The registered system's id (or `MSH-3^MSH-4` when it was refused before it was known).
    pub sender: String,
    /// `MSH-10`.
    pub control_id: String,
    pub received_at: i64,
    /// `AA`, `AE` or `AR`.
    pub ack_code: String,
    /// The ACK as sent, without MLLP framing: a resend gets exactly these bytes again.
    pub ack: Vec<u8>,
    pub patient_id: Option<String>,
}

/// How fresh one organisation's HL7 v2 feed is: when a message from any of its registered
/// sending systems was last logged (`None` when none has been yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedStatus {
    /// The organisation's ODS code: the source tag of what its feeds send.
    pub ods: String,
    pub last_received: Option<i64>,
}

/// Where a dead letter stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLetterStatus {
    /// Not processed yet.
    Open,
    /// Replayed successfully.
    Replayed,
}

impl DeadLetterStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterStatus::Open => "open",
            DeadLetterStatus::Replayed => "replayed",
        }
    }

    pub(super) fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "open" => Ok(DeadLetterStatus::Open),
            "replayed" => Ok(DeadLetterStatus::Replayed),
            _ => Err(StoreError::Backend(format!(
                "unknown dead-letter status {s}"
            ))),
        }
    }
}

/// A message that could not be processed, kept whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub id: i64,
    pub received_at: i64,
    pub sender: Option<String>,
    pub control_id: Option<String>,
    /// Why it failed (names segment and field; never message content).
    pub reason: String,
    /// The bytes as received, without MLLP framing.
    pub raw: Vec<u8>,
    pub status: DeadLetterStatus,
    /// Replays tried so far.
    pub attempts: i64,
    pub resolved_at: Option<i64>,
}

/// Where a review item stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewStatus {
    Open,
    /// The reviewer confirmed the match: the new record was merged into the candidate.
    Linked,
    /// The reviewer said they are different people.
    Rejected,
}

impl ReviewStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewStatus::Open => "open",
            ReviewStatus::Linked => "linked",
            ReviewStatus::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "open" => Ok(ReviewStatus::Open),
            "linked" => Ok(ReviewStatus::Linked),
            "rejected" => Ok(ReviewStatus::Rejected),
            _ => Err(StoreError::Backend(format!("unknown review status {s}"))),
        }
    }
}

/// An uncertain identity match waiting for a person to decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewItem {
    pub id: i64,
    pub created_at: i64,
    /// The ODS code of the source that sent the person.
    pub source_ods: String,
    /// The Patient created for the incoming person.
    pub patient_id: String,
    /// The existing Patient it resembles.
    pub candidate_id: String,
    pub score: i64,
    /// Which fields agreed (field names only, no values).
    pub reasons: String,
    pub status: ReviewStatus,
    pub decided_at: Option<i64>,
    pub decided_by: Option<String>,
    pub merge_id: Option<i64>,
}

/// A merge: `merged_id` absorbed into `survivor_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeRecord {
    pub id: i64,
    pub at: i64,
    pub survivor_id: String,
    pub merged_id: String,
    /// `hl7-a40` or `review`.
    pub cause: String,
    pub actor: String,
    /// The versions the merge wrote, as `Type/id/_history/version`.
    pub moved: Vec<String>,
    pub undone_at: Option<i64>,
}
