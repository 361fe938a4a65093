//! Pieces every mapping uses: provenance in `meta`, positions for errors, identifiers,
//! codings, references and timestamps.

use serde_json::{Map, Value, json};

use super::{MapContext, MapError, Position};
use crate::message::{Message, Piece, Segment};
use crate::timestamp::Hl7Time;

/// The tag system naming the organisation (ODS code) a resource came from; the access
/// classifier reads exactly this (`carerecord_access::classify::SOURCE_ORGANISATION_TAG`).
pub const SOURCE_ORGANISATION_TAG: &str =
    "https://fhir.carerecord.example/CodeSystem/source-organisation";
pub(crate) const ODS_SYSTEM: &str = "https://fhir.nhs.uk/Id/ods-organization-code";
const ID_BASE: &str = "https://fhir.carerecord.example/Id";
const CODE_SYSTEM_BASE: &str = "https://fhir.carerecord.example/CodeSystem";
/// UK Core identifier systems for practitioners' national codes.
pub(crate) const GMC_SYSTEM: &str = "https://fhir.hl7.org.uk/Id/gmc-number";
pub(crate) const GMP_SYSTEM: &str = "https://fhir.hl7.org.uk/Id/gmp-number";

/// Percent-encodes everything but RFC 3986 unreserved characters (and `:` when `colon`).
pub(crate) fn pct(s: &str, colon: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~')
            || (colon && b == b':')
        {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The identifier system for identifiers a sender (by ODS code or assigning authority) issues:
/// `https://fhir.carerecord.example/Id/{ods}/{kind}`, kind one of `patient-id`,
/// `visit-number`, `filler-order-number`, `placer-order-number`, `observation`,
/// `document-number`, `location`, `practitioner`, `allergy`, `diagnosis`, `related-person`.
pub fn identifier_system(ods: &str, kind: &str) -> String {
    format!("{ID_BASE}/{}/{kind}", pct(ods, false))
}

/// A conditional reference to the resource of `rt` with this identifier.
pub(crate) fn conditional(rt: &str, system: &str, value: &str) -> String {
    format!("{rt}?identifier={system}|{}", pct(value, true))
}

/// A reference to an organisation by ODS code: conditional, plus the logical identifier.
pub(crate) fn org_ref(ods: &str, display: Option<String>) -> Value {
    let mut r = json!({
        "reference": conditional("Organization", ODS_SYSTEM, ods),
        "identifier": {"system": ODS_SYSTEM, "value": ods},
    });
    if let (Some(d), Some(o)) = (display, r.as_object_mut()) {
        o.insert("display".into(), Value::String(d));
    }
    r
}

/// Upper case with single spaces: text compared as part of a key.
pub(crate) fn normalised(text: &str) -> String {
    text.split_whitespace()
        .map(str::to_uppercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// What identifies a mapped concept within a key: `system|code` of its first coding (the
/// FHIR system, so `SCT` and `SNOMED` agree), else `text|` and its normalised text.
pub(crate) fn concept_key(cc: &Value) -> String {
    match cc.pointer("/coding/0") {
        Some(coding) => format!(
            "{}|{}",
            coding.get("system").and_then(Value::as_str).unwrap_or(""),
            coding.get("code").and_then(Value::as_str).unwrap_or("")
        ),
        None => format!(
            "text|{}",
            normalised(cc.get("text").and_then(Value::as_str).unwrap_or(""))
        ),
    }
}

/// A FHIR decimal from HL7 NM text, keeping the digits as sent (no float round trip).
pub(crate) fn decimal(text: &str) -> Option<Value> {
    let t = text.trim();
    let (sign, rest) = match t.as_bytes().first() {
        Some(b'-') => ("-", &t[1..]),
        Some(b'+') => ("", &t[1..]),
        _ => ("", t),
    };
    let (int, frac) = rest.split_once('.').unwrap_or((rest, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let int = int.trim_start_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let text = if frac.is_empty() {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    };
    serde_json::from_str::<Value>(&text)
        .ok()
        .filter(Value::is_number)
}

/// The FHIR system for an HL7 coding system name (CE-3/CWE-3).
pub(crate) fn coding_system(name: &str, ods: &str) -> String {
    match name.to_ascii_uppercase().as_str() {
        "LN" | "LOINC" => "http://loinc.org".into(),
        "SCT" | "SNM" | "SNOMED" | "SNOMEDCT" | "SNOMED-CT" | "SNOMED CT" => {
            "http://snomed.info/sct".into()
        }
        "UCUM" => "http://unitsofmeasure.org".into(),
        "I10" | "ICD10" => "http://hl7.org/fhir/sid/icd-10".into(),
        "READ" | "RD2" | "READ2" => "http://read.info/readv2".into(),
        "CTV3" => "http://read.info/ctv3".into(),
        "DMD" => "https://dmd.nhs.uk".into(),
        upper => {
            if let Some(table) = upper
                .strip_prefix("HL7")
                .filter(|t| t.len() == 4 && t.bytes().all(|b| b.is_ascii_digit()))
            {
                format!("http://terminology.hl7.org/CodeSystem/v2-{table}")
            } else {
                // A local code system: scoped to the sender so two senders' codes never mix.
                format!(
                    "{CODE_SYSTEM_BASE}/{}/{}",
                    pct(ods, false),
                    pct(&name.to_ascii_lowercase(), false)
                )
            }
        }
    }
}

/// State shared by one mapping.
pub(crate) struct Ctx<'a> {
    pub msg: &'a Message,
    pub ctx: &'a MapContext,
    meta: Value,
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(msg: &'a Message, ctx: &'a MapContext) -> Self {
        let h = msg.header();
        let source = format!(
            "urn:hl7v2:{}@{}#{}",
            pct(&h.sending_application, false),
            pct(&h.sending_facility, false),
            pct(&h.control_id, false)
        );
        let meta = json!({
            "source": source,
            "tag": [{"system": SOURCE_ORGANISATION_TAG, "code": ctx.sender_ods}],
        });
        Ctx { msg, ctx, meta }
    }

    pub(crate) fn ods(&self) -> &str {
        &self.ctx.sender_ods
    }

    /// A new resource with `resourceType` and `meta`.
    pub(crate) fn resource(&self, rt: &str) -> Map<String, Value> {
        let mut m = Map::with_capacity(16);
        m.insert("resourceType".into(), Value::String(rt.into()));
        m.insert("meta".into(), self.meta.clone());
        m
    }

    pub(crate) fn system(&self, kind: &str) -> String {
        identifier_system(self.ods(), kind)
    }

    /// The organisation that sent the message.
    pub(crate) fn sender_ref(&self) -> Value {
        org_ref(self.ods(), None)
    }

    pub(crate) fn required_segment(&self, id: &str) -> Result<&'a Segment, MapError> {
        self.msg
            .segment(id)
            .ok_or_else(|| MapError::MissingSegment { segment: id.into() })
    }

    /// A concept from a CE/CWE piece (whole field): codings from components 1-3 and 4-6, text
    /// from component 2 (or CWE-9 original text).
    pub(crate) fn concept(&self, p: Piece<'_>) -> Option<Value> {
        self.concept_in(p, None)
    }

    /// As [`Ctx::concept`], with `default_system` for codings whose CE-3 is empty (a field
    /// bound to an HL7 table, e.g. `v2-0063` for NK1-3).
    pub(crate) fn concept_in(&self, p: Piece<'_>, default_system: Option<&str>) -> Option<Value> {
        let mut codings = Vec::new();
        for base in [1, 4] {
            let code = p.component(base).text();
            let display = p.component(base + 1).text();
            let system = p.component(base + 2).text();
            if let Some(code) = code {
                let mut c = Map::new();
                match (&system, default_system) {
                    (Some(s), _) => {
                        c.insert("system".into(), Value::String(coding_system(s, self.ods())));
                    }
                    (None, Some(d)) => {
                        c.insert("system".into(), Value::String(d.to_owned()));
                    }
                    (None, None) => {}
                }
                c.insert("code".into(), Value::String(code));
                if let Some(d) = display {
                    c.insert("display".into(), Value::String(d));
                }
                codings.push(Value::Object(c));
            }
        }
        let text = p.component(9).text().or_else(|| p.component(2).text());
        if codings.is_empty() && text.is_none() {
            return None;
        }
        let mut cc = Map::new();
        if !codings.is_empty() {
            cc.insert("coding".into(), Value::Array(codings));
        }
        if let Some(t) = text {
            cc.insert("text".into(), Value::String(t));
        }
        Some(Value::Object(cc))
    }

    /// A concept with one coding in a fixed system (IS/ID fields), code from component 1.
    pub(crate) fn table_concept(&self, p: Piece<'_>, system: &str) -> Option<Value> {
        let code = p.component(1).text()?;
        let mut c = json!({"system": system, "code": code});
        if let (Some(d), Some(o)) = (p.component(2).text(), c.as_object_mut()) {
            o.insert("display".into(), Value::String(d));
        }
        Some(obj([("coding", Value::Array(vec![c]))]))
    }

    /// A practitioner from one XCN (id^family^given^middle^suffix^prefix^degree^source
    /// table^authority^…^type code (13)): a conditional reference by identifier with the name
    /// as display, or the name alone when no id is sent. The identifier is a GMC number when
    /// XCN-9 or XCN-13 says `GMC`, a GP national (GMP) code when they say `GMP` or, for a GP
    /// (`gp`), when the id has that shape (`G` and 7 digits); otherwise it is scoped to XCN-9
    /// or, without one, to the sender.
    pub(crate) fn practitioner(&self, xcn: Piece<'_>, gp: bool) -> Option<Value> {
        let id = xcn.component(1).text();
        let display = {
            let parts: Vec<String> = [6, 3, 4, 2]
                .iter()
                .filter_map(|n| xcn.component(*n).sub(1).text())
                .collect();
            (!parts.is_empty()).then(|| parts.join(" "))
        };
        let mut r = Map::new();
        r.insert("type".into(), Value::String("Practitioner".into()));
        match id {
            Some(id) => {
                let authority = xcn.component(9).sub(1).text();
                let says = |name: &str| {
                    authority
                        .as_deref()
                        .is_some_and(|a| a.eq_ignore_ascii_case(name))
                        || xcn
                            .component(13)
                            .text()
                            .is_some_and(|t| t.eq_ignore_ascii_case(name))
                };
                let gmp_shaped = id.len() == 8
                    && id.starts_with('G')
                    && id[1..].bytes().all(|b| b.is_ascii_digit());
                let system = if says("GMC") {
                    GMC_SYSTEM.to_owned()
                } else if says("GMP") || (gp && gmp_shaped) {
                    GMP_SYSTEM.to_owned()
                } else {
                    identifier_system(authority.as_deref().unwrap_or(self.ods()), "practitioner")
                };
                r.insert(
                    "reference".into(),
                    Value::String(conditional("Practitioner", &system, &id)),
                );
                r.insert("identifier".into(), json!({"system": system, "value": id}));
            }
            None if display.is_none() => return None,
            None => {}
        }
        put_str(&mut r, "display", display);
        Some(Value::Object(r))
    }

    fn time(&self, seg: &Segment, field: usize) -> Result<Option<Hl7Time>, MapError> {
        // TS is time^precision (DTM alone from 2.5 on): the time is component 1.
        let Some(text) = seg.field(field).component(1).sub(1).text() else {
            return Ok(None);
        };
        Hl7Time::parse(&text)
            .map(Some)
            .ok_or_else(|| MapError::InvalidValue {
                at: pos(seg, field, None),
                reason: "not an HL7 timestamp (YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ])".into(),
            })
    }

    /// Field as a FHIR dateTime.
    pub(crate) fn date_time(
        &self,
        seg: &Segment,
        field: usize,
    ) -> Result<Option<String>, MapError> {
        Ok(self.time(seg, field)?.map(|t| t.fhir_date_time()))
    }

    /// Field as a FHIR date.
    pub(crate) fn date(&self, seg: &Segment, field: usize) -> Result<Option<String>, MapError> {
        Ok(self.time(seg, field)?.map(|t| t.fhir_date()))
    }

    /// Field as a FHIR instant (only when it has a time).
    pub(crate) fn instant(&self, seg: &Segment, field: usize) -> Result<Option<String>, MapError> {
        Ok(self.time(seg, field)?.and_then(|t| t.fhir_instant()))
    }

    /// MSH-7 as a dateTime (when the event happened, at the latest).
    pub(crate) fn message_time(&self) -> Option<String> {
        let msh = self.msg.all_segments().first()?;
        self.date_time(msh, 7).ok().flatten()
    }

    pub(crate) fn message_instant(&self) -> Option<String> {
        let msh = self.msg.all_segments().first()?;
        self.instant(msh, 7).ok().flatten()
    }

    /// When the message was received, as a FHIR instant.
    pub(crate) fn received_instant(&self) -> Option<String> {
        self.ctx
            .received_at
            .format(&time::format_description::well_known::Rfc3339)
            .ok()
    }
}

pub(crate) fn pos(seg: &Segment, field: usize, component: Option<u32>) -> Position {
    Position {
        segment: seg.id().to_owned(),
        sequence: seg.sequence(),
        field: u32::try_from(field).ok(),
        component,
    }
}

pub(crate) fn missing(seg: &Segment, field: usize) -> MapError {
    MapError::MissingField(pos(seg, field, None))
}

pub(crate) fn invalid(seg: &Segment, field: usize, reason: &str) -> MapError {
    MapError::InvalidValue {
        at: pos(seg, field, None),
        reason: reason.into(),
    }
}

pub(crate) fn unknown_code(seg: &Segment, field: usize, table: &'static str) -> MapError {
    MapError::UnknownCode {
        at: pos(seg, field, None),
        table,
    }
}

/// An object from pairs. `json!` would serialise every interpolated `Value` into a copy, which
/// dominated the cost of mapping a result; this moves them.
pub(crate) fn obj<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    Value::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

/// Inserts `value` under `key` when it is `Some`.
pub(crate) fn put(m: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(v) = value {
        m.insert(key.into(), v);
    }
}

pub(crate) fn put_str(m: &mut Map<String, Value>, key: &str, value: Option<String>) {
    put(m, key, value.map(Value::String));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_keep_their_digits() {
        let d = |s: &str| decimal(s).map(|v| v.to_string());
        assert_eq!(d("5.20"), Some("5.20".into()));
        assert_eq!(d("+007"), Some("7".into()));
        assert_eq!(d("-.5"), Some("-0.5".into()));
        assert_eq!(d("12."), Some("12".into()));
        assert_eq!(d("1e5"), None);
        assert_eq!(d("."), None);
        assert_eq!(d(""), None);
        assert_eq!(d("4,5"), None);
    }

    #[test]
    fn coding_systems_are_recognised_or_scoped_to_the_sender() {
        assert_eq!(coding_system("LN", "ZLB01"), "http://loinc.org");
        assert_eq!(
            coding_system("HL70078", "ZLB01"),
            "http://terminology.hl7.org/CodeSystem/v2-0078"
        );
        assert_eq!(
            coding_system("WinPath", "ZLB01"),
            "https://fhir.carerecord.example/CodeSystem/ZLB01/winpath"
        );
    }
}
