use carerecord_hl7::map::{MapError, map};
use carerecord_hl7::{
    AckCode, Charset, ParseErrorKind, ack, nack_unparsed, parse, parse_with_default_charset,
};

use crate::{ctx, fixture, map_fixture, s};

#[test]
fn escapes_decode_in_names_addresses_and_the_control_id() {
    let m = map_fixture("nasty_escapes.hl7", "ZRH01");
    assert_eq!(m.person.family.as_deref(), Some("SMITH|JONES"));
    assert_eq!(m.person.given, vec!["ANNE\\MARIE"]);
    assert_eq!(s(&m.person.patient, "/address/0/line/0"), "FLAT 1 & 2");
    assert_eq!(
        s(&m.person.patient, "/address/0/line/1"),
        "CARE & CO\nHOUSE"
    );
    assert_eq!(
        s(&m.person.patient, "/meta/source"),
        "urn:hl7v2:PAS@ZRH01#ZRH01-E%7C1"
    );

    let msg = parse(&fixture("nasty_escapes.hl7")).expect("parses");
    assert_eq!(msg.header().control_id, "ZRH01-E|1");
    let reply =
        parse(&ack(msg.header(), AckCode::AA, &[], "A1", "20260602100001")).expect("ack parses");
    assert_eq!(
        reply.segment("MSA").and_then(|m| m.text(2)).as_deref(),
        Some("ZRH01-E|1")
    );
}

#[test]
fn repeated_identifiers_names_addresses_and_phones_are_all_kept() {
    let m = map_fixture("nasty_repeats.hl7", "ZRH01");
    assert_eq!(m.person.nhs_number.as_deref(), Some("9990000042"));
    assert_eq!(
        m.person.local_ids,
        vec![
            ("ZRH01".to_owned(), "RX3333333".to_owned()),
            ("ZRH02".to_owned(), "CASE77".to_owned())
        ]
    );
    let p = &m.person.patient;
    assert_eq!(
        s(p, "/identifier/2/system"),
        "https://fhir.carerecord.example/Id/ZRH02/patient-id"
    );
    assert_eq!(s(p, "/name/0/use"), "official");
    assert_eq!(s(p, "/name/1/use"), "maiden");
    assert_eq!(s(p, "/name/1/family"), "SMITH");
    assert_eq!(m.person.family.as_deref(), Some("JONES"));
    assert_eq!(s(p, "/address/1/postalCode"), "W2 9ZZ");
    assert_eq!(s(p, "/address/1/use"), "temp");
    assert_eq!(m.person.postcode.as_deref(), Some("W1 9ZZ"));
    assert_eq!(s(p, "/telecom/1/value"), "07700 900001");
}

#[test]
fn an_admission_without_pv1_is_an_error_naming_pv1() {
    let msg = parse(&fixture("nasty_missing_pv1.hl7")).expect("parses");
    let err = map(&msg, &ctx("ZRH01")).expect_err("PV1 is required");
    assert_eq!(
        err,
        MapError::MissingSegment {
            segment: "PV1".into()
        }
    );
    assert_eq!(err.ack_code(), AckCode::AE);
    let e = err.to_ack_error();
    assert_eq!((e.segment.as_str(), e.code.as_str()), ("PV1", "100"));
}

#[test]
fn a_wrong_version_is_rejected_with_code_203() {
    let err = parse(&fixture("nasty_wrong_version.hl7")).expect_err("2.2 is refused");
    assert_eq!(err.kind, ParseErrorKind::UnsupportedVersion("2.2".into()));
    assert_eq!(
        (err.segment_id.as_deref(), err.field),
        (Some("MSH"), Some(12))
    );
    let reply = String::from_utf8(nack_unparsed(&err, "N1", "20260715093001")).expect("ascii");
    assert!(reply.contains("\rMSA|AR|ZRH01-V22"), "{reply}");
    assert!(reply.contains("|203^"), "{reply}");
}

#[test]
fn latin1_is_decoded_when_declared_and_refused_when_not() {
    let m = map_fixture("nasty_latin1_declared.hl7", "ZRH01");
    assert_eq!(m.person.family.as_deref(), Some("M\u{dc}LLER"));
    assert_eq!(m.person.given, vec!["REN\u{c9}E"]);

    let bytes = fixture("nasty_latin1_undeclared.hl7");
    let err = parse(&bytes).expect_err("not UTF-8, nothing declared");
    assert!(
        matches!(err.kind, ParseErrorKind::UndeclaredNonUtf8 { .. }),
        "{err}"
    );
    assert_eq!(err.hint.control_id, "ZRH01-L1");
    // A feed registered as Latin-1 reads it.
    let msg = parse_with_default_charset(&bytes, Charset::Latin1).expect("parses as Latin-1");
    let m = map(&msg, &ctx("ZRH01")).expect("maps");
    assert_eq!(m.person.family.as_deref(), Some("M\u{dc}LLER"));
}

#[test]
fn a_truncated_message_is_refused_at_the_broken_segment() {
    let err = parse(&fixture("nasty_truncated.hl7")).expect_err("truncated");
    assert_eq!(
        (err.kind.clone(), err.segment_index),
        (ParseErrorKind::BadSegmentId, Some(3))
    );
    let reply = parse(&nack_unparsed(&err, "N2", "20260715093001")).expect("nack parses");
    assert_eq!(
        reply.segment("MSA").and_then(|m| m.text(2)).as_deref(),
        Some("ZRH01-T1")
    );
    assert_eq!(
        reply.segment("ERR").and_then(|m| m.text(3)).as_deref(),
        Some("100")
    );

    let err = parse(&fixture("nasty_truncated_msh.hl7")).expect_err("MSH cut short");
    assert_eq!(
        (err.kind.clone(), err.field),
        (ParseErrorKind::MissingField, Some(9))
    );
    let reply = parse(&nack_unparsed(&err, "N3", "20260715093001")).expect("nack parses");
    assert_eq!(
        reply.segment("MSA").and_then(|m| m.text(1)).as_deref(),
        Some("AR")
    );
}

#[test]
fn z_segments_are_kept_and_ignored() {
    let msg = parse(&fixture("nasty_zsegments.hl7")).expect("parses");
    let ids: Vec<&str> = msg.all_segments().iter().map(|s| s.id()).collect();
    assert_eq!(
        ids,
        vec![
            "MSH", "EVN", "PID", "ZU1", "PD1", "ZU3", "PV1", "ZU8", "ZXY"
        ]
    );
    let with_z = map(&msg, &ctx("ZRH01")).expect("maps");
    let plain = map_fixture("adt_a01_admit.hl7", "ZRH01");
    assert_eq!(with_z.entries.len(), 1);
    assert_eq!(with_z.entries[0].key, plain.entries[0].key);
    assert_eq!(with_z.person.nhs_number, plain.person.nhs_number);
}

#[test]
fn lf_separated_messages_map_like_cr_ones() {
    let m = map_fixture("nasty_lf_separators.hl7", "ZRH01");
    assert_eq!(
        s(&m.entries[0].resource, "/identifier/0/value"),
        "V2026-0445"
    );
    assert_eq!(s(&m.entries[0].resource, "/class/code"), "AMB");
}

#[test]
fn an_invalid_nhs_number_is_an_error_at_pid_3_that_does_not_quote_it() {
    let msg = parse(&fixture("nasty_invalid_nhs_number.hl7")).expect("parses");
    let err = map(&msg, &ctx("ZRH01")).expect_err("check digit is wrong");
    assert!(matches!(err, MapError::InvalidNhsNumber { .. }), "{err}");
    let e = err.to_ack_error();
    assert_eq!(
        (e.segment.as_str(), e.field, e.component, e.code.as_str()),
        ("PID", Some(3), Some(1), "102")
    );
    assert!(!e.text.contains("9990000019"), "{}", e.text);
    // And the whole ACK carries it in ERR.
    let reply = parse(&ack(
        msg.header(),
        err.ack_code(),
        &[e],
        "A2",
        "20260601090001",
    ))
    .expect("ack parses");
    assert_eq!(
        reply.segment("MSA").and_then(|m| m.text(1)).as_deref(),
        Some("AE")
    );
    let err_seg = reply.segment("ERR").expect("ERR");
    assert_eq!(err_seg.field(2).component(1).text().as_deref(), Some("PID"));
    assert_eq!(err_seg.field(2).component(3).text().as_deref(), Some("3"));
}

#[test]
fn an_unsupported_event_is_rejected() {
    let msg = parse(&fixture("nasty_unsupported_event.hl7")).expect("parses");
    let err = map(&msg, &ctx("ZRH01")).expect_err("A60 is not mapped");
    assert_eq!(err.ack_code(), AckCode::AR);
    assert_eq!(err.to_ack_error().code, "200");
    assert_eq!(err.to_ack_error().field, Some(9));
}
