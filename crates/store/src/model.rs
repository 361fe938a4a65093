use carerecord_fhir::{LogicalId, ResourceType, VersionId};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The identity of a resource: type and logical id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceKey {
    pub resource_type: ResourceType,
    pub id: LogicalId,
}

/// What a write needs to know of a resource's current version: not its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionHead {
    pub version_id: VersionId,
    /// The current version is a deletion marker.
    pub deleted: bool,
    pub last_updated: i64,
}

impl VersionHead {
    pub fn of(r: &StoredResource) -> VersionHead {
        VersionHead {
            version_id: r.version_id,
            deleted: r.deleted,
            last_updated: r.last_updated,
        }
    }
}

/// One stored version of a resource, body as stored (JSON text with `id` and `meta` stamped).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResource {
    pub resource_type: ResourceType,
    pub id: LogicalId,
    pub version_id: VersionId,
    /// Microseconds since the Unix epoch.
    pub last_updated: i64,
    pub deleted: bool,
    /// The resource JSON; empty for a deletion marker.
    pub body: String,
    /// The Patient compartment the resource belongs to (a Patient's own id for a Patient), as
    /// stored beside it, so callers (the audit of who was looked at) need not parse the body.
    pub patient_id: Option<String>,
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    Created,
    Updated,
    Deleted,
    /// A conditional create found a match; nothing was written.
    Unchanged,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WriteResult {
    pub kind: WriteKind,
    pub resource: StoredResource,
}

/// An emergency ("break-glass") grant: `principal_key` may see `patient_id` until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakGlassGrant {
    pub grant_id: String,
    pub principal_key: String,
    pub org_id: String,
    pub patient_id: String,
    /// A coded reason (`emergency`, `lacks-capacity`, `other`).
    pub reason_code: String,
    /// The user's own words; kept for review, never logged.
    pub reason_text: String,
    pub granted_at: i64,
    pub expires_at: i64,
}

/// What a privacy officer concluded about a break-glass grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReviewOutcome {
    /// The emergency access was justified.
    Appropriate,
    /// It was not: the officer takes it up with the user (outside carerecord).
    Inappropriate,
    /// Not decided yet: someone must follow it up.
    NeedsFollowUp,
}

impl ReviewOutcome {
    pub const ALL: [ReviewOutcome; 3] = [
        ReviewOutcome::Appropriate,
        ReviewOutcome::Inappropriate,
        ReviewOutcome::NeedsFollowUp,
    ];

    /// The code stored and sent over the API.
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewOutcome::Appropriate => "appropriate",
            ReviewOutcome::Inappropriate => "inappropriate",
            ReviewOutcome::NeedsFollowUp => "needs-follow-up",
        }
    }

    pub fn parse(s: &str) -> Option<ReviewOutcome> {
        ReviewOutcome::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

/// A privacy officer's review of one break-glass grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakGlassReview {
    /// The reviewer as the policy names principals (`user:{id}@{organisation}`).
    pub reviewer_key: String,
    pub reviewed_at: i64,
    pub outcome: ReviewOutcome,
    /// The officer's note; kept for the record, never logged.
    pub note: String,
}

/// A grant as the privacy officers' queue shows it: open until reviewed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakGlassRecord {
    pub grant: BreakGlassGrant,
    pub review: Option<BreakGlassReview>,
}

/// Which grants a queue lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReviewStatus {
    /// Not reviewed yet.
    #[default]
    Open,
    /// Reviewed, whatever the outcome.
    Reviewed,
    /// Both.
    Any,
}

impl ReviewStatus {
    pub fn parse(s: &str) -> Option<ReviewStatus> {
        match s {
            "open" => Some(ReviewStatus::Open),
            "reviewed" => Some(ReviewStatus::Reviewed),
            "all" => Some(ReviewStatus::Any),
            _ => None,
        }
    }
}

/// `_history` controls.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Only versions changed at or after this instant (µs).
    pub since: Option<i64>,
    pub count: u32,
    /// Opaque cursor from the previous page.
    pub cursor: Option<String>,
}

/// A page of results and the cursor of the next page, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
    pub total: Option<u64>,
    /// Items withheld because they are sensitive (see [`SearchOutcome::withheld`]).
    pub withheld: u64,
}

/// The result of a search: matches, included resources, the next page's cursor and the total.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SearchOutcome {
    pub matches: Vec<StoredResource>,
    pub included: Vec<StoredResource>,
    pub next_cursor: Option<String>,
    pub total: Option<u64>,
    /// Matches withheld from this principal only because they are sensitive: counted so the
    /// response can say so, never shown (0 when nothing is withheld).
    pub withheld: u64,
}

pub fn now_micros() -> i64 {
    let now = OffsetDateTime::now_utc();
    i64::try_from(now.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

/// Formats microseconds since the epoch as a FHIR `instant` (`2026-11-25T11:45:00.123456Z`).
pub fn format_instant(micros: i64) -> String {
    let nanos = i128::from(micros) * 1_000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
}

/// Parses an RFC 3339 instant to microseconds since the epoch.
pub fn parse_instant(s: &str) -> Option<i64> {
    let t = OffsetDateTime::parse(s, &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_round_trip_at_microsecond_precision() {
        let t = 1_764_070_000_123_456;
        assert_eq!(parse_instant(&format_instant(t)), Some(t));
        assert!(format_instant(t).ends_with('Z'));
    }
}
