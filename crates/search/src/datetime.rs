//! FHIR partial dates, dateTimes and instants as `[low, high)` microsecond ranges.

use time::{Date, Month, PrimitiveDateTime, Time, UtcOffset};

/// A FHIR `date`/`dateTime`/`instant` value as the range of instants it covers:
/// `2024` → `[2024-01-01T00:00Z, 2025-01-01T00:00Z)`. Values without a time zone are read as UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateRange {
    /// Microseconds since the Unix epoch, inclusive.
    pub low: i64,
    /// Microseconds since the Unix epoch, exclusive.
    pub high: i64,
}

const MICROS_PER_SECOND: i64 = 1_000_000;

impl DateRange {
    /// Parses `YYYY`, `YYYY-MM`, `YYYY-MM-DD`, `YYYY-MM-DDThh:mm(:ss(.f+))(Z|±hh:mm)`.
    pub fn parse(s: &str) -> Option<DateRange> {
        let b = s.as_bytes();
        let year = digits(b, 0, 4)?;
        if year == 0 {
            return None;
        }
        let year = i32::try_from(year).ok()?;
        if b.len() == 4 {
            let low = date_micros(year, 1, 1)?;
            let high = date_micros(year + 1, 1, 1)?;
            return Some(DateRange { low, high });
        }
        if b.get(4) != Some(&b'-') {
            return None;
        }
        let month = u8::try_from(digits(b, 5, 2)?).ok()?;
        if b.len() == 7 {
            let low = date_micros(year, month, 1)?;
            let (ny, nm) = if month == 12 {
                (year + 1, 1)
            } else {
                (year, month + 1)
            };
            return Some(DateRange {
                low,
                high: date_micros(ny, nm, 1)?,
            });
        }
        if b.get(7) != Some(&b'-') {
            return None;
        }
        let day = u8::try_from(digits(b, 8, 2)?).ok()?;
        let date = Date::from_calendar_date(year, Month::try_from(month).ok()?, day).ok()?;
        if b.len() == 10 {
            let low = micros(PrimitiveDateTime::new(date, Time::MIDNIGHT), UtcOffset::UTC);
            return Some(DateRange {
                low,
                high: low.checked_add(86_400 * MICROS_PER_SECOND)?,
            });
        }
        if b.get(10) != Some(&b'T') {
            return None;
        }
        let hour = u8::try_from(digits(b, 11, 2)?).ok()?;
        if b.get(13) != Some(&b':') {
            return None;
        }
        let minute = u8::try_from(digits(b, 14, 2)?).ok()?;
        let mut pos = 16;
        let mut second = 0u8;
        let mut micro = 0u32;
        // The precision of the value, in microseconds.
        let mut span = 60 * MICROS_PER_SECOND;
        if b.get(pos) == Some(&b':') {
            second = u8::try_from(digits(b, pos + 1, 2)?).ok()?;
            pos += 3;
            span = MICROS_PER_SECOND;
            if b.get(pos) == Some(&b'.') {
                pos += 1;
                let start = pos;
                while b.get(pos).is_some_and(u8::is_ascii_digit) {
                    pos += 1;
                }
                let n = pos - start;
                if n == 0 {
                    return None;
                }
                let kept = n.min(6);
                let mut frac = 0u32;
                for &d in &b[start..start + kept] {
                    frac = frac * 10 + u32::from(d - b'0');
                }
                micro = frac * 10u32.pow(u32::try_from(6 - kept).ok()?);
                span = 10i64.pow(u32::try_from(6 - kept).ok()?);
            }
        }
        let offset = match &b[pos..] {
            [] | [b'Z'] => UtcOffset::UTC,
            [sign @ (b'+' | b'-'), rest @ ..] if rest.len() == 5 && rest[2] == b':' => {
                let oh = i8::try_from(digits(rest, 0, 2)?).ok()?;
                let om = i8::try_from(digits(rest, 3, 2)?).ok()?;
                if oh > 14 || om > 59 {
                    return None;
                }
                let (oh, om) = if *sign == b'-' { (-oh, -om) } else { (oh, om) };
                UtcOffset::from_hms(oh, om, 0).ok()?
            }
            _ => return None,
        };
        let t = Time::from_hms_micro(hour, minute, second, micro).ok()?;
        let low = micros(PrimitiveDateTime::new(date, t), offset);
        Some(DateRange {
            low,
            high: low.checked_add(span)?,
        })
    }
}

/// `n` ASCII digits of `b` at `start`, as a number.
fn digits(b: &[u8], start: usize, n: usize) -> Option<u32> {
    let slice = b.get(start..start + n)?;
    let mut v = 0u32;
    for &d in slice {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(d - b'0');
    }
    Some(v)
}

fn date_micros(year: i32, month: u8, day: u8) -> Option<i64> {
    let date = Date::from_calendar_date(year, Month::try_from(month).ok()?, day).ok()?;
    Some(micros(
        PrimitiveDateTime::new(date, Time::MIDNIGHT),
        UtcOffset::UTC,
    ))
}

fn micros(dt: PrimitiveDateTime, offset: UtcOffset) -> i64 {
    // Years 1..=10000 in microseconds fit easily in an i64 (±2.9e5 years).
    let nanos = dt.assume_offset(offset).unix_timestamp_nanos();
    i64::try_from(nanos / 1000).unwrap_or(if nanos < 0 { i64::MIN } else { i64::MAX })
}

#[cfg(test)]
#[allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests"
)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DAY: i64 = 86_400 * MICROS_PER_SECOND;

    fn r(s: &str) -> DateRange {
        DateRange::parse(s).unwrap_or_else(|| panic!("{s} should parse"))
    }

    #[test]
    fn a_year_covers_the_whole_year() {
        let y = r("2024");
        assert_eq!(y.low, 1_704_067_200 * MICROS_PER_SECOND);
        assert_eq!(y.high - y.low, 366 * DAY);
    }

    #[test]
    fn a_month_covers_the_whole_month_including_december() {
        assert_eq!(r("2024-02").high - r("2024-02").low, 29 * DAY);
        assert_eq!(r("2023-12").high, r("2024").low);
    }

    #[test]
    fn a_day_covers_twenty_four_hours() {
        let d = r("2024-03-15");
        assert_eq!(d.high - d.low, DAY);
        assert_eq!(d.low, r("2024-03").low + 14 * DAY);
    }

    #[test]
    fn times_have_minute_second_and_fraction_precision() {
        let m = r("2024-03-15T10:30Z");
        assert_eq!(m.high - m.low, 60 * MICROS_PER_SECOND);
        let s = r("2024-03-15T10:30:05Z");
        assert_eq!(s.low, m.low + 5 * MICROS_PER_SECOND);
        assert_eq!(s.high - s.low, MICROS_PER_SECOND);
        let f = r("2024-03-15T10:30:05.25Z");
        assert_eq!(f.low, s.low + 250_000);
        assert_eq!(f.high - f.low, 10_000);
        let n = r("2024-03-15T10:30:05.123456789Z");
        assert_eq!(n.low, s.low + 123_456);
        assert_eq!(n.high - n.low, 1);
    }

    #[test]
    fn offsets_shift_the_instant_and_missing_zone_means_utc() {
        assert_eq!(
            r("2024-03-15T10:30:00+01:00").low,
            r("2024-03-15T09:30:00Z").low
        );
        assert_eq!(
            r("2024-03-15T10:30:00-05:30").low,
            r("2024-03-15T16:00:00Z").low
        );
        assert_eq!(r("2024-03-15T10:30:00").low, r("2024-03-15T10:30:00Z").low);
    }

    #[test]
    fn malformed_values_are_rejected() {
        for bad in [
            "",
            "24",
            "20245",
            "2024-13",
            "2024-00",
            "2023-02-29",
            "2024-02-30",
            "2024-1-01",
            "2024-01-01T",
            "2024-01-01T25:00Z",
            "2024-01-01T10:60Z",
            "2024-01-01T10:00:61Z",
            "2024-01-01T10:00:00.Z",
            "2024-01-01T10:00+1:00",
            "2024-01-01T10:00+15:00",
            "2024-01-01 10:00Z",
            "0000",
            "abcd",
            "2024-01-01T10:00:00ZZ",
            "２０２４",
        ] {
            assert_eq!(DateRange::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn leap_day_is_accepted_in_leap_years() {
        assert!(DateRange::parse("2024-02-29").is_some());
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,40}") {
            let _ = DateRange::parse(&s);
        }

        #[test]
        fn valid_datetimes_are_non_empty_and_nested_in_their_day(
            y in 1900i32..2100, m in 1u8..=12, d in 1u8..=28, h in 0u8..24, mi in 0u8..60,
            s in 0u8..60, frac in proptest::option::of(0u32..1000)
        ) {
            let day = format!("{y:04}-{m:02}-{d:02}");
            let mut t = format!("{day}T{h:02}:{mi:02}:{s:02}");
            if let Some(f) = frac {
                t.push_str(&format!(".{f:03}"));
            }
            t.push('Z');
            let dr = DateRange::parse(&day);
            let tr = DateRange::parse(&t);
            prop_assert!(dr.is_some() && tr.is_some());
            if let (Some(dr), Some(tr)) = (dr, tr) {
                prop_assert!(tr.low < tr.high);
                prop_assert!(dr.low <= tr.low && tr.high <= dr.high);
                let month = DateRange::parse(&format!("{y:04}-{m:02}"));
                prop_assert!(month.is_some_and(|mr| mr.low <= dr.low && dr.high <= mr.high));
            }
        }
    }
}
