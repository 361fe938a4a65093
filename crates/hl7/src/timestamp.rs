//! HL7 DTM/TS values (`YYYY[MM[DD[HH[MM[SS[.S+]]]]]][+/-ZZZZ]`) as FHIR dates and dateTimes.
//!
//! FHIR requires a time zone on any dateTime with a time. UK feeds usually send local time
//! without an offset, so a timestamp without one is read as UK civil time (Europe/London): GMT,
//! or BST (+01:00) from 01:00 UTC on the last Sunday of March to 01:00 UTC on the last Sunday
//! of October. In the hour that repeats when clocks go back, the earlier (BST) reading is taken.

use time::{Date, Month, PrimitiveDateTime, Time, UtcOffset, Weekday};

/// The precision a value was sent with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Precision {
    Year,
    Month,
    Day,
    Time,
}

/// A parsed HL7 timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hl7Time {
    precision: Precision,
    date: Date,
    time: Time,
    /// Fractional seconds as sent (digits only), kept as text.
    fraction: String,
    offset: Option<UtcOffset>,
}

fn digits(s: &str, range: std::ops::Range<usize>) -> Option<u32> {
    let part = s.get(range)?;
    if !part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    part.parse().ok()
}

impl Hl7Time {
    /// Parses an HL7 timestamp; `None` when it is not one.
    pub(crate) fn parse(raw: &str) -> Option<Hl7Time> {
        let raw = raw.trim();
        // Split off an offset: the last '+' or '-' (never at position 0: years are unsigned).
        let (main, offset) = match raw.rfind(['+', '-']) {
            Some(i) if i > 0 => (&raw[..i], Some(&raw[i..])),
            _ => (raw, None),
        };
        let (main, fraction) = match main.split_once('.') {
            Some((m, f))
                if !f.is_empty() && f.len() <= 4 && f.bytes().all(|b| b.is_ascii_digit()) =>
            {
                (m, f.to_owned())
            }
            Some(_) => return None,
            None => (main, String::new()),
        };
        if !main.bytes().all(|b| b.is_ascii_digit()) || ![4, 6, 8, 10, 12, 14].contains(&main.len())
        {
            return None;
        }
        if !fraction.is_empty() && main.len() != 14 {
            return None;
        }
        let year = i32::try_from(digits(main, 0..4)?).ok()?;
        let month = if main.len() >= 6 {
            digits(main, 4..6)?
        } else {
            1
        };
        let day = if main.len() >= 8 {
            digits(main, 6..8)?
        } else {
            1
        };
        let hour = if main.len() >= 10 {
            digits(main, 8..10)?
        } else {
            0
        };
        let minute = if main.len() >= 12 {
            digits(main, 10..12)?
        } else {
            0
        };
        let second = if main.len() >= 14 {
            digits(main, 12..14)?
        } else {
            0
        };
        let month = Month::try_from(u8::try_from(month).ok()?).ok()?;
        let date = Date::from_calendar_date(year, month, u8::try_from(day).ok()?).ok()?;
        let time = Time::from_hms(
            u8::try_from(hour).ok()?,
            u8::try_from(minute).ok()?,
            u8::try_from(second).ok()?,
        )
        .ok()?;
        let precision = match main.len() {
            4 => Precision::Year,
            6 => Precision::Month,
            8 => Precision::Day,
            _ => Precision::Time,
        };
        let offset = match offset {
            None => None,
            Some(o) => {
                if o.len() != 5 || precision != Precision::Time {
                    return None;
                }
                let sign: i8 = if o.starts_with('-') { -1 } else { 1 };
                let h = i8::try_from(digits(o, 1..3)?).ok()?;
                let m = i8::try_from(digits(o, 3..5)?).ok()?;
                Some(UtcOffset::from_hms(sign * h, sign * m, 0).ok()?)
            }
        };
        Some(Hl7Time {
            precision,
            date,
            time,
            fraction,
            offset,
        })
    }

    /// The FHIR `date` (to the precision sent, at most a day).
    pub(crate) fn fhir_date(&self) -> String {
        let y = self.date.year();
        let m = self.date.month() as u8;
        let d = self.date.day();
        match self.precision {
            Precision::Year => format!("{y:04}"),
            Precision::Month => format!("{y:04}-{m:02}"),
            _ => format!("{y:04}-{m:02}-{d:02}"),
        }
    }

    /// The FHIR `dateTime`: a date when no time was sent, else seconds and an offset.
    pub(crate) fn fhir_date_time(&self) -> String {
        if self.precision < Precision::Time {
            return self.fhir_date();
        }
        let offset = self
            .offset
            .unwrap_or_else(|| uk_offset(PrimitiveDateTime::new(self.date, self.time)));
        let (oh, om, _) = offset.as_hms();
        let sign = if offset.is_negative() { '-' } else { '+' };
        let fraction = if self.fraction.is_empty() {
            String::new()
        } else {
            format!(".{}", self.fraction)
        };
        format!(
            "{}T{:02}:{:02}:{:02}{fraction}{sign}{:02}:{:02}",
            self.fhir_date(),
            self.time.hour(),
            self.time.minute(),
            self.time.second(),
            oh.unsigned_abs(),
            om.unsigned_abs()
        )
    }

    /// The FHIR `instant` (needs a time), else `None`.
    pub(crate) fn fhir_instant(&self) -> Option<String> {
        (self.precision == Precision::Time).then(|| self.fhir_date_time())
    }
}

fn last_sunday(year: i32, month: Month) -> Option<Date> {
    let next_first = match month {
        Month::December => Date::from_calendar_date(year + 1, Month::January, 1),
        m => Date::from_calendar_date(year, m.next(), 1),
    }
    .ok()?;
    let mut d = next_first.previous_day()?;
    while d.weekday() != Weekday::Sunday {
        d = d.previous_day()?;
    }
    Some(d)
}

/// The UK civil offset for a local wall-clock time.
fn uk_offset(local: PrimitiveDateTime) -> UtcOffset {
    let bst = UtcOffset::from_hms(1, 0, 0).unwrap_or(UtcOffset::UTC);
    let year = local.year();
    let (Some(start), Some(end)) = (
        last_sunday(year, Month::March),
        last_sunday(year, Month::October),
    ) else {
        return UtcOffset::UTC;
    };
    // In local time, BST starts at 01:00 GMT (= 02:00 BST) and ends at 02:00 BST.
    let starts = PrimitiveDateTime::new(start, Time::from_hms(1, 0, 0).unwrap_or(Time::MIDNIGHT));
    let ends = PrimitiveDateTime::new(end, Time::from_hms(2, 0, 0).unwrap_or(Time::MIDNIGHT));
    if local >= starts && local < ends {
        bst
    } else {
        UtcOffset::UTC
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dt(s: &str) -> Option<String> {
        Hl7Time::parse(s).map(|t| t.fhir_date_time())
    }

    #[test]
    fn precision_is_kept() {
        assert_eq!(dt("2026"), Some("2026".into()));
        assert_eq!(dt("202611"), Some("2026-11".into()));
        assert_eq!(dt("20261101"), Some("2026-11-01".into()));
        assert_eq!(dt("202611011230"), Some("2026-11-01T12:30:00+00:00".into()));
    }

    #[test]
    fn explicit_offsets_and_fractions_are_kept() {
        assert_eq!(
            dt("20260701123000.25-0500"),
            Some("2026-07-01T12:30:00.25-05:00".into())
        );
        assert_eq!(
            dt("20260701123000+0000"),
            Some("2026-07-01T12:30:00+00:00".into())
        );
    }

    #[test]
    fn local_times_follow_uk_summer_time() {
        // 2026: BST from Sunday 29 March to Sunday 25 October.
        assert_eq!(
            dt("20260329005959"),
            Some("2026-03-29T00:59:59+00:00".into())
        );
        assert_eq!(
            dt("20260329020000"),
            Some("2026-03-29T02:00:00+01:00".into())
        );
        assert_eq!(
            dt("20260715090000"),
            Some("2026-07-15T09:00:00+01:00".into())
        );
        assert_eq!(
            dt("20261025015959"),
            Some("2026-10-25T01:59:59+01:00".into())
        );
        assert_eq!(
            dt("20261025020000"),
            Some("2026-10-25T02:00:00+00:00".into())
        );
        assert_eq!(
            dt("20261225090000"),
            Some("2026-12-25T09:00:00+00:00".into())
        );
    }

    #[test]
    fn nonsense_is_refused() {
        for bad in [
            "",
            "2026-11-01",
            "20261301",
            "20260230",
            "2026110",
            "20261101256000",
            "x",
            "20261101+0100",
        ] {
            assert_eq!(dt(bad), None, "{bad}");
        }
    }
}
