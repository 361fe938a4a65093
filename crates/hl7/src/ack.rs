//! Acknowledgements (original mode): MSH, MSA and one ERR per error.

use crate::error::ParseError;
use crate::escape::escape;
use crate::message::Header;

/// MSA-1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckCode {
    /// Accepted: what the message carries is stored.
    AA,
    /// Error: the message was understood but its content could not be processed.
    AE,
    /// Rejected: the message itself is unacceptable (syntax, version, type, sender).
    AR,
}

impl AckCode {
    pub fn as_str(self) -> &'static str {
        match self {
            AckCode::AA => "AA",
            AckCode::AE => "AE",
            AckCode::AR => "AR",
        }
    }
}

/// One ERR segment: where (segment id, its sequence among segments with that id from 1, field,
/// component) and what (HL7 table 0357 code, severity E/W/I, text without personal data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckError {
    pub segment: String,
    pub sequence: Option<u32>,
    pub field: Option<u32>,
    pub component: Option<u32>,
    pub code: String,
    pub severity: char,
    pub text: String,
}

/// Table 0357 display texts for the codes carerecord sends.
fn code_text(code: &str) -> &'static str {
    match code {
        "0" => "Message accepted",
        "100" => "Segment sequence error",
        "101" => "Required field missing",
        "102" => "Data type error",
        "103" => "Table value not found",
        "200" => "Unsupported message type",
        "201" => "Unsupported event code",
        "202" => "Unsupported processing id",
        "203" => "Unsupported version id",
        "204" => "Unknown key identifier",
        "205" => "Duplicate key identifier",
        "206" => "Application record locked",
        _ => "Application internal error",
    }
}

fn opt(n: Option<u32>) -> String {
    n.map(|n| n.to_string()).unwrap_or_default()
}

/// Whether the receiver speaks a version before 2.5, where ERR has only ERR-1.
fn before_2_5(version: &str) -> bool {
    version.starts_with("2.3") || version.starts_with("2.4")
}

/// The ERR segment for `e`.
///
/// ERR-2 (location, ERL: segment^sequence^field^field repetition^component), ERR-3 (code from
/// table 0357) and ERR-4 (severity) are the v2.5 form. A receiver on 2.3 or 2.4 knows only
/// ERR-1 (ELD: segment^sequence^field^code&text&HL70357), so for those versions ERR-1 is
/// filled too; the v2.5 fields after it are ignored by such receivers.
fn err_segment(e: &AckError, version: &str) -> String {
    let seg = escape(&e.segment);
    let code = escape(&e.code);
    let text = escape(code_text(&e.code));
    let err1 = if before_2_5(version) {
        format!(
            "{seg}^{}^{}^{code}&{text}&HL70357",
            opt(e.sequence),
            opt(e.field)
        )
    } else {
        String::new()
    };
    let repetition = if e.field.is_some() { "1" } else { "" };
    let severity = if matches!(e.severity, 'E' | 'W' | 'I') {
        e.severity
    } else {
        'E'
    };
    format!(
        "ERR|{err1}|{seg}^{}^{}^{repetition}^{}|{code}^{text}^HL70357|{severity}||||{}\r",
        opt(e.sequence),
        opt(e.field),
        opt(e.component),
        escape(&e.text)
    )
    .replace("^^^^|", "|")
}

/// Builds the acknowledgement of a parsed message: sender and receiver swapped, MSH-9
/// `ACK^<trigger>^ACK`, the message's own version, MSA-2 = its MSH-10, one ERR per error.
/// `now_hl7_ts` is MSH-7 (e.g. `20261101120000+0000`).
pub fn ack(
    header: &Header,
    code: AckCode,
    errors: &[AckError],
    ack_control_id: &str,
    now_hl7_ts: &str,
) -> Vec<u8> {
    build(
        [
            &header.receiving_application,
            &header.receiving_facility,
            &header.sending_application,
            &header.sending_facility,
        ],
        &header.trigger_event,
        &header.processing_id,
        &header.version,
        &header.control_id,
        code,
        errors,
        ack_control_id,
        now_hl7_ts,
    )
}

/// An AR for a message whose MSH could not be read properly: addressed and echoing MSH-10 as
/// far as the raw bytes allowed, in the message's version when it is readable (else 2.4).
pub fn nack_unparsed(reason: &ParseError, ack_control_id: &str, now_hl7_ts: &str) -> Vec<u8> {
    let h = &reason.hint;
    let version =
        if h.version.is_empty() || !h.version.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            "2.4"
        } else {
            h.version.as_str()
        };
    let error = AckError {
        segment: reason
            .segment_id
            .clone()
            .unwrap_or_else(|| "MSH".to_owned()),
        sequence: Some(1),
        field: reason.field,
        component: None,
        code: reason.hl7_error_code().to_owned(),
        severity: 'E',
        text: reason.to_string(),
    };
    build(
        [
            &h.receiving_application,
            &h.receiving_facility,
            &h.sending_application,
            &h.sending_facility,
        ],
        &h.trigger_event,
        &h.processing_id,
        version,
        &h.control_id,
        AckCode::AR,
        &[error],
        ack_control_id,
        now_hl7_ts,
    )
}

#[allow(clippy::too_many_arguments)] // one private builder behind the two public shapes
fn build(
    parties: [&str; 4],
    trigger: &str,
    processing_id: &str,
    version: &str,
    original_control_id: &str,
    code: AckCode,
    errors: &[AckError],
    ack_control_id: &str,
    now_hl7_ts: &str,
) -> Vec<u8> {
    let [from_app, from_fac, to_app, to_fac] = parties.map(escape);
    let processing_id = if processing_id.is_empty() {
        "P"
    } else {
        processing_id
    };
    let mut out = format!(
        "MSH|^~\\&|{from_app}|{from_fac}|{to_app}|{to_fac}|{}||ACK^{}^ACK|{}|{}|{}\r",
        escape(now_hl7_ts),
        escape(trigger),
        escape(ack_control_id),
        escape(processing_id),
        escape(version),
    );
    out.push_str(&format!(
        "MSA|{}|{}",
        code.as_str(),
        escape(original_control_id)
    ));
    // MSA-3 (text) is deprecated from 2.5 but is all a 2.3/2.4 receiver shows.
    if before_2_5(version)
        && let Some(first) = errors.first()
    {
        out.push_str(&format!("|{}", escape(&first.text)));
    }
    out.push('\r');
    for e in errors {
        out.push_str(&err_segment(e, version));
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse;

    fn header() -> Header {
        Header {
            sending_application: "PAS".into(),
            sending_facility: "ZRH01".into(),
            receiving_application: "CARERECORD".into(),
            receiving_facility: "ZCR01".into(),
            timestamp: None,
            message_code: "ADT".into(),
            trigger_event: "A01".into(),
            structure: None,
            control_id: "MSG|1".into(),
            processing_id: "P".into(),
            version: "2.5".into(),
            charset: None,
        }
    }

    #[test]
    fn an_ack_swaps_parties_and_echoes_the_control_id() -> Result<(), ParseError> {
        let bytes = ack(&header(), AckCode::AA, &[], "ACK1", "20261101120000+0000");
        let m = parse(&bytes)?;
        let h = m.header();
        assert_eq!(
            (h.sending_application.as_str(), h.sending_facility.as_str()),
            ("CARERECORD", "ZCR01")
        );
        assert_eq!(
            (
                h.receiving_application.as_str(),
                h.receiving_facility.as_str()
            ),
            ("PAS", "ZRH01")
        );
        assert_eq!(
            (h.message_code.as_str(), h.trigger_event.as_str()),
            ("ACK", "A01")
        );
        assert_eq!(h.structure.as_deref(), Some("ACK"));
        assert_eq!(h.version, "2.5");
        let msa = m.segment("MSA");
        assert_eq!(msa.and_then(|s| s.text(1)).as_deref(), Some("AA"));
        // The control id contained the field separator: escaped on the way out, whole on the way in.
        assert_eq!(msa.and_then(|s| s.text(2)).as_deref(), Some("MSG|1"));
        assert_eq!(m.segments("ERR").count(), 0);
        Ok(())
    }

    #[test]
    fn err_segments_carry_location_code_and_severity() -> Result<(), ParseError> {
        let e = AckError {
            segment: "PID".into(),
            sequence: Some(1),
            field: Some(3),
            component: Some(1),
            code: "102".into(),
            severity: 'E',
            text: "NHS number fails the check".into(),
        };
        let m = parse(&ack(&header(), AckCode::AE, &[e], "ACK2", "20261101120000"))?;
        let err = m
            .segment("ERR")
            .ok_or(ParseError::new(crate::ParseErrorKind::Empty))?;
        let loc: Vec<_> = err
            .field(2)
            .components()
            .map(|c| c.raw().to_owned())
            .collect();
        assert_eq!(loc, vec!["PID", "1", "3", "1", "1"]);
        assert_eq!(err.text(3).as_deref(), Some("102"));
        assert_eq!(err.field(3).component(3).text().as_deref(), Some("HL70357"));
        assert_eq!(err.text(4).as_deref(), Some("E"));
        assert!(err.field(1).is_empty(), "2.5 receivers get no ERR-1");
        Ok(())
    }

    #[test]
    fn a_2_4_receiver_also_gets_err_1_and_msa_3() -> Result<(), ParseError> {
        let mut h = header();
        h.version = "2.4".into();
        let e = AckError {
            segment: "OBX".into(),
            sequence: Some(2),
            field: Some(5),
            component: None,
            code: "102".into(),
            severity: 'E',
            text: "not a number".into(),
        };
        let m = parse(&ack(&h, AckCode::AE, &[e], "ACK3", "20261101120000"))?;
        let err = m
            .segment("ERR")
            .ok_or(ParseError::new(crate::ParseErrorKind::Empty))?;
        assert_eq!(err.field(1).component(1).text().as_deref(), Some("OBX"));
        assert_eq!(err.field(1).component(3).text().as_deref(), Some("5"));
        assert_eq!(
            err.field(1).component(4).sub(1).text().as_deref(),
            Some("102")
        );
        assert_eq!(
            m.segment("MSA").and_then(|s| s.text(3)).as_deref(),
            Some("not a number")
        );
        Ok(())
    }

    #[test]
    fn an_unparsed_message_gets_an_ar_echoing_what_could_be_read() -> Result<(), ParseError> {
        let reason = match parse(b"MSH|^~\\&|LAB|ZLB01|CR|ZCR01|||ORU^R01|C77|P|2.4\rPID|1\rO\r") {
            Err(e) => e,
            Ok(_) => return Err(ParseError::new(crate::ParseErrorKind::Empty)),
        };
        let m = parse(&nack_unparsed(&reason, "ACK4", "20261101120000"))?;
        assert_eq!(m.header().receiving_application, "LAB");
        assert_eq!(m.header().receiving_facility, "ZLB01");
        assert_eq!(m.header().trigger_event, "R01");
        let msa = m.segment("MSA");
        assert_eq!(msa.and_then(|s| s.text(1)).as_deref(), Some("AR"));
        assert_eq!(msa.and_then(|s| s.text(2)).as_deref(), Some("C77"));
        assert_eq!(
            m.segment("ERR").and_then(|s| s.text(3)).as_deref(),
            Some("100")
        );
        Ok(())
    }

    #[test]
    fn a_wrong_version_is_rejected_in_that_version_with_code_203() {
        let reason = parse(b"MSH|^~\\&|LAB|ZLB01|CR|ZCR01|||ORU^R01|C78|P|2.1\r")
            .expect_err("2.1 is not supported");
        let text =
            String::from_utf8_lossy(&nack_unparsed(&reason, "ACK5", "20261101120000")).into_owned();
        assert!(text.contains("|ACK5|P|2.1\r"), "{text}");
        assert!(text.contains("\rMSA|AR|C78\r"), "{text}");
        assert!(
            text.contains("|203^Unsupported version id^HL70357|E"),
            "{text}"
        );
    }
}
