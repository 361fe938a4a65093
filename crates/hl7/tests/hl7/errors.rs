//! Content errors name the segment, its sequence and the field, so the ACK's ERR can point at them.

use carerecord_hl7::AckCode;
use carerecord_hl7::map::{MapError, map};

use crate::ctx;

fn map_err(segments: &[&str]) -> MapError {
    let text = segments.join("\r") + "\r";
    let msg = carerecord_hl7::parse(text.as_bytes()).expect("parses");
    map(&msg, &ctx("ZRH01")).expect_err("mapping must fail")
}

/// (segment, sequence, field, table 0357 code) of an error's ERR.
fn where_(e: &MapError) -> (String, Option<u32>, Option<u32>, String) {
    let a = e.to_ack_error();
    (a.segment, a.sequence, a.field, a.code)
}

const ADT: &str = "MSH|^~\\&|PAS|ZRH01|CR|ZCR01|20260715093000||ADT^A01|C1|P|2.4";
const ORU: &str = "MSH|^~\\&|LIMS|ZLB01|CR|ZCR01|20260715093000||ORU^R01|C2|P|2.4";
const MDM: &str = "MSH|^~\\&|EPR|ZRH01|CR|ZCR01|20260715093000||MDM^T02|C3|P|2.5";
const PID: &str = "PID|1||9990000018^^^NHS^NH||TESTPERSON^ALICE||19380412|F";
const PV1: &str = "PV1|1|I|||||||||||||||||V1";

#[test]
fn the_messages_these_tests_break_map_when_whole() {
    for segments in [
        vec![ADT, PID, PV1],
        vec![
            ORU,
            PID,
            "OBR|1||F1|X^X|||20260715080000||||||||||||||||||F",
            "OBX|1|NM|A^A||5.1||||||F",
        ],
        vec![
            MDM,
            PID,
            "TXA|1|DS|AP|||||||||D1",
            "OBX|1|ED|DS||ZRH01^Application^PDF^Base64^JVBERg==||||||F",
        ],
    ] {
        let text = segments.join("\r") + "\r";
        let msg = carerecord_hl7::parse(text.as_bytes()).expect("parses");
        let m = map(&msg, &ctx("ZRH01")).expect("maps");
        assert!(!m.entries.is_empty());
    }
}

fn w(seg: &str, seq: u32, field: u32, code: &str) -> (String, Option<u32>, Option<u32>, String) {
    (seg.to_owned(), Some(seq), Some(field), code.to_owned())
}

#[test]
fn an_admission_without_a_visit_number_names_pv1_19() {
    let e = map_err(&[ADT, PID, "PV1|1|I|WARD"]);
    assert_eq!(where_(&e), w("PV1", 1, 19, "101"));
    assert_eq!(e.ack_code(), AckCode::AE);
}

#[test]
fn an_unknown_gender_and_a_bad_birth_date_name_their_fields() {
    let e = map_err(&[ADT, "PID|1||9990000018^^^NHS^NH||X^Y||19380412|Q", PV1]);
    assert_eq!(where_(&e), w("PID", 1, 8, "103"));
    let e = map_err(&[ADT, "PID|1||9990000018^^^NHS^NH||X^Y||19381332|F", PV1]);
    assert_eq!(where_(&e), w("PID", 1, 7, "102"));
}

#[test]
fn a_person_without_any_identifier_names_pid_3() {
    let e = map_err(&[ADT, "PID|1||||X^Y", PV1]);
    assert_eq!(where_(&e), w("PID", 1, 3, "101"));
}

#[test]
fn a_non_numeric_nm_value_names_the_right_obx() {
    let e = map_err(&[
        ORU,
        PID,
        "OBR|1||F1|X^X|||20260715080000||||||||||||||||||F",
        "OBX|1|NM|A^A||5.1||||||F",
        "OBX|2|NM|B^B||five||||||F",
    ]);
    assert_eq!(where_(&e), w("OBX", 2, 5, "102"));
}

#[test]
fn an_obx_before_any_obr_is_out_of_sequence() {
    let e = map_err(&[ORU, PID, "OBX|1|NM|A^A||5.1||||||F"]);
    assert!(matches!(e, MapError::OutOfSequence(_)), "{e}");
    assert_eq!(e.to_ack_error().code, "100");
}

#[test]
fn missing_result_status_and_unknown_report_status_are_refused() {
    let e = map_err(&[ORU, PID, "OBR|1||F1|X^X", "OBX|1|NM|A^A||5.1"]);
    assert_eq!(where_(&e), w("OBX", 1, 11, "101"));
    let e = map_err(&[
        ORU,
        PID,
        "OBR|1||F1|X^X|||||||||||||||||||||Q",
        "OBX|1|NM|A^A||5.1||||||F",
    ]);
    assert_eq!(where_(&e), w("OBR", 1, 25, "103"));
}

#[test]
fn a_report_without_a_filler_order_number_names_obr_3() {
    let e = map_err(&[ORU, PID, "OBR|1|P1||X^X", "OBX|1|NM|A^A||5.1||||||F"]);
    assert_eq!(where_(&e), w("OBR", 1, 3, "101"));
}

#[test]
fn a_document_without_a_number_or_with_bad_base64_is_refused() {
    let e = map_err(&[MDM, PID, "TXA|1|DS|TX", "OBX|1|TX|DS||text||||||F"]);
    assert_eq!(where_(&e), w("TXA", 1, 12, "101"));
    let e = map_err(&[
        MDM,
        PID,
        "TXA|1|DS|AP|||||||||D1",
        "OBX|1|ED|DS||ZRH01^Application^PDF^Base64^not*base64!||||||F",
    ]);
    assert_eq!(where_(&e), w("OBX", 1, 5, "102"));
}

#[test]
fn an_err_text_never_quotes_the_value() {
    let e = map_err(&[ADT, "PID|1||9990000018^^^NHS^NH||X^Y||TESTPERSON|F", PV1]);
    assert!(!e.to_string().contains("TESTPERSON"), "{e}");
}

#[test]
fn a_second_patient_in_one_message_is_refused_rather_than_misfiled() {
    let e = map_err(&[
        ORU,
        PID,
        "OBR|1||F1|X^X|||20260715080000||||||||||||||||||F",
        "OBX|1|NM|A^A||5.1||||||F",
        "PID|2||9990000026^^^NHS^NH||OTHER^PERSON",
        "OBR|2||F2|X^X|||20260715080000||||||||||||||||||F",
        "OBX|1|NM|A^A||7.2||||||F",
    ]);
    assert!(matches!(e, MapError::OutOfSequence(_)), "{e}");
    let a = e.to_ack_error();
    assert_eq!(
        (a.segment.as_str(), a.sequence, a.code.as_str()),
        ("PID", Some(2), "100")
    );
}
