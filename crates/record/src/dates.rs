//! FHIR dates and date-times, and the way staff read them ("3 March 1938", "2 Dec 2026").

use time::format_description::well_known::Rfc3339;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// The start of a FHIR `date`, `dateTime` or `instant` (`2026`, `2026-11`, `2026-11-01`,
/// `2026-11-01T10:00:00+00:00`). Partial dates take their first day; a date without a time is
/// midnight UTC. Anything else is `None`.
pub(crate) fn parse(s: &str) -> Option<OffsetDateTime> {
    let s = s.trim();
    if s.len() > 10 {
        if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
            return Some(t);
        }
        // FHIR allows a dateTime without seconds' fraction but always with a zone; be lenient
        // about a missing zone (some feeds send local time): read it as UTC.
        let date = parse_date(s.get(..10)?)?;
        let rest = s.get(11..)?;
        let hms: Vec<&str> = rest.get(..8.min(rest.len()))?.split(':').collect();
        let h: u8 = hms.first()?.parse().ok()?;
        let m: u8 = hms.get(1)?.parse().ok()?;
        let sec: u8 = hms.get(2).and_then(|x| x.parse().ok()).unwrap_or(0);
        let t = Time::from_hms(h, m, sec).ok()?;
        return Some(PrimitiveDateTime::new(date, t).assume_offset(UtcOffset::UTC));
    }
    parse_date(s).map(|d| d.midnight().assume_utc())
}

fn parse_date(s: &str) -> Option<Date> {
    let mut parts = s.split('-');
    let y: i32 = parts.next()?.parse().ok()?;
    let m: u8 = match parts.next() {
        Some(p) => p.parse().ok()?,
        None => 1,
    };
    let d: u8 = match parts.next() {
        Some(p) => p.parse().ok()?,
        None => 1,
    };
    if parts.next().is_some() {
        return None;
    }
    Date::from_calendar_date(y, Month::try_from(m).ok()?, d).ok()
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

fn month_name(m: Month) -> &'static str {
    MONTHS
        .get(usize::from(u8::from(m)).saturating_sub(1))
        .copied()
        .unwrap_or("")
}

/// "3 March 1938".
pub(crate) fn long(d: Date) -> String {
    format!("{} {} {}", d.day(), month_name(d.month()), d.year())
}

/// "2 Dec 2026".
pub(crate) fn short(t: OffsetDateTime) -> String {
    let m = month_name(t.month());
    format!("{} {} {}", t.day(), m.get(..3).unwrap_or(m), t.year())
}

/// "2 Dec" (for badges, where the year is this year's).
/// "2 Dec 2026, 08:55": when something arrived, to the minute.
pub(crate) fn short_time(t: OffsetDateTime) -> String {
    format!("{}, {:02}:{:02}", short(t), t.hour(), t.minute())
}

pub(crate) fn day_month(t: OffsetDateTime) -> String {
    let m = month_name(t.month());
    format!("{} {}", t.day(), m.get(..3).unwrap_or(m))
}

/// Whole years from `born` to `today`.
pub(crate) fn age(born: Date, today: Date) -> i64 {
    let mut years = i64::from(today.year()) - i64::from(born.year());
    if (today.month() as u8, today.day()) < (born.month() as u8, born.day()) {
        years -= 1;
    }
    years
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_partial_dates_and_date_times() {
        assert_eq!(parse("2026").map(short).as_deref(), Some("1 Jan 2026"));
        assert_eq!(parse("2026-11").map(short).as_deref(), Some("1 Nov 2026"));
        assert_eq!(
            parse("2026-12-02T10:15:00+00:00").map(short).as_deref(),
            Some("2 Dec 2026")
        );
        assert_eq!(
            parse("2026-12-02T10:15:00.123Z").map(day_month).as_deref(),
            Some("2 Dec")
        );
        assert!(parse("yesterday").is_none());
        assert!(parse("2026-13-01").is_none());
        assert!(parse("").is_none());
    }

    #[test]
    fn age_counts_whole_years() {
        let born = parse_date("1938-03-03").unwrap();
        assert_eq!(age(born, parse_date("2026-03-02").unwrap()), 87);
        assert_eq!(age(born, parse_date("2026-03-03").unwrap()), 88);
        assert_eq!(long(born), "3 March 1938");
    }
}
