//! FHIR R4 primitive formats, hand-coded from the regexes in the specification
//! (<https://hl7.org/fhir/R4/datatypes.html#primitive>).
//!
//! Every check returns `Err(reason)` where `reason` completes the sentence "the value ..." and
//! never contains the value itself (it may be personal data).

use serde_json::Value;

/// Checks the JSON `value` of a primitive of FHIR type `code`.
pub(crate) fn check(code: &str, value: &Value) -> Result<(), &'static str> {
    match code {
        "boolean" => match value {
            Value::Bool(_) => Ok(()),
            _ => Err("must be a JSON boolean (true or false)"),
        },
        "decimal" => match value {
            Value::Number(_) => Ok(()),
            _ => Err("must be a JSON number"),
        },
        "integer" => integer(value, i64::from(i32::MIN)),
        "unsignedInt" => integer(value, 0),
        "positiveInt" => integer(value, 1),
        _ => {
            let Value::String(s) = value else {
                return Err("must be a JSON string");
            };
            if s.is_empty() {
                return Err("must not be an empty string");
            }
            string_format(code, s)
        }
    }
}

fn integer(value: &Value, min: i64) -> Result<(), &'static str> {
    let Value::Number(n) = value else {
        return Err("must be a JSON number without a fraction");
    };
    match n.as_i64() {
        Some(i) if i >= min && i <= i64::from(i32::MAX) => Ok(()),
        Some(_) if min == 1 => Err("must be a whole number from 1 to 2147483647"),
        Some(_) if min == 0 => Err("must be a whole number from 0 to 2147483647"),
        Some(_) => Err("must be a whole number from -2147483648 to 2147483647"),
        None if n.as_u64().is_some() => Err("is too large for a FHIR integer"),
        None => Err("must be a whole number, without a fraction or exponent"),
    }
}

fn string_format(code: &str, s: &str) -> Result<(), &'static str> {
    match code {
        "id" => ok_if(is_id(s), "must be 1 to 64 letters, digits, '-' or '.'"),
        "code" => ok_if(
            is_code(s),
            "must be a code: no leading, trailing or repeated whitespace",
        ),
        "uri" | "url" | "canonical" => ok_if(
            !s.chars().any(char::is_whitespace),
            "must not contain whitespace",
        ),
        "date" => ok_if(is_date(s), "must be a date: YYYY, YYYY-MM or YYYY-MM-DD"),
        "dateTime" => ok_if(
            is_date_time(s),
            "must be a dateTime: YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss with a time zone",
        ),
        "instant" => ok_if(
            is_instant(s),
            "must be an instant: YYYY-MM-DDThh:mm:ss(.sss) with a time zone (Z or +hh:mm)",
        ),
        "time" => ok_if(is_time(s.as_bytes()), "must be a time: hh:mm:ss"),
        "base64Binary" => ok_if(is_base64(s), "must be base64-encoded"),
        "uuid" => ok_if(
            is_uuid(s),
            "must be a urn:uuid: followed by a lower-case UUID",
        ),
        "oid" => ok_if(is_oid(s), "must be a urn:oid: followed by a dotted OID"),
        "xhtml" => ok_if(
            s.trim_start().starts_with("<div"),
            "must be XHTML with a <div> root element",
        ),
        // string, markdown: any non-empty text.
        _ => Ok(()),
    }
}

fn ok_if(ok: bool, reason: &'static str) -> Result<(), &'static str> {
    if ok { Ok(()) } else { Err(reason) }
}

/// `[A-Za-z0-9\-\.]{1,64}`
pub(crate) fn is_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// `[^\s]+(\s[^\s]+)*`
fn is_code(s: &str) -> bool {
    let mut prev_ws = true; // a leading space fails
    for c in s.chars() {
        let ws = c.is_whitespace();
        if ws && prev_ws {
            return false;
        }
        prev_ws = ws;
    }
    !prev_ws
}

fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0, |acc, d| acc * 10 + u32::from(d - b'0')))
}

/// `YYYY(-MM(-DD)?)?` with year 0001..9999, month 01..12, day 01..31.
fn is_date(s: &str) -> bool {
    date_prefix(s.as_bytes()) == Some(s.len())
}

/// Parses a date at the start of `b`; returns its length. Stops before anything else.
fn date_prefix(b: &[u8]) -> Option<usize> {
    let year = digits(b.get(0..4)?)?;
    if year == 0 {
        return None;
    }
    if b.len() == 4 || b[4] != b'-' {
        return Some(4);
    }
    let month = digits(b.get(5..7)?)?;
    if !(1..=12).contains(&month) {
        return None;
    }
    if b.len() == 7 || b[7] != b'-' {
        return Some(7);
    }
    let day = digits(b.get(8..10)?)?;
    if !(1..=31).contains(&day) {
        return None;
    }
    Some(10)
}

/// `hh:mm:ss(\.[0-9]+)?` with hours 00..23, minutes 00..59, seconds 00..60 (leap second).
fn is_time(b: &[u8]) -> bool {
    if b.len() < 8 || b[2] != b':' || b[5] != b':' {
        return false;
    }
    let (Some(h), Some(m), Some(sec)) = (digits(&b[0..2]), digits(&b[3..5]), digits(&b[6..8]))
    else {
        return false;
    };
    if h > 23 || m > 59 || sec > 60 {
        return false;
    }
    match &b[8..] {
        [] => true,
        [b'.', frac @ ..] => digits(frac).is_some(),
        _ => false,
    }
}

/// `Z` or `(+|-)hh:mm` with offsets up to 14:00.
fn is_zone(b: &[u8]) -> bool {
    match b {
        [b'Z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => {
            let (Some(h), Some(m)) = (digits(&[*h1, *h2]), digits(&[*m1, *m2])) else {
                return false;
            };
            (h <= 13 && m <= 59) || (h == 14 && m == 0)
        }
        _ => false,
    }
}

/// A full date, `T`, a time with seconds and a zone.
fn is_full_date_time(b: &[u8]) -> bool {
    if date_prefix(b) != Some(10) || b.get(10) != Some(&b'T') {
        return false;
    }
    let rest = &b[11..];
    let zone_at = rest.iter().position(|c| matches!(c, b'Z' | b'+' | b'-'));
    match zone_at {
        Some(i) => is_time(&rest[..i]) && is_zone(&rest[i..]),
        None => false,
    }
}

fn is_date_time(s: &str) -> bool {
    is_date(s) || is_full_date_time(s.as_bytes())
}

fn is_instant(s: &str) -> bool {
    is_full_date_time(s.as_bytes())
}

/// `(\s*([0-9a-zA-Z\+\=]){4}\s*)+` (plus `/`, which the R4 regex omits by mistake).
fn is_base64(s: &str) -> bool {
    let mut count = 0usize;
    for b in s.bytes() {
        if b.is_ascii_whitespace() {
            continue;
        }
        if !(b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=') {
            return false;
        }
        count += 1;
    }
    count > 0 && count.is_multiple_of(4)
}

/// `urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`
pub(crate) fn is_uuid(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("urn:uuid:") else {
        return false;
    };
    let mut groups = rest.split('-');
    [8, 4, 4, 4, 12].into_iter().all(|n| {
        groups.next().is_some_and(|g| {
            g.len() == n && g.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        })
    }) && groups.next().is_none()
}

/// `urn:oid:[0-2](\.(0|[1-9][0-9]*))+`
pub(crate) fn is_oid(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("urn:oid:") else {
        return false;
    };
    let mut arcs = rest.split('.').peekable();
    matches!(arcs.next(), Some("0" | "1" | "2"))
        && arcs.peek().is_some()
        && arcs.all(|a| {
            !a.is_empty()
                && a.bytes().all(|b| b.is_ascii_digit())
                && (a.len() == 1 || !a.starts_with('0'))
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code")]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok(code: &str, v: Value) -> bool {
        check(code, &v).is_ok()
    }

    #[test]
    fn dates_date_times_instants_and_times() {
        for good in ["2024", "2024-02", "2024-02-29", "0001"] {
            assert!(ok("date", json!(good)), "{good}");
            assert!(ok("dateTime", json!(good)), "{good}");
        }
        for bad in [
            "0000",
            "24",
            "2024-13",
            "2024-00-01",
            "2024-01-32",
            "2024-1-01",
            "2024-01-01T",
        ] {
            assert!(!ok("date", json!(bad)), "{bad}");
        }
        for good in [
            "2024-02-29T10:15:00Z",
            "2024-02-29T10:15:00.123+01:00",
            "2024-02-29T23:59:60-14:00",
            "2024-02-29T00:00:00+14:00",
        ] {
            assert!(ok("dateTime", json!(good)), "{good}");
            assert!(ok("instant", json!(good)), "{good}");
        }
        for bad in [
            "2024-02-29T10:15Z",
            "2024-02-29T10:15:00",
            "2024-02-29T24:00:00Z",
            "2024-02-29T10:15:00+14:30",
            "2024-02-29 10:15:00Z",
            "2024-02-29T10:15:00.Z",
        ] {
            assert!(!ok("dateTime", json!(bad)), "{bad}");
            assert!(!ok("instant", json!(bad)), "{bad}");
        }
        assert!(!ok("instant", json!("2024-02-29")));
        assert!(ok("time", json!("09:30:00")));
        assert!(ok("time", json!("09:30:00.5")));
        assert!(!ok("time", json!("09:30")));
        assert!(!ok("time", json!("09:30:00Z")));
    }

    #[test]
    fn numbers_and_booleans() {
        assert!(ok("decimal", json!(1.5)));
        assert!(ok("decimal", json!(2)));
        assert!(!ok("decimal", json!("1.5")));
        assert!(ok("integer", json!(-5)));
        assert!(!ok("integer", json!(1.0)));
        assert!(!ok("integer", json!(2_147_483_648_i64)));
        assert!(!ok("integer", json!("5")));
        assert!(ok("unsignedInt", json!(0)));
        assert!(!ok("unsignedInt", json!(-1)));
        assert!(ok("positiveInt", json!(1)));
        assert!(!ok("positiveInt", json!(0)));
        assert!(ok("boolean", json!(false)));
        assert!(!ok("boolean", json!("true")));
    }

    #[test]
    fn strings_codes_ids_and_uris() {
        assert!(ok("string", json!(" padded ")));
        assert!(!ok("string", json!("")));
        assert!(!ok("string", json!(3)));
        assert!(ok("code", json!("final")));
        assert!(ok("code", json!("two words")));
        for bad in [" final", "final ", "two  words", "\t"] {
            assert!(!ok("code", json!(bad)), "{bad:?}");
        }
        assert!(ok("id", json!("abc-1.2")));
        assert!(!ok("id", json!("abc_1")));
        assert!(!ok("id", json!("a".repeat(65))));
        assert!(ok("uri", json!("https://fhir.nhs.uk/Id/nhs-number")));
        assert!(!ok("uri", json!("has space")));
        assert!(ok(
            "uuid",
            json!("urn:uuid:9d6a7b2c-1f0e-4c3b-8a2d-0e1f2a3b4c5d")
        ));
        assert!(!ok(
            "uuid",
            json!("urn:uuid:9D6A7B2C-1F0E-4C3B-8A2D-0E1F2A3B4C5D")
        ));
        assert!(ok("oid", json!("urn:oid:2.16.840.1.113883")));
        assert!(!ok("oid", json!("urn:oid:3.1")));
        assert!(!ok("oid", json!("urn:oid:1.02")));
        assert!(ok("base64Binary", json!("SGVsbG8/")));
        assert!(ok("base64Binary", json!("SGVs\nbG8=")));
        assert!(!ok("base64Binary", json!("SGVsbG8")));
        assert!(!ok("base64Binary", json!("SGVs*G8=")));
        assert!(ok(
            "xhtml",
            json!("<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>")
        ));
        assert!(!ok("xhtml", json!("plain text")));
    }
}
